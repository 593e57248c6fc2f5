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
    free(st->stop_ids);
    for (int i = 0; i < st->n_choices; i++) { free(st->ch[i].text); cJSON_Delete(st->ch[i].lp); }
    free(st->ch);
    free(st->reason);
    free(st->out);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* The first match of a stop string in choice c starting at or after byte
 * `from`, or -1; *which = the string's index. */
static long find_stop(const srv_stream *st, const srv_choice *c, size_t from, int *which) {
    long best = -1;
    for (int i = 0; i < st->n_stop; i++) {
        const char *p = memmem(c->text + from, c->len - from, st->stop[i], strlen(st->stop[i]));
        if (p && (best < 0 || p - c->text < best)) { best = p - c->text; *which = i; }
    }
    return best;
}

static void resume(struct MHD_Connection *c) { if (c) MHD_resume_connection(c); }

/* Tokens of d accepted by choice c: all, or up to a stop token id. */
static size_t accept_tokens(const srv_stream *st, srv_choice *c, const srv_delta *d) {
    for (size_t i = 0; i < d->n; i++)
        for (int k = 0; k < st->n_stop_ids; k++)
            if (d->ids[i] == st->stop_ids[k]) { c->stop_hit = 1; c->stop_id = d->ids[i]; return i + 1; }
    return d->n;
}

/* Engine thread: new tokens of one choice.  Keeps the text, cuts it at a
 * stop string (or stops at a stop token) and asks the backend to stop the
 * choice there, wakes the connection. */
static int on_tokens(srv_sink *sk, const srv_delta *d) {
    srv_stream *st = (srv_stream *)sk;
    double t = clock_now_s();
    pthread_mutex_lock(&st->mu);
    srv_choice *c = d->index >= 0 && d->index < st->n_choices ? &st->ch[d->index] : NULL;
    if (!c || c->stop_hit || st->finished) { pthread_mutex_unlock(&st->mu); return 1; }
    size_t n = accept_tokens(st, c, d);
    if (n) {
        if (st->t_first == 0) {
            prom_observe(st->metrics->ttft, t - st->t_submit);
            st->t_first = t;
        } else if (c->t_last > 0) {
            for (size_t i = 0; i < n; i++) prom_observe(st->metrics->tpot, (t - c->t_last) / (double)n);
        }
        c->t_last = t;
        c->n_tokens += (int)n;
    }
    int oom = 0;
    for (size_t i = 0; st->logprobs && d->lp && i < n && !oom; i++)
        oom = srv_json_logprob_add(&c->lp, st->head.chat, &d->lp[i], &c->lp_off);
    size_t old = c->len;
    oom = oom || strbuf_add(&c->text, &c->len, &c->cap, d->text ? d->text : "", d->text ? d->len : 0);
    if (!oom && st->n_stop) {
        size_t from = old >= st->max_stop ? old - st->max_stop + 1 : 0;
        int which = -1;
        long at = find_stop(st, c, from, &which);
        if (at >= 0) { c->len = (size_t)at; c->text[at] = 0; c->stop_hit = 1; c->stop_str = which; c->stop_id = -1; }
    }
    if (oom) snprintf(st->errmsg, sizeof st->errmsg, "out of memory");
    struct MHD_Connection *wake = st->suspended ? st->conn : NULL;
    st->suspended = 0;
    int ret = c->stop_hit || oom;
    pthread_mutex_unlock(&st->mu);
    resume(wake);
    return ret;
}

static int completion_tokens(const srv_stream *st) {
    int n = 0;
    for (int i = 0; i < st->n_choices; i++) n += st->ch[i].n_tokens;
    return n;
}

/* Engine thread: the request is over.  Records it, wakes the connection,
 * lets the server unlist it and drops the backend's reference. */
static void on_finish(srv_sink *sk, const srv_finish_info *info) {
    srv_stream *st = (srv_stream *)sk;
    double t = clock_now_s();
    pthread_mutex_lock(&st->mu);
    st->fin = *info;
    int all_stopped = 1;
    for (int i = 0; i < st->n_choices; i++) all_stopped &= st->ch[i].stop_hit;
    if (all_stopped && info->reason == SRV_FINISH_ABORT) st->fin.reason = SRV_FINISH_STOP;
    if (st->errmsg[0] && info->reason != SRV_FINISH_ERROR) st->fin.reason = SRV_FINISH_ERROR;
    if (info->reason == SRV_FINISH_ERROR)
        snprintf(st->errmsg, sizeof st->errmsg, "%s", info->error ? info->error : "generation failed");
    st->fin.error = st->errmsg[0] ? st->errmsg : NULL;
    for (int i = 0; i < st->n_choices; i++)      /* each choice's end, kept where fin can find it */
        st->reason[i] = st->ch[i].stop_hit ? SRV_FINISH_STOP
                      : info->choice_reason && st->fin.reason != SRV_FINISH_ERROR ? info->choice_reason[i]
                      : st->fin.reason;
    st->fin.choice_reason = st->reason;
    st->finished = 1;
    int completed = st->fin.reason != SRV_FINISH_ABORT && st->fin.reason != SRV_FINISH_ERROR;
    int ptoks = info->prompt_tokens, ctoks = completion_tokens(st);
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
    st->n_choices = r->gp.n > 1 ? r->gp.n : 1;
    st->ch = calloc((size_t)st->n_choices, sizeof *st->ch);
    st->reason = calloc((size_t)st->n_choices, sizeof *st->reason);
    if (!st->ch || !st->reason) { free(st->ch); free(st->reason); free(st); return NULL; }
    for (int i = 0; i < st->n_choices; i++) { st->ch[i].stop_str = -1; st->ch[i].stop_id = -1; }
    pthread_mutex_init(&st->mu, NULL);
    st->sink.on_tokens = on_tokens;
    st->sink.on_finish = on_finish;
    st->refs = 2;
    st->conn = c;
    st->is_stream = r->stream;
    st->include_usage = r->include_usage;
    st->logprobs = r->gp.logprobs;
    snprintf(st->id, sizeof st->id, "%s", id);
    st->head = (srv_head){st->id, model, (long)time(NULL), r->kind == SRV_CHAT};
    st->stop = r->stop; st->n_stop = r->n_stop;
    r->stop = NULL; r->n_stop = 0;
    r->gp.stop = NULL; r->gp.n_stop = 0;
    st->stop_ids = r->stop_ids; st->n_stop_ids = r->n_stop_ids;
    r->stop_ids = NULL; r->n_stop_ids = 0;
    for (int i = 0; i < st->n_stop; i++)
        if (strlen(st->stop[i]) > st->max_stop) st->max_stop = strlen(st->stop[i]);
    st->metrics = m;
    st->t_submit = clock_now_s();
    return st;
}

static const char *finish_name(srv_finish_reason r) {
    return r == SRV_FINISH_LENGTH ? "length" : r == SRV_FINISH_STOP ? "stop" : "abort";
}

/* Choice i's finish as the JSON shows it (the request has finished). */
static srv_choice_out finish_out(srv_stream *st, int i) {
    srv_choice *c = &st->ch[i];
    srv_choice_out o = {i, NULL, 0, 0, finish_name(st->reason[i]), NULL, -1, c->lp};
    if (c->stop_hit) { o.stop_str = c->stop_str >= 0 ? st->stop[c->stop_str] : NULL; o.stop_id = c->stop_id; }
    c->lp = NULL;
    return o;
}

char *srv_stream_reply(srv_stream *st) {
    srv_choice_out *out = calloc((size_t)st->n_choices, sizeof *out);
    if (!out) return NULL;
    for (int i = 0; i < st->n_choices; i++) {
        out[i] = finish_out(st, i);
        out[i].text = st->ch[i].text ? st->ch[i].text : "";
        out[i].len = st->ch[i].len;
    }
    char *txt = srv_json_reply(&st->head, out, st->n_choices, st->fin.prompt_tokens, completion_tokens(st));
    free(out);
    return txt;
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

/* Queues the SSE events that are due (st->mu held): the role of each chat
 * choice first, then text as it becomes sendable, then each choice's finish,
 * the usage and [DONE]. */
static void queue_events(srv_stream *st) {
    if (st->head.chat && !st->sent_role) {
        for (int i = 0; i < st->n_choices; i++) {
            srv_choice_out o = {i, NULL, 0, 1, NULL, NULL, -1, NULL};
            SSE(srv_json_chunk(&st->head, &o, 0, 0));
        }
        st->sent_role = 1;
    }
    for (int i = 0; i < st->n_choices; i++) {
        srv_choice *c = &st->ch[i];
        size_t end = sendable_end(st, c);
        if (end <= c->emitted) continue;
        srv_choice_out o = {i, c->text + c->emitted, end - c->emitted, 0, NULL, NULL, -1, c->lp};
        c->lp = NULL;
        SSE(srv_json_chunk(&st->head, &o, 0, 0));
        c->emitted = end;
    }
    if (!st->finished || st->sent_final) return;
    if (st->fin.reason == SRV_FINISH_ERROR) {
        char *e = srv_json_error("server_error", st->errmsg, NULL);
        SSE(e ? cJSON_Parse(e) : NULL);
        free(e);
    } else {
        for (int i = 0; i < st->n_choices; i++) {
            srv_choice_out o = finish_out(st, i);
            SSE(srv_json_chunk(&st->head, &o, 0, 0));
        }
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
