/* metrics: what a run measured.  Per step (time, pool usage in the vLLM
 * paper's waste categories, queue sizes, batch sizes, preemptions), per
 * request (TTFT, TPOT, end-to-end, normalized latency), and a summary
 * (throughput, percentiles, time-averaged waste shares), with JSON output
 * through cJSON.  Pure bookkeeping: touches no file except in met_write_json. */
#ifndef METRICS_H
#define METRICS_H
#include <stdbool.h>
#include <stddef.h>

typedef struct met_step {
    double time;                  /* simulated seconds at the step's end */
    double dt;                    /* the step's duration */
    int    running, waiting, swapped;
    int    batch_seqs;            /* sequences in the step */
    long   batch_tokens;          /* prefill + decode tokens computed */
    long   prefill_tokens, decode_tokens;
    int    preemptions;           /* in this step */
    int    num_copies;            /* block copies (COW, swap) before the step */
    int    blocks_used, blocks_total;
    long   slots_total, token_slots, reserved_slots, internal_frag, external_frag, free_slots;
} met_step;

typedef struct met_request {
    int    id, prompt_len, output_len, num_seqs, num_preemptions;
    bool   aborted;
    bool   refused;               /* aborted without running: it could never fit */
    const char *abort_reason;     /* static text when aborted (sched_done.why), else NULL */
    double arrival, first_scheduled, first_token, finish_time;
    double ttft;                  /* first_token - arrival */
    double tpot;                  /* (finish - first_token) / (output_len - 1); 0 if 1 token */
    double e2e;                   /* finish - arrival */
    double norm_latency;          /* e2e / output_len (s/token) */
} met_request;

typedef struct met_pct { double mean, p50, p90, p99, max; } met_pct;

typedef struct met_summary {
    int    num_requests, num_finished, num_aborted;
    int    num_refused;           /* of the aborted: could never fit (prompt + output
                                     beyond max_model_len or the whole pool) */
    long   prompt_tokens, output_tokens, steps;
    double sim_time;              /* simulated seconds, first arrival to last finish */
    double wall_time;             /* seconds the simulation took (filled by the caller) */
    double req_per_s, out_tok_per_s, total_tok_per_s;
    met_pct ttft, tpot, e2e, norm_latency;
    /* time-averaged (weighted by step duration) shares of the whole pool */
    double share_token, share_reserved, share_internal, share_external, share_free;
    /* the vLLM paper's Figure 2 figure: token slots over all slots held or
     * lost (token + reserved + internal + external), both time-averaged */
    double token_share_of_used;
    /* the same with the free slots left unused while requests wait counted as
     * waste too (the paper's "external fragmentation & others"): memory that
     * demand could not use */
    double share_free_waiting;    /* free slots while the waiting queue is not empty */
    double token_share_loaded;
    double mean_running, mean_waiting, mean_batch_tokens, mean_blocks_used;
    int    max_running, max_waiting, max_swapped;
    int    max_blocks_used;       /* peak over the sampled steps */
    long   preemptions, swap_outs, swap_ins, cow_copies, prefix_hit_tokens, forks;
} met_summary;

typedef struct met_collector met_collector;

/* keep_steps: store every step record (else only the running averages). */
met_collector *met_create(bool keep_steps);
void met_destroy(met_collector *m);
/* Adds a step / a finished request.  Return 0, or -1 when out of memory. */
int  met_add_step(met_collector *m, const met_step *s);
int  met_add_request(met_collector *m, const met_request *r);
/* Fills the latency fields of r from its timestamps.  Can't fail. */
void met_request_finish(met_request *r);
/* Computes the summary (percentiles sort a copy).  Returns 0 or -1 (memory). */
int  met_summarize(const met_collector *m, met_summary *out);
/* The stored records (steps only with keep_steps); valid until the next add. */
const met_step    *met_steps(const met_collector *m, int *n);
const met_request *met_requests(const met_collector *m, int *n);
/* Percentiles (nearest-rank on a sorted copy) of v (n,).  All 0 when n == 0. */
int  met_percentiles(const double *v, int n, met_pct *out);
/* JSON of a summary / steps / requests; a cJSON* (void* keeps cJSON out of
 * this header), caller frees with cJSON_Delete.  NULL on memory. */
void *met_summary_json(const met_summary *s);
void *met_json(const met_summary *s, const met_step *steps, int n_steps,
               const met_request *reqs, int n_reqs);
/* Writes a cJSON tree to path atomically (base/file.h: a temporary, then a
 * rename; a killed run leaves the old file or none).  0, or -1 with err. */
int  met_write_json(const void *json, const char *path, char *err, size_t errlen);
#endif
