/* test_drv_queue: the driver's push source (sim/drv_queue.h).  Requests
 * pushed out of order are released earliest first, each at its arrival (equal
 * arrivals in push order), with the prompt as it was pushed; a removed request
 * never reaches the scheduler; pushes between steps join a run in progress;
 * open and empty it has nothing due and no time, closed it ends; a real-time
 * driver waits for the next queued arrival; bad pushes are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <math.h>
#include "sim/drv_queue.h"
#include "sim/sim_executor.h"

typedef struct rig {
    kv_cache *kv;
    sched    *sc;
    simx      x;
    loop      lp;
    drv      *d;
    drv_queue *q;
} rig;

static void rig_init(rig *r) {
    memset(r, 0, sizeof *r);
    kv_config kc = { .policy = KV_PAGED, .num_blocks = 200, .block_size = 16, .max_model_len = 2048,
                     .orca_max_len = 2048 };
    char err[256];
    r->kv = kv_create(&kc, err, sizeof err);
    assert_non_null(r->kv);
    sched_config sc = sched_config_default();
    r->sc = sched_create(&sc, r->kv, err, sizeof err);
    assert_non_null(r->sc);
    simx_init(&r->x, NULL, 1);
    assert_int_equal(loop_init(&r->lp, r->sc, simx_executor(&r->x), 0.0, -1), 0);
    r->q = drv_queue_create();
    assert_non_null(r->q);
}
static void rig_start(rig *r, drv_config *dc) {
    char err[256];
    dc->source = drv_source_queue(r->q);
    r->d = drv_create(&r->lp, r->kv, dc, err, sizeof err);
    if (!r->d) fail_msg("%s", err);
}
static void rig_free(rig *r) {
    drv_destroy(r->d);
    drv_queue_destroy(r->q);
    loop_free(&r->lp);
    sched_destroy(r->sc);
    kv_destroy(r->kv);
}

/* what entered the scheduler, in order: id, time, first prompt token */
typedef struct seen { int n, id[16], tok0[16], len[16]; double at[16], now[16]; } seen;
static void on_arrival(void *ctx, const drv_request *r, seq *first) {
    seen *s = ctx;
    assert_true(s->n < 16);
    s->id[s->n] = r->id;
    s->at[s->n] = first->arrival;
    s->tok0[s->n] = first->tokens[0];
    s->len[s->n] = first->prompt_len;
    s->n++;
}

static int push(drv_queue *q, int id, int *prompt, int len, double at) {
    drv_request r = { id, prompt, len, 8, 1, 0, at, NULL, 0 };
    return drv_queue_push(q, &r);
}

static void test_order_copy_remove(void **st) {
    (void)st;
    rig r; rig_init(&r);
    static const double at[6] = { 3.0, 1.0, 2.0, 1.0, 0.0, 2.5 };
    int prompt[64];
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < 64; k++) prompt[k] = 100 * i + k;
        assert_int_equal(push(r.q, i, prompt, 20 + i, at[i]), 0);
    }
    memset(prompt, 0, sizeof prompt);                   /* the queue kept its own copy */
    assert_int_equal(drv_queue_len(r.q), 6);
    drv_request out;
    assert_int_equal(drv_queue_remove(r.q, 5, &out), 1);
    assert_true(out.id == 5 && out.arrival == 2.5 && out.prompt == NULL && out.prompt_len == 25);
    assert_int_equal(drv_queue_remove(r.q, 5, &out), 0);
    assert_int_equal(drv_queue_remove(r.q, 42, &out), 0);
    assert_int_equal(drv_queue_len(r.q), 5);
    drv_queue_close(r.q);
    seen s = { 0 };
    drv_config dc = drv_config_default();
    dc.on_arrival = on_arrival; dc.ctx = &s; dc.keep_requests = true; dc.check = true;
    rig_start(&r, &dc);
    char err[256];
    if (drv_run(r.d, err, sizeof err) != 0) fail_msg("%s", err);
    static const int want[5] = { 4, 1, 3, 2, 0 };       /* by arrival; 1 before 3 (pushed first) */
    assert_int_equal(s.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s.id[i], want[i]);
        assert_true(s.at[i] == at[want[i]]);
        assert_int_equal(s.tok0[i], 100 * want[i]);
        assert_int_equal(s.len[i], 20 + want[i]);
    }
    int nr;
    const met_request *m = met_requests(drv_metrics(r.d), &nr);
    assert_int_equal(nr, 5);
    for (int i = 0; i < nr; i++) {
        assert_true(m[i].id != 5);
        assert_true(m[i].first_scheduled >= at[m[i].id]);   /* released no earlier than its time */
    }
    assert_int_equal(drv_queue_len(r.q), 0);
    rig_free(&r);
}

/* a run that its caller keeps feeding between steps, and the open queue's
 * "nothing due, no time" once it runs dry (simulated time: a stall) */
static void test_pushes_between_steps(void **st) {
    (void)st;
    rig r; rig_init(&r);
    int prompt[32];
    for (int k = 0; k < 32; k++) prompt[k] = k;
    assert_int_equal(push(r.q, 0, prompt, 32, 0.0), 0);
    seen s = { 0 };
    drv_config dc = drv_config_default();
    dc.on_arrival = on_arrival; dc.ctx = &s; dc.keep_requests = true;
    rig_start(&r, &dc);
    char err[256];
    loop_step_info info;
    assert_int_equal(drv_step(r.d, &info, err, sizeof err), 1);
    assert_int_equal(s.n, 1);
    double later = r.lp.now + 1.0;
    assert_int_equal(push(r.q, 1, prompt, 16, later), 0);
    int steps = 0, rc;
    while ((rc = drv_step(r.d, &info, err, sizeof err)) == 1) steps++;
    assert_int_equal(rc, -1);                          /* open and empty: no arrival time */
    assert_non_null(strstr(err, "no arrival time"));
    assert_int_equal(s.n, 2);
    assert_true(s.at[1] == later);
    met_summary sum;
    assert_int_equal(drv_summary(r.d, &sum), 0);
    assert_int_equal(sum.num_finished, 2);
    /* closed and empty: the end */
    drv_queue_close(r.q);
    assert_int_equal(drv_step(r.d, &info, err, sizeof err), 0);
    assert_int_equal(push(r.q, 2, prompt, 16, 0.0), -1);
    rig_free(&r);
}

/* Real time: a fake clock that the driver waits on; the executor takes 1 ms. */
typedef struct fake_clock { double t; int waits; double waited_to[4]; } fake_clock;
static double fc_now(void *ctx) { return ((fake_clock *)ctx)->t; }
static int fc_wait(void *ctx, double until, char *err, size_t errlen) {
    fake_clock *c = ctx;
    if (until == INFINITY || until <= c->t) { snprintf(err, errlen, "bad wait to %g at %g", until, c->t); return -1; }
    if (c->waits < 4) c->waited_to[c->waits] = until;
    c->waits++;
    c->t = until;
    return 0;
}
static int timed_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds, char *err, size_t errlen) {
    (void)err; (void)errlen;
    fake_clock *c = ctx;
    for (int i = 0; i < b->num_items; i++) tokens[i] = 5;
    *seconds = 0.001;
    c->t += 0.001;
    return 0;
}

static void test_real_time_waits_for_queued(void **st) {
    (void)st;
    rig r; rig_init(&r);
    fake_clock fc = { 1.0, 0, { 0 } };
    r.lp.ex = (loop_executor){ &fc, timed_execute };
    int prompt[16] = { 1, 2, 3 };
    assert_int_equal(push(r.q, 0, prompt, 16, 5.0), 0);
    assert_int_equal(push(r.q, 1, prompt, 16, 9.0), 0);
    drv_queue_close(r.q);
    drv_config dc = drv_config_default();
    dc.clock = (drv_clock){ fc_now, fc_wait, &fc };
    dc.keep_requests = true;
    rig_start(&r, &dc);
    char err[256];
    if (drv_run(r.d, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(fc.waits, 2);
    assert_true(fc.waited_to[0] == 5.0 && fc.waited_to[1] == 9.0);
    int nr;
    const met_request *m = met_requests(drv_metrics(r.d), &nr);
    assert_int_equal(nr, 2);
    for (int i = 0; i < nr; i++) assert_true(m[i].first_scheduled == (m[i].id == 0 ? 5.0 : 9.0));
    rig_free(&r);
}

static void test_bad_pushes(void **st) {
    (void)st;
    drv_queue *q = drv_queue_create();
    assert_non_null(q);
    int prompt[4] = { 1, 2, 3, 4 };
    drv_request r = { 0, NULL, 4, 8, 1, 0, 0.0, NULL, 0 };
    assert_int_equal(drv_queue_push(q, &r), -1);        /* no prompt */
    r.prompt = prompt; r.prompt_len = 0;
    assert_int_equal(drv_queue_push(q, &r), -1);        /* empty prompt */
    r.prompt_len = 4; r.arrival = NAN;
    assert_int_equal(drv_queue_push(q, &r), -1);        /* no time */
    assert_int_equal(drv_queue_len(q), 0);
    /* many pushes in order and released from the front: the array is reused */
    drv_source src = drv_source_queue(q);
    char err[64];
    for (int i = 0; i < 1000; i++) {
        r.arrival = i; r.id = i;
        assert_int_equal(drv_queue_push(q, &r), 0);
        if (i % 2) {
            drv_request got;
            double next_at = 0;
            assert_int_equal(src.next(src.ctx, 1e9, &got, &next_at, err, sizeof err), DRV_SRC_REQUEST);
            assert_int_equal(got.id, i / 2);
            assert_int_equal(got.prompt[3], 4);
        }
    }
    assert_int_equal(drv_queue_len(q), 500);
    drv_request got;
    double next_at = 0;
    assert_int_equal(src.next(src.ctx, 1e9, &got, &next_at, err, sizeof err), DRV_SRC_REQUEST);
    assert_int_equal(got.id, 500);
    assert_int_equal(src.next(src.ctx, 10.0, &got, &next_at, err, sizeof err), DRV_SRC_LATER);
    assert_true(next_at == 501.0);
    drv_queue_destroy(q);
}

int main(void) {
    alarm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_copy_remove),
        cmocka_unit_test(test_pushes_between_steps),
        cmocka_unit_test(test_real_time_waits_for_queued),
        cmocka_unit_test(test_bad_pushes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
