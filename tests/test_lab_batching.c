/* test_lab_batching: labs/batching at its default seed: its files, its
 * answer key, its headline (continuous batching 2-5x a generate() loop of
 * batch 64, the seed notebook's expectation: a scheduler whose static
 * batches stopped waiting for their longest request, or whose continuous
 * batching stopped refilling, moves it), and the data's own sense: the loop
 * gets faster with its batch, continuous batching beats every static batch,
 * a static batch is never fuller than its size, paged memory changes a
 * static loop only where a contiguous cache cannot hold the batch. */
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
#include "labs/lab_batching.h"

/* Column col (1 = the key) of the row (key, batch size). */
static double cell(const char *csv, const char *key, int batch, int col) {
    char k[64];
    snprintf(k, sizeof k, "\n%s,%d,", key, batch);
    const char *p = strstr(csv, k);
    if (!p) fail_msg("no row %s,%d", key, batch);
    p += strlen(k);
    for (int c = 3; c < col; c++) p = strchr(p, ',') + 1;
    return strtod(p, NULL);
}

static void test_default_seed(void **state) {
    (void)state;
    lab *L = tl_run(&lab_batching, LAB_PAPER_SEED);
    tl_check_files(L, "");
    assert_int_equal(tl_check_key(L), 6);
    assert_int_equal(tl_check_headlines(L), 1);
    char *csv = tu_slurp("build/tmp/lab_batching/batching.csv");
    assert_non_null(csv);
    /* batching,batch_size,contiguous_tok_s,paged_tok_s,contiguous_s,paged_s,continuous_paged_vs_this,busy_places */
    static const int B[8] = { 1, 4, 8, 16, 32, 64, 128, 256 };
    double cont = cell(csv, "continuous", 256, 4);
    for (int i = 0; i < 8; i++) {
        double c = cell(csv, "static", B[i], 3), p = cell(csv, "static", B[i], 4);
        if (i) assert_true(c >= cell(csv, "static", B[i - 1], 3));        /* bigger batches, more tokens/s */
        assert_true(cont > 1.3 * c && cont > 1.3 * p);
        assert_true(cell(csv, "static", B[i], 8) <= B[i] + 1e-9);
        assert_true(cell(csv, "static", B[i], 8) < 0.8 * B[i] || B[i] == 1);  /* the tail of a batch */
        if (B[i] <= 128) assert_true(fabs(p - c) < 1e-6 * c);             /* a contiguous cache holds 128 x 2,048 */
    }
    assert_true(cell(csv, "static", 256, 4) > 1.2 * cell(csv, "static", 256, 3));   /* 256 x 2,048 do not fit */
    assert_true(cell(csv, "static", 1, 7) > 20);
    free(csv);
    lab_free(L);
}

static void test_other_seed(void **state) {
    (void)state;
    lab *L = tl_run(&lab_batching, 4);
    assert_int_equal(lab_num_headlines(L), 0);
    tl_check_key(L);
    lab_free(L);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_default_seed),
        cmocka_unit_test(test_other_seed),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
