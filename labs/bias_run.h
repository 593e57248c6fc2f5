/* bias_run: the experiment loop, as the study's run script: for every set,
 * every ticker x trial prompt goes to the reply source (the rest of a set in
 * one call; the source keeps its own requests in flight); replies are
 * appended durably (fflush + fsync) every max_workers to a progress
 * journal {model}_att_set_{n}.progress.jsonl, so a killed run resumes where
 * it stopped; a finished set becomes {model}_att_set_{n}.csv through a
 * temporary file and rename.  A manifest {model}_att_run.json pins the
 * settings so that a resume never mixes two different runs.  Replies that
 * carry "p_buy" (--decision logits) add a p_buy column to the set files.
 * Touches only {model}_att_* files in the output directory. */
#ifndef BIAS_RUN_H
#define BIAS_RUN_H
#include <stddef.h>
#include <stdint.h>
#include "labs/bias_data.h"
#include "labs/bias_source.h"

typedef struct bias_run_config {
    const char *model;          /* file prefix: the model id after its last '/' */
    const char *model_id;       /* as given */
    double      temperature, top_p;
    int         max_tokens, num_sets, num_trials, max_workers;
    uint64_t    seed;
    const char *output_dir;
    const char *inputs;         /* a line naming the inputs (tickers, evidence, profile) */
    const char *row_note;       /* when set, a last column "note" with this text on every row of
                                   the set files (e.g. dummy weights: the decisions mean nothing) */
    /* called after every durable journal write (NULL: none) */
    void (*progress)(void *ctx, int set, size_t done, size_t total, size_t resumed);
    void *progress_ctx;
} bias_run_config;

/* Per-prompt figures over all sets, in set, ticker, trial order. */
typedef struct bias_run_stats {
    size_t  n;                  /* prompts = num_sets x tickers x num_trials */
    int    *prompt_tokens;      /* (n) chat-templated prompt tokens */
    int    *output_tokens;      /* (n) reply tokens */
    double *latency_s, *ttft_s; /* (n) what the source reported (0 when simulated) */
    size_t  answered, resumed;  /* trials with a decision; trials taken from journals or set files */
    int     sets_reused;        /* sets already complete on disk */
} bias_run_stats;

/* Runs every set (resuming what is on disk).  -1 with err on a source
 * failure, an I/O error, or a manifest from a different run. */
int  bias_run_sets(const bias_run_config *c, const bias_universe *u, bias_source *src,
                   bias_run_stats *st, char *err, size_t errlen);
void bias_run_stats_free(bias_run_stats *st);
#endif
