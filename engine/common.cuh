/* common.cuh: device helpers shared by the engine's kernels (bf16 loads and
 * stores, warp and block reductions).  Device code only; no state. */
#ifndef ENGINE_COMMON_CUH
#define ENGINE_COMMON_CUH
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include "engine/kernels.h"

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float ld(const k_bf16 *p, size_t i) {
    return __bfloat162float(reinterpret_cast<const bf16 *>(p)[i]);
}
__device__ __forceinline__ void st(k_bf16 *p, size_t i, float v) {
    reinterpret_cast<bf16 *>(p)[i] = __float2bfloat16_rn(v);
}
/* what storing in bf16 and reading back gives (to mimic torch's rounding) */
__device__ __forceinline__ float rbf(float v) {
    return __bfloat162float(__float2bfloat16_rn(v));
}

/* 8 bf16 in a 16-byte word -> float (exact: the bf16 is the float's high half) */
__device__ __forceinline__ void unpack8(uint4 q, float f[8]) {
    uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        f[2 * k] = __uint_as_float(w[k] << 16);
        f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets it. */
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float sh[32];
    __syncthreads();
    v = warp_sum(v);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v) {
    __shared__ float sh[32];
    __syncthreads();
    v = warp_max(v);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : -INFINITY;
    return warp_max(v);
}
/* argmax over the block of (v, i), first index on ties; every thread gets it */
__device__ __forceinline__ void block_argmax(float &v, int &i) {
    __shared__ float sv[32];
    __shared__ int si[32];
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
    }
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (l == 0) { sv[w] = v; si[w] = i; }
    __syncthreads();
    v = l < nw ? sv[l] : -INFINITY;
    i = l < nw ? si[l] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
    }
}
#define K_LAUNCH_OK() (cudaPeekAtLastError() == cudaSuccess ? 0 : -1)
#endif
