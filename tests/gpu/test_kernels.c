/* GPU tests: every kernel of engine/kernels.h against its plain-C reference
 * (engine/kernels_ref.c) on fresh random inputs.  Outputs are poisoned (NaN)
 * before each launch; a NaN never passes.  bf16 results are compared by
 * relative L2 error (threshold 1e-2), exact operations must match exactly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/kernels.h"
#include "engine/kernels_ref.h"
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include "tests/gpu/gpu_test_util.h"

static void test_fill(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int64_t n = 100003;
    k_bf16 *d = poisoned((size_t)n * 2);
    assert_int_equal(k_fill_random(d, n, 42, 0.5f, 0), 0);
    float *g = down_bf(d, (size_t)n);
    for (int64_t i = 0; i < n; i++)
        assert_true(g[i] == kref_round_bf((2.0f * kref_uniform(42, 0, (uint64_t)i) - 1.0f) * 0.5f));
    assert_int_equal(k_fill_const(d, n, 1.0f, 0), 0);
    free(g); g = down_bf(d, (size_t)n);
    for (int64_t i = 0; i < n; i++) assert_true(g[i] == 1.0f);
    free(g); cudaFree(d);
}

static void test_embedding_gather_bias(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int V = 1000, D = 256, T = 37;
    float *tab = rnd((size_t)V * D, 1);
    int32_t ids[37];
    for (int t = 0; t < T; t++) ids[t] = irand(V);
    ids[3] = -1; ids[7] = V;                                   /* out of range -> zeros */
    k_bf16 *dt = up_bf(tab, (size_t)V * D), *dout = poisoned((size_t)T * D * 2);
    int32_t *dids = up(ids, sizeof ids);
    assert_int_equal(k_embedding(dout, dt, dids, T, D, V, 0), 0);
    float *want = malloc(sizeof(float) * T * D);
    kref_embedding(want, tab, ids, T, D, V);
    float *got = down_bf(dout, (size_t)T * D);
    assert_true(rel_l2(got, want, (size_t)T * D) == 0.0);
    /* gather rows 5, 0, 36 */
    int32_t rows[3] = {5, 0, 36};
    int32_t *drows = up(rows, sizeof rows);
    k_bf16 *dg = poisoned(3 * D * 2);
    assert_int_equal(k_gather_rows(dg, dout, drows, 3, D, 0), 0);
    float *gg = down_bf(dg, 3 * (size_t)D);
    for (int r = 0; r < 3; r++) assert_memory_equal(gg + r * D, want + rows[r] * D, D * sizeof(float));
    /* bias */
    float *bias = rnd((size_t)D, 1);
    k_bf16 *db = up_bf(bias, D);
    assert_int_equal(k_add_bias(dout, db, T, D, 0), 0);
    free(got); got = down_bf(dout, (size_t)T * D);
    kref_add_bias(want, bias, T, D);
    CHECK_CLOSE(got, want, (size_t)T * D, 1e-2, "add_bias");
    free(tab); free(want); free(got); free(gg); free(bias);
    cudaFree(dt); cudaFree(dout); cudaFree(dids); cudaFree(drows); cudaFree(dg); cudaFree(db);
}

static void test_rmsnorm(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int T = 17, D = 896;
    for (int with_res = 0; with_res < 2; with_res++) {
        float *x = rnd((size_t)T * D, 2), *res = rnd((size_t)T * D, 2), *w = rnd(D, 1);
        k_bf16 *dx = up_bf(x, (size_t)T * D), *dr = up_bf(res, (size_t)T * D), *dw = up_bf(w, D);
        assert_int_equal(k_add_rmsnorm(dx, with_res ? dr : NULL, dw, T, D, 1e-6f, 0), 0);
        kref_add_rmsnorm(x, with_res ? res : NULL, w, T, D, 1e-6f);
        float *gx = down_bf(dx, (size_t)T * D), *gr = down_bf(dr, (size_t)T * D);
        CHECK_CLOSE(gx, x, (size_t)T * D, 1e-2, with_res ? "add_rmsnorm x" : "rmsnorm x");
        if (with_res) CHECK_CLOSE(gr, res, (size_t)T * D, 1e-2, "add_rmsnorm residual");
        free(x); free(res); free(w); free(gx); free(gr); cudaFree(dx); cudaFree(dr); cudaFree(dw);
    }
    /* per-head norm on the q and k heads of a qkv row */
    int nh = 6, hd = 128, stride = 10 * hd;
    float *q = rnd((size_t)T * stride, 3), *w = rnd(hd, 1);
    k_bf16 *dq = up_bf(q, (size_t)T * stride), *dw = up_bf(w, hd);
    assert_int_equal(k_head_rmsnorm(dq, T, nh, hd, stride, dw, 1e-6f, 0), 0);
    kref_head_rmsnorm(q, T, nh, hd, stride, w, 1e-6f);
    float *g = down_bf(dq, (size_t)T * stride);
    CHECK_CLOSE(g, q, (size_t)T * stride, 1e-2, "head_rmsnorm");
    free(q); free(w); free(g); cudaFree(dq); cudaFree(dw);
}

static void test_rope(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int T = 13, nq = 8, nkv = 2, hd = 128, stride = (nq + 2 * nkv) * hd;
    for (int kind = 0; kind <= 3; kind += 3) {
        float inv[64];
        kref_rope_inv_freq(inv, hd, kind ? 500000.0 : 1000000.0, kind, 8.0, 1.0, 4.0, 8192);
        int32_t pos[13];
        for (int t = 0; t < T; t++) pos[t] = irand(t < 6 ? 64 : 9000);
        float *x = rnd((size_t)T * stride, 2);
        k_bf16 *dx = up_bf(x, (size_t)T * stride);
        int32_t *dpos = up(pos, sizeof pos);
        float *dinv = up(inv, sizeof inv);
        assert_int_equal(k_rope(dx, dpos, dinv, T, nq, nkv, hd, stride, 0), 0);
        float *v_before = malloc(sizeof(float) * T * stride);
        memcpy(v_before, x, sizeof(float) * T * stride);
        kref_rope(x, pos, inv, T, nq, nkv, hd, stride);
        float *g = down_bf(dx, (size_t)T * stride);
        CHECK_CLOSE(g, x, (size_t)T * stride, 1e-2, kind ? "rope llama3" : "rope");
        for (int t = 0; t < T; t++)                           /* v heads untouched */
            assert_memory_equal(g + t * stride + (nq + nkv) * hd, v_before + t * stride + (nq + nkv) * hd,
                                sizeof(float) * nkv * hd);
        free(x); free(g); free(v_before); cudaFree(dx); cudaFree(dpos); cudaFree(dinv);
    }
}

static void test_silu_mul(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int T = 11, I = 1000;
    float *gu = rnd((size_t)T * 2 * I, 4), *want = malloc(sizeof(float) * T * I);
    k_bf16 *dgu = up_bf(gu, (size_t)T * 2 * I), *dout = poisoned((size_t)T * I * 2);
    assert_int_equal(k_silu_mul(dout, dgu, T, I, 0), 0);
    kref_silu_mul(want, gu, T, I);
    float *g = down_bf(dout, (size_t)T * I);
    CHECK_CLOSE(g, want, (size_t)T * I, 1e-2, "silu_mul");
    free(gu); free(want); free(g); cudaFree(dgu); cudaFree(dout);
}

/* ---- the 16-byte kernels against the scalar ones (k_elementwise_impl) -------
 * The same input through the default kernels and through the first, scalar
 * ones: SwiGLU, RoPE and bias must be bit-identical, RMSNorm's residual too
 * and its output equal but for inv's last bit (its sum of squares is added in
 * another order); the default's output is also checked against the
 * reference.  Widths: the real ones (Qwen2.5-7B: D 3584, I 18944, qkv 4608,
 * head_dim 128) and others a multiple of 8, which take the vector path, and
 * odd, too large or unaligned ones, which take the scalar path. */
static size_t n_differ(const float *a, const float *b, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return k;
}
/* x (n,) uploaded `off` elements past the start of an allocation (off 1: not
 * 16-byte aligned); x NULL: poisoned.  *base is what to cudaFree. */
static k_bf16 *up_bf_off(const float *x, size_t n, int off, void **base) {
    float *h = calloc(n + (size_t)off, sizeof(float));
    if (x) memcpy(h + off, x, n * sizeof(float));
    else for (size_t i = 0; i < n; i++) h[off + i] = NAN;
    k_bf16 *d = up_bf(h, n + (size_t)off);
    free(h);
    *base = d;
    return d + off;
}
/* a launcher call under k_elementwise_impl(impl), the choice restored after */
#define WITH_IMPL(impl, call) do { int o_ = k_elementwise_impl(impl); assert_int_equal((call), 0); \
    k_elementwise_impl(o_); } while (0)

static void silu_case(int T, int I, int off) {
    size_t n = (size_t)T * I;
    float *gu = rnd(2 * n, 4), *want = malloc(sizeof(float) * n);
    void *bgu, *b0, *b1;
    k_bf16 *dgu = up_bf_off(gu, 2 * n, off, &bgu);
    k_bf16 *o0 = up_bf_off(NULL, n, off, &b0), *o1 = up_bf_off(NULL, n, off, &b1);
    WITH_IMPL(K_ELEM_VECTOR, k_silu_mul(o0, dgu, T, I, 0));
    WITH_IMPL(K_ELEM_SCALAR, k_silu_mul(o1, dgu, T, I, 0));
    float *g0 = down_bf(o0, n), *g1 = down_bf(o1, n);
    kref_silu_mul(want, gu, T, I);
    char name[64];
    snprintf(name, sizeof name, "silu_mul %dx%d%s", T, I, off ? " unaligned" : "");
    CHECK_CLOSE(g0, want, n, 1e-2, name);
    assert_int_equal(n_differ(g0, g1, n), 0);
    free(gu); free(want); free(g0); free(g1); cudaFree(bgu); cudaFree(b0); cudaFree(b1);
}

static void test_silu_mul_paths(void **st) {
    (void)st; TU_REQUIRE_GPU();
    silu_case(9, 18944, 0);             /* Qwen2.5-7B */
    silu_case(5, 4864, 0);
    silu_case(3, 14336, 0);
    silu_case(4, 8, 0);                 /* one vector per row */
    silu_case(70000, 8, 0);             /* more rows than the grid's 65535 */
    silu_case(7, 1001, 0);              /* odd: scalar */
    silu_case(70000, 3, 0);
    silu_case(6, 4864, 1);              /* unaligned: scalar */
}

static void rmsnorm_case(int T, int D, int with_res) {
    size_t n = (size_t)T * D;
    float *x = rnd(n, 2), *res = rnd(n, 2), *w = rnd(D, 1), *gx[2], *gr[2];
    k_bf16 *dw = up_bf(w, D);
    for (int impl = K_ELEM_VECTOR; impl <= K_ELEM_SCALAR; impl++) {
        k_bf16 *dx = up_bf(x, n), *dr = up_bf(res, n);
        WITH_IMPL(impl, k_add_rmsnorm(dx, with_res ? dr : NULL, dw, T, D, 1e-6f, 0));
        gx[impl] = down_bf(dx, n);
        gr[impl] = down_bf(dr, n);
        cudaFree(dx); cudaFree(dr);
    }
    kref_add_rmsnorm(x, with_res ? res : NULL, w, T, D, 1e-6f);
    char name[64];
    snprintf(name, sizeof name, "%s %dx%d", with_res ? "add_rmsnorm" : "rmsnorm", T, D);
    CHECK_CLOSE(gx[0], x, n, 1e-2, name);
    if (with_res) CHECK_CLOSE(gr[0], res, n, 1e-2, "  its residual");
    assert_int_equal(n_differ(gr[0], gr[1], n), 0);
    size_t nd = 0;                      /* x: one bf16 step at most, and rarely */
    for (size_t i = 0; i < n; i++) {
        if (!memcmp(&gx[0][i], &gx[1][i], sizeof(float))) continue;
        nd++;
        assert_true(fabsf(gx[0][i] - gx[1][i]) <= 0.03f * fabsf(gx[1][i]));
    }
    if (nd) fprintf(stderr, "  %-28s %zu of %zu values one rounding step from the scalar kernel's\n", name, nd, n);
    assert_true(nd <= n / 1000 + 2);
    free(x); free(res); free(w); free(gx[0]); free(gx[1]); free(gr[0]); free(gr[1]); cudaFree(dw);
}

static void test_rmsnorm_paths(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int Ds[] = {3584, 896, 576, 1024, 4096, 1000, 8, 32768,     /* vector (1, 2, 4 per thread) */
                999, 3, 32776};                                 /* scalar: odd, too wide */
    for (size_t i = 0; i < sizeof Ds / sizeof Ds[0]; i++)
        for (int r = 0; r < 2; r++) rmsnorm_case(Ds[i] > 8192 ? 3 : 33, Ds[i], r);
}

static void rope_case(int T, int nq, int nkv, int hd, int stride, int maxpos) {
    size_t n = (size_t)T * stride;
    float *inv = malloc(sizeof(float) * (size_t)(hd / 2));
    kref_rope_inv_freq(inv, hd, 1000000.0, 0, 1.0, 1.0, 1.0, 0);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)T);
    for (int t = 0; t < T; t++) pos[t] = irand(maxpos);
    float *x = rnd(n, 2), *g[2];
    int32_t *dpos = up(pos, sizeof(int32_t) * (size_t)T);
    float *dinv = up(inv, sizeof(float) * (size_t)(hd / 2));
    for (int impl = K_ELEM_VECTOR; impl <= K_ELEM_SCALAR; impl++) {
        k_bf16 *dx = up_bf(x, n);
        WITH_IMPL(impl, k_rope(dx, dpos, dinv, T, nq, nkv, hd, stride, 0));
        g[impl] = down_bf(dx, n);
        cudaFree(dx);
    }
    float *want = malloc(sizeof(float) * n);
    memcpy(want, x, sizeof(float) * n);
    kref_rope(want, pos, inv, T, nq, nkv, hd, stride);
    char name[64];
    snprintf(name, sizeof name, "rope %d+%dx%d stride %d", nq, nkv, hd, stride);
    CHECK_CLOSE(g[0], want, n, 1e-2, name);
    assert_int_equal(n_differ(g[0], g[1], n), 0);
    size_t rot = (size_t)(nq + nkv) * hd;                 /* v heads and padding untouched */
    for (int t = 0; t < T; t++)
        assert_memory_equal(g[0] + (size_t)t * stride + rot, x + (size_t)t * stride + rot,
                            sizeof(float) * (stride - rot));
    free(inv); free(pos); free(x); free(g[0]); free(g[1]); free(want); cudaFree(dpos); cudaFree(dinv);
}

static void test_rope_paths(void **st) {
    (void)st; TU_REQUIRE_GPU();
    rope_case(37, 28, 4, 128, 36 * 128, 32768);         /* Qwen2.5-7B */
    rope_case(21, 14, 2, 64, 18 * 64, 4096);            /* Qwen2.5-0.5B */
    rope_case(9, 8, 2, 256, 12 * 256, 9000);
    rope_case(5, 5, 1, 80, 7 * 80, 100);                /* half 40: vector */
    rope_case(7, 4, 2, 72, 8 * 72, 100);                /* half 36: shared cos/sin, scalar */
    rope_case(11, 28, 4, 128, 36 * 128 + 3, 32768);     /* odd stride: scalar */
    rope_case(4, 3, 1, 6, 5 * 6, 50);
    rope_case(2, 1, 0, 8192, 8192, 100);                /* head_dim > 4096: the first kernel */
}

static void bias_case(int T, int N, int off) {
    size_t n = (size_t)T * N;
    float *y = rnd(n, 2), *b = rnd(N, 1), *g[2];
    k_bf16 *db = up_bf(b, N);
    for (int impl = K_ELEM_VECTOR; impl <= K_ELEM_SCALAR; impl++) {
        void *base;
        k_bf16 *dy = up_bf_off(y, n, off, &base);
        WITH_IMPL(impl, k_add_bias(dy, db, T, N, 0));
        g[impl] = down_bf(dy, n);
        cudaFree(base);
    }
    kref_add_bias(y, b, T, N);
    for (size_t i = 0; i < n; i++) y[i] = kref_round_bf(y[i]);   /* one rounding: exact */
    char name[64];
    snprintf(name, sizeof name, "add_bias %dx%d%s", T, N, off ? " unaligned" : "");
    CHECK_CLOSE(g[0], y, n, 1e-2, name);
    assert_int_equal(n_differ(g[0], y, n), 0);
    assert_int_equal(n_differ(g[1], y, n), 0);
    free(y); free(b); free(g[0]); free(g[1]); cudaFree(db);
}

static void test_bias_paths(void **st) {
    (void)st; TU_REQUIRE_GPU();
    bias_case(37, 4608, 0);             /* Qwen2.5-7B qkv */
    bias_case(5, 1152, 0);
    bias_case(70000, 8, 0);
    bias_case(9, 1001, 0);              /* odd: scalar */
    bias_case(6, 4608, 1);              /* unaligned: scalar */
}

/* k_qkv_prep (bias, q/k norms, RoPE, KV write in one kernel) against the
 * unfused kernels in model.c's former order, bit for bit in qkv and both
 * caches, and against kref_qkv_prep; slots of -1 among the tokens. */
typedef struct qp_dev { k_bf16 *x, *kc, *vc; } qp_dev;
static qp_dev qp_upload(const float *x, const float *kc, const float *vc, size_t n, size_t cn) {
    qp_dev d = {up_bf(x, n), up_bf(kc, cn), up_bf(vc, cn)};
    return d;
}
static void qp_free(qp_dev *d) { cudaFree(d->x); cudaFree(d->kc); cudaFree(d->vc); }
static void qp_same(const qp_dev *a, const qp_dev *b, size_t n, size_t cn, const char *what) {
    float *xa = down_bf(a->x, n), *xb = down_bf(b->x, n), *ka = down_bf(a->kc, cn), *kb = down_bf(b->kc, cn);
    float *va = down_bf(a->vc, cn), *vb = down_bf(b->vc, cn);
    size_t d = n_differ(xa, xb, n) + n_differ(ka, kb, cn) + n_differ(va, vb, cn);
    if (d) fprintf(stderr, "  %s: %zu values differ from the unfused kernels\n", what, d);
    assert_int_equal(d, 0);
    free(xa); free(xb); free(ka); free(kb); free(va); free(vb);
}
static void qkv_prep_case(int T, int nq, int nkv, int hd, int stride, int bias, int norm) {
    int QKV = (nq + 2 * nkv) * hd, nslots = 2 * T + 5;
    size_t n = (size_t)T * stride, cn = (size_t)nslots * nkv * hd;
    float *x = rnd(n, 2), *kc = rnd(cn, 1), *vc = rnd(cn, 1), *b = rnd((size_t)QKV, 0.5f);
    float *qn = rnd((size_t)hd, 1.5f), *kn = rnd((size_t)hd, 1.5f), *inv = malloc(sizeof(float) * (size_t)hd / 2);
    int32_t *pos = malloc(sizeof(int32_t) * T), *slots = malloc(sizeof(int32_t) * T);
    kref_rope_inv_freq(inv, hd, 1000000.0, 0, 1.0, 1.0, 1.0, 0);
    /* distinct slots (2 is invertible modulo the odd nslots): two tokens writing one slot
     * would leave whichever write lands last, an order the kernels need not share */
    for (int t = 0; t < T; t++) { pos[t] = irand(8192); slots[t] = t % 7 == 2 ? -1 : (t * 2 + 1) % nslots; }
    k_bf16 *db = up_bf(b, (size_t)QKV), *dqn = up_bf(qn, (size_t)hd), *dkn = up_bf(kn, (size_t)hd);
    int32_t *dpos = up(pos, sizeof(int32_t) * T), *dsl = up(slots, sizeof(int32_t) * T);
    float *dinv = up(inv, sizeof(float) * (size_t)hd / 2);
    qp_dev u = qp_upload(x, kc, vc, n, cn), f = qp_upload(x, kc, vc, n, cn), sc = qp_upload(x, kc, vc, n, cn);
    if (bias) assert_int_equal(k_add_bias(u.x, db, T, stride, 0), 0);
    if (norm) {
        assert_int_equal(k_head_rmsnorm(u.x, T, nq, hd, stride, dqn, 1e-6f, 0), 0);
        assert_int_equal(k_head_rmsnorm(u.x + (size_t)nq * hd, T, nkv, hd, stride, dkn, 1e-6f, 0), 0);
    }
    assert_int_equal(k_rope(u.x, dpos, dinv, T, nq, nkv, hd, stride, 0), 0);
    assert_int_equal(k_kv_write(u.kc, u.vc, u.x, dsl, T, nq, nkv, hd, stride, 0), 0);
    k_qkv_w w = {bias ? db : NULL, norm ? dqn : NULL, norm ? dkn : NULL, 1e-6f};
    assert_int_equal(k_qkv_prep(f.x, f.kc, f.vc, &w, dpos, dinv, dsl, T, nq, nkv, hd, stride, 0), 0);
    WITH_IMPL(K_ELEM_SCALAR, k_qkv_prep(sc.x, sc.kc, sc.vc, &w, dpos, dinv, dsl, T, nq, nkv, hd, stride, 0));
    char name[96];
    snprintf(name, sizeof name, "qkv_prep %dx(%d+%d)x%d s%d%s%s", T, nq, nkv, hd, stride, bias ? " bias" : "",
             norm ? " norm" : "");
    qp_same(&u, &f, n, cn, name);
    qp_same(&u, &sc, n, cn, "qkv_prep scalar");
    kref_qkv_prep(x, kc, vc, bias ? b : NULL, norm ? qn : NULL, norm ? kn : NULL, 1e-6f, pos, inv, slots, T, nq, nkv,
                  hd, stride);
    float *gx = down_bf(f.x, n), *gk = down_bf(f.kc, cn), *gv = down_bf(f.vc, cn);
    CHECK_CLOSE(gx, x, n, 1e-2, name);
    CHECK_CLOSE(gk, kc, cn, 1e-2, "qkv_prep k cache");
    CHECK_CLOSE(gv, vc, cn, 1e-2, "qkv_prep v cache");
    qp_free(&u); qp_free(&f); qp_free(&sc);
    cudaFree(db); cudaFree(dqn); cudaFree(dkn); cudaFree(dpos); cudaFree(dsl); cudaFree(dinv);
    free(x); free(kc); free(vc); free(b); free(qn); free(kn); free(inv); free(pos); free(slots);
    free(gx); free(gk); free(gv);
}

static void test_qkv_prep(void **st) {
    (void)st; TU_REQUIRE_GPU();
    for (int bias = 0; bias <= 1; bias++)
        for (int norm = 0; norm <= 1; norm++) {
            qkv_prep_case(37, 16, 8, 128, 32 * 128, bias, norm);     /* Qwen3-0.6B */
            qkv_prep_case(300, 28, 4, 128, 36 * 128, bias, norm);    /* Qwen2.5-7B, a prefill's worth */
            qkv_prep_case(11, 14, 2, 64, 18 * 64, bias, norm);       /* Qwen2.5-0.5B */
            qkv_prep_case(5, 8, 2, 256, 12 * 256, bias, norm);
        }
    qkv_prep_case(9, 5, 1, 80, 7 * 80, 1, 1);                       /* half 40 */
    qkv_prep_case(7, 4, 2, 72, 8 * 72, 1, 1);                       /* head_dim 72: the unfused kernels */
    qkv_prep_case(13, 16, 8, 128, 32 * 128 + 8, 0, 1);              /* wider rows */
    qkv_prep_case(6, 16, 8, 128, 32 * 128 + 3, 0, 1);               /* odd stride: the unfused kernels */
    qkv_prep_case(3, 64, 8, 128, 80 * 128, 1, 1);                   /* 20 KB of shared memory */
}

static void test_gemm(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int T = 33, N = 300, K = 256;
    cublasHandle_t h;
    assert_int_equal(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    float *x = rnd((size_t)T * K, 1), *w = rnd((size_t)N * K, 1), *want = malloc(sizeof(float) * T * N);
    kref_gemm(want, x, w, T, N, K);
    k_bf16 *dx = up_bf(x, (size_t)T * K), *dw = up_bf(w, (size_t)N * K);
    for (int f32 = 0; f32 < 2; f32++) {
        void *dy = poisoned((size_t)T * N * 4);
        assert_int_equal(k_gemm(h, dy, f32, dx, dw, T, N, K, 0), 0);
        float *g = f32 ? down(dy, (size_t)T * N * 4) : down_bf(dy, (size_t)T * N);
        CHECK_CLOSE(g, want, (size_t)T * N, f32 ? 1e-5 : 1e-2, f32 ? "gemm fp32 out" : "gemm bf16 out");
        free(g); cudaFree(dy);
    }
    free(x); free(w); free(want); cudaFree(dx); cudaFree(dw);
    /* long reductions (Qwen2.5-7B: K = 3584 and 18944), bf16 out, with and without
     * reduced-precision split-K reductions allowed */
    for (int mode = 0; mode < 2; mode++) {
        cublasSetMathMode(h, mode ? (CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)
                                  : CUBLAS_DEFAULT_MATH);
        int kk[2] = {3584, 18944};
        for (int i = 0; i < 2; i++) {
            int t = 64, n = 512, k = kk[i];
            float *xs = rnd((size_t)t * k, 1), *ws = rnd((size_t)n * k, 1), *wt = malloc(sizeof(float) * t * n);
            kref_gemm(wt, xs, ws, t, n, k);
            k_bf16 *dxs = up_bf(xs, (size_t)t * k), *dws = up_bf(ws, (size_t)n * k), *dy = poisoned((size_t)t * n * 2);
            assert_int_equal(k_gemm(h, dy, 0, dxs, dws, t, n, k, 0), 0);
            float *g = down_bf(dy, (size_t)t * n);
            char name[64];
            snprintf(name, sizeof name, "gemm K=%d %s", k, mode ? "fp32 reduce" : "default math");
            CHECK_CLOSE(g, wt, (size_t)t * n, 1e-2, name);
            free(xs); free(ws); free(wt); free(g); cudaFree(dxs); cudaFree(dws); cudaFree(dy);
        }
    }
    /* vocabulary-head shapes (Qwen3-0.6B: 151936 x 1024, 256 rows, fp32 out) */
    int shapes[3][3] = {{256, 151936, 1024}, {256, 151936, 896}, {32, 151936, 1024}};
    for (int i = 0; i < 3; i++) {
        int t = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        float *xs = rnd((size_t)t * k, 1), *ws = rnd((size_t)n * k, 1);
        k_bf16 *dxs = up_bf(xs, (size_t)t * k), *dws = up_bf(ws, (size_t)n * k);
        float *dy = poisoned((size_t)t * n * 4);
        int rc = k_gemm(h, dy, 1, dxs, dws, t, n, k, 0);
        fprintf(stderr, "  gemm T=%d N=%d K=%d fp32: rc %d %s\n", t, n, k, rc, k_last_error());
        assert_int_equal(rc, 0);
        float *g = down(dy, (size_t)t * n * 4);
        float want1 = 0;                      /* spot check y[t-1][n-1] */
        for (int j = 0; j < k; j++) want1 += xs[(size_t)(t - 1) * k + j] * ws[(size_t)(n - 1) * k + j];
        assert_true(fabsf(g[(size_t)t * n - 1] - want1) < 1e-2f * (1 + fabsf(want1)));
        free(xs); free(ws); free(g); cudaFree(dxs); cudaFree(dws); cudaFree(dy);
    }
    cublasDestroy(h);
}

/* One attention scenario: B sequences with the given query and context
 * lengths, blocks handed out in a shuffled order (so paging is exercised). */
static void attention_case(int nq, int nkv, int hd, int bs, int B, const int *qlen, const int *ctx,
                           const char *what, float amp) {
    int T = 0, max_blocks = 0, maxq = 0, maxc = 0;
    for (int b = 0; b < B; b++) {
        T += qlen[b];
        int nb = (ctx[b] + bs - 1) / bs;
        if (nb > max_blocks) max_blocks = nb;
        if (qlen[b] > maxq) maxq = qlen[b];
        if (ctx[b] > maxc) maxc = ctx[b];
    }
    int num_blocks = B * max_blocks + 3, stride = (nq + 2 * nkv) * hd;
    int32_t *perm = malloc(sizeof(int32_t) * num_blocks);
    for (int i = 0; i < num_blocks; i++) perm[i] = i;
    for (int i = num_blocks - 1; i > 0; i--) { int j = irand(i + 1), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
    int32_t *tables = calloc((size_t)B * max_blocks, sizeof(int32_t)), *qs = malloc(sizeof(int32_t) * (B + 1));
    int32_t *slots = malloc(sizeof(int32_t) * T);
    int used = 0;
    qs[0] = 0;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < (ctx[b] + bs - 1) / bs; i++) tables[b * max_blocks + i] = perm[used++];
        qs[b + 1] = qs[b] + qlen[b];
        for (int i = 0; i < qlen[b]; i++) {
            int j = ctx[b] - qlen[b] + i;
            slots[qs[b] + i] = tables[b * max_blocks + j / bs] * bs + j % bs;
        }
    }
    size_t cache_n = (size_t)num_blocks * bs * nkv * hd;
    /* amp scales q and k: 1 gives a flat softmax, 3 a sharp one (score std ~5) */
    float *kc = rnd(cache_n, amp), *vc = rnd(cache_n, 1), *qkv = rnd((size_t)T * stride, amp);
    /* stale slots past each context in its last block hold NaN: a kernel that
     * reads them (a tile of 16 over a partial block) must not let them in */
    for (int b = 0; b < B; b++)
        for (int j = ctx[b]; j % bs; j++) {
            size_t slot = (size_t)tables[b * max_blocks + j / bs] * bs + j % bs;
            for (int i = 0; i < nkv * hd; i++) kc[slot * nkv * hd + i] = vc[slot * nkv * hd + i] = NAN;
        }
    k_bf16 *dkc = up_bf(kc, cache_n), *dvc = up_bf(vc, cache_n), *dqkv = up_bf(qkv, (size_t)T * stride);
    k_bf16 *dout = poisoned((size_t)T * nq * hd * 2);
    int32_t *dtab = up(tables, sizeof(int32_t) * B * max_blocks), *dqs = up(qs, sizeof(int32_t) * (B + 1));
    int32_t *dctx = up(ctx, sizeof(int32_t) * B), *dslots = up(slots, sizeof(int32_t) * T);
    size_t wsb = k_attention_workspace_bytes(B, nq, hd, maxc);
    float *ws = poisoned(wsb);                                  /* NaN: partitions are written before read */
    assert_int_equal(k_attention_workspace_init(ws, wsb, B, nq, 0), 0);   /* the counts at its end: 0 */
    k_attn_batch kb = {B, T, dqs, dctx, dtab, max_blocks, bs, maxq, maxc};
    float scale = 1.0f / sqrtf((float)hd);
    assert_int_equal(k_kv_write(dkc, dvc, dqkv, dslots, T, nq, nkv, hd, stride, 0), 0);
    assert_int_equal(k_attention(dout, dqkv, stride, dkc, dvc, &kb, nq, nkv, hd, scale, ws, wsb, 0), 0);
    kref_kv_write(kc, vc, qkv, slots, T, nq, nkv, hd, stride);
    float *want = malloc(sizeof(float) * T * nq * hd);
    kref_attention(want, qkv, stride, kc, vc, B, qs, ctx, tables, max_blocks, bs, nq, nkv, hd, scale);
    float *gk = down_bf(dkc, cache_n), *got = down_bf(dout, (size_t)T * nq * hd);
    assert_memory_equal(gk, kc, cache_n * sizeof(float));       /* kv_write is exact */
    char name[96];
    snprintf(name, sizeof name, "attention %s", what);
    CHECK_CLOSE(got, want, (size_t)T * nq * hd, 1e-2, name);
    /* again on the same workspace: the partition counts were left at 0, and the
     * merge (whichever block comes last) gives the same bits */
    assert_int_equal(cudaMemset(dout, 0xff, (size_t)T * nq * hd * 2), cudaSuccess);
    assert_int_equal(k_attention(dout, dqkv, stride, dkc, dvc, &kb, nq, nkv, hd, scale, ws, wsb, 0), 0);
    float *again = down_bf(dout, (size_t)T * nq * hd);
    assert_int_equal(n_differ(again, got, (size_t)T * nq * hd), 0);
    free(again);
    free(perm); free(tables); free(qs); free(slots); free(kc); free(vc); free(qkv); free(want);
    free(gk); free(got);
    cudaFree(dkc); cudaFree(dvc); cudaFree(dqkv); cudaFree(dout); cudaFree(dtab); cudaFree(dqs);
    cudaFree(dctx); cudaFree(dslots); cudaFree(ws);
}

/* every case with each technique: the default, decode_simt + prefill_wmma, the mma pair */
static void attention_cases(const char *impl) {
    char n[96];
#define CASE(nq, nkv, hd, bs, B, q, c, what, amp) do { snprintf(n, sizeof n, "%s %s", impl, what); \
        attention_case(nq, nkv, hd, bs, B, q, c, n, amp); } while (0)
    /* mixed batch: decode (q=1) short and long (several partitions), a fresh
     * prefill, a chunked prefill continuing a cached prefix (prefix-cache hit) */
    int q1[5] = {1, 1, 45, 20, 1}, c1[5] = {7, 1300, 45, 150, 513};
    CASE(14, 2, 64, 16, 5, q1, c1, "hd64 G7 mixed", 1);
    CASE(32, 8, 128, 16, 5, q1, c1, "hd128 G4 mixed", 1);
    CASE(28, 4, 128, 16, 5, q1, c1, "hd128 G7 mixed (7B)", 1);
    CASE(28, 4, 128, 16, 5, q1, c1, "hd128 G7 sharp softmax", 3);
    CASE(16, 8, 128, 16, 5, q1, c1, "hd128 G2 mixed (Qwen3-0.6B)", 1);
    int q2[3] = {70, 1, 33}, c2[3] = {70, 2100, 600};
    CASE(16, 1, 256, 32, 3, q2, c2, "hd256 G16", 1);
    CASE(16, 1, 128, 32, 3, q2, c2, "hd128 G16 block 32", 1);
    CASE(12, 1, 64, 48, 3, q2, c2, "hd64 G12 block 48", 3);
    CASE(16, 8, 128, 64, 5, q1, c1, "hd128 G2 block 64 (Qwen3-0.6B)", 1);
    CASE(16, 8, 128, 32, 3, q2, c2, "hd128 G2 block 32 (Qwen3-0.6B)", 1);
    int q3[4] = {1, 1, 1, 1}, c3[4] = {1, 4096, 17, 1025};
    CASE(8, 8, 128, 16, 4, q3, c3, "hd128 MHA decode", 1);
    CASE(8, 8, 128, 16, 4, q3, c3, "hd128 MHA decode sharp", 3);
    /* long prefills: several query tiles and key tiles, a chunk of 130 after
     * 170 cached tokens, a prompt of 200, one of 65 (a tile and one row) */
    int q4[4] = {200, 130, 1, 65}, c4[4] = {200, 300, 700, 65};
    CASE(28, 4, 128, 16, 4, q4, c4, "hd128 G7 long prefill", 1);
    CASE(28, 4, 128, 16, 4, q4, c4, "hd128 G7 long prefill sharp", 3);
    CASE(14, 2, 64, 16, 4, q4, c4, "hd64 G7 long prefill", 1);
#undef CASE
}

static void test_attention(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int old = k_attention_impl(K_ATTN_DEFAULT);
    attention_cases("default");
    k_attention_impl(K_ATTN_SIMT);
    attention_cases("simt/wmma");
    k_attention_impl(K_ATTN_MMA);
    attention_cases("mma");
    k_attention_impl(K_ATTN_MMA_HEADS);
    attention_cases("mma, heads first");
    int part = k_attention_partition(256);     /* contexts over 256 keys: several partitions and the reduce */
    attention_cases("mma, heads first, 256-key partitions");
    k_attention_impl(K_ATTN_MMA);
    attention_cases("mma, 256-key partitions");
    k_attention_partition(part);
    k_attention_impl(old);
}

static void test_sample_logprobs(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int R = 64, V = 5003;
    float *lg = malloc(sizeof(float) * R * V);
    for (int i = 0; i < R * V; i++) lg[i] = frand() * 8;
    k_sample_params *p = calloc(R, sizeof *p);
    for (int r = 0; r < R; r++) {
        int kind = r % 5;
        p[r].temperature = kind == 0 ? 0.0f : 0.6f + 0.1f * (r % 4);
        p[r].top_k = kind == 2 || kind == 4 ? 1 + irand(50) : 0;
        p[r].top_p = kind == 3 || kind == 4 ? 0.5f + 0.1f * (r % 4) : 1.0f;
        p[r].seed = 1000 + r / 2;                 /* pairs of rows share a seed */
        p[r].step = r % 3;
    }
    float *dl = up(lg, sizeof(float) * R * V);
    k_sample_params *dp = up(p, sizeof *p * R);
    int32_t *dt = poisoned(sizeof(int32_t) * R);
    assert_int_equal(k_sample(dt, dl, dp, R, V, 0), 0);
    int32_t *tok = down(dt, sizeof(int32_t) * R);
    int agree = 0, greedy_ok = 1;
    for (int r = 0; r < R; r++) {
        int want = kref_sample_row(lg + (size_t)r * V, V, p[r].temperature, p[r].top_k, p[r].top_p,
                                   p[r].seed, p[r].step);
        assert_true(tok[r] >= 0 && tok[r] < V);
        agree += tok[r] == want;
        if (p[r].temperature == 0 && tok[r] != want) greedy_ok = 0;
    }
    fprintf(stderr, "  sample: %d/%d rows equal the reference\n", agree, R);
    assert_true(greedy_ok);
    assert_int_equal(agree, R);                        /* exact: see engine/sampling.cu */
    /* the same row alone gives the same token (no dependence on the batch) */
    int32_t *dt1 = poisoned(sizeof(int32_t));
    assert_int_equal(k_sample(dt1, dl + (size_t)9 * V, dp + 9, 1, V, 0), 0);
    int32_t *t1 = down(dt1, sizeof(int32_t));
    assert_int_equal(t1[0], tok[9]);
    /* log-probabilities of the sampled tokens */
    float *dlp = poisoned(sizeof(float) * R);
    tok[5] = -3;                                       /* out of range -> -inf */
    int32_t *dids = up(tok, sizeof(int32_t) * R);
    assert_int_equal(k_logprobs(dlp, dl, dids, R, V, 0), 0);
    float *lp = down(dlp, sizeof(float) * R);
    for (int r = 0; r < R; r++) {
        float w = kref_logprob(lg + (size_t)r * V, V, tok[r]);
        if (r == 5) assert_true(isinf(lp[r]) && lp[r] < 0);
        else assert_true(fabsf(lp[r] - w) < 1e-3f * (1 + fabsf(w)));
    }
    free(lg); free(p); free(tok); free(t1); free(lp);
    cudaFree(dl); cudaFree(dp); cudaFree(dt); cudaFree(dt1); cudaFree(dlp); cudaFree(dids);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill),
        cmocka_unit_test(test_embedding_gather_bias),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_silu_mul),
        cmocka_unit_test(test_silu_mul_paths),
        cmocka_unit_test(test_rmsnorm_paths),
        cmocka_unit_test(test_rope_paths),
        cmocka_unit_test(test_bias_paths),
        cmocka_unit_test(test_qkv_prep),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_sample_logprobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
