/* Tests of the run-aware swap price (sim/kv_runs.h, sim/cost_model.h:
 * CM_SWAP_RUNS): kvr_next groups copies as the engine's executor issues them
 * (engine/engine.c run_copies: one call per run of swaps, each copy-on-write
 * alone), the scheduler's counts carry the runs of every step's swap
 * copies, a swap costs one call per run by runs and one per block, layer
 * and K/V per block, and a whole simulation under memory pressure keeps its
 * schedule and gets cheaper by exactly the calls merged.  No GPU. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <math.h>
#include "sim/kv_runs.h"
#include "sim/scheduler.h"
#include "sim/step_loop.h"
#include "sim/sim_executor.h"
#include "sim/simulate.h"

static void near(double a, double b, double tol) {
    if (fabs(a - b) > tol * (fabs(b) > 1 ? fabs(b) : 1)) fail_msg("%.12g != %.12g", a, b);
}

static void test_runs_and_count(void **st) {
    (void)st;
    const kv_copy c[] = {
        {5, 0, KV_SWAP_OUT}, {6, 1, KV_SWAP_OUT}, {7, 2, KV_SWAP_OUT},   /* one run of 3 */
        {9, 3, KV_SWAP_OUT},                                            /* src jumps */
        {10, 5, KV_SWAP_OUT},                                           /* dst jumps */
        {11, 6, KV_SWAP_IN},                                            /* kind changes */
        {0, 20, KV_SWAP_IN}, {1, 21, KV_SWAP_IN},
        {3, 4, KV_COPY_GPU}, {4, 5, KV_COPY_GPU},                       /* copy-on-write: no swap runs */
        {8, 9, KV_SWAP_IN},                                             /* after a copy: a new run */
    };
    int n = (int)(sizeof c / sizeof c[0]);
    assert_int_equal(kvr_swap_runs(c, n), 6);
    assert_int_equal(kvr_swap_runs(c, 3), 1);
    assert_int_equal(kvr_swap_runs(c, 0), 0);
    kv_run r;
    assert_int_equal(kvr_next(c, n, 6, &r), 8);
    assert_true(r.kind == KV_SWAP_IN && r.src == 0 && r.dst == 20 && r.n == 2);
    assert_int_equal(kvr_next(c, n, 8, &r), 9);                       /* copies one by one */
    assert_true(r.kind == KV_COPY_GPU && r.n == 1);
}

static cm_model qwen06(char *err, size_t n) {
    mc_config mc;
    cm_gpu g;
    cm_model m;
    if (mc_load(&mc, "data/models/qwen3-0.6b.json", err, n) || cm_gpu_find(&g, "H200", err, n) ||
        cm_model_init(&m, &mc, &g, 1, mc.dtype, err, n))
        fail_msg("%s", err);
    return m;
}

static void test_price(void **st) {
    (void)st;
    char err[256];
    cm_model m = qwen06(err, sizeof err);
    assert_int_equal(m.swap_copies, CM_SWAP_PER_BLOCK);              /* vLLM's, the default */
    cm_batch b = { .swap_blocks = 12, .swap_tokens = 12 * 16, .swap_runs = 3 };
    double bytes = 12.0 * 16 * (double)mc_kv_bytes_per_token(&m.cfg, m.kvdtype) / m.k.host_bw;
    near(cm_swap_batch_time(&m, &b), 12 * 2.0 * m.cfg.num_layers * m.k.copy_call_s + bytes, 1e-12);
    near(cm_swap_batch_time(&m, &b), cm_swap_time(&m, 12, 12 * 16), 1e-15);
    m.swap_copies = CM_SWAP_RUNS;
    near(cm_swap_batch_time(&m, &b), 3 * m.k.copy_call_s + bytes, 1e-12);
    b.swap_runs = 12;                                                 /* nothing consecutive */
    near(cm_swap_batch_time(&m, &b), 12 * m.k.copy_call_s + bytes, 1e-12);
    cm_batch none = { 0 };
    assert_true(cm_swap_batch_time(&m, &none) == 0);
    cm_swap_copies k;
    assert_int_equal(cm_swap_copies_parse("runs", &k), 0);
    assert_int_equal(k, CM_SWAP_RUNS);
    assert_int_equal(cm_swap_copies_parse("per-block", &k), 0);
    assert_int_equal(k, CM_SWAP_PER_BLOCK);
    assert_int_equal(cm_swap_copies_parse("per-run", &k), -1);
    assert_string_equal(cm_swap_copies_name(CM_SWAP_RUNS), "runs");
}

/* An executor that checks each batch's counts against the engine's way of
 * issuing its copies, then takes the simulator's time. */
typedef struct probe { simx x; long steps_with_swaps, blocks, calls, merged_runs; } probe;

static int probe_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds, char *err, size_t errlen) {
    probe *p = ctx;
    long calls = 0, blocks = 0;
    for (int i = 0; i < b->num_copies;) {                             /* engine/engine.c: run_copies */
        kv_run r;
        int next = kvr_next(b->copies, b->num_copies, i, &r);
        assert_int_equal(next - i, r.n);
        for (int k = 0; k < r.n; k++) {                               /* consecutive on both sides */
            assert_int_equal(b->copies[i + k].src, r.src + k);
            assert_int_equal(b->copies[i + k].dst, r.dst + k);
            assert_int_equal(b->copies[i + k].kind, r.kind);
        }
        if (r.kind != KV_COPY_GPU) { calls++; blocks += r.n; if (r.n > 1) p->merged_runs++; }
        i = next;
    }
    assert_int_equal(b->counts.swap_runs, calls);
    assert_int_equal(b->counts.swap_blocks, blocks);
    if (calls) p->steps_with_swaps++;
    p->blocks += blocks;
    p->calls += calls;
    return simx_executor(&p->x).execute(&p->x, b, tokens, seconds, err, errlen);
}

static void run_probe(cm_model *m, probe *p, double *seconds) {
    char err[256];
    kv_config kc = { .policy = KV_PAGED, .num_blocks = 700, .block_size = 16, .max_model_len = 4096,
                     .num_cpu_blocks = 4000 };
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    assert_non_null(kv);
    sched_config scfg = sched_config_default();
    scfg.preempt = SCHED_PREEMPT_SWAP;
    scfg.max_num_batched_tokens = 8192;
    sched *sc = sched_create(&scfg, kv, err, sizeof err);
    assert_non_null(sc);
    memset(p, 0, sizeof *p);
    simx_init(&p->x, m, 1);
    uint64_t s = 12345;
    static int ids[1100];
    for (int i = 0; i < (int)(sizeof ids / sizeof ids[0]); i++) ids[i] = 1 + i % 1000;
    for (int i = 0; i < 96; i++) {                    /* lengths 100..1023 each way, all at t = 0 */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int pl = 100 + (int)((s >> 33) % 924);
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int ol = 100 + (int)((s >> 33) % 924);
        assert_non_null(sched_add(sc, i, ids, pl, ol, 1, 0, 0, NULL));
    }
    loop l;
    assert_int_equal(loop_init(&l, sc, (loop_executor){ p, probe_execute }, 0, -1), 0);
    while (sched_has_work(sc)) assert_true(loop_step(&l, NULL, err, sizeof err) >= 0);
    *seconds = l.now;
    loop_free(&l);
    sched_destroy(sc);
    kv_destroy(kv);
}

static void test_simulation(void **st) {
    (void)st;
    char err[256];
    cm_model m = qwen06(err, sizeof err);
    probe a, b;
    double t_block, t_runs;
    run_probe(&m, &a, &t_block);
    m.swap_copies = CM_SWAP_RUNS;
    run_probe(&m, &b, &t_runs);
    fprintf(stderr, "  %ld steps with swaps, %ld blocks in %ld runs (%ld merged): %.3f s per block, %.3f s by runs\n",
            a.steps_with_swaps, a.blocks, a.calls, a.merged_runs, t_block, t_runs);
    assert_true(a.steps_with_swaps > 0);
    assert_true(a.merged_runs > 0);                                   /* the engine merges some */
    assert_true(a.calls < a.blocks);
    /* the same schedule; the clock differs by the calls merged */
    assert_int_equal(a.steps_with_swaps, b.steps_with_swaps);
    assert_int_equal(a.blocks, b.blocks);
    assert_int_equal(a.calls, b.calls);
    near(t_block - t_runs, (a.blocks * 2.0 * m.cfg.num_layers - a.calls) * m.k.copy_call_s, 1e-9);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_and_count),
        cmocka_unit_test(test_price),
        cmocka_unit_test(test_simulation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
