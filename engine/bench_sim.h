/* bench_sim: the simulator's prediction of an engine/bench run, set beside
 * what the engine measured (issue 19: swap against recompute under memory
 * pressure).  The same requests (lengths, arrivals), the same pool (the
 * engine's GPU blocks and swap blocks), the same scheduler settings (limits,
 * preemption mode, prefix caching) go through sim_run (sim/simulate.h) with
 * step times from an operator profile when given, else the roofline of the
 * GPU, and swaps priced as this engine copies them (CM_SWAP_RUNS: one call
 * per run of consecutive blocks, engine/swap.c).  No GPU; reads only the profile it is given; prints only in
 * bsim_report. */
#ifndef ENGINE_BENCH_SIM_H
#define ENGINE_BENCH_SIM_H
#include <stdio.h>
#include "engine/engine.h"
#include "sim/gpu_table.h"

typedef struct bsim_figures {    /* of one run, measured or predicted */
    double seconds;              /* first arrival to last finish */
    double output_tok_s;
    long   preemptions, swap_outs, swap_ins;
    int    requests, preempted;  /* requests, and those preempted at least once */
    double mean_latency;         /* end-to-end, seconds: all requests */
    double preempted_latency;    /* the preempted ones (0 when none) */
} bsim_figures;

/* Folds one finished request into f (latency e2e seconds, output tokens,
 * its preemptions); seconds, rates and stats are the caller's. */
void bsim_add(bsim_figures *f, double e2e, int num_preemptions);
/* Means from the sums bsim_add kept. */
void bsim_finish(bsim_figures *f);
/* The prediction for n requests (prompt_len, output_len (n,), arrival (n,)
 * seconds or NULL: all at 0) on the engine's configuration: cfg and the
 * model's resolved options mo, the pool of mem (num_blocks, num_cpu_blocks).
 * op_profile: a profile file (sim/op_profile.h) of this model, or NULL for
 * the roofline of gpu.  0, or -1 with a message. */
int  bsim_predict(const mc_config *c, const eng_config *cfg, const model_opts *mo, const model_mem *mem,
                  const int *prompt_len, const int *output_len, const double *arrival, int n,
                  const char *op_profile, const cm_gpu *gpu, bsim_figures *out, char *err, size_t errlen);
/* Two lines: measured and predicted, and the ratio of their times. */
void bsim_report(FILE *f, const char *what, const bsim_figures *measured, const bsim_figures *predicted);
#endif
