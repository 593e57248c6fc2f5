/* Tests of the engine's KV-cache budget arithmetic (engine/mem_plan.c) on the
 * CPU, against the planner (sim/planner.c): given the planner's weights,
 * activation peak and non-torch memory as what is in use after the profile
 * step, the engine plans the same blocks and the same verdict, also when a
 * 12 GB card's budget is reproduced on an H200 with --max-gpu-memory (the
 * seed's two outcomes: Qwen2.5-14B-AWQ refused, 7B-AWQ at 6144 tokens and
 * 0.92 with its blocks and concurrency). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>
#include "engine/mem_plan.h"
#include "sim/gpu_table.h"
#include "sim/model_config.h"
#include "sim/planner.h"

/* the engine's plan on a device of `device` bytes capped at `cap` (0: none),
 * fed with the planner's parts of plan r */
static long engine_blocks(const plan_result *r, double device, double cap, mplan_out *o, char *err, size_t n) {
    mplan_in in = {device, cap, r->util, r->weight_bytes + r->activation_bytes + r->non_torch_bytes,
                   r->weight_bytes, r->activation_bytes, r->non_torch_bytes, (size_t)r->kv_bytes_per_token,
                   r->block_size, r->max_model_len, 0};
    long b = mplan_blocks(&in, o);
    err[0] = 0;
    mplan_check(&in, o, b, 0, err, n);
    return b;
}

static void plan(plan_result *r, const char *model, const char *gpu, double util, int len) {
    mc_config c;
    cm_gpu g;
    char err[512];
    if (mc_load(&c, model, err, sizeof err) || cm_gpu_find(&g, gpu, err, sizeof err)) fail_msg("%s", err);
    plan_opts o;
    plan_opts_default(&o);
    o.util = util;
    o.max_model_len = len;
    if (plan_compute(&c, &g, &o, r, err, sizeof err)) fail_msg("%s", err);
}

static void test_same_as_planner(void **st) {
    (void)st;
    const char *models[] = {"data/models/qwen2.5-7b-instruct-awq.json", "data/models/qwen2.5-14b-instruct-awq.json",
                            "data/models/qwen2.5-7b.json", "data/models/llama-3.1-8b.json"};
    const char *gpus[] = {"RTX-4070", "RTX-4090", "H200", "A100-40GB"};
    const double utils[] = {0.9, 0.92, 0.5};
    const int lens[] = {2048, 6144, 32768};
    int fits = 0, refused = 0;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int u = 0; u < 3; u++)
                for (int l = 0; l < 3; l++) {
                    plan_result r;
                    mplan_out o;
                    char err[1024];
                    plan(&r, models[a], gpus[b], utils[u], lens[l]);
                    long blocks = engine_blocks(&r, r.total_bytes, 0, &o, err, sizeof err);
                    if (blocks != r.num_blocks || (err[0] == 0) != (r.fits != 0))
                        fail_msg("%s on %s, %.2f, %d: engine %ld blocks (%s), planner %ld (%s)", models[a], gpus[b],
                                 utils[u], lens[l], blocks, err[0] ? "refused" : "fits", r.num_blocks,
                                 r.fits ? "fits" : "refused");
                    fits += r.fits;
                    refused += !r.fits;
                }
    assert_true(fits > 10 && refused > 10);          /* both outcomes were exercised */
}

/* the seed's 12 GB card on an H200: --max-gpu-memory RTX-4070 */
static void test_twelve_gb_on_h200(void **st) {
    (void)st;
    cm_gpu h200;
    char err[1024];
    assert_int_equal(cm_gpu_find(&h200, "H200", err, sizeof err), 0);
    plan_result r7, r14, r14d;
    mplan_out o;
    plan(&r7, "data/models/qwen2.5-7b-instruct-awq.json", "RTX-4070", 0.92, 6144);
    long b7 = engine_blocks(&r7, h200.mem_bytes, r7.total_bytes, &o, err, sizeof err);
    assert_true(r7.fits);
    assert_int_equal(b7, r7.num_blocks);
    assert_string_equal(err, "");
    assert_true(fabs(o.total - r7.total_bytes) < 1);
    assert_true(fabs((double)b7 * 16 / 6144 - r7.max_concurrency) < 1e-9);
    assert_true(b7 > 4000 && b7 < 7000);             /* 5,387 as the planner reads vLLM's arithmetic */
    /* without the cap the H200's 141 GiB would give far more */
    assert_true(engine_blocks(&r7, h200.mem_bytes, 0, &o, err, sizeof err) > 20 * b7);
    /* 14B-AWQ at 6144 and 0.92: 213 blocks, 3,408 tokens, fewer than one request */
    plan(&r14, "data/models/qwen2.5-14b-instruct-awq.json", "RTX-4070", 0.92, 6144);
    long b14 = engine_blocks(&r14, h200.mem_bytes, r14.total_bytes, &o, err, sizeof err);
    assert_int_equal(b14, r14.num_blocks);
    assert_false(r14.fits);
    char want[64];
    snprintf(want, sizeof want, "# GPU blocks: %ld)", r14.num_blocks);
    if (!strstr(err, "not enough GPU memory for the KV cache") || !strstr(err, "(--max-gpu-memory)") ||
        !strstr(err, want) || !strstr(err, "max_model_len 6144 needs 6144 tokens"))
        fail_msg("%s", err);
    /* with vLLM's defaults (0.9, the model's 32,768 positions): # GPU blocks: 0, as the seed saw */
    plan(&r14d, "data/models/qwen2.5-14b-instruct-awq.json", "RTX-4070", 0.9, 0);
    assert_int_equal(engine_blocks(&r14d, h200.mem_bytes, r14d.total_bytes, &o, err, sizeof err), 0);
    assert_int_equal(r14d.num_blocks, 0);
    if (!strstr(err, "# GPU blocks: 0)") || o.budget >= 0) fail_msg("%s (budget %.0f)", err, o.budget);
    /* a cap above the device's memory changes nothing */
    engine_blocks(&r7, r7.total_bytes, 2 * r7.total_bytes, &o, err, sizeof err);
    assert_true(fabs(o.total - r7.total_bytes) < 1);
}

static void test_override_and_edges(void **st) {
    (void)st;
    mplan_in in = {1e10, 0, 0.9, 2e9, 1e9, 5e8, 5e8, 1000, 16, 100, 0};
    mplan_out o;
    char err[512];
    /* (0.9e10 - 2e9) / 16000 = 437,500 blocks */
    assert_int_equal(mplan_blocks(&in, &o), 437500);
    assert_int_equal(o.needed, 7);
    assert_int_equal(mplan_check(&in, &o, o.blocks, 0, err, sizeof err), 0);
    in.num_gpu_blocks = 5;                            /* --num-gpu-blocks wins, and 5 < 7 is refused */
    assert_int_equal(mplan_blocks(&in, &o), 5);
    assert_int_equal(mplan_check(&in, &o, o.blocks, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "needs 112 tokens"));
    in.num_gpu_blocks = 0;
    assert_int_equal(mplan_check(&in, &o, 3, 1, err, sizeof err), -1);    /* another rank had fewer */
    assert_non_null(strstr(err, "on another tensor-parallel rank"));
    in.in_use = 2e10;                                 /* more in use than the budget: 0 blocks, not negative */
    assert_int_equal(mplan_blocks(&in, &o), 0);
    assert_true(o.budget < 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_planner),
        cmocka_unit_test(test_twelve_gb_on_h200),
        cmocka_unit_test(test_override_and_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
