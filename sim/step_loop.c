/* step_loop: schedule -> execute -> postprocess, the same for the simulator
 * and the engine (see step_loop.h).  Touches only the loop's token buffer. */
#include "sim/step_loop.h"
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

int loop_init(loop *l, sched *sc, loop_executor ex, double start_time, int eos_id) {
    memset(l, 0, sizeof *l);
    l->sc = sc; l->ex = ex; l->now = start_time; l->eos_id = eos_id;
    /* a batch never has more items than max_num_seqs: the token buffer is
     * sized once, so that no allocation can fail between building a batch
     * and running it (its block copies must not be lost) */
    l->cap = sched_get_config(sc)->max_num_seqs;
    l->tokens = malloc((size_t)l->cap * sizeof *l->tokens);
    if (!l->tokens) { l->cap = 0; return -1; }
    return 0;
}

void loop_free(loop *l) {
    if (!l) return;
    free(l->tokens);
    l->tokens = NULL; l->cap = 0;
}

/* Counts steps that ran and finished nothing; fails after too many in a row. */
static int note_progress(loop *l, const loop_step_info *info, char *err, size_t errlen) {
    if (info->batch->num_items > 0 || info->n_done > 0) { l->empty_steps = 0; return 1; }
    if (++l->empty_steps < LOOP_MAX_EMPTY_STEPS) return 1;
    int run, wait, sw;
    sched_counts(l->sc, &run, &wait, &sw);
    snprintf(err, errlen, "step loop: no progress in %d steps at t=%.3f s (%d running, %d waiting, "
             "%d swapped): the scheduler admits and preempts without running anything",
             l->empty_steps, l->now, run, wait, sw);
    return -1;
}

int loop_step(loop *l, loop_step_info *info, char *err, size_t errlen) {
    loop_step_info tmp;
    if (!info) info = &tmp;
    memset(info, 0, sizeof *info);
    const sched_batch *b;
    info->start = l->now;
    int n = sched_schedule(l->sc, l->now, &b, err, errlen);
    info->batch = b;
    if (n < 0) return -1;
    if (n == 0 && b->num_copies == 0) {
        /* nothing to run (maybe requests were aborted while scheduling) */
        if (sched_postprocess(l->sc, NULL, l->now, l->eos_id, &info->done, &info->n_done,
                              &info->fin, &info->n_fin, err, errlen)) return -1;
        /* a step that only preempted or aborted still changed the state */
        if (!(b->preempted || b->admitted || b->swapped_in || info->n_done)) return 0;
        return note_progress(l, info, err, errlen);
    }
    if (n > l->cap) {             /* a scheduler bug: more items than max_num_seqs */
        snprintf(err, errlen, "step loop: %d items for a batch of at most %d", n, l->cap);
        return -1;
    }
    double secs = 0;
    if (l->ex.execute(l->ex.ctx, b, l->tokens, &secs, err, errlen) != 0) return -1;
    if (secs < 0) secs = 0;
    info->seconds = secs;
    if (l->observe) l->observe(l->observe_ctx, info);
    l->now += secs;
    l->steps++;
    if (sched_postprocess(l->sc, l->tokens, l->now, l->eos_id, &info->done, &info->n_done,
                          &info->fin, &info->n_fin, err, errlen)) return -1;
    return note_progress(l, info, err, errlen);
}
