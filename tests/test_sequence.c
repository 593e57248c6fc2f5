/* Tests of sim/sequence.c: init, append, fork, recompute reset, names. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "sim/sequence.h"

static void test_init_copies_prompt(void **st) {
    (void)st;
    int prompt[5] = { 9, 8, 7, 6, 5 };
    seq s;
    assert_int_equal(seq_init(&s, 3, -1, prompt, 5, 4, 1.5), 0);
    prompt[0] = 100;                       /* the sequence holds its own copy */
    assert_int_equal(s.tokens[0], 9);
    assert_int_equal(s.tokens[4], 5);
    assert_int_equal(s.num_tokens, 5);
    assert_int_equal(s.group, 3);
    assert_int_equal(s.status, SEQ_WAITING);
    assert_true(s.first_token < 0 && s.finish_time < 0);
    assert_int_equal(seq_num_generated(&s), 0);
    assert_false(seq_reached_length(&s));
    seq_free(&s);
}

static void test_init_rejects_bad_lengths(void **st) {
    (void)st;
    int p[1] = { 1 };
    seq s;
    assert_int_equal(seq_init(&s, 0, 0, p, 0, 4, 0), -1);
    assert_null(s.tokens);
    assert_int_equal(seq_init(&s, 0, 0, p, 1, 0, 0), -1);
    assert_int_equal(seq_init(&s, -1, 0, p, 1, 1, 0), -1);
}

static void test_append_until_length_and_beyond(void **st) {
    (void)st;
    int p[2] = { 1, 2 };
    seq s;
    assert_int_equal(seq_init(&s, 0, 0, p, 2, 3, 0), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(seq_append_token(&s, 10 + i), 0);
    assert_true(seq_reached_length(&s));
    assert_int_equal(seq_num_generated(&s), 3);
    /* the engine may append past the capacity sized at init: the array grows */
    for (int i = 0; i < 100; i++) assert_int_equal(seq_append_token(&s, i), 0);
    assert_int_equal(s.num_tokens, 105);
    assert_int_equal(s.tokens[4], 12);
    assert_int_equal(s.tokens[104], 99);
    seq_free(&s);
}

static void test_fork_is_deep(void **st) {
    (void)st;
    int p[3] = { 4, 5, 6 };
    seq a, b;
    assert_int_equal(seq_init(&a, 7, 7, p, 3, 5, 0), 0);
    seq_append_token(&a, 42);
    a.block_table = malloc(4 * sizeof(int));
    a.table_cap = 4; a.num_blocks = 1; a.block_table[0] = 11;
    a.resv_len = 99;
    assert_int_equal(seq_fork(&b, &a, 8), 0);
    assert_int_equal(b.id, 8);
    assert_int_equal(b.group, 7);
    assert_int_equal(b.num_tokens, 4);
    assert_int_equal(b.tokens[3], 42);
    assert_int_equal(b.block_table[0], 11);
    assert_int_equal(b.resv_len, 0);        /* reservations are never shared */
    assert_ptr_not_equal(b.tokens, a.tokens);
    seq_append_token(&b, 43);
    assert_int_equal(a.num_tokens, 4);
    seq_free(&a);
    seq_free(&b);
}

static void test_reset_for_recompute(void **st) {
    (void)st;
    int p[2] = { 1, 2 };
    seq s;
    seq_init(&s, 0, 0, p, 2, 5, 0);
    seq_append_token(&s, 3);
    s.num_computed = 3; s.num_blocks = 1; s.status = SEQ_RUNNING;
    seq_reset_for_recompute(&s);
    assert_int_equal(s.num_tokens, 3);      /* tokens kept, to be recomputed */
    assert_int_equal(s.num_computed, 0);
    assert_int_equal(s.num_blocks, 0);
    assert_int_equal(s.status, SEQ_WAITING);
    assert_int_equal(s.num_preemptions, 1);
    assert_string_equal(seq_status_name(s.status), "waiting");
    assert_string_equal(seq_status_name(SEQ_SWAPPED), "swapped");
    seq_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_copies_prompt),
        cmocka_unit_test(test_init_rejects_bad_lengths),
        cmocka_unit_test(test_append_until_length_and_beyond),
        cmocka_unit_test(test_fork_is_deep),
        cmocka_unit_test(test_reset_for_recompute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
