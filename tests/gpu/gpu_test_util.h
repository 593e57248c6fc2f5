/* gpu_test_util: helpers of the GPU tests (tests/gpu/test_*.c): seeded
 * random inputs rounded to bf16, copies to and from the GPU, outputs poisoned
 * with NaN, and the relative L2 error that every comparison uses.  Static
 * functions in a header: each test binary is one translation unit. */
#ifndef TESTS_GPU_UTIL_H
#define TESTS_GPU_UTIL_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <cuda_runtime_api.h>
#include "engine/kernels.h"
#include "engine/kernels_ref.h"

static uint64_t rng_state = 0x1234567;
static float frand(void) {            /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static int irand(int n) { return (int)(((frand() + 1.0f) * 0.5f) * n) % n; }
/* random values already rounded to bf16 */
static float *rnd(size_t n, float scale) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = kref_round_bf(frand() * scale);
    return x;
}
static k_bf16 *up_bf(const float *x, size_t n) {
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = kref_f2bf(x[i]);
    void *d = NULL;
    assert_int_equal(cudaMalloc(&d, n * 2 + 2), cudaSuccess);
    assert_int_equal(cudaMemcpy(d, h, n * 2, cudaMemcpyHostToDevice), cudaSuccess);
    free(h);
    return d;
}
static void *up(const void *x, size_t bytes) {
    void *d = NULL;
    assert_int_equal(cudaMalloc(&d, bytes + 4), cudaSuccess);
    assert_int_equal(cudaMemcpy(d, x, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}
static void *poisoned(size_t bytes) {
    void *d = NULL;
    assert_int_equal(cudaMalloc(&d, bytes + 4), cudaSuccess);
    assert_int_equal(cudaMemset(d, 0xff, bytes), cudaSuccess);      /* NaN in bf16 and fp32 */
    return d;
}
static float *down_bf(const k_bf16 *d, size_t n) {
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    uint16_t *h = malloc(n * 2);
    float *x = malloc(n * sizeof(float));
    assert_int_equal(cudaMemcpy(h, d, n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < n; i++) x[i] = kref_bf2f(h[i]);
    free(h);
    return x;
}
static void *down(const void *d, size_t bytes) {
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    void *h = malloc(bytes);
    assert_int_equal(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
}
/* relative L2 error of got against want; +inf when got holds a NaN/inf */
static double rel_l2(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
#define CHECK_CLOSE(got, want, n, tol, what) do { double e_ = rel_l2(got, want, n); \
    fprintf(stderr, "  %-28s rel L2 %.3e\n", what, e_); assert_true(e_ < (tol)); } while (0)
#endif
