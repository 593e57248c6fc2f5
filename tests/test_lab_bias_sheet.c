/* test_lab_bias_sheet: labs/bias-sheet at its default seed: its files, its
 * answer key (the explain-why questions left to the teacher), its headline
 * (the bias index within its stated tolerance of the study's 137: a broken
 * prompt, reply, analysis or aggregation step moves it far), and the run's
 * own sense: every prompt of 3 sets x 10 trials, nearly all answered, the
 * groups sorted, paged KV holding less of the cache than contiguous.  The
 * scratch folder of the run is gone afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/test_util.h"
#include "tests/test_lab_util.h"
#include "labs/lab_bias_sheet.h"

/* The value of a "quantity,value" row. */
static double value(const char *csv, const char *key) {
    char k[96];
    snprintf(k, sizeof k, "\n%s,", key);
    const char *p = strstr(csv, k);
    if (!p) fail_msg("no row %s", key);
    return strtod(p + strlen(k), NULL);
}

static int scratch_folders(void) {
    DIR *d = opendir(P_tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += !strncmp(e->d_name, "pagesim-bias-sheet-", 19);
    if (d) closedir(d);
    return n;
}

static void test_default_seed(void **state) {
    (void)state;
    int before = scratch_folders();
    lab *L = tl_run(&lab_bias_sheet, LAB_PAPER_SEED);
    assert_int_equal(scratch_folders(), before);
    tl_check_files(L, "");
    assert_int_equal(tl_check_key(L), 7);
    assert_int_equal(tl_check_headlines(L), 1);
    char *s = tu_slurp("build/tmp/lab_bias-sheet/summary.csv");
    char *g = tu_slurp("build/tmp/lab_bias-sheet/groups.csv");
    assert_non_null(s);
    assert_non_null(g);
    double prompts = value(s, "prompts");
    assert_true(prompts >= 3 * 10 * 400 && fmod(prompts, 30) == 0);
    assert_true(value(s, "prompts answered") > 0.98 * prompts);
    assert_true(value(s, "paged: KV in use (%)") < value(s, "contiguous: KV in use (%)"));
    assert_true(value(s, "paged: most requests at once") <= 200);
    /* sectors sorted, highest first: the first data row is the highest */
    const char *first = strchr(g, '\n') + 1;
    double top = strtod(strchr(first, ',') + 1, NULL);
    for (const char *p = strchr(first, '\n'); p && p[1] && strncmp(p + 1, "size", 4); p = strchr(p + 1, '\n'))
        assert_true(strtod(strchr(p + 1, ',') + 1, NULL) <= top + 1e-9);
    free(s);
    free(g);
    lab_free(L);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_default_seed),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
