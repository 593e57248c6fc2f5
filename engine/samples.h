/* engine/samples.h — what one request's samples produced, as the engine loop
 * records it after each step: per sample (n > 1: the scheduler's forks) the
 * generated token ids and, when asked, each token's log-probability and the
 * k most likely tokens of its position (vLLM's logprobs / top_logprobs:
 * log_softmax of the raw logits, before temperature and top-p).  Plain host
 * memory; no GPU.  Touches only the record it is given. */
#ifndef ENGINE_SAMPLES_H
#define ENGINE_SAMPLES_H
#include <stdint.h>

#define ENG_MAX_TOP_LOGPROBS 20

typedef struct eng_sample {
    int32_t *tokens;             /* (cap,) generated ids; num_tokens of them */
    int      num_tokens, cap;
    float   *logprobs;           /* (cap,) with logprobs: each token's, else NULL */
    int32_t *top_ids;            /* (cap, top_k) with top_k > 0: the likeliest ids, else NULL */
    float   *top_lps;            /* (cap, top_k) their log-probabilities, most likely first */
    int      finish;             /* seq_finish (sim/sequence.h) once it has ended, else 0 */
} eng_sample;

typedef struct eng_samples {
    eng_sample *s;               /* (n,) */
    int n, logprobs, top_k;
} eng_samples;

/* n samples (>= 1), with logprobs (0/1) and top_k (0..ENG_MAX_TOP_LOGPROBS)
 * alternatives per token.  0, or -1 when out of memory or out of range. */
int  eng_samples_init(eng_samples *x, int n, int logprobs, int top_k);
void eng_samples_free(eng_samples *x);
/* Records token `at` of sample k (at <= its num_tokens: a recomputed step
 * writes the same place again), its log-probability lp and (top_k,) top
 * ids / log-probabilities (ignored when not asked for; NULL when unknown).
 * 0, or -1 when out of memory or k / at out of range. */
int  eng_samples_put(eng_samples *x, int k, int at, int32_t token, float lp,
                     const int32_t *top_ids, const float *top_lps);
/* The k largest entries of log_softmax(row (V,)) -> ids (k,), lps (k,),
 * largest first (ties: the lower id first); and returns row's log-sum-exp.
 * k <= V.  Can't fail. */
double eng_top_logprobs(const float *row, int V, int k, int32_t *ids, float *lps);
#endif
