/* awq_kernels.cuh: the device code of the 4-bit AWQ linears (launchers in
 * engine/awq.cu; the layout in engine/awq_tile.h, the fragments in
 * engine/mma.cuh).  Device code only.
 *
 * awq_decode_mma<TT>: y (T, N) = x (T, K) @ W for T <= 8 TT tokens.  A block
 * of 4 warps owns 2 column tiles (32 outputs) and one split of K; warp w
 * takes the split's 64-input chunks w, w + 4, ...  Per chunk a lane loads
 * one 16-byte word of each tile (its 4 mma steps), its tiles' scales and
 * zeros for the chunk's group, and for each token tile the 16 consecutive
 * inputs of its token row (two 16-byte loads); it turns each nibble pair into
 * the bf16 pair q - z (exact), runs mma.sync into fp32 sums of the chunk, and
 * adds s times those to its accumulators.  Then the 4 warps' sums meet in
 * shared memory: y in bf16 (one split) or fp32 partial sums per split
 * (awq_reduce_splits adds them in split order). */
#ifndef ENGINE_AWQ_KERNELS_CUH
#define ENGINE_AWQ_KERNELS_CUH
#include <cuda_fp16.h>
#include "engine/mma.cuh"
#include "engine/awq_tile.h"

#define AWQ_WARPS 4

__device__ __forceinline__ uint32_t awq_word(const uint4 &v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}
/* q - z of register a_j (two bf16, exact): bias-subtract in bf16x2 */
__device__ __forceinline__ uint32_t awq_sub(uint32_t biased, uint32_t zb) {
    __nv_bfloat162 a = *reinterpret_cast<__nv_bfloat162 *>(&biased), b = *reinterpret_cast<__nv_bfloat162 *>(&zb);
    __nv_bfloat162 d = __hsub2(a, b);
    return *reinterpret_cast<uint32_t *>(&d);
}
__device__ __forceinline__ float awq_scale(const uint16_t *p) {
    return __half2float(__ushort_as_half(__ldg(p)));
}

/* The scales (rows gq and gq + 8) and biased zeros of tile nt for group gi. */
struct awq_grp { float s_lo, s_hi; uint32_t z_lo, z_hi; };
__device__ __forceinline__ awq_grp awq_group(const uint16_t *scales, const uint32_t *zeros, int nt, int KG, int gi,
                                             int gq) {
    size_t b = (size_t)nt * KG + gi;
    awq_grp r;
    r.s_lo = awq_scale(scales + b * 16 + gq);
    r.s_hi = awq_scale(scales + b * 16 + gq + 8);
    r.z_lo = awq_zero_biased((__ldg(zeros + b * 2) >> (4 * gq)) & 15u);
    r.z_hi = awq_zero_biased((__ldg(zeros + b * 2 + 1) >> (4 * gq)) & 15u);
    return r;
}

template <int TT>
__global__ void __launch_bounds__(AWQ_WARPS * 32)
awq_decode_mma(k_bf16 *__restrict__ y, float *__restrict__ partial, const k_bf16 *__restrict__ x,
               const uint32_t *__restrict__ qw, const uint16_t *__restrict__ scales,
               const uint32_t *__restrict__ zeros, int T, int N, int K, int G, int chunks_per_split) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gq = lane >> 2, tq = lane & 3;
    const int KC = K / AWQ_TILE_K, KG = K / G, NT = N / AWQ_TILE_N;
    const int nt0 = blockIdx.x * 2, nt1 = nt0 + 1 < NT ? nt0 + 1 : nt0;   /* a lone last tile: computed twice, kept once */
    const int c_begin = blockIdx.y * chunks_per_split;
    const int c_end = min(KC, c_begin + chunks_per_split);
    const uint4 *w0 = reinterpret_cast<const uint4 *>(qw) + (size_t)nt0 * KC * 32 + lane;
    const uint4 *w1 = reinterpret_cast<const uint4 *>(qw) + (size_t)nt1 * KC * 32 + lane;
    const uint4 *xr[TT];
    bool live[TT];
#pragma unroll
    for (int tt = 0; tt < TT; tt++) {
        int tok = tt * 8 + gq;
        live[tt] = tok < T;
        xr[tt] = reinterpret_cast<const uint4 *>(x + (size_t)(live[tt] ? tok : 0) * K + 16 * tq);
    }
    float acc[2][TT][4];
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int tt = 0; tt < TT; tt++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[j][tt][r] = 0.0f;

    int c = c_begin + warp;
    uint4 q0 = make_uint4(0, 0, 0, 0), q1 = q0;
    if (c < c_end) { q0 = __ldg(w0 + (size_t)c * 32); q1 = __ldg(w1 + (size_t)c * 32); }
    for (; c < c_end; c += AWQ_WARPS) {
        /* the next chunk's weights in flight while this one computes */
        uint4 n0 = q0, n1 = q1;
        if (c + AWQ_WARPS < c_end) {
            n0 = __ldg(w0 + (size_t)(c + AWQ_WARPS) * 32);
            n1 = __ldg(w1 + (size_t)(c + AWQ_WARPS) * 32);
        }
        const int gi = c * AWQ_TILE_K / G;
        const awq_grp g0 = awq_group(scales, zeros, nt0, KG, gi, gq), g1 = awq_group(scales, zeros, nt1, KG, gi, gq);
        uint4 xv[TT][2];
#pragma unroll
        for (int tt = 0; tt < TT; tt++) {
            xv[tt][0] = live[tt] ? __ldg(xr[tt] + (size_t)c * 8) : make_uint4(0, 0, 0, 0);
            xv[tt][1] = live[tt] ? __ldg(xr[tt] + (size_t)c * 8 + 1) : make_uint4(0, 0, 0, 0);
        }
        float p[2][TT][4];
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int tt = 0; tt < TT; tt++)
#pragma unroll
                for (int r = 0; r < 4; r++) p[j][tt][r] = 0.0f;
#pragma unroll
        for (int s = 0; s < 4; s++) {
            uint32_t a0[4], a1[4];
            const uint32_t ws0 = awq_word(q0, s), ws1 = awq_word(q1, s);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                a0[j] = awq_sub(awq_frag_biased(ws0, j), (j & 1) ? g0.z_hi : g0.z_lo);
                a1[j] = awq_sub(awq_frag_biased(ws1, j), (j & 1) ? g1.z_hi : g1.z_lo);
            }
#pragma unroll
            for (int tt = 0; tt < TT; tt++) {
                const uint32_t b0 = awq_word(xv[tt][s >> 1], 2 * (s & 1)), b1 = awq_word(xv[tt][s >> 1], 2 * (s & 1) + 1);
                mma16816(p[0][tt], a0, b0, b1);
                mma16816(p[1][tt], a1, b0, b1);
            }
        }
#pragma unroll
        for (int tt = 0; tt < TT; tt++) {
            acc[0][tt][0] += g0.s_lo * p[0][tt][0]; acc[0][tt][1] += g0.s_lo * p[0][tt][1];
            acc[0][tt][2] += g0.s_hi * p[0][tt][2]; acc[0][tt][3] += g0.s_hi * p[0][tt][3];
            acc[1][tt][0] += g1.s_lo * p[1][tt][0]; acc[1][tt][1] += g1.s_lo * p[1][tt][1];
            acc[1][tt][2] += g1.s_hi * p[1][tt][2]; acc[1][tt][3] += g1.s_hi * p[1][tt][3];
        }
        q0 = n0;
        q1 = n1;
    }

    /* the warps' sums: red[warp][((j TT + tt) 4 + r) 32 + lane] */
    __shared__ float red[AWQ_WARPS][2 * TT * 4 * 32];
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int tt = 0; tt < TT; tt++)
#pragma unroll
            for (int r = 0; r < 4; r++) red[warp][((j * TT + tt) * 4 + r) * 32 + lane] = acc[j][tt][r];
    __syncthreads();
    for (int i = threadIdx.x; i < 2 * TT * 4 * 32; i += AWQ_WARPS * 32) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < AWQ_WARPS; w++) v += red[w][i];
        int ln = i & 31, r = (i >> 5) & 3, jt = i >> 7, tt = jt % TT, j = jt / TT;
        int nt = j ? nt1 : nt0;
        if (j == 1 && nt1 == nt0) continue;
        int n = nt * AWQ_TILE_N + (ln >> 2) + 8 * (r >> 1);       /* C rows: c0, c1 row gq; c2, c3 row gq + 8 */
        int tok = tt * 8 + 2 * (ln & 3) + (r & 1);                 /* C columns: 2 tq, 2 tq + 1 */
        if (tok >= T) continue;
        if (partial) partial[((size_t)blockIdx.y * T + tok) * N + n] = v;
        else st(y, (size_t)tok * N + n, v);
    }
}

/* y (T, N) = bf16 of the sum over the splits of partial (splits, T, N), in split order */
__global__ void awq_reduce_splits(k_bf16 *__restrict__ y, const float *__restrict__ partial, int splits,
                                  size_t TN) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= TN) return;
    float v = 0.0f;
    for (int s = 0; s < splits; s++) v += partial[(size_t)s * TN + i];
    st(y, i, v);
}

/* w (N, K) = bf16((q - z) s): a warp per tile (nt, kc); lane (gq, tq) writes
 * inputs 16 tq .. 16 tq + 15 of rows gq and gq + 8 (two 16-byte stores each). */
__global__ void awq_dequant_tiles(k_bf16 *__restrict__ w, const uint32_t *__restrict__ qw,
                                  const uint16_t *__restrict__ scales, const uint32_t *__restrict__ zeros, int N,
                                  int K, int G) {
    const int lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3;
    const int KC = K / AWQ_TILE_K, KG = K / G;
    size_t tile = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (tile >= (size_t)(N / AWQ_TILE_N) * KC) return;
    int nt = (int)(tile / KC), kc = (int)(tile % KC), gi = kc * AWQ_TILE_K / G;
    uint4 q = __ldg(reinterpret_cast<const uint4 *>(qw) + tile * 32 + lane);
    size_t b = (size_t)nt * KG + gi;
#pragma unroll
    for (int h = 0; h < 2; h++) {                 /* row gq, then gq + 8 */
        int r = gq + 8 * h;
        float sc = awq_scale(scales + b * 16 + r);
        int z = (int)((__ldg(zeros + b * 2 + h) >> (4 * gq)) & 15u);
        uint32_t out[8];
#pragma unroll
        for (int kk = 0; kk < 16; kk += 2) {      /* inputs 16 tq + kk, + 1: step kk / 4, e = kk % 4 and + 1 */
            uint32_t word = awq_word(q, kk >> 2);
            int e = kk & 3;
            int q_lo = (int)((word >> (4 * awq_nibble(r, e))) & 15u);
            int q_hi = (int)((word >> (4 * awq_nibble(r, e + 1))) & 15u);
            out[kk >> 1] = pack_bf16((float)(q_lo - z) * sc, (float)(q_hi - z) * sc);
        }
        uint4 *dst = reinterpret_cast<uint4 *>(w + (size_t)(nt * AWQ_TILE_N + r) * K + kc * AWQ_TILE_K + 16 * tq);
        dst[0] = make_uint4(out[0], out[1], out[2], out[3]);
        dst[1] = make_uint4(out[4], out[5], out[6], out[7]);
    }
}

/* qw's word i from AutoAWQ's qweight (K, N/8): each nibble from its (k, n) */
__global__ void awq_repack_words(uint32_t *__restrict__ qw, const int32_t *__restrict__ qweight, int K, int N,
                                 size_t words) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= words) return;
    const int inv[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    uint32_t out = 0;
#pragma unroll
    for (int b = 0; b < 8; b++) {
        int n, k;
        awq_tile_coords(K, i, b, &n, &k);
        uint32_t src = (uint32_t)__ldg(qweight + (size_t)k * (N / 8) + n / 8);
        out |= ((src >> (4 * inv[n % 8])) & 15u) << (4 * b);
    }
    qw[i] = out;
}

/* random words (4-bit weights or zeros) and fp16 scales uniform in [lo, hi] */
__global__ void awq_fill_words(uint32_t *p, size_t n, uint64_t seed) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = (uint32_t)(rng_mix64(seed ^ rng_mix64(i)) >> 16);
}
__global__ void awq_fill_scales(uint16_t *p, size_t n, uint64_t seed, float lo, float hi) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = __half_as_ushort(__float2half_rn(lo + (hi - lo) * kref_uniform(seed, 1, i)));
}
#endif
