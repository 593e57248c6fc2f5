/* serve/serve.c — the HTTP daemon (libmicrohttpd) and its routes over a
 * srv_backend: /health, /metrics, /v1/models, and the generation routes,
 * which parse the request (serve_request.c), submit it to the backend and
 * answer from its stream (serve_stream.c) as one JSON reply or SSE.
 * Touches its sockets, its own state, the backend through its operations
 * and the streams it hands the backend.
 *
 * A generation request's life:
 *   access handler (HTTP thread): body complete -> parse -> stream ->
 *     listed in srv->active -> backend submit
 *   stream=false: the connection is suspended until on_finish resumes it;
 *     the handler runs again and answers with one JSON object
 *   stream=true: an SSE response whose reader (HTTP thread) suspends the
 *     connection whenever there is nothing to send; on_tokens/on_finish
 *     (engine thread) resume it
 *   request completed (HTTP thread): aborts the backend request if the
 *     client went away before it finished
 */
#include "serve/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "serve/serve_json.h"
#include "serve/serve_metrics.h"
#include "serve/serve_request.h"
#include "serve/serve_stream.h"
#include "base/strbuf.h"

struct srv_server {
    srv_opts o;
    const chat_tpl *tpl;         /* o.chat_template, or own_tpl */
    chat_tpl *own_tpl;           /* qwen3's, when the options name none */
    char *host, *api_key, *model;
    srv_backend *be;
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;          /* guards the fields down to n_gen_conns; taken before a
                                    stream's mu, never after */
    pthread_mutex_t logmu;       /* guards lastlog (MHD may log under a stream's mu) */
    pthread_cond_t cv;           /* signalled when n_active or n_gen_conns drops, or hurry */
    int stopping;                /* new requests are refused */
    int ending;                  /* the streams in flight are being ended */
    int hurry;                   /* srv_drain_now: the grace period is over */
    srv_stream *active;          /* streams whose backend request has not finished */
    int n_active;
    int n_gen_conns;             /* connections holding a stream (until their request completes) */
    uint64_t next_id;
    unsigned salt;               /* makes response ids differ across servers */
    atomic_long counts[3];       /* atomic: bumped while a stream's lock is held */
    char lastlog[256];
    srv_metrics metrics;
};

static void srv_logf(srv_server *s, const char *fmt, ...) {
    if (!s->o.log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->o.log(s->o.log_ctx, line);
}

/* ---- responses ---------------------------------------------------------------------- */

/* Per-connection state (MHD's con_cls). */
typedef struct {
    char *body;                  /* (cap,) request body, NUL-terminated */
    size_t len, cap;
    int too_big;
    int responded;               /* a response was queued before the body was read */
    srv_stream *st;              /* a submitted generation, or NULL */
} conn_ctx;

static enum MHD_Result send_text(srv_server *s, struct MHD_Connection *c, unsigned status,
                                 const char *ctype, char *body /* malloc'd, consumed */) {
    if (!body) { status = MHD_HTTP_INTERNAL_SERVER_ERROR; ctype = "text/plain"; body = strdup("out of memory"); }
    struct MHD_Response *r = MHD_create_response_from_buffer(body ? strlen(body) : 0, body,
                                                             MHD_RESPMEM_MUST_FREE);
    if (!r) { free(body); return MHD_NO; }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    atomic_fetch_add(&s->counts[status < 400 ? 0 : status < 500 ? 1 : 2], 1);
    return ret;
}

__attribute__((format(printf, 6, 7)))
static enum MHD_Result send_error(srv_server *s, struct MHD_Connection *c, unsigned status,
                                  const char *type, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_text(s, c, status, "application/json", srv_json_error(type, msg, code));
}

#define BAD(...) send_error(s, c, MHD_HTTP_BAD_REQUEST, "invalid_request_error", NULL, __VA_ARGS__)
#define SHUTTING_DOWN() send_error(s, c, 503, "server_error", NULL, "the server is shutting down")

/* ---- generation routes ---------------------------------------------------------------- */

/* Engine thread, from on_finish: the stream leaves the active list. */
static void unlist(void *ctx, srv_stream *st) {
    srv_server *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (st->prev) st->prev->next = st->next; else s->active = st->next;
    if (st->next) st->next->prev = st->prev;
    st->prev = st->next = NULL;
    s->n_active--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Builds, lists and submits a stream.  Returns it (one reference for the
 * connection, one for the backend) or NULL after sending an error. */
static srv_stream *start_generation(srv_server *s, struct MHD_Connection *c, srv_req *r,
                                    enum MHD_Result *ret) {
    pthread_mutex_lock(&s->mu);
    uint64_t n = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    char id[48];
    snprintf(id, sizeof id, "%s-%08x%08llx", r->kind == SRV_CHAT ? "chatcmpl" : "cmpl", s->salt,
             (unsigned long long)n);
    srv_stream *st = srv_stream_new(r, s->model, id, c, &s->metrics);
    if (!st) { *ret = send_error(s, c, 500, "server_error", NULL, "out of memory"); return NULL; }
    st->on_done = unlist;
    st->done_ctx = s;
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    if (!stopping) {
        st->next = s->active;
        if (s->active) s->active->prev = st;
        s->active = st;
        s->n_active++;
    }
    pthread_mutex_unlock(&s->mu);
    char err[256] = "";
    uint64_t bid = 0;
    r->gp.stop = (const char *const *)st->stop;
    r->gp.n_stop = st->n_stop;
    if (!stopping && s->be->submit(s->be->self, &r->gp, &st->sink, &bid, err, sizeof err) == 0) {
        pthread_mutex_lock(&st->mu);
        st->be_id = bid;
        pthread_mutex_unlock(&st->mu);
        pthread_mutex_lock(&s->mu);
        int ending = s->ending;  /* streams were ended meanwhile, maybe without its id */
        pthread_mutex_unlock(&s->mu);
        if (ending) s->be->abort(s->be->self, bid);
        return st;
    }
    if (!stopping) unlist(s, st);    /* submit failed: never reaches on_finish */
    st->refs = 1;
    srv_stream_unref(st);
    if (stopping) *ret = SHUTTING_DOWN();
    else *ret = BAD("%s", err);
    return NULL;
}

/* The second and later calls for a submitted generation (after a resume). */
static enum MHD_Result continue_generation(srv_server *s, struct MHD_Connection *c, srv_stream *st) {
    pthread_mutex_lock(&st->mu);
    enum MHD_Result ret = MHD_YES;
    if (!st->finished) { st->suspended = 1; MHD_suspend_connection(c); }
    else if (st->cut) ret = SHUTTING_DOWN();
    else if (st->fin.reason == SRV_FINISH_ERROR) ret = send_error(s, c, 500, "server_error", NULL, "%s", st->errmsg);
    else ret = send_text(s, c, 200, "application/json", srv_stream_reply(st));
    pthread_mutex_unlock(&st->mu);
    return ret;
}

static enum MHD_Result handle_generation(srv_server *s, struct MHD_Connection *c, conn_ctx *cx, srv_kind kind) {
    char msg[512] = "";
    const char *code = NULL;
    srv_req_limits lim = {s->model, s->o.max_tokens_limit, s->tpl, s->be->adapters, s->be->n_adapters};
    srv_req r;
    int status = srv_req_parse(&r, kind, cx->body, cx->len, &lim, msg, sizeof msg, &code);
    if (status) {
        srv_req_free(&r);
        return send_error(s, c, (unsigned)status, "invalid_request_error", code, "%s", msg);
    }
    enum MHD_Result ret = MHD_YES;
    srv_stream *st = start_generation(s, c, &r, &ret);
    srv_req_free(&r);
    if (!st) return ret;
    cx->st = st;
    pthread_mutex_lock(&s->mu);
    s->n_gen_conns++;
    pthread_mutex_unlock(&s->mu);
    if (!st->is_stream) return continue_generation(s, c, st);
    srv_stream_ref(st);          /* the response's reference */
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                                  srv_stream_read, st, srv_stream_read_free);
    if (!resp) { srv_stream_unref(st); return MHD_NO; }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    atomic_fetch_add(&s->counts[0], 1);
    return ret;
}

/* ---- other routes -------------------------------------------------------------------------- */

static enum MHD_Result handle_models(srv_server *s, struct MHD_Connection *c) {
    srv_backend_stats bs = {0};
    s->be->stats(s->be->self, &bs);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data"), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(data, m);
    cJSON_AddStringToObject(m, "id", s->model);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)time(NULL));
    cJSON_AddStringToObject(m, "owned_by", "pagesim");
    if (bs.max_model_len > 0) cJSON_AddNumberToObject(m, "max_model_len", (double)bs.max_model_len);
    for (int i = 0; i < s->be->n_adapters; i++) {          /* LoRA adapters, as vLLM lists them */
        cJSON *a = cJSON_CreateObject();
        cJSON_AddItemToArray(data, a);
        cJSON_AddStringToObject(a, "id", s->be->adapters[i]);
        cJSON_AddStringToObject(a, "object", "model");
        cJSON_AddNumberToObject(a, "created", (double)time(NULL));
        cJSON_AddStringToObject(a, "owned_by", "pagesim");
        cJSON_AddStringToObject(a, "root", s->be->adapters[i]);
        cJSON_AddStringToObject(a, "parent", s->model);
        if (bs.max_model_len > 0) cJSON_AddNumberToObject(a, "max_model_len", (double)bs.max_model_len);
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return send_text(s, c, 200, "application/json", txt);
}

static enum MHD_Result handle_metrics(srv_server *s, struct MHD_Connection *c) {
    srv_backend_stats bs = {0};
    s->be->stats(s->be->self, &bs);
    return send_text(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", srv_metrics_render(&s->metrics, &bs));
}

/* "Bearer KEY" compared in constant time for equal lengths. */
static int authorized(srv_server *s, struct MHD_Connection *c) {
    if (!s->api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h), k = strlen(s->api_key);
    if (n != k) return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(h[i] ^ s->api_key[i]);
    return diff == 0;
}

static enum MHD_Result route(srv_server *s, struct MHD_Connection *c, conn_ctx *cx,
                             const char *url, const char *method) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    static const char *const routes[] = {"/health", "/metrics", "/v1/models",
                                         "/v1/chat/completions", "/v1/completions"};
    int r = -1;
    for (int i = 0; i < 5; i++) if (!strcmp(url, routes[i])) r = i;
    if (r < 0) return send_error(s, c, 404, "invalid_request_error", "not_found", "no route %.200s %.200s", method, url);
    if (!strncmp(url, "/v1/", 4) && !authorized(s, c))
        return send_error(s, c, 401, "invalid_request_error", "invalid_api_key",
                          "missing or wrong API key: send \"Authorization: Bearer KEY\"");
    if ((r < 3 && !get) || (r >= 3 && !post))
        return send_error(s, c, 405, "invalid_request_error", NULL, "%s takes %s, not %.20s", url, r < 3 ? "GET" : "POST", method);
    if (cx->too_big)
        return send_error(s, c, 413, "invalid_request_error", NULL,
                          "the request body is larger than this server's limit of %zu bytes", s->o.max_body);
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    switch (r) {
    case 0: return stopping ? SHUTTING_DOWN() : send_text(s, c, 200, "text/plain", strdup(""));
    case 1: return handle_metrics(s, c);
    case 2: return handle_models(s, c);
    case 3: return handle_generation(s, c, cx, SRV_CHAT);
    default: return handle_generation(s, c, cx, SRV_COMPLETION);
    }
}

/* ---- the daemon ------------------------------------------------------------------------------ */

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    srv_server *s = cls;
    conn_ctx *cx = *con_cls;
    (void)version;
    if (!cx) {
        cx = calloc(1, sizeof *cx);
        if (!cx) return MHD_NO;
        *con_cls = cx;
        /* the head is in: the body and the reply get the longer I/O timeout */
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, s->o.io_timeout_s);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            cx->too_big = cx->responded = 1;
            return send_error(s, c, 413, "invalid_request_error", NULL,
                              "the request body (%.20s bytes) is larger than this server's limit of %zu bytes",
                              cl, s->o.max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cx->too_big && cx->len + *upload_size > s->o.max_body) cx->too_big = 1;
        if (!cx->too_big && strbuf_add(&cx->body, &cx->len, &cx->cap, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (cx->st) return continue_generation(s, c, cx->st);
    if (cx->responded) return MHD_YES;
    enum MHD_Result ret = route(s, c, cx, url, method);
    srv_logf(s, "%s %s", method, url);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    srv_server *s = cls;
    conn_ctx *cx = *con_cls;
    if (!cx) return;
    *con_cls = NULL;
    if (cx->st) {
        pthread_mutex_lock(&cx->st->mu);
        int running = !cx->st->finished;
        uint64_t id = cx->st->be_id;
        cx->st->conn = NULL;
        pthread_mutex_unlock(&cx->st->mu);
        if (running) s->be->abort(s->be->self, id);    /* the client went away */
        srv_stream_unref(cx->st);
        pthread_mutex_lock(&s->mu);
        s->n_gen_conns--;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    /* idle again: back to the keep-alive timeout for the next request head */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, s->o.keep_alive_s);
    free(cx->body);
    free(cx);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    srv_server *s = cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    pthread_mutex_lock(&s->logmu);
    snprintf(s->lastlog, sizeof s->lastlog, "%s", line);
    pthread_mutex_unlock(&s->logmu);
    srv_logf(s, "microhttpd: %s", line);
}

void srv_opts_init(srv_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8000;
    o->max_body = 1u << 20;
    o->max_tokens_limit = 32768;
    o->conn_limit = 1024;
    o->keep_alive_s = 5;
    o->io_timeout_s = 60;
    o->chat_template = NULL;
}

static void free_server(srv_server *s) {
    chat_tpl_free(s->own_tpl);
    srv_metrics_free(&s->metrics);
    free(s->host); free(s->api_key); free(s->model);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->logmu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Checks the options, copies what the server keeps.  NULL with a message. */
static srv_server *new_server(const srv_opts *o, srv_backend *b, char *err, size_t errcap) {
    if (!b || !b->submit || !b->abort || !b->stats) { snprintf(err, errcap, "serve: no backend"); return NULL; }
    if (o->port < 0 || o->port > 65535 || o->max_body < 1 || o->max_tokens_limit < 1 || o->conn_limit < 1 ||
        o->keep_alive_s < 1 || o->io_timeout_s < 1) {
        snprintf(err, errcap, "serve: port must be 0..65535 and max_body, max_tokens_limit, conn_limit, "
                 "keep_alive_s, io_timeout_s >= 1");
        return NULL;
    }
    if (o->api_key && !*o->api_key) {
        snprintf(err, errcap, "serve: the API key is empty (it would let every client in); give a key or none");
        return NULL;
    }
    srv_server *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errcap, "out of memory"); return NULL; }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->logmu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->o = *o;
    s->be = b;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->salt = (unsigned)(ts.tv_nsec ^ (ts.tv_sec * 2654435761u) ^ (uintptr_t)s);
    s->host = strdup(o->host && *o->host ? o->host : "127.0.0.1");
    s->api_key = o->api_key ? strdup(o->api_key) : NULL;
    s->model = strdup(b->model && *b->model ? b->model : "model");
    s->o.host = s->host; s->o.api_key = s->api_key;
    if (!o->chat_template) s->own_tpl = chat_tpl_named(CHAT_QWEN3);
    s->tpl = o->chat_template ? o->chat_template : s->own_tpl;
    if (!s->host || !s->model || (o->api_key && !s->api_key) || !s->tpl ||
        srv_metrics_init(&s->metrics, s->model)) {
        snprintf(err, errcap, "out of memory");
        free_server(s);
        return NULL;
    }
    return s;
}

srv_server *srv_start(const srv_opts *o, srv_backend *b, char *err, size_t errcap) {
    srv_opts d;
    if (!o) { srv_opts_init(&d); o = &d; }
    srv_server *s = new_server(o, b, err, errcap);
    if (!s) return NULL;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", o->port);
    int gai = getaddrinfo(s->host, portstr, &hints, &ai);
    if (gai || !ai) {
        snprintf(err, errcap, "serve: cannot resolve host '%s': %s", s->host, gai_strerror(gai));
        free_server(s);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_access, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, o->conn_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, o->keep_alive_s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        snprintf(err, errcap, "serve: cannot listen on %s:%d%s%s", s->host, o->port,
                 s->lastlog[0] ? ": " : " (address in use?)", s->lastlog);
        free_server(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : o->port;
    return s;
}

int srv_port(const srv_server *s) { return s ? s->port : -1; }

void srv_counts(const srv_server *s, long out[3]) {
    srv_server *m = (srv_server *)s;
    for (int i = 0; i < 3; i++) out[i] = atomic_load(&m->counts[i]);
}

/* Refuses new requests from now on. */
static void begin_stopping(srv_server *s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
}

/* Ends every stream still running.  clean: a stream ends with its finish
 * chunks and [DONE] (the backend's abort finishes it), a plain request gets
 * a 503; otherwise every stream is cut (no clean end: the client retries).
 * Then waits until the backend has finished each of them. */
static void end_streams(srv_server *s, int clean) {
    pthread_mutex_lock(&s->mu);
    s->ending = 1;
    size_t n = 0;
    for (srv_stream *st = s->active; st; st = st->next) n++;
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    n = 0;
    for (srv_stream *st = s->active; st && ids; st = st->next) {
        pthread_mutex_lock(&st->mu);
        if (!clean || !st->is_stream) st->cut = 1;
        ids[n++] = st->be_id;
        pthread_mutex_unlock(&st->mu);
    }
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) s->be->abort(s->be->self, ids[i]);
    free(ids);
    pthread_mutex_lock(&s->mu);
    while (s->n_active > 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void close_server(srv_server *s) {
    /* every suspended connection has been resumed by its on_finish */
    MHD_stop_daemon(s->d);
    free_server(s);
}

void srv_stop(srv_server *s) {
    if (!s) return;
    begin_stopping(s);
    end_streams(s, 0);
    close_server(s);
}

/* Waits on s->cv until cond holds, hurry is set or the deadline passes. */
#define WAIT_UNTIL(cond, deadline) do { \
        while (!(cond) && !s->hurry && \
               pthread_cond_timedwait(&s->cv, &s->mu, &(deadline)) != ETIMEDOUT) {} \
    } while (0)

static struct timespec deadline_in(double seconds) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    if (!(seconds > 0)) return t;
    if (seconds > 1e6) seconds = 1e6;
    long ns = t.tv_nsec + (long)((seconds - (double)(long)seconds) * 1e9);
    t.tv_sec += (time_t)seconds + ns / 1000000000L;
    t.tv_nsec = ns % 1000000000L;
    return t;
}

void srv_drain(srv_server *s, double grace_s) {
    if (!s) return;
    begin_stopping(s);
    struct timespec until = deadline_in(grace_s);
    pthread_mutex_lock(&s->mu);
    WAIT_UNTIL(s->n_active == 0, until);
    pthread_mutex_unlock(&s->mu);
    end_streams(s, 1);
    /* the last chunks and replies go out, unless a client stops reading */
    until = deadline_in(5.0);
    pthread_mutex_lock(&s->mu);
    s->hurry = 0;
    WAIT_UNTIL(s->n_gen_conns == 0, until);
    pthread_mutex_unlock(&s->mu);
}

void srv_drain_now(srv_server *s) {
    pthread_mutex_lock(&s->mu);
    s->hurry = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}
