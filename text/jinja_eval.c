/* text/jinja_eval.c — renders a syntax tree: scopes (a for loop's body gets a
 * fresh scope each iteration, as in jinja2, so a set inside a loop is gone
 * after it: namespaces carry state out), statements, and expressions with
 * Python's operators; undefined values print as "" and fail when used.  Also
 * the public jinja_compile / jinja_render / jinja_free.  Touches the render's
 * arena and output buffer only. */
#include "text/jinja.h"
#include "text/jinja_int.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { X_OK = 0, X_ERR = -1, X_BREAK = 1, X_CONTINUE = 2 };

typedef struct jscope {
    struct jscope *up;
    int n, cap;
    const char **names;     /* (cap,) */
    jval *vals;             /* (cap,) */
} jscope;

int jx_fail(jctx *c, const jnode *at, const char *fmt, ...) {
    if (c->failed) return -1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at) snprintf(c->err, c->errcap, "line %d, column %d: %s", at->line, at->col, msg);
    else snprintf(c->err, c->errcap, "%s", msg);
    c->failed = 1;
    return -1;
}
static int oom(jctx *c, const jnode *at) { return jx_fail(c, at, "out of memory"); }
static int undefined_use(jctx *c, const jnode *at, jval v) {
    return jx_fail(c, at, "%.*s", (int)v.u.s.n, v.u.s.n ? v.u.s.p : "undefined value");
}

static int scope_set(jctx *c, jscope *s, const char *name, jval v) {
    for (int i = 0; i < s->n; i++) if (!strcmp(s->names[i], name)) { s->vals[i] = v; return 0; }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        const char **nn = ja_alloc(c->a, (size_t)cap * sizeof *nn);
        jval *nv = ja_alloc(c->a, (size_t)cap * sizeof *nv);
        if (!nn || !nv) return -1;
        if (s->n) { memcpy(nn, s->names, (size_t)s->n * sizeof *nn); memcpy(nv, s->vals, (size_t)s->n * sizeof *nv); }
        s->names = nn; s->vals = nv; s->cap = cap;
    }
    s->names[s->n] = name; s->vals[s->n++] = v;
    return 0;
}
static int scope_get(const jscope *s, const char *name, jval *out) {
    for (; s; s = s->up)
        for (int i = s->n - 1; i >= 0; i--) if (!strcmp(s->names[i], name)) { *out = s->vals[i]; return 1; }
    return 0;
}

static int eval(jctx *c, jscope *s, const jnode *n, jval *out);
static int literal(jctx *c, jscope *s, const jnode *n, jval *out);

static int str_value(jctx *c, const jnode *at, jbuf *b, jval *out) {
    char *p = b->oom ? NULL : ja_strndup(c->a, b->p ? b->p : "", b->n);
    free(b->p);
    if (!p) return oom(c, at);
    *out = jv_str(p, b->n);
    return 0;
}

/* ---- operators ------------------------------------------------------------------- */
static const char *op_name(int op) {
    switch (op) {
    case JO_FLOORDIV: return "//";
    case JO_POW: return "**";
    case '+': return "+";
    case '-': return "-";
    case '*': return "*";
    case '/': return "/";
    default: return "%";
    }
}

static int arith(jctx *c, const jnode *at, int op, jval l, jval r, jval *out) {
    if (l.t == JV_UNDEF) return undefined_use(c, at, l);
    if (r.t == JV_UNDEF) return undefined_use(c, at, r);
    if (op == '~') {
        jbuf b = {0};
        jv_write_str(&b, l); jv_write_str(&b, r);
        return str_value(c, at, &b, out);
    }
    if (jv_is_num(l) && jv_is_num(r)) {
        int ints = l.t != JV_FLOAT && r.t != JV_FLOAT;
        long long x = l.t == JV_INT ? l.u.i : l.u.b, y = r.t == JV_INT ? r.u.i : r.u.b;
        double fx = jv_num(l), fy = jv_num(r);
        long long z = 0;
        int over = 0;
        switch (op) {
        case '+': over = ints && __builtin_add_overflow(x, y, &z); break;
        case '-': over = ints && __builtin_sub_overflow(x, y, &z); break;
        case '*': over = ints && __builtin_mul_overflow(x, y, &z); break;
        case JO_FLOORDIV: case '%': over = ints && x == LLONG_MIN && y == -1; break;
        }
        if (over) return jx_fail(c, at, "integer overflow (this engine has 64-bit integers)");
        switch (op) {
        case '+': *out = ints ? jv_int(z) : jv_float(fx + fy); return 0;
        case '-': *out = ints ? jv_int(z) : jv_float(fx - fy); return 0;
        case '*': *out = ints ? jv_int(z) : jv_float(fx * fy); return 0;
        case '/':
            if (fy == 0) return jx_fail(c, at, "division by zero");
            *out = jv_float(fx / fy); return 0;
        case JO_FLOORDIV: case '%':
            if (fy == 0) return jx_fail(c, at, "integer division or modulo by zero");
            if (ints) {
                long long q = x / y, m = x % y;
                if (m && ((m < 0) != (y < 0))) { q--; m += y; }
                *out = jv_int(op == '%' ? m : q);
            } else {
                double m = fmod(fx, fy);
                if (m && ((m < 0) != (fy < 0))) m += fy;
                *out = jv_float(op == '%' ? m : floor(fx / fy));
            }
            return 0;
        case JO_POW:
            if (ints && y >= 0) {
                long long p = 1;
                if (x == 0 || x == 1) p = x == 1 || y == 0;
                else if (x == -1) p = y % 2 ? -1 : 1;
                else for (long long k = 0; k < y; k++)    /* |x| >= 2 overflows within 63 steps */
                    if (__builtin_mul_overflow(p, x, &p)) return jx_fail(c, at, "integer overflow (this engine has 64-bit integers)");
                *out = jv_int(p);
            } else *out = jv_float(pow(fx, fy));
            return 0;
        }
    }
    if (op == '+' && l.t == JV_STR && r.t == JV_STR) {
        char *p = ja_alloc(c->a, l.u.s.n + r.u.s.n + 1);
        if (!p) return oom(c, at);
        memcpy(p, l.u.s.p, l.u.s.n);
        memcpy(p + l.u.s.n, r.u.s.p, r.u.s.n);
        *out = jv_str(p, l.u.s.n + r.u.s.n);
        return 0;
    }
    if (op == '+' && l.t == JV_LIST && r.t == JV_LIST) {
        jlist *x = jl_new(c->a, l.u.l->n + r.u.l->n);
        if (!x) return oom(c, at);
        for (size_t i = 0; i < l.u.l->n; i++) jl_push(c->a, x, l.u.l->v[i]);
        for (size_t i = 0; i < r.u.l->n; i++) jl_push(c->a, x, r.u.l->v[i]);
        out->t = JV_LIST; out->u.l = x;
        return 0;
    }
    if (op == '*' && ((l.t == JV_STR && r.t == JV_INT) || (l.t == JV_INT && r.t == JV_STR))) {
        jval sv = l.t == JV_STR ? l : r;
        long long k = l.t == JV_INT ? l.u.i : r.u.i;
        jbuf b = {0};
        if (k > 0 && sv.u.s.n && (unsigned long long)k > (64ull << 20) / sv.u.s.n)
            return jx_fail(c, at, "string repetition longer than 64 MiB");
        for (long long i = 0; i < k && !b.oom; i++) jbuf_put(&b, sv.u.s.p, sv.u.s.n);
        return str_value(c, at, &b, out);
    }
    return jx_fail(c, at, "unsupported operand type(s) for %s: '%s' and '%s'", op_name(op), jv_type_name(l),
                   jv_type_name(r));
}

static int contains(jctx *c, const jnode *at, jval item, jval box, int *res) {
    *res = 0;
    switch (box.t) {
    case JV_UNDEF: return 0;
    case JV_STR:
        if (item.t != JV_STR) return jx_fail(c, at, "'in <string>' requires string as left operand, not %s", jv_type_name(item));
        if (!item.u.s.n) { *res = 1; return 0; }
        for (size_t i = 0; i + item.u.s.n <= box.u.s.n; i++)
            if (!memcmp(box.u.s.p + i, item.u.s.p, item.u.s.n)) { *res = 1; break; }
        return 0;
    case JV_LIST:
        for (size_t i = 0; i < box.u.l->n; i++) if (jv_equal(item, box.u.l->v[i])) { *res = 1; break; }
        return 0;
    case JV_DICT: case JV_NS: *res = jd_find(box.u.d, item) >= 0; return 0;
    default: return jx_fail(c, at, "argument of type '%s' is not iterable", jv_type_name(box));
    }
}

static int compare(jctx *c, const jnode *at, int op, jval l, jval r, int *res) {
    if (op == JO_EQ || op == JO_NE) { *res = jv_equal(l, r) == (op == JO_EQ); return 0; }
    if (op == 'i' || op == 'n') {
        if (contains(c, at, l, r, res)) return -1;
        if (op == 'n') *res = !*res;
        return 0;
    }
    int cmp;
    if (jv_is_num(l) && jv_is_num(r)) {
        double x = jv_num(l), y = jv_num(r);
        if (l.t == JV_INT && r.t == JV_INT) cmp = (l.u.i > r.u.i) - (l.u.i < r.u.i);
        else cmp = (x > y) - (x < y);
    } else if (l.t == JV_STR && r.t == JV_STR) {
        size_t n = l.u.s.n < r.u.s.n ? l.u.s.n : r.u.s.n;
        cmp = memcmp(l.u.s.p, r.u.s.p, n);
        if (!cmp) cmp = (l.u.s.n > r.u.s.n) - (l.u.s.n < r.u.s.n);
    } else {
        if (l.t == JV_UNDEF) return undefined_use(c, at, l);
        if (r.t == JV_UNDEF) return undefined_use(c, at, r);
        return jx_fail(c, at, "'%s' not supported between instances of '%s' and '%s'",
                       op == '<' ? "<" : op == '>' ? ">" : op == JO_LE ? "<=" : ">=", jv_type_name(l), jv_type_name(r));
    }
    *res = op == '<' ? cmp < 0 : op == '>' ? cmp > 0 : op == JO_LE ? cmp <= 0 : cmp >= 0;
    return 0;
}

/* Python's slice of a list or str (by code point). */
static int slice(jctx *c, const jnode *at, jval obj, jval a, jval b, jval st, jval *out) {
    long long step = st.t == JV_NONE ? 1 : st.t == JV_INT ? st.u.i : 0;
    if (!step || (st.t != JV_NONE && st.t != JV_INT) || (a.t != JV_NONE && a.t != JV_INT) || (b.t != JV_NONE && b.t != JV_INT))
        return jx_fail(c, at, "slice indices must be integers (and the step not zero)");
    if (obj.t == JV_UNDEF) return undefined_use(c, at, obj);
    size_t *offs = NULL;
    long long len;
    if (obj.t == JV_LIST) len = (long long)obj.u.l->n;
    else if (obj.t == JV_STR) {
        len = (long long)u8_count(obj.u.s.p, obj.u.s.n);
        if (!(offs = ja_alloc(c->a, ((size_t)len + 1) * sizeof *offs))) return oom(c, at);
        size_t k = 0;
        for (size_t i = 0; i < obj.u.s.n; i = u8_next(obj.u.s.p, obj.u.s.n, i)) offs[k++] = i;
        offs[k] = obj.u.s.n;
    } else return jx_fail(c, at, "'%s' object is not subscriptable", jv_type_name(obj));
    long long lo, hi;
    if (step > len + 1) step = len + 1;                   /* the same items, and no overflow */
    if (step < -len - 1) step = -len - 1;
    if (step > 0) {
        lo = a.t == JV_NONE ? 0 : a.u.i < 0 ? (a.u.i + len < 0 ? 0 : a.u.i + len) : (a.u.i > len ? len : a.u.i);
        hi = b.t == JV_NONE ? len : b.u.i < 0 ? (b.u.i + len < 0 ? 0 : b.u.i + len) : (b.u.i > len ? len : b.u.i);
    } else {
        lo = a.t == JV_NONE ? len - 1 : a.u.i < 0 ? (a.u.i + len < 0 ? -1 : a.u.i + len) : (a.u.i >= len ? len - 1 : a.u.i);
        hi = b.t == JV_NONE ? -1 : b.u.i < 0 ? (b.u.i + len < 0 ? -1 : b.u.i + len) : (b.u.i >= len ? len - 1 : b.u.i);
    }
    jlist *l = obj.t == JV_LIST ? jl_new(c->a, 0) : NULL;
    jbuf sb = {0};
    if (obj.t == JV_LIST && !l) return oom(c, at);
    for (long long i = lo; step > 0 ? i < hi : i > hi; i += step) {
        if (l) { if (jl_push(c->a, l, obj.u.l->v[i])) return oom(c, at); }
        else jbuf_put(&sb, obj.u.s.p + offs[i], offs[i + 1] - offs[i]);
    }
    if (!l) return str_value(c, at, &sb, out);
    out->t = JV_LIST; out->u.l = l;
    return 0;
}

/* ---- expressions ---------------------------------------------------------------------- */
static int eval_args(jctx *c, jscope *s, const jnode *n, jval **args, jval **kw) {
    *args = n->args.n ? ja_alloc(c->a, (size_t)n->args.n * sizeof **args) : NULL;
    *kw = n->kw.n ? ja_alloc(c->a, (size_t)n->kw.n * sizeof **kw) : NULL;
    if ((n->args.n && !*args) || (n->kw.n && !*kw)) return oom(c, n);
    for (int i = 0; i < n->args.n; i++) if (eval(c, s, n->args.v[i], &(*args)[i])) return -1;
    for (int i = 0; i < n->kw.n; i++) if (eval(c, s, n->kw.v[i], &(*kw)[i])) return -1;
    return 0;
}

/* [a, b], (a, b), {k: v} */
static int literal(jctx *c, jscope *s, const jnode *n, jval *out) {
    jval k, v;
    if (n->kind == JN_DICT) {
        jdict *d = jd_new(c->a, (size_t)n->args.n);
        if (!d) return oom(c, n);
        for (int i = 0; i < n->args.n; i++)
            if (eval(c, s, n->args.v[i], &k) || eval(c, s, n->kw.v[i], &v)) return -1;
            else if (jd_set(c->a, d, k, v)) return oom(c, n);
        out->t = JV_DICT; out->u.d = d;
        return 0;
    }
    jlist *lst = jl_new(c->a, (size_t)n->args.n);
    if (!lst) return oom(c, n);
    lst->tuple = n->kind == JN_TUPLE;
    for (int i = 0; i < n->args.n; i++)
        if (eval(c, s, n->args.v[i], &v)) return -1;
        else if (jl_push(c->a, lst, v)) return oom(c, n);
    out->t = JV_LIST; out->u.l = lst;
    return 0;
}

static int eval(jctx *c, jscope *s, const jnode *n, jval *out) {
    jval l, r, x, *args, *kw;
    int res;
    if (++c->depth > 400) { c->depth--; return jx_fail(c, n, "expression nested too deep"); }
    int rc = 0;
    switch (n->kind) {
    case JN_CONST: *out = n->lit; break;
    case JN_NAME:
        if (!scope_get(s, n->name, out) && !jb_global(n->name, out)) {
            size_t len = strlen(n->name) + 20;
            char *h = ja_alloc(c->a, len);
            if (!h) { rc = oom(c, n); break; }
            snprintf(h, len, "'%s' is undefined", n->name);
            *out = jv_undef(h);
        }
        break;
    case JN_ATTR:
        if (!(rc = eval(c, s, n->a, &l))) {
            if (l.t == JV_UNDEF) rc = undefined_use(c, n, l);
            else rc = jb_getattr(c, l, n->name, out);
        }
        break;
    case JN_ITEM:
        if (!(rc = eval(c, s, n->a, &l)) && !(rc = eval(c, s, n->b, &r))) {
            if (l.t == JV_UNDEF) rc = undefined_use(c, n, l);
            else rc = jb_getitem(c, n, l, r, out);
        }
        break;
    case JN_SLICE: {
        jval a = jv_none(), b = jv_none(), st = jv_none();
        if ((rc = eval(c, s, n->a, &x)) || (n->b && (rc = eval(c, s, n->b, &a))) || (n->c && (rc = eval(c, s, n->c, &b))) ||
            (n->d && (rc = eval(c, s, n->d, &st)))) break;
        rc = slice(c, n, x, a, b, st, out);
        break;
    }
    case JN_CALL:
        if ((rc = eval(c, s, n->a, &x)) || (rc = eval_args(c, s, n, &args, &kw))) break;
        if (x.t == JV_UNDEF) rc = undefined_use(c, n, x);
        else rc = jb_call(c, n, x, args, n->args.n, n->kwnames, kw, n->kw.n, out);
        break;
    case JN_FILTER:
        if ((rc = eval(c, s, n->a, &x)) || (rc = eval_args(c, s, n, &args, &kw))) break;
        rc = jb_filter(c, n, n->name, x, args, n->args.n, n->kwnames, kw, n->kw.n, out);
        break;
    case JN_TEST:
        if ((rc = eval(c, s, n->a, &x)) || (rc = eval_args(c, s, n, &args, &kw))) break;
        if (!(rc = jb_test(c, n, n->name, x, args, n->args.n, &res))) *out = jv_bool(n->op ? !res : res);
        break;
    case JN_UNARY:
        if ((rc = eval(c, s, n->a, &x))) break;
        if (n->op == '!') { *out = jv_bool(!jv_truthy(x)); break; }
        if (x.t == JV_UNDEF) { rc = undefined_use(c, n, x); break; }
        if (!jv_is_num(x)) { rc = jx_fail(c, n, "bad operand type for unary %c: '%s'", n->op, jv_type_name(x)); break; }
        if (n->op == '+') *out = x.t == JV_BOOL ? jv_int(x.u.b) : x;
        else if (x.t == JV_INT && x.u.i == LLONG_MIN) rc = jx_fail(c, n, "integer overflow (this engine has 64-bit integers)");
        else *out = x.t == JV_FLOAT ? jv_float(-x.u.f) : jv_int(-(x.t == JV_INT ? x.u.i : x.u.b));
        break;
    case JN_BIN:
        if (!(rc = eval(c, s, n->a, &l)) && !(rc = eval(c, s, n->b, &r))) rc = arith(c, n, n->op, l, r, out);
        break;
    case JN_AND: case JN_OR:
        if ((rc = eval(c, s, n->a, &l))) break;
        if (jv_truthy(l) == (n->kind == JN_OR)) *out = l;
        else rc = eval(c, s, n->b, out);
        break;
    case JN_CMP:
        if ((rc = eval(c, s, n->a, &l))) break;
        res = 1;
        for (int i = 0; i < n->args.n && res; i++) {
            if ((rc = eval(c, s, n->args.v[i], &r)) || (rc = compare(c, n, n->ops[i], l, r, &res))) break;
            l = r;
        }
        if (!rc) *out = jv_bool(res);
        break;
    case JN_COND:
        if ((rc = eval(c, s, n->b, &x))) break;
        if (jv_truthy(x)) rc = eval(c, s, n->a, out);
        else if (n->c) rc = eval(c, s, n->c, out);
        else *out = jv_undef("the else branch of a conditional expression is undefined");
        break;
    case JN_LIST: case JN_TUPLE: case JN_DICT: rc = literal(c, s, n, out); break;
    default: rc = jx_fail(c, n, "not an expression");
    }
    c->depth--;
    return rc ? -1 : 0;
}

/* ---- statements ------------------------------------------------------------------------- */
static int exec(jctx *c, jscope *s, const jnodes *body);

static int assign(jctx *c, jscope *s, const jnode *n, jval v) {
    if (n->nnames == 1) return scope_set(c, s, n->names[0], v) ? oom(c, n) : 0;
    if (v.t == JV_STR) {                                  /* a, b = "ab" */
        jlist *l = jl_new(c->a, 0);
        if (!l) return oom(c, n);
        for (size_t i = 0; i < v.u.s.n; i = u8_next(v.u.s.p, v.u.s.n, i))
            if (jl_push(c->a, l, jv_str(v.u.s.p + i, u8_next(v.u.s.p, v.u.s.n, i) - i))) return oom(c, n);
        v.t = JV_LIST; v.u.l = l;
    }
    if (v.t != JV_LIST) return jx_fail(c, n, "cannot unpack non-iterable %s object", jv_type_name(v));
    if (v.u.l->n != (size_t)n->nnames)
        return jx_fail(c, n, "%s values to unpack (expected %d, got %zu)", v.u.l->n > (size_t)n->nnames ? "too many" : "not enough",
                       n->nnames, v.u.l->n);
    for (int i = 0; i < n->nnames; i++) if (scope_set(c, s, n->names[i], v.u.l->v[i])) return oom(c, n);
    return 0;
}

static int exec_for(jctx *c, jscope *s, const jnode *n) {
    jval it;
    jlist *items, *kept;
    if (eval(c, s, n->a, &it) || jb_iter(c, n, it, &items)) return X_ERR;
    kept = items;
    if (n->b) {                                           /* for x in xs if cond */
        if (!(kept = jl_new(c->a, items->n))) return oom(c, n);
        for (size_t i = 0; i < items->n; i++) {
            jscope t = {.up = s};
            jval cond;
            if (assign(c, &t, n, items->v[i]) || eval(c, &t, n->b, &cond)) return X_ERR;
            if (jv_truthy(cond)) jl_push(c->a, kept, items->v[i]);
        }
    }
    if (!kept->n) return exec(c, s, &n->kw);
    jloop *lp = ja_alloc(c->a, sizeof *lp);
    if (!lp) return oom(c, n);
    lp->length = (long long)kept->n;
    lp->items = kept;
    for (size_t i = 0; i < kept->n; i++) {
        jscope t = {.up = s};
        jval loop = {.t = JV_LOOP};
        jloop *li = ja_alloc(c->a, sizeof *li);
        if (!li) return oom(c, n);
        *li = *lp;
        li->index0 = (long long)i;
        loop.u.lp = li;
        if (assign(c, &t, n, kept->v[i]) || scope_set(c, &t, "loop", loop)) return X_ERR;
        int rc = exec(c, &t, &n->args);
        if (rc == X_ERR) return X_ERR;
        if (rc == X_BREAK) break;
    }
    return X_OK;
}

static int exec_one(jctx *c, jscope *s, const jnode *n) {
    jval v;
    switch (n->kind) {
    case JN_TEXT: jbuf_put(c->out, n->lit.u.s.p, n->lit.u.s.n); return X_OK;
    case JN_OUTPUT:
        if (eval(c, s, n->a, &v)) return X_ERR;
        jv_write_str(c->out, v);
        return X_OK;
    case JN_IF:
        if (eval(c, s, n->a, &v)) return X_ERR;
        return exec(c, s, jv_truthy(v) ? &n->args : &n->kw);
    case JN_FOR: return exec_for(c, s, n);
    case JN_SET:
        if (eval(c, s, n->b, &v)) return X_ERR;
        if (n->attr) {
            jval ns;
            if (!scope_get(s, n->name, &ns) || ns.t != JV_NS)
                return jx_fail(c, n, "cannot assign attribute on non-namespace object");
            return jd_set(c->a, ns.u.d, jv_cstr(n->attr), v) ? oom(c, n) : X_OK;
        }
        return assign(c, s, n, v) ? X_ERR : X_OK;
    case JN_SETBLOCK: {
        jbuf b = {0}, *saved = c->out;
        c->out = &b;
        int rc = exec(c, s, &n->args);
        c->out = saved;
        if (rc == X_ERR) { free(b.p); return X_ERR; }
        return str_value(c, n, &b, &v) || assign(c, s, n, v) ? X_ERR : X_OK;
    }
    case JN_BREAK: return X_BREAK;
    case JN_CONTINUE: return X_CONTINUE;
    case JN_GENERATION: return exec(c, s, &n->args);
    default: return jx_fail(c, n, "not a statement");
    }
}

static int exec(jctx *c, jscope *s, const jnodes *body) {
    for (int i = 0; i < body->n; i++) {
        int rc = exec_one(c, s, body->v[i]);
        if (rc) return rc;
        if (c->out->oom) return oom(c, body->v[i]);
    }
    return X_OK;
}

int jx_render(jctx *c, const jnodes *body, const cJSON *vars) {
    jscope root = {0}, top = {.up = &root};
    const cJSON *it;
    cJSON_ArrayForEach(it, vars) {
        jval v;
        if (!it->string || jv_from_cjson(c->a, it, &v) || scope_set(c, &root, it->string, v)) return oom(c, NULL);
    }
    return exec(c, &top, body) == X_ERR ? -1 : 0;
}

/* ---- public API ------------------------------------------------------------------------------ */
struct jinja_template { jarena a; jnodes body; };

jinja_template *jinja_compile(const char *src, size_t len, char *err, size_t errcap) {
    jinja_template *t = calloc(1, sizeof *t);
    jtok *toks;
    if (!t) { snprintf(err, errcap, "out of memory"); return NULL; }
    int n = jinja_lex(&t->a, src, len, &toks, err, errcap);
    if (n < 0 || jinja_parse(&t->a, toks, n, &t->body, err, errcap)) { jinja_free(t); return NULL; }
    return t;
}

char *jinja_render(const jinja_template *t, const cJSON *vars, time_t now, size_t *len, char *err, size_t errcap) {
    jarena a = {0};
    jbuf out = {0};
    jctx c = {.a = &a, .out = &out, .err = err, .errcap = errcap, .now = now ? now : time(NULL)};
    int rc = jx_render(&c, &t->body, vars);
    ja_release(&a);
    if (!rc && (out.oom || !out.p)) {
        if (out.oom) { jx_fail(&c, NULL, "out of memory"); rc = -1; }
        else if (!(out.p = calloc(1, 1))) { jx_fail(&c, NULL, "out of memory"); rc = -1; }
    }
    if (rc) { free(out.p); return NULL; }
    if (len) *len = out.n;
    return out.p;
}

void jinja_free(jinja_template *t) {
    if (!t) return;
    ja_release(&t->a);
    free(t);
}
