/* serve/serve.c — the OpenAI-compatible HTTP server (libmicrohttpd, cJSON)
 * over a srv_backend.  Touches its sockets, its own state, the backend
 * through its operations and the sinks it hands the backend.
 *
 * Sections: helpers; the stream (a request's output, shared by the HTTP
 * thread and the engine thread); JSON/SSE rendering; request parsing; routes;
 * the daemon.
 *
 * A generation request's life:
 *   access handler (HTTP thread): body complete -> parse -> stream_new ->
 *     registered in srv->active -> backend submit
 *   stream=false: the connection is suspended until on_finish resumes it;
 *     the handler runs again and answers with one JSON object
 *   stream=true: an SSE response whose reader (HTTP thread) suspends the
 *     connection whenever there is nothing to send; on_tokens/on_finish
 *     (engine thread) resume it
 *   request completed (HTTP thread): aborts the backend request if the
 *     client went away before it finished
 * The stream is reference counted: the connection, the SSE response and the
 * backend (until on_finish) each hold one reference.
 */
#include "serve/serve.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <math.h>
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

#include "text/chat_template.h"
#include "serve/prometheus.h"
#include "base/clock.h"
#include "base/strbuf.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Length of a valid UTF-8 sequence at s (n bytes left), 0 if invalid or cut. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    if (s[0] < 0x80) return 1;
    size_t k = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!k || k > n || (k == 2 && s[0] < 0xC2)) return 0;
    for (size_t i = 1; i < k; i++) if ((s[i] & 0xC0) != 0x80) return 0;
    if (k == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))) return 0;
    if (k == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || s[0] > 0xF4 || (s[0] == 0xF4 && s[1] >= 0x90))) return 0;
    return k;
}

/* A NUL-terminated copy of n bytes with invalid UTF-8 replaced by U+FFFD, so
 * that the JSON we write is valid.  NULL when out of memory. */
static char *utf8_clean(const char *p, size_t n) {
    char *o = malloc(3 * n + 1);
    if (!o) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; ) {
        size_t k = utf8_seq((const unsigned char *)p + i, n - i);
        if (k && p[i] != 0) { memcpy(o + j, p + i, k); j += k; i += k; }
        else { memcpy(o + j, "\xEF\xBF\xBD", 3); j += 3; i++; }
    }
    o[j] = 0;
    return o;
}

/* ---- the server object -------------------------------------------------------- */

typedef struct stream stream;

struct srv_server {
    srv_opts o;
    const chat_tpl *tpl;         /* o.chat_template, or own_tpl */
    chat_tpl *own_tpl;           /* qwen3's, when the options name none */
    char *host, *api_key, *model;
    srv_backend *be;
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;          /* guards stopping, active, n_active; taken before a
                                    stream's mu, never after */
    pthread_mutex_t logmu;       /* guards lastlog (MHD may log under a stream's mu) */
    pthread_cond_t cv;           /* signalled when n_active drops */
    int stopping;
    stream *active;              /* streams whose backend request has not finished */
    int n_active;
    uint64_t next_id;
    unsigned salt;               /* makes response ids differ across servers */
    atomic_long counts[3];       /* atomic: bumped while a stream's lock is held */
    char lastlog[256];
    prom_registry *reg;
    prom_metric *m_running, *m_waiting, *m_kv, *m_preempt, *m_prompt, *m_gen, *m_success,
                *m_ttft, *m_tpot, *m_e2e;
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

/* ---- the stream ----------------------------------------------------------------- */

enum { KIND_CHAT, KIND_COMPLETION };

struct stream {
    srv_sink sink;               /* first: the backend calls back through it */
    srv_server *srv;
    pthread_mutex_t mu;          /* guards everything below except the list links */
    int refs;
    struct MHD_Connection *conn;
    int suspended;               /* we suspended conn and nobody resumed it yet */
    int kind, is_stream, include_usage;
    char id[48];
    long created;
    char **stop;                 /* (n_stop,) stop strings */
    int n_stop;
    size_t max_stop;             /* longest stop string, bytes */
    char *text;                  /* (cap,) generated text kept (cut at a stop string) */
    size_t len, cap;
    size_t emitted;              /* bytes of text already sent as SSE */
    int n_tokens;                /* completion tokens accepted */
    int stop_hit;
    int finished, cut;           /* cut: aborted by srv_stop, the stream is broken off */
    srv_finish_info fin;
    char errmsg[256];
    uint64_t be_id;
    char *out;                   /* (out_cap,) SSE bytes ready; out_off already sent */
    size_t out_len, out_off, out_cap;
    int sent_role, sent_final;
    double t_submit, t_first, t_last;
    stream *prev, *next;         /* srv->active, under srv->mu */
};

static void stream_unref(stream *st) {
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left) return;
    for (int i = 0; i < st->n_stop; i++) free(st->stop[i]);
    free(st->stop);
    free(st->text);
    free(st->out);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* The first match of a stop string starting at or after byte `from`, or -1. */
static long find_stop(const stream *st, size_t from) {
    long best = -1;
    for (int i = 0; i < st->n_stop; i++) {
        const char *p = memmem(st->text + from, st->len - from, st->stop[i], strlen(st->stop[i]));
        if (p && (best < 0 || p - st->text < best)) best = p - st->text;
    }
    return best;
}

static void resume(struct MHD_Connection *c) { if (c) MHD_resume_connection(c); }

/* Engine thread: new tokens.  Keeps the text, cuts it at a stop string and
 * asks the backend to stop there, wakes the connection. */
static int st_on_tokens(srv_sink *sk, const int32_t *ids, size_t n, const char *text, size_t len) {
    stream *st = (stream *)sk;
    srv_server *s = st->srv;
    double t = clock_now_s();
    pthread_mutex_lock(&st->mu);
    if (st->stop_hit || st->finished) { pthread_mutex_unlock(&st->mu); return 1; }
    if (n) {
        if (st->t_first == 0) {
            prom_observe(s->m_ttft, t - st->t_submit);
            st->t_first = t;
        } else {
            for (size_t i = 0; i < n; i++) prom_observe(s->m_tpot, (t - st->t_last) / (double)n);
        }
        st->t_last = t;
        st->n_tokens += (int)n;
    }
    size_t old = st->len;
    int oom = strbuf_add(&st->text, &st->len, &st->cap, text, len);
    if (!oom && st->n_stop) {
        size_t from = old >= st->max_stop ? old - st->max_stop + 1 : 0;
        long at = find_stop(st, from);
        if (at >= 0) { st->len = (size_t)at; st->text[at] = 0; st->stop_hit = 1; }
    }
    if (oom) snprintf(st->errmsg, sizeof st->errmsg, "out of memory");
    struct MHD_Connection *wake = st->suspended ? st->conn : NULL;
    st->suspended = 0;
    int ret = st->stop_hit || oom;
    pthread_mutex_unlock(&st->mu);
    (void)ids;
    resume(wake);
    return ret;
}

/* Engine thread: the request is over.  Records it, wakes the connection,
 * leaves the active list and drops the backend's reference. */
static void st_on_finish(srv_sink *sk, const srv_finish_info *info) {
    stream *st = (stream *)sk;
    srv_server *s = st->srv;
    double t = clock_now_s();
    pthread_mutex_lock(&st->mu);
    st->fin = *info;
    if (st->stop_hit && info->reason == SRV_FINISH_ABORT) st->fin.reason = SRV_FINISH_STOP;
    if (st->errmsg[0] && info->reason != SRV_FINISH_ERROR) st->fin.reason = SRV_FINISH_ERROR;
    if (info->reason == SRV_FINISH_ERROR)
        snprintf(st->errmsg, sizeof st->errmsg, "%s", info->error ? info->error : "generation failed");
    st->fin.error = st->errmsg[0] ? st->errmsg : NULL;
    st->finished = 1;
    int completed = st->fin.reason != SRV_FINISH_ABORT && st->fin.reason != SRV_FINISH_ERROR;
    int ptoks = info->prompt_tokens, ctoks = st->n_tokens;
    double e2e = t - st->t_submit;
    struct MHD_Connection *wake = st->suspended ? st->conn : NULL;
    st->suspended = 0;
    pthread_mutex_unlock(&st->mu);
    prom_inc(s->m_prompt, ptoks);
    prom_inc(s->m_gen, ctoks);
    if (completed) { prom_inc(s->m_success, 1); prom_observe(s->m_e2e, e2e); }
    resume(wake);                /* before leaving the list: srv_stop waits on it */
    pthread_mutex_lock(&s->mu);
    if (st->prev) st->prev->next = st->next; else s->active = st->next;
    if (st->next) st->next->prev = st->prev;
    st->prev = st->next = NULL;
    s->n_active--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    stream_unref(st);
}

static const char *finish_name(srv_finish_reason r) {
    return r == SRV_FINISH_LENGTH ? "length" : r == SRV_FINISH_STOP ? "stop" : "abort";
}

/* ---- JSON and SSE rendering ---------------------------------------------------- */

/* {"error": {"message", "type", "param": null, "code"}} as a malloc'd string. */
static char *error_json(const char *type, const char *msg, const char *code) {
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code); else cJSON_AddNullToObject(e, "code");
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return txt;
}

static cJSON *usage_json(int prompt, int completion) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", completion);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + completion);
    return u;
}

/* The head of every response or chunk object. */
static cJSON *object_head(const stream *st, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", st->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)st->created);
    cJSON_AddStringToObject(root, "model", st->srv->model);
    return root;
}

/* The whole reply of a finished, non-streamed request. */
static char *final_json(const stream *st) {
    int chat = st->kind == KIND_CHAT;
    cJSON *root = object_head(st, chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    char *text = utf8_clean(st->text ? st->text : "", st->len);
    if (chat) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text ? text : "");
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
    }
    free(text);
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddStringToObject(c, "finish_reason", finish_name(st->fin.reason));
    cJSON_AddItemToObject(root, "usage", usage_json(st->fin.prompt_tokens, st->n_tokens));
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return txt;
}

/* Appends "data: <json>\n\n" (json consumed) to the stream's SSE buffer. */
static void sse_add(stream *st, cJSON *root) {
    char *j = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!j) return;
    strbuf_add(&st->out, &st->out_len, &st->out_cap, "data: ", 6);
    strbuf_add(&st->out, &st->out_len, &st->out_cap, j, strlen(j));
    strbuf_add(&st->out, &st->out_len, &st->out_cap, "\n\n", 2);
    free(j);
}

/* One chunk: content (n bytes, may be NULL), role, finish reason. */
static cJSON *chunk(const stream *st, const char *content, size_t n, int role, const char *finish) {
    int chat = st->kind == KIND_CHAT;
    cJSON *root = object_head(st, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    char *text = content ? utf8_clean(content, n) : NULL;
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (text || role) cJSON_AddStringToObject(d, "content", text ? text : "");
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
    }
    free(text);
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    return root;
}

/* End of the text that may be sent now: all of it once finished; before,
 * hold back what could start a stop string and a cut UTF-8 character. */
static size_t sendable_end(const stream *st) {
    if (st->finished || st->stop_hit) return st->len;
    size_t end = st->len;
    if (st->max_stop > 1) end = end > st->max_stop - 1 ? end - (st->max_stop - 1) : 0;
    if (end <= st->emitted) return st->emitted;
    /* back off over a UTF-8 character that is not complete before end */
    size_t k = end, cont = 0;
    while (k > st->emitted && cont < 3 && ((unsigned char)st->text[k - 1] & 0xC0) == 0x80) { k--; cont++; }
    if (k > st->emitted) {
        unsigned char lead = (unsigned char)st->text[k - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (need > cont + 1 && need <= 4) end = k - 1;
    }
    return end;
}

/* HTTP thread: the SSE response's reader. */
static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    stream *st = cls;
    (void)pos;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (st->out_off < st->out_len) {
            size_t n = st->out_len - st->out_off;
            if (n > max) n = max;
            memcpy(buf, st->out + st->out_off, n);
            st->out_off += n;
            pthread_mutex_unlock(&st->mu);
            return (ssize_t)n;
        }
        st->out_len = st->out_off = 0;
        if (st->cut) { pthread_mutex_unlock(&st->mu); return MHD_CONTENT_READER_END_WITH_ERROR; }
        if (st->kind == KIND_CHAT && !st->sent_role) {
            sse_add(st, chunk(st, NULL, 0, 1, NULL));
            st->sent_role = 1;
        }
        size_t end = sendable_end(st);
        if (end > st->emitted) {
            sse_add(st, chunk(st, st->text + st->emitted, end - st->emitted, 0, NULL));
            st->emitted = end;
        }
        if (st->finished && !st->sent_final) {
            if (st->fin.reason == SRV_FINISH_ERROR) {
                char *e = error_json("server_error", st->errmsg, NULL);
                cJSON *ej = e ? cJSON_Parse(e) : NULL;
                free(e);
                sse_add(st, ej);
            } else {
                sse_add(st, chunk(st, NULL, 0, 0, finish_name(st->fin.reason)));
                if (st->include_usage) {
                    cJSON *u = object_head(st, st->kind == KIND_CHAT ? "chat.completion.chunk" : "text_completion");
                    cJSON_AddArrayToObject(u, "choices");
                    cJSON_AddItemToObject(u, "usage", usage_json(st->fin.prompt_tokens, st->n_tokens));
                    sse_add(st, u);
                }
            }
            strbuf_add(&st->out, &st->out_len, &st->out_cap, "data: [DONE]\n\n", 14);
            st->sent_final = 1;
        }
        if (st->out_len) continue;
        if (st->sent_final) { pthread_mutex_unlock(&st->mu); return MHD_CONTENT_READER_END_OF_STREAM; }
        /* nothing to send: sleep until the engine thread resumes us */
        st->suspended = 1;
        MHD_suspend_connection(st->conn);
        pthread_mutex_unlock(&st->mu);
        return 0;
    }
}

static void sse_free(void *cls) { stream_unref(cls); }

/* ---- responses ---------------------------------------------------------------------- */

/* Per-connection state (MHD's con_cls). */
typedef struct {
    char *body;                  /* (cap,) request body, NUL-terminated */
    size_t len, cap;
    int too_big;
    int responded;               /* a response was queued before the body was read */
    stream *st;                  /* a submitted generation, or NULL */
} conn_ctx;

static enum MHD_Result send_text(srv_server *s, struct MHD_Connection *c, unsigned status,
                                 const char *ctype, char *body /* malloc'd, consumed */) {
    if (!body) { status = MHD_HTTP_INTERNAL_SERVER_ERROR; ctype = "text/plain"; body = strdup("out of memory"); }
    struct MHD_Response *r = MHD_create_response_from_buffer(body ? strlen(body) : 0, body,
                                                             MHD_RESPMEM_MUST_FREE);
    if (!r) { free(body); return MHD_NO; }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == MHD_HTTP_UNAUTHORIZED) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    atomic_fetch_add(&s->counts[status < 400 ? 0 : status < 500 ? 1 : 2], 1);
    return ret;
}

static enum MHD_Result send_error(srv_server *s, struct MHD_Connection *c, unsigned status,
                                  const char *type, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_text(s, c, status, "application/json", error_json(type, msg, code));
}

#define BAD(...) send_error(s, c, MHD_HTTP_BAD_REQUEST, "invalid_request_error", NULL, __VA_ARGS__)

/* ---- the chat template ----------------------------------------------------------------
 * The single place where chat messages become a prompt: text/chat_template.h
 * renders them with srv_opts.chat_template (the model's own template, or a
 * family's).  A content given as text parts is joined; "developer" is taken
 * as "system".  NULL with msg: the template refused them, or out of memory. */
static char *render_chat(srv_server *s, const cJSON *messages, int enable_thinking, char *msg, size_t cap) {
    int n = cJSON_GetArraySize(messages), i = 0;
    chat_msg *msgs = calloc((size_t)n, sizeof *msgs);
    char **owned = calloc((size_t)n, sizeof *owned);   /* (n,) joined text parts */
    char *p = NULL;
    if (!msgs || !owned) goto out;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        msgs[i].role = !strcmp(role, "developer") ? "system" : role;
        if (cJSON_IsString(content)) msgs[i].content = content->valuestring;
        else if (cJSON_IsArray(content)) {
            size_t len = 0, cap = 0;
            const cJSON *part;
            if (strbuf_add(&owned[i], &len, &cap, "", 0)) goto out;
            cJSON_ArrayForEach(part, content) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (strbuf_add(&owned[i], &len, &cap, t->valuestring, strlen(t->valuestring))) goto out;
            }
            msgs[i].content = owned[i];
        } else msgs[i].content = "";                  /* an assistant turn with null content */
        i++;
    }
    char e[400];
    if (!(p = chat_tpl_apply(s->tpl, msgs, n, 1, enable_thinking, NULL, e, sizeof e)))
        snprintf(msg, cap, "chat template: %s", e);
out:
    if (!p && !msg[0]) snprintf(msg, cap, "out of memory");
    for (int k = 0; owned && k < n; k++) free(owned[k]);
    free(owned);
    free(msgs);
    return p;
}

/* ---- request parsing ------------------------------------------------------------------- */

typedef struct {
    srv_gen_params gp;
    int stream, include_usage, enable_thinking;
    char **stop;                 /* (n_stop,) owned */
    int n_stop;
    char *prompt;                /* owned: rendered chat or the completion prompt */
    int32_t *ids;                /* (gp.n_prompt_ids,) owned */
} gen_req;

static void gen_req_free(gen_req *g) {
    for (int i = 0; i < g->n_stop; i++) free(g->stop[i]);
    free(g->stop);
    free(g->prompt);
    free(g->ids);
}

/* Reads an optional number field into *out; 0 ok/absent, -1 wrong type. */
static int opt_number(const cJSON *root, const char *key, double *out, int *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (present) *present = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return -1;
    *out = v->valuedouble;
    if (present) *present = 1;
    return 0;
}

static int is_integer(double v) { return v == floor(v) && fabs(v) < 9.007199254740992e15; }

/* Parses the fields both endpoints share.  Returns 0, or -1 with msg set. */
static int parse_common(srv_server *s, const cJSON *root, gen_req *g, int chat, char *msg, size_t cap) {
    const cJSON *v;
    v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (v && !cJSON_IsNull(v) && !cJSON_IsString(v)) { snprintf(msg, cap, "'model' must be a string"); return -1; }
    double d;
    int present;
    g->gp.temperature = 1.0;
    if (opt_number(root, "temperature", &g->gp.temperature, NULL) || g->gp.temperature < 0) {
        snprintf(msg, cap, "'temperature' must be a number >= 0"); return -1;
    }
    g->gp.top_p = 1.0;
    if (opt_number(root, "top_p", &g->gp.top_p, NULL) || !(g->gp.top_p > 0 && g->gp.top_p <= 1)) {
        snprintf(msg, cap, "'top_p' must be a number in (0, 1]"); return -1;
    }
    g->gp.max_tokens = s->o.max_tokens_limit;
    const char *mt = "max_tokens";
    if (opt_number(root, mt, &d, &present)) { snprintf(msg, cap, "'max_tokens' must be an integer"); return -1; }
    if (!present && chat) {
        mt = "max_completion_tokens";
        if (opt_number(root, mt, &d, &present)) { snprintf(msg, cap, "'%s' must be an integer", mt); return -1; }
    }
    if (present) {
        if (!is_integer(d) || d < 1) { snprintf(msg, cap, "'%s' must be an integer >= 1, got %g", mt, d); return -1; }
        if (d > s->o.max_tokens_limit) {
            snprintf(msg, cap, "'%s' is %.0f, above this server's limit of %d", mt, d, s->o.max_tokens_limit);
            return -1;
        }
        g->gp.max_tokens = (int)d;
    }
    if (opt_number(root, "seed", &d, &present) || (present && !is_integer(d))) {
        snprintf(msg, cap, "'seed' must be an integer"); return -1;
    }
    if (present) { g->gp.seed = (uint64_t)(int64_t)d; g->gp.has_seed = 1; }
    if (opt_number(root, "n", &d, &present) || (present && d != 1)) {
        snprintf(msg, cap, "'n' must be 1: one choice per request is supported"); return -1;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (v && !cJSON_IsNull(v) && !cJSON_IsBool(v)) { snprintf(msg, cap, "'stream' must be a boolean"); return -1; }
    g->stream = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) { snprintf(msg, cap, "'stream_options' must be an object"); return -1; }
        g->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "include_usage"));
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (v && !cJSON_IsNull(v)) {
        int n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
        if (n < 0 || n > 16) { snprintf(msg, cap, "'stop' must be a string or an array of at most 16 strings"); return -1; }
        g->stop = calloc((size_t)n + 1, sizeof *g->stop);
        if (!g->stop) { snprintf(msg, cap, "out of memory"); return -1; }
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_IsString(v) ? v : cJSON_GetArrayItem(v, i);
            if (!cJSON_IsString(e) || !e->valuestring[0]) {
                snprintf(msg, cap, "'stop' entries must be non-empty strings"); return -1;
            }
            if (!(g->stop[g->n_stop++] = strdup(e->valuestring))) { snprintf(msg, cap, "out of memory"); return -1; }
        }
    }
    g->enable_thinking = -1;                 /* not given: the template's own default */
    v = cJSON_GetObjectItemCaseSensitive(root, "chat_template_kwargs");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) { snprintf(msg, cap, "'chat_template_kwargs' must be an object"); return -1; }
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(v, "enable_thinking");
        if (et && !cJSON_IsBool(et)) { snprintf(msg, cap, "'enable_thinking' must be a boolean"); return -1; }
        if (et) g->enable_thinking = cJSON_IsTrue(et);
    }
    return 0;
}

static int parse_messages(srv_server *s, const cJSON *root, gen_req *g, char *msg, size_t cap) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) == 0) {
        snprintf(msg, cap, "'messages' must be a non-empty array"); return -1;
    }
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            snprintf(msg, cap, "messages[%d] must be an object with a string 'role'", i); return -1;
        }
        const char *r = role->valuestring;
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "developer")) {
            snprintf(msg, cap, "messages[%d].role '%.40s' is not system, developer, user or assistant", i, r);
            return -1;
        }
        if (cJSON_IsArray(content)) {
            const cJSON *part;
            int k = 0;
            cJSON_ArrayForEach(part, content) {
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx)) {
                    snprintf(msg, cap, "messages[%d].content[%d]: only {\"type\": \"text\", \"text\": ...} parts are supported", i, k);
                    return -1;
                }
                k++;
            }
        } else if (!cJSON_IsString(content) && !(cJSON_IsNull(content) && !strcmp(r, "assistant"))) {
            snprintf(msg, cap, "messages[%d].content must be a string or an array of text parts", i);
            return -1;
        }
        i++;
    }
    msg[0] = 0;
    if (!(g->prompt = render_chat(s, ms, g->enable_thinking, msg, cap))) return -1;
    g->gp.prompt = g->prompt;
    return 0;
}

/* prompt: a string, [string], [int...] or [[int...]]; one prompt only. */
static int parse_prompt(const cJSON *root, gen_req *g, char *msg, size_t cap) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 &&
        (cJSON_IsString(p->child) || cJSON_IsArray(p->child))) p = p->child;
    if (cJSON_IsString(p)) {
        if (!(g->prompt = strdup(p->valuestring))) { snprintf(msg, cap, "out of memory"); return -1; }
        g->gp.prompt = g->prompt;
        return 0;
    }
    int n = cJSON_IsArray(p) ? cJSON_GetArraySize(p) : 0;
    if (n == 0) {
        snprintf(msg, cap, "'prompt' must be a string or a non-empty array of token ids (one prompt per request)");
        return -1;
    }
    g->ids = malloc((size_t)n * sizeof *g->ids);
    if (!g->ids) { snprintf(msg, cap, "out of memory"); return -1; }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, p) {
        if (!cJSON_IsNumber(e) || !is_integer(e->valuedouble) || e->valuedouble < 0 || e->valuedouble > INT32_MAX) {
            snprintf(msg, cap, "'prompt'[%d] is not a token id (one prompt per request)", i); return -1;
        }
        g->ids[i++] = (int32_t)e->valuedouble;
    }
    g->gp.prompt_ids = g->ids;
    g->gp.n_prompt_ids = (size_t)n;
    return 0;
}

/* ---- generation routes ---------------------------------------------------------------- */

/* Builds, registers and submits a stream.  Returns it (one reference for the
 * connection, one for the backend) or NULL after sending an error. */
static stream *start_generation(srv_server *s, struct MHD_Connection *c, gen_req *g, int kind,
                                enum MHD_Result *ret) {
    stream *st = calloc(1, sizeof *st);
    if (!st) { *ret = send_error(s, c, 500, "server_error", NULL, "out of memory"); return NULL; }
    pthread_mutex_init(&st->mu, NULL);
    st->sink.on_tokens = st_on_tokens;
    st->sink.on_finish = st_on_finish;
    st->srv = s;
    st->refs = 2;
    st->conn = c;
    st->kind = kind;
    st->is_stream = g->stream;
    st->include_usage = g->include_usage;
    st->created = (long)time(NULL);
    g->gp.stop = (const char *const *)g->stop;
    g->gp.n_stop = g->n_stop;
    st->stop = g->stop; st->n_stop = g->n_stop;
    g->stop = NULL; g->n_stop = 0;
    for (int i = 0; i < st->n_stop; i++)
        if (strlen(st->stop[i]) > st->max_stop) st->max_stop = strlen(st->stop[i]);
    st->t_submit = clock_now_s();
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    uint64_t n = ++s->next_id;
    if (!stopping) {
        st->next = s->active;
        if (s->active) s->active->prev = st;
        s->active = st;
        s->n_active++;
    }
    pthread_mutex_unlock(&s->mu);
    snprintf(st->id, sizeof st->id, "%s-%08x%08llx", kind == KIND_CHAT ? "chatcmpl" : "cmpl",
             s->salt, (unsigned long long)n);
    char err[256] = "";
    uint64_t id = 0;
    if (!stopping && s->be->submit(s->be->self, &g->gp, &st->sink, &id, err, sizeof err) == 0) {
        pthread_mutex_lock(&st->mu);
        st->be_id = id;
        pthread_mutex_unlock(&st->mu);
        pthread_mutex_lock(&s->mu);
        stopping = s->stopping;  /* srv_stop began meanwhile and could not abort it */
        pthread_mutex_unlock(&s->mu);
        if (stopping) s->be->abort(s->be->self, id);
        return st;
    }
    if (!stopping) {             /* submit failed: never reaches on_finish */
        pthread_mutex_lock(&s->mu);
        if (st->prev) st->prev->next = st->next; else s->active = st->next;
        if (st->next) st->next->prev = st->prev;
        s->n_active--;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    st->refs = 1;
    stream_unref(st);
    if (stopping) *ret = send_error(s, c, 503, "server_error", NULL, "the server is shutting down");
    else *ret = BAD("%s", err);
    return NULL;
}

static enum MHD_Result reply_finished(srv_server *s, struct MHD_Connection *c, stream *st) {
    /* st->mu held by the caller */
    if (st->cut) return send_error(s, c, 503, "server_error", NULL, "the server is shutting down");
    if (st->fin.reason == SRV_FINISH_ERROR)
        return send_error(s, c, 500, "server_error", NULL, "%s", st->errmsg);
    return send_text(s, c, 200, "application/json", final_json(st));
}

/* The second and later calls for a submitted generation (after a resume). */
static enum MHD_Result continue_generation(srv_server *s, struct MHD_Connection *c, stream *st) {
    pthread_mutex_lock(&st->mu);
    enum MHD_Result ret = MHD_YES;
    if (st->finished) ret = reply_finished(s, c, st);
    else { st->suspended = 1; MHD_suspend_connection(c); }
    pthread_mutex_unlock(&st->mu);
    return ret;
}

static enum MHD_Result handle_generation(srv_server *s, struct MHD_Connection *c, conn_ctx *cx, int kind) {
    char msg[512] = "";
    cJSON *root = cJSON_ParseWithLength(cx->body ? cx->body : "", cx->len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && cx->body && at >= cx->body && at <= cx->body + cx->len ? at - cx->body : (long)cx->len;
        return BAD("malformed JSON in the request body near byte %ld", off);
    }
    if (!cJSON_IsObject(root)) { cJSON_Delete(root); return BAD("the request body must be a JSON object"); }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(model) && strcmp(model->valuestring, s->model) != 0) {
        enum MHD_Result r = send_error(s, c, 404, "invalid_request_error", "model_not_found",
                                       "The model `%.100s` does not exist; this server serves `%.100s`.",
                                       model->valuestring, s->model);
        cJSON_Delete(root);
        return r;
    }
    gen_req g = {0};
    int bad = parse_common(s, root, &g, kind == KIND_CHAT, msg, sizeof msg);
    if (!bad) bad = kind == KIND_CHAT ? parse_messages(s, root, &g, msg, sizeof msg)
                                      : parse_prompt(root, &g, msg, sizeof msg);
    cJSON_Delete(root);
    if (bad) { gen_req_free(&g); return BAD("%s", msg); }
    enum MHD_Result ret = MHD_YES;
    stream *st = start_generation(s, c, &g, kind, &ret);
    gen_req_free(&g);
    if (!st) return ret;
    cx->st = st;
    if (!st->is_stream) return continue_generation(s, c, st);
    pthread_mutex_lock(&st->mu);
    st->refs++;                  /* the response's reference */
    pthread_mutex_unlock(&st->mu);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                               sse_reader, st, sse_free);
    if (!r) { stream_unref(st); return MHD_NO; }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
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
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return send_text(s, c, 200, "application/json", txt);
}

static enum MHD_Result handle_metrics(srv_server *s, struct MHD_Connection *c) {
    srv_backend_stats bs = {0};
    s->be->stats(s->be->self, &bs);
    prom_set(s->m_running, bs.running);
    prom_set(s->m_waiting, bs.waiting);
    prom_set(s->m_kv, bs.kv_usage);
    prom_set(s->m_preempt, (double)bs.preemptions);
    return send_text(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", prom_render(s->reg, NULL));
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
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
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
    case 0: return stopping ? send_error(s, c, 503, "server_error", NULL, "the server is shutting down")
                            : send_text(s, c, 200, "text/plain", strdup(""));
    case 1: return handle_metrics(s, c);
    case 2: return handle_models(s, c);
    case 3: return handle_generation(s, c, cx, KIND_CHAT);
    default: return handle_generation(s, c, cx, KIND_COMPLETION);
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
    if (s->o.log) {
        srv_logf(s, "%s %s", method, url);
    }
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    srv_server *s = cls;
    conn_ctx *cx = *con_cls;
    (void)c; (void)toe;
    if (!cx) return;
    *con_cls = NULL;
    if (cx->st) {
        pthread_mutex_lock(&cx->st->mu);
        int running = !cx->st->finished;
        uint64_t id = cx->st->be_id;
        cx->st->conn = NULL;
        pthread_mutex_unlock(&cx->st->mu);
        if (running) s->be->abort(s->be->self, id);    /* the client went away */
        stream_unref(cx->st);
    }
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
    o->conn_timeout_s = 600;
    o->chat_template = NULL;
}

static void free_server(srv_server *s) {
    chat_tpl_free(s->own_tpl);
    prom_free(s->reg);
    free(s->host); free(s->api_key); free(s->model);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->logmu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int add_metrics(srv_server *s) {
    static const double ttft_b[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                                    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
    static const double tpot_b[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
                                    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
    static const double e2e_b[] = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                                   50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
    prom_registry *r = s->reg;
    s->m_running = prom_add_metric(r, PROM_GAUGE, "vllm:num_requests_running", "Number of requests in model execution batches.", NULL, 0);
    s->m_waiting = prom_add_metric(r, PROM_GAUGE, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", NULL, 0);
    s->m_kv = prom_add_metric(r, PROM_GAUGE, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", NULL, 0);
    s->m_preempt = prom_add_metric(r, PROM_COUNTER, "vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.", NULL, 0);
    s->m_prompt = prom_add_metric(r, PROM_COUNTER, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", NULL, 0);
    s->m_gen = prom_add_metric(r, PROM_COUNTER, "vllm:generation_tokens_total", "Number of generation tokens processed.", NULL, 0);
    s->m_success = prom_add_metric(r, PROM_COUNTER, "vllm:request_success_total", "Count of successfully processed requests.", NULL, 0);
    s->m_ttft = prom_add_metric(r, PROM_HISTOGRAM, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                                ttft_b, sizeof ttft_b / sizeof *ttft_b);
    s->m_tpot = prom_add_metric(r, PROM_HISTOGRAM, "vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.",
                                tpot_b, sizeof tpot_b / sizeof *tpot_b);
    s->m_e2e = prom_add_metric(r, PROM_HISTOGRAM, "vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
                               e2e_b, sizeof e2e_b / sizeof *e2e_b);
    return s->m_running && s->m_waiting && s->m_kv && s->m_preempt && s->m_prompt && s->m_gen &&
           s->m_success && s->m_ttft && s->m_tpot && s->m_e2e ? 0 : -1;
}

srv_server *srv_start(const srv_opts *o, srv_backend *b, char *err, size_t errcap) {
    srv_opts d;
    if (!o) { srv_opts_init(&d); o = &d; }
    if (!b || !b->submit || !b->abort || !b->stats) { snprintf(err, errcap, "serve: no backend"); return NULL; }
    if (o->port < 0 || o->port > 65535 || o->max_body < 1 || o->max_tokens_limit < 1 || o->conn_limit < 1) {
        snprintf(err, errcap, "serve: port must be 0..65535 and max_body, max_tokens_limit, conn_limit >= 1");
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
    s->api_key = o->api_key && *o->api_key ? strdup(o->api_key) : NULL;
    s->model = strdup(b->model && *b->model ? b->model : "model");
    s->o.host = s->host; s->o.api_key = s->api_key;
    char labels[300], esc[260];
    size_t j = 0;
    for (const char *p = s->model ? s->model : ""; *p && j + 2 < sizeof esc; p++) {
        if (*p == '"' || *p == '\\') esc[j++] = '\\';
        esc[j++] = *p == '\n' ? ' ' : *p;
    }
    esc[j] = 0;
    snprintf(labels, sizeof labels, "model_name=\"%s\"", esc);
    s->reg = prom_create(labels);
    if (!o->chat_template) s->own_tpl = chat_tpl_named(CHAT_QWEN3);
    s->tpl = o->chat_template ? o->chat_template : s->own_tpl;
    if (!s->host || !s->model || (o->api_key && *o->api_key && !s->api_key) || !s->reg || add_metrics(s) || !s->tpl) {
        snprintf(err, errcap, "out of memory");
        free_server(s);
        return NULL;
    }
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
                            MHD_OPTION_CONNECTION_TIMEOUT, o->conn_timeout_s,
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

void srv_stop(srv_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    size_t n = 0;
    for (stream *st = s->active; st; st = st->next) n++;
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    n = 0;
    for (stream *st = s->active; st && ids; st = st->next) {
        pthread_mutex_lock(&st->mu);
        st->cut = 1;             /* break the stream off: clients must see a failure */
        ids[n++] = st->be_id;
        pthread_mutex_unlock(&st->mu);
    }
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) s->be->abort(s->be->self, ids[i]);
    free(ids);
    pthread_mutex_lock(&s->mu);
    while (s->n_active > 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    /* every suspended connection has been resumed by its on_finish */
    MHD_stop_daemon(s->d);
    free_server(s);
}
