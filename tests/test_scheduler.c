/* Tests of the scheduler driven by hand (no executor): token budget, chunked
 * prefill, FCFS, preemption (recompute, swap, bounded swap space), parallel
 * sampling with copy-on-write, beam search, static batching, exact output
 * lengths, and kv_check after every step. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <math.h>
#include "sim/scheduler.h"
#include "sim/kv_cache.h"
#include "sim/step_loop.h"

#define MAXREQ 256

typedef struct rig {
    kv_cache *kv;
    sched    *sc;
    double    now;
    long      steps;
    int       max_items, max_tokens;   /* largest batch seen */
    int       n_done;
    sched_done done[MAXREQ];            /* finished requests, in order */
    int       gen_ok, gen_bad;          /* finished sequences with exact / wrong length */
    int       admit_order[MAXREQ];      /* request ids in order of first schedule */
    int       n_admitted;
    long      preempted;
    int       max_swapped;
} rig;

static void rig_init(rig *r, kv_policy pol, int blocks, int bs, int cpu_blocks, sched_config sc) {
    memset(r, 0, sizeof *r);
    kv_config kc = { .policy = pol, .num_blocks = blocks, .block_size = bs, .max_model_len = 4096,
                     .orca_max_len = 2048, .num_cpu_blocks = cpu_blocks };
    char err[256];
    r->kv = kv_create(&kc, err, sizeof err);
    assert_non_null(r->kv);
    r->sc = sched_create(&sc, r->kv, err, sizeof err);
    assert_non_null(r->sc);
}

static void rig_free(rig *r) { sched_destroy(r->sc); kv_destroy(r->kv); }

static void add(rig *r, int id, int prompt_len, int out, int n, int beam) {
    int ids[4096];
    for (int i = 0; i < prompt_len; i++) ids[i] = (id * 7919 + i * 31) % 30000;
    assert_non_null(sched_add(r->sc, id, ids, prompt_len, out, n, beam, r->now, NULL));
}

/* One step: schedule, check the batch, "execute", postprocess, kv_check. */
static int step(rig *r) {
    const sched_batch *b;
    char why[256];
    int n = sched_schedule(r->sc, r->now, &b, why, sizeof why);
    if (n < 0) fail_msg("sched_schedule: %s", why);
    const sched_config def = sched_config_default(); (void)def;
    int tokens = 0;
    static int toks[1024];
    for (int i = 0; i < n; i++) {
        const sched_item *it = &b->items[i];
        assert_true(it->num_new > 0);
        assert_int_equal(it->start, it->s->num_computed);
        assert_true(it->start + it->num_new <= it->s->num_tokens);
        assert_int_equal(it->samples, it->start + it->num_new == it->s->num_tokens);
        tokens += it->num_new;
        toks[i] = 100 + (int)(r->steps % 1000);
        if (it->s->first_scheduled == r->now && r->n_admitted < MAXREQ && it->s->id == it->s->group) {
            bool seen = false;
            for (int k = 0; k < r->n_admitted; k++) if (r->admit_order[k] == it->s->group) seen = true;
            if (!seen) r->admit_order[r->n_admitted++] = it->s->group;
        }
    }
    assert_int_equal(tokens, b->counts.prefill_tokens + b->counts.decode_tokens);
    if (n > r->max_items) r->max_items = n;
    if (tokens > r->max_tokens) r->max_tokens = tokens;
    r->preempted += b->preempted;
    r->now += 0.01;
    const sched_done *d; int nd; seq *const *fin; int nf;
    if (sched_postprocess(r->sc, toks, r->now, -1, &d, &nd, &fin, &nf, why, sizeof why))
        fail_msg("sched_postprocess: %s", why);
    for (int i = 0; i < nd && r->n_done < MAXREQ; i++) r->done[r->n_done++] = d[i];
    for (int i = 0; i < nf; i++) {
        if (seq_num_generated(fin[i]) == fin[i]->max_output) r->gen_ok++; else r->gen_bad++;
    }
    seq *const *live; const seq *next;
    int nl = sched_live(r->sc, &live, &next);
    char err[256] = "";
    if (kv_check(r->kv, live, nl, err, sizeof err) != 0) fail_msg("kv_check after step %ld: %s", r->steps, err);
    int run, wait, sw;
    sched_counts(r->sc, &run, &wait, &sw);
    if (sw > r->max_swapped) r->max_swapped = sw;
    r->steps++;
    return n;
}

static void run_all(rig *r, long max_steps) {
    while (sched_has_work(r->sc) && r->steps < max_steps) step(r);
    assert_false(sched_has_work(r->sc));
}

/* the source of request ids is the arrival order: a gid maps back to one */
static int done_index(const rig *r, int id) {
    for (int i = 0; i < r->n_done; i++) if (r->done[i].id == id) return i;
    return -1;
}

static void test_token_budget(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    c.max_num_batched_tokens = 300; c.max_num_seqs = 8;
    rig r; rig_init(&r, KV_PAGED, 4000, 16, 0, c);
    for (int i = 0; i < 40; i++) add(&r, i, 50 + 37 * (i % 9), 20 + i % 13, 1, 0);
    run_all(&r, 100000);
    assert_true(r.max_tokens <= 300);
    assert_true(r.max_tokens >= 250);        /* the budget is actually used */
    assert_true(r.max_items <= 8);
    assert_int_equal(r.n_done, 40);
    assert_int_equal(r.gen_bad, 0);
    assert_int_equal(r.gen_ok, 40);
    rig_free(&r);
}

static void test_chunked_prefill(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    c.max_num_batched_tokens = 256;
    rig r; rig_init(&r, KV_PAGED, 1000, 16, 0, c);
    add(&r, 0, 1000, 3, 1, 0);
    int chunks[8], k = 0;
    for (int s = 0; s < 4; s++) {
        const sched_batch *b;
        int n = sched_schedule(r.sc, r.now, &b, NULL, 0);
        assert_int_equal(n, 1);
        chunks[k++] = b->items[0].num_new;
        assert_int_equal(b->items[0].kind, SCHED_PREFILL);
        assert_int_equal(b->items[0].samples, s == 3);
        int tok = 5;
        sched_postprocess(r.sc, &tok, r.now += 0.01, -1, NULL, NULL, NULL, NULL, NULL, 0);
    }
    assert_int_equal(chunks[0], 256); assert_int_equal(chunks[1], 256);
    assert_int_equal(chunks[2], 256); assert_int_equal(chunks[3], 1000 - 768);
    /* then decodes of one token */
    const sched_batch *b;
    assert_int_equal(sched_schedule(r.sc, r.now, &b, NULL, 0), 1);
    assert_int_equal(b->items[0].kind, SCHED_DECODE);
    assert_int_equal(b->items[0].num_new, 1);
    int tok = 5;
    sched_postprocess(r.sc, &tok, r.now += 0.01, -1, NULL, NULL, NULL, NULL, NULL, 0);
    run_all(&r, 100);
    rig_free(&r);

    /* without chunking, a prompt over the budget runs whole and alone */
    c.chunked_prefill = false;
    rig_init(&r, KV_PAGED, 1000, 16, 0, c);
    add(&r, 0, 10, 3, 1, 0);
    add(&r, 1, 600, 3, 1, 0);
    assert_int_equal(sched_schedule(r.sc, 0, &b, NULL, 0), 1);       /* 10 fits, 600 must wait */
    assert_int_equal(b->items[0].num_new, 10);
    tok = 1;
    sched_postprocess(r.sc, &tok, 0.01, -1, NULL, NULL, NULL, NULL, NULL, 0);
    run_all(&r, 100);
    assert_int_equal(r.gen_bad, 0);
    rig_free(&r);
}

static void test_fcfs(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    c.max_num_seqs = 3;
    rig r; rig_init(&r, KV_PAGED, 2000, 16, 0, c);
    for (int i = 0; i < 12; i++) add(&r, i, 30 + (11 - i) * 5, 5 + (i * 7) % 11, 1, 0);
    run_all(&r, 10000);
    assert_int_equal(r.n_admitted, 12);
    for (int i = 0; i < 12; i++) assert_int_equal(r.admit_order[i], i);
    rig_free(&r);
}

/* A pool too small for everyone: the newest running sequence is preempted,
 * recomputed later, and still ends with its exact length. */
static void test_preempt_recompute(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    rig r; rig_init(&r, KV_PAGED, 40, 16, 0, c);      /* 640 slots */
    for (int i = 0; i < 6; i++) add(&r, i, 60, 100, 1, 0);   /* 6 x 160 tokens at the end */
    /* run until the first preemption and check the victim is the newest */
    int victim = -1;
    while (sched_has_work(r.sc) && victim < 0 && r.steps < 10000) {
        int run_before; sched_counts(r.sc, &run_before, NULL, NULL);
        seq *const *live; int nl = sched_live(r.sc, &live, NULL);
        int newest = -1;
        for (int i = 0; i < nl; i++) if (live[i]->status == SEQ_RUNNING && live[i]->id > newest) newest = live[i]->id;
        long before = r.preempted;
        step(&r);
        if (r.preempted > before) {
            /* the victim went back to waiting: it is the head of the queue */
            const seq *next; sched_live(r.sc, NULL, &next);
            assert_non_null(next);
            victim = next->id;
            assert_int_equal(victim, newest);
            assert_true(next->num_tokens > next->prompt_len);   /* it keeps its tokens */
            assert_int_equal(next->num_computed, 0);
        }
    }
    assert_true(victim >= 0);
    run_all(&r, 100000);
    assert_int_equal(r.n_done, 6);
    assert_int_equal(r.gen_bad, 0);
    assert_true(sched_get_stats(r.sc)->recomputes > 0);
    assert_int_equal(sched_get_stats(r.sc)->swap_outs, 0);
    int i = done_index(&r, victim);
    assert_true(i >= 0);
    assert_true(r.done[i].num_preemptions > 0);
    assert_int_equal(r.done[i].output_len, 100);
    rig_free(&r);
}

static void test_preempt_swap(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    c.preempt = SCHED_PREEMPT_SWAP;
    rig r; rig_init(&r, KV_PAGED, 40, 16, 200, c);
    for (int i = 0; i < 6; i++) add(&r, i, 60, 100, 1, 0);
    run_all(&r, 100000);
    const sched_stats *ss = sched_get_stats(r.sc);
    assert_true(ss->swap_outs > 0);
    assert_int_equal(ss->swap_ins, ss->swap_outs);
    assert_int_equal(ss->recomputes, 0);        /* room enough on the CPU */
    assert_int_equal(r.n_done, 6);
    assert_int_equal(r.gen_bad, 0);
    rig_free(&r);

    /* bounded swap space: 12 CPU blocks hold at most one victim (>= 5 blocks
     * each, two need 10+), the rest fall back to recompute */
    rig_init(&r, KV_PAGED, 40, 16, 12, c);
    for (int i = 0; i < 8; i++) add(&r, i, 70, 120, 1, 0);
    run_all(&r, 100000);
    ss = sched_get_stats(r.sc);
    assert_true(ss->swap_outs > 0);
    assert_true(ss->recomputes > 0);
    assert_true(r.max_swapped <= 2);
    assert_int_equal(r.n_done, 8);
    assert_int_equal(r.gen_bad, 0);
    rig_free(&r);
}

static void test_parallel_sampling_cow(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    rig r; rig_init(&r, KV_PAGED, 400, 16, 0, c);
    add(&r, 0, 37, 25, 4, 0);                    /* 37 % 16 != 0: the last block is shared */
    /* prefill once */
    const sched_batch *b;
    assert_int_equal(sched_schedule(r.sc, 0, &b, NULL, 0), 1);
    assert_int_equal(b->items[0].num_new, 37);
    int tok = 9;
    sched_postprocess(r.sc, &tok, 0.01, -1, NULL, NULL, NULL, NULL, NULL, 0);
    int run; sched_counts(r.sc, &run, NULL, NULL);
    assert_int_equal(run, 4);                    /* forked into 4 sequences */
    kv_usage u;
    seq *const *live; int nl = sched_live(r.sc, &live, NULL);
    kv_usage_get(r.kv, live, nl, NULL, &u);
    /* the first two blocks stay shared; each child copied the last one,
     * where the parent already holds its first generated token */
    assert_int_equal(u.cow_copies, 3);
    assert_int_equal(u.blocks_used, 3 + 3);
    for (int i = 0; i < nl; i++) {
        assert_int_equal(live[i]->block_table[0], live[0]->block_table[0]);
        if (i > 0) assert_int_not_equal(live[i]->block_table[2], live[0]->block_table[2]);
    }
    /* the copies lead the next batch, then all four decode */
    r.now = 0.01;
    assert_int_equal(sched_schedule(r.sc, r.now, &b, NULL, 0), 4);
    assert_int_equal(b->num_copies, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b->copies[i].kind, KV_COPY_GPU);
        assert_int_equal(b->copies[i].src, live[0]->block_table[2]);
    }
    int toks[4] = { 1, 2, 3, 4 };
    sched_postprocess(r.sc, toks, r.now += 0.01, -1, NULL, NULL, NULL, NULL, NULL, 0);
    run_all(&r, 1000);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.done[0].num_seqs, 4);
    assert_int_equal(r.done[0].output_len, 25);
    assert_int_equal(r.gen_ok, 4);
    assert_int_equal(r.gen_bad, 0);
    assert_int_equal(sched_get_stats(r.sc)->forks, 3);
    rig_free(&r);
}

/* Forked samples keep the request's executor state (seq.user, as the engine
 * reads its sampling parameters there) and are numbered 0..n-1 (seq.sample,
 * the choice index of an n>1 request). */
static void test_fork_keeps_request(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    rig r; rig_init(&r, KV_PAGED, 64, 16, 0, c);
    int marker = 42, ids[20];
    for (int i = 0; i < 20; i++) ids[i] = i + 1;
    assert_non_null(sched_add(r.sc, 7, ids, 20, 5, 3, 0, 0, &marker));
    const sched_batch *b;
    assert_int_equal(sched_schedule(r.sc, 0, &b, NULL, 0), 1);
    int tok = 9;
    sched_postprocess(r.sc, &tok, 0.01, -1, NULL, NULL, NULL, NULL, NULL, 0);
    seq *const *live;
    int nl = sched_live(r.sc, &live, NULL);
    assert_int_equal(nl, 3);
    int seen = 0;
    for (int i = 0; i < nl; i++) {
        assert_ptr_equal(live[i]->user, &marker);
        assert_true(live[i]->sample >= 0 && live[i]->sample < 3);
        seen |= 1 << live[i]->sample;
    }
    assert_int_equal(seen, 7);
    run_all(&r, 100);
    rig_free(&r);
}

static void test_beam_search(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    rig r; rig_init(&r, KV_PAGED, 600, 16, 0, c);
    add(&r, 0, 50, 60, 1, 4);
    add(&r, 1, 20, 40, 1, 3);
    run_all(&r, 5000);
    const sched_stats *ss = sched_get_stats(r.sc);
    assert_true(ss->beam_swaps > 0);
    assert_true(ss->forks >= 5 + ss->beam_swaps);
    assert_int_equal(r.n_done, 2);
    assert_int_equal(r.gen_ok, 7);
    assert_int_equal(r.gen_bad, 0);
    seq *const *live; int nl = sched_live(r.sc, &live, NULL);
    kv_usage u; kv_usage_get(r.kv, live, nl, NULL, &u);
    assert_int_equal(u.blocks_used, 0);          /* everything freed */
    assert_true(u.cow_copies > 0);
    rig_free(&r);
}

/* Width 2: the first beam samples one token ahead of the beam forked from it
 * (the child samples its first token a step later), so a swap that needed
 * equal lengths never happened and beam search shared no more than parallel
 * sampling.  The leading beam may now be dropped for a copy of the other. */
static void test_beam_width_two_swaps(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    rig r; rig_init(&r, KV_PAGED, 600, 16, 0, c);
    add(&r, 0, 40, 120, 1, 2);
    run_all(&r, 5000);
    const sched_stats *ss = sched_get_stats(r.sc);
    assert_true(ss->beam_swaps > 0);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.gen_bad, 0);
    rig_free(&r);
}

static void test_static_batching(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    c.static_batching = true; c.max_num_seqs = 4;
    rig r; rig_init(&r, KV_PAGED, 2000, 16, 0, c);
    int outs[8] = { 10, 10, 10, 100, 5, 5, 5, 5 };
    for (int i = 0; i < 8; i++) add(&r, i, 20, outs[i], 1, 0);
    run_all(&r, 10000);
    assert_int_equal(r.n_done, 8);
    double first_batch_end = r.done[done_index(&r, 3)].finish_time;
    for (int i = 4; i < 8; i++) {
        const sched_done *d = &r.done[done_index(&r, i)];
        assert_true(d->first_scheduled >= first_batch_end);
    }
    assert_true(r.done[done_index(&r, 0)].finish_time < first_batch_end);
    rig_free(&r);

    /* continuous batching admits request 4 as soon as request 0 leaves */
    c.static_batching = false;
    rig_init(&r, KV_PAGED, 2000, 16, 0, c);
    for (int i = 0; i < 8; i++) add(&r, i, 20, outs[i], 1, 0);
    run_all(&r, 10000);
    assert_true(r.done[done_index(&r, 4)].first_scheduled < r.done[done_index(&r, 3)].finish_time);
    rig_free(&r);
}

/* every policy: all requests finish with their exact lengths */
static void test_all_policies_exact(void **st) {
    (void)st;
    for (int p = 0; p < KV_NUM_POLICIES; p++) {
        sched_config c = sched_config_default();
        c.max_num_batched_tokens = 512;
        rig r; rig_init(&r, (kv_policy)p, 600, 16, 0, c);
        for (int i = 0; i < 60; i++) add(&r, i, 10 + (i * 53) % 400, 1 + (i * 97) % 300, 1, 0);
        run_all(&r, 100000);
        assert_int_equal(r.n_done, 60);
        assert_int_equal(r.gen_ok, 60);
        assert_int_equal(r.gen_bad, 0);
        for (int i = 0; i < 60; i++) {
            int k = done_index(&r, i);
            assert_true(k >= 0);
            assert_false(r.done[k].aborted);
            assert_int_equal(r.done[k].output_len, 1 + (i * 97) % 300);
            assert_true(r.done[k].first_token >= r.done[k].first_scheduled);
            assert_true(r.done[k].finish_time >= r.done[k].first_token);
        }
        rig_free(&r);
    }
}

/* a prompt that can never fit is aborted, not a deadlock */
static void test_abort_too_long(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    rig r; rig_init(&r, KV_PAGED, 10, 16, 0, c);     /* 160 slots */
    add(&r, 0, 500, 10, 1, 0);
    add(&r, 1, 20, 10, 1, 0);
    run_all(&r, 1000);
    assert_int_equal(r.n_done, 2);
    assert_true(r.done[done_index(&r, 0)].aborted);
    assert_false(r.done[done_index(&r, 1)].aborted);
    assert_int_equal(sched_get_stats(r.sc)->aborted, 1);
    rig_free(&r);
}

/* sched_abort: a waiting request leaves without ever running, a running one
 * gives its blocks back at once, a swapped one too; the others finish intact
 * and kv_check holds throughout. */
static void check_kv(rig *r) {
    seq *const *live; const seq *next;
    int nl = sched_live(r->sc, &live, &next);
    char err[256] = "";
    if (kv_check(r->kv, live, nl, err, sizeof err) != 0) fail_msg("kv_check after abort: %s", err);
}

static void test_abort(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    c.max_num_seqs = 2;
    rig r; rig_init(&r, KV_PAGED, 64, 16, 0, c);
    for (int i = 0; i < 4; i++) add(&r, i, 40, 30, 1, 0);
    step(&r); step(&r);                         /* 0 and 1 run, 2 and 3 wait */
    int run, wait;
    sched_counts(r.sc, &run, &wait, NULL);
    assert_int_equal(run, 2);
    assert_int_equal(wait, 2);
    kv_usage u0, u1;
    seq *const *live; const seq *next;
    int nl = sched_live(r.sc, &live, &next);
    kv_usage_get(r.kv, live, nl, next, &u0);
    sched_done d;
    const seq *first;
    /* the waiting request 3 */
    assert_int_equal(sched_abort(r.sc, 3, r.now, &d, &first), 1);
    assert_int_equal(d.id, 3);
    assert_true(d.aborted);
    assert_int_equal(d.output_len, 0);
    assert_non_null(first);
    assert_int_equal(first->finish_reason, SEQ_FINISH_ABORT);
    check_kv(&r);
    sched_counts(r.sc, &run, &wait, NULL);
    assert_int_equal(wait, 1);
    /* the running request 1: its blocks are free at once */
    assert_int_equal(sched_abort(r.sc, 1, r.now, &d, &first), 1);
    assert_true(d.aborted);
    assert_true(d.output_len >= 1);             /* it had sampled a token */
    assert_int_equal(d.output_len, seq_num_generated(first));
    check_kv(&r);
    nl = sched_live(r.sc, &live, &next);
    kv_usage_get(r.kv, live, nl, next, &u1);
    assert_true(u1.blocks_used < u0.blocks_used);
    assert_int_equal(u1.blocks_used, u0.blocks_used - 3);  /* 42 tokens: 3 blocks */
    /* unknown, and already aborted */
    assert_int_equal(sched_abort(r.sc, 99, r.now, &d, NULL), 0);
    assert_int_equal(sched_abort(r.sc, 3, r.now, &d, NULL), 0);
    run_all(&r, 10000);
    assert_int_equal(r.n_done, 2);              /* 0 and 2 finish normally */
    assert_true(done_index(&r, 0) >= 0 && done_index(&r, 2) >= 0);
    assert_int_equal(done_index(&r, 1), -1);
    assert_int_equal(done_index(&r, 3), -1);
    assert_int_equal(r.gen_bad, 0);
    assert_int_equal(sched_get_stats(r.sc)->aborted, 2);
    rig_free(&r);

    /* a swapped-out request */
    c = sched_config_default();
    c.preempt = SCHED_PREEMPT_SWAP;
    rig_init(&r, KV_PAGED, 20, 16, 64, c);       /* 320 slots: the third must go */
    for (int i = 0; i < 3; i++) add(&r, i, 60, 60, 1, 0);
    int swapped = 0, id = -1;
    while (sched_has_work(r.sc) && r.steps < 1000 && !swapped) {
        step(&r);
        sched_counts(r.sc, NULL, NULL, &swapped);
    }
    assert_true(swapped > 0);
    nl = sched_live(r.sc, &live, &next);
    for (int i = 0; i < nl; i++) if (live[i]->status == SEQ_SWAPPED) id = live[i]->id;
    assert_true(id >= 0);
    assert_int_equal(sched_abort(r.sc, id, r.now, &d, NULL), 1);   /* request id = seq id here */
    sched_counts(r.sc, NULL, NULL, &swapped);
    assert_int_equal(swapped, 0);
    check_kv(&r);
    run_all(&r, 10000);
    assert_int_equal(r.n_done, 2);
    assert_int_equal(r.gen_bad, 0);
    rig_free(&r);
}

static void test_bad_config(void **st) {
    (void)st;
    kv_config kc = { .policy = KV_PAGED, .num_blocks = 10, .block_size = 16, .max_model_len = 100 };
    char err[256] = "";
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    sched_config c = sched_config_default();
    c.max_num_seqs = 0;
    assert_null(sched_create(&c, kv, err, sizeof err));
    assert_non_null(strstr(err, "max_num_seqs"));
    c = sched_config_default();
    sched *sc = sched_create(&c, kv, err, sizeof err);
    int p[2] = { 1, 2 };
    assert_null(sched_add(sc, 0, p, 0, 5, 1, 0, 0, NULL));
    assert_null(sched_add(sc, 0, p, 2, 0, 1, 0, 0, NULL));
    sched_destroy(sc);
    kv_destroy(kv);
}

/* The step loop with a foreign executor (as the engine will plug in): its
 * step times drive the clock, and an EOS token stops a sequence early. */
typedef struct fake_ex { int calls; int copies_seen; } fake_ex;
static int fake_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds,
                        char *err, size_t errlen) {
    (void)err; (void)errlen;
    fake_ex *f = ctx;
    f->calls++;
    f->copies_seen += b->num_copies;
    for (int i = 0; i < b->num_items; i++) {
        const seq *s = b->items[i].s;
        /* request 1 says EOS (id 2) after 3 generated tokens */
        tokens[i] = (s->group == 1 && seq_num_generated(s) == 3) ? 2 : 7;
    }
    *seconds = 0.5;
    return 0;
}

static void test_step_loop_engine_like(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    rig r; rig_init(&r, KV_PAGED, 100, 16, 0, c);
    add(&r, 0, 20, 10, 1, 0);
    add(&r, 1, 20, 10, 1, 0);
    add(&r, 2, 20, 6, 2, 0);
    fake_ex f = { 0, 0 };
    loop_executor ex = { &f, fake_execute };
    loop l;
    assert_int_equal(loop_init(&l, r.sc, ex, 100.0, 2), 0);
    char err[256];
    int stops = 0, lengths = 0, done = 0;
    loop_step_info info;
    while (sched_has_work(r.sc)) {
        assert_int_equal(loop_step(&l, &info, err, sizeof err), 1);
        assert_true(info.seconds == 0.5);
        for (int i = 0; i < info.n_fin; i++) {
            if (info.fin[i]->finish_reason == SEQ_FINISH_STOP) {
                stops++;
                assert_int_equal(info.fin[i]->group, 1);
                assert_int_equal(seq_num_generated(info.fin[i]), 4);   /* EOS included */
            } else {
                lengths++;
                assert_int_equal(seq_num_generated(info.fin[i]), info.fin[i]->max_output);
            }
        }
        done += info.n_done;
    }
    assert_int_equal(stops, 1);
    assert_int_equal(lengths, 3);                  /* request 0, and request 2's two samples */
    assert_int_equal(done, 3);
    assert_int_equal(l.steps, f.calls);
    assert_true(fabs(l.now - (100.0 + 0.5 * f.calls)) < 1e-9);
    assert_int_equal(f.copies_seen, 1);            /* request 2's child copied its last block */
    assert_int_equal(loop_step(&l, &info, err, sizeof err), 0);   /* idle */
    loop_free(&l);
    rig_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_budget),
        cmocka_unit_test(test_chunked_prefill),
        cmocka_unit_test(test_fcfs),
        cmocka_unit_test(test_preempt_recompute),
        cmocka_unit_test(test_preempt_swap),
        cmocka_unit_test(test_parallel_sampling_cow),
        cmocka_unit_test(test_fork_keeps_request),
        cmocka_unit_test(test_beam_search),
        cmocka_unit_test(test_beam_width_two_swaps),
        cmocka_unit_test(test_static_batching),
        cmocka_unit_test(test_all_policies_exact),
        cmocka_unit_test(test_abort_too_long),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_step_loop_engine_like),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
