/* test_lab_sharing: labs/sharing at its default seed: its files, its answer
 * key, its headlines within their stated tolerances of the vLLM paper's
 * Figure 15 (a regression of copy-on-write, fork or the beam swaps in
 * sim/ moves them: before beam search could swap its first beam, width 2
 * saved 6% instead of 38%), the data's own sense (saving grows with n;
 * beams save more than samples; one copy per forked sample), the sharing
 * measure itself (nothing saved with n = 1; the prompt's full blocks with
 * n = 2), and another seed giving other answers. */
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
#include "labs/lab_kit.h"
#include "labs/lab_sharing.h"

/* Column col (1 = the key) of the row of runs.csv with this key and width. */
static double cell(const char *csv, const char *key, int width, int col) {
    char k[64];
    snprintf(k, sizeof k, "\n%s,%d,", key, width);
    const char *p = strstr(csv, k);
    if (!p) fail_msg("no row %s,%d", key, width);
    p += strlen(k);
    for (int c = 3; c < col; c++) p = strchr(p, ',') + 1;
    return strtod(p, NULL);
}

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
    lab *L = tl_run(&lab_sharing, LAB_PAPER_SEED);
    tl_check_files(L, "");
    assert_int_equal(tl_check_key(L), 7);
    assert_int_equal(tl_check_headlines(L), 10);
    char *csv = tu_slurp("build/tmp/lab_sharing/runs.csv");
    assert_non_null(csv);
    /* columns: run,width,saved_pct,paper_pct,blocks_held,blocks_unshared,cow_per_request,beam_swaps,preemptions */
    static const char *wl[2] = { "alpaca", "sharegpt" };
    for (int w = 0; w < 2; w++) {
        char par[32], beam[32];
        snprintf(par, sizeof par, "%s-parallel", wl[w]);
        snprintf(beam, sizeof beam, "%s-beam", wl[w]);
        for (int n = 2; n <= 6; n += 2) {
            assert_true(cell(csv, beam, n, 3) > cell(csv, par, n, 3) + 5);     /* beams share their history */
            assert_true(cell(csv, par, n, 5) < cell(csv, par, n, 6));          /* held < without sharing */
            assert_true(cell(csv, par, n, 7) <= n - 1 + 1e-9);                 /* one copy per forked sample ... */
            assert_true(cell(csv, par, n, 7) >= 0.8 * (n - 1));                /* ... unless the prompt fills its blocks */
            assert_true(cell(csv, par, n, 8) == 0);                            /* samples never swap */
            assert_true(cell(csv, beam, n, 8) > 0);                            /* beams do, width 2 too */
            assert_true(cell(csv, par, n, 9) == 0 && cell(csv, beam, n, 9) == 0);   /* light load */
            if (n > 2) assert_true(cell(csv, par, n, 3) > cell(csv, par, n - 2, 3));
        }
    }
    free(csv);
    lab_free(L);
}

/* The measure on its own: one request alone, 48-token prompt (3 full blocks
 * of 16), 32 tokens each.  n = 1 shares nothing; n = 2 shares the 3 prompt
 * blocks while both samples run. */
static void test_share_measure(void **state) {
    (void)state;
    char err[512];
    for (int n = 1; n <= 2; n++) {
        wl_request r = { .prompt_len = 48, .output_len = 32, .n = n, .prefix_id = -1 };
        sim_config c = sim_config_default();
        c.kv.num_blocks = 64;
        c.check = true;
        lab_kit_share sh;
        assert_int_equal(lab_kit_share_init(&sh, &c, 64, true), 0);
        sim_result res;
        if (sim_run(&c, &r, 1, &res, err, sizeof err) < 0) fail_msg("%s", err);
        sim_result_free(&res);
        if (n == 1) assert_true(lab_kit_share_saved(&sh) == 0);
        else {
            assert_true(lab_kit_share_saved(&sh) > 0.2 && lab_kit_share_saved(&sh) < 0.5);
            int both = 0;       /* steps where both samples run: 3 blocks shared */
            for (int k = 0; k < sh.n; k++)
                if (sh.s_unshared[k] > 5) { both++; assert_true(sh.s_unshared[k] - sh.s_held[k] == 3); }
            assert_true(both > 20);
        }
        lab_kit_share_free(&sh);
    }
}

static void test_other_seed(void **state) {
    (void)state;
    lab *A = tl_run(&lab_sharing, LAB_PAPER_SEED), *B = tl_run(&lab_sharing, 3);
    assert_int_equal(lab_num_headlines(B), 0);
    tl_check_key(B);
    assert_true(fabs(key_number(A, "q1") - key_number(B, "q1")) > 0.3);
    lab_free(A);
    lab_free(B);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_default_seed),
        cmocka_unit_test(test_share_measure),
        cmocka_unit_test(test_other_seed),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
