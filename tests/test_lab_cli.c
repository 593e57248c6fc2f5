/* test_lab_cli: the shared front end of the labs, through the built
 * labs/planning: --help, bad options, a run into --out, --check of the
 * teacher's key (exit 0), of a key with one wrong answer (exit 1, the answer
 * named with where to look), of another seed's answers, and --real without
 * an engine path for the lab. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cjson/cJSON.h>
#include "tests/test_util.h"

/* Runs "labs/planning ARGS 2>&1"; returns its output (malloc'd) and exit status. */
static char *run(const char *args, int *status) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/labs/planning %s 2>&1", tu_bindir(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0, k;
    char *out = malloc(cap);                        /* (cap,) the command's output */
    assert_non_null(out);
    while ((k = fread(out + len, 1, cap - 1 - len, p)) > 0) len += k;
    out[len] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

#define DIR "build/tmp/lab_cli_planning"

static void test_help_and_bad_options(void **state) {
    (void)state;
    int st;
    char *out = run("--help", &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "--check FILE"));
    assert_non_null(strstr(out, "--teacher"));
    assert_non_null(strstr(out, "What --seed changes"));
    free(out);
    out = run("--bogus", &st);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "unknown option '--bogus'"));
    free(out);
    out = run("--seed -3", &st);
    assert_int_equal(st, 2);
    free(out);
    out = run("--seed", &st);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "needs a value"));
    free(out);
    out = run("--check /nonexistent/answers.json", &st);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "/nonexistent/answers.json"));
    free(out);
}

static void test_run_and_check(void **state) {
    (void)state;
    int st;
    assert_int_equal(system("rm -rf " DIR), 0);
    char *out = run("--teacher --out " DIR, &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "# GPU blocks: 0"));
    assert_non_null(strstr(out, "within"));
    assert_non_null(strstr(out, "wrote "));
    free(out);
    char *key = tu_slurp(DIR "/answer-key.json");
    assert_non_null(key);
    out = run("--check " DIR "/answer-key.json", &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "0 wrong, 0 missing"));
    free(out);
    /* one wrong number */
    cJSON *root = cJSON_Parse(key);
    cJSON *q3 = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "answers"), "q3");
    cJSON_SetNumberValue(q3, q3->valuedouble * 2);
    char *text = cJSON_Print(root);
    FILE *f = fopen(DIR "/wrong.json", "w");
    fputs(text, f);
    fclose(f);
    out = run("--check " DIR "/wrong.json", &st);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "q3   WRONG"));
    assert_non_null(strstr(out, "too high; look at Figure 2"));
    assert_non_null(strstr(out, "1 wrong"));
    free(out);
    /* the untouched template: all missing */
    out = run("--check " DIR "/answers.json", &st);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "0 right, 0 wrong, 8 missing"));
    free(out);
    /* another seed than the answers' */
    out = run("--seed 2 --check " DIR "/answer-key.json", &st);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "use --seed 1"));
    free(out);
    free(text);
    cJSON_Delete(root);
    free(key);
}

static void test_real(void **state) {
    (void)state;
    int st;
    char *out = run("--real --out " DIR "-real", &st);
    assert_int_equal(st, 2);
    assert_true(strstr(out, "needs a GPU build") || strstr(out, "not written for this lab yet"));
    free(out);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_help_and_bad_options),
        cmocka_unit_test(test_run_and_check),
        cmocka_unit_test(test_real),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
