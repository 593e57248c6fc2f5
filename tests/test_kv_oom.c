/* test_kv_oom: out of memory inside the KV cache's acts is an error return,
 * never a print and abort() (issue 12, part 5).  This binary replaces
 * malloc/calloc/realloc with glibc's own behind a switch that fails every
 * allocation while armed; each act must then return -1, change nothing
 * (kv_check passes, the pool's free blocks / slots and the sequence are as
 * before), and succeed once memory is back:
 *   - paged admission, whose one allocation is the block table sized for the
 *     request's whole life;
 *   - a paged append past that life (the only append that allocates);
 *   - a reservation admission that must grow the free-range list.
 * Skipped under ASan, whose allocator cannot be replaced this way. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "sim/kv_cache.h"

#if defined(__SANITIZE_ADDRESS__)
#define OOM_INJECTION 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OOM_INJECTION 0
#endif
#endif
#ifndef OOM_INJECTION
#define OOM_INJECTION 1
#endif

static int  armed;          /* while set, every allocation fails */
static long refused;        /* allocations refused while armed */

#if OOM_INJECTION
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void  __libc_free(void *);
void *malloc(size_t n) { if (armed) { refused++; return NULL; } return __libc_malloc(n); }
void *calloc(size_t n, size_t k) { if (armed) { refused++; return NULL; } return __libc_calloc(n, k); }
void *realloc(void *p, size_t n) { if (armed) { refused++; return NULL; } return __libc_realloc(p, n); }
void  free(void *p) { __libc_free(p); }
#endif

#define BS 4

static kv_cache *mk(kv_policy p, int blocks) {
    kv_config c = { .policy = p, .num_blocks = blocks, .block_size = BS, .max_model_len = 4096,
                    .orca_max_len = 2048, .prefix_caching = p == KV_PAGED };
    char err[256];
    kv_cache *kv = kv_create(&c, err, sizeof err);
    assert_non_null(kv);
    return kv;
}

static void mkseq(seq *s, int id, int n, int max_out) {
    int p[64];
    for (int i = 0; i < n; i++) p[i] = 100 * id + i;
    assert_int_equal(seq_init(s, id, id, p, n, max_out, 0), 0);
}

static void check(const kv_cache *kv, seq **live, int n) {
    char err[256] = "";
    if (kv_check(kv, live, n, err, sizeof err)) fail_msg("kv_check: %s", err);
}

static void usage(const kv_cache *kv, seq **live, int n, kv_usage *u) { kv_usage_get(kv, live, n, NULL, u); }

static void test_paged_admit(void **st) {
    (void)st;
    if (!OOM_INJECTION) { skip(); return; }
    kv_cache *kv = mk(KV_PAGED, 16);
    seq a; mkseq(&a, 1, 6, 10);                  /* a fresh sequence: no block table yet */
    seq *live[] = { &a };
    kv_usage before, after;
    usage(kv, live, 1, &before);
    assert_true(kv_can_admit(kv, &a, 0));
    armed = 1; refused = 0;
    int rc = kv_admit(kv, &a);
    armed = 0;
    assert_int_equal(rc, -1);
    assert_true(refused > 0);
    assert_int_equal(a.num_blocks, 0);
    assert_int_equal(a.table_cap, 0);
    usage(kv, live, 1, &after);
    assert_int_equal(after.blocks_used, before.blocks_used);
    check(kv, live, 1);
    assert_int_equal(kv_admit(kv, &a), 0);       /* memory back: admitted */
    assert_int_equal(a.num_blocks, 2);
    check(kv, live, 1);
    kv_release(kv, &a);
    seq_free(&a);
    kv_destroy(kv);
}

/* append one token the way the scheduler does, the KV act under no memory
 * when starve; returns kv_append_slot's value */
static int append(kv_cache *kv, seq *s, int starve) {
    kv_copy cp;
    assert_true(kv_can_append(kv, s));
    armed = starve;
    int r = kv_append_slot(kv, s, &cp);
    armed = 0;
    if (r >= 0) {
        assert_int_equal(seq_append_token(s, 7), 0);
        s->num_computed = s->num_tokens;
    }
    return r;
}

static void test_paged_append_past_life(void **st) {
    (void)st;
    if (!OOM_INJECTION) { skip(); return; }
    kv_cache *kv = mk(KV_PAGED, 16);
    seq a; mkseq(&a, 2, 3, 1);                   /* life 4 tokens: a table of 4 entries (the minimum) */
    seq *live[] = { &a };
    assert_int_equal(kv_admit(kv, &a), 0);
    int cap = a.table_cap;
    assert_true(cap >= 2);
    /* within the table: no allocation, even while armed */
    refused = 0;
    while (a.num_tokens < cap * BS) assert_int_equal(append(kv, &a, 1), 0);
    assert_int_equal(refused, 0);
    assert_int_equal(a.num_blocks, cap);
    /* the next token needs block cap + 1: the table must grow, and cannot */
    kv_usage before, after;
    usage(kv, live, 1, &before);
    int tokens = a.num_tokens;
    int rc = append(kv, &a, 1);
    assert_int_equal(rc, -1);
    assert_int_equal(a.num_blocks, cap);
    assert_int_equal(a.num_tokens, tokens);
    usage(kv, live, 1, &after);
    assert_int_equal(after.blocks_used, before.blocks_used);
    check(kv, live, 1);
    assert_int_equal(append(kv, &a, 0), 0);      /* memory back */
    assert_int_equal(a.num_blocks, cap + 1);
    check(kv, live, 1);
    kv_release(kv, &a);
    seq_free(&a);
    kv_destroy(kv);
}

static void test_reservation_admit(void **st) {
    (void)st;
    if (!OOM_INJECTION) { skip(); return; }
    enum { N = 200 };                            /* more reservations than the free list's first 64 places */
    kv_cache *kv = mk(KV_ORCA_ORACLE, 1024);
    static seq s[N];
    seq *live[N];
    int admitted = 0, failed_at = -1;
    for (int i = 0; i < N; i++) {
        mkseq(&s[i], i, 2, 2);
        live[i] = &s[i];
        assert_true(kv_can_admit(kv, &s[i], 0));
        kv_usage before, after;
        usage(kv, live, i, &before);
        armed = 1; refused = 0;
        int rc = kv_admit(kv, &s[i]);
        armed = 0;
        if (rc == 0) { assert_int_equal(refused, 0); admitted++; continue; }
        /* the list had to grow: nothing changed */
        failed_at = i;
        assert_true(refused > 0);
        assert_int_equal(s[i].resv_len, 0);
        usage(kv, live, i, &after);
        assert_int_equal(after.free_slots, before.free_slots);
        check(kv, live, i);
        assert_int_equal(kv_admit(kv, &s[i]), 0);    /* memory back */
        admitted++;
    }
    assert_true(failed_at > 0);                  /* the growth was reached and refused */
    assert_int_equal(admitted, N);
    check(kv, live, N);
    for (int i = 0; i < N; i++) { kv_release(kv, &s[i]); seq_free(&s[i]); }
    kv_destroy(kv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paged_admit),
        cmocka_unit_test(test_paged_append_past_life),
        cmocka_unit_test(test_reservation_admit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
