/* Tests of sim/workload: length means against the vLLM paper, Poisson
 * arrivals, determinism, max_len, prompt tokens with shared prefixes, and
 * trace files (good rows and bad ones, with their line numbers). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "sim/workload.h"

static char err[1024];

static wl_request *gen(wl_kind kind, int n, double rate, uint64_t seed, int max_len, int *got) {
    wl_spec s = { .kind = kind, .num_requests = n, .rate = rate, .seed = seed, .max_len = max_len };
    wl_request *r = NULL;
    if (wl_generate(&s, &r, got, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(*got, n);
    return r;
}

static void check_means(wl_kind kind, int max_len, double want_p, double want_o) {
    int n;
    wl_request *r = gen(kind, 100000, 0, 7, max_len, &n);
    double p, o;
    wl_stats(r, n, &p, &o);
    if (fabs(p / want_p - 1) > 0.03 || fabs(o / want_o - 1) > 0.03)
        fail_msg("kind %d max_len %d: means %.2f / %.2f, want %.2f / %.2f", kind, max_len, p, o,
                 want_p, want_o);
    /* heavy tail: the longest prompts are far above the mean, the median below it */
    int longer = 0, maxp = 0;
    for (int i = 0; i < n; i++) {
        longer += r[i].prompt_len > p;
        if (r[i].prompt_len > maxp) maxp = r[i].prompt_len;
        assert_true(r[i].prompt_len >= 1 && r[i].output_len >= 1);
        assert_int_equal(r[i].n, 1);
        assert_int_equal(r[i].prefix_id, -1);
        if (max_len) assert_true(r[i].prompt_len + r[i].output_len <= max_len);
        assert_true(r[i].arrival == 0);
    }
    assert_true(longer < n / 2);
    assert_true(maxp > 5 * p);
    free(r);
}

static void test_sharegpt_means(void **state) {
    (void)state;
    check_means(WL_SHAREGPT, 0, 161.31, 337.99);
    check_means(WL_SHAREGPT, 2048, 161.31, 337.99);
}

static void test_alpaca_means(void **state) {
    (void)state;
    check_means(WL_ALPACA, 0, 19.31, 58.45);
    check_means(WL_ALPACA, 2048, 19.31, 58.45);
}

/* Short max_len: every request fits, and generation stays quick (no endless
 * redraws when few pairs fit). */
static void test_short_max_len(void **state) {
    (void)state;
    int lens[] = { 2, 16, 100, 512 };
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
        for (int kind = WL_SHAREGPT; kind <= WL_ALPACA; kind++) {
            int n;
            wl_request *r = gen((wl_kind)kind, 20000, 0, 5, lens[k], &n);
            for (int i = 0; i < n; i++) {
                assert_true(r[i].prompt_len >= 1 && r[i].output_len >= 1);
                assert_true(r[i].prompt_len + r[i].output_len <= lens[k]);
            }
            free(r);
        }
}

static void test_poisson(void **state) {
    (void)state;
    int n;
    wl_request *r = gen(WL_SHAREGPT, 100000, 4.0, 11, 0, &n);
    double sum = 0, sq = 0;
    for (int i = 1; i < n; i++) {
        double d = r[i].arrival - r[i - 1].arrival;
        assert_true(d >= 0);
        sum += d, sq += d * d;
    }
    double mean = sum / (n - 1), var = sq / (n - 1) - mean * mean;
    assert_true(fabs(mean - 0.25) < 0.25 * 0.02);
    /* exponential: standard deviation equals the mean */
    assert_true(fabs(sqrt(var) / mean - 1) < 0.03);
    /* changing the rate does not change the lengths */
    int m;
    wl_request *q = gen(WL_SHAREGPT, 1000, 0.5, 11, 0, &m);
    for (int i = 0; i < m; i++) {
        assert_int_equal(q[i].prompt_len, r[i].prompt_len);
        assert_int_equal(q[i].output_len, r[i].output_len);
    }
    free(q);
    free(r);
}

static void test_determinism(void **state) {
    (void)state;
    int n1, n2, n3;
    wl_request *a = gen(WL_ALPACA, 5000, 2.0, 42, 0, &n1);
    wl_request *b = gen(WL_ALPACA, 5000, 2.0, 42, 0, &n2);
    wl_request *c = gen(WL_ALPACA, 5000, 2.0, 43, 0, &n3);
    assert_memory_equal(a, b, sizeof *a * (size_t)n1);
    int same = 0;
    for (int i = 0; i < n1; i++) same += a[i].prompt_len == c[i].prompt_len && a[i].arrival == c[i].arrival;
    assert_true(same < n1 / 10);
    free(a), free(b), free(c);
}

static void test_fixed_and_bad_specs(void **state) {
    (void)state;
    wl_spec s = { .kind = WL_FIXED, .num_requests = 10, .fixed_prompt = 500, .fixed_output = 100,
                  .max_len = 550 };
    wl_request *r;
    int n;
    assert_int_equal(wl_generate(&s, &r, &n, err, sizeof err), 0);
    assert_int_equal(n, 10);
    assert_int_equal(r[3].prompt_len, 500);
    assert_int_equal(r[3].output_len, 50);          /* clipped to max_len */
    free(r);
    wl_spec bad[] = {
        { .kind = WL_SHAREGPT, .num_requests = 0 },
        { .kind = WL_SHAREGPT, .num_requests = -5 },
        { .kind = WL_SHAREGPT, .num_requests = 5, .rate = -1 },
        { .kind = WL_SHAREGPT, .num_requests = 5, .rate = NAN },
        { .kind = WL_ALPACA, .num_requests = 5, .max_len = -3 },
        { .kind = WL_FIXED, .num_requests = 5, .fixed_prompt = 0, .fixed_output = 3 },
        { .kind = WL_TRACE, .num_requests = 0, .path = NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        r = (wl_request *)&s;
        assert_int_equal(wl_generate(&bad[i], &r, &n, err, sizeof err), -1);
        assert_null(r);
        assert_int_equal(n, 0);
        assert_true(strlen(err) > 0);
    }
}

static void test_prompt_tokens(void **state) {
    (void)state;
    wl_request a = { .prompt_len = 64, .output_len = 1, .n = 1, .prefix_id = 3, .prefix_len = 32 };
    wl_request b = a, c = a;
    b.prompt_len = 40;
    c.prefix_id = 4;
    int ta[64], tb[40], tc[64], ta2[64];
    wl_prompt_tokens(&a, 0, 9, ta);
    wl_prompt_tokens(&b, 1, 9, tb);
    wl_prompt_tokens(&c, 2, 9, tc);
    wl_prompt_tokens(&a, 0, 9, ta2);
    assert_memory_equal(ta, ta2, sizeof ta);        /* deterministic */
    assert_memory_equal(ta, tb, 32 * sizeof(int));  /* the shared prefix */
    int diff = 0;
    for (int i = 32; i < 40; i++) diff += ta[i] != tb[i];
    assert_true(diff >= 6);                         /* own tokens after it */
    diff = 0;
    for (int i = 0; i < 32; i++) diff += ta[i] != tc[i];
    assert_true(diff >= 28);                        /* another prefix id */
    for (int i = 0; i < 64; i++) assert_true(ta[i] >= 1 && ta[i] <= 32000);
    /* no prefix: different requests differ */
    wl_request d = { .prompt_len = 64, .n = 1, .prefix_id = -1 };
    int td[64], te[64];
    wl_prompt_tokens(&d, 5, 9, td);
    wl_prompt_tokens(&d, 6, 9, te);
    diff = 0;
    for (int i = 0; i < 64; i++) diff += td[i] != te[i];
    assert_true(diff >= 60);
    /* real token ids, when given, are the prompt (whatever the prefix fields say) */
    int real[5] = { 151644, 872, 198, 7, 151645 }, got[5];
    wl_request f = { .prompt_len = 5, .n = 1, .prefix_id = 3, .prefix_len = 4, .ids = real };
    wl_prompt_tokens(&f, 0, 9, got);
    assert_memory_equal(got, real, sizeof real);
}

static void test_kind_parse(void **state) {
    (void)state;
    assert_int_equal(wl_kind_parse("sharegpt"), WL_SHAREGPT);
    assert_int_equal(wl_kind_parse("ALPACA"), WL_ALPACA);
    assert_int_equal(wl_kind_parse("fixed"), WL_FIXED);
    assert_int_equal(wl_kind_parse("data/gpus.json"), WL_TRACE);
    assert_int_equal(wl_kind_parse("build/tmp/no_such_trace.csv"), -1);
    assert_int_equal(wl_kind_parse(""), -1);
}

/* ---- traces ---------------------------------------------------------------- */

static const char *write_tmp(const char *name, const char *text) {
    static char path[256];
    mkdir("build", 0777);
    mkdir("build/tmp", 0777);
    snprintf(path, sizeof path, "build/tmp/%s", name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_trace_csv(void **state) {
    (void)state;
    const char *p = write_tmp("trace_ok.csv",
        "arrival,prompt_len,output_len,n,beam\n"
        "0.0,10,20,1,0\n"
        "\n"
        "# a comment\n"
        "1.5,30,40,2,0\n"
        "0.5,7,8,1,4\n"
        "0.5,9,9,1,0\n");
    wl_request *r;
    int n;
    assert_int_equal(wl_load_trace(p, &r, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    /* sorted by arrival, ties in file order */
    assert_int_equal(r[0].prompt_len, 10);
    assert_int_equal(r[1].prompt_len, 7);
    assert_int_equal(r[1].beam, 4);
    assert_int_equal(r[2].prompt_len, 9);
    assert_int_equal(r[3].prompt_len, 30);
    assert_int_equal(r[3].n, 2);
    assert_true(r[3].arrival == 1.5);
    free(r);
    /* columns in any order, optional ones absent, through wl_generate with a cap and max_len */
    p = write_tmp("trace_min.csv", "output_len, prompt_len ,arrival\n5,100,0\n6,200,1\n7,300,2\n");
    wl_spec s = { .kind = WL_TRACE, .path = p, .num_requests = 2, .max_len = 150 };
    if (wl_generate(&s, &r, &n, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].prompt_len, 100);
    assert_int_equal(r[0].output_len, 5);
    assert_int_equal(r[1].prompt_len, 149);         /* clipped to max_len - 1 */
    assert_int_equal(r[1].output_len, 1);
    assert_int_equal(r[1].n, 1);
    free(r);
}

static void test_trace_jsonl(void **state) {
    (void)state;
    const char *p = write_tmp("trace_ok.jsonl",
        "{\"arrival\": 0.25, \"prompt_len\": 12, \"output_len\": 3}\n"
        "\n"
        "{\"arrival\": 0.5, \"prompt_len\": 64, \"output_len\": 8, \"n\": 4, \"prefix_id\": 1, \"prefix_len\": 32}\n");
    wl_request *r;
    int n;
    assert_int_equal(wl_load_trace(p, &r, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(r[1].n, 4);
    assert_int_equal(r[1].prefix_id, 1);
    assert_int_equal(r[1].prefix_len, 32);
    assert_int_equal(r[0].prefix_id, -1);
    free(r);
}

/* a bad trace gives -1 and an error naming file:line and the problem */
static void expect_trace_error(const char *name, const char *text, const char *where, const char *what) {
    const char *p = write_tmp(name, text);
    wl_request *r = (wl_request *)&err;
    int n = 99;
    err[0] = '\0';
    assert_int_equal(wl_load_trace(p, &r, &n, err, sizeof err), -1);
    assert_null(r);
    assert_int_equal(n, 0);
    if (!strstr(err, where)) fail_msg("error lacks '%s': %s", where, err);
    if (what && !strstr(err, what)) fail_msg("error lacks '%s': %s", what, err);
}

static void test_trace_errors(void **state) {
    (void)state;
    expect_trace_error("bad1.csv", "arrival,prompt_len,output_len\n0,1,2\n1,abc,2\n",
                       "bad1.csv:3", "prompt_len");
    expect_trace_error("bad2.csv", "arrival,prompt_len,output_len\n0,1,2\n1,3,4\n2,-5,2\n",
                       "bad2.csv:4", "negative");
    expect_trace_error("bad3.csv", "arrival,prompt_len\n0,1\n", "bad3.csv:1", "output_len");
    expect_trace_error("bad4.csv", "arrival,prompt_len,output_len\n0,1,2\n0,1\n", "bad4.csv:3", "fields");
    expect_trace_error("bad5.csv", "arrival,prompt_len,output_len\n-1,1,2\n", "bad5.csv:2", "arrival");
    expect_trace_error("bad6.csv", "arrival,prompt_len,output_len\n0,1.5,2\n", "bad6.csv:2", "integer");
    expect_trace_error("bad7.csv", "arrival,prompt_len,output_len\n0,10,0\n", "bad7.csv:2", "output_len");
    expect_trace_error("bad8.csv", "", "bad8.csv", "empty");
    expect_trace_error("bad9.csv", "arrival,prompt_len,output_len\n", "bad9.csv", "no requests");
    expect_trace_error("bad1.jsonl", "{\"prompt_len\": 3, \"output_len\": 4}\n{\"prompt_len\": 3}\n",
                       "bad1.jsonl:2", "output_len");
    expect_trace_error("bad2.jsonl", "{\"prompt_len\": 3, \"output_len\": 4}\n{\"prompt_len\": 3,\n",
                       "bad2.jsonl:2", "JSON");
    expect_trace_error("bad3.jsonl", "{\"prompt_len\": 3, \"output_len\": \"many\"}\n",
                       "bad3.jsonl:1", "output_len");
    expect_trace_error("bad4.jsonl", "{\"prompt_len\": 3, \"output_len\": 4, \"prefix_id\": 0, \"prefix_len\": 9}\n",
                       "bad4.jsonl:1", "prefix_len");
    wl_request *r;
    int n;
    assert_int_equal(wl_load_trace("build/tmp/absent.csv", &r, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "absent.csv"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sharegpt_means),
        cmocka_unit_test(test_alpaca_means),
        cmocka_unit_test(test_short_max_len),
        cmocka_unit_test(test_poisson),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_fixed_and_bad_specs),
        cmocka_unit_test(test_prompt_tokens),
        cmocka_unit_test(test_kind_parse),
        cmocka_unit_test(test_trace_csv),
        cmocka_unit_test(test_trace_jsonl),
        cmocka_unit_test(test_trace_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
