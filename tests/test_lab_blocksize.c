/* test_lab_blocksize: labs/blocksize at its default seed: its files, its
 * answer key, its headlines within their stated tolerances (the token share
 * at block size 16 against the paper's Figure 2, ShareGPT's best block size
 * against its sec. 7.2), and the data's own sense: waste grows with the block size,
 * fewer short requests fit in big blocks, and the kernel model's ends. */
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
#include "labs/lab_blocksize.h"

/* Column col of the block_sizes.csv row (workload, block size). */
static double cell(const char *csv, const char *workload, int bs, int col) {
    char key[64];
    snprintf(key, sizeof key, "\n%s,%d,", workload, bs);
    const char *p = strstr(csv, key);
    if (!p) fail_msg("no row %s,%d", workload, bs);
    p += strlen(key);
    for (int c = 2; c < col; c++) p = strchr(p, ',') + 1;
    return strtod(p, NULL);
}

static void test_default_seed(void **state) {
    (void)state;
    lab *L = tl_run(&lab_blocksize, LAB_PAPER_SEED);
    tl_check_files(L, "");
    assert_int_equal(tl_check_key(L), 7);
    assert_int_equal(tl_check_headlines(L), 2);
    char *csv = tu_slurp("build/tmp/lab_blocksize/block_sizes.csv");
    assert_non_null(csv);
    /* columns: workload,block_size,token_pct,unused_in_blocks_pct,requests_at_once,kernel_work_x,... */
    static const int bs[9] = { 1, 2, 4, 8, 16, 32, 64, 128, 256 };
    for (int w = 0; w < 2; w++) {
        const char *name = w ? "Alpaca" : "ShareGPT";
        for (int b = 1; b < 9; b++) {
            assert_true(cell(csv, name, bs[b], 3) >= cell(csv, name, bs[b - 1], 3) - 0.05);   /* waste grows */
            assert_true(cell(csv, name, bs[b], 4) <= cell(csv, name, bs[b - 1], 4) + 1.0);    /* fit shrinks */
        }
        /* the kernel model: block size 1 pays (1 + 3) per token; big blocks read their tails */
        assert_true(fabs(cell(csv, name, 1, 5) - 4.0) < 0.2);
        assert_true(cell(csv, name, 16, 5) < cell(csv, name, 4, 5));
        assert_true(cell(csv, name, 256, 5) > cell(csv, name, 64, 5));
    }
    /* short requests lose far more to a 256-token block than long ones */
    assert_true(cell(csv, "Alpaca", 256, 3) > 2 * cell(csv, "ShareGPT", 256, 3));
    assert_true(cell(csv, "Alpaca", 256, 4) < 0.5 * cell(csv, "Alpaca", 16, 4));
    free(csv);
    lab_free(L);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_default_seed),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
