/* bench_steps: what engine/bench records of each engine step, bstep_: a CSV
 * of the steps in `pagesim calibrate`'s columns (prefill_tokens,
 * decode_tokens, num_seqs, attn_ctx_tokens, attn_pairs, seconds), and, given
 * an operator profile (sim/op_profile.h), its prediction of every step beside
 * the measured time: the summed time and the per-step relative errors.
 * Writes only the CSV it is given; prints only in bstep_report. */
#ifndef ENGINE_BENCH_STEPS_H
#define ENGINE_BENCH_STEPS_H
#include <stddef.h>
#include <stdio.h>
#include "engine/engine.h"
#include "sim/op_profile.h"

typedef struct bstep_log {
    FILE  *csv;                  /* NULL: no step file */
    opp_profile prof;
    int    have_prof;
    char   prof_path[512];
    double measured_s, predicted_s;   /* sums over the steps */
    double *rel;                 /* (cap,) predicted / measured - 1 of each step */
    int    n, cap;
} bstep_log;

/* csv_path, prof_path: NULL for none.  The profile must match c's shape
 * (tp 1).  0, or -1 with err naming the file. */
int  bstep_open(bstep_log *l, const char *csv_path, const char *prof_path, const mc_config *c, char *err, size_t errlen);
/* Records one step.  0, or -1 when out of memory or the file fails. */
int  bstep_add(bstep_log *l, const eng_step_info *si);
/* With a profile: one line, measured vs predicted step time (sum, error,
 * median and p90 of |per-step error|) to out; and the same as JSON members
 * (", \"op_profile\": ...", no braces) into json (n bytes; "" without). */
void bstep_report(bstep_log *l, FILE *out, char *json, size_t n);
/* Closes the file.  0, or -1 when writing it failed. */
int  bstep_close(bstep_log *l);
#endif
