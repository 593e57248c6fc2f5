/* lora.cu: the LoRA expand and the SwiGLU with gate/up adapters fused
 * (kernels_lora.h; the shrink is lora_shrink.cu).  A block takes one tile (up
 * to LORA_TILE = 16 rows of one slot, row r = token perm[first + r]) and 128
 * output columns; 4 warps of 32 columns each.  The rank sum runs on WMMA bf16
 * 16x16x16 tensor-core tiles, 16 of the rank at a time, staged in shared
 * memory: v's fp32 as two bf16 (hi = bf16(v), lo = bf16(v - hi): about 16
 * bits of v, the products exact, fp32 accumulation), B's rows zero-padded.
 *   expand  a fused linear's modules are S slices of the output; the block
 *           multiplies v's S R columns by an "effective B" whose row n holds
 *           B[n] at module j(n)'s R columns and zeros elsewhere, so a 16-column
 *           fragment may straddle a slice end (ends are multiples of 8).  y is
 *           read before the products (in flight meanwhile), added to in fp32
 *           and rounded once, 16 bytes at a time.
 *   silu    act = silu(g') * u' with g' = bf16(gate + s dg), u' = bf16(up +
 *           s du), the roundings of expand followed by k_silu_mul, without
 *           writing gate/up back.  Tiles of slot -1 (tokens without an
 *           adapter) run plain SwiGLU.
 * Each row's result depends on that row alone.  Touches only y / act. */
#include <mma.h>
#include "engine/common.cuh"
#include "engine/kernels_lora.h"

using namespace nvcuda;

#define LT 16               /* rows per tile (LORA_TILE, engine/lora_slots.h) */
#define EN 128              /* output columns per block: 4 warps x 32 */
#define EKC 16              /* rank columns per step */
#define EP (EKC + 8)        /* staged pitch (bf16): 48 bytes */
#define EO (EN + 4)         /* product pitch (fp32) */
#define EIT (LT * EN / 8 / 128)   /* 16-byte output pieces per thread: 2 */

typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc_t;

/* vh, vl (LT, EP) = hi and lo of v[row0 + r, voff + k0 + k], zero past the tile's rows or klim */
__device__ void stage_v(bf16 *vh, bf16 *vl, const float *v, int RA, int row0, int nrow, int voff, int k0, int klim) {
    for (int e = threadIdx.x; e < LT * EKC; e += blockDim.x) {
        int r = e / EKC, k = e % EKC;
        float a = r < nrow && k0 + k < klim ? v[(int64_t)(row0 + r) * RA + voff + k0 + k] : 0.0f;
        bf16 h = __float2bfloat16_rn(a);
        vh[r * EP + k] = h;
        vl[r * EP + k] = __float2bfloat16_rn(a - __bfloat162float(h));
    }
}

/* bs (EN, EP): row c = the effective B of output n0 + c at rank columns k0 .. k0 + 16:
 * B_slot[n, ke - j R] when ke lies in module j(n)'s columns [j R, j R + R), else 0 */
__device__ void stage_b(bf16 *bs, const bf16 *Bs, const k_lora_slices &sl, int n0, int k0) {
    int N = sl.end[sl.S - 1], KE = sl.S * sl.R;
    for (int e = threadIdx.x; e < EN * (EKC / 8); e += blockDim.x) {
        int c = e / (EKC / 8), g = (e % (EKC / 8)) * 8, n = n0 + c, ke = k0 + g;
        uint4 q = make_uint4(0, 0, 0, 0);
        if (n < N && ke < KE) {
            int j = 0;
            while (j < sl.S - 1 && n >= sl.end[j]) j++;
            if (ke / sl.R == j) q = __ldg(reinterpret_cast<const uint4 *>(Bs + (int64_t)n * sl.R + ke - j * sl.R));
        }
        *reinterpret_cast<uint4 *>(bs + c * EP + g) = q;
    }
}

/* acc[f] += (vh + vl) (16 x 16) @ bs^T for warp w's 2 fragments of 16 columns */
__device__ __forceinline__ void mma_step(acc_t acc[2], const bf16 *vh, const bf16 *vl, const bf16 *bs, int w) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> ah, alo;
    wmma::load_matrix_sync(ah, vh, EP);
    wmma::load_matrix_sync(alo, vl, EP);
#pragma unroll
    for (int f = 0; f < 2; f++) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
        wmma::load_matrix_sync(fb, bs + (w * 32 + 16 * f) * EP, EP);
        wmma::mma_sync(acc[f], ah, fb, acc[f]);
        wmma::mma_sync(acc[f], alo, fb, acc[f]);
    }
}

/* out (LT, EO) = v[tile rows, voff ..] (rank KE = S R) @ effective B^T for columns n0 .. n0 + EN */
__device__ void expand_tile(float *out, bf16 *vh, bf16 *vl, bf16 *bs, const float *v, int RA, int voff,
                            const bf16 *Bs, const k_lora_slices &sl, int n0, int row0, int nrow) {
    int w = threadIdx.x >> 5, KE = sl.S * sl.R, N = sl.end[sl.S - 1], nl = n0 + EN < N ? n0 + EN : N, jlo = 0, jhi;
    while (jlo < sl.S - 1 && n0 >= sl.end[jlo]) jlo++;
    for (jhi = jlo; jhi < sl.S - 1 && nl > sl.end[jhi]; jhi++) {}
    int kend = (jhi + 1) * sl.R < KE ? (jhi + 1) * sl.R : KE;     /* the block's modules' rank columns only */
    acc_t acc[2];
    wmma::fill_fragment(acc[0], 0.0f);
    wmma::fill_fragment(acc[1], 0.0f);
    for (int k0 = jlo * sl.R / EKC * EKC; k0 < kend; k0 += EKC) {
        __syncthreads();                              /* the previous step's fragments are loaded */
        stage_v(vh, vl, v, RA, row0, nrow, voff, k0, KE);
        stage_b(bs, Bs, sl, n0, k0);
        __syncthreads();
        mma_step(acc, vh, vl, bs, w);
    }
    wmma::store_matrix_sync(out + w * 32, acc[0], EO, wmma::mem_row_major);
    wmma::store_matrix_sync(out + w * 32 + 16, acc[1], EO, wmma::mem_row_major);
}

__device__ __forceinline__ uint4 pack8(const float o[8]) {
    uint4 q;
    uint32_t *w = reinterpret_cast<uint32_t *>(&q);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        __nv_bfloat162 h = __floats2bfloat162_rn(o[2 * k], o[2 * k + 1]);
        w[k] = *reinterpret_cast<uint32_t *>(&h);
    }
    return q;
}

__global__ __launch_bounds__(128) void lora_expand_kernel(k_bf16 *y,                // (T, y_stride)
                                                          int y_stride,
                                                          const float *v,           // (rows, RA)
                                                          int RA,
                                                          const k_bf16 *B,          // (nslots, slot_stride) -> (N, R)
                                                          int64_t slot_stride,
                                                          const float *scale,       // (nslots,)
                                                          k_lora_slices sl,
                                                          const int32_t *perm,      // (rows,)
                                                          const int32_t *tiles) {   // (ntiles, 3)
    __shared__ __align__(128) bf16 vh[LT * EP], vl[LT * EP], bs[EN * EP];
    __shared__ __align__(128) float out[LT * EO];
    int N = sl.end[sl.S - 1], n0 = blockIdx.y * EN;
    int tile = blockIdx.x, slot = tiles[3 * tile], row0 = tiles[3 * tile + 1], nrow = tiles[3 * tile + 2];
    uint4 yq[EIT];
#pragma unroll
    for (int i = 0; i < EIT; i++) {                   /* y in flight while the products run */
        int it = threadIdx.x + 128 * i, r = it / (EN / 8), n = n0 + (it % (EN / 8)) * 8;
        if (r < nrow && n < N) yq[i] = *reinterpret_cast<const uint4 *>(y + (int64_t)perm[row0 + r] * y_stride + n);
    }
    const bf16 *Bs = reinterpret_cast<const bf16 *>(B) + (int64_t)slot * slot_stride;
    expand_tile(out, vh, vl, bs, v, RA, 0, Bs, sl, n0, row0, nrow);
    __syncthreads();
    float s = scale[slot];
#pragma unroll
    for (int i = 0; i < EIT; i++) {
        int it = threadIdx.x + 128 * i, r = it / (EN / 8), c8 = (it % (EN / 8)) * 8, n = n0 + c8;
        if (r >= nrow || n >= N) continue;
        float o[8];
        unpack8(yq[i], o);
#pragma unroll
        for (int c = 0; c < 8; c++) o[c] += s * out[r * EO + c8 + c];
        *reinterpret_cast<uint4 *>(y + (int64_t)perm[row0 + r] * y_stride + n) = pack8(o);
    }
}

__global__ __launch_bounds__(128) void lora_silu_kernel(k_bf16 *act,               // (T, I)
                                                        const k_bf16 *gu,          // (T, 2I) gate | up
                                                        int I,
                                                        const float *v,            // (rows, RA): gate's A x | up's
                                                        int RA,
                                                        const k_bf16 *B,           // (nslots, slot_stride) -> (2I, R)
                                                        int64_t slot_stride,
                                                        const float *scale,        // (nslots,)
                                                        int R,
                                                        const int32_t *perm,       // (T,)
                                                        const int32_t *tiles) {    // (ntiles_all, 3)
    __shared__ __align__(128) bf16 vh[LT * EP], vl[LT * EP], bs[EN * EP];
    __shared__ __align__(128) float og[LT * EO], ou[LT * EO];
    int n0 = blockIdx.y * EN;
    int tile = blockIdx.x, slot = tiles[3 * tile], row0 = tiles[3 * tile + 1], nrow = tiles[3 * tile + 2];
    uint4 gq[EIT], uq[EIT];
#pragma unroll
    for (int i = 0; i < EIT; i++) {                   /* gate and up in flight while the products run */
        int it = threadIdx.x + 128 * i, r = it / (EN / 8), n = n0 + (it % (EN / 8)) * 8;
        if (r < nrow && n < I) {
            const k_bf16 *p = gu + (int64_t)perm[row0 + r] * 2 * I + n;
            gq[i] = __ldg(reinterpret_cast<const uint4 *>(p));
            uq[i] = __ldg(reinterpret_cast<const uint4 *>(p + I));
        }
    }
    float s = 0.0f;
    if (slot >= 0) {                                  /* the same for the whole block */
        const bf16 *Bs = reinterpret_cast<const bf16 *>(B) + (int64_t)slot * slot_stride;
        k_lora_slices one = {1, R, {I, 0, 0}};
        expand_tile(og, vh, vl, bs, v, RA, 0, Bs, one, n0, row0, nrow);
        expand_tile(ou, vh, vl, bs, v, RA, R, Bs + (int64_t)I * R, one, n0, row0, nrow);
        __syncthreads();
        s = scale[slot];
    }
#pragma unroll
    for (int i = 0; i < EIT; i++) {
        int it = threadIdx.x + 128 * i, r = it / (EN / 8), c8 = (it % (EN / 8)) * 8, n = n0 + c8;
        if (r >= nrow || n >= I) continue;
        float g[8], u[8], o[8];
        unpack8(gq[i], g);
        unpack8(uq[i], u);
#pragma unroll
        for (int c = 0; c < 8; c++) {
            if (slot >= 0) {
                g[c] = rbf(g[c] + s * og[r * EO + c8 + c]);
                u[c] = rbf(u[c] + s * ou[r * EO + c8 + c]);
            }
            o[c] = rbf(g[c] / (1.0f + expf(-g[c]))) * u[c];
        }
        *reinterpret_cast<uint4 *>(act + (int64_t)perm[row0 + r] * I + n) = pack8(o);
    }
}

static bool al(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static int slices_ok(const k_lora_slices *sl) {
    if (sl->S < 1 || sl->S > 3 || sl->R <= 0 || sl->R % 8) return 0;
    for (int j = 0; j < sl->S; j++)
        if (sl->end[j] % 8 || sl->end[j] <= (j ? sl->end[j - 1] : 0)) return 0;
    return 1;
}

extern "C" int k_lora_expand(k_bf16 *y, int y_stride, const float *v, int RA, const k_bf16 *B, int64_t slot_stride,
                             const float *scale, const k_lora_slices *sl, const k_lora_batch *b, cudaStream_t s) {
    if (!slices_ok(sl) || RA < sl->S * sl->R || RA % 4 || y_stride < sl->end[sl->S - 1] || y_stride % 8 ||
        slot_stride % 8 || !al(B, 16) || !al(y, 16) || !al(v, 16) || b->ntiles < 0)
        return -1;
    if (b->ntiles == 0) return 0;
    dim3 grid(b->ntiles, (sl->end[sl->S - 1] + EN - 1) / EN);
    lora_expand_kernel<<<grid, 128, 0, s>>>(y, y_stride, v, RA, B, slot_stride, scale, *sl, b->perm, b->tiles);
    return K_LAUNCH_OK();
}

extern "C" int k_lora_silu(k_bf16 *act, const k_bf16 *gu, int I, const float *v, int RA, const k_bf16 *B,
                           int64_t slot_stride, const float *scale, int R, const k_lora_batch *b, cudaStream_t s) {
    if (I <= 0 || I % 8 || R <= 0 || R % 8 || RA < 2 * R || RA % 4 || slot_stride % 8 || !al(B, 16) ||
        !al(gu, 16) || !al(act, 16) || !al(v, 16) || b->ntiles_all < b->ntiles)
        return -1;
    if (b->ntiles_all == 0) return 0;
    dim3 grid(b->ntiles_all, (I + EN - 1) / EN);
    lora_silu_kernel<<<grid, 128, 0, s>>>(act, gu, I, v, RA, B, slot_stride, scale, R, b->perm, b->tiles);
    return K_LAUNCH_OK();
}
