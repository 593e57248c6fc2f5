/* cli: number options of the engine's front ends (engine/run, bench, serve).
 * Front-end helpers: on a bad value they print "PROG: OPT wants ..." and exit
 * with status 2, so call them only from *_main.c. */
#ifndef APPS_ENGINE_CLI_H
#define APPS_ENGINE_CLI_H
#include <stdio.h>
#include "engine/model.h"
#include "engine/tp_engine.h"
#include "sim/kv_cache.h"
/* The integer in v (whole string), in [lo, hi]. */
int    cli_int(const char *prog, const char *opt, const char *v, long lo, long hi);
/* The number in v (whole string), in [lo, hi]. */
double cli_num(const char *prog, const char *opt, const char *v, double lo, double hi);
/* The batching, memory and KV options every front end shares (--kv-policy,
 * --max-num-batched-tokens, --max-num-seqs, --max-model-len, --block-size,
 * --gpu-memory-utilization, --num-gpu-blocks): sets *m or *kp from value v
 * and returns 1, or returns 0 when opt is none of them. */
int    cli_model_option(const char *prog, const char *opt, const char *v, model_opts *m, kv_policy *kp);
/* --tensor-parallel-size N / -tp N (vLLM's names): sets *tp from v and
 * returns 1, or returns 0 when opt is neither.  A front end keeps tp 0 when
 * the option is not given: one GPU without NCCL, as before tensor
 * parallelism; given, 1 included, the engine runs through NCCL. */
int    cli_tp_option(const char *prog, const char *opt, const char *v, int *tp);
/* Before anything starts CUDA: returns when tp is 0 or the engine can run
 * at tensor-parallel size tp here; else prints why (too few GPUs, no CUDA or
 * NCCL in the build) and exits with status 2. */
void   cli_tp_check(const char *prog, int tp);
/* After cli_tp_check, before anything starts CUDA or a thread: the ranks of
 * tensor-parallel size tp for batches within m's limits (tp_engine_start),
 * or NULL when tp is 0.  On failure prints why and exits with status 1. */
tp_engine *cli_tp_start(const char *prog, int tp, const model_opts *m);
/* The memory log's tensor-parallel lines (nothing without t): how rank 0's
 * shard splits c, and its per-GPU weights and KV bytes per token beside
 * `pagesim plan --tp N`'s (sim/planner.h); mem NULL: the plan's alone. */
void   cli_tp_report(FILE *f, const tp_engine *t, const mc_config *c, const model_mem *mem);
/* The engine settings the environment gives (library code reads none):
 *   PAGESIM_ATTN=mma|simt        attention technique (k_attention_impl)
 *   PAGESIM_ELEM=vector|scalar   per-token kernels (k_elementwise_impl)
 *   PAGESIM_MOE_GEMM=grouped|cublas  the experts' GEMMs
 *   PAGESIM_PROFILE=1            GPU time per class of step (model_profile_text)
 *   PAGESIM_DUMP_LAYER0=FILE     the first forward's layer-0 intermediates
 * into *m; a bad value is an error (exit 2). */
void   cli_engine_env(const char *prog, model_opts *m);
#endif
