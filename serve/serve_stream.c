/* serve/serve_stream.c — a request's output between the engine thread and
 * the HTTP thread (see serve_stream.h).  Touches its own buffers, its
 * connection (suspend/resume) and the metrics it is given. */
#include "serve/serve_stream.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/strbuf.h"

void srv_stream_ref(srv_stream *st) {
    pthread_mutex_lock(&st->mu);
    st->refs++;
    pthread_mutex_unlock(&st->mu);
}

void srv_stream_unref(srv_stream *st) {
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left) return;
    for (int i = 0; i < st->n_stop; i++) free(st->stop[i]);
    free(st->stop);
    for (int i = 0; i < st->n_choices; i++) free(st->ch[i].text);
    free(st->ch);
    free(st->out);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* The first match of a stop string in choice c starting at or after byte
 * `from`, or -1. */
static long find_stop(const srv_stream *st, const srv_choice *c, size_t from) {
    long best = -1;
    for (int i = 0; i < st->n_stop; i++) {
        const char *p = memmem(c->text + from, c->len - from, st->stop[i], strlen(st->stop[i]));
        if (p && (best < 0 || p - c->text < best)) best = p - c->text;
    }
    return best;
}

static void resume(struct MHD_Connection *c) { if (c) MHD_resume_connection(c); }

/* Engine thread: new tokens.  Keeps the text, cuts it at a stop string and
 * asks the backend to stop there, wakes the connection. */
static int on_tokens(srv_sink *sk, const int32_t *ids, size_t n, const char *text, size_t len) {
    srv_stream *st = (srv_stream *)sk;
    srv_choice *c = &st->ch[0];
    double t = clock_now_s();
    (void)ids;
    pthread_mutex_lock(&st->mu);
    if (c->stop_hit || st->finished) { pthread_mutex_unlock(&st->mu); return 1; }
    if (n) {
        if (st->t_first == 0) {
            prom_observe(st->metrics->ttft, t - st->t_submit);
            st->t_first = t;
        } else {
            for (size_t i = 0; i < n; i++) prom_observe(st->metrics->tpot, (t - c->t_last) / (double)n);
        }
        c->t_last = t;
        c->n_tokens += (int)n;
    }
    size_t old = c->len;
    int oom = strbuf_add(&c->text, &c->len, &c->cap, text, len);
    if (!oom && st->n_stop) {
        size_t from = old >= st->max_stop ? old - st->max_stop + 1 : 0;
        long at = find_stop(st, c, from);
        if (at >= 0) { c->len = (size_t)at; c->text[at] = 0; c->stop_hit = 1; }
    }
    if (oom) snprintf(st->errmsg, sizeof st->errmsg, "out of memory");
    struct MHD_Connection *wake = st->suspended ? st->conn : NULL;
    st->suspended = 0;
    int ret = c->stop_hit || oom;
    pthread_mutex_unlock(&st->mu);
    resume(wake);
    return ret;
}

/* Engine thread: the request is over.  Records it, wakes the connection,
 * lets the server unlist it and drops the backend's reference. */
static void on_finish(srv_sink *sk, const srv_finish_info *info) {
    srv_stream *st = (srv_stream *)sk;
    double t = clock_now_s();
    pthread_mutex_lock(&st->mu);
    st->fin = *info;
    if (st->ch[0].stop_hit && info->reason == SRV_FINISH_ABORT) st->fin.reason = SRV_FINISH_STOP;
    if (st->errmsg[0] && info->reason != SRV_FINISH_ERROR) st->fin.reason = SRV_FINISH_ERROR;
    if (info->reason == SRV_FINISH_ERROR)
        snprintf(st->errmsg, sizeof st->errmsg, "%s", info->error ? info->error : "generation failed");
    st->fin.error = st->errmsg[0] ? st->errmsg : NULL;
    st->finished = 1;
    int completed = st->fin.reason != SRV_FINISH_ABORT && st->fin.reason != SRV_FINISH_ERROR;
    int ptoks = info->prompt_tokens, ctoks = 0;
    for (int i = 0; i < st->n_choices; i++) ctoks += st->ch[i].n_tokens;
    double e2e = t - st->t_submit;
    struct MHD_Connection *wake = st->suspended ? st->conn : NULL;
    st->suspended = 0;
    pthread_mutex_unlock(&st->mu);
    prom_inc(st->metrics->prompt, ptoks);
    prom_inc(st->metrics->gen, ctoks);
    if (completed) { prom_inc(st->metrics->success, 1); prom_observe(st->metrics->e2e, e2e); }
    resume(wake);                /* before leaving the list: srv_stop waits on it */
    if (st->on_done) st->on_done(st->done_ctx, st);
    srv_stream_unref(st);
}

srv_stream *srv_stream_new(srv_req *r, const char *model, const char *id,
                           struct MHD_Connection *c, srv_metrics *m) {
    srv_stream *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->n_choices = 1;
    st->ch = calloc((size_t)st->n_choices, sizeof *st->ch);
    if (!st->ch) { free(st); return NULL; }
    pthread_mutex_init(&st->mu, NULL);
    st->sink.on_tokens = on_tokens;
    st->sink.on_finish = on_finish;
    st->refs = 2;
    st->conn = c;
    st->is_stream = r->stream;
    st->include_usage = r->include_usage;
    snprintf(st->id, sizeof st->id, "%s", id);
    st->head = (srv_head){st->id, model, (long)time(NULL), r->kind == SRV_CHAT};
    st->stop = r->stop; st->n_stop = r->n_stop;
    r->stop = NULL; r->n_stop = 0;
    r->gp.stop = NULL; r->gp.n_stop = 0;
    for (int i = 0; i < st->n_stop; i++)
        if (strlen(st->stop[i]) > st->max_stop) st->max_stop = strlen(st->stop[i]);
    st->metrics = m;
    st->t_submit = clock_now_s();
    return st;
}

static const char *finish_name(srv_finish_reason r) {
    return r == SRV_FINISH_LENGTH ? "length" : r == SRV_FINISH_STOP ? "stop" : "abort";
}

static int completion_tokens(const srv_stream *st) {
    int n = 0;
    for (int i = 0; i < st->n_choices; i++) n += st->ch[i].n_tokens;
    return n;
}

char *srv_stream_reply(const srv_stream *st) {
    srv_choice_out out[1];
    const srv_choice *c = &st->ch[0];
    out[0] = (srv_choice_out){0, c->text ? c->text : "", c->len, 0, finish_name(st->fin.reason), NULL};
    return srv_json_reply(&st->head, out, st->n_choices, st->fin.prompt_tokens, completion_tokens(st));
}

/* End of choice c's text that may be sent now: all of it once finished;
 * before, hold back what could start a stop string and a cut UTF-8 character. */
static size_t sendable_end(const srv_stream *st, const srv_choice *c) {
    if (st->finished || c->stop_hit) return c->len;
    size_t end = c->len;
    if (st->max_stop > 1) end = end > st->max_stop - 1 ? end - (st->max_stop - 1) : 0;
    if (end <= c->emitted) return c->emitted;
    /* back off over a UTF-8 character that is not complete before end */
    size_t k = end, cont = 0;
    while (k > c->emitted && cont < 3 && ((unsigned char)c->text[k - 1] & 0xC0) == 0x80) { k--; cont++; }
    if (k > c->emitted) {
        unsigned char lead = (unsigned char)c->text[k - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (need > cont + 1 && need <= 4) end = k - 1;
    }
    return end;
}

#define SSE(root) srv_sse_event(&st->out, &st->out_len, &st->out_cap, (root))

/* Queues the SSE events that are due (st->mu held). */
static void queue_events(srv_stream *st) {
    srv_choice *c = &st->ch[0];
    if (st->head.chat && !st->sent_role) {
        srv_choice_out o = {0, NULL, 0, 1, NULL, NULL};
        SSE(srv_json_chunk(&st->head, &o, 0, 0));
        st->sent_role = 1;
    }
    size_t end = sendable_end(st, c);
    if (end > c->emitted) {
        srv_choice_out o = {0, c->text + c->emitted, end - c->emitted, 0, NULL, NULL};
        SSE(srv_json_chunk(&st->head, &o, 0, 0));
        c->emitted = end;
    }
    if (!st->finished || st->sent_final) return;
    if (st->fin.reason == SRV_FINISH_ERROR) {
        char *e = srv_json_error("server_error", st->errmsg, NULL);
        SSE(e ? cJSON_Parse(e) : NULL);
        free(e);
    } else {
        srv_choice_out o = {0, NULL, 0, 0, finish_name(st->fin.reason), NULL};
        SSE(srv_json_chunk(&st->head, &o, 0, 0));
        if (st->include_usage) SSE(srv_json_chunk(&st->head, NULL, st->fin.prompt_tokens, completion_tokens(st)));
    }
    strbuf_add(&st->out, &st->out_len, &st->out_cap, "data: [DONE]\n\n", 14);
    st->sent_final = 1;
}

ssize_t srv_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_stream *st = cls;
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
        queue_events(st);
        if (st->out_len) continue;
        if (st->sent_final) { pthread_mutex_unlock(&st->mu); return MHD_CONTENT_READER_END_OF_STREAM; }
        /* nothing to send: sleep until the engine thread resumes us */
        st->suspended = 1;
        MHD_suspend_connection(st->conn);
        pthread_mutex_unlock(&st->mu);
        return 0;
    }
}

void srv_stream_read_free(void *cls) { srv_stream_unref(cls); }
