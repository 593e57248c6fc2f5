/* profile_cpu: the CPU side of an operator profile (see profile_ops.h,
 * pops_measure_cpu): real engine steps, each beside the time its ops take by
 * the profile, and a fit of what the ops do not explain (a fixed cost, a cost
 * per sequence, and the floor under which a step's kernels cannot be
 * launched).  Runs the engine it is given; touches nothing else.  Without
 * CUDA the engine cannot be created, so this is never reached. */
#include "engine/profile_ops.h"
#include "base/errbuf.h"
#include "base/clock.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct step_obs { double ops_us, wall_us; int seqs, decode_only; } step_obs;

/* Least squares of r = a + b x with b >= 0 and a >= 0 unless neg_a; returns the squared error. */
static double fit_line_signed(const double *x, const double *r, int n, int neg_a, double *a, double *b) {
    double sx = 0, sr = 0, sxx = 0, sxr = 0;
    for (int i = 0; i < n; i++) { sx += x[i]; sr += r[i]; sxx += x[i] * x[i]; sxr += x[i] * r[i]; }
    double den = n * sxx - sx * sx;
    *b = den > 0 ? (n * sxr - sx * sr) / den : 0;
    if (*b < 0) *b = 0;
    *a = (sr - *b * sx) / n;
    if (*a < 0 && !neg_a) *a = 0;
    double e = 0;
    for (int i = 0; i < n; i++) e += (r[i] - *a - *b * x[i]) * (r[i] - *a - *b * x[i]);
    return e;
}
static double fit_line(const double *x, const double *r, int n, double *a, double *b) {
    return fit_line_signed(x, r, n, 0, a, b);
}

/* step = a + b seqs + max(ops, floor): the floor among 0 and the steps' ops
 * values that fits best, then a and b. */
static void fit_cpu(const step_obs *s, int n, opp_profile *p) {
    double *x = malloc(sizeof(double) * (size_t)n), *r = malloc(sizeof(double) * (size_t)n), best = INFINITY;
    if (!x || !r) { free(x); free(r); return; }
    for (int c = -1; c < n; c++) {
        double floor_us = c < 0 ? 0 : s[c].ops_us, a, b;
        for (int i = 0; i < n; i++) {
            x[i] = s[i].seqs;
            r[i] = s[i].wall_us - (s[i].ops_us > floor_us ? s[i].ops_us : floor_us);
        }
        double e = fit_line(x, r, n, &a, &b);
        if (e < best) { best = e; p->step_overhead_us = a; p->per_seq_us = b; p->gpu_floor_us = floor_us; }
    }
    free(x); free(r);
}

/* Decode-only steps (graph replays where the engine uses graphs): step = a +
 * b seqs + ops with a of either sign (a replay has none of the launch gaps
 * that the ops' back-to-back timing includes); fewer than 3 such steps: no fit. */
static void fit_decode(const step_obs *s, int n, opp_profile *p) {
    p->decode_fit = 0;
    p->decode_step_us = p->decode_per_seq_us = 0;
    double *x = malloc(sizeof(double) * (size_t)n), *r = malloc(sizeof(double) * (size_t)n);
    int m = 0;
    for (int i = 0; x && r && i < n; i++)
        if (s[i].decode_only) { x[m] = s[i].seqs; r[m] = s[i].wall_us - s[i].ops_us; m++; }
    if (m >= 3) {
        fit_line_signed(x, r, m, 1, &p->decode_step_us, &p->decode_per_seq_us);
        p->decode_fit = 1;
    }
    free(x); free(r);
}

/* between = a + b seqs over the gaps between steps (none: 0, 0). */
static void fit_post(const step_obs *g, int n, opp_profile *p) {
    p->post_step_us = p->post_per_seq_us = 0;
    if (n < 2) return;
    double *x = malloc(sizeof(double) * (size_t)n), *r = malloc(sizeof(double) * (size_t)n);
    if (x && r) {
        for (int i = 0; i < n; i++) { x[i] = g[i].seqs; r[i] = g[i].wall_us; }
        fit_line(x, r, n, &p->post_step_us, &p->post_per_seq_us);
    }
    free(x); free(r);
}

/* The engine steps of one round, each beside its ops' time (round 0 warms up).
 * A step at a token count the engine had not run before is left out: its
 * first cuBLAS calls at that shape (heuristics, loading the kernel) cost up to
 * tens of ms once, which is neither a per-step nor a per-sequence cost.
 * Beside them, the host's time between steps (post_step_us, post_per_seq_us):
 * from one step's hook to the next, less the later step's own seconds, is
 * that step's postprocess, the driver's and engine's bookkeeping and the
 * hook's return, which engine/bench's and every caller's wall time include
 * and a step's measured seconds do not. */
typedef struct cpu_obs {
    const opp_profile *ops;
    step_obs *obs;               /* (cap,) steps kept for the CPU fit */
    int n, cap, keep;
    unsigned char *seen;         /* (nseen,) token counts run before */
    long nseen;
    step_obs *gap;               /* (gcap,) wall_us: the time between steps; seqs: the later step's */
    int ng, gcap;
    double last_s;               /* clock at the previous hook of this round; < 0: none yet */
} cpu_obs;

static int grow(step_obs **a, int *cap, int n, char *err, size_t errlen) {
    if (n < *cap) return 0;
    step_obs *g = realloc(*a, sizeof *g * (size_t)(*cap * 2));
    if (!g) return errbuf_fail(err, errlen, "out of memory");
    *a = g;
    *cap *= 2;
    return 0;
}

static int observe_step(void *ctx, const eng_step_info *si, char *err, size_t errlen) {
    cpu_obs *o = ctx;
    double t = clock_now_s(), last = o->last_s;
    o->last_s = t;
    if (o->keep && last >= 0 && si->num_seqs > 0) {
        if (grow(&o->gap, &o->gcap, o->ng, err, errlen)) return -1;
        double g = 1e6 * (t - last - si->seconds);
        o->gap[o->ng++] = (step_obs){ 0, g > 0 ? g : 0, si->num_seqs, 0 };
    }
    long T = si->prefill_tokens + si->decode_tokens;
    int first = T >= 0 && T < o->nseen && !o->seen[T];
    if (T >= 0 && T < o->nseen) o->seen[T] = 1;
    if (!o->keep || si->num_seqs <= 0 || first) return 0;
    cm_batch b = { si->num_seqs, si->prefill_tokens, si->decode_tokens, si->attn_ctx_tokens, si->attn_pairs,
                   0, 0, 0, 0, 0 };                              /* the engine preempts by recompute: no swaps */
    if (grow(&o->obs, &o->cap, o->n, err, errlen)) return -1;
    o->obs[o->n++] = (step_obs){ 1e6 * opp_step_time(o->ops, &b), 1e6 * si->seconds, si->num_seqs,
                                 si->prefill_tokens == 0 };
    return 0;
}

int pops_measure_cpu(eng *e, const mc_config *c, int max_seqs, opp_profile *p, FILE *log, char *err, size_t errlen) {
    enum { PROMPT = 64, OUT = 32 };
    int rc = -1, id = 0;
    int prompt[PROMPT];
    opp_profile ops = *p;                                 /* the ops alone */
    ops.step_overhead_us = ops.per_seq_us = ops.gpu_floor_us = 0;
    ops.decode_fit = 0;
    long nseen = (long)model_options(eng_model(e))->max_num_batched_tokens + 1;
    cpu_obs co = { &ops, malloc(sizeof(step_obs) * 64), 0, 64, 0, calloc((size_t)nseen, 1), nseen,
                   malloc(sizeof(step_obs) * 64), 0, 64, -1 };
    if (!co.obs || !co.seen || !co.gap) {
        free(co.obs); free(co.seen); free(co.gap);
        return errbuf_fail(err, errlen, "out of memory");
    }
    eng_hooks hooks = { .on_step = observe_step, .ctx = &co };
    uint64_t st = 99;
    for (int round = 0, B = 1; B <= max_seqs; round++) {
        for (int r = 0; r < B; r++, id++) {
            for (int i = 0; i < PROMPT; i++) {
                st = st * 6364136223846793005ull + 1442695040888963407ull;
                prompt[i] = (int)((st >> 33) % (uint64_t)(c->vocab_size < 10000 ? c->vocab_size : 10000));
            }
            eng_params ep = { .max_tokens = OUT, .top_p = 1.0f, .seed = (uint64_t)id };
            if (eng_add_request(e, 1000000 + id, prompt, PROMPT, &ep, err, errlen)) goto out;
        }
        co.keep = round > 0;
        co.last_s = -1;                                   /* adding requests is no step's */
        if (eng_run(e, &hooks, err, errlen)) goto out;
        if (round > 0) B *= 2;
    }
    if (co.n < 3) { errbuf_fail(err, errlen, "too few engine steps (%d) to time the CPU side", co.n); goto out; }
    fit_cpu(co.obs, co.n, p);
    fit_decode(co.obs, co.n, p);
    fit_post(co.gap, co.ng, p);
    if (log) fprintf(log, "  %-12s %d engine steps: %.1f us + %.2f us per sequence, GPU floor %.1f us; decode-only "
                     "%+.1f us + %.3f us per sequence beside the ops; between steps %.1f us + %.3f us per sequence "
                     "(%d gaps)\n", "cpu side", co.n, p->step_overhead_us, p->per_seq_us, p->gpu_floor_us,
                     p->decode_step_us, p->decode_per_seq_us, p->post_step_us, p->post_per_seq_us, co.ng);
    rc = 0;
out:
    free(co.obs);
    free(co.seen);
    free(co.gap);
    return rc;
}
