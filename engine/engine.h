/* engine: the CUDA engine loop.  The same scheduler, KV cache, step loop and
 * driver as the simulator (sim/scheduler.h, sim/kv_cache.h, sim/step_loop.h,
 * sim/driver.h) drive it; its executor turns each scheduled batch into one
 * model_forward over the cache and samples the tokens, or, for a request in
 * score mode, reads the log-probabilities of given token ids at the last
 * prompt position.  Requests may carry an arrival time: the driver releases
 * them then.  Continuous batching, chunked prefill, prefix caching and
 * preemption (by recompute, or by swap to a pinned host pool: engine/swap.h)
 * come from sim/.  The KV cache is
 * paged (KV_PAGED) or a static reservation of max_model_len slots per
 * sequence (KV_CONTIGUOUS); the attention kernels read both through block
 * tables (a reservation's table is synthesised in eng_build_batch).  Uses the
 * GPU; never prints. */
#ifndef ENGINE_ENGINE_H
#define ENGINE_ENGINE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "engine/model.h"
#include "engine/samples.h"
#include "sim/kv_cache.h"
#include "sim/scheduler.h"
#include "sim/metrics.h"

/* Called with the logits of every computed position (checks, not serving:
 * it copies the whole (T, V) logits to the host each step).  row (V,) host,
 * valid during the call; position p's logits predict token p + 1. */
typedef void (*eng_logits_fn)(void *ctx, int request_id, int position, const float *row, int V);

typedef struct eng_config {
    model_opts model;            /* batching limits and memory (model.h) */
    kv_policy  kv_policy;        /* KV_PAGED (0, default) or KV_CONTIGUOUS */
    bool   prefix_caching;       /* automatic prefix caching (paged only) */
    int    eos_id;               /* stop token, < 0 = length only */
    eng_logits_fn on_logits;     /* NULL = off */
    void  *logits_ctx;
    bool   keep_request_metrics; /* eng_summary's request figures (latency
                                    percentiles): one record per request, so
                                    off in a long-running server */
    sched_preempt_mode preempt;  /* SCHED_PREEMPT_RECOMPUTE (0, default) or SCHED_PREEMPT_SWAP:
                                    the paged policy only; the pool's size is
                                    model.swap_space GiB (0: vLLM's 4), its blocks
                                    the scheduler's num_cpu_blocks */
    bool   keep_steps;           /* every step's record in eng_metrics (one per step:
                                    runs that end, not a server) */
    bool   static_batching;      /* sched_config.static_batching: a new batch only when
                                    the last has wholly finished (a generate() loop) */
} eng_config;

#define ENG_MAX_SCORE_IDS 64      /* candidates one scoring request may name */

typedef struct eng_params {      /* per request */
    int      max_tokens;         /* tokens to generate (>= 1) */
    float    temperature;        /* 0 = greedy */
    int      top_k;              /* 0 = off */
    float    top_p;              /* 1 = off */
    uint64_t seed;               /* the request's random stream */
    double   arrival;            /* seconds on the engine's clock (eng_now); at or before
                                    now (0): at once.  Later: the driver releases it then */
    /* score mode: no sampling; the log-probabilities of score_ids at the last
     * prompt position (what the model gives each candidate as the next token)
     * go to eng_result.scores, and the likeliest candidate is the request's one
     * token.  max_tokens must be 1.  The prompt is scheduled like any other:
     * chunked prefill, prefix caching, preemption. */
    bool     score;
    const int32_t *score_ids;    /* (num_score,) candidates, copied by eng_add_request */
    int      num_score;          /* 1..ENG_MAX_SCORE_IDS with score, else 0 */
    int      lora;               /* LoRA adapter: its id in model_opts.lora (engine/lora_set.h),
                                    0 = the base model */
} eng_params;

typedef struct eng_output_opts { /* what a request wants beyond one sequence of tokens */
    int      n;                  /* parallel samples: the scheduler forks the prompt's KV
                                    (copy-on-write); 0 or 1 = one */
    int      logprobs;           /* 1: each generated token's log-probability */
    int      top_logprobs;       /* with logprobs: the k most likely tokens too (0..20) */
} eng_output_opts;

typedef struct eng_result {      /* a finished (or aborted) request */
    int      id;
    int      prompt_len;
    int      num_tokens;         /* generated (sample 0) */
    int32_t *tokens;             /* (num_tokens,) sample 0's, owned by the engine until eng_free */
    double   arrival, first_token, finish;   /* seconds since eng_create (first_token < 0: none) */
    int      num_preemptions;
    bool     aborted;
    int      num_samples;        /* n */
    const eng_sample *samples;   /* (num_samples,) each one's tokens, log-probabilities and
                                    finish (engine/samples.h), owned by the engine until eng_free */
    int      num_scores;         /* score mode: num_score, else 0 */
    const float *scores;         /* (num_scores,) log-probabilities of score_ids (NaN:
                                    aborted before its prompt ended), owned by the engine
                                    until eng_free */
} eng_result;

typedef struct eng_step_info {   /* what the last eng_step ran */
    int    num_seqs, prefill_tokens, decode_tokens, preempted, copies;
    long   attn_ctx_tokens;      /* KV tokens read by attention (sum of context lengths) */
    long   attn_pairs;           /* (query, key) pairs of attention */
    double seconds;              /* wall time of the step (schedule, forward, sampling) */
} eng_step_info;

typedef struct eng eng;

/* Takes ownership of *w, plans memory (mem filled) and builds the KV pool,
 * scheduler and loop.  NULL and a message on error. */
eng *eng_create(const mc_config *c, w_weights *w, const eng_config *cfg, model_mem *mem,
                char *err, size_t errlen);
/* Queues a request (prompt copied) for the driver to release at p->arrival;
 * one that has arrived enters the scheduler at once.  -1 and a message on bad
 * input (eng_check_request). */
int  eng_add_request(eng *e, int id, const int *prompt, int prompt_len, const eng_params *p,
                     char *err, size_t errlen);
/* eng_add_request with n samples and log-probabilities (o NULL: one, none;
 * score mode takes one). */
int  eng_add_request_out(eng *e, int id, const int *prompt, int prompt_len, const eng_params *p,
                         const eng_output_opts *o, char *err, size_t errlen);
/* One schedule -> execute -> postprocess, through the driver: with nothing to
 * run before the next queued arrival it sleeps until then.  Requests finished
 * in this step (and those aborted since the last step) in *done, valid until
 * the next eng_step.  1 when a step ran or results are reported, 0 when idle
 * (nothing running, waiting or queued), -1 with a message (a stall too). */
int  eng_step(eng *e, const eng_result **done, int *n_done, char *err, size_t errlen);
/* What eng_run calls (NULL: nothing); each returns 0, or -1 with err to stop. */
typedef struct eng_hooks {
    /* a step ran (eng_last_step's figures), before its results */
    int  (*on_step)(void *ctx, const eng_step_info *si, char *err, size_t errlen);
    /* a request finished or was aborted (r valid during the call).  It may add
     * requests: a client that keeps k in flight adds one as one finishes. */
    int  (*on_result)(void *ctx, const eng_result *r, char *err, size_t errlen);
    void  *ctx;
} eng_hooks;
/* eng_step until every request (those queued for later, and those the hooks
 * add) has finished: for callers that do not serve clients between steps.
 * 0, or -1 with a message. */
int  eng_run(eng *e, const eng_hooks *h, char *err, size_t errlen);
/* Ends request id now, queued, waiting or running (sched_abort): its KV is
 * released and its result (aborted, tokens so far) comes with the next
 * eng_step.  -1 when no such request is live. */
int  eng_abort(eng *e, int id);
/* The tokens live request id has generated so far ((n,) valid until the next
 * eng_step; for streaming).  Returns n, or -1 when id is not live. */
int  eng_tokens(eng *e, int id, const int32_t **tokens);
/* What live request id's samples have produced so far (*n of them; valid
 * until the next eng_step; for streaming n > 1 and log-probabilities).
 * NULL when id is not live. */
const eng_sample *eng_request_samples(eng *e, int id, int *n);
bool eng_has_work(const eng *e);
/* The engine's clock: seconds since eng_create (eng_result's times, eng_params.arrival). */
double eng_now(const eng *e);
void eng_last_step(const eng *e, eng_step_info *out);
/* The KV pool in the simulator's categories (blocks used, fragmentation...). */
void eng_usage(eng *e, kv_usage *u);
const sched_stats *eng_sched_stats(const eng *e);
/* What the simulator reports, from the same metrics collector (sim/metrics.h,
 * fed by the driver after every step): time-averaged KV shares in the vLLM
 * paper's categories, mean and peak blocks, queue sizes, preemptions, prefix
 * hits; request latencies with keep_request_metrics.  0, or -1 (memory). */
int  eng_summary(const eng *e, met_summary *out);
/* The same collector's records: steps (with keep_steps) and finished
 * requests (with keep_request_metrics), as sim_run returns them. */
const met_collector *eng_metrics(const eng *e);
const model *eng_model(const eng *e);
void eng_free(eng *e);

/* Whether cfg can run (no GPU needed): the KV policy, preemption by swap on
 * the paged policy only, the swap space a number >= 0.  0, or -1 with a
 * message.  eng_create checks it first. */
int  eng_check_config(const eng_config *cfg, char *err, size_t errlen);
/* 1 when this build has the CUDA engine and a GPU is visible; else 0 and why
 * in words (no GPU, or a build without nvcc).  Any build (engine/eng_gpu.c). */
int  eng_gpu_available(char *why, size_t n);
/* The KV pool a model with options o gets under policy p: reservations are
 * rounded up to whole blocks so that a reserved range is a run of blocks. */
kv_config eng_kv_config(const model_opts *o, int num_blocks, kv_policy p, bool prefix_caching);
/* The scheduler a model with (resolved) options o gets: its batching limits,
 * preemption mode, static batching when asked.  With eng_kv_config (and the
 * swap pool's CPU blocks when preempting by swap), what a simulation of the
 * same engine needs (no GPU). */
sched_config eng_sched_config(const model_opts *o, bool static_batching, sched_preempt_mode preempt);
/* The step's flattened batch from a scheduled batch (host arrays in buf,
 * reused between steps): exposed so that tests can check it without a GPU. */
typedef struct eng_batch_buf {
    int32_t *ids, *pos, *slots;  /* (cap_t,) */
    int32_t *qs, *ctx, *tables;  /* (cap_b+1,), (cap_b,), (cap_b, max_blocks) */
    int32_t *lora;               /* (cap_b,) each sequence's LoRA adapter */
    int cap_t, cap_b, max_blocks;
} eng_batch_buf;
int  eng_build_batch(const sched_batch *b, const kv_cache *kv, eng_batch_buf *buf, int max_blocks,
                     model_batch *out, char *err, size_t errlen);
void eng_batch_buf_free(eng_batch_buf *buf);
/* The logits row of mb (as model_forward returns them: one per item, or one
 * per token with all_logits) at which item i of b scores: the item computes
 * its prompt's last position and samples its first token; -1 otherwise.
 * Exposed, as eng_build_batch, for tests without a GPU. */
int  eng_score_row(const sched_batch *b, const model_batch *mb, int i);
/* Whether a request may be queued: a prompt of ids below vocab, prompt +
 * max_tokens within max_model_len, score mode's rules (eng_params).  0, or -1
 * with a message naming request id.  No GPU.  (eng_add_request also checks
 * the LoRA adapter against the model's set.) */
int  eng_check_request(int id, const int *prompt, int prompt_len, const eng_params *p, int max_model_len,
                       int vocab, char *err, size_t errlen);
#endif
