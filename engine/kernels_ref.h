/* kernels_ref: plain-C float references of the engine's CUDA kernels
 * (kernels.h), written for clarity, not speed; the GPU tests compare the two.
 * Also the few helpers that both sides must compute bit for bit: bf16
 * rounding and the counter-based random numbers.  Host memory only. */
#ifndef ENGINE_KERNELS_REF_H
#define ENGINE_KERNELS_REF_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "base/rng.h"
#include <math.h>
#ifdef __CUDACC__
#define KREF_HD __host__ __device__ __forceinline__
#else
#define KREF_HD static inline
#endif
#ifdef __cplusplus
extern "C" {
#endif

/* float -> bf16 bits, round to nearest even (NaN stays NaN). */
KREF_HD uint16_t kref_f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
KREF_HD float kref_bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* Rounds a float to the nearest bf16 value (what storing it in bf16 does). */
KREF_HD float kref_round_bf(float f) { return kref_bf2f(kref_f2bf(f)); }

/* Uniform in (0, 1) from the counter (seed, step, i): 24 random bits. */
KREF_HD float kref_uniform(uint64_t seed, uint64_t step, uint64_t i) {
    uint64_t h = rng_mix64(seed ^ rng_mix64(step ^ rng_mix64(i)));
    return ((float)(h >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

/* The references (float in, float out; shapes as in kernels.h). */
void kref_embedding(float *out, const float *table, const int32_t *ids, int T, int D, int V);
void kref_add_rmsnorm(float *x, float *residual, const float *w, int T, int D, float eps);
void kref_head_rmsnorm(float *x, int T, int nheads, int head_dim, int tok_stride,
                       const float *w, float eps);
void kref_rope(float *qkv, const int32_t *positions, const float *inv_freq, int T, int nq,
               int nkv, int head_dim, int tok_stride);
void kref_silu_mul(float *out, const float *gu, int T, int I);
void kref_add_bias(float *y, const float *bias, int T, int N);
void kref_kv_write(float *k_cache, float *v_cache, const float *qkv, const int32_t *slot_mapping,
                   int T, int nq, int nkv, int head_dim, int tok_stride);
/* Causal attention over the paged cache, one query row at a time; the batch
 * arrays are host arrays here (see k_attn_batch). */
void kref_attention(float *out, const float *qkv, int tok_stride, const float *k_cache,
                    const float *v_cache, int B, const int32_t *query_start,
                    const int32_t *context_lens, const int32_t *block_tables, int max_blocks,
                    int block_size, int nq, int nkv, int head_dim, float scale);
void kref_gemm(float *y, const float *x, const float *w, int T, int N, int K);
/* One row of sampling (see k_sample); returns the token id. */
int  kref_sample_row(const float *logits, int V, float temperature, int top_k, float top_p,
                     uint64_t seed, uint64_t step);
float kref_logprob(const float *logits, int V, int id);
/* Mixture of experts (engine/kernels_ref_moe.c; shapes as kernels.h):
 * routing of logits (T, E) -> ids, w (T, k), ascending by expert; */
void kref_moe_route(int32_t *ids, float *w, const float *logits, int T, int E, int k, int norm_topk);
/* counts (E,) and offsets (E + 1,) of the pairs in expert order; */
void kref_moe_counts(int32_t *counts, int32_t *offsets, const int32_t *ids, int T, int E, int k);
/* the experts and the combine: out (T, D) from x (T, D), the routing, w_gate_up
 * (E, 2 Im, D) and w_down (E, D, Im), with transformers' bf16 roundings. */
void kref_moe_layer(float *out, const float *x, const int32_t *ids, const float *w, const float *w_gate_up,
                    const float *w_down, int T, int D, int Im, int k);
/* 4-bit AWQ linears (engine/kernels_ref_awq.c; the tile layout of
 * engine/awq_tile.h, host copies): w (N, K) = bf16((q - z) s) as
 * k_awq_dequant; y (T, N) = x (T, K) @ W with the exact weights, each group's
 * integer sum scaled, in double, rounded to bf16 (k_awq_gemm's decode path). */
void kref_awq_dequant(float *w, const uint32_t *qw, const uint16_t *scales, const uint32_t *zeros, int K, int N,
                      int G);
void kref_awq_gemm(float *y, const float *x, const uint32_t *qw, const uint16_t *scales, const uint32_t *zeros,
                   int T, int K, int N, int G);
/* inv_freq (head_dim/2,) for RoPE with theta and the scaling of the config:
 * kind 0 none, 1 linear(factor), 3 llama3(factor, low, high, orig_max_pos). */
void kref_rope_inv_freq(float *inv_freq, int head_dim, double theta, int kind, double factor,
                        double low_freq_factor, double high_freq_factor, int orig_max_pos);

#ifdef __cplusplus
}
#endif
#endif
