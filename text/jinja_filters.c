/* text/jinja_filters.c — jinja2's filters and tests that chat templates use
 * (trim, length, tojson as transformers defines it, list, items, join,
 * selectattr / rejectattr / select / reject / map, first / last, default,
 * string, replace, upper / lower, int, ...; defined, none, string, mapping,
 * iterable, equalto, in, ...), with jinja2's behaviour on undefined values.
 * Touches the render's arena only. */
#include "text/jinja_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const FILTERS[] = {"trim", "length", "count", "tojson", "list", "items", "join", "string",
                                      "selectattr", "rejectattr", "select", "reject", "map", "first", "last",
                                      "default", "d", "replace", "upper", "lower", "title", "capitalize", "int",
                                      "float", "abs", "reverse", "safe", "e", "escape", "unique", NULL};
static const char *const TESTS[] = {"defined", "undefined", "none", "boolean", "true", "false", "integer", "float",
                                    "number", "string", "mapping", "iterable", "sequence", "callable", "odd",
                                    "even", "divisibleby", "equalto", "eq", "==", "ne", "!=", "lt", "<", "le",
                                    "<=", "gt", ">", "ge", ">=", "in", "lower", "upper", "sameas", NULL};

static int known(const char *const *names, const char *name) {
    for (int i = 0; names[i]; i++) if (!strcmp(names[i], name)) return 1;
    return 0;
}
int jb_known_filter(const char *name) { return known(FILTERS, name); }
int jb_known_test(const char *name) { return known(TESTS, name); }

static int oom(jctx *c, const jnode *at) { return jx_fail(c, at, "out of memory"); }
/* The text of b (which it frees) as a string in the arena. */
static int buf_str(jctx *c, const jnode *at, jbuf *b, jval *out) {
    char *p = b->oom ? NULL : ja_strndup(c->a, b->p ? b->p : "", b->n);
    free(b->p);
    if (!p) return oom(c, at);
    *out = jv_str(p, b->n);
    return 0;
}
static jval list_val(jlist *l) { jval v = {.t = JV_LIST}; v.u.l = l; return v; }

/* ---- tests ---------------------------------------------------------------------------- */
static int cmp_test(jctx *c, const jnode *at, const char *t, jval v, jval arg, int *res) {
    if (!strcmp(t, "equalto") || !strcmp(t, "eq") || !strcmp(t, "==")) { *res = jv_equal(v, arg); return 0; }
    if (!strcmp(t, "ne") || !strcmp(t, "!=")) { *res = !jv_equal(v, arg); return 0; }
    double x, y;
    int cmp;
    if (jv_is_num(v) && jv_is_num(arg)) { x = jv_num(v); y = jv_num(arg); cmp = (x > y) - (x < y); }
    else if (v.t == JV_STR && arg.t == JV_STR) {
        size_t n = v.u.s.n < arg.u.s.n ? v.u.s.n : arg.u.s.n;
        cmp = memcmp(v.u.s.p, arg.u.s.p, n);
        if (!cmp) cmp = (v.u.s.n > arg.u.s.n) - (v.u.s.n < arg.u.s.n);
    } else return jx_fail(c, at, "'%s' cannot compare '%s' and '%s'", t, jv_type_name(v), jv_type_name(arg));
    if (t[0] == 'l' || t[0] == '<') *res = t[1] == 'e' || t[1] == '=' ? cmp <= 0 : cmp < 0;
    else *res = t[1] == 'e' || t[1] == '=' ? cmp >= 0 : cmp > 0;
    return 0;
}

int jb_test(jctx *c, const jnode *at, const char *t, jval v, const jval *args, int nargs, int *res) {
    *res = 0;
    if (!strcmp(t, "defined")) *res = v.t != JV_UNDEF;
    else if (!strcmp(t, "undefined")) *res = v.t == JV_UNDEF;
    else if (!strcmp(t, "none")) *res = v.t == JV_NONE;
    else if (!strcmp(t, "boolean")) *res = v.t == JV_BOOL;
    else if (!strcmp(t, "true")) *res = v.t == JV_BOOL && v.u.b;
    else if (!strcmp(t, "false")) *res = v.t == JV_BOOL && !v.u.b;
    else if (!strcmp(t, "integer")) *res = v.t == JV_INT;
    else if (!strcmp(t, "float")) *res = v.t == JV_FLOAT;
    else if (!strcmp(t, "number")) *res = jv_is_num(v);
    else if (!strcmp(t, "string")) *res = v.t == JV_STR;
    else if (!strcmp(t, "mapping")) *res = v.t == JV_DICT;
    else if (!strcmp(t, "iterable") || !strcmp(t, "sequence"))
        *res = v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    else if (!strcmp(t, "callable")) *res = v.t == JV_FUNC;
    else if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        int cased = 0, ok = v.t == JV_STR;
        for (size_t i = 0; ok && i < v.u.s.n; i++) {
            char ch = v.u.s.p[i];
            if (ch >= 'a' && ch <= 'z') { cased = 1; ok = t[0] == 'l'; }
            else if (ch >= 'A' && ch <= 'Z') { cased = 1; ok = t[0] == 'u'; }
        }
        *res = ok && cased;
    } else {                                              /* tests with an argument, or odd / even */
        if (v.t == JV_UNDEF && strcmp(t, "equalto") && strcmp(t, "eq") && strcmp(t, "==") && strcmp(t, "ne") &&
            strcmp(t, "!=") && strcmp(t, "sameas") && strcmp(t, "in"))
            return jx_fail(c, at, "%.*s", (int)v.u.s.n, v.u.s.p);
        if (!strcmp(t, "odd") || !strcmp(t, "even")) {
            if (v.t != JV_INT && v.t != JV_BOOL) return jx_fail(c, at, "'%s' needs an integer", t);
            long long x = v.t == JV_INT ? v.u.i : v.u.b;
            *res = (x % 2 != 0) == (t[0] == 'o');
            return 0;
        }
        if (nargs < 1) return jx_fail(c, at, "test '%s' needs an argument", t);
        if (!strcmp(t, "divisibleby")) {
            if (v.t != JV_INT || args[0].t != JV_INT || !args[0].u.i) return jx_fail(c, at, "divisibleby needs integers");
            *res = args[0].u.i == -1 || v.u.i % args[0].u.i == 0;
            return 0;
        }
        if (!strcmp(t, "sameas")) {
            *res = v.t == args[0].t && (v.t == JV_NONE || v.t == JV_UNDEF || (v.t == JV_BOOL && v.u.b == args[0].u.b) ||
                                        ((v.t == JV_LIST || v.t == JV_DICT || v.t == JV_NS) && v.u.l == args[0].u.l));
            return 0;
        }
        if (!strcmp(t, "in")) {
            jval box = args[0];
            if (box.t == JV_STR && v.t == JV_STR) {
                *res = 0;
                for (size_t i = 0; i + v.u.s.n <= box.u.s.n && !*res; i++) *res = !memcmp(box.u.s.p + i, v.u.s.p, v.u.s.n);
            } else if (box.t == JV_LIST) {
                for (size_t i = 0; i < box.u.l->n && !*res; i++) *res = jv_equal(v, box.u.l->v[i]);
            } else if (box.t == JV_DICT) *res = jd_find(box.u.d, v) >= 0;
            else if (box.t != JV_UNDEF) return jx_fail(c, at, "argument of type '%s' is not iterable", jv_type_name(box));
            return 0;
        }
        return cmp_test(c, at, t, v, args[0], res);
    }
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */
/* item.a.b (dotted, integer parts as indexes), as jinja2's make_attrgetter. */
static int attr_path(jctx *c, const jnode *at, jval item, jval path, jval *out) {
    if (path.t == JV_INT) return jb_getitem(c, at, item, path, out);
    if (path.t != JV_STR) return jx_fail(c, at, "attribute must be a string");
    size_t i = 0;
    *out = item;
    while (i <= path.u.s.n) {
        size_t j = i;
        while (j < path.u.s.n && path.u.s.p[j] != '.') j++;
        jval key = jv_str(path.u.s.p + i, j - i);
        int digits = j > i;
        for (size_t k = i; k < j; k++) digits &= path.u.s.p[k] >= '0' && path.u.s.p[k] <= '9';
        if (digits) key = jv_int(strtoll(path.u.s.p + i, NULL, 10));
        if (out->t == JV_UNDEF) return 0;
        if (jb_getitem(c, at, *out, key, out)) return -1;
        i = j + 1;
    }
    return 0;
}

static int items_of(jctx *c, const jnode *at, jval v, jlist **out) { return jb_iter(c, at, v, out); }

/* select / reject / selectattr / rejectattr */
static int select_(jctx *c, const jnode *at, jval v, int attr, int keep, const jval *args, int nargs, jval *out) {
    jlist *items, *l;
    if (items_of(c, at, v, &items) || !(l = jl_new(c->a, items->n))) return c->failed ? -1 : oom(c, at);
    int first = attr ? 1 : 0;
    if (attr && nargs < 1) return jx_fail(c, at, "missing parameter for attribute name");
    for (size_t i = 0; i < items->n; i++) {
        jval x = items->v[i];
        int hit;
        if (attr && attr_path(c, at, x, args[0], &x)) return -1;
        if (nargs > first) {
            if (args[first].t != JV_STR) return jx_fail(c, at, "the test name must be a string");
            char *name = ja_strndup(c->a, args[first].u.s.p, args[first].u.s.n);
            if (!name) return oom(c, at);
            if (!jb_known_test(name)) return jx_fail(c, at, "no test named '%s'", name);
            if (jb_test(c, at, name, x, args + first + 1, nargs - first - 1, &hit)) return -1;
        } else hit = jv_truthy(x);
        if (hit == keep) jl_push(c->a, l, items->v[i]);
    }
    *out = list_val(l);
    return 0;
}

static int map_(jctx *c, const jnode *at, jval v, const jval *args, int nargs, const char **kwn, const jval *kwv,
                int nkw, jval *out) {
    jlist *items, *l;
    jval attr, dflt = jv_undef(NULL);
    int has_attr = jb_arg(NULL, 0, kwn, kwv, nkw, -1, "attribute", &attr);
    int has_dflt = jb_arg(NULL, 0, kwn, kwv, nkw, -1, "default", &dflt);
    if (items_of(c, at, v, &items) || !(l = jl_new(c->a, items->n))) return c->failed ? -1 : oom(c, at);
    for (size_t i = 0; i < items->n; i++) {
        jval x = items->v[i];
        if (has_attr) {
            if (attr_path(c, at, x, attr, &x)) return -1;
            if (x.t == JV_UNDEF && has_dflt) x = dflt;
        } else {
            if (nargs < 1 || args[0].t != JV_STR) return jx_fail(c, at, "map needs a filter name or attribute=");
            char *name = ja_strndup(c->a, args[0].u.s.p, args[0].u.s.n);
            if (!name) return oom(c, at);
            if (!jb_known_filter(name)) return jx_fail(c, at, "no filter named '%s'", name);
            if (jb_filter(c, at, name, x, args + 1, nargs - 1, NULL, NULL, 0, &x)) return -1;
        }
        jl_push(c->a, l, x);
    }
    *out = list_val(l);
    return 0;
}

static int tojson(jctx *c, const jnode *at, jval v, const jval *args, int nargs, const char **kwn, const jval *kwv,
                  int nkw, jval *out) {
    jval indent = jv_none(), seps = jv_none(), sort = jv_bool(0), ascii = jv_bool(0);
    jb_arg(args, nargs, kwn, kwv, nkw, 0, "ensure_ascii", &ascii);
    jb_arg(args, nargs, kwn, kwv, nkw, 1, "indent", &indent);
    jb_arg(args, nargs, kwn, kwv, nkw, 2, "separators", &seps);
    jb_arg(args, nargs, kwn, kwv, nkw, 3, "sort_keys", &sort);
    if (jv_truthy(ascii)) return jx_fail(c, at, "tojson: ensure_ascii=True is not supported");
    if (indent.t != JV_NONE && indent.t != JV_INT) return jx_fail(c, at, "tojson: indent must be an integer");
    const char *item_sep = indent.t == JV_INT ? "," : ", ", *key_sep = ": ";
    if (seps.t == JV_LIST && seps.u.l->n == 2 && seps.u.l->v[0].t == JV_STR && seps.u.l->v[1].t == JV_STR) {
        item_sep = ja_strndup(c->a, seps.u.l->v[0].u.s.p, seps.u.l->v[0].u.s.n);
        key_sep = ja_strndup(c->a, seps.u.l->v[1].u.s.p, seps.u.l->v[1].u.s.n);
        if (!item_sep || !key_sep) return oom(c, at);
    } else if (seps.t != JV_NONE) return jx_fail(c, at, "tojson: separators must be a pair of strings");
    jbuf b = {0};
    if (jv_write_json(c->a, &b, v, indent.t == JV_INT ? (int)indent.u.i : -1, item_sep, key_sep, jv_truthy(sort), 0)) {
        free(b.p);
        if (v.t == JV_UNDEF) return jx_fail(c, at, "%.*s", (int)v.u.s.n, v.u.s.p);
        return jx_fail(c, at, "Object of type %s is not JSON serializable", jv_type_name(v));
    }
    return buf_str(c, at, &b, out);
}

static int length(jctx *c, const jnode *at, jval v, jval *out) {
    switch (v.t) {
    case JV_UNDEF: *out = jv_int(0); return 0;
    case JV_STR: *out = jv_int((long long)u8_count(v.u.s.p, v.u.s.n)); return 0;
    case JV_LIST: *out = jv_int((long long)v.u.l->n); return 0;
    case JV_DICT: *out = jv_int((long long)v.u.d->n); return 0;
    case JV_LOOP: *out = jv_int(v.u.lp->length); return 0;
    default: return jx_fail(c, at, "object of type '%s' has no len()", jv_type_name(v));
    }
}

static int escape(jctx *c, const jnode *at, jval s, jval *out) {
    jbuf b = {0};
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        const char *e = ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '"' ? "&#34;" :
                        ch == '\'' ? "&#39;" : NULL;
        if (e) jbuf_put(&b, e, strlen(e)); else jbuf_putc(&b, ch);
    }
    return buf_str(c, at, &b, out);
}

/* jinja2's title: words start after '-', whitespace, '(', '{', '[' or '<'. */
static int title(jctx *c, const jnode *at, jval s, jval *out) {
    jval up, low;
    jbuf b = {0};
    size_t i = 0, len;
    while (i < s.u.s.n) {
        size_t j = i;
        while (j < s.u.s.n && (strchr("-({[<", s.u.s.p[j]) || u8_space_at(s.u.s.p, s.u.s.n, j, &len)))
            j += strchr("-({[<", s.u.s.p[j]) ? 1 : len;
        jbuf_put(&b, s.u.s.p + i, j - i);
        i = j;
        while (j < s.u.s.n && !strchr("-({[<", s.u.s.p[j]) && !u8_space_at(s.u.s.p, s.u.s.n, j, &len)) j = u8_next(s.u.s.p, s.u.s.n, j);
        if (j == i) continue;
        size_t k = u8_next(s.u.s.p, s.u.s.n, i);
        jval m;
        if (jb_getattr(c, jv_str(s.u.s.p + i, k - i), "upper", &m) || jb_call(c, at, m, NULL, 0, NULL, NULL, 0, &up) ||
            jb_getattr(c, jv_str(s.u.s.p + k, j - k), "lower", &m) || jb_call(c, at, m, NULL, 0, NULL, NULL, 0, &low)) {
            free(b.p); return -1;
        }
        jbuf_put(&b, up.u.s.p, up.u.s.n); jbuf_put(&b, low.u.s.p, low.u.s.n);
        i = j;
    }
    return buf_str(c, at, &b, out);
}

/* list, reverse (a string stays a string), unique */
static int sequence(jctx *c, const jnode *at, const char *f, jval v, jval *out) {
    jlist *items, *l;
    if (items_of(c, at, v, &items) || !(l = jl_new(c->a, items->n))) return c->failed ? -1 : oom(c, at);
    for (size_t i = 0; i < items->n; i++) {
        jval x = items->v[f[0] == 'r' ? items->n - 1 - i : i];
        int dup = 0;
        for (size_t k = 0; f[0] == 'u' && k < l->n && !dup; k++) dup = jv_equal(l->v[k], x);
        if (!dup) jl_push(c->a, l, x);
    }
    if (f[0] == 'r' && v.t == JV_STR) {
        jbuf b = {0};
        for (size_t i = 0; i < l->n; i++) jbuf_put(&b, l->v[i].u.s.p, l->v[i].u.s.n);
        return buf_str(c, at, &b, out);
    }
    *out = list_val(l);
    return 0;
}

static int join(jctx *c, const jnode *at, jval v, const jval *args, int nargs, const char **kwn, const jval *kwv,
                int nkw, jval *out) {
    jval sep = jv_cstr(""), attr;
    jlist *items;
    int has_attr = jb_arg(args, nargs, kwn, kwv, nkw, 1, "attribute", &attr);
    jb_arg(args, nargs, kwn, kwv, nkw, 0, "d", &sep);
    if (items_of(c, at, v, &items) || jb_to_str(c, at, sep, &sep)) return -1;
    jbuf b = {0};
    for (size_t i = 0; i < items->n; i++) {
        jval x = items->v[i];
        if (has_attr && attr_path(c, at, x, attr, &x)) { free(b.p); return -1; }
        if (i) jbuf_put(&b, sep.u.s.p, sep.u.s.n);
        jv_write_str(&b, x);
    }
    return buf_str(c, at, &b, out);
}

/* ---- filters ------------------------------------------------------------------------------- */
int jb_filter(jctx *c, const jnode *at, const char *f, jval v, const jval *args, int nargs, const char **kwn,
              const jval *kwv, int nkw, jval *out) {
    jval a0 = jv_none(), s;
    jlist *items;
    if (!strcmp(f, "length") || !strcmp(f, "count")) return length(c, at, v, out);
    if (!strcmp(f, "tojson")) return tojson(c, at, v, args, nargs, kwn, kwv, nkw, out);
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        jval dflt = jv_cstr(""), boolean = jv_bool(0);
        jb_arg(args, nargs, kwn, kwv, nkw, 0, "default_value", &dflt);
        jb_arg(args, nargs, kwn, kwv, nkw, 1, "boolean", &boolean);
        *out = v.t == JV_UNDEF || (jv_truthy(boolean) && !jv_truthy(v)) ? dflt : v;
        return 0;
    }
    if (!strcmp(f, "selectattr") || !strcmp(f, "rejectattr") || !strcmp(f, "select") || !strcmp(f, "reject"))
        return select_(c, at, v, strstr(f, "attr") != NULL, f[0] == 's', args, nargs, out);
    if (!strcmp(f, "map")) return map_(c, at, v, args, nargs, kwn, kwv, nkw, out);
    if (!strcmp(f, "safe")) { *out = v; return 0; }
    if (!strcmp(f, "list") || !strcmp(f, "reverse") || !strcmp(f, "unique")) return sequence(c, at, f, v, out);
    if (!strcmp(f, "items")) {
        if (v.t == JV_UNDEF) { *out = list_val(jl_new(c->a, 0)); return out->u.l ? 0 : oom(c, at); }
        if (v.t != JV_DICT) return jx_fail(c, at, "items: can only get item pairs from a mapping");
        jval m;
        return jb_getattr(c, v, "items", &m) ? -1 : jb_call(c, at, m, NULL, 0, NULL, NULL, 0, out);
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        if (items_of(c, at, v, &items)) return -1;
        *out = items->n ? items->v[f[0] == 'f' ? 0 : items->n - 1] : jv_undef("the sequence is empty");
        return 0;
    }
    if (!strcmp(f, "join")) return join(c, at, v, args, nargs, kwn, kwv, nkw, out);
    if (!strcmp(f, "int") || !strcmp(f, "float")) {
        jval dflt = f[0] == 'i' ? jv_int(0) : jv_float(0);
        jb_arg(args, nargs, kwn, kwv, nkw, 0, "default", &dflt);
        double x = jv_num(v);
        if (f[0] == 'i' && v.t == JV_INT) { *out = v; return 0; }
        if (jv_is_num(v)) {
            *out = f[0] == 'f' ? jv_float(x) : x > -9.2e18 && x < 9.2e18 ? jv_int((long long)x) : dflt;
            return 0;
        }
        if (v.t != JV_STR) { *out = dflt; return 0; }
        char *str = ja_strndup(c->a, v.u.s.p, v.u.s.n), *end;
        if (!str) return oom(c, at);
        x = strtod(str, &end);
        while (*end == ' ' || *end == '\t' || *end == '\n') end++;
        *out = end == str || *end || (f[0] == 'i' && !(x > -9.2e18 && x < 9.2e18)) ? dflt
             : f[0] == 'i' ? jv_int((long long)x) : jv_float(x);
        return 0;
    }
    if (!strcmp(f, "abs")) {
        if (!jv_is_num(v)) return jx_fail(c, at, "bad operand type for abs(): '%s'", jv_type_name(v));
        if (v.t == JV_INT && v.u.i == LLONG_MIN) return jx_fail(c, at, "integer overflow");
        *out = v.t == JV_FLOAT ? jv_float(v.u.f < 0 ? -v.u.f : v.u.f) : jv_int(llabs(v.t == JV_INT ? v.u.i : v.u.b));
        return 0;
    }
    /* the rest work on str(v) */
    if (jb_to_str(c, at, v, &s)) return -1;
    if (!strcmp(f, "string")) { *out = s; return 0; }
    if (!strcmp(f, "trim")) {
        jb_arg(args, nargs, kwn, kwv, nkw, 0, "chars", &a0);
        return jb_strip(c, at, s, a0, 1, 1, out);
    }
    if (!strcmp(f, "e") || !strcmp(f, "escape")) return escape(c, at, s, out);
    if (!strcmp(f, "title")) return title(c, at, s, out);
    jval m;
    const char *method = !strcmp(f, "replace") ? "replace" : f;   /* upper, lower, title, capitalize, replace */
    if (jb_getattr(c, s, method, &m)) return -1;
    if (m.t != JV_FUNC) return jx_fail(c, at, "no filter named '%s'", f);
    return jb_call(c, at, m, args, nargs, kwn, kwv, nkw, out);
}
