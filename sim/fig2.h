/* fig2: the vLLM paper's Figure 2 (Kwon et al., SOSP 2023, section 3): where
 * the KV cache memory goes under Orca (Max), (Pow2), (Oracle) and vLLM, in
 * four categories: token states, reservation, internal fragmentation, and
 * external fragmentation & others.  fig2_compute runs the four policies on one
 * workload through sim_run and returns the measured shares next to the
 * paper's bar labels; it prints nothing and touches no file.
 *
 * What is measured, per policy, time-weighted over the run, as a share of the
 * memory held or lost (token + reserved + internal + external + the free
 * slots left idle while requests wait; free slots nobody waits for are not
 * waste and are left out):
 *   token states   slots holding a token's KV
 *   reservation    slots a request holds for tokens it will still generate
 *   internal       slots the policy reserved beyond the request's final length
 *   external & others  free slots the next request cannot use (or that sit
 *                  idle while requests wait) and the slots an allocator's
 *                  rounding adds (a buddy block beyond what the policy asked).
 * The paper's setting (fig2_paper_config): OPT-13B on an A100-40GB with
 * 12 GiB of KV cache (Table 1: 15.7K slots), ShareGPT, 2 requests/s (the rate
 * of its Figure 13a) for one hour (its traces), Orca on a buddy allocator. */
#ifndef FIG2_H
#define FIG2_H
#include <stddef.h>
#include "sim/simulate.h"

enum { FIG2_TOKEN, FIG2_RESERVED, FIG2_INTERNAL, FIG2_EXTERNAL, FIG2_NCAT };
#define FIG2_NPOL 4

typedef struct fig2_row {
    kv_policy policy;               /* paged, orca-max, orca-pow2, orca-oracle */
    double measured[FIG2_NCAT];     /* % of the memory held or lost */
    double paper[FIG2_NCAT];        /* the figure's labels, %; NAN where it prints none */
    double mean_running;            /* requests batched, time-averaged */
    double paper_running;           /* the paper's Figure 13a (ShareGPT, 2 req/s) */
    double req_per_s;               /* throughput of the run */
    double worst;                   /* largest |measured - paper| over the labelled categories */
} fig2_row;

typedef struct fig2_table {
    fig2_row row[FIG2_NPOL];
    double   worst;                 /* largest |measured - paper| of the whole table */
} fig2_table;

#define FIG2_PAPER_RATE     2.0                       /* requests/s: Figure 13a */
#define FIG2_PAPER_REQUESTS 7200                      /* one hour at that rate */
#define FIG2_PAPER_KV_BYTES (12.0 * 1073741824.0)     /* Table 1: 12 GB, 15.7K OPT-13B slots */
/* The paper's pool in cfg: FIG2_PAPER_KV_BYTES in blocks of cfg->kv.block_size
 * (16 when unset) at kv_bytes_per_token, the buddy allocator, Orca (Max)
 * reserving 2,048 tokens.  Can't fail. */
void fig2_paper_config(sim_config *cfg, double kv_bytes_per_token);
/* Runs the four policies on reqs (n) with cfg (its policy is ignored; its
 * allocator is kept).  keep: NULL, or (FIG2_NPOL,) results the caller frees
 * with sim_result_free (for plots).  0, or -1 with err. */
int  fig2_compute(const sim_config *cfg, const wl_request *reqs, int n, fig2_table *t,
                  sim_result *keep, char *err, size_t errlen);
/* The category's name ("token states", ...). */
const char *fig2_category_name(int c);
#endif
