/* kv_runs: a step's block copies (sim/kv_cache.h: kv_copy, in the
 * scheduler's order) grouped into runs, kvr_: consecutive copies of one
 * kind whose source and destination blocks both rise by one.  The CUDA
 * engine moves each run of swaps with one copy call (engine/swap.c), and the
 * cost model can price swaps that way (sim/cost_model.h, CM_SWAP_RUNS), so
 * both take the runs from here.  Pure arithmetic; touches nothing. */
#ifndef KV_RUNS_H
#define KV_RUNS_H
#include "sim/kv_cache.h"

typedef struct kv_run {          /* blocks src..src+n-1 copied to dst..dst+n-1 */
    kv_copy_kind kind;           /* KV_SWAP_OUT (GPU -> host), KV_SWAP_IN (host -> GPU), KV_COPY_GPU */
    int src, dst, n;
} kv_run;

/* The run of copies that starts at c[i] (n copies in all): c[i], c[i+1], ...
 * of one kind whose src and dst both rise by one.  Fills *r and returns the
 * index after it.  Copy-on-write copies (KV_COPY_GPU) are never merged. */
int  kvr_next(const kv_copy *c, int n, int i, kv_run *r);
/* The runs of swap copies (KV_SWAP_OUT, KV_SWAP_IN) among c's n copies. */
long kvr_swap_runs(const kv_copy *c, int n);
#endif
