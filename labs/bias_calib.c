/* bias_calib: fitting the cost model on measured steps (see
 * labs/bias_compare.h): fit on trace 0's first set (or the first half of its
 * steps when it has one set) through sim/calibrate.h, check the fit on the
 * held-out steps and whole sets, save the coefficients.  Writes only the
 * coefficients file it is given. */
#include "labs/bias_compare_impl.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void steps_obs(const bias_trace *t, int set, int half, cm_step_obs *o, int *n) {
    size_t cnt = 0;
    for (size_t i = 0; i < t->nstep; i++) cnt += set <= 0 || t->step[i].set == set;
    size_t mid = cnt / 2, k = 0;
    *n = 0;
    for (size_t i = 0; i < t->nstep; i++) {
        const bias_trace_step *s = &t->step[i];
        if (set > 0 && s->set != set) continue;
        int take = half == 0 || (half == 1 && k < mid) || (half == 2 && k >= mid);
        k++;
        if (!take || s->seconds <= 0) continue;
        o[(*n)++] = (cm_step_obs){ { s->num_seqs, s->prefill_tokens, s->decode_tokens, s->attn_ctx_tokens,
                                     s->attn_pairs > 0 ? s->attn_pairs : s->attn_ctx_tokens, 0, 0, 0, 0, 0 }, s->seconds };
    }
}

static double mape(const cm_model *m, const cm_step_obs *o, int n) {
    double e = 0;
    for (int i = 0; i < n; i++) e += fabs(cm_step_time(m, &o[i].b) - o[i].seconds) / o[i].seconds;
    return n ? e / n : 0;
}

/* Adds to k->pred the sets of c's trace (but `skip`, the fitted one) that
 * were measured, each predicted with m and with the fitted fm. */
static int predict_sets(const cmp *c, int skip, const cm_model *m, const cm_model *fm, calib *k,
                        char *err, size_t errlen) {
    int *ts = malloc((c->tr->nreq + 1) * sizeof *ts);   /* (nreq + 1) the trace's sets */
    if (!ts) { snprintf(err, errlen, "out of memory"); return -1; }
    int tn = bias_cmp_trace_sets(c->tr, ts), rc = 0;
    for (int j = 0; j < tn && k->npred < 8; j++) {
        if (ts[j] == skip) continue;
        if (ts[j] < 1 || ts[j] > c->tr->nsets || c->tr->set_wall_s[ts[j] - 1] <= 0) continue;
        side a, b;
        if (bias_cmp_predict(c, m, ts[j], &a, err, errlen) || bias_cmp_predict(c, fm, ts[j], &b, err, errlen)) {
            rc = -1;
            break;
        }
        snprintf(k->pred[k->npred].what, sizeof k->pred[k->npred].what, "%s set %d", c->tr->kv_policy, ts[j]);
        k->pred[k->npred].measured = c->tr->set_wall_s[ts[j] - 1];
        k->pred[k->npred].before = a.wall_s;
        k->pred[k->npred].after = b.wall_s;
        k->npred++;
    }
    free(ts);
    return rc;
}

int bias_cmp_calibrate(cmp *c, int n, const cm_model *m, calib *k, const char *coeffs_path, char *err, size_t errlen) {
    memset(k, 0, sizeof *k);
    const bias_trace *t0 = c[0].tr;
    snprintf(k->why, sizeof k->why, "not done: %zu measured steps (a fit wants at least 32, and a server run has none)", t0->nstep);
    if (t0->nstep < 32) return 0;
    int sets[64], ns = 0;
    for (size_t i = 0; i < t0->nstep && ns < 64; i++) {
        int s = t0->step[i].set, j;
        for (j = 0; j < ns && sets[j] != s; j++) {}
        if (j == ns) sets[ns++] = s;
    }
    cm_step_obs *fit = malloc(t0->nstep * sizeof *fit), *test = NULL;
    size_t ntest_cap = 0;
    for (int i = 0; i < n; i++) ntest_cap += c[i].tr->nstep;
    test = malloc((ntest_cap + 1) * sizeof *test);
    int rc = -1, nf = 0, nt = 0;
    if (!fit || !test) { snprintf(err, errlen, "out of memory"); goto out; }
    if (ns >= 2) {
        steps_obs(t0, sets[0], 0, fit, &nf);
        snprintf(k->fit_on, sizeof k->fit_on, "%s set %d", t0->kv_policy, sets[0]);
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < c[i].tr->nstep; j++) {
                const bias_trace_step *s = &c[i].tr->step[j];
                if ((i == 0 && s->set == sets[0]) || s->seconds <= 0) continue;
                test[nt++] = (cm_step_obs){ { s->num_seqs, s->prefill_tokens, s->decode_tokens, s->attn_ctx_tokens,
                                              s->attn_pairs > 0 ? s->attn_pairs : s->attn_ctx_tokens, 0, 0, 0, 0, 0 }, s->seconds };
            }
    } else {
        steps_obs(t0, 0, 1, fit, &nf);
        steps_obs(t0, 0, 2, test, &nt);
        snprintf(k->fit_on, sizeof k->fit_on, "%s first half of the steps", t0->kv_policy);
        for (int i = 1; i < n; i++)
            for (size_t j = 0; j < c[i].tr->nstep; j++) {
                const bias_trace_step *s = &c[i].tr->step[j];
                if (s->seconds > 0)
                    test[nt++] = (cm_step_obs){ { s->num_seqs, s->prefill_tokens, s->decode_tokens, s->attn_ctx_tokens,
                                                  s->attn_pairs > 0 ? s->attn_pairs : s->attn_ctx_tokens, 0, 0, 0, 0, 0 }, s->seconds };
            }
    }
    if (nf < 16) { snprintf(k->why, sizeof k->why, "not done: only %d steps to fit on", nf); rc = 0; goto out; }
    cm_model rm = *m;                                          /* the roofline is what a fit adjusts */
    rm.prof = NULL;
    if (cm_fit(&rm, fit, nf, &k->rep, err, errlen)) {           /* not fatal: reported as absent */
        snprintf(k->why, sizeof k->why, "not done: %.180s", err); rc = 0; goto out;
    }
    if (!(k->rep.r2 >= 0.5)) {                                 /* e.g. steps all of one shape */
        snprintf(k->why, sizeof k->why, "rejected: R^2 %.3g on %d steps (they do not vary enough to fit "
                 "four coefficients; the defaults are kept)", k->rep.r2, nf);
        rc = 0; goto out;
    }
    k->done = 1; k->n_fit = nf; k->n_test = nt;
    cm_model fm = rm;
    fm.k = k->rep.k;
    k->step_mape_before = mape(m, test, nt);
    k->step_mape_after = mape(&fm, test, nt);
    if (coeffs_path && cm_coeffs_save(&fm.k, coeffs_path, err, errlen)) goto out;
    /* whole sets predicted with the default and the fitted coefficients */
    for (int i = 0; i < n && k->npred < 8; i++)
        if (predict_sets(&c[i], i == 0 && ns >= 2 ? sets[0] : -1, m, &fm, k, err, errlen)) goto out;
    rc = 0;
out:
    free(fit); free(test);
    return rc;
}

