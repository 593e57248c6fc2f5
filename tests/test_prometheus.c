/* tests/test_prometheus.c — serve/prometheus: counters, gauges, histogram
 * buckets, and the text format parsed back line by line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>

#include "tests/test_util.h"
#include "serve/prometheus.h"

/* Value of the sample line that starts with `key ` in text, or NAN. */
static double sample(const char *text, const char *key) {
    size_t k = strlen(key);
    for (const char *p = text; p && *p; ) {
        if (strncmp(p, key, k) == 0 && p[k] == ' ') return strtod(p + k + 1, NULL);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return NAN;
}

static void test_counter_gauge(void **state) {
    (void)state;
    prom_registry *r = prom_create("model_name=\"m\"");
    assert_non_null(r);
    prom_metric *c = prom_add_metric(r, PROM_COUNTER, "vllm:prompt_tokens_total", "Prompt tokens.", NULL, 0);
    prom_metric *g = prom_add_metric(r, PROM_GAUGE, "vllm:num_requests_running", "Running.", NULL, 0);
    assert_non_null(c);
    assert_non_null(g);
    /* duplicate and malformed names are refused */
    assert_null(prom_add_metric(r, PROM_GAUGE, "vllm:num_requests_running", "x", NULL, 0));
    assert_null(prom_add_metric(r, PROM_GAUGE, "9bad", "x", NULL, 0));
    assert_null(prom_add_metric(r, PROM_GAUGE, "bad-name", "x", NULL, 0));
    double total = 0;
    for (int i = 1; i <= 10; i++) { prom_inc(c, i); total += i; }
    prom_inc(c, -5);                      /* counters never go down */
    prom_set(c, 3);                       /* nor by set */
    assert_true(prom_value(c) == total);
    prom_set(c, total + 4);
    assert_true(prom_value(c) == total + 4);
    prom_set(g, 7); prom_inc(g, -2.5);
    assert_true(prom_value(g) == 4.5);
    char *txt = prom_render(r, NULL);
    assert_non_null(txt);
    assert_non_null(strstr(txt, "# TYPE vllm:prompt_tokens_total counter\n"));
    assert_non_null(strstr(txt, "# TYPE vllm:num_requests_running gauge\n"));
    assert_true(sample(txt, "vllm:prompt_tokens_total{model_name=\"m\"}") == total + 4);
    assert_true(sample(txt, "vllm:num_requests_running{model_name=\"m\"}") == 4.5);
    free(txt);
    prom_free(r);
}

static void test_histogram(void **state) {
    (void)state;
    prom_registry *r = prom_create(NULL);
    const double bad[] = {0.1, 0.1};
    assert_null(prom_add_metric(r, PROM_HISTOGRAM, "h_bad", "x", bad, 2));
    const double b[] = {0.01, 0.1, 1.0};
    prom_metric *h = prom_add_metric(r, PROM_HISTOGRAM, "vllm:time_to_first_token_seconds", "TTFT.", b, 3);
    assert_non_null(h);
    /* observations spread by a formula; expected buckets computed independently */
    double sum = 0, want[4] = {0};
    for (int i = 0; i < 200; i++) {
        double v = 0.0005 * i * (i % 7);
        prom_observe(h, v);
        sum += v;
        for (int k = 0; k < 3; k++) if (v <= b[k]) want[k] += 1;
        want[3] += 1;
    }
    prom_observe(h, NAN);
    assert_true(prom_value(h) == 200);
    assert_true(fabs(prom_hist_sum(h) - sum) < 1e-9);
    for (int k = 0; k < 4; k++) assert_true(prom_hist_bucket(h, (size_t)k) == want[k]);
    char *txt = prom_render(r, NULL);
    assert_non_null(txt);
    assert_non_null(strstr(txt, "# TYPE vllm:time_to_first_token_seconds histogram\n"));
    assert_true(sample(txt, "vllm:time_to_first_token_seconds_bucket{le=\"0.01\"}") == want[0]);
    assert_true(sample(txt, "vllm:time_to_first_token_seconds_bucket{le=\"0.1\"}") == want[1]);
    assert_true(sample(txt, "vllm:time_to_first_token_seconds_bucket{le=\"1\"}") == want[2]);
    assert_true(sample(txt, "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\"}") == 200);
    assert_true(sample(txt, "vllm:time_to_first_token_seconds_count") == 200);
    assert_true(fabs(sample(txt, "vllm:time_to_first_token_seconds_sum") - sum) < 1e-9);
    free(txt);
    prom_free(r);
}

static prom_metric *g_shared;
static void *hammer(void *arg) {
    (void)arg;
    for (int i = 0; i < 10000; i++) prom_inc(g_shared, 1);
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    prom_registry *r = prom_create("a=\"b\"");
    g_shared = prom_add_metric(r, PROM_COUNTER, "n_total", "n", NULL, 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    assert_true(prom_value(g_shared) == 40000);
    prom_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
