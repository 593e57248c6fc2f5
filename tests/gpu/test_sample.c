/* GPU test of k_sample (engine/sampling.cu) against kref_sample_row: the
 * same token on EVERY row (the definition is exact: fixed-point masses and
 * shared exp/log, see sampling.cu's top comment), over rows of every kind of
 * tests/sample_rows.h (spread, near-uniform like dummy weights, ties, one
 * dominant token, all equal, masked; and sr_fill_edge's harder rows: infinities,
 * denormals, narrow bands, more candidates than shared memory holds) at
 * V = 151,936 and small V, with greedy,
 * temperature only, top-k only, top-p only (0, 0.1 .. 0.999, 1) and both; a
 * misaligned logits pointer (the scalar path); a row alone = the row in a batch,
 * and two launches agree (no dependence on scheduling or on other rows). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/kernels.h"
#include "engine/kernels_ref.h"
#include <cuda_runtime_api.h>
#pragma GCC diagnostic ignored "-Wunused-function"     /* gpu_test_util.h: the helpers unused here */
#include "tests/gpu/gpu_test_util.h"
#include "tests/sample_rows.h"

#define BIGV 151936

static k_sample_params param_of(uint64_t *s, int V, int r) {
    static const float ps[] = {0.8f, 0.5f, 0.95f, 0.1f, 0.0f, 0.999f, 1.0f, 0.8f};
    k_sample_params q = {0.3f + (float)(sr_next(s) % 10) * 0.1f, 0, 1.0f, 1000 + (uint64_t)r / 2, (uint64_t)r % 3};
    switch (r % 6) {
    case 0: q.temperature = 0.6f; q.top_p = 0.8f; break;                               /* the study */
    case 1: q.top_k = 1 + (int)(sr_next(s) % 100); break;                              /* top-k */
    case 2: q.top_p = ps[sr_next(s) % 8]; break;                                       /* top-p */
    case 3: q.top_k = 1 + (int)(sr_next(s) % (uint64_t)(V + 1)); q.top_p = ps[sr_next(s) % 8]; break;
    case 4: if (sr_next(s) % 3 == 0) q.temperature = 0.0f; break;                      /* T only, greedy */
    default: q.top_k = (int)(sr_next(s) % 50); q.top_p = 0.8f; break;                  /* k small or 0 */
    }
    return q;
}

/* R rows (R, V) of the given kinds (kind < 0: r % SR_KINDS; kind SR_KINDS: the
 * harder rows sr_fill_edge, r % SR_EDGES) through k_sample at logits offset
 * `shift` floats from an aligned buffer; returns mismatches. */
static int run_batch(int R, int V, int kind, uint64_t seed, int shift, const char *what) {
    float *lg = malloc(sizeof(float) * (size_t)R * V);
    k_sample_params *p = calloc((size_t)R, sizeof *p);
    uint64_t s = seed;
    int kinds[SR_KINDS] = {0}, bad = 0;
    for (int r = 0; r < R; r++) {
        int k = kind >= 0 ? kind : r % SR_KINDS;
        if (k == SR_KINDS) sr_fill_edge(lg + (size_t)r * V, V, r % SR_EDGES, seed * 7919 + (uint64_t)r);
        else { sr_fill(lg + (size_t)r * V, V, k, seed * 7919 + (uint64_t)r); kinds[k]++; }
        p[r] = param_of(&s, V, r);
    }
    float *dl = NULL;
    assert_int_equal(cudaMalloc((void **)&dl, sizeof(float) * ((size_t)R * V + 4)), cudaSuccess);
    assert_int_equal(cudaMemcpy(dl + shift, lg, sizeof(float) * (size_t)R * V, cudaMemcpyHostToDevice), cudaSuccess);
    k_sample_params *dp = up(p, sizeof *p * (size_t)R);
    int32_t *dt = poisoned(sizeof(int32_t) * (size_t)R);
    assert_int_equal(k_sample(dt, dl + shift, dp, R, V, 0), 0);
    int32_t *tok = down(dt, sizeof(int32_t) * (size_t)R);
    int32_t *dt2 = poisoned(sizeof(int32_t) * (size_t)R);              /* again: the same tokens */
    assert_int_equal(k_sample(dt2, dl + shift, dp, R, V, 0), 0);
    int32_t *tok2 = down(dt2, sizeof(int32_t) * (size_t)R);
    for (int r = 0; r < R; r++) {
        int want = kref_sample_row(lg + (size_t)r * V, V, p[r].temperature, p[r].top_k, p[r].top_p,
                                   p[r].seed, p[r].step);
        if (tok[r] != want || tok2[r] != tok[r]) {
            if (bad < 10)
                fprintf(stderr, "  %s row %d (%s %d, V %d, T %g, k %d, p %g): kernel %d (again %d), reference %d\n",
                        what, r, kind == SR_KINDS ? "edge" : sr_kind_name[kind >= 0 ? kind : r % SR_KINDS],
                        kind == SR_KINDS ? r % SR_EDGES : 0, V, p[r].temperature, p[r].top_k,
                        p[r].top_p, tok[r], tok2[r], want);
            bad++;
        }
    }
    /* a row alone gives its token in the batch */
    for (int r = 0; r < R && r < 12; r += 5) {
        int32_t *d1 = poisoned(sizeof(int32_t));
        assert_int_equal(k_sample(d1, dl + shift + (size_t)r * V, dp + r, 1, V, 0), 0);
        int32_t *t1 = down(d1, sizeof(int32_t));
        if (t1[0] != tok[r]) { fprintf(stderr, "  %s row %d alone: %d, in the batch %d\n", what, r, t1[0], tok[r]); bad++; }
        free(t1); cudaFree(d1);
    }
    fprintf(stderr, "  %-28s R %4d V %6d: %d/%d rows equal the reference\n", what, R, V, R - bad, R);
    free(lg); free(p); free(tok); free(tok2);
    cudaFree(dl); cudaFree(dp); cudaFree(dt); cudaFree(dt2);
    return bad;
}

static void test_sample_big_vocab(void **st) {
    (void)st; TU_REQUIRE_GPU();
    int bad = 0;
    bad += run_batch(240, BIGV, -1, 1, 0, "mixed kinds");
    for (int k = 0; k < SR_KINDS; k++) bad += run_batch(30, BIGV, k, 10 + (uint64_t)k, 0, sr_kind_name[k]);
    bad += run_batch(30, BIGV, SR_UNIFORM, 31, 1, "near-uniform, misaligned");
    bad += run_batch(132, BIGV, SR_KINDS, 41, 0, "harder rows (sr_fill_edge)");
    bad += run_batch(66, BIGV, SR_KINDS, 42, 1, "harder rows, misaligned");
    bad += run_batch(66, 5003, SR_KINDS, 43, 0, "harder rows, V 5003");
    assert_int_equal(bad, 0);
}

static void test_sample_small_vocab(void **st) {
    (void)st; TU_REQUIRE_GPU();
    static const int vs[] = {1, 2, 3, 4, 7, 31, 100, 1000, 2048, 5003, 8191, 8192, 32000, 65536};
    int bad = 0;
    for (int j = 0; j < (int)(sizeof vs / sizeof vs[0]); j++) {
        char what[64];
        snprintf(what, sizeof what, "small V %d", vs[j]);
        bad += run_batch(120, vs[j], -1, 100 + (uint64_t)j, 0, what);
        snprintf(what, sizeof what, "small V %d, misaligned", vs[j]);
        bad += run_batch(24, vs[j], -1, 200 + (uint64_t)j, 3, what);
    }
    assert_int_equal(bad, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_big_vocab),
        cmocka_unit_test(test_sample_small_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
