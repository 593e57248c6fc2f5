/* cli: number options of the engine's front ends (engine/run, bench, serve).
 * Front-end helpers: on a bad value they print "PROG: OPT wants ..." and exit
 * with status 2, so call them only from *_main.c. */
#ifndef APPS_ENGINE_CLI_H
#define APPS_ENGINE_CLI_H
#include "engine/model.h"
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
 * returns 1, or returns 0 when opt is neither. */
int    cli_tp_option(const char *prog, const char *opt, const char *v, int *tp);
/* Before anything starts CUDA: returns when the engine can run at
 * tensor-parallel size tp here (1 always does); else prints why (too few
 * GPUs, no CUDA or NCCL in the build, or the sharded forward pass not wired
 * into the engine yet) and exits with status 2. */
void   cli_tp_check(const char *prog, int tp);
/* The engine settings the environment gives (library code reads none):
 *   PAGESIM_ATTN=mma|simt        attention technique (k_attention_impl)
 *   PAGESIM_ELEM=vector|scalar   per-token kernels (k_elementwise_impl)
 *   PAGESIM_MOE_GEMM=grouped|cublas  the experts' GEMMs
 *   PAGESIM_PROFILE=1            GPU time per class of step (model_profile_text)
 *   PAGESIM_DUMP_LAYER0=FILE     the first forward's layer-0 intermediates
 * into *m; a bad value is an error (exit 2). */
void   cli_engine_env(const char *prog, model_opts *m);
#endif
