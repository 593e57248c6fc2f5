/* bias_aggregate: combine set files, analyse, write the result JSON (see
 * bias_aggregate.h).  Reads and writes only {model}_att_* files in one dir. */
#include "labs/bias_aggregate.h"
#include "labs/bias_output.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const bias_columns[BIAS_NCOLS] = {
    "ticker", "name", "marketcap", "sector", "trial", "set",
    "n_buy_evidence", "n_sell_evidence", "prompt", "llm_output", "llm_answer"
};

void bias_path(char *out, size_t n, const char *dir, const char *model, const char *suffix) {
    snprintf(out, n, "%s/%s%s", dir, model, suffix);
}

int bias_analyze_table(const bias_csv *t, bias_result *r, char *err, size_t errlen) {
    const char *need[6] = { "set", "ticker", "name", "sector", "marketcap", "llm_answer" };
    int col[6];
    for (int i = 0; i < 6; i++)
        if ((col[i] = bias_csv_col(t, need[i])) < 0) {
            snprintf(err, errlen, "%s:1: no column \"%s\"", t->path, need[i]); return -1;
        }
    bias_obs *obs = calloc(t->nrows ? t->nrows : 1, sizeof *obs);   /* (nrows) */
    if (!obs) { snprintf(err, errlen, "out of memory"); return -1; }
    int rc = -1;
    for (size_t i = 0; i < t->nrows; i++) {
        const char *set = bias_csv_at(t, i, col[0]), *cap = bias_csv_at(t, i, col[4]);
        char *end;
        double sd = strtod(set, &end);                 /* "2" or "2.0": pandas reads either */
        long sv = (long)sd;
        if (end == set || *end || sd != (double)sv) {
            snprintf(err, errlen, "%s:%ld: set \"%s\" is not an integer", t->path, t->lines[i], set); goto out;
        }
        double cv = NAN;
        if (*cap) {
            cv = strtod(cap, &end);
            if (end == cap || *end) {
                snprintf(err, errlen, "%s:%ld: market cap \"%s\" is not a number", t->path, t->lines[i], cap);
                goto out;
            }
        }
        obs[i] = (bias_obs){ .set = (int)sv, .ticker = bias_csv_at(t, i, col[1]),
                             .name = bias_csv_at(t, i, col[2]), .sector = bias_csv_at(t, i, col[3]),
                             .marketcap = cv, .vote = bias_vote(bias_csv_at(t, i, col[5])) };
    }
    if (bias_analyze(obs, t->nrows, r, err, errlen) == 0) rc = 0;
out:
    free(obs);
    return rc;
}

/* Set numbers n of "{model}_att_set_{n}.csv" files in dir, ascending. */
static int list_sets(const char *dir, const char *model, int **sets, int *nsets, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) { snprintf(err, errlen, "%s: %s", dir, strerror(errno)); return -1; }
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s_att_set_", model);
    size_t pl = strlen(prefix);
    int cap = 0; *sets = NULL; *nsets = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, pl) != 0) continue;
        char *end;
        long n = strtol(e->d_name + pl, &end, 10);
        if (end == e->d_name + pl || strcmp(end, ".csv") != 0 || n < 1) continue;
        if (*nsets == cap) {
            cap = cap ? cap * 2 : 8;
            int *ns = realloc(*sets, (size_t)cap * sizeof *ns);
            if (!ns) { closedir(d); free(*sets); *sets = NULL; snprintf(err, errlen, "out of memory"); return -1; }
            *sets = ns;
        }
        (*sets)[(*nsets)++] = (int)n;
    }
    closedir(d);
    for (int i = 1; i < *nsets; i++)                  /* numeric order: set 10 after set 9 */
        for (int j = i; j > 0 && (*sets)[j - 1] > (*sets)[j]; j--) {
            int t = (*sets)[j]; (*sets)[j] = (*sets)[j - 1]; (*sets)[j - 1] = t;
        }
    return 0;
}

int bias_combine_sets(const char *dir, const char *model, int num_sets, char *err, size_t errlen) {
    int *sets = NULL, nsets = 0, rc = -1;
    bias_buf out = {0};
    if (num_sets > 0) {
        if (!(sets = malloc((size_t)num_sets * sizeof *sets))) { snprintf(err, errlen, "out of memory"); return -1; }
        for (int i = 0; i < num_sets; i++) sets[i] = i + 1;
        nsets = num_sets;
    } else if (list_sets(dir, model, &sets, &nsets, err, errlen)) {
        return -1;
    }
    if (nsets == 0) { snprintf(err, errlen, "%s: no %s_att_set_N.csv file to combine", dir, model); goto out; }
    /* the study's columns, then any the first set adds (p_buy, note: real runs) */
    enum { MAX_EXTRA = 8 };
    char *extra[MAX_EXTRA];
    int nextra = 0;
    for (int s = 0; s < nsets; s++) {
        char path[4096], setno[16];
        snprintf(path, sizeof path, "%s/%s_att_set_%d.csv", dir, model, sets[s]);
        snprintf(setno, sizeof setno, "%d", sets[s]);
        bias_csv t;
        if (bias_csv_load(&t, path, err, errlen)) goto out_extra;
        int col[BIAS_NCOLS + MAX_EXTRA];
        for (int c = 0; c < BIAS_NCOLS; c++)
            if ((col[c] = bias_csv_col(&t, bias_columns[c])) < 0 && strcmp(bias_columns[c], "set") != 0) {
                snprintf(err, errlen, "%s:1: no column \"%s\"", path, bias_columns[c]);
                bias_csv_free(&t); goto out_extra;
            }
        if (s == 0) {
            const char *head[BIAS_NCOLS + MAX_EXTRA];
            for (int c = 0; c < BIAS_NCOLS; c++) head[c] = bias_columns[c];
            for (int c = 0; c < t.ncols && nextra < MAX_EXTRA; c++) {
                int known = 0;
                for (int k = 0; k < BIAS_NCOLS; k++) known |= !strcmp(t.header[c], bias_columns[k]);
                if (!known && (extra[nextra] = strdup(t.header[c]))) head[BIAS_NCOLS + nextra] = extra[nextra], nextra++;
            }
            bias_csv_row(&out, head, BIAS_NCOLS + nextra);
        }
        for (int k = 0; k < nextra; k++) col[BIAS_NCOLS + k] = bias_csv_col(&t, extra[k]);
        for (size_t r = 0; r < t.nrows; r++) {
            const char *f[BIAS_NCOLS + MAX_EXTRA];
            for (int c = 0; c < BIAS_NCOLS; c++)
                f[c] = strcmp(bias_columns[c], "set") == 0 ? setno : bias_csv_at(&t, r, col[c]);
            for (int k = 0; k < nextra; k++)
                f[BIAS_NCOLS + k] = col[BIAS_NCOLS + k] < 0 ? "" : bias_csv_at(&t, r, col[BIAS_NCOLS + k]);
            bias_csv_row(&out, f, BIAS_NCOLS + nextra);
        }
        bias_csv_free(&t);
    }
    for (int k = 0; k < nextra; k++) free(extra[k]);
    nextra = 0;
    if (out.oom) { snprintf(err, errlen, "out of memory"); goto out; }
    char path[4096];
    bias_path(path, sizeof path, dir, model, "_att_combined.csv");
    rc = bias_write_atomic(path, out.s, out.len, err, errlen);
    goto out;
out_extra:
    for (int k = 0; k < nextra; k++) free(extra[k]);
out:
    free(sets);
    bias_buf_free(&out);
    return rc;
}

int bias_aggregate(const char *dir, const char *model, int rebuild, bias_result *r,
                   char *err, size_t errlen) {
    char path[4096];
    bias_path(path, sizeof path, dir, model, "_att_combined.csv");
    if ((rebuild || access(path, R_OK) != 0) && bias_combine_sets(dir, model, 0, err, errlen)) return -1;
    bias_csv t;
    if (bias_csv_load(&t, path, err, errlen)) return -1;
    int rc = bias_analyze_table(&t, r, err, errlen);
    bias_csv_free(&t);
    if (rc) return -1;
    return bias_write_result(dir, model, r, err, errlen);
}

int bias_write_result(const char *dir, const char *model, const bias_result *r, char *err, size_t errlen) {
    char path[4096];
    bias_buf j = {0};
    if (bias_result_json(r, &j)) { bias_buf_free(&j); snprintf(err, errlen, "out of memory"); return -1; }
    bias_path(path, sizeof path, dir, model, "_att_result.json");
    int rc = bias_write_atomic(path, j.s, j.len, err, errlen);
    bias_buf_free(&j);
    return rc;
}
