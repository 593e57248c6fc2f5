/* Tests of metrics: nearest-rank percentiles, request latencies, time-weighted
 * waste shares, the summary, JSON written and read back, write errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <sys/stat.h>
#include "sim/metrics.h"

static void test_percentiles(void **st) {
    (void)st;
    double v[100];
    for (int i = 0; i < 100; i++) v[i] = (double)((i * 37) % 100) + 1;   /* 1..100 shuffled */
    met_pct p;
    assert_int_equal(met_percentiles(v, 100, &p), 0);
    assert_true(fabs(p.mean - 50.5) < 1e-12);
    assert_true(p.p50 == 50 && p.p90 == 90 && p.p99 == 99 && p.max == 100);
    double one = 7;
    assert_int_equal(met_percentiles(&one, 1, &p), 0);
    assert_true(p.p50 == 7 && p.p99 == 7 && p.mean == 7);
    assert_int_equal(met_percentiles(v, 0, &p), 0);
    assert_true(p.mean == 0 && p.max == 0);
    double three[3] = { 3, 1, 2 };
    assert_int_equal(met_percentiles(three, 3, &p), 0);
    assert_true(p.p50 == 2 && p.p90 == 3);
}

static void test_request_latency(void **st) {
    (void)st;
    met_request r = { .output_len = 11, .arrival = 1.0, .first_token = 1.5, .finish_time = 3.5 };
    met_request_finish(&r);
    assert_true(fabs(r.ttft - 0.5) < 1e-12);
    assert_true(fabs(r.e2e - 2.5) < 1e-12);
    assert_true(fabs(r.tpot - 0.2) < 1e-12);             /* 2.0 s over 10 later tokens */
    assert_true(fabs(r.norm_latency - 2.5 / 11) < 1e-12);
    met_request one = { .output_len = 1, .arrival = 0, .first_token = 0.3, .finish_time = 0.3 };
    met_request_finish(&one);
    assert_true(one.tpot == 0 && fabs(one.norm_latency - 0.3) < 1e-12);
}

static met_collector *sample(bool keep) {
    met_collector *m = met_create(keep);
    assert_non_null(m);
    /* two steps: 1 s with 60 token slots of 100, then 3 s with 20 of 100 */
    met_step a = { .time = 1, .dt = 1, .running = 4, .waiting = 2, .batch_tokens = 50,
                   .slots_total = 100, .token_slots = 60, .reserved_slots = 20,
                   .internal_frag = 10, .external_frag = 0, .free_slots = 10, .blocks_used = 6 };
    met_step b = { .time = 4, .dt = 3, .running = 2, .waiting = 0, .batch_tokens = 10,
                   .slots_total = 100, .token_slots = 20, .reserved_slots = 0,
                   .internal_frag = 0, .external_frag = 20, .free_slots = 60, .blocks_used = 2,
                   .preemptions = 3 };
    assert_int_equal(met_add_step(m, &a), 0);
    assert_int_equal(met_add_step(m, &b), 0);
    for (int i = 0; i < 4; i++) {
        met_request r = { .id = i, .prompt_len = 10, .output_len = 5 + i, .num_seqs = 1,
                          .arrival = 0.5 * i, .first_token = 0.5 * i + 0.1, .finish_time = 1 + i };
        met_request_finish(&r);
        assert_int_equal(met_add_request(m, &r), 0);
    }
    met_request ab = { .id = 9, .aborted = true, .prompt_len = 5000, .output_len = 0 };
    assert_int_equal(met_add_request(m, &ab), 0);
    return m;
}

static void test_summary(void **st) {
    (void)st;
    met_collector *m = sample(true);
    met_summary s;
    assert_int_equal(met_summarize(m, &s), 0);
    assert_int_equal(s.num_requests, 5);
    assert_int_equal(s.num_finished, 4);
    assert_int_equal(s.num_aborted, 1);
    assert_int_equal(s.output_tokens, 5 + 6 + 7 + 8);
    assert_int_equal(s.prompt_tokens, 40);
    assert_int_equal(s.steps, 2);
    assert_true(fabs(s.sim_time - 4.0) < 1e-12);           /* t=0 to t=4 */
    assert_true(fabs(s.req_per_s - 1.0) < 1e-12);
    /* time-weighted: token (60*1 + 20*3)/400 */
    assert_true(fabs(s.share_token - 120.0 / 400) < 1e-12);
    assert_true(fabs(s.share_reserved - 20.0 / 400) < 1e-12);
    assert_true(fabs(s.share_internal - 10.0 / 400) < 1e-12);
    assert_true(fabs(s.share_external - 60.0 / 400) < 1e-12);
    assert_true(fabs(s.share_free - 190.0 / 400) < 1e-12);
    assert_true(fabs(s.token_share_of_used - 120.0 / 210) < 1e-12);
    assert_true(fabs(s.share_free_waiting - 10.0 / 400) < 1e-12);   /* only while waiting */
    assert_true(fabs(s.token_share_loaded - 120.0 / 220) < 1e-12);
    assert_true(fabs(s.mean_running - (4 + 2 * 3) / 4.0) < 1e-12);
    assert_true(fabs(s.mean_batch_tokens - 30) < 1e-12);
    assert_int_equal(s.max_running, 4);
    assert_int_equal(s.preemptions, 3);
    int n;
    assert_non_null(met_steps(m, &n));
    assert_int_equal(n, 2);
    met_destroy(m);
    /* without keep_steps: same summary, no records */
    m = sample(false);
    met_summary s2;
    assert_int_equal(met_summarize(m, &s2), 0);
    assert_true(s2.share_token == s.share_token);
    met_steps(m, &n);
    assert_int_equal(n, 0);
    met_destroy(m);
}

static void test_json_roundtrip(void **st) {
    (void)st;
    met_collector *m = sample(true);
    met_summary s;
    assert_int_equal(met_summarize(m, &s), 0);
    int ns, nr;
    const met_step *steps = met_steps(m, &ns);
    const met_request *reqs = met_requests(m, &nr);
    cJSON *j = met_json(&s, steps, ns, reqs, nr);
    assert_non_null(j);
    mkdir("build", 0755); mkdir("build/tmp", 0755);
    char err[256];
    assert_int_equal(met_write_json(j, "build/tmp/test_metrics.json", err, sizeof err), 0);
    cJSON_Delete(j);
    FILE *f = fopen("build/tmp/test_metrics.json", "rb");
    assert_non_null(f);
    char buf[65536];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    cJSON *k = cJSON_Parse(buf);
    assert_non_null(k);
    cJSON *sum = cJSON_GetObjectItem(k, "summary");
    assert_true(fabs(cJSON_GetObjectItem(sum, "share_token")->valuedouble - s.share_token) < 1e-9);
    assert_true(fabs(cJSON_GetObjectItem(cJSON_GetObjectItem(sum, "ttft"), "p50")->valuedouble -
                     s.ttft.p50) < 1e-9);
    cJSON *tok = cJSON_GetObjectItem(cJSON_GetObjectItem(k, "steps"), "token_slots");
    assert_int_equal(cJSON_GetArraySize(tok), 2);
    assert_int_equal(cJSON_GetArrayItem(tok, 1)->valueint, 20);
    cJSON *rq = cJSON_GetObjectItem(k, "requests");
    assert_int_equal(cJSON_GetArraySize(rq), 5);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(rq, 4), "aborted")));
    cJSON_Delete(k);
    /* an unwritable path is an error naming it */
    cJSON *e = cJSON_CreateObject();
    assert_int_equal(met_write_json(e, "build/tmp/no/such/dir/x.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "build/tmp/no/such/dir/x.json"));
    cJSON_Delete(e);
    met_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_request_latency),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_json_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
