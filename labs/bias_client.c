/* labs/bias_client.c — chat completions against an OpenAI-compatible server
 * through libcurl's multi interface: max_workers tries in flight, retries
 * after a wait, SSE parsing for time to first token and usage.  Touches the
 * network (libcurl) and its own state only; reports through the callback. */
#include "labs/bias_client.h"
#include "base/clock.h"
#include "base/strbuf.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REPLY_BYTES (64u << 20)   /* a reply larger than this is a failed try */

struct bias_client {
    bias_client_opts o;
    char *url;                  /* ".../v1/chat/completions" */
    char *auth;                 /* "Authorization: Bearer ..." or NULL */
    char *model;
    pthread_mutex_t mu;         /* guards multi and stop */
    CURLM *multi;               /* during a run */
    int stop;
};

void bias_client_opts_init(bias_client_opts *o) {
    memset(o, 0, sizeof *o);
    o->base_url = "http://127.0.0.1:8000";
    o->model = "";
    o->max_workers = 200;
    o->tries = 3;
    o->retry_wait_s = 2.0;
    o->timeout_s = 600;
    o->connect_timeout_s = 10;
    o->stream = 1;
}

bias_client *bias_client_create(const bias_client_opts *o, char *err, size_t errcap) {
    bias_client_opts d;
    if (!o) { bias_client_opts_init(&d); o = &d; }
    if (!o->base_url || strncmp(o->base_url, "http", 4) != 0) {
        snprintf(err, errcap, "bias client: the server URL must start with http:// or https://, got '%s'",
                 o->base_url ? o->base_url : "");
        return NULL;
    }
    if (o->max_workers < 1 || o->tries < 1 || !(o->retry_wait_s >= 0) || !(o->timeout_s > 0) ||
        !(o->connect_timeout_s > 0)) {
        snprintf(err, errcap, "bias client: max_workers and tries must be >= 1, the waits and timeouts positive");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errcap, "bias client: libcurl failed to initialise");
        return NULL;
    }
    bias_client *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, errcap, "out of memory"); return NULL; }
    c->o = *o;
    pthread_mutex_init(&c->mu, NULL);
    /* base, less trailing slashes and a trailing "/v1", plus the route */
    size_t n = strlen(o->base_url);
    while (n && o->base_url[n - 1] == '/') n--;
    if (n >= 3 && !strncmp(o->base_url + n - 3, "/v1", 3)) n -= 3;
    c->url = malloc(n + 32);
    if (c->url) snprintf(c->url, n + 32, "%.*s/v1/chat/completions", (int)n, o->base_url);
    c->model = strdup(o->model ? o->model : "");
    if (o->api_key && *o->api_key) {
        size_t k = strlen(o->api_key) + 32;
        if ((c->auth = malloc(k))) snprintf(c->auth, k, "Authorization: Bearer %s", o->api_key);
    }
    if (!c->url || !c->model || (o->api_key && *o->api_key && !c->auth)) {
        bias_client_free(c);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    c->o.base_url = NULL; c->o.api_key = NULL; c->o.model = c->model;
    return c;
}

void bias_client_free(bias_client *c) {
    if (!c) return;
    free(c->url); free(c->auth); free(c->model);
    pthread_mutex_destroy(&c->mu);
    free(c);
    curl_global_cleanup();
}

void bias_client_stop(bias_client *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    if (c->multi) curl_multi_wakeup(c->multi);
    pthread_mutex_unlock(&c->mu);
}

/* ---- one try --------------------------------------------------------------------- */

typedef struct {
    CURL *e;
    struct curl_slist *hdrs;
    size_t idx;
    char *body;                  /* request JSON */
    char *raw;                   /* (raw_cap,) unparsed response bytes */
    size_t raw_len, raw_cap, raw_off;
    char *text;                  /* (text_cap,) the reply's content so far */
    size_t text_len, text_cap;
    char finish[32];
    char err[256];               /* an error event in the stream */
    int ptoks, ctoks, done, stream, too_big;
    int slot;                    /* in the run's live array */
    double t_start, t_first;
} xfer;

static void xfer_free(xfer *x) {
    if (!x) return;
    curl_slist_free_all(x->hdrs);
    if (x->e) curl_easy_cleanup(x->e);
    free(x->body); free(x->raw); free(x->text);
    free(x);
}

/* Takes content, finish_reason, usage and an error from one JSON object of
 * the reply (a chunk, or the whole non-streamed reply). */
static void take_json(xfer *x, const cJSON *j) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (e) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        snprintf(x->err, sizeof x->err, "server error: %s", cJSON_IsString(m) ? m->valuestring : "(no message)");
    }
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    if (ch) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, x->stream ? "delta" : "message");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (cJSON_IsString(content) && content->valuestring[0]) {
            if (x->t_first == 0) x->t_first = clock_now_s();
            if (strbuf_add(&x->text, &x->text_len, &x->text_cap, content->valuestring, strlen(content->valuestring)))
                x->too_big = 1;
        }
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
        if (cJSON_IsString(fr)) snprintf(x->finish, sizeof x->finish, "%s", fr->valuestring);
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
    if (cJSON_IsNumber(pt)) x->ptoks = (int)pt->valuedouble;
    if (cJSON_IsNumber(ct)) x->ctoks = (int)ct->valuedouble;
}

/* Parses the complete SSE lines received so far: "data: {...}" and
 * "data: [DONE]"; comments, event names and blank lines are skipped. */
static void parse_lines(xfer *x) {
    for (;;) {
        char *line = x->raw + x->raw_off;
        char *nl = memchr(line, '\n', x->raw_len - x->raw_off);
        if (!nl) break;
        size_t n = (size_t)(nl - line);
        x->raw_off += n + 1;
        if (n && line[n - 1] == '\r') n--;
        if (n < 5 || strncmp(line, "data:", 5) != 0) continue;
        const char *p = line + 5;
        size_t k = n - 5;
        while (k && *p == ' ') { p++; k--; }
        if (k == 6 && !strncmp(p, "[DONE]", 6)) { x->done = 1; continue; }
        cJSON *j = cJSON_ParseWithLength(p, k);
        if (j) take_json(x, j);
        else snprintf(x->err, sizeof x->err, "unparsable stream chunk");
        cJSON_Delete(j);
    }
    if (x->raw_off > 65536 && x->raw_off * 2 > x->raw_len) {  /* drop what is parsed */
        memmove(x->raw, x->raw + x->raw_off, x->raw_len - x->raw_off + 1);
        x->raw_len -= x->raw_off;
        x->raw_off = 0;
    }
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    xfer *x = ud;
    size_t n = sz * nm;
    if (x->raw_len + n > MAX_REPLY_BYTES || strbuf_add(&x->raw, &x->raw_len, &x->raw_cap, p, n)) {
        x->too_big = 1;
        return 0;                /* fails the transfer */
    }
    long status = 0;
    curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &status);
    if (x->stream && status == 200) parse_lines(x);
    return n;
}

static char *request_json(const bias_client *c, const bias_client_req *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", c->model);
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    if (r->system) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", r->system);
        cJSON_AddItemToArray(msgs, m);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", r->user ? r->user : "");
    cJSON_AddItemToArray(msgs, m);
    cJSON_AddNumberToObject(root, "temperature", r->temperature);
    cJSON_AddNumberToObject(root, "top_p", r->top_p);
    if (r->max_tokens > 0) cJSON_AddNumberToObject(root, "max_tokens", r->max_tokens);
    if (r->has_seed) cJSON_AddNumberToObject(root, "seed", (double)r->seed);
    if (c->o.stream) {
        cJSON_AddTrueToObject(root, "stream");
        cJSON_AddTrueToObject(cJSON_AddObjectToObject(root, "stream_options"), "include_usage");
    }
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(root, "chat_template_kwargs"), "enable_thinking",
                          c->o.enable_thinking);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static xfer *xfer_start(bias_client *c, CURLM *multi, const bias_client_req *r, size_t idx) {
    xfer *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->idx = idx;
    x->stream = c->o.stream;
    x->ptoks = x->ctoks = -1;
    x->body = request_json(c, r);
    x->e = curl_easy_init();
    x->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (x->hdrs) x->hdrs = curl_slist_append(x->hdrs, "Expect:");   /* no 100-continue round trip */
    if (x->hdrs && c->o.stream) x->hdrs = curl_slist_append(x->hdrs, "Accept: text/event-stream");
    if (x->hdrs && c->auth) x->hdrs = curl_slist_append(x->hdrs, c->auth);
    if (!x->body || !x->e || !x->hdrs) { xfer_free(x); return NULL; }
    CURL *e = x->e;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->o.timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->o.connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    x->t_start = clock_now_s();
    if (curl_multi_add_handle(multi, e) != CURLM_OK) { xfer_free(x); return NULL; }
    return x;
}

/* Judges a finished try: 1 success, 0 failure (message in why). */
static int judge(xfer *x, CURLcode rc, long status, char *why, size_t cap) {
    if (x->too_big) { snprintf(why, cap, "the reply is too large or memory ran out"); return 0; }
    if (rc != CURLE_OK) { snprintf(why, cap, "%s", curl_easy_strerror(rc)); return 0; }
    if (status != 200) {
        cJSON *j = cJSON_ParseWithLength(x->raw ? x->raw : "", x->raw_len);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "message");
        if (!m) m = cJSON_GetObjectItemCaseSensitive(j, "message");
        snprintf(why, cap, "HTTP %ld: %.200s", status, cJSON_IsString(m) ? m->valuestring : (x->raw ? x->raw : ""));
        cJSON_Delete(j);
        return 0;
    }
    if (x->stream) {
        if (x->raw_off < x->raw_len) {         /* a last line without its newline */
            strbuf_add(&x->raw, &x->raw_len, &x->raw_cap, "\n", 1);
            parse_lines(x);
        }
        if (x->err[0]) { snprintf(why, cap, "%s", x->err); return 0; }
        if (!x->done) { snprintf(why, cap, "the stream ended without [DONE]"); return 0; }
        return 1;
    }
    cJSON *j = cJSON_ParseWithLength(x->raw ? x->raw : "", x->raw_len);
    if (!j) { snprintf(why, cap, "the reply is not JSON"); return 0; }
    take_json(x, j);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0), "message"),
        "content");
    int ok = cJSON_IsString(content) && !x->err[0];
    cJSON_Delete(j);
    if (!ok) snprintf(why, cap, "%s", x->err[0] ? x->err : "the reply has no choices[0].message.content");
    return ok;
}

/* ---- the run ----------------------------------------------------------------------- */

typedef struct { size_t idx; double ready; } retry_item;

/* One run's bookkeeping. */
typedef struct run_state {
    size_t n;                /* requests */
    int *tries;              /* (n,) tries made */
    retry_item *rq;          /* (n,) FIFO ring of waiting retries, in time order */
    size_t rq_head, rq_len;
    xfer **live;             /* (max_workers,) tries in flight */
    size_t next, reported;   /* the next fresh request; requests reported */
    int in_flight;
} run_state;

/* A worker stays with its request through the waits between tries, as the
 * study's thread pool does: so a server that is down burns the tries of at
 * most max_workers requests.  Due retries first (the FIFO is in time order),
 * then fresh requests while a worker is free.  0, or -1 with err. */
static int start_due(bias_client *c, CURLM *multi, run_state *st, const bias_client_req *reqs,
                     char *err, size_t errcap) {
    double now = clock_now_s();
    for (;;) {
        size_t idx;
        if (st->rq_len && st->rq[st->rq_head].ready <= now) {
            idx = st->rq[st->rq_head].idx;
            st->rq_head = (st->rq_head + 1) % st->n;
            st->rq_len--;
        } else if (st->next < st->n && st->in_flight + (int)st->rq_len < c->o.max_workers) idx = st->next++;
        else return 0;
        xfer *x = xfer_start(c, multi, &reqs[idx], idx);
        if (!x) { snprintf(err, errcap, "out of memory starting request %zu", idx); return -1; }
        st->tries[idx]++;
        for (x->slot = 0; st->live[x->slot]; x->slot++) {}
        st->live[x->slot] = x;
        st->in_flight++;
    }
}

/* A finished try: queued for a retry, or reported through cb. */
static void finish_try(bias_client *c, CURLM *multi, run_state *st, CURL *e, CURLcode rc,
                       bias_client_cb cb, void *ctx) {
    xfer *x = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, e);
    st->live[x->slot] = NULL;
    st->in_flight--;
    double t_end = clock_now_s();
    char why[320] = "";
    int ok = judge(x, rc, status, why, sizeof why);
    if (!ok && st->tries[x->idx] < c->o.tries) {
        st->rq[(st->rq_head + st->rq_len) % st->n] = (retry_item){x->idx, t_end + c->o.retry_wait_s};
        st->rq_len++;
    } else {
        bias_client_result r = {0};
        r.index = x->idx;
        r.ok = ok;
        r.text = ok && x->text ? x->text : "";
        r.finish_reason = x->finish;
        r.error = ok ? NULL : why;
        r.prompt_tokens = x->ptoks;
        r.completion_tokens = x->ctoks;
        r.ttft_s = x->stream && x->t_first > 0 ? x->t_first - x->t_start : -1;
        r.latency_s = t_end - x->t_start;
        r.tries = st->tries[x->idx];
        r.http_status = status;
        st->reported++;
        if (cb) cb(ctx, &r);
    }
    xfer_free(x);
}

/* Milliseconds to sleep: until network activity, the next due retry (at
 * most a second), or none when a worker is free for a fresh request. */
static long wait_ms(const bias_client *c, const run_state *st) {
    long ms = 1000;
    if (st->rq_len) {
        double dt = st->rq[st->rq_head].ready - clock_now_s();
        ms = dt <= 0 ? 0 : (long)ceil(dt * 1000);
        if (ms > 1000) ms = 1000;
    }
    if (st->in_flight + (int)st->rq_len < c->o.max_workers && st->next < st->n) ms = 0;
    return ms;
}

static int stop_asked(bias_client *c) {
    pthread_mutex_lock(&c->mu);
    int stopped = c->stop;
    pthread_mutex_unlock(&c->mu);
    return stopped;
}

int bias_client_run(bias_client *c, const bias_client_req *reqs, size_t n,
                    bias_client_cb cb, void *ctx, char *err, size_t errcap) {
    int ret = -1;
    run_state st = { .n = n };
    st.tries = calloc(n ? n : 1, sizeof *st.tries);
    st.rq = calloc(n ? n : 1, sizeof *st.rq);
    st.live = calloc((size_t)c->o.max_workers, sizeof *st.live);
    CURLM *multi = curl_multi_init();
    if (!st.tries || !st.rq || !st.live || !multi) { snprintf(err, errcap, "out of memory"); goto out; }
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)c->o.max_workers + 16);
    pthread_mutex_lock(&c->mu);
    c->multi = multi;
    int stopped = c->stop;
    pthread_mutex_unlock(&c->mu);
    while (st.reported < n && !stopped) {
        if (start_due(c, multi, &st, reqs, err, errcap)) goto out;
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)))
            if (msg->msg == CURLMSG_DONE) finish_try(c, multi, &st, msg->easy_handle, msg->data.result, cb, ctx);
        if (st.reported >= n) break;
        long ms = wait_ms(c, &st);
        if (ms > 0 || running) curl_multi_poll(multi, NULL, 0, (int)ms, NULL);
        stopped = stop_asked(c);
    }
    ret = stopped && st.reported < n ? 1 : 0;
out:
    if (multi) {
        pthread_mutex_lock(&c->mu);
        c->multi = NULL;
        pthread_mutex_unlock(&c->mu);
        /* whatever is still in flight (a stop, an error) */
        for (int i = 0; st.live && i < c->o.max_workers; i++) {
            if (!st.live[i]) continue;
            curl_multi_remove_handle(multi, st.live[i]->e);
            xfer_free(st.live[i]);
        }
        curl_multi_cleanup(multi);
    }
    pthread_mutex_lock(&c->mu);
    c->stop = 0;                 /* a later run starts afresh */
    pthread_mutex_unlock(&c->mu);
    free(st.live);
    free(st.tries);
    free(st.rq);
    return ret;
}
