/* grouped_gemm_wgmma.cuh: the experts' grouped GEMM for many rows per expert
 * (prefill), on Hopper's warpgroup MMA (wgmma.cuh): the same contract as
 * grouped_gemm_kernel (grouped_gemm.cuh: row tiles (e, r0) of tiles[], rows of
 * a gathered through a_rows, SWIGLU fused, expert sizes read on the device).
 *
 * Block: 128 rows x BN columns of w_e (SWIGLU: BN/2 gate and BN/2 up rows),
 * two warpgroups of 64 rows each; K in steps of 64 (one 128-byte swizzled row
 * of each tile) through NS shared-memory stages filled by cp.async from all
 * 256 threads; per stage each warpgroup issues 4 wgmma m64nBNk16 and keeps
 * one stage's batch in flight while the next loads land.  Device code;
 * launcher in moe.cu. */
#ifndef ENGINE_GROUPED_GEMM_WGMMA_CUH
#define ENGINE_GROUPED_GEMM_WGMMA_CUH
#include "engine/mma.cuh"
#include "engine/wgmma.cuh"

template <int BN, int NS>
struct ggw_smem {
    static constexpr int A = 128 * 128, B = BN * 128;        /* bytes of a stage's A (128 x 64) and B (BN x 64) */
    static constexpr size_t stage = (size_t)A + B;
    static constexpr size_t bytes = stage * NS + 1024;        /* + alignment to 1024 */
};

/* chunk c (16 bytes) of row r of a swizzled tile */
__device__ __forceinline__ int ggw_off(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

/* The epilogue: from the accumulators d (BN/2 f32 a thread, wgmma's layout), y's rows
 * r0 + 64 wg + 16 warp + lane/4 (+ 8) below rend, columns o0 + 8 j + 2 (lane % 4) below N,
 * as bf16 pairs (SWIGLU: silu(gate) * up, with transformers' roundings) */
template <int BN, bool SWIGLU>
__device__ __forceinline__ void grouped_gemm_wgmma_store(k_bf16 *y, const float (&d)[BN / 2], int r0, int rend,
                                                         int o0, int wg, int warp, int lane, int N) {
    int cq = (lane & 3) * 2;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int r = r0 + wg * 64 + warp * 16 + (lane >> 2) + h * 8;
        if (r >= rend) continue;
        bf16 *yr = reinterpret_cast<bf16 *>(y) + (size_t)r * N;
#pragma unroll
        for (int j = 0; j < (SWIGLU ? BN / 16 : BN / 8); j++) {
            int col = o0 + j * 8 + cq;
            if (col >= N) continue;
            float v0, v1;
            if (SWIGLU) {
                float g0 = rbf(d[4 * j + 2 * h]), g1 = rbf(d[4 * j + 2 * h + 1]);
                float u0 = rbf(d[4 * (j + BN / 16) + 2 * h]), u1 = rbf(d[4 * (j + BN / 16) + 2 * h + 1]);
                v0 = rbf(g0 / (1.0f + expf(-g0))) * u0;
                v1 = rbf(g1 / (1.0f + expf(-g1))) * u1;
            } else {
                v0 = d[4 * j + 2 * h];
                v1 = d[4 * j + 2 * h + 1];
            }
            if (col + 1 < N) *reinterpret_cast<__nv_bfloat162 *>(yr + col) = __floats2bfloat162_rn(v0, v1);
            else yr[col] = __float2bfloat16_rn(v0);
        }
    }
}

template <int BN, int NS, bool SWIGLU>
__global__ void __launch_bounds__(256, 1)
grouped_gemm_wgmma_kernel(k_bf16 *y, const k_bf16 *a, const int32_t *a_rows, const k_bf16 *w, size_t w_stride,
                          const int32_t *tiles, const int32_t *ntiles, const int32_t *offsets, int N, int K) {
#if WGMMA_OK
    typedef ggw_smem<BN, NS> L;
    constexpr int NACC = BN / 2, A_CPT = 128 * 8 / 256, B_CPT = BN * 8 / 256;
    int tile = blockIdx.y;
    if (tile >= *ntiles) return;
    int e = tiles[2 * tile], r0 = tiles[2 * tile + 1], rend = offsets[e + 1];
    int tid = threadIdx.x, wg = tid >> 7, t = tid & 127, warp = t >> 5, lane = t & 31;
    constexpr int BO = SWIGLU ? BN / 2 : BN;
    int o0 = blockIdx.x * BO;
    const bf16 *we = reinterpret_cast<const bf16 *>(w) + (size_t)e * w_stride;
    extern __shared__ unsigned char smem_raw[];
    unsigned char *sm = reinterpret_cast<unsigned char *>(((uintptr_t)smem_raw + 1023) & ~(uintptr_t)1023);

    /* the chunks this thread copies: row and chunk fixed over K */
    const bf16 *asrc[A_CPT];
    int aoff[A_CPT];
    bool aok[A_CPT];
#pragma unroll
    for (int i = 0; i < A_CPT; i++) {
        int c = tid + i * 256, row = c >> 3, r = r0 + row;
        aok[i] = r < rend;
        asrc[i] = reinterpret_cast<const bf16 *>(a) + (size_t)(aok[i] ? (a_rows ? a_rows[r] : r) : 0) * K + (c & 7) * 8;
        aoff[i] = ggw_off(row, c & 7);
    }
    const bf16 *bsrc[B_CPT];
    int boff[B_CPT];
    bool bok[B_CPT];
#pragma unroll
    for (int i = 0; i < B_CPT; i++) {
        int c = tid + i * 256, row = c >> 3;
        int col = SWIGLU ? (row < BN / 2 ? o0 + row : o0 + row - BN / 2) : o0 + row;   /* output column */
        int n = SWIGLU && row >= BN / 2 ? N + col : col;                                /* row of w_e */
        bok[i] = col < N;
        bsrc[i] = we + (size_t)(bok[i] ? n : 0) * K + (c & 7) * 8;
        boff[i] = L::A + ggw_off(row, c & 7);
    }
    auto load_stage = [&](int st, int k0) {
        unsigned char *s = sm + (size_t)st * L::stage;
#pragma unroll
        for (int i = 0; i < A_CPT; i++) {
            bool ok = aok[i] && k0 + ((tid + i * 256) & 7) * 8 < K;
            cp_async16(s + aoff[i], ok ? asrc[i] + k0 : asrc[i], ok ? 16 : 0);
        }
#pragma unroll
        for (int i = 0; i < B_CPT; i++) {
            bool ok = bok[i] && k0 + ((tid + i * 256) & 7) * 8 < K;
            cp_async16(s + boff[i], ok ? bsrc[i] + k0 : bsrc[i], ok ? 16 : 0);
        }
    };

    float d[NACC];
#pragma unroll
    for (int i = 0; i < NACC; i++) d[i] = 0.0f;
    int KT = (K + 63) / 64;
#pragma unroll
    for (int s = 0; s < NS - 1; s++) {
        if (s < KT) load_stage(s, s * 64);
        cp_async_commit();
    }
    for (int kt = 0; kt < KT; kt++) {
        cp_async_wait<NS - 2>();
        fence_proxy_async();                  /* cp.async wrote it through the generic proxy */
        __syncthreads();
        const unsigned char *s = sm + (size_t)(kt % NS) * L::stage;
        uint64_t da = wgmma_desc(s + wg * 64 * 128), db = wgmma_desc(s + L::A);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {      /* 16 of K a step: 32 bytes further along the swizzled rows */
            if constexpr (BN == 256) wgmma_m64n256k16(d, da + 2 * kk, db + 2 * kk);
            else wgmma_m64n128k16(d, da + 2 * kk, db + 2 * kk);
        }
        wgmma_commit();
        wgmma_wait<1>();                      /* the previous stage's batch is done ... */
        __syncthreads();                      /* ... in both warpgroups: its buffer may be refilled */
        if (kt + NS - 1 < KT) load_stage((kt + NS - 1) % NS, (kt + NS - 1) * 64);
        cp_async_commit();
    }
    wgmma_wait<0>();
    cp_async_wait<0>();

    grouped_gemm_wgmma_store<BN, SWIGLU>(y, d, r0, rend, o0, wg, warp, lane, N);
#endif
}
#endif
