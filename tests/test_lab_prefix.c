/* test_lab_prefix: labs/prefix at its default seed: its files, its answer
 * key, its headlines within their stated tolerances of the vLLM paper's
 * section 6.4, and what the prefix cache must do whatever the tolerances:
 * serve exactly the prefix's whole blocks of every request but the first
 * (80 tokens = 5 blocks, 341 tokens = 21 blocks), nothing without caching,
 * and lift the sustainable rate well above Orca (Oracle)'s (a prefix cache
 * that stopped hitting would bring it back to about 1x).  The bias prompts:
 * every prompt shares its first tokens, the cache serves at least a ticker's
 * shared whole blocks, and moving the instructions first serves more. */
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
#include "labs/lab_prefix.h"

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
    lab *L = tl_run(&lab_prefix, LAB_PAPER_SEED);
    tl_check_files(L, "");
    assert_int_equal(tl_check_key(L), 7);
    assert_int_equal(tl_check_headlines(L), 2);
    char *t = tu_slurp("build/tmp/lab_prefix/translation.csv");
    char *b = tu_slurp("build/tmp/lab_prefix/bias_prompts.csv");
    assert_non_null(t);
    assert_non_null(b);
    /* setting,prefix_tokens,sustainable_req_per_s,vs_oracle,cache_hit_pct,computed_per_request */
    static const char *shot[2] = { "one-shot", "five-shot" };
    static const int blocks[2] = { 5, 21 };
    for (int k = 0; k < 2; k++) {
        char o[32], p[32], c[32];
        snprintf(o, sizeof o, "%s orca-oracle", shot[k]);
        snprintf(p, sizeof p, "%s paged", shot[k]);
        snprintf(c, sizeof c, "%s paged+cache", shot[k]);
        double prompt = cell(t, o, 6);                        /* tokens per request, all computed */
        assert_true(cell(t, o, 5) == 0 && cell(t, p, 5) == 0);
        assert_true(fabs(cell(t, c, 6) - (prompt - 16 * blocks[k])) < 0.5);   /* the prefix's whole blocks */
        assert_true(cell(t, c, 4) > (k ? 3.0 : 1.5));
        assert_true(fabs(cell(t, p, 4) - 1) < 0.2);           /* paging alone: little, Oracle knows lengths */
    }
    /* prompt_order,shared_all,shared_ticker,cache_hit_pct,computed,blocks_saved,seconds_cached,seconds_uncached */
    double all = cell(b, "the study's", 2), tick = cell(b, "the study's", 3);
    assert_true(all >= 8 && tick > all);
    double prompt = cell(b, "the study's", 5) / (1 - cell(b, "the study's", 4) / 100);
    assert_true(cell(b, "the study's", 6) * 16 >= 16 * floor(tick / 16) * 0.85);
    assert_true(cell(b, "the study's", 4) < 100 * (tick + 16) / prompt + 10);
    assert_true(cell(b, "instructions first", 4) > cell(b, "the study's", 4) + 5);
    assert_true(cell(b, "instructions first", 7) <= cell(b, "instructions first", 8));
    free(t);
    free(b);
    lab_free(L);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_default_seed),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
