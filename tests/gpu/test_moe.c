/* GPU tests of the mixture-of-experts launchers (kernels.h, engine/moe.cu)
 * against their plain-C references (engine/kernels_ref_moe.c) on fresh random
 * inputs: routing (exact experts, weights to 1e-5), the permutation (counts
 * and offsets exact, every pair in one row of its expert, the row tiles
 * covering every row once), the grouped GEMMs with each row tile (16, 64,
 * 128) and through cuBLAS, partial tiles in N and K, the combine, and the
 * whole layer.  Outputs are poisoned with NaN first. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <cublas_v2.h>
#include "tests/test_util.h"
#include "tests/gpu/gpu_test_util.h"

static cublasHandle_t blas;

static int setup(void **st) {
    (void)st;
    const char *g = getenv("PAGESIM_GPU");
    if (g && !strcmp(g, "1") && cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) return -1;
    return 0;
}
static int teardown(void **st) {
    (void)st;
    if (blas) cublasDestroy(blas);
    return 0;
}

/* random routing of T tokens: k distinct experts each, ascending, and weights */
static void random_routing(int32_t *ids, float *w, int T, int E, int k, int skew) {
    for (int t = 0; t < T; t++) {
        char used[K_MOE_MAX_EXPERTS] = {0};
        for (int i = 0; i < k; i++) {
            int e;
            do e = skew && irand(2) ? irand(E < 4 ? E : 4) : irand(E); while (used[e]);   /* skew: hot experts */
            used[e] = 1;
        }
        for (int e = 0, i = 0; e < E; e++)
            if (used[e]) { ids[(size_t)t * k + i] = e; w[(size_t)t * k + i] = (frand() + 1.0f) * 0.5f; i++; }
    }
}

static void test_route(void **st) {
    (void)st; TU_REQUIRE_GPU();
    const int cases[][4] = {{333, 128, 8, 1}, {333, 128, 8, 0}, {97, 60, 4, 1}, {50, 16, 4, 0}, {40, 512, 16, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int T = cases[c][0], E = cases[c][1], k = cases[c][2], norm = cases[c][3];
        k_moe m;
        assert_int_equal(k_moe_create(&m, E, k, T, 64, 64, K_MOE_GEMM_GROUPED, NULL), 0);
        float *lg = rnd((size_t)T * E, 4);
        for (int e = 0; e < E; e += 7) lg[e] = lg[e + 1];            /* exact ties in token 0 */
        k_bf16 *dl = up_bf(lg, (size_t)T * E);
        assert_int_equal(cudaMemset(m.topk_ids, 0xff, (size_t)T * k * 4), cudaSuccess);
        assert_int_equal(cudaMemset(m.topk_w, 0xff, (size_t)T * k * 4), cudaSuccess);
        assert_int_equal(k_moe_route(&m, dl, T, norm, 0), 0);
        int32_t *ids = down(m.topk_ids, (size_t)T * k * 4), *rids = malloc((size_t)T * k * 4);
        float *w = down(m.topk_w, (size_t)T * k * 4), *rw = malloc((size_t)T * k * 4);
        kref_moe_route(rids, rw, lg, T, E, k, norm);
        assert_memory_equal(ids, rids, (size_t)T * k * 4);
        double worst = 0;
        for (int i = 0; i < T * k; i++) {
            double d = fabs((double)w[i] - rw[i]) / fmax(fabs(rw[i]), 1e-30);
            worst = d > worst ? d : worst;
        }
        fprintf(stderr, "  route T %d E %d k %d norm %d: experts equal, weights max rel err %.2e\n", T, E, k, norm,
                worst);
        assert_true(worst < 1e-5);
        free(lg); free(ids); free(rids); free(w); free(rw); cudaFree(dl);
        k_moe_free(&m);
    }
}

/* the permutation's invariants, given the routing on the host */
static void check_permutation(const k_moe *m, const int32_t *ids, int T) {
    int E = m->E, k = m->k, n = T * k;
    int32_t *counts = down(m->counts, (size_t)E * 4), *offs = down(m->offsets, (size_t)(E + 1) * 4);
    int32_t *rc = malloc((size_t)E * 4), *ro = malloc((size_t)(E + 1) * 4);
    kref_moe_counts(rc, ro, ids, T, E, k);
    assert_memory_equal(counts, rc, (size_t)E * 4);
    assert_memory_equal(offs, ro, (size_t)(E + 1) * 4);
    int32_t *pr = down(m->pair_row, (size_t)n * 4), *rt = down(m->row_token, (size_t)n * 4);
    char *seen = calloc((size_t)n + 1, 1);
    for (int p = 0; p < n; p++) {
        int r = pr[p], e = ids[p];
        assert_true(r >= ro[e] && r < ro[e + 1]);           /* a row of its expert */
        assert_false(seen[r]);                              /* no row twice */
        seen[r] = 1;
        assert_int_equal(rt[r], p / k);
    }
    int32_t nt;
    assert_int_equal(cudaMemcpy(&nt, m->ntiles, 4, cudaMemcpyDeviceToHost), cudaSuccess);
    int32_t *tl = down(m->tiles, (size_t)2 * (nt > 0 ? nt : 1) * 4);
    memset(seen, 0, (size_t)n + 1);
    for (int i = 0; i < nt; i++) {                          /* the tiles cover each row once */
        int e = tl[2 * i], r0 = tl[2 * i + 1];
        assert_true(e >= 0 && e < E && r0 >= ro[e] && r0 < ro[e + 1]);
        for (int r = r0; r < r0 + m->tile_m && r < ro[e + 1]; r++) { assert_false(seen[r]); seen[r] = 1; }
    }
    for (int r = 0; r < n; r++) assert_true(seen[r]);
    free(counts); free(offs); free(rc); free(ro); free(pr); free(rt); free(seen); free(tl);
}

static void test_permute(void **st) {
    (void)st; TU_REQUIRE_GPU();
    const int cases[][4] = {{64, 128, 8, 0}, {256, 128, 8, 1}, {3000, 128, 8, 1}, {1, 16, 4, 0}, {777, 60, 4, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int T = cases[c][0], E = cases[c][1], k = cases[c][2];
        k_moe m;
        assert_int_equal(k_moe_create(&m, E, k, T, 64, 64, K_MOE_GEMM_GROUPED, NULL), 0);
        int32_t *ids = malloc((size_t)T * k * 4);
        float *w = malloc((size_t)T * k * 4);
        random_routing(ids, w, T, E, k, cases[c][3]);
        assert_int_equal(cudaMemcpy(m.topk_ids, ids, (size_t)T * k * 4, cudaMemcpyHostToDevice), cudaSuccess);
        assert_int_equal(k_moe_permute(&m, T, 0), 0);
        assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
        check_permutation(&m, ids, T);
        fprintf(stderr, "  permute T %d E %d k %d: tiles of %d rows\n", T, E, k, m.tile_m);
        free(ids); free(w);
        k_moe_free(&m);
    }
}

/* The two grouped GEMMs and the combine against references, for one shape
 * and one path; T picks the row tile (T k / E rows per expert). */
static void gemm_case(int T, int E, int k, int D, int Im, int impl) {
    k_moe m;
    assert_int_equal(k_moe_create(&m, E, k, T, D, Im, impl, blas), 0);
    int n = T * k;
    int32_t *ids = malloc((size_t)n * 4);
    float *w = malloc((size_t)n * 4);
    random_routing(ids, w, T, E, k, 1);
    float *x = rnd((size_t)T * D, 1), *wgu = rnd((size_t)E * 2 * Im * D, 0.1f), *wd = rnd((size_t)E * D * Im, 0.1f);
    k_bf16 *dx = up_bf(x, (size_t)T * D), *dwgu = up_bf(wgu, (size_t)E * 2 * Im * D), *dwd = up_bf(wd, (size_t)E * D * Im);
    k_bf16 *dact = poisoned((size_t)n * Im * 2), *dy = poisoned((size_t)n * D * 2), *dout = poisoned((size_t)T * D * 2);
    assert_int_equal(cudaMemcpy(m.topk_ids, ids, (size_t)n * 4, cudaMemcpyHostToDevice), cudaSuccess);
    assert_int_equal(cudaMemcpy(m.topk_w, w, (size_t)n * 4, cudaMemcpyHostToDevice), cudaSuccess);
    assert_int_equal(k_moe_permute(&m, T, 0), 0);
    assert_int_equal(k_moe_gate_up(&m, dact, dx, dwgu, 0), 0);
    assert_int_equal(k_moe_down(&m, dy, dact, dwd, 0), 0);
    assert_int_equal(k_moe_combine(&m, dout, dy, 0), 0);
    float *act = down_bf(dact, (size_t)n * Im), *y = down_bf(dy, (size_t)n * D), *out = down_bf(dout, (size_t)T * D);
    int32_t *rt = down(m.row_token, (size_t)n * 4), *offs = down(m.offsets, (size_t)(E + 1) * 4);
    int32_t *pr = down(m.pair_row, (size_t)n * 4);
    /* references row by row: act from the gathered x, y from the GPU's act (each GEMM on its own) */
    float *ract = malloc(sizeof(float) * (size_t)n * Im), *ry = malloc(sizeof(float) * (size_t)n * D);
    float *gu = malloc(sizeof(float) * 2 * Im);
    for (int e = 0; e < E; e++)
        for (int r = offs[e]; r < offs[e + 1]; r++) {
            kref_gemm(gu, x + (size_t)rt[r] * D, wgu + (size_t)e * 2 * Im * D, 1, 2 * Im, D);
            for (int i = 0; i < 2 * Im; i++) gu[i] = kref_round_bf(gu[i]);
            kref_silu_mul(ract + (size_t)r * Im, gu, 1, Im);
            kref_gemm(ry + (size_t)r * D, act + (size_t)r * Im, wd + (size_t)e * D * Im, 1, D, Im);
        }
    /* the combine from the GPU's y */
    float *rout = calloc((size_t)T * D, sizeof(float));
    for (int t = 0; t < T; t++)
        for (int i = 0; i < k; i++)
            for (int d = 0; d < D; d++) {
                float *o = rout + (size_t)t * D + d;
                *o = kref_round_bf(*o + kref_round_bf(y[(size_t)pr[t * k + i] * D + d] * w[t * k + i]));
            }
    char what[96];
    snprintf(what, sizeof what, "%s T %d D %d Im %d tile %d: act",
             impl == K_MOE_GEMM_CUBLAS ? "cuBLAS" : m.tile_m == 128 ? "wgmma" : "mma",
             T, D, Im, m.tile_m);
    CHECK_CLOSE(act, ract, (size_t)n * Im, 1e-2, what);
    CHECK_CLOSE(y, ry, (size_t)n * D, 1e-2, "  down y");
    CHECK_CLOSE(out, rout, (size_t)T * D, 1e-2, "  combine");
    /* the combine is exact given y: same roundings in the same order */
    for (size_t i = 0; i < (size_t)T * D; i++) assert_true(out[i] == rout[i]);
    free(ids); free(w); free(x); free(wgu); free(wd); free(act); free(y); free(out); free(rt); free(offs);
    free(pr); free(ract); free(ry); free(gu); free(rout);
    cudaFree(dx); cudaFree(dwgu); cudaFree(dwd); cudaFree(dact); cudaFree(dy); cudaFree(dout);
    k_moe_free(&m);
}

static void test_grouped_gemm(void **st) {
    (void)st; TU_REQUIRE_GPU();
    gemm_case(80, 32, 4, 512, 256, K_MOE_GEMM_GROUPED);      /* 10 rows an expert: mma.sync, tiles of 16 */
    gemm_case(300, 32, 4, 512, 256, K_MOE_GEMM_GROUPED);     /* 37: mma.sync, tiles of 64 */
    gemm_case(1000, 32, 4, 512, 256, K_MOE_GEMM_GROUPED);    /* 125: wgmma, tiles of 128 */
    gemm_case(1000, 8, 2, 256, 768, K_MOE_GEMM_GROUPED);     /* wgmma: two 128-row tiles an expert, 6 column tiles */
    gemm_case(50, 8, 2, 136, 24, K_MOE_GEMM_GROUPED);        /* partial tiles in N and K */
    gemm_case(700, 8, 2, 136, 24, K_MOE_GEMM_GROUPED);
    gemm_case(300, 32, 4, 512, 256, K_MOE_GEMM_CUBLAS);
    gemm_case(50, 8, 2, 136, 24, K_MOE_GEMM_CUBLAS);
}

/* route -> permute -> experts -> combine against kref_moe_layer */
static void layer_case(int T, int E, int k, int D, int Im, int impl) {
    k_moe m;
    assert_int_equal(k_moe_create(&m, E, k, T, D, Im, impl, blas), 0);
    float *x = rnd((size_t)T * D, 1), *wr = rnd((size_t)E * D, 0.2f);
    float *wgu = rnd((size_t)E * 2 * Im * D, 0.1f), *wd = rnd((size_t)E * D * Im, 0.1f);
    k_bf16 *dx = up_bf(x, (size_t)T * D), *dwr = up_bf(wr, (size_t)E * D);
    k_bf16 *dwgu = up_bf(wgu, (size_t)E * 2 * Im * D), *dwd = up_bf(wd, (size_t)E * D * Im);
    k_bf16 *dlg = poisoned((size_t)T * E * 2), *dact = poisoned((size_t)T * k * Im * 2);
    k_bf16 *dy = poisoned((size_t)T * k * D * 2), *dout = poisoned((size_t)T * D * 2);
    assert_int_equal(k_gemm(blas, dlg, 0, dx, dwr, T, E, D, 0), 0);
    assert_int_equal(k_moe_route(&m, dlg, T, 1, 0), 0);
    assert_int_equal(k_moe_permute(&m, T, 0), 0);
    assert_int_equal(k_moe_gate_up(&m, dact, dx, dwgu, 0), 0);
    assert_int_equal(k_moe_down(&m, dy, dact, dwd, 0), 0);
    assert_int_equal(k_moe_combine(&m, dout, dy, 0), 0);
    float *lg = down_bf(dlg, (size_t)T * E), *out = down_bf(dout, (size_t)T * D);
    int32_t *ids = malloc((size_t)T * k * 4), *gids = down(m.topk_ids, (size_t)T * k * 4);
    float *w = malloc((size_t)T * k * 4), *rout = malloc(sizeof(float) * (size_t)T * D);
    kref_moe_route(ids, w, lg, T, E, k, 1);                 /* from the GPU's logits: the GEMM is tested apart */
    assert_memory_equal(ids, gids, (size_t)T * k * 4);
    kref_moe_layer(rout, x, ids, w, wgu, wd, T, D, Im, k);
    CHECK_CLOSE(out, rout, (size_t)T * D, 1e-2, impl == K_MOE_GEMM_CUBLAS ? "layer (cuBLAS)" :
                m.tile_m == 128 ? "layer (wgmma)" : "layer (mma)");
    free(x); free(wr); free(wgu); free(wd); free(lg); free(out); free(ids); free(gids); free(w); free(rout);
    cudaFree(dx); cudaFree(dwr); cudaFree(dwgu); cudaFree(dwd); cudaFree(dlg); cudaFree(dact); cudaFree(dy);
    cudaFree(dout);
    k_moe_free(&m);
}

static void test_layer(void **st) {
    (void)st; TU_REQUIRE_GPU();
    layer_case(50, 16, 4, 256, 128, K_MOE_GEMM_GROUPED);
    layer_case(150, 16, 4, 256, 128, K_MOE_GEMM_GROUPED);
    layer_case(600, 16, 4, 256, 128, K_MOE_GEMM_GROUPED);
    layer_case(50, 16, 4, 256, 128, K_MOE_GEMM_CUBLAS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_permute),
        cmocka_unit_test(test_grouped_gemm),
        cmocka_unit_test(test_layer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
