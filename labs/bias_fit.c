/* bias_fit: fitting a profile to a published result (see bias_fit.h). */
#include "labs/bias_fit.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sector_index(const bias_profile *p, const char *name) {
    for (int i = 0; i < p->nsector; i++) if (strcmp(p->sector_name[i], name) == 0) return i;
    return -1;
}

void bias_profile_expected(const bias_profile *p, const bias_universe *u, double *sector, double *size) {
    int *q = malloc((u->n ? u->n : 1) * sizeof *q);
    double ssum[BIAS_PROFILE_SECTORS] = {0}, zsum[4] = {0};
    int scnt[BIAS_PROFILE_SECTORS] = {0}, zcnt[4] = {0};
    if (!q) return;
    bias_universe_quartiles(u, q);
    for (size_t i = 0; i < u->n; i++) {
        int s = sector_index(p, u->stocks[i].sector);
        double b = p->base + (s >= 0 ? p->sector[s] : 0) + p->size[q[i] - 1];
        if (s >= 0) { ssum[s] += b; scnt[s]++; }
        zsum[q[i] - 1] += b; zcnt[q[i] - 1]++;
    }
    for (int s = 0; s < p->nsector; s++) sector[s] = scnt[s] ? ssum[s] / scnt[s] : 0;
    for (int k = 0; k < 4; k++) size[k] = zcnt[k] ? zsum[k] / zcnt[k] : 0;
    free(q);
}

static int read_groups(const cJSON *root, const char *key, char names[][64], double *mean, int max,
                       const char *path, char *err, size_t errlen) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, key), *it;
    if (!cJSON_IsObject(g)) { snprintf(err, errlen, "%s: no \"%s\" object", path, key); return -1; }
    int n = 0;
    cJSON_ArrayForEach(it, g) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "bias_mean");
        if (!cJSON_IsNumber(m)) { snprintf(err, errlen, "%s: %s.%s has no bias_mean", path, key, it->string); return -1; }
        if (n == max) { snprintf(err, errlen, "%s: too many groups in %s", path, key); return -1; }
        snprintf(names[n], 64, "%s", it->string);
        mean[n++] = m->valuedouble;
    }
    return n;
}

/* Pooled within-group sd implied by a published t-test, or NAN. */
static double pooled_sd(const cJSON *root, const char *which, int n1, int n2) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "t_test_results"), which);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "mean_diff"), *ts = cJSON_GetObjectItemCaseSensitive(t, "t_statistic");
    if (!cJSON_IsNumber(d) || !cJSON_IsNumber(ts) || ts->valuedouble == 0 || n1 < 1 || n2 < 1) return NAN;
    return fabs(d->valuedouble / (ts->valuedouble * sqrt(1.0 / n1 + 1.0 / n2)));
}

/* sqrt((V - N) / V): V the published variance of group means, N the mean
 * binomial variance of a group mean (vb per score, n_g tickers, sets). */
static double shrink(const double *means, const int *n, int ng, double vb, int sets) {
    if (ng < 2) return 1;
    double m = 0, v = 0, noise = 0;
    int used = 0;
    for (int g = 0; g < ng; g++) m += means[g] / ng;
    for (int g = 0; g < ng; g++) v += (means[g] - m) * (means[g] - m) / (ng - 1);
    for (int g = 0; g < ng; g++) if (n[g] > 0) { noise += vb / ((double)n[g] * sets); used++; }
    if (!used || v <= 0) return 1;
    noise /= used;
    return v > noise ? sqrt((v - noise) / v) : 0;
}

/* Sector and size effects by backfitting an additive model (lean = base +
 * sector + size quartile) until each group's expected mean is its target,
 * then centred: their ticker-weighted means go into base.  q: (u->n) quartiles. */
static void backfit(bias_profile *p, const bias_universe *u, const int *q, const double *starget,
                    const double *ztarget) {
    int ns = p->nsector;
    /* a_s = T_s - mean_{t in s} c_q(t);  c_q = T_q - mean_{t in q} a_s(t) */
    for (int it = 0; it < 500; it++) {
        double cs[BIAS_PROFILE_SECTORS] = {0}; int cn[BIAS_PROFILE_SECTORS] = {0};
        for (size_t i = 0; i < u->n; i++) {
            int s = sector_index(p, u->stocks[i].sector);
            if (s >= 0) { cs[s] += p->size[q[i] - 1]; cn[s]++; }
        }
        for (int s = 0; s < ns; s++) p->sector[s] = starget[s] - (cn[s] ? cs[s] / cn[s] : 0);
        double zs[4] = {0}; int zn[4] = {0};
        for (size_t i = 0; i < u->n; i++) {
            int s = sector_index(p, u->stocks[i].sector);
            zs[q[i] - 1] += s >= 0 ? p->sector[s] : 0; zn[q[i] - 1]++;
        }
        for (int k = 0; k < 4; k++) p->size[k] = ztarget[k] - (zn[k] ? zs[k] / zn[k] : 0);
    }
    double ms = 0, mz = 0;
    for (size_t i = 0; i < u->n; i++) {
        int s = sector_index(p, u->stocks[i].sector);
        ms += s >= 0 ? p->sector[s] : 0;
        mz += p->size[q[i] - 1];
    }
    ms /= u->n ? (double)u->n : 1; mz /= u->n ? (double)u->n : 1;
    for (int s = 0; s < ns; s++) p->sector[s] -= ms;
    for (int k = 0; k < 4; k++) p->size[k] -= mz;
    p->base = ms + mz;
}

/* A simulated run adds the binomial noise of its own trials to every group
 * mean, so the effects are scaled down (*k_sec, *k_siz) until (effect spread +
 * that noise) equals the published spread of group means; then rounded. */
static void shrink_effects(bias_profile *p, const bias_universe *u, const int *q, const double *starget,
                           const double *ztarget, int num_sets, int num_trials, double *k_sec, double *k_siz) {
    int ns = p->nsector;
    double pb0 = (1 + p->base / 100) / 2, vb = 40000.0 * pb0 * (1 - pb0) / num_trials;
    int scnt[BIAS_PROFILE_SECTORS] = {0}, zcnt[4] = {0};
    for (size_t i = 0; i < u->n; i++) {
        int s = sector_index(p, u->stocks[i].sector);
        if (s >= 0) scnt[s]++;
        zcnt[q[i] - 1]++;
    }
    *k_sec = shrink(starget, scnt, ns, vb, num_sets);
    *k_siz = shrink(ztarget, zcnt, 4, vb, num_sets);
    for (int s = 0; s < ns; s++) p->sector[s] *= *k_sec;
    for (int k = 0; k < 4; k++) p->size[k] *= *k_siz;
    for (int s = 0; s < ns; s++) p->sector[s] = round(p->sector[s] * 100) / 100;
    for (int k = 0; k < 4; k++) p->size[k] = round(p->size[k] * 100) / 100;
    p->base = round(p->base * 100) / 100;
}

/* Per-ticker noise: the pooled sd the published t statistics imply (*sd_sec,
 * *sd_siz), less the binomial sd of a num_trials score (*var_binom) and the
 * other attribute's spread.  ez: the expected size-group means. */
static void fit_noise(bias_profile *p, const bias_universe *u, const cJSON *root, const double *ez,
                      int num_sets, int num_trials, double *sd_sec, double *sd_siz, double *var_binom) {
    const cJSON *br = cJSON_GetObjectItemCaseSensitive(root, "bias_result");
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(br, "high_bias_sector"), *ls = cJSON_GetObjectItemCaseSensitive(br, "low_bias_sector");
    int n_hs = 0, n_ls = 0;
    for (size_t i = 0; i < u->n; i++) {
        if (cJSON_IsString(hs) && strcmp(u->stocks[i].sector, hs->valuestring) == 0) n_hs++;
        if (cJSON_IsString(ls) && strcmp(u->stocks[i].sector, ls->valuestring) == 0) n_ls++;
    }
    int nq = (int)(u->n / 4);
    *sd_sec = pooled_sd(root, "sector_comparison", n_hs * num_sets, n_ls * num_sets);
    *sd_siz = pooled_sd(root, "size_comparison", nq * num_sets, nq * num_sets);
    double mean_b = 0;
    for (int k = 0; k < 4; k++) mean_b += ez[k] / 4;
    double pb = (1 + mean_b / 100) / 2;
    *var_binom = 40000.0 * pb * (1 - pb) / num_trials;
    double var_size = 0, var_sec = 0, msec = 0;
    for (int k = 0; k < 4; k++) var_size += p->size[k] * p->size[k] / 4;
    for (size_t i = 0; i < u->n; i++) { int s = sector_index(p, u->stocks[i].sector); msec += s >= 0 ? p->sector[s] : 0; }
    msec /= u->n ? (double)u->n : 1;
    for (size_t i = 0; i < u->n; i++) { int s = sector_index(p, u->stocks[i].sector); double d = (s >= 0 ? p->sector[s] : 0) - msec; var_sec += d * d; }
    var_sec /= u->n ? (double)u->n : 1;
    double v1 = *sd_sec * *sd_sec - *var_binom - var_size, v2 = *sd_siz * *sd_siz - *var_binom - var_sec;
    int nv = 0; double v = 0;
    if (isfinite(v1)) { v += v1 > 0 ? v1 : 0; nv++; }
    if (isfinite(v2)) { v += v2 > 0 ? v2 : 0; nv++; }
    p->ticker_noise = nv ? round(sqrt(v / nv) * 10) / 10 : 0;
}

int bias_fit_profile(const char *path, const bias_universe *u, int num_sets, int num_trials,
                     bias_profile *p, bias_buf *note, char *err, size_t errlen) {
    bias_buf b = {0};
    if (bias_buf_read_file(&b, path)) { snprintf(err, errlen, "%s: cannot open", path); return -1; }
    cJSON *root = b.s ? cJSON_Parse(b.s) : NULL;
    bias_buf_free(&b);
    if (!root) { snprintf(err, errlen, "%s: not JSON", path); return -1; }
    int rc = -1, *q = NULL;
    char snames[BIAS_PROFILE_SECTORS][64], znames[8][64];
    double starget[BIAS_PROFILE_SECTORS], ztarget[8], size_t_[4] = {0};
    int ns = read_groups(root, "sector_stats", snames, starget, BIAS_PROFILE_SECTORS, path, err, errlen);
    int nz = ns < 0 ? -1 : read_groups(root, "size_stats", znames, ztarget, 8, path, err, errlen);
    if (ns < 0 || nz < 0) goto out;
    for (int i = 0; i < nz; i++) {
        int k = znames[i][0] == 'Q' ? atoi(znames[i] + 1) : 0;
        if (k < 1 || k > 4) { snprintf(err, errlen, "%s: size group \"%s\" is not Q1..Q4", path, znames[i]); goto out; }
        size_t_[k - 1] = ztarget[i];
    }
    p->nsector = ns;
    for (int s = 0; s < ns; s++) { snprintf(p->sector_name[s], 64, "%s", snames[s]); p->sector[s] = starget[s]; }
    p->base = 0;
    for (int k = 0; k < 4; k++) p->size[k] = 0;
    if (!(q = malloc((u->n ? u->n : 1) * sizeof *q))) { snprintf(err, errlen, "out of memory"); goto out; }
    bias_universe_quartiles(u, q);
    double k_sec, k_siz, sd_sec, sd_siz, var_binom, es[BIAS_PROFILE_SECTORS], ez[4];
    backfit(p, u, q, starget, size_t_);
    shrink_effects(p, u, q, starget, size_t_, num_sets, num_trials, &k_sec, &k_siz);
    bias_profile_expected(p, u, es, ez);
    fit_noise(p, u, root, ez, num_sets, num_trials, &sd_sec, &sd_siz, &var_binom);

    bias_buf_printf(note, "Fitted by `labs/bias fit-profile` to %s over %zu tickers (%d sets x %d trials assumed). "
                    "Sector and size effects: backfitting of an additive model (lean = base + sector + size quartile) "
                    "so that each group's expected mean equals the published bias_mean. Ticker noise: the within-group sd "
                    "implied by the published t statistics (sd = mean_diff / (t sqrt(1/n1 + 1/n2))) = %.1f (sector) and "
                    "%.1f (size), less the binomial sd of a %d-trial score (%.1f) and the other attribute's spread. "
                    "Shrinkage: effects scaled by %.3f (sector) and %.3f (size) so that the spread of the group means, "
                    "plus the binomial noise a simulated run adds, equals the published spread (else the simulated bias "
                    "index runs high). Largest gap between the shrunk expected and the published group means: ",
                    path, u->n, num_sets, num_trials, sd_sec, sd_siz, num_trials, sqrt(var_binom), k_sec, k_siz);
    double worst = 0;
    for (int s = 0; s < ns; s++) worst = fmax(worst, fabs(es[s] - starget[s]));
    for (int k = 0; k < 4; k++) worst = fmax(worst, fabs(ez[k] - size_t_[k]));
    bias_buf_printf(note, "%.2f points. The option-order effect and the reply habits are not identifiable "
                    "from a result file; they are set by hand.", worst);
    rc = 0;
out:
    free(q);
    cJSON_Delete(root);
    return rc;
}

int bias_profile_write(const bias_profile *p, const char *note, const char *path, char *err, size_t errlen) {
    bias_buf b = {0};
    char x[64];
#define NUM(v) (bias_fmt_double(x, sizeof x, (v)), x)
    bias_buf_printf(&b, "{\n  \"name\": ");
    bias_json_str(&b, p->name);
    bias_buf_printf(&b, ",\n  \"note\": ");
    bias_json_str(&b, note ? note : "");
    bias_buf_printf(&b, ",\n  \"base\": %s,\n  \"sector\": {", NUM(p->base));
    for (int s = 0; s < p->nsector; s++) {
        bias_buf_printf(&b, "%s\n    ", s ? "," : "");
        bias_json_str(&b, p->sector_name[s]);
        bias_buf_printf(&b, ": %s", NUM(p->sector[s]));
    }
    bias_buf_printf(&b, "\n  },\n  \"size\": {");
    for (int k = 0; k < 4; k++) bias_buf_printf(&b, "%s \"Q%d\": %s", k ? "," : "", k + 1, NUM(p->size[k]));
    bias_buf_printf(&b, " },\n  \"size_slope\": %s,\n", NUM(p->size_slope));
    bias_buf_printf(&b, "  \"order_effect\": %s,\n", NUM(p->order_effect));
    bias_buf_printf(&b, "  \"ticker_noise\": %s,\n  \"noise_seed\": %llu,\n", NUM(p->ticker_noise), (unsigned long long)p->noise_seed);
    bias_buf_printf(&b, "  \"hold_rate\": %s,\n", NUM(p->hold_rate));
    bias_buf_printf(&b, "  \"case_rate\": %s,\n", NUM(p->case_rate));
    bias_buf_printf(&b, "  \"malformed_rate\": %s,\n", NUM(p->malformed_rate));
    bias_buf_printf(&b, "  \"error_rate\": %s,\n", NUM(p->error_rate));
    bias_buf_printf(&b, "  \"output_tokens_mean\": %s,\n", NUM(p->output_tokens_mean));
    bias_buf_printf(&b, "  \"output_tokens_sd\": %s,\n", NUM(p->output_tokens_sd));
    bias_buf_printf(&b, "  \"temperature\": %s\n}\n", NUM(p->temperature));
#undef NUM
    int rc = b.oom ? -1 : bias_write_atomic(path, b.s, b.len, err, errlen);
    if (b.oom) snprintf(err, errlen, "out of memory");
    bias_buf_free(&b);
    return rc;
}
