/* sched_post: the scheduler after a step (sched_postprocess: tokens in,
 * sequences stopped, sequence groups forked, beams chosen) and sched_abort.
 * Private state in sim/sched_internal.h; the rest of the scheduler in
 * sim/scheduler.c.  Touches only the scheduler's queues and sequences and the
 * KV cache it was given. */
#include "sim/sched_internal.h"
#include "base/rng.h"
#include <string.h>
#include <stdio.h>

/* ---- after the step -------------------------------------------------------- */
static sseq *new_child(sched *sc, sseq *parent) {
    sseq *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (seq_fork(&c->s, &parent->s, sc->next_seq_id) != 0) { free(c); return NULL; }
    sc->next_seq_id++;
    c->req = parent->req;
    c->s.user = parent->s.user;             /* the request's executor state, as sched_add set it */
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
        c->s.sample = r->num_members;
        r->members[r->num_members++] = c;
        r->live++;
        place_child(sc, c, parent, true);
    }
    return 0;
}

/* Beam search, kept simple but real: after a step, with probability 1/3 the
 * lowest-ranked beam (a seeded choice) is dropped and replaced by a copy of
 * another beam: free + fork, so the next appends copy-on-write.  The first
 * beam is never the one dropped (sched_add returned it: callers hold it);
 * it runs one token ahead of the beams forked from it (they sample their
 * first token a step later), so a beam may be replaced by a copy of a longer
 * one (a swap that wanted equal lengths never copied the first beam, and
 * width 2 never swapped at all). */
static int beam_choice(sched *sc, sreq *r) {
    if (r->beam_step == sc->step) return 0;
    r->beam_step = sc->step;
    if (r->live < 2 || rng_splitmix64(&sc->rng) % 3 != 0) return 0;
    int a = 1 + (int)(rng_splitmix64(&sc->rng) % (uint64_t)(r->num_members - 1));
    int k = (int)(rng_splitmix64(&sc->rng) % (uint64_t)r->num_members);
    sseq *drop = r->members[a], *keep = r->members[k];
    if (a == k || !drop || !keep || drop->s.status != SEQ_RUNNING || keep->s.status != SEQ_RUNNING ||
        drop->s.num_tokens > keep->s.num_tokens ||
        keep->s.num_computed != keep->s.num_tokens - 1) return 0;
    sseq *c = new_child(sc, keep);
    if (!c) return -1;                          /* no swap this step */
    kv_release(sc->kv, &drop->s);
    drop->s.status = SEQ_FINISHED;              /* leaves running at compaction */
    c->s.num_computed = keep->s.num_computed;
    c->s.first_token = keep->s.first_token;
    c->s.sample = drop->s.sample;
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
    int f = sc->post_forks, bm = sc->post_beams;   /* counted while the batch was built */
    room need = { f + bm, f + bm, 0, b->num_items + bm, b->num_items, f, 0 };
    if (sched_claim(sc, &need)) {
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
            sched_seq_done(sc, q, eos ? SEQ_FINISH_STOP : SEQ_FINISH_LENGTH, now);
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

