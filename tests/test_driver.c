/* test_driver: the one driver over loop_step.  Arrivals enter at their time
 * and the simulated clock jumps over idle stretches; a real-time clock waits
 * instead (a fake clock counts the waits; the wall clock sleeps); stalls are
 * errors (idle with nothing to come, no progress for stall_steps); errors of a
 * source or an out-of-order array stop the run; results and per-step KV usage
 * land in the metrics collector, with the scheduler's counters in the
 * summary; hooks, abort, max_steps, a caller-fed scheduler. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <math.h>
#include "sim/driver.h"
#include "sim/sim_executor.h"
#include "base/clock.h"

typedef struct rig {
    kv_cache *kv;
    sched    *sc;
    simx      x;
    loop      lp;
    drv      *d;
} rig;

static void rig_init(rig *r, int blocks, sched_config sc, double t0) {
    memset(r, 0, sizeof *r);
    kv_config kc = { .policy = KV_PAGED, .num_blocks = blocks, .block_size = 16, .max_model_len = 2048,
                     .orca_max_len = 2048, .prefix_caching = true };
    char err[256];
    r->kv = kv_create(&kc, err, sizeof err);
    assert_non_null(r->kv);
    r->sc = sched_create(&sc, r->kv, err, sizeof err);
    assert_non_null(r->sc);
    simx_init(&r->x, NULL, 1);
    assert_int_equal(loop_init(&r->lp, r->sc, simx_executor(&r->x), t0, -1), 0);
}
static void rig_start(rig *r, const drv_config *dc) {
    char err[256];
    r->d = drv_create(&r->lp, r->kv, dc, err, sizeof err);
    if (!r->d) fail_msg("%s", err);
}
static void rig_free(rig *r) {
    drv_destroy(r->d);
    loop_free(&r->lp);
    sched_destroy(r->sc);
    kv_destroy(r->kv);
}

static int prompt[4096];

/* n requests: i arrives at arrival[i], prompt 30 + 7i, output 12 + i */
static void make_reqs(drv_request *q, int n, const double *arrival) {
    for (int i = 0; i < 4096; i++) prompt[i] = 1000 + i;
    for (int i = 0; i < n; i++)
        q[i] = (drv_request){ i, prompt, 30 + 7 * i, 12 + i, 1, 0, arrival[i], NULL, 0 };
}

typedef struct hooks { int arrivals, steps, done; double arrived_at[16]; } hooks;
static void on_arrival(void *ctx, const drv_request *r, seq *first) {
    hooks *h = ctx;
    assert_non_null(first);
    assert_int_equal(first->prompt_len, r->prompt_len);
    h->arrived_at[r->id] = first->arrival;
    h->arrivals++;
}
static void on_step(void *ctx, const loop_step_info *info) {
    hooks *h = ctx;
    h->steps++;
    h->done += info->n_done;
}

static void test_arrivals_and_idle_jumps(void **st) {
    (void)st;
    double at[4] = { 0.5, 0.5, 0.6, 100.0 };      /* the last comes long after the others */
    drv_request q[4];
    make_reqs(q, 4, at);
    rig r; rig_init(&r, 200, sched_config_default(), 0.0);
    drv_array a = { q, 4, 0 };
    hooks h = { 0 };
    drv_config dc = drv_config_default();
    dc.source = drv_source_array(&a);
    dc.keep_steps = true; dc.keep_requests = true; dc.check = true;
    dc.on_arrival = on_arrival; dc.on_step = on_step; dc.ctx = &h;
    rig_start(&r, &dc);
    char err[256];
    if (drv_run(r.d, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(h.arrivals, 4);
    assert_int_equal(h.done, 4);
    assert_int_equal(h.steps, r.lp.steps);
    int nr, ns;
    const met_request *m = met_requests(drv_metrics(r.d), &nr);
    const met_step *s = met_steps(drv_metrics(r.d), &ns);
    assert_int_equal(nr, 4);
    assert_int_equal(ns, r.lp.steps);
    for (int i = 0; i < nr; i++) {
        assert_false(m[i].aborted);
        assert_int_equal(m[i].output_len, 12 + m[i].id);
        assert_true(m[i].arrival == at[m[i].id]);
        /* the clock jumped to each arrival: nothing starts early, and the late
         * one starts exactly when it arrives (the pool was idle) */
        assert_true(m[i].first_scheduled >= m[i].arrival);
        if (m[i].id == 0 || m[i].id == 3) assert_true(m[i].first_scheduled == m[i].arrival);
    }
    /* every step's pool sample adds up; the last request ran alone */
    for (int i = 0; i < ns; i++) {
        assert_int_equal(s[i].token_slots + s[i].reserved_slots + s[i].internal_frag + s[i].external_frag +
                         s[i].free_slots, s[i].slots_total);
        assert_true(s[i].blocks_used <= 200);
    }
    assert_true(s[ns - 1].time > 100.0);
    met_summary sum;
    assert_int_equal(drv_summary(r.d, &sum), 0);
    assert_int_equal(sum.num_finished, 4);
    assert_int_equal(sum.steps, r.lp.steps);
    assert_true(fabs(sum.sim_time - (s[ns - 1].time - 0.5)) < 1e-9);
    rig_free(&r);
}

/* a source that fails, one that lies about its next arrival, an array out of
 * order, and one that has nothing due and no arrival time: errors, not spins */
typedef struct bad_src { int mode, calls; } bad_src;
static int bad_next(void *ctx, double now, drv_request *r, double *next_at, char *err, size_t errlen) {
    bad_src *b = ctx;
    b->calls++;
    (void)r;
    if (b->mode == 0) { snprintf(err, errlen, "source broke"); return -1; }
    if (b->mode == 1) { *next_at = now; return DRV_SRC_LATER; }
    *next_at = INFINITY;
    return DRV_SRC_LATER;
}

static void test_source_errors_and_stalls(void **st) {
    (void)st;
    char err[256];
    for (int mode = 0; mode < 3; mode++) {
        rig r; rig_init(&r, 50, sched_config_default(), 0.0);
        bad_src b = { mode, 0 };
        drv_config dc = drv_config_default();
        dc.source = (drv_source){ bad_next, &b };
        rig_start(&r, &dc);
        assert_int_equal(drv_run(r.d, err, sizeof err), -1);
        const char *want[3] = { "source broke", "not after now", "no arrival time" };
        if (!strstr(err, want[mode])) fail_msg("mode %d: %s", mode, err);
        assert_true(b.calls < 5);
        rig_free(&r);
    }
    double at[3] = { 0.0, 2.0, 1.0 };
    drv_request q[3];
    make_reqs(q, 3, at);
    rig r; rig_init(&r, 50, sched_config_default(), 0.0);
    drv_array a = { q, 3, 0 };
    drv_config dc = drv_config_default();
    dc.source = drv_source_array(&a);
    rig_start(&r, &dc);
    assert_int_equal(drv_run(r.d, err, sizeof err), -1);
    assert_non_null(strstr(err, "before the one listed before it"));
    rig_free(&r);
}

/* no token sampled and nothing finished for stall_steps steps is a stall:
 * a 1000-token prompt in 16-token chunks takes 63 steps before it samples */
static void test_stall_steps(void **st) {
    (void)st;
    double at[1] = { 0 };
    drv_request q[1];
    make_reqs(q, 1, at);
    q[0].prompt_len = 1000;
    sched_config c = sched_config_default();
    c.max_num_batched_tokens = 16;
    char err[256];
    for (int pass = 0; pass < 2; pass++) {
        rig r; rig_init(&r, 200, c, 0.0);
        drv_array a = { q, 1, 0 };
        drv_config dc = drv_config_default();
        dc.source = drv_source_array(&a);
        dc.stall_steps = pass == 0 ? 20 : 0;       /* 0: the auto bound lets it finish */
        rig_start(&r, &dc);
        int rc = drv_run(r.d, err, sizeof err);
        if (pass == 0) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, "no token sampled"));
            assert_int_equal(r.lp.steps, 20);
        } else if (rc != 0) fail_msg("%s", err);
        rig_free(&r);
    }
}

/* Real time: a fake clock.  The executor's work takes its step time on the
 * clock; idle stretches are waited out, once each, up to the arrival. */
typedef struct fake_clock { double t; int waits; double waited_to[8]; } fake_clock;
static double fc_now(void *ctx) { return ((fake_clock *)ctx)->t; }
static int fc_wait(void *ctx, double until, char *err, size_t errlen) {
    fake_clock *c = ctx;
    if (until == INFINITY || until <= c->t) { snprintf(err, errlen, "bad wait to %g at %g", until, c->t); return -1; }
    if (c->waits < 8) c->waited_to[c->waits] = until;
    c->waits++;
    c->t = until;
    return 0;
}
typedef struct timed_ex { fake_clock *c; } timed_ex;
static int timed_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds, char *err, size_t errlen) {
    (void)err; (void)errlen;
    timed_ex *x = ctx;
    for (int i = 0; i < b->num_items; i++) tokens[i] = 5;
    *seconds = 0.001;
    x->c->t += 0.001;
    return 0;
}

static void test_real_time_waits(void **st) {
    (void)st;
    double at[3] = { 10.0, 10.0, 20.0 };
    drv_request q[3];
    make_reqs(q, 3, at);
    rig r; rig_init(&r, 200, sched_config_default(), 0.0);
    fake_clock fc = { 3.0, 0, { 0 } };
    timed_ex tx = { &fc };
    r.lp.ex = (loop_executor){ &tx, timed_execute };
    drv_array a = { q, 3, 0 };
    drv_config dc = drv_config_default();
    dc.source = drv_source_array(&a);
    dc.clock = (drv_clock){ fc_now, fc_wait, &fc };
    dc.keep_requests = true;
    rig_start(&r, &dc);
    char err[256];
    if (drv_run(r.d, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(fc.waits, 2);                 /* 3 -> 10, then idle until 20 */
    assert_true(fc.waited_to[0] == 10.0 && fc.waited_to[1] == 20.0);
    int nr;
    const met_request *m = met_requests(drv_metrics(r.d), &nr);
    assert_int_equal(nr, 3);
    for (int i = 0; i < nr; i++) assert_true(m[i].first_scheduled >= at[m[i].id]);
    rig_free(&r);

    /* the wall clock sleeps until the second arrival */
    double now = clock_now_s();
    double at2[2] = { now, now + 0.05 };
    make_reqs(q, 2, at2);
    rig_init(&r, 200, sched_config_default(), 0.0);
    drv_array a2 = { q, 2, 0 };
    dc = drv_config_default();
    dc.source = drv_source_array(&a2);
    dc.clock = drv_wall_clock();
    dc.keep_requests = true;
    rig_start(&r, &dc);
    if (drv_run(r.d, err, sizeof err) != 0) fail_msg("%s", err);
    assert_true(clock_now_s() - now >= 0.05);
    m = met_requests(drv_metrics(r.d), &nr);
    assert_int_equal(nr, 2);
    for (int i = 0; i < nr; i++) assert_true(m[i].first_scheduled >= at2[m[i].id]);
    rig_free(&r);
}

/* the caller feeds the scheduler (no source), aborts one request between
 * steps, an observe hook already on the loop keeps being called and is put
 * back; max_steps stops drv_run with work left */
typedef struct obs { int calls; } obs;
static void count_obs(void *ctx, const loop_step_info *info) { (void)info; ((obs *)ctx)->calls++; }

static void test_caller_fed_abort_observe_max_steps(void **st) {
    (void)st;
    rig r; rig_init(&r, 200, sched_config_default(), 0.0);
    for (int i = 0; i < 4096; i++) prompt[i] = 7 + i;
    for (int i = 0; i < 3; i++) assert_non_null(sched_add(r.sc, i, prompt, 40, 30, 1, 0, 0.0, NULL));
    obs o = { 0 };
    r.lp.observe = count_obs; r.lp.observe_ctx = &o;
    drv_config dc = drv_config_default();
    dc.max_steps = 5;
    dc.keep_requests = true;
    rig_start(&r, &dc);
    char err[256];
    assert_int_equal(drv_run(r.d, err, sizeof err), 1);     /* stopped at 5 steps */
    assert_int_equal(r.lp.steps, 5);
    assert_int_equal(o.calls, 5);
    sched_done d;
    assert_int_equal(drv_abort(r.d, 1, &d, NULL), 1);
    assert_true(d.aborted);
    assert_ptr_equal(d.why, SCHED_WHY_CALLER);
    assert_int_equal(drv_abort(r.d, 1, &d, NULL), 0);
    drv_destroy(r.d);
    dc.max_steps = 0;
    rig_start(&r, &dc);
    if (drv_run(r.d, err, sizeof err) != 0) fail_msg("%s", err);
    met_summary s;
    assert_int_equal(drv_summary(r.d, &s), 0);
    assert_int_equal(s.num_finished, 2);               /* this driver saw 0 and 2 finish */
    drv_destroy(r.d);
    r.d = NULL;
    assert_ptr_equal(r.lp.observe, count_obs);          /* put back */
    rig_free(&r);
}

/* the summary carries the scheduler's and the pool's counters */
static void test_summary_counters(void **st) {
    (void)st;
    double at[8];
    for (int i = 0; i < 8; i++) at[i] = 0.01 * i;
    drv_request q[8];
    make_reqs(q, 8, at);
    for (int i = 0; i < 8; i++) { q[i].n = 2; q[i].prompt_len = 200; q[i].max_output = 150; }
    rig r; rig_init(&r, 60, sched_config_default(), 0.0);
    drv_array a = { q, 8, 0 };
    drv_config dc = drv_config_default();
    dc.source = drv_source_array(&a);
    dc.check = true;
    dc.keep_requests = true;
    rig_start(&r, &dc);
    char err[256];
    if (drv_run(r.d, err, sizeof err) != 0) fail_msg("%s", err);
    met_summary s;
    assert_int_equal(drv_summary(r.d, &s), 0);
    const sched_stats *ss = sched_get_stats(r.sc);
    assert_int_equal(s.num_finished, 8);
    assert_true(s.preemptions > 0);
    assert_int_equal(s.preemptions, ss->preemptions);
    assert_int_equal(s.forks, ss->forks);
    assert_int_equal(s.forks, 8);
    assert_true(s.cow_copies > 0);
    assert_true(s.prefix_hit_tokens > 0);             /* the prompts share their ids */
    assert_int_equal(s.output_tokens, 8L * 2 * 150);
    rig_free(&r);
}

static void test_bad_config(void **st) {
    (void)st;
    rig r; rig_init(&r, 50, sched_config_default(), 0.0);
    char err[256];
    drv_config dc = drv_config_default();
    dc.clock.now = fc_now;                             /* no wait */
    assert_null(drv_create(&r.lp, r.kv, &dc, err, sizeof err));
    assert_non_null(strstr(err, "wait"));
    dc = drv_config_default();
    dc.stall_steps = -1;
    assert_null(drv_create(&r.lp, r.kv, &dc, err, sizeof err));
    assert_null(drv_create(&r.lp, NULL, &dc, err, sizeof err));
    rig_free(&r);
}

int main(void) {
    alarm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arrivals_and_idle_jumps),
        cmocka_unit_test(test_source_errors_and_stalls),
        cmocka_unit_test(test_stall_steps),
        cmocka_unit_test(test_real_time_waits),
        cmocka_unit_test(test_caller_fed_abort_observe_max_steps),
        cmocka_unit_test(test_summary_counters),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
