/* mma.cuh: the warp-level tensor-core and async-copy instructions the
 * engine's kernels are built from (sm_80 and later, so sm_90 too):
 * cp.async 16-byte copies into shared memory, ldmatrix, mma.sync
 * m16n8k16 with bf16 inputs and fp32 accumulators.  Device code only.
 *
 * mma.sync m16n8k16's fragments, for a lane l of the warp (g = l / 4, c = l % 4):
 *   A (16 x 16, row-major) a0: (g, 2c..2c+1)  a1: (g+8, 2c..)  a2: (g, 8+2c..)  a3: (g+8, 8+2c..)
 *   B (16 x 8, k x n)      b0: (k 2c..2c+1, n g)  b1: (k 8+2c.., n g)
 *   C (16 x 8, fp32)       c0, c1: (g, 2c..2c+1)  c2, c3: (g+8, 2c..2c+1)
 * A stored row-major [m][k] and B stored as [n][k] (a weight matrix as
 * transformers keeps it: out_features x in_features) are both read with the
 * plain (non-transposed) ldmatrix. */
#ifndef ENGINE_MMA_CUH
#define ENGINE_MMA_CUH
#include "engine/common.cuh"

/* 16 bytes global -> shared; src_bytes < 16 zero-fills the rest (0: all zeros) */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/* waits until at most N of this thread's committed groups are still in flight */
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
/* four 8x8 b16 matrices from shared memory; lane l gives the row address of
 * matrix l / 8, row l % 8 */
__device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, const void *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
/* c (16x8 f32) += a (16x16 bf16, row) b (16x8 bf16, col) */
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}
#endif
