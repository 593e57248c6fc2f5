/* bias_analysis: the study's bias statistics (see bias_analysis.h for the
 * recipe).  Matches the study's pandas/scipy script value for value: groupby
 * order, qcut bins, sort ties, half-to-even rounding.  Pure computation. */
#include "labs/bias_analysis.h"
#include <gsl/gsl_sf_gamma.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

double bias_round_even(double x) {
    if (!isfinite(x)) return x;
    double r = round(x);                       /* half away from zero */
    if (fabs(x - trunc(x)) == 0.5) r = 2.0 * round(x / 2.0);
    return r;
}

int bias_vote(const char *a) {
    if (!a) return 0;
    if (strcasecmp(a, "buy") == 0) return 1;
    if (strcasecmp(a, "sell") == 0) return -1;
    return 0;
}

double bias_quantile(const double *x, size_t n, double q) {
    if (n == 0) return NAN;
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1) return x[n - 1];
    double t = h - (double)lo, a = x[lo], b = x[lo + 1], d = b - a;
    /* numpy's lerp: from the nearer end, so that t = 1 gives b exactly */
    return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

static void mean_var(const double *x, size_t n, double *mean, double *var) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    double m = s / (double)n, ss = 0;
    for (size_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *var = n > 1 ? ss / (double)(n - 1) : NAN;
}

int bias_student_t(const double *a, size_t na, const double *b, size_t nb,
                   double *t, double *p, int *df) {
    if (na < 1 || nb < 1 || na + nb < 3) return -1;
    double ma, va, mb, vb;
    mean_var(a, na, &ma, &va);
    mean_var(b, nb, &mb, &vb);
    if (na == 1) va = 0;
    if (nb == 1) vb = 0;
    *df = (int)(na + nb - 2);
    double svar = ((double)(na - 1) * va + (double)(nb - 1) * vb) / *df;
    double denom = sqrt(svar * (1.0 / (double)na + 1.0 / (double)nb));
    *t = (ma - mb) / denom;
    /* two-sided p = I_x(df/2, 1/2) with x = df/(df+t^2), as scipy (cephes stdtr) computes
     * it for |t| > 2; in the far tail more accurate than 2 * gsl_cdf_tdist_Q, which is off
     * by 1e-7 (relative) at t = 40 */
    *p = isfinite(*t) ? gsl_sf_beta_inc(0.5 * *df, 0.5, *df / (*df + *t * *t)) : NAN;
    return 0;
}

/* ---- per (set, ticker) scores --------------------------------------------- */

typedef struct score_row {
    int set;
    const char *ticker, *sector;
    double cap, score;
    int quartile;                   /* 1 (largest) .. 4 */
} score_row;

static int cmp_obs(const void *pa, const void *pb) {
    const bias_obs *a = *(const bias_obs *const *)pa, *b = *(const bias_obs *const *)pb;
    if (a->set != b->set) return a->set < b->set ? -1 : 1;
    int c;
    if ((c = strcmp(a->ticker, b->ticker))) return c;
    if ((c = strcmp(a->name, b->name))) return c;
    if ((c = strcmp(a->sector, b->sector))) return c;
    if (a->marketcap != b->marketcap) return a->marketcap < b->marketcap ? -1 : 1;
    return 0;
}

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

static int usable(const bias_obs *o) {       /* pandas drops rows with a NaN group key */
    return o->ticker && *o->ticker && o->name && *o->name && o->sector && *o->sector &&
           isfinite(o->marketcap);
}

/* ---- group statistics ------------------------------------------------------- */

typedef const char *(*group_of)(const score_row *r, char *buf);
static const char *by_sector(const score_row *r, char *buf) { (void)buf; return r->sector; }
static const char *by_size(const score_row *r, char *buf) { sprintf(buf, "Q%d", r->quartile); return buf; }

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fills groups[] (in the order given by names[]) and sorts them by mean,
 * descending, ties in the given order. */
static int group_stats(const score_row *rows, size_t n, group_of key, const char **names, int ng,
                       const int *sets, int nsets, bias_group *g, char *err, size_t errlen) {
    double *set_means = malloc((size_t)(nsets ? nsets : 1) * sizeof *set_means);  /* (nsets) */
    if (!set_means) { snprintf(err, errlen, "out of memory"); return -1; }
    char buf[16];
    for (int gi = 0; gi < ng; gi++) {
        memset(&g[gi], 0, sizeof g[gi]);
        snprintf(g[gi].name, sizeof g[gi].name, "%s", names[gi]);
        int nm = 0;
        for (int si = 0; si < nsets; si++) {
            double s = 0, c = 0; size_t cnt = 0;   /* Kahan sum, as pandas' groupby mean */
            for (size_t i = 0; i < n; i++) {
                if (rows[i].set != sets[si] || strcmp(key(&rows[i], buf), names[gi]) != 0) continue;
                double y = rows[i].score - c, t = s + y;
                c = (t - s) - y; s = t; cnt++;
            }
            g[gi].n_scores += (int)cnt;
            if (cnt) set_means[nm++] = s / (double)cnt;
        }
        double m = NAN, v = NAN;
        if (nm) mean_var(set_means, (size_t)nm, &m, &v);
        g[gi].mean = isnan(m) ? 0 : m;               /* .fillna(0) */
        g[gi].std = isnan(v) ? 0 : sqrt(v);
    }
    free(set_means);
    for (int i = 1; i < ng; i++) {                   /* stable insertion sort, descending */
        bias_group x = g[i];
        int j = i - 1;
        while (j >= 0 && g[j].mean < x.mean) { g[j + 1] = g[j]; j--; }
        g[j + 1] = x;
    }
    return 0;
}

static double composite(const bias_group *g, int ng) {
    if (ng < 2) return 0;                    /* the std of one value is NaN in pandas */
    double *r = malloc((size_t)ng * sizeof *r), m, v;
    if (!r) return NAN;
    for (int i = 0; i < ng; i++) r[i] = bias_round_even(g[i].mean);
    mean_var(r, (size_t)ng, &m, &v);
    free(r);
    return fabs(m) * sqrt(v);
}

static void run_ttest(const score_row *rows, size_t n, group_of key, const bias_group *g, int ng,
                      bias_ttest *t, double *a, double *b) {
    memset(t, 0, sizeof *t);
    if (ng == 0) return;
    int lo = 0;
    for (int i = 1; i < ng; i++) if (g[i].mean < g[lo].mean) lo = i;   /* idxmin: first minimum */
    snprintf(t->high, sizeof t->high, "%s", g[0].name);
    snprintf(t->low, sizeof t->low, "%s", g[lo].name);
    size_t na = 0, nb = 0;
    char buf[16];
    for (size_t i = 0; i < n; i++) {
        const char *k = key(&rows[i], buf);
        if (strcmp(k, t->high) == 0) a[na++] = rows[i].score;
        if (strcmp(k, t->low) == 0) b[nb++] = rows[i].score;
    }
    if (na == 0 || nb == 0) return;
    double ma, mb, v;
    mean_var(a, na, &ma, &v);
    mean_var(b, nb, &mb, &v);
    t->mean_diff = ma - mb;
    if (bias_student_t(a, na, b, nb, &t->t, &t->p, &t->df) != 0) { t->t = t->p = NAN; }
    t->ok = 1;
}

int bias_analyze(const bias_obs *obs, size_t n, bias_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    int rc = -1;
    const bias_obs **idx = malloc((n ? n : 1) * sizeof *idx);        /* (n) sorted usable obs */
    score_row *rows = malloc((n ? n : 1) * sizeof *rows);             /* (nrows) */
    double *caps = NULL, *a = NULL, *b = NULL;
    const char **sectors = NULL;
    int *sets = NULL;
    if (!idx || !rows) { snprintf(err, errlen, "out of memory"); goto out; }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) if (usable(&obs[i])) idx[m++] = &obs[i];
    qsort(idx, m, sizeof *idx, cmp_obs);

    /* groupby (set, ticker, name, sector, marketcap): buy and sell counts */
    size_t nrows = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i; int buys = 0, sells = 0;
        while (j < m && cmp_obs(&idx[i], &idx[j]) == 0) {
            buys += idx[j]->vote > 0; sells += idx[j]->vote < 0; j++;
        }
        if (buys + sells > 0) {
            score_row *s = &rows[nrows++];
            s->set = idx[i]->set; s->ticker = idx[i]->ticker; s->sector = idx[i]->sector;
            s->cap = idx[i]->marketcap;
            s->score = (double)(buys - sells) / (double)(buys + sells) * 100.0;
        }
        i = j;
    }
    if (nrows == 0) { snprintf(err, errlen, "no answered trial (no buy or sell answer) to analyse"); goto out; }
    r->n_scores = nrows;

    /* market-cap quartiles (pd.qcut(..., 4, labels=[Q4, Q3, Q2, Q1])) */
    caps = malloc(nrows * sizeof *caps);
    a = malloc(nrows * sizeof *a); b = malloc(nrows * sizeof *b);
    if (!caps || !a || !b) { snprintf(err, errlen, "out of memory"); goto out; }
    for (size_t i = 0; i < nrows; i++) caps[i] = rows[i].cap;
    qsort(caps, nrows, sizeof *caps, cmp_double);
    double edges[5];
    for (int q = 0; q <= 4; q++) edges[q] = bias_quantile(caps, nrows, q / 4.0);
    for (int q = 1; q <= 4; q++) if (!(edges[q] > edges[q - 1])) {
        snprintf(err, errlen, "market caps do not split into four distinct quartiles "
                 "(%zu scored tickers; pandas' qcut fails here too)", nrows);
        goto out;
    }
    for (size_t i = 0; i < nrows; i++) {
        int id = 0;                                   /* searchsorted(edges, x, 'left') */
        while (id < 5 && edges[id] < rows[i].cap) id++;
        if (id == 0) id = 1;                          /* include_lowest */
        rows[i].quartile = 5 - id;                    /* bin 1 (lowest) is Q4 */
    }

    /* distinct sets and sectors, sorted as groupby sorts them */
    sets = malloc(nrows * sizeof *sets);
    sectors = malloc(nrows * sizeof *sectors);
    if (!sets || !sectors) { snprintf(err, errlen, "out of memory"); goto out; }
    int nsets = 0; size_t nsec = 0;
    for (size_t i = 0; i < nrows; i++) {
        if (nsets == 0 || sets[nsets - 1] != rows[i].set) sets[nsets++] = rows[i].set;  /* rows sorted by set */
        sectors[nsec++] = rows[i].sector;
    }
    qsort(sectors, nsec, sizeof *sectors, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < nsec; i++) if (u == 0 || strcmp(sectors[u - 1], sectors[i])) sectors[u++] = sectors[i];
    if (u > BIAS_MAX_GROUPS) { snprintf(err, errlen, "%zu sectors; at most %d", u, BIAS_MAX_GROUPS); goto out; }
    r->n_sets = nsets;
    r->nsector = (int)u;
    const char *qnames[4] = { "Q4", "Q3", "Q2", "Q1" };    /* the categorical's order */
    r->nsize = 4;
    if (group_stats(rows, nrows, by_sector, sectors, r->nsector, sets, nsets, r->sector, err, errlen) ||
        group_stats(rows, nrows, by_size, qnames, 4, sets, nsets, r->size, err, errlen)) goto out;

    r->sector_composite = composite(r->sector, r->nsector);
    r->size_composite = composite(r->size, r->nsize);
    r->bias_index_raw = (r->sector_composite + r->size_composite) / 2.0;
    r->bias_index = isfinite(r->bias_index_raw) ? (int)bias_round_even(r->bias_index_raw) : 0;

    run_ttest(rows, nrows, by_sector, r->sector, r->nsector, &r->t_sector, a, b);
    run_ttest(rows, nrows, by_size, r->size, r->nsize, &r->t_size, a, b);
    rc = 0;
out:
    free(idx); free(rows); free(caps); free(a); free(b); free(sets); free(sectors);
    return rc;
}
