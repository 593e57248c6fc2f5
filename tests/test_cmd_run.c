/* Tests of `pagesim run` as a user runs it: --help, exit codes, errors that
 * name the bad input, a run whose JSON parses and agrees with the request
 * count, and the Figure 2 table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char out_buf[1 << 16];

/* Runs "pagesim run ARGS" with stderr folded into stdout; returns the exit status. */
static int run(const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/pagesim run %s 2>&1", tu_bindir(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out_buf, 1, sizeof out_buf - 1, p);
    out_buf[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *MODEL = "--model data/models/opt-13b.json --gpu A100-40GB";

static void test_help(void **st) {
    (void)st;
    assert_int_equal(run("--help"), 0);
    assert_non_null(strstr(out_buf, "usage: pagesim run"));
    assert_non_null(strstr(out_buf, "--policy"));
    assert_non_null(strstr(out_buf, "--fig2"));
}

static void test_bad_input(void **st) {
    (void)st;
    char a[512];
    assert_int_equal(run("--bogus"), 2);
    assert_non_null(strstr(out_buf, "--bogus"));
    snprintf(a, sizeof a, "%s --requests -5", MODEL);
    assert_int_equal(run(a), 2);
    assert_non_null(strstr(out_buf, "--requests"));
    snprintf(a, sizeof a, "%s --rate abc", MODEL);
    assert_int_equal(run(a), 2);
    snprintf(a, sizeof a, "%s --num-blocks 0", MODEL);
    assert_int_equal(run(a), 2);
    snprintf(a, sizeof a, "%s --policy nonsense", MODEL);
    assert_int_equal(run(a), 2);
    assert_non_null(strstr(out_buf, "nonsense"));
    assert_int_equal(run("--gpu A100-40GB"), 2);            /* no model */
    assert_non_null(strstr(out_buf, "--model"));
    assert_int_equal(run("--model build/tmp/none.json --gpu A100-40GB"), 2);   /* bad input: 2 */
    assert_non_null(strstr(out_buf, "build/tmp/none.json"));
    assert_int_equal(run("--model data/models/opt-13b.json --gpu Z99"), 2);
    assert_non_null(strstr(out_buf, "Z99"));
    snprintf(a, sizeof a, "%s --workload nosuchfile.csv", MODEL);
    assert_int_equal(run(a), 2);
    assert_non_null(strstr(out_buf, "nosuchfile.csv"));
    /* a bad trace row: the file and line are named */
    mkdir("build", 0755); mkdir("build/tmp", 0755);
    FILE *f = fopen("build/tmp/bad_trace.csv", "w");
    assert_non_null(f);
    fputs("arrival,prompt_len,output_len\n0,10,5\n0.5,abc,5\n", f);
    fclose(f);
    snprintf(a, sizeof a, "%s --workload build/tmp/bad_trace.csv", MODEL);
    assert_int_equal(run(a), 2);
    assert_non_null(strstr(out_buf, "bad_trace.csv:3"));
    /* malformed config.json */
    f = fopen("build/tmp/bad_config.json", "w");
    fputs("{\"hidden_size\": 12,", f);
    fclose(f);
    assert_int_equal(run("--model build/tmp/bad_config.json --gpu A100-40GB"), 2);
    assert_non_null(strstr(out_buf, "bad_config.json"));
}

static void test_run_json(void **st) {
    (void)st;
    char a[512];
    mkdir("build", 0755); mkdir("build/tmp", 0755);
    remove("build/tmp/run.json");
    snprintf(a, sizeof a, "%s --requests 120 --rate 2 --kv-gb 4 --policy orca-oracle --seed 4 "
             "--json build/tmp/run.json", MODEL);
    assert_int_equal(run(a), 0);
    assert_non_null(strstr(out_buf, "requests finished"));
    assert_non_null(strstr(out_buf, "orca-oracle"));
    FILE *f = fopen("build/tmp/run.json", "rb");
    assert_non_null(f);
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    cJSON *s = cJSON_GetObjectItem(j, "summary");
    assert_int_equal(cJSON_GetObjectItem(s, "num_finished")->valueint, 120);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "requests")), 120);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "steps"), "time")),
                     cJSON_GetObjectItem(s, "steps")->valueint);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "policy")->valuestring,
                        "orca-oracle");
    cJSON_Delete(j);
    /* an unwritable --json path fails before the run (no summary), naming it */
    snprintf(a, sizeof a, "%s --requests 5 --kv-gb 4 --json build/tmp/no/dir/x.json", MODEL);
    assert_int_equal(run(a), 2);
    assert_non_null(strstr(out_buf, "build/tmp/no/dir/x.json"));
    assert_null(strstr(out_buf, "requests finished"));
}

static void test_fig2(void **st) {
    (void)st;
    assert_int_equal(run("--fig2 --requests 200"), 0);
    const char *names[4] = { "paged", "orca-max", "orca-pow2", "orca-oracle" };
    for (int i = 0; i < 4; i++) assert_non_null(strstr(out_buf, names[i]));
    assert_non_null(strstr(out_buf, "96.3"));
    /* measured shares: paged far above every Orca variant, Max the lowest */
    double v[4];
    for (int i = 0; i < 4; i++) {
        char key[32];
        snprintf(key, sizeof key, "\n  %-12s", names[i]);
        const char *p = strstr(out_buf, key);
        assert_non_null(p);
        v[i] = atof(p + strlen(key));
    }
    assert_true(v[0] > 90 && v[0] > v[3] && v[3] > v[2] && v[2] > v[1] && v[1] > 10);
}

static void test_rate_sweep(void **st) {
    (void)st;
    char a[512];
    snprintf(a, sizeof a, "--rate-sweep %s --sweep-seconds 300 --kv-gb 6", MODEL);
    assert_int_equal(run(a), 0);
    const char *p = strstr(out_buf, "paged / orca-oracle: ");
    assert_non_null(p);
    double ratio = atof(p + strlen("paged / orca-oracle: "));
    assert_true(ratio > 1.1 && ratio < 5);       /* paged sustains more */
    assert_non_null(strstr(out_buf, "1.7-2.7x"));  /* the paper's gains beside ours */
    /* one of the paper's settings, with its label */
    assert_int_equal(run("--rate-sweep --setting opt-13b --workload sharegpt --sweep-seconds 200 --quiet"), 0);
    assert_non_null(strstr(out_buf, "OPT-13B, 1 x A100-40GB"));
    assert_int_equal(run("--rate-sweep --setting opt-7b"), 2);
    assert_non_null(strstr(out_buf, "opt-7b"));
    assert_int_equal(run("--rate-sweep --fig2"), 2);
    assert_int_equal(run("--fig2 --allocator best-fit"), 2);
    assert_non_null(strstr(out_buf, "best-fit"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_run_json),
        cmocka_unit_test(test_fig2),
        cmocka_unit_test(test_rate_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
