/* step_loop: the one loop shared by the simulator and the CUDA engine:
 *     schedule -> execute -> postprocess
 * The scheduler (sim/scheduler.h) picks the batch; an executor runs it (the
 * simulator's cost model, sim/sim_executor.h, or the engine's GPU runner) and
 * says how long it took; postprocess appends the sampled tokens, stops and
 * forks sequences.  The loop keeps the clock: it advances by the step time the
 * executor reports (simulated seconds, or measured seconds for the engine).
 * Arrivals are the caller's business (sched_add before loop_step). */
#ifndef STEP_LOOP_H
#define STEP_LOOP_H
#include <stddef.h>
#include "sim/scheduler.h"

/* What an executor provides.  execute() must first perform b->copies in order
 * (swap-out, swap-in, copy-on-write block copies), then compute, for every
 * item, the KV of positions [start, start+num_new) of item->s (slots from
 * kv_slot), and write a sampled token id into tokens[i] for each item with
 * samples set.  It sets *seconds to the step's duration.  Returns 0, or -1
 * with err (the loop stops and reports it). */
typedef struct loop_executor {
    void *ctx;
    int (*execute)(void *ctx, const sched_batch *b, int *tokens /* (b->num_items,) */,
                   double *seconds, char *err, size_t errlen);
} loop_executor;

typedef struct loop_step_info {   /* what one step did */
    const sched_batch *batch;     /* valid until the next loop_step */
    double start, seconds;        /* clock at the start, duration */
    const sched_done *done;       /* requests finished in this step */
    int    n_done;
    seq *const *fin;              /* sequences finished in this step */
    int    n_fin;
} loop_step_info;

typedef struct loop {
    sched        *sc;             /* not owned */
    loop_executor ex;
    double        now;            /* clock, seconds */
    int           eos_id;         /* < 0: stop on length only */
    int          *tokens;         /* (cap,) sampled tokens of the step */
    int           cap;
    long          steps;
    int           empty_steps;    /* consecutive loop_steps that changed the state
                                     but ran and finished nothing */
    /* optional: called after execute and before postprocess, while the
     * step's state is in place (metrics sample the KV pool here) */
    void        (*observe)(void *ctx, const loop_step_info *info);
    void         *observe_ctx;
} loop;

/* Returns 0, or -1 when out of memory. */
int  loop_init(loop *l, sched *sc, loop_executor ex, double start_time, int eos_id);
void loop_free(loop *l);
/* A scheduler that keeps changing its state (admitting, preempting, swapping)
 * without running or finishing anything for this many steps in a row is
 * livelocked; healthy runs need two or three such steps at most. */
#define LOOP_MAX_EMPTY_STEPS 1000
/* One schedule -> execute -> postprocess.  Returns 1 when the state changed
 * (a step ran, or only preemptions/aborts happened), 0 when the scheduler had
 * nothing to run (the caller advances the clock to the next arrival), -1 with
 * err on an executor or scheduler error (out of memory: see sched_schedule and
 * sched_postprocess; what finished is still in *info) or after
 * LOOP_MAX_EMPTY_STEPS steps without a token computed or a request finished
 * (never a spin). */
int  loop_step(loop *l, loop_step_info *info, char *err, size_t errlen);
#endif
