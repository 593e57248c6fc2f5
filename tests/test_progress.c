/* test_progress: every run makes progress or stops with an error, never a
 * spin (issue 20, item 2).  A request that can never fit the pool (prompt +
 * output beyond it) is refused (finished aborted, with its reason, counted in
 * the metrics and the JSON) under every policy and preemption mode, and the
 * others are served; a seeded sweep of small pools and hard workloads always
 * ends; the commands that used to loop at 100% CPU end.  Before the fix these
 * loops preempted and re-admitted forever: each loop here has a step cap that
 * fails the test, and alarm() kills the binary if anything still hangs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <cjson/cJSON.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sim/scheduler.h"
#include "sim/step_loop.h"
#include "sim/sim_executor.h"
#include "sim/simulate.h"
#include "viz/scenario.h"

typedef struct outcome {
    int finished, aborted, refused;
    int refused_ran;             /* refused requests that had been scheduled (wasted work) */
    long steps;
    const char *why;
} outcome;

/* Serves reqs (n, all at t=0) through the step loop; fails past max_steps.
 * max_model_len 4096, except for the two policies that reserve it whole
 * (contiguous, orca-max), which get the pool's size unless all_4096. */
static outcome serve_len(kv_policy pol, int blocks, int cpu_blocks, sched_preempt_mode pm,
                         bool prefix, const wl_request *reqs, int n, long max_steps, bool all_4096) {
    int mml = (pol == KV_CONTIGUOUS || pol == KV_ORCA_MAX) && !all_4096 ? blocks * 16 : 4096;
    kv_config kc = { .policy = pol, .num_blocks = blocks, .block_size = 16, .max_model_len = mml,
                     .orca_max_len = mml, .prefix_caching = prefix && pol == KV_PAGED,
                     .num_cpu_blocks = pol == KV_PAGED ? cpu_blocks : 0 };
    char err[256];
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    if (!kv) fail_msg("%s", err);
    sched_config c = sched_config_default();
    c.preempt = pm;
    c.max_num_batched_tokens = 256;              /* long prompts run in chunks */
    sched *sc = sched_create(&c, kv, err, sizeof err);
    assert_non_null(sc);
    static int ids[8192];
    for (int i = 0; i < n; i++) {
        wl_prompt_tokens(&reqs[i], i, 7, ids);
        assert_non_null(sched_add(sc, i, ids, reqs[i].prompt_len, reqs[i].output_len,
                                  reqs[i].n > 0 ? reqs[i].n : 1, reqs[i].beam, 0, NULL));
    }
    simx x; simx_init(&x, NULL, 3);
    loop l; assert_int_equal(loop_init(&l, sc, simx_executor(&x), 0, -1), 0);
    outcome o = { 0 };
    while (sched_has_work(sc)) {
        if (l.steps > max_steps) fail_msg("%s: %ld steps and still running: a livelock", kv_policy_name(pol), l.steps);
        loop_step_info info;
        int rc = loop_step(&l, &info, err, sizeof err);
        if (rc < 0) fail_msg("%s", err);
        assert_int_equal(rc, 1);                 /* all arrived: never idle with work */
        for (int i = 0; i < info.n_done; i++) {
            if (!info.done[i].aborted) { o.finished++; continue; }
            o.aborted++;
            o.refused += info.done[i].refused;
            o.refused_ran += info.done[i].refused && info.done[i].first_scheduled >= 0;
            o.why = info.done[i].why;
        }
        seq *const *live; const seq *next;
        int nl = sched_live(sc, &live, &next);
        if (kv_check(kv, live, nl, err, sizeof err)) fail_msg("kv_check: %s", err);
    }
    o.steps = l.steps;
    assert_int_equal(sched_get_stats(sc)->refused, o.refused);
    loop_free(&l);
    sched_destroy(sc);
    kv_destroy(kv);
    return o;
}
static outcome serve(kv_policy pol, int blocks, int cpu_blocks, sched_preempt_mode pm,
                     bool prefix, const wl_request *reqs, int n, long max_steps) {
    return serve_len(pol, blocks, cpu_blocks, pm, prefix, reqs, n, max_steps, false);
}

/* The trace: 500 + 1000 tokens over 40 blocks (640 slots), with a
 * small request beside it, under recompute and swap, every policy (the
 * reservations of contiguous and orca-max: max_model_len 4096, so that the
 * long one is not clipped to the pool). */
static void test_never_fits_refused(void **st) {
    (void)st;
    wl_request r[2] = { { 0, 500, 1000, 1, 0, -1, 0 }, { 0, 40, 30, 1, 0, -1, 0 } };
    for (int pol = 0; pol < KV_NUM_POLICIES; pol++)
        for (int pm = 0; pm < 2; pm++) {
            bool whole = pol == KV_CONTIGUOUS || pol == KV_ORCA_MAX;
            outcome o = serve_len((kv_policy)pol, 40, 200, (sched_preempt_mode)pm, pol == KV_PAGED, r,
                                  2, 5000, true);
            if (whole) {                 /* any request reserves 4096 slots: none fits */
                assert_int_equal(o.refused, 2);
                assert_int_equal(o.finished, 0);
                o = serve((kv_policy)pol, 40, 200, (sched_preempt_mode)pm, false, r, 2, 5000);
                assert_int_equal(o.refused, 0);   /* max_model_len 640 clips it */
                assert_int_equal(o.finished, 2);
                continue;
            }
            if (o.refused != 1 || o.finished != 1)
                fail_msg("%s/%s: %d refused, %d finished", kv_policy_name((kv_policy)pol),
                         pm ? "swap" : "recompute", o.refused, o.finished);
            assert_int_equal(o.aborted, 1);
            assert_int_equal(o.refused_ran, 0);  /* refused up front, no work wasted */
            assert_ptr_equal(o.why, SCHED_WHY_NEVER_FITS);
            assert_non_null(strstr(o.why, "pool"));
        }
}

/* The edge: a request whose whole life is exactly the pool runs to its end;
 * one token more is refused, for a sequence group too. */
static void test_edge_of_the_pool(void **st) {
    (void)st;
    wl_request exact = { 0, 300, 340, 1, 0, -1, 0 };          /* 640 = 40 x 16 */
    wl_request over = { 0, 300, 341, 1, 0, -1, 0 };
    for (int pm = 0; pm < 2; pm++) {
        outcome o = serve(KV_PAGED, 40, 200, (sched_preempt_mode)pm, false, &exact, 1, 5000);
        assert_int_equal(o.finished, 1);
        assert_int_equal(o.refused, 0);
        o = serve(KV_PAGED, 40, 200, (sched_preempt_mode)pm, false, &over, 1, 5000);
        assert_int_equal(o.refused, 1);
        assert_int_equal(o.finished, 0);
        /* two samples of a request that fits alone: they take turns */
        wl_request g = { 0, 300, 300, 2, 0, -1, 0 };
        o = serve(KV_PAGED, 40, 200, (sched_preempt_mode)pm, false, &g, 1, 20000);
        assert_int_equal(o.finished, 1);
        assert_int_equal(o.refused, 0);
    }
}

/* A seeded sweep: small pools, long requests, groups, beams, prefixes, every
 * policy and preemption mode.  Every request ends (served or refused) within
 * the cap, and a request is refused exactly when its life exceeds the pool. */
static void test_sweep_always_ends(void **st) {
    (void)st;
    uint64_t s = 12345;
    for (int round = 0; round < 60; round++) {
        wl_request r[12];
        int blocks = 8 + (int)(s % 40), n = 3 + (int)(s / 7 % 9);
        for (int i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            r[i] = (wl_request){ 0, 1 + (int)(s >> 33) % 600, 1 + (int)(s >> 45) % 500, 1, 0, -1, 0 };
            if (i % 4 == 1) r[i].n = 2 + i % 3;
            if (i % 5 == 3) r[i].beam = 2 + i % 2;
            if (i % 3 == 0) { r[i].prefix_id = 0; r[i].prefix_len = r[i].prompt_len / 2; }
        }
        int pol = round % KV_NUM_POLICIES;
        sched_preempt_mode pm = (sched_preempt_mode)(round / KV_NUM_POLICIES % 2);
        outcome o = serve((kv_policy)pol, blocks, 3 * blocks, pm, round % 3 == 0, r, n, 200000);
        assert_int_equal(o.finished + o.aborted, n);
        if (pol == KV_PAGED) {
            int never = 0;
            for (int i = 0; i < n; i++) never += (r[i].prompt_len + r[i].output_len + 15) / 16 > blocks;
            if (o.refused != never) fail_msg("round %d: %d refused, %d can never fit", round, o.refused, never);
        }
    }
}

/* The simulation API: the refused request is counted, with its reason, in
 * the summary and in the JSON. */
static void test_simulate_counts_refusals(void **st) {
    (void)st;
    int p[2] = { 500, 40 }, o[2] = { 1000, 30 };
    for (int pm = 0; pm < 2; pm++) {
        sim_config c = sim_config_default();
        c.kv.num_blocks = 40;
        c.kv.num_cpu_blocks = 100;
        c.sched.preempt = (sched_preempt_mode)pm;
        c.check = true;
        c.max_steps = 100000;
        sim_result res; char err[256];
        if (sim_run_lengths(&c, p, o, NULL, 2, &res, err, sizeof err)) fail_msg("%s", err);
        assert_int_equal(res.summary.num_finished, 1);
        assert_int_equal(res.summary.num_aborted, 1);
        assert_int_equal(res.summary.num_refused, 1);
        cJSON *j = sim_result_json(&c, &res);
        assert_non_null(j);
        assert_int_equal((int)cJSON_GetObjectItem(cJSON_GetObjectItem(j, "summary"), "num_refused")->valuedouble, 1);
        int seen = 0;
        cJSON *q;
        cJSON_ArrayForEach(q, cJSON_GetObjectItem(j, "requests")) {
            if (!cJSON_IsTrue(cJSON_GetObjectItem(q, "aborted"))) continue;
            seen++;
            assert_int_equal((int)cJSON_GetObjectItem(q, "id")->valuedouble, 0);
            assert_string_equal(cJSON_GetObjectItem(q, "abort_reason")->valuestring, SCHED_WHY_NEVER_FITS);
        }
        assert_int_equal(seen, 1);
        cJSON_Delete(j);
        sim_result_free(&res);
    }
}

/* The view: the refusal is shown as an event, and the run ends long before
 * any step limit (it used to stop silently at step 100,000). */
static void test_view_refuses(void **st) {
    (void)st;
    wl_request r[2] = { { 0, 500, 1000, 1, 0, -1, 0 }, { 0.01, 40, 30, 1, 0, -1, 0 } };
    viz_scenario_config c = viz_scenario_defaults(40, 16, 1);
    c.kv.max_model_len = c.sched.max_model_len = 2048;
    c.reqs = r; c.num_reqs = 2;
    char err[256];
    viz_scenario *v = viz_scenario_create(&c, err, sizeof err);
    if (!v) fail_msg("%s", err);
    int rc, told = 0;
    while ((rc = viz_scenario_step(v, err, sizeof err)) == 1) {
        const viz_scene *s = viz_scenario_scene(v);
        if (strstr(s->event, "request 0 aborted") && strstr(s->event, "pool")) told++;
        if (s->step > 2000) fail_msg("step %d and still running", s->step);
    }
    if (rc < 0) fail_msg("%s", err);
    assert_int_equal(told, 1);
    assert_int_equal(viz_scenario_scene(v)->pool.c.finished, 2);
    viz_scenario_destroy(v);
}

/* The commands of the issue end, exit 0, and say what was refused. */
static int run_cmd(const char *args, char *out, size_t cap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "timeout 60 %s/pagesim run --model data/models/opt-13b.json --gpu A100-40GB "
             "--quiet %s 2>&1", tu_bindir(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_commands_end(void **st) {
    (void)st;
    char bin[512], out[8192];
    snprintf(bin, sizeof bin, "%s/pagesim", tu_bindir());
    TU_REQUIRE_FILE(bin);
    TU_REQUIRE_FILE("data/models/opt-13b.json");
    if (run_cmd("--num-blocks 64 --requests 50", out, sizeof out) != 0) fail_msg("%s", out);
    assert_non_null(strstr(out, "never fit"));
    assert_int_equal(system("mkdir -p build/tmp && printf 'arrival,prompt_len,output_len\\n0,500,1000\\n' "
                            "> build/tmp/test_progress_one.csv"), 0);
    const char *modes[2] = { "", "--preempt swap" };
    for (int i = 0; i < 2; i++) {
        char a[256];
        snprintf(a, sizeof a, "--num-blocks 40 --workload build/tmp/test_progress_one.csv %s", modes[i]);
        if (run_cmd(a, out, sizeof out) != 0) fail_msg("%s: %s", a, out);
        assert_non_null(strstr(out, "never fit"));
    }
}

int main(void) {
    alarm(300);                                  /* a hang is a failure, not a stuck CI */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_never_fits_refused),
        cmocka_unit_test(test_edge_of_the_pool),
        cmocka_unit_test(test_sweep_always_ends),
        cmocka_unit_test(test_simulate_counts_refusals),
        cmocka_unit_test(test_view_refuses),
        cmocka_unit_test(test_commands_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
