/* Tests of what the core does for LoRA adapters (seq.lora): the scheduler
 * keeps at most max_loras different adapters among the running sequences
 * (vLLM's --max-loras), a request of another adapter waits for a slot while
 * the requests behind it that fit pass it (vLLM's V1 scheduler skips it), and
 * it keeps its place at the head of the queue;
 * every request still finishes; the prefix cache never serves a block
 * computed under one adapter to another (nor to the base model), and still
 * serves it to the same adapter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "sim/scheduler.h"
#include "sim/kv_cache.h"

/* Runs requests whose adapters are lora[i] (0 none) under max_loras; checks
 * every batch and returns the step at which each request first ran. */
static void run_mixed(int max_loras, const int *lora, int n, int *first_step, int *max_distinct) {
    kv_config kc = { .policy = KV_PAGED, .num_blocks = 512, .block_size = 16, .max_model_len = 4096,
                     .orca_max_len = 2048 };
    char err[256];
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    assert_non_null(kv);
    sched_config sc = sched_config_default();
    sc.max_loras = max_loras;
    sched *s = sched_create(&sc, kv, err, sizeof err);
    assert_non_null(s);
    seq *req[16];                                   /* (n,) each request's one sequence */
    for (int i = 0; i < n; i++) {
        int ids[40];
        for (int k = 0; k < 40; k++) ids[k] = 1 + (i * 131 + k) % 1000;
        req[i] = sched_add(s, i, ids, 40, 8 + 4 * i, 1, 0, 0.0, NULL);
        assert_non_null(req[i]);
        req[i]->lora = lora[i];
        first_step[i] = -1;
    }
    int done = 0, steps = 0, toks[256];
    *max_distinct = 0;
    while (done < n) {
        const sched_batch *b;
        int ni = sched_schedule(s, steps * 0.01, &b, err, sizeof err);
        assert_true(ni > 0);
        int seen[16], ns = 0;
        for (int i = 0; i < ni; i++) {
            const seq *q = b->items[i].s;
            for (int r = 0; r < n; r++) if (q == req[r] && first_step[r] < 0) first_step[r] = steps;
            int a = q->lora, dup = 0;
            for (int k = 0; k < ns; k++) dup |= seen[k] == a;
            if (a > 0 && !dup) seen[ns++] = a;
            toks[i] = 7;
        }
        if (ns > *max_distinct) *max_distinct = ns;
        if (max_loras > 0) assert_true(ns <= max_loras);
        seq *const *live;
        int nl = sched_live(s, &live, NULL);
        assert_true(nl >= 0);
        assert_int_equal(kv_check(kv, live, nl, err, sizeof err), 0);
        const sched_done *d; int nd; seq *const *fin; int nf;
        assert_int_equal(sched_postprocess(s, toks, steps * 0.01 + 0.005, -1, &d, &nd, &fin, &nf, err, sizeof err), 0);
        for (int i = 0; i < nd; i++) {
            assert_false(d[i].aborted);
            req[d[i].id] = NULL;                    /* freed at the next step */
        }
        done += nd;
        steps++;
        assert_true(steps < 10000);
    }
    sched_destroy(s);
    kv_destroy(kv);
}

static void test_max_loras(void **st) {
    (void)st;
    const int lora[] = {1, 2, 3, 1, 0, 2, 4, 0};
    int first[8], maxd;
    run_mixed(2, lora, 8, first, &maxd);
    assert_int_equal(maxd, 2);
    assert_int_equal(first[0], 0);                 /* adapters 1 and 2 start at once ... */
    assert_int_equal(first[1], 0);
    assert_true(first[2] > 0);                     /* ... 3 waits for a slot; the requests behind it */
    for (int r = 3; r < 6; r++) assert_int_equal(first[r], 0);       /* that fit (1, none, 2) pass it, */
    assert_int_equal(first[7], 0);                 /* as vLLM's scheduler skips a request over max_loras */
    assert_true(first[6] > 0);                     /* 4 waits too, and keeps its place behind 3 */
    assert_true(first[6] >= first[2]);
    /* no limit: everything runs in the first step */
    run_mixed(0, lora, 8, first, &maxd);
    assert_int_equal(maxd, 4);
    for (int r = 0; r < 8; r++) assert_int_equal(first[r], 0);
    /* the base model and one adapter never wait under max_loras 1 */
    const int one[] = {5, 0, 5, 0, 5};
    run_mixed(1, one, 5, first, &maxd);
    assert_int_equal(maxd, 1);
    for (int r = 0; r < 5; r++) assert_int_equal(first[r], 0);
}

static void test_max_loras_rejects_negative(void **st) {
    (void)st;
    kv_config kc = { .policy = KV_PAGED, .num_blocks = 64, .block_size = 16, .max_model_len = 1024,
                     .orca_max_len = 1024 };
    char err[256];
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    sched_config sc = sched_config_default();
    sc.max_loras = -1;
    assert_null(sched_create(&sc, kv, err, sizeof err));
    assert_non_null(strstr(err, "max_loras"));
    kv_destroy(kv);
}

/* A sequence of 64 tokens under adapter lora, admitted to kv; its prompt hits in *hit. */
static void admit(kv_cache *kv, seq *s, int id, int lora, int *hit) {
    int ids[64];
    for (int k = 0; k < 64; k++) ids[k] = 100 + k;
    assert_int_equal(seq_init(s, id, id, ids, 64, 16, 0.0), 0);
    s->lora = lora;
    s->block_table = malloc(8 * sizeof *s->block_table);
    s->table_cap = 8;
    assert_true(kv_can_admit(kv, s, 0));
    assert_int_equal(kv_admit(kv, s), 0);
    *hit = s->num_computed;
    s->num_computed = s->num_tokens;                /* "computed": its full blocks go to the cache */
    kv_commit_computed(kv, s);
}

static void test_prefix_cache_per_adapter(void **st) {
    (void)st;
    kv_config kc = { .policy = KV_PAGED, .num_blocks = 64, .block_size = 16, .max_model_len = 1024,
                     .orca_max_len = 1024, .prefix_caching = true };
    char err[256];
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    assert_non_null(kv);
    seq s[5];
    int hit;
    admit(kv, &s[0], 0, 1, &hit);
    assert_int_equal(hit, 0);
    admit(kv, &s[1], 1, 2, &hit);                   /* same tokens, another adapter: no hit */
    assert_int_equal(hit, 0);
    admit(kv, &s[2], 2, 0, &hit);                   /* the base model: no hit */
    assert_int_equal(hit, 0);
    admit(kv, &s[3], 3, 1, &hit);                   /* adapter 1 again: 3 full blocks (the last token is computed) */
    assert_int_equal(hit, 48);
    admit(kv, &s[4], 4, 0, &hit);                   /* the base model again: its own blocks */
    assert_int_equal(hit, 48);
    seq *live[5] = {&s[0], &s[1], &s[2], &s[3], &s[4]};
    assert_int_equal(kv_check(kv, live, 5, err, sizeof err), 0);
    for (int i = 0; i < 5; i++) { kv_release(kv, &s[i]); seq_free(&s[i]); }
    kv_destroy(kv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_loras),
        cmocka_unit_test(test_max_loras_rejects_negative),
        cmocka_unit_test(test_prefix_cache_per_adapter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
