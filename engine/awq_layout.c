/* awq_layout: the CPU side of engine/awq.h: which shapes the kernels take,
 * the bytes of a linear, AutoAWQ's packing read back, and the repacking into
 * the engine's tile layout (engine/awq_tile.h) that the loader does on the
 * host before copying to the GPU.  Pure; host memory only. */
#include "engine/awq.h"
#include "engine/awq_tile.h"
#include "base/errbuf.h"
#include <string.h>

/* AutoAWQ's nibble of column n % 8: the inverse of its order {0, 2, 4, 6, 1, 3, 5, 7} */
static const int awq_order_inv[8] = {0, 4, 1, 5, 2, 6, 3, 7};

int awq_check_shape(int K, int N, int G, char *err, size_t errlen) {
    if (G != 64 && G != 128)
        return errbuf_fail(err, errlen, "AWQ group size %d is not supported (64 or 128)", G);
    if (K <= 0 || N <= 0 || K % AWQ_TILE_K || K % G || N % AWQ_TILE_N)
        return errbuf_fail(err, errlen, "AWQ linear of %d inputs and %d outputs: the kernels need inputs a "
                           "multiple of %d and of the group size %d, outputs a multiple of %d", K, N, AWQ_TILE_K,
                           G, AWQ_TILE_N);
    return 0;
}

size_t awq_qw_bytes(int K, int N) { return (size_t)K * N / 2; }
size_t awq_scales_bytes(int K, int N, int G) { return (size_t)(K / G) * N * 2; }
size_t awq_zeros_bytes(int K, int N, int G) { return (size_t)(K / G) * N / 2; }

static int nib(uint32_t w, int i) { return (int)((w >> (4 * i)) & 15u); }

int awq_ckpt_q(const int32_t *qweight, int N, int k, int n) {
    return nib((uint32_t)qweight[(size_t)k * (N / 8) + n / 8], awq_order_inv[n % 8]);
}

int awq_ckpt_z(const int32_t *qzeros, int N, int G, int k, int n) {
    return nib((uint32_t)qzeros[(size_t)(k / G) * (N / 8) + n / 8], awq_order_inv[n % 8]);
}

void awq_repack_qw(uint32_t *qw, const int32_t *qweight, int K, int N) {
    size_t words = awq_qw_bytes(K, N) / 4;
    for (size_t i = 0; i < words; i++) {
        uint32_t w = 0;
        for (int b = 0; b < 8; b++) {
            int n, k;
            awq_tile_coords(K, i, b, &n, &k);
            w |= (uint32_t)awq_ckpt_q(qweight, N, k, n) << (4 * b);
        }
        qw[i] = w;
    }
}

void awq_repack_groups(uint16_t *scales, uint32_t *zeros, const int32_t *qzeros, const uint16_t *ck_scales,
                       int K, int N, int G) {
    memset(zeros, 0, awq_zeros_bytes(K, N, G));
    int sh;
    for (int k = 0; k < K; k += G)
        for (int n = 0; n < N; n++) {
            scales[awq_scale_index(K, G, n, k)] = ck_scales[(size_t)(k / G) * N + n];
            size_t i = awq_zero_word(K, G, n, k, &sh);
            zeros[i] |= (uint32_t)awq_ckpt_z(qzeros, N, G, k, n) << sh;
        }
}

void awq_repack(uint32_t *qw, uint16_t *scales, uint32_t *zeros, const int32_t *qweight,
                const int32_t *qzeros, const uint16_t *ck_scales, int K, int N, int G) {
    awq_repack_qw(qw, qweight, K, N);
    awq_repack_groups(scales, zeros, qzeros, ck_scales, K, N, G);
}

int awq_tile_q(const uint32_t *qw, int K, int k, int n) {
    int sh;
    size_t i = awq_tile_word(K, n, k, &sh);
    return (int)((qw[i] >> sh) & 15u);
}

int awq_tile_z(const uint32_t *zeros, int K, int G, int k, int n) {
    int sh;
    size_t i = awq_zero_word(K, G, n, k, &sh);
    return (int)((zeros[i] >> sh) & 15u);
}

uint16_t awq_tile_s(const uint16_t *scales, int K, int G, int k, int n) {
    return scales[awq_scale_index(K, G, n, k)];
}

float awq_h2f(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = (float)m * (1.0f / 16777216.0f);                  /* subnormal: m 2^-24 */
    else if (e == 31) v = m ? __builtin_nanf("") : __builtin_inff();
    else {
        uint32_t u = (uint32_t)(e - 15 + 127) << 23 | (uint32_t)m << 13;
        memcpy(&v, &u, 4);
    }
    return sign ? -v : v;
}
