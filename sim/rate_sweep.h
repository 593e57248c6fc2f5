/* rate_sweep: the highest request rate a KV policy sustains, the vLLM paper's
 * throughput criterion (Kwon et al., SOSP 2023, section 6.1 and Figure 12),
 * rs_.  A run at rate R serves R x window_s requests arriving as a Poisson
 * process; the policy sustains R when the mean normalized latency (mean over
 * requests of end-to-end latency / output tokens) stays <= max_norm_latency.
 * Past capacity the queue grows for the whole window and the latency climbs
 * from tens of ms to whole seconds per token, so the threshold only locates
 * the knee of the paper's curves (its plots stop at 1 s/token).  The rate is
 * bracketed by doubling (or halving) from a first guess, then bisected.
 * Also the paper's settings (its Table 1) and its claims, and one call that
 * sweeps a setting's four policies.  Runs sim_run; reads the model config
 * and data/gpus.json of a setting; prints nothing. */
#ifndef RATE_SWEEP_H
#define RATE_SWEEP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sim/simulate.h"

typedef struct rs_spec {
    const cm_model *model;        /* step times; NULL: the toy cost of sim_executor.h */
    kv_config    kv;              /* pool, block size, max_model_len, allocator (policy: per call) */
    sched_config sched;
    wl_kind      workload;        /* WL_SHAREGPT, WL_ALPACA or WL_FIXED (a trace has its own rate) */
    int          fixed_prompt, fixed_output;   /* WL_FIXED */
    double       window_s;        /* seconds of Poisson arrivals per run (the paper: 3600) */
    double       max_norm_latency;/* s/token: the criterion */
    double       tol;             /* stop bisecting when the bracket is narrower than tol x rate */
    uint64_t     seed;
    /* called after every run (NULL = none): the policy, the rate tried, its
     * mean normalized latency (INFINITY when a request was aborted) */
    void (*progress)(void *ctx, kv_policy p, double rate, double norm_latency);
    void *progress_ctx;
} rs_spec;

/* Defaults: the vLLM scheduler defaults, buddy allocator, ShareGPT, a window
 * of 3600 s, 1 s/token, tol 0.02, seed 1; the caller sets model and kv's pool. */
void rs_spec_default(rs_spec *s);
/* Mean normalized latency of policy p at rate (requests/s).  0, or -1 with err. */
int  rs_norm_latency_at(const rs_spec *s, kv_policy p, double rate, double *norm, char *err, size_t errlen);
/* The highest sustainable rate of p, from a first guess start (<= 0: 0.25).
 * 0, or -1 with err. */
int  rs_sustainable_rate(const rs_spec *s, kv_policy p, double start, double *rate, char *err, size_t errlen);

/* The paper's settings (Table 1): a model on GPUs and its KV cache slots. */
typedef struct rs_setting {
    const char *name;             /* "opt-13b", "opt-66b", "opt-175b", "llama-13b" */
    const char *label;            /* "OPT-13B, 1 x A100-40GB" */
    const char *model_path;       /* data/models/<name>.json, from the repository root */
    const char *gpu;              /* data/gpus.json name */
    int    tp;                    /* tensor-parallel GPUs */
    long   kv_slots;              /* KV cache token slots */
    double window_s;              /* its trace: one hour, 15 minutes for OPT-175B */
} rs_setting;
/* The table of settings (n of them), or the one called name (NULL if none). */
const rs_setting *rs_paper_settings(int *n);
const rs_setting *rs_paper_setting(const char *name);
/* The paper's claims on ShareGPT over the three OPT models (section 6.2):
 * vLLM sustains 1.7-2.7x the rate of Orca (Oracle) and 2.7-8x Orca (Max). */
#define RS_PAPER_ORACLE_LO 1.7
#define RS_PAPER_ORACLE_HI 2.7
#define RS_PAPER_MAX_LO    2.7
#define RS_PAPER_MAX_HI    8.0

enum { RS_PAGED, RS_ORACLE, RS_POW2, RS_MAX, RS_NPOL };
typedef struct rs_row {
    const rs_setting *setting;
    wl_kind workload;
    double  rate[RS_NPOL];        /* sustainable requests/s: paged, Orca Oracle, Pow2, Max */
} rs_row;
/* Sweeps the four policies of setting st on workload wl.  tmpl supplies
 * everything but the pool (st's slots; its window_s <= 0: the setting's);
 * its allocator, block size and max_model_len are kept; its model, when set,
 * is used as is (e.g. with an operator profile), else st's config is loaded.
 * 0, or -1 with err (naming the model file when it cannot be read). */
int  rs_run_setting(const rs_setting *st, wl_kind wl, const rs_spec *tmpl, rs_row *row, char *err, size_t errlen);
#endif
