/* sim_executor: the simulator's executor for the step loop.  The step time
 * comes from the cost model (cm_step_time of the batch's counts; with an
 * operator profile, plus the host's time after the step, opp_post_time); sampled
 * tokens are synthetic (seeded ids, never an EOS, so sequences end at their
 * true output length).  Without a model, a toy cost stands in:
 *     5 ms + 20 us per sequence + 50 us per prefill token (tests only).
 * Performs no block copies (there is no memory), and touches nothing else. */
#ifndef SIM_EXECUTOR_H
#define SIM_EXECUTOR_H
#include <stdint.h>
#include "sim/step_loop.h"
#include "sim/cost_model.h"

typedef struct simx {
    const cm_model *model;        /* NULL: the toy cost */
    uint64_t rng;
    int      vocab;               /* synthetic ids in [0, vocab) */
    double   busy_s;              /* total step time so far */
} simx;

void   simx_init(simx *x, const cm_model *model, uint64_t seed);
/* The loop_executor that runs on x (x must outlive the loop). */
loop_executor simx_executor(simx *x);
/* Seconds a batch takes (what execute reports).  Can't fail. */
double simx_step_time(const simx *x, const sched_batch *b);
#endif
