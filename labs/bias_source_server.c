/* bias_source_server: the bias lab's replies from an OpenAI-compatible server
 * (see bias_sources.h): a whole set goes to labs/bias_client, which keeps
 * max_workers chat completions in flight; each reply is handed to the run as
 * it arrives, with its usage and streamed time to first token.  Also the
 * helpers both real sources share (trial seeds, per-request lengths).
 * Touches the network (libcurl) and the trace it is given. */
#include "labs/bias_sources.h"
#include "labs/bias_client.h"
#include "labs/bias_tokens.h"
#include "base/clock.h"
#include "base/rng.h"
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- shared by the real sources ------------------------------------------------------ */

uint64_t bias_trial_seed(uint64_t run_seed, int set, size_t stock_index, int trial) {
    uint64_t h = rng_mix64(run_seed ^ 0x5B1A5EEDull);
    h = rng_mix64(h ^ (uint64_t)(unsigned)set);
    h = rng_mix64(h ^ (uint64_t)stock_index);
    h = rng_mix64(h ^ (uint64_t)(unsigned)trial);
    return h & ((1ull << 52) - 1);
}

int bias_sampling_lengths(const bias_sampling *s, const bias_request *req, size_t n, int *max_tokens,
                          char *err, size_t errlen) {
    for (size_t i = 0; i < n; i++) max_tokens[i] = s->max_tokens;
    if (!s->lengths || n == 0) return 0;
    bias_reply *out = calloc(n, sizeof *out);                  /* (n) */
    if (!out) { snprintf(err, errlen, "out of memory"); return -1; }
    int rc = s->lengths->generate(s->lengths->ctx, req, n, out, NULL, NULL, err, errlen);
    for (size_t i = 0; i < n; i++) {
        int t = out[i].output_tokens;
        if (rc == 0) max_tokens[i] = t < 1 ? 1 : t > s->max_tokens ? s->max_tokens : t;
        free(out[i].text);
    }
    free(out);
    return rc;
}

/* ---- the server check: GET /v1/models ------------------------------------------------- */

typedef struct { char *s; size_t n; } body;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud) {
    body *b = ud;
    size_t k = sz * nm;
    if (b->n + k > (4u << 20)) return 0;
    char *ns = realloc(b->s, b->n + k + 1);
    if (!ns) return 0;
    memcpy(ns + b->n, p, k);
    b->s = ns; b->n += k; b->s[b->n] = 0;
    return k;
}

/* Fills model (cap) with the name to send: want when the server lists it (or
 * lists nothing), else the first listed.  -1 with err. */
static int check_server(const char *url, const char *key, const char *want, char *model, size_t cap,
                        char *err, size_t errlen) {
    size_t n = strlen(url);
    while (n && url[n - 1] == '/') n--;
    if (n >= 3 && !strncmp(url + n - 3, "/v1", 3)) n -= 3;
    char full[2048], auth[1024];
    snprintf(full, sizeof full, "%.*s/v1/models", (int)n, url);
    CURL *e = curl_easy_init();
    if (!e) { snprintf(err, errlen, "libcurl failed to start"); return -1; }
    struct curl_slist *h = NULL;
    if (key && *key) { snprintf(auth, sizeof auth, "Authorization: Bearer %s", key); h = curl_slist_append(h, auth); }
    body b = {0};
    curl_easy_setopt(e, CURLOPT_URL, full);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    int ret = -1;
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "cannot reach the server at %s: %s (is it running? start one with "
                 "`engine/serve --mock` or `vllm serve MODEL`)", full, curl_easy_strerror(rc));
        goto out;
    }
    if (status == 401) { snprintf(err, errlen, "%s: 401, the server wants an API key (--api-key KEY)", full); goto out; }
    if (status != 200) { snprintf(err, errlen, "%s: HTTP %ld: %.200s", full, status, b.s ? b.s : ""); goto out; }
    cJSON *j = cJSON_Parse(b.s ? b.s : "");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data"), *m;
    const char *first = NULL;
    int found = 0;
    cJSON_ArrayForEach(m, data) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        if (!cJSON_IsString(id)) continue;
        if (!first) first = id->valuestring;
        if (want && !strcmp(want, id->valuestring)) found = 1;
    }
    if (!want && !first) {
        snprintf(err, errlen, "%s lists no model; name one with --served-model-name NAME", full);
    } else {
        snprintf(model, cap, "%s", (want && (found || !first)) ? want : first);
        ret = 0;
    }
    cJSON_Delete(j);
out:
    free(b.s);
    return ret;
}

/* ---- the source ------------------------------------------------------------------------ */

typedef struct server_src {
    bias_client *cl;
    bias_server_opts o;
    char model[512];
    bias_trace *trace;
    long long usage_prompt, usage_completion;
} server_src;

typedef struct gen_ctx {
    server_src   *s;
    const bias_request *req;
    bias_reply   *out;
    bias_reply_cb cb;
    void         *cb_ctx;
    double        t0;
    int           oom;
} gen_ctx;

static void on_result(void *ctx, const bias_client_result *r) {
    gen_ctx *g = ctx;
    bias_reply *rep = &g->out[r->index];
    const bias_request *q = &g->req[r->index];
    if (r->ok) {
        rep->text = strdup(r->text);
    } else {
        size_t k = strlen(r->error ? r->error : "") + 16;
        if ((rep->text = malloc(k))) snprintf(rep->text, k, "API_ERROR: %s", r->error ? r->error : "");
    }
    if (!rep->text) g->oom = 1;
    rep->output_tokens = r->completion_tokens >= 0 ? r->completion_tokens
                       : r->ok ? bias_count_tokens(r->text) : 0;
    rep->latency_s = r->latency_s;
    rep->ttft_s = r->ttft_s > 0 ? r->ttft_s : 0;
    if (r->prompt_tokens > 0) g->s->usage_prompt += r->prompt_tokens;
    if (r->completion_tokens > 0) g->s->usage_completion += r->completion_tokens;
    if (g->s->trace && r->ok) {
        double fin = clock_now_s() - g->t0, sub = fin - r->latency_s;
        bias_trace_req tr = { .set = q->set, .prompt_tokens = r->prompt_tokens > 0 ? r->prompt_tokens : q->prompt_tokens,
                              .output_tokens = rep->output_tokens, .submit_s = sub,
                              .first_token_s = sub + (r->ttft_s > 0 ? r->ttft_s : r->latency_s), .finish_s = fin };
        if (bias_trace_add_req(g->s->trace, &tr)) g->oom = 1;
    }
    if (g->cb) g->cb(g->cb_ctx, r->index, rep);
}

static int server_generate(void *ctx, const bias_request *req, size_t n, bias_reply *out,
                           bias_reply_cb cb, void *cb_ctx, char *err, size_t errlen) {
    server_src *s = ctx;
    if (n == 0) return 0;
    bias_client_req *cr = calloc(n, sizeof *cr);      /* (n) */
    int *mt = calloc(n, sizeof *mt);                  /* (n) max_tokens */
    int rc = -1;
    if (!cr || !mt) { snprintf(err, errlen, "out of memory"); goto out; }
    if (bias_sampling_lengths(&s->o.s, req, n, mt, err, errlen)) goto out;
    for (size_t i = 0; i < n; i++)
        cr[i] = (bias_client_req){ .user = req[i].prompt, .temperature = s->o.s.temperature, .top_p = s->o.s.top_p,
                                   .max_tokens = mt[i], .has_seed = 1,
                                   .seed = (long long)bias_trial_seed(s->o.s.seed, req[i].set, req[i].stock_index,
                                                                      req[i].trial) };
    gen_ctx g = { .s = s, .req = req, .out = out, .cb = cb, .cb_ctx = cb_ctx, .t0 = clock_now_s() };
    int r = bias_client_run(s->cl, cr, n, on_result, &g, err, errlen);
    if (s->trace && n) bias_trace_add_wall(s->trace, req[0].set, clock_now_s() - g.t0);
    if (r != 0) { if (r > 0) snprintf(err, errlen, "the server run was stopped"); goto out; }
    if (g.oom) { snprintf(err, errlen, "out of memory"); goto out; }
    rc = 0;
out:
    free(cr); free(mt);
    return rc;
}

static void server_free(void *ctx) {
    server_src *s = ctx;
    if (!s) return;
    bias_client_free(s->cl);
    free(s);
}

int bias_server_source(bias_source *src, const bias_server_opts *o, bias_trace *trace, char *err, size_t errlen) {
    memset(src, 0, sizeof *src);
    server_src *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "out of memory"); return -1; }
    s->o = *o;
    s->trace = trace;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) { free(s); snprintf(err, errlen, "libcurl failed to start"); return -1; }
    int bad = check_server(o->url, o->api_key, o->model, s->model, sizeof s->model, err, errlen);
    curl_global_cleanup();
    if (bad) { free(s); return -1; }
    bias_client_opts co;
    bias_client_opts_init(&co);
    co.base_url = o->url;
    co.api_key = o->api_key;
    co.model = s->model;
    co.max_workers = o->max_workers > 0 ? o->max_workers : 200;
    if (o->timeout_s > 0) co.timeout_s = o->timeout_s;
    co.enable_thinking = 0;
    if (!(s->cl = bias_client_create(&co, err, errlen))) { free(s); return -1; }
    s->o.model = s->model;
    if (trace) { trace->max_workers = co.max_workers; trace->temperature = o->s.temperature; trace->top_p = o->s.top_p; }
    *src = (bias_source){ .name = "server", .ctx = s, .generate = server_generate, .free = server_free };
    return 0;
}

const char *bias_server_model(const bias_source *src) {
    return src && src->ctx ? ((const server_src *)src->ctx)->model : "";
}

void bias_server_usage(const bias_source *src, long long *prompt_tokens, long long *completion_tokens) {
    const server_src *s = src ? src->ctx : NULL;
    *prompt_tokens = s ? s->usage_prompt : 0;
    *completion_tokens = s ? s->usage_completion : 0;
}
