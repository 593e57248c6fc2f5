/* Tests of the reservation baselines (sim/reserve_alloc.c through
 * sim/kv_cache.h): reservation sizes per policy, first-fit placement,
 * coalescing, external fragmentation, fork, append limits, accounting; and
 * the buddy allocator (sim/buddy_alloc.c) alone and under the policies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "sim/kv_cache.h"
#include "sim/reserve_alloc.h"
#include "sim/buddy_alloc.h"

#define BS 4

static kv_cache *mk_with(kv_policy p, int blocks, int max_model_len, int orca, kv_allocator al) {
    kv_config c = { .policy = p, .num_blocks = blocks, .block_size = BS,
                    .max_model_len = max_model_len, .orca_max_len = orca, .allocator = al };
    char err[256];
    kv_cache *kv = kv_create(&c, err, sizeof err);
    if (!kv) fail_msg("kv_create: %s", err);
    return kv;
}
static kv_cache *mk(kv_policy p, int blocks, int max_model_len, int orca) {
    return mk_with(p, blocks, max_model_len, orca, KV_ALLOC_FIRST_FIT);
}
static void mkseq(seq *s, int id, int prompt, int out) {
    assert_int_equal(seq_init(s, id, id, NULL, prompt, out, 0), 0);
}
static void check(const kv_cache *kv, seq **live, int n) {
    char err[256] = "";
    if (kv_check(kv, live, n, err, sizeof err)) fail_msg("kv_check: %s", err);
}

static void test_reservation_sizes(void **st) {
    (void)st;
    seq s; mkseq(&s, 0, 20, 5);                        /* 25 tokens over its life */
    long want[KV_NUM_POLICIES] = { 0, 200, 64, 28, 25 };   /* pow2: 20 + 8 output slots */
    for (int p = KV_CONTIGUOUS; p < KV_NUM_POLICIES; p++) {
        kv_cache *kv = mk((kv_policy)p, 100, 200, 64);
        assert_true(kv_can_admit(kv, &s, 0));
        kv_admit(kv, &s);
        assert_int_equal(s.resv_len, want[p]);
        assert_int_equal(s.resv_start, 0);
        seq *live[] = { &s };
        check(kv, live, 1);
        kv_release(kv, &s);
        assert_int_equal(s.resv_len, 0);
        check(kv, live, 0);
        kv_destroy(kv);
    }
    /* orca-max never reserves beyond the model; pow2 is capped by it too */
    kv_cache *kv = mk(KV_ORCA_MAX, 100, 48, 2048);
    kv_admit(kv, &s);
    assert_int_equal(s.resv_len, 48);
    kv_release(kv, &s);
    kv_destroy(kv);
    kv = mk(KV_ORCA_POW2, 100, 26, 2048);
    kv_admit(kv, &s);
    assert_int_equal(s.resv_len, 26);                  /* 28 > max_model_len 26 */
    kv_release(kv, &s);
    kv_destroy(kv);
    seq_free(&s);
}

static void test_first_fit_and_external_frag(void **st) {
    (void)st;
    kv_cache *kv = mk(KV_ORCA_ORACLE, 25, 200, 2048);  /* 100 slots */
    seq a, b, c, d, e;
    mkseq(&a, 0, 20, 10); mkseq(&b, 1, 20, 10); mkseq(&c, 2, 20, 10);
    kv_admit(kv, &a); kv_admit(kv, &b); kv_admit(kv, &c);
    assert_int_equal(a.resv_start, 0);
    assert_int_equal(b.resv_start, 30);
    assert_int_equal(c.resv_start, 60);
    kv_release(kv, &b);                                /* free: [30,60) and [90,100) */
    mkseq(&d, 3, 30, 10);                              /* needs 40: 40 free, none in one piece */
    assert_false(kv_can_admit(kv, &d, 0));
    seq *live[] = { &a, &c, &e };
    check(kv, live, 2);
    kv_usage u;
    kv_usage_get(kv, live, 2, &d, &u);
    assert_int_equal(u.external_frag, 40);
    assert_int_equal(u.free_slots, 0);
    assert_int_equal(u.token_slots, 40);
    assert_int_equal(u.reserved_slots, 20);
    kv_usage_get(kv, live, 2, NULL, &u);               /* nobody waiting: all free */
    assert_int_equal(u.external_frag, 0);
    assert_int_equal(u.free_slots, 40);
    /* first fit: a 20-slot request lands in the hole, not at the end */
    mkseq(&e, 4, 15, 5);
    assert_true(kv_can_admit(kv, &e, 0));
    kv_admit(kv, &e);
    assert_int_equal(e.resv_start, 30);
    check(kv, live, 3);
    /* watermark counts slots of whole blocks */
    seq f; mkseq(&f, 5, 5, 5);                         /* 10 slots; 20 free */
    assert_true(kv_can_admit(kv, &f, 2));              /* 20 - 10 >= 8 */
    assert_false(kv_can_admit(kv, &f, 3));             /* 20 - 10 < 12 */
    /* releases coalesce back into one range */
    kv_release(kv, &a); kv_release(kv, &c); kv_release(kv, &e);
    check(kv, live, 0);
    seq_free(&d);
    mkseq(&d, 6, 90, 10);
    assert_true(kv_can_admit(kv, &d, 0));              /* the whole pool again */
    seq_free(&a); seq_free(&b); seq_free(&c); seq_free(&d); seq_free(&e); seq_free(&f);
    kv_destroy(kv);
}

static void test_append_stops_at_reservation(void **st) {
    (void)st;
    kv_cache *kv = mk(KV_ORCA_ORACLE, 25, 200, 2048);
    seq a; mkseq(&a, 0, 3, 2);
    kv_admit(kv, &a);
    kv_copy cp;
    for (int i = 0; i < 2; i++) {
        assert_true(kv_can_append(kv, &a));
        assert_int_equal(kv_append_slot(kv, &a, &cp), 0);
        assert_int_equal(kv_slot(kv, &a, a.num_tokens), a.resv_start + a.num_tokens);
        seq_append_token(&a, i);
    }
    assert_false(kv_can_append(kv, &a));               /* oracle: exactly 5 slots */
    assert_false(kv_can_swap_out(kv, &a));             /* no swap for reservations */
    kv_release(kv, &a);
    seq_free(&a);
    kv_destroy(kv);
}

static void test_fork_gets_own_reservation(void **st) {
    (void)st;
    kv_cache *kv = mk_with(KV_ORCA_POW2, 16, 200, 2048, KV_ALLOC_BUDDY);   /* 64 slots */
    seq p, c, d;
    mkseq(&p, 0, 20, 4);                               /* asks 20 + 4, holds a block of 32 */
    kv_admit(kv, &p);
    assert_int_equal(seq_fork(&c, &p, 1), 0);
    assert_int_equal(kv_fork(kv, &p, &c), 0);
    assert_int_equal(c.resv_len, 32);
    assert_int_equal(c.resv_start, 32);
    seq *live[] = { &p, &c };
    check(kv, live, 2);
    assert_int_equal(seq_fork(&d, &p, 2), 0);
    assert_int_equal(kv_fork(kv, &p, &d), -1);         /* the pool is full */
    assert_int_equal(d.resv_len, 0);
    check(kv, live, 2);
    kv_block_view v[16];
    kv_block_views(kv, live, 2, v);
    assert_int_equal(v[0].owner, 0);
    assert_int_equal(v[0].tokens, 4);
    assert_true(v[5].reserved);
    assert_int_equal(v[5].tokens, 0);                  /* slots 20..23 await output */
    assert_int_equal(v[8].owner, 1);
    kv_usage u; kv_usage_get(kv, live, 2, NULL, &u);
    assert_int_equal(u.token_slots, 40);
    assert_int_equal(u.reserved_slots, 8);
    assert_int_equal(u.internal_frag, 0);              /* the policy guessed right ... */
    assert_int_equal(u.external_frag, 16);             /* ... the buddy rounded 24 up to 32 twice */
    assert_int_equal(u.blocks_used, 16);
    kv_release(kv, &p); kv_release(kv, &c);
    seq_free(&p); seq_free(&c); seq_free(&d);
    kv_destroy(kv);
}

static void test_check_catches_overlap(void **st) {
    (void)st;
    kv_cache *kv = mk(KV_CONTIGUOUS, 25, 20, 2048);
    seq a, b; mkseq(&a, 0, 5, 5); mkseq(&b, 1, 5, 5);
    kv_admit(kv, &a); kv_admit(kv, &b);
    seq *live[] = { &a, &b };
    check(kv, live, 2);
    b.resv_start = 10;                                 /* corrupt: overlaps a */
    char err[256] = "";
    assert_int_equal(kv_check(kv, live, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "overlap"));
    b.resv_start = 20;
    assert_int_equal(kv_check(kv, live, 1, err, sizeof err), -1);  /* b missing */
    kv_release(kv, &a); kv_release(kv, &b);
    seq_free(&a); seq_free(&b);
    kv_destroy(kv);
}

/* The buddy allocator alone: splits, alignment, merging back, a pool that is
 * not a power of two, and its invariant check. */
static void test_buddy_split_merge(void **st) {
    (void)st;
    char err[256] = "";
    assert_int_equal(buddy_block_for(1), 1);
    assert_int_equal(buddy_block_for(25), 32);
    assert_int_equal(buddy_block_for(1024), 1024);
    assert_int_equal(buddy_block_for(1025), 2048);
    buddy *b = buddy_create(64, err, sizeof err);
    assert_non_null(b);
    long h1, h2, h3, h4;
    assert_int_equal(buddy_alloc(b, 10, &h1), 0);       /* 64 -> [16] + 16 + 32 */
    assert_int_equal(h1, 16);
    assert_int_equal(buddy_alloc(b, 5, &h2), 16);       /* the free 16 -> [8] + 8 */
    assert_int_equal(h2, 8);
    assert_int_equal(buddy_alloc(b, 16, &h3), 32);      /* the 32 -> [16] + 16 */
    assert_int_equal(buddy_alloc(b, 8, &h4), 24);       /* the smallest block that fits, not the 16 */
    assert_int_equal(buddy_free_total(b), 16);
    assert_int_equal(buddy_largest_free(b), 16);
    assert_false(buddy_can_alloc(b, 17));
    assert_int_equal(buddy_alloc(b, 17, &h1), -1);
    assert_int_equal(h1, 0);
    assert_int_equal(buddy_check(b, err, sizeof err), 0);
    buddy_free(b, 16, 8);                               /* 16..24 and 24..32 free again: merge to 16..32 */
    buddy_free(b, 24, 8);
    assert_int_equal(buddy_num_free(b), 2);
    long s, l;
    buddy_free_block(b, 0, &s, &l);
    assert_int_equal(s, 16); assert_int_equal(l, 16);
    buddy_free(b, 0, 16);                               /* 0..32 */
    buddy_free(b, 32, 16);                              /* 32..64, then the whole pool */
    assert_int_equal(buddy_num_free(b), 1);
    assert_int_equal(buddy_largest_free(b), 64);
    assert_int_equal(buddy_check(b, err, sizeof err), 0);
    buddy_destroy(b);
    /* 100 slots: 64 + 32 + 4, and no merge across the cuts */
    b = buddy_create(100, err, sizeof err);
    assert_int_equal(buddy_num_free(b), 3);
    long want[3][2] = { { 0, 64 }, { 64, 32 }, { 96, 4 } };
    for (int i = 0; i < 3; i++) {
        buddy_free_block(b, i, &s, &l);
        assert_int_equal(s, want[i][0]); assert_int_equal(l, want[i][1]);
    }
    assert_int_equal(buddy_alloc(b, 33, &h1), 0);        /* only the 64 holds 33 */
    assert_false(buddy_can_alloc(b, 33));                /* 36 free, none of 64 */
    assert_int_equal(buddy_alloc(b, 3, &h2), 96);        /* the 4 at the end fits best */
    buddy_free(b, 0, 64);
    buddy_free(b, 96, 4);
    assert_int_equal(buddy_num_free(b), 3);
    assert_int_equal(buddy_check(b, err, sizeof err), 0);
    buddy_destroy(b);
    assert_null(buddy_create(0, err, sizeof err));
}

/* Under the policies: every reservation is a power of two (section 6.5 of the
 * vLLM paper: a 1,024-token prompt holds 2,048 slots whatever the policy
 * guesses), and the rounding counts as "external fragmentation & others". */
static void test_buddy_policies(void **st) {
    (void)st;
    seq s; mkseq(&s, 0, 20, 5);                        /* 25 tokens over its life */
    long want[KV_NUM_POLICIES] = { 0, 256, 64, 32, 32 };
    for (int p = KV_CONTIGUOUS; p < KV_NUM_POLICIES; p++) {
        kv_cache *kv = mk_with((kv_policy)p, 100, 200, 64, KV_ALLOC_BUDDY);   /* 400 = 256 + 128 + 16 */
        kv_admit(kv, &s);
        assert_int_equal(s.resv_len, want[p]);
        seq *live[] = { &s };
        check(kv, live, 1);
        kv_usage u;
        kv_usage_get(kv, live, 1, NULL, &u);
        long asked[KV_NUM_POLICIES] = { 0, 200, 64, 28, 25 };
        assert_int_equal(u.token_slots, 20);
        assert_int_equal(u.reserved_slots, 5);
        assert_int_equal(u.internal_frag, asked[p] - 25);
        assert_int_equal(u.external_frag, want[p] - asked[p]);
        kv_release(kv, &s);
        check(kv, live, 0);
        kv_destroy(kv);
    }
    seq_free(&s);
    for (int p = KV_ORCA_MAX; p < KV_NUM_POLICIES; p++) {
        kv_cache *kv = mk_with((kv_policy)p, 1024, 2048, 2048, KV_ALLOC_BUDDY);  /* 4096 slots */
        seq a; mkseq(&a, 0, 1024, 25);
        kv_admit(kv, &a);
        assert_int_equal(a.resv_len, 2048);
        kv_release(kv, &a);
        seq_free(&a);
        kv_destroy(kv);
    }
    /* external fragmentation: 48 free slots, no block of 32 */
    kv_cache *kv = mk_with(KV_ORCA_ORACLE, 16, 200, 2048, KV_ALLOC_BUDDY);  /* 64 slots */
    seq a, b, c, d;
    mkseq(&a, 0, 10, 6); mkseq(&b, 1, 10, 6); mkseq(&c, 2, 10, 6); mkseq(&d, 3, 20, 10);
    kv_admit(kv, &a); kv_admit(kv, &b); kv_admit(kv, &c);   /* 16 each at 0, 16, 32 */
    assert_int_equal(c.resv_start, 32);
    kv_release(kv, &b);
    seq *live[] = { &a, &c };
    check(kv, live, 2);
    assert_false(kv_can_admit(kv, &d, 0));
    kv_usage u;
    kv_usage_get(kv, live, 2, &d, &u);
    assert_int_equal(u.external_frag, 32);
    assert_int_equal(u.free_slots, 0);
    kv_release(kv, &a); kv_release(kv, &c);
    assert_true(kv_can_admit(kv, &d, 0));              /* merged back into 64 */
    seq_free(&a); seq_free(&b); seq_free(&c); seq_free(&d);
    kv_destroy(kv);
    assert_int_equal(ra_allocator_parse("buddy"), KV_ALLOC_BUDDY);
    assert_int_equal(ra_allocator_parse("first-fit"), KV_ALLOC_FIRST_FIT);
    assert_int_equal(ra_allocator_parse("best-fit"), -1);
    assert_string_equal(ra_allocator_name(KV_ALLOC_BUDDY), "buddy");
}

static void test_bad_config(void **st) {
    (void)st;
    char err[256] = "";
    kv_config c = { .policy = KV_CONTIGUOUS, .num_blocks = 4, .block_size = 4, .max_model_len = 0 };
    assert_null(kv_create(&c, err, sizeof err));
    assert_non_null(strstr(err, "max_model_len"));
    c.max_model_len = 8;
    c.allocator = (kv_allocator)7;
    assert_null(kv_create(&c, err, sizeof err));
    assert_non_null(strstr(err, "allocator"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reservation_sizes),
        cmocka_unit_test(test_first_fit_and_external_frag),
        cmocka_unit_test(test_append_stops_at_reservation),
        cmocka_unit_test(test_fork_gets_own_reservation),
        cmocka_unit_test(test_check_catches_overlap),
        cmocka_unit_test(test_buddy_split_merge),
        cmocka_unit_test(test_buddy_policies),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
