/* Tests of preemption by swap in the engine that need no GPU
 * (engine/swap.h, engine/engine.h): the swap space in CPU blocks, as vLLM
 * and `pagesim plan` count them (the same number for Qwen2.5-7B, Qwen3-0.6B
 * and SmolLM2 at several sizes and block sizes), and its refusals (negative,
 * not a number, blocks of 0 bytes, more blocks than an int holds); the runs
 * the executor makes of the scheduler's copies (consecutive swaps of one
 * kind merged, a break in src or dst or kind ends a run, copy-on-write
 * copies one by one, the order kept); and the configurations the engine
 * refuses before it touches a GPU (swap with the contiguous policy, a
 * negative or NaN swap space, an unknown mode). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include "tests/test_util.h"
#include "engine/swap.h"
#include "engine/engine.h"
#include "sim/planner.h"

static void test_cpu_blocks_as_planner(void **st) {
    (void)st;
    static const char *const cfgs[] = {"data/models/qwen2.5-7b.json", "data/models/qwen3-0.6b.json",
                                       "data/models/smollm2-135m.json"};
    static const double gib[] = {0.5, 1, 4, 16.25};
    static const int bs[] = {16, 32};
    char err[512];
    cm_gpu g;
    assert_int_equal(cm_gpu_find(&g, "H200", err, sizeof err), 0);
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        mc_config c;
        TU_REQUIRE_FILE(cfgs[i]);
        assert_int_equal(mc_load(&c, cfgs[i], err, sizeof err), 0);
        for (size_t k = 0; k < sizeof gib / sizeof gib[0]; k++)
            for (size_t b = 0; b < sizeof bs / sizeof bs[0]; b++) {
                plan_opts po;
                plan_result pr;
                plan_opts_default(&po);
                po.swap_space_gib = gib[k];
                po.block_size = bs[b];
                po.max_model_len = 2048;
                assert_int_equal(plan_compute(&c, &g, &po, &pr, err, sizeof err), 0);
                /* the engine's block: 2 x layers x kv heads x head_dim x bf16, block_size tokens */
                size_t block = (size_t)2 * c.num_layers * c.num_kv_heads * c.head_dim * 2 * bs[b];
                int n;
                assert_int_equal(swap_cpu_blocks(gib[k], block, &n, err, sizeof err), 0);
                assert_int_equal((long)block, (long)pr.block_bytes);
                assert_int_equal(n, pr.num_cpu_blocks);
                assert_int_equal(n, (int)floor(gib[k] * 1073741824.0 / (double)block));
            }
    }
    int n;
    assert_int_equal(swap_cpu_blocks(4, 917504, &n, err, sizeof err), 0);    /* Qwen2.5-7B, 16 tokens */
    assert_int_equal(n, 4681);
    assert_int_equal(swap_cpu_blocks(0, 917504, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
}

static void test_cpu_blocks_refused(void **st) {
    (void)st;
    char err[256];
    int n = 7;
    assert_int_equal(swap_cpu_blocks(-1, 1024, &n, err, sizeof err), -1);
    assert_int_equal(n, 0);
    assert_int_equal(swap_cpu_blocks(NAN, 1024, &n, err, sizeof err), -1);
    assert_int_equal(swap_cpu_blocks(INFINITY, 1024, &n, err, sizeof err), -1);
    assert_int_equal(swap_cpu_blocks(4, 0, &n, err, sizeof err), -1);
    assert_int_equal(swap_cpu_blocks(1e9, 16, &n, err, sizeof err), -1);        /* more than an int */
    assert_non_null(strstr(err, "blocks"));
}

static void test_runs(void **st) {
    (void)st;
    const kv_copy c[] = {
        {5, 0, KV_SWAP_OUT}, {6, 1, KV_SWAP_OUT}, {7, 2, KV_SWAP_OUT},   /* one run of 3 */
        {9, 3, KV_SWAP_OUT},                                            /* src jumps: a new run */
        {10, 5, KV_SWAP_OUT},                                           /* dst jumps */
        {11, 6, KV_SWAP_IN},                                            /* kind changes */
        {0, 20, KV_SWAP_IN}, {1, 21, KV_SWAP_IN},
        {3, 4, KV_COPY_GPU}, {4, 5, KV_COPY_GPU},                       /* copy-on-write: one by one */
    };
    const swap_run want[] = {
        {KV_SWAP_OUT, 5, 0, 3}, {KV_SWAP_OUT, 9, 3, 1}, {KV_SWAP_OUT, 10, 5, 1}, {KV_SWAP_IN, 11, 6, 1},
        {KV_SWAP_IN, 0, 20, 2}, {KV_COPY_GPU, 3, 4, 1}, {KV_COPY_GPU, 4, 5, 1},
    };
    int n = (int)(sizeof c / sizeof c[0]), k = 0, blocks = 0;
    for (int i = 0; i < n; k++) {
        swap_run r;
        int next = kvr_next(c, n, i, &r);
        assert_true(k < (int)(sizeof want / sizeof want[0]));
        assert_int_equal(r.kind, want[k].kind);
        assert_int_equal(r.src, want[k].src);
        assert_int_equal(r.dst, want[k].dst);
        assert_int_equal(r.n, want[k].n);
        assert_int_equal(next - i, r.n);                 /* every copy once, in order */
        blocks += r.n;
        i = next;
    }
    assert_int_equal(k, (int)(sizeof want / sizeof want[0]));
    assert_int_equal(blocks, n);
}

static void test_config_refused(void **st) {
    (void)st;
    char err[256];
    eng_config cfg;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(eng_check_config(&cfg, err, sizeof err), 0);              /* paged, recompute */
    cfg.preempt = SCHED_PREEMPT_SWAP;
    cfg.model.swap_space = 2.5;
    assert_int_equal(eng_check_config(&cfg, err, sizeof err), 0);
    cfg.kv_policy = KV_CONTIGUOUS;
    assert_int_equal(eng_check_config(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "paged"));
    cfg.kv_policy = KV_PAGED;
    cfg.model.swap_space = -1;
    assert_int_equal(eng_check_config(&cfg, err, sizeof err), -1);
    cfg.model.swap_space = NAN;
    assert_int_equal(eng_check_config(&cfg, err, sizeof err), -1);
    cfg.model.swap_space = 0;
    cfg.preempt = (sched_preempt_mode)7;
    assert_int_equal(eng_check_config(&cfg, err, sizeof err), -1);
    cfg.preempt = SCHED_PREEMPT_RECOMPUTE;
    cfg.kv_policy = KV_ORCA_MAX;
    assert_int_equal(eng_check_config(&cfg, err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_blocks_as_planner),
        cmocka_unit_test(test_cpu_blocks_refused),
        cmocka_unit_test(test_runs),
        cmocka_unit_test(test_config_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
