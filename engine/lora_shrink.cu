/* lora_shrink.cu: the LoRA shrink v = x[perm] @ A_slot^T (kernels_lora.h), on
 * WMMA bf16 16x16x16 tensor-core tiles.  A block takes one tile (up to 16
 * rows of one slot) and 64 columns of A x.  K is cut into fixed splits of
 * K_LORA_KSPLIT (512); in a split each of the 4 warps takes 128 of K, copies
 * its piece of the tile's x rows (gathered through perm) and of A's rows into
 * shared memory with cp.async (all in flight at once), multiplies, and the
 * warps' sums are added in a fixed order: P_s.  Then v = ((P_0 + P_1) + ...)
 * in split order, either in the block (many tiles: the block loops over the
 * splits) or, for small batches, one block per split writing P_s to the work
 * buffer and lora_shrink_reduce adding them: the same additions either way,
 * so a row's v never depends on the rest of the batch or on the mode.
 * Touches only v and the work buffer. */
#include <mma.h>
#include "engine/common.cuh"
#include "engine/kernels_lora.h"

using namespace nvcuda;

#define LT 16               /* rows per tile (LORA_TILE, engine/lora_slots.h) */
#define SW 4                /* warps of a block */
#define SWK 128             /* K per warp in a split: SW * SWK = K_LORA_KSPLIT */
#define SNC 64              /* columns of A x per block */
#define SXP (SWK + 8)       /* staged row pitch (bf16): 272 bytes */
#define PER (LT * SNC / (SW * 32))   /* partial sums per thread: 8 */

static_assert(SW * SWK == K_LORA_KSPLIT, "a split is the block's 4 warps' K");

__device__ __forceinline__ void cp_async16(void *smem, const void *g, bool ok) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    int n = ok ? 16 : 0;                            /* 0: fill with zeros, read nothing */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(g), "r"(n));
}
__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.commit_group;\ncp.async.wait_all;\n" ::: "memory");
}

/* The split starting at k0 of a tile: red[w] (LT, SNC) = warp w's sum over its
 * 128 of K.  stage: per warp (LT + ncm) x SXP bf16; red aliases it. */
__device__ void shrink_split(float *red, bf16 *stage, int ncm, const bf16 *x, int x_stride, const bf16 *As, int K,
                             int nc, int c0, const int32_t *perm, int row0, int nrow, int k0) {
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    bf16 *xs = stage + (size_t)w * (LT + ncm) * SXP, *as = xs + LT * SXP;
    int kw = k0 + w * SWK, kc = K - kw < SWK ? K - kw : SWK;      /* a multiple of 16; <= 0: nothing */
    if (kc > 0) {
        for (int i = lane; i < LT * (SWK / 8); i += 32) {         /* x rows: 16 bytes a copy */
            int r = i / (SWK / 8), c = (i % (SWK / 8)) * 8;
            bool ok = r < nrow && c < kc;
            const bf16 *src = ok ? x + (int64_t)perm[row0 + r] * x_stride + kw + c : x;
            cp_async16(xs + r * SXP + c, src, ok);
        }
        for (int i = lane; i < nc * (SWK / 8); i += 32) {         /* A rows c0 .. c0 + nc */
            int r = i / (SWK / 8), c = (i % (SWK / 8)) * 8;
            bool ok = c < kc;
            const bf16 *src = ok ? As + (int64_t)(c0 + r) * K + kw + c : As;
            cp_async16(as + r * SXP + c, src, ok);
        }
        cp_async_wait_all();
        __syncwarp();
    }
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[SNC / 16];
#pragma unroll
    for (int f = 0; f < SNC / 16; f++) wmma::fill_fragment(acc[f], 0.0f);
    for (int kk = 0; kk < kc; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::load_matrix_sync(fa, xs + kk, SXP);
#pragma unroll
        for (int f = 0; f < SNC / 16; f++) {
            if (16 * f >= nc) break;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
            wmma::load_matrix_sync(fb, as + 16 * f * SXP + kk, SXP);
            wmma::mma_sync(acc[f], fa, fb, acc[f]);
        }
    }
    __syncthreads();                                              /* every warp done with stage */
#pragma unroll
    for (int f = 0; f < SNC / 16; f++)
        wmma::store_matrix_sync(red + w * LT * SNC + 16 * f, acc[f], SNC, wmma::mem_row_major);
    __syncthreads();
}

__global__ __launch_bounds__(128) void lora_shrink_kernel(float *v,               // (rows, RA)
                                                          float *work,            // (nsplit, rows, RA) split mode
                                                          int rows, int split,    // split: one block per split
                                                          const k_bf16 *x,        // (T, x_stride)
                                                          int x_stride,
                                                          const k_bf16 *A,        // (nslots, slot_stride) -> (RA, K)
                                                          int64_t slot_stride, int RA, int K,
                                                          const int32_t *perm,    // (rows,)
                                                          const int32_t *tiles) { // (ntiles, 3)
    extern __shared__ __align__(128) unsigned char lora_smem[];
    bf16 *stage = reinterpret_cast<bf16 *>(lora_smem);
    float *red = reinterpret_cast<float *>(lora_smem);
    int tile = blockIdx.x, c0 = blockIdx.y * SNC;
    int slot = tiles[3 * tile], row0 = tiles[3 * tile + 1], nrow = tiles[3 * tile + 2];
    const bf16 *As = reinterpret_cast<const bf16 *>(A) + (int64_t)slot * slot_stride;
    const bf16 *xb = reinterpret_cast<const bf16 *>(x);
    int ncm = RA < SNC ? RA : SNC, nc = RA - c0 < SNC ? RA - c0 : SNC;
    int nsplit = (K + K_LORA_KSPLIT - 1) / K_LORA_KSPLIT;
    int s0 = split ? blockIdx.z : 0, s1 = split ? blockIdx.z + 1 : nsplit;
    float run[PER];
    for (int s = s0; s < s1; s++) {
        shrink_split(red, stage, ncm, xb, x_stride, As, K, nc, c0, perm, row0, nrow, s * K_LORA_KSPLIT);
#pragma unroll
        for (int i = 0; i < PER; i++) {
            int e = threadIdx.x + i * SW * 32;
            float p = ((red[e] + red[LT * SNC + e]) + red[2 * LT * SNC + e]) + red[3 * LT * SNC + e];
            run[i] = s == s0 ? p : run[i] + p;
        }
        __syncthreads();                                          /* red read before the next split's copies */
    }
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int e = threadIdx.x + i * SW * 32, rr = e / SNC, cc = e % SNC;
        if (rr >= nrow || cc >= nc) continue;
        int64_t o = (int64_t)(row0 + rr) * RA + c0 + cc;
        if (split) work[(int64_t)blockIdx.z * rows * RA + o] = run[i];
        else v[o] = run[i];
    }
}

/* v = ((work_0 + work_1) + ...) over the nsplit partials, in split order */
__global__ void lora_shrink_reduce(float *v,            // (n,)
                                   const float *work,   // (nsplit, n)
                                   int64_t n, int nsplit) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float a = work[i];
        for (int s = 1; s < nsplit; s++) a = a + work[(int64_t)s * n + i];
        v[i] = a;
    }
}

static bool al(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

extern "C" int k_lora_shrink(float *v, const k_bf16 *x, int x_stride, const k_bf16 *A, int64_t slot_stride, int RA,
                             int K, const k_lora_batch *b, cudaStream_t s) {
    if (RA <= 0 || RA % 16 || K <= 0 || K % 16 || x_stride < K || x_stride % 8 || slot_stride % 128 ||
        !al(A, 256) || !al(x, 16) || b->ntiles < 0)
        return -1;
    if (b->ntiles == 0) return 0;
    int ncm = RA < SNC ? RA : SNC, nsplit = (K + K_LORA_KSPLIT - 1) / K_LORA_KSPLIT;
    size_t smem = (size_t)SW * (LT + ncm) * SXP * 2;
    if (smem < (size_t)SW * LT * SNC * 4) smem = (size_t)SW * LT * SNC * 4;
    if (smem > 48 * 1024 &&                         /* per device: set at each call (cheap) */
        cudaFuncSetAttribute(lora_shrink_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess)
        return -1;
    int split = nsplit > 1 && b->rows <= K_LORA_SPLIT_ROWS && b->work &&
                k_lora_shrink_work(RA, K, b->rows) <= b->work_elems;
    dim3 grid(b->ntiles, (RA + SNC - 1) / SNC, split ? nsplit : 1);
    lora_shrink_kernel<<<grid, SW * 32, smem, s>>>(v, b->work, b->rows, split, x, x_stride, A, slot_stride, RA, K,
                                                   b->perm, b->tiles);
    if (split) {
        int64_t n = (int64_t)b->rows * RA;
        int blocks = (int)((n + 255) / 256 < 1024 ? (n + 255) / 256 : 1024);
        lora_shrink_reduce<<<blocks, 256, 0, s>>>(v, b->work, n, nsplit);
    }
    return K_LAUNCH_OK();
}
