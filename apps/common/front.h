/* front: what every command shares about being a command (apps/ only; the
 * libraries neither print, exit nor read the environment).
 *   - front_init, first thing in main: the data folder (--data-dir DIR, else
 *     $PAGESIM_DATA, else the data/ beside the executable, so that a command
 *     runs from any directory; base/file.h), the GPU table ($PAGESIM_GPUS),
 *     stdout checked at exit (a write error, as `> /dev/full`, turns a
 *     success into status 1), and SIGINT/SIGTERM/SIGHUP that leave no
 *     half-written output file behind.
 *   - FRONT_SPECS: the --version and --data-dir rows of every table, applied
 *     by front_option.
 *   - FRONT_*_ROWS: vLLM's name for a setting several commands share, with
 *     the older names this project used as aliases, so that every command
 *     spells a setting the same way.
 *   - the exit statuses, the same for the same kind of error everywhere.
 * Every command's rule (in the .mk files of apps/) links
 * $(BUILD)/apps/common/front.o. */
#ifndef APPS_COMMON_FRONT_H
#define APPS_COMMON_FRONT_H
#include <stdio.h>
#include "base/opt.h"

#define PAGESIM_VERSION "0.9.0"

/* Exit statuses of every command. */
enum {
    FRONT_OK    = 0,     /* done (pagesim plan: the request fits; a lab's --check: all right) */
    FRONT_FAIL  = 1,     /* the work failed while running: a simulation or engine error, a
                            write error, a server that failed (pagesim plan: does not fit;
                            --check: answers wrong or missing) */
    FRONT_USAGE = 2,     /* bad usage or bad input: an unknown option or bad value, a missing
                            or malformed input file, an explicit option that cannot be honoured */
};

enum { FRONT_VERSION = 940, FRONT_DATA_DIR };
#define FRONT_SPECS \
    { "version", FRONT_VERSION, OPT_FLAG }, \
    { "data-dir", FRONT_DATA_DIR, OPT_VALUE }

/* vLLM's names (first row of each: the one --help shows), then the aliases. */
#define FRONT_TP_ROWS(k) \
    { "tensor-parallel-size", k, OPT_VALUE }, { "-tp", k, OPT_VALUE }, { "tp", k, OPT_VALUE }
#define FRONT_UTIL_ROWS(k) \
    { "gpu-memory-utilization", k, OPT_VALUE }, { "util", k, OPT_VALUE }
#define FRONT_BLOCKS_ROWS(k) \
    { "num-gpu-blocks", k, OPT_VALUE }, { "num-blocks", k, OPT_VALUE }
#define FRONT_MAX_LEN_ROWS(k) \
    { "max-model-len", k, OPT_VALUE }, { "max-len", k, OPT_VALUE }
#define FRONT_BATCHED_ROWS(k) \
    { "max-num-batched-tokens", k, OPT_VALUE }, { "max-batched-tokens", k, OPT_VALUE }
#define FRONT_SEQS_ROWS(k) \
    { "max-num-seqs", k, OPT_VALUE }
#define FRONT_SWAP_ROWS(k) \
    { "swap-space", k, OPT_VALUE }, { "swap-gb", k, OPT_VALUE }
#define FRONT_PROMPTS_ROWS(k) \
    { "num-prompts", k, OPT_VALUE }, { "num-requests", k, OPT_VALUE }, { "requests", k, OPT_VALUE }
/* automatic prefix caching: on by default everywhere (as vLLM V1) */
#define FRONT_PREFIX_ROWS(on, off) \
    { "enable-prefix-caching", on, OPT_FLAG }, { "no-enable-prefix-caching", off, OPT_FLAG }, \
    { "prefix-caching", on, OPT_FLAG }, { "no-prefix-caching", off, OPT_FLAG }

/* First thing in main (prog: "pagesim", "labs/bias", ...): the data folder
 * ($PAGESIM_DATA, else the data/ beside the executable), the GPU table, the
 * stdout check at exit, the signals.  Exits with FRONT_USAGE when
 * PAGESIM_DATA names no directory. */
void front_init(const char *prog);
/* Applies a FRONT_SPECS option: --version prints the version and exits 0;
 * --data-dir DIR sets the data folder (exit FRONT_USAGE when DIR is not a
 * directory).  Returns 1 when key was one of them, else 0. */
int  front_option(const char *prog, int key, const char *v);
/* 0 when the file path can be written: a name, and a folder that exists and
 * is writable; else -1 with err ("OPT PATH: cannot write into DIR: ...").
 * For output options, checked before any work starts. */
int  front_check_output(const char *opt, const char *path, char *err, size_t errlen);
/* "PROG (pagesim) VERSION" and what this build has (the CUDA engine, NCCL). */
void front_version(FILE *f, const char *prog);
#endif
