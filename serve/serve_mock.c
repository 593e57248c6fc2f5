/* serve/serve_mock.c — a srv_backend with no GPU, scheduled like the real
 * engine by the real core: sim/'s scheduler and KV cache driven by the step
 * loop through the driver (sim/driver.h: the wall clock, stalls are errors,
 * as the engine runs), over an executor that sleeps for a modelled step
 * time and emits, for each sequence that samples, the next token of its
 * deterministic reply (serve_mock_reply.c).  Requests reach the driver as
 * the engine's do, through a queue (sim/drv_queue.h) that is the driver's
 * source; admission, chunked prefill,
 * prefix caching, preemption and forks (n > 1) are the scheduler's; the
 * load figures of /metrics are read from it and the KV cache.
 *
 * Threads: submit/abort/stats run on HTTP threads and touch only the locked
 * queue and the published stats; the engine thread owns the scheduler, the
 * KV cache, the loop, the live requests and every sink call.  Touches only
 * its own state and the sinks. */
#include "serve/serve_backend.h"
#include "base/rng.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/errbuf.h"
#include "sim/kv_cache.h"
#include "sim/scheduler.h"
#include "base/clock.h"
#include "sim/driver.h"
#include "sim/drv_queue.h"

/* One choice's reply, cut into tokens. */
typedef struct mchoice {
    char *text;              /* (len + 1,) the whole reply */
    size_t len;
    size_t *off;             /* (n_tok + 1,) byte offset of each token, then len */
    int n_tok;
    int stopped;             /* the sink asked to stop this choice */
    srv_finish_reason reason;
} mchoice;

typedef struct mreq {
    int id;                  /* the scheduler's request id (also the backend's) */
    srv_sink *sink;
    int *prompt;             /* (prompt_len,) token ids, until the queue copies them */
    double arrival;          /* seconds on the driver's clock, when it was submitted */
    int admitted;            /* the driver has handed it to the scheduler */
    int prompt_len, max_tokens, n;
    int logprobs, top_logprobs;  /* what the request asked for */
    int greedy;              /* temperature 0: the sampled token is the most likely */
    mchoice *ch;             /* (n,) */
    int n_stopped;
    int generated;           /* tokens generated, every choice */
    struct mreq *next;       /* the incoming queue */
} mreq;

typedef struct {
    srv_backend b;
    srv_mock_opts o;
    char model[128];
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;      /* guards the fields down to `st` */
    pthread_cond_t cv;
    mreq *in_head, *in_tail; /* submitted, not yet seen by the engine thread */
    int *aborts;             /* (cap_aborts,) ids to abort */
    size_t n_aborts, cap_aborts;
    int quit, next_id;
    uint64_t unseeded;
    srv_backend_stats st;
    /* owned by the engine thread */
    kv_cache *kv;
    sched *sc;
    loop lp;
    drv *d;                  /* the driver over lp, its source the queue q */
    drv_queue *q;            /* requests the engine thread took in, not yet released */
    double t0;               /* the driver's clock: seconds since creation */
    int *stop_ids;           /* (cap_stop,) requests whose every choice asked to stop */
    int n_stop, cap_stop;
    long prefix_queries;     /* prompt tokens handed to the scheduler */
} mock;

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void mreq_free(mreq *r) {
    for (int k = 0; r->ch && k < r->n; k++) { free(r->ch[k].text); free(r->ch[k].off); }
    free(r->ch);
    free(r->prompt);
    free(r);
}

/* Tells the sink the request is over and frees it. */
static void finish(mreq *r, srv_finish_reason why, const char *error) {
    srv_finish_reason reasons[SRV_MAX_N];
    for (int k = 0; k < r->n && k < SRV_MAX_N; k++) reasons[k] = why == SRV_FINISH_STOP ? r->ch[k].reason : why;
    srv_finish_info fi = {why, r->prompt_len, r->generated, error, reasons};
    r->sink->on_finish(r->sink, &fi);
    mreq_free(r);
}

/* ---- the executor ------------------------------------------------------------- */

/* Sends token `at` (id) of choice k, with its made-up log-probabilities
 * when asked; asks for an abort once every choice has asked to stop. */
static void emit(mock *m, mreq *r, int k, int at, int32_t id) {
    mchoice *c = &r->ch[k];
    if (c->stopped) return;
    srv_logprob top[SRV_MAX_LOGPROBS];
    srv_token_lp lp;
    srv_delta d = {k, &id, 1, NULL, c->text + c->off[at], c->off[at + 1] - c->off[at]};
    if (r->logprobs) {
        srv_mock_logprobs(d.text, d.len, id, r->greedy, r->top_logprobs, &lp, top);
        d.lp = &lp;
    }
    if (r->sink->on_tokens(r->sink, &d) == 0) return;
    c->stopped = 1;
    if (++r->n_stopped < r->n) return;
    if (m->n_stop == m->cap_stop) {
        int cap = m->cap_stop ? 2 * m->cap_stop : 16;
        int *ns = realloc(m->stop_ids, (size_t)cap * sizeof *ns);
        if (!ns) return;                /* the request runs to its end instead */
        m->stop_ids = ns; m->cap_stop = cap;
    }
    m->stop_ids[m->n_stop++] = r->id;
}

/* The loop_executor: no copies to make (there is no memory), one step of
 * modelled time, and for each item that samples the next token of its
 * sequence's reply; the last one is the end-of-sequence id. */
static int mock_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds,
                        char *err, size_t errlen) {
    mock *m = ctx;
    (void)err; (void)errlen;
    sleep_us(m->o.token_delay_us);
    for (int i = 0; i < b->num_items; i++) {
        const sched_item *it = &b->items[i];
        tokens[i] = 0;
        if (!it->samples) continue;
        mreq *r = it->s->user;
        mchoice *c = &r->ch[it->s->sample < r->n ? it->s->sample : 0];
        int at = seq_num_generated(it->s);
        if (at >= c->n_tok) at = c->n_tok - 1;          /* (cannot happen: the last one ends it) */
        int32_t id = at == c->n_tok - 1 ? SRV_MOCK_VOCAB
                   : srv_mock_token_id(c->text + c->off[at], c->off[at + 1] - c->off[at]);
        tokens[i] = id;
        r->generated++;
        emit(m, r, (int)(c - r->ch), at, id);
    }
    *seconds = m->o.token_delay_us * 1e-6;
    return 0;
}

/* ---- the engine thread --------------------------------------------------------------- */

/* The driver's clock: the wall clock.  The engine thread queues what it took
 * in and steps only while there is work, so the driver never waits. */
static double mock_now(void *ctx) { return clock_now_s() - ((mock *)ctx)->t0; }
static int mock_wait(void *ctx, double until, char *err, size_t errlen) {
    (void)ctx; (void)until;
    return errbuf_fail(err, errlen, "mock backend: nothing to run and no request to wait for");
}

static void publish(mock *m) {
    srv_backend_stats st = {0};
    int running, waiting, swapped;
    sched_counts(m->sc, &running, &waiting, &swapped);
    seq *const *live;
    const seq *next;
    int n = sched_live(m->sc, &live, &next);
    kv_usage u;
    kv_usage_get(m->kv, live, n, next, &u);
    st.running = running;
    st.waiting = waiting + swapped;
    st.kv_usage = u.slots_total > 0 ? (double)(u.token_slots + u.reserved_slots + u.internal_frag) / (double)u.slots_total : 0;
    st.preemptions = sched_get_stats(m->sc)->preemptions;
    st.prefix_queries = m->prefix_queries;
    st.prefix_hits = u.prefix_hit_tokens;
    st.max_model_len = m->o.max_model_len;
    pthread_mutex_lock(&m->mu);
    m->st = st;
    pthread_mutex_unlock(&m->mu);
}

/* Ends request id now, wherever it is (queued, or the scheduler's), as `why`
 * (ABORT, or ERROR with error); 0 when it is not live. */
static int end_req(mock *m, int id, srv_finish_reason why, const char *error) {
    sched_done d;
    drv_request q;
    if (drv_abort(m->d, id, &d, NULL) == 1) finish(d.user, why, error);
    else if (drv_queue_remove(m->q, id, &q) == 1) finish(q.user, why, error);
    else return 0;
    return 1;
}
static int abort_req(mock *m, int id) { return end_req(m, id, SRV_FINISH_ABORT, NULL); }

/* Ends one live request (running, swapped, waiting or queued); 0 when none is left. */
static int end_any(mock *m, srv_finish_reason why, const char *error) {
    seq *const *live;
    const seq *next;
    int n = sched_live(m->sc, &live, &next);
    const seq *s = n > 0 ? live[0] : next;
    if (s) return end_req(m, ((const mreq *)s->user)->id, why, error);
    if (drv_queue_len(m->q) == 0) return 0;
    pthread_mutex_lock(&m->mu);              /* ids are handed out on the HTTP threads */
    int hi = m->next_id;
    pthread_mutex_unlock(&m->mu);
    drv_request q;
    for (int id = 0; id < hi; id++)
        if (drv_queue_remove(m->q, id, &q) == 1) { finish(q.user, why, error); return 1; }
    return 0;
}

/* One schedule -> execute -> postprocess, and what it finished. */
static int step(mock *m) {
    loop_step_info info;
    char err[256], msg[300];
    int rc = drv_step(m->d, &info, err, sizeof err);
    static const srv_finish_reason by_seq[] = {SRV_FINISH_STOP, SRV_FINISH_LENGTH, SRV_FINISH_STOP, SRV_FINISH_ABORT};
    for (int i = 0; i < info.n_fin; i++) {    /* (what finished is in info even after an error) */
        const seq *s = info.fin[i];
        mreq *r = s->user;
        if (r && s->sample < r->n) r->ch[s->sample].reason = by_seq[s->finish_reason];
    }
    for (int i = 0; i < info.n_done; i++) {
        mreq *r = info.done[i].user;
        if (info.done[i].aborted) finish(r, SRV_FINISH_ERROR, "the request needs more KV blocks than the cache has");
        else finish(r, SRV_FINISH_STOP, NULL);
    }
    if (rc < 0) {                             /* the scheduler failed (out of memory, a livelock) */
        snprintf(msg, sizeof msg, "the mock's scheduler failed: %s", err);
        while (end_any(m, SRV_FINISH_ERROR, msg)) {}
        m->n_stop = 0;
        return -1;
    }
    for (int i = 0; i < m->n_stop; i++) abort_req(m, m->stop_ids[i]);
    m->n_stop = 0;
    return rc;
}

/* The driver's on_arrival hook: a request entered the scheduler. */
static void on_arrival(void *ctx, const drv_request *r, seq *first) {
    (void)first;
    mock *m = ctx;
    ((mreq *)r->user)->admitted = 1;
    m->prefix_queries += r->prompt_len;
}

/* Queues new requests for the driver (the queue copies the prompt) and lets it
 * release what has arrived to the scheduler, as eng_add_request does. */
static void admit(mock *m, mreq *in) {
    mreq *pushed = NULL;                     /* this round's, to find one the driver could not take */
    for (mreq *r = in, *nx; r; r = nx) {
        nx = r->next;
        drv_request q = { r->id, r->prompt, r->prompt_len, r->max_tokens, r->n, 0, r->arrival, r, 0 };   /* no LoRA */
        if (drv_queue_push(m->q, &q)) { r->next = NULL; finish(r, SRV_FINISH_ERROR, "out of memory"); continue; }
        free(r->prompt);
        r->prompt = NULL;
        r->next = pushed;
        pushed = r;
    }
    char err[256];
    m->lp.now = mock_now(m);
    int rc = drv_admit(m->d, err, sizeof err);
    for (mreq *r = pushed, *nx; r; r = nx) {
        nx = r->next;
        r->next = NULL;
        drv_request q;
        if (rc < 0 && !r->admitted && drv_queue_remove(m->q, r->id, &q) == 0)   /* the one the driver refused */
            finish(r, SRV_FINISH_ERROR, err);
    }
}

static void *engine_thread(void *arg) {
    mock *m = arg;
    int *ab = NULL;
    size_t n_ab = 0, cap_ab = 0;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        while (!m->quit && !m->in_head && !m->n_aborts && !sched_has_work(m->sc) && drv_queue_len(m->q) == 0)
            pthread_cond_wait(&m->cv, &m->mu);
        int quit = m->quit;
        mreq *in = m->in_head;
        m->in_head = m->in_tail = NULL;
        int *t = ab; ab = m->aborts; m->aborts = t;         /* swap the abort list out */
        size_t tc = cap_ab; cap_ab = m->cap_aborts; m->cap_aborts = tc;
        n_ab = m->n_aborts; m->n_aborts = 0;
        pthread_mutex_unlock(&m->mu);

        admit(m, in);
        for (size_t k = 0; k < n_ab; k++) abort_req(m, ab[k]);
        if (quit) {                                          /* every live request ends */
            while (end_any(m, SRV_FINISH_ABORT, NULL)) {}
            publish(m);
            break;
        }
        int rc = sched_has_work(m->sc) || drv_queue_len(m->q) > 0 ? step(m) : 1;
        if (rc == 0) sleep_us(m->o.token_delay_us);          /* nothing could run: no busy loop */
        publish(m);
    }
    free(ab);
    return NULL;
}

/* ---- the srv_backend operations ------------------------------------------------ */

/* Splits a reply into its tokens.  -1 when out of memory. */
static int cut_reply(mchoice *c) {
    c->n_tok = srv_mock_count_tokens(c->text, c->len);
    c->off = malloc(sizeof *c->off * (size_t)(c->n_tok + 1));
    if (!c->off) return -1;
    size_t at = 0;
    for (int i = 0; i < c->n_tok; i++) { c->off[i] = at; at += srv_mock_token_len(c->text + at, c->len - at); }
    c->off[c->n_tok] = c->len;
    return 0;
}

/* The prompt as token ids: given, or the mock's tokens of the text. */
static int prompt_ids(const srv_gen_params *p, mreq *r) {
    size_t len = p->prompt ? strlen(p->prompt) : 0;
    r->prompt_len = p->prompt ? srv_mock_count_tokens(p->prompt, len) : (int)p->n_prompt_ids;
    r->prompt = malloc(sizeof *r->prompt * (size_t)(r->prompt_len > 0 ? r->prompt_len : 1));
    if (!r->prompt) return -1;
    size_t at = 0;
    for (int i = 0; i < r->prompt_len; i++) {
        if (!p->prompt) { r->prompt[i] = p->prompt_ids[i]; continue; }
        size_t k = srv_mock_token_len(p->prompt + at, len - at);
        r->prompt[i] = srv_mock_token_id(p->prompt + at, k);
        at += k;
    }
    return 0;
}

/* Builds a request: its prompt ids and each choice's reply. */
static mreq *new_req(mock *m, const srv_gen_params *p, uint64_t seed, char *err, size_t errcap) {
    mreq *r = calloc(1, sizeof *r);
    if (!r) { errbuf_fail(err, errcap, "out of memory"); return NULL; }
    r->n = p->n > 1 ? p->n : 1;
    if (r->n > SRV_MAX_N) { free(r); errbuf_fail(err, errcap, "n is %d, more than %d", p->n, SRV_MAX_N); return NULL; }
    r->max_tokens = p->max_tokens;
    r->logprobs = p->logprobs;
    r->top_logprobs = p->top_logprobs < 0 ? 0 : p->top_logprobs > SRV_MAX_LOGPROBS ? SRV_MAX_LOGPROBS : p->top_logprobs;
    r->greedy = p->temperature == 0;
    r->ch = calloc((size_t)r->n, sizeof *r->ch);
    if (!r->ch || prompt_ids(p, r)) { mreq_free(r); errbuf_fail(err, errcap, "out of memory"); return NULL; }
    long slots = (long)m->o.num_blocks * m->o.block_size;
    if (r->prompt_len < 1 || r->prompt_len >= m->o.max_model_len || r->prompt_len + 1 > slots) {
        errbuf_fail(err, errcap, r->prompt_len < 1 ? "the prompt is empty"
                    : r->prompt_len >= m->o.max_model_len ? "the prompt has %d tokens; this model's maximum context length is %ld"
                    : "the prompt has %d tokens, more than the KV cache holds (%ld)",
                    r->prompt_len, r->prompt_len >= m->o.max_model_len ? m->o.max_model_len : slots);
        mreq_free(r);
        return NULL;
    }
    for (int k = 0; k < r->n; k++) {
        mchoice *c = &r->ch[k];
        c->len = srv_mock_reply(p->prompt, p->prompt_ids, p->n_prompt_ids, p->temperature, seed + (uint64_t)k, NULL, 0);
        c->text = malloc(c->len + 1);
        if (!c->text || (srv_mock_reply(p->prompt, p->prompt_ids, p->n_prompt_ids, p->temperature, seed + (uint64_t)k,
                                        c->text, c->len + 1), cut_reply(c))) {
            mreq_free(r);
            errbuf_fail(err, errcap, "out of memory");
            return NULL;
        }
    }
    return r;
}

static int mock_submit(void *self, const srv_gen_params *p, srv_sink *sink,
                       uint64_t *id, char *err, size_t errcap) {
    mock *m = self;
    if (!p || !sink || (!p->prompt && !p->prompt_ids) || p->max_tokens < 1)
        return errbuf_fail(err, errcap, "mock backend: no prompt or max_tokens < 1");
    pthread_mutex_lock(&m->mu);
    uint64_t seed = p->has_seed ? p->seed : rng_splitmix64(&m->unseeded);
    pthread_mutex_unlock(&m->mu);
    mreq *r = new_req(m, p, seed, err, errcap);
    if (!r) return -1;
    r->sink = sink;
    pthread_mutex_lock(&m->mu);
    int quit = m->quit;
    if (!quit) {
        r->arrival = mock_now(m);
        r->id = m->next_id++;
        if (m->next_id < 0) m->next_id = 0;
        *id = (uint64_t)r->id;
        if (m->in_tail) m->in_tail->next = r; else m->in_head = r;
        m->in_tail = r;
        pthread_cond_signal(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
    if (quit) { mreq_free(r); return errbuf_fail(err, errcap, "mock backend is shutting down"); }
    return 0;
}

static void mock_abort(void *self, uint64_t id) {
    mock *m = self;
    pthread_mutex_lock(&m->mu);
    if (m->n_aborts == m->cap_aborts) {
        size_t cap = m->cap_aborts ? 2 * m->cap_aborts : 64;
        int *na = realloc(m->aborts, cap * sizeof *na);
        if (na) { m->aborts = na; m->cap_aborts = cap; }
    }
    if (m->n_aborts < m->cap_aborts) m->aborts[m->n_aborts++] = (int)id;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void mock_stats(void *self, srv_backend_stats *out) {
    mock *m = self;
    pthread_mutex_lock(&m->mu);
    *out = m->st;
    pthread_mutex_unlock(&m->mu);
}

static void mock_destroy(srv_backend *b) {
    if (!b) return;
    mock *m = b->self;
    if (m->thread_started) {
        pthread_mutex_lock(&m->mu);
        m->quit = 1;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    for (mreq *r = m->in_head, *nx; r; r = nx) { nx = r->next; finish(r, SRV_FINISH_ABORT, NULL); }
    drv_destroy(m->d);
    drv_queue_destroy(m->q);
    loop_free(&m->lp);
    if (m->sc) sched_destroy(m->sc);
    if (m->kv) kv_destroy(m->kv);
    free(m->aborts);
    free(m->stop_ids);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void srv_mock_opts_init(srv_mock_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = "mock";
    o->token_delay_us = 1000;
    o->max_num_seqs = 256;
    o->max_num_batched_tokens = 8192;
    o->block_size = 16;
    o->num_blocks = 8192;
    o->prefix_caching = 1;
    o->max_model_len = 32768;
}

srv_backend *srv_mock_create(const srv_mock_opts *o, char *err, size_t errcap) {
    srv_mock_opts d;
    if (!o) { srv_mock_opts_init(&d); o = &d; }
    if (o->token_delay_us < 0 || o->max_num_seqs < 1 || o->max_num_batched_tokens < 1 || o->block_size < 1 ||
        o->num_blocks < 1 || o->max_model_len < 2 || o->max_model_len > (1L << 30)) {
        errbuf_fail(err, errcap, "mock backend: token_delay_us >= 0, max_num_seqs, max_num_batched_tokens, "
                    "block_size, num_blocks >= 1 and max_model_len in 2..2^30 are required");
        return NULL;
    }
    long slots = (long)o->num_blocks * o->block_size;
    if (o->max_model_len > slots) {          /* else a lone sequence could outgrow the pool (as vLLM refuses) */
        errbuf_fail(err, errcap, "mock backend: max_model_len (%ld) is larger than the KV cache holds "
                    "(%d blocks of %d = %ld tokens); lower max_model_len or give more blocks",
                    o->max_model_len, o->num_blocks, o->block_size, slots);
        return NULL;
    }
    mock *m = calloc(1, sizeof *m);
    if (!m) { errbuf_fail(err, errcap, "out of memory"); return NULL; }
    m->o = *o;
    snprintf(m->model, sizeof m->model, "%s", o->model && *o->model ? o->model : "mock");
    m->o.model = m->model;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->unseeded = 0x5EED;
    m->st.max_model_len = o->max_model_len;
    m->b = (srv_backend){m, m->model, mock_submit, mock_abort, mock_stats, mock_destroy, NULL, 0};
    kv_config kc = {KV_PAGED, o->num_blocks, o->block_size, (int)o->max_model_len, 2048, o->prefix_caching != 0, 0,
                    KV_ALLOC_FIRST_FIT};
    sched_config sc = sched_config_default();
    sc.max_num_seqs = o->max_num_seqs;
    sc.max_num_batched_tokens = o->max_num_batched_tokens;
    sc.max_model_len = (int)o->max_model_len;
    sc.preempt = SCHED_PREEMPT_RECOMPUTE;
    drv_config dc = drv_config_default();
    dc.clock = (drv_clock){mock_now, mock_wait, m};
    dc.on_arrival = on_arrival;
    dc.ctx = m;
    m->t0 = clock_now_s();
    if (!(m->q = drv_queue_create())) { errbuf_fail(err, errcap, "out of memory"); mock_destroy(&m->b); return NULL; }
    dc.source = drv_source_queue(m->q);
    if (!(m->kv = kv_create(&kc, err, errcap)) || !(m->sc = sched_create(&sc, m->kv, err, errcap)) ||
        loop_init(&m->lp, m->sc, (loop_executor){m, mock_execute}, 0.0, SRV_MOCK_VOCAB) ||
        !(m->d = drv_create(&m->lp, m->kv, &dc, err, errcap))) {
        if (m->sc && !m->d && !err[0]) errbuf_fail(err, errcap, "out of memory");
        mock_destroy(&m->b);
        return NULL;
    }
    if (pthread_create(&m->thread, NULL, engine_thread, m) != 0) {
        errbuf_fail(err, errcap, "mock backend: cannot start its engine thread");
        mock_destroy(&m->b);
        return NULL;
    }
    m->thread_started = 1;
    return &m->b;
}
