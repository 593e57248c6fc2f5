/* calibrate: least-squares fit of cm_coeffs to measured steps.  The roofline
 * max() makes the model piecewise linear, so the fit alternates: put each
 * step on the roof that bounds it under the current coefficients, then solve
 *   t - allreduce = overhead + per_seq * n + F/peak * [flop-bound] / flops_eff
 *                                          + B/bw  * [bw-bound]   / bw_eff
 * as a linear problem (gsl_multifit_linear) for overhead, per_seq, 1/flops_eff
 * and 1/bw_eff, until no step changes roof.  Reads only the steps file. */
#include "sim/calibrate.h"
#include "base/file.h"

#include <cjson/cJSON.h>
#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CAL_MAX_ROUNDS 20

/* ---- reading steps --------------------------------------------------------- */

enum { F_PREFILL, F_DECODE, F_SEQS, F_CTX, F_SECONDS, F_PAIRS, F_N };
static const char *const f_names[F_N] = {
    "prefill_tokens", "decode_tokens", "num_seqs", "attn_ctx_tokens", "seconds", "attn_pairs"
};

/* Stores value v of field k into o; -1 with err (where = "file:line" or "file: step i"). */
static int set_obs(cm_step_obs *o, int k, double v, const char *where, char *err, size_t errlen) {
    if (!isfinite(v) || v < 0 || (k == F_SECONDS && v <= 0) || (k != F_SECONDS && v > 1e15) ||
        (k != F_SECONDS && v != floor(v))) {
        snprintf(err, errlen, "%s: %s %g must be %s", where, f_names[k], v,
                 k == F_SECONDS ? "a positive number of seconds" : "a non-negative integer");
        return -1;
    }
    switch (k) {
    case F_PREFILL: o->b.prefill_tokens = (long)v; break;
    case F_DECODE: o->b.decode_tokens = (long)v; break;
    case F_SEQS: o->b.num_seqs = v > 1e9 ? 1000000000 : (int)v; break;
    case F_CTX: o->b.attn_ctx_tokens = (long)v; break;
    case F_SECONDS: o->seconds = v; break;
    case F_PAIRS: o->b.attn_pairs = (long)v; break;
    }
    return 0;
}

static int load_json(const char *path, const char *text, cm_step_obs **out, int *n,
                     char *err, size_t errlen) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    int rc = -1;
    cm_step_obs *v = NULL;
    const cJSON *arr = cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "steps");
    if (!cJSON_IsArray(arr)) {
        int line = 1;
        for (const char *p = text; end && p < end && *p; p++) line += *p == '\n';
        snprintf(err, errlen, root ? "%s: want an array of steps or {\"steps\": [...]}"
                                   : "%s:%d: not valid JSON", path, line);
        goto out;
    }
    int m = cJSON_GetArraySize(arr), i = 0;
    v = calloc(m > 0 ? (size_t)m : 1, sizeof *v);                /* (m,) */
    if (!v) { snprintf(err, errlen, "%s: out of memory", path); goto out; }
    const cJSON *s;
    cJSON_ArrayForEach(s, arr) {
        char where[512];
        snprintf(where, sizeof where, "%s: step %d", path, i + 1);
        if (!cJSON_IsObject(s)) { snprintf(err, errlen, "%s: not an object", where); goto out; }
        for (int k = 0; k < F_N; k++) {
            const cJSON *it = cJSON_GetObjectItemCaseSensitive(s, f_names[k]);
            if (!it) {
                if (k == F_PAIRS) { v[i].b.attn_pairs = v[i].b.attn_ctx_tokens; continue; }
                snprintf(err, errlen, "%s: missing field '%s'", where, f_names[k]);
                goto out;
            }
            if (!cJSON_IsNumber(it)) {
                snprintf(err, errlen, "%s: field '%s' is not a number", where, f_names[k]);
                goto out;
            }
            if (set_obs(&v[i], k, it->valuedouble, where, err, errlen) < 0) goto out;
        }
        i++;
    }
    *out = v;
    *n = i;
    v = NULL;
    rc = 0;
out:
    free(v);
    cJSON_Delete(root);
    return rc;
}

/* ---- steps as CSV (libcsv): a header naming the columns, then one step a row;
 * blank lines and lines starting with '#' are skipped ------------------------- */
enum { CSV_MAX_FIELDS = 32, CSV_FIELD_MAX = 64 };
typedef struct csv_state {
    const char *path;
    char *err; size_t errlen;
    char f[CSV_MAX_FIELDS][CSV_FIELD_MAX];   /* the row being read; a longer field is "" */
    int nf;                                  /* its fields (counted beyond CSV_MAX_FIELDS too) */
    long line, row_line;                     /* the physical line fed, where the row started */
    int col[F_N], ncols, header, failed;     /* failed: 1 with err set */
    cm_step_obs *v;                          /* (cap,) the steps read, m of them */
    int m, cap;
} csv_state;

static void csv_field(void *s, size_t len, void *data) {
    csv_state *cs = data;
    if (cs->nf < CSV_MAX_FIELDS) {
        size_t k = len < CSV_FIELD_MAX ? len : 0;
        if (k) memcpy(cs->f[cs->nf], s, k);
        cs->f[cs->nf][k] = 0;
    }
    cs->nf++;
}

/* One data row into cs->v; -1 with err. */
static int csv_step(csv_state *cs, const char *where) {
    if (cs->nf != cs->ncols)
        return snprintf(cs->err, cs->errlen, "%s: %d fields, the header has %d", where, cs->nf, cs->ncols), -1;
    if (cs->m == cs->cap) {
        int cap = cs->cap ? 2 * cs->cap : 256;
        cm_step_obs *w = realloc(cs->v, (size_t)cap * sizeof *w);   /* (cap,) */
        if (!w) return snprintf(cs->err, cs->errlen, "%s: out of memory", where), -1;
        cs->v = w; cs->cap = cap;
    }
    cm_step_obs *o = &cs->v[cs->m];
    memset(o, 0, sizeof *o);
    for (int k = 0; k < F_N; k++) {
        int c = cs->col[k];
        if (c < 0 || c >= CSV_MAX_FIELDS) { if (k == F_PAIRS) o->b.attn_pairs = o->b.attn_ctx_tokens; continue; }
        char *e;
        errno = 0;
        double x = strtod(cs->f[c], &e);
        if (e == cs->f[c] || *e || errno)
            return snprintf(cs->err, cs->errlen, "%s: %s '%s' is not a number", where, f_names[k], cs->f[c]), -1;
        if (set_obs(o, k, x, where, cs->err, cs->errlen) < 0) return -1;
    }
    cs->m++;
    return 0;
}

static void csv_row(int c, void *data) {
    csv_state *cs = data;
    long start = cs->row_line;
    cs->row_line = cs->line + ((c == '\n' || c == '\r') ? 1 : 0);
    int nf = cs->nf;
    cs->nf = 0;
    if (cs->failed || nf == 0 || (nf >= 1 && cs->f[0][0] == '#') || (nf == 1 && !cs->f[0][0])) return;
    char where[512];
    snprintf(where, sizeof where, "%s:%ld", cs->path, start);
    cs->nf = nf;
    if (cs->header) { cs->failed = csv_step(cs, where) < 0; cs->nf = 0; return; }
    for (int i = 0; i < nf && i < CSV_MAX_FIELDS; i++)
        for (int k = 0; k < F_N; k++) if (!strcasecmp(cs->f[i], f_names[k])) cs->col[k] = i;
    for (int k = 0; k < F_PAIRS && !cs->failed; k++)
        if (cs->col[k] < 0) {
            snprintf(cs->err, cs->errlen, "%s: missing column '%s'", where, f_names[k]);
            cs->failed = 1;
        }
    cs->ncols = nf;
    cs->header = 1;
    cs->nf = 0;
}

static int load_csv(const char *path, char *text, cm_step_obs **out, int *n, char *err, size_t errlen) {
    csv_state cs = { .path = path, .err = err, .errlen = errlen, .line = 1, .row_line = 1 };
    for (int k = 0; k < F_N; k++) cs.col[k] = -1;
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        snprintf(err, errlen, "%s: csv_init failed", path);
        return -1;
    }
    size_t len = strlen(text), off = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) off = 3;        /* a UTF-8 byte-order mark */
    int rc = -1;
    while (off < len && !cs.failed) {              /* a physical line at a time: rows know their line */
        const char *nl = memchr(text + off, '\n', len - off);
        size_t k = nl ? (size_t)(nl - (text + off)) + 1 : len - off;
        if (csv_parse(&p, text + off, k, csv_field, csv_row, &cs) != k) {
            snprintf(err, errlen, "%s:%ld: malformed CSV (%s)", path, cs.line, csv_strerror(csv_error(&p)));
            goto out;
        }
        off += k;
        if (nl) cs.line++;
    }
    if (!cs.failed && csv_fini(&p, csv_field, csv_row, &cs) != 0) {
        snprintf(err, errlen, "%s:%ld: unclosed quote", path, cs.row_line);
        goto out;
    }
    if (cs.failed) goto out;
    if (!cs.header) { snprintf(err, errlen, "%s: empty file", path); goto out; }
    *out = cs.v;
    *n = cs.m;
    cs.v = NULL;
    rc = 0;
out:
    free(cs.v);
    csv_free(&p);
    return rc;
}

int cm_steps_load(const char *path, cm_step_obs **out, int *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    char *text = file_read_all(path, 256u << 20, NULL, err, errlen);
    if (!text) return -1;
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    int rc = (*p == '[' || *p == '{') ? load_json(path, text, out, n, err, errlen)
                                      : load_csv(path, text, out, n, err, errlen);
    free(text);
    if (rc == 0 && *n == 0) {
        snprintf(err, errlen, "%s: no steps", path);
        free(*out);
        *out = NULL;
        rc = -1;
    }
    return rc;
}

/* ---- fitting --------------------------------------------------------------- */

static double mape(const cm_model *m, const cm_step_obs *s, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += fabs(cm_step_time(m, &s[i].b) - s[i].seconds) / s[i].seconds;
    return sum / n;
}

/* Seconds of the TP all-reduces alone: the step time with free compute and
 * memory and no overheads. */
static double allreduce_s(const cm_model *m, const cm_batch *b) {
    cm_model z = *m;
    z.k.flops_eff = z.k.bw_eff = 1e300;
    z.k.step_overhead_s = z.k.per_seq_s = 0;
    return cm_step_time(&z, b);
}

/* The fit's working set: per step its seconds at peak FLOP/s and at peak
 * bandwidth, its measured time less the all-reduces and its roof; GSL's
 * system X c = y and the coefficients' covariance. */
typedef struct fit_work {
    const cm_step_obs *s;
    int     n;
    int     seqs_vary;     /* num_seqs differs between steps: per_seq_s can be fitted */
    double *F;             /* (n,) seconds at peak FLOP/s */
    double *B;             /* (n,) seconds at peak bandwidth */
    double *Y;             /* (n,) measured minus all-reduce */
    char   *roof;          /* (n,) 1 = FLOP-bound, 0 = bandwidth-bound */
    gsl_matrix *X, *cov;   /* (n, 4), (4, 4) */
    gsl_vector *y, *c;     /* (n,), (4,) */
} fit_work;

static void fit_work_free(fit_work *w) {
    gsl_vector_free(w->c);
    gsl_vector_free(w->y);
    gsl_matrix_free(w->cov);
    gsl_matrix_free(w->X);
    free(w->roof);
    free(w->Y);
    free(w->B);
    free(w->F);
}

/* Allocates w for the n steps s and puts each on its roof under m's
 * coefficients.  0, or -1 with err (w is then freed). */
static int fit_work_init(fit_work *w, const cm_model *m, const cm_step_obs *s, int n, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    w->s = s;
    w->n = n;
    w->F = malloc((size_t)n * sizeof *w->F);
    w->B = malloc((size_t)n * sizeof *w->B);
    w->Y = malloc((size_t)n * sizeof *w->Y);
    w->roof = calloc((size_t)n, 1);
    w->X = gsl_matrix_alloc((size_t)n, 4);
    w->cov = gsl_matrix_alloc(4, 4);
    w->y = gsl_vector_alloc((size_t)n);
    w->c = gsl_vector_alloc(4);
    gsl_set_error_handler_off();                   /* report GSL errors, never abort */
    if (!w->F || !w->B || !w->Y || !w->roof || !w->X || !w->cov || !w->y || !w->c) {
        snprintf(err, errlen, "out of memory for %d steps", n);
        fit_work_free(w);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        w->F[i] = cm_step_flops(m, &s[i].b) / m->gpu.flops_16;
        w->B[i] = cm_step_bytes(m, &s[i].b) / m->gpu.mem_bw;
        w->Y[i] = s[i].seconds - allreduce_s(m, &s[i].b);
        w->roof[i] = w->F[i] / m->k.flops_eff > w->B[i] / m->k.bw_eff;
        w->seqs_vary |= s[i].b.num_seqs != s[0].b.num_seqs;
    }
    return 0;
}

/* One round: solves the linear problem with every step on its current roof,
 * keeps the coefficients physical in fit->k, and moves each step to the roof
 * that now bounds it.  1 when a step changed roof, 0 when none did, -1 with err. */
static int fit_round(fit_work *w, cm_model *fit, char *err, size_t errlen) {
    const cm_step_obs *s = w->s;
    const int n = w->n;
    const double *F = w->F, *B = w->B, *Y = w->Y;
    char *roof = w->roof;
    /* columns: 1, num_seqs, F on the FLOP roof, B on the bandwidth roof;
     * an unused column would make X singular, so a fixed coefficient
     * moves to the left-hand side instead */
    int use[4] = { 1, w->seqs_vary, 0, 0 };
    for (int i = 0; i < n; i++) {
        if (roof[i] && F[i] > 0) use[2] = 1;
        if (!roof[i] && B[i] > 0) use[3] = 1;
    }
    double fixed[4] = { 0, fit->k.per_seq_s, 1 / fit->k.flops_eff, 1 / fit->k.bw_eff };
    int p = 0, idx[4];
    for (int j = 0; j < 4; j++) if (use[j]) idx[p++] = j;
    if (n <= p) {
        snprintf(err, errlen, "need more than %d measured steps (got %d)", p, n);
        return -1;
    }
    gsl_matrix_view Xv = gsl_matrix_submatrix(w->X, 0, 0, (size_t)n, (size_t)p);
    gsl_vector_view cv = gsl_vector_subvector(w->c, 0, (size_t)p);
    gsl_matrix_view Cv = gsl_matrix_submatrix(w->cov, 0, 0, (size_t)p, (size_t)p);
    gsl_multifit_linear_workspace *ws = gsl_multifit_linear_alloc((size_t)n, (size_t)p);
    if (!ws) { snprintf(err, errlen, "out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        double row[4] = { 1, s[i].b.num_seqs, roof[i] ? F[i] : 0, roof[i] ? 0 : B[i] };
        double yi = Y[i];
        for (int j = 0; j < 4; j++) if (!use[j]) yi -= fixed[j] * row[j];
        for (int k = 0; k < p; k++) gsl_matrix_set(&Xv.matrix, (size_t)i, (size_t)k, row[idx[k]]);
        gsl_vector_set(w->y, (size_t)i, yi);
    }
    double chisq;
    gsl_vector_view yv = gsl_vector_subvector(w->y, 0, (size_t)n);
    int st = gsl_multifit_linear(&Xv.matrix, &yv.vector, &cv.vector, &Cv.matrix, &chisq, ws);
    gsl_multifit_linear_free(ws);
    if (st) { snprintf(err, errlen, "least-squares fit failed (GSL error %d)", st); return -1; }
    double got[4] = { fit->k.step_overhead_s, fit->k.per_seq_s, 1 / fit->k.flops_eff, 1 / fit->k.bw_eff };
    for (int k = 0; k < p; k++) got[idx[k]] = gsl_vector_get(&cv.vector, (size_t)k);
    /* keep the coefficients physical: times >= 0, efficiencies in (0, 1] */
    fit->k.step_overhead_s = got[0] > 0 ? got[0] : 0;
    fit->k.per_seq_s = got[1] > 0 ? got[1] : 0;
    if (got[2] > 0) fit->k.flops_eff = got[2] < 1 ? 1 : 1 / got[2];
    if (got[3] > 0) fit->k.bw_eff = got[3] < 1 ? 1 : 1 / got[3];
    int changed = 0;
    for (int i = 0; i < n; i++) {
        char r = F[i] / fit->k.flops_eff > B[i] / fit->k.bw_eff;
        changed |= r != roof[i];
        roof[i] = r;
    }
    return changed;
}

/* The report of a finished fit: coefficients, roofs, R^2, errors before and after. */
static void fit_report(const fit_work *w, const cm_model *m, const cm_model *fit, cm_fit_report *rep) {
    const cm_step_obs *s = w->s;
    const int n = w->n;
    double mean = 0, ss_tot = 0, ss_res = 0;
    for (int i = 0; i < n; i++) mean += s[i].seconds / n;
    for (int i = 0; i < n; i++) {
        double e = cm_step_time(fit, &s[i].b) - s[i].seconds;
        ss_res += e * e;
        ss_tot += (s[i].seconds - mean) * (s[i].seconds - mean);
        rep->n_flops_bound += w->roof[i];
    }
    rep->k = fit->k;
    rep->n = n;
    rep->n_bw_bound = n - rep->n_flops_bound;
    rep->r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1;
    rep->mape_before = mape(m, s, n);
    rep->mape_after = mape(fit, s, n);
}

int cm_fit(const cm_model *m, const cm_step_obs *s, int n, cm_fit_report *rep,
           char *err, size_t errlen) {
    memset(rep, 0, sizeof *rep);
    if (n < 4) {
        snprintf(err, errlen, "need at least 4 measured steps to fit 4 coefficients (got %d)", n);
        return -1;
    }
    fit_work w;
    if (fit_work_init(&w, m, s, n, err, errlen)) return -1;
    cm_model fit = *m;
    int changed = 1;
    for (rep->iterations = 0; changed && rep->iterations < CAL_MAX_ROUNDS; rep->iterations++)
        if ((changed = fit_round(&w, &fit, err, errlen)) < 0) break;
    if (changed >= 0) fit_report(&w, m, &fit, rep);
    fit_work_free(&w);
    return changed < 0 ? -1 : 0;
}

/* ---- prediction without fitting ------------------------------------------------ */
static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cm_predict(const cm_model *m, const cm_step_obs *s, int n, cm_predict_report *rep, char *err, size_t errlen) {
    memset(rep, 0, sizeof *rep);
    if (n <= 0) { snprintf(err, errlen, "no measured steps"); return -1; }
    double *e = malloc((size_t)n * sizeof *e);            /* (n,) |relative error| per step */
    if (!e) { snprintf(err, errlen, "out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        double p = cm_step_time(m, &s[i].b);
        rep->predicted_s += p;
        rep->measured_s += s[i].seconds;
        e[i] = fabs(p / s[i].seconds - 1);
        rep->mean_abs_err += e[i] / n;
    }
    qsort(e, (size_t)n, sizeof *e, cmp_dbl);
    rep->n = n;
    rep->median_abs_err = n % 2 ? e[n / 2] : 0.5 * (e[n / 2 - 1] + e[n / 2]);
    rep->p90_abs_err = e[(int)(0.9 * (n - 1) + 0.5)];
    rep->wall_err = rep->predicted_s / rep->measured_s - 1;
    free(e);
    return 0;
}
