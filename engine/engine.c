/* engine: see engine.h.  eng_execute is the executor the step loop calls:
 * block copies, then the batch (eng_build_batch), then one forward pass and
 * sampling.  The per-request state (sampling parameters, result) hangs off
 * seq->user.  Owns the model, the KV pool, the scheduler and the loop. */
#include "engine/engine.h"
#include "sim/step_loop.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct eng_req {
    eng_params p;
    eng_result r;
    bool live;
} eng_req;

struct eng {
    model      *m;
    kv_cache   *kv;
    sched      *sc;
    loop        lp;
    eng_batch_buf buf;
    eng_req   **reqs;            /* (nreq,) every request ever added */
    int         nreq, cap_req;
    eng_result *done;            /* (cap_done,) this step's finished requests */
    int         cap_done;
    k_sample_params *sp;         /* (max_num_seqs,) */
    int32_t    *tok;             /* (max_num_seqs,) */
    struct timespec t0;
};

static int fail(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

static double now_s(const eng *e) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - e->t0.tv_sec) + 1e-9 * (t.tv_nsec - e->t0.tv_nsec);
}

void eng_batch_buf_free(eng_batch_buf *buf) {
    free(buf->ids); free(buf->qs); free(buf->tables);
    memset(buf, 0, sizeof *buf);
}

/* The physical block holding logical block k of s: the block table (paged), or
 * the block of a block-aligned reservation (the other policies). */
static int block_of(const kv_cache *kv, const seq *s, int k) {
    if (kv_get_config(kv)->policy == KV_PAGED) return k < s->num_blocks ? s->block_table[k] : -1;
    int bs = kv_get_config(kv)->block_size;
    return (long)k * bs < s->resv_len ? (int)(s->resv_start / bs) + k : -1;
}

int eng_build_batch(const sched_batch *b, const kv_cache *kv, eng_batch_buf *buf, int max_blocks,
                    model_batch *out, char *err, size_t errlen) {
    int B = b->num_items, T = 0, bs = kv_get_config(kv)->block_size;
    for (int i = 0; i < B; i++) T += b->items[i].num_new;
    if (T > buf->cap_t) {
        free(buf->ids);
        buf->ids = malloc(sizeof(int32_t) * 3 * (size_t)T);
        if (!buf->ids) { buf->cap_t = 0; return fail(err, errlen, "out of memory"); }
        buf->pos = buf->ids + T; buf->slots = buf->pos + T; buf->cap_t = T;
    }
    if (B > buf->cap_b || max_blocks != buf->max_blocks) {
        free(buf->qs); free(buf->tables);
        buf->qs = malloc(sizeof(int32_t) * (2 * (size_t)B + 1));
        buf->tables = malloc(sizeof(int32_t) * (size_t)B * max_blocks);
        if (!buf->qs || !buf->tables) { buf->cap_b = 0; return fail(err, errlen, "out of memory"); }
        buf->ctx = buf->qs + B + 1; buf->cap_b = B; buf->max_blocks = max_blocks;
    }
    if (kv_get_config(kv)->policy != KV_PAGED)
        for (int i = 0; i < B; i++)
            if (b->items[i].s->resv_start % bs)
                return fail(err, errlen, "sequence %d: reservation at slot %ld is not block-aligned",
                            b->items[i].s->id, b->items[i].s->resv_start);
    int t = 0;
    buf->qs[0] = 0;
    for (int i = 0; i < B; i++) {
        const sched_item *it = &b->items[i];
        const seq *s = it->s;
        int ctx = it->start + it->num_new, nb = (ctx + bs - 1) / bs;
        if (nb > max_blocks || it->start + it->num_new > s->num_tokens)
            return fail(err, errlen, "sequence %d: %d tokens in cache need %d blocks (at most %d)", s->id,
                        ctx, nb, max_blocks);
        for (int j = 0; j < it->num_new; j++, t++) {
            int p = it->start + j;
            buf->ids[t] = s->tokens[p];
            buf->pos[t] = p;
            buf->slots[t] = (int32_t)kv_slot(kv, s, p);
        }
        buf->qs[i + 1] = t;
        buf->ctx[i] = ctx;
        for (int k = 0; k < max_blocks; k++) {
            int blk = k < nb ? block_of(kv, s, k) : 0;
            if (blk < 0) return fail(err, errlen, "sequence %d: no block %d for %d tokens", s->id, k, ctx);
            buf->tables[(size_t)i * max_blocks + k] = blk;
        }
    }
    *out = (model_batch){T, B, buf->ids, buf->pos, buf->slots, buf->qs, buf->ctx, buf->tables, max_blocks, 0};
    return 0;
}

/* the executor of the step loop */
static int eng_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds, char *err,
                       size_t errlen) {
    eng *e = ctx;
    double t0 = now_s(e);
    for (int i = 0; i < b->num_copies; i++) {
        if (b->copies[i].kind != KV_COPY_GPU)
            return fail(err, errlen, "swap is not supported by the engine (use preemption by recompute)");
        if (model_copy_block(e->m, b->copies[i].src, b->copies[i].dst, err, errlen)) return -1;
    }
    if (b->num_items > 0) {
        model_batch mb;
        int mbk = (model_options(e->m)->max_model_len + model_options(e->m)->block_size - 1) /
                  model_options(e->m)->block_size;
        if (eng_build_batch(b, e->kv, &e->buf, mbk, &mb, err, errlen) ||
            model_forward(e->m, &mb, NULL, err, errlen))
            return -1;
        for (int i = 0; i < b->num_items; i++) {
            const seq *s = b->items[i].s;
            const eng_req *q = s->user;
            e->sp[i] = (k_sample_params){q->p.temperature, q->p.top_k, q->p.top_p,
                                         q->p.seed + (uint64_t)(s->id - s->group),
                                         (uint64_t)seq_num_generated(s)};
        }
        if (model_sample(e->m, b->num_items, e->sp, e->tok, err, errlen)) return -1;
        for (int i = 0; i < b->num_items; i++) tokens[i] = e->tok[i];
    }
    *seconds = now_s(e) - t0;
    return 0;
}

eng *eng_create(const mc_config *c, w_weights *w, const eng_config *cfg, model_mem *mem, char *err,
                size_t errlen) {
    eng *e = calloc(1, sizeof *e);
    if (!e) { w_free(w); fail(err, errlen, "out of memory"); return NULL; }
    clock_gettime(CLOCK_MONOTONIC, &e->t0);
    if (model_create(&e->m, c, w, &cfg->model, mem, err, errlen)) { free(e); return NULL; }
    const model_opts *o = model_options(e->m);
    kv_config kc = {KV_PAGED, model_num_blocks(e->m), o->block_size, o->max_model_len, 2048,
                    cfg->prefix_caching, 0};
    sched_config sc = sched_config_default();
    sc.max_num_seqs = o->max_num_seqs;
    sc.max_num_batched_tokens = o->max_num_batched_tokens;
    sc.max_model_len = o->max_model_len;
    sc.preempt = SCHED_PREEMPT_RECOMPUTE;
    e->sp = calloc((size_t)o->max_num_seqs, sizeof *e->sp);
    e->tok = calloc((size_t)o->max_num_seqs, sizeof *e->tok);
    if (!e->sp || !e->tok || !(e->kv = kv_create(&kc, err, errlen)) ||
        !(e->sc = sched_create(&sc, e->kv, err, errlen)) ||
        loop_init(&e->lp, e->sc, (loop_executor){e, eng_execute}, 0.0, cfg->eos_id)) {
        if (e->sp && e->tok && e->kv && e->sc) fail(err, errlen, "out of memory");
        eng_free(e);
        return NULL;
    }
    return e;
}

int eng_add_request(eng *e, int id, const int *prompt, int prompt_len, const eng_params *p, char *err,
                    size_t errlen) {
    const model_opts *o = model_options(e->m);
    const mc_config *c = model_config(e->m);
    if (prompt_len <= 0 || p->max_tokens <= 0 || prompt_len + p->max_tokens > o->max_model_len)
        return fail(err, errlen, "request %d: %d prompt + %d new tokens (max_model_len %d)", id, prompt_len,
                    p->max_tokens, o->max_model_len);
    for (int i = 0; i < prompt_len; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return fail(err, errlen, "request %d: token %d at %d is outside the vocabulary (%d)", id, prompt[i],
                        i, c->vocab_size);
    if (e->nreq == e->cap_req) {
        int nc = e->cap_req ? 2 * e->cap_req : 64;
        eng_req **r = realloc(e->reqs, sizeof *r * (size_t)nc);
        if (!r) return fail(err, errlen, "out of memory");
        e->reqs = r; e->cap_req = nc;
    }
    eng_req *q = calloc(1, sizeof *q);
    if (!q) return fail(err, errlen, "out of memory");
    q->p = *p;
    q->r.id = id;
    q->r.prompt_len = prompt_len;
    q->r.arrival = e->lp.now;
    q->live = true;
    if (!sched_add(e->sc, id, prompt, prompt_len, p->max_tokens, 1, 0, e->lp.now, q)) {
        free(q);
        return fail(err, errlen, "request %d: the scheduler refused it", id);
    }
    e->reqs[e->nreq++] = q;
    return 0;
}

int eng_step(eng *e, const eng_result **done, int *n_done, char *err, size_t errlen) {
    loop_step_info info;
    *n_done = 0;
    int rc = loop_step(&e->lp, &info, err, errlen);
    if (rc <= 0) return rc;
    for (int i = 0; i < info.n_fin; i++) {          /* keep the tokens of finished sequences */
        const seq *s = info.fin[i];
        eng_req *q = s->user;
        int n = seq_num_generated(s);
        free(q->r.tokens);
        q->r.tokens = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
        if (!q->r.tokens) return fail(err, errlen, "out of memory");
        for (int j = 0; j < n; j++) q->r.tokens[j] = s->tokens[s->prompt_len + j];
        q->r.num_tokens = n;
        q->r.num_preemptions = s->num_preemptions;
    }
    if (info.n_done > e->cap_done) {
        eng_result *d = realloc(e->done, sizeof *d * (size_t)info.n_done);
        if (!d) return fail(err, errlen, "out of memory");
        e->done = d; e->cap_done = info.n_done;
    }
    for (int i = 0; i < info.n_done; i++) {
        eng_req *q = info.done[i].user;
        q->live = false;
        q->r.first_token = info.done[i].first_token;
        q->r.finish = info.done[i].finish_time;
        q->r.aborted = q->r.aborted || info.done[i].aborted;
        e->done[i] = q->r;
    }
    *done = e->done;
    *n_done = info.n_done;
    return 1;
}

int eng_abort(eng *e, int id) {
    seq *const *live;
    const seq *next;
    int n = sched_live(e->sc, &live, &next);
    for (int i = 0; i < e->nreq; i++) {
        eng_req *q = e->reqs[i];
        if (q->r.id != id || !q->live) continue;
        q->r.aborted = true;
        for (int k = 0; k < n; k++)                 /* stop after the next token */
            if (live[k]->user == q) live[k]->max_output = seq_num_generated(live[k]) + 1;
        q->p.max_tokens = 1;
        return 0;
    }
    return -1;
}

bool eng_has_work(const eng *e) { return sched_has_work(e->sc); }

void eng_usage(eng *e, kv_usage *u) {
    seq *const *live;
    const seq *next;
    int n = sched_live(e->sc, &live, &next);
    kv_usage_get(e->kv, live, n, next, u);
}

void eng_free(eng *e) {
    if (!e) return;
    loop_free(&e->lp);
    if (e->sc) sched_destroy(e->sc);
    if (e->kv) kv_destroy(e->kv);
    model_free(e->m);
    for (int i = 0; i < e->nreq; i++) { free(e->reqs[i]->r.tokens); free(e->reqs[i]); }
    free(e->reqs); free(e->done); free(e->sp); free(e->tok);
    eng_batch_buf_free(&e->buf);
    free(e);
}
