/* bias_data: CSV tables via libcsv and the study's universe (tickers joined
 * with qualitative and quantitative evidence).  Reads only the files named;
 * never prints: errors go to the caller's buffer, warnings into the universe. */
#include "labs/bias_data.h"
#include "base/file.h"
#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the generic table --------------------------------------------------- */

typedef struct parse_state {
    bias_csv *t;
    char    **row;       /* (nrow) fields of the row being read */
    int       nrow, caprow;
    long      line;      /* physical line being fed */
    long      row_line;  /* line where the current row started */
    int       failed;    /* out of memory or too many fields */
    char     *err; size_t errlen;
} parse_state;

static int no_space(unsigned char c) { (void)c; return 0; }  /* keep spaces as pandas does */

static void on_field(void *s, size_t len, void *data) {
    parse_state *ps = data;
    if (ps->failed) return;
    if (ps->nrow == ps->caprow) {
        int nc = ps->caprow ? ps->caprow * 2 : 16;
        char **nr = realloc(ps->row, (size_t)nc * sizeof *nr);
        if (!nr) { ps->failed = 1; return; }
        ps->row = nr; ps->caprow = nc;
    }
    char *f = malloc(len + 1);
    if (!f) { ps->failed = 1; return; }
    if (len) memcpy(f, s, len);
    f[len] = 0;
    ps->row[ps->nrow++] = f;
}

static void drop_row(parse_state *ps) {
    for (int i = 0; i < ps->nrow; i++) free(ps->row[i]);
    ps->nrow = 0;
}

static void on_row(int c, void *data) {
    parse_state *ps = data;
    bias_csv *t = ps->t;
    long start = ps->row_line;
    ps->row_line = ps->line + ((c == '\n' || c == '\r') ? 1 : 0);   /* CRLF too */
    if (ps->failed) { drop_row(ps); return; }
    if (!t->header) {                       /* first row: the header */
        t->header = ps->row; t->ncols = ps->nrow;
        ps->row = NULL; ps->nrow = ps->caprow = 0;
        return;
    }
    if (ps->nrow > t->ncols) {
        snprintf(ps->err, ps->errlen, "%s:%ld: %d fields, the header has %d",
                 t->path, start, ps->nrow, t->ncols);
        ps->failed = 2; drop_row(ps); return;
    }
    if (t->nrows == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 256;
        char **cells = realloc(t->cells, nc * (size_t)t->ncols * sizeof *cells);
        if (!cells) { ps->failed = 1; drop_row(ps); return; }
        t->cells = cells;
        long *lines = realloc(t->lines, nc * sizeof *lines);
        if (!lines) { ps->failed = 1; drop_row(ps); return; }
        t->lines = lines;
        int *nf = realloc(t->nfields, nc * sizeof *nf);
        if (!nf) { ps->failed = 1; drop_row(ps); return; }
        t->nfields = nf; t->cap = nc;
    }
    char **dst = t->cells + t->nrows * (size_t)t->ncols;
    for (int i = 0; i < t->ncols; i++) {
        if (i < ps->nrow) { dst[i] = ps->row[i]; ps->row[i] = NULL; }
        else if (!(dst[i] = calloc(1, 1))) ps->failed = 1;
    }
    t->nfields[t->nrows] = ps->nrow;
    ps->nrow = 0;
    t->lines[t->nrows++] = start;
}

int bias_csv_parse(bias_csv *t, const char *text, size_t len, const char *origin,
                   char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    int rc = -1;
    struct csv_parser p;
    parse_state ps = { .t = t, .line = 1, .row_line = 1, .err = err, .errlen = errlen };
    if (!(t->path = strdup(origin ? origin : "(memory)"))) { snprintf(err, errlen, "out of memory"); return -1; }
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        snprintf(err, errlen, "%s: csv_init failed", t->path); return -1;
    }
    csv_set_space_func(&p, no_space);
    /* Feed one physical line at a time so that every row knows its line. */
    size_t off = 0;
    while (off < len && !ps.failed) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (text + off)) + 1 : len - off;
        if (csv_parse(&p, text + off, n, on_field, on_row, &ps) != n) {
            snprintf(err, errlen, "%s:%ld: malformed CSV (%s; a stray or unbalanced quote?)",
                     t->path, ps.line, csv_strerror(csv_error(&p)));
            goto out;
        }
        off += n;
        if (nl) ps.line++;
    }
    if (ps.failed) goto fail_state;
    if (csv_fini(&p, on_field, on_row, &ps) != 0) {
        snprintf(err, errlen, "%s:%ld: unclosed quote (the quoted field runs to the end of the file)",
                 t->path, ps.row_line);
        goto out;
    }
fail_state:
    if (ps.failed == 1) { snprintf(err, errlen, "%s: out of memory", t->path); goto out; }
    if (ps.failed) goto out;
    if (!t->header) { snprintf(err, errlen, "%s:1: empty file (no header line)", t->path); goto out; }
    rc = 0;
out:
    drop_row(&ps);
    free(ps.row);
    csv_free(&p);
    if (rc) bias_csv_free(t);
    return rc;
}

int bias_csv_load(bias_csv *t, const char *path, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    size_t len = 0;
    char *buf = file_read_all(path, 0, &len, err, errlen);
    if (!buf) return -1;
    int rc = -1;
    if (len == 0) snprintf(err, errlen, "%s:1: empty file (no header line)", path);
    else rc = bias_csv_parse(t, buf, len, path, err, errlen);
    free(buf);
    return rc;
}

int bias_csv_col(const bias_csv *t, const char *name) {
    for (int i = 0; i < t->ncols; i++) {
        const char *h = t->header[i];
        if (i == 0 && (unsigned char)h[0] == 0xEF && (unsigned char)h[1] == 0xBB &&
            (unsigned char)h[2] == 0xBF) h += 3;      /* UTF-8 byte-order mark */
        if (strcmp(h, name) == 0) return i;
    }
    return -1;
}

void bias_csv_free(bias_csv *t) {
    if (t->cells) for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++) free(t->cells[i]);
    if (t->header) for (int i = 0; i < t->ncols; i++) free(t->header[i]);
    free(t->cells); free(t->header); free(t->lines); free(t->nfields); free(t->path);
    memset(t, 0, sizeof *t);
}

/* ---- the universe ---------------------------------------------------------- */

char *bias_strip(char *s) {
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    size_t i = 0;
    while (isspace((unsigned char)s[i])) i++;
    if (i) memmove(s, s + i, n - i + 1);
    return s;
}

void bias_universe_warn(bias_universe *u, const char *fmt, ...) {
    char buf[1024];
    va_list ap; va_start(ap, fmt); vsnprintf(buf, sizeof buf, fmt, ap); va_end(ap);
    char **nw = realloc(u->warnings, (u->nwarn + 1) * sizeof *nw);
    if (!nw) return;
    u->warnings = nw;
    if ((u->warnings[u->nwarn] = strdup(buf))) u->nwarn++;
}

static void stock_free(bias_stock *s) {
    free(s->ticker); free(s->name); free(s->sector);
    for (int i = 0; i < s->nbuy; i++) free(s->buy[i]);
    for (int i = 0; i < s->nsell; i++) free(s->sell[i]);
    memset(s, 0, sizeof *s);
}

/* Parses a market cap as pandas would read it: a number, maybe with a
 * fraction or exponent; "" is missing (1), anything else an error (-1). */
static int parse_cap(const char *s, double *v) {
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return 1;
    char *end; errno = 0;
    *v = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    if (end == s || *end || errno == ERANGE || *v != *v) return -1;
    return 0;
}

int bias_universe_load_tickers(bias_universe *u, const char *tickers, char *err, size_t errlen) {
    memset(u, 0, sizeof *u);
    bias_csv t;
    if (bias_csv_load(&t, tickers, err, errlen)) return -1;
    int rc = -1;
    int ct = bias_csv_col(&t, "ticker"), cn = bias_csv_col(&t, "name"),
        cs = bias_csv_col(&t, "sector"), cm = bias_csv_col(&t, "marketcap");
    if (ct < 0 || cn < 0 || cs < 0 || cm < 0) {
        snprintf(err, errlen, "%s:1: header needs the columns ticker,name,sector,marketcap", tickers);
        goto out;
    }
    if (t.nrows == 0) { snprintf(err, errlen, "%s:2: no ticker rows after the header", tickers); goto out; }
    if (!(u->tickers = strdup(tickers))) { snprintf(err, errlen, "out of memory"); goto out; }
    if (!(u->stocks = calloc(t.nrows, sizeof *u->stocks))) { snprintf(err, errlen, "out of memory"); goto out; }
    for (size_t r = 0; r < t.nrows; r++) {
        const char *tk = bias_csv_at(&t, r, ct), *cap = bias_csv_at(&t, r, cm);
        if (t.nfields[r] < t.ncols) {                 /* a row cut short: never padded into the analysis */
            snprintf(err, errlen, "%s:%ld: %d field%s, the header has %d", tickers, t.lines[r], t.nfields[r],
                     t.nfields[r] == 1 ? "" : "s", t.ncols);
            goto out;
        }
        const char *empty = !*tk ? "ticker" : !*bias_csv_at(&t, r, cn) ? "name" : !*bias_csv_at(&t, r, cs) ? "sector" : NULL;
        if (empty) {
            snprintf(err, errlen, "%s:%ld: empty %s%s%s", tickers, t.lines[r], empty, *tk ? " of " : "", tk);
            goto out;
        }
        for (size_t i = 0; i < u->n; i++)
            if (!strcmp(u->stocks[i].ticker, tk)) {
                snprintf(err, errlen, "%s:%ld: ticker %s again (first on line %ld)", tickers, t.lines[r], tk,
                         u->stocks[i].line);
                goto out;
            }
        double v = 0;
        int pc = parse_cap(cap, &v);
        if (pc < 0) {
            snprintf(err, errlen, "%s:%ld: market cap \"%s\" of %s is not a number",
                     tickers, t.lines[r], cap, tk);
            goto out;
        }
        if (pc > 0) {
            bias_universe_warn(u, "%s:%ld: %s has no market cap; skipped (the study's analysis drops it)",
                               tickers, t.lines[r], tk);
            continue;
        }
        bias_stock *s = &u->stocks[u->n];
        s->ticker = strdup(tk); s->name = strdup(bias_csv_at(&t, r, cn));
        s->sector = strdup(bias_csv_at(&t, r, cs));
        s->marketcap = v; s->line = t.lines[r];
        u->n++;
        if (!s->ticker || !s->name || !s->sector) { snprintf(err, errlen, "out of memory"); goto out; }
    }
    rc = 0;
out:
    bias_csv_free(&t);
    if (rc) bias_universe_free(u);
    return rc;
}

/* First row of `t` for (ticker, opinion), opinion compared case-insensitively. */
typedef struct ev_index { const bias_csv *t; int ct, co, c1, c2; } ev_index;

static int ev_open(ev_index *x, const bias_csv *t, const char *path, char *err, size_t errlen) {
    x->t = t;
    x->ct = bias_csv_col(t, "ticker"); x->co = bias_csv_col(t, "opinion");
    x->c1 = bias_csv_col(t, "evidence1"); x->c2 = bias_csv_col(t, "evidence2");
    if (x->ct < 0 || x->co < 0 || x->c1 < 0 || x->c2 < 0) {
        snprintf(err, errlen, "%s:1: header needs the columns ticker,opinion,evidence1,evidence2", path);
        return -1;
    }
    if (t->nrows == 0) { snprintf(err, errlen, "%s:2: no evidence rows after the header", path); return -1; }
    return 0;
}

static long ev_find(const ev_index *x, const char *ticker, const char *opinion) {
    for (size_t r = 0; r < x->t->nrows; r++)
        if (strcmp(bias_csv_at(x->t, r, x->ct), ticker) == 0 &&
            strcasecmp(bias_csv_at(x->t, r, x->co), opinion) == 0) return (long)r;
    return -1;
}

/* Appends the non-blank evidence sentences of row r (stripped) to list. */
static int ev_take(const ev_index *x, long r, char **list, int *n) {
    int cols[2] = { x->c1, x->c2 };
    for (int i = 0; i < 2; i++) {
        const char *v = bias_csv_at(x->t, (size_t)r, cols[i]);
        char *d = strdup(v);
        if (!d) return -1;
        if (!*bias_strip(d)) { free(d); continue; }   /* pandas reads "" as NaN: dropped */
        list[(*n)++] = d;
    }
    return 0;
}

int bias_universe_attach_evidence(bias_universe *u, const char *qual, const char *quant,
                                  char *err, size_t errlen) {
    bias_csv tq, tn;
    if (bias_csv_load(&tq, qual, err, errlen)) return -1;
    if (bias_csv_load(&tn, quant, err, errlen)) { bias_csv_free(&tq); return -1; }
    int rc = -1;
    ev_index xq, xn;
    if (ev_open(&xq, &tq, qual, err, errlen) || ev_open(&xn, &tn, quant, err, errlen)) goto out;
    size_t kept = 0;
    for (size_t i = 0; i < u->n; i++) {
        bias_stock *s = &u->stocks[i];
        long qb = ev_find(&xq, s->ticker, "buy"), nb = ev_find(&xn, s->ticker, "buy");
        long qs = ev_find(&xq, s->ticker, "sell"), ns = ev_find(&xn, s->ticker, "sell");
        if (qb < 0 || nb < 0 || qs < 0 || ns < 0) {
            bias_universe_warn(u, "%s:%ld: %s has no %s evidence in %s; skipped (as the study does)",
                               u->tickers ? u->tickers : "tickers", s->line, s->ticker,
                               (qb < 0 || nb < 0) ? "buy" : "sell", (qb < 0 || qs < 0) ? qual : quant);
            stock_free(s);
            continue;
        }
        for (int k = 0; k < s->nbuy; k++) free(s->buy[k]);
        for (int k = 0; k < s->nsell; k++) free(s->sell[k]);
        s->nbuy = s->nsell = 0;
        if (ev_take(&xq, qb, s->buy, &s->nbuy) || ev_take(&xn, nb, s->buy, &s->nbuy) ||
            ev_take(&xq, qs, s->sell, &s->nsell) || ev_take(&xn, ns, s->sell, &s->nsell)) {
            snprintf(err, errlen, "out of memory"); goto out;
        }
        if (s->nbuy == 0 || s->nsell == 0)
            bias_universe_warn(u, "%s: %s has only blank %s evidence; its prompts carry none",
                               qual, s->ticker, s->nbuy ? "sell" : "buy");
        if (kept != i) { u->stocks[kept] = *s; memset(s, 0, sizeof *s); }
        kept++;
    }
    u->n = kept;
    if (kept == 0) { snprintf(err, errlen, "%s: no ticker of the universe has both buy and sell evidence", qual); goto out; }
    rc = 0;
out:
    bias_csv_free(&tq); bias_csv_free(&tn);
    return rc;
}

void bias_universe_free(bias_universe *u) {
    for (size_t i = 0; i < u->n; i++) stock_free(&u->stocks[i]);
    free(u->stocks);
    for (size_t i = 0; i < u->nwarn; i++) free(u->warnings[i]);
    free(u->warnings);
    free(u->tickers);
    memset(u, 0, sizeof *u);
}
