/* engine: see engine.h.  eng_execute is the executor the step loop calls:
 * block copies, then the batch (eng_build_batch), then one forward pass and
 * sampling (or scoring).  The per-request state (sampling parameters, scores,
 * result) hangs off seq->user.  The loop runs through the driver
 * (sim/driver.h: its clock is the wall clock since eng_create, stalls are
 * errors, every step and request goes to its metrics collector); requests
 * reach it through a queue (sim/drv_queue.h) that eng_add_request pushes
 * into and the driver releases at each request's arrival.  Owns the model,
 * the KV pool, the scheduler, the loop, the queue and the driver.  The
 * host's time in each phase of a step goes to the model's probe (marks). */
#include "engine/engine.h"
#include "engine/lora_set.h"
#include "engine/model_probe.h"
#include "engine/swap.h"
#include "sim/driver.h"
#include "sim/drv_queue.h"
#include "base/errbuf.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct eng_req {
    eng_params p;                /* p.score_ids points at score_ids */
    eng_result r;
    eng_samples samp;            /* per sample: tokens, log-probabilities (engine/samples.h) */
    int32_t *score_ids;          /* (p.num_score,) score mode's candidates */
    float   *scores;             /* (p.num_score,) their log-probabilities (r.scores) */
    bool live;
} eng_req;

struct eng {
    eng_config  cfg;
    model      *m;
    kv_cache   *kv;
    sched      *sc;
    loop        lp;
    drv        *d;
    drv_queue  *q;               /* requests not yet released to the scheduler */
    eng_batch_buf buf;
    eng_req   **reqs;            /* (nreq,) every request ever added */
    int         nreq, cap_req;
    eng_result *done;            /* (cap_done,) this step's finished requests */
    int         cap_done;
    eng_result *aborted;         /* (cap_ab,) aborted since the last step */
    int         n_ab, cap_ab;
    k_sample_params *sp;         /* (max_logit_rows,) */
    int32_t    *tok;             /* (max_logit_rows,) */
    int        *row_of;          /* (max_num_seqs,) the logits row of each batch item */
    float      *hlogits;         /* (max_logit_rows, V) host, with on_logits or top_logprobs */
    float      *tok_lp;          /* (max_logit_rows,) log-probabilities of the sampled tokens */
    int32_t    *score_tok;       /* (max_logit_rows,) score mode: one candidate per logits row */
    float      *score_lp;        /* (max_logit_rows,) and its log-probability */
    eng_step_info last;
    struct timespec t0;
};

static double now_s(const eng *e) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - e->t0.tv_sec) + 1e-9 * (t.tv_nsec - e->t0.tv_nsec);
}
/* The driver's clock: it waits (sleeps) for the next queued arrival.  eng_step
 * never asks it to wait with nothing queued. */
static double clock_now(void *ctx) { return now_s(ctx); }
static int clock_wait(void *ctx, double until, char *err, size_t errlen) {
    if (until == INFINITY) return errbuf_fail(err, errlen, "engine: nothing to run and no request to wait for");
    double dt = until - now_s(ctx);
    if (dt <= 0) return 0;
    struct timespec ts = { (time_t)dt, (long)((dt - (double)(time_t)dt) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    return 0;
}

kv_config eng_kv_config(const model_opts *o, int num_blocks, kv_policy p, bool prefix_caching) {
    int bs = o->block_size;
    kv_config kc = {p, num_blocks, bs, o->max_model_len, 2048, prefix_caching && p == KV_PAGED, 0, KV_ALLOC_FIRST_FIT};
    /* a reservation of whole blocks starts on a block boundary (every one has
     * the same length), so its blocks form the block table */
    if (p != KV_PAGED) kc.max_model_len = (o->max_model_len + bs - 1) / bs * bs;
    return kc;
}

sched_config eng_sched_config(const model_opts *o, bool static_batching, sched_preempt_mode preempt) {
    sched_config sc = sched_config_default();
    sc.max_num_seqs = o->max_num_seqs;
    sc.max_num_batched_tokens = o->max_num_batched_tokens;
    sc.max_model_len = o->max_model_len;
    sc.preempt = preempt;
    sc.static_batching = static_batching;
    sc.max_loras = o->lora ? o->lora->max_loras : 0;   /* a step's adapters fit the GPU slots */
    return sc;
}

static k_sample_params params_of(const seq *s) {
    const eng_req *q = s->user;
    return (k_sample_params){q->p.temperature, q->p.top_k, q->p.top_p,
                             q->p.seed + (uint64_t)s->sample, (uint64_t)seq_num_generated(s)};
}

/* Records each sampled token in its request's samples, with the
 * log-probabilities the request asked for; row_of[i] = item i's logits row. */
static int record_samples(eng *e, const sched_batch *b, const int *tokens, const int *row_of,
                          int R, char *err, size_t errlen) {
    int want_lp = 0, want_top = 0, V = model_config(e->m)->vocab_size;
    for (int i = 0; i < b->num_items; i++) {
        const eng_req *q = b->items[i].s->user;
        if (!b->items[i].samples) continue;
        want_lp |= q->samp.logprobs;
        want_top |= q->samp.top_k > 0;
    }
    if (want_lp && model_logprobs(e->m, R, e->tok, e->tok_lp, err, errlen)) return -1;
    if (want_top) {                           /* the rows on the host: the top k there */
        if (!e->hlogits && !(e->hlogits = malloc(sizeof(float) * (size_t)model_options(e->m)->max_logit_rows * V)))
            return errbuf_fail(err, errlen, "out of memory");
        if (model_logits(e->m, R, e->hlogits, err, errlen)) return -1;
    }
    for (int i = 0; i < b->num_items; i++) {
        const sched_item *it = &b->items[i];
        eng_req *q = it->s->user;
        if (!it->samples) continue;
        int32_t ids[ENG_MAX_TOP_LOGPROBS];
        float lps[ENG_MAX_TOP_LOGPROBS];
        if (q->samp.top_k) eng_top_logprobs(e->hlogits + (size_t)row_of[i] * V, V, q->samp.top_k, ids, lps);
        if (eng_samples_put(&q->samp, it->s->sample, seq_num_generated(it->s), tokens[i],
                            q->samp.logprobs ? e->tok_lp[row_of[i]] : 0, ids, lps))
            return errbuf_fail(err, errlen, "out of memory");
    }
    return 0;
}

int eng_score_row(const sched_batch *b, const model_batch *mb, int i) {
    const sched_item *it = &b->items[i];
    if (!it->samples || seq_num_generated(it->s) > 0) return -1;
    return mb->all_logits ? mb->query_start[i + 1] - 1 : i;
}

int eng_check_request(int id, const int *prompt, int prompt_len, const eng_params *p, int max_model_len,
                      int vocab, char *err, size_t errlen) {
    if (prompt_len <= 0 || p->max_tokens <= 0 || prompt_len + p->max_tokens > max_model_len)
        return errbuf_fail(err, errlen, "request %d: %d prompt + %d new tokens (max_model_len %d)", id, prompt_len,
                           p->max_tokens, max_model_len);
    for (int i = 0; i < prompt_len; i++)
        if (prompt[i] < 0 || prompt[i] >= vocab)
            return errbuf_fail(err, errlen, "request %d: token %d at %d is outside the vocabulary (%d)", id, prompt[i],
                               i, vocab);
    if (isnan(p->arrival)) return errbuf_fail(err, errlen, "request %d: no arrival time (NaN)", id);
    if (!p->score) {
        if (p->num_score != 0 || p->score_ids)
            return errbuf_fail(err, errlen, "request %d: candidates to score but score mode is off", id);
        return 0;
    }
    if (p->max_tokens != 1)
        return errbuf_fail(err, errlen, "request %d: score mode computes 1 token, not max_tokens %d", id, p->max_tokens);
    if (p->num_score < 1 || p->num_score > ENG_MAX_SCORE_IDS || !p->score_ids)
        return errbuf_fail(err, errlen, "request %d: score mode needs 1 to %d candidate ids (%d given)", id,
                           ENG_MAX_SCORE_IDS, p->score_ids ? p->num_score : 0);
    for (int k = 0; k < p->num_score; k++)
        if (p->score_ids[k] < 0 || p->score_ids[k] >= vocab)
            return errbuf_fail(err, errlen, "request %d: candidate %d is token %d, outside the vocabulary (%d)", id, k,
                               p->score_ids[k], vocab);
    return 0;
}

/* the scoring request of item i when it scores in this step, else NULL */
static eng_req *scoring(const sched_batch *b, const model_batch *mb, int i) {
    eng_req *q = b->items[i].s->user;
    return q->p.score && eng_score_row(b, mb, i) >= 0 ? q : NULL;
}

/* Whether a token must be sampled in this step: an item samples and is not
 * scored instead. */
static bool must_sample(const sched_batch *b) {
    for (int i = 0; i < b->num_items; i++)
        if (b->items[i].samples && !((const eng_req *)b->items[i].s->user)->p.score) return true;
    return false;
}

/* Score mode: the log-probabilities of each scoring item's candidates at its
 * row of the step's R logits rows, one candidate per row and call; its token
 * is the likeliest candidate. */
static int score_step(eng *e, const sched_batch *b, const model_batch *mb, int R, int *tokens, char *err,
                      size_t errlen) {
    int K = 0;
    for (int i = 0; i < b->num_items; i++) {
        const eng_req *q = scoring(b, mb, i);
        if (q && q->p.num_score > K) K = q->p.num_score;
    }
    for (int k = 0; k < K; k++) {
        memset(e->score_tok, 0, sizeof *e->score_tok * (size_t)R);
        for (int i = 0; i < b->num_items; i++) {
            const eng_req *q = scoring(b, mb, i);
            if (q && k < q->p.num_score) e->score_tok[eng_score_row(b, mb, i)] = q->score_ids[k];
        }
        if (model_logprobs(e->m, R, e->score_tok, e->score_lp, err, errlen)) return -1;
        for (int i = 0; i < b->num_items; i++) {
            eng_req *q = scoring(b, mb, i);
            if (q && k < q->p.num_score) q->scores[k] = e->score_lp[eng_score_row(b, mb, i)];
        }
    }
    for (int i = 0; i < b->num_items && K > 0; i++) {
        const eng_req *q = scoring(b, mb, i);
        if (!q) continue;
        int best = 0;
        for (int k = 1; k < q->p.num_score; k++) if (q->scores[k] > q->scores[best]) best = k;
        tokens[i] = q->score_ids[best];
    }
    return 0;
}

/* The step's block copies in the scheduler's order (swap-outs, swap-ins,
 * copy-on-write): each copy-on-write alone, each run of swaps as one. */
static int run_copies(eng *e, const sched_batch *b, char *err, size_t errlen) {
    for (int i = 0; i < b->num_copies;) {
        swap_run r;
        i = kvr_next(b->copies, b->num_copies, i, &r);
        if (r.kind == KV_COPY_GPU ? model_copy_block(e->m, r.src, r.dst, err, errlen)
                                  : model_swap(e->m, r.kind, r.src, r.dst, r.n, err, errlen))
            return -1;
    }
    return 0;
}

/* the executor of the step loop */
static int eng_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds, char *err,
                       size_t errlen) {
    eng *e = ctx;
    mprobe *pr = model_probe(e->m);
    mprobe_mark(pr, MH_SCHEDULE);
    if (run_copies(e, b, err, errlen)) return -1;
    mprobe_mark(pr, MH_COPIES);
    if (b->num_items > 0) {
        model_batch mb;
        const model_opts *o = model_options(e->m);
        int mbk = (o->max_model_len + o->block_size - 1) / o->block_size, R;
        if (eng_build_batch(b, e->kv, &e->buf, mbk, &mb, err, errlen)) return -1;
        mb.all_logits = e->cfg.on_logits != NULL;
        mprobe_mark(pr, MH_BUILD);
        int *row_of = e->row_of;              /* (num_items,) the logits row of each item */
        if (!mb.all_logits) {                 /* one row per sequence: its last token */
            for (int i = 0; i < b->num_items; i++) e->sp[i] = params_of(b->items[i].s);
            if (must_sample(b) ? model_forward_sample(e->m, &mb, e->sp, e->tok, &R, err, errlen)
                               : model_forward(e->m, &mb, &R, err, errlen))
                return -1;
            for (int i = 0; i < b->num_items; i++) { tokens[i] = e->tok[i]; row_of[i] = i; }
        } else {                              /* every row; a sequence samples from its last */
            int V = model_config(e->m)->vocab_size;
            if (model_forward(e->m, &mb, &R, err, errlen)) return -1;
            for (int i = 0; i < b->num_items; i++)
                for (int r = mb.query_start[i]; r < mb.query_start[i + 1]; r++) e->sp[r] = params_of(b->items[i].s);
            if (model_sample(e->m, R, e->sp, e->tok, err, errlen) ||
                model_logits(e->m, R, e->hlogits, err, errlen))
                return -1;
            for (int i = 0; i < b->num_items; i++) {
                const sched_item *it = &b->items[i];
                const eng_req *q = it->s->user;
                tokens[i] = e->tok[mb.query_start[i + 1] - 1];
                row_of[i] = mb.query_start[i + 1] - 1;
                for (int r = mb.query_start[i]; r < mb.query_start[i + 1]; r++)
                    e->cfg.on_logits(e->cfg.logits_ctx, q->r.id, it->start + (r - mb.query_start[i]),
                                     e->hlogits + (size_t)r * V, V);
            }
        }
        if (score_step(e, b, &mb, R, tokens, err, errlen) ||    /* before the tokens are recorded */
            record_samples(e, b, tokens, row_of, R, err, errlen))
            return -1;
        mprobe_mark(pr, MH_RECORD);
    }
    *seconds = now_s(e) - e->lp.now;
    return 0;
}

int eng_check_config(const eng_config *cfg, char *err, size_t errlen) {
    if (cfg->kv_policy != KV_PAGED && cfg->kv_policy != KV_CONTIGUOUS)
        return errbuf_fail(err, errlen, "KV policy %s is not supported by the engine (paged, contiguous)",
                           kv_policy_name(cfg->kv_policy));
    if (cfg->preempt != SCHED_PREEMPT_RECOMPUTE && cfg->preempt != SCHED_PREEMPT_SWAP)
        return errbuf_fail(err, errlen, "preemption mode %d (recompute or swap)", (int)cfg->preempt);
    if (cfg->preempt == SCHED_PREEMPT_SWAP && cfg->kv_policy != KV_PAGED)
        return errbuf_fail(err, errlen, "preemption by swap needs the paged KV policy (not %s)",
                           kv_policy_name(cfg->kv_policy));
    if (!(cfg->model.swap_space >= 0) || !isfinite(cfg->model.swap_space))
        return errbuf_fail(err, errlen, "swap space of %g GiB", cfg->model.swap_space);
    return 0;
}

eng *eng_create(const mc_config *c, w_weights *w, const eng_config *cfg, model_mem *mem, char *err,
                size_t errlen) {
    if (eng_check_config(cfg, err, errlen)) { w_free(w); return NULL; }
    eng *e = calloc(1, sizeof *e);
    if (!e) { w_free(w); errbuf_fail(err, errlen, "out of memory"); return NULL; }
    clock_gettime(CLOCK_MONOTONIC, &e->t0);
    e->cfg = *cfg;
    model_opts mo = cfg->model;
    /* a swap pool only for preemption by swap: vLLM's 4 GiB unless given */
    mo.swap_space = cfg->preempt == SCHED_PREEMPT_SWAP ? (mo.swap_space > 0 ? mo.swap_space : 4.0) : 0;
    if (cfg->on_logits) {                   /* every token of a step may need its logits */
        int T = mo.max_num_batched_tokens > 0 ? mo.max_num_batched_tokens : 2048;
        if (mo.max_logit_rows < T) mo.max_logit_rows = T;
    }
    if (model_create(&e->m, c, w, &mo, mem, err, errlen)) { free(e); return NULL; }
    const model_opts *o = model_options(e->m);
    kv_config kc = eng_kv_config(o, model_num_blocks(e->m), cfg->kv_policy, cfg->prefix_caching);
    kc.num_cpu_blocks = model_num_cpu_blocks(e->m);      /* 0 unless preemption by swap */
    sched_config sc = eng_sched_config(o, cfg->static_batching, cfg->preempt);
    size_t R = (size_t)o->max_logit_rows;
    e->sp = calloc(R, sizeof *e->sp);
    e->tok = calloc(R, sizeof *e->tok);
    e->tok_lp = calloc(R, sizeof *e->tok_lp);
    e->row_of = calloc((size_t)o->max_num_seqs, sizeof *e->row_of);
    e->score_tok = calloc(R, sizeof *e->score_tok);
    e->score_lp = calloc(R, sizeof *e->score_lp);
    e->q = drv_queue_create();
    if (cfg->on_logits) e->hlogits = malloc(R * (size_t)c->vocab_size * sizeof(float));
    if (!e->sp || !e->tok || !e->tok_lp || !e->row_of || !e->score_tok || !e->score_lp || !e->q ||
        (cfg->on_logits && !e->hlogits)) {
        errbuf_fail(err, errlen, "out of memory");
        eng_free(e);
        return NULL;
    }
    if (!(e->kv = kv_create(&kc, err, errlen)) || !(e->sc = sched_create(&sc, e->kv, err, errlen))) {
        eng_free(e);
        return NULL;
    }
    if (loop_init(&e->lp, e->sc, (loop_executor){e, eng_execute}, 0.0, cfg->eos_id)) {
        errbuf_fail(err, errlen, "out of memory");
        eng_free(e);
        return NULL;
    }
    /* the driver: the queue eng_add_request fills, the wall clock */
    drv_config dc = drv_config_default();
    dc.source = drv_source_queue(e->q);
    dc.clock = (drv_clock){ clock_now, clock_wait, e };
    dc.keep_requests = cfg->keep_request_metrics;
    dc.keep_steps = cfg->keep_steps;
    dc.usage_every = 1;               /* the pool at every step: nothing next to a forward pass */
    if (!(e->d = drv_create(&e->lp, e->kv, &dc, err, errlen))) {
        eng_free(e);
        return NULL;
    }
    return e;
}

static void req_free(eng_req *q) {
    if (!q) return;
    eng_samples_free(&q->samp);
    free(q->r.tokens); free(q->score_ids); free(q->scores); free(q);
}

int eng_add_request(eng *e, int id, const int *prompt, int prompt_len, const eng_params *p, char *err,
                    size_t errlen) {
    return eng_add_request_out(e, id, prompt, prompt_len, p, NULL, err, errlen);
}

int eng_add_request_out(eng *e, int id, const int *prompt, int prompt_len, const eng_params *p,
                        const eng_output_opts *out, char *err, size_t errlen) {
    eng_output_opts one = {1, 0, 0};
    if (!out) out = &one;
    int n = out->n > 1 ? out->n : 1;
    if (n > model_options(e->m)->max_num_seqs || out->top_logprobs < 0 || out->top_logprobs > ENG_MAX_TOP_LOGPROBS)
        return errbuf_fail(err, errlen, "request %d: n %d (at most max_num_seqs %d), top_logprobs %d (0..%d)", id, n,
                           model_options(e->m)->max_num_seqs, out->top_logprobs, ENG_MAX_TOP_LOGPROBS);
    if (p->score && (n > 1 || out->logprobs || out->top_logprobs))
        return errbuf_fail(err, errlen, "request %d: score mode has one sequence and its scores (n 1, no logprobs)", id);
    if (eng_check_request(id, prompt, prompt_len, p, model_options(e->m)->max_model_len,
                          model_config(e->m)->vocab_size, err, errlen))
        return -1;
    const lora_set *ls = model_options(e->m)->lora;
    if (p->lora < 0 || p->lora > (ls ? ls->n : 0))
        return errbuf_fail(err, errlen, "request %d: LoRA adapter %d (%d loaded%s)", id, p->lora, ls ? ls->n : 0,
                           ls ? "" : "; start the engine with --enable-lora --lora-modules name=path");
    if (e->nreq == e->cap_req) {
        int nc = e->cap_req ? 2 * e->cap_req : 64;
        eng_req **r = realloc(e->reqs, sizeof *r * (size_t)nc);
        if (!r) return errbuf_fail(err, errlen, "out of memory");
        e->reqs = r; e->cap_req = nc;
    }
    eng_req *q = calloc(1, sizeof *q);
    if (!q) return errbuf_fail(err, errlen, "out of memory");
    if (eng_samples_init(&q->samp, n, out->logprobs, out->top_logprobs)) { free(q); return errbuf_fail(err, errlen, "out of memory"); }
    q->p = *p;
    q->r.num_samples = n;
    q->r.samples = q->samp.s;
    if (p->score) {
        size_t K = (size_t)p->num_score;
        q->score_ids = malloc(sizeof *q->score_ids * K);
        q->scores = malloc(sizeof *q->scores * K);
        if (!q->score_ids || !q->scores) { req_free(q); return errbuf_fail(err, errlen, "out of memory"); }
        memcpy(q->score_ids, p->score_ids, sizeof *q->score_ids * K);
        for (size_t k = 0; k < K; k++) q->scores[k] = NAN;
        q->p.score_ids = q->score_ids;
        q->r.num_scores = p->num_score;
        q->r.scores = q->scores;
    }
    double now = now_s(e);
    q->r.id = id;
    q->r.prompt_len = prompt_len;
    q->r.arrival = p->arrival > now ? p->arrival : now;
    q->r.first_token = -1;
    q->live = true;
    drv_request r = { id, prompt, prompt_len, p->max_tokens, n, 0, q->r.arrival, q, p->lora };
    if (drv_queue_push(e->q, &r)) { req_free(q); return errbuf_fail(err, errlen, "out of memory"); }
    e->reqs[e->nreq++] = q;
    /* what has arrived enters the scheduler now (eng_tokens, eng_abort see it) */
    e->lp.now = now;
    return drv_admit(e->d, err, errlen);
}

/* Records the end of s (a sequence of q that finished, or NULL) and keeps
 * sample 0's tokens in q's result. */
static int keep_tokens(eng_req *q, const seq *s) {
    if (s && s->sample >= 0 && s->sample < q->samp.n) q->samp.s[s->sample].finish = s->finish_reason;
    if (s) q->r.num_preemptions = s->num_preemptions;
    const eng_sample *s0 = &q->samp.s[0];
    int n = s0->num_tokens;
    free(q->r.tokens);
    q->r.tokens = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!q->r.tokens) { q->r.num_tokens = 0; return -1; }
    if (n > 0) memcpy(q->r.tokens, s0->tokens, sizeof(int32_t) * (size_t)n);
    q->r.num_tokens = n;
    return 0;
}

int eng_step(eng *e, const eng_result **done, int *n_done, char *err, size_t errlen) {
    loop_step_info info;
    mprobe_mark(model_probe(e->m), MH_OUTSIDE);
    *n_done = 0;
    *done = e->done;
    memset(&info, 0, sizeof info);
    int rc = 0;                                    /* idle: nothing to run or to wait for */
    if (sched_has_work(e->sc) || drv_queue_len(e->q) > 0)
        rc = drv_step(e->d, &info, err, errlen);   /* 1: a step; -1: an error or a stall */
    if (rc < 0) return rc;
    memset(&e->last, 0, sizeof e->last);
    if (rc > 0 && info.batch) {
        const cm_batch *cb = &info.batch->counts;
        e->last = (eng_step_info){cb->num_seqs, (int)cb->prefill_tokens, (int)cb->decode_tokens,
                                  info.batch->preempted, info.batch->num_copies, cb->attn_ctx_tokens,
                                  cb->attn_pairs, info.seconds};
    }
    for (int i = 0; i < info.n_fin; i++)           /* keep the tokens of finished sequences */
        if (keep_tokens(info.fin[i]->user, info.fin[i])) return errbuf_fail(err, errlen, "out of memory");
    int n = info.n_done + e->n_ab;
    if (n > e->cap_done) {
        eng_result *d = realloc(e->done, sizeof *d * (size_t)n);
        if (!d) return errbuf_fail(err, errlen, "out of memory");
        e->done = d; e->cap_done = n;
    }
    for (int i = 0; i < e->n_ab; i++) e->done[i] = e->aborted[i];
    for (int i = 0; i < info.n_done; i++) {
        eng_req *q = info.done[i].user;
        q->live = false;
        q->r.first_token = info.done[i].first_token;
        q->r.finish = info.done[i].finish_time;
        q->r.aborted = info.done[i].aborted;
        e->done[e->n_ab + i] = q->r;
    }
    e->n_ab = 0;
    *done = e->done;
    *n_done = n;
    mprobe_mark(model_probe(e->m), MH_POST);
    mprobe_host_step(model_probe(e->m), e->last.num_seqs > 0 ? e->last.prefill_tokens == 0 : -1);
    return rc > 0 || n > 0 ? 1 : 0;
}

int eng_run(eng *e, const eng_hooks *h, char *err, size_t errlen) {
    static const eng_hooks none;
    if (!h) h = &none;
    while (eng_has_work(e)) {
        const eng_result *d;
        int nd, rc = eng_step(e, &d, &nd, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) return errbuf_fail(err, errlen, "engine: idle with requests left");   /* the driver stalls first */
        if (h->on_step && h->on_step(h->ctx, &e->last, err, errlen)) return -1;
        for (int i = 0; i < nd; i++)
            if (h->on_result && h->on_result(h->ctx, &d[i], err, errlen)) return -1;
    }
    return 0;
}

/* Takes queued request id out before the driver released it: 1 when it was there. */
static int abort_queued(eng *e, int id) {
    drv_request r;
    if (drv_queue_remove(e->q, id, &r) != 1) return 0;
    eng_req *q = r.user;
    for (int k = 0; k < q->samp.n; k++) q->samp.s[k].finish = SEQ_FINISH_ABORT;
    q->live = false;
    q->r.finish = now_s(e);
    q->r.aborted = true;
    e->aborted[e->n_ab++] = q->r;
    return 1;
}

int eng_abort(eng *e, int id) {
    sched_done d;
    const seq *s;
    if (e->n_ab == e->cap_ab) {
        int nc = e->cap_ab ? 2 * e->cap_ab : 16;
        eng_result *a = realloc(e->aborted, sizeof *a * (size_t)nc);
        if (!a) return -1;
        e->aborted = a; e->cap_ab = nc;
    }
    e->lp.now = now_s(e);
    if (drv_abort(e->d, id, &d, &s) != 1) return abort_queued(e, id) ? 0 : -1;
    eng_req *q = d.user;
    for (int k = 0; k < q->samp.n; k++)
        if (!q->samp.s[k].finish) q->samp.s[k].finish = SEQ_FINISH_ABORT;
    keep_tokens(q, s);
    q->live = false;
    q->r.first_token = d.first_token;
    q->r.finish = d.finish_time;
    q->r.aborted = true;
    e->aborted[e->n_ab++] = q->r;
    return 0;
}

int eng_tokens(eng *e, int id, const int32_t **tokens) {
    seq *const *live;
    const seq *next;
    int n = sched_live(e->sc, &live, &next);
    for (int i = 0; i < n; i++) {
        const seq *s = live[i];
        const eng_req *q = s->user;          /* seq ids are the scheduler's own */
        if (!q || q->r.id != id) continue;
        /* int and int32_t are one type on every platform CUDA supports */
        _Static_assert(sizeof(int) == sizeof(int32_t), "int is 32 bits");
        *tokens = (const int32_t *)s->tokens + s->prompt_len;
        return s->num_tokens - s->prompt_len;
    }
    /* live but holding no KV: waiting, or queued for a later arrival */
    static const int32_t none[1];
    for (int i = e->nreq - 1; i >= 0; i--)
        if (e->reqs[i]->r.id == id && e->reqs[i]->live) { *tokens = none; return 0; }
    return -1;
}

const eng_sample *eng_request_samples(eng *e, int id, int *n) {
    for (int i = e->nreq - 1; i >= 0; i--) {      /* the live ones are the recent ones */
        const eng_req *q = e->reqs[i];
        if (q->r.id != id || !q->live) continue;
        *n = q->samp.n;
        return q->samp.s;
    }
    *n = 0;
    return NULL;
}

bool eng_has_work(const eng *e) { return e->n_ab > 0 || sched_has_work(e->sc) || drv_queue_len(e->q) > 0; }
double eng_now(const eng *e) { return now_s(e); }

void eng_last_step(const eng *e, eng_step_info *out) { *out = e->last; }

void eng_usage(eng *e, kv_usage *u) {
    seq *const *live;
    const seq *next;
    int n = sched_live(e->sc, &live, &next);
    kv_usage_get(e->kv, live, n, next, u);
}

const sched_stats *eng_sched_stats(const eng *e) { return sched_get_stats(e->sc); }
int eng_summary(const eng *e, met_summary *out) { return drv_summary(e->d, out); }
const met_collector *eng_metrics(const eng *e) { return drv_metrics(e->d); }
const model *eng_model(const eng *e) { return e->m; }

void eng_free(eng *e) {
    if (!e) return;
    drv_destroy(e->d);
    drv_queue_destroy(e->q);
    loop_free(&e->lp);
    if (e->sc) sched_destroy(e->sc);
    if (e->kv) kv_destroy(e->kv);
    model_free(e->m);
    for (int i = 0; i < e->nreq; i++) req_free(e->reqs[i]);
    free(e->reqs); free(e->done); free(e->aborted); free(e->sp); free(e->tok); free(e->hlogits);
    free(e->tok_lp); free(e->row_of); free(e->score_tok); free(e->score_lp);
    eng_batch_buf_free(&e->buf);
    free(e);
}
