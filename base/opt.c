/* opt.c: table-driven option parsing over getopt_long (see base/opt.h).
 * Touches getopt's globals (optind, optarg, opterr, optopt) and nothing else. */
#include "base/opt.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int opt_begin(opt_parser *p, int argc, char **argv, const opt_spec *specs, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    p->argc = argc; p->argv = argv; p->specs = specs;
    while (specs[p->nspecs].name) p->nspecs++;
    if (p->nspecs > OPT_MAX) { snprintf(err, errlen, "option table: %d rows, at most %d", p->nspecs, OPT_MAX); return -1; }
    struct option *lo = p->longopts;          /* (nspecs + 1,) zero-terminated by the memset */
    size_t ns = 0;
    p->shortopts[ns++] = '-';                 /* positional arguments in order, as key 1 */
    p->shortopts[ns++] = ':';                 /* a missing value is ':', not '?' */
    for (int i = 0; i < p->nspecs; i++) {
        const opt_spec *s = &specs[i];
        if (s->key <= 1 || s->key == '?' || s->key == ':' || !s->name[0] || (s->name[0] == '-' && !s->name[1])) {
            snprintf(err, errlen, "option table: bad row %d ('%s', key %d)", i, s->name, s->key);
            return -1;
        }
        const char *name = s->name;
        if (*name == '-') { name++; p->long_only = 1; }  /* "-tp": a single-dash long option */
        lo[i] = (struct option){ name, s->kind == OPT_VALUE ? required_argument : no_argument, NULL, s->key };
        if (s->key < 128 && isalnum(s->key) && !strchr(p->shortopts + 2, s->key) && ns + 3 < sizeof p->shortopts) {
            p->shortopts[ns++] = (char)s->key;
            if (s->kind == OPT_VALUE) p->shortopts[ns++] = ':';
        }
    }
    p->shortopts[ns] = 0;
    optind = 0;                               /* glibc: start afresh (a second parse in one process) */
    opterr = 0;                               /* we say what went wrong */
    return 0;
}

void opt_end(opt_parser *p) { (void)p; }

const char *opt_name(const opt_parser *p) { return p->name; }

/* The spec behind key (the first row with it), or NULL. */
static const opt_spec *spec_of(const opt_parser *p, int key) {
    for (int i = 0; i < p->nspecs; i++) if (p->specs[i].key == key) return &p->specs[i];
    return NULL;
}

/* p->name = the option of s as written in a message: "--name", or "-tp". */
static void name_of(opt_parser *p, const opt_spec *s) {
    snprintf(p->name, sizeof p->name, "%s%s", s->name[0] == '-' ? "" : "--", s->name);
}

/* "unknown option" or "ambiguous option" for the argument a ("--ma=3"). */
static void unknown(const opt_parser *p, const char *a, char *err, size_t errlen) {
    if (strncmp(a, "--", 2) != 0) { snprintf(err, errlen, "unknown option '%.*s'", (int)strcspn(a, "="), a); return; }
    size_t n = strcspn(a + 2, "=");
    char list[256] = "";
    int hits = 0;
    for (int i = 0; i < p->nspecs; i++) {
        if (p->specs[i].name[0] == '-' || strncmp(p->specs[i].name, a + 2, n) != 0) continue;
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s--%s", hits ? ", " : "", p->specs[i].name);
        hits++;
    }
    if (hits > 1) snprintf(err, errlen, "ambiguous option '%.*s' (%s)", (int)n + 2, a, list);
    else snprintf(err, errlen, "unknown option '%.*s'", (int)n + 2, a);
}

int opt_next(opt_parser *p, const char **val, char *err, size_t errlen) {
    *val = NULL;
    if (p->done) {                            /* after "--": the rest is positional */
        if (optind >= p->argc) return OPT_END;
        *val = p->argv[optind++];
        return OPT_ARG;
    }
    int idx = -1;
    int c = p->long_only ? getopt_long_only(p->argc, p->argv, p->shortopts, p->longopts, &idx)
                         : getopt_long(p->argc, p->argv, p->shortopts, p->longopts, &idx);
    if (c == -1) {
        p->done = 1;
        return opt_next(p, val, err, errlen);
    }
    if (c == 1) { *val = optarg; return OPT_ARG; }
    const char *a = p->argv[optind - 1];      /* the argument getopt stopped at */
    if (c == ':' || c == '?') {
        const opt_spec *s = optopt ? spec_of(p, optopt) : NULL;
        if (s) name_of(p, s);
        if (c == ':' && s) snprintf(err, errlen, "%s needs a value", p->name);
        else if (s && s->kind == OPT_FLAG) snprintf(err, errlen, "%s takes no value", p->name);
        else unknown(p, a, err, errlen);
        return OPT_ERROR;
    }
    const opt_spec *s = idx >= 0 ? &p->specs[idx] : spec_of(p, c);
    if (!s) { unknown(p, a, err, errlen); return OPT_ERROR; }
    if (idx >= 0) name_of(p, s);
    else snprintf(p->name, sizeof p->name, "-%c", c);
    *val = s->kind == OPT_VALUE ? optarg : NULL;
    return c;
}

int opt_long(const char *name, const char *v, long lo, long hi, long *out, char *err, size_t errlen) {
    char *end = NULL;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || errno || *end || x < lo || x > hi) {
        snprintf(err, errlen, "%s wants an integer in [%ld, %ld], got '%s'", name, lo, hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

int opt_int(const char *name, const char *v, long lo, long hi, int *out, char *err, size_t errlen) {
    long x;
    if (lo < -2147483647L - 1) lo = -2147483647L - 1;
    if (hi > 2147483647L) hi = 2147483647L;
    if (opt_long(name, v, lo, hi, &x, err, errlen)) return -1;
    *out = (int)x;
    return 0;
}

int opt_num(const char *name, const char *v, double lo, double hi, double *out, char *err, size_t errlen) {
    char *end = NULL;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || !*v || errno || *end || !isfinite(x) || !(x >= lo && x <= hi)) {
        snprintf(err, errlen, "%s wants a number in [%g, %g], got '%s'", name, lo, hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

int opt_u64(const char *name, const char *v, unsigned long long *out, char *err, size_t errlen) {
    char *end = NULL;
    errno = 0;
    unsigned long long x = v && *v != '-' ? strtoull(v, &end, 10) : 0;
    if (!v || !*v || *v == '-' || errno || *end) {
        snprintf(err, errlen, "%s wants a non-negative integer, got '%s'", name, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}
