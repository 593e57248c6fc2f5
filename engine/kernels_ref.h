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

/* ---- sampling arithmetic that the kernel and kref_sample_row share bit for bit.
 * Every step is one IEEE-rounded operation (fmaf, or a product / sum / quotient
 * that nvcc may not fuse: the __f*_rn intrinsics on the device), never the
 * libraries' expf/logf, whose last bit differs between CUDA and glibc. */
#ifdef __CUDA_ARCH__
#define KREF_MUL(a, b) __fmul_rn(a, b)
#define KREF_ADD(a, b) __fadd_rn(a, b)
#define KREF_DIV(a, b) __fdiv_rn(a, b)
#else
#define KREF_MUL(a, b) ((a) * (b))
#define KREF_ADD(a, b) ((a) + (b))
#define KREF_DIV(a, b) ((a) / (b))
#endif
KREF_HD uint32_t kref_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
KREF_HD float kref_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
/* monotone map float -> uint32 (a < b <=> key(a) < key(b); -0 < +0) and back */
KREF_HD uint32_t kref_fkey(float f) {
    uint32_t u = kref_f2u(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
KREF_HD float kref_unkey(uint32_t k) { return kref_u2f((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }
/* Top-p weight of a token in fixed point: floor(2^32 exp(d)) for d = z - zmax <= 0
 * (0 below d = -32, 2^32 at d = 0); exp by Cody-Waite reduction and a degree-7
 * Taylor polynomial (about 1 ulp; constants in hex: 1/k!, log2 e).  Sums of these are exact and order-free. */
KREF_HD uint64_t kref_wfix(float d) {
    if (!(d >= -32.0f)) return 0;                    /* also NaN */
    if (d >= 0.0f) return 4294967296ull;
    float n = rintf(KREF_MUL(d, 0x1.715476p+0f));
    float f = fmaf(n, -0x1.62e4p-1f, d);             /* ln2 = hi + lo */
    f = fmaf(n, -0x1.7f7d1cp-20f, f);
    float p = 0x1.a01a02p-13f;
    p = fmaf(p, f, 0x1.6c16c2p-10f); p = fmaf(p, f, 0x1.111112p-7f); p = fmaf(p, f, 0x1.555556p-5f);
    p = fmaf(p, f, 0x1.555556p-3f);   p = fmaf(p, f, 0.5f);       p = fmaf(p, f, 1.0f);
    p = fmaf(p, f, 1.0f);
    float w = KREF_MUL(p, kref_u2f((uint32_t)((int)n + 127) << 23));   /* exact: times 2^n */
    uint64_t q = (uint64_t)KREF_MUL(w, 4294967296.0f);
    return q < 4294967296ull ? q : 4294967296ull;
}
/* log(x) for a positive normal float: x = m 2^e, m in [0.707, 1.414], and
 * log m = 2 atanh(s), s = (m - 1)/(m + 1), by its series to s^11 (about 1 ulp). */
KREF_HD float kref_log(float x) {
    uint32_t u = kref_f2u(x);
    int e = (int)(u >> 23) - 127;
    float m = kref_u2f((u & 0x7fffffu) | 0x3f800000u);
    if (m > 0x1.6a09e6p+0f) { m = KREF_MUL(m, 0.5f); e++; }
    float s = KREF_DIV(KREF_ADD(m, -1.0f), KREF_ADD(m, 1.0f)), s2 = KREF_MUL(s, s);
    float q = 0x1.745d18p-4f;
    q = fmaf(q, s2, 0x1.c71c72p-4f); q = fmaf(q, s2, 0x1.24924ap-3f); q = fmaf(q, s2, 0x1.99999ap-3f);
    q = fmaf(q, s2, 0x1.555556p-2f);
    float t = KREF_ADD(s, s);
    float r = fmaf(KREF_MUL(t, s2), q, t);
    r = fmaf((float)e, 0x1.7f7d1cp-20f, r);
    return fmaf((float)e, 0x1.62e4p-1f, r);
}
/* z plus the Gumbel noise of token i: z - log(-log(u)), u = kref_uniform(seed,
 * step, i) (u = 1, which kref_uniform gives once in 2^24, is taken as 1 - 2^-24). */
KREF_HD float kref_gumbel_u(float z, float u) {
    if (u >= 1.0f) u = 0x1.fffffep-1f;
    float v = KREF_ADD(z, -kref_log(-kref_log(u)));
    return v == 0.0f ? 0.0f : v;                     /* -0 -> +0: keys order as floats compare */
}
KREF_HD float kref_gumbel(float z, uint64_t seed, uint64_t step, uint64_t i) {
    return kref_gumbel_u(z, kref_uniform(seed, step, i));
}
/* z = logits * (1/T): one IEEE division per row, one product per element. */
KREF_HD float kref_inv_temp(float T) { return KREF_DIV(1.0f, T); }
KREF_HD float kref_scale(float x, float inv_t) { return KREF_MUL(x, inv_t); }
/* The top-p target: ceil(top_p * total) computed in double, at least 1, at most total. */
KREF_HD uint64_t kref_topp_target(float top_p, uint64_t total) {
    double t = ceil((double)top_p * (double)total);
    uint64_t q = t < 1.0 ? 1 : (uint64_t)t;
    return q < total ? q : total;
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
/* k_qkv_prep's reference: bias (or NULL), q_norm, k_norm (or NULL), RoPE,
 * then the k and v heads into their slots, token by token. */
void kref_qkv_prep(float *qkv, float *k_cache, float *v_cache, const float *bias, const float *q_norm,
                   const float *k_norm, float eps, const int32_t *positions, const float *inv_freq,
                   const int32_t *slot_mapping, int T, int nq, int nkv, int head_dim, int tok_stride);
/* Causal attention over the paged cache, one query row at a time; the batch
 * arrays are host arrays here (see k_attn_batch). */
void kref_attention(float *out, const float *qkv, int tok_stride, const float *k_cache,
                    const float *v_cache, int B, const int32_t *query_start,
                    const int32_t *context_lens, const int32_t *block_tables, int max_blocks,
                    int block_size, int nq, int nkv, int head_dim, float scale);
void kref_gemm(float *y, const float *x, const float *w, int T, int N, int K);
/* One row of sampling (see k_sample and engine/sampling.cu: the same definition,
 * computed simply by sorting); returns the token id. */
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
