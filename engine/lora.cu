/* lora.cu: the LoRA expand and the SwiGLU with gate/up adapters fused
 * (kernels_lora.h; the shrink is lora_shrink.cu).  A block has 4 warps of 32
 * output columns each (128 in all) and loops over a group of up to KG tiles
 * (a tile: up to LORA_TILE = 16 rows of one slot, row r = token perm[first +
 * r]), loading the next tile's rows while it works on the current one.  The
 * rank sum runs on mma.sync m16n8k16 (bf16 in, fp32 accumulators), 16 of the
 * rank at a time, with the fragments read straight from global memory (v and
 * B are small and stay in L1/L2): v's fp32 as two bf16 (hi = bf16(v), lo =
 * bf16(v - hi): about 16 bits of v, the products exact, fp32 accumulation),
 * B's rows zero past the rank.  The warp's B columns are taken in a permuted
 * order (fragment column 8 j + 2 c + e is output column 8 c + 2 j + e), so
 * that lane (g, c)'s accumulators are output columns [8 c, 8 c + 8) of rows
 * g and g + 8: each lane reads and writes those 8 bf16 as one 16-byte word,
 * with no shared memory and no barrier.
 *   expand  a fused linear's modules are S slices of the output; a warp
 *           multiplies v's columns by an "effective B" whose row n holds B[n]
 *           at module j(n)'s R columns and zeros elsewhere (slice ends are
 *           multiples of 8, so each lane's 8 columns lie in one module), over
 *           the rank columns of its own modules only.  y is added to in fp32
 *           and rounded once.
 *   silu    act = silu(g') * u' with g' = bf16(gate + s dg), u' = bf16(up +
 *           s du), the roundings of expand followed by k_silu_mul, without
 *           writing gate/up back.  Tiles of slot -1 (tokens without an
 *           adapter) run plain SwiGLU.
 * Each row's result depends on that row alone (and not on the group size).
 * Touches only y / act. */
#include "engine/common.cuh"
#include "engine/mma.cuh"
#include "engine/kernels_lora.h"

#define LT 16               /* rows per tile (LORA_TILE, engine/lora_slots.h) */
#define EW 4                /* warps of a block */
#define WN 32               /* output columns per warp */
#define EN (EW * WN)        /* output columns per block */
#define KG 8                /* most tiles per block */

/* a warp's 16 x 16 A fragments of v: hi and lo of v[row0 + r, k0 + k] (0 for rows >= nrow or k >= klim) */
__device__ __forceinline__ void frag_v(uint32_t ah[4], uint32_t alo[4], const float *v, int RA, int row0, int nrow,
                                       int k0, int klim) {
    int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int q = 0; q < 4; q++) {                     /* a0: (g, 2c)  a1: (g+8, 2c)  a2: (g, 8+2c)  a3: (g+8, 8+2c) */
        int r = g + 8 * (q & 1), k = k0 + 2 * c + 8 * (q >> 1);
        float2 a = make_float2(0.0f, 0.0f);
        if (r < nrow && k < klim) a = __ldg(reinterpret_cast<const float2 *>(v + (int64_t)(row0 + r) * RA + k));
        ah[q] = pack_bf16(a.x, a.y);
        alo[q] = pack_bf16(a.x - rbf(a.x), a.y - rbf(a.y));
    }
}

/* The lane's B columns: fragment column g of n8 tile j is output column
 * nbg + 2 j + (g & 1), nbg = nw + 8 (g >> 1): one 8-column group, so one
 * module.  brow + 2 j R + ke = B_slot[column, ke - jb R] for ke in
 * [kb0, kb1) = module jb's rank columns (empty past N). */
struct bcols {
    const bf16 *brow;
    int R, kb0, kb1;
};

__device__ __forceinline__ bcols lane_bcols(const bf16 *Bs, const k_lora_slices &sl, int nw) {
    int g = (threadIdx.x & 31) >> 2, nbg = nw + 8 * (g >> 1), N = sl.end[sl.S - 1], jb = 0;
    while (jb < sl.S - 1 && nbg >= sl.end[jb]) jb++;
    bcols b = {Bs, sl.R, 0, 0};
    if (nbg < N) {
        b.brow = Bs + (int64_t)(nbg + (g & 1)) * sl.R - (int64_t)jb * sl.R;
        b.kb0 = jb * sl.R;
        b.kb1 = b.kb0 + sl.R;
    }
    return b;
}

/* acc[j] (the warp's n8 tile j, 16 x 8) += (v hi + lo) @ effective B^T over rank columns [kbeg, kend) */
__device__ __forceinline__ void warp_product(float acc[4][4], const float *v, int RA, int row0, int nrow, int klim,
                                             const bcols &b, int kbeg, int kend) {
    int c = threadIdx.x & 3;
    for (int k0 = kbeg; k0 < kend; k0 += 16) {
        uint32_t ah[4], alo[4];
        frag_v(ah, alo, v, RA, row0, nrow, k0, klim);
        int ka = k0 + 2 * c, kb = ka + 8;             /* b0: k ka, ka + 1; b1: k kb, kb + 1 */
        bool oka = ka >= b.kb0 && ka < b.kb1, okb = kb >= b.kb0 && kb < b.kb1;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const bf16 *p = b.brow + (int64_t)2 * j * b.R;
            uint32_t b0 = oka ? __ldg(reinterpret_cast<const unsigned int *>(p + ka)) : 0u;
            uint32_t b1 = okb ? __ldg(reinterpret_cast<const unsigned int *>(p + kb)) : 0u;
            mma16816(acc[j], ah, b0, b1);
            mma16816(acc[j], alo, b0, b1);
        }
    }
}

__device__ __forceinline__ void zero_acc(float acc[4][4]) {
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[j][e] = 0.0f;
}

/* the lane's 8 columns of row g + 8 h from the permuted accumulators */
__device__ __forceinline__ void acc_row(float d[8], const float acc[4][4], int h) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
        d[2 * j] = acc[j][2 * h];
        d[2 * j + 1] = acc[j][2 * h + 1];
    }
}

__device__ __forceinline__ uint4 pack8(const float o[8]) {
    return make_uint4(pack_bf16(o[0], o[1]), pack_bf16(o[2], o[3]), pack_bf16(o[4], o[5]), pack_bf16(o[6], o[7]));
}

/* bf16(q + s d) for the lane's 8 columns of row g + 8 h, d from the accumulators */
__device__ __forceinline__ uint4 add_acc(uint4 q, const float acc[4][4], int h, float s) {
    float o[8], d[8];
    unpack8(q, o);
    acc_row(d, acc, h);
#pragma unroll
    for (int e = 0; e < 8; e++) o[e] += s * d[e];
    return pack8(o);
}

/* q[h] (and q[2 + h] = the same row at + off) = the 8 bf16 at column n of tile t's row g + 8 h */
__device__ __forceinline__ void load_rows(uint4 q[4], const k_bf16 *p, int64_t stride, int off, int n, int N,
                                          const int32_t *perm, const int32_t *tiles, int t, bool two) {
    int g = (threadIdx.x & 31) >> 2, row0 = tiles[3 * t + 1], nrow = tiles[3 * t + 2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        if (g + 8 * h >= nrow || n >= N) continue;
        const k_bf16 *a = p + (int64_t)perm[row0 + g + 8 * h] * stride + n;
        q[h] = __ldcs(reinterpret_cast<const uint4 *>(a));
        if (two) q[2 + h] = __ldcs(reinterpret_cast<const uint4 *>(a + off));
    }
}

__global__ __launch_bounds__(128, 7) void lora_expand_kernel(k_bf16 *y,                // (T, y_stride)
                                                             int y_stride,
                                                             const float *v,           // (rows, RA)
                                                             int RA,
                                                             const k_bf16 *B,       // (nslots, slot_stride) -> (N, R)
                                                             int64_t slot_stride,
                                                             const float *scale,       // (nslots,)
                                                             k_lora_slices sl,
                                                             const int32_t *perm,      // (rows,)
                                                             const int32_t *tiles,     // (ntiles, 3)
                                                             int ntiles, int kg) {
    int lane = threadIdx.x & 31, g = lane >> 2, N = sl.end[sl.S - 1], KE = sl.S * sl.R;
    int nw = blockIdx.y * EN + (threadIdx.x >> 5) * WN, n = nw + 8 * (lane & 3);
    if (nw >= N) return;                              /* whole warps: no barrier in this kernel */
    int nl = nw + WN < N ? nw + WN : N, jlo = 0, jhi;
    while (jlo < sl.S - 1 && nw >= sl.end[jlo]) jlo++;
    for (jhi = jlo; jhi < sl.S - 1 && nl > sl.end[jhi]; jhi++) {}
    int kbeg = jlo * sl.R / 16 * 16, kend = (jhi + 1) * sl.R;     /* the warp's modules' rank columns only */
    int t0 = blockIdx.x * kg, t1 = t0 + kg < ntiles ? t0 + kg : ntiles;
    uint4 cur[4], nxt[4];
    load_rows(cur, y, y_stride, 0, n, N, perm, tiles, t0, false);
    for (int t = t0; t < t1; t++) {
        if (t + 1 < t1) load_rows(nxt, y, y_stride, 0, n, N, perm, tiles, t + 1, false);
        int slot = tiles[3 * t], row0 = tiles[3 * t + 1], nrow = tiles[3 * t + 2];
        bcols b = lane_bcols(reinterpret_cast<const bf16 *>(B) + (int64_t)slot * slot_stride, sl, nw);
        float acc[4][4];
        zero_acc(acc);
        warp_product(acc, v, RA, row0, nrow, KE, b, kbeg, kend);
        float s = scale[slot];
#pragma unroll
        for (int h = 0; h < 2; h++)
            if (g + 8 * h < nrow && n < N)
                __stcs(reinterpret_cast<uint4 *>(y + (int64_t)perm[row0 + g + 8 * h] * y_stride + n),
                       add_acc(cur[h], acc, h, s));
#pragma unroll
        for (int i = 0; i < 4; i++) cur[i] = nxt[i];
    }
}

/* act's 8 columns from gate g' and up u' (bf16) */
__device__ __forceinline__ uint4 silu8(uint4 gq, uint4 uq) {
    float gg[8], u[8], o[8];
    unpack8(gq, gg);
    unpack8(uq, u);
#pragma unroll
    for (int e = 0; e < 8; e++) o[e] = rbf(gg[e] / (1.0f + expf(-gg[e]))) * u[e];
    return pack8(o);
}

__global__ __launch_bounds__(128, 6) void lora_silu_kernel(k_bf16 *act,               // (T, I)
                                                           const k_bf16 *gu,          // (T, 2I) gate | up
                                                           int I,
                                                           const float *v,            // (rows, RA): gate's A x | up's
                                                           int RA,
                                                           const k_bf16 *B,        // (nslots, slot_stride) -> (2I, R)
                                                           int64_t slot_stride,
                                                           const float *scale,        // (nslots,)
                                                           int R,
                                                           const int32_t *perm,       // (T,)
                                                           const int32_t *tiles,      // (ntiles_all, 3)
                                                           int ntiles, int kg) {
    int lane = threadIdx.x & 31, g = lane >> 2;
    int nw = blockIdx.y * EN + (threadIdx.x >> 5) * WN, n = nw + 8 * (lane & 3);
    if (nw >= I) return;                              /* whole warps: no barrier in this kernel */
    k_lora_slices one = {1, R, {I, 0, 0}};
    int t0 = blockIdx.x * kg, t1 = t0 + kg < ntiles ? t0 + kg : ntiles;
    uint4 cur[4], nxt[4];                             /* gate rows g, g + 8; up rows g, g + 8 */
    load_rows(cur, gu, 2 * (int64_t)I, I, n, I, perm, tiles, t0, true);
    for (int t = t0; t < t1; t++) {
        if (t + 1 < t1) load_rows(nxt, gu, 2 * (int64_t)I, I, n, I, perm, tiles, t + 1, true);
        int slot = tiles[3 * t], row0 = tiles[3 * t + 1], nrow = tiles[3 * t + 2];
        if (slot >= 0) {                              /* the same for the whole block */
            const bf16 *Bs = reinterpret_cast<const bf16 *>(B) + (int64_t)slot * slot_stride;
            float acc[4][4], s = scale[slot];
#pragma unroll
            for (int m = 0; m < 2; m++) {             /* gate, then up: g' and u' replace g and u (bf16 both) */
                zero_acc(acc);
                warp_product(acc, v + m * R, RA, row0, nrow, R, lane_bcols(Bs + (int64_t)m * I * R, one, nw), 0, R);
#pragma unroll
                for (int h = 0; h < 2; h++) cur[2 * m + h] = add_acc(cur[2 * m + h], acc, h, s);
            }
        }
#pragma unroll
        for (int h = 0; h < 2; h++)
            if (g + 8 * h < nrow && n < I)
                __stcs(reinterpret_cast<uint4 *>(act + (int64_t)perm[row0 + g + 8 * h] * I + n),
                       silu8(cur[h], cur[2 + h]));
#pragma unroll
        for (int i = 0; i < 4; i++) cur[i] = nxt[i];
    }
}

static bool al(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static int slices_ok(const k_lora_slices *sl) {
    if (sl->S < 1 || sl->S > 3 || sl->R <= 0 || sl->R % 8) return 0;
    for (int j = 0; j < sl->S; j++)
        if (sl->end[j] % 8 || sl->end[j] <= (j ? sl->end[j - 1] : 0)) return 0;
    return 1;
}

/* tiles per block: more for big batches (fewer, longer blocks streaming rows); any choice gives the same values */
static int group_of(int ntiles) {
    int kg = ntiles / 128;
    return kg < 1 ? 1 : kg > KG ? KG : kg;
}

extern "C" int k_lora_expand(k_bf16 *y, int y_stride, const float *v, int RA, const k_bf16 *B, int64_t slot_stride,
                             const float *scale, const k_lora_slices *sl, const k_lora_batch *b, cudaStream_t s) {
    if (!slices_ok(sl) || RA < sl->S * sl->R || RA % 4 || y_stride < sl->end[sl->S - 1] || y_stride % 8 ||
        slot_stride % 8 || !al(B, 16) || !al(y, 16) || !al(v, 16) || b->ntiles < 0)
        return -1;
    if (b->ntiles == 0) return 0;
    int kg = group_of(b->ntiles);
    dim3 grid((b->ntiles + kg - 1) / kg, (sl->end[sl->S - 1] + EN - 1) / EN);
    lora_expand_kernel<<<grid, EW * 32, 0, s>>>(y, y_stride, v, RA, B, slot_stride, scale, *sl, b->perm, b->tiles,
                                                b->ntiles, kg);
    return K_LAUNCH_OK();
}

extern "C" int k_lora_silu(k_bf16 *act, const k_bf16 *gu, int I, const float *v, int RA, const k_bf16 *B,
                           int64_t slot_stride, const float *scale, int R, const k_lora_batch *b, cudaStream_t s) {
    if (I <= 0 || I % 8 || R <= 0 || R % 8 || RA < 2 * R || RA % 4 || slot_stride % 8 || !al(B, 16) ||
        !al(gu, 16) || !al(act, 16) || !al(v, 16) || b->ntiles_all < b->ntiles)
        return -1;
    if (b->ntiles_all == 0) return 0;
    int kg = group_of(b->ntiles_all);
    dim3 grid((b->ntiles_all + kg - 1) / kg, (I + EN - 1) / EN);
    lora_silu_kernel<<<grid, EW * 32, 0, s>>>(act, gu, I, v, RA, B, slot_stride, scale, R, b->perm, b->tiles,
                                              b->ntiles_all, kg);
    return K_LAUNCH_OK();
}
