/* serve/prometheus.c — counters, gauges and histograms rendered in the
 * Prometheus text format.  Touches nothing but its own registry. */
#include "serve/prometheus.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct prom_metric {
    prom_registry *reg;
    prom_type type;
    char *name, *help;
    double value;            /* counter, gauge */
    double *bounds;          /* (n,) histogram upper bounds, ascending */
    double *counts;          /* (n + 1,) per-bucket counts (not cumulative); [n] = +Inf */
    size_t n;
    double sum, count;       /* histogram */
};

struct prom_registry {
    pthread_mutex_t mu;
    char *labels;            /* `k="v",...` or "" */
    prom_metric **metrics;   /* (n_metrics,) in registration order */
    size_t n_metrics, cap;
};

prom_registry *prom_create(const char *labels) {
    prom_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->labels = strdup(labels ? labels : "");
    if (!r->labels) { free(r); return NULL; }
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void metric_free(prom_metric *m) {
    if (!m) return;
    free(m->name); free(m->help); free(m->bounds); free(m->counts); free(m);
}

void prom_free(prom_registry *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_metrics; i++) metric_free(r->metrics[i]);
    free(r->metrics);
    free(r->labels);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int valid_name(const char *s) {
    if (!s || !*s) return 0;
    for (const char *p = s; *p; p++) {
        int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':';
        int digit = *p >= '0' && *p <= '9';
        if (!alpha && !(digit && p != s)) return 0;
    }
    return 1;
}

prom_metric *prom_add_metric(prom_registry *r, prom_type type, const char *name,
                             const char *help, const double *bounds, size_t n) {
    if (!r || !valid_name(name)) return NULL;
    if (type == PROM_HISTOGRAM) {
        if (n > 0 && !bounds) return NULL;
        for (size_t i = 0; i < n; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) return NULL;
    } else n = 0;
    prom_metric *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->reg = r; m->type = type; m->n = n;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    if (type == PROM_HISTOGRAM) {
        m->bounds = malloc((n ? n : 1) * sizeof *m->bounds);
        m->counts = calloc(n + 1, sizeof *m->counts);
        if (m->bounds && n) memcpy(m->bounds, bounds, n * sizeof *bounds);
    }
    if (!m->name || !m->help || (type == PROM_HISTOGRAM && (!m->bounds || !m->counts))) {
        metric_free(m);
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    prom_metric *ret = m;
    for (size_t i = 0; i < r->n_metrics; i++)
        if (strcmp(r->metrics[i]->name, name) == 0) ret = NULL;
    if (ret && r->n_metrics == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        prom_metric **nm = realloc(r->metrics, cap * sizeof *nm);
        if (nm) { r->metrics = nm; r->cap = cap; } else ret = NULL;
    }
    if (ret) r->metrics[r->n_metrics++] = m;
    pthread_mutex_unlock(&r->mu);
    if (!ret) metric_free(m);
    return ret;
}

void prom_inc(prom_metric *m, double v) {
    if (!m || m->type == PROM_HISTOGRAM || isnan(v)) return;
    if (m->type == PROM_COUNTER && v < 0) return;
    pthread_mutex_lock(&m->reg->mu);
    m->value += v;
    pthread_mutex_unlock(&m->reg->mu);
}

void prom_set(prom_metric *m, double v) {
    if (!m || m->type == PROM_HISTOGRAM || isnan(v)) return;
    pthread_mutex_lock(&m->reg->mu);
    if (m->type == PROM_GAUGE || v >= m->value) m->value = v;
    pthread_mutex_unlock(&m->reg->mu);
}

void prom_observe(prom_metric *m, double v) {
    if (!m || m->type != PROM_HISTOGRAM || isnan(v)) return;
    size_t i = 0;
    while (i < m->n && v > m->bounds[i]) i++;     /* bucket: first bound >= v */
    pthread_mutex_lock(&m->reg->mu);
    m->counts[i] += 1;
    m->sum += v;
    m->count += 1;
    pthread_mutex_unlock(&m->reg->mu);
}

double prom_value(const prom_metric *m) {
    if (!m) return 0;
    pthread_mutex_lock(&m->reg->mu);
    double v = m->type == PROM_HISTOGRAM ? m->count : m->value;
    pthread_mutex_unlock(&m->reg->mu);
    return v;
}

double prom_hist_sum(const prom_metric *m) {
    if (!m || m->type != PROM_HISTOGRAM) return 0;
    pthread_mutex_lock(&m->reg->mu);
    double v = m->sum;
    pthread_mutex_unlock(&m->reg->mu);
    return v;
}

double prom_hist_bucket(const prom_metric *m, size_t i) {
    if (!m || m->type != PROM_HISTOGRAM || i > m->n) return 0;
    pthread_mutex_lock(&m->reg->mu);
    double c = 0;
    for (size_t k = 0; k <= i; k++) c += m->counts[k];
    pthread_mutex_unlock(&m->reg->mu);
    return c;
}

/* ---- rendering ------------------------------------------------------------ */

typedef struct { char *s; size_t len, cap; int oom; } buf;

static void bprintf(buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if ((size_t)k < b->cap - b->len) { b->len += (size_t)k; return; }
        size_t cap = 2 * b->cap + (size_t)k + 64;
        char *ns = realloc(b->s, cap);
        if (!ns) { b->oom = 1; return; }
        b->s = ns; b->cap = cap;
    }
}

/* Shortest of %.15g / %.17g that reads back exactly; Prometheus spellings
 * for the infinities and NaN. */
static void fmt_num(char *out, size_t cap, double v) {
    if (isnan(v)) { snprintf(out, cap, "NaN"); return; }
    if (isinf(v)) { snprintf(out, cap, v > 0 ? "+Inf" : "-Inf"); return; }
    snprintf(out, cap, "%.15g", v);
    if (strtod(out, NULL) != v) snprintf(out, cap, "%.17g", v);
}

/* HELP text escapes backslash and newline. */
static void put_help(buf *b, const char *h) {
    for (const char *p = h; *p; p++) {
        if (*p == '\\') bprintf(b, "\\\\");
        else if (*p == '\n') bprintf(b, "\\n");
        else bprintf(b, "%c", *p);
    }
}

static void put_sample(buf *b, const char *name, const char *suffix, const char *labels,
                       const char *extra, double v) {
    char num[40];
    fmt_num(num, sizeof num, v);
    int has_l = labels[0] != 0, has_e = extra && extra[0];
    if (has_l || has_e)
        bprintf(b, "%s%s{%s%s%s} %s\n", name, suffix, has_e ? extra : "",
                has_e && has_l ? "," : "", labels, num);
    else
        bprintf(b, "%s%s %s\n", name, suffix, num);
}

char *prom_render(prom_registry *r, size_t *len) {
    if (!r) return NULL;
    buf b = {0};
    b.cap = 4096;
    b.s = malloc(b.cap);
    if (!b.s) return NULL;
    b.s[0] = 0;
    static const char *tname[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_metrics; i++) {
        const prom_metric *m = r->metrics[i];
        bprintf(&b, "# HELP %s ", m->name);
        put_help(&b, m->help);
        bprintf(&b, "\n# TYPE %s %s\n", m->name, tname[m->type]);
        if (m->type != PROM_HISTOGRAM) {
            put_sample(&b, m->name, "", r->labels, NULL, m->value);
            continue;
        }
        double cum = 0;
        char le[64], num[40];
        for (size_t k = 0; k <= m->n; k++) {
            cum += m->counts[k];
            fmt_num(num, sizeof num, k < m->n ? m->bounds[k] : INFINITY);
            snprintf(le, sizeof le, "le=\"%s\"", num);
            put_sample(&b, m->name, "_bucket", r->labels, le, cum);
        }
        put_sample(&b, m->name, "_sum", r->labels, NULL, m->sum);
        put_sample(&b, m->name, "_count", r->labels, NULL, m->count);
    }
    pthread_mutex_unlock(&r->mu);
    if (b.oom) { free(b.s); return NULL; }
    if (len) *len = b.len;
    return b.s;
}
