/* grouped_gemm.cuh: the experts' GEMMs of a mixture-of-experts layer as one
 * launch over all experts (a grouped GEMM on mma.sync), the expert sizes read
 * on the device, so no host synchronisation.  Launchers in moe.cu.
 *
 *   for each row tile (e, r0) of tiles[] (rows r0 .. min(r0 + BM, offsets[e+1]) of expert e):
 *     y[r] (N,) = a[src(r)] (K,) @ w_e (N, K)^T        src(r) = a_rows[r], or r when a_rows is NULL
 *   SWIGLU: w_e is (2N, K), gate rows then up rows, and
 *     y[r] = bf16(bf16(silu(bf16(a w_gate^T))) * bf16(a w_up^T))   (transformers' roundings)
 * y is (Tk, N) bf16 in expert order; w (E, N or 2N, K) bf16, expert e at w + e * w_stride.
 *
 * Block tile BM x BN (SWIGLU: BN/2 gate and BN/2 up rows of w, BN/2 output
 * columns), K in steps of BK staged through NS shared-memory buffers filled by
 * cp.async (the rows of a gathered through a_rows, zero past the expert's
 * rows and past K); WM x WN warps, each (BM/WM) x (BN/WN) in m16n8k16 tiles,
 * fragments by ldmatrix; 16-row tiles past the expert's last row are skipped. */
#ifndef ENGINE_GROUPED_GEMM_CUH
#define ENGINE_GROUPED_GEMM_CUH
#include "engine/mma.cuh"

template <int BM, int BN, int BK, int WM, int WN, int NS>
struct gg_smem {
    static constexpr int LD = BK + 8;                              /* bf16 per staged row: no bank conflicts */
    static constexpr size_t stage = (size_t)(BM + BN) * LD;        /* A (BM, LD) | B (BN, LD) */
    static constexpr size_t bytes = stage * NS * 2;
};

/* One stage of the main loop: acc (MT, NT, 4) += A (BM, BK) B (BN, BK)^T from the
 * staged tiles As (BM, LD) and Bs (BN, LD), this warp's mvalid 16-row tiles only */
template <int BM, int BN, int BK, int WM, int WN, int NS, bool SWIGLU>
__device__ __forceinline__ void grouped_gemm_mma(float (&acc)[BM / WM / 16][BN / WN / 8][4], const bf16 *As,
                                                 const bf16 *Bs, int mvalid, int wm, int wn, int lane) {
    constexpr int LD = gg_smem<BM, BN, BK, WM, WN, NS>::LD, WTM = BM / WM, WTN = BN / WN, MT = WTM / 16,
                  NT = WTN / 8;
    /* B row of this warp's n tile j: SWIGLU puts gate tiles first, up tiles after */
    auto brow = [&](int j) {
        if (!SWIGLU) return wn * WTN + j * 8;
        return j < NT / 2 ? wn * (WTN / 2) + j * 8 : BN / 2 + wn * (WTN / 2) + (j - NT / 2) * 8;
    };

#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
        uint32_t bf[NT][2];
#pragma unroll
        for (int j = 0; j < NT; j += 2) {
            uint32_t r4[4];
            int row = brow(j + (lane >> 4)) + (lane & 7);
            ldsm_x4(r4, Bs + row * LD + kk * 16 + ((lane >> 3) & 1) * 8);
            bf[j][0] = r4[0]; bf[j][1] = r4[1]; bf[j + 1][0] = r4[2]; bf[j + 1][1] = r4[3];
        }
#pragma unroll
        for (int i = 0; i < MT; i++) {
            if (i >= mvalid) break;
            uint32_t af[4];
            ldsm_x4(af, As + (wm * WTM + i * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
            for (int j = 0; j < NT; j++) mma16816(acc[i][j], af, bf[j][0], bf[j][1]);
        }
    }
}

/* The epilogue: y's rows r0 + (this warp's rows) below rend, columns o0 + ... below N,
 * as bf16 pairs (SWIGLU: silu(gate) * up, with transformers' roundings) */
template <int BM, int BN, int BK, int WM, int WN, int NS, bool SWIGLU>
__device__ __forceinline__ void grouped_gemm_store(k_bf16 *y, const float (&acc)[BM / WM / 16][BN / WN / 8][4],
                                                   int r0, int rend, int o0, int wm, int wn, int lane, int N) {
    constexpr int WTM = BM / WM, WTN = BN / WN, MT = WTM / 16, NT = WTN / 8;
    int g = lane >> 2, cq = (lane & 3) * 2;
#pragma unroll
    for (int i = 0; i < MT; i++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int r = r0 + wm * WTM + i * 16 + g + h * 8;
            if (r >= rend) continue;
            bf16 *yr = reinterpret_cast<bf16 *>(y) + (size_t)r * N;
            if (SWIGLU) {
#pragma unroll
                for (int j = 0; j < NT / 2; j++) {
                    int col = o0 + wn * (WTN / 2) + j * 8 + cq;
                    if (col >= N) continue;
                    float g0 = rbf(acc[i][j][2 * h]), g1 = rbf(acc[i][j][2 * h + 1]);
                    float u0 = rbf(acc[i][j + NT / 2][2 * h]), u1 = rbf(acc[i][j + NT / 2][2 * h + 1]);
                    float v0 = rbf(g0 / (1.0f + expf(-g0))) * u0, v1 = rbf(g1 / (1.0f + expf(-g1))) * u1;
                    if (col + 1 < N) *reinterpret_cast<__nv_bfloat162 *>(yr + col) = __floats2bfloat162_rn(v0, v1);
                    else yr[col] = __float2bfloat16_rn(v0);
                }
            } else {
#pragma unroll
                for (int j = 0; j < NT; j++) {
                    int col = o0 + wn * WTN + j * 8 + cq;
                    if (col >= N) continue;
                    float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
                    if (col + 1 < N) *reinterpret_cast<__nv_bfloat162 *>(yr + col) = __floats2bfloat162_rn(v0, v1);
                    else yr[col] = __float2bfloat16_rn(v0);
                }
            }
        }
    }
}

template <int BM, int BN, int BK, int WM, int WN, int NS, bool SWIGLU>
__global__ void __launch_bounds__(WM * WN * 32)
grouped_gemm_kernel(k_bf16 *y, const k_bf16 *a, const int32_t *a_rows, const k_bf16 *w, size_t w_stride,
                    const int32_t *tiles, const int32_t *ntiles, const int32_t *offsets, int N, int K) {
    typedef gg_smem<BM, BN, BK, WM, WN, NS> L;
    constexpr int NTHR = WM * WN * 32, LD = L::LD, CH = BK / 8;    /* 16-byte chunks per staged row */
    constexpr int WTM = BM / WM, WTN = BN / WN, MT = WTM / 16, NT = WTN / 8;
    constexpr int A_CPT = (BM * CH + NTHR - 1) / NTHR, B_CPT = (BN * CH + NTHR - 1) / NTHR;
    static_assert(NT % 2 == 0 && (!SWIGLU || NT % 4 == 0), "n tiles go in pairs (gate and up pairs)");
    int tile = blockIdx.y;
    if (tile >= *ntiles) return;
    int e = tiles[2 * tile], r0 = tiles[2 * tile + 1], rend = offsets[e + 1];
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wm = warp / WN, wn = warp % WN;
    /* output columns of this block and the rows of w_e it reads */
    constexpr int BO = SWIGLU ? BN / 2 : BN;
    int o0 = blockIdx.x * BO, nrows_w = SWIGLU ? 2 * N : N;
    const bf16 *we = reinterpret_cast<const bf16 *>(w) + (size_t)e * w_stride;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *sm = reinterpret_cast<bf16 *>(smem);

    /* the rows this thread copies: fixed over K */
    const bf16 *asrc[A_CPT];
    int acol[A_CPT], aoff[A_CPT];
    bool aok[A_CPT];
#pragma unroll
    for (int i = 0; i < A_CPT; i++) {
        int c = tid + i * NTHR, row = c / CH, r = r0 + row;
        aok[i] = c < BM * CH && r < rend;
        int src = aok[i] ? (a_rows ? a_rows[r] : r) : 0;
        asrc[i] = reinterpret_cast<const bf16 *>(a) + (size_t)src * K;
        acol[i] = (c % CH) * 8;
        aoff[i] = c < BM * CH ? row * LD + acol[i] : -1;
    }
    const bf16 *bsrc[B_CPT];
    int bcol[B_CPT], boff[B_CPT];
    bool bok[B_CPT];
#pragma unroll
    for (int i = 0; i < B_CPT; i++) {
        int c = tid + i * NTHR, row = c / CH;
        int n = SWIGLU ? (row < BN / 2 ? o0 + row : N + o0 + row - BN / 2) : o0 + row;
        bool in = SWIGLU ? (row < BN / 2 ? o0 + row < N : o0 + row - BN / 2 < N) : n < N;
        bok[i] = c < BN * CH && in && n < nrows_w;
        bsrc[i] = we + (size_t)(bok[i] ? n : 0) * K;
        bcol[i] = (c % CH) * 8;
        boff[i] = c < BN * CH ? BM * LD + row * LD + bcol[i] : -1;
    }
    auto load_stage = [&](int st, int k0) {
        bf16 *s = sm + (size_t)st * L::stage;
#pragma unroll
        for (int i = 0; i < A_CPT; i++)
            if (aoff[i] >= 0) {
                int kk = k0 + acol[i];
                bool ok = aok[i] && kk < K;
                cp_async16(s + aoff[i], ok ? asrc[i] + kk : asrc[i], ok ? 16 : 0);
            }
#pragma unroll
        for (int i = 0; i < B_CPT; i++)
            if (boff[i] >= 0) {
                int kk = k0 + bcol[i];
                bool ok = bok[i] && kk < K;
                cp_async16(s + boff[i], ok ? bsrc[i] + kk : bsrc[i], ok ? 16 : 0);
            }
    };

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.0f;
    /* the 16-row tiles of this warp that hold rows of the expert */
    int mvalid = 0;
#pragma unroll
    for (int i = 0; i < MT; i++) mvalid += r0 + wm * WTM + i * 16 < rend;

    int KT = (K + BK - 1) / BK;
#pragma unroll
    for (int s = 0; s < NS - 1; s++) {
        if (s < KT) load_stage(s, s * BK);
        cp_async_commit();
    }
    for (int kt = 0; kt < KT; kt++) {
        cp_async_wait<NS - 2>();
        __syncthreads();
        if (kt + NS - 1 < KT) load_stage((kt + NS - 1) % NS, (kt + NS - 1) * BK);
        cp_async_commit();
        const bf16 *As = sm + (size_t)(kt % NS) * L::stage, *Bs = As + BM * LD;
        grouped_gemm_mma<BM, BN, BK, WM, WN, NS, SWIGLU>(acc, As, Bs, mvalid, wm, wn, lane);
    }
    cp_async_wait<0>();

    grouped_gemm_store<BM, BN, BK, WM, WN, NS, SWIGLU>(y, acc, r0, rend, o0, wm, wn, lane, N);
}
#endif
