/* awq.cu: launchers of the 4-bit AWQ linears (engine/awq.h; device code in
 * engine/awq_kernels.cuh): the decode path (awq_decode_mma, split along K
 * when the columns give too few blocks), the prefill path (dequantize into
 * the scratch, then the engine's cuBLAS GEMM), the repacking of a
 * checkpoint's weights and the dummy fill. */
#include <stdio.h>
#include "engine/awq.h"
#include "engine/kernels_ref.h"
#include "engine/awq_kernels.cuh"

/* the GPU's multiprocessors (blocks to aim for), once per process */
static int sm_count(void) {
    static int n = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0)
            n = 132;
    }
    return n;
}
#define AWQ_BLOCKS_PER_SM 4      /* blocks of 4 warps the decode kernel aims for per SM */
#define AWQ_MAX_SPLITS 16
#define AWQ_MIN_CHUNKS 8         /* 64-input chunks per split at least (2 per warp) */

static int fail(const char *what, const k_awq_linear *w) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s: AWQ linear K=%d N=%d G=%d", what, w ? w->K : 0, w ? w->N : 0, w ? w->G : 0);
    k_set_last_error(msg);
    return -1;
}

/* what awq_check_shape (engine/awq_layout.c, a library linked before this one) allows */
static int dims_ok(int K, int N, int G) {
    return (G == 64 || G == 128) && K > 0 && N > 0 && K % AWQ_TILE_K == 0 && K % G == 0 && N % AWQ_TILE_N == 0;
}
static int shape_ok(const k_awq_linear *w) {
    return w && w->qw && w->scales && w->zeros && dims_ok(w->K, w->N, w->G);
}

extern "C" size_t k_awq_partial_elems(void) {
    return (size_t)AWQ_BLOCKS_PER_SM * sm_count() * 2 * AWQ_TILE_N * K_AWQ_DECODE_T;
}

/* K splits for N columns: enough blocks for the GPU, at least AWQ_MIN_CHUNKS
 * chunks each, and partial sums that fit the workspace */
static int pick_splits(int N, int K, int T, const k_awq_work *work) {
    int nblk = (N / AWQ_TILE_N + 1) / 2, KC = K / AWQ_TILE_K;
    int splits = AWQ_BLOCKS_PER_SM * sm_count() / nblk;
    if (splits > KC / AWQ_MIN_CHUNKS) splits = KC / AWQ_MIN_CHUNKS;
    if (splits > AWQ_MAX_SPLITS) splits = AWQ_MAX_SPLITS;
    size_t room = work && work->partial ? work->partial_elems / ((size_t)T * N) : 0;
    if ((size_t)splits > room) splits = (int)room;
    return splits < 1 ? 1 : splits;
}

template <int TT>
static void launch_decode(k_bf16 *y, float *partial, const k_bf16 *x, const k_awq_linear *w, int T, int splits,
                          int per, cudaStream_t s) {
    dim3 grid((w->N / AWQ_TILE_N + 1) / 2, splits);
    awq_decode_mma<TT><<<grid, AWQ_WARPS * 32, 0, s>>>(y, partial, x, w->qw, w->scales, w->zeros, T, w->N, w->K,
                                                        w->G, per);
}

/* one pass of up to K_AWQ_DECODE_T tokens */
static int decode_pass(k_bf16 *y, const k_bf16 *x, const k_awq_linear *w, int T, const k_awq_work *work,
                       int splits, cudaStream_t s) {
    int KC = w->K / AWQ_TILE_K;
    if (splits <= 0) splits = pick_splits(w->N, w->K, T, work);
    if (splits > KC) splits = KC;
    if (splits > 1 && (!work || !work->partial || work->partial_elems < (size_t)splits * T * w->N))
        return fail("k_awq_gemm_decode: the split-K workspace is too small", w);
    int per = (KC + splits - 1) / splits;
    splits = (KC + per - 1) / per;                        /* no empty split */
    float *partial = splits > 1 ? work->partial : NULL;
    switch ((T + 7) / 8) {
    case 1: launch_decode<1>(y, partial, x, w, T, splits, per, s); break;
    case 2: launch_decode<2>(y, partial, x, w, T, splits, per, s); break;
    case 3: launch_decode<3>(y, partial, x, w, T, splits, per, s); break;
    default: launch_decode<4>(y, partial, x, w, T, splits, per, s); break;
    }
    if (splits > 1) {
        size_t TN = (size_t)T * w->N;
        awq_reduce_splits<<<(unsigned)((TN + 255) / 256), 256, 0, s>>>(y, partial, splits, TN);
    }
    if (K_LAUNCH_OK() != 0) return fail("k_awq_gemm_decode: launch failed", w);
    return 0;
}

extern "C" int k_awq_gemm_decode(k_bf16 *y, const k_bf16 *x, const k_awq_linear *w, int T, const k_awq_work *work,
                                 int splits, cudaStream_t s) {
    if (!shape_ok(w)) return fail("k_awq_gemm_decode: unsupported shape or missing tensors", w);
    if (T < 0 || !x || !y || ((uintptr_t)x & 15)) return fail("k_awq_gemm_decode: bad tokens or x not 16-byte aligned", w);
    for (int t0 = 0; t0 < T; t0 += K_AWQ_DECODE_T) {
        int n = T - t0 < K_AWQ_DECODE_T ? T - t0 : K_AWQ_DECODE_T;
        if (decode_pass(y + (size_t)t0 * w->N, x + (size_t)t0 * w->K, w, n, work, splits, s)) return -1;
    }
    return 0;
}

extern "C" int k_awq_dequant(k_bf16 *w_out, const k_awq_linear *w, cudaStream_t s) {
    if (!shape_ok(w) || !w_out || ((uintptr_t)w_out & 15)) return fail("k_awq_dequant: unsupported shape", w);
    size_t tiles = (size_t)(w->N / AWQ_TILE_N) * (w->K / AWQ_TILE_K);
    awq_dequant_tiles<<<(unsigned)((tiles + 7) / 8), 256, 0, s>>>(w_out, w->qw, w->scales, w->zeros, w->N, w->K,
                                                                  w->G);
    if (K_LAUNCH_OK() != 0) return fail("k_awq_dequant: launch failed", w);
    return 0;
}

extern "C" int k_awq_gemm(void *cublas_handle, k_bf16 *y, const k_bf16 *x, const k_awq_linear *w, int T,
                          const k_awq_work *work, cudaStream_t s) {
    if (!shape_ok(w)) return fail("k_awq_gemm: unsupported shape or missing tensors", w);
    if (T < K_AWQ_SCRATCH_MIN_T || !work || !work->scratch || work->scratch_elems < (size_t)w->N * w->K)
        return k_awq_gemm_decode(y, x, w, T, work, 0, s);
    if (k_awq_dequant(work->scratch, w, s)) return -1;
    return k_gemm(cublas_handle, y, 0, x, work->scratch, T, w->N, w->K, s);
}

extern "C" int k_awq_repack(uint32_t *qw, const int32_t *qweight, int K, int N, cudaStream_t s) {
    if (!qw || !qweight || !dims_ok(K, N, 64)) return -1;
    size_t words = (size_t)K * N / 8;
    awq_repack_words<<<(unsigned)((words + 255) / 256), 256, 0, s>>>(qw, qweight, K, N, words);
    return K_LAUNCH_OK();
}

extern "C" int k_awq_fill(const k_awq_linear *w, uint64_t seed, float s_lo, float s_hi, cudaStream_t s) {
    if (!shape_ok(w)) return fail("k_awq_fill: unsupported shape", w);
    size_t nq = (size_t)w->K * w->N / 8, nz = (size_t)(w->K / w->G) * w->N / 8;
    size_t ns = (size_t)(w->K / w->G) * w->N;
    awq_fill_words<<<(unsigned)((nq + 255) / 256), 256, 0, s>>>(w->qw, nq, seed);
    awq_fill_words<<<(unsigned)((nz + 255) / 256), 256, 0, s>>>(w->zeros, nz, rng_mix64(seed ^ 0x5a5a));
    awq_fill_scales<<<(unsigned)((ns + 255) / 256), 256, 0, s>>>(w->scales, ns, rng_mix64(seed ^ 0xa5a5), s_lo, s_hi);
    return K_LAUNCH_OK();
}
