/* sample_rows.h: logits rows of the kinds the sampling tests and benchmark use
 * (tests/test_sample_ref.c, tests/gpu/test_sample.c, tests/gpu/bench_sample.cu):
 * spread and peaked like a trained model, near-uniform like dummy weights, ties,
 * one dominant token, all equal, masked (-inf) entries.  Static functions in a
 * header: each test binary is one translation unit.  Deterministic in seed. */
#ifndef TESTS_SAMPLE_ROWS_H
#define TESTS_SAMPLE_ROWS_H
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { SR_SPREAD, SR_UNIFORM, SR_TIES, SR_DOMINANT, SR_EQUAL, SR_MASKED, SR_KINDS };
static const char *const sr_kind_name[SR_KINDS] = {"spread", "near-uniform", "ties", "dominant",
                                                   "all-equal", "masked"};

static uint64_t sr_next(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}
static double sr_unit(uint64_t *s) { return (double)sr_next(s) / 9007199254740992.0; }   /* [0, 1) */
static double sr_normal(uint64_t *s) {
    double a = sr_unit(s) + 1e-12, b = sr_unit(s);
    return sqrt(-2 * log(a)) * cos(6.283185307179586 * b);
}

/* row (V,) of the given kind */
static void sr_fill(float *row, int V, int kind, uint64_t seed) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 17;
    for (int i = 0; i < V; i++) {
        switch (kind) {
        case SR_SPREAD:                                /* a few peaks */
            row[i] = (float)(2.5 * sr_normal(&s) - 4.0) + (sr_next(&s) % 5000 == 0 ? 12.0f : 0.0f);
            break;
        case SR_UNIFORM:  row[i] = (float)(0.25 * sr_normal(&s)); break;
        case SR_TIES:     row[i] = (float)(sr_next(&s) % 6) * 0.5f; break;
        case SR_DOMINANT: row[i] = (float)(0.5 * sr_normal(&s)); break;
        case SR_EQUAL:    row[i] = 1.25f; break;
        default:          row[i] = sr_next(&s) % 7 == 0 ? -INFINITY : (float)(3.0 * sr_normal(&s)); break;
        }
    }
    if (kind == SR_DOMINANT) row[(int)(sr_next(&s) % (uint64_t)V)] = 25.0f;
    if (kind == SR_MASKED) row[(int)(sr_next(&s) % (uint64_t)V)] = 1.0f;       /* one finite at least */
}

/* Harder rows for the sampling kernel's select (all compared exactly with the
 * reference): an +inf entry (top-p then keeps all), mostly -inf, all -inf,
 * values 1 + k ulp, near-uniform 1000 times narrower, half the row in one
 * narrow band of distinct values (more candidates than shared memory holds),
 * huge values (z overflows to +-inf), denormals, +0 and -0, very spread, and a
 * third of the row in a band just below the max. */
enum { SR_EDGES = 11 };
static inline void sr_fill_edge(float *row, int V, int e, uint64_t seed) {
    uint64_t s = seed * 1234567 + 1;
    for (int i = 0; i < V; i++) {
        double g = sr_normal(&s);
        uint32_t u;
        switch (e) {
        case 0: row[i] = i == V / 3 ? INFINITY : (float)(0.25 * g); break;
        case 1: row[i] = i % 5000 == 7 ? (float)g : -INFINITY; break;
        case 2: row[i] = -INFINITY; break;
        case 3: u = 0x3f800000u + (uint32_t)(sr_next(&s) % 1000); memcpy(&row[i], &u, 4); break;
        case 4: row[i] = (float)(0.001 * g); break;
        case 5: row[i] = i % 2 ? (float)(1e-9 * (double)(sr_next(&s) % 100000)) : (float)(-20.0 * sr_unit(&s)); break;
        case 6: row[i] = (float)(3e38 * sr_unit(&s) * (g > 0 ? 1 : -1)); break;
        case 7: u = 1 + (uint32_t)(sr_next(&s) % 5000); memcpy(&row[i], &u, 4); break;
        case 8: row[i] = i % 777 == 0 ? (float)(0.01 * g) : (sr_next(&s) % 2 ? 0.0f : -0.0f); break;
        case 9: row[i] = (float)(40.0 * g); break;
        default: row[i] = i % 3 ? (float)(0.25 * g) : (float)(5.0 + 1e-6 * (double)(i % 40000)); break;
        }
    }
}
#endif
