/* lab_paging_sim: every number of the paging lab, measured by one function on
 * the sim/ core, so that the lab follows the core as it improves.  For each
 * policy (paged, Orca Oracle / Pow2 / Max; a static "contiguous" KV cache of
 * max-model-len = 2,048 slots is Orca Max here) it measures, on OPT-13B with
 * ShareGPT-like requests:
 *   - where the KV memory goes, in the vLLM paper's Figure 2 categories, at
 *     the paper's 2 requests/s (as `pagesim run --fig2` measures it);
 *   - requests served at once while others wait (memory-bound concurrency,
 *     the paper's Fig. 13a ratios), with every request waiting at t = 0;
 *   - the highest sustainable request rate (mean normalized latency under
 *     1 s/token, as `pagesim run --rate-sweep`), bracketed and bisected.
 * The reservation baselines are placed by the buddy allocator the paper
 * assumed (sim/buddy_alloc.c, as `pagesim run --fig2` and --rate-sweep do).
 * Reads the model config and data/gpus.json; writes nothing. */
#ifndef LAB_PAGING_SIM_H
#define LAB_PAGING_SIM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sim/kv_cache.h"
#include "sim/metrics.h"

enum { LAB_PG_PAGED, LAB_PG_ORACLE, LAB_PG_POW2, LAB_PG_MAX, LAB_PG_NPOL };
enum { LAB_PG_MAXPTS = 32 };         /* rate-search points kept per policy */

typedef struct lab_paging_setup {
    const char *model_path;          /* data/models/opt-13b.json */
    const char *gpu;                 /* A100-40GB */
    double   kv_gb;                  /* KV cache size, GiB (the paper: 12, its Table 1: 15.7K OPT-13B slots) */
    double   rate;                   /* Figure 2 arrivals, requests/s (2) */
    int      requests;               /* Figure 2 and concurrency runs (1000) */
    int      max_model_len;          /* 2048 */
    uint64_t seed;                   /* the workload's */
    bool     sweep;                  /* measure the sustainable rates (the slow part) */
    double   sweep_seconds;          /* arrival window of each sweep run (600) */
    double   max_norm_latency;       /* sustainable: mean normalized latency under this (1 s/token) */
} lab_paging_setup;

typedef struct lab_paging_numbers {
    const char *name[LAB_PG_NPOL];   /* "paged", "orca-oracle", ... */
    int     num_blocks, block_size;  /* the pool */
    double  kv_gb;
    double  mean_prompt, mean_output;
    /* Figure 2: shares of the memory held or lost (sum 1), and the paper's token share */
    double  token[LAB_PG_NPOL], reserved[LAB_PG_NPOL], internal[LAB_PG_NPOL], external[LAB_PG_NPOL];
    double  paper_token[LAB_PG_NPOL];
    met_summary fig2[LAB_PG_NPOL];   /* the Figure 2 runs' summaries */
    /* requests at once while others wait; the largest batch seen */
    double  at_once[LAB_PG_NPOL];
    int     max_at_once[LAB_PG_NPOL];
    /* highest sustainable rate, requests/s (NAN without sweep), and the
     * (rate, mean normalized latency) points the search measured, by rate */
    double  rate[LAB_PG_NPOL];
    double  sweep_rate[LAB_PG_NPOL][LAB_PG_MAXPTS], sweep_latency[LAB_PG_NPOL][LAB_PG_MAXPTS];
    int     sweep_n[LAB_PG_NPOL];
} lab_paging_numbers;

/* The paper's setup: OPT-13B on an A100-40GB, 12 GB of KV cache, 2 req/s,
 * 1000 requests, max-model-len 2048, seed 1, with the sweep. */
lab_paging_setup lab_paging_setup_default(void);
/* Measures everything.  Returns 0, or -1 with err. */
int lab_paging_measure(const lab_paging_setup *s, lab_paging_numbers *out, char *err, size_t errlen);
#endif
