/* awq_tile: the engine's layout of 4-bit AWQ weights on the GPU, written
 * once, as index helpers that the kernels (engine/awq_kernels.cuh), the
 * repacking on load (engine/awq_layout.c) and the references
 * (engine/kernels_ref_awq.c) share.  Pure arithmetic; host and device.
 *
 * A quantized linear y (T, N) = x (T, K) @ W (K, N) holds, per weight, a
 * 4-bit q[k][n] and, per group of G input rows (G = 64 or 128) and column,
 * an fp16 scale s and a 4-bit zero z:  W[k][n] = (q[k][n] - z[k/G][n]) s[k/G][n].
 * AutoAWQ's checkpoints pack 8 columns per int32 along the output (see
 * awq.h); the engine repacks them on load, bytes for bytes, into tiles that
 * a warp reads as the A operand of mma.sync m16n8k16 (A = W^T: 16 output
 * columns x 16 inputs; engine/mma.cuh has the fragment layout):
 *
 *   qw     (N/16, K/64, 32, 4) uint32   tile (nt, kc): columns 16 nt .. 16 nt + 15, inputs
 *                                       64 kc .. 64 kc + 63; lane l = 4 gq + tq, word s (the
 *                                       mma's k-step) holds 8 nibbles:
 *            nibble j (j = 0..3) and j + 4: fragment register a_j's low and high bf16, i.e.
 *            column 16 nt + gq + 8 (j & 1), inputs k = 64 kc + 16 tq + 4 s + 2 (j >> 1) + {0, 1}
 *   scales (N/16, K/G, 16) fp16         tile nt, group gi: column 16 nt + r at r
 *   zeros  (N/16, K/G, 2) uint32        tile nt, group gi: column 16 nt + r at nibble r % 8 of
 *                                       word r / 8
 *
 * The mma's k order is permuted (the fragment's k 2tq, 2tq+1, 2tq+8, 2tq+9 of step s are the
 * inputs 16 tq + 4 s + 0..3): the same permutation on both operands leaves the product
 * unchanged, and makes a lane's activations 16 consecutive inputs (two 16-byte loads).
 * Sizes: K N / 2 + (K/G) N 2 + (K/G) N / 2 bytes = K N (0.5 + 2.5 / G), as the planner counts. */
#ifndef ENGINE_AWQ_TILE_H
#define ENGINE_AWQ_TILE_H
#include <stddef.h>
#include <stdint.h>
#ifdef __CUDACC__
#define AWQ_HD __host__ __device__ __forceinline__
#else
#define AWQ_HD static inline
#endif

#define AWQ_TILE_N 16            /* output columns of a tile (the mma's M) */
#define AWQ_TILE_K 64            /* inputs of a tile: 4 mma k-steps of 16 */

/* The nibble of a lane's word that holds register a_j's element (half 0: low
 * bf16, 1: high): j + 4 half.  For column row r (0..15) of the tile and input
 * e = k % 4 within the lane's 4 inputs of a step: j = 2 (e >> 1) + (r >> 3),
 * half = e & 1. */
AWQ_HD int awq_nibble(int r, int e) { return 2 * (e >> 1) + (r >> 3) + 4 * (e & 1); }

/* qw's word holding q[k][n], and the bit shift of its nibble. */
AWQ_HD size_t awq_tile_word(int K, int n, int k, int *shift) {
    int nt = n / AWQ_TILE_N, r = n % AWQ_TILE_N, kc = k / AWQ_TILE_K, kk = k % AWQ_TILE_K;
    int tq = kk / 16, s = (kk % 16) / 4, e = kk % 4, lane = 4 * (r & 7) + tq;
    *shift = 4 * awq_nibble(r, e);
    return (((size_t)nt * (K / AWQ_TILE_K) + kc) * 32 + lane) * 4 + s;
}

/* The inverse: input k and column n of nibble `nibble` of qw's word i. */
AWQ_HD void awq_tile_coords(int K, size_t i, int nibble, int *n, int *k) {
    int s = (int)(i % 4), lane = (int)(i / 4 % 32);
    size_t tile = i / 128;
    int kc = (int)(tile % (size_t)(K / AWQ_TILE_K)), nt = (int)(tile / (size_t)(K / AWQ_TILE_K));
    int j = nibble & 3, half = nibble >> 2;
    *n = nt * AWQ_TILE_N + (lane >> 2) + 8 * (j & 1);
    *k = kc * AWQ_TILE_K + 16 * (lane & 3) + 4 * s + 2 * (j >> 1) + half;
}

/* scales' index of s[k/G][n]. */
AWQ_HD size_t awq_scale_index(int K, int G, int n, int k) {
    return ((size_t)(n / AWQ_TILE_N) * (K / G) + k / G) * AWQ_TILE_N + n % AWQ_TILE_N;
}

/* zeros' word holding z[k/G][n], and the bit shift of its nibble. */
AWQ_HD size_t awq_zero_word(int K, int G, int n, int k, int *shift) {
    int r = n % AWQ_TILE_N;
    *shift = 4 * (r & 7);
    return ((size_t)(n / AWQ_TILE_N) * (K / G) + k / G) * 2 + (r >> 3);
}

/* Register a_j of a lane's fragment from its word w as two bf16 (bits):
 * 128 + q for the low and high nibble (0x4300 is 128.0; a nibble in the low
 * mantissa bits adds its value exactly). */
AWQ_HD uint32_t awq_frag_biased(uint32_t w, int j) { return ((w >> (4 * j)) & 0x000F000Fu) | 0x43004300u; }
/* The same bias for a zero z in both halves: a_j - this = q - z, exact in bf16. */
AWQ_HD uint32_t awq_zero_biased(uint32_t z) { return 0x43004300u | z | (z << 16); }
#endif
