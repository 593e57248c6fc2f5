/* flash.cuh: the steps that the mma.sync attention kernels (decode_mma,
 * prefill_mma) share: Q fragments, S = Q K^T, the online softmax, O += P V,
 * in mma.sync m16n8k16's register layout (mma.cuh).  Device code only. */
#ifndef ENGINE_FLASH_CUH
#define ENGINE_FLASH_CUH
#include "engine/mma.cuh"

/* The steps decode_mma and prefill_mma share.  A lane owns rows lane/4 and
 * lane/4 + 8 of a 16-row tile and, in each 8-column tile, the column pair
 * (lane % 4) * 2, (lane % 4) * 2 + 1 (mma.sync m16n8k16's layout). */
/* qa: q rows 0..15 (row stride rs elements) as A fragments over HD = 16 KS
 * dims; a row that is not valid (v0: lane/4, v1: lane/4 + 8) reads as zero */
template <int KS>
__device__ __forceinline__ void flash_load_q(uint32_t (&qa)[KS][4], const bf16 *q, size_t rs, bool v0, bool v1,
                                             int lane) {
    const bf16 *q0 = q + (size_t)(lane >> 2) * rs + (lane & 3) * 2, *q1 = q0 + 8 * rs;
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
        qa[ks][0] = v0 ? *reinterpret_cast<const uint32_t *>(q0 + ks * 16) : 0u;
        qa[ks][1] = v1 ? *reinterpret_cast<const uint32_t *>(q1 + ks * 16) : 0u;
        qa[ks][2] = v0 ? *reinterpret_cast<const uint32_t *>(q0 + ks * 16 + 8) : 0u;
        qa[ks][3] = v1 ? *reinterpret_cast<const uint32_t *>(q1 + ks * 16 + 8) : 0u;
    }
}
/* s (16, 8 NTL) = q K^T for the NTL * 8 keys staged in ks (rows of LD bf16) */
template <int KS, int NTL, int LD>
__device__ __forceinline__ void flash_qk(float (&s)[NTL][4], const uint32_t (&qa)[KS][4], const bf16 *ks, int lane) {
#pragma unroll
    for (int t = 0; t < NTL; t++) s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.0f;
#pragma unroll
    for (int k = 0; k < KS; k += 2)
#pragma unroll
        for (int t = 0; t < NTL; t++) {
            uint32_t kf[4];
            ldsm_x4(kf, ks + (t * 8 + (lane & 7)) * LD + k * 16 + (lane >> 3) * 8);
            mma16816(s[t], qa[k], kf[0], kf[1]);
            mma16816(s[t], qa[k + 1], kf[2], kf[3]);
        }
}
/* online softmax over one tile of scores s (log2 units, -inf where masked):
 * the rows' running max m and sum l, o rescaled, pa = bf16(P) as A fragments
 * (the sum counts P as rounded, as the product uses it) */
template <int NTL, int NT>
__device__ __forceinline__ void flash_softmax(float (&s)[NTL][4], float &m0, float &m1, float &l0, float &l1,
                                              float (&o)[NT][4], uint32_t (&pa)[NTL / 2][4]) {
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int t = 0; t < NTL; t++) {
        mx0 = fmaxf(mx0, fmaxf(s[t][0], s[t][1]));
        mx1 = fmaxf(mx1, fmaxf(s[t][2], s[t][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    /* a row that has seen no key yet stays at -inf without NaNs */
    float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    float a0 = mn0 == -INFINITY ? 1.0f : exp2f(m0 - mn0), a1 = mn1 == -INFINITY ? 1.0f : exp2f(m1 - mn1);
    float b0 = mn0 == -INFINITY ? 0.0f : mn0, b1 = mn1 == -INFINITY ? 0.0f : mn1;
    m0 = mn0; m1 = mn1;
    float ps0 = 0, ps1 = 0;
#pragma unroll
    for (int t = 0; t < NTL; t++) {
        float p0 = rbf(exp2f(s[t][0] - b0)), p1 = rbf(exp2f(s[t][1] - b0));
        float p2 = rbf(exp2f(s[t][2] - b1)), p3 = rbf(exp2f(s[t][3] - b1));
        ps0 += p0 + p1; ps1 += p2 + p3;
        pa[t / 2][(t & 1) * 2] = pack_bf16(p0, p1);        /* row lane/4, keys t*8 + (lane%4)*2.. */
        pa[t / 2][(t & 1) * 2 + 1] = pack_bf16(p2, p3);    /* row lane/4 + 8 */
    }
    l0 = l0 * a0 + ps0; l1 = l1 * a1 + ps1;
#pragma unroll
    for (int t = 0; t < NT; t++) { o[t][0] *= a0; o[t][1] *= a0; o[t][2] *= a1; o[t][3] *= a1; }
}
/* o (16, 8 NT) += P V for the 16 NKK keys staged in vs (rows of LD bf16) */
template <int NKK, int NT, int LD>
__device__ __forceinline__ void flash_pv(float (&o)[NT][4], const uint32_t (&pa)[NKK][4], const bf16 *vs, int lane) {
#pragma unroll
    for (int kk = 0; kk < NKK; kk++)
#pragma unroll
        for (int t = 0; t < NT; t += 2) {
            uint32_t vf[4];
            ldsm_x4_t(vf, vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + t * 8 + (lane >> 4) * 8);
            mma16816(o[t], pa[kk], vf[0], vf[1]);
            mma16816(o[t + 1], pa[kk], vf[2], vf[3]);
        }
}
__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
#endif
