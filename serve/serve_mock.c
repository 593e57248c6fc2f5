/* serve/serve_mock.c — a srv_backend with no GPU: an engine thread that
 * steps every token_delay_us, generating one token per running request of a
 * deterministic JSON decision ({"decision": "buy", "reason": "..."}) derived
 * from the prompt and the seed.  It schedules like the real engine will:
 * FCFS admission up to max_num_seqs, a simulated KV block pool, preemption of
 * the latest admitted request when the pool runs out.  Used by the tests and
 * by `engine/serve --mock`.  Touches only its own state and the sinks. */
#include "serve/serve_backend.h"
#include "base/rng.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the deterministic reply ------------------------------------------------ */

static uint64_t fnv1a(const void *p, size_t n, uint64_t h) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 0x100000001B3ull; }
    return h;
}

static const char *const k_openers[] = {
    "The evidence on balance favours this position",
    "Revenue momentum outweighs the stated risks",
    "Margins and cash flow point the same way",
    "The valuation already prices in the good news",
    "Competitive pressure weighs on the outlook",
    "Guidance and recent results support the call",
    "The balance sheet looks stronger than the concerns suggest",
    "Execution risk dominates the upside case",
};
static const char *const k_details[] = {
    "given the growth in earnings per share",
    "while debt levels remain manageable",
    "although regulatory exposure is a concern",
    "as free cash flow keeps improving",
    "despite a softer quarter for the sector",
    "with analysts revising estimates upward",
    "because the dividend looks sustainable",
    "since input costs are still rising",
    "and the market share trend is stable",
    "yet the order backlog continues to shrink",
};

size_t srv_mock_reply(const char *prompt, const int32_t *ids, size_t n_ids,
                      double temperature, uint64_t seed, char *out, size_t cap) {
    uint64_t h = 0xCBF29CE484222325ull;
    if (prompt) h = fnv1a(prompt, strlen(prompt), h);
    else if (ids) h = fnv1a(ids, n_ids * sizeof *ids, h);
    uint64_t st = h ^ (temperature > 0 ? seed * 0xD1B54A32D192ED03ull : 0);
    uint64_t r = rng_splitmix64(&st);
    const char *decision = (r & 1) ? "buy" : "sell";
    char reason[512];
    int k = snprintf(reason, sizeof reason, "%s",
                     k_openers[rng_splitmix64(&st) % (sizeof k_openers / sizeof *k_openers)]);
    int n_details = (int)(rng_splitmix64(&st) % 3);
    for (int i = 0; i < n_details && k > 0 && (size_t)k < sizeof reason; i++)
        k += snprintf(reason + k, sizeof reason - (size_t)k, ", %s",
                      k_details[rng_splitmix64(&st) % (sizeof k_details / sizeof *k_details)]);
    return (size_t)snprintf(out, cap, "{\"decision\": \"%s\", \"reason\": \"%s.\"}", decision, reason);
}

/* Length of the token starting at s (n > 0 bytes left): leading spaces plus
 * a run of letters/digits, or one other character. */
static size_t next_token_len(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && s[i] == ' ') i++;
    size_t w = i;
    while (w < n && ((s[w] >= 'a' && s[w] <= 'z') || (s[w] >= 'A' && s[w] <= 'Z') ||
                     (s[w] >= '0' && s[w] <= '9') || (unsigned char)s[w] >= 0x80)) w++;
    if (w > i) return w;
    return i < n ? i + 1 : i;
}

int srv_mock_count_tokens(const char *text, size_t len) {
    int n = 0;
    for (size_t i = 0; i < len; n++) i += next_token_len(text + i, len - i);
    return n;
}

/* ---- the engine loop ----------------------------------------------------------- */

typedef struct mreq {
    uint64_t id;
    srv_sink *sink;
    char *reply;             /* (reply_len + 1,) what this request will say */
    size_t reply_len, pos;   /* bytes already generated */
    int prompt_tokens, generated, max_tokens;
    int aborted;
    struct mreq *next;       /* incoming / waiting list link */
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
    uint64_t *aborts;        /* (n_aborts,) ids to abort */
    size_t n_aborts, cap_aborts;
    int quit;
    uint64_t next_id, unseeded;
    srv_backend_stats st;
    /* owned by the engine thread */
    mreq **running;          /* (max_num_seqs,) in admission order */
    int n_running;
    mreq *wait_head, *wait_tail;
    long preemptions;
} mock;

static int blocks_for(const mock *m, const mreq *r) {
    int toks = r->prompt_tokens + r->generated + 1;     /* room for the next token */
    return (toks + m->o.block_size - 1) / m->o.block_size;
}

static void finish(mreq *r, srv_finish_reason why) {
    srv_finish_info fi = {why, r->prompt_tokens, r->generated, NULL};
    r->sink->on_finish(r->sink, &fi);
    free(r->reply);
    free(r);
}

static void wait_push_front(mock *m, mreq *r) {
    r->next = m->wait_head;
    m->wait_head = r;
    if (!m->wait_tail) m->wait_tail = r;
}

static void wait_push_back(mock *m, mreq *r) {
    r->next = NULL;
    if (m->wait_tail) m->wait_tail->next = r; else m->wait_head = r;
    m->wait_tail = r;
}

static void apply_aborts(mock *m, const uint64_t *ids, size_t n) {
    for (size_t k = 0; k < n; k++) {
        for (int i = 0; i < m->n_running; i++)
            if (m->running[i]->id == ids[k]) m->running[i]->aborted = 1;
        for (mreq *r = m->wait_head; r; r = r->next)
            if (r->id == ids[k]) r->aborted = 1;
    }
}

/* Finishes aborted requests of both lists. */
static void reap_aborted(mock *m) {
    int j = 0;
    for (int i = 0; i < m->n_running; i++) {
        if (m->running[i]->aborted) finish(m->running[i], SRV_FINISH_ABORT);
        else m->running[j++] = m->running[i];
    }
    m->n_running = j;
    mreq **pp = &m->wait_head;
    m->wait_tail = NULL;
    while (*pp) {
        mreq *r = *pp;
        if (r->aborted) { *pp = r->next; finish(r, SRV_FINISH_ABORT); }
        else { m->wait_tail = r; pp = &r->next; }
    }
}

/* Admits waiting requests (FCFS) while slots and blocks allow, then preempts
 * the latest admitted ones until the next token of every running request
 * fits.  Returns the blocks in use. */
static int schedule(mock *m) {
    int used = 0;
    for (int i = 0; i < m->n_running; i++) used += blocks_for(m, m->running[i]);
    while (used > m->o.num_blocks && m->n_running > 1) {
        mreq *r = m->running[--m->n_running];
        used -= blocks_for(m, r);
        wait_push_front(m, r);
        m->preemptions++;
    }
    while (m->wait_head && m->n_running < m->o.max_num_seqs) {
        int need = blocks_for(m, m->wait_head);
        if (used + need > m->o.num_blocks && m->n_running > 0) break;
        mreq *r = m->wait_head;
        m->wait_head = r->next;
        if (!m->wait_head) m->wait_tail = NULL;
        r->next = NULL;
        m->running[m->n_running++] = r;
        used += need;
    }
    return used;
}

/* One decode step: a token for every running request. */
static void step(mock *m) {
    int j = 0;
    for (int i = 0; i < m->n_running; i++) {
        mreq *r = m->running[i];
        size_t tl = next_token_len(r->reply + r->pos, r->reply_len - r->pos);
        int32_t id = (int32_t)(fnv1a(r->reply + r->pos, tl, 0xCBF29CE484222325ull) % 151643);
        int stop = r->sink->on_tokens(r->sink, &id, 1, r->reply + r->pos, tl);
        r->pos += tl;
        r->generated++;
        if (stop) finish(r, SRV_FINISH_ABORT);
        else if (r->pos >= r->reply_len) finish(r, SRV_FINISH_STOP);
        else if (r->generated >= r->max_tokens ||
                 r->prompt_tokens + r->generated >= m->o.max_model_len) finish(r, SRV_FINISH_LENGTH);
        else m->running[j++] = r;
    }
    m->n_running = j;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Copies the load figures where mock_stats reads them. */
static void publish_stats(mock *m, int used_blocks) {
    int waiting = 0;
    for (mreq *r = m->wait_head; r; r = r->next) waiting++;
    pthread_mutex_lock(&m->mu);
    m->st.running = m->n_running;
    m->st.waiting = waiting;
    m->st.kv_usage = (double)used_blocks / m->o.num_blocks;
    m->st.preemptions = m->preemptions;
    pthread_mutex_unlock(&m->mu);
}

static void *engine_thread(void *arg) {
    mock *m = arg;
    uint64_t *ab = NULL;
    size_t n_ab = 0, cap_ab = 0;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        while (!m->quit && !m->in_head && !m->n_aborts && !m->n_running && !m->wait_head)
            pthread_cond_wait(&m->cv, &m->mu);
        int quit = m->quit;
        for (mreq *r = m->in_head, *nx; r; r = nx) { nx = r->next; wait_push_back(m, r); }
        m->in_head = m->in_tail = NULL;
        /* swap the abort list out so the lock is not held while finishing */
        uint64_t *t = ab; ab = m->aborts; m->aborts = t;
        size_t tc = cap_ab; cap_ab = m->cap_aborts; m->cap_aborts = tc;
        n_ab = m->n_aborts; m->n_aborts = 0;
        pthread_mutex_unlock(&m->mu);

        apply_aborts(m, ab, n_ab);
        if (quit) {
            for (int i = 0; i < m->n_running; i++) m->running[i]->aborted = 1;
            for (mreq *r = m->wait_head; r; r = r->next) r->aborted = 1;
        }
        reap_aborted(m);
        if (quit) break;
        publish_stats(m, schedule(m));
        if (m->n_running) {
            sleep_us(m->o.token_delay_us);
            step(m);
            int used = 0;
            for (int i = 0; i < m->n_running; i++) used += blocks_for(m, m->running[i]);
            publish_stats(m, used);
        }
    }
    free(ab);
    return NULL;
}

/* ---- the srv_backend operations ------------------------------------------------ */

static int mock_submit(void *self, const srv_gen_params *p, srv_sink *sink,
                       uint64_t *id, char *err, size_t errcap) {
    mock *m = self;
    if (!p || !sink || (!p->prompt && !p->prompt_ids) || p->max_tokens < 1) {
        snprintf(err, errcap, "mock backend: no prompt or max_tokens < 1");
        return -1;
    }
    int ptoks = p->prompt ? srv_mock_count_tokens(p->prompt, strlen(p->prompt)) : (int)p->n_prompt_ids;
    if (ptoks >= m->o.max_model_len) {
        snprintf(err, errcap, "the prompt has %d tokens; this model's maximum context length is %ld",
                 ptoks, m->o.max_model_len);
        return -1;
    }
    if ((ptoks + 1 + m->o.block_size - 1) / m->o.block_size > m->o.num_blocks) {
        snprintf(err, errcap, "the prompt has %d tokens, more than the KV cache holds (%d blocks of %d)",
                 ptoks, m->o.num_blocks, m->o.block_size);
        return -1;
    }
    mreq *r = calloc(1, sizeof *r);
    if (!r) { snprintf(err, errcap, "out of memory"); return -1; }
    pthread_mutex_lock(&m->mu);
    uint64_t seed = p->seed;
    if (!p->has_seed) seed = rng_splitmix64(&m->unseeded);
    int quit = m->quit;
    r->id = ++m->next_id;
    pthread_mutex_unlock(&m->mu);
    if (quit) { free(r); snprintf(err, errcap, "mock backend is shutting down"); return -1; }
    size_t n = srv_mock_reply(p->prompt, p->prompt_ids, p->n_prompt_ids, p->temperature, seed, NULL, 0);
    r->reply = malloc(n + 1);
    if (!r->reply) { free(r); snprintf(err, errcap, "out of memory"); return -1; }
    srv_mock_reply(p->prompt, p->prompt_ids, p->n_prompt_ids, p->temperature, seed, r->reply, n + 1);
    r->reply_len = n;
    r->sink = sink;
    r->prompt_tokens = ptoks;
    r->max_tokens = p->max_tokens;
    *id = r->id;
    pthread_mutex_lock(&m->mu);
    if (m->in_tail) m->in_tail->next = r; else m->in_head = r;
    m->in_tail = r;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static void mock_abort(void *self, uint64_t id) {
    mock *m = self;
    pthread_mutex_lock(&m->mu);
    if (m->n_aborts == m->cap_aborts) {
        size_t cap = m->cap_aborts ? 2 * m->cap_aborts : 64;
        uint64_t *na = realloc(m->aborts, cap * sizeof *na);
        if (na) { m->aborts = na; m->cap_aborts = cap; }
    }
    if (m->n_aborts < m->cap_aborts) m->aborts[m->n_aborts++] = id;
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
    for (mreq *r = m->in_head, *nx; r; r = nx) { nx = r->next; finish(r, SRV_FINISH_ABORT); }
    free(m->aborts);
    free(m->running);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void srv_mock_opts_init(srv_mock_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = "mock";
    o->token_delay_us = 1000;
    o->max_num_seqs = 256;
    o->block_size = 16;
    o->num_blocks = 8192;
    o->max_model_len = 32768;
}

srv_backend *srv_mock_create(const srv_mock_opts *o, char *err, size_t errcap) {
    srv_mock_opts d;
    if (!o) { srv_mock_opts_init(&d); o = &d; }
    if (o->token_delay_us < 0 || o->max_num_seqs < 1 || o->block_size < 1 || o->num_blocks < 1 ||
        o->max_model_len < 2) {
        snprintf(err, errcap, "mock backend: token_delay_us >= 0, max_num_seqs, block_size, "
                 "num_blocks >= 1 and max_model_len >= 2 are required");
        return NULL;
    }
    mock *m = calloc(1, sizeof *m);
    if (!m) { snprintf(err, errcap, "out of memory"); return NULL; }
    m->o = *o;
    snprintf(m->model, sizeof m->model, "%s", o->model && *o->model ? o->model : "mock");
    m->o.model = m->model;
    m->running = calloc((size_t)o->max_num_seqs, sizeof *m->running);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->unseeded = 0x5EED;
    m->st.max_model_len = o->max_model_len;
    m->b = (srv_backend){m, m->model, mock_submit, mock_abort, mock_stats, mock_destroy};
    if (!m->running) {
        snprintf(err, errcap, "out of memory");
        mock_destroy(&m->b);
        return NULL;
    }
    if (pthread_create(&m->thread, NULL, engine_thread, m) != 0) {
        snprintf(err, errcap, "mock backend: cannot start its engine thread");
        mock_destroy(&m->b);
        return NULL;
    }
    m->thread_started = 1;
    return &m->b;
}
