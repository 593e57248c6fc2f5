/* driver: arrivals, the idle clock, stall detection and result collection
 * around loop_step (see driver.h).  Touches the loop's clock and observe
 * hook, the scheduler (sched_add, sched_abort, queries), the KV cache
 * (usage, check) read-only, and its own metrics collector. */
#include "sim/driver.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/clock.h"

struct drv {
    drv_config     cfg;
    loop          *lp;            /* not owned */
    kv_cache      *kv;            /* not owned */
    sched         *sc;            /* lp->sc */
    met_collector *met;
    void         (*prev_observe)(void *ctx, const loop_step_info *info);
    void          *prev_observe_ctx;
    bool           real;          /* a drv_clock: real time */
    bool           src_ended;
    double         next_at;       /* the next arrival the source knows of */
    int            every;         /* KV usage sampling period in steps */
    long           nobs;          /* steps observed */
    kv_usage       last;          /* the latest usage sample */
    long           since_progress;/* steps since a token was sampled or a request finished */
    long           longest;       /* longest request seen (prompt + output tokens) */
    int            oom;           /* recording a metric ran out of memory */
};

drv_config drv_config_default(void) {
    drv_config c;
    memset(&c, 0, sizeof c);
    return c;
}

/* ---- the observe hook: the step and the pool, into the collector ----------- */
static void observe(void *ctx, const loop_step_info *info) {
    drv *d = ctx;
    if (d->nobs++ % d->every == 0) {
        seq *const *live; const seq *next;
        int n = sched_live(d->sc, &live, &next);
        if (n < 0) d->oom = 1;
        else kv_usage_get(d->kv, live, n, next, &d->last);
    }
    const kv_usage *u = &d->last;
    const sched_batch *b = info->batch;
    met_step s;
    memset(&s, 0, sizeof s);
    s.time = info->start + info->seconds;
    s.dt = info->seconds;
    sched_counts(d->sc, &s.running, &s.waiting, &s.swapped);
    s.batch_seqs = b->num_items;
    s.prefill_tokens = b->counts.prefill_tokens;
    s.decode_tokens = b->counts.decode_tokens;
    s.batch_tokens = s.prefill_tokens + s.decode_tokens;
    s.preemptions = b->preempted;
    s.num_copies = b->num_copies;
    s.blocks_used = u->blocks_used; s.blocks_total = u->blocks_total;
    s.slots_total = u->slots_total; s.token_slots = u->token_slots;
    s.reserved_slots = u->reserved_slots; s.internal_frag = u->internal_frag;
    s.external_frag = u->external_frag; s.free_slots = u->free_slots;
    if (met_add_step(d->met, &s)) d->oom = 1;
    if (d->prev_observe) d->prev_observe(d->prev_observe_ctx, info);
}

static void record_request(drv *d, const sched_done *x) {
    if (!d->cfg.keep_requests) return;
    met_request r;
    memset(&r, 0, sizeof r);
    r.id = x->id; r.prompt_len = x->prompt_len; r.output_len = x->output_len;
    r.num_seqs = x->num_seqs; r.num_preemptions = x->num_preemptions;
    r.aborted = x->aborted; r.refused = x->refused; r.abort_reason = x->why;
    r.arrival = x->arrival; r.first_scheduled = x->first_scheduled;
    r.first_token = x->first_token; r.finish_time = x->finish_time;
    met_request_finish(&r);
    if (met_add_request(d->met, &r)) d->oom = 1;
}

drv *drv_create(loop *lp, kv_cache *kv, const drv_config *cfg, char *err, size_t errlen) {
    if (!lp || !lp->sc || !kv || !cfg) { snprintf(err, errlen, "driver: no loop, scheduler or KV cache"); return NULL; }
    if ((cfg->clock.now != NULL) != (cfg->clock.wait != NULL)) {
        snprintf(err, errlen, "driver: a real-time clock needs both now() and wait()");
        return NULL;
    }
    if (cfg->usage_every < 0 || cfg->max_steps < 0 || cfg->stall_steps < 0) {
        snprintf(err, errlen, "driver: usage_every, max_steps and stall_steps must be >= 0");
        return NULL;
    }
    drv *d = calloc(1, sizeof *d);
    if (!d || !(d->met = met_create(cfg->keep_steps))) {
        free(d);
        snprintf(err, errlen, "driver: out of memory");
        return NULL;
    }
    d->cfg = *cfg;
    d->lp = lp; d->kv = kv; d->sc = lp->sc;
    d->real = cfg->clock.now != NULL;
    d->src_ended = cfg->source.next == NULL;    /* the caller feeds the scheduler itself */
    d->next_at = INFINITY;
    int nb = kv_get_config(kv)->num_blocks;
    d->every = cfg->usage_every > 0 ? cfg->usage_every : (nb / 2048 > 1 ? nb / 2048 : 1);
    d->longest = kv_get_config(kv)->max_model_len;
    d->prev_observe = lp->observe; d->prev_observe_ctx = lp->observe_ctx;
    lp->observe = observe; lp->observe_ctx = d;
    return d;
}

void drv_destroy(drv *d) {
    if (!d) return;
    d->lp->observe = d->prev_observe; d->lp->observe_ctx = d->prev_observe_ctx;
    met_destroy(d->met);
    free(d);
}

/* ---- a step ------------------------------------------------------------------ */
int drv_admit(drv *d, char *err, size_t errlen) {
    while (!d->src_ended) {
        drv_request r;
        memset(&r, 0, sizeof r);
        double next_at = INFINITY;
        int st = d->cfg.source.next(d->cfg.source.ctx, d->lp->now, &r, &next_at, err, errlen);
        if (st < 0) return -1;
        if (st == DRV_SRC_END) { d->src_ended = true; d->next_at = INFINITY; return 0; }
        if (st == DRV_SRC_LATER) { d->next_at = next_at; return 0; }
        seq *s = sched_add(d->sc, r.id, r.prompt, r.prompt_len, r.max_output, r.n > 0 ? r.n : 1,
                           r.beam, r.arrival, r.user);
        if (!s) {
            snprintf(err, errlen, "driver: request %d (prompt %d, output %d tokens): %s", r.id,
                     r.prompt_len, r.max_output, r.prompt_len > 0 && r.max_output > 0 && r.prompt
                     ? "out of memory" : "no prompt or no output");
            return -1;
        }
        s->lora = r.lora;                       /* before any step: forks copy it */
        long len = (long)r.prompt_len + r.max_output;
        if (len > d->longest) d->longest = len;
        if (d->cfg.on_arrival) d->cfg.on_arrival(d->cfg.ctx, &r, s);
    }
    return 0;
}

static int stalled(drv *d, const char *why, char *err, size_t errlen) {
    int r, w, s;
    sched_counts(d->sc, &r, &w, &s);
    snprintf(err, errlen, "driver: stalled at t=%.3f s after %ld steps with %d running, %d waiting, "
             "%d swapped: %s", d->lp->now, d->lp->steps, r, w, s, why);
    return -1;
}

/* After a step: progress, the invariants, the caller's hook. */
static int after_step(drv *d, const loop_step_info *info, char *err, size_t errlen) {
    bool progress = info->n_done > 0;
    const sched_batch *b = info->batch;
    for (int i = 0; !progress && b && i < b->num_items; i++) progress = b->items[i].samples;
    if (progress) d->since_progress = 0;
    else {
        long budget = sched_get_config(d->sc)->max_num_batched_tokens;
        long limit = d->cfg.stall_steps > 0 ? d->cfg.stall_steps
                   : 256 + 4 * ((d->longest + budget - 1) / (budget > 0 ? budget : 1));
        if (++d->since_progress >= limit)
            return stalled(d, "no token sampled and no request finished in so many steps", err, errlen);
    }
    if (d->cfg.check) {
        seq *const *live; const seq *next;
        int n = sched_live(d->sc, &live, &next);
        char why[256];
        if (n < 0) { snprintf(err, errlen, "driver: out of memory"); return -1; }
        if (kv_check(d->kv, live, n, why, sizeof why) != 0) {
            snprintf(err, errlen, "driver: kv_check failed after step %ld: %s", d->lp->steps, why);
            return -1;
        }
    }
    if (d->cfg.on_step) d->cfg.on_step(d->cfg.ctx, info);
    return 1;
}

int drv_step(drv *d, loop_step_info *info, char *err, size_t errlen) {
    loop_step_info tmp;
    if (!info) info = &tmp;
    for (;;) {
        memset(info, 0, sizeof *info);
        if (d->real) d->lp->now = d->cfg.clock.now(d->cfg.clock.ctx);
        if (drv_admit(d, err, errlen)) return -1;
        int rc = loop_step(d->lp, info, err, errlen);
        for (int i = 0; i < info->n_done; i++) record_request(d, &info->done[i]);
        if (rc < 0) return -1;
        if (d->oom) { snprintf(err, errlen, "driver: out of memory recording metrics"); return -1; }
        if (rc > 0) return after_step(d, info, err, errlen);
        /* idle: nothing could run.  With work left nothing will change that
         * (an arrival frees no memory): a stall, never a spin. */
        if (sched_has_work(d->sc)) return stalled(d, "nothing can run", err, errlen);
        if (d->src_ended) return 0;
        if (d->next_at == INFINITY && !d->real)
            return stalled(d, "the source has no request due and no arrival time", err, errlen);
        if (d->next_at <= d->lp->now && d->next_at != INFINITY) {
            snprintf(err, errlen, "driver: the source said 'later' for an arrival at %.6f s, not after now "
                     "(%.6f s)", d->next_at, d->lp->now);
            return -1;
        }
        if (!d->real) d->lp->now = d->next_at;       /* simulated time jumps */
        else if (d->cfg.clock.wait(d->cfg.clock.ctx, d->next_at, err, errlen)) return -1;
    }
}

int drv_run(drv *d, char *err, size_t errlen) {
    for (;;) {
        if (d->cfg.max_steps > 0 && d->lp->steps >= d->cfg.max_steps)
            return sched_has_work(d->sc) || !d->src_ended ? 1 : 0;
        int rc = drv_step(d, NULL, err, errlen);
        if (rc <= 0) return rc;
    }
}

int drv_abort(drv *d, int id, sched_done *out, const seq **first) {
    sched_done tmp;
    if (!out) out = &tmp;
    if (sched_abort(d->sc, id, d->lp->now, out, first) != 1) return 0;
    record_request(d, out);
    return 1;
}

/* ---- results ----------------------------------------------------------------- */
const met_collector *drv_metrics(const drv *d) { return d->met; }

int drv_summary(const drv *d, met_summary *out) {
    if (d->oom || met_summarize(d->met, out)) return -1;
    seq *const *live; const seq *next;
    int n = sched_live(d->sc, &live, &next);
    if (n < 0) return -1;
    kv_usage u;
    kv_usage_get(d->kv, live, n, next, &u);
    const sched_stats *ss = sched_get_stats(d->sc);
    out->swap_outs = ss->swap_outs;
    out->swap_ins = ss->swap_ins;
    out->forks = ss->forks;
    out->preemptions = ss->preemptions;
    out->cow_copies = u.cow_copies;
    out->prefix_hit_tokens = u.prefix_hit_tokens;
    return 0;
}

/* ---- ready-made sources and clocks -------------------------------------------- */
static int array_next(void *ctx, double now, drv_request *r, double *next_at, char *err, size_t errlen) {
    drv_array *a = ctx;
    if (a->next >= a->n) return DRV_SRC_END;
    const drv_request *q = &a->reqs[a->next];
    if (a->next > 0 && q->arrival < a->reqs[a->next - 1].arrival) {
        snprintf(err, errlen, "driver: request %d arrives at %g s, before the one listed before it (%g s)",
                 q->id, q->arrival, a->reqs[a->next - 1].arrival);
        return -1;
    }
    if (q->arrival > now) { *next_at = q->arrival; return DRV_SRC_LATER; }
    *r = *q;
    a->next++;
    return DRV_SRC_REQUEST;
}

drv_source drv_source_array(drv_array *a) { return (drv_source){ array_next, a }; }

static double wall_now(void *ctx) { (void)ctx; return clock_now_s(); }

static int wall_wait(void *ctx, double until, char *err, size_t errlen) {
    (void)ctx;
    if (until == INFINITY) { snprintf(err, errlen, "driver: nothing to wait for (no arrival time)"); return -1; }
    double dt = until - clock_now_s();
    if (dt <= 0) return 0;
    struct timespec ts = { (time_t)dt, (long)((dt - (double)(time_t)dt) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return 0;
}

drv_clock drv_wall_clock(void) { return (drv_clock){ wall_now, wall_wait, NULL }; }
