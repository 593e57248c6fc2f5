/* Tests (CPU) of the engine's batch builder (engine/engine.c eng_build_batch):
 * the flattened batch handed to the forward pass must say exactly what the
 * scheduler and the KV cache decided: every new token's id, position and
 * physical slot (kv_slot), each sequence's query range, context length and
 * block table, through chunked prefill, decode, prefix-cache hits and
 * preemption, and for the contiguous policy (a reservation's block table is
 * synthesised from its range).  Score mode's row (eng_score_row): once per
 * scoring request, at its last prompt position, through the same chunking,
 * prefix hits and preemption; and the request checks (eng_check_request).
 * Driven by the real sim/ scheduler with fake sampled tokens. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <math.h>
#include "engine/engine.h"
#include "tests/engine_score_case.h"

/* checks the batch built for b against the scheduler's own view of it */
static void check_batch(const sched_batch *b, const kv_cache *kv, const model_batch *mb) {
    int bs = kv_get_config(kv)->block_size, t = 0;
    assert_int_equal(mb->B, b->num_items);
    for (int i = 0; i < b->num_items; i++) {
        const sched_item *it = &b->items[i];
        const seq *s = it->s;
        assert_int_equal(mb->query_start[i], t);
        assert_int_equal(mb->query_start[i + 1] - mb->query_start[i], it->num_new);
        assert_int_equal(mb->context_lens[i], it->start + it->num_new);
        for (int j = 0; j < it->num_new; j++, t++) {
            int p = it->start + j;
            assert_int_equal(mb->input_ids[t], s->tokens[p]);
            assert_int_equal(mb->positions[t], p);
            assert_int_equal(mb->slot_mapping[t], kv_slot(kv, s, p));
            /* the slot is where the block table says the attention will look */
            const int32_t *row = mb->block_tables + (size_t)i * mb->max_blocks_per_seq;
            assert_int_equal(mb->slot_mapping[t], row[p / bs] * bs + p % bs);
        }
        bool paged = kv_get_config(kv)->policy == KV_PAGED;
        if (!paged) assert_int_equal(s->resv_start % bs, 0);   /* reservations are whole blocks */
        for (int k = 0; k < (it->start + it->num_new + bs - 1) / bs; k++)
            assert_int_equal(mb->block_tables[(size_t)i * mb->max_blocks_per_seq + k],
                             paged ? s->block_table[k] : (int)(s->resv_start / bs) + k);
    }
    assert_int_equal(mb->T, t);
}

/* runs the scheduler to completion, checking every batch; returns steps and
 * counts prefix-hit items (start > 0 on a first prefill chunk) */
static int drive(sched *sc, kv_cache *kv, int max_blocks, int *prefix_items, int *steps_with_decode) {
    eng_batch_buf buf = {0};
    int steps = 0, tokens[512];
    char err[256];
    double now = 0;
    while (sched_has_work(sc) && steps < 1000) {
        const sched_batch *b;
        int n = sched_schedule(sc, now, &b, NULL, 0);
        if (n > 0) {
            model_batch mb;
            assert_int_equal(eng_build_batch(b, kv, &buf, max_blocks, &mb, err, sizeof err), 0);
            check_batch(b, kv, &mb);
            int dec = 0;
            for (int i = 0; i < n; i++) {
                tokens[i] = 100 + (b->items[i].s->id * 7 + steps) % 50;
                if (b->items[i].kind == SCHED_DECODE) dec = 1;
                if (b->items[i].kind == SCHED_PREFILL && b->items[i].start > 0 &&
                    b->items[i].s->num_computed == b->items[i].start && b->items[i].start % 16 == 0 &&
                    b->items[i].s->first_scheduled == now && prefix_items)
                    (*prefix_items)++;
            }
            if (steps_with_decode) *steps_with_decode += dec;
        }
        now += 0.01;
        sched_postprocess(sc, n > 0 ? tokens : NULL, now, -1, NULL, NULL, NULL, NULL, NULL, 0);
        steps++;
    }
    eng_batch_buf_free(&buf);
    return steps;
}

static void test_batches_match_scheduler(void **st) {
    (void)st;
    char err[256];
    kv_config kc = {KV_PAGED, 64, 16, 256, 2048, true, 0, KV_ALLOC_FIRST_FIT};
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    assert_non_null(kv);
    sched_config scfg = sched_config_default();
    scfg.max_num_batched_tokens = 40;             /* forces chunked prefill */
    scfg.max_num_seqs = 8;
    scfg.max_model_len = 256;
    sched *sc = sched_create(&scfg, kv, err, sizeof err);
    assert_non_null(sc);
    int prompt[200];
    for (int r = 0; r < 5; r++) {
        int len = 20 + 37 * r;
        for (int i = 0; i < len; i++) prompt[i] = (r * 31 + i * 17) % 1000;
        assert_non_null(sched_add(sc, r, prompt, len, 12 + r, 1, 0, 0.0, NULL));
    }
    int dec = 0;
    int steps = drive(sc, kv, 16, NULL, &dec);
    assert_true(steps > 5 && dec > 0);
    sched_destroy(sc);
    kv_destroy(kv);
}

static void test_prefix_hits_and_preemption(void **st) {
    (void)st;
    char err[256];
    /* a small pool (12 blocks of 16) so that sequences get preempted */
    kv_config kc = {KV_PAGED, 12, 16, 160, 2048, true, 0, KV_ALLOC_FIRST_FIT};
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    sched_config scfg = sched_config_default();
    scfg.max_num_batched_tokens = 64;
    scfg.max_num_seqs = 4;
    scfg.max_model_len = 160;
    sched *sc = sched_create(&scfg, kv, err, sizeof err);
    int prompt[80];
    for (int i = 0; i < 80; i++) prompt[i] = i + 1;        /* a shared 64-token prefix */
    assert_non_null(sched_add(sc, 0, prompt, 70, 40, 1, 0, 0.0, NULL));
    int steps = drive(sc, kv, 10, NULL, NULL);              /* first request alone: fills the cache */
    assert_true(steps > 0);
    for (int r = 1; r <= 3; r++) {
        prompt[75] = r;                                     /* same prefix, different tail */
        assert_non_null(sched_add(sc, r, prompt, 76, 60, 1, 0, 1.0, NULL));
    }
    drive(sc, kv, 10, NULL, NULL);
    kv_usage u;
    kv_usage_get(kv, NULL, 0, NULL, &u);
    assert_true(u.prefix_hit_tokens >= 48);                 /* later requests reused the prefix */
    assert_true(sched_get_stats(sc)->preemptions > 0);      /* and the pool forced preemption */
    sched_destroy(sc);
    kv_destroy(kv);
}

static void test_too_long_for_table(void **st) {
    (void)st;
    char err[256] = "";
    kv_config kc = {KV_PAGED, 64, 16, 256, 2048, false, 0, KV_ALLOC_FIRST_FIT};
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    sched_config scfg = sched_config_default();
    sched *sc = sched_create(&scfg, kv, err, sizeof err);
    int prompt[100] = {0};
    assert_non_null(sched_add(sc, 0, prompt, 100, 4, 1, 0, 0.0, NULL));
    const sched_batch *b;
    assert_true(sched_schedule(sc, 0, &b, NULL, 0) > 0);
    eng_batch_buf buf = {0};
    model_batch mb;
    /* a table of 4 blocks cannot hold 100 tokens: an error, not an overflow */
    assert_int_equal(eng_build_batch(b, kv, &buf, 4, &mb, err, sizeof err), -1);
    assert_non_null(strstr(err, "blocks"));
    eng_batch_buf_free(&buf);
    sched_destroy(sc);
    kv_destroy(kv);
}

/* KV_CONTIGUOUS: max_model_len 100 is not a multiple of the block size; the
 * engine rounds reservations up to whole blocks, so every reservation starts
 * on a block boundary and the same kernels read it through a block table. */
static void test_contiguous_reservations(void **st) {
    (void)st;
    char err[256];
    model_opts o = {0};
    o.max_model_len = 100;
    o.block_size = 16;
    kv_config kc = eng_kv_config(&o, 40, KV_CONTIGUOUS, true);
    assert_int_equal(kc.max_model_len, 112);
    assert_false(kc.prefix_caching);                 /* paged only */
    assert_int_equal(eng_kv_config(&o, 40, KV_PAGED, true).max_model_len, 100);
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    assert_non_null(kv);
    sched_config scfg = sched_config_default();
    scfg.max_num_batched_tokens = 48;
    scfg.max_num_seqs = 8;
    scfg.max_model_len = 100;
    sched *sc = sched_create(&scfg, kv, err, sizeof err);
    assert_non_null(sc);
    int prompt[90];
    for (int r = 0; r < 9; r++) {                    /* 40 blocks hold 5 reservations of 7 */
        int len = 10 + 9 * r;
        for (int i = 0; i < len; i++) prompt[i] = (r * 13 + i * 7) % 500;
        assert_non_null(sched_add(sc, r, prompt, len, 100 - len, 1, 0, 0.0, NULL));
    }
    int dec = 0;
    int steps = drive(sc, kv, 7, NULL, &dec);
    assert_true(steps > 20 && dec > 0);
    assert_false(sched_has_work(sc));
    sched_destroy(sc);
    kv_destroy(kv);
}

/* Score mode's row, on the workload of tests/engine_score_case.h (the GPU
 * test's): each scoring request scores exactly once, at the row of its last
 * prompt position, although generations preempt some mid-prefill and most
 * hit the prefix cache. */
static void test_score_rows(void **st) {
    (void)st;
    char err[256];
    model_opts o = { .max_model_len = SCASE_MAX_LEN, .block_size = SCASE_BLOCK_SIZE };
    kv_config kc = eng_kv_config(&o, SCASE_BLOCKS, KV_PAGED, true);
    kv_cache *kv = kv_create(&kc, err, sizeof err);
    assert_non_null(kv);
    sched_config scfg = sched_config_default();            /* as eng_create configures it */
    scfg.max_num_batched_tokens = SCASE_BUDGET;
    scfg.max_num_seqs = SCASE_SEQS;
    scfg.max_model_len = SCASE_MAX_LEN;
    scfg.preempt = SCHED_PREEMPT_RECOMPUTE;
    sched *sc = sched_create(&scfg, kv, err, sizeof err);
    assert_non_null(sc);
    int prompt[SCASE_LEN], rows[SCASE_N] = {0}, out[SCASE_N] = {0}, scored_after_preemption = 0;
    for (int r = 0; r < SCASE_N; r++) {
        for (int i = 0; i < scase_len(r); i++) prompt[i] = scase_token(r, i);
        assert_non_null(sched_add(sc, r, prompt, scase_len(r), scase_max_tokens(r), 1, 0, 0.0, &rows[r]));
    }
    int max_blocks = SCASE_MAX_LEN / SCASE_BLOCK_SIZE;
    eng_batch_buf buf = {0};
    int tokens[SCASE_SEQS], steps = 0;
    double now = 0;
    while (sched_has_work(sc) && steps++ < 2000) {
        const sched_batch *b;
        int n = sched_schedule(sc, now, &b, err, sizeof err);
        assert_true(n >= 0);
        model_batch mb;
        if (n > 0) assert_int_equal(eng_build_batch(b, kv, &buf, max_blocks, &mb, err, sizeof err), 0);
        for (int i = 0; i < n; i++) {
            const sched_item *it = &b->items[i];
            const seq *s = it->s;
            mb.all_logits = 0;
            int row = eng_score_row(b, &mb, i);
            mb.all_logits = 1;
            int row_all = eng_score_row(b, &mb, i);
            tokens[i] = 7;
            if (row < 0) { assert_int_equal(row_all, -1); continue; }
            (*(int *)s->user)++;
            assert_int_equal(row, i);                               /* one row per item */
            assert_int_equal(row_all, mb.query_start[i + 1] - 1);   /* its last token's row */
            assert_int_equal(mb.positions[row_all], s->prompt_len - 1);
            assert_int_equal(mb.input_ids[row_all], s->tokens[s->prompt_len - 1]);
            assert_true(it->samples && s->num_tokens == s->prompt_len);
            assert_true(it->start + it->num_new == s->prompt_len);
            if (scase_is_score((int)((int *)s->user - rows)) && s->num_preemptions > 0) scored_after_preemption++;
        }
        now += 0.01;
        const sched_done *done;
        int nd;
        assert_int_equal(sched_postprocess(sc, n > 0 ? tokens : NULL, now, -1, &done, &nd, NULL, NULL, err, sizeof err), 0);
        for (int k = 0; k < nd; k++) out[done[k].id] += done[k].output_len;
    }
    assert_false(sched_has_work(sc));
    for (int r = 0; r < SCASE_N; r++) {
        assert_int_equal(out[r], scase_max_tokens(r));
        if (scase_is_score(r)) assert_int_equal(rows[r], 1);      /* each scored once */
    }
    kv_usage u;
    kv_usage_get(kv, NULL, 0, NULL, &u);
    fprintf(stderr, "  score rows: %ld preemptions, %d scoring requests scored after a preemption, "
            "%ld prefix-hit tokens\n", sched_get_stats(sc)->preemptions, scored_after_preemption, u.prefix_hit_tokens);
    assert_true(scored_after_preemption > 0);
    assert_true(u.prefix_hit_tokens >= 8 * SCASE_PREFIX / 2);
    eng_batch_buf_free(&buf);
    sched_destroy(sc);
    kv_destroy(kv);
}

static void test_check_request(void **st) {
    (void)st;
    char err[256];
    int prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t cand[3] = {10, 20, 30};
    eng_params p = { .max_tokens = 4, .top_p = 1 };
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 100, err, sizeof err), 0);
    assert_int_equal(eng_check_request(1, prompt, 8, &p, 11, 100, err, sizeof err), -1);   /* 8 + 4 > 11 */
    assert_non_null(strstr(err, "request 1"));
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 8, err, sizeof err), -1);     /* token 8 >= vocab */
    assert_non_null(strstr(err, "vocabulary"));
    p.arrival = NAN;
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 100, err, sizeof err), -1);
    p.arrival = 5.0;
    p.score_ids = cand; p.num_score = 3;                      /* candidates without score mode */
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 100, err, sizeof err), -1);
    assert_non_null(strstr(err, "score mode is off"));
    p.score = true;                                           /* score mode: one token */
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 100, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_tokens 4"));
    p.max_tokens = 1;
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 100, err, sizeof err), 0);
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 25, err, sizeof err), -1);    /* 30 >= vocab */
    assert_non_null(strstr(err, "candidate 2"));
    p.num_score = 0;
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 100, err, sizeof err), -1);
    p.num_score = ENG_MAX_SCORE_IDS + 1;
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 100, err, sizeof err), -1);
    p.num_score = 2; p.score_ids = NULL;
    assert_int_equal(eng_check_request(0, prompt, 8, &p, 12, 100, err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_match_scheduler),
        cmocka_unit_test(test_prefix_hits_and_preemption),
        cmocka_unit_test(test_too_long_for_table),
        cmocka_unit_test(test_contiguous_reservations),
        cmocka_unit_test(test_score_rows),
        cmocka_unit_test(test_check_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
