/* kernels: host launchers for the engine's CUDA kernels (the .cu files of engine/).
 * Every pointer argument is device memory unless it says "host".  bf16 values
 * travel as k_bf16 (the raw 16 bits) so that C code can hold them.  Each
 * launcher enqueues work on `stream` and returns 0, or -1 on a bad argument
 * (sizes out of the supported range); it never synchronises.  Each kernel has
 * a plain-C reference of the same name with the prefix kref_ (kernels_ref.h).
 * Compiled only when PAGESIM_HAVE_CUDA is defined. */
#ifndef ENGINE_KERNELS_H
#define ENGINE_KERNELS_H
#include <stddef.h>
#include <stdint.h>
#if defined(PAGESIM_HAVE_CUDA) || defined(__CUDACC__)
#include <cuda_runtime_api.h>
#define K_HAVE_STREAM 1
#endif
#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t k_bf16;          /* bfloat16 bits */
#ifndef K_HAVE_STREAM
typedef void *cudaStream_t;
#endif

#define K_MAX_HEAD_DIM 256
#define K_MOE_MAX_EXPERTS 512     /* experts of a mixture-of-experts layer (routing: 16 per lane) */
#define K_MOE_MAX_TOPK 16         /* experts chosen per token */
#define K_DECODE_PARTITION 256    /* context tokens per split of decode_simt (decode_mma: a multiple) */

/* ---- weights and elementwise ---------------------------------------------- */
/* p (n,) = uniform(-scale, scale) from hash(seed, i); constant when scale==0 is
 * not wanted use k_fill_const. */
int k_fill_random(k_bf16 *p, int64_t n, uint64_t seed, float scale, cudaStream_t s);
int k_fill_const(k_bf16 *p, int64_t n, float value, cudaStream_t s);
/* out (T, D) = table (V, D)[ids[t]]; ids outside [0, V) give zeros. */
int k_embedding(k_bf16 *out, const k_bf16 *table, const int32_t *ids, int T, int D, int V,
                cudaStream_t s);
/* Fused residual add + RMSNorm over rows of D:
 *   when residual != NULL: residual (T,D) += x; x = rmsnorm(residual) * w
 *   when residual == NULL: x = rmsnorm(x) * w          (x (T,D) in place) */
int k_add_rmsnorm(k_bf16 *x, k_bf16 *residual, const k_bf16 *w, int T, int D, float eps,
                  cudaStream_t s);
/* Per-head RMSNorm in place (Qwen3 q_norm/k_norm): for token t and head h the
 * vector x[t*tok_stride + h*head_dim .. +head_dim) is normalised and scaled by
 * w (head_dim,). */
int k_head_rmsnorm(k_bf16 *x, int T, int nheads, int head_dim, int tok_stride,
                   const k_bf16 *w, float eps, cudaStream_t s);
/* RoPE, neox style (rotate_half), in place on the q and k heads of a fused
 * qkv buffer: qkv (T, tok_stride), q heads at column 0, k heads right after.
 * inv_freq (head_dim/2,) float already includes any rope scaling. */
int k_rope(k_bf16 *qkv, const int32_t *positions, const float *inv_freq, int T, int nq,
           int nkv, int head_dim, int tok_stride, cudaStream_t s);
/* y (T, N) += bias (N,) */
int k_add_bias(k_bf16 *y, const k_bf16 *bias, int T, int N, cudaStream_t s);
/* out (T, I) = silu(gu[:, :I]) * gu[:, I:]   with gu (T, 2I) */
int k_silu_mul(k_bf16 *out, const k_bf16 *gu, int T, int I, cudaStream_t s);
/* out (R, D) = x[rows[r]]  (gathers the rows whose logits are wanted) */
int k_gather_rows(k_bf16 *out, const k_bf16 *x, const int32_t *rows, int R, int D,
                  cudaStream_t s);
/* Which kernels k_add_rmsnorm, k_rope, k_add_bias and k_silu_mul launch:
 * K_ELEM_VECTOR (the default: 16-byte accesses where the widths are multiples
 * of 8 and the pointers 16-byte aligned, RoPE's cos/sin once per token; else
 * scalar), K_ELEM_SCALAR (the scalar kernels always, to measure against);
 * another value only asks.  Both give bit-identical results, except that
 * RMSNorm adds its sum of squares in another order.  Returns the choice in
 * force before the call; process-wide. */
enum { K_ELEM_VECTOR = 0, K_ELEM_SCALAR = 1 };
int k_elementwise_impl(int impl);

/* ---- paged KV cache and attention (layout: engine/attention.cu) ----------- */
/* Writes the k and v heads of token t of qkv into slot slot_mapping[t] of
 * k_cache/v_cache (num_blocks*block_size, nkv, head_dim); slot < 0 skips. */
int k_kv_write(k_bf16 *k_cache, k_bf16 *v_cache, const k_bf16 *qkv, const int32_t *slot_mapping,
               int T, int nq, int nkv, int head_dim, int tok_stride, cudaStream_t s);

/* The step between the q/k/v GEMM and attention, fused (engine/qkv_prep.cu),
 * for every token t of qkv (T, tok_stride) (q heads | k heads | v heads):
 *   qkv += bias                        where w->bias ((nq + 2 nkv) head_dim,)
 *                                      (then tok_stride must be that width)
 *   RMSNorm of each q head by q_norm, of each k head by k_norm (head_dim,)
 *                                      where given, eps w->eps
 *   RoPE (neox) of the q and k heads at positions (T,), inv_freq (head_dim/2,)
 *   k and v heads into slot slot_mapping[t] of k_cache/v_cache (slot < 0: none)
 * Bit for bit k_add_bias, k_head_rmsnorm (q, then k), k_rope and k_kv_write
 * in that order (what it runs itself for shapes the fused kernel does not take). */
typedef struct k_qkv_w {
    const k_bf16 *bias;       /* ((nq + 2 nkv) head_dim,) or NULL (Qwen2's q/k/v bias) */
    const k_bf16 *q_norm;     /* (head_dim,) or NULL (Qwen3) */
    const k_bf16 *k_norm;     /* (head_dim,) or NULL */
    float eps;                /* of the norms */
} k_qkv_w;
int k_qkv_prep(k_bf16 *qkv, k_bf16 *k_cache, k_bf16 *v_cache, const k_qkv_w *w, const int32_t *positions,
               const float *inv_freq, const int32_t *slot_mapping, int T, int nq, int nkv, int head_dim,
               int tok_stride, cudaStream_t s);

/* The batch the attention kernels read, all device arrays:
 *   query_start (B+1,)  first row of each sequence in the flattened tokens
 *   context_lens (B,)   tokens in the cache for the sequence after this step
 *   block_tables (B, max_blocks) physical block ids                         */
typedef struct k_attn_batch {
    int B, T;
    const int32_t *query_start;
    const int32_t *context_lens;
    const int32_t *block_tables;
    int max_blocks;
    int block_size;
    int max_q_len;            /* host knowledge: longest query in the batch */
    int max_context;          /* host knowledge: longest context in the batch */
} k_attn_batch;

/* Which technique k_attention uses: K_ATTN_DEFAULT (decode_mma, tensor cores
 * through mma.sync with K/V streamed by cp.async and the softmax online in
 * registers, where block_size is a multiple of 16; prefill_mma, flash
 * attention on mma.sync, for head_dim <= 128; decode_simt and prefill_wmma
 * elsewhere), K_ATTN_MMA (the same), K_ATTN_SIMT (decode_simt and
 * prefill_wmma always: CUDA-core decode with 16-byte loads, WMMA prefill),
 * K_ATTN_MMA_HEADS (decode_mma with a sequence's kv heads in adjacent
 * blocks of the grid); another value only asks.  The plain-C reference (kref_attention) is the
 * oracle of every technique (tests/gpu/test_kernels.c).  Returns the choice
 * in force before the call; process-wide. */
enum { K_ATTN_DEFAULT = 0, K_ATTN_MMA = 1, K_ATTN_SIMT = 2, K_ATTN_MMA_HEADS = 3 };
int k_attention_impl(int impl);
/* Keys per partition of decode_mma's context split (a multiple of
 * K_DECODE_PARTITION, so that the workspace suffices; default 1024); another
 * value only asks.  Returns the value in force before; process-wide. */
int k_attention_partition(int keys);
/* Bytes of float workspace k_attention needs for up to B sequences, nq heads,
 * contexts up to max_context. */
size_t k_attention_workspace_bytes(int B, int nq, int head_dim, int max_context);
/* Once, before a workspace's first k_attention: zeroes the counts at its end
 * (workspace_bytes as given to k_attention, B and nq as given to
 * k_attention_workspace_bytes).  The decode kernel counts a sequence's
 * partitions there, so that the last block to write one merges them, and
 * sets them back to 0; every call leaves them 0. */
int k_attention_workspace_init(float *workspace, size_t workspace_bytes, int B, int nq, cudaStream_t s);
/* out (T, nq*head_dim) = causal attention of the q heads of qkv (T, tok_stride)
 * over the paged cache.  Sequences with one query token use the decode kernel
 * (split along the context in K_DECODE_PARTITION chunks, then merged);
 * longer queries use the prefill kernel.  Both read K/V through block tables.
 * K/V rows must be 16-byte aligned (head_dim a multiple of 8). */
int k_attention(k_bf16 *out, const k_bf16 *qkv, int tok_stride, const k_bf16 *k_cache,
                const k_bf16 *v_cache, const k_attn_batch *b, int nq, int nkv, int head_dim,
                float scale, float *workspace, size_t workspace_bytes, cudaStream_t s);

/* ---- GEMM (cuBLAS, bf16 inputs, fp32 accumulate) -------------------------- */
/* y (T, N) = x (T, K) @ w (N, K)^T; y is bf16, or float when y_fp32. */
int k_gemm(void *cublas_handle, void *y, int y_fp32, const k_bf16 *x, const k_bf16 *w,
           int T, int N, int K, cudaStream_t s);

/* Grouped GEMM through cuBLAS (cublasGemmGroupedBatchedEx): for each g < G,
 * y_g (m_g, N) = x_g (m_g, K) @ w_g (N, K)^T, bf16 in and out, fp32
 * accumulation.  m (G,) host; x_ptrs, w_ptrs, y_ptrs (G,) host arrays of device
 * pointers, copied through dev_ptrs (3 G,) device with the stream. */
int k_gemm_grouped(void *cublas_handle, int G, const int *m, void *const *x_ptrs, void *const *w_ptrs,
                   void *const *y_ptrs, void **dev_ptrs, int N, int K, cudaStream_t s);

/* What the last failing launcher found (a cuBLAS status and shape), or "". */
const char *k_last_error(void);
/* Sets what k_last_error says (a launcher's reason for returning -1). */
void k_set_last_error(const char *msg);

/* ---- mixture of experts (engine/moe.cu) -------------------------------------
 * E experts, k per token: T tokens make Tk = T k (token, choice) pairs; pair
 * p = t k + i is token t's i-th choice, choices ascending by expert.  "Expert
 * order" lists the pairs expert by expert: expert e owns rows offsets[e] ..
 * offsets[e+1] - 1.  k_moe holds one layer's routing (reused by every layer)
 * and the workspace of the expert GEMMs, sized for max_T tokens. */
enum { K_MOE_GEMM_GROUPED = 0,   /* this project's grouped kernels, expert sizes read on the device (no host
                                  * sync): mma.sync for row tiles of 16 and 64 (decode), wgmma for 128 (prefill) */
       K_MOE_GEMM_CUBLAS = 1 };  /* cuBLAS grouped GEMMs: the expert sizes go to the host first (slower at
                                  * every shape measured: docs/engine-notes.md) */
typedef struct k_moe {
    int E, k, max_T, D, Im;      /* what the buffers were made for */
    int impl;                    /* K_MOE_GEMM_*, as asked */
    void *cublas;                /* handle for the cuBLAS path */
    int32_t *topk_ids;           /* (max_T, k) each token's experts, ascending */
    float   *topk_w;             /* (max_T, k) their weights */
    int32_t *counts;             /* (E,) rows of each expert */
    int32_t *offsets;            /* (E + 1,) first row of each expert */
    int32_t *cursor;             /* (E,) */
    int32_t *pair_row;           /* (max_T k,) row of each pair in expert order */
    int32_t *row_token;          /* (max_T k,) token of each row */
    int32_t *tiles;              /* (2, max_tiles) (expert, first row) of each GEMM row tile */
    int32_t *ntiles;             /* (1,) row tiles of the current permutation */
    int      max_tiles;
    int      T, tile_m, path;    /* the current permutation: tokens, rows per tile, GEMM path used */
    int32_t *host_counts;        /* (3 E,) pinned (cuBLAS path): counts, then the group sizes of the two GEMMs */
    void   **host_ptrs;          /* (6 E,) pinned (cuBLAS path): x, w, y pointers of the two GEMMs */
    void   **dev_ptrs;           /* (6 E,) device (cuBLAS path) */
    k_bf16  *xp;                 /* (max_T k, D) the cuBLAS path's gathered rows */
    k_bf16  *gu;                 /* (max_T k, 2 Im) the cuBLAS path's gate|up */
} k_moe;
/* Device bytes k_moe_create allocates (the routing and, for the cuBLAS path,
 * its gathered rows and gate|up). */
size_t k_moe_bytes(int E, int k, int max_T, int D, int Im, int impl);
/* Allocates the buffers; -1 when sizes are out of range (E <= K_MOE_MAX_EXPERTS,
 * k <= K_MOE_MAX_TOPK, D and Im multiples of 8) or memory is short. */
int  k_moe_create(k_moe *m, int E, int k, int max_T, int D, int Im, int impl, void *cublas_handle);
void k_moe_free(k_moe *m);
/* Routing as transformers' Qwen3-MoE router: p = softmax(logits (T, E) bf16)
 * in fp32 over all experts; the k largest (ties: the lower expert); with
 * norm_topk, each divided by the sum of the k.  Writes m->topk_ids and
 * m->topk_w (choices ascending by expert). */
int  k_moe_route(k_moe *m, const k_bf16 *logits, int T, int norm_topk, cudaStream_t s);
/* The permutation of the routed pairs into expert order: counts, offsets,
 * pair_row, row_token and the GEMM row tiles (rows per tile chosen from T). */
int  k_moe_permute(k_moe *m, int T, cudaStream_t s);
/* Every expert's gate/up GEMM over its rows with SwiGLU fused:
 * act (Tk, Im) in expert order = silu(x w_gate^T) * (x w_up^T), the rows of x
 * (T, D) gathered by row_token; w_gate_up (E, 2 Im, D). */
int  k_moe_gate_up(k_moe *m, k_bf16 *act, const k_bf16 *x, const k_bf16 *w_gate_up, cudaStream_t s);
/* Every expert's down GEMM: y (Tk, D) in expert order = act (Tk, Im) @ w_down_e
 * (D, Im)^T; w_down (E, D, Im). */
int  k_moe_down(k_moe *m, k_bf16 *y, const k_bf16 *act, const k_bf16 *w_down, cudaStream_t s);
/* out (T, D) = for each token the sum over its k choices, ascending by
 * expert, of bf16(y[pair_row] * w), rounded to bf16 after every addition
 * (transformers' index_add_ into bf16). */
int  k_moe_combine(k_moe *m, k_bf16 *out, const k_bf16 *y, cudaStream_t s);

/* ---- sampling and log-probabilities ---------------------------------------- */
typedef struct k_sample_params {  /* one per row */
    float temperature;            /* 0 = greedy */
    int   top_k;                  /* 0 = off */
    float top_p;                  /* 1 = off */
    uint64_t seed;                /* with step: the row's random stream */
    uint64_t step;
} k_sample_params;
/* tokens (R,) from logits (R, V) float.  Greedy takes the first maximum.
 * Otherwise: z = logits/T, keep the top_k largest (ties kept), then the
 * smallest top set of probability >= top_p, and take argmax(z + Gumbel) with
 * the Gumbel noise of token i drawn from hash(seed, step, i): a row's result
 * does not depend on the other rows of the batch. */
int k_sample(int32_t *tokens, const float *logits, const k_sample_params *params, int R, int V,
             cudaStream_t s);
/* out (R,) = log_softmax(logits (R, V))[ids[r]]  (-inf when ids[r] is out of range) */
int k_logprobs(float *out, const float *logits, const int32_t *ids, int R, int V, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
