/* Tests of LoRA in the memory plan: the planner's adapter slots
 * (plan_lora_bytes, as vLLM allocates them) equal the engine's slot layout
 * (engine/lora_pack.h) to its alignment, for dense and MoE models, ranks 16
 * and 64, one GPU and tensor-parallel ranks; the slots come out of the KV
 * cache; `pagesim plan --enable-lora` reports them; bad limits are errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/lora_pack.h"
#include "engine/lora_rt.h"
#include "engine/tp_shard.h"
#include "sim/cost_model.h"
#include "sim/planner.h"
#include <math.h>
#include <sys/wait.h>

static void test_slots_agree(void **st) {
    (void)st;
    static const char *const models[] = {"qwen2.5-7b", "qwen3-0.6b", "llama-3.1-8b", "qwen3-30b-a3b-instruct-2507",
                                         "smollm2-135m"};
    char err[512];
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        mc_config c;
        char path[256];
        snprintf(path, sizeof path, "data/models/%s.json", models[i]);
        if (mc_load(&c, path, err, sizeof err)) fail_msg("%s", err);
        static const int ranks[] = {16, 64};
        for (int ri = 0; ri < 2; ri++)
            for (int tp = 1; tp <= 4; tp *= 2) {
                tp_plan p;
                if (tp > 1 && tp_plan_init(&p, &c, tp, tp - 1, err, sizeof err)) continue;   /* does not split */
                lora_layout lo;
                if (lora_slot_layout(&lo, &c, ranks[ri], tp > 1 ? &p : NULL, err, sizeof err)) fail_msg("%s: %s", models[i], err);
                double engine = (double)lo.elems * 2 * 8, plan = (double)plan_lora_bytes(&c, MC_DTYPE_BF16, tp, 8, ranks[ri]);
                fprintf(stderr, "  %-28s rank %2d tp %d: plan %.1f MiB, engine %.1f MiB\n", models[i], ranks[ri], tp,
                        plan / 1048576, engine / 1048576);
                assert_true(plan > 0 && engine >= plan && engine < plan * 1.005);
                lora_layout_free(&lo);
            }
    }
}

static void test_plan_counts_slots(void **st) {
    (void)st;
    mc_config c;
    cm_gpu g;
    char err[512];
    assert_int_equal(mc_load(&c, "data/models/qwen2.5-7b.json", err, sizeof err), 0);
    assert_int_equal(cm_gpu_find(&g, "H200", err, sizeof err), 0);
    plan_opts o;
    plan_opts_default(&o);
    o.max_model_len = 4096;
    plan_result base, lora;
    assert_int_equal(plan_compute(&c, &g, &o, &base, err, sizeof err), 0);
    assert_true(base.lora_bytes == 0);
    o.max_loras = 8;
    o.max_lora_rank = 16;
    assert_int_equal(plan_compute(&c, &g, &o, &lora, err, sizeof err), 0);
    /* 8 slots of rank 16 on every linear of 28 layers: 16 x 8 x 2 bytes x 28 x the in + out widths */
    double per_layer = (3584 + 3584) + 2 * (3584 + 512) + (3584 + 3584) + 2 * (3584 + 18944) + (18944 + 3584);
    assert_true(lora.lora_bytes == per_layer * 28 * 16 * 8 * 2);
    assert_true(fabs(base.kv_bytes - lora.kv_bytes - lora.lora_bytes) < 1);
    assert_true(lora.num_blocks < base.num_blocks);
    o.max_lora_rank = 0;
    assert_int_equal(plan_compute(&c, &g, &o, &lora, err, sizeof err), -1);
    assert_non_null(strstr(err, "--max-lora-rank"));
    /* the engine's whole LoRA memory (slots, A x, the grouping) is the slots and a little */
    lora_set set = {8, 16, 0, NULL};
    size_t rt = lora_rt_bytes(&set, &c, NULL, 8192);
    double slots = (double)plan_lora_bytes(&c, MC_DTYPE_BF16, 1, 8, 16);
    assert_true(rt > slots && rt < slots + 8.0 * 1048576);
}

static void test_cli(void **st) {
    (void)st;
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "%s/pagesim plan --model data/models/qwen2.5-7b.json --gpu H200 --max-model-len 4096 "
             "--enable-lora --max-loras 8 --max-lora-rank 16 2>&1", tu_bindir());
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(out, "LoRA adapter slots"));
    assert_non_null(strstr(out, "8 slots of rank 16"));
    snprintf(cmd, sizeof cmd, "%s/pagesim plan --model data/models/qwen2.5-7b.json --gpu H200 --max-loras 0 "
             "--enable-lora 2>&1", tu_bindir());
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    assert_int_equal(WEXITSTATUS(pclose(p)), 2);
    assert_non_null(strstr(out, "--max-loras"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_agree), cmocka_unit_test(test_plan_counts_slots), cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
