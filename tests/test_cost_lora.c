/* Tests of sim/cost_lora (runtime LoRA in the cost model): its width agrees
 * with the planner's LoRA slots, FLOPs and bytes follow the stated formulas
 * (2 r (in + out) per adapted linear and token; one slot read per distinct
 * adapter), a step without LoRA tokens costs bit for bit what it did before
 * (and so does a whole simulation), the scheduler counts a step's LoRA
 * tokens and distinct adapters, and a 7B decode step at batch 32 costs about
 * Punica's published +2 ms. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tests/test_util.h"
#include "sim/cost_model.h"
#include "sim/planner.h"
#include "sim/simulate.h"

static char err[1024];
#define QWEN7B "data/models/qwen2.5-7b.json"
#define QWEN3_MOE "data/models/qwen3-30b-a3b-instruct-2507.json"

static void model(cm_model *m, const char *path, const char *gpu, int tp) {
    mc_config c;
    cm_gpu g;
    if (mc_load(&c, path, err, sizeof err) != 0) fail_msg("%s", err);
    if (cm_gpu_find(&g, gpu, err, sizeof err) != 0) fail_msg("%s", err);
    if (cm_model_init(m, &c, &g, tp, c.dtype, err, sizeof err) != 0) fail_msg("%s", err);
}

static cm_batch decode(int n, long ctx) {
    cm_batch b = { .num_seqs = n, .decode_tokens = n, .attn_ctx_tokens = n * ctx, .attn_pairs = n * ctx };
    return b;
}

static void test_width_matches_planner(void **state) {
    (void)state;
    static const char *cfgs[2] = { QWEN7B, QWEN3_MOE };
    for (int k = 0; k < 2; k++) {
        cm_model m;
        model(&m, cfgs[k], "H200", 1);
        for (int tp = 1; tp <= 4; tp *= 2)
            assert_int_equal(plan_lora_bytes(&m.cfg, MC_DTYPE_BF16, tp, 8, 16),
                             (int64_t)16 * 8 * 2 * cm_lora_width(&m.cfg, tp));
    }
    cm_model m;
    model(&m, QWEN7B, "H200", 1);
    /* Qwen2.5-7B: per layer q 2x3584, k and v 3584+512, o 2x3584, gate/up/down 3584+18944 */
    assert_int_equal(cm_lora_width(&m.cfg, 1), 28LL * (4 * 3584 + 2 * (3584 + 512) + 3 * (3584 + 18944)));
    assert_int_equal(cm_lora_linears(&m.cfg), 28 * 7);
    model(&m, QWEN3_MOE, "H200", 1);
    assert_int_equal(cm_lora_linears(&m.cfg), m.cfg.num_layers * 4);   /* attention only */
    assert_int_equal(cm_lora_width(&m.cfg, 0), 0);
}

static void test_flops_and_bytes(void **state) {
    (void)state;
    cm_model m;
    model(&m, QWEN7B, "A100-80GB", 1);
    cm_batch b = decode(32, 500);
    b.lora_tokens = 20;
    b.lora_adapters = 1;
    assert_true(cm_lora_flops(&m, &b) == 0 && cm_lora_bytes(&m, &b) == 0 && cm_lora_time(&m, &b) == 0);  /* rank 0 */
    m.lora = cm_lora_default(16);
    double w = (double)cm_lora_width(&m.cfg, 1);
    assert_true(cm_lora_flops(&m, &b) == 2.0 * 16 * w * 20);
    assert_true(cm_lora_bytes(&m, &b) == 16 * w * 2);
    b.lora_adapters = 8;
    assert_true(cm_lora_bytes(&m, &b) == 8 * 16 * w * 2);
    double floor_s = 2.0 * 28 * 7 * 4e-6;
    assert_true(cm_lora_time(&m, &b) > floor_s);
    assert_true(cm_lora_time(&m, &b) < floor_s + 1e-3);
    cm_model m2;                  /* tensor parallel: one side of each linear splits, the other stays whole */
    model(&m2, QWEN7B, "A100-80GB", 2);
    m2.lora = m.lora;
    assert_true(cm_lora_flops(&m2, &b) < 0.8 * cm_lora_flops(&m, &b));
    assert_true(cm_lora_flops(&m2, &b) > 0.5 * cm_lora_flops(&m, &b));
    b.lora_tokens = 0;                             /* no LoRA token: nothing, whatever the adapters */
    assert_true(cm_lora_time(&m, &b) == 0);
}

/* No LoRA token: cm_step_time is bit for bit the base model's, rank set or not. */
static void test_no_adapters_identical(void **state) {
    (void)state;
    cm_model base, lora;
    model(&base, QWEN7B, "A100-80GB", 1);
    lora = base;
    lora.lora = cm_lora_default(64);
    for (int n = 1; n <= 256; n *= 4) {
        cm_batch d = decode(n, 100 + 7 * n);
        assert_true(cm_step_time(&base, &d) == cm_step_time(&lora, &d));
        cm_batch p = { .num_seqs = n, .prefill_tokens = 300L * n, .attn_ctx_tokens = 300L * n,
                       .attn_pairs = 300L * 301 / 2 * n };
        assert_true(cm_step_time(&base, &p) == cm_step_time(&lora, &p));
        p.lora_tokens = 300L * n;                  /* with LoRA tokens: slower by cm_lora_time */
        p.lora_adapters = 2;
        double dt = cm_step_time(&lora, &p) - cm_step_time(&base, &p);
        assert_true(fabs(dt - cm_lora_time(&lora, &p)) < 1e-12);
    }
}

/* Punica: "only adding 2 ms latency per token" (a published number).  A 7B
 * decode step at batch 32 with 1 and 8 adapters: 1-3 ms more; 8 more than 1. */
static void test_decode_overhead_near_punica(void **state) {
    (void)state;
    cm_model m;
    model(&m, QWEN7B, "A100-80GB", 1);
    cm_batch b = decode(32, 600);
    double t0 = cm_step_time(&m, &b);
    m.lora = cm_lora_default(16);
    b.lora_tokens = 32;
    b.lora_adapters = 1;
    double t1 = cm_step_time(&m, &b);
    b.lora_adapters = 8;
    double t8 = cm_step_time(&m, &b);
    assert_true(t1 - t0 > 1e-3 && t1 - t0 < 3e-3);
    assert_true(t8 - t0 > 1e-3 && t8 - t0 < 3e-3);
    assert_true(t8 > t1);
}

/* The scheduler's counts: every step's lora_tokens and lora_adapters as its
 * items say. */
typedef struct lc_check { int steps, bad, max_adapters; } lc_check;
static void on_step(void *ctx, const loop_step_info *info) {
    lc_check *c = ctx;
    const sched_batch *b = info->batch;
    long tokens = 0;
    int distinct = 0;
    for (int i = 0; i < b->num_items; i++) {
        int a = b->items[i].s->lora, first = 1;
        if (a <= 0) continue;
        tokens += b->items[i].num_new;
        for (int j = 0; j < i && first; j++) first = b->items[j].s->lora != a;
        distinct += first;
    }
    c->bad += tokens != b->counts.lora_tokens || distinct != b->counts.lora_adapters;
    if (distinct > c->max_adapters) c->max_adapters = distinct;
    c->steps++;
}

static void run(const cm_model *m, wl_request *r, int n, int max_loras, lc_check *chk, sim_result *res) {
    sim_config c = sim_config_default();
    c.model = m;
    c.kv.num_blocks = 4000;
    c.sched.max_loras = max_loras;
    c.on_step = chk ? on_step : NULL;
    c.on_step_ctx = chk;
    if (sim_run(&c, r, n, res, err, sizeof err) < 0) fail_msg("%s", err);
}

static void test_simulation(void **state) {
    (void)state;
    cm_model base, lora;
    model(&base, QWEN7B, "A100-80GB", 1);
    lora = base;
    lora.lora = cm_lora_default(16);
    wl_spec sp = { .kind = WL_SHAREGPT, .num_requests = 300, .rate = 0, .seed = 3, .max_len = 2048 };
    wl_request *r = NULL;
    int n = 0;
    if (wl_generate(&sp, &r, &n, err, sizeof err) < 0) fail_msg("%s", err);
    sim_result a, b;                               /* no adapter on any request: identical runs */
    run(&base, r, n, 0, NULL, &a);
    run(&lora, r, n, 0, NULL, &b);
    assert_true(a.summary.sim_time == b.summary.sim_time && a.summary.steps == b.summary.steps);
    sim_result_free(&b);
    for (int i = 0; i < n; i++) r[i].lora = 1 + i % 6;
    lc_check chk = { 0 };
    run(&lora, r, n, 4, &chk, &b);
    assert_true(chk.steps > 0);
    assert_int_equal(chk.bad, 0);
    assert_int_equal(chk.max_adapters, 4);         /* max_loras holds */
    assert_true(b.summary.sim_time > 1.05 * a.summary.sim_time);
    assert_int_equal(b.summary.num_finished, n);
    sim_result_free(&a);
    sim_result_free(&b);
    free(r);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_width_matches_planner),
        cmocka_unit_test(test_flops_and_bytes),
        cmocka_unit_test(test_no_adapters_identical),
        cmocka_unit_test(test_decode_overhead_near_punica),
        cmocka_unit_test(test_simulation),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
