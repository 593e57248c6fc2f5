/* cli: what the engine's front ends (engine/run, bench, serve) share about
 * their command lines, over base/opt.h: the batching, memory and KV options
 * (one block of table rows, CLI_MODEL_SPECS, and cli_model_option to apply
 * them), and the number options that print "PROG: OPT wants ..." and exit
 * with status 2 on a bad value.  Front-end helpers: they exit, so call them
 * only from *_main.c. */
#ifndef APPS_ENGINE_CLI_H
#define APPS_ENGINE_CLI_H
#include <stdio.h>
#include "apps/common/front.h"
#include "base/opt.h"
#include "engine/engine.h"
#include "engine/model.h"
#include "engine/tp_engine.h"
#include "sim/kv_cache.h"

/* The keys of the shared options, and their rows for a command's table. */
enum { CLI_KV_POLICY = 900, CLI_MAX_BATCHED, CLI_MAX_SEQS, CLI_MAX_LEN, CLI_BLOCK_SIZE, CLI_GPU_UTIL,
       CLI_NUM_GPU_BLOCKS, CLI_TP, CLI_MAX_GPU_MEM };
#define CLI_MODEL_SPECS \
    { "kv-policy", CLI_KV_POLICY, OPT_VALUE }, \
    { "max-num-batched-tokens", CLI_MAX_BATCHED, OPT_VALUE }, \
    { "max-num-seqs", CLI_MAX_SEQS, OPT_VALUE }, \
    { "max-model-len", CLI_MAX_LEN, OPT_VALUE }, \
    { "block-size", CLI_BLOCK_SIZE, OPT_VALUE }, \
    { "gpu-memory-utilization", CLI_GPU_UTIL, OPT_VALUE }, \
    { "num-gpu-blocks", CLI_NUM_GPU_BLOCKS, OPT_VALUE }, \
    { "max-gpu-memory", CLI_MAX_GPU_MEM, OPT_VALUE }
/* --tensor-parallel-size N and vLLM's -tp N (also --tp; key CLI_TP, the value
 * 1..1024; a front end keeps tp 0 when the option is not given). */
#define CLI_TP_SPECS FRONT_TP_ROWS(CLI_TP)
/* Applies shared option key (value v) to *m or *kp and returns 1; returns 0
 * when key is not one of them.  Exits with 2 on a bad value. */
int    cli_model_option(const char *prog, int key, const char *name, const char *v, model_opts *m,
                        kv_policy *kp);
/* Before anything starts CUDA: returns when tp is 0 (the option not given:
 * one GPU without NCCL) or the engine can run at tensor-parallel size tp here
 * (1 included, through NCCL); else prints why (too few GPUs, no CUDA or NCCL
 * in the build) and exits with status 2. */
void   cli_tp_check(const char *prog, int tp);
/* After cli_tp_check, before anything starts CUDA or a thread: the ranks of
 * tensor-parallel size tp for batches within m's limits (tp_engine_start),
 * or NULL when tp is 0.  On failure prints why and exits with status 1. */
tp_engine *cli_tp_start(const char *prog, int tp, const model_opts *m);
/* The memory log's tensor-parallel lines (nothing without t): how rank 0's
 * shard splits c, and its per-GPU weights and KV bytes per token beside
 * `pagesim plan -tp N`'s (sim/planner.h); mem NULL: the plan's alone. */
void   cli_tp_report(FILE *f, const tp_engine *t, const mc_config *c, const model_mem *mem);
/* The help lines of --max-gpu-memory (the same in every front end). */
#define CLI_MAX_GPU_MEM_HELP \
    "  --max-gpu-memory SIZE|GPU plan the KV cache as if the GPU had SIZE (12GiB, 16000MiB) or the\n" \
    "                            memory of a GPU of data/gpus.json (RTX-4070): a smaller card's budget\n" \
    "                            on a large one; the memory log then sets pagesim plan's beside it\n"
/* The memory log's line of `pagesim plan` for the same model, total memory
 * (mem->total, or the device's), utilization, max_model_len, batched tokens
 * and sequences (sim/planner.h), to read beside the engine's; mem NULL (the
 * engine refused to start): total is m->max_gpu_memory, and nothing is
 * printed without it. */
void   cli_plan_report(FILE *f, const mc_config *c, const model_opts *m, const model_mem *mem);
/* Prints "PROG: err" and exits with status 2 (a bad command line). */
_Noreturn void cli_usage_error(const char *prog, const char *err);
/* The integer in v (whole string), in [lo, hi]; exits with 2 otherwise. */
int    cli_int(const char *prog, const char *name, const char *v, long lo, long hi);
/* The number in v (whole string), in [lo, hi]; exits with 2 otherwise. */
double cli_num(const char *prog, const char *name, const char *v, double lo, double hi);
/* A non-negative 64-bit integer (a seed); exits with 2 otherwise. */
unsigned long long cli_u64(const char *prog, const char *name, const char *v);
/* The engine settings the environment gives (library code reads none):
 *   PAGESIM_ATTN=mma|simt|mma-heads  attention technique (k_attention_impl)
 *   PAGESIM_ATTN_PART=KEYS       keys per decode partition (k_attention_partition)
 *   PAGESIM_ELEM=vector|scalar   per-token kernels (k_elementwise_impl)
 *   PAGESIM_MOE_GEMM=grouped|cublas  the experts' GEMMs
 *   PAGESIM_PROFILE=1            GPU time per class of step (model_profile_text)
 *   PAGESIM_DUMP_LAYER0=FILE     the first forward's layer-0 intermediates
 * into *m; a bad value is an error (exit 2). */
void   cli_engine_env(const char *prog, model_opts *m);

/* The engine's runtime options, vLLM's names: CUDA graphs (on by default,
 * --enforce-eager turns them off) and preemption. */
enum { CLI_CUDA_GRAPHS = 950, CLI_ENFORCE_EAGER, CLI_PREEMPTION_MODE, CLI_SWAP_SPACE };
#define CLI_ENGINE_SPECS \
    { "cuda-graphs", CLI_CUDA_GRAPHS, OPT_FLAG }, \
    { "enforce-eager", CLI_ENFORCE_EAGER, OPT_FLAG }, \
    { "preemption-mode", CLI_PREEMPTION_MODE, OPT_VALUE }, \
    { "swap-space", CLI_SWAP_SPACE, OPT_VALUE }
#define CLI_ENGINE_HELP \
    "  --cuda-graphs             decode-only steps replay CUDA graphs, one per batch bucket (1, 2, 4, 8,\n" \
    "                            then multiples of 8 up to --max-num-seqs; a batch pads to its bucket):\n" \
    "                            the default, as vLLM's (off with --tensor-parallel-size, PAGESIM_PROFILE,\n" \
    "                            the dumps, LoRA, PAGESIM_MOE_GEMM=cublas: the log says why)\n" \
    "  --enforce-eager           every step eager, no graphs (vLLM's name)\n" \
    "  --preemption-mode M       recompute (default: a preempted sequence's KV is dropped and computed\n" \
    "                            again) or swap (its blocks go to pinned host memory and come back)\n" \
    "  --swap-space GiB          host memory per GPU for swapped blocks with --preemption-mode swap (4)\n"
/* Applies runtime option key (value v) to *cfg and returns 1; returns 0 when
 * key is not one of them.  Exits with 2 on a bad value, or on --cuda-graphs
 * and --enforce-eager together. */
int    cli_engine_option(const char *prog, int key, const char *name, const char *v, eng_config *cfg);
/* The memory log's lines of the runtime options: the graphs captured and
 * what they took (or why there are none), the preemption mode and the swap
 * pool. */
void   cli_engine_report(FILE *f, const eng *e, const eng_config *cfg, const model_mem *mem);
#endif
