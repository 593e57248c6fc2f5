/* moe_kernels.cuh: device code of a mixture-of-experts layer apart from its
 * GEMMs (grouped_gemm.cuh): routing, the permutation of (token, choice) pairs
 * into expert order, and the weighted combine back to token order.  The
 * launchers are in moe.cu.
 *
 * Shapes: T tokens, E experts, k chosen per token, Tk = T k pairs; pair
 * p = t k + i is token t's i-th choice (choices ascending by expert).
 *   topk_ids (T, k) int32, topk_w (T, k) float
 *   counts (E,), offsets (E + 1,): expert e owns rows offsets[e] .. offsets[e+1]
 *   pair_row (Tk,): the row of pair p in expert order; row_token (Tk,): its token
 *   tiles (2, max_tiles) int32: (expert, first row) of each row tile of tile_m rows */
#ifndef ENGINE_MOE_KERNELS_CUH
#define ENGINE_MOE_KERNELS_CUH
#include "engine/common.cuh"

/* ---- routing: a warp per token.  As transformers' Qwen3-MoE router:
 * p = softmax(logits) in fp32 over all E experts; the k largest (ties: the
 * lower expert); with norm, w = p / sum of the k.  Lane i < k ends with
 * choice i; the choices are written ascending by expert (the order in which
 * transformers adds the experts' outputs). ---- */
template <int EPL>   /* experts per lane: ceil(E / 32) */
__global__ void moe_route_kernel(int32_t *ids, float *wts, const k_bf16 *logits, int T, int E, int k, int norm) {
    int t = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (t >= T) return;
    const k_bf16 *row = logits + (size_t)t * E;
    float v[EPL], mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < EPL; j++) {
        int e = lane + 32 * j;
        v[j] = e < E ? ld(row, e) : -INFINITY;
        mx = fmaxf(mx, v[j]);
    }
    mx = warp_max(mx);
    float sum = 0;
#pragma unroll
    for (int j = 0; j < EPL; j++) {
        v[j] = lane + 32 * j < E ? expf(v[j] - mx) : 0.0f;
        sum += v[j];
    }
    sum = warp_sum(sum);
#pragma unroll
    for (int j = 0; j < EPL; j++) v[j] = lane + 32 * j < E ? v[j] / sum : -1.0f;   /* taken or absent: -1 */
    int my_e = 0;
    float my_p = 0;
    for (int i = 0; i < k; i++) {
        float bp = -1.0f;
        int be = 0x7fffffff;
#pragma unroll
        for (int j = 0; j < EPL; j++)
            if (v[j] > bp) { bp = v[j]; be = lane + 32 * j; }
        for (int o = 16; o > 0; o >>= 1) {
            float op = __shfl_xor_sync(0xffffffffu, bp, o);
            int oe = __shfl_xor_sync(0xffffffffu, be, o);
            if (op > bp || (op == bp && oe < be)) { bp = op; be = oe; }
        }
        if (lane == i) { my_e = be; my_p = bp; }
        if ((be & 31) == lane) {
#pragma unroll
            for (int j = 0; j < EPL; j++)
                if (j == (be >> 5)) v[j] = -1.0f;
        }
    }
    float tot = warp_sum(lane < k ? my_p : 0.0f);
    /* rank by expert id among the k choices */
    int rank = 0;
    for (int j = 0; j < k; j++) {
        int oe = __shfl_sync(0xffffffffu, my_e, j);
        rank += oe < my_e;
    }
    if (lane < k) {
        ids[(size_t)t * k + rank] = my_e;
        wts[(size_t)t * k + rank] = norm ? my_p / tot : my_p;
    }
}

/* ---- permutation, 1: rows per expert (a shared-memory histogram per block) ---- */
__global__ void moe_count_kernel(int32_t *counts, const int32_t *ids, int n, int E) {
    extern __shared__ int32_t hist[];                 /* (E,) */
    for (int e = threadIdx.x; e < E; e += blockDim.x) hist[e] = 0;
    __syncthreads();
    for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < n; p += gridDim.x * blockDim.x) {
        int e = ids[p];
        if (e >= 0 && e < E) atomicAdd(&hist[e], 1);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x)
        if (hist[e]) atomicAdd(&counts[e], hist[e]);
}

/* ---- 2: one block of >= E threads: offsets (exclusive prefix sum), the
 * cursors of step 3, and the row tiles of the grouped GEMMs ---- */
__global__ void moe_scan_kernel(int32_t *offsets, int32_t *cursor, int32_t *tiles, int32_t *ntiles,
                                const int32_t *counts, int E, int tile_m, int max_tiles) {
    __shared__ int32_t sc[K_MOE_MAX_EXPERTS + 1], st[K_MOE_MAX_EXPERTS + 1];
    int e = threadIdx.x;
    int c = e < E ? counts[e] : 0;
    if (e <= E) { sc[e] = c; st[e] = (c + tile_m - 1) / tile_m; }
    __syncthreads();
    if (e == 0) {                                      /* E <= 512: a serial scan is cheap */
        int a = 0, b = 0;
        for (int i = 0; i < E; i++) {
            int ci = sc[i], ti = st[i];
            sc[i] = a; st[i] = b;
            a += ci; b += ti;
        }
        sc[E] = a; st[E] = b;
        *ntiles = b < max_tiles ? b : max_tiles;
    }
    __syncthreads();
    if (e <= E) offsets[e] = sc[e];
    if (e < E) {
        cursor[e] = sc[e];
        for (int i = 0; i * tile_m < c; i++) {
            int ti = st[e] + i;
            if (ti < max_tiles) { tiles[2 * ti] = e; tiles[2 * ti + 1] = sc[e] + i * tile_m; }
        }
    }
}

/* ---- 3: each pair takes the next row of its expert (the order within an
 * expert does not matter: rows are computed independently and the combine
 * adds in expert order) ---- */
__global__ void moe_assign_kernel(int32_t *pair_row, int32_t *row_token, int32_t *cursor, const int32_t *ids,
                                  int n, int k, int E) {
    for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < n; p += gridDim.x * blockDim.x) {
        int e = ids[p];
        if (e < 0 || e >= E) { pair_row[p] = -1; continue; }
        int r = atomicAdd(&cursor[e], 1);
        pair_row[p] = r;
        row_token[r] = p / k;
    }
}

/* ---- the rows of x in expert order (the cuBLAS path's A operand):
 * xp (Tk, D) = x[row_token[r]], 8 columns a thread ---- */
__global__ void moe_gather_kernel(uint4 *xp, const uint4 *x, const int32_t *row_token, int n, int D8) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)n * D8;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / D8, c = i % D8;
        xp[i] = x[(size_t)row_token[r] * D8 + c];
    }
}

/* ---- combine: out (T, D) = the k rows of each token weighted and added in
 * ascending expert order, each product and each partial sum rounded to bf16
 * (transformers: (y * w).to(bf16), then index_add_ into a bf16 zero tensor,
 * expert after expert).  A block per token, 8 columns a thread. ---- */
__global__ void moe_combine_kernel(k_bf16 *out, const k_bf16 *y, const int32_t *pair_row, const float *wts,
                                   int T, int D, int k) {
    int t = blockIdx.x;
    if (t >= T) return;
    for (int c = threadIdx.x * 8; c < D; c += blockDim.x * 8) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int i = 0; i < k; i++) {
            int r = pair_row[(size_t)t * k + i];
            float w = wts[(size_t)t * k + i], v[8];
            if (r < 0) continue;
            unpack8(*reinterpret_cast<const uint4 *>(y + (size_t)r * D + c), v);
#pragma unroll
            for (int j = 0; j < 8; j++) acc[j] = rbf(acc[j] + rbf(v[j] * w));
        }
        uint4 q;
        q.x = (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(acc[0])) | (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(acc[1])) << 16;
        q.y = (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(acc[2])) | (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(acc[3])) << 16;
        q.z = (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(acc[4])) | (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(acc[5])) << 16;
        q.w = (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(acc[6])) | (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(acc[7])) << 16;
        *reinterpret_cast<uint4 *>(out + (size_t)t * D + c) = q;
    }
}
#endif
