/* kernels_ref: the plain-C float references of engine/kernels.h, one short
 * function per kernel, written to be read.  Host memory only; no allocation
 * except in kref_sample_row (a sort buffer). */
#include "engine/kernels_ref.h"
#include <float.h>
#include <stdlib.h>

void kref_embedding(float *out, const float *table, const int32_t *ids, int T, int D, int V) {
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++)
            out[(size_t)t * D + d] =
                (ids[t] >= 0 && ids[t] < V) ? table[(size_t)ids[t] * D + d] : 0.0f;
}

/* x (n,) = x / sqrt(mean(x^2) + eps) * w */
static void rmsnorm_row(float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) x[i] = x[i] * r * w[i];
}

void kref_add_rmsnorm(float *x, float *residual, const float *w, int T, int D, float eps) {
    for (int t = 0; t < T; t++) {
        float *xr = x + (size_t)t * D;
        if (residual) {
            float *rr = residual + (size_t)t * D;
            for (int d = 0; d < D; d++) { rr[d] += xr[d]; xr[d] = rr[d]; }
        }
        rmsnorm_row(xr, w, D, eps);
    }
}

void kref_head_rmsnorm(float *x, int T, int nheads, int head_dim, int tok_stride,
                       const float *w, float eps) {
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nheads; h++)
            rmsnorm_row(x + (size_t)t * tok_stride + (size_t)h * head_dim, w, head_dim, eps);
}

/* neox RoPE on one head: pairs (i, i + half) rotate by position * inv_freq[i] */
static void rope_head(float *v, int pos, const float *inv_freq, int head_dim) {
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float a = (float)pos * inv_freq[i];
        float c = cosf(a), s = sinf(a);
        float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x1 * c + x0 * s;
    }
}

void kref_rope(float *qkv, const int32_t *positions, const float *inv_freq, int T, int nq,
               int nkv, int head_dim, int tok_stride) {
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nq + nkv; h++)
            rope_head(qkv + (size_t)t * tok_stride + (size_t)h * head_dim, positions[t], inv_freq,
                      head_dim);
}

void kref_silu_mul(float *out, const float *gu, int T, int I) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < I; i++) {
            float g = gu[(size_t)t * 2 * I + i], u = gu[(size_t)t * 2 * I + I + i];
            out[(size_t)t * I + i] = g / (1.0f + expf(-g)) * u;
        }
}

void kref_add_bias(float *y, const float *bias, int T, int N) {
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) y[(size_t)t * N + n] += bias[n];
}

void kref_kv_write(float *k_cache, float *v_cache, const float *qkv, const int32_t *slot_mapping,
                   int T, int nq, int nkv, int head_dim, int tok_stride) {
    size_t row = (size_t)nkv * head_dim;
    for (int t = 0; t < T; t++) {
        if (slot_mapping[t] < 0) continue;
        const float *k = qkv + (size_t)t * tok_stride + (size_t)nq * head_dim;
        memcpy(k_cache + (size_t)slot_mapping[t] * row, k, row * sizeof(float));
        memcpy(v_cache + (size_t)slot_mapping[t] * row, k + row, row * sizeof(float));
    }
}

/* One token at a time: each q and k head biased, normalised and rotated in
 * place, then k and v copied to the token's slot (the same float operations
 * per element as the unfused references, in another loop order). */
void kref_qkv_prep(float *qkv, float *k_cache, float *v_cache, const float *bias, const float *q_norm,
                   const float *k_norm, float eps, const int32_t *positions, const float *inv_freq,
                   const int32_t *slot_mapping, int T, int nq, int nkv, int head_dim, int tok_stride) {
    size_t row = (size_t)nkv * head_dim;
    for (int t = 0; t < T; t++) {
        float *x = qkv + (size_t)t * tok_stride;
        for (int h = 0; h < nq + 2 * nkv; h++) {
            float *v = x + (size_t)h * head_dim;
            const float *w = h < nq ? q_norm : h < nq + nkv ? k_norm : NULL;
            if (bias)
                for (int d = 0; d < head_dim; d++) v[d] += bias[(size_t)h * head_dim + d];
            if (w) rmsnorm_row(v, w, head_dim, eps);
            if (h < nq + nkv) rope_head(v, positions[t], inv_freq, head_dim);
        }
        if (slot_mapping[t] < 0) continue;
        memcpy(k_cache + (size_t)slot_mapping[t] * row, x + (size_t)nq * head_dim, row * sizeof(float));
        memcpy(v_cache + (size_t)slot_mapping[t] * row, x + (size_t)(nq + nkv) * head_dim, row * sizeof(float));
    }
}

void kref_attention(float *out, const float *qkv, int tok_stride, const float *k_cache,
                    const float *v_cache, int B, const int32_t *query_start,
                    const int32_t *context_lens, const int32_t *block_tables, int max_blocks,
                    int block_size, int nq, int nkv, int head_dim, float scale) {
    int group = nq / nkv;
    size_t row = (size_t)nkv * head_dim;
    for (int b = 0; b < B; b++) {
        int q0 = query_start[b], qn = query_start[b + 1] - q0, ctx = context_lens[b];
        float *sc = malloc(sizeof(float) * (size_t)(ctx > 0 ? ctx : 1));
        for (int i = 0; i < qn; i++) {
            int pos = ctx - qn + i;           /* the query's own position */
            for (int h = 0; h < nq; h++) {
                const float *q = qkv + (size_t)(q0 + i) * tok_stride + (size_t)h * head_dim;
                int kvh = h / group;
                float m = -FLT_MAX, sum = 0;
                for (int j = 0; j <= pos; j++) {
                    /* the paged address of token j: block table, then offset */
                    size_t slot = (size_t)block_tables[(size_t)b * max_blocks + j / block_size] *
                                      block_size + j % block_size;
                    const float *k = k_cache + slot * row + (size_t)kvh * head_dim;
                    float dot = 0;
                    for (int d = 0; d < head_dim; d++) dot += q[d] * k[d];
                    sc[j] = dot * scale;
                    if (sc[j] > m) m = sc[j];
                }
                for (int j = 0; j <= pos; j++) { sc[j] = expf(sc[j] - m); sum += sc[j]; }
                float *o = out + (size_t)(q0 + i) * nq * head_dim + (size_t)h * head_dim;
                for (int d = 0; d < head_dim; d++) o[d] = 0;
                for (int j = 0; j <= pos; j++) {
                    size_t slot = (size_t)block_tables[(size_t)b * max_blocks + j / block_size] *
                                      block_size + j % block_size;
                    const float *v = v_cache + slot * row + (size_t)kvh * head_dim;
                    for (int d = 0; d < head_dim; d++) o[d] += sc[j] / sum * v[d];
                }
            }
        }
        free(sc);
    }
}

void kref_gemm(float *y, const float *x, const float *w, int T, int N, int K) {
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double acc = 0;
            for (int k = 0; k < K; k++) acc += (double)x[(size_t)t * K + k] * w[(size_t)n * K + k];
            y[(size_t)t * N + n] = (float)acc;
        }
}

static int cmp_key_desc(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x < y) - (x > y);
}

/* The definition k_sample computes (engine/sampling.cu), by sorting:
 * z = kref_scale(logit, kref_inv_temp(T)) and key = kref_fkey(z) (the float order);
 *   top-k (0 < k < V): thr = the k-th largest key (ties kept);
 *   top-p (< 1): w = kref_wfix(z - zmax), total = sum of w over key >= thr,
 *     target = kref_topp_target(top_p, total); thr = the largest key K with
 *     sum of w over key >= K at least target (walk the keys downwards);
 *   token = first argmax of kref_gumbel(z, seed, step, i) over key >= thr. */
int kref_sample_row(const float *logits, int V, float temperature, int top_k, float top_p,
                    uint64_t seed, uint64_t step) {
    int best = 0;
    if (temperature <= 0) {                       /* greedy: first maximum */
        for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
    float inv = kref_inv_temp(temperature);
    uint32_t *key = malloc(sizeof(uint32_t) * (size_t)V), *sorted = malloc(sizeof(uint32_t) * (size_t)V);
    for (int i = 0; i < V; i++) key[i] = sorted[i] = kref_fkey(kref_scale(logits[i], inv));
    qsort(sorted, (size_t)V, sizeof(uint32_t), cmp_key_desc);
    uint32_t thr = 0;
    if (top_k > 0 && top_k < V) thr = sorted[top_k - 1];
    if (top_p < 1.0f) {
        float zmax = kref_unkey(sorted[0]);
        uint64_t total = 0, cum = 0;
        for (int j = 0; j < V && sorted[j] >= thr; j++) total += kref_wfix(kref_unkey(sorted[j]) - zmax);
        uint64_t target = kref_topp_target(top_p, total);
        for (int j = 0; j < V && total > 0; j++) {
            cum += kref_wfix(kref_unkey(sorted[j]) - zmax);
            if (cum >= target) { thr = sorted[j]; break; }
        }
    }
    float bestv = -INFINITY;
    best = -1;
    for (int i = 0; i < V; i++) {
        if (key[i] < thr) continue;
        float v = kref_gumbel(kref_unkey(key[i]), seed, step, (uint64_t)i);
        if (best < 0 || v > bestv) { bestv = v; best = i; }
    }
    free(sorted);
    free(key);
    return best;
}

float kref_logprob(const float *logits, int V, int id) {
    if (id < 0 || id >= V) return -INFINITY;
    float m = -INFINITY;
    for (int i = 0; i < V; i++) if (logits[i] > m) m = logits[i];
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)logits[i] - m);
    return (float)((double)logits[id] - m - log(s));
}

void kref_rope_inv_freq(float *inv_freq, int head_dim, double theta, int kind, double factor,
                        double low_freq_factor, double high_freq_factor, int orig_max_pos) {
    for (int i = 0; i < head_dim / 2; i++) {
        /* as transformers: 1 / theta^(2i/d) computed in float */
        float f = 1.0f / powf((float)theta, (float)(2 * i) / (float)head_dim);
        if (kind == 1 && factor > 0) f = (float)(f / factor);
        if (kind == 3 && factor > 0) {
            double lo_wl = orig_max_pos / low_freq_factor, hi_wl = orig_max_pos / high_freq_factor;
            double wl = 2 * M_PI / f;
            if (wl > lo_wl) f = (float)(f / factor);
            else if (wl >= hi_wl) {
                double sm = (orig_max_pos / wl - low_freq_factor) /
                            (high_freq_factor - low_freq_factor);
                f = (float)((1 - sm) * f / factor + sm * f);
            }
        }
        inv_freq[i] = f;
    }
}
