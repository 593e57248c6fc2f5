/* cli_lora: the engine front ends' LoRA options, vLLM's names:
 *   --enable-lora                 runtime LoRA adapters
 *   --lora-modules NAME=PATH ...  adapters requests may name (repeatable; vLLM's
 *                                 '{"name": ..., "path": ...}' form too)
 *   --max-loras N                 adapters in GPU memory at once (1)
 *   --max-lora-rank R             the GPU slots' rank (16)
 * One block of table rows (CLI_LORA_SPECS), cli_lora_option to apply them,
 * and the set loaded for a model.  Front-end helpers: they print and exit. */
#ifndef APPS_ENGINE_CLI_LORA_H
#define APPS_ENGINE_CLI_LORA_H
#include <stdio.h>
#include "base/opt.h"
#include "engine/engine.h"
#include "engine/lora_set.h"
#include "engine/model.h"
#include "sim/model_config.h"

#define CLI_MAX_LORA_MODULES 64
enum { CLI_ENABLE_LORA = 960,  /* after cli.h's CLI_ENGINE keys (950..) */ CLI_LORA_MODULES, CLI_MAX_LORAS, CLI_MAX_LORA_RANK };
#define CLI_LORA_SPECS \
    { "enable-lora", CLI_ENABLE_LORA, OPT_FLAG }, \
    { "lora-modules", CLI_LORA_MODULES, OPT_VALUE }, \
    { "max-loras", CLI_MAX_LORAS, OPT_VALUE }, \
    { "max-lora-rank", CLI_MAX_LORA_RANK, OPT_VALUE }

typedef struct cli_lora {
    int  enabled, max_loras, max_rank;            /* 0, 1, 16: vLLM's defaults */
    int  n;                                       /* --lora-modules given */
    char name[CLI_MAX_LORA_MODULES][128];
    char path[CLI_MAX_LORA_MODULES][1024];
    int  modules_seen;                            /* positional NAME=PATH may follow */
    lora_set set;
} cli_lora;

void cli_lora_init(cli_lora *l);
/* Applies LoRA option key (value v) and returns 1, or 0 when key is not one
 * of them.  Exits with 2 on a bad value. */
int  cli_lora_option(const char *prog, int key, const char *name, const char *v, cli_lora *l);
/* A positional argument NAME=PATH after --lora-modules (vLLM takes several
 * values after one --lora-modules): 1 when taken, 0 when it is not one. */
int  cli_lora_positional(const char *prog, const char *v, cli_lora *l);
/* Any option engine/run and engine/bench share, in one place: the front's rows
 * (--version, --data-dir), the engine's (graphs, preemption), LoRA's, then the
 * model's.  1 when key was one of them, else 0.  Exits on a bad value. */
int  cli_shared_option(const char *prog, int key, const char *name, const char *v, eng_config *cfg, cli_lora *l);
/* After the model's config is known: NULL without --enable-lora; else the
 * adapters opened and checked against c, one line each on log.  Exits with 2
 * (options without --enable-lora) or 1 (a bad adapter) with the reason. */
const lora_set *cli_lora_load(const char *prog, cli_lora *l, const mc_config *c, FILE *log);
/* Adds n random all-linear adapters at --max-lora-rank (engine/bench
 * --lora-dummy); exits with 1 on failure. */
void cli_lora_dummy(const char *prog, cli_lora *l, const mc_config *c, int n, FILE *log);
/* The memory log's LoRA line (nothing without adapters): the slots' GPU
 * bytes beside `pagesim plan --enable-lora`'s. */
void cli_lora_report(FILE *f, const cli_lora *l, const mc_config *c, size_t lora_bytes);
void cli_lora_free(cli_lora *l);
#endif
