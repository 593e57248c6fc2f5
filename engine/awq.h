/* awq: 4-bit AWQ linears (AutoAWQ's "gemm" checkpoints, W4A16) in the engine.
 *
 * On disk (AutoAWQ, quant_method awq, version gemm, zero_point true), per
 * quantized linear of in_features K and out_features N, group size G:
 *   qweight (K, N/8) int32   q[k][n] in nibble AWQ_ORDER_INV[n % 8] of word [k][n / 8]
 *   qzeros  (K/G, N/8) int32 z[g][n], packed the same way
 *   scales  (K/G, N) fp16    s[g][n]
 * nibble i of a word (bits 4i .. 4i + 3) holds column 8 (n / 8) + AWQ_ORDER[i],
 * AWQ_ORDER = {0, 2, 4, 6, 1, 3, 5, 7}; the weight is (q - z) s.  Embeddings,
 * norms, biases and lm_head stay 16-bit.  On the GPU the engine keeps the same
 * bytes in its own tile layout (engine/awq_tile.h), repacked on load.
 *
 * Two GEMM paths, one launcher (k_awq_gemm):
 *   decode   T < K_AWQ_SCRATCH_MIN_T: awq_decode_mma streams the 4-bit tiles,
 *            dequantizes them in registers (exact integers q - z in bf16), runs
 *            mma.sync on them and scales each 64-input chunk's fp32 sums by s;
 *            32 tokens per pass (more: several passes), split along K over blocks
 *            when the columns alone give too few blocks (fp32 partial sums, then a
 *            reduce in a fixed order: deterministic).
 *   prefill  T >= K_AWQ_SCRATCH_MIN_T: awq_dequant writes bf16((q - z) s) into a
 *            bf16 scratch (N, K) once, then cuBLAS as for 16-bit weights
 *            (vLLM's AWQ layer does the same from 256 tokens on).
 * The launchers return 0, or -1 on a bad argument (k_last_error says which);
 * the CPU functions are pure. */
#ifndef ENGINE_AWQ_H
#define ENGINE_AWQ_H
#include <stddef.h>
#include <stdint.h>
#include "engine/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define K_AWQ_DECODE_T 32          /* tokens per pass of the decode kernel */
#define K_AWQ_SCRATCH_MIN_T 256    /* from this many tokens: dequantize into the scratch + cuBLAS */

typedef struct k_awq_linear {      /* device pointers, layout of engine/awq_tile.h */
    int K, N, G;                   /* in_features, out_features, group size */
    uint32_t *qw;                  /* (N/16, K/64, 32, 4) */
    uint16_t *scales;              /* (N/16, K/G, 16) fp16 */
    uint32_t *zeros;               /* (N/16, K/G, 2) */
} k_awq_linear;

typedef struct k_awq_work {        /* what k_awq_gemm may use (device) */
    k_bf16 *scratch;               /* (scratch_elems,) bf16: the dequantized weight (prefill path) */
    size_t  scratch_elems;         /* 0: no scratch, every T takes the decode path */
    float  *partial;               /* (partial_elems,) fp32 split-K sums (decode path) */
    size_t  partial_elems;
} k_awq_work;

/* ---- CPU: shapes, sizes, repacking (engine/awq_layout.c) ------------------ */
/* 0 when the engine's kernels take a linear of K inputs, N outputs and group
 * G (K a multiple of 64 and of G, N of 16, G 64 or 128); else -1 and why. */
int    awq_check_shape(int K, int N, int G, char *err, size_t errlen);
/* Bytes of one linear's qw, scales and zeros (K N (0.5 + 2.5 / G)). */
size_t awq_qw_bytes(int K, int N);
size_t awq_scales_bytes(int K, int N, int G);
size_t awq_zeros_bytes(int K, int N, int G);
/* q, z (0..15) and s (fp16 bits) of AutoAWQ's packed tensors at (k, n). */
int    awq_ckpt_q(const int32_t *qweight, int N, int k, int n);
int    awq_ckpt_z(const int32_t *qzeros, int N, int G, int k, int n);
/* Repacks one AutoAWQ linear (K, N) into the tile layout (host buffers of
 * awq_*_bytes).  A fused linear (q|k|v, gate|up) is its parts side by side
 * along N: part p at column n0 (a multiple of 16) repacks into the tiles from
 * n0 / 16 on, i.e. at qw + awq_qw_bytes(K, n0) / 4, scales +
 * awq_scales_bytes(K, n0, G) / 2, zeros + awq_zeros_bytes(K, n0, G) / 4. */
void   awq_repack(uint32_t *qw, uint16_t *scales, uint32_t *zeros, const int32_t *qweight,
                  const int32_t *qzeros, const uint16_t *ck_scales, int K, int N, int G);
/* Its two halves: the weights alone (the loader repacks them on the GPU,
 * k_awq_repack), and the scales and zeros alone. */
void   awq_repack_qw(uint32_t *qw, const int32_t *qweight, int K, int N);
void   awq_repack_groups(uint16_t *scales, uint32_t *zeros, const int32_t *qzeros, const uint16_t *ck_scales,
                         int K, int N, int G);
/* q, z and s of the tile layout (host copies) at (k, n). */
int    awq_tile_q(const uint32_t *qw, int K, int k, int n);
int    awq_tile_z(const uint32_t *zeros, int K, int G, int k, int n);
uint16_t awq_tile_s(const uint16_t *scales, int K, int G, int k, int n);
/* fp16 bits -> float (exact). */
float  awq_h2f(uint16_t h);

/* ---- GPU (engine/awq.cu) --------------------------------------------------- */
/* y (T, N) bf16 = x (T, K) @ W: the decode or the prefill path (above).
 * x and y 16-byte aligned. */
int k_awq_gemm(void *cublas_handle, k_bf16 *y, const k_bf16 *x, const k_awq_linear *w, int T,
               const k_awq_work *work, cudaStream_t s);
/* The decode path alone, whatever T: y (T, N) in passes of K_AWQ_DECODE_T
 * tokens; splits (> 0) forces the K split (0: chosen from N and the GPU). */
int k_awq_gemm_decode(k_bf16 *y, const k_bf16 *x, const k_awq_linear *w, int T, const k_awq_work *work,
                      int splits, cudaStream_t s);
/* qw (tile layout) from AutoAWQ's qweight (K, N/8) int32 on the device, as awq_repack_qw. */
int k_awq_repack(uint32_t *qw, const int32_t *qweight, int K, int N, cudaStream_t s);
/* w_out (N, K) bf16 = bf16((q - z) s), the weight as transformers keeps it. */
int k_awq_dequant(k_bf16 *w_out, const k_awq_linear *w, cudaStream_t s);
/* Random 4-bit weights and zeros (every word's bits from hash(seed, i)) and
 * scales uniform in [s_lo, s_hi] (fp16): what --dummy-weights gives. */
int k_awq_fill(const k_awq_linear *w, uint64_t seed, float s_lo, float s_hi, cudaStream_t s);
/* fp32 elements of work->partial that lets k_awq_gemm split K as it would
 * on this GPU (less only splits less). */
size_t k_awq_partial_elems(void);

#ifdef __cplusplus
}
#endif
#endif
