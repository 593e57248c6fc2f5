/* lora.cu: the segmented LoRA kernels (kernels_lora.h).  Layout of a tile:
 * up to LORA_TILE (16) rows of one slot, row r = token perm[first + r].
 *   shrink  WMMA bf16 16x16x16 tensor-core tiles: a block takes one tile and
 *           64 columns of A x; its 4 warps split K in chunks of 64 (warp w
 *           takes chunks w, w + 4, ...: fixed by K, not by the batch), each
 *           stages its chunk of the tile's x rows in shared memory (gathered
 *           through perm, 16-byte loads) and multiplies by A's rows straight
 *           from global memory (L2: every tile of a slot reads the same A);
 *           the warps' partial sums are added in a fixed order.
 *   expand  CUDA cores, memory-bound: a thread owns 8 adjacent output columns
 *           (one module's: slice ends are multiples of 8) for 4 rows of the
 *           tile; B's rows in registers 8 ranks at a time, v read through the
 *           cache (broadcast: a warp's threads read the same v); y read,
 *           added to in fp32 and rounded once, 16 bytes at a time.
 *   silu    expand of gate and up fused into SwiGLU: act = silu(g') * u' with
 *           g' = bf16(gate + s dg), u' = bf16(up + s du), the roundings of
 *           expand followed by k_silu_mul, without writing gate/up back.
 *           Tiles of slot -1 (tokens without an adapter) run plain SwiGLU. */
#include <mma.h>
#include "engine/common.cuh"
#include "engine/kernels_lora.h"

using namespace nvcuda;

#define LT 16               /* rows per tile (LORA_TILE, engine/lora_slots.h) */
#define SW 4                /* warps of a shrink block */
#define SKC 64              /* K chunk a warp stages at once */
#define SNC 64              /* columns of A x per shrink block */
#define SLD (SKC + 8)       /* staged row pitch (bf16): 144 bytes */

__global__ __launch_bounds__(128) void lora_shrink_kernel(float *v,                 // (rows, RA)
                                                          const k_bf16 *x,          // (T, x_stride)
                                                          int x_stride,
                                                          const k_bf16 *A,          // (nslots, slot_stride) -> (RA, K)
                                                          int64_t slot_stride, int RA, int K,
                                                          const int32_t *perm,      // (rows,)
                                                          const int32_t *tiles) {   // (ntiles, 3)
    __shared__ __align__(32) bf16 xs[SW][LT * SLD];
    __shared__ __align__(32) float red[SW][LT * SNC];
    int tile = blockIdx.x, c0 = blockIdx.y * SNC;
    int slot = tiles[3 * tile], row0 = tiles[3 * tile + 1], nrow = tiles[3 * tile + 2];
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const bf16 *As = reinterpret_cast<const bf16 *>(A) + (int64_t)slot * slot_stride;
    int nfrag = (RA - c0) / 16 < 4 ? (RA - c0) / 16 : 4;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4];
#pragma unroll
    for (int f = 0; f < 4; f++) wmma::fill_fragment(acc[f], 0.0f);
    int r = lane >> 1, cv = (lane & 1) * 4;       /* this lane stages row r, 16-byte columns cv .. cv + 3 */
    const uint4 *xrow = r < nrow ? reinterpret_cast<const uint4 *>(x + (int64_t)perm[row0 + r] * x_stride) : nullptr;
    for (int k0 = w * SKC; k0 < K; k0 += SW * SKC) {
        int kc = K - k0 < SKC ? K - k0 : SKC;     /* a multiple of 16 */
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int col = (cv + i) * 8;
            uint4 q = make_uint4(0, 0, 0, 0);
            if (xrow && col < kc) q = __ldg(xrow + (k0 + col) / 8);
            *reinterpret_cast<uint4 *>(&xs[w][r * SLD + col]) = q;
        }
        __syncwarp();
        for (int kk = 0; kk < kc; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
            wmma::load_matrix_sync(fa, &xs[w][kk], SLD);
#pragma unroll
            for (int f = 0; f < 4; f++) {
                if (f >= nfrag) break;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
                wmma::load_matrix_sync(fb, As + (int64_t)(c0 + 16 * f) * K + k0 + kk, K);
                wmma::mma_sync(acc[f], fa, fb, acc[f]);
            }
        }
        __syncwarp();
    }
#pragma unroll
    for (int f = 0; f < 4; f++) wmma::store_matrix_sync(&red[w][16 * f], acc[f], SNC, wmma::mem_row_major);
    __syncthreads();
    for (int e = threadIdx.x; e < LT * SNC; e += blockDim.x) {
        int rr = e / SNC, cc = e % SNC;
        if (rr < nrow && c0 + cc < RA)
            v[(int64_t)(row0 + rr) * RA + c0 + cc] = ((red[0][e] + red[1][e]) + red[2][e]) + red[3][e];
    }
}

/* acc[i][c] (rows rg + 4 i of the tile, columns n0 + c) = v[row, voff + k] . B[n0 + c, k] over k < R */
__device__ __forceinline__ void expand_dot(float acc[4][8], const float *v, int RA, int voff, const bf16 *Bn, int R,
                                           int row0, int nrow, int rg) {
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int c = 0; c < 8; c++) acc[i][c] = 0.0f;
    for (int k0 = 0; k0 < R; k0 += 8) {
        float b[8][8];
#pragma unroll
        for (int c = 0; c < 8; c++) unpack8(__ldg(reinterpret_cast<const uint4 *>(Bn + (int64_t)c * R + k0)), b[c]);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int rr = rg + 4 * i;
            if (rr >= nrow) break;
            const float4 *vr = reinterpret_cast<const float4 *>(v + (int64_t)(row0 + rr) * RA + voff + k0);
            float4 a = __ldg(vr), b4 = __ldg(vr + 1);
            float vv[8] = {a.x, a.y, a.z, a.w, b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int c = 0; c < 8; c++)
#pragma unroll
                for (int k = 0; k < 8; k++) acc[i][c] = fmaf(vv[k], b[c][k], acc[i][c]);
        }
    }
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
                                                          const int32_t *perm, const int32_t *tiles) {
    int N = sl.end[sl.S - 1], n0 = blockIdx.y * 256 + (threadIdx.x & 31) * 8, rg = threadIdx.x >> 5;
    if (n0 >= N) return;
    int tile = blockIdx.x, slot = tiles[3 * tile], row0 = tiles[3 * tile + 1], nrow = tiles[3 * tile + 2];
    int j = 0;
    while (j < sl.S - 1 && n0 >= sl.end[j]) j++;
    const bf16 *Bn = reinterpret_cast<const bf16 *>(B) + (int64_t)slot * slot_stride + (int64_t)n0 * sl.R;
    float acc[4][8], s = scale[slot];
    expand_dot(acc, v, RA, j * sl.R, Bn, sl.R, row0, nrow, rg);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int rr = rg + 4 * i;
        if (rr >= nrow) break;
        uint4 *yp = reinterpret_cast<uint4 *>(y + (int64_t)perm[row0 + rr] * y_stride + n0);
        float o[8];
        unpack8(*yp, o);
#pragma unroll
        for (int c = 0; c < 8; c++) o[c] += s * acc[i][c];
        *yp = pack8(o);
    }
}

__global__ __launch_bounds__(128) void lora_silu_kernel(k_bf16 *act,               // (T, I)
                                                        const k_bf16 *gu,          // (T, 2I) gate | up
                                                        int I,
                                                        const float *v,            // (rows, RA): gate's A x | up's
                                                        int RA,
                                                        const k_bf16 *B,           // (nslots, slot_stride) -> (2I, R)
                                                        int64_t slot_stride, const float *scale, int R,
                                                        const int32_t *perm, const int32_t *tiles) {
    int n0 = blockIdx.y * 256 + (threadIdx.x & 31) * 8, rg = threadIdx.x >> 5;
    if (n0 >= I) return;
    int tile = blockIdx.x, slot = tiles[3 * tile], row0 = tiles[3 * tile + 1], nrow = tiles[3 * tile + 2];
    float dg[4][8], du[4][8], s = slot >= 0 ? scale[slot] : 0.0f;
    if (slot >= 0) {
        const bf16 *Bs = reinterpret_cast<const bf16 *>(B) + (int64_t)slot * slot_stride;
        expand_dot(dg, v, RA, 0, Bs + (int64_t)n0 * R, R, row0, nrow, rg);
        expand_dot(du, v, RA, R, Bs + (int64_t)(I + n0) * R, R, row0, nrow, rg);
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int rr = rg + 4 * i;
        if (rr >= nrow) break;
        int64_t t = perm[row0 + rr];
        float g[8], u[8], o[8];
        unpack8(__ldg(reinterpret_cast<const uint4 *>(gu + t * 2 * I + n0)), g);
        unpack8(__ldg(reinterpret_cast<const uint4 *>(gu + t * 2 * I + I + n0)), u);
#pragma unroll
        for (int c = 0; c < 8; c++) {
            if (slot >= 0) { g[c] = rbf(g[c] + s * dg[i][c]); u[c] = rbf(u[c] + s * du[i][c]); }
            o[c] = rbf(g[c] / (1.0f + expf(-g[c]))) * u[c];
        }
        *reinterpret_cast<uint4 *>(act + t * I + n0) = pack8(o);
    }
}

static bool al(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

extern "C" int k_lora_shrink(float *v, const k_bf16 *x, int x_stride, const k_bf16 *A, int64_t slot_stride, int RA,
                             int K, const k_lora_batch *b, cudaStream_t s) {
    if (RA <= 0 || RA % 16 || K <= 0 || K % 16 || x_stride < K || x_stride % 8 || slot_stride % 128 ||
        !al(A, 256) || !al(x, 16) || b->ntiles < 0)
        return -1;
    if (b->ntiles == 0) return 0;
    dim3 grid(b->ntiles, (RA + SNC - 1) / SNC);
    lora_shrink_kernel<<<grid, 128, 0, s>>>(v, x, x_stride, A, slot_stride, RA, K, b->perm, b->tiles);
    return K_LAUNCH_OK();
}

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
    dim3 grid(b->ntiles, (sl->end[sl->S - 1] + 255) / 256);
    lora_expand_kernel<<<grid, 128, 0, s>>>(y, y_stride, v, RA, B, slot_stride, scale, *sl, b->perm, b->tiles);
    return K_LAUNCH_OK();
}

extern "C" int k_lora_silu(k_bf16 *act, const k_bf16 *gu, int I, const float *v, int RA, const k_bf16 *B,
                           int64_t slot_stride, const float *scale, int R, const k_lora_batch *b, cudaStream_t s) {
    if (I <= 0 || I % 8 || R <= 0 || R % 8 || RA < 2 * R || RA % 4 || slot_stride % 8 || !al(B, 16) ||
        !al(gu, 16) || !al(act, 16) || !al(v, 16) || b->ntiles_all < b->ntiles)
        return -1;
    if (b->ntiles_all == 0) return 0;
    dim3 grid(b->ntiles_all, (I + 255) / 256);
    lora_silu_kernel<<<grid, 128, 0, s>>>(act, gu, I, v, RA, B, slot_stride, scale, R, b->perm, b->tiles);
    return K_LAUNCH_OK();
}
