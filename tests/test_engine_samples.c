/* tests/test_engine_samples.c — engine/samples.c without a GPU: a request's
 * per-sample record (tokens, log-probabilities, top-k) grows, takes a
 * recomputed position again, refuses out-of-range writes; eng_top_logprobs
 * against a plain sort of log_softmax. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "tests/test_util.h"
#include "engine/samples.h"

static void test_record(void **state) {
    (void)state;
    eng_samples x;
    assert_int_equal(eng_samples_init(&x, 3, 1, 2), 0);
    int32_t ti[2] = {7, 8};
    float tl[2] = {-0.1f, -2.5f};
    for (int at = 0; at < 300; at++)                         /* past the first allocation */
        for (int k = 0; k < 3; k++)
            assert_int_equal(eng_samples_put(&x, k, at, 1000 * k + at, -0.5f * (float)k, ti, tl), 0);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(x.s[k].num_tokens, 300);
        for (int at = 0; at < 300; at += 37) {
            assert_int_equal(x.s[k].tokens[at], 1000 * k + at);
            assert_true(x.s[k].logprobs[at] == -0.5f * (float)k);
            assert_int_equal(x.s[k].top_ids[at * 2 + 1], 8);
            assert_true(x.s[k].top_lps[at * 2] == -0.1f);
        }
    }
    /* a recomputed step writes its place again; a gap or a bad sample is refused */
    assert_int_equal(eng_samples_put(&x, 1, 299, 5, -1, NULL, NULL), 0);
    assert_int_equal(x.s[1].num_tokens, 300);
    assert_int_equal(x.s[1].tokens[299], 5);
    assert_int_equal(x.s[1].top_ids[299 * 2], -1);           /* unknown alternatives */
    assert_int_equal(eng_samples_put(&x, 1, 302, 5, 0, NULL, NULL), -1);
    assert_int_equal(eng_samples_put(&x, 3, 0, 5, 0, NULL, NULL), -1);
    assert_int_equal(eng_samples_put(&x, -1, 0, 5, 0, NULL, NULL), -1);
    eng_samples_free(&x);
    /* without log-probabilities nothing but tokens is kept */
    assert_int_equal(eng_samples_init(&x, 1, 0, 5), 0);
    assert_int_equal(x.top_k, 0);
    assert_int_equal(eng_samples_put(&x, 0, 0, 9, -3, ti, tl), 0);
    assert_null(x.s[0].logprobs);
    assert_null(x.s[0].top_ids);
    eng_samples_free(&x);
    assert_int_equal(eng_samples_init(&x, 0, 0, 0), -1);
    assert_int_equal(eng_samples_init(&x, 1, 1, ENG_MAX_TOP_LOGPROBS + 1), -1);
}

static int by_value_desc(const void *a, const void *b) {
    const float *x = a, *y = b;
    return *x < *y ? 1 : *x > *y ? -1 : 0;
}

static void test_top_logprobs(void **state) {
    (void)state;
    enum { V = 5000 };
    float *row = malloc(sizeof *row * V), *sorted = malloc(sizeof *sorted * V);
    uint64_t r = 12345;
    for (int i = 0; i < V; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        row[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 20.0 - 10.0);
    }
    row[4321] = 14.0f;                                       /* a clear winner */
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < V; i++) mx = row[i] > mx ? row[i] : mx;
    for (int i = 0; i < V; i++) sum += exp((double)row[i] - mx);
    double lse_ref = mx + log(sum);
    for (int i = 0; i < V; i++) sorted[i] = row[i];
    qsort(sorted, V, sizeof *sorted, by_value_desc);
    int32_t ids[ENG_MAX_TOP_LOGPROBS];
    float lps[ENG_MAX_TOP_LOGPROBS];
    for (int k = 1; k <= ENG_MAX_TOP_LOGPROBS; k += 6) {
        double lse = eng_top_logprobs(row, V, k, ids, lps);
        assert_true(fabs(lse - lse_ref) < 1e-6);
        assert_int_equal(ids[0], 4321);
        for (int j = 0; j < k; j++) {
            assert_true(fabs(lps[j] - (sorted[j] - lse_ref)) < 1e-5);
            assert_true(fabs(lps[j] - ((double)row[ids[j]] - lse_ref)) < 1e-5);
            if (j) assert_true(lps[j - 1] >= lps[j]);
        }
    }
    /* ties: the lower id first; a one-token vocabulary is certain */
    float flat[4] = {1, 3, 3, 2};
    eng_top_logprobs(flat, 4, 3, ids, lps);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    assert_int_equal(ids[2], 3);
    float one[1] = {-7};
    eng_top_logprobs(one, 1, 1, ids, lps);
    assert_true(fabs(lps[0]) < 1e-7);
    free(row); free(sorted);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_top_logprobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
