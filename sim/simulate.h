/* simulate: the one-call simulation API used by `pagesim run`, the bias lab,
 * the visualisation and the GPU-vs-simulation comparison.  Builds a KV cache,
 * a scheduler and the cost-model executor, feeds the requests at their
 * arrival times through the shared step loop (sim/step_loop.h), and returns
 * every metric.  Touches no file. */
#ifndef SIMULATE_H
#define SIMULATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sim/kv_cache.h"
#include "sim/scheduler.h"
#include "sim/cost_model.h"
#include "sim/workload.h"
#include "sim/metrics.h"
#include "sim/step_loop.h"

typedef struct sim_config {
    kv_config    kv;              /* policy, pool size, block size, swap space ... */
    sched_config sched;           /* batching limits, preemption mode ... */
    const cm_model *model;        /* step times; NULL = a toy cost (documented in
                                     sim/sim_executor.h), handy for tests */
    uint64_t seed;                /* prompt token ids and synthetic sampled tokens */
    bool keep_steps;              /* store the per-step series in the result */
    bool check;                   /* kv_check after every step (slow: tests) */
    long max_steps;               /* stop after this many steps; 0 = no limit */
    int  usage_every;             /* sample the pool's usage every k-th step and hold
                                     it in between (kv_usage_get is O(blocks)); 1 = every
                                     step; 0 = auto: max(1, num_blocks / 2048) */
    /* called about every 1% of requests finished (NULL = none) */
    void (*progress)(void *ctx, int finished, int total, double sim_time);
    void *progress_ctx;
    /* called after each step's execute, before its postprocess, while the
     * batch's sequences and their block tables are in place (NULL = none):
     * what a lab measures beyond the metrics (blocks shared in a batch) */
    void (*on_step)(void *ctx, const loop_step_info *info);
    void *on_step_ctx;
} sim_config;

typedef struct sim_result {
    met_summary  summary;
    met_step    *steps;           /* (num_steps,) when keep_steps, else NULL */
    int          num_steps;
    met_request *requests;        /* (num_requests,) in finishing order */
    int          num_requests;
} sim_result;

/* Defaults: paged, block size 16, 2048-token max_model_len, vLLM scheduler
 * defaults; the caller sets kv.num_blocks and (usually) model. */
sim_config sim_config_default(void);
/* Simulates reqs (n of them, any order of arrival).  Returns 0 and fills *out
 * (free with sim_result_free), or -1 with err (bad config, memory, a failed
 * kv_check naming the step). */
int  sim_run(const sim_config *cfg, const wl_request *reqs, int n, sim_result *out,
             char *err, size_t errlen);
/* The same from explicit lengths: prompt_len, output_len, arrival are (n,);
 * arrival may be NULL (all at t=0). */
int  sim_run_lengths(const sim_config *cfg, const int *prompt_len, const int *output_len,
                     const double *arrival, int n, sim_result *out, char *err, size_t errlen);
void sim_result_free(sim_result *r);
/* The whole result (config, summary, steps, requests) as a cJSON tree
 * (void*: cJSON stays out of this header); NULL on memory. */
void *sim_result_json(const sim_config *cfg, const sim_result *r);
#endif
