/* scheduler: continuous batching over the policy-agnostic KV cache (see
 * scheduler.h for the order of a step and the token convention): requests in
 * (sched_add), batches out (sched_schedule), queries.  After the step,
 * sequence groups and abort: sim/sched_post.c; shared private state:
 * sim/sched_internal.h.  Touches only its own queues, the sequences it owns
 * and the KV cache it is given. */
#include "sim/sched_internal.h"
#include "sim/kv_runs.h"
#include <string.h>
#include <stdio.h>

const char SCHED_WHY_TOO_LONG[] = "prompt longer than max_model_len";
const char SCHED_WHY_NEVER_FITS[] = "prompt + output need more KV slots than the whole pool";
const char SCHED_WHY_CALLER[] = "aborted by the caller";


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
    if (cfg->max_num_seqs <= 0 || cfg->max_num_batched_tokens <= 0 || cfg->watermark_blocks < 0 ||
        cfg->max_loras < 0) {
        snprintf(err, errlen, "scheduler: max_num_seqs (%d) and max_num_batched_tokens (%d) "
                 "must be positive, max_loras (%d) not negative", cfg->max_num_seqs,
                 cfg->max_num_batched_tokens, cfg->max_loras);
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
    free(sc->live); free(sc->skip);
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

void sched_seq_done(sched *sc, sseq *q, seq_finish why, double now) {
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
    sched_seq_done(sc, q, SEQ_FINISH_ABORT, now);
}

/* ---- room before acting (see sched_internal.h) --------------------------------- */

int sched_claim(sched *sc, const room *r) {
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
    if (s->lora > 0) {                          /* runtime LoRA's work (sim/cost_lora.h) */
        bool seen = false;
        for (int i = 0; i < b->num_items - 1 && !seen; i++) seen = b->items[i].s->lora == s->lora;
        b->counts.lora_tokens += num_new;
        b->counts.lora_adapters += !seen;
    }
    if (s->first_scheduled < 0) s->first_scheduled = now;
    sreq *r = q->req;
    if (r->first_scheduled < 0) r->first_scheduled = now;
    if (samples && r->width > 1) {              /* room sched_postprocess will claim */
        if (!r->forked && q == r->members[0]) sc->post_forks += r->width - r->num_members;
        sc->post_beams += r->beam;
    }
}

/* Whether s may join the running sequences under max_loras: it has no
 * adapter, or its adapter runs already, or fewer than max_loras do. */
static bool lora_fits(const sched *sc, const seq *s) {
    if (sc->cfg.max_loras <= 0 || s->lora <= 0) return true;
    int distinct = 0;
    for (int i = 0; i < sc->nrun; i++) {
        int a = sc->run[i]->s.lora, first = 1;
        if (a <= 0) continue;
        if (a == s->lora) return true;
        for (int j = 0; j < i && first; j++) first = sc->run[j]->s.lora != a;
        distinct += first;
    }
    return distinct < sc->cfg.max_loras;
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
        int made = kv_append_slot(sc->kv, s, &c);
        if (made < 0) return;                   /* out of memory: not this step (nothing changed) */
        if (made == 1) sc->batch.copies[sc->batch.num_copies++] = c;
    }
    add_item(sc, q, num_new, samples, now);
    *budget -= num_new;
}

int sched_schedule(sched *sc, double now, const sched_batch **out, char *err, size_t errlen) {
    free_deferred(sc);
    sched_batch *b = &sc->batch;
    memset(&b->counts, 0, sizeof b->counts);
    b->num_items = b->num_copies = 0;
    b->preempted = b->swapped_out = b->swapped_in = b->admitted = 0;
    sc->post_forks = sc->post_beams = 0;
    *out = b;
    /* admissions and swap-ins stop at max_num_seqs running; every running
     * sequence may be preempted to either queue; block copies: the pending
     * ones, swaps of at most the whole pool each way, one per item */
    room need = { sc->cfg.max_num_seqs, sc->nrun, sc->nrun, SCHED_REFUSALS_PER_STEP + 1,
                  SCHED_REFUSALS_PER_STEP + 1, 0,
                  sc->n_pend + 2 * kv_get_config(sc->kv)->num_blocks + 2 * sc->cfg.max_num_seqs + 64 };
    if (sched_claim(sc, &need)) {
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
        if (!kv_can_swap_in(sc->kv, &q->s) || !lora_fits(sc, &q->s) ||
            b->num_copies + q->s.num_blocks > sc->copies_cap) break;
        if (run_push(sc, q)) break;             /* (claimed: cannot fail) */
        dq_pop_front(&sc->swapped);
        b->num_copies += kv_swap_in(sc->kv, &q->s, sc->copies + b->num_copies);
        q->s.status = SEQ_RUNNING;
        sc->stats.swap_ins++; b->swapped_in++;
        try_schedule(sc, sc->nrun - 1, &budget, false, now);
    }

    /* 3. admissions, FCFS, while nothing is preempted or swapped out; a request
     * whose adapter has no slot (max_loras) is passed over, not waited behind,
     * and keeps its place at the head of the queue (vLLM's V1 scheduler) */
    int nskip = 0;
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
        if (!lora_fits(sc, s)) {                /* its adapter waits for a slot: passed over */
            if (grow((void **)&sc->skip, &sc->skip_cap, nskip + 1, sizeof *sc->skip)) break;
            sc->skip[nskip++] = q;              /* for this step, as vLLM's scheduler skips it */
            dq_pop_front(&sc->waiting);
            continue;
        }
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
        if (kv_admit(sc->kv, s)) {              /* out of memory: it waits (nothing changed) */
            sc->run[--sc->nrun] = NULL;
            break;
        }
        dq_pop_front(&sc->waiting);
        s->status = SEQ_RUNNING;
        b->admitted++;
        try_schedule(sc, sc->nrun - 1, &budget, false, now);
    }
    while (nskip > 0) dq_push_front(&sc->waiting, sc->skip[--nskip]);   /* their places back (room: popped) */
    for (int i = 0; i < b->num_copies; i++)        /* swaps cost the step time (cm_swap_time) */
        if (b->copies[i].kind != KV_COPY_GPU) { b->counts.swap_blocks++; b->counts.swap_tokens += sc->block_size; }
    b->counts.swap_runs = kvr_swap_runs(b->copies, b->num_copies);
    return b->num_items;
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
