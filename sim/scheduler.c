/* scheduler: continuous batching over the policy-agnostic KV cache (see
 * scheduler.h for the order of a step and the token convention).  Touches
 * only its own queues, the sequences it owns and the KV cache it is given.
 *
 * Queues: waiting and swapped are ring buffers (recompute victims go back to
 * the front of waiting); running is an array in admission order, so the
 * newest running sequence (the preemption victim) is its last element.
 * Nothing is allocated per step: per request, one request record and one
 * sequence per sample/beam. */
#include "sim/scheduler.h"
#include "base/rng.h"
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

typedef struct sreq sreq;
typedef struct sseq { seq s; sreq *req; } sseq;   /* s first: a seq* is an sseq* */

struct sreq {                         /* one request = one sequence group */
    int    id, width;                 /* width: n, or the beam width */
    bool   beam, forked, aborted, refused;
    const char *why;                  /* aborted: SCHED_WHY_* */
    int    prompt_len, max_output;
    int    live;                      /* members not finished */
    int    max_gen;                   /* longest output of a finished member */
    int    preemptions;
    double arrival, first_scheduled, first_token;
    long   beam_step;                 /* last step a beam choice was made */
    void  *user;
    int    num_members;
    sseq  *members[];                 /* (width,) the group's sequences, first = the parent */
};

const char SCHED_WHY_TOO_LONG[] = "prompt longer than max_model_len";
const char SCHED_WHY_NEVER_FITS[] = "prompt + output need more KV slots than the whole pool";
const char SCHED_WHY_CALLER[] = "aborted by the caller";

typedef struct deque { sseq **v; int cap, head, len; } deque;   /* ring buffer */

struct sched {
    sched_config cfg;
    kv_cache    *kv;
    int          block_size, max_model_len;
    bool         prefix_caching;
    deque        waiting, swapped;
    sseq       **run;  int nrun, run_cap;   /* (run_cap,) running, oldest first */
    sched_batch  batch;
    sched_item  *items;                     /* (max_num_seqs,) */
    kv_copy     *copies;  int copies_cap;   /* (copies_cap,) */
    kv_copy     *pend;    int n_pend, pend_cap; /* (pend_cap,) COW of forks, lead the next batch */
    sched_done  *done;    int n_done, done_cap;
    sseq       **fin;     int n_fin, fin_cap;   /* finished sequences, freed next step */
    sreq       **dead;    int n_dead, dead_cap; /* finished requests, freed next step */
    seq        **live;    int live_cap;     /* scratch for sched_live */
    int          next_seq_id;
    long         step;
    uint64_t     rng;
    sched_stats  stats;
};

/* ---- small containers ------------------------------------------------------ */
static int grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return -1;
    *p = q; *cap = nc;
    return 0;
}
/* Makes d hold at least need entries. */
static int dq_reserve(deque *d, int need) {
    if (need <= d->cap) return 0;
    int nc = d->cap ? d->cap * 2 : 64;
    while (nc < need) nc *= 2;
    sseq **v = malloc((size_t)nc * sizeof *v);
    if (!v) return -1;
    for (int i = 0; i < d->len; i++) v[i] = d->v[(d->head + i) % d->cap];
    free(d->v);
    d->v = v; d->cap = nc; d->head = 0;
    return 0;
}
static int dq_grow(deque *d) { return dq_reserve(d, d->len + 1); }
static int dq_push_back(deque *d, sseq *s) {
    if (dq_grow(d)) return -1;
    d->v[(d->head + d->len++) % d->cap] = s;
    return 0;
}
static int dq_push_front(deque *d, sseq *s) {
    if (dq_grow(d)) return -1;
    d->head = (d->head + d->cap - 1) % d->cap;
    d->v[d->head] = s; d->len++;
    return 0;
}
static sseq *dq_front(const deque *d) { return d->len ? d->v[d->head] : NULL; }
static sseq *dq_at(const deque *d, int i) { return d->v[(d->head + i) % d->cap]; }
static void dq_pop_front(deque *d) { d->head = (d->head + 1) % d->cap; d->len--; }

sched_config sched_config_default(void) {
    sched_config c;
    memset(&c, 0, sizeof c);
    c.max_num_seqs = 256;
    c.max_num_batched_tokens = 2048;
    c.chunked_prefill = true;
    c.preempt = SCHED_PREEMPT_RECOMPUTE;
    c.seed = 1;
    return c;
}

sched *sched_create(const sched_config *cfg, kv_cache *kv, char *err, size_t errlen) {
    if (!cfg || !kv) { snprintf(err, errlen, "scheduler: no config or KV cache"); return NULL; }
    if (cfg->max_num_seqs <= 0 || cfg->max_num_batched_tokens <= 0 || cfg->watermark_blocks < 0) {
        snprintf(err, errlen, "scheduler: max_num_seqs (%d) and max_num_batched_tokens (%d) "
                 "must be positive", cfg->max_num_seqs, cfg->max_num_batched_tokens);
        return NULL;
    }
    const kv_config *kc = kv_get_config(kv);
    sched *sc = calloc(1, sizeof *sc);
    if (!sc) goto oom;
    sc->cfg = *cfg;
    sc->kv = kv;
    sc->block_size = kc->block_size;
    sc->max_model_len = cfg->max_model_len > 0 ? cfg->max_model_len : kc->max_model_len;
    if (sc->max_model_len <= 0) sc->max_model_len = 1 << 30;
    sc->prefix_caching = kc->prefix_caching && kc->policy == KV_PAGED;
    sc->rng = cfg->seed ^ 0x5EEDull;
    sc->items = calloc((size_t)cfg->max_num_seqs, sizeof *sc->items);
    sc->copies_cap = 2 * kc->num_blocks + 2 * cfg->max_num_seqs + 64;
    sc->copies = calloc((size_t)sc->copies_cap, sizeof *sc->copies);
    if (!sc->items || !sc->copies) goto oom;
    sc->batch.items = sc->items;
    sc->batch.copies = sc->copies;
    return sc;
oom:
    snprintf(err, errlen, "scheduler: out of memory");
    sched_destroy(sc);
    return NULL;
}

static void free_seq(sseq *q) { if (q) { seq_free(&q->s); free(q); } }

static void free_deferred(sched *sc) {
    for (int i = 0; i < sc->n_fin; i++) free_seq(sc->fin[i]);
    for (int i = 0; i < sc->n_dead; i++) free(sc->dead[i]);
    sc->n_fin = sc->n_dead = 0;
    sc->n_done = 0;
}

void sched_destroy(sched *sc) {
    if (!sc) return;
    free_deferred(sc);
    /* every live member of a request sits in exactly one queue: the request
     * goes with its last member */
    for (int pass = 0; pass < 3; pass++) {
        deque *d = pass == 1 ? &sc->waiting : &sc->swapped;
        int n = pass == 0 ? sc->nrun : d->len;
        for (int i = 0; i < n; i++) {
            sseq *q = pass == 0 ? sc->run[i] : dq_at(d, i);
            if (!q) continue;
            sreq *r = q->req;
            free_seq(q);
            if (--r->live <= 0) free(r);
        }
    }
    free(sc->waiting.v); free(sc->swapped.v); free(sc->run);
    free(sc->items); free(sc->copies); free(sc->pend); free(sc->done); free(sc->fin); free(sc->dead);
    free(sc->live);
    free(sc);
}

seq *sched_add(sched *sc, int id, const int *prompt, int prompt_len, int max_output,
               int n, int beam, double arrival, void *user) {
    if (!sc || !prompt || prompt_len <= 0 || max_output <= 0) return NULL;
    int width = beam > 1 ? beam : (n > 1 ? n : 1);
    sreq *r = calloc(1, sizeof *r + (size_t)width * sizeof(sseq *));
    sseq *q = calloc(1, sizeof *q);
    if (!r || !q) { free(r); free(q); return NULL; }
    r->id = id; r->width = width; r->beam = beam > 1;
    r->prompt_len = prompt_len;
    /* a sequence never outgrows max_model_len: clip the output (as vLLM does) */
    long room = (long)sc->max_model_len - prompt_len;
    r->max_output = room < max_output ? (int)(room > 0 ? room : 1) : max_output;
    if (room <= 0) { r->aborted = true; r->why = SCHED_WHY_TOO_LONG; }
    r->arrival = arrival; r->first_scheduled = r->first_token = -1;
    r->beam_step = -1; r->user = user; r->live = 1;
    if (seq_init(&q->s, sc->next_seq_id, sc->next_seq_id, prompt, prompt_len,
                 r->max_output, arrival) != 0) { free(r); free(q); return NULL; }
    sc->next_seq_id++;
    /* the block table for the whole life (the slot of the last token
     * included), here rather than at admission: scheduling allocates nothing */
    if (kv_get_config(sc->kv)->policy == KV_PAGED) {
        int cap = seq_blocks_for(prompt_len + r->max_output + 1, sc->block_size);
        q->s.block_table = malloc((size_t)cap * sizeof *q->s.block_table);
        if (!q->s.block_table) { free_seq(q); free(r); return NULL; }
        q->s.table_cap = cap;
    }
    /* refused now rather than preempted forever once it has filled the pool */
    if (!r->aborted && !kv_can_ever_fit(sc->kv, &q->s, sc->cfg.watermark_blocks)) {
        r->aborted = true;
        r->why = SCHED_WHY_NEVER_FITS;
    }
    q->s.user = user;
    q->req = r;
    r->members[r->num_members++] = q;
    if (dq_push_back(&sc->waiting, q)) { free_seq(q); free(r); return NULL; }
    return &q->s;
}

/* ---- finishing ------------------------------------------------------------ */
static void req_done(sched *sc, sreq *r, double now) {
    if (grow((void **)&sc->done, &sc->done_cap, sc->n_done + 1, sizeof *sc->done) == 0) {
        sched_done *d = &sc->done[sc->n_done++];
        d->id = r->id; d->prompt_len = r->prompt_len; d->output_len = r->max_gen;
        d->num_seqs = r->num_members; d->arrival = r->arrival;
        d->first_scheduled = r->first_scheduled; d->first_token = r->first_token;
        d->finish_time = now; d->num_preemptions = r->preemptions;
        d->aborted = r->aborted; d->refused = r->refused;
        d->why = r->aborted ? r->why : NULL; d->user = r->user;
    }
    if (grow((void **)&sc->dead, &sc->dead_cap, sc->n_dead + 1, sizeof *sc->dead) == 0)
        sc->dead[sc->n_dead++] = r;
}

/* Marks q finished (its KV already released or never held) and queues it. */
static void seq_done(sched *sc, sseq *q, seq_finish why, double now) {
    sreq *r = q->req;
    q->s.status = SEQ_FINISHED;
    q->s.finish_reason = why;
    q->s.finish_time = now;
    int gen = seq_num_generated(&q->s);
    if (gen > r->max_gen) r->max_gen = gen;
    for (int k = 0; k < r->num_members; k++)      /* q is freed next step */
        if (r->members[k] == q) r->members[k] = NULL;
    if (grow((void **)&sc->fin, &sc->fin_cap, sc->n_fin + 1, sizeof *sc->fin) == 0)
        sc->fin[sc->n_fin++] = q;
    if (--r->live == 0) req_done(sc, r, now);
}

/* Ends q's request as one that can never run to its end: q gives back what
 * it holds and finishes aborted with why (its request's first why wins). */
static void refuse(sched *sc, sseq *q, const char *why, double now) {
    sreq *r = q->req;
    kv_release(sc->kv, &q->s);                  /* holds nothing when waiting: no-op */
    if (!r->aborted) { r->aborted = true; r->why = why; }
    if (!r->refused) {                          /* counted once per request */
        r->refused = true;
        sc->stats.aborted++;
        sc->stats.refused++;
    }
    seq_done(sc, q, SEQ_FINISH_ABORT, now);
}

/* ---- room before acting -------------------------------------------------------
 * sched_schedule and sched_postprocess first claim room for all they may add
 * (queue places, finish records, block copies) and only then act; acting
 * allocates nothing.  So out of memory is reported before anything moved:
 * every sequence stays in exactly one place, pending copies stay pending. */
typedef struct room { int run, waiting, swapped, fin, done, pend, copies; } room;

static int claim(sched *sc, const room *r) {
    if (grow((void **)&sc->run, &sc->run_cap, sc->nrun + r->run, sizeof *sc->run) ||
        dq_reserve(&sc->waiting, sc->waiting.len + r->waiting) ||
        dq_reserve(&sc->swapped, sc->swapped.len + r->swapped) ||
        grow((void **)&sc->fin, &sc->fin_cap, sc->n_fin + r->fin, sizeof *sc->fin) ||
        grow((void **)&sc->done, &sc->done_cap, sc->n_done + r->done, sizeof *sc->done) ||
        grow((void **)&sc->dead, &sc->dead_cap, sc->n_dead + r->done, sizeof *sc->dead) ||
        grow((void **)&sc->pend, &sc->pend_cap, sc->n_pend + r->pend, sizeof *sc->pend) ||
        grow((void **)&sc->copies, &sc->copies_cap, r->copies, sizeof *sc->copies))
        return -1;
    sc->batch.copies = sc->copies;
    return 0;
}

/* At most this many requests refused at the head of the queue per step (their
 * finish records are claimed up front); the rest go in the next steps. */
#define SCHED_REFUSALS_PER_STEP 64

/* ---- building a batch ------------------------------------------------------- */
static void preempt(sched *sc, sseq *v) {
    seq *s = &v->s;
    sched_batch *b = &sc->batch;
    if (sc->cfg.preempt == SCHED_PREEMPT_SWAP && kv_can_swap_out(sc->kv, s) &&
        b->num_copies + s->num_blocks <= sc->copies_cap) {
        b->num_copies += kv_swap_out(sc->kv, s, sc->copies + b->num_copies);
        s->status = SEQ_SWAPPED;
        dq_push_back(&sc->swapped, v);
        sc->stats.swap_outs++; b->swapped_out++;
        s->num_preemptions++;
    } else {
        kv_release(sc->kv, s);
        seq_reset_for_recompute(s);
        s->status = SEQ_WAITING;
        dq_push_front(&sc->waiting, v);
        sc->stats.recomputes++;                 /* (the reset counted it on s) */
    }
    v->req->preemptions++;
    sc->stats.preemptions++;
    b->preempted++;
}

static void add_item(sched *sc, sseq *q, int num_new, bool samples, double now) {
    sched_batch *b = &sc->batch;
    seq *s = &q->s;
    sched_item *it = &b->items[b->num_items++];
    it->s = s; it->start = s->num_computed; it->num_new = num_new; it->samples = samples;
    it->kind = (num_new == 1 && s->num_computed > 0) ? SCHED_DECODE : SCHED_PREFILL;
    b->counts.num_seqs++;
    if (it->kind == SCHED_DECODE) b->counts.decode_tokens++;
    else b->counts.prefill_tokens += num_new;
    b->counts.attn_ctx_tokens += it->start + num_new;
    b->counts.attn_pairs += (long)num_new * it->start + (long)num_new * (num_new + 1) / 2;
    if (s->first_scheduled < 0) s->first_scheduled = now;
    if (q->req->first_scheduled < 0) q->req->first_scheduled = now;
}

/* Schedules running sequence run[idx] within the budget.  With may_preempt,
 * frees room by preempting the newest running sequences (maybe itself). */
static void try_schedule(sched *sc, int idx, int *budget, bool may_preempt, double now) {
    sseq *q = sc->run[idx];
    seq *s = &q->s;
    int rem = s->num_tokens - s->num_computed;
    if (rem <= 0 || sc->batch.num_items >= sc->cfg.max_num_seqs || *budget <= 0) return;
    int num_new = rem;
    if (num_new > *budget) {
        if (sc->cfg.chunked_prefill) num_new = *budget;
        else if (sc->batch.num_items > 0) return;   /* runs whole, alone, next step */
    }
    bool samples = num_new == rem;
    if (samples) {
        while (!kv_can_append(sc->kv, s)) {
            /* (room for the victim in either queue was claimed for the step) */
            if (!may_preempt || sc->waiting.len == sc->waiting.cap ||
                sc->swapped.len == sc->swapped.cap) return;
            sseq *v = sc->run[sc->nrun - 1];
            sc->run[--sc->nrun] = NULL;
            if (v == q && sc->nrun == 0) {
                /* alone on the GPU (swapped sequences hold CPU blocks only) and
                 * still no room: preempting it would only bring it back here */
                refuse(sc, q, SCHED_WHY_NEVER_FITS, now);
                return;
            }
            preempt(sc, v);
            if (v == q) return;
        }
        kv_copy c;
        if (kv_append_slot(sc->kv, s, &c) == 1) sc->batch.copies[sc->batch.num_copies++] = c;
    }
    add_item(sc, q, num_new, samples, now);
    *budget -= num_new;
}

static int run_push(sched *sc, sseq *q) {
    if (grow((void **)&sc->run, &sc->run_cap, sc->nrun + 1, sizeof *sc->run)) return -1;
    sc->run[sc->nrun++] = q;
    return 0;
}

int sched_schedule(sched *sc, double now, const sched_batch **out, char *err, size_t errlen) {
    free_deferred(sc);
    sched_batch *b = &sc->batch;
    memset(&b->counts, 0, sizeof b->counts);
    b->num_items = b->num_copies = 0;
    b->preempted = b->swapped_out = b->swapped_in = b->admitted = 0;
    *out = b;
    /* admissions and swap-ins stop at max_num_seqs running; every running
     * sequence may be preempted to either queue; block copies: the pending
     * ones, swaps of at most the whole pool each way, one per item */
    room need = { sc->cfg.max_num_seqs, sc->nrun, sc->nrun, SCHED_REFUSALS_PER_STEP + 1,
                  SCHED_REFUSALS_PER_STEP + 1, 0,
                  sc->n_pend + 2 * kv_get_config(sc->kv)->num_blocks + 2 * sc->cfg.max_num_seqs + 64 };
    if (claim(sc, &need)) {
        snprintf(err, errlen, "scheduler: out of memory building step %ld (%d running, %d waiting, "
                 "%d swapped; nothing was changed)", sc->step + 1, sc->nrun, sc->waiting.len,
                 sc->swapped.len);
        return -1;
    }
    if (sc->n_pend > 0) {                     /* copy-on-write of last step's forks first */
        memcpy(b->copies, sc->pend, (size_t)sc->n_pend * sizeof *sc->pend);
        b->num_copies = sc->n_pend;
        sc->n_pend = 0;
    }
    int refusals = SCHED_REFUSALS_PER_STEP;
    sc->step++;
    int budget = sc->cfg.max_num_batched_tokens;
    bool batch_open = !sc->cfg.static_batching || (sc->nrun == 0 && sc->swapped.len == 0);

    /* 1. running sequences, oldest first; victims come off the end */
    for (int i = 0; i < sc->nrun; i++) try_schedule(sc, i, &budget, true, now);

    /* 2. swapped sequences come back, oldest first, if nothing was preempted */
    while (b->preempted == 0 && sc->swapped.len > 0 && sc->nrun < sc->cfg.max_num_seqs) {
        sseq *q = dq_front(&sc->swapped);
        if (!kv_can_swap_in(sc->kv, &q->s) ||
            b->num_copies + q->s.num_blocks > sc->copies_cap) break;
        if (run_push(sc, q)) break;             /* (claimed: cannot fail) */
        dq_pop_front(&sc->swapped);
        b->num_copies += kv_swap_in(sc->kv, &q->s, sc->copies + b->num_copies);
        q->s.status = SEQ_RUNNING;
        sc->stats.swap_ins++; b->swapped_in++;
        try_schedule(sc, sc->nrun - 1, &budget, false, now);
    }

    /* 3. admissions, FCFS, while nothing is preempted or swapped out */
    while (batch_open && b->preempted == 0 && sc->swapped.len == 0 && sc->waiting.len > 0 &&
           sc->nrun < sc->cfg.max_num_seqs && (budget > 0 || sc->cfg.static_batching)) {
        sseq *q = dq_front(&sc->waiting);
        seq *s = &q->s;
        if (q->req->aborted) {                  /* refused at sched_add */
            if (refusals-- <= 0) break;
            dq_pop_front(&sc->waiting);
            refuse(sc, q, q->req->why, now);
            continue;
        }
        if (!sc->cfg.chunked_prefill && !sc->cfg.static_batching && b->num_items > 0 &&
            s->num_tokens > budget) break;
        if (!kv_can_admit(sc->kv, s, sc->cfg.watermark_blocks)) {
            if (sc->nrun == 0 && sc->swapped.len == 0) {   /* can never fit: drop it */
                if (refusals-- <= 0) break;
                dq_pop_front(&sc->waiting);
                refuse(sc, q, SCHED_WHY_NEVER_FITS, now);
                continue;
            }
            break;
        }
        if (run_push(sc, q)) break;             /* (claimed: cannot fail) */
        kv_admit(sc->kv, s);
        dq_pop_front(&sc->waiting);
        s->status = SEQ_RUNNING;
        b->admitted++;
        try_schedule(sc, sc->nrun - 1, &budget, false, now);
    }
    return b->num_items;
}

/* ---- after the step -------------------------------------------------------- */
static sseq *new_child(sched *sc, sseq *parent) {
    sseq *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (seq_fork(&c->s, &parent->s, sc->next_seq_id) != 0) { free(c); return NULL; }
    sc->next_seq_id++;
    c->req = parent->req;
    return c;
}

/* Gives child the parent's blocks; when the policy cannot share (or has no
 * room), the child goes back to waiting to recompute its prompt.  With cow,
 * the child at once gets a private copy of the block holding its next slot
 * (the parent has already claimed that slot in the shared block for its own
 * token); the copy leads the next batch's copies. */
static void place_child(sched *sc, sseq *c, const sseq *parent, bool cow) {
    sc->stats.forks++;
    /* (run, pend and waiting room was claimed for the step: the pushes hold) */
    if (kv_fork(sc->kv, &parent->s, &c->s) == 0) {
        if (!cow && run_push(sc, c) == 0) { c->s.status = SEQ_RUNNING; return; }
        kv_copy cp;
        if (cow && kv_can_append(sc->kv, &c->s) && sc->n_pend < sc->pend_cap &&
            run_push(sc, c) == 0) {
            if (kv_append_slot(sc->kv, &c->s, &cp) == 1) sc->pend[sc->n_pend++] = cp;
            c->s.status = SEQ_RUNNING;
            return;
        }
        kv_release(sc->kv, &c->s);
    }
    seq_reset_for_recompute(&c->s);
    c->s.num_preemptions = 0;
    c->s.status = SEQ_WAITING;
    dq_push_front(&sc->waiting, c);
}

/* Prefill done for the group's first sequence, whose first token is sampled:
 * fork the other samples/beams.  A child shares every block, takes a private
 * copy of the last one (copy-on-write), recomputes the last prompt token into
 * it and samples its own first token in the next step. */
static int fork_group(sched *sc, sseq *parent) {
    sreq *r = parent->req;
    r->forked = true;
    while (r->num_members < r->width) {
        sseq *c = new_child(sc, parent);
        if (!c) return -1;                      /* the request runs fewer samples */
        c->s.num_computed = c->s.num_tokens - 1;
        r->members[r->num_members++] = c;
        r->live++;
        place_child(sc, c, parent, true);
    }
    return 0;
}

/* Beam search, kept simple but real: after a step, with probability 1/3 the
 * lowest-ranked beam (a seeded choice) is dropped and replaced by a copy of
 * another beam: free + fork, so the next appends copy-on-write. */
static int beam_choice(sched *sc, sreq *r) {
    if (r->beam_step == sc->step) return 0;
    r->beam_step = sc->step;
    if (r->live < 2 || rng_splitmix64(&sc->rng) % 3 != 0) return 0;
    int a = (int)(rng_splitmix64(&sc->rng) % (uint64_t)r->num_members);
    int k = (int)(rng_splitmix64(&sc->rng) % (uint64_t)r->num_members);
    sseq *drop = r->members[a], *keep = r->members[k];
    if (a == k || !drop || !keep || drop->s.status != SEQ_RUNNING || keep->s.status != SEQ_RUNNING ||
        drop->s.num_tokens != keep->s.num_tokens ||
        keep->s.num_computed != keep->s.num_tokens - 1) return 0;
    sseq *c = new_child(sc, keep);
    if (!c) return -1;                          /* no swap this step */
    kv_release(sc->kv, &drop->s);
    drop->s.status = SEQ_FINISHED;              /* leaves running at compaction */
    c->s.num_computed = keep->s.num_computed;
    c->s.first_token = keep->s.first_token;
    r->members[a] = c;
    place_child(sc, c, keep, false);   /* same tokens as keep: sharing is exact */
    if (sc->n_fin < sc->fin_cap) sc->fin[sc->n_fin++] = drop;   /* freed next step; not reported */
    else { seq_free(&drop->s); free(drop); }
    sc->stats.beam_swaps++;
    return 0;
}

int sched_postprocess(sched *sc, const int *tokens, double now, int eos_id,
                      const sched_done **done, int *n_done, seq *const **fin, int *n_fin,
                      char *err, size_t errlen) {
    sched_batch *b = &sc->batch;
    /* room: each sampling item may finish its request; a group's first sample
     * forks the rest; a beam request may swap one beam */
    room need = { 0, 0, 0, b->num_items, b->num_items, 0, 0 };
    for (int i = 0; i < b->num_items; i++) {
        const sseq *q = (const sseq *)b->items[i].s;
        const sreq *r = q->req;
        if (!b->items[i].samples || q->s.status != SEQ_RUNNING) continue;
        int forks = (r->width > 1 && !r->forked && q == r->members[0]) ? r->width - r->num_members : 0;
        int beams = r->beam ? 1 : 0;
        need.run += forks + beams; need.waiting += forks + beams; need.pend += forks; need.fin += beams;
    }
    if (claim(sc, &need)) {
        snprintf(err, errlen, "scheduler: out of memory after step %ld (nothing was changed)", sc->step);
        return -1;
    }
    int fin_start = sc->n_fin, short_req = -1, skipped_beams = 0;
    for (int i = 0; i < b->num_items; i++) {
        sched_item *it = &b->items[i];
        sseq *q = (sseq *)it->s;
        seq *s = it->s;
        if (s->status != SEQ_RUNNING) continue;
        s->num_computed += it->num_new;
        if (sc->prefix_caching) kv_commit_computed(sc->kv, s);
        if (!it->samples) continue;
        sreq *r = q->req;
        if (r->width > 1 && !r->forked && q == r->members[0] && fork_group(sc, q)) short_req = r->id;
        int tok = tokens ? tokens[i] : 0;
        seq_append_token(s, tok);               /* (room for the whole output since seq_init) */
        if (s->first_token < 0) s->first_token = now;
        if (r->first_token < 0) r->first_token = now;
        bool eos = eos_id >= 0 && tok == eos_id;
        if (seq_reached_length(s) || eos) {
            kv_release(sc->kv, s);
            seq_done(sc, q, eos ? SEQ_FINISH_STOP : SEQ_FINISH_LENGTH, now);
        }
    }
    /* beam choices once every beam of the step has its token */
    for (int i = 0; i < b->num_items; i++) {
        sreq *r = ((sseq *)b->items[i].s)->req;
        if (r->beam && r->forked && b->items[i].samples && r->live > 0 && beam_choice(sc, r))
            skipped_beams++;
    }
    /* drop whatever left the running state (finished, preempted beams) */
    int k = 0;
    for (int i = 0; i < sc->nrun; i++)
        if (sc->run[i]->s.status == SEQ_RUNNING) sc->run[k++] = sc->run[i];
    sc->nrun = k;
    /* report only real finishes (not dropped beams) */
    int w = fin_start;
    for (int i = fin_start; i < sc->n_fin; i++) {
        sseq *q = sc->fin[i];
        if (q->s.finish_reason != SEQ_FINISH_NONE) sc->fin[w++] = q;
        else { seq_free(&q->s); free(q); }
    }
    sc->n_fin = w;
    if (done) *done = sc->done;
    if (n_done) *n_done = sc->n_done;
    if (fin) *fin = (seq *const *)sc->fin;
    if (n_fin) *n_fin = sc->n_fin;
    if (short_req >= 0 || skipped_beams) {      /* consistent, but not what was asked */
        if (short_req >= 0)
            snprintf(err, errlen, "scheduler: out of memory forking request %d: it runs fewer "
                     "sequences than asked", short_req);
        else
            snprintf(err, errlen, "scheduler: out of memory choosing beams (%d skipped)", skipped_beams);
        return -1;
    }
    return 0;
}

/* ---- abort ------------------------------------------------------------------ */
/* Drops q from deque d, keeping the order of the others. */
static void dq_remove(deque *d, const sseq *q) {
    int n = d->len;
    for (int i = 0; i < n; i++) {
        sseq *x = dq_front(d);
        dq_pop_front(d);
        if (x != q) dq_push_back(d, x);     /* cannot grow: one was taken out */
    }
}

static sreq *find_live_req(sched *sc, int id) {
    for (int i = 0; i < sc->nrun; i++)
        if (sc->run[i]->req->id == id) return sc->run[i]->req;
    for (int pass = 0; pass < 2; pass++) {
        deque *d = pass ? &sc->swapped : &sc->waiting;
        for (int i = 0; i < d->len; i++)
            if (dq_at(d, i)->req->id == id) return dq_at(d, i)->req;
    }
    return NULL;
}

int sched_abort(sched *sc, int id, double now, sched_done *out, const seq **first) {
    sreq *r = sc ? find_live_req(sc, id) : NULL;
    if (first) *first = NULL;
    if (!r) return 0;
    if (!r->aborted) r->why = SCHED_WHY_CALLER;
    r->aborted = true;
    for (int k = 0; k < r->num_members; k++) {
        sseq *q = r->members[k];
        if (!q || q->s.status == SEQ_FINISHED) continue;
        if (q->s.status == SEQ_RUNNING) {
            int w = 0;
            for (int i = 0; i < sc->nrun; i++) if (sc->run[i] != q) sc->run[w++] = sc->run[i];
            sc->nrun = w;
        } else {
            dq_remove(q->s.status == SEQ_SWAPPED ? &sc->swapped : &sc->waiting, q);
        }
        kv_release(sc->kv, &q->s);              /* a waiting sequence holds nothing: no-op */
        q->s.status = SEQ_FINISHED;
        q->s.finish_reason = SEQ_FINISH_ABORT;
        q->s.finish_time = now;
        int gen = seq_num_generated(&q->s);
        if (gen > r->max_gen) r->max_gen = gen;
        r->members[k] = NULL;
        r->live--;
        /* freed at the next sched_schedule, as finished sequences are */
        if (grow((void **)&sc->fin, &sc->fin_cap, sc->n_fin + 1, sizeof *sc->fin) == 0) {
            sc->fin[sc->n_fin++] = q;
            if (first && !*first) *first = &q->s;
        } else {
            free_seq(q);
        }
    }
    if (out) {
        memset(out, 0, sizeof *out);
        out->id = r->id; out->prompt_len = r->prompt_len; out->output_len = r->max_gen;
        out->num_seqs = r->num_members; out->arrival = r->arrival;
        out->first_scheduled = r->first_scheduled; out->first_token = r->first_token;
        out->finish_time = now; out->num_preemptions = r->preemptions;
        out->aborted = true; out->why = r->why; out->user = r->user;
    }
    sc->stats.aborted++;
    if (grow((void **)&sc->dead, &sc->dead_cap, sc->n_dead + 1, sizeof *sc->dead) == 0)
        sc->dead[sc->n_dead++] = r;
    else
        free(r);
    return 1;
}

void sched_counts(const sched *sc, int *running, int *waiting, int *swapped) {
    if (running) *running = sc->nrun;
    if (waiting) *waiting = sc->waiting.len;
    if (swapped) *swapped = sc->swapped.len;
}

bool sched_has_work(const sched *sc) {
    return sc->nrun > 0 || sc->waiting.len > 0 || sc->swapped.len > 0;
}

int sched_live(sched *sc, seq *const **live, const seq **next_waiting) {
    int n = sc->nrun + sc->swapped.len;
    if (grow((void **)&sc->live, &sc->live_cap, n + 1, sizeof *sc->live)) {
        n = -1;
        if (live) *live = NULL;
    } else {
        for (int i = 0; i < sc->nrun; i++) sc->live[i] = &sc->run[i]->s;
        for (int i = 0; i < sc->swapped.len; i++) sc->live[sc->nrun + i] = &dq_at(&sc->swapped, i)->s;
        if (live) *live = sc->live;
    }
    if (next_waiting) {
        sseq *h = dq_front(&sc->waiting);
        *next_waiting = h ? &h->s : NULL;
    }
    return n;
}

const sched_stats *sched_get_stats(const sched *sc) { return &sc->stats; }
const sched_config *sched_get_config(const sched *sc) { return &sc->cfg; }
