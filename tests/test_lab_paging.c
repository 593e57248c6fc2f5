/* test_lab_paging: labs/paging at its default seed (the vLLM paper's setup):
 * its files, its answer key, every headline within its stated tolerance of
 * the paper (Figure 2 token shares, requests at once, sustainable rates: a
 * regression of the block manager, the reservation baselines or the scheduler
 * moves them), and the measurements' own identities: the Figure 2 shares sum
 * to 1, Orca (Max) holds floor(slots / 2048) requests when all wait, and the
 * policies keep their order. */
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
#include "labs/lab_paging.h"
#include "labs/lab_paging_sim.h"

static void test_default_seed(void **state) {
    (void)state;
    lab *L = tl_run(&lab_paging, LAB_PAPER_SEED);
    tl_check_files(L, "");
    assert_int_equal(tl_check_key(L), 7);
    assert_int_equal(tl_check_headlines(L), 8);
    lab_free(L);
}

static void test_measurements(void **state) {
    (void)state;
    lab_paging_setup s = lab_paging_setup_default();
    s.sweep = false;                         /* the headline test above runs the sweep */
    s.kv_gb = 10;
    s.requests = 400;
    lab_paging_numbers m;
    char err[512];
    if (lab_paging_measure(&s, &m, err, sizeof err) < 0) fail_msg("%s", err);
    for (int p = 0; p < LAB_PG_NPOL; p++) {
        double sum = m.token[p] + m.reserved[p] + m.internal[p] + m.external[p];
        assert_true(fabs(sum - 1) < 1e-9);
        assert_true(isnan(m.rate[p]));
    }
    long slots = (long)m.num_blocks * m.block_size;
    assert_true(fabs(m.at_once[LAB_PG_MAX] - (double)(slots / 2048)) < 0.5);
    assert_int_equal(m.max_at_once[LAB_PG_MAX], slots / 2048);
    assert_true(m.at_once[LAB_PG_PAGED] > m.at_once[LAB_PG_ORACLE]);
    assert_true(m.at_once[LAB_PG_ORACLE] > m.at_once[LAB_PG_POW2]);
    assert_true(m.at_once[LAB_PG_POW2] > m.at_once[LAB_PG_MAX]);
    assert_true(m.token[LAB_PG_PAGED] > m.token[LAB_PG_ORACLE]);
    assert_true(m.internal[LAB_PG_MAX] > m.internal[LAB_PG_POW2]);
    assert_true(m.internal[LAB_PG_ORACLE] < 1e-9);   /* Oracle reserves exactly what is used */
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_default_seed),
        cmocka_unit_test(test_measurements),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
