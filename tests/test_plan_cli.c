/* Integration test of `pagesim plan` (and `pagesim calibrate --help`): runs
 * the built command and checks its lines, JSON and exit status. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "tests/test_util.h"

/* Runs "pagesim ARGS 2>&1"; returns its output (malloc'd) and exit status. */
static char *run(const char *args, int *status) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/pagesim %s 2>&1", tu_bindir(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);                        /* (cap,) the command's output */
    assert_non_null(out);
    size_t k;
    while ((k = fread(out + len, 1, cap - 1 - len, p)) > 0) len += k;
    out[len] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

static void test_14b_does_not_fit(void **state) {
    (void)state;
    int st;
    char *out = run("plan --model data/models/qwen2.5-14b-instruct-awq.json --gpu RTX-4070", &st);
    if (!strstr(out, "# GPU blocks: 0,")) fail_msg("output:\n%s", out);
    assert_non_null(strstr(out, "GPU KV cache size: 0 tokens\n"));
    assert_non_null(strstr(out, "verdict: does not fit"));
    assert_int_equal(st, 1);
    free(out);
}

static void test_7b_fits(void **state) {
    (void)state;
    int st;
    char *out = run("plan --model data/models/qwen2.5-7b-instruct-awq.json --gpu RTX-4070 "
                    "--max-model-len 6144 --util 0.92", &st);
    assert_int_equal(st, 0);
    long blocks = -1, cpu = -1;
    double conc = -1;
    char tokens[64] = "";
    const char *l = strstr(out, "# GPU blocks: ");
    assert_non_null(l);
    assert_int_equal(sscanf(l, "# GPU blocks: %ld, # CPU blocks: %ld", &blocks, &cpu), 2);
    l = strstr(out, "GPU KV cache size: ");
    assert_non_null(l);
    assert_int_equal(sscanf(l, "GPU KV cache size: %63s tokens", tokens), 1);
    l = strstr(out, "Maximum concurrency for 6,144 tokens per request: ");
    assert_non_null(l);
    assert_int_equal(sscanf(l, "Maximum concurrency for 6,144 tokens per request: %lfx", &conc), 1);
    /* the lines agree with each other: tokens = 16 x blocks, concurrency = tokens / 6144 */
    char digits[64];
    size_t j = 0;
    for (const char *p = tokens; *p && j + 1 < sizeof digits; p++) if (*p != ',') digits[j++] = *p;
    digits[j] = '\0';
    long kv_tokens = atol(digits);
    assert_int_equal(kv_tokens, blocks * 16);
    assert_true(blocks > 0);
    assert_true(fabs(conc - kv_tokens / 6144.0) < 0.006);
    assert_non_null(strstr(out, "verdict: fits"));
    free(out);

    /* --json: the same plan as numbers */
    out = run("plan --model data/models/qwen2.5-7b-instruct-awq.json --gpu RTX-4070 "
              "--max-model-len=6144 --util=0.92 --json", &st);
    assert_int_equal(st, 0);
    cJSON *j_ = cJSON_Parse(out);
    if (!j_) fail_msg("not JSON:\n%s", out);
    assert_int_equal((long)cJSON_GetObjectItem(j_, "num_gpu_blocks")->valuedouble, blocks);
    assert_int_equal((long)cJSON_GetObjectItem(j_, "kv_bytes_per_token")->valuedouble, 57344);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j_, "fits")));
    cJSON_Delete(j_);
    free(out);
}

static void test_help_and_bad_input(void **state) {
    (void)state;
    int st;
    char *out = run("plan --help", &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "usage: pagesim plan"));
    free(out);
    out = run("calibrate --help", &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "usage: pagesim calibrate"));
    free(out);
    struct { const char *args, *want; } bad[] = {
        { "plan --model data/models/opt-13b.json --gpu TPU-v9", "H100-SXM" },
        { "plan --model data/models/opt-13b.json --gpu 0GB", "positive" },
        { "plan --model build/tmp/absent.json --gpu H100", "absent.json" },
        { "plan --model build/tmp/cli_bad.json --gpu H100", "cli_bad.json" },
        { "plan --model data/models/opt-13b.json --gpu H100 --util 0", "--gpu-memory-utilization" },
        { "plan --model data/models/opt-13b.json --gpu H100 --gpu-memory-utilization 0", "--gpu-memory-utilization" },
        { "plan --model data/models/opt-13b.json --gpu H100 --util abc", "--util" },
        { "plan --model data/models/opt-13b.json --gpu H100 --block-size -16", "--block-size" },
        { "plan --model data/models/opt-13b.json --gpu H100 --max-model-len 0", "--max-model-len" },
        { "plan --model data/models/opt-13b.json --gpu H100 --max-model-len 4096", "positions" },
        { "plan --model data/models/opt-13b.json --gpu H100 --tp 3", "--tensor-parallel-size 3" },
        { "plan --model data/models/opt-13b.json --gpu H100 -tp 3", "--tensor-parallel-size 3" },
        { "plan --model data/models/opt-13b.json --gpu H100 --dtype int3", "--dtype" },
        { "plan --model data/models/opt-13b.json --gpu H100 --frobnicate 1", "unknown option" },
        { "plan --model data/models/opt-13b.json", "required" },
        { "plan --model data/models/opt-13b.json --gpu", "needs a value" },
    };
    mkdir("build", 0777);
    mkdir("build/tmp", 0777);
    FILE *f = fopen("build/tmp/cli_bad.json", "w");
    assert_non_null(f);
    fputs("{\"model_type\": \"llama\",\n \"hidden_size\": }\n", f);
    fclose(f);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = run(bad[i].args, &st);
        if (st != 2 || !strstr(out, bad[i].want))
            fail_msg("`pagesim %s`: status %d, want 2 and '%s' in:\n%s", bad[i].args, st, bad[i].want, out);
        free(out);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_14b_does_not_fit),
        cmocka_unit_test(test_7b_fits),
        cmocka_unit_test(test_help_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
