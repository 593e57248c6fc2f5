/* tests/test_serve.c — engine/serve over the mock backend, in-process on an
 * ephemeral loopback port: every endpoint, streaming, stop strings, limits,
 * errors, authentication, metrics, client disconnects, stopping mid-stream,
 * preemption.  Replies are checked against srv_mock_reply computed here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <glob.h>
#include <time.h>

#include "tests/test_util.h"
#include "tests/serve_client.h"
#include "serve/serve.h"

/* ---- fixtures ---------------------------------------------------------------------- */

typedef struct {
    srv_backend *be;
    srv_server *srv;
    int port;
} fx;

static fx *fx_new(int delay_us, int num_blocks, const char *api_key, size_t max_body) {
    fx *f = calloc(1, sizeof *f);
    char err[256];
    srv_mock_opts mo;
    srv_mock_opts_init(&mo);
    mo.token_delay_us = delay_us;
    if (num_blocks) { mo.num_blocks = num_blocks; mo.max_model_len = (long)num_blocks * mo.block_size; }
    f->be = srv_mock_create(&mo, err, sizeof err);
    assert_non_null(f->be);
    srv_opts o;
    srv_opts_init(&o);
    o.port = 0;
    o.api_key = api_key;
    o.max_tokens_limit = 4096;
    if (max_body) o.max_body = max_body;
    f->srv = srv_start(&o, f->be, err, sizeof err);
    if (!f->srv) fprintf(stderr, "%s\n", err);
    assert_non_null(f->srv);
    f->port = srv_port(f->srv);
    assert_true(f->port > 0 && f->port < 65536);
    return f;
}

static void fx_free(fx *f) {
    srv_stop(f->srv);
    f->be->destroy(f->be);
    free(f);
}

static int setup(void **state) { *state = fx_new(200, 0, NULL, 0); return 0; }
static int teardown(void **state) { fx_free(*state); return 0; }

/* ---- helpers on replies -------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *path) {
    /* path like "choices.0.message.content" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
        if (tok[0] >= '0' && tok[0] <= '9') cur = cJSON_GetArrayItem(cur, atoi(tok));
        else cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    }
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
        if (tok[0] >= '0' && tok[0] <= '9') cur = cJSON_GetArrayItem(cur, atoi(tok));
        else cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    }
    return cJSON_IsNumber(cur) ? cur->valuedouble : NAN;
}

static void expect_error(resp *r, long status, const char *type) {
    assert_int_equal(r->rc, CURLE_OK);
    assert_int_equal(r->status, status);
    cJSON *j = cJSON_Parse(r->body);
    assert_non_null(j);
    assert_non_null(jstr(j, "error.message"));
    assert_string_equal(jstr(j, "error.type"), type);
    cJSON_Delete(j);
    free(r->body);
}

/* Parsed SSE stream: concatenated text, finish reason, usage, [DONE] seen. */
typedef struct {
    char text[4096];
    char finish[32];
    int role_first, done, n_chunks;
    double prompt_tokens, completion_tokens;
} sse;

static sse parse_sse(const char *body, int chat) {
    sse s = {0};
    s.prompt_tokens = s.completion_tokens = -1;
    const char *p = body;
    while (p && *p) {
        const char *nl = strstr(p, "\n\n");
        if (!nl) break;
        assert_memory_equal(p, "data: ", 6);
        size_t n = (size_t)(nl - p - 6);
        if (n == 6 && !strncmp(p + 6, "[DONE]", 6)) { s.done = 1; assert_string_equal(nl + 2, ""); break; }
        cJSON *j = cJSON_ParseWithLength(p + 6, n);
        assert_non_null(j);
        assert_false(s.done);
        const char *t = chat ? jstr(j, "choices.0.delta.content") : jstr(j, "choices.0.text");
        if (s.n_chunks == 0 && chat) s.role_first = jstr(j, "choices.0.delta.role") != NULL;
        if (t) strncat(s.text, t, sizeof s.text - strlen(s.text) - 1);
        const char *f = jstr(j, "choices.0.finish_reason");
        if (f) snprintf(s.finish, sizeof s.finish, "%s", f);
        if (!isnan(jnum(j, "usage.prompt_tokens"))) {
            s.prompt_tokens = jnum(j, "usage.prompt_tokens");
            s.completion_tokens = jnum(j, "usage.completion_tokens");
        }
        cJSON_Delete(j);
        s.n_chunks++;
        p = nl + 2;
    }
    return s;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_health_models_metrics(void **state) {
    fx *f = *state;
    resp r = http(f->port, NULL, "/health", NULL, NULL, 0);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = http(f->port, NULL, "/v1/models", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(jstr(j, "object"), "list");
    assert_string_equal(jstr(j, "data.0.id"), "mock");
    assert_true(jnum(j, "data.0.max_model_len") == 32768);
    cJSON_Delete(j);
    free(r.body);
    r = http(f->port, NULL, "/metrics", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    const char *names[] = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                           "vllm:num_preemptions_total", "vllm:time_to_first_token_seconds_bucket",
                           "vllm:time_per_output_token_seconds_count", "vllm:prompt_tokens_total",
                           "vllm:generation_tokens_total"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char key[128];
        snprintf(key, sizeof key, "\n%s{", names[i]);
        assert_non_null(strstr(r.body, key));
    }
    free(r.body);
}

static void test_completion_exact(void **state) {
    fx *f = *state;
    char want[1024];
    srv_mock_reply("The stock rose.", NULL, 0, 0.6, 42, want, sizeof want);
    resp r = http(f->port, NULL, "/v1/completions",
                  "{\"model\": \"mock\", \"prompt\": \"The stock rose.\", \"temperature\": 0.6, \"seed\": 42}", NULL, 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(jstr(j, "object"), "text_completion");
    assert_string_equal(jstr(j, "choices.0.text"), want);
    assert_string_equal(jstr(j, "choices.0.finish_reason"), "stop");
    assert_true(jnum(j, "usage.completion_tokens") == srv_mock_count_tokens(want, strlen(want)));
    assert_true(jnum(j, "usage.prompt_tokens") == srv_mock_count_tokens("The stock rose.", 15));
    assert_true(jnum(j, "usage.total_tokens") == jnum(j, "usage.prompt_tokens") + jnum(j, "usage.completion_tokens"));
    cJSON_Delete(j);
    free(r.body);
    /* token ids as the prompt, in the [[ids]] form */
    int32_t ids[] = {11, 22, 33};
    srv_mock_reply(NULL, ids, 3, 0.6, 7, want, sizeof want);
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": [[11, 22, 33]], \"temperature\": 0.6, \"seed\": 7}", NULL, 0);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(jstr(j, "choices.0.text"), want);
    assert_true(jnum(j, "usage.prompt_tokens") == 3);
    cJSON_Delete(j);
    free(r.body);
}

static void test_max_tokens_and_stop(void **state) {
    fx *f = *state;
    char want[1024];
    srv_mock_reply("p", NULL, 0, 1.0, 5, want, sizeof want);
    resp r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"seed\": 5, \"max_tokens\": 3}", NULL, 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    const char *t = jstr(j, "choices.0.text");
    assert_non_null(t);
    assert_string_equal(jstr(j, "choices.0.finish_reason"), "length");
    assert_true(jnum(j, "usage.completion_tokens") == 3);
    assert_int_equal(srv_mock_count_tokens(t, strlen(t)), 3);
    assert_memory_equal(t, want, strlen(t));           /* a prefix of the full reply */
    cJSON_Delete(j);
    free(r.body);
    /* stop string, streamed: the text ends right before it, never shows it */
    r = http(f->port, NULL, "/v1/completions",
             "{\"prompt\": \"p\", \"seed\": 5, \"stop\": [\"zzz\", \"reason\"], \"stream\": true}", NULL, 0);
    assert_int_equal(r.status, 200);
    sse s = parse_sse(r.body, 0);
    const char *cut = strstr(want, "reason");
    assert_non_null(cut);
    assert_int_equal(strlen(s.text), (size_t)(cut - want));
    assert_memory_equal(s.text, want, strlen(s.text));
    assert_string_equal(s.finish, "stop");
    assert_true(s.done);
    free(r.body);
}

static const char *chat_body =
    "{\"model\": \"mock\", \"messages\": [{\"role\": \"system\", \"content\": \"You are an analyst.\"},"
    " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Buy or sell ACME?\"}]}],"
    " \"temperature\": 0.6, \"top_p\": 0.8, \"max_tokens\": 1024, \"seed\": %d%s,"
    " \"chat_template_kwargs\": {\"enable_thinking\": false}}";

static void test_chat_json_and_stream(void **state) {
    fx *f = *state;
    char body[1024];
    snprintf(body, sizeof body, chat_body, 9, "");
    resp r = http(f->port, NULL, "/v1/chat/completions", body, NULL, 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(jstr(j, "object"), "chat.completion");
    assert_string_equal(jstr(j, "choices.0.message.role"), "assistant");
    char content[2048];
    snprintf(content, sizeof content, "%s", jstr(j, "choices.0.message.content"));
    double ctoks = jnum(j, "usage.completion_tokens"), ptoks = jnum(j, "usage.prompt_tokens");
    cJSON_Delete(j);
    free(r.body);
    /* exactly the mock's reply to the prompt the Qwen3 template renders */
    chat_msg msgs[] = {{"system", "You are an analyst."}, {"user", "Buy or sell ACME?"}};
    char prompt[1024], want[1024];
    assert_true(chat_render(CHAT_QWEN3, msgs, 2, 1, 0, prompt, sizeof prompt) < sizeof prompt);
    assert_non_null(strstr(prompt, "<think>"));
    srv_mock_reply(prompt, NULL, 0, 0.6, 9, want, sizeof want);
    assert_string_equal(content, want);
    assert_true(ptoks == srv_mock_count_tokens(prompt, strlen(prompt)));
    cJSON *d = cJSON_Parse(content);          /* the reply is the decision JSON */
    assert_non_null(d);
    const char *dec = jstr(d, "decision");
    assert_true(dec && (!strcmp(dec, "buy") || !strcmp(dec, "sell")));
    cJSON_Delete(d);
    assert_true(ctoks == srv_mock_count_tokens(content, strlen(content)));
    assert_true(ptoks > 10);
    /* the same request streamed gives the same text, chunk by chunk */
    snprintf(body, sizeof body, chat_body, 9, ", \"stream\": true, \"stream_options\": {\"include_usage\": true}");
    r = http(f->port, NULL, "/v1/chat/completions", body, NULL, 0);
    assert_int_equal(r.status, 200);
    sse s = parse_sse(r.body, 1);
    assert_string_equal(s.text, content);
    assert_true(s.role_first);
    assert_true(s.done);
    assert_string_equal(s.finish, "stop");
    assert_true(s.n_chunks >= 3);
    assert_true(s.prompt_tokens == ptoks && s.completion_tokens == ctoks);
    free(r.body);
    /* another seed: deterministic per seed, so asking twice agrees */
    snprintf(body, sizeof body, chat_body, 10, "");
    resp a = http(f->port, NULL, "/v1/chat/completions", body, NULL, 0);
    resp b = http(f->port, NULL, "/v1/chat/completions", body, NULL, 0);
    cJSON *ja = cJSON_Parse(a.body), *jb = cJSON_Parse(b.body);
    assert_string_equal(jstr(ja, "choices.0.message.content"), jstr(jb, "choices.0.message.content"));
    cJSON_Delete(ja); cJSON_Delete(jb);
    free(a.body); free(b.body);
}

static void test_errors(void **state) {
    fx *f = *state;
    resp r = http(f->port, NULL, "/v1/chat/completions", "{\"messages\": [", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions", "[1, 2]", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions", "{\"model\": \"mock\"}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions",
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 4097}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions",
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 0}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions",
             "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions",
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_p\": 1.5}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions",
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 0}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": [\"a\", \"b\"]}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions",
             "{\"model\": \"gpt-9\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", NULL, 0);
    expect_error(&r, 404, "invalid_request_error");
    r = http(f->port, NULL, "/v1/nothing", NULL, NULL, 0);
    expect_error(&r, 404, "invalid_request_error");
    r = http(f->port, "DELETE", "/v1/models", NULL, NULL, 0);
    expect_error(&r, 405, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions", NULL, NULL, 0);      /* GET */
    expect_error(&r, 405, "invalid_request_error");
    long counts[3];
    srv_counts(f->srv, counts);
    assert_true(counts[1] >= 13);
    /* still serving after all that */
    r = http(f->port, NULL, "/health", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    free(r.body);
}

static void test_body_limit(void **state) {
    (void)state;
    fx *f = fx_new(200, 0, NULL, 4096);
    size_t n = 20000;
    char *big = malloc(n + 64);
    int k = sprintf(big, "{\"prompt\": \"");
    memset(big + k, 'a', n);
    strcpy(big + k + n, "\"}");
    resp r = http(f->port, NULL, "/v1/completions", big, NULL, 0);
    expect_error(&r, 413, "invalid_request_error");
    free(big);
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"small\", \"max_tokens\": 2}", NULL, 0);
    assert_int_equal(r.status, 200);
    free(r.body);
    fx_free(f);
}

static void test_auth(void **state) {
    (void)state;
    fx *f = fx_new(200, 0, "s3cret", 0);
    const char *b = "{\"prompt\": \"x\", \"max_tokens\": 2}";
    resp r = http(f->port, NULL, "/v1/completions", b, NULL, 0);
    expect_error(&r, 401, "invalid_request_error");
    r = http(f->port, NULL, "/v1/completions", b, "s3cre", 0);
    expect_error(&r, 401, "invalid_request_error");
    r = http(f->port, NULL, "/v1/models", NULL, "s3cretX", 0);
    expect_error(&r, 401, "invalid_request_error");
    r = http(f->port, NULL, "/v1/completions", b, "s3cret", 0);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = http(f->port, NULL, "/health", NULL, NULL, 0);          /* open, as in vLLM */
    assert_int_equal(r.status, 200);
    free(r.body);
    fx_free(f);
}

/* Value of a sample line "name{model_name=\"mock\"} v" in /metrics. */
static double metric(int port, const char *name) {
    resp r = http(port, NULL, "/metrics", NULL, NULL, 0);
    char key[160];
    snprintf(key, sizeof key, "\n%s{model_name=\"mock\"} ", name);
    const char *p = strstr(r.body, key);
    double v = p ? strtod(p + strlen(key), NULL) : NAN;
    free(r.body);
    return v;
}

/* A gauge reaches want: a request leaves the running set, and its blocks the
 * pool, at the driver's next step, which may come just after its reply
 * reached the client; polled for up to 5 s.  1 when it got there. */
static int gauge_settles(int port, const char *name, double want) {
    double v = metric(port, name);
    for (int k = 0; k < 500 && v != want; k++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        v = metric(port, name);
    }
    return v == want;
}

static void test_metrics_count(void **state) {
    (void)state;
    fx *f = fx_new(100, 0, NULL, 0);
    double gen = 0, prompt = 0;
    for (int i = 0; i < 5; i++) {
        char b[256];
        snprintf(b, sizeof b, "{\"prompt\": \"prompt number %d\", \"seed\": %d, \"stream\": %s}", i, i, i % 2 ? "true" : "false");
        resp r = http(f->port, NULL, "/v1/completions", b, NULL, 0);
        assert_int_equal(r.status, 200);
        char want[1024];
        char pr[64];
        snprintf(pr, sizeof pr, "prompt number %d", i);
        srv_mock_reply(pr, NULL, 0, 1.0, (uint64_t)i, want, sizeof want);
        gen += srv_mock_count_tokens(want, strlen(want));
        prompt += srv_mock_count_tokens(pr, strlen(pr));
        free(r.body);
    }
    assert_true(metric(f->port, "vllm:generation_tokens_total") == gen);
    assert_true(metric(f->port, "vllm:prompt_tokens_total") == prompt);
    assert_true(metric(f->port, "vllm:request_success_total") == 5);
    assert_true(metric(f->port, "vllm:time_to_first_token_seconds_count") == 5);
    assert_true(metric(f->port, "vllm:time_per_output_token_seconds_count") == gen - 5);
    assert_true(gauge_settles(f->port, "vllm:num_requests_running", 0));
    fx_free(f);
}

/* The mock runs the simulator's scheduler and KV cache: a prompt sent twice
 * finds its full blocks in the prefix cache the second time, and /metrics
 * reports the hits (vLLM's prefix_cache_* counters). */
static void test_mock_prefix_cache(void **state) {
    (void)state;
    fx *f = fx_new(100, 0, NULL, 0);
    char prompt[512] = "", body[700];
    for (int i = 0; i < 60; i++) strcat(prompt, i % 2 ? " word" : ",");     /* 60 mock tokens */
    assert_int_equal(srv_mock_count_tokens(prompt, strlen(prompt)), 60);
    snprintf(body, sizeof body, "{\"prompt\": \"%s\", \"max_tokens\": 3}", prompt);
    for (int k = 0; k < 2; k++) {
        resp r = http(f->port, NULL, "/v1/completions", body, NULL, 0);
        assert_int_equal(r.status, 200);
        free(r.body);
    }
    assert_true(metric(f->port, "vllm:prefix_cache_queries_total") == 120);
    assert_true(metric(f->port, "vllm:prefix_cache_hits_total") == 48);   /* 3 whole blocks of 16 */
    assert_true(gauge_settles(f->port, "vllm:kv_cache_usage_perc", 0));   /* freed (cached blocks are free) */
    fx_free(f);
}

/* A context longer than the KV cache holds is refused at start, as vLLM does
 * (a lone sequence could otherwise outgrow the pool and be preempted forever). */
static void test_mock_pool_too_small(void **state) {
    (void)state;
    char err[256] = "";
    srv_mock_opts mo;
    srv_mock_opts_init(&mo);
    mo.num_blocks = 4;
    assert_null(srv_mock_create(&mo, err, sizeof err));
    assert_non_null(strstr(err, "max_model_len"));
    mo.max_model_len = 64;
    srv_backend *be = srv_mock_create(&mo, err, sizeof err);
    assert_non_null(be);
    be->destroy(be);
}

/* A client that hangs up mid-stream: the backend request is aborted. */
static void test_client_disconnect(void **state) {
    (void)state;
    fx *f = fx_new(20000, 0, NULL, 0);            /* 20 ms per token: ~0.5 s per reply */
    resp r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"slow\", \"stream\": true}", NULL, 150);
    assert_int_equal(r.rc, CURLE_OPERATION_TIMEDOUT);
    free(r.body);
    assert_true(gauge_settles(f->port, "vllm:num_requests_running", 0));
    assert_true(metric(f->port, "vllm:request_success_total") == 0);    /* aborted, not completed */
    fx_free(f);
}

typedef struct { int port; const char *body; resp r; } bg_req;
static void *bg_http(void *arg) {
    bg_req *b = arg;
    b->r = http(b->port, NULL, "/v1/completions", b->body, NULL, 10000);
    return NULL;
}

/* srv_stop with streams in flight: they are cut (no [DONE]), stop is prompt. */
static void test_stop_mid_stream(void **state) {
    (void)state;
    fx *f = fx_new(20000, 0, NULL, 0);
    bg_req b[2] = {{f->port, "{\"prompt\": \"a\", \"stream\": true}", {0}},
                   {f->port, "{\"prompt\": \"b\", \"stream\": false}", {0}}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, bg_http, &b[i]);
    struct timespec ts = {0, 150 * 1000000};
    nanosleep(&ts, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    srv_stop(f->srv);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    assert_true(dt < 2.0);
    /* the stream: an error or at least no [DONE]; the plain request: 503 or an error */
    assert_true(b[0].r.rc != CURLE_OK || strstr(b[0].r.body, "[DONE]") == NULL);
    assert_true(b[1].r.rc != CURLE_OK || b[1].r.status == 503);
    free(b[0].r.body); free(b[1].r.body);
    /* the port can be served again right away, by the same backend */
    char err[256];
    srv_opts o;
    srv_opts_init(&o);
    o.port = f->port;
    f->srv = srv_start(&o, f->be, err, sizeof err);
    assert_non_null(f->srv);
    resp r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"c\", \"max_tokens\": 2}", NULL, 0);
    assert_int_equal(r.status, 200);
    free(r.body);
    /* and a second server on the same port is refused with a message */
    srv_server *dup = srv_start(&o, f->be, err, sizeof err);
    assert_null(dup);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", f->port);
    assert_non_null(strstr(err, portstr));
    fx_free(f);
}

/* A KV pool too small for all requests at once: preemptions happen, every
 * reply is still exact. */
static void test_preemption(void **state) {
    (void)state;
    fx *f = fx_new(500, 12, NULL, 0);              /* 12 blocks of 16 tokens */
    enum { N = 6 };
    bg_req b[N];
    char bodies[N][640], prompts[N][96];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        snprintf(prompts[i], sizeof prompts[i], "a prompt of some twenty tokens for request %d , , , , , , , ,", i);
        snprintf(bodies[i], sizeof bodies[i], "{\"prompt\": \"%s\", \"seed\": %d}", prompts[i], i);
        b[i] = (bg_req){f->port, bodies[i], {0}};
        pthread_create(&t[i], NULL, bg_http, &b[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(b[i].r.status, 200);
        cJSON *j = cJSON_Parse(b[i].r.body);
        char want[1024];
        srv_mock_reply(prompts[i], NULL, 0, 1.0, (uint64_t)i, want, sizeof want);
        assert_string_equal(jstr(j, "choices.0.text"), want);
        cJSON_Delete(j);
        free(b[i].r.body);
    }
    assert_true(metric(f->port, "vllm:num_preemptions_total") > 0);
    fx_free(f);
}

/* Mutated request bodies (bytes flipped, cut, JSON punctuation inserted,
 * NULs): every one gets a well-formed answer, the server never falls over. */
static void test_fuzz_bodies(void **state) {
    fx *f = *state;
    static const char *bases[] = {
        "{\"model\": \"mock\", \"messages\": [{\"role\": \"user\", \"content\": \"Buy?\"}], \"max_tokens\": 2, \"seed\": 1}",
        "{\"messages\": [{\"role\": \"system\", \"content\": [{\"type\": \"text\", \"text\": \"x\"}]}, {\"role\": \"user\", \"content\": \"y\"}], \"stream\": true, \"max_tokens\": 3, \"stop\": [\"a\"]}",
        "{\"prompt\": [1, 2, 3], \"max_tokens\": 2, \"temperature\": 0.5, \"top_p\": 0.9}",
        "{\"prompt\": \"hello\", \"max_tokens\": 2, \"stream\": true, \"stream_options\": {\"include_usage\": true}}",
    };
    static const char ins[] = "{}[]\",:0-9.eE\\ntfu\x80\xff";
    uint64_t x = 0x1234567;
    int statuses[600] = {0};
    for (int it = 0; it < 240; it++) {
        int which = it % 4;
        const char *b = bases[which];
        size_t n = strlen(b);
        char buf[512];
        memcpy(buf, b, n);
        int muts = 1 + (int)((x >> 7) % 4);
        for (int m = 0; m < muts; m++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)((x >> 33) % (n ? n : 1));
            switch ((x >> 20) % 4) {
            case 0: buf[at] = ins[(x >> 40) % (sizeof ins - 1)]; break;
            case 1: n = at; break;                                       /* cut */
            case 2: if (n < sizeof buf - 1) { memmove(buf + at + 1, buf + at, n - at); buf[at] = ins[(x >> 44) % (sizeof ins - 1)]; n++; } break;
            default: buf[at] = 0; break;                                 /* a NUL inside */
            }
        }
        const char *path = which < 2 ? "/v1/chat/completions" : "/v1/completions";
        resp r = {0};
        r.body = calloc(1, 1);
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, buf);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)n);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
        r.rc = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_cleanup(e);
        assert_int_equal(r.rc, CURLE_OK);
        assert_true(r.status == 200 || r.status == 400 || r.status == 404);
        if (r.status != 200) {                    /* an OpenAI error object */
            cJSON *j = cJSON_Parse(r.body);
            assert_non_null(jstr(j, "error.message"));
            cJSON_Delete(j);
        }
        statuses[r.status]++;
        free(r.body);
    }
    assert_true(statuses[200] > 0 && statuses[400] > 0);   /* the mutations hit both sides */
    resp r = http(f->port, NULL, "/health", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    free(r.body);
}

/* ---- n > 1, logprobs, stop, UTF-8 (issue 20 item 9) ------------------------------------ */

/* An SSE stream of up to 4 choices: each one's text, finish, stop_reason, logprob entries. */
typedef struct {
    char text[4][2048];
    char finish[4][16];
    int n_lp[4], done, roles;
    double usage_completion;
} sse_n;

static sse_n parse_sse_n(const char *body, int chat) {
    sse_n s;
    memset(&s, 0, sizeof s);
    s.usage_completion = -1;
    for (const char *p = body; p && *p;) {
        const char *nl = strstr(p, "\n\n");
        if (!nl) break;
        assert_memory_equal(p, "data: ", 6);
        if (!strncmp(p + 6, "[DONE]", 6)) { s.done = 1; break; }
        cJSON *j = cJSON_ParseWithLength(p + 6, (size_t)(nl - p - 6));
        assert_non_null(j);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "choices")) {
            int i = (int)jnum(c, "index");
            assert_true(i >= 0 && i < 4);
            const char *t = chat ? jstr(c, "delta.content") : jstr(c, "text");
            if (t) strncat(s.text[i], t, sizeof s.text[i] - strlen(s.text[i]) - 1);
            if (chat && jstr(c, "delta.role")) s.roles++;
            if (jstr(c, "finish_reason")) snprintf(s.finish[i], sizeof s.finish[i], "%s", jstr(c, "finish_reason"));
            const cJSON *lp = cJSON_GetObjectItemCaseSensitive(c, "logprobs");
            s.n_lp[i] += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(lp, chat ? "content" : "tokens"));
        }
        if (!isnan(jnum(j, "usage.completion_tokens"))) s.usage_completion = jnum(j, "usage.completion_tokens");
        cJSON_Delete(j);
        p = nl + 2;
    }
    return s;
}

/* n = 3: three choices, choice k the mock's reply for seed + k, tokens summed;
 * streamed (chat, n = 2) the same texts arrive under their indices. */
static void test_n_choices(void **state) {
    fx *f = *state;
    resp r = http(f->port, NULL, "/v1/completions",
                  "{\"prompt\": \"Buy or sell?\", \"n\": 3, \"seed\": 11, \"temperature\": 0.8}", NULL, 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "choices")), 3);
    int total = 0, differ = 0;
    for (int k = 0; k < 3; k++) {
        char path[64], want[1024];
        srv_mock_reply("Buy or sell?", NULL, 0, 0.8, 11 + (uint64_t)k, want, sizeof want);
        snprintf(path, sizeof path, "choices.%d.text", k);
        assert_string_equal(jstr(j, path), want);
        snprintf(path, sizeof path, "choices.%d.index", k);
        assert_true(jnum(j, path) == k);
        snprintf(path, sizeof path, "choices.%d.finish_reason", k);
        assert_string_equal(jstr(j, path), "stop");
        total += srv_mock_count_tokens(want, strlen(want));
        if (k && strcmp(jstr(j, "choices.0.text"), want)) differ = 1;
    }
    assert_true(differ);                           /* the samples are not one reply thrice */
    assert_true(jnum(j, "usage.completion_tokens") == total);
    cJSON_Delete(j);
    free(r.body);
    char body[1024];
    snprintf(body, sizeof body, chat_body, 21, ", \"n\": 2, \"stream\": true, \"stream_options\": {\"include_usage\": true}");
    r = http(f->port, NULL, "/v1/chat/completions", body, NULL, 0);
    assert_int_equal(r.status, 200);
    sse_n s = parse_sse_n(r.body, 1);
    free(r.body);
    assert_true(s.done);
    assert_int_equal(s.roles, 2);
    snprintf(body, sizeof body, chat_body, 21, ", \"n\": 2");
    r = http(f->port, NULL, "/v1/chat/completions", body, NULL, 0);
    j = cJSON_Parse(r.body);
    for (int k = 0; k < 2; k++) {
        char path[64];
        snprintf(path, sizeof path, "choices.%d.message.content", k);
        assert_string_equal(s.text[k], jstr(j, path));
        assert_string_equal(s.finish[k], "stop");
    }
    assert_true(s.usage_completion == jnum(j, "usage.completion_tokens"));
    cJSON_Delete(j);
    free(r.body);
}

/* logprobs: chat's content entries and completions' parallel arrays, one
 * per generated token, whose texts make the reply; top_logprobs sorted. */
static void test_logprobs(void **state) {
    fx *f = *state;
    char body[1024];
    snprintf(body, sizeof body, chat_body, 3, ", \"logprobs\": true, \"top_logprobs\": 3");
    resp r = http(f->port, NULL, "/v1/chat/completions", body, NULL, 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "logprobs"), "content");
    assert_int_equal(cJSON_GetArraySize(content), (int)jnum(j, "usage.completion_tokens"));
    char joined[2048] = "";
    const cJSON *e;
    cJSON_ArrayForEach(e, content) {
        strcat(joined, jstr(e, "token"));
        assert_true(jnum(e, "logprob") <= 0);
        const cJSON *top = cJSON_GetObjectItemCaseSensitive(e, "top_logprobs");
        assert_int_equal(cJSON_GetArraySize(top), 3);
        for (int k = 1; k < 3; k++)
            assert_true(jnum(cJSON_GetArrayItem(top, k - 1), "logprob") >= jnum(cJSON_GetArrayItem(top, k), "logprob"));
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e, "bytes")), (int)strlen(jstr(e, "token")));
    }
    assert_string_equal(joined, jstr(j, "choices.0.message.content"));
    cJSON_Delete(j);
    free(r.body);
    /* completions: "logprobs": 2 */
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"seed\": 4, \"logprobs\": 2, \"max_tokens\": 6}", NULL, 0);
    assert_int_equal(r.status, 200);
    j = cJSON_Parse(r.body);
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "logprobs");
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(lp, "tokens"), *offs = cJSON_GetObjectItemCaseSensitive(lp, "text_offset");
    assert_int_equal(cJSON_GetArraySize(toks), 6);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(lp, "token_logprobs")), 6);
    joined[0] = 0;
    for (int i = 0; i < 6; i++) {
        assert_true(cJSON_GetArrayItem(offs, i)->valuedouble == (double)strlen(joined));
        strcat(joined, cJSON_GetArrayItem(toks, i)->valuestring);
        const cJSON *top = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(lp, "top_logprobs"), i);
        assert_true(cJSON_GetArraySize(top) >= 2 && cJSON_GetArraySize(top) <= 3);   /* the 2 likeliest and the sampled one */
    }
    assert_string_equal(joined, jstr(j, "choices.0.text"));
    cJSON_Delete(j);
    free(r.body);
    /* streamed: the entries arrive with the chunks, one per token in all */
    snprintf(body, sizeof body, chat_body, 3, ", \"logprobs\": true, \"stream\": true, \"stream_options\": {\"include_usage\": true}");
    r = http(f->port, NULL, "/v1/chat/completions", body, NULL, 0);
    sse_n s = parse_sse_n(r.body, 1);
    assert_true(s.done && s.usage_completion > 0);
    assert_int_equal(s.n_lp[0], (int)s.usage_completion);
    free(r.body);
    /* without logprobs: null, as before */
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"max_tokens\": 2}", NULL, 0);
    j = cJSON_Parse(r.body);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "logprobs")));
    cJSON_Delete(j);
    free(r.body);
    /* bad values: 400 */
    static const char *const bad[] = {
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_logprobs\": 2}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true, \"top_logprobs\": 21}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": 3}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true, \"top_logprobs\": -1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = http(f->port, NULL, "/v1/chat/completions", bad[i], NULL, 0);
        expect_error(&r, 400, "invalid_request_error");
    }
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"logprobs\": true}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
}

/* stop: strings only (a number in it is a 400), stop_token_ids end the text
 * at that token; stop_reason says which one. */
static void test_stop_strings_and_ids(void **state) {
    fx *f = *state;
    resp r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"stop\": [\"x\", 5]}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"stop\": 5}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"stop_token_ids\": [\"x\"]}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"stop_token_ids\": [-1]}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    /* the id of the reply's 3rd token ("decision", seen once): the text ends with it */
    char want[1024], body[256];
    srv_mock_reply("p", NULL, 0, 1.0, 8, want, sizeof want);
    size_t at = 0, len = strlen(want);
    for (int i = 0; i < 2; i++) at += srv_mock_token_len(want + at, len - at);
    size_t k = srv_mock_token_len(want + at, len - at);
    int32_t id = srv_mock_token_id(want + at, k);
    snprintf(body, sizeof body, "{\"prompt\": \"p\", \"seed\": 8, \"stop_token_ids\": [%d]}", id);
    r = http(f->port, NULL, "/v1/completions", body, NULL, 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_int_equal(strlen(jstr(j, "choices.0.text")), at + k);
    assert_memory_equal(jstr(j, "choices.0.text"), want, at + k);
    assert_string_equal(jstr(j, "choices.0.finish_reason"), "stop");
    assert_true(jnum(j, "choices.0.stop_reason") == id);
    assert_true(jnum(j, "usage.completion_tokens") == 3);
    cJSON_Delete(j);
    free(r.body);
    /* a stop string: stop_reason is the string; with no match, null */
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"seed\": 8, \"stop\": [\"zzz\", \"reason\"]}", NULL, 0);
    j = cJSON_Parse(r.body);
    assert_string_equal(jstr(j, "choices.0.stop_reason"), "reason");
    cJSON_Delete(j);
    free(r.body);
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"seed\": 8}", NULL, 0);
    j = cJSON_Parse(r.body);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "stop_reason")));
    cJSON_Delete(j);
    free(r.body);
}

/* Content that is not UTF-8 (a Latin-1 byte, an overlong '/', a surrogate):
 * 400, as JSON must be UTF-8; the same text well encoded is served. */
static void test_invalid_utf8(void **state) {
    fx *f = *state;
    static const char *const bad[] = {
        "{\"messages\": [{\"role\": \"user\", \"content\": \"caf\xE9\"}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"a\xC0\xAF\"}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"\xED\xA0\x80\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        resp r = http(f->port, NULL, "/v1/chat/completions", bad[i], NULL, 0);
        expect_error(&r, 400, "invalid_request_error");
    }
    resp r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"caf\xE9\", \"max_tokens\": 2}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    r = http(f->port, NULL, "/v1/chat/completions",
             "{\"messages\": [{\"role\": \"user\", \"content\": \"caf\xC3\xA9 \\u00e9\"}], \"max_tokens\": 2}", NULL, 0);
    assert_int_equal(r.status, 200);
    free(r.body);
}

/* ---- a scripted backend: byte pieces cut inside UTF-8 characters, errors ---- */

typedef struct {
    srv_backend b;
    const char *const *pieces;  /* NULL-terminated */
    srv_finish_reason reason;
    const char *error;
    int refuse;                 /* submit fails */
    pthread_t t;
    srv_sink *sink;
    int started;
} script;

static void *script_thread(void *arg) {
    script *sc = arg;
    int n = 0;
    for (int i = 0; sc->pieces[i]; i++) {
        int32_t id = i;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        n++;
        srv_delta d = {0, &id, 1, NULL, sc->pieces[i], strlen(sc->pieces[i])};
        if (sc->sink->on_tokens(sc->sink, &d)) break;
    }
    srv_finish_info fi = {sc->reason, 4, n, sc->error, NULL};
    sc->sink->on_finish(sc->sink, &fi);
    return NULL;
}

static int script_submit(void *self, const srv_gen_params *p, srv_sink *sink, uint64_t *id, char *err, size_t cap) {
    script *sc = self;
    (void)p;
    if (sc->refuse) { snprintf(err, cap, "the prompt is too long for the scripted backend"); return -1; }
    if (sc->started) pthread_join(sc->t, NULL);
    sc->sink = sink;
    *id = 1;
    sc->started = 1;
    pthread_create(&sc->t, NULL, script_thread, sc);
    return 0;
}
static void script_abort(void *self, uint64_t id) { (void)self; (void)id; }
static void script_stats(void *self, srv_backend_stats *o) { (void)self; memset(o, 0, sizeof *o); }

static void test_utf8_and_backend_errors(void **state) {
    (void)state;
    static const char *const pieces[] = {"caf", "\xC3", "\xA9 co\xE2\x82", "\xAC", "s \xF0\x9F", "\x98\x80", NULL};
    script sc;
    memset(&sc, 0, sizeof sc);
    sc.b = (srv_backend){&sc, "scripted", script_submit, script_abort, script_stats, NULL, NULL, 0};
    sc.pieces = pieces;
    srv_opts o;
    srv_opts_init(&o);
    o.port = 0;
    char err[256];
    srv_server *srv = srv_start(&o, &sc.b, err, sizeof err);
    assert_non_null(srv);
    int port = srv_port(srv);
    /* streamed: every chunk is whole characters, the text arrives intact */
    resp r = http(port, NULL, "/v1/completions", "{\"prompt\": \"x\", \"stream\": true}", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "\\ufffd"));
    assert_null(strstr(r.body, "\xEF\xBF\xBD"));
    sse ss = parse_sse(r.body, 0);
    assert_string_equal(ss.text, "caf\xC3\xA9 co\xE2\x82\xACs \xF0\x9F\x98\x80");
    assert_true(ss.done);
    free(r.body);
    /* the backend fails the request: 500 with the message; streamed, an error event */
    sc.reason = SRV_FINISH_ERROR;
    sc.error = "CUDA out of memory";
    r = http(port, NULL, "/v1/completions", "{\"prompt\": \"x\"}", NULL, 0);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "CUDA out of memory"));
    free(r.body);
    r = http(port, NULL, "/v1/chat/completions",
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"error\""));
    assert_non_null(strstr(r.body, "CUDA out of memory"));
    free(r.body);
    /* submit refused: 400 with the backend's reason */
    sc.refuse = 1;
    r = http(port, NULL, "/v1/completions", "{\"prompt\": \"x\"}", NULL, 0);
    expect_error(&r, 400, "invalid_request_error");
    srv_stop(srv);
    if (sc.started) pthread_join(sc.t, NULL);
}

/* The command: --help, bad options, the unwired engine, and a --mock server
 * that answers and stops on SIGTERM. */
static int run_cmd(const char *args, char *out, size_t cap) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/engine/serve %s 2>&1", tu_bindir(), args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, cap - 1, p) : 0;
    out[n] = 0;
    char rest[4096];                             /* drained, so a long --help never meets SIGPIPE */
    while (p && fread(rest, 1, sizeof rest, p) > 0) {}
    int st = p ? pclose(p) : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A model's own chat template (gemma-2's, through text/jinja): its prompt reaches
 * the backend, and what it refuses with raise_exception is the client's 400. */
static void test_model_template(void **state) {
    (void)state;
    char err[256], want[1024];
    chat_tpl *t = chat_tpl_open(NULL, "tests/data/chat_templates/gemma2-2b-it.json", err, sizeof err);
    assert_non_null(t);
    srv_mock_opts mo;
    srv_mock_opts_init(&mo);
    mo.token_delay_us = 200;
    srv_backend *be = srv_mock_create(&mo, err, sizeof err);
    srv_opts o;
    srv_opts_init(&o);
    o.port = 0;
    o.chat_template = t;
    srv_server *s = srv_start(&o, be, err, sizeof err);
    assert_non_null(s);
    resp r = http(srv_port(s), NULL, "/v1/chat/completions", "{\"model\": \"mock\", \"messages\": [{\"role\": \"user\","
                  " \"content\": \"Buy or sell ACME?\"}], \"temperature\": 0.6, \"seed\": 9}", NULL, 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    srv_mock_reply("<bos><start_of_turn>user\nBuy or sell ACME?<end_of_turn>\n<start_of_turn>model\n", NULL, 0, 0.6, 9,
                   want, sizeof want);
    assert_string_equal(jstr(j, "choices.0.message.content"), want);
    cJSON_Delete(j);
    free(r.body);
    r = http(srv_port(s), NULL, "/v1/chat/completions", "{\"model\": \"mock\", \"messages\": [{\"role\": \"system\","
             " \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}]}", NULL, 0);
    assert_non_null(strstr(r.body, "chat template: System role not supported"));
    expect_error(&r, 400, "invalid_request_error");
    srv_stop(s);
    be->destroy(be);
    chat_tpl_free(t);
}

static void test_command(void **state) {
    (void)state;
    char bin[512], out[4096];
    snprintf(bin, sizeof bin, "%s/engine/serve", tu_bindir());
    TU_REQUIRE_FILE(bin);
    assert_int_equal(run_cmd("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "--api-key"));
    assert_int_equal(run_cmd("--mock --bogus", out, sizeof out), 2);
    assert_int_equal(run_cmd("--mock --port 70000", out, sizeof out), 2);
    assert_int_equal(run_cmd("", out, sizeof out), 2);
    assert_int_equal(run_cmd("--mock --chat-template jinja", out, sizeof out), 2);
    assert_int_equal(run_cmd("--model /nonexistent/model", out, sizeof out), 1);
    assert_non_null(strstr(out, "--mock"));
    /* a real server process: read its port from the banner, ask, stop it */
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        execl(bin, bin, "--mock", "--port", "0", "--token-delay-ms", "0.2", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, f));
    const char *colon = strstr(line, "127.0.0.1:");
    assert_non_null(colon);
    int port = atoi(colon + 10);
    assert_true(port > 0);
    resp r = http(port, NULL, "/v1/completions", "{\"prompt\": \"hi\", \"seed\": 1}", NULL, 0);
    assert_int_equal(r.status, 200);
    char want[1024];
    srv_mock_reply("hi", NULL, 0, 1.0, 1, want, sizeof want);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(jstr(j, "choices.0.text"), want);
    cJSON_Delete(j);
    free(r.body);
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    fclose(f);
}

/* One concept per file: no server source over 600 lines (issue 12). */
static void test_files_one_concept(void **state) {
    (void)state;
    glob_t g;
    int found = glob("serve/*.c", 0, NULL, &g) == 0;
    if (!found) found = glob("engine/serve*.c", 0, NULL, &g) == 0;
    assert_true(found && g.gl_pathc >= 4);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char *text = tu_slurp(g.gl_pathv[i]);
        assert_non_null(text);
        int lines = 0;
        for (const char *p = text; *p; p++) lines += *p == '\n';
        if (lines > 600) fprintf(stderr, "%s: %d lines\n", g.gl_pathv[i], lines);
        assert_true(lines <= 600);
        free(text);
    }
    globfree(&g);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_models_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_completion_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_tokens_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_json_and_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_metrics_count),
        cmocka_unit_test(test_client_disconnect),
        cmocka_unit_test(test_stop_mid_stream),
        cmocka_unit_test(test_preemption),
        cmocka_unit_test(test_mock_prefix_cache),
        cmocka_unit_test(test_mock_pool_too_small),
        cmocka_unit_test_setup_teardown(test_fuzz_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_n_choices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logprobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_strings_and_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test(test_utf8_and_backend_errors),
        cmocka_unit_test(test_model_template),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_files_one_concept),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
