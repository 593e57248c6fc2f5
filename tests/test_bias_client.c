/* tests/test_bias_client.c — labs/bias_client against engine/serve (mock
 * backend) in-process on loopback: 64 concurrent requests, streamed and not;
 * retries and their limit; a server restart mid-run; 512 concurrent
 * streaming clients; stopping a run.  Every request must be reported exactly
 * once, with the reply the server gives for its seed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "tests/test_util.h"
#include "serve/serve.h"
#include "labs/bias_client.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- server fixture ---------------------------------------------------------------- */

typedef struct {
    srv_backend *be;
    srv_server *srv;
    int port;
} fx;

static void fx_start(fx *f, int delay_us, int max_seqs, const char *key, int port) {
    char err[256];
    if (!f->be) {
        srv_mock_opts mo;
        srv_mock_opts_init(&mo);
        mo.token_delay_us = delay_us;
        mo.max_num_seqs = max_seqs;
        f->be = srv_mock_create(&mo, err, sizeof err);
        assert_non_null(f->be);
    }
    srv_opts o;
    srv_opts_init(&o);
    o.port = port;
    o.api_key = key;
    f->srv = srv_start(&o, f->be, err, sizeof err);
    if (!f->srv) fprintf(stderr, "%s\n", err);
    assert_non_null(f->srv);
    f->port = srv_port(f->srv);
}

static void fx_end(fx *f) {
    srv_stop(f->srv);
    f->srv = NULL;
    if (f->be) f->be->destroy(f->be);
    f->be = NULL;
}

/* ---- collecting results --------------------------------------------------------------- */

typedef struct {
    size_t n;
    atomic_int reported;         /* read by other threads while the run goes on */
    int *seen;                   /* (n,) reports per index */
    int *ok, *tries, *ptoks, *ctoks;
    double *ttft, *lat;
    char **text;                 /* (n,) copies */
    char **error;
} results;

static results *results_new(size_t n) {
    results *r = calloc(1, sizeof *r);
    r->n = n;
    r->seen = calloc(n, sizeof *r->seen);
    r->ok = calloc(n, sizeof *r->ok);
    r->tries = calloc(n, sizeof *r->tries);
    r->ptoks = calloc(n, sizeof *r->ptoks);
    r->ctoks = calloc(n, sizeof *r->ctoks);
    r->ttft = calloc(n, sizeof *r->ttft);
    r->lat = calloc(n, sizeof *r->lat);
    r->text = calloc(n, sizeof *r->text);
    r->error = calloc(n, sizeof *r->error);
    return r;
}

static void results_free(results *r) {
    for (size_t i = 0; i < r->n; i++) { free(r->text[i]); free(r->error[i]); }
    free(r->seen); free(r->ok); free(r->tries); free(r->ptoks); free(r->ctoks);
    free(r->ttft); free(r->lat); free(r->text); free(r->error);
    free(r);
}

static void on_result(void *ctx, const bias_client_result *x) {
    results *r = ctx;
    assert_true(x->index < r->n);
    size_t i = x->index;
    r->seen[i]++;
    r->ok[i] = x->ok;
    r->tries[i] = x->tries;
    r->ptoks[i] = x->prompt_tokens;
    r->ctoks[i] = x->completion_tokens;
    r->ttft[i] = x->ttft_s;
    r->lat[i] = x->latency_s;
    free(r->text[i]);
    r->text[i] = strdup(x->text);
    if (x->error) { free(r->error[i]); r->error[i] = strdup(x->error); }
    atomic_fetch_add(&r->reported, 1);
}

/* n requests, prompts and seeds distinct per index. */
static bias_client_req *make_reqs(size_t n, char (**prompts)[96]) {
    bias_client_req *q = calloc(n, sizeof *q);
    *prompts = calloc(n, sizeof **prompts);
    for (size_t i = 0; i < n; i++) {
        snprintf((*prompts)[i], 96, "Stock T%zu: should you buy or sell? Answer in JSON.", i);
        q[i] = (bias_client_req){NULL, (*prompts)[i], 0.6, 0.8, 1024, (long long)(1000 + i), 1};
    }
    return q;
}

static bias_client *client(int port, int workers, int tries, double wait_s, int stream, const char *key) {
    bias_client_opts o;
    bias_client_opts_init(&o);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/", port);
    o.base_url = url;
    o.model = "mock";
    o.api_key = key;
    o.max_workers = workers;
    o.tries = tries;
    o.retry_wait_s = wait_s;
    o.timeout_s = 30;
    o.stream = stream;
    char err[256];
    bias_client *c = bias_client_create(&o, err, sizeof err);
    if (!c) fprintf(stderr, "%s\n", err);
    assert_non_null(c);
    return c;
}

/* Every index reported exactly once and successfully; usage consistent with
 * the text; the text a decision object. */
static void check_all_ok(const results *r, int stream) {
    for (size_t i = 0; i < r->n; i++) {
        assert_int_equal(r->seen[i], 1);
        if (!r->ok[i]) fprintf(stderr, "request %zu: %s\n", i, r->error[i] ? r->error[i] : "?");
        assert_true(r->ok[i]);
        assert_true(r->ptoks[i] > 0);
        assert_int_equal(r->ctoks[i], srv_mock_count_tokens(r->text[i], strlen(r->text[i])));
        cJSON *j = cJSON_Parse(r->text[i]);
        assert_non_null(j);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "decision");
        assert_true(cJSON_IsString(d) && (!strcmp(d->valuestring, "buy") || !strcmp(d->valuestring, "sell")));
        cJSON_Delete(j);
        assert_true(r->lat[i] > 0);
        if (stream) assert_true(r->ttft[i] > 0 && r->ttft[i] <= r->lat[i]);
        else assert_true(r->ttft[i] < 0);
    }
    assert_int_equal(atomic_load(&r->reported), (int)r->n);
}

/* The reply the mock gives to request q through the server's Qwen3 template. */
static void expected_reply(const bias_client_req *q, char *out, size_t cap) {
    chat_msg m = {"user", q->user};
    char prompt[1024];
    assert_true(chat_render(CHAT_QWEN3, &m, 1, 1, 0, prompt, sizeof prompt) < sizeof prompt);
    srv_mock_reply(prompt, NULL, 0, q->temperature, (uint64_t)q->seed, out, cap);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_concurrent_64(void **state) {
    (void)state;
    fx f = {0};
    fx_start(&f, 1000, 256, NULL, 0);
    enum { N = 64 };
    char (*prompts)[96];
    bias_client_req *q = make_reqs(N, &prompts);
    results *rs = results_new(N), *rj = results_new(N);
    bias_client *c = client(f.port, 64, 3, 2.0, 1, NULL);
    char err[256];
    assert_int_equal(bias_client_run(c, q, N, on_result, rs, err, sizeof err), 0);
    bias_client_free(c);
    check_all_ok(rs, 1);
    /* the same requests as plain JSON replies: the same texts, no TTFT */
    c = client(f.port, 64, 3, 2.0, 0, NULL);
    assert_int_equal(bias_client_run(c, q, N, on_result, rj, err, sizeof err), 0);
    bias_client_free(c);
    check_all_ok(rj, 0);
    int distinct = 0;
    for (size_t i = 0; i < N; i++) {
        char want[1024];
        expected_reply(&q[i], want, sizeof want);
        assert_string_equal(rs->text[i], want);
        assert_string_equal(rs->text[i], rj->text[i]);
        assert_int_equal(rs->tries[i], 1);
        if (i && strcmp(rs->text[i], rs->text[i - 1])) distinct++;
    }
    assert_true(distinct > N / 4);        /* replies depend on prompt and seed */
    results_free(rs); results_free(rj);
    free(q); free(prompts);
    fx_end(&f);
}

static void test_retries_exhausted(void **state) {
    (void)state;
    fx f = {0};
    fx_start(&f, 1000, 256, "key", 0);
    enum { N = 8 };
    char (*prompts)[96];
    bias_client_req *q = make_reqs(N, &prompts);
    /* wrong key: HTTP 401 on every try */
    results *r = results_new(N);
    bias_client *c = client(f.port, 4, 2, 0.05, 1, "wrong");
    char err[256];
    double t0 = now_s();
    assert_int_equal(bias_client_run(c, q, N, on_result, r, err, sizeof err), 0);
    double dt = now_s() - t0;
    bias_client_free(c);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(r->seen[i], 1);
        assert_false(r->ok[i]);
        assert_int_equal(r->tries[i], 2);
        assert_non_null(strstr(r->error[i], "401"));
    }
    assert_true(dt >= 0.05 && dt < 5);
    results_free(r);
    /* nobody listening: connection refused, every try */
    int port = f.port;
    fx_end(&f);
    r = results_new(N);
    c = client(port, 8, 3, 0.05, 1, NULL);
    assert_int_equal(bias_client_run(c, q, N, on_result, r, err, sizeof err), 0);
    bias_client_free(c);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(r->seen[i], 1);
        assert_false(r->ok[i]);
        assert_int_equal(r->tries[i], 3);
        assert_int_equal(r->ctoks[i], -1);
    }
    results_free(r);
    free(q); free(prompts);
}

typedef struct {
    bias_client *c;
    const bias_client_req *q;
    size_t n;
    results *r;
    int rc;
} run_args;

static void *run_thread(void *arg) {
    run_args *a = arg;
    char err[256];
    a->rc = bias_client_run(a->c, a->q, a->n, on_result, a->r, err, sizeof err);
    return NULL;
}

/* Stop the server in the middle of a run, start it again on the same port:
 * the client retries what failed and reports each request exactly once, with
 * the same reply an uninterrupted run gives. */
static void test_restart_mid_run(void **state) {
    (void)state;
    fx f = {0};
    fx_start(&f, 5000, 256, NULL, 0);         /* 5 ms per token: ~0.15 s per reply */
    enum { N = 64 };
    char (*prompts)[96];
    bias_client_req *q = make_reqs(N, &prompts);
    results *ref = results_new(N), *r = results_new(N);
    bias_client *c = client(f.port, 64, 3, 0.5, 1, NULL);
    char err[256];
    assert_int_equal(bias_client_run(c, q, N, on_result, ref, err, sizeof err), 0);
    check_all_ok(ref, 1);

    bias_client_free(c);
    c = client(f.port, 16, 3, 0.5, 1, NULL);  /* 16 in flight: four waves */
    run_args a = {c, q, N, r, -1};
    pthread_t t;
    pthread_create(&t, NULL, run_thread, &a);
    double t0 = now_s();
    while (atomic_load(&r->reported) < 16 && now_s() - t0 < 10) sleep_ms(2);
    assert_true(atomic_load(&r->reported) >= 16);
    assert_true(atomic_load(&r->reported) < N);
    int port = f.port;
    srv_stop(f.srv);                          /* the backend stays: a restart, not a new model */
    sleep_ms(200);
    fx_start(&f, 5000, 256, NULL, port);
    assert_int_equal(f.port, port);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    bias_client_free(c);
    check_all_ok(r, 1);
    int retried = 0;
    for (size_t i = 0; i < N; i++) {
        assert_string_equal(r->text[i], ref->text[i]);
        if (r->tries[i] > 1) retried++;
    }
    assert_true(retried > 0);                 /* the restart did cut some */
    assert_true(retried <= 16);               /* workers wait with their request: no
                                                 fresh ones burnt while the server is down */
    results_free(ref); results_free(r);
    free(q); free(prompts);
    fx_end(&f);
}

/* 512 concurrent streaming clients on loopback: nothing lost or duplicated. */
static void test_load_512(void **state) {
    (void)state;
    fx f = {0};
    fx_start(&f, 2000, 512, NULL, 0);
    enum { N = 512 };
    char (*prompts)[96];
    bias_client_req *q = make_reqs(N, &prompts);
    results *r = results_new(N);
    bias_client *c = client(f.port, 512, 3, 2.0, 1, NULL);
    char err[256];
    double t0 = now_s();
    assert_int_equal(bias_client_run(c, q, N, on_result, r, err, sizeof err), 0);
    double dt = now_s() - t0;
    bias_client_free(c);
    check_all_ok(r, 1);
    long toks = 0;
    for (size_t i = 0; i < N; i++) {
        char want[1024];
        expected_reply(&q[i], want, sizeof want);
        assert_string_equal(r->text[i], want);
        toks += r->ctoks[i];
    }
    fprintf(stderr, "# 512 concurrent streams: %.2f s, %.0f requests/s, %.0f tokens/s\n", dt, N / dt, toks / dt);
    assert_true(dt < 30);
    results_free(r);
    free(q); free(prompts);
    fx_end(&f);
}

typedef struct { bias_client *c; results *r; } stopper_args;
static void *stopper(void *arg) {
    stopper_args *s = arg;
    double t0 = now_s();
    while (atomic_load(&s->r->reported) < 4 && now_s() - t0 < 10) sleep_ms(1);
    bias_client_stop(s->c);
    return NULL;
}

static void test_stop_run(void **state) {
    (void)state;
    fx f = {0};
    fx_start(&f, 5000, 256, NULL, 0);
    enum { N = 64 };
    char (*prompts)[96];
    bias_client_req *q = make_reqs(N, &prompts);
    results *r = results_new(N);
    bias_client *c = client(f.port, 4, 3, 2.0, 1, NULL);
    stopper_args s = {c, r};
    pthread_t t;
    pthread_create(&t, NULL, stopper, &s);
    char err[256];
    int rc = bias_client_run(c, q, N, on_result, r, err, sizeof err);
    pthread_join(t, NULL);
    assert_int_equal(rc, 1);
    int got = atomic_load(&r->reported);
    assert_true(got >= 4 && got < N);
    for (size_t i = 0; i < N; i++) assert_true(r->seen[i] <= 1);
    bias_client_free(c);
    results_free(r);
    free(q); free(prompts);
    fx_end(&f);
}

static void test_bad_options(void **state) {
    (void)state;
    bias_client_opts o;
    bias_client_opts_init(&o);
    char err[256];
    o.base_url = "ftp://x";
    assert_null(bias_client_create(&o, err, sizeof err));
    assert_non_null(strstr(err, "http"));
    bias_client_opts_init(&o);
    o.max_workers = 0;
    assert_null(bias_client_create(&o, err, sizeof err));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_concurrent_64),
        cmocka_unit_test(test_retries_exhausted),
        cmocka_unit_test(test_restart_mid_run),
        cmocka_unit_test(test_load_512),
        cmocka_unit_test(test_stop_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
