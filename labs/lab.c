/* lab: a lab run's life (create, run the def's callbacks, free) and what the
 * callbacks add to it (labs/lab.h, labs/lab_content.h).  Owns every string
 * and table it is given; touches no file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/errbuf.h"
#include "base/rng.h"
#include "labs/lab_impl.h"

/* Appends one zeroed element to *arr (n elements of size sz); returns it or NULL. */
static void *push(void *arr, int *n, size_t sz) {
    void **a = arr;
    void *p = realloc(*a, (size_t)(*n + 1) * sz);
    if (!p) return NULL;
    *a = p;
    void *e = (char *)p + (size_t)*n * sz;
    memset(e, 0, sz);
    (*n)++;
    return e;
}

char *lab_own(lab *L, const char *s) {
    if (!s) return NULL;
    if (L->nstrs == L->strs_cap) {
        int c = L->strs_cap ? 2 * L->strs_cap : 64;
        char **p = realloc(L->strs, (size_t)c * sizeof *p);
        if (!p) return NULL;
        L->strs = p;
        L->strs_cap = c;
    }
    char *d = strdup(s);
    if (d) L->strs[L->nstrs++] = d;
    return d;
}

void lab_table_cell(const lab_table *t, int r, int c, char *buf, size_t n) {
    int nv = t->ncols - 1;
    double v = t->vals[(size_t)r * (size_t)nv + (size_t)(c - 1)], big = 0;
    bool whole = true;
    for (int k = 0; k < t->nrows; k++) {
        double x = t->vals[(size_t)k * (size_t)nv + (size_t)(c - 1)];
        if (!isfinite(x)) continue;
        if (x != floor(x)) whole = false;
        if (fabs(x) > big) big = fabs(x);
    }
    if (!isfinite(v)) snprintf(buf, n, "-");
    else snprintf(buf, n, "%.*f", whole ? 0 : big >= 100 ? 1 : 2, v);
}

void lab_qid(int i, char *buf, size_t n) { snprintf(buf, n, "q%d", i + 1); }

/* ---- life ------------------------------------------------------------------ */

lab *lab_create(const lab_def *def, uint64_t seed, char *err, size_t errlen) {
    if (!def || !def->run || !def->name || !def->title) {
        errbuf_fail(err, errlen, "lab: a lab needs a name, a title and a run callback");
        return NULL;
    }
    lab *L = calloc(1, sizeof *L);
    if (!L) { errbuf_fail(err, errlen, "%s: out of memory", def->name); return NULL; }
    L->def = def;
    L->seed = seed;
    return L;
}

int lab_run(lab *L, int parts, char *err, size_t errlen) {
    const lab_def *d = L->def;
    char e[512] = "";
    struct { int (*fn)(lab *, char *, size_t); int need; const char *what; } steps[] = {
        { d->run, 0, "run" },
        { d->real, LAB_WITH_REAL, "real" },     /* before the others: they show what it measured */
        { d->questions, 0, "questions" },
        { d->figures, LAB_WITH_FIGURES, "figures" },
        { d->narrative, LAB_WITH_NARRATIVE, "narrative" },
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (steps[i].need && !(parts & steps[i].need)) continue;
        if (!steps[i].fn) {
            if (steps[i].need == LAB_WITH_REAL)
                return errbuf_fail(err, errlen, "%s: --real is not written for this lab yet", d->name);
            continue;
        }
        if (steps[i].fn(L, e, sizeof e) < 0)
            return errbuf_fail(err, errlen, "%s (%s): %s", d->name, steps[i].what, e[0] ? e : "failed");
    }
    return 0;
}

void lab_free(lab *L) {
    if (!L) return;
    if (L->result && L->def->free_result) L->def->free_result(L->result);
    for (int i = 0; i < L->ntables; i++) {
        lab_table *t = L->tables[i];
        for (int k = 0; k < t->nrows; k++) free(t->keys[k]);
        free(t->keys); free(t->vals); free(t->cols); free(t);
    }
    free(L->tables);
    for (int i = 0; i < L->nstrs; i++) free(L->strs[i]);
    free(L->strs);
    free(L->figs); free(L->qs); free(L->heads); free(L->todos); free(L->files);
    free(L->narrative);
    free(L);
}

const lab_def *lab_get_def(const lab *L) { return L->def; }
uint64_t lab_seed(const lab *L) { return L->seed; }
const char *lab_narrative(const lab *L) { return L->narrative ? L->narrative : ""; }
int lab_num_headlines(const lab *L) { return L->nheads; }
const lab_headline *lab_headline_at(const lab *L, int i) {
    return i >= 0 && i < L->nheads ? &L->heads[i] : NULL;
}
bool lab_headline_within(const lab_headline *h) {
    return isfinite(h->measured) && h->measured >= h->paper_lo - h->tol - 1e-12 &&
           h->measured <= h->paper_hi + h->tol + 1e-12;
}

/* ---- content ---------------------------------------------------------------- */

int lab_pick(const lab *L, unsigned salt, int n) {
    if (n <= 0 || L->seed == LAB_PAPER_SEED) return 0;
    return (int)(rng_mix64(L->seed * 0x9E3779B97F4A7C15ull + salt * 0xD1B54A32D192ED03ull) % (uint64_t)n);
}

void lab_set_result(lab *L, void *result) { L->result = result; }
void *lab_result(const lab *L) { return L->result; }

const char *lab_fmt(lab *L, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return lab_own(L, buf);
}

lab_table *lab_table_add(lab *L, const char *name, const char *caption, const char *columns,
                         bool on_sheet) {
    if (!name || !columns) return NULL;
    lab_table *t = calloc(1, sizeof *t);
    char *cols = lab_own(L, columns);
    if (!t || !cols) { free(t); return NULL; }
    t->name = lab_own(L, name);
    t->caption = lab_own(L, caption ? caption : "");
    t->on_sheet = on_sheet;
    t->ncols = 1;
    for (const char *p = cols; *p; p++) t->ncols += *p == ',';
    t->cols = calloc((size_t)t->ncols, sizeof *t->cols);
    if (!t->cols || !t->name || !t->caption || t->ncols < 2) { free(t->cols); free(t); return NULL; }
    int k = 0;
    for (char *p = cols; p && k < t->ncols; k++) {
        t->cols[k] = p;
        char *c = strchr(p, ',');
        if (c) { *c = 0; p = c + 1; } else p = NULL;
    }
    lab_table **slot = push(&L->tables, &L->ntables, sizeof *slot);
    if (!slot) { free(t->cols); free(t); return NULL; }
    *slot = t;
    return t;
}

int lab_table_row(lab_table *t, const char *key, const double *vals) {
    int nv = t->ncols - 1;
    if (t->nrows == t->cap) {
        int c = t->cap ? 2 * t->cap : 8;
        char **k = realloc(t->keys, (size_t)c * sizeof *k);
        if (!k) return -1;
        t->keys = k;
        double *v = realloc(t->vals, (size_t)c * (size_t)nv * sizeof *v);
        if (!v) return -1;
        t->vals = v;
        t->cap = c;
    }
    char *kc = strdup(key ? key : "");
    if (!kc) return -1;
    t->keys[t->nrows] = kc;
    memcpy(t->vals + (size_t)t->nrows * (size_t)nv, vals, (size_t)nv * sizeof *vals);
    t->nrows++;
    return 0;
}

int lab_figure(lab *L, const lab_figure_spec *f) {
    if (!f->name || !f->draw || f->width <= 0 || f->height <= 0) return -1;
    lab_figure_spec c = *f;
    c.name = lab_own(L, f->name);
    c.caption = lab_own(L, f->caption ? f->caption : "");
    c.look_at = lab_own(L, f->look_at);
    if (!c.name || !c.caption) return -1;
    lab_figure_spec *e = push(&L->figs, &L->nfigs, sizeof *e);
    if (!e) return -1;
    *e = c;
    return 0;
}

/* Is word w (length n) one of the '|'-separated choices? */
static bool among(const char *choices, const char *w) {
    size_t n = strlen(w);
    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, w, n) == 0) return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

int lab_ask(lab *L, const lab_question *q) {
    if (!q->text || !q->text[0]) return -1;
    if (q->kind == LAB_Q_NUMBER && !(q->tol >= 0 && isfinite(q->answer))) return -1;
    if (q->kind == LAB_Q_CHOICE && (!q->choices || !q->correct || !among(q->choices, q->correct))) return -1;
    if (q->kind == LAB_Q_EXPLAIN && (!q->key || !q->key[0])) return -1;
    lab_question c = *q;
    c.text = lab_own(L, q->text);
    c.where = lab_own(L, q->where);
    c.unit = lab_own(L, q->unit);
    c.choices = lab_own(L, q->choices);
    c.correct = lab_own(L, q->correct);
    c.predict = lab_own(L, q->predict);
    c.key = lab_own(L, q->key);
    if (!c.text) return -1;
    lab_question *e = push(&L->qs, &L->nqs, sizeof *e);
    if (!e) return -1;
    *e = c;
    return 0;
}

int lab_headline_add(lab *L, const lab_headline *h) {
    if (!h->what || h->tol < 0 || h->paper_hi < h->paper_lo) return -1;
    lab_headline c = *h;
    c.what = lab_own(L, h->what);
    c.unit = lab_own(L, h->unit);
    c.source = lab_own(L, h->source);
    c.gap = lab_own(L, h->gap);
    if (!c.what) return -1;
    lab_headline *e = push(&L->heads, &L->nheads, sizeof *e);
    if (!e) return -1;
    *e = c;
    return 0;
}

int lab_say(lab *L, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    size_t len = strlen(buf), need = L->narr_len + len + 3;
    if (need > L->narr_cap) {
        size_t c = L->narr_cap ? L->narr_cap : 1024;
        while (c < need) c *= 2;
        char *p = realloc(L->narrative, c);
        if (!p) return -1;
        L->narrative = p;
        L->narr_cap = c;
    }
    if (L->narr_len) { memcpy(L->narrative + L->narr_len, "\n\n", 2); L->narr_len += 2; }
    memcpy(L->narrative + L->narr_len, buf, len + 1);
    L->narr_len += len;
    return 0;
}

int lab_todo(lab *L, const char *command, const char *why) {
    if (!command) return -1;
    char *c = lab_own(L, command), *w = lab_own(L, why ? why : "");
    if (!c || !w) return -1;
    lab_todo_item *e = push(&L->todos, &L->ntodos, sizeof *e);
    if (!e) return -1;
    e->command = c;
    e->why = w;
    return 0;
}
