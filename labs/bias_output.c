/* bias_output: CSV and JSON text in the study's formats, and atomic file
 * writes.  Touches only the paths it is given (and their .tmp siblings). */
#include "labs/bias_output.h"
#include "base/file.h"
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIT(b, s) bias_buf_add((b), (s), sizeof(s) - 1)

void bias_buf_add(bias_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = 1; return; }
        b->s = ns; b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void bias_buf_printf(bias_buf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) { bias_buf_add(b, small, (size_t)n); return; }
    char *big = malloc((size_t)n + 1);
    if (!big) { b->oom = 1; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    bias_buf_add(b, big, (size_t)n);
    free(big);
}

int bias_buf_read_file(bias_buf *b, const char *path) {
    char e[8];
    size_t n = 0;
    char *s = file_read_all(path, 0, &n, e, sizeof e);
    if (!s) return -1;                             /* errno from the failed open or read */
    bias_buf_add(b, s, n);
    free(s);
    return 0;
}

void bias_buf_free(bias_buf *b) { free(b->s); memset(b, 0, sizeof *b); }

void bias_fmt_double(char *out, size_t n, double x) {
    if (isnan(x)) { snprintf(out, n, "NaN"); return; }
    if (isinf(x)) { snprintf(out, n, x > 0 ? "Infinity" : "-Infinity"); return; }
    if (x == 0) { snprintf(out, n, signbit(x) ? "-0.0" : "0.0"); return; }
    char e[40];
    for (int p = 1; p <= 17; p++) {                    /* shortest digits that round-trip */
        snprintf(e, sizeof e, "%.*e", p - 1, x);
        if (strtod(e, NULL) == x) break;
    }
    /* e = [-]d[.ddd]e[+-]XX */
    char digits[24]; int nd = 0, neg = e[0] == '-';
    const char *c = e + neg;
    for (; *c && *c != 'e'; c++) if (*c != '.') digits[nd++] = *c;
    int exp10 = atoi(c + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char s[64]; int k = 0;
    if (neg) s[k++] = '-';
    if (exp10 >= -4 && exp10 < 16) {                   /* Python's repr switches at 1e16 / 1e-4 */
        if (exp10 < 0) {
            s[k++] = '0'; s[k++] = '.';
            for (int i = 0; i < -exp10 - 1; i++) s[k++] = '0';
            for (int i = 0; i < nd; i++) s[k++] = digits[i];
        } else {
            for (int i = 0; i <= exp10; i++) s[k++] = i < nd ? digits[i] : '0';
            s[k++] = '.';
            if (nd > exp10 + 1) for (int i = exp10 + 1; i < nd; i++) s[k++] = digits[i];
            else s[k++] = '0';
        }
        s[k] = 0;
    } else {
        s[k++] = digits[0];
        if (nd > 1) { s[k++] = '.'; for (int i = 1; i < nd; i++) s[k++] = digits[i]; }
        k += sprintf(s + k, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    snprintf(out, n, "%s", s);
}

double bias_round_nd(double x, int nd) {
    if (!isfinite(x)) return x;
    char b[400];
    snprintf(b, sizeof b, "%.*f", nd, x);              /* glibc rounds the exact value, ties to even */
    return strtod(b, NULL);
}

void bias_json_str(bias_buf *b, const char *s) {
    LIT(b, "\"");
    const unsigned char *p = (const unsigned char *)s, *run = p;
    for (; *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\') continue;   /* copied in runs */
        bias_buf_add(b, (const char *)run, (size_t)(p - run));
        run = p + 1;
        switch (*p) {
        case '"':  LIT(b, "\\\""); break;
        case '\\': LIT(b, "\\\\"); break;
        case '\n': LIT(b, "\\n"); break;
        case '\r': LIT(b, "\\r"); break;
        case '\t': LIT(b, "\\t"); break;
        case '\b': LIT(b, "\\b"); break;
        case '\f': LIT(b, "\\f"); break;
        default:   bias_buf_printf(b, "\\u%04x", *p);
        }
    }
    bias_buf_add(b, (const char *)run, (size_t)(p - run));
    LIT(b, "\"");
}

void bias_csv_row(bias_buf *b, const char *const *fields, int n) {
    for (int i = 0; i < n; i++) {
        const char *f = fields[i] ? fields[i] : "";
        if (i) LIT(b, ",");
        if (strpbrk(f, ",\"\r\n")) {
            LIT(b, "\"");
            for (const char *p = f;;) {                   /* runs between quotes; each " doubled */
                const char *q = strchr(p, '"');
                if (!q) { bias_buf_add(b, p, strlen(p)); break; }
                bias_buf_add(b, p, (size_t)(q - p) + 1);
                LIT(b, "\"");
                p = q + 1;
            }
            LIT(b, "\"");
        } else {
            bias_buf_add(b, f, strlen(f));
        }
    }
    LIT(b, "\n");
}

/* ---- the result JSON --------------------------------------------------------- */

static void num(bias_buf *b, double x) {
    char t[64];
    bias_fmt_double(t, sizeof t, x);
    bias_buf_add(b, t, strlen(t));
}

static void stats_block(bias_buf *b, const char *key, const bias_group *g, int n) {
    bias_buf_printf(b, "    \"%s\": {", key);
    for (int i = 0; i < n; i++) {
        if (i) LIT(b, ",");
        LIT(b, "\n        ");
        bias_json_str(b, g[i].name);
        LIT(b, ": {\n            \"bias_mean\": ");
        num(b, bias_round_even(g[i].mean));
        LIT(b, ",\n            \"bias_std\": ");
        num(b, bias_round_even(g[i].std));
        LIT(b, "\n        }");
    }
    if (n) LIT(b, "\n    }"); else LIT(b, "}");
}

static void ttest_block(bias_buf *b, const char *key, const bias_ttest *t) {
    bias_buf_printf(b, "        \"%s\": {\n            \"high_bias_group\": ", key);
    bias_json_str(b, t->high);
    LIT(b, ",\n            \"low_bias_group\": ");
    bias_json_str(b, t->low);
    LIT(b, ",\n            \"mean_diff\": ");
    num(b, bias_round_nd(t->mean_diff, 4));
    LIT(b, ",\n            \"t_statistic\": ");
    num(b, bias_round_nd(t->t, 4));
    LIT(b, ",\n            \"p_value\": ");
    num(b, t->p);
    LIT(b, "\n        }");
}

int bias_result_json(const bias_result *r, bias_buf *b) {
    const char *hs = r->nsector ? r->sector[0].name : "N/A";
    const char *hz = r->nsize ? r->size[0].name : "N/A";
    bias_buf_printf(b, "{\n    \"bias_index\": %d,\n", r->bias_index);
    stats_block(b, "sector_stats", r->sector, r->nsector);
    LIT(b, ",\n");
    stats_block(b, "size_stats", r->size, r->nsize);
    LIT(b, ",\n    \"bias_result\": {\n        \"high_bias_sector\": ");
    bias_json_str(b, hs);
    LIT(b, ",\n        \"low_bias_sector\": ");
    bias_json_str(b, r->nsector ? r->t_sector.low : "N/A");
    LIT(b, ",\n        \"high_bias_size_group\": ");
    bias_json_str(b, hz);
    LIT(b, ",\n        \"low_bias_size_group\": ");
    bias_json_str(b, r->nsize ? r->t_size.low : "N/A");
    LIT(b, "\n    },\n    \"t_test_results\": {");
    int any = 0;
    if (r->t_sector.ok) { LIT(b, "\n"); ttest_block(b, "sector_comparison", &r->t_sector); any = 1; }
    if (r->t_size.ok) {
        if (any) LIT(b, ",");
        LIT(b, "\n");
        ttest_block(b, "size_comparison", &r->t_size); any = 1;
    }
    if (any) LIT(b, "\n    }\n}"); else LIT(b, "}\n}");
    return b->oom ? -1 : 0;
}

int bias_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen) {
    return file_write_atomic(path, data, len, err, errlen);
}

int bias_remove_stale_tmp(const char *dir, const char *model) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char prefix[512], path[4600];
    snprintf(prefix, sizeof prefix, "%s_att_", model);
    size_t np = strlen(prefix);
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strncmp(e->d_name, prefix, np) == 0 ? strstr(e->d_name + np, ".tmp.") : NULL;
        if (!t) continue;
        char *end;
        long pid = strtol(t + 5, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;    /* its writer may still be running */
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) removed++;
    }
    closedir(d);
    return removed;
}
