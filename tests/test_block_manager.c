/* Tests of the paged policy (sim/block_manager.c through sim/kv_cache.h, and
 * bm_ directly where a hook is needed): allocation, append, watermark, full
 * pool, fork + copy-on-write, prefix caching (hits, token comparison under
 * forced hash collisions, LRU eviction), swap, accounting, views. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "sim/kv_cache.h"
#include "sim/block_manager.h"

#define BS 4

static kv_cache *mk(int blocks, bool pc, int cpu) {
    kv_config c = { .policy = KV_PAGED, .num_blocks = blocks, .block_size = BS,
                    .max_model_len = 1024, .orca_max_len = 2048, .prefix_caching = pc,
                    .num_cpu_blocks = cpu };
    char err[256];
    kv_cache *kv = kv_create(&c, err, sizeof err);
    assert_non_null(kv);
    return kv;
}

/* prompt = base, base+1, ... (n tokens) */
static void mkseq(seq *s, int id, int n, int base, int max_out) {
    int *p = malloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) p[i] = base + i;
    assert_int_equal(seq_init(s, id, id, p, n, max_out, 0), 0);
    free(p);
}

static void check(const kv_cache *kv, seq **live, int n) {
    char err[256] = "";
    int rc = kv_check(kv, live, n, err, sizeof err);
    if (rc) fail_msg("kv_check: %s", err);
}

static int free_blocks(const kv_cache *kv, seq **live, int n) {
    kv_usage u;
    kv_usage_get(kv, live, n, NULL, &u);
    return u.blocks_total - u.blocks_used;
}

/* append one generated token the way the scheduler does */
static int step_token(kv_cache *kv, seq *s, int tok, kv_copy *cp) {
    assert_true(kv_can_append(kv, s));
    int r = kv_append_slot(kv, s, cp);
    seq_append_token(s, tok);
    s->num_computed = s->num_tokens;
    return r;
}

static void test_admit_append_release(void **st) {
    (void)st;
    kv_cache *kv = mk(8, false, 0);
    seq a; mkseq(&a, 0, 6, 100, 10);
    seq *live[] = { &a };
    assert_true(kv_can_admit(kv, &a, 0));
    kv_admit(kv, &a);
    assert_int_equal(a.num_blocks, 2);
    assert_int_equal(a.num_computed, 0);
    assert_int_equal(free_blocks(kv, live, 1), 6);
    check(kv, live, 1);
    kv_copy cp;
    assert_int_equal(step_token(kv, &a, 1, &cp), 0);    /* slot 6: block 1 */
    assert_int_equal(step_token(kv, &a, 2, &cp), 0);    /* slot 7: block 1 */
    assert_int_equal(a.num_blocks, 2);
    assert_int_equal(step_token(kv, &a, 3, &cp), 0);    /* slot 8: a new block */
    assert_int_equal(a.num_blocks, 3);
    check(kv, live, 1);
    /* slots are where the table says */
    assert_int_equal(kv_slot(kv, &a, 5), (long)a.block_table[1] * BS + 1);
    kv_release(kv, &a);
    assert_int_equal(a.num_blocks, 0);
    assert_int_equal(free_blocks(kv, live, 1), 8);
    check(kv, live, 1);
    seq_free(&a);
    kv_destroy(kv);
}

static void test_full_pool_and_watermark(void **st) {
    (void)st;
    kv_cache *kv = mk(4, false, 0);
    seq a, b; mkseq(&a, 0, 8, 0, 8); mkseq(&b, 1, 8, 50, 8);
    assert_true(kv_can_admit(kv, &a, 2));              /* 4 free - 2 needed >= 2 */
    assert_false(kv_can_admit(kv, &a, 3));             /* the watermark refuses */
    kv_admit(kv, &a);
    assert_true(kv_can_admit(kv, &b, 0));
    kv_admit(kv, &b);
    seq *live[] = { &a, &b };
    check(kv, live, 2);
    assert_int_equal(free_blocks(kv, live, 2), 0);
    assert_false(kv_can_admit(kv, &a, 0));
    assert_false(kv_can_append(kv, &a));               /* slot 8 needs a block */
    kv_release(kv, &b);
    assert_true(kv_can_append(kv, &a));
    seq_free(&a); seq_free(&b);
    kv_destroy(kv);
}

static void test_fork_copy_on_write(void **st) {
    (void)st;
    kv_cache *kv = mk(8, false, 0);
    char err[256];
    seq p; mkseq(&p, 0, 5, 0, 8);
    kv_admit(kv, &p);
    p.num_computed = 5;
    seq c;
    assert_int_equal(seq_fork(&c, &p, 1), 0);
    assert_int_equal(kv_fork(kv, &p, &c), 0);
    seq *live[] = { &p, &c };
    assert_int_equal(kv_check(kv, live, 2, err, sizeof err), 0);
    kv_block_view v[8];
    kv_block_views(kv, live, 2, v);
    int b0 = p.block_table[0], b1 = p.block_table[1];
    assert_int_equal(v[b0].ref, 2);
    assert_int_equal(v[b1].ref, 2);
    assert_int_equal(v[b1].owner, 0);
    assert_int_equal(v[b1].tokens, 1);
    /* the child writes slot 5, inside the shared last block: copy-on-write */
    kv_copy cp = { -1, -1, KV_SWAP_IN };
    assert_int_equal(step_token(kv, &c, 77, &cp), 1);
    assert_int_equal(cp.kind, KV_COPY_GPU);
    assert_int_equal(cp.src, b1);
    assert_int_equal(cp.dst, c.block_table[1]);
    assert_int_not_equal(c.block_table[1], b1);
    assert_int_equal(c.block_table[0], b0);            /* the full block stays shared */
    kv_block_views(kv, live, 2, v);
    assert_int_equal(v[b0].ref, 2);
    assert_int_equal(v[b1].ref, 1);
    assert_int_equal(v[c.block_table[1]].ref, 1);
    assert_int_equal(v[c.block_table[1]].owner, 1);
    check(kv, live, 2);
    /* the parent now owns its last block alone: no copy */
    assert_int_equal(step_token(kv, &p, 88, &cp), 0);
    assert_int_equal(p.block_table[1], b1);
    kv_usage u;
    kv_usage_get(kv, live, 2, NULL, &u);
    assert_int_equal(u.cow_copies, 1);
    assert_int_equal(u.blocks_used, 3);
    check(kv, live, 2);
    kv_release(kv, &p);
    seq *live1[] = { &c };
    check(kv, live1, 1);
    kv_block_views(kv, live1, 1, v);
    assert_int_equal(v[b0].ref, 1);
    kv_release(kv, &c);
    assert_int_equal(free_blocks(kv, live1, 0), 8);
    seq_free(&p); seq_free(&c);
    kv_destroy(kv);
}

static void test_prefix_hit(void **st) {
    (void)st;
    kv_cache *kv = mk(16, true, 0);
    seq a, b, c;
    mkseq(&a, 0, 10, 0, 4);
    kv_admit(kv, &a);
    assert_int_equal(a.num_computed, 0);
    bm *m = kv_block_manager(kv);
    a.num_computed = 6;                                 /* a first prefill chunk */
    kv_commit_computed(kv, &a);
    assert_true(bm_block_hashed(m, a.block_table[0]));  /* only full, computed blocks */
    assert_false(bm_block_hashed(m, a.block_table[1]));
    a.num_computed = 10;                                /* the rest of the prefill */
    kv_commit_computed(kv, &a);
    assert_true(bm_block_hashed(m, a.block_table[1]));
    assert_false(bm_block_hashed(m, a.block_table[2]));
    /* b shares a's first 9 tokens, then differs */
    mkseq(&b, 1, 12, 0, 4);
    b.tokens[9] = 999;
    seq *live[] = { &a, &b, &c };
    assert_true(kv_can_admit(kv, &b, 0));
    kv_admit(kv, &b);
    assert_int_equal(b.num_computed, 8);               /* two full blocks hit */
    assert_int_equal(b.block_table[0], a.block_table[0]);
    assert_int_equal(b.block_table[1], a.block_table[1]);
    assert_int_not_equal(b.block_table[2], a.block_table[2]);
    check(kv, live, 2);
    kv_usage u;
    kv_usage_get(kv, live, 2, NULL, &u);
    assert_int_equal(u.prefix_hit_tokens, 8);
    assert_int_equal(u.blocks_used, 3 + 1);            /* a: 3, b: 1 of its own */
    /* a prompt that is entirely cached still computes its last token */
    mkseq(&c, 2, 8, 0, 4);
    kv_admit(kv, &c);
    assert_int_equal(c.num_computed, 4);
    assert_int_equal(c.block_table[0], a.block_table[0]);
    assert_int_not_equal(c.block_table[1], a.block_table[1]);
    check(kv, live, 3);
    kv_release(kv, &a); kv_release(kv, &b); kv_release(kv, &c);
    check(kv, live, 0);
    seq_free(&a); seq_free(&b); seq_free(&c);
    kv_destroy(kv);
}

static uint64_t const_hash(uint64_t parent, const int *t, int n) { (void)parent; (void)t; (void)n; return 42; }
static uint64_t first_token_hash(uint64_t parent, const int *t, int n) {
    (void)n; return parent * 31 + (uint64_t)(t[0] & ~1);   /* tokens 2k and 2k+1 collide */
}

static void bm_ok(const bm *m, seq **live, int n) {
    char err[256] = "";
    if (bm_check(m, live, n, err, sizeof err)) fail_msg("bm_check: %s", err);
}

static void test_collision_needs_equal_tokens(void **st) {
    (void)st;
    char err[256];
    bm *m = bm_create(16, BS, 0, true, err, sizeof err);
    assert_non_null(m);
    bm_set_hash_fn(m, const_hash);                     /* every block collides */
    seq a, b, c;
    mkseq(&a, 0, 9, 0, 4);
    bm_admit(m, &a); a.num_computed = 9; bm_commit_computed(m, &a);
    bm_stats stt;
    bm_get_stats(m, &stt);
    assert_int_equal(stt.hashed_blocks, 2);
    mkseq(&b, 1, 9, 1000, 4);                          /* other tokens, same hashes */
    assert_int_equal(bm_cached_prefix_blocks(m, &b), 0);
    bm_admit(m, &b);
    assert_int_equal(b.num_computed, 0);
    assert_int_not_equal(b.block_table[0], a.block_table[0]);
    b.num_computed = 9; bm_commit_computed(m, &b);
    mkseq(&c, 2, 9, 1000, 4);                          /* equal to b: hits b, not a */
    bm_admit(m, &c);
    assert_int_equal(c.num_computed, 8);
    assert_int_equal(c.block_table[0], b.block_table[0]);
    assert_int_equal(c.block_table[1], b.block_table[1]);
    seq *live[] = { &a, &b, &c };
    bm_ok(m, live, 3);
    bm_release(m, &a); bm_release(m, &b); bm_release(m, &c);
    bm_ok(m, live, 0);
    seq_free(&a); seq_free(&b); seq_free(&c);
    bm_destroy(m);
}

/* X = [x0, y], Y = [x0', y] with hash(x0) == hash(x0'): Z = Y's tokens must
 * hit Y's first block, and must not take X's second block although its hash
 * chain and its own tokens match. */
static void test_collision_in_parent(void **st) {
    (void)st;
    char err[256];
    bm *m = bm_create(16, BS, 0, true, err, sizeof err);
    bm_set_hash_fn(m, first_token_hash);
    seq x, y, z;
    mkseq(&x, 0, 9, 10, 4);                            /* blocks start 10, 14 */
    mkseq(&y, 1, 9, 10, 4);
    y.tokens[0] = 11; y.tokens[1] = 99;                /* first block differs, same hash */
    bm_admit(m, &x); x.num_computed = 9; bm_commit_computed(m, &x);
    assert_int_equal(bm_cached_prefix_blocks(m, &y), 0);
    bm_admit(m, &y); y.num_computed = 9; bm_commit_computed(m, &y);
    seq *live2[] = { &x, &y };
    bm_ok(m, live2, 2);
    bm_release(m, &y);                                 /* y's blocks become cached */
    mkseq(&z, 2, 9, 10, 4);
    z.tokens[0] = 11; z.tokens[1] = 99;
    int yb0 = y.block_table[0], yb1 = y.block_table[1];
    bm_admit(m, &z);
    assert_int_equal(z.block_table[0], yb0);
    assert_int_equal(z.block_table[1], yb1);           /* its own chain, not x's */
    assert_int_not_equal(z.block_table[1], x.block_table[1]);
    seq *live[] = { &x, &z };
    bm_ok(m, live, 2);
    bm_release(m, &x); bm_release(m, &z);
    seq_free(&x); seq_free(&y); seq_free(&z);
    bm_destroy(m);
}

static void test_lru_eviction(void **st) {
    (void)st;
    char err[256];
    bm *m = bm_create(4, BS, 0, true, err, sizeof err);
    seq a, b, c;
    mkseq(&a, 0, 9, 0, 4);                             /* 3 blocks, 2 full */
    bm_admit(m, &a); a.num_computed = 9; bm_commit_computed(m, &a);
    int a0 = a.block_table[0], a1 = a.block_table[1], a2 = a.block_table[2];
    mkseq(&b, 1, 1, 500, 4);                           /* takes the 4th block */
    assert_true(bm_can_admit(m, &b, 0));
    bm_admit(m, &b);
    int b0 = b.block_table[0];
    bm_release(m, &b);
    bm_release(m, &a);
    /* freed last-block-first: the unhashed tail block is reused first, then
     * the cached blocks from the deepest to the first of the prefix */
    bm_stats stt; bm_get_stats(m, &stt);
    assert_int_equal(stt.cached_blocks, 2);
    assert_int_equal(stt.free_blocks, 4);
    int order[4], k = 0;
    mkseq(&c, 2, 1, 900, 4);
    seq *live[] = { &c };
    /* take blocks one at a time with 1-token sequences, watching the victim */
    seq one[4];
    for (k = 0; k < 4; k++) {
        order[k] = bm_next_victim(m);
        mkseq(&one[k], 10 + k, 1, 700 + k, 1);
        assert_true(bm_can_admit(m, &one[k], 0));
        bm_admit(m, &one[k]);
        assert_int_equal(one[k].block_table[0], order[k]);
    }
    assert_false(bm_can_admit(m, &c, 0));
    assert_int_equal(bm_next_victim(m), -1);
    /* uncached blocks go first (b's and a's tail, in the order they were
     * freed), then the cached ones, least recently freed first: a1 then a0 */
    assert_int_equal(order[0], b0);
    assert_int_equal(order[1], a2);
    assert_int_equal(order[2], a1);
    assert_int_equal(order[3], a0);
    bm_get_stats(m, &stt);
    assert_int_equal(stt.evictions, 2);
    assert_int_equal(stt.hashed_blocks, 0);
    for (k = 0; k < 4; k++) { bm_release(m, &one[k]); seq_free(&one[k]); }
    bm_ok(m, live, 0);
    seq_free(&a); seq_free(&b); seq_free(&c);
    bm_destroy(m);
}

static void test_cached_block_revived_by_hit(void **st) {
    (void)st;
    kv_cache *kv = mk(4, true, 0);
    seq a, b;
    mkseq(&a, 0, 9, 0, 4);
    kv_admit(kv, &a); a.num_computed = 9; kv_commit_computed(kv, &a);
    int a0 = a.block_table[0], a1 = a.block_table[1], a2 = a.block_table[2];
    kv_release(kv, &a);
    kv_block_view v[4];
    kv_block_views(kv, NULL, 0, v);
    assert_true(v[a0].cached && v[a1].cached);         /* freed, still in the cache */
    assert_false(v[a2].cached);                        /* the partial block never was */
    assert_int_equal(v[a0].ref, 0);
    assert_int_equal(v[a0].owner, -1);
    assert_int_equal(v[a0].tokens, BS);
    assert_int_equal(v[a2].tokens, 0);
    mkseq(&b, 1, 12, 0, 4);
    /* 3 blocks needed, 2 are cached hits that leave the free queue: 4 free - 3 >= 1 */
    assert_true(kv_can_admit(kv, &b, 1));
    assert_false(kv_can_admit(kv, &b, 2));
    kv_admit(kv, &b);
    assert_int_equal(b.block_table[0], a0);
    assert_int_equal(b.block_table[1], a1);
    assert_int_equal(b.num_computed, 8);
    seq *live[] = { &b };
    check(kv, live, 1);
    kv_usage u; kv_usage_get(kv, live, 1, NULL, &u);
    assert_int_equal(u.blocks_cached, 0);
    assert_int_equal(u.blocks_used, 3);
    kv_release(kv, &b);
    seq_free(&a); seq_free(&b);
    kv_destroy(kv);
}

static void test_swap_out_in(void **st) {
    (void)st;
    kv_cache *kv = mk(8, false, 3);
    seq a, b; mkseq(&a, 0, 10, 0, 4); mkseq(&b, 1, 13, 0, 4);
    kv_admit(kv, &a); kv_admit(kv, &b);
    a.num_computed = 10;
    seq *live[] = { &a, &b };
    assert_true(kv_can_swap_out(kv, &a));              /* 3 blocks, 3 CPU blocks */
    assert_false(kv_can_swap_out(kv, &b));             /* 4 blocks do not fit */
    int g[3] = { a.block_table[0], a.block_table[1], a.block_table[2] };
    kv_copy cp[4];
    assert_int_equal(kv_swap_out(kv, &a, cp), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cp[i].kind, KV_SWAP_OUT);
        assert_int_equal(cp[i].src, g[i]);
        assert_true(cp[i].dst >= 0 && cp[i].dst < 3);
    }
    assert_int_equal(a.status, SEQ_SWAPPED);
    check(kv, live, 2);
    assert_int_equal(free_blocks(kv, live, 2), 4);
    assert_false(kv_can_swap_in(kv, &b));              /* not swapped */
    assert_true(kv_can_swap_in(kv, &a));
    /* fill the GPU: then a cannot come back */
    seq c; mkseq(&c, 2, 16, 300, 4);
    kv_admit(kv, &c);
    seq *live3[] = { &a, &b, &c };
    check(kv, live3, 3);
    assert_false(kv_can_swap_in(kv, &a));
    kv_release(kv, &c);
    int cpu[3] = { cp[0].dst, cp[1].dst, cp[2].dst };
    assert_int_equal(kv_swap_in(kv, &a, cp), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cp[i].kind, KV_SWAP_IN);
        assert_int_equal(cp[i].src, cpu[i]);
        assert_int_equal(cp[i].dst, a.block_table[i]);
    }
    assert_int_equal(a.status, SEQ_RUNNING);
    assert_int_equal(a.num_computed, 10);              /* the KV came back */
    check(kv, live, 2);
    /* a swapped sequence can be dropped: its CPU blocks come back */
    kv_swap_out(kv, &a, cp);
    kv_release(kv, &a);
    check(kv, live, 2);
    assert_true(kv_can_swap_out(kv, &b) == false);
    kv_release(kv, &b);
    seq_free(&a); seq_free(&b); seq_free(&c);
    kv_destroy(kv);
}

/* Siblings sharing blocks share one CPU copy when swapped out, and one GPU
 * block again when swapped back in. */
static void test_swap_keeps_sharing(void **st) {
    (void)st;
    kv_cache *kv = mk(16, false, 8);
    seq p, c;
    mkseq(&p, 0, 10, 0, 8);                            /* 3 blocks, the last partial */
    kv_admit(kv, &p); p.num_computed = 10;
    assert_int_equal(seq_fork(&c, &p, 1), 0);
    assert_int_equal(kv_fork(kv, &p, &c), 0);
    kv_copy cp[8];
    assert_int_equal(step_token(kv, &c, 5, cp), 1);    /* the child copies its last block */
    seq *live[] = { &p, &c };
    int shared0 = p.block_table[0], shared1 = p.block_table[1];
    assert_int_equal(kv_swap_out(kv, &p, cp), 3);      /* first sibling: 3 copies */
    check(kv, live, 2);
    int own = c.block_table[2];
    assert_int_equal(kv_swap_out(kv, &c, cp), 1);      /* second: only its own last block */
    assert_int_equal(cp[0].src, own);
    check(kv, live, 2);
    assert_int_equal(c.block_table[0], p.block_table[0]);   /* one CPU copy, held twice */
    assert_int_equal(c.block_table[1], p.block_table[1]);
    bm_stats stt; bm_get_stats(kv_block_manager(kv), &stt);
    assert_int_equal(stt.cpu_free_blocks, 8 - 4);
    assert_int_equal(stt.free_blocks, 16);
    assert_int_equal(kv_swap_in(kv, &c, cp), 3);
    check(kv, live, 2);
    assert_int_equal(kv_swap_in(kv, &p, cp), 1);       /* shares c's first two blocks again */
    assert_int_equal(p.block_table[0], c.block_table[0]);
    assert_int_equal(p.block_table[1], c.block_table[1]);
    assert_int_not_equal(p.block_table[2], c.block_table[2]);
    check(kv, live, 2);
    bm_get_stats(kv_block_manager(kv), &stt);
    assert_int_equal(stt.free_blocks, 16 - 4);
    assert_int_equal(stt.cpu_free_blocks, 8);
    (void)shared0; (void)shared1;
    /* a CPU pool too small for the copies refuses */
    kv_release(kv, &c);
    seq big; mkseq(&big, 2, 40, 500, 4);              /* 10 blocks > 8 CPU blocks */
    kv_admit(kv, &big);
    assert_false(kv_can_swap_out(kv, &big));
    assert_true(kv_can_swap_out(kv, &p));
    kv_release(kv, &p); kv_release(kv, &big);
    seq_free(&p); seq_free(&c); seq_free(&big);
    kv_destroy(kv);
}

static void test_usage_categories(void **st) {
    (void)st;
    kv_cache *kv = mk(10, false, 0);
    seq a; mkseq(&a, 0, 6, 0, 3);                      /* final length 9: 3 blocks */
    kv_admit(kv, &a);
    seq *live[] = { &a };
    kv_usage u;
    kv_usage_get(kv, live, 1, NULL, &u);
    assert_int_equal(u.slots_total, 40);
    assert_int_equal(u.token_slots, 6);
    assert_int_equal(u.reserved_slots, 2);             /* slots 6, 7 of block 1 */
    assert_int_equal(u.internal_frag, 0);
    assert_int_equal(u.free_slots, 32);
    kv_copy cp;
    step_token(kv, &a, 1, &cp); step_token(kv, &a, 2, &cp); step_token(kv, &a, 3, &cp);
    kv_usage_get(kv, live, 1, NULL, &u);
    assert_int_equal(u.token_slots, 9);
    assert_int_equal(u.reserved_slots, 0);
    assert_int_equal(u.internal_frag, 3);              /* the tail of block 2 */
    assert_int_equal(u.external_frag, 0);
    assert_int_equal(u.token_slots + u.reserved_slots + u.internal_frag + u.free_slots, 40);
    kv_release(kv, &a);
    seq_free(&a);
    kv_destroy(kv);
}

/* kv_check finds corruption: a table pointing at a block it does not hold,
 * blocks nobody holds, a hashed block whose tokens changed. */
static void test_check_catches_corruption(void **st) {
    (void)st;
    kv_cache *kv = mk(8, true, 0);
    seq a, b; mkseq(&a, 0, 9, 0, 4); mkseq(&b, 1, 4, 50, 4);
    kv_admit(kv, &a); kv_admit(kv, &b);
    seq *live[] = { &a, &b };
    check(kv, live, 2);
    char err[256] = "";
    int saved = b.block_table[0];
    b.block_table[0] = a.block_table[0];               /* b claims a's block */
    assert_int_equal(kv_check(kv, live, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "ref"));
    b.block_table[0] = saved;
    check(kv, live, 2);
    assert_int_equal(kv_check(kv, live, 1, err, sizeof err), -1);   /* b's blocks unaccounted */
    a.num_computed = 9; kv_commit_computed(kv, &a);
    a.tokens[5] = 999;                                  /* block 1's hash no longer fits a's tokens */
    assert_int_equal(kv_check(kv, live, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "other tokens"));
    a.tokens[5] = 5;
    check(kv, live, 2);
    kv_release(kv, &a); kv_release(kv, &b);
    seq_free(&a); seq_free(&b);
    kv_destroy(kv);
}

/* Acting without asking first (a caller bug) leaves the pool consistent. */
static void test_misuse_is_harmless(void **st) {
    (void)st;
    kv_cache *kv = mk(2, false, 1);
    seq a, b; mkseq(&a, 0, 8, 0, 4); mkseq(&b, 1, 4, 50, 4);
    kv_admit(kv, &a);
    seq *live[] = { &a, &b };
    kv_admit(kv, &b);                                  /* no room */
    assert_int_equal(b.num_blocks, 0);
    kv_admit(kv, &a);                                  /* already admitted */
    assert_int_equal(a.num_blocks, 2);
    kv_copy cp;
    assert_int_equal(kv_append_slot(kv, &a, &cp), 0);  /* slot 8 needs a block: none */
    assert_int_equal(a.num_blocks, 2);
    assert_int_equal(kv_swap_out(kv, &a, &cp), 0);     /* 2 blocks, 1 CPU block */
    assert_int_equal(a.block_table[0] >= 0, 1);
    kv_release(kv, &a);
    kv_release(kv, &a);                                /* twice: a no-op */
    check(kv, live, 2);
    kv_cache *r = NULL;
    kv_config c = { .policy = KV_ORCA_ORACLE, .num_blocks = 2, .block_size = BS, .max_model_len = 64 };
    char err[256];
    r = kv_create(&c, err, sizeof err);
    assert_non_null(r);
    seq big; mkseq(&big, 2, 9, 0, 1);                  /* 10 slots > 8 */
    kv_admit(r, &big);
    assert_int_equal(big.resv_len, 0);
    assert_int_equal(kv_check(r, live, 0, err, sizeof err), 0);
    kv_destroy(r);
    seq_free(&a); seq_free(&b); seq_free(&big);
    kv_destroy(kv);
}

static void test_policy_names_and_bad_config(void **st) {
    (void)st;
    for (int p = 0; p < KV_NUM_POLICIES; p++)
        assert_int_equal(kv_policy_parse(kv_policy_name((kv_policy)p)), p);
    assert_int_equal(kv_policy_parse("orca-pow2"), KV_ORCA_POW2);
    assert_int_equal(kv_policy_parse("nope"), -1);
    assert_int_equal(kv_policy_parse(NULL), -1);
    char err[256] = "";
    kv_config c = { .policy = KV_PAGED, .num_blocks = 0, .block_size = 16 };
    assert_null(kv_create(&c, err, sizeof err));
    assert_true(strlen(err) > 0);
    c.num_blocks = 4; c.block_size = -1;
    assert_null(kv_create(&c, err, sizeof err));
    c.block_size = 16; c.policy = (kv_policy)17;
    assert_null(kv_create(&c, err, sizeof err));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admit_append_release),
        cmocka_unit_test(test_full_pool_and_watermark),
        cmocka_unit_test(test_fork_copy_on_write),
        cmocka_unit_test(test_prefix_hit),
        cmocka_unit_test(test_collision_needs_equal_tokens),
        cmocka_unit_test(test_collision_in_parent),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_cached_block_revived_by_hit),
        cmocka_unit_test(test_swap_out_in),
        cmocka_unit_test(test_swap_keeps_sharing),
        cmocka_unit_test(test_usage_categories),
        cmocka_unit_test(test_check_catches_corruption),
        cmocka_unit_test(test_misuse_is_harmless),
        cmocka_unit_test(test_policy_names_and_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
