/* text/jinja_methods.c — what a name, an attribute, an item or a call
 * resolves to: transformers' globals (raise_exception, strftime_now) and
 * jinja2's (namespace, range, dict); dict keys before dict methods as the
 * sandbox's getattr / getitem order them; loop.*; the str methods chat
 * templates call (startswith, split, strip, ...) and dict.items / keys /
 * values / get.  Touches the render's arena only. */
#include "text/jinja_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static jfunc G_RAISE = {JF_RAISE, "raise_exception", {0}}, G_STRFTIME = {JF_STRFTIME, "strftime_now", {0}},
             G_NAMESPACE = {JF_NAMESPACE, "namespace", {0}}, G_RANGE = {JF_RANGE, "range", {0}},
             G_DICT = {JF_DICT, "dict", {0}};

int jb_global(const char *name, jval *out) {
    jfunc *all[] = {&G_RAISE, &G_STRFTIME, &G_NAMESPACE, &G_RANGE, &G_DICT};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, all[i]->name)) { out->t = JV_FUNC; out->u.fn = all[i]; return 1; }
    return 0;
}

int jb_arg(const jval *args, int nargs, const char **kwn, const jval *kwv, int nkw, int pos, const char *name, jval *out) {
    for (int i = 0; name && i < nkw; i++) if (!strcmp(kwn[i], name)) { *out = kwv[i]; return 1; }
    if (pos >= 0 && pos < nargs) { *out = args[pos]; return 1; }
    return 0;
}

/* The text of b (which it frees) as a string in the arena. */
static int buf_str(jctx *c, const jnode *at, jbuf *b, jval *out) {
    char *p = b->oom ? NULL : ja_strndup(c->a, b->p ? b->p : "", b->n);
    free(b->p);
    if (!p) return jx_fail(c, at, "out of memory");
    *out = jv_str(p, b->n);
    return 0;
}

int jb_to_str(jctx *c, const jnode *at, jval v, jval *out) {
    if (v.t == JV_STR) { *out = v; return 0; }
    jbuf b = {0};
    jv_write_str(&b, v);
    return buf_str(c, at, &b, out);
}

static jval undef_attr(jctx *c, jval obj, const char *name) {
    size_t n = strlen(name) + 64;
    char *h = ja_alloc(c->a, n);
    if (h) snprintf(h, n, "'%s object' has no attribute '%s'", jv_type_name(obj), name);
    return jv_undef(h);
}

static const char *const STR_METHODS[] = {"startswith", "endswith", "split", "rsplit", "strip", "lstrip", "rstrip",
                                          "upper", "lower", "title", "capitalize", "replace", "find", "count",
                                          "join", "isdigit", "isspace", "splitlines", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", NULL};

static int method(jctx *c, jval self, const char *const *names, const char *name, jval *out) {
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], name)) continue;
        jfunc *f = ja_alloc(c->a, sizeof *f);
        if (!f) return jx_fail(c, NULL, "out of memory");
        f->id = JF_METHOD; f->name = names[i]; f->self = self;
        out->t = JV_FUNC; out->u.fn = f;
        return 1;
    }
    return 0;
}

static int loop_attr(jctx *c, const jloop *lp, const char *name, jval *out) {
    long long i = lp->index0, n = lp->length;
    if (!strcmp(name, "index0")) *out = jv_int(i);
    else if (!strcmp(name, "index")) *out = jv_int(i + 1);
    else if (!strcmp(name, "revindex0")) *out = jv_int(n - i - 1);
    else if (!strcmp(name, "revindex")) *out = jv_int(n - i);
    else if (!strcmp(name, "first")) *out = jv_bool(i == 0);
    else if (!strcmp(name, "last")) *out = jv_bool(i == n - 1);
    else if (!strcmp(name, "length")) *out = jv_int(n);
    else if (!strcmp(name, "depth")) *out = jv_int(1);
    else if (!strcmp(name, "depth0")) *out = jv_int(0);
    else if (!strcmp(name, "previtem")) *out = i > 0 ? lp->items->v[i - 1] : jv_undef("there is no previous item");
    else if (!strcmp(name, "nextitem")) *out = i + 1 < n ? lp->items->v[i + 1] : jv_undef("there is no next item");
    else if (!strcmp(name, "cycle")) {
        jval self = {.t = JV_LOOP};
        self.u.lp = (jloop *)lp;
        static const char *const cyc[] = {"cycle", NULL};
        return method(c, self, cyc, name, out) < 0 ? -1 : 0;
    } else *out = jv_undef("the loop has no such attribute");
    return 0;
}

int jb_getattr(jctx *c, jval obj, const char *name, jval *out) {
    int m = 0, k;
    switch (obj.t) {
    case JV_DICT:
        if ((m = method(c, obj, DICT_METHODS, name, out))) return m < 0 ? -1 : 0;
        if ((k = jd_find_s(obj.u.d, name)) >= 0) { *out = obj.u.d->v[k]; return 0; }
        break;
    case JV_NS:
        if ((k = jd_find_s(obj.u.d, name)) >= 0) { *out = obj.u.d->v[k]; return 0; }
        break;
    case JV_STR:
        if ((m = method(c, obj, STR_METHODS, name, out))) return m < 0 ? -1 : 0;
        break;
    case JV_LOOP: return loop_attr(c, obj.u.lp, name, out);
    default: break;
    }
    *out = undef_attr(c, obj, name);
    return 0;
}

int jb_getitem(jctx *c, const jnode *at, jval obj, jval key, jval *out) {
    int k;
    if ((obj.t == JV_LIST || obj.t == JV_STR) && (key.t == JV_INT || key.t == JV_BOOL)) {
        long long i = key.t == JV_INT ? key.u.i : key.u.b;
        if (obj.t == JV_LIST) {
            long long n = (long long)obj.u.l->n;
            if (i < 0) i += n;
            *out = i >= 0 && i < n ? obj.u.l->v[i] : jv_undef("list index out of range");
            return 0;
        }
        long long n = (long long)u8_count(obj.u.s.p, obj.u.s.n);
        if (i < 0) i += n;
        if (i < 0 || i >= n) { *out = jv_undef("string index out of range"); return 0; }
        size_t off = 0;
        for (long long j = 0; j < i; j++) off = u8_next(obj.u.s.p, obj.u.s.n, off);
        *out = jv_str(obj.u.s.p + off, u8_next(obj.u.s.p, obj.u.s.n, off) - off);
        return 0;
    }
    if ((obj.t == JV_DICT) && (k = jd_find(obj.u.d, key)) >= 0) { *out = obj.u.d->v[k]; return 0; }
    if (key.t == JV_STR) {                                /* then getattr, as jinja2 does */
        char *name = ja_strndup(c->a, key.u.s.p, key.u.s.n);
        if (!name) return jx_fail(c, at, "out of memory");
        return jb_getattr(c, obj, name, out);
    }
    *out = jv_undef("no such item");
    return 0;
}

int jb_iter(jctx *c, const jnode *at, jval v, jlist **out) {
    switch (v.t) {
    case JV_LIST: *out = v.u.l; return 0;
    case JV_UNDEF: return (*out = jl_new(c->a, 0)) ? 0 : jx_fail(c, at, "out of memory");
    case JV_DICT: {
        jlist *l = jl_new(c->a, v.u.d->n);
        if (!l) return jx_fail(c, at, "out of memory");
        for (size_t i = 0; i < v.u.d->n; i++) jl_push(c->a, l, v.u.d->k[i]);
        *out = l;
        return 0;
    }
    case JV_STR: {
        jlist *l = jl_new(c->a, v.u.s.n);
        if (!l) return jx_fail(c, at, "out of memory");
        for (size_t i = 0, j; i < v.u.s.n; i = j) {
            j = u8_next(v.u.s.p, v.u.s.n, i);
            jl_push(c->a, l, jv_str(v.u.s.p + i, j - i));
        }
        *out = l;
        return 0;
    }
    default: return jx_fail(c, at, "'%s' object is not iterable", jv_type_name(v));
    }
}

/* ---- str methods -------------------------------------------------------------------------- */
static int in_chars(const char *p, size_t n, size_t i, size_t *len, jval chars) {
    if (chars.t != JV_STR) return u8_space_at(p, n, i, len);
    *len = u8_next(p, n, i) - i;
    for (size_t k = 0; k < chars.u.s.n; k = u8_next(chars.u.s.p, chars.u.s.n, k)) {
        size_t w = u8_next(chars.u.s.p, chars.u.s.n, k) - k;
        if (w == *len && !memcmp(chars.u.s.p + k, p + i, w)) return 1;
    }
    return 0;
}

int jb_strip(jctx *c, const jnode *at, jval s, jval chars, int left, int right, jval *out) {
    if (chars.t != JV_STR && chars.t != JV_NONE && chars.t != JV_UNDEF)
        return jx_fail(c, at, "strip arg must be None or str");
    size_t a = 0, e = s.u.s.n, len;
    if (left) while (a < e && in_chars(s.u.s.p, e, a, &len, chars)) a += len;
    if (right)
        while (e > a) {
            size_t b = e - 1;
            while (b > a && ((unsigned char)s.u.s.p[b] & 0xC0) == 0x80) b--;
            if (!in_chars(s.u.s.p, e, b, &len, chars)) break;
            e = b;
        }
    *out = jv_str(s.u.s.p + a, e - a);
    return 0;
}

static int prefix_match(jval s, jval x, int end) {
    if (x.t != JV_STR || x.u.s.n > s.u.s.n) return 0;
    return !memcmp(s.u.s.p + (end ? s.u.s.n - x.u.s.n : 0), x.u.s.p, x.u.s.n);
}

/* str.split / rsplit: by sep, or by runs of whitespace when sep is None. */
static int split(jctx *c, const jnode *at, jval s, jval sep, long long max, int from_right, jval *out) {
    jlist *l = jl_new(c->a, 0);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, len;
    if (!l) return jx_fail(c, at, "out of memory");
    if (sep.t == JV_STR && !sep.u.s.n) return jx_fail(c, at, "empty separator");
    if (sep.t == JV_STR && !from_right) {
        size_t start = 0;
        for (size_t i = 0; i + sep.u.s.n <= n && (max < 0 || (long long)l->n < max);) {
            if (memcmp(p + i, sep.u.s.p, sep.u.s.n)) { i++; continue; }
            jl_push(c->a, l, jv_str(p + start, i - start));
            i += sep.u.s.n; start = i;
        }
        jl_push(c->a, l, jv_str(p + start, n - start));
    } else if (sep.t == JV_STR) {                         /* rsplit: collect from the end, then reverse */
        size_t end = n;
        for (size_t i = n; i >= sep.u.s.n && (max < 0 || (long long)l->n < max);) {
            if (memcmp(p + i - sep.u.s.n, sep.u.s.p, sep.u.s.n)) { i--; continue; }
            jl_push(c->a, l, jv_str(p + i, end - i));
            i -= sep.u.s.n; end = i;
        }
        jl_push(c->a, l, jv_str(p, end));
        for (size_t i = 0; i < l->n / 2; i++) { jval t = l->v[i]; l->v[i] = l->v[l->n - 1 - i]; l->v[l->n - 1 - i] = t; }
    } else {
        if (from_right && max >= 0) return jx_fail(c, at, "rsplit with maxsplit and no separator is not supported");
        size_t i = 0;
        for (;;) {
            while (i < n && u8_space_at(p, n, i, &len)) i += len;
            if (i >= n) break;
            size_t start = i;
            if (max >= 0 && (long long)l->n == max) {     /* the rest, right-stripped */
                jval rest;
                jb_strip(c, at, jv_str(p + i, n - i), jv_none(), 0, 1, &rest);
                jl_push(c->a, l, rest);
                break;
            }
            while (i < n && !u8_space_at(p, n, i, &len)) i = u8_next(p, n, i);
            jl_push(c->a, l, jv_str(p + start, i - start));
        }
    }
    out->t = JV_LIST; out->u.l = l;
    return 0;
}

/* upper / lower / title / capitalize through utf8proc's simple case maps. */
static int recase(jctx *c, const jnode *at, jval s, int mode, jval *out) {
    jbuf b = {0};
    int prev_cased = 0, first = 1;
    for (size_t i = 0, len; i < s.u.s.n; i += len) {
        int32_t cp = -1;
        utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s.u.s.p + i, (utf8proc_ssize_t)(s.u.s.n - i), &cp);
        len = r > 0 ? (size_t)r : 1;
        if (r <= 0) { jbuf_put(&b, s.u.s.p + i, 1); continue; }
        int up = mode == 'u' || (mode == 't' && !prev_cased) || (mode == 'c' && first);
        int32_t m = up ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
        utf8proc_category_t cat = utf8proc_category(cp);
        prev_cased = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
        first = 0;
        utf8proc_uint8_t enc[4];
        jbuf_put(&b, (const char *)enc, (size_t)utf8proc_encode_char(m, enc));
    }
    return buf_str(c, at, &b, out);
}

static int str_method(jctx *c, const jnode *at, const char *m, jval s, const jval *args, int nargs,
                      const char **kwn, const jval *kwv, int nkw, jval *out) {
    jval a0 = jv_none(), a1 = jv_none();
    int has0 = jb_arg(args, nargs, kwn, kwv, nkw, 0, !strcmp(m, "split") || !strcmp(m, "rsplit") ? "sep" : NULL, &a0);
    jb_arg(args, nargs, kwn, kwv, nkw, 1, !strcmp(m, "split") || !strcmp(m, "rsplit") ? "maxsplit" : NULL, &a1);
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        int end = m[0] == 'e', hit = 0;
        if (!has0 || nargs > 1) return jx_fail(c, at, "%s takes one argument here (a prefix or a tuple of them)", m);
        if (a0.t == JV_LIST) { for (size_t i = 0; i < a0.u.l->n; i++) hit |= prefix_match(s, a0.u.l->v[i], end); }
        else if (a0.t == JV_STR) hit = prefix_match(s, a0, end);
        else return jx_fail(c, at, "%s first arg must be str or a tuple of str, not %s", m, jv_type_name(a0));
        *out = jv_bool(hit);
        return 0;
    }
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        if (a1.t != JV_NONE && a1.t != JV_INT) return jx_fail(c, at, "maxsplit must be an integer");
        return split(c, at, s, a0, a1.t == JV_INT ? a1.u.i : -1, m[0] == 'r', out);
    }
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip"))
        return jb_strip(c, at, s, a0, m[0] != 'r', m[0] != 'l', out);
    if (!strcmp(m, "upper") || !strcmp(m, "lower") || !strcmp(m, "title") || !strcmp(m, "capitalize"))
        return recase(c, at, s, m[0] == 'u' ? 'u' : m[0] == 'l' ? 'l' : m[0], out);
    if (!strcmp(m, "replace")) {
        jval cnt = jv_int(-1);
        jb_arg(args, nargs, kwn, kwv, nkw, 2, "count", &cnt);
        if (a0.t != JV_STR || a1.t != JV_STR || cnt.t != JV_INT) return jx_fail(c, at, "replace(old, new[, count]) takes strings");
        if (!a0.u.s.n) return jx_fail(c, at, "replace() of an empty string is not supported");
        jbuf b = {0};
        long long done = 0;
        for (size_t i = 0; i < s.u.s.n;) {
            if ((cnt.u.i < 0 || done < cnt.u.i) && i + a0.u.s.n <= s.u.s.n && !memcmp(s.u.s.p + i, a0.u.s.p, a0.u.s.n)) {
                jbuf_put(&b, a1.u.s.p, a1.u.s.n); i += a0.u.s.n; done++;
            } else jbuf_putc(&b, s.u.s.p[i++]);
        }
        return buf_str(c, at, &b, out);
    }
    if (!strcmp(m, "find") || !strcmp(m, "count")) {
        if (a0.t != JV_STR) return jx_fail(c, at, "%s() needs a string", m);
        long long found = a0.u.s.n ? -1 : 0, count = a0.u.s.n ? 0 : (long long)u8_count(s.u.s.p, s.u.s.n) + 1, cp = 0;
        for (size_t i = 0; a0.u.s.n && i + a0.u.s.n <= s.u.s.n;) {
            if (memcmp(s.u.s.p + i, a0.u.s.p, a0.u.s.n)) { i = u8_next(s.u.s.p, s.u.s.n, i); cp++; continue; }
            if (found < 0) found = cp;
            count++;
            cp += (long long)u8_count(a0.u.s.p, a0.u.s.n);
            i += a0.u.s.n;
        }
        *out = jv_int(m[0] == 'f' ? found : count);
        return 0;
    }
    if (!strcmp(m, "join")) {
        jlist *items;
        jbuf b = {0};
        if (!has0 || jb_iter(c, at, a0, &items)) return has0 ? -1 : jx_fail(c, at, "join() takes one argument");
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].t != JV_STR) { free(b.p); return jx_fail(c, at, "sequence item %zu: expected str instance", i); }
            if (i) jbuf_put(&b, s.u.s.p, s.u.s.n);
            jbuf_put(&b, items->v[i].u.s.p, items->v[i].u.s.n);
        }
        return buf_str(c, at, &b, out);
    }
    if (!strcmp(m, "isdigit") || !strcmp(m, "isspace")) {
        size_t len;
        int ok = s.u.s.n > 0;
        for (size_t i = 0; i < s.u.s.n && ok; i += len) {
            len = 1;
            ok = m[2] == 'd' ? (s.u.s.p[i] >= '0' && s.u.s.p[i] <= '9') : u8_space_at(s.u.s.p, s.u.s.n, i, &len);
        }
        *out = jv_bool(ok);
        return 0;
    }
    if (!strcmp(m, "splitlines")) {
        jlist *l = jl_new(c->a, 0);
        if (!l) return jx_fail(c, at, "out of memory");
        size_t start = 0;
        for (size_t i = 0; i < s.u.s.n; i++) {
            char ch = s.u.s.p[i];
            if (ch != '\n' && ch != '\r') continue;
            jl_push(c->a, l, jv_str(s.u.s.p + start, i - start));
            if (ch == '\r' && i + 1 < s.u.s.n && s.u.s.p[i + 1] == '\n') i++;
            start = i + 1;
        }
        if (start < s.u.s.n) jl_push(c->a, l, jv_str(s.u.s.p + start, s.u.s.n - start));
        out->t = JV_LIST; out->u.l = l;
        return 0;
    }
    return jx_fail(c, at, "str.%s is not supported", m);
}

static int dict_method(jctx *c, const jnode *at, const char *m, jdict *d, const jval *args, int nargs, jval *out) {
    if (!strcmp(m, "get")) {
        int k = nargs > 0 ? jd_find(d, args[0]) : -1;
        if (nargs < 1) return jx_fail(c, at, "get() takes a key");
        *out = k >= 0 ? d->v[k] : nargs > 1 ? args[1] : jv_none();
        return 0;
    }
    jlist *l = jl_new(c->a, d->n);
    if (!l) return jx_fail(c, at, "out of memory");
    for (size_t i = 0; i < d->n; i++) {
        jval v = m[0] == 'k' ? d->k[i] : d->v[i];
        if (m[0] == 'i') {                                /* items: (key, value) pairs */
            jlist *pair = jl_new(c->a, 2);
            if (!pair) return jx_fail(c, at, "out of memory");
            jl_push(c->a, pair, d->k[i]); jl_push(c->a, pair, d->v[i]);
            pair->tuple = 1;
            v.t = JV_LIST; v.u.l = pair;
        }
        jl_push(c->a, l, v);
    }
    out->t = JV_LIST; out->u.l = l;
    return 0;
}

int jb_call(jctx *c, const jnode *at, jval fn, const jval *args, int nargs, const char **kwn, const jval *kwv, int nkw,
            jval *out) {
    if (fn.t != JV_FUNC) return jx_fail(c, at, "'%s' object is not callable", jv_type_name(fn));
    jfunc *f = fn.u.fn;
    jval s;
    switch (f->id) {
    case JF_RAISE:
        if (jb_to_str(c, at, nargs ? args[0] : jv_cstr("raise_exception"), &s)) return -1;
        return jx_fail(c, NULL, "%.*s", (int)s.u.s.n, s.u.s.p);
    case JF_STRFTIME: {
        char buf[512];
        struct tm tm;
        if (!nargs || args[0].t != JV_STR) return jx_fail(c, at, "strftime_now(format) takes a string");
        char *fmt = ja_strndup(c->a, args[0].u.s.p, args[0].u.s.n);
        if (!fmt || !localtime_r(&c->now, &tm)) return jx_fail(c, at, "strftime_now: no local time");
        size_t n = strftime(buf, sizeof buf, fmt, &tm);
        char *p = ja_strndup(c->a, buf, n);
        if (!p) return jx_fail(c, at, "out of memory");
        *out = jv_str(p, n);
        return 0;
    }
    case JF_NAMESPACE: case JF_DICT: {
        jdict *d = jd_new(c->a, (size_t)nkw);
        if (!d) return jx_fail(c, at, "out of memory");
        if (nargs && args[0].t == JV_DICT)
            for (size_t i = 0; i < args[0].u.d->n; i++) jd_set(c->a, d, args[0].u.d->k[i], args[0].u.d->v[i]);
        else if (nargs) return jx_fail(c, at, "%s() takes keyword arguments or a dict", f->name);
        for (int i = 0; i < nkw; i++) if (jd_set(c->a, d, jv_cstr(kwn[i]), kwv[i])) return jx_fail(c, at, "out of memory");
        out->t = f->id == JF_NAMESPACE ? JV_NS : JV_DICT; out->u.d = d;
        return 0;
    }
    case JF_RANGE: {
        long long a = 0, b = 0, st = 1;
        for (int i = 0; i < nargs; i++) if (args[i].t != JV_INT) return jx_fail(c, at, "range() takes integers");
        if (nargs == 1) b = args[0].u.i;
        else if (nargs >= 2) { a = args[0].u.i; b = args[1].u.i; if (nargs > 2) st = args[2].u.i; }
        if (!nargs || !st) return jx_fail(c, at, "range() needs a stop and a step other than 0");
        if (((double)b - (double)a) / (double)st > 100000) return jx_fail(c, at, "range() too long for a sandboxed template");
        jlist *l = jl_new(c->a, 0);
        if (!l) return jx_fail(c, at, "out of memory");
        for (long long i = a; st > 0 ? i < b : i > b; i += st) jl_push(c->a, l, jv_int(i));
        out->t = JV_LIST; out->u.l = l;
        return 0;
    }
    default: break;
    }
    if (f->self.t == JV_STR) return str_method(c, at, f->name, f->self, args, nargs, kwn, kwv, nkw, out);
    if (f->self.t == JV_DICT) return dict_method(c, at, f->name, f->self.u.d, args, nargs, out);
    if (f->self.t == JV_LOOP) {                           /* loop.cycle(a, b, ...) */
        if (!nargs) return jx_fail(c, at, "no items for cycling given");
        *out = args[f->self.u.lp->index0 % nargs];
        return 0;
    }
    return jx_fail(c, at, "cannot call %s", f->name);
}
