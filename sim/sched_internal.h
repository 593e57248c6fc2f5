/* sched_internal: the scheduler's private state, shared by its two files
 * (sim/scheduler.c: requests in, batches out; sim/sched_post.c: after a step,
 * sequence groups, abort).  Nothing else includes it.
 *
 * Queues: waiting and swapped are ring buffers (recompute victims go back to
 * the front of waiting); running is an array in admission order, so the
 * newest running sequence (the preemption victim) is its last element.
 * Nothing is allocated per step: per request, one request record and one
 * sequence per sample/beam. */
#ifndef SCHED_INTERNAL_H
#define SCHED_INTERNAL_H
#include <stdlib.h>
#include "sim/scheduler.h"

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
    sseq       **skip;    int skip_cap;     /* (skip_cap,) waiting requests passed over this
                                               step: their adapter has no slot */
    int          next_seq_id;
    long         step;
    int          post_forks, post_beams;    /* of the batch: sequences forks will add,
                                               beam requests (sched_postprocess's room) */
    uint64_t     rng;
    sched_stats  stats;
};

/* ---- small containers ------------------------------------------------------ */
static inline int grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return -1;
    *p = q; *cap = nc;
    return 0;
}
/* Makes d hold at least need entries. */
static inline int dq_reserve(deque *d, int need) {
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
static inline int dq_grow(deque *d) { return dq_reserve(d, d->len + 1); }
static inline int dq_push_back(deque *d, sseq *s) {
    if (dq_grow(d)) return -1;
    d->v[(d->head + d->len++) % d->cap] = s;
    return 0;
}
static inline int dq_push_front(deque *d, sseq *s) {
    if (dq_grow(d)) return -1;
    d->head = (d->head + d->cap - 1) % d->cap;
    d->v[d->head] = s; d->len++;
    return 0;
}
static inline sseq *dq_front(const deque *d) { return d->len ? d->v[d->head] : NULL; }
static inline sseq *dq_at(const deque *d, int i) { return d->v[(d->head + i) % d->cap]; }
static inline void dq_pop_front(deque *d) { d->head = (d->head + 1) % d->cap; d->len--; }
static inline void free_seq(sseq *q) { if (q) { seq_free(&q->s); free(q); } }
/* Appends q to running (room claimed by sched_claim: the grow is a no-op). */
static inline int run_push(sched *sc, sseq *q) {
    if (grow((void **)&sc->run, &sc->run_cap, sc->nrun + 1, sizeof *sc->run)) return -1;
    sc->run[sc->nrun++] = q;
    return 0;
}

/* Room that sched_schedule / sched_postprocess claim before they act: so
 * that acting allocates nothing, out of memory is reported before anything
 * moved (every sequence stays in exactly one place, pending copies stay
 * pending).  Counts are additions to the present sizes; copies is a total. */
typedef struct room { int run, waiting, swapped, fin, done, pend, copies; } room;
int  sched_claim(sched *sc, const room *r);
/* Marks q finished (its KV already released or never held) and queues it for
 * the report; its request is done with its last member. */
void sched_seq_done(sched *sc, sseq *q, seq_finish why, double now);
#endif
