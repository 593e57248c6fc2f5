/* test_lab_preemption: labs/preemption at its default seed: its files, its
 * answer key, its headlines within their stated tolerances of the vLLM
 * paper's section 7.3 and Figure 19 (recompute and swap comparable at block
 * sizes 16-64, recompute never 20% slower: a scheduler whose swap path or a
 * cost model whose swap copies regressed moves them), and the data's own
 * sense: swap copies get cheaper with bigger blocks while recompute stays
 * flat, tiny blocks make swap lose end to end, a smaller swap space makes
 * more preemptions fall back to recompute, preempted requests are slower. */
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
#include "labs/lab_preemption.h"

/* Column col (1 = the key) of the csv row whose key is key. */
static double cell(const char *csv, const char *key, int col) {
    char k[64];
    snprintf(k, sizeof k, "\n%s,", key);
    const char *p = strstr(csv, k);
    if (!p) fail_msg("no row %s", key);
    p += strlen(k);
    for (int c = 2; c < col; c++) p = strchr(p, ',') + 1;
    return strtod(p, NULL);
}

static void test_default_seed(void **state) {
    (void)state;
    lab *L = tl_run(&lab_preemption, LAB_PAPER_SEED);
    tl_check_files(L, "");
    assert_int_equal(tl_check_key(L), 7);
    assert_int_equal(tl_check_headlines(L), 4);
    char *bs = tu_slurp("build/tmp/lab_preemption/block_sizes.csv");
    char *sw = tu_slurp("build/tmp/lab_preemption/swap_space.csv");
    assert_non_null(bs);
    assert_non_null(sw);
    /* block_size,recompute_ms,swap_out_in_ms,recompute_ms_per_token,swap_ms_per_token,... */
    static const char *B[9] = { "1", "2", "4", "8", "16", "32", "64", "128", "256" };
    for (int i = 1; i < 9; i++) {
        assert_true(cell(bs, B[i], 2) == cell(bs, B[0], 2));          /* recompute: flat */
        assert_true(cell(bs, B[i], 3) < cell(bs, B[i - 1], 3));        /* swap: cheaper with bigger blocks */
    }
    assert_true(cell(bs, "1", 3) > 2 * cell(bs, "1", 2));               /* many tiny copies */
    assert_true(cell(bs, "256", 3) < cell(bs, "256", 2));
    assert_true(cell(bs, "1", 5) > 1.5 * cell(bs, "1", 4));             /* end to end too */
    assert_true(cell(bs, "16", 6) > 100 && cell(bs, "16", 7) > 100);    /* the pool does run out */
    /* swap_gib,preemptions,swapped,recomputed,swapped_pct,ms_per_token,preempted_ms_per_token */
    static const char *G[6] = { "0.25", "0.5", "1", "2", "4", "8" };
    for (int k = 0; k < 6; k++) {
        assert_true(cell(sw, G[k], 3) + cell(sw, G[k], 4) == cell(sw, G[k], 2));
        assert_true(cell(sw, G[k], 7) > cell(sw, G[k], 6));             /* the preempted pay */
        if (k) assert_true(cell(sw, G[k], 5) >= cell(sw, G[k - 1], 5));
    }
    assert_true(cell(sw, "0.25", 5) < 90);                             /* a small CPU pool fills up */
    assert_true(cell(sw, "8", 5) == 100);
    free(bs);
    free(sw);
    lab_free(L);
}

static void test_other_seed(void **state) {
    (void)state;
    lab *L = tl_run(&lab_preemption, 2);
    assert_int_equal(lab_num_headlines(L), 0);
    tl_check_key(L);
    tl_check_files(L, "_seed2");
    lab_free(L);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_default_seed),
        cmocka_unit_test(test_other_seed),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
