/* Tests of the size rules (issue 12) through scripts/sizes.sh: the tree has no
 * function over about 100 lines outside apps/ and no library file over about
 * 600 lines without a reason at its top, but for the functions of
 * scripts/sizes_allow.txt (each with its reason and its length).  Planted trees
 * under build/tmp/sizes show that the script reports what it must (and the
 * allowlist's stale or unexplained entries) and nothing else.  Runs from the
 * repository root; writes only under build/tmp/sizes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <sys/wait.h>

#define TMP "build/tmp/sizes"

/* Writes text to root/rel, making its folder. */
static void put(const char *root, const char *rel, const char *text) {
    char cmd[1024], path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    if (system(cmd) != 0) fail_msg("%s", cmd);
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* A C function named name whose body makes it `lines` lines long in all
 * (head, body lines, closing brace), after a prefix (its declaration's start). */
static char *function(const char *prefix, const char *name, int lines) {
    size_t cap = 256 + (size_t)lines * 32;
    char *s = malloc(cap);
    assert_non_null(s);
    int k = snprintf(s, cap, "%s%s(int *x) {\n", prefix, name);
    /* braces in comments, strings and characters do not count */
    for (int i = 0; i < lines - 2; i++)
        k += snprintf(s + k, cap - (size_t)k, i % 3 == 0 ? "    x[0]++; /* } */\n"
                                                     : i % 3 == 1 ? "    x[1] += \"}\"[0];\n" : "    x[2] = '}';\n");
    snprintf(s + k, cap - (size_t)k, "}\n");
    return s;
}

/* n lines in all: top, declarations, then end. */
static char *long_file(const char *top, int n, const char *end) {
    size_t cap = strlen(top) + strlen(end) + (size_t)n * 24 + 16;
    char *s = malloc(cap);
    assert_non_null(s);
    int k = snprintf(s, cap, "%s", top), have = 0;
    for (const char *p = top; *p; p++) have += *p == '\n';
    for (const char *p = end; *p; p++) have += *p == '\n';
    for (int i = have; i < n; i++) k += snprintf(s + k, cap - (size_t)k, "int v%d;\n", i);
    snprintf(s + k, cap - (size_t)k, "%s", end);
    return s;
}

/* Runs scripts/sizes.sh on root (NULL: the repository) into *out; returns its exit status. */
static int run_sizes(const char *root, char **out) {
    char cmd[512];
    if (system("mkdir -p " TMP) != 0) fail();
    snprintf(cmd, sizeof cmd, "bash scripts/sizes.sh %s%s > " TMP "/out.txt 2>&1", root ? "--root " : "",
             root ? root : "");
    int st = system(cmd);
    *out = tu_slurp(TMP "/out.txt");
    assert_non_null(*out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void fresh(const char *root) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s/scripts", root, root);
    if (system(cmd) != 0) fail_msg("%s", cmd);
}

/* The repository itself: nothing over the limits but what the allowlist explains. */
static void test_repository_within_limits(void **st) {
    (void)st;
    char *out;
    int rc = run_sizes(NULL, &out);
    if (rc != 0) fprintf(stderr, "%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "0 over the limits"));
    free(out);
}

/* A 101-line function is reported with file:line, name and length; one of
 * 100 lines, one in apps/ and a long initialiser are not. */
static void test_reports_a_long_function(void **st) {
    (void)st;
    const char *root = TMP "/fn";
    fresh(root);
    char *a = function("static int ", "too_long", 101), *b = function("int ", "just_fits", 100);
    char *c = function("int ", "front_end", 140), *d = long_file("static const int table[] = {\n", 130, "};\n");
    size_t n = strlen(a) + strlen(b) + 2;
    char *ab = malloc(n);
    assert_non_null(ab);
    snprintf(ab, n, "%s\n%s", a, b);
    put(root, "sim/fns.c", ab);
    put(root, "apps/x/main.c", c);
    put(root, "viz/data.c", d);
    char *out;
    assert_int_equal(run_sizes(root, &out), 1);
    assert_non_null(strstr(out, "sim/fns.c:1: too_long 101 lines"));
    assert_null(strstr(out, "just_fits"));
    assert_null(strstr(out, "front_end"));
    assert_null(strstr(out, "viz/data.c"));
    assert_non_null(strstr(out, "1 over the limits"));
    free(out); free(ab); free(a); free(b); free(c); free(d);
}

/* A 601-line library file is reported unless its top says why. */
static void test_reports_a_long_file_without_reason(void **st) {
    (void)st;
    const char *root = TMP "/file";
    fresh(root);
    char *a = long_file("/* one thing */\n", 601, "");
    char *b = long_file("/* one thing.\n * Over 600 lines because it is one table. */\n", 601, "");
    char *c = long_file("/* short enough */\n", 600, "");
    put(root, "text/big.c", a);
    put(root, "text/big_ok.c", b);
    put(root, "engine/fits.cuh", c);
    char *out;
    assert_int_equal(run_sizes(root, &out), 1);
    assert_non_null(strstr(out, "text/big.c: 601 lines"));
    assert_null(strstr(out, "big_ok"));
    assert_null(strstr(out, "fits.cuh"));
    assert_non_null(strstr(out, "1 over the limits"));
    free(out); free(a); free(b); free(c);
}

/* An allowlisted kernel passes while it is no longer than its entry says, and
 * counts again when it grows past it. */
static void test_allowlist_holds_up_to_its_length(void **st) {
    (void)st;
    const char *root = TMP "/allow";
    fresh(root);
    char *k1 = function("__global__ void __launch_bounds__(128)\n", "kept_kernel", 120);
    char *k2 = function("__global__ void __launch_bounds__(128)\n", "grown_kernel", 130);
    put(root, "engine/k1.cuh", k1);
    put(root, "engine/k2.cuh", k2);
    put(root, "scripts/sizes_allow.txt",
        "# FILE FUNCTION MAX_LINES REASON\n"
        "engine/k1.cuh kept_kernel 120 the hot loop's registers stay visible\n"
        "engine/k2.cuh grown_kernel 110 the same\n");
    char *out;
    assert_int_equal(run_sizes(root, &out), 1);
    assert_non_null(strstr(out, "allowed: engine/k1.cuh:2: kept_kernel 120 lines"));
    assert_non_null(strstr(out, "engine/k2.cuh:2: grown_kernel 130 lines (the allowlist allows 110)"));
    assert_non_null(strstr(out, "1 over the limits"));
    free(out);
    /* within its length the allowlist makes the tree pass */
    put(root, "scripts/sizes_allow.txt", "engine/k1.cuh kept_kernel 120 reason\nengine/k2.cuh grown_kernel 130 reason\n");
    assert_int_equal(run_sizes(root, &out), 0);
    free(out); free(k1); free(k2);
}

/* An entry without a reason, and one whose function is no longer over the
 * limit, count: the list cannot rot. */
static void test_allowlist_entries_must_be_live_and_explained(void **st) {
    (void)st;
    const char *root = TMP "/stale";
    fresh(root);
    char *k = function("__global__ void\n", "long_kernel", 105), *s = function("int ", "short_fn", 20);
    put(root, "engine/k.cuh", k);
    put(root, "sim/s.c", s);
    put(root, "scripts/sizes_allow.txt",
        "engine/k.cuh long_kernel 105\n"
        "sim/s.c short_fn 100 split long ago\n");
    char *out;
    assert_int_equal(run_sizes(root, &out), 1);
    assert_non_null(strstr(out, "sizes_allow.txt:1: an entry is FILE FUNCTION MAX_LINES REASON"));
    assert_non_null(strstr(out, "engine/k.cuh:2: long_kernel 105 lines"));   /* its entry did not count */
    assert_non_null(strstr(out, "sizes_allow.txt:2: sim/s.c short_fn is not over the limit"));
    assert_non_null(strstr(out, "3 over the limits"));
    free(out); free(k); free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repository_within_limits),
        cmocka_unit_test(test_reports_a_long_function),
        cmocka_unit_test(test_reports_a_long_file_without_reason),
        cmocka_unit_test(test_allowlist_holds_up_to_its_length),
        cmocka_unit_test(test_allowlist_entries_must_be_live_and_explained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
