/* GPU tests of the 4-bit AWQ linears (engine/awq.h, engine/awq.cu) against
 * their plain-C references (engine/kernels_ref_awq.c, engine/awq_layout.c):
 * the GPU repacking of AutoAWQ's qweight (bit for bit the host's), the
 * dequantize kernel (bit for bit kref_awq_dequant), the decode kernel at 1
 * to 100 tokens, group sizes 64 and 128, split along K or not (rel L2 against
 * kref_awq_gemm), the prefill path (dequantize + cuBLAS), odd shapes refused
 * with a reason; then the engine on a small AWQ checkpoint packed as AutoAWQ
 * packs it (tests/awq_ckpt.h): the loader's arena equals the host staging,
 * one 300-token prefill (prefill path) against the same prompt in 32-token
 * chunks (decode kernel), a batch against each prompt alone.  Outputs are
 * poisoned with NaN first.  Each case needs PAGESIM_GPU=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <cublas_v2.h>
#include "tests/test_util.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/awq_ckpt.h"
#include "engine/awq.h"
#include "engine/awq_weights.h"
#include "engine/engine.h"
#include "engine/safetensors.h"

#define TMP "build/tmp/gpu_awq"
static cublasHandle_t blas;

static int setup(void **st) {
    (void)st;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    const char *g = getenv("PAGESIM_GPU");
    if (g && !strcmp(g, "1") && cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) return -1;
    return 0;
}
static int teardown(void **st) {
    (void)st;
    if (blas) cublasDestroy(blas);
    return 0;
}

/* a random linear: AutoAWQ's tensors (host), the tile layout (host and device) */
typedef struct qlin {
    int K, N, G;
    int32_t *qweight, *qzeros;
    uint16_t *ck_scales, *scales;
    uint32_t *qw, *zeros;
    k_awq_linear d;
} qlin;

static void qlin_make(qlin *l, const char *mod, int K, int N, int G) {
    l->K = K; l->N = N; l->G = G;
    l->qweight = malloc((size_t)K * N / 2);
    l->qzeros = malloc((size_t)(K / G) * N / 2);
    l->ck_scales = malloc((size_t)(K / G) * N * 2);
    l->qw = malloc(awq_qw_bytes(K, N));
    l->zeros = malloc(awq_zeros_bytes(K, N, G));
    l->scales = malloc(awq_scales_bytes(K, N, G));
    int v[8];
    for (int k = 0; k < K; k++)
        for (int w = 0; w < N / 8; w++) {
            for (int j = 0; j < 8; j++) v[j] = awq_ck_q(mod, N, k, 8 * w + j);
            l->qweight[(size_t)k * (N / 8) + w] = awq_ck_pack8(v);
        }
    for (int g = 0; g < K / G; g++)
        for (int w = 0; w < N / 8; w++) {
            for (int j = 0; j < 8; j++) v[j] = awq_ck_z(mod, N, g, 8 * w + j);
            l->qzeros[(size_t)g * (N / 8) + w] = awq_ck_pack8(v);
        }
    for (int g = 0; g < K / G; g++)
        for (int n = 0; n < N; n++) l->ck_scales[(size_t)g * N + n] = awq_ck_s(mod, N, g, n);
    awq_repack(l->qw, l->scales, l->zeros, l->qweight, l->qzeros, l->ck_scales, K, N, G);
    l->d = (k_awq_linear){K, N, G, up(l->qw, awq_qw_bytes(K, N)), up(l->scales, awq_scales_bytes(K, N, G)),
                          up(l->zeros, awq_zeros_bytes(K, N, G))};
}

static void qlin_free(qlin *l) {
    cudaFree(l->d.qw); cudaFree(l->d.scales); cudaFree(l->d.zeros);
    free(l->qweight); free(l->qzeros); free(l->ck_scales); free(l->qw); free(l->zeros); free(l->scales);
}

static void test_repack_and_dequant(void **st) {
    (void)st; TU_REQUIRE_GPU();
    const int shapes[][2] = {{512, 256}, {192, 48}, {1024, 4608}};
    for (int G = 64; G <= 128; G *= 2)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int K = shapes[s][0], N = shapes[s][1];
            if (K % G) continue;
            qlin l;
            qlin_make(&l, "rd", K, N, G);
            /* the loader's GPU repacking of qweight = the host's */
            int32_t *dq = up(l.qweight, (size_t)K * N / 2);
            uint32_t *dqw = poisoned(awq_qw_bytes(K, N));
            assert_int_equal(k_awq_repack(dqw, dq, K, N, 0), 0);
            uint32_t *got = down(dqw, awq_qw_bytes(K, N));
            assert_memory_equal(got, l.qw, awq_qw_bytes(K, N));
            free(got); cudaFree(dq); cudaFree(dqw);
            /* dequantize: bit for bit */
            k_bf16 *dw = poisoned((size_t)K * N * 2);
            assert_int_equal(k_awq_dequant(dw, &l.d, 0), 0);
            float *gw = down_bf(dw, (size_t)K * N), *rw = malloc(sizeof(float) * K * N);
            kref_awq_dequant(rw, l.qw, l.scales, l.zeros, K, N, G);
            size_t diff = 0;
            for (size_t i = 0; i < (size_t)K * N; i++) diff += gw[i] != rw[i];
            fprintf(stderr, "  K %d N %d G %d: repack identical, dequantize %zu of %zu differ\n", K, N, G, diff,
                    (size_t)K * N);
            assert_int_equal(diff, 0);
            free(gw); free(rw); cudaFree(dw);
            qlin_free(&l);
        }
}

static void test_decode(void **st) {
    (void)st; TU_REQUIRE_GPU();
    const int shapes[][2] = {{512, 256}, {3584, 512}, {1024, 4608}, {4096, 48}, {256, 16}};
    const int Ts[] = {1, 3, 8, 13, 32, 40, 100};
    k_awq_work work = {NULL, 0, NULL, k_awq_partial_elems() > 16 * 32 * 4608 ? k_awq_partial_elems() : 16 * 32 * 4608};
    assert_int_equal(cudaMalloc((void **)&work.partial, work.partial_elems * 4), cudaSuccess);
    for (int G = 64; G <= 128; G *= 2)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int K = shapes[s][0], N = shapes[s][1];
            if (K % G) continue;
            qlin l;
            qlin_make(&l, "dec", K, N, G);
            float *x = rnd((size_t)100 * K, 1.0f), *want = malloc(sizeof(float) * 100 * N);
            k_bf16 *dx = up_bf(x, (size_t)100 * K);
            for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t++) {
                int T = Ts[t];
                kref_awq_gemm(want, x, l.qw, l.scales, l.zeros, T, K, N, G);
                for (int splits = 0; splits <= 3; splits += 3) {      /* chosen, then forced to 3 */
                    k_bf16 *dy = poisoned((size_t)T * N * 2);
                    if (k_awq_gemm_decode(dy, dx, &l.d, T, &work, splits, 0)) fail_msg("%s", k_last_error());
                    float *got = down_bf(dy, (size_t)T * N);
                    double e = rel_l2(got, want, (size_t)T * N);
                    if (T == 1 || T == 32 || T == 100 || e >= 4e-3)
                        fprintf(stderr, "  decode K %d N %d G %d T %d splits %s: rel L2 %.2e\n", K, N, G, T,
                                splits ? "3" : "auto", e);
                    assert_true(e < 4e-3);
                    free(got); cudaFree(dy);
                }
            }
            free(x); free(want); cudaFree(dx);
            qlin_free(&l);
        }
    cudaFree(work.partial);
}

/* from K_AWQ_SCRATCH_MIN_T tokens: dequantize into the scratch, then cuBLAS */
static void test_prefill(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int K = 1024, N = 768, T = 300;
    for (int G = 64; G <= 128; G *= 2) {
        qlin l;
        qlin_make(&l, "pre", K, N, G);
        k_awq_work work = {NULL, (size_t)K * N, NULL, k_awq_partial_elems()};
        assert_int_equal(cudaMalloc((void **)&work.scratch, work.scratch_elems * 2), cudaSuccess);
        assert_int_equal(cudaMalloc((void **)&work.partial, work.partial_elems * 4), cudaSuccess);
        float *x = rnd((size_t)T * K, 1.0f), *w = malloc(sizeof(float) * K * N), *want = malloc(sizeof(float) * T * N);
        kref_awq_dequant(w, l.qw, l.scales, l.zeros, K, N, G);
        kref_gemm(want, x, w, T, N, K);
        for (int i = 0; i < T * N; i++) want[i] = kref_round_bf(want[i]);
        k_bf16 *dx = up_bf(x, (size_t)T * K), *dy = poisoned((size_t)T * N * 2);
        if (k_awq_gemm(blas, dy, dx, &l.d, T, &work, 0)) fail_msg("%s", k_last_error());
        float *got = down_bf(dy, (size_t)T * N);
        CHECK_CLOSE(got, want, (size_t)T * N, 3e-3, G == 64 ? "prefill path G 64" : "prefill path G 128");
        /* the same tokens through the decode kernel (no scratch): the exact weights, close to the bf16 ones */
        k_awq_work small = {NULL, 0, work.partial, work.partial_elems};
        assert_int_equal(k_awq_gemm(blas, dy, dx, &l.d, T, &small, 0), 0);
        float *got2 = down_bf(dy, (size_t)T * N);
        CHECK_CLOSE(got2, want, (size_t)T * N, 1e-2, "decode kernel at 300 tokens");
        free(got); free(got2); free(x); free(w); free(want);
        cudaFree(dx); cudaFree(dy); cudaFree(work.scratch); cudaFree(work.partial);
        qlin_free(&l);
    }
}

static void test_bad_shapes(void **st) {
    (void)st; TU_REQUIRE_GPU();
    qlin l;
    qlin_make(&l, "bad", 256, 64, 64);
    k_bf16 *dx = poisoned(256 * 8 * 2 + 64), *dy = poisoned(64 * 8 * 2);
    k_awq_work work = {NULL, 0, NULL, 0};
    k_awq_linear b = l.d;
    b.K = 100;
    assert_int_equal(k_awq_gemm(blas, dy, dx, &b, 1, &work, 0), -1);
    assert_non_null(strstr(k_last_error(), "K=100"));
    b = l.d; b.N = 40;
    assert_int_equal(k_awq_gemm(blas, dy, dx, &b, 1, &work, 0), -1);
    b = l.d; b.G = 32;
    assert_int_equal(k_awq_gemm(blas, dy, dx, &b, 1, &work, 0), -1);
    assert_non_null(strstr(k_last_error(), "G=32"));
    assert_int_equal(k_awq_dequant(dy, &b, 0), -1);
    assert_int_equal(k_awq_gemm(blas, dy, (k_bf16 *)((char *)dx + 2), &l.d, 1, &work, 0), -1);   /* x misaligned */
    assert_non_null(strstr(k_last_error(), "aligned"));
    assert_int_equal(k_awq_gemm_decode(dy, dx, &l.d, 8, &work, 2, 0), -1);   /* a split with no workspace */
    assert_non_null(strstr(k_last_error(), "workspace"));
    cudaFree(dx); cudaFree(dy);
    qlin_free(&l);
}

/* ---- the engine on an AWQ checkpoint ------------------------------------- */
#define CK TMP "/qwen2-awq"
enum { CD = 256, CNQ = 4, CNKV = 2, CI = 512, CV = 512, CL = 2, CG = 64 };

static const st_tensor *st_lookup(void *f, const char *name) { return st_find(f, name); }

static void test_loader(void **st) {
    (void)st; TU_REQUIRE_GPU();
    assert_int_equal(awq_ck_write(CK, "qwen2", CD, CNQ, CNKV, CI, CV, CL, CG, -1), 0);
    mc_config c;
    char err[512];
    if (mc_load(&c, CK "/config.json", err, sizeof err)) fail_msg("%s", err);
    w_weights w;
    if (w_load(&w, CK, &c, err, sizeof err)) fail_msg("w_load: %s", err);
    assert_non_null(w.layers[1].awq);
    assert_null(w.layers[1].wqkv);
    st_file f;
    if (st_open(&f, CK "/model.safetensors", err, sizeof err)) fail_msg("%s", err);
    for (int i = 0; i < AWQ_NLIN; i++) {
        const k_awq_linear *q = &w.layers[1].awq[i];
        uint32_t *qw = malloc(awq_qw_bytes(q->K, q->N)), *z = malloc(awq_zeros_bytes(q->K, q->N, CG));
        uint16_t *s = malloc(awq_scales_bytes(q->K, q->N, CG));
        if (awq_stage_linear(st_lookup, &f, &c, 1, i, qw, s, z, err, sizeof err)) fail_msg("%s", err);
        void *gq = down(q->qw, awq_qw_bytes(q->K, q->N)), *gs = down(q->scales, awq_scales_bytes(q->K, q->N, CG));
        void *gz = down(q->zeros, awq_zeros_bytes(q->K, q->N, CG));
        assert_memory_equal(gq, qw, awq_qw_bytes(q->K, q->N));
        assert_memory_equal(gs, s, awq_scales_bytes(q->K, q->N, CG));
        assert_memory_equal(gz, z, awq_zeros_bytes(q->K, q->N, CG));
        free(gq); free(gs); free(gz); free(qw); free(z); free(s);
    }
    fprintf(stderr, "  layer 1's four fused linears on the GPU = the host staging, byte for byte\n");
    st_close(&f);
    w_free(&w);
}

typedef struct last_rec { float *row[4]; int pos[4], V; } last_rec;
static void on_logits(void *ctx, int id, int pos, const float *row, int V) {
    last_rec *g = ctx;
    if (id < 0 || id >= 4 || pos != g->pos[id]) return;
    if (!g->row[id]) g->row[id] = malloc(sizeof(float) * V);
    memcpy(g->row[id], row, sizeof(float) * V);
    g->V = V;
}

/* the logits of the last prompt position of prompts [0, n) of lengths len[],
 * run together (batch) or each alone, at max_num_batched_tokens budget */
static void run_awq(last_rec *g, const int *len, int n, int budget, int together) {
    mc_config c;
    char err[512];
    if (mc_load(&c, CK "/config.json", err, sizeof err)) fail_msg("%s", err);
    w_weights w;
    if (w_load(&w, CK, &c, err, sizeof err)) fail_msg("w_load: %s", err);
    eng_config cfg = {0};
    cfg.model.max_num_batched_tokens = budget;
    cfg.model.max_num_seqs = 8;
    cfg.model.max_model_len = 512;
    cfg.model.num_gpu_blocks = 256;
    cfg.eos_id = -1;
    cfg.prefix_caching = 0;
    cfg.on_logits = on_logits;
    cfg.logits_ctx = g;
    model_mem mem;
    eng *e = eng_create(&c, &w, &cfg, &mem, err, sizeof err);
    if (!e) fail_msg("eng_create: %s", err);
    for (int r = 0; r < n; r++) {
        g->pos[r] = len[r] - 1;
        int *p = malloc(sizeof(int) * len[r]);
        for (int i = 0; i < len[r]; i++) p[i] = (r * 131 + i * 17 + 3) % CV;
        eng_params ep = { .max_tokens = 2, .top_p = 1, .seed = (uint64_t)r };
        assert_int_equal(eng_add_request(e, r, p, len[r], &ep, err, sizeof err), 0);
        free(p);
        if (!together)
            while (eng_has_work(e)) {
                const eng_result *d;
                int nd;
                if (eng_step(e, &d, &nd, err, sizeof err) < 0) fail_msg("eng_step: %s", err);
            }
    }
    while (eng_has_work(e)) {
        const eng_result *d;
        int nd;
        if (eng_step(e, &d, &nd, err, sizeof err) < 0) fail_msg("eng_step: %s", err);
    }
    eng_free(e);
}

static void test_engine_paths(void **st) {
    (void)st; TU_REQUIRE_GPU();
    assert_int_equal(awq_ck_write(CK, "qwen2", CD, CNQ, CNKV, CI, CV, CL, CG, -1), 0);
    const int len[4] = {300, 5, 40, 130};
    last_rec whole = {0}, chunks = {0}, batch = {0}, single = {0};
    run_awq(&whole, len, 1, 512, 1);        /* one 300-token step: dequantize + cuBLAS */
    run_awq(&chunks, len, 1, 32, 1);        /* ten steps of <= 32 tokens: the decode kernel */
    assert_non_null(whole.row[0]);
    assert_non_null(chunks.row[0]);
    double e = rel_l2(chunks.row[0], whole.row[0], (size_t)whole.V);
    fprintf(stderr, "  300-token prompt: one prefill step vs 32-token chunks, last logits rel L2 %.2e\n", e);
    assert_true(e < 2e-2);
    run_awq(&batch, len, 4, 512, 1);
    run_awq(&single, len, 4, 512, 0);
    for (int r = 0; r < 4; r++) {
        assert_non_null(batch.row[r]);
        assert_non_null(single.row[r]);
        double d = rel_l2(batch.row[r], single.row[r], (size_t)batch.V);
        fprintf(stderr, "  prompt %d (%d tokens): batch vs single rel L2 %.2e\n", r, len[r], d);
        assert_true(d < 2e-2);
    }
    for (int r = 0; r < 4; r++) { free(whole.row[r]); free(chunks.row[r]); free(batch.row[r]); free(single.row[r]); }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repack_and_dequant),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_prefill),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_loader),
        cmocka_unit_test(test_engine_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
