/* Tests of the rate sweep (sim/rate_sweep.c) on a small setting: the rate
 * found is sustained and 10% more is not, paged sustains more than every
 * Orca variant and Oracle > Pow2 > Max, the sweep is deterministic and
 * reports its runs; the paper's settings match its Table 1; bad input is an
 * error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <math.h>
#include "sim/rate_sweep.h"
#include "sim/model_config.h"

typedef struct counter { int runs; double max_rate; } counter;
static void count(void *ctx, kv_policy p, double rate, double norm) {
    (void)p; (void)norm;
    counter *c = ctx;
    c->runs++;
    if (rate > c->max_rate) c->max_rate = rate;
}

static void small(rs_spec *s, cm_model *m) {
    char err[512];
    mc_config mc;
    cm_gpu g;
    if (mc_load(&mc, "data/models/opt-13b.json", err, sizeof err) || cm_gpu_find(&g, "A100-40GB", err, sizeof err) ||
        cm_model_init(m, &mc, &g, 1, mc.dtype, err, sizeof err))
        fail_msg("%s", err);
    rs_spec_default(s);
    s->model = m;
    s->kv.num_blocks = 400;               /* 6,400 slots: memory binds early */
    s->window_s = 240;
    s->tol = 0.05;
}

static void test_rate_is_the_knee(void **st) {
    (void)st;
    rs_spec s;
    cm_model m;
    small(&s, &m);
    counter c = { 0, 0 };
    s.progress = count;
    s.progress_ctx = &c;
    char err[256];
    double r, v;
    assert_int_equal(rs_sustainable_rate(&s, KV_PAGED, 0, &r, err, sizeof err), 0);
    assert_true(r > 0.1 && r < 20);
    assert_true(c.runs >= 4);
    assert_true(c.max_rate > r);
    assert_int_equal(rs_norm_latency_at(&s, KV_PAGED, r, &v, err, sizeof err), 0);
    assert_true(v <= s.max_norm_latency);
    assert_int_equal(rs_norm_latency_at(&s, KV_PAGED, r * 1.1, &v, err, sizeof err), 0);
    assert_true(v > s.max_norm_latency);
    /* the same spec gives the same rate */
    double r2;
    assert_int_equal(rs_sustainable_rate(&s, KV_PAGED, 1.0, &r2, err, sizeof err), 0);
    assert_true(fabs(r2 - r) <= 2 * s.tol * r);
}

static void test_policies_in_order(void **st) {
    (void)st;
    rs_spec s;
    cm_model m;
    small(&s, &m);
    static const kv_policy pol[RS_NPOL] = { KV_PAGED, KV_ORCA_ORACLE, KV_ORCA_POW2, KV_ORCA_MAX };
    double r[RS_NPOL];
    char err[256];
    for (int i = 0; i < RS_NPOL; i++)
        assert_int_equal(rs_sustainable_rate(&s, pol[i], i ? r[i - 1] / 1.5 : 0, &r[i], err, sizeof err), 0);
    assert_true(r[RS_PAGED] > 1.3 * r[RS_ORACLE]);
    assert_true(r[RS_ORACLE] > r[RS_POW2] && r[RS_POW2] > r[RS_MAX] && r[RS_MAX] > 0);
    /* first-fit placement gives Oracle more room than the buddy's powers of two */
    s.kv.allocator = KV_ALLOC_FIRST_FIT;
    double ff;
    assert_int_equal(rs_sustainable_rate(&s, KV_ORCA_ORACLE, r[RS_ORACLE], &ff, err, sizeof err), 0);
    assert_true(ff > r[RS_ORACLE]);
}

static void test_paper_settings(void **st) {
    (void)st;
    int n;
    const rs_setting *t = rs_paper_settings(&n);
    assert_int_equal(n, 4);
    char err[256];
    for (int i = 0; i < n; i++) {
        mc_config mc;
        if (mc_load(&mc, t[i].model_path, err, sizeof err)) fail_msg("%s", err);
        assert_int_equal(mc.num_heads % t[i].tp, 0);
        assert_ptr_equal(rs_paper_setting(t[i].name), &t[i]);
    }
    /* Table 1: 12 GB of KV for OPT-13B is 15.7K slots of 800 KB */
    mc_config mc;
    assert_int_equal(mc_load(&mc, rs_paper_setting("opt-13b")->model_path, err, sizeof err), 0);
    assert_int_equal(mc_kv_bytes_per_token(&mc, MC_DTYPE_FP16), 819200);
    assert_int_equal(rs_paper_setting("opt-13b")->kv_slots, (12LL << 30) / 819200);
    assert_int_equal(rs_paper_setting("opt-175b")->tp, 8);
    assert_null(rs_paper_setting("opt-7b"));
}

static void test_run_setting_and_errors(void **st) {
    (void)st;
    rs_spec s;
    rs_spec_default(&s);
    s.window_s = 120;
    s.tol = 0.1;
    rs_setting tiny = *rs_paper_setting("opt-13b");
    tiny.kv_slots = 4096;
    rs_row row;
    char err[256];
    assert_int_equal(rs_run_setting(&tiny, WL_SHAREGPT, &s, &row, err, sizeof err), 0);
    assert_true(row.rate[RS_PAGED] > row.rate[RS_ORACLE] && row.rate[RS_ORACLE] > row.rate[RS_MAX]);
    assert_int_equal(row.workload, WL_SHAREGPT);
    rs_setting bad = tiny;
    bad.model_path = "data/models/no-such-model.json";
    assert_int_equal(rs_run_setting(&bad, WL_SHAREGPT, &s, &row, err, sizeof err), -1);
    assert_non_null(strstr(err, "no-such-model.json"));
    s.workload = WL_TRACE;
    double v;
    assert_int_equal(rs_norm_latency_at(&s, KV_PAGED, 1.0, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "trace"));
    s.workload = WL_SHAREGPT;
    assert_int_equal(rs_norm_latency_at(&s, KV_PAGED, 0, &v, err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_is_the_knee),
        cmocka_unit_test(test_policies_in_order),
        cmocka_unit_test(test_paper_settings),
        cmocka_unit_test(test_run_setting_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
