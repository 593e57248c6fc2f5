/* kernels_ref_moe: plain-C float references of the mixture-of-experts
 * launchers (kernels.h, "mixture of experts"), written as transformers'
 * Qwen3-MoE block computes: router softmax in fp32, top-k, renormalise,
 * then expert by expert in ascending order, each output rounded to bf16,
 * weighted, rounded, and added into a bf16 sum.  Host memory only. */
#include "engine/kernels_ref.h"
#include <stdlib.h>

void kref_moe_route(int32_t *ids, float *w, const float *logits, int T, int E, int k, int norm_topk) {
    float *p = malloc(sizeof(float) * (size_t)E);
    char *taken = malloc((size_t)E);
    for (int t = 0; t < T; t++) {
        const float *l = logits + (size_t)t * E;
        float mx = -INFINITY, sum = 0;
        for (int e = 0; e < E; e++) mx = l[e] > mx ? l[e] : mx;
        for (int e = 0; e < E; e++) { p[e] = expf(l[e] - mx); sum += p[e]; taken[e] = 0; }
        for (int e = 0; e < E; e++) p[e] /= sum;
        int32_t *id = ids + (size_t)t * k;
        float tot = 0;
        for (int i = 0; i < k; i++) {            /* the largest left; ties: the lower expert */
            int best = -1;
            for (int e = 0; e < E; e++)
                if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
            taken[best] = 1;
            tot += p[best];
        }
        for (int e = 0, i = 0; e < E; e++)        /* ascending by expert */
            if (taken[e]) {
                id[i] = e;
                w[(size_t)t * k + i] = norm_topk ? p[e] / tot : p[e];
                i++;
            }
    }
    free(p);
    free(taken);
}

void kref_moe_counts(int32_t *counts, int32_t *offsets, const int32_t *ids, int T, int E, int k) {
    for (int e = 0; e < E; e++) counts[e] = 0;
    for (size_t p = 0; p < (size_t)T * k; p++) counts[ids[p]]++;
    offsets[0] = 0;
    for (int e = 0; e < E; e++) offsets[e + 1] = offsets[e] + counts[e];
}

void kref_moe_layer(float *out, const float *x, const int32_t *ids, const float *w, const float *w_gate_up,
                    const float *w_down, int T, int D, int Im, int k) {
    float *gu = malloc(sizeof(float) * 2 * (size_t)Im), *act = malloc(sizeof(float) * (size_t)Im);
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * D;
        float *o = out + (size_t)t * D;
        for (int d = 0; d < D; d++) o[d] = 0;
        for (int i = 0; i < k; i++) {
            int e = ids[(size_t)t * k + i];
            const float *wgu = w_gate_up + (size_t)e * 2 * Im * D, *wd = w_down + (size_t)e * D * Im;
            for (int n = 0; n < 2 * Im; n++) {
                double a = 0;
                for (int d = 0; d < D; d++) a += (double)xt[d] * wgu[(size_t)n * D + d];
                gu[n] = kref_round_bf((float)a);
            }
            for (int n = 0; n < Im; n++) {
                float g = gu[n];
                act[n] = kref_round_bf(kref_round_bf(g / (1.0f + expf(-g))) * gu[Im + n]);
            }
            for (int d = 0; d < D; d++) {
                double a = 0;
                for (int n = 0; n < Im; n++) a += (double)act[n] * wd[(size_t)d * Im + n];
                float y = kref_round_bf((float)a);
                o[d] = kref_round_bf(o[d] + kref_round_bf(y * w[(size_t)t * k + i]));
            }
        }
    }
    free(gu);
    free(act);
}
