/* awq_kernels.cuh: the device code of the 4-bit AWQ linears (launchers in
 * engine/awq.cu; the layout in engine/awq_tile.h, the fragments in
 * engine/mma.cuh).  Device code only.
 *
 * awq_decode_mma<TT>: y (T, N) = x (T, K) @ W for T <= 8 TT tokens, memory
 * bound: the weights stream through a ring of AWQ_STAGES stages in shared
 * memory filled by cp.async (AWQ_STAGES - 1 chunks in flight per block).  A
 * block of 4 warps owns AWQ_BLOCK_TILES column tiles (128 outputs) and one
 * split of K; a stage is one 64-input chunk: the block's 8 tiles' words, the
 * chunk's activations of all token rows (shared by the 4 warps), and the
 * tiles' scales and zeros of the chunk's group.  Warp w computes tiles 2 w,
 * 2 w + 1: per chunk a lane takes its 16-byte word of each tile (its 4 mma
 * steps), turns each nibble pair into the bf16 pair q - z (exact), runs
 * mma.sync into fp32 sums of the chunk and adds s times those to its
 * accumulators.  One split: y in bf16 straight from the accumulators.  More:
 * fp32 partial sums per split; with counters the block that arrives last for
 * its columns adds the splits in split order (deterministic) and writes y,
 * else awq_reduce_splits does it in a second launch. */
#ifndef ENGINE_AWQ_KERNELS_CUH
#define ENGINE_AWQ_KERNELS_CUH
#include <cuda_fp16.h>
#include "engine/mma.cuh"
#include "engine/awq_tile.h"

#define AWQ_WARPS AWQ_BLOCK_WARPS
#define AWQ_STAGES 5             /* ring depth: 4 chunks of 4 KB weights in flight per block */

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
/* 8 bytes global -> shared (cp.async.ca takes 4, 8 or 16) */
__device__ __forceinline__ void cp_async8(void *dst, const void *src) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(d), "l"(src));
}

/* One stage of the ring: chunk c of the block's tiles. */
template <int TT> struct awq_stage {
    uint4 w[AWQ_BLOCK_TILES][32];        /* tile j's words of the chunk, lane order (as in qw) */
    uint4 x[TT * 8][8];                  /* token row r's inputs 8 p .. 8 p + 7 at [r][awq_xs_slot(r, p)]; 0 past T */
    uint16_t s[AWQ_BLOCK_TILES][16];     /* tile j's fp16 scales of the chunk's group */
    uint32_t z[AWQ_BLOCK_TILES][2];      /* tile j's zeros of the chunk's group */
};

/* Where the block's 128 threads put chunk c into stage st.  Tiles past the
 * last (NT) read the last one again (computed, not stored). */
template <int TT>
__device__ __forceinline__ void awq_load_stage(awq_stage<TT> &st, const uint4 *__restrict__ qw16,   /* (NT, KC, 32) */
                                               const k_bf16 *__restrict__ x,                      /* (T, K) */
                                               const uint16_t *__restrict__ scales,               /* (NT, KG, 16) */
                                               const uint32_t *__restrict__ zeros,                /* (NT, KG, 2) */
                                               int nt0, int NT, int K, int G, int T, int c) {
    const int t = threadIdx.x, KC = K / AWQ_TILE_K, KG = K / G, gi = c * AWQ_TILE_K / G;
#pragma unroll
    for (int i = t; i < AWQ_BLOCK_TILES * 32; i += AWQ_WARPS * 32) {
        int nt = min(nt0 + (i >> 5), NT - 1);
        cp_async16(&st.w[i >> 5][i & 31], qw16 + ((size_t)nt * KC + c) * 32 + (i & 31), 16);
    }
#pragma unroll
    for (int i = t; i < TT * 64; i += AWQ_WARPS * 32) {
        int r = i >> 3, p = i & 7;
        cp_async16(&st.x[r][awq_xs_slot(r, p)], x + (size_t)(r < T ? r : 0) * K + c * AWQ_TILE_K + 8 * p,
                   r < T ? 16 : 0);
    }
    if (t < 2 * AWQ_BLOCK_TILES) {
        int nt = min(nt0 + (t >> 1), NT - 1);
        cp_async16(&st.s[t >> 1][8 * (t & 1)], scales + ((size_t)nt * KG + gi) * 16 + 8 * (t & 1), 16);
    } else if (t < 3 * AWQ_BLOCK_TILES) {
        int j = t - 2 * AWQ_BLOCK_TILES, nt = min(nt0 + j, NT - 1);
        cp_async8(&st.z[j][0], zeros + ((size_t)nt * KG + gi) * 2);
    }
}

/* The scales (rows gq and gq + 8) and biased zeros of a tile, from a stage. */
struct awq_grp { float s_lo, s_hi; uint32_t z_lo, z_hi; };
__device__ __forceinline__ awq_grp awq_group(const uint16_t *s, const uint32_t *z, int gq) {
    awq_grp r;
    r.s_lo = __half2float(__ushort_as_half(s[gq]));
    r.s_hi = __half2float(__ushort_as_half(s[gq + 8]));
    r.z_lo = awq_zero_biased((z[0] >> (4 * gq)) & 15u);
    r.z_hi = awq_zero_biased((z[1] >> (4 * gq)) & 15u);
    return r;
}

/* acc[j][tt] (C fragments) += s (q - z) x of warp w's tiles 2 w + j on one stage. */
template <int TT>
__device__ __forceinline__ void awq_chunk_mma(float (&acc)[AWQ_WARP_TILES][TT][4], const awq_stage<TT> &st,
                                              int warp, int lane) {
    const int gq = lane >> 2, tq = lane & 3;
    uint4 q[AWQ_WARP_TILES], xv[TT][2];
    awq_grp g[AWQ_WARP_TILES];
#pragma unroll
    for (int j = 0; j < AWQ_WARP_TILES; j++) {
        const int jt = AWQ_WARP_TILES * warp + j;
        q[j] = st.w[jt][lane];
        g[j] = awq_group(st.s[jt], st.z[jt], gq);
    }
#pragma unroll
    for (int tt = 0; tt < TT; tt++) {
        const int r = tt * 8 + gq;
        xv[tt][0] = st.x[r][awq_xs_slot(r, 2 * tq)];
        xv[tt][1] = st.x[r][awq_xs_slot(r, 2 * tq + 1)];
    }
    float p[AWQ_WARP_TILES][TT][4];
#pragma unroll
    for (int j = 0; j < AWQ_WARP_TILES; j++)
#pragma unroll
        for (int tt = 0; tt < TT; tt++)
#pragma unroll
            for (int r = 0; r < 4; r++) p[j][tt][r] = 0.0f;
#pragma unroll
    for (int s = 0; s < 4; s++)
#pragma unroll
        for (int j = 0; j < AWQ_WARP_TILES; j++) {
            uint32_t a[4];
            const uint32_t ws = awq_word(q[j], s);
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = awq_sub(awq_frag_biased(ws, i), (i & 1) ? g[j].z_hi : g[j].z_lo);
#pragma unroll
            for (int tt = 0; tt < TT; tt++)
                mma16816(p[j][tt], a, awq_word(xv[tt][s >> 1], 2 * (s & 1)), awq_word(xv[tt][s >> 1], 2 * (s & 1) + 1));
        }
#pragma unroll
    for (int j = 0; j < AWQ_WARP_TILES; j++)
#pragma unroll
        for (int tt = 0; tt < TT; tt++) {
            acc[j][tt][0] += g[j].s_lo * p[j][tt][0]; acc[j][tt][1] += g[j].s_lo * p[j][tt][1];
            acc[j][tt][2] += g[j].s_hi * p[j][tt][2]; acc[j][tt][3] += g[j].s_hi * p[j][tt][3];
        }
}

/* The warp's accumulators out: y (T, N) bf16, or partial (splits, T, N) at split sp. */
template <int TT>
__device__ __forceinline__ void awq_store_acc(k_bf16 *y, float *partial, const float (&acc)[AWQ_WARP_TILES][TT][4],
                                              int nt0, int NT, int N, int T, int sp, int warp, int lane) {
#pragma unroll
    for (int j = 0; j < AWQ_WARP_TILES; j++) {
        const int nt = nt0 + AWQ_WARP_TILES * warp + j;
        if (nt >= NT) continue;
#pragma unroll
        for (int tt = 0; tt < TT; tt++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                int n = nt * AWQ_TILE_N + (lane >> 2) + 8 * (r >> 1);   /* C rows: c0, c1 row gq; c2, c3 row gq + 8 */
                int tok = tt * 8 + 2 * (lane & 3) + (r & 1);            /* C columns: 2 tq, 2 tq + 1 */
                if (tok >= T) continue;
                if (partial) partial[((size_t)sp * T + tok) * N + n] = acc[j][tt][r];
                else st(y, (size_t)tok * N + n, acc[j][tt][r]);
            }
    }
}

/* The block's columns of y from the splits' sums, if it arrived last (counter of
 * its column block: reset to 0 for the next launch). */
__device__ __forceinline__ void awq_reduce_last(k_bf16 *y, const float *partial, unsigned *counter, int n0, int N,
                                                int T, int splits) {
    __shared__ int last;
    __threadfence();                              /* this block's partial sums before its arrival */
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(counter, 1u) == (unsigned)splits - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    const int cols = min(AWQ_BLOCK_TILES * AWQ_TILE_N, N - n0);
    for (int i = threadIdx.x; i < T * AWQ_BLOCK_TILES * AWQ_TILE_N; i += AWQ_WARPS * 32) {
        int tok = i / (AWQ_BLOCK_TILES * AWQ_TILE_N), n = i % (AWQ_BLOCK_TILES * AWQ_TILE_N);
        if (n >= cols) continue;
        float v = 0.0f;
        for (int s = 0; s < splits; s++) v += __ldcg(partial + ((size_t)s * T + tok) * N + n0 + n);
        st(y, (size_t)tok * N + n0 + n, v);
    }
    if (threadIdx.x == 0) *counter = 0;
}

/* grid (ceil(NT / AWQ_BLOCK_TILES), splits), AWQ_WARPS * 32 threads */
template <int TT>
__global__ void __launch_bounds__(AWQ_WARPS * 32)
awq_decode_mma(k_bf16 *__restrict__ y,               /* (T, N) bf16 */
               float *__restrict__ partial,          /* (splits, T, N) fp32, or NULL for one split */
               unsigned *__restrict__ counters,      /* (gridDim.x,) zero between launches, or NULL */
               const k_bf16 *__restrict__ x,         /* (T, K) bf16, 16-byte aligned */
               const uint32_t *__restrict__ qw,      /* (N/16, K/64, 32, 4) */
               const uint16_t *__restrict__ scales,  /* (N/16, K/G, 16) fp16 */
               const uint32_t *__restrict__ zeros,   /* (N/16, K/G, 2) */
               int T, int N, int K, int G, int chunks_per_split) {
    __shared__ awq_stage<TT> ring[AWQ_STAGES];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, NT = N / AWQ_TILE_N;
    const int nt0 = blockIdx.x * AWQ_BLOCK_TILES, KC = K / AWQ_TILE_K;
    const int c0 = blockIdx.y * chunks_per_split, nc = min(KC, c0 + chunks_per_split) - c0;
    const uint4 *qw16 = reinterpret_cast<const uint4 *>(qw);
    float acc[AWQ_WARP_TILES][TT][4];
#pragma unroll
    for (int j = 0; j < AWQ_WARP_TILES; j++)
#pragma unroll
        for (int tt = 0; tt < TT; tt++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[j][tt][r] = 0.0f;
#pragma unroll
    for (int i = 0; i < AWQ_STAGES - 1; i++) {
        if (i < nc) awq_load_stage<TT>(ring[i], qw16, x, scales, zeros, nt0, NT, K, G, T, c0 + i);
        cp_async_commit();
    }
    for (int i = 0; i < nc; i++) {
        cp_async_wait<AWQ_STAGES - 2>();          /* chunk i has landed (this thread's copies) */
        __syncthreads();                          /* ... and everyone's; slot (i - 1) % STAGES is free */
        const int nx = i + AWQ_STAGES - 1;
        if (nx < nc) awq_load_stage<TT>(ring[nx % AWQ_STAGES], qw16, x, scales, zeros, nt0, NT, K, G, T, c0 + nx);
        cp_async_commit();
        awq_chunk_mma<TT>(acc, ring[i % AWQ_STAGES], warp, lane);
    }
    cp_async_wait<0>();
    awq_store_acc<TT>(y, partial, acc, nt0, NT, N, T, blockIdx.y, warp, lane);
    if (partial && counters)
        awq_reduce_last(y, partial, counters + blockIdx.x, nt0 * AWQ_TILE_N, N, T, gridDim.y);
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
