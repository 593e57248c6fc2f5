/* test_sched_oom: out of memory inside the step loop is reported, never
 * silent, and loses nothing (issue 12, part 5).  This binary replaces
 * malloc/calloc/realloc with glibc's own behind a switch that fails the k-th
 * allocation made inside loop_step; for every k the run must then report -1
 * with "out of memory", and when carried on it must still finish every
 * request, pass kv_check after every step, deliver every copy-on-write copy
 * the block manager made (none dropped), and end with an empty pool (no
 * sequence lost while holding blocks).  Skipped under ASan, whose allocator
 * cannot be replaced this way. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "sim/scheduler.h"
#include "sim/step_loop.h"
#include "sim/block_manager.h"

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

static int  armed;          /* count (and maybe fail) allocations */
static long n_allocs;       /* allocations made while armed */
static long fail_at = -1;   /* the one allocation (index while armed) that fails */

#if OOM_INJECTION
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void  __libc_free(void *);
static int fails_now(void) { return armed && n_allocs++ == fail_at; }
void *malloc(size_t n) { return fails_now() ? NULL : __libc_malloc(n); }
void *calloc(size_t n, size_t k) { return fails_now() ? NULL : __libc_calloc(n, k); }
void *realloc(void *p, size_t n) { return fails_now() ? NULL : __libc_realloc(p, n); }
void  free(void *p) { __libc_free(p); }
#endif

typedef struct counter { long gpu_copies; } counter;
static int count_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds,
                         char *err, size_t errlen) {
    (void)err; (void)errlen;
    counter *c = ctx;
    for (int i = 0; i < b->num_copies; i++) c->gpu_copies += b->copies[i].kind == KV_COPY_GPU;
    for (int i = 0; i < b->num_items; i++) tokens[i] = 11 + i;
    *seconds = 0.01;
    return 0;
}

typedef struct trial { int done, failures; long allocs; bool oom_msg; } trial;

/* One run of a small, hard workload (groups, beams, prefixes, swap under
 * pressure); the fail_at-th allocation inside loop_step fails. */
static trial run_trial(sched_preempt_mode pm) {
    kv_config kc = { .policy = KV_PAGED, .num_blocks = 24, .block_size = 8, .max_model_len = 512,
                     .orca_max_len = 512, .prefix_caching = true, .num_cpu_blocks = 40 };
    char err[256];
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    assert_non_null(kv);
    sched_config c = sched_config_default();
    c.preempt = pm;
    c.max_num_seqs = 6;
    c.max_num_batched_tokens = 48;
    sched *sc = sched_create(&c, kv, err, sizeof err);
    assert_non_null(sc);
    int ids[64];
    const int nreq = 9;
    for (int i = 0; i < nreq; i++) {
        for (int t = 0; t < 64; t++) ids[t] = t < 16 ? 5 + t : 100 * i + t;   /* a shared prefix */
        assert_non_null(sched_add(sc, i, ids, 20 + 4 * i, 6 + 3 * (i % 4), i % 3 == 1 ? 3 : 1,
                                  i % 4 == 2 ? 2 : 0, 0, NULL));
    }
    counter cnt = { 0 };
    loop l;
    assert_int_equal(loop_init(&l, sc, (loop_executor){ &cnt, count_execute }, 0, -1), 0);
    trial t = { 0 };
    n_allocs = 0;
    for (long guard = 0; sched_has_work(sc); guard++) {
        if (guard > 5000) fail_msg("fail_at %ld: still running after 5000 steps", fail_at);
        loop_step_info info;
        armed = 1;
        int rc = loop_step(&l, &info, err, sizeof err);
        armed = 0;
        if (rc < 0) {
            t.failures++;
            if (strstr(err, "out of memory")) t.oom_msg = true;
            else fail_msg("fail_at %ld: %s", fail_at, err);
        }
        t.done += info.n_done;               /* what finished is reported even then */
        seq *const *live; const seq *next;
        int nl = sched_live(sc, &live, &next);
        assert_true(nl >= 0);
        if (kv_check(kv, live, nl, err, sizeof err)) fail_msg("fail_at %ld: kv_check: %s", fail_at, err);
    }
    t.allocs = n_allocs;
    bm_stats bs;
    bm_get_stats(kv_block_manager(kv), &bs);
    /* every copy the block manager made reached an executed batch */
    if (bs.cow_copies != cnt.gpu_copies)
        fail_msg("fail_at %ld: %ld copies on write made, %ld executed", fail_at, bs.cow_copies, cnt.gpu_copies);
    if (bs.free_blocks != kc.num_blocks)
        fail_msg("fail_at %ld: %d of %d blocks still held after the run", fail_at,
                 kc.num_blocks - bs.free_blocks, kc.num_blocks);
    if (t.done != nreq) fail_msg("fail_at %ld: %d of %d requests finished", fail_at, t.done, nreq);
    loop_free(&l);
    sched_destroy(sc);
    kv_destroy(kv);
    return t;
}

static void sweep(sched_preempt_mode pm) {
    if (!OOM_INJECTION) { skip(); return; }
    fail_at = -1;
    trial clean = run_trial(pm);
    assert_int_equal(clean.failures, 0);
    assert_true(clean.allocs > 10);          /* the loop does allocate: sites to test */
    for (fail_at = 0; fail_at < clean.allocs; fail_at++) {
        trial t = run_trial(pm);
        assert_int_equal(t.failures, 1);     /* reported, once */
        assert_true(t.oom_msg);
    }
    fail_at = -1;
}

static void test_oom_recompute(void **st) { (void)st; sweep(SCHED_PREEMPT_RECOMPUTE); }
static void test_oom_swap(void **st) { (void)st; sweep(SCHED_PREEMPT_SWAP); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_recompute),
        cmocka_unit_test(test_oom_swap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
