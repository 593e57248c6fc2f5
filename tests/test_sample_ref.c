/* Tests of the sampling definition on the CPU (no GPU needed):
 *  - kernels_ref.h's own exp (kref_wfix), log and Gumbel noise against libm, and
 *    the key order (kref_fkey/kref_unkey);
 *  - kref_sample_row (sorting) against a brute-force O(V^2) reading of the
 *    definition in engine/sampling.cu's top comment, on rows with ties, a
 *    dominant token, near-uniform and masked rows, for T / top-k / top-p / both;
 *  - a sequential emulation of the kernel's select (round 0 binned by the distance
 *    below the row's max, then the key within the chosen bin in rounds of 11, 11, 10
 *    bits; the Gumbel maximum over the bins above it and the bin's kept tokens;
 *    candidates kept when they fit) against kref_sample_row, both with candidates
 *    and with the row re-read, up to V = 151,936: the algorithm's logic, which the
 *    GPU test then checks on the device;
 *  - that the sampled frequencies follow softmax(z) restricted to the nucleus. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <float.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/kernels_ref.h"
#include "tests/sample_rows.h"

/* ---- the shared arithmetic ------------------------------------------------------ */
static void test_exp_log_key(void **st) {
    (void)st;
    double worst = 0;
    for (int k = 0; k <= 400000; k++) {                /* d in [-32, 0] */
        float d = -32.0f * (float)k / 400000.0f;
        double want = ldexp(exp((double)d), 32);
        uint64_t got = kref_wfix(d);
        double err = fabs((double)got - want) / want;
        if (want > 1048576 && err > worst) worst = err;
        assert_true(fabs((double)got - want) <= 4e-7 * want + 1.0);
    }
    assert_true(kref_wfix(0.0f) == 4294967296ull && kref_wfix(-0.0f) == 4294967296ull);
    assert_true(kref_wfix(-33.0f) == 0 && kref_wfix(-INFINITY) == 0 && kref_wfix(NAN) == 0);
    for (float d = -1.0f; d < 0; d += 0.001f) assert_true(kref_wfix(d) <= kref_wfix(d + 0.001f));
    fprintf(stderr, "  kref_wfix: worst relative error %.2e (above 2^20)\n", worst);
    worst = 0;
    uint64_t s = 3;
    for (int k = 0; k < 1000000; k++) {                /* x over the normal floats */
        uint32_t u = (uint32_t)(sr_next(&s) % (0x7f000000u - 0x00800000u)) + 0x00800000u;
        float x = kref_u2f(u);
        double want = log((double)x), got = kref_log(x);
        double err = fabs(got - want) / fmax(fabs(want), 1e-30);
        if (fabs(want) > 1e-3 && err > worst) worst = err;
        assert_true(fabs(got - want) <= 3e-7 * fabs(want) + 1e-12);
    }
    assert_true(kref_log(1.0f) == 0.0f);
    fprintf(stderr, "  kref_log: worst relative error %.2e (|log x| > 1e-3)\n", worst);
    for (uint64_t i = 0; i < 200000; i++) {            /* noise finite; u = 1 handled */
        float g = kref_gumbel(0.0f, 7, 1, i);
        assert_true(isfinite(g) && g > -4.0f && g < 40.0f);
    }
    assert_true(isfinite(kref_gumbel(0.0f, 0, 0, 0)));
    float vals[] = {-INFINITY, -3e38f, -1.0f, -1e-30f, -0.0f, 0.0f, 1e-30f, 1.0f, 3e38f, INFINITY};
    for (int k = 0; k < 10; k++) {
        assert_true(kref_f2u(kref_unkey(kref_fkey(vals[k]))) == kref_f2u(vals[k]));
        if (k) assert_true(kref_fkey(vals[k - 1]) < kref_fkey(vals[k]));
    }
    assert_true(kref_topp_target(0.75f, 10) == 8 && kref_topp_target(0.5f, 10) == 5);
    assert_true(kref_topp_target(0.8f, 10) == 9);      /* the float 0.8 is 0.800000012 */
    assert_true(kref_topp_target(0.0f, 10) == 1 && kref_topp_target(-1.0f, 10) == 1);
    assert_true(kref_topp_target(0.81f, 10) == 9 && kref_topp_target(0.99999994f, 4294967296ull) <= 4294967296ull);
}

/* ---- brute force: the definition read literally (O(V^2)) ------------------------- */
static int brute_sample(const float *lg, int V, float T, int top_k, float top_p, uint64_t seed, uint64_t step) {
    float *z = malloc(sizeof(float) * V);
    uint32_t *key = malloc(sizeof(uint32_t) * V);
    float zmax = -INFINITY, inv = kref_inv_temp(T);
    for (int i = 0; i < V; i++) { z[i] = kref_scale(lg[i], inv); key[i] = kref_fkey(z[i]); if (z[i] > zmax) zmax = z[i]; }
    uint32_t thr = 0;
    if (top_k > 0 && top_k < V)                        /* the largest key K with count(>= K) >= k */
        for (int c = 0; c < V; c++) {
            int n = 0;
            for (int i = 0; i < V; i++) n += key[i] >= key[c];
            if (n >= top_k && key[c] > thr) thr = key[c];
        }
    if (top_p < 1.0f) {
        uint64_t total = 0;
        for (int i = 0; i < V; i++) if (key[i] >= thr) total += kref_wfix(z[i] - zmax);
        uint64_t target = kref_topp_target(top_p, total);
        uint32_t tp = 0;
        for (int c = 0; c < V; c++) {
            uint64_t m = 0;
            for (int i = 0; i < V; i++) if (key[i] >= key[c]) m += kref_wfix(z[i] - zmax);
            if (m >= target && key[c] > tp) tp = key[c];
        }
        if (tp > thr) thr = tp;
    }
    int best = -1;
    float bv = 0;
    for (int i = 0; i < V; i++) {
        if (key[i] < thr) continue;
        float v = kref_gumbel(z[i], seed, step, (uint64_t)i);
        if (best < 0 || v > bv) { bv = v; best = i; }
    }
    free(z); free(key);
    return best;
}

typedef struct { float T; int k; float p; } sp;
static sp params_of(uint64_t *s, int V) {
    static const float ps[] = {0.8f, 0.5f, 0.95f, 0.1f, 0.0f, 0.999f, 1.0f};
    sp q = {0.3f + (float)(sr_next(s) % 10) * 0.1f, 0, 1.0f};
    switch (sr_next(s) % 4) {
    case 0: q.k = 1 + (int)(sr_next(s) % (uint64_t)(V < 60 ? V + 2 : 60)); break;     /* top-k only */
    case 1: q.p = ps[sr_next(s) % 7]; break;                                           /* top-p only */
    case 2: q.k = 1 + (int)(sr_next(s) % (uint64_t)(V + 2)); q.p = ps[sr_next(s) % 7]; break;
    default: break;                                                                    /* T only */
    }
    return q;
}

static void test_ref_vs_brute(void **st) {
    (void)st;
    uint64_t s = 11;
    int n = 0;
    for (int t = 0; t < 3000; t++) {
        int V = 1 + (int)(sr_next(&s) % 300), kind = t % SR_KINDS;
        float *row = malloc(sizeof(float) * V);
        sr_fill(row, V, kind, (uint64_t)t);
        sp q = params_of(&s, V);
        int want = brute_sample(row, V, q.T, q.k, q.p, (uint64_t)t, 3);
        int got = kref_sample_row(row, V, q.T, q.k, q.p, (uint64_t)t, 3);
        if (got != want) fprintf(stderr, "row %d (%s, V %d, T %g, k %d, p %g): ref %d, brute %d\n", t,
                                 sr_kind_name[kind], V, q.T, q.k, q.p, got, want);
        assert_int_equal(got, want);
        n++;
        free(row);
    }
    fprintf(stderr, "  kref_sample_row = brute force on %d rows\n", n);
}

/* ---- the kernel's algorithm, sequentially ------------------------------------------ */
static const int e_shift[3] = {21, 10, 0}, e_bits[3] = {11, 11, 10};

static uint64_t gpack(float v, int i) { return ((uint64_t)kref_fkey(v) << 32) | (0xffffffffu - (uint32_t)i); }

/* noise_floor of engine/sampling.cu: u below it cannot beat L (z <= zb) */
static float noise_floor(float zb, float L) {
    double dz = (double)zb - (double)L + 1e-4 * (fabs((double)zb) + fabs((double)L)) + 1e-3;
    double u = exp(-exp(dz)) * (1.0 - 1e-6);
    return u == u ? (float)u : 0.0f;
}
static int n_skipped, n_noise, n_overflow;
/* token i is kept: *best takes its noise key unless u < the floor of *best (a kept token's) */
static void emu_kept(float z, float zb, uint64_t seed, uint64_t step, int i, uint64_t *best) {
    float u = kref_uniform(seed, step, (uint64_t)i);
    n_noise++;
    if (*best && u < noise_floor(zb, kref_unkey((uint32_t)(*best >> 32)))) { n_skipped++; return; }
    uint64_t g = gpack(kref_gumbel_u(z, u), i);
    if (g > *best) *best = g;
}

typedef struct { const float *row; int V; float inv, zmax, s; uint64_t seed, step; } erow;
/* dig0 of engine/sampling.cu: 2047 - floor((zmax - z) * s), the tail (and NaN) 0 */
static int emu_dig0(const erow *q, float z) {
    float t = (q->zmax - z) * q->s;
    return t < 2047.0f ? 2047 - (int)t : 0;
}
static uint64_t emu_val(const erow *q, int mass, float z) { return mass ? kref_wfix(z - q->zmax) : 1; }

/* pick of engine/sampling.cu: the largest d with above + sum(h[d..]) >= target; -1 if none */
static int emu_pick(const uint64_t *h, uint64_t *above, uint64_t *target, int topp, float top_p) {
    uint64_t tot = 0, sfx = 0;
    for (int b = 0; b < 2048; b++) tot += h[b];
    if (topp) *target = kref_topp_target(top_p, tot);
    for (int b = 2047; b >= 0; b--) {
        if (h[b] && *above + sfx < *target && *above + sfx + h[b] >= *target) { *above += sfx; return b; }
        sfx += h[b];
    }
    return -1;
}

/* tselect of engine/sampling.cu; cap: the shared-memory candidates */
static uint32_t emu_select(const erow *q, int mass, uint64_t target, float top_p, uint32_t lo, int gum,
                           uint64_t *best, int cap, int *used_cand) {
    static uint64_t hist[2048];
    int V = q->V, *ci = malloc(sizeof(int) * (size_t)(V > 0 ? V : 1)), n = 0;
    memset(hist, 0, sizeof hist);
    for (int i = 0; i < V; i++) {                                      /* round 0 */
        float z = kref_scale(q->row[i], q->inv);
        if (kref_fkey(z) >= lo) hist[emu_dig0(q, z)] += emu_val(q, mass, z);
    }
    uint64_t above = 0;
    int d0 = emu_pick(hist, &above, &target, mass, top_p);
    uint32_t kmin = 0xffffffffu, kmax = 0;
    for (int i = 0; i < V; i++) {                                      /* above d0: kept; d0: candidates */
        float z = kref_scale(q->row[i], q->inv);
        uint32_t key = kref_fkey(z);
        if (key < lo) continue;
        int d = emu_dig0(q, z);
        if (d > d0 && gum) emu_kept(z, q->zmax, q->seed, q->step, i, best);
        if (d == d0) {
            if (key < kmin) kmin = key;
            if (key > kmax) kmax = key;
            if (n < cap) ci[n] = i;
            n++;
        }
    }
    if (d0 < 0) { free(ci); return lo; }
    int incand = n <= cap;
    if (incand) *used_cand = 1;
    else if (cap > 0) n_overflow++;
    uint32_t span = kmax - kmin, prefix = 0;
    for (int r = 0; r < 3; r++) {                                      /* the key within the bin */
        int sh = e_shift[r], hi = sh + e_bits[r];
        if ((span >> sh) == 0) continue;
        memset(hist, 0, sizeof hist);
        for (int j = 0; j < (incand ? n : V); j++) {
            int i = incand ? ci[j] : j;
            float z = kref_scale(q->row[i], q->inv);
            uint32_t key = kref_fkey(z), o = key - kmin;
            if (!incand && (key < lo || emu_dig0(q, z) != d0)) continue;
            if (hi < 32 && (o >> hi) != prefix) continue;
            hist[(o >> sh) & ((1u << e_bits[r]) - 1)] += emu_val(q, mass, z);
        }
        int d = emu_pick(hist, &above, &target, 0, 0.0f);
        assert_true(d >= 0);
        prefix = (prefix << e_bits[r]) | (uint32_t)d;
    }
    uint32_t K = kmin + prefix;
    if (gum)
        for (int j = 0; j < (incand ? n : V); j++) {
            int i = incand ? ci[j] : j;
            float z = kref_scale(q->row[i], q->inv);
            uint32_t key = kref_fkey(z);
            if (key >= K && key >= lo && emu_dig0(q, z) == d0) emu_kept(z, q->zmax, q->seed, q->step, i, best);
        }
    free(ci);
    return K;
}

static int emu_sample(const float *row, int V, float T, int top_k, float top_p, uint64_t seed, uint64_t step,
                      int cap, int *used_cand) {
    int usek = top_k > 0 && top_k < V, usep = top_p < 1.0f;
    uint64_t best = 0;
    float inv = kref_inv_temp(T);
    if (!usek && !usep) {
        for (int i = 0; i < V; i++) { uint64_t g = gpack(kref_gumbel(kref_scale(row[i], inv), seed, step, (uint64_t)i), i); if (g > best) best = g; }
    } else {
        float mx = -INFINITY, mn = INFINITY;
        for (int i = 0; i < V; i++) { mx = fmaxf(mx, row[i]); mn = fminf(mn, row[i]); }
        erow q = {row, V, inv, kref_scale(mx, inv), 0, seed, step};
        float rg = fminf(q.zmax - kref_scale(mn, inv), 32.0f);
        q.s = rg > 0.0f ? fminf(2047.0f / rg, 0x1p40f) : 64.0f;
        uint32_t thr = 0;
        if (usek) thr = emu_select(&q, 0, (uint64_t)top_k, 0.0f, 0, !usep, &best, cap, used_cand);
        if (usep) emu_select(&q, 1, 0, top_p, thr, 1, &best, cap, used_cand);
    }
    return best ? (int)(0xffffffffu - (uint32_t)best) : 0;
}

static void test_radix_emulation(void **st) {
    (void)st;
    uint64_t s = 5;
    int rows = 0, with_cand = 0, sk[SR_KINDS] = {0}, nn[SR_KINDS] = {0};
    for (int t = 0; t < 1500; t++) {
        int big = t % 50 == 0, V = big ? 151936 : 1 + (int)(sr_next(&s) % 5000), kind = t % SR_KINDS;
        float *row = malloc(sizeof(float) * V);
        sr_fill(row, V, kind, (uint64_t)t + 100);
        sp q = params_of(&s, V);
        if (big && t % 100 == 0) { q.T = 0.6f; q.k = 0; q.p = 0.8f; }          /* the study's setting */
        int want = kref_sample_row(row, V, q.T, q.k, q.p, (uint64_t)t, 9);
        for (int c = 0; c < 2; c++) {
            int used = 0, cap = c ? 16384 : 0;
            n_skipped = n_noise = 0;
            int got = emu_sample(row, V, q.T, q.k, q.p, (uint64_t)t, 9, cap, &used);
            if (got != want) fprintf(stderr, "row %d (%s, V %d, T %g, k %d, p %g, cap %d): emu %d, ref %d\n", t,
                                     sr_kind_name[kind], V, q.T, q.k, q.p, cap, got, want);
            assert_int_equal(got, want);
            with_cand += used;
            sk[kind] += n_skipped; nn[kind] += n_noise;
        }
        rows++;
        free(row);
    }
    fprintf(stderr, "  radix emulation = kref_sample_row on %d rows (x2: without/with candidates; %d used them)\n"
            , rows, with_cand);
    for (int k = 0; k < SR_KINDS; k++)
        fprintf(stderr, "  noise filter, %-12s rows: the logs of %d of %d tokens skipped\n", sr_kind_name[k], sk[k], nn[k]);
    assert_true(sk[SR_UNIFORM] > nn[SR_UNIFORM] * 0.9 && sk[SR_SPREAD] > nn[SR_SPREAD] / 2);
    assert_true(with_cand > 100);
}

/* the harder rows of sr_fill_edge (infinities, denormals, narrow bands, a bin of
 * more candidates than shared memory holds), every setting, with and without
 * candidates */
static void test_emulation_edges(void **st) {
    (void)st;
    uint64_t s = 8;
    int rows = 0;
    n_overflow = 0;
    for (int t = 0; t < 3 * 4 * SR_EDGES; t++) {
        int e = t % SR_EDGES, V = t % 3 == 2 ? 5003 : 151936;
        float *row = malloc(sizeof(float) * V);
        sr_fill_edge(row, V, e, (uint64_t)t);
        sp q = {0.3f + (float)(sr_next(&s) % 10) * 0.1f, 0, 1.0f};
        switch ((t / SR_EDGES) % 4) {
        case 0: q.T = 0.6f; q.p = 0.8f; break;
        case 1: q.k = 1 + (int)(sr_next(&s) % 100); break;
        case 2: q.k = 1 + (int)(sr_next(&s) % (uint64_t)V); q.p = 0.95f; break;
        default: q.k = 1 + (int)(sr_next(&s) % (uint64_t)V); break;
        }
        int want = kref_sample_row(row, V, q.T, q.k, q.p, (uint64_t)t, 2);
        for (int c = 0; c < 2; c++) {
            int used = 0, got = emu_sample(row, V, q.T, q.k, q.p, (uint64_t)t, 2, c ? 16384 : 0, &used);
            if (got != want) fprintf(stderr, "edge row %d (kind %d, V %d, T %g, k %d, p %g, cap %d): emu %d, ref %d\n",
                                     t, e, V, q.T, q.k, q.p, c ? 16384 : 0, got, want);
            assert_int_equal(got, want);
        }
        rows++;
        free(row);
    }
    fprintf(stderr, "  radix emulation = kref_sample_row on %d harder rows (x2); %d selects overflowed the %d candidates\n",
            rows, n_overflow, 16384);
    assert_true(n_overflow > 0);                       /* the kernel's own capacity overflowed too */
}

/* ---- the sampled frequencies follow the nucleus' softmax ------------------------- */
static void test_distribution(void **st) {
    (void)st;
    float lg[6] = {2.0f, 1.5f, 1.0f, 0.0f, -1.0f, -3.0f};
    float T = 0.8f, top_p = 0.9f;
    double p[6], tot = 0, cum = 0;
    for (int i = 0; i < 6; i++) { p[i] = exp(lg[i] / T); tot += p[i]; }
    int keep = 0;                                      /* the nucleus: smallest prefix with mass >= 0.9 */
    while (keep < 6 && cum < top_p * tot) cum += p[keep++];
    int cnt[6] = {0}, N = 200000;
    for (int n = 0; n < N; n++) cnt[kref_sample_row(lg, 6, T, 0, top_p, (uint64_t)n, 0)]++;
    for (int i = 0; i < 6; i++) {
        double want = i < keep ? p[i] / cum : 0, got = (double)cnt[i] / N;
        fprintf(stderr, "  token %d: %.4f sampled, %.4f expected\n", i, got, want);
        assert_true(fabs(got - want) < 0.006);
    }
    /* top-k 2, no top-p: only the two largest */
    memset(cnt, 0, sizeof cnt);
    for (int n = 0; n < 20000; n++) cnt[kref_sample_row(lg, 6, T, 2, 1.0f, (uint64_t)n, 1)]++;
    assert_true(cnt[0] + cnt[1] == 20000 && cnt[0] > cnt[1]);
    /* greedy: the first maximum; top-p 0: the maximum (all of its ties) */
    float tie[4] = {1.0f, 3.0f, 3.0f, 2.0f};
    assert_int_equal(kref_sample_row(tie, 4, 0.0f, 0, 1.0f, 1, 1), 1);
    int seen[4] = {0};
    for (int n = 0; n < 200; n++) seen[kref_sample_row(tie, 4, 1.0f, 0, 0.0f, (uint64_t)n, 0)]++;
    assert_true(seen[0] == 0 && seen[3] == 0 && seen[1] > 0 && seen[2] > 0);
    memset(seen, 0, sizeof seen);
    for (int n = 0; n < 200; n++) seen[kref_sample_row(tie, 4, 1.0f, 1, 1.0f, (uint64_t)n, 0)]++;
    assert_true(seen[0] == 0 && seen[3] == 0 && seen[1] > 0 && seen[2] > 0);   /* top-k 1 keeps ties */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_log_key),
        cmocka_unit_test(test_ref_vs_brute),
        cmocka_unit_test(test_radix_emulation),
        cmocka_unit_test(test_emulation_edges),
        cmocka_unit_test(test_distribution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
