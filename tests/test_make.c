/* Tests of the Makefile's own targets (issue 20, "Smaller"): `make fuzz` runs
 * every libFuzzer harness (tests/fuzz/run_*_fuzz.sh) exactly once, each for
 * FUZZ_SECS.  Reads the Makefile through `make -n` (prints, runs nothing)
 * from the repository root; writes nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <glob.h>

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* `make -n TARGET FUZZ_SECS=7`'s output (malloc'd), outside the calling make. */
static char *dry_run(const char *target) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -n --no-print-directory %s FUZZ_SECS=7 2>&1", target);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t k;
    while ((k = fread(out + n, 1, cap - n - 1, p)) > 0) n += k;
    out[n] = 0;
    assert_int_equal(pclose(p), 0);
    return out;
}

static void test_fuzz_runs_each_harness_once_for_fuzz_secs(void **st) {
    (void)st;
    glob_t g;
    assert_int_equal(glob("tests/fuzz/run_*_fuzz.sh", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 2);                  /* the tokenizer's and the safetensors' */
    char *out = dry_run("fuzz");
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char want[512];
        snprintf(want, sizeof want, "%s 7", g.gl_pathv[i]);
        if (count(out, g.gl_pathv[i]) != 1 || count(out, want) != 1)
            fail_msg("`make -n fuzz FUZZ_SECS=7` should run %s once, for 7 s:\n%s", g.gl_pathv[i], out);
    }
    free(out);
    out = dry_run("engine-fuzz");
    assert_int_equal(count(out, "tests/fuzz/run_st_fuzz.sh 7"), 1);
    free(out);
    globfree(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_runs_each_harness_once_for_fuzz_secs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
