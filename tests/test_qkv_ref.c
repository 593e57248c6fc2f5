/* The fused q/k/v step's reference (kref_qkv_prep, engine/kernels_ref.c)
 * against the unfused references in model.c's former order (kref_add_bias,
 * kref_head_rmsnorm on q then k, kref_rope, kref_kv_write), on the CPU: qkv
 * and both caches equal bit for bit, with and without bias and norms, slots
 * of -1 (no write) among them, rows wider than the heads (no bias).  The GPU
 * kernel against both is tests/gpu/test_kernels.c's qkv_prep case. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>
#include "engine/kernels_ref.h"

static float *rnd(size_t n, unsigned seed, float scale) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = (2.0f * kref_uniform(seed, 1, i) - 1.0f) * scale;
    return p;
}

/* one shape: T tokens, nq/nkv heads of hd, rows of stride; bias and norms on or off */
static void qkv_case(int T, int nq, int nkv, int hd, int stride, int bias, int norm) {
    int QKV = (nq + 2 * nkv) * hd, nslots = 2 * T + 3;
    size_t n = (size_t)T * stride, cn = (size_t)nslots * nkv * hd;
    float *a = rnd(n, 1, 2.0f), *b = malloc(sizeof(float) * n);
    float *bs = rnd((size_t)QKV, 2, 0.5f), *qn = rnd((size_t)hd, 3, 1.5f), *kn = rnd((size_t)hd, 4, 1.5f);
    float *kc_a = rnd(cn, 5, 1.0f), *vc_a = rnd(cn, 6, 1.0f), *kc_b = malloc(sizeof(float) * cn);
    float *vc_b = malloc(sizeof(float) * cn), inv[256];
    int32_t *pos = malloc(sizeof(int32_t) * T), *slots = malloc(sizeof(int32_t) * T);
    memcpy(b, a, sizeof(float) * n);
    memcpy(kc_b, kc_a, sizeof(float) * cn);
    memcpy(vc_b, vc_a, sizeof(float) * cn);
    kref_rope_inv_freq(inv, hd, 1000000.0, 0, 1.0, 1.0, 1.0, 0);
    for (int t = 0; t < T; t++) {
        pos[t] = (t * 37) % 3000;
        slots[t] = t % 5 == 3 ? -1 : (t * 7) % nslots;      /* distinct for T < nslots: 7 is coprime */
    }
    /* the unfused references */
    if (bias) kref_add_bias(a, bs, T, stride);
    if (norm) {
        kref_head_rmsnorm(a, T, nq, hd, stride, qn, 1e-6f);
        kref_head_rmsnorm(a + (size_t)nq * hd, T, nkv, hd, stride, kn, 1e-6f);
    }
    kref_rope(a, pos, inv, T, nq, nkv, hd, stride);
    kref_kv_write(kc_a, vc_a, a, slots, T, nq, nkv, hd, stride);
    /* the fused one */
    kref_qkv_prep(b, kc_b, vc_b, bias ? bs : NULL, norm ? qn : NULL, norm ? kn : NULL, 1e-6f, pos, inv, slots, T, nq,
                  nkv, hd, stride);
    assert_memory_equal(a, b, sizeof(float) * n);
    assert_memory_equal(kc_a, kc_b, sizeof(float) * cn);
    assert_memory_equal(vc_a, vc_b, sizeof(float) * cn);
    /* and it did something: token 1's q head (position 37) rotated */
    float *x = rnd(n, 1, 2.0f);
    assert_true(T < 2 || memcmp(x + stride, b + stride, sizeof(float) * hd) != 0);
    free(x);
    free(a); free(b); free(bs); free(qn); free(kn); free(kc_a); free(vc_a); free(kc_b); free(vc_b);
    free(pos); free(slots);
}

static void test_qkv_prep_ref(void **st) {
    (void)st;
    for (int bias = 0; bias <= 1; bias++)
        for (int norm = 0; norm <= 1; norm++) {
            qkv_case(13, 16, 8, 128, (16 + 16) * 128, bias, norm);     /* Qwen3-0.6B's heads */
            qkv_case(9, 28, 4, 128, (28 + 8) * 128, bias, norm);       /* Qwen2.5-7B's */
            qkv_case(5, 4, 4, 64, (4 + 8) * 64, bias, norm);
            qkv_case(4, 2, 1, 256, (2 + 2) * 256, bias, norm);
        }
    qkv_case(7, 8, 2, 64, (8 + 4) * 64 + 24, 0, 1);                   /* wider rows, no bias */
}

/* slot -1 writes nothing; every other token's k and v land in its slot */
static void test_qkv_prep_slots(void **st) {
    (void)st;
    int T = 3, nq = 2, nkv = 1, hd = 8, S = (nq + 2) * hd;
    float *x = rnd((size_t)T * S, 9, 1.0f), kc[4 * 8], vc[4 * 8], inv[4];
    for (int i = 0; i < 32; i++) kc[i] = vc[i] = -7.0f;
    int32_t pos[3] = {0, 0, 0}, slots[3] = {2, -1, 0};
    kref_rope_inv_freq(inv, hd, 10000.0, 0, 1, 1, 1, 0);
    float *x0 = malloc(sizeof(float) * T * S);
    memcpy(x0, x, sizeof(float) * T * S);
    kref_qkv_prep(x, kc, vc, NULL, NULL, NULL, 1e-6f, pos, inv, slots, T, nq, nkv, hd, S);
    assert_memory_equal(x, x0, sizeof(float) * T * S);                  /* position 0: no rotation */
    assert_memory_equal(kc + 2 * hd, x0 + nq * hd, sizeof(float) * hd);
    assert_memory_equal(vc + 2 * hd, x0 + (nq + 1) * hd, sizeof(float) * hd);
    assert_memory_equal(kc, x0 + 2 * S + nq * hd, sizeof(float) * hd);
    for (int i = 0; i < hd; i++) assert_true(kc[hd + i] == -7.0f && vc[3 * hd + i] == -7.0f);
    free(x); free(x0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qkv_prep_ref),
        cmocka_unit_test(test_qkv_prep_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
