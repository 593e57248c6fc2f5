/* lora_shrink.cu: the LoRA shrink v = x[perm] @ A_slot^T (kernels_lora.h), on
 * WMMA bf16 16x16x16 tensor-core tiles, 64 columns of A x per block.  K is
 * cut into fixed splits of K_LORA_KSPLIT (512), a split into 4 pieces of 128;
 * a piece's sum w_i runs in one warp, P_s = ((w0 + w1) + w2) + w3 and v =
 * ((P_0 + P_1) + ...) in split order, whatever the mode:
 *   split (small batches)  a block per tile and split; its 4 warps take the
 *       split's 4 pieces (x rows gathered through perm and A's rows copied to
 *       shared memory with cp.async), add them into P_s in the work buffer,
 *       and lora_shrink_reduce adds the splits;
 *   looped (large batches) a block per 1, 2 or 4 tiles, a warp per tile, looping over
 *       all pieces through a 3-stage cp.async pipeline, A's piece shared by
 *       the block's tiles when they have one slot.
 * The same additions either way, so a row's v never depends on the rest of
 * the batch or on the mode.
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

__global__ __launch_bounds__(128) void lora_shrink_kernel(float *work,            // (nsplit, rows, RA)
                                                          int rows,
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
    int ncm = RA < SNC ? RA : SNC, nc = RA - c0 < SNC ? RA - c0 : SNC;
    shrink_split(red, stage, ncm, reinterpret_cast<const bf16 *>(x), x_stride, As, K, nc, c0, perm, row0, nrow,
                 blockIdx.z * K_LORA_KSPLIT);
#pragma unroll
    for (int i = 0; i < PER; i++) {
        int e = threadIdx.x + i * SW * 32, rr = e / SNC, cc = e % SNC;
        float p = ((red[e] + red[LT * SNC + e]) + red[2 * LT * SNC + e]) + red[3 * LT * SNC + e];
        if (rr < nrow && cc < nc) work[(int64_t)blockIdx.z * rows * RA + (int64_t)(row0 + rr) * RA + c0 + cc] = p;
    }
}

/* The looped shrink (large batches): a block takes a group of lg tiles (lg
 * warps: 4 from 512 tiles, 2 from 256, else 1), warp w the group's tile w,
 * and 64 columns of A x.  K runs in pieces of SWK
 * (128; a split is 4 pieces) through an LST-stage cp.async pipeline of
 * shared memory: the group's x rows and A's rows for the piece, A read once
 * for the 64 rows of a slot's run of tiles (the tiles are sorted by slot).
 * A warp adds a split's pieces in registers exactly as the split kernel adds
 * its warps' sums, P = ((w0 + w1) + w2) + w3 (pieces past K give 0), and v =
 * ((P0 + P1) + ...): bit for bit the split mode's values. */
#define LG 4                /* most tiles (warps) per block */
#define LST 3               /* pipeline stages */
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> sacc_t;

/* the run's piece p into stage buffer buf: the x rows with rowoff[r] >= 0 (x + rowoff[r] = row r of the
 * group's tile r / 16 when that tile is in the run) and A rows c0 .. c0 + nc */
__device__ void loop_stage(bf16 *buf, const bf16 *x, const int64_t *rowoff, const bf16 *As, int K, int nc, int c0,
                           int p) {
    int kw = p * SWK, kc = K - kw < SWK ? K - kw : SWK;
    if (kc <= 0) return;
    int lg = blockDim.x >> 5;
    bf16 *as = buf + lg * LT * SXP;
    for (int i = threadIdx.x; i < lg * LT * (SWK / 8); i += blockDim.x) {
        int r = i / (SWK / 8), c = (i % (SWK / 8)) * 8;
        int64_t o = rowoff[r];
        if (c < kc && o >= 0) cp_async16(buf + r * SXP + c, x + o + kw + c, true);
    }
    for (int i = threadIdx.x; i < nc * (SWK / 8); i += blockDim.x) {
        int r = i / (SWK / 8), c = (i % (SWK / 8)) * 8;
        if (c < kc) cp_async16(as + r * SXP + c, As + (int64_t)(c0 + r) * K + kw + c, true);
    }
}

/* run[f] = v of warp w's tile over all of K for the slot's run, through the pipeline */
__device__ void loop_run(sacc_t run[SNC / 16], bf16 *smem, int ncm, const bf16 *x, int x_stride, const bf16 *As,
                         int K, int nc, int c0, const int32_t *perm, const int32_t *tiles, int t0, int wa, int wb) {
    int w = threadIdx.x >> 5, np = (K + K_LORA_KSPLIT - 1) / K_LORA_KSPLIT * SW;
    int lg = blockDim.x >> 5;
    size_t sz = (size_t)(lg * LT + ncm) * SXP;
    bool mine = w >= wa && w < wb;
    sacc_t acc[SNC / 16], P[SNC / 16];
    int64_t *rowoff = reinterpret_cast<int64_t *>(smem + LST * sz);     /* (lg * LT,) */
    for (int r = threadIdx.x; r < lg * LT; r += blockDim.x) {
        int t = t0 + r / LT, rr = r % LT;              /* tiles past the run (or ntiles) are not read */
        bool in = r / LT >= wa && r / LT < wb && rr < tiles[3 * t + 2];
        rowoff[r] = in ? (int64_t)perm[tiles[3 * t + 1] + rr] * x_stride : -1;
    }
    __syncthreads();
#pragma unroll
    for (int st = 0; st < LST - 1; st++) {
        if (st < np) loop_stage(smem + st * sz, x, rowoff, As, K, nc, c0, st);
        asm volatile("cp.async.commit_group;\n" ::);
    }
    for (int p = 0; p < np; p++) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(LST - 2));
        __syncthreads();                              /* piece p landed; piece p - 1's buffer is free */
        if (p + LST - 1 < np)
            loop_stage(smem + (p + LST - 1) % LST * sz, x, rowoff, As, K, nc, c0, p + LST - 1);
        asm volatile("cp.async.commit_group;\n" ::);
        if (!mine) continue;
        const bf16 *xs = smem + p % LST * sz + w * LT * SXP, *as = smem + p % LST * sz + lg * LT * SXP;
        int kc = K - p * SWK < SWK ? K - p * SWK : SWK;
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
#pragma unroll
        for (int f = 0; f < SNC / 16; f++)
#pragma unroll
            for (int e = 0; e < acc[f].num_elements; e++) {
                P[f].x[e] = p % SW ? P[f].x[e] + acc[f].x[e] : acc[f].x[e];
                if (p % SW == SW - 1) run[f].x[e] = p == SW - 1 ? P[f].x[e] : run[f].x[e] + P[f].x[e];
            }
    }
    asm volatile("cp.async.wait_group 0;\n" ::);
    __syncthreads();                                  /* every warp done with the buffers */
}

__global__ __launch_bounds__(128) void lora_shrink_loop_kernel(float *v,               // (rows, RA)
                                                               const k_bf16 *x,        // (T, x_stride)
                                                               int x_stride,
                                                               const k_bf16 *A,        // (nslots, ...) -> (RA, K)
                                                               int64_t slot_stride, int RA, int K,
                                                               const int32_t *perm,    // (rows,)
                                                               const int32_t *tiles,   // (ntiles, 3)
                                                               int ntiles) {
    extern __shared__ __align__(128) unsigned char lora_smem[];
    bf16 *smem = reinterpret_cast<bf16 *>(lora_smem);
    float *out = reinterpret_cast<float *>(lora_smem);
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, lg = blockDim.x >> 5, t0 = blockIdx.x * lg;
    int c0 = blockIdx.y * SNC, nt = ntiles - t0 < lg ? ntiles - t0 : lg;
    int ncm = RA < SNC ? RA : SNC, nc = RA - c0 < SNC ? RA - c0 : SNC;
    for (int wa = 0, wb; wa < nt; wa = wb) {          /* runs of tiles of one slot */
        int slot = tiles[3 * (t0 + wa)];
        for (wb = wa + 1; wb < nt && tiles[3 * (t0 + wb)] == slot; wb++) {}
        sacc_t run[SNC / 16];
        loop_run(run, smem, ncm, reinterpret_cast<const bf16 *>(x), x_stride,
                 reinterpret_cast<const bf16 *>(A) + (int64_t)slot * slot_stride, K, nc, c0, perm, tiles, t0, wa, wb);
        if (w >= wa && w < wb) {                      /* through shared memory: only the tile's rows */
            float *o = out + w * LT * SNC;
#pragma unroll
            for (int f = 0; f < SNC / 16; f++) wmma::store_matrix_sync(o + 16 * f, run[f], SNC, wmma::mem_row_major);
            __syncwarp();
            int row0 = tiles[3 * (t0 + w) + 1], nrow = tiles[3 * (t0 + w) + 2];
            for (int e = lane; e < LT * SNC; e += 32)
                if (e / SNC < nrow && e % SNC < nc) v[(int64_t)(row0 + e / SNC) * RA + c0 + e % SNC] = o[e];
        }
        __syncthreads();                              /* out read before the next run's copies */
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
    int split = nsplit > 1 && b->rows <= K_LORA_SPLIT_ROWS && b->work &&
                k_lora_shrink_work(RA, K, b->rows) <= b->work_elems;
    if (!split) {
        int lg = b->ntiles >= 512 ? LG : b->ntiles >= 256 ? 2 : 1;  /* blocks enough to fill the GPU */
        size_t smem = (size_t)LST * (lg * LT + ncm) * SXP * 2 + lg * LT * sizeof(int64_t);
        if (smem < (size_t)lg * LT * SNC * 4) smem = (size_t)lg * LT * SNC * 4;
        if (smem > 48 * 1024 &&
            cudaFuncSetAttribute(lora_shrink_loop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem))
            return -1;
        dim3 grid((b->ntiles + lg - 1) / lg, (RA + SNC - 1) / SNC);
        lora_shrink_loop_kernel<<<grid, lg * 32, smem, s>>>(v, x, x_stride, A, slot_stride, RA, K, b->perm, b->tiles,
                                                            b->ntiles);
        return K_LAUNCH_OK();
    }
    size_t smem = (size_t)SW * (LT + ncm) * SXP * 2;
    if (smem < (size_t)SW * LT * SNC * 4) smem = (size_t)SW * LT * SNC * 4;
    if (smem > 48 * 1024 &&                         /* per device: set at each call (cheap) */
        cudaFuncSetAttribute(lora_shrink_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess)
        return -1;
    dim3 grid(b->ntiles, (RA + SNC - 1) / SNC, nsplit);
    lora_shrink_kernel<<<grid, SW * 32, smem, s>>>(b->work, b->rows, x, x_stride, A, slot_stride, RA, K, b->perm,
                                                   b->tiles);
    int64_t n = (int64_t)b->rows * RA;
    int blocks = (int)((n + 255) / 256 < 1024 ? (n + 255) / 256 : 1024);
    lora_shrink_reduce<<<blocks, 256, 0, s>>>(v, b->work, n, nsplit);
    return K_LAUNCH_OK();
}
