/* test_lab_planning: labs/planning at its default seed (files, its answer
 * key, the seed study's "# GPU blocks: 0"), its answers recomputed here from
 * sim/planner.h directly, and other seeds giving other numbers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/test_util.h"
#include "tests/test_lab_util.h"
#include "labs/lab_planning.h"
#include "sim/planner.h"

/* The number the key gives for question id. */
static double key_number(const lab *L, const char *id) {
    char *key = lab_answers_json(L, true);
    cJSON *root = cJSON_Parse(key);
    const cJSON *it = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "answers"), id);
    assert_true(cJSON_IsNumber(it));
    double v = it->valuedouble;
    cJSON_Delete(root);
    free(key);
    return v;
}

static void test_default_seed(void **state) {
    (void)state;
    lab *L = tl_run(&lab_planning, LAB_PAPER_SEED);
    tl_check_files(L, "");
    assert_int_equal(tl_check_key(L), 8);
    assert_int_equal(tl_check_headlines(L), 2);
    /* q1 and q3 as the planner computes them here */
    mc_config c14, c7;
    cm_gpu g;
    char err[512];
    assert_int_equal(mc_load(&c14, "data/models/qwen2.5-14b-instruct-awq.json", err, sizeof err), 0);
    assert_int_equal(mc_load(&c7, "data/models/qwen2.5-7b-instruct-awq.json", err, sizeof err), 0);
    assert_int_equal(cm_gpu_find(&g, "RTX-4070", err, sizeof err), 0);
    plan_opts o;
    plan_result r;
    plan_opts_default(&o);
    assert_int_equal(plan_compute(&c14, &g, &o, &r, err, sizeof err), 0);
    assert_true(key_number(L, "q1") == (double)r.num_blocks);
    assert_int_equal(r.num_blocks, 0);               /* the seed study's story */
    o.max_model_len = 6144;
    o.util = 0.92;
    assert_int_equal(plan_compute(&c7, &g, &o, &r, err, sizeof err), 0);
    assert_true(r.fits);
    assert_true(fabs(key_number(L, "q3") - r.max_concurrency) < 1e-9);
    lab_free(L);
}

static void test_seeds_differ(void **state) {
    (void)state;
    lab *A = tl_run(&lab_planning, 1);
    int differ = 0;
    for (uint64_t s = 2; s <= 5; s++) {
        lab *B = tl_run(&lab_planning, s);
        assert_int_equal(lab_num_headlines(B), 0);    /* headlines belong to the paper's seed */
        tl_check_key(B);
        differ += fabs(key_number(A, "q3") - key_number(B, "q3")) > 0.05;
        lab_free(B);
    }
    assert_true(differ >= 3);
    lab_free(A);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_default_seed),
        cmocka_unit_test(test_seeds_differ),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
