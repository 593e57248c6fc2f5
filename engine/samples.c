/* engine/samples.c — per-sample tokens and log-probabilities of a request
 * (see samples.h).  Touches only the record it is given. */
#include "engine/samples.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int eng_samples_init(eng_samples *x, int n, int logprobs, int top_k) {
    memset(x, 0, sizeof *x);
    if (n < 1 || top_k < 0 || top_k > ENG_MAX_TOP_LOGPROBS) return -1;
    x->s = calloc((size_t)n, sizeof *x->s);
    if (!x->s) return -1;
    x->n = n;
    x->logprobs = logprobs != 0;
    x->top_k = x->logprobs ? top_k : 0;
    return 0;
}

void eng_samples_free(eng_samples *x) {
    for (int k = 0; x->s && k < x->n; k++) {
        free(x->s[k].tokens); free(x->s[k].logprobs); free(x->s[k].top_ids); free(x->s[k].top_lps);
    }
    free(x->s);
    memset(x, 0, sizeof *x);
}

/* Room for cap tokens in sample s.  -1 when out of memory (s unchanged). */
static int grow(eng_samples *x, eng_sample *s, int cap) {
    if (cap <= s->cap) return 0;
    int nc = s->cap ? 2 * s->cap : 64;
    while (nc < cap) nc *= 2;
    size_t k = (size_t)(x->top_k ? x->top_k : 1);
    int32_t *t = realloc(s->tokens, sizeof *t * (size_t)nc);
    if (t) s->tokens = t;
    float *l = x->logprobs ? realloc(s->logprobs, sizeof *l * (size_t)nc) : NULL;
    if (l) s->logprobs = l;
    int32_t *ti = x->top_k ? realloc(s->top_ids, sizeof *ti * (size_t)nc * k) : NULL;
    if (ti) s->top_ids = ti;
    float *tl = x->top_k ? realloc(s->top_lps, sizeof *tl * (size_t)nc * k) : NULL;
    if (tl) s->top_lps = tl;
    if (!t || (x->logprobs && !l) || (x->top_k && (!ti || !tl))) return -1;
    s->cap = nc;
    return 0;
}

int eng_samples_put(eng_samples *x, int k, int at, int32_t token, float lp,
                    const int32_t *top_ids, const float *top_lps) {
    if (k < 0 || k >= x->n || at < 0) return -1;
    eng_sample *s = &x->s[k];
    if (at > s->num_tokens || grow(x, s, at + 1)) return -1;
    s->tokens[at] = token;
    if (x->logprobs) s->logprobs[at] = lp;
    if (x->top_k) {
        size_t o = (size_t)at * (size_t)x->top_k;
        for (int j = 0; j < x->top_k; j++) {
            s->top_ids[o + j] = top_ids ? top_ids[j] : -1;
            s->top_lps[o + j] = top_lps ? top_lps[j] : -INFINITY;
        }
    }
    if (at == s->num_tokens) s->num_tokens++;
    return 0;
}

double eng_top_logprobs(const float *row, int V, int k, int32_t *ids, float *lps) {
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < V; i++) if (row[i] > mx) mx = row[i];
    for (int i = 0; i < V; i++) sum += exp((double)row[i] - mx);
    double lse = mx + log(sum);
    int n = 0;                                    /* (n,) raw logits kept sorted, largest first */
    for (int i = 0; i < V && k > 0; i++) {
        float v = row[i];
        if (n == k && !(v > lps[k - 1])) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && v > lps[j - 1]) { ids[j] = ids[j - 1]; lps[j] = lps[j - 1]; j--; }
        ids[j] = i;
        lps[j] = v;
    }
    for (int j = 0; j < n; j++) lps[j] = (float)((double)lps[j] - lse);
    return lse;
}
