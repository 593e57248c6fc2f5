/* moe.cu: host launchers of a mixture-of-experts layer (kernels.h, "mixture
 * of experts"): routing, permutation into expert order, the experts' grouped
 * GEMMs and the combine.  Device code in moe_kernels.cuh and
 * grouped_gemm.cuh; the buffers (k_moe_create) in moe.c.
 *
 * The GEMM path of a permutation: this project's grouped kernels read the
 * expert sizes on the device (no host synchronisation; row tiles of 16, 64
 * or 128 rows chosen from the expected rows per expert, T k / E: mma.sync
 * for 16 and 64, wgmma for 128), or cuBLAS's grouped GEMM, which takes the
 * sizes on the host: the counts are copied back and waited for (one
 * synchronisation per layer). */
#include "engine/moe_kernels.cuh"
#include "engine/grouped_gemm.cuh"
#include "engine/grouped_gemm_wgmma.cuh"

/* the mma.sync kernel's shapes: decode (few rows per expert), mid; prefill
 * (tiles of 128 rows) runs on wgmma (grouped_gemm_wgmma.cuh), 1.6x faster on
 * the H200 than mma.sync at 128 x 128 (docs/engine-notes.md) */
#define GG_S16 16, 128, 64, 1, 4, 4
#define GG_S64 64, 128, 64, 1, 4, 4

static int tile_rows(const k_moe *m, int T) {
    double r = (double)T * m->k / m->E;          /* rows an expert expects */
    return r <= 12 ? 16 : r <= 48 ? 64 : 128;
}

extern "C" int k_moe_route(k_moe *m, const k_bf16 *logits, int T, int norm_topk, cudaStream_t s) {
    if (!m || T < 0 || T > m->max_T) return -1;
    if (T == 0) return 0;
    int epl = (m->E + 31) / 32, blocks = (T + 7) / 8;   /* 8 tokens (warps) a block */
#define ROUTE(n) case n: moe_route_kernel<n><<<blocks, 256, 0, s>>>(m->topk_ids, m->topk_w, logits, T, m->E, m->k, norm_topk); break
    switch (epl) {
    ROUTE(1); ROUTE(2); ROUTE(3); ROUTE(4); ROUTE(5); ROUTE(6); ROUTE(7); ROUTE(8);
    ROUTE(9); ROUTE(10); ROUTE(11); ROUTE(12); ROUTE(13); ROUTE(14); ROUTE(15); ROUTE(16);
    default: return -1;
    }
#undef ROUTE
    return K_LAUNCH_OK();
}

extern "C" int k_moe_permute(k_moe *m, int T, cudaStream_t s) {
    if (!m || T < 0 || T > m->max_T) return -1;
    m->T = T;
    m->tile_m = tile_rows(m, T);
    m->path = m->impl == K_MOE_GEMM_CUBLAS && m->xp ? K_MOE_GEMM_CUBLAS : K_MOE_GEMM_GROUPED;
    int n = T * m->k, E = m->E;
    if (cudaMemsetAsync(m->counts, 0, sizeof(int32_t) * E, s) != cudaSuccess) return -1;
    if (n > 0) {
        int blocks = (n + 255) / 256;
        if (blocks > 264) blocks = 264;
        moe_count_kernel<<<blocks, 256, sizeof(int32_t) * E, s>>>(m->counts, m->topk_ids, n, E);
    }
    int max_tiles = (n + m->tile_m - 1) / m->tile_m + E;
    if (max_tiles > m->max_tiles) max_tiles = m->max_tiles;
    moe_scan_kernel<<<1, (E + 32) / 32 * 32, 0, s>>>(m->offsets, m->cursor, m->tiles, m->ntiles, m->counts, E,
                                                     m->tile_m, max_tiles);
    if (n > 0) {
        int blocks = (n + 255) / 256;
        if (blocks > 1024) blocks = 1024;
        moe_assign_kernel<<<blocks, 256, 0, s>>>(m->pair_row, m->row_token, m->cursor, m->topk_ids, n, m->k, E);
    }
    if (m->path == K_MOE_GEMM_CUBLAS) {          /* the sizes go to the host: the one synchronisation */
        if (cudaMemcpyAsync(m->host_counts, m->counts, sizeof(int32_t) * E, cudaMemcpyDeviceToHost, s) != cudaSuccess ||
            cudaStreamSynchronize(s) != cudaSuccess)
            return -1;
    }
    return K_LAUNCH_OK();
}

template <int BM, int BN, int BK, int WM, int WN, int NS, bool SW>
static int launch_gg(k_moe *m, k_bf16 *y, const k_bf16 *a, const int32_t *a_rows, const k_bf16 *w,
                     size_t w_stride, int N, int K, cudaStream_t s) {
    typedef gg_smem<BM, BN, BK, WM, WN, NS> L;
    static int attr = 0;
    if (!attr) {
        if (cudaFuncSetAttribute(grouped_gemm_kernel<BM, BN, BK, WM, WN, NS, SW>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::bytes) != cudaSuccess)
            return -1;
        attr = 1;
    }
    constexpr int BO = SW ? BN / 2 : BN;
    int n = m->T * m->k, mt = (n + BM - 1) / BM + m->E;
    if (mt > m->max_tiles) mt = m->max_tiles;
    dim3 grid((N + BO - 1) / BO, mt);
    grouped_gemm_kernel<BM, BN, BK, WM, WN, NS, SW><<<grid, WM * WN * 32, L::bytes, s>>>(
        y, a, a_rows, w, w_stride, m->tiles, m->ntiles, m->offsets, N, K);
    return K_LAUNCH_OK();
}

#define GGW_BN 256
#define GGW_NS 4
template <bool SW>
static int launch_wgmma(k_moe *m, k_bf16 *y, const k_bf16 *a, const int32_t *a_rows, const k_bf16 *w,
                        size_t w_stride, int N, int K, cudaStream_t s) {
    typedef ggw_smem<GGW_BN, GGW_NS> L;
    static int attr = 0;
    if (!attr) {
        if (cudaFuncSetAttribute(grouped_gemm_wgmma_kernel<GGW_BN, GGW_NS, SW>,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::bytes) != cudaSuccess)
            return -1;
        attr = 1;
    }
    constexpr int BO = SW ? GGW_BN / 2 : GGW_BN;
    int n = m->T * m->k, mt = (n + 127) / 128 + m->E;
    if (mt > m->max_tiles) mt = m->max_tiles;
    dim3 grid((N + BO - 1) / BO, mt);
    grouped_gemm_wgmma_kernel<GGW_BN, GGW_NS, SW><<<grid, 256, L::bytes, s>>>(y, a, a_rows, w, w_stride, m->tiles,
                                                                              m->ntiles, m->offsets, N, K);
    return K_LAUNCH_OK();
}

template <bool SW>
static int launch_grouped(k_moe *m, k_bf16 *y, const k_bf16 *a, const int32_t *a_rows, const k_bf16 *w,
                          size_t w_stride, int N, int K, cudaStream_t s) {
    switch (m->tile_m) {
    case 16: return launch_gg<GG_S16, SW>(m, y, a, a_rows, w, w_stride, N, K, s);
    case 64: return launch_gg<GG_S64, SW>(m, y, a, a_rows, w, w_stride, N, K, s);
    default: return launch_wgmma<SW>(m, y, a, a_rows, w, w_stride, N, K, s);
    }
}

/* cuBLAS: one group per expert that received rows (sizes from host_counts).
 * part 0 (gate/up) and 1 (down) use their own host and device arrays: the
 * copies of one may still be queued when the other fills its own. */
static int cublas_experts(k_moe *m, int part, k_bf16 *y, const k_bf16 *a, const k_bf16 *w, size_t w_stride, int N,
                          int K, cudaStream_t s) {
    int E = m->E, G = 0, off = 0, *sizes = m->host_counts + E * (1 + part);
    for (int e = 0; e < E; e++) G += m->host_counts[e] > 0;
    if (G == 0) return 0;
    void **xp = m->host_ptrs + (size_t)3 * E * part, **wp = xp + G, **yp = wp + G;
    for (int e = 0, g = 0; e < E; e++) {
        int c = m->host_counts[e];
        if (c > 0) {
            sizes[g] = c;
            xp[g] = (void *)(a + (size_t)off * K);
            wp[g] = (void *)(w + (size_t)e * w_stride);
            yp[g] = (void *)(y + (size_t)off * N);
            g++;
        }
        off += c;
    }
    return k_gemm_grouped(m->cublas, G, sizes, xp, wp, yp, m->dev_ptrs + (size_t)3 * E * part, N, K, s);
}

extern "C" int k_moe_gate_up(k_moe *m, k_bf16 *act, const k_bf16 *x, const k_bf16 *w_gate_up, cudaStream_t s) {
    if (!m || m->T <= 0) return m && m->T == 0 ? 0 : -1;
    size_t ws = (size_t)2 * m->Im * m->D;
    if (m->path != K_MOE_GEMM_CUBLAS)
        return launch_grouped<true>(m, act, x, m->row_token, w_gate_up, ws, m->Im, m->D, s);
    int n = m->T * m->k, D8 = m->D / 8;
    moe_gather_kernel<<<(n * D8 + 255) / 256 < 8192 ? (n * D8 + 255) / 256 : 8192, 256, 0, s>>>(
        reinterpret_cast<uint4 *>(m->xp), reinterpret_cast<const uint4 *>(x), m->row_token, n, D8);
    if (cudaPeekAtLastError() != cudaSuccess ||
        cublas_experts(m, 0, m->gu, m->xp, w_gate_up, ws, 2 * m->Im, m->D, s))
        return -1;
    return k_silu_mul(act, m->gu, n, m->Im, s);
}

extern "C" int k_moe_down(k_moe *m, k_bf16 *y, const k_bf16 *act, const k_bf16 *w_down, cudaStream_t s) {
    if (!m || m->T <= 0) return m && m->T == 0 ? 0 : -1;
    size_t ws = (size_t)m->D * m->Im;
    if (m->path != K_MOE_GEMM_CUBLAS) return launch_grouped<false>(m, y, act, NULL, w_down, ws, m->D, m->Im, s);
    return cublas_experts(m, 1, y, act, w_down, ws, m->D, m->Im, s);
}

extern "C" int k_moe_combine(k_moe *m, k_bf16 *out, const k_bf16 *y, cudaStream_t s) {
    if (!m || m->T < 0) return -1;
    if (m->T == 0) return 0;
    int threads = m->D / 8 < 256 ? (m->D / 8 + 31) / 32 * 32 : 256;
    moe_combine_kernel<<<m->T, threads, 0, s>>>(out, y, m->pair_row, m->topk_w, m->T, m->D, m->k);
    return K_LAUNCH_OK();
}
