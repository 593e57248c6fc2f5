/* test_kv_fidelity: the bugs other simulators had (issue 18, item 4), caught
 * by an executor that keeps a shadow of the KV pool.  Every computed position
 * writes, into its slot (kv_slot), the identity of the token prefix it
 * encodes; block copies (copy-on-write, swap out and in) copy the shadow; and
 * every position an item attends to must hold the identity of its own prefix.
 * So a prefix-cache hit on blocks that were never computed, or were freed and
 * reused, or a copy that went missing, or a swapped block that came back
 * stale, fails the read.  On top of it, explicit cases:
 *   - prefix-cache hits during chunked prefill: a request admitted while
 *     another is prefilling hits only the first's already computed chunks
 *     (not the one computed in the same step), and a later one hits the whole
 *     shared prefix, longer than a chunk;
 *   - a preempted sequence's blocks stay in the prefix cache only while they
 *     are neither evicted nor reused: after the preemptor took the pool, the
 *     victim recomputes everything (no hit inflates throughput);
 *   - swap and recompute of sequences sharing copy-on-write blocks (parallel
 *     sampling), sharing kept across a swap;
 *   - preemption of part of a beam-search group, mid-beam. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "sim/scheduler.h"
#include "sim/step_loop.h"
#include "sim/block_manager.h"

/* ---- the shadow executor ----------------------------------------------------- */
typedef struct shadow {
    kv_cache *kv;
    int       bs;
    uint64_t *gpu;                /* (num_blocks * bs,) prefix identity per slot, 0 = nothing */
    uint64_t *cpu;                /* (num_cpu_blocks * bs,) */
    uint64_t *pre;                /* (max tokens,) scratch: prefix identities of a sequence */
    long      computed, reads, copies[3];
} shadow;

static uint64_t mix(uint64_t h, int tok) {
    h ^= (uint64_t)(uint32_t)tok + 0x9e3779b97f4a7c15ull;
    h *= 0xbf58476d1ce4e5b9ull;
    return (h ^ (h >> 31)) | 1;                       /* never 0 */
}

static int shadow_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds,
                          char *err, size_t errlen) {
    shadow *x = ctx;
    int bs = x->bs;
    for (int i = 0; i < b->num_copies; i++) {      /* block moves first, in order */
        const kv_copy *c = &b->copies[i];
        uint64_t *src = c->kind == KV_SWAP_IN ? x->cpu : x->gpu;
        uint64_t *dst = c->kind == KV_SWAP_OUT ? x->cpu : x->gpu;
        memcpy(dst + (size_t)c->dst * bs, src + (size_t)c->src * bs, (size_t)bs * sizeof *dst);
        x->copies[c->kind]++;
    }
    for (int i = 0; i < b->num_items; i++) {
        const sched_item *it = &b->items[i];
        const seq *s = it->s;
        if (it->start != s->num_computed || it->start + it->num_new > s->num_tokens) {
            snprintf(err, errlen, "seq %d: item [%d, +%d) of %d tokens, %d computed", s->id, it->start,
                     it->num_new, s->num_tokens, s->num_computed);
            return -1;
        }
        uint64_t h = 0;
        for (int p = 0; p < it->start + it->num_new; p++) x->pre[p] = h = mix(h, s->tokens[p]);
        for (int p = 0; p < it->start; p++, x->reads++)           /* attention reads the context */
            if (x->gpu[kv_slot(x->kv, s, p)] != x->pre[p]) {
                snprintf(err, errlen, "seq %d (group %d) reads position %d from slot %ld: %s", s->id,
                         s->group, p, kv_slot(x->kv, s, p),
                         x->gpu[kv_slot(x->kv, s, p)] ? "another prefix's KV" : "KV never written");
                return -1;
            }
        for (int p = it->start; p < it->start + it->num_new; p++, x->computed++)
            x->gpu[kv_slot(x->kv, s, p)] = x->pre[p];
        /* each sequence samples its own tokens: siblings diverge */
        tokens[i] = 1 + (int)((uint64_t)(s->id * 7919 + s->num_tokens * 31) % 30000);
    }
    *seconds = 0.01;
    return 0;
}

typedef struct rig {
    kv_cache *kv;
    sched    *sc;
    loop      lp;
    shadow    x;
    int       n_done, n_aborted;
    sched_done done[64];
} rig;

static void rig_init(rig *r, int blocks, int bs, int cpu_blocks, bool prefix, sched_config c) {
    memset(r, 0, sizeof *r);
    kv_config kc = { .policy = KV_PAGED, .num_blocks = blocks, .block_size = bs, .max_model_len = 1024,
                     .orca_max_len = 1024, .prefix_caching = prefix, .num_cpu_blocks = cpu_blocks };
    char err[256];
    r->kv = kv_create(&kc, err, sizeof err);
    assert_non_null(r->kv);
    r->sc = sched_create(&c, r->kv, err, sizeof err);
    assert_non_null(r->sc);
    r->x = (shadow){ r->kv, bs, calloc((size_t)blocks * bs, 8), calloc((size_t)(cpu_blocks + 1) * bs, 8),
                     calloc(1024, 8), 0, 0, { 0, 0, 0 } };
    assert_true(r->x.gpu && r->x.cpu && r->x.pre);
    assert_int_equal(loop_init(&r->lp, r->sc, (loop_executor){ &r->x, shadow_execute }, 0, -1), 0);
}
static void rig_free(rig *r) {
    loop_free(&r->lp);
    sched_destroy(r->sc);
    kv_destroy(r->kv);
    free(r->x.gpu); free(r->x.cpu); free(r->x.pre);
}

static int ids[1024];
/* prompt: the first shared tokens are common to every request with the
 * same family, the rest its own */
static seq *add(rig *r, int id, int family, int shared, int prompt_len, int out, int n, int beam) {
    for (int t = 0; t < prompt_len; t++) ids[t] = t < shared ? 100 * family + t + 1 : 5000 + 97 * id + t;
    seq *s = sched_add(r->sc, id, ids, prompt_len, out, n, beam, r->lp.now, NULL);
    assert_non_null(s);
    return s;
}

/* One step; the shadow check, kv_check, the finished requests. */
static int step(rig *r, loop_step_info *info) {
    char err[256];
    loop_step_info tmp;
    if (!info) info = &tmp;
    int rc = loop_step(&r->lp, info, err, sizeof err);
    if (rc < 0) fail_msg("step %ld: %s", r->lp.steps, err);
    seq *const *live; const seq *next;
    int n = sched_live(r->sc, &live, &next);
    if (kv_check(r->kv, live, n, err, sizeof err)) fail_msg("step %ld: kv_check: %s", r->lp.steps, err);
    for (int i = 0; i < info->n_done && r->n_done < 64; i++) {
        r->done[r->n_done++] = info->done[i];
        r->n_aborted += info->done[i].aborted;
    }
    return rc;
}
static void run_all(rig *r) {
    while (sched_has_work(r->sc)) {
        if (r->lp.steps > 20000) fail_msg("still running after 20000 steps");
        step(r, NULL);
    }
}
static long hits(rig *r) { bm_stats s; bm_get_stats(kv_block_manager(r->kv), &s); return s.prefix_hit_tokens; }
static const sched_item *item_of(const loop_step_info *info, const seq *s) {
    for (int i = 0; i < info->batch->num_items; i++) if (info->batch->items[i].s == s) return &info->batch->items[i];
    return NULL;
}

/* Steps until s is in a batch (a bounded wait: a sequence never scheduled fails). */
static void wait_item(rig *r, loop_step_info *info, const seq *s) {
    for (int k = 0; !item_of(info, s); k++) {
        if (k > 50) fail_msg("seq %d not scheduled in 50 steps", s->id);
        step(r, info);
    }
}

/* ---- prefix-cache hits during chunked prefill -------------------------------- */
static void test_prefix_hits_in_chunked_prefill(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    c.max_num_batched_tokens = 64;
    rig r; rig_init(&r, 64, 16, 0, true, c);
    loop_step_info info;
    seq *a = add(&r, 0, 1, 100, 100, 4, 1, 0);     /* chunks [0,64) then [64,100) */
    step(&r, &info);
    assert_int_equal(item_of(&info, a)->num_new, 64);
    assert_int_equal(hits(&r), 0);
    /* B shares A's first 96 tokens (6 blocks).  It is admitted in the step
     * where A computes [64,100): only A's first chunk (4 blocks) is in the
     * cache; blocks 4 and 5 are being computed in this very step */
    seq *b = add(&r, 1, 1, 96, 150, 4, 1, 0);
    step(&r, &info);
    assert_int_equal(item_of(&info, a)->num_new, 36);
    const sched_item *ib = item_of(&info, b);
    assert_non_null(ib);
    assert_int_equal(ib->start, 64);               /* the hit: the first chunk only */
    assert_int_equal(ib->num_new, 28);             /* the rest of the budget */
    assert_int_equal(hits(&r), 64);
    for (int k = 0; k < 4; k++) assert_int_equal(b->block_table[k], a->block_table[k]);
    assert_int_not_equal(b->block_table[4], a->block_table[4]);
    /* C, after A's prefill: the whole shared prefix (6 blocks), longer than a
     * chunk; D is A's prompt exactly: all but its last token */
    seq *cc = add(&r, 2, 1, 96, 120, 4, 1, 0);
    wait_item(&r, &info, cc);
    assert_int_equal(item_of(&info, cc)->start, 96);
    assert_int_equal(hits(&r), 64 + 96);
    seq *d = add(&r, 3, 1, 100, 100, 4, 1, 0);
    wait_item(&r, &info, d);
    assert_int_equal(item_of(&info, d)->start, 96);    /* floor(99 / 16) blocks: the last token is computed */
    assert_int_equal(item_of(&info, d)->num_new, 4);
    /* E: a cached prompt of whole blocks still computes its last block, to
     * have its last token's logits (a full hit would leave nothing to run) */
    seq *e = add(&r, 4, 1, 96, 96, 4, 1, 0);
    wait_item(&r, &info, e);
    assert_int_equal(item_of(&info, e)->start, 80);
    assert_int_equal(item_of(&info, e)->num_new, 16);
    run_all(&r);
    assert_int_equal(r.n_done, 5);
    assert_int_equal(r.n_aborted, 0);
    /* what the cache served was never computed twice: the executor computed
     * the prompts minus the hits, plus one decode per further token */
    long prompts = 100 + 150 + 120 + 100 + 96, decodes = 5 * 3;
    assert_int_equal(r.x.computed, prompts - hits(&r) + decodes);
    rig_free(&r);
}

/* ---- preempted blocks in the prefix cache ------------------------------------ */
/* A (newest first: B is preempted) grows into the whole pool: every block B
 * left in the cache is evicted and reused, so B recomputes all of it. */
static void test_preempted_blocks_evicted(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    rig r; rig_init(&r, 8, 16, 0, true, c);            /* 128 slots */
    seq *a = add(&r, 0, 1, 0, 48, 79, 1, 0);            /* 127 tokens at the end: the whole pool */
    seq *b = add(&r, 1, 2, 0, 40, 20, 1, 0);
    int b_id = b->id;
    long hits_before = -1;
    bool b_back = false;
    loop_step_info info;
    while (sched_has_work(r.sc)) {
        assert_true(r.lp.steps < 5000);
        bool b_waiting_preempted = b && b->status == SEQ_WAITING && b->num_preemptions > 0;
        if (b_waiting_preempted && hits_before < 0) hits_before = hits(&r);
        step(&r, &info);
        for (int i = 0; i < info.n_fin; i++) {
            if (info.fin[i]->id == b_id) b = NULL;
            if (info.fin[i] == a) a = NULL;
        }
        if (b && hits_before >= 0 && !b_back && b->status == SEQ_RUNNING) {
            b_back = true;
            assert_int_equal(hits(&r), hits_before);   /* nothing of B survived: no hit */
            assert_int_equal(item_of(&info, b)->start, 0);
        }
    }
    assert_true(b_back);
    assert_true(sched_get_stats(r.sc)->recomputes > 0);
    assert_int_equal(r.n_done, 2);
    assert_int_equal(r.n_aborted, 0);
    rig_free(&r);
}

/* With room left, B's computed full blocks survive in the cache and serve it
 * again, exactly those (never its partly filled or uncomputed last block);
 * the shadow checks that what they hold is B's own KV. */
static void test_preempted_blocks_reused(void **st) {
    (void)st;
    sched_config c = sched_config_default();
    rig r; rig_init(&r, 11, 16, 0, true, c);
    seq *a = add(&r, 0, 1, 0, 48, 60, 1, 0);            /* 108 at the end: 7 blocks */
    seq *b = add(&r, 1, 2, 0, 40, 60, 1, 0);            /* 100: 7 blocks; 14 > 11 */
    (void)a;
    int b_id = b->id, computed_at_preempt = -1, back_start = -1;
    loop_step_info info;
    while (sched_has_work(r.sc)) {
        assert_true(r.lp.steps < 5000);
        int before = b ? b->num_computed : 0;
        seq_status was = b ? b->status : SEQ_FINISHED;
        step(&r, &info);
        for (int i = 0; i < info.n_fin; i++) if (info.fin[i]->id == b_id) b = NULL;
        if (!b) continue;
        if (was == SEQ_RUNNING && b->status == SEQ_WAITING && computed_at_preempt < 0)
            computed_at_preempt = before;
        if (computed_at_preempt >= 0 && back_start < 0 && item_of(&info, b)) back_start = item_of(&info, b)->start;
    }
    assert_true(computed_at_preempt > 16);
    assert_true(back_start > 0);                        /* served from the cache */
    assert_int_equal(back_start % 16, 0);
    assert_true(back_start <= computed_at_preempt / 16 * 16);
    assert_int_equal(r.n_done, 2);
    rig_free(&r);
}

/* ---- swap and recompute with shared (copy-on-write) blocks -------------------- */
static void shared_groups(sched_preempt_mode pm, bool prefix, bool *shared_on_cpu) {
    sched_config c = sched_config_default();
    c.preempt = pm;
    c.max_num_batched_tokens = 96;
    rig r; rig_init(&r, 40, 16, 60, prefix, c);
    for (int i = 0; i < 6; i++) add(&r, i, 1 + i % 2, 24, 37 + 5 * i, 60 + 7 * i, 3, 0);   /* n = 3 */
    while (sched_has_work(r.sc)) {
        assert_true(r.lp.steps < 20000);
        step(&r, NULL);
        seq *const *live; const seq *next;
        int n = sched_live(r.sc, &live, &next);
        for (int i = 0; i < n; i++)          /* two swapped siblings holding one CPU copy */
            for (int j = i + 1; j < n; j++)
                if (live[i]->status == SEQ_SWAPPED && live[j]->status == SEQ_SWAPPED &&
                    live[i]->group == live[j]->group && live[i]->block_table[0] == live[j]->block_table[0])
                    *shared_on_cpu = true;
    }
    const sched_stats *ss = sched_get_stats(r.sc);
    assert_true(ss->preemptions > 0);
    if (pm == SCHED_PREEMPT_SWAP) assert_true(ss->swap_outs > 0 && r.x.copies[KV_SWAP_IN] > 0);
    else assert_true(ss->recomputes > 0);
    assert_true(r.x.copies[KV_COPY_GPU] > 0);           /* copies on write were executed */
    assert_int_equal(r.n_done, 6);
    for (int i = 0; i < r.n_done; i++) {
        assert_false(r.done[i].aborted);
        assert_int_equal(r.done[i].num_seqs, 3);
        assert_int_equal(r.done[i].output_len, 60 + 7 * r.done[i].id);
    }
    rig_free(&r);
}

static void test_swap_and_recompute_shared_blocks(void **st) {
    (void)st;
    bool cpu_shared = false;
    for (int pm = 0; pm < 2; pm++)
        for (int prefix = 0; prefix < 2; prefix++) shared_groups((sched_preempt_mode)pm, prefix, &cpu_shared);
    assert_true(cpu_shared);
}

/* ---- preemption mid-beam -------------------------------------------------------- */
static void test_preempt_mid_beam(void **st) {
    (void)st;
    for (int pm = 0; pm < 2; pm++) {
        sched_config c = sched_config_default();
        c.preempt = (sched_preempt_mode)pm;
        c.seed = 3;
        rig r; rig_init(&r, 30, 16, 40, pm == 0, c);
        for (int i = 0; i < 3; i++) add(&r, i, 1, 20, 45 + 10 * i, 70, 1, 4);   /* beam width 4 */
        int mid_beam = 0;
        loop_step_info info;
        while (sched_has_work(r.sc)) {
            assert_true(r.lp.steps < 20000);
            step(&r, &info);
            if (info.batch->preempted == 0) continue;
            /* a group with beams still running after one of its beams left */
            seq *const *live; const seq *next;
            int n = sched_live(r.sc, &live, &next);
            for (int g = 0; g < n; g++) {
                int running = 0, total = 0;
                for (int i = 0; i < n; i++) if (live[i]->group == live[g]->group) {
                    total++;
                    running += live[i]->status == SEQ_RUNNING;
                }
                if (running > 0 && total < 4) mid_beam++;
            }
        }
        assert_true(mid_beam > 0);
        assert_true(sched_get_stats(r.sc)->beam_swaps > 0);
        assert_int_equal(r.n_done, 3);
        for (int i = 0; i < r.n_done; i++) {
            assert_false(r.done[i].aborted);
            assert_int_equal(r.done[i].num_seqs, 4);
            assert_int_equal(r.done[i].output_len, 70);
        }
        rig_free(&r);
    }
}

/* ---- a seeded sweep under the shadow --------------------------------------------- */
static void test_sweep(void **st) {
    (void)st;
    uint64_t z = 99;
    for (int round = 0; round < 40; round++) {
        sched_config c = sched_config_default();
        c.preempt = (sched_preempt_mode)(round % 2);
        c.max_num_batched_tokens = 32 + 32 * (round % 4);
        c.max_num_seqs = 4 + round % 9;
        c.seed = (uint64_t)round;
        int blocks = 24 + round % 20;
        rig r; rig_init(&r, blocks, 8 << (round % 2), 50, round % 3 != 0, c);
        int n = 4 + round % 6, bs = 8 << (round % 2);
        for (int i = 0; i < n; i++) {
            z = z * 6364136223846793005ull + 1442695040888963407ull;
            int p = 5 + (int)((z >> 33) % 120), o = 1 + (int)((z >> 45) % 90);
            while ((p + o + bs) / bs > blocks - 1) o = o > 1 ? o / 2 : (p = p / 2, 1);
            add(&r, i, (int)(z >> 60) % 3, 30, p, o, i % 3 == 1 ? 2 : 1, i % 4 == 3 ? 3 : 0);
        }
        run_all(&r);
        assert_int_equal(r.n_done, n);
        assert_true(r.x.reads > 0);
        rig_free(&r);
    }
}

int main(void) {
    alarm(300);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_hits_in_chunked_prefill),
        cmocka_unit_test(test_preempted_blocks_evicted),
        cmocka_unit_test(test_preempted_blocks_reused),
        cmocka_unit_test(test_swap_and_recompute_shared_blocks),
        cmocka_unit_test(test_preempt_mid_beam),
        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
