/* bias_sources: the bias lab's real reply sources, behind the same
 * bias_source interface as the simulated model (labs/bias_source.h):
 *   - a server source: any OpenAI-compatible server (vLLM as in the study,
 *     or engine/serve) through labs/bias_client (libcurl multi: max_workers
 *     in flight, 3 tries 2 s apart, streamed TTFT, usage);
 *   - a real source: the CUDA engine in this process (engine/engine.h),
 *     free generation through eng_, or --decision logits: the engine's
 *     log-probabilities of "buy" and "sell" after the forced reply prefix
 *     {"decision": " (eng_'s score mode: one prefill per trial, no sampling).
 * Both send every trial the same sampling seed (bias_trial_seed), so a run
 * through engine/serve and a run in process draw the same tokens.  Both
 * record what they measured into a bias_trace (labs/bias_compare.h).
 * Server source: labs/bias_source_server.c; real source: labs/bias_source_real.c. */
#ifndef BIAS_SOURCES_H
#define BIAS_SOURCES_H
#include <stddef.h>
#include <stdint.h>
#include "labs/bias_compare.h"
#include "labs/bias_source.h"

/* The sampling seed of one trial: a hash of the run's seed and the trial's
 * place, below 2^53 (exact as a JSON number).  Can't fail. */
uint64_t bias_trial_seed(uint64_t run_seed, int set, size_t stock_index, int trial);

typedef struct bias_sampling {
    double   temperature, top_p;
    int      max_tokens;
    uint64_t seed;               /* the run's --seed */
    /* When set, each request's max_tokens is the reply length this source
     * gives the request (the simulated profile: with dummy weights the
     * replies then have the study's lengths instead of running to
     * max_tokens).  Not owned. */
    bias_source *lengths;
} bias_sampling;

/* Per-request max_tokens (n,) from s->lengths (or s->max_tokens for all). */
int bias_sampling_lengths(const bias_sampling *s, const bias_request *req, size_t n, int *max_tokens,
                          char *err, size_t errlen);

/* ---- the server source ------------------------------------------------------------- */

typedef struct bias_server_opts {
    const char *url;             /* "http://127.0.0.1:8000" (a trailing /v1 is fine) */
    const char *api_key;         /* or NULL */
    const char *model;           /* the "model" field; NULL: the server's only/first model */
    int    max_workers;          /* requests in flight */
    double timeout_s;            /* per try (600) */
    bias_sampling s;
} bias_server_opts;

/* Checks the server (GET /v1/models: reachable, key accepted, model known)
 * and makes the source.  trace (may be NULL) receives every request; it must
 * outlive the source.  -1 with err naming the URL. */
int  bias_server_source(bias_source *src, const bias_server_opts *o, bias_trace *trace,
                        char *err, size_t errlen);
/* The model name the server source sends (after the check). */
const char *bias_server_model(const bias_source *src);
/* Token usage the server reported, summed over the replies received. */
void bias_server_usage(const bias_source *src, long long *prompt_tokens, long long *completion_tokens);

/* ---- the real source (the CUDA engine in process) ----------------------------------- */

typedef struct bias_real_opts {
    const char *model;           /* checkpoint directory, or ORG/NAME (HF cache; downloaded when online) */
    const char *dummy_config;    /* or: random weights at this config.json's shapes */
    uint64_t    dummy_seed;
    const char *tokenizer;       /* tokenizer.json; NULL: the checkpoint's, or data/tokenizers/qwen3 */
    const char *chat_template;   /* a family (chatml, qwen3, ...) or a template file; NULL: the model's
                                    chat_template beside the tokenizer (qwen3's when it has none) */
    int    max_workers;          /* requests kept in flight, as the study's client */
    int    decision_logits;      /* 1: --decision logits */
    /* engine limits (0: the engine's defaults) */
    int    max_num_seqs, max_num_batched_tokens, max_model_len, block_size, num_gpu_blocks;
    double gpu_memory_utilization;
    const char *kv_policy;       /* "paged" (default) or "contiguous" */
    int    prefix_caching;       /* 1 (default) */
    int    usage_every;          /* sample the KV pool every k steps (0: 1 + num_blocks / 32768) */
    bias_sampling s;
    struct tp_engine *tp;        /* tensor parallelism (engine/tp_engine.h, started by the caller before
                                    CUDA), or NULL: one GPU */
} bias_real_opts;

/* Loads the model (weights on the GPU, memory plan, KV pool) and makes the
 * source.  info receives the memory plan lines ("GPU KV cache size: ...").
 * trace (may be NULL) receives requests, steps and KV samples.  -1 with err. */
int  bias_real_source(bias_source *src, const bias_real_opts *o, bias_trace *trace,
                      char *info, size_t infolen, char *err, size_t errlen);
#endif
