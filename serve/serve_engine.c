/* serve/serve_engine.c — the CUDA engine as a srv_backend (see
 * serve_engine.h).  Threads: submit/abort/stats run on HTTP threads and
 * touch only the locked queue and the published stats; the engine thread
 * owns the engine, the live requests and every sink call.  Touches the GPU
 * (through engine/engine.h), the model files and its own state. */
#include "serve/serve_engine.h"
#include "base/rng.h"
#include "engine/engine.h"
#include "text/tokenizer.h"
#include "engine/weights.h"
#include "engine/lora_set.h"
#include "sim/model_config.h"
#include "base/errbuf.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif


#define DEFAULT_TOKENIZER "data/tokenizers/qwen3/tokenizer.json"

typedef struct echoice {         /* one sample's progress towards the sink */
    int       emitted_tokens;    /* tokens whose text went to the sink */
    size_t    emitted_bytes;
    int       stopped;           /* the sink asked to stop it */
} echoice;

typedef struct ereq {
    int       id;                /* the engine's request id (also the backend's) */
    srv_sink *sink;
    int32_t  *ids;               /* (n_ids,) the prompt, until the engine copies it */
    int       n_ids, max_tokens;
    eng_params p;
    eng_output_opts out;         /* n samples, log-probabilities */
    echoice  *ch;                /* (out.n,) */
    int       n_stopped;
    int       stopping;          /* aborted or every choice asked to stop: no more on_tokens */
    struct ereq *next;
} ereq;

typedef struct esrv {
    srv_backend b;
    char        model[512];
    const char **adapters;       /* (n,) the LoRA adapters' names (model_opts.lora), or NULL */
    tok_tokenizer *tok;
    eng        *e;
    int         max_model_len, max_num_seqs, vocab;
    pthread_t   thread;
    int         thread_started;
    pthread_mutex_t mu;          /* guards the fields down to `broken` */
    pthread_cond_t  cv;
    ereq       *in_head, *in_tail;
    int        *aborts;          /* (cap_aborts,) ids to abort */
    size_t      n_aborts, cap_aborts;
    int         quit, next_id;
    uint64_t    unseeded;
    srv_backend_stats st;
    char        broken[256];     /* the engine failed: new requests are refused with this */
    /* owned by the engine thread */
    ereq       *live;
    int         nlive;
    char       *dec;             /* (dec_cap,) decoded text */
    size_t      dec_cap;
    srv_token_lp *lpv;           /* (lpv_cap,) one delta's log-probabilities */
    srv_logprob *topv;           /* (topv_cap,) their most likely tokens */
    char       *lptext;          /* (lptext_cap,) the texts of those tokens */
    size_t      lpv_cap, topv_cap, lptext_cap;
    long        steps;
    long        prefix_queries;  /* prompt tokens handed to the engine */
} esrv;

/* ---- the engine thread ----------------------------------------------------------------------- */

/* Length of the valid UTF-8 character at s (n bytes left); -k for an
 * invalid subpart of k bytes; 0 when the bytes left are the start of a
 * character still to come. */
static int utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    int len;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return -1;
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n) return 0;
        if (s[k] < (k == 1 ? lo : 0x80) || s[k] > (k == 1 ? hi : 0xBF)) return -k;
    }
    return len;
}

/* Room for n elements of size sz in *p (capacity *cap).  -1 when out of memory. */
static int reserve(void **p, size_t *cap, size_t n, size_t sz) {
    if (n <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < n) c *= 2;
    void *q = realloc(*p, c * sz);
    if (!q) return -1;
    *p = q; *cap = c;
    return 0;
}

/* The log-probabilities of tokens [from, from + nn) of sample sm, with each
 * token's text (special tokens spelled out), in the backend's scratch
 * (valid until the next call).  NULL when out of memory. */
static const srv_token_lp *token_lps(esrv *s, const ereq *r, const eng_sample *sm, int from, int nn) {
    int K = r->out.top_logprobs;
    if (reserve((void **)&s->lpv, &s->lpv_cap, (size_t)nn, sizeof *s->lpv) ||
        reserve((void **)&s->topv, &s->topv_cap, (size_t)nn * (size_t)K + 1, sizeof *s->topv)) return NULL;
    size_t total = 0;                                    /* pass 1: the texts' bytes */
    for (int i = 0; i < nn; i++) {
        total += tok_decode(s->tok, &sm->tokens[from + i], 1, 0, NULL, 0) + 1;
        for (int j = 0; j < K; j++)
            if (sm->top_ids[(size_t)(from + i) * K + j] >= 0)
                total += tok_decode(s->tok, &sm->top_ids[(size_t)(from + i) * K + j], 1, 0, NULL, 0) + 1;
    }
    if (reserve((void **)&s->lptext, &s->lptext_cap, total + 1, 1)) return NULL;
    char *at = s->lptext;
    for (int i = 0; i < nn; i++) {                       /* pass 2: decode into place */
        srv_token_lp *l = &s->lpv[i];
        int32_t id = sm->tokens[from + i];
        size_t n = tok_decode(s->tok, &id, 1, 0, at, (size_t)(s->lptext + s->lptext_cap - at));
        l->tok = (srv_logprob){id, sm->logprobs[from + i], at, n};
        at += n + 1;
        l->top = s->topv + (size_t)i * K;
        l->n_top = 0;
        for (int j = 0; j < K; j++) {
            int32_t tid = sm->top_ids[(size_t)(from + i) * K + j];
            if (tid < 0) continue;
            size_t tn = tok_decode(s->tok, &tid, 1, 0, at, (size_t)(s->lptext + s->lptext_cap - at));
            s->topv[(size_t)i * K + l->n_top++] = (srv_logprob){tid, sm->top_lps[(size_t)(from + i) * K + j], at, tn};
            at += tn + 1;
        }
    }
    return s->lpv;
}

/* Sends the text of sample k's tokens not sent yet, as valid UTF-8 (with
 * their log-probabilities when asked): an invalid sequence becomes U+FFFD
 * (as vLLM's detokenizer does), a character cut at the end waits for the
 * next token unless the reply is final. */
static void emit(esrv *s, ereq *r, int k, const eng_sample *sm, int final) {
    echoice *c = &r->ch[k];
    const int32_t *toks = sm->tokens;
    int n = sm->num_tokens;
    if (r->stopping || c->stopped || (n <= c->emitted_tokens && !final)) return;
    size_t need = tok_decode(s->tok, toks, (size_t)n, TOK_SKIP_SPECIAL, NULL, 0);
    if (4 * need + 4 > s->dec_cap) {                     /* raw text (need + 1), then its cleaned copy */
        char *d = realloc(s->dec, 4 * need + 4);         /* (3 need + 3: a U+FFFD per bad byte at worst) */
        if (!d) return;                                  /* the text follows with the next call */
        s->dec = d; s->dec_cap = 4 * need + 4;
    }
    tok_decode(s->tok, toks, (size_t)n, TOK_SKIP_SPECIAL, s->dec, need + 1);
    const unsigned char *raw = (const unsigned char *)s->dec;
    char *clean = s->dec + need + 1;
    size_t m = 0;
    for (size_t i = 0; i < need;) {
        int u = utf8_char(raw + i, need - i);
        if (u == 0 && !final) break;                     /* wait for the rest of the character */
        if (u > 0) { memcpy(clean + m, raw + i, (size_t)u); m += (size_t)u; i += (size_t)u; }
        else { memcpy(clean + m, "\xEF\xBF\xBD", 3); m += 3; i += u < 0 ? (size_t)-u : need - i; }
    }
    size_t len = m > c->emitted_bytes ? m - c->emitted_bytes : 0;
    int from = c->emitted_tokens, nn = n > from ? n - from : 0;
    if (nn == 0 && len == 0) return;
    const srv_token_lp *lp = r->out.logprobs && nn ? token_lps(s, r, sm, from, nn) : NULL;
    srv_delta d = {k, toks + from, (size_t)nn, lp, clean + c->emitted_bytes, len};
    int stop = r->sink->on_tokens(r->sink, &d);
    c->emitted_tokens = from + nn;
    c->emitted_bytes += len;
    if (!stop) return;
    c->stopped = 1;
    if (++r->n_stopped == r->out.n) { r->stopping = 1; eng_abort(s->e, r->id); }
}

/* Tells the sink request r is over (each choice's end from samples when it
 * finished normally) and frees r. */
static void finish(esrv *s, ereq *r, srv_finish_reason why, int ptoks, int ctoks, const char *error,
                   const eng_sample *samples) {
    for (ereq **pp = &s->live; *pp; pp = &(*pp)->next)
        if (*pp == r) { *pp = r->next; s->nlive--; break; }
    srv_finish_reason reasons[SRV_MAX_N];
    for (int k = 0; k < r->out.n && k < SRV_MAX_N; k++) reasons[k] = why;
    for (int k = 0; samples && why == SRV_FINISH_STOP && k < r->out.n && k < SRV_MAX_N; k++)
        reasons[k] = samples[k].finish == SEQ_FINISH_LENGTH ? SRV_FINISH_LENGTH
                   : samples[k].finish == SEQ_FINISH_ABORT ? SRV_FINISH_ABORT : SRV_FINISH_STOP;
    srv_finish_info fi = { why, ptoks, ctoks, error, reasons };
    r->sink->on_finish(r->sink, &fi);
    free(r->ids);
    free(r->ch);
    free(r);
}

static ereq *find(esrv *s, int id) {
    for (ereq *r = s->live; r; r = r->next) if (r->id == id) return r;
    return NULL;
}

static void publish(esrv *s) {
    srv_backend_stats st = { 0 };
    st.running = s->nlive < s->max_num_seqs ? s->nlive : s->max_num_seqs;
    st.waiting = s->nlive - st.running;
    if (s->e) {
        kv_usage u;
        eng_usage(s->e, &u);
        st.kv_usage = u.slots_total > 0 ? (double)(u.token_slots + u.reserved_slots + u.internal_frag) / (double)u.slots_total : 0;
        st.preemptions = eng_sched_stats(s->e)->preemptions;
        st.prefix_queries = s->prefix_queries;
        st.prefix_hits = u.prefix_hit_tokens;
    }
    st.max_model_len = s->max_model_len;
    pthread_mutex_lock(&s->mu);
    s->st = st;
    pthread_mutex_unlock(&s->mu);
}

static void *engine_thread(void *arg) {
    esrv *s = arg;
    int *ab = NULL;
    size_t n_ab = 0, cap_ab = 0;
    char err[512];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int broken = s->broken[0] != 0;
        while (!s->quit && !s->in_head && !s->n_aborts && (broken || !eng_has_work(s->e)))
            pthread_cond_wait(&s->cv, &s->mu);
        int quit = s->quit;
        ereq *in = s->in_head;
        s->in_head = s->in_tail = NULL;
        int *t = ab; ab = s->aborts; s->aborts = t;          /* swap the abort list out */
        size_t tc = cap_ab; cap_ab = s->cap_aborts; s->cap_aborts = tc;
        n_ab = s->n_aborts; s->n_aborts = 0;
        pthread_mutex_unlock(&s->mu);

        for (ereq *r = in, *nx; r; r = nx) {                /* new requests into the engine */
            nx = r->next;
            r->next = s->live; s->live = r; s->nlive++;
            if (quit || broken) { finish(s, r, quit ? SRV_FINISH_ABORT : SRV_FINISH_ERROR, r->n_ids, 0, quit ? NULL : s->broken, NULL); continue; }
            if (eng_add_request_out(s->e, r->id, r->ids, r->n_ids, &r->p, &r->out, err, sizeof err)) {
                finish(s, r, SRV_FINISH_ERROR, r->n_ids, 0, err, NULL);
                continue;
            }
            s->prefix_queries += r->n_ids;
            free(r->ids); r->ids = NULL;
        }
        for (size_t k = 0; k < n_ab; k++) {
            ereq *r = find(s, ab[k]);
            if (r && !r->stopping) { r->stopping = 1; eng_abort(s->e, r->id); }
        }
        if (quit)
            for (ereq *r = s->live; r; r = r->next)
                if (!r->stopping) { r->stopping = 1; eng_abort(s->e, r->id); }
        if (broken) {
            while (s->live) finish(s, s->live, SRV_FINISH_ERROR, s->live->n_ids, 0, s->broken, NULL);
            publish(s);
            if (quit) break;
            continue;
        }
        const eng_result *done;
        int nd = 0, rc = eng_step(s->e, &done, &nd, err, sizeof err);
        if (rc < 0) {                                        /* the engine is unusable from here */
            pthread_mutex_lock(&s->mu);
            snprintf(s->broken, sizeof s->broken, "the engine failed: %.200s", err);
            pthread_mutex_unlock(&s->mu);
            while (s->live) finish(s, s->live, SRV_FINISH_ERROR, s->live->n_ids, 0, s->broken, NULL);
            publish(s);
            if (quit) break;
            continue;
        }
        for (ereq *r = s->live; r; r = r->next) {           /* stream what each live request has */
            int n = 0;
            const eng_sample *sm = eng_request_samples(s->e, r->id, &n);
            for (int k = 0; sm && k < n && k < r->out.n; k++) emit(s, r, k, &sm[k], 0);
        }
        for (int k = 0; k < nd; k++) {
            const eng_result *d = &done[k];
            ereq *r = find(s, d->id);
            if (!r) continue;
            int stopped = r->stopping, ctoks = 0;
            for (int j = 0; j < d->num_samples && j < r->out.n; j++) {
                emit(s, r, j, &d->samples[j], 1);
                ctoks += d->samples[j].num_tokens;
            }
            finish(s, r, d->aborted || stopped ? SRV_FINISH_ABORT : SRV_FINISH_STOP, d->prompt_len, ctoks, NULL,
                   d->samples);
        }
        if (rc == 0 && nd == 0 && !eng_has_work(s->e))       /* nothing left to run: none may wait forever */
            while (s->live) finish(s, s->live, quit ? SRV_FINISH_ABORT : SRV_FINISH_ERROR, s->live->n_ids, 0,
                                   quit ? NULL : "the engine has no work left for this request", NULL);
        if (s->steps++ % 8 == 0 || nd) publish(s);
        if (quit && !s->live) break;
    }
    publish(s);
    free(ab);
    return NULL;
}

/* ---- the srv_backend operations ------------------------------------------------------------ */

static int esrv_submit(void *self, const srv_gen_params *p, srv_sink *sink, uint64_t *id, char *err, size_t errcap) {
    esrv *s = self;
    if (!p || !sink || (!p->prompt && !p->prompt_ids) || p->max_tokens < 1)
        return errbuf_fail(err, errcap, "engine backend: no prompt or max_tokens < 1");
    ereq *r = calloc(1, sizeof *r);
    if (!r) return errbuf_fail(err, errcap, "out of memory");
    if (p->prompt) {
        tok_ids t = { 0 };
        if (tok_encode(s->tok, p->prompt, strlen(p->prompt), 0, &t)) { free(r); return errbuf_fail(err, errcap, "out of memory"); }
        r->ids = t.ids; r->n_ids = (int)t.n;
    } else {
        r->ids = malloc(sizeof(int32_t) * (p->n_prompt_ids ? p->n_prompt_ids : 1));
        if (!r->ids) { free(r); return errbuf_fail(err, errcap, "out of memory"); }
        for (size_t i = 0; i < p->n_prompt_ids; i++) {
            if (p->prompt_ids[i] < 0 || p->prompt_ids[i] >= s->vocab) {
                free(r->ids); free(r);
                return errbuf_fail(err, errcap, "prompt token %zu is %d, outside the vocabulary (%d)", i, p->prompt_ids[i], s->vocab);
            }
            r->ids[i] = p->prompt_ids[i];
        }
        r->n_ids = (int)p->n_prompt_ids;
    }
    if (r->n_ids < 1 || r->n_ids >= s->max_model_len) {
        int n = r->n_ids;
        free(r->ids); free(r);
        return errbuf_fail(err, errcap, n < 1 ? "the prompt is empty" : "the prompt has %d tokens; this model's maximum context length is %d",
                    n, s->max_model_len);
    }
    r->out = (eng_output_opts){ p->n > 1 ? p->n : 1, p->logprobs != 0, p->logprobs ? p->top_logprobs : 0 };
    if (r->out.n > s->max_num_seqs || r->out.top_logprobs < 0 || r->out.top_logprobs > ENG_MAX_TOP_LOGPROBS) {
        free(r->ids); free(r);
        return errbuf_fail(err, errcap, "n is %d (this server runs at most %d sequences at once) and top_logprobs %d (0..%d)",
                           p->n, s->max_num_seqs, p->top_logprobs, ENG_MAX_TOP_LOGPROBS);
    }
    if (!(r->ch = calloc((size_t)r->out.n, sizeof *r->ch))) { free(r->ids); free(r); return errbuf_fail(err, errcap, "out of memory"); }
    r->sink = sink;
    r->max_tokens = p->max_tokens < s->max_model_len - r->n_ids ? p->max_tokens : s->max_model_len - r->n_ids;
    pthread_mutex_lock(&s->mu);
    uint64_t seed = p->has_seed ? p->seed : rng_splitmix64(&s->unseeded);
    int refuse = s->quit || s->broken[0];
    if (refuse) errbuf_fail(err, errcap, "%s", s->quit ? "the engine backend is shutting down" : s->broken);
    else {
        r->id = s->next_id++;
        r->p = (eng_params){ .max_tokens = r->max_tokens, .temperature = (float)p->temperature,
                             .top_p = (float)(p->top_p > 0 ? p->top_p : 1), .seed = seed, .lora = p->lora };
        if (s->in_tail) s->in_tail->next = r; else s->in_head = r;
        s->in_tail = r;
        *id = (uint64_t)r->id;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (refuse) { free(r->ids); free(r->ch); free(r); return -1; }
    return 0;
}

static void esrv_abort(void *self, uint64_t id) {
    esrv *s = self;
    pthread_mutex_lock(&s->mu);
    if (s->n_aborts == s->cap_aborts) {
        size_t cap = s->cap_aborts ? 2 * s->cap_aborts : 64;
        int *na = realloc(s->aborts, cap * sizeof *na);
        if (na) { s->aborts = na; s->cap_aborts = cap; }
    }
    if (s->n_aborts < s->cap_aborts) s->aborts[s->n_aborts++] = (int)id;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void esrv_stats(void *self, srv_backend_stats *out) {
    esrv *s = self;
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

static void esrv_destroy(srv_backend *b) {
    if (!b) return;
    esrv *s = b->self;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->quit = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    for (ereq *r = s->in_head, *nx; r; r = nx) {           /* never reached the engine thread */
        nx = r->next;
        srv_finish_info fi = { SRV_FINISH_ABORT, r->n_ids, 0, NULL, NULL };
        r->sink->on_finish(r->sink, &fi);
        free(r->ids); free(r->ch); free(r);
    }
    if (s->e) eng_free(s->e);
    tok_free(s->tok);
    free(s->aborts); free(s->dec); free(s->lpv); free(s->topv); free(s->lptext); free(s->adapters);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void srv_engine_opts_init(srv_engine_opts *o) {
    memset(o, 0, sizeof *o);
    o->kv_policy = KV_PAGED;
    o->prefix_caching = 1;
}

srv_backend *srv_engine_create(const srv_engine_opts *o, char *info, size_t infolen, char *err, size_t errcap) {
    if (info && infolen) info[0] = 0;
    if (!o->model_dir == !o->dummy_config) { errbuf_fail(err, errcap, "engine backend: give a model directory or a dummy config"); return NULL; }
#ifdef PAGESIM_HAVE_CUDA
    int ndev = 0;
    cudaError_t cr = cudaGetDeviceCount(&ndev);
    if (cr != cudaSuccess || ndev == 0) {
        errbuf_fail(err, errcap, "no CUDA GPU is visible here (%s); `engine/serve --mock` serves without one",
             cr != cudaSuccess ? cudaGetErrorString(cr) : "0 devices");
        return NULL;
    }
#else
    errbuf_fail(err, errcap, "this build has no CUDA engine (nvcc was not found); `engine/serve --mock` serves without one");
    return NULL;
#endif
    esrv *s = calloc(1, sizeof *s);
    if (!s) { errbuf_fail(err, errcap, "out of memory"); return NULL; }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->unseeded = 0x5EED;
    s->b = (srv_backend){ s, s->model, esrv_submit, esrv_abort, esrv_stats, esrv_destroy, NULL, 0 };
    char cfg[4200], tokp[4200];
    mc_config c;
    w_weights w;
    if (o->model_dir) snprintf(cfg, sizeof cfg, "%s/config.json", o->model_dir);
    else snprintf(cfg, sizeof cfg, "%s", o->dummy_config);
    if (o->tokenizer) snprintf(tokp, sizeof tokp, "%s", o->tokenizer);
    else if (o->model_dir) snprintf(tokp, sizeof tokp, "%s/tokenizer.json", o->model_dir);
    else snprintf(tokp, sizeof tokp, "%s", DEFAULT_TOKENIZER);
    snprintf(s->model, sizeof s->model, "%.500s", o->served_name ? o->served_name : o->model_dir ? o->model_dir : o->dummy_config);
    if (mc_load(&c, cfg, err, errcap) || w_check_config(&c, err, errcap)) goto fail;
    if (!(s->tok = tok_load(tokp, err, errcap))) goto fail;
    if (tok_vocab_size(s->tok) > c.vocab_size) {
        errbuf_fail(err, errcap, "%s has %d tokens, more than the model's vocabulary (%d): give the model's own tokenizer",
             tokp, tok_vocab_size(s->tok), c.vocab_size);
        goto fail;
    }
    s->vocab = c.vocab_size;
    /* the chat turn's end: ChatML, Llama 3, Gemma (whichever the tokenizer has) */
    static const char *const eos_names[] = { "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>", "</s>" };
    int eos = -1;
    for (size_t i = 0; i < sizeof eos_names / sizeof *eos_names && eos < 0; i++) eos = tok_special_id(s->tok, eos_names[i]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (tp_engine_load(o->tp, &c, o->model_dir, o->dummy_seed, &w, err, errcap)) goto fail;   /* a shard with tp */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wgib = w.bytes / 1073741824.0;
    eng_config ec;
    memset(&ec, 0, sizeof ec);
    ec.model = o->model;
    ec.model.tp = tp_engine_rank(o->tp);
    if (ec.model.max_num_batched_tokens <= 0) ec.model.max_num_batched_tokens = 8192;
    ec.kv_policy = o->kv_policy;
    ec.prefix_caching = o->prefix_caching != 0;
    ec.eos_id = eos;
    model_mem mem;
    if (!(s->e = eng_create(&c, &w, &ec, &mem, err, errcap))) goto fail;
    const model_opts *mo = model_options(eng_model(s->e));
    if (mo->lora && mo->lora->n > 0) {       /* the adapters requests may name (the caller keeps the set) */
        if (!(s->adapters = calloc((size_t)mo->lora->n, sizeof *s->adapters))) { errbuf_fail(err, errcap, "out of memory"); goto fail; }
        for (int i = 0; i < mo->lora->n; i++) s->adapters[i] = mo->lora->a[i].name;
        s->b.adapters = s->adapters;
        s->b.n_adapters = mo->lora->n;
    }
    s->max_model_len = mo->max_model_len;
    s->max_num_seqs = mo->max_num_seqs;
    if (info)
        snprintf(info, infolen, "Loading weights took %.2f GiB and %.2f s (%s)\n"
                 "Memory: weights %.2f GiB, activation peak %.2f GiB, KV cache %.2f GiB (%zu bytes/token)\n"
                 "GPU KV cache size: %ld tokens\nMaximum concurrency for %d tokens per request: %.2fx\n"
                 "KV cache: %s; tokenizer %s; stop token %d; %s",
                 wgib, (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec), o->dummy_config ? "dummy weights" : o->model_dir,
                 mem.weights / 1073741824.0, mem.activations / 1073741824.0, mem.kv_cache / 1073741824.0,
                 mem.kv_bytes_per_token, mem.kv_tokens, s->max_model_len, mem.max_concurrency,
                 kv_policy_name(o->kv_policy), tokp, eos, "tokens stream as generated");
    publish(s);
    if (pthread_create(&s->thread, NULL, engine_thread, s) != 0) { errbuf_fail(err, errcap, "engine backend: cannot start its engine thread"); goto fail; }
    s->thread_started = 1;
    return &s->b;
fail:
    esrv_destroy(&s->b);
    return NULL;
}
