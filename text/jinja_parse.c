/* text/jinja_parse.c — tokens to a syntax tree, by jinja2's grammar (its
 * operator precedence, filters and tests binding tighter than arithmetic,
 * "not x is y" as "not (x is y)").  Node fields by kind:
 *   TEXT lit | OUTPUT a | IF a cond, args body, kw else | FOR names targets,
 *   a iterable, b inline if, args body, kw else | SET names or name.attr, b
 *   value | SETBLOCK names[0], args body | GENERATION args body |
 *   CONST lit | NAME name | ATTR a.name | ITEM a[b] | SLICE a[b:c:d] |
 *   CALL a(args, kw) | FILTER a|name(args, kw) | TEST a is [not] name(args) |
 *   UNARY op a | BIN a op b | AND, OR a b | CMP a (ops[i] args[i])... |
 *   COND a if b else c | LIST, TUPLE args | DICT args keys, kw values.
 * Over 600 lines because it is one recursive descent over one grammar: the
 * statements parse their expressions with the same static helpers (cur,
 * expect_op, node, add, fail), which a split in two files would publish.
 * Touches nothing but the arena it is given. */
#include "text/jinja_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    jarena *a;
    const jtok *t; int n, i;
    char *err; size_t errcap;
    int loops;                      /* for loops around the current statement */
    int depth;                      /* nesting of expressions and blocks, against stack overflow */
} parser;

#define MAX_DEPTH 200

static const jtok *cur(parser *P) { return &P->t[P->i]; }
static const jtok *peek(parser *P, int k) { return &P->t[P->i + k < P->n ? P->i + k : P->n - 1]; }

static int fail(parser *P, const jtok *at, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (P->errcap && P->err[0] == 0)
        snprintf(P->err, P->errcap, "line %d, column %d: %s", at->line, at->col, msg);
    return -1;
}

static int is_op(const jtok *t, int op) { return t->type == JT_OP && t->op == op; }
static int is_name(const jtok *t, const char *s) {
    return t->type == JT_NAME && t->n == strlen(s) && !memcmp(t->p, s, t->n);
}
static const char *describe(const jtok *t, char *buf, size_t cap) {
    static const char *names[] = {"end of template", "text", "'{{'", "'}}'", "'{%'", "'%}'"};
    if (t->type <= JT_BLOCK_END) return names[t->type];
    snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p);
    return buf;
}
static int expect_op(parser *P, int op) {
    char b[64];
    if (is_op(cur(P), op)) { P->i++; return 0; }
    return fail(P, cur(P), "expected '%c', got %s", op, describe(cur(P), b, sizeof b));
}
static int expect_end(parser *P, int type) {
    char b[64];
    if (cur(P)->type == type) { P->i++; return 0; }
    return fail(P, cur(P), "expected %s, got %s", type == JT_BLOCK_END ? "'%}'" : "'}}'",
                describe(cur(P), b, sizeof b));
}

static jnode *node(parser *P, int kind, const jtok *at) {
    jnode *x = ja_alloc(P->a, sizeof *x);
    if (!x) { fail(P, at, "out of memory"); return NULL; }
    x->kind = kind; x->line = at->line; x->col = at->col;
    return x;
}
static int add(parser *P, jnodes *l, jnode *x) {
    if (!x) return -1;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 4;
        jnode **v = ja_alloc(P->a, (size_t)cap * sizeof *v);
        if (!v) return fail(P, cur(P), "out of memory");
        if (l->n) memcpy(v, l->v, (size_t)l->n * sizeof *v);
        l->v = v; l->cap = cap;
    }
    l->v[l->n++] = x;
    return 0;
}
static const char *name_of(parser *P, const jtok *t) {
    const char *s = ja_strndup(P->a, t->p, t->n);
    if (!s) fail(P, t, "out of memory");
    return s;
}

static jnode *expr(parser *P);
static jnode *expr_nocond(parser *P);
static jnode *unary(parser *P, int with_filter);

/* (args...) of a call, filter or test: positional, then name=value. */
static int call_args(parser *P, jnode *x) {
    if (expect_op(P, '(')) return -1;
    int nkw = 0;
    while (!is_op(cur(P), ')')) {
        if (cur(P)->type == JT_NAME && is_op(peek(P, 1), '=')) {
            const char *k = name_of(P, cur(P));
            P->i += 2;
            if (!k || add(P, &x->kw, expr(P))) return -1;
            const char **nk = ja_alloc(P->a, (size_t)x->kw.cap * sizeof *nk);
            if (!nk) return fail(P, cur(P), "out of memory");
            if (nkw) memcpy(nk, x->kwnames, (size_t)nkw * sizeof *nk);
            nk[nkw++] = k;
            x->kwnames = nk;
        } else {
            if (nkw) return fail(P, cur(P), "positional argument after a keyword argument");
            if (add(P, &x->args, expr(P))) return -1;
        }
        if (!is_op(cur(P), ',')) break;
        P->i++;
    }
    return expect_op(P, ')');
}

static jnode *literal_seq(parser *P, int kind, int close, const jtok *at) {
    jnode *x = node(P, kind, at);
    if (!x) return NULL;
    while (!is_op(cur(P), close)) {
        if (add(P, &x->args, expr(P))) return NULL;
        if (kind == JN_DICT) {
            if (expect_op(P, ':') || add(P, &x->kw, expr(P))) return NULL;
        }
        if (!is_op(cur(P), ',')) break;
        P->i++;
    }
    return expect_op(P, close) ? NULL : x;
}

static jnode *primary(parser *P) {
    const jtok *t = cur(P);
    char b[64];
    jnode *x;
    switch (t->type) {
    case JT_NAME:
        P->i++;
        if (is_name(t, "true") || is_name(t, "True") || is_name(t, "false") || is_name(t, "False")) {
            if ((x = node(P, JN_CONST, t))) x->lit = jv_bool(t->p[0] == 't' || t->p[0] == 'T');
            return x;
        }
        if (is_name(t, "none") || is_name(t, "None")) {
            if ((x = node(P, JN_CONST, t))) x->lit = jv_none();
            return x;
        }
        if ((x = node(P, JN_NAME, t)) && !(x->name = name_of(P, t))) return NULL;
        return x;
    case JT_STRING: {
        size_t total = 0;
        int k = 0;
        while (peek(P, k)->type == JT_STRING) total += peek(P, k++)->n;    /* 'a' 'b' is 'ab' */
        char *s = ja_alloc(P->a, total + 1);
        if (!s || !(x = node(P, JN_CONST, t))) { fail(P, t, "out of memory"); return NULL; }
        for (size_t off = 0; cur(P)->type == JT_STRING; P->i++) {
            memcpy(s + off, cur(P)->p, cur(P)->n);
            off += cur(P)->n;
        }
        x->lit = jv_str(s, total);
        return x;
    }
    case JT_INT: case JT_FLOAT:
        P->i++;
        if ((x = node(P, JN_CONST, t))) x->lit = t->type == JT_INT ? jv_int(t->ival) : jv_float(t->fval);
        return x;
    case JT_OP:
        if (t->op == '(') {
            P->i++;
            if (is_op(cur(P), ')')) { P->i++; return node(P, JN_TUPLE, t); }
            jnode *first = expr(P);
            if (!first) return NULL;
            if (is_op(cur(P), ')')) { P->i++; return first; }
            if ((x = node(P, JN_TUPLE, t)) == NULL || add(P, &x->args, first)) return NULL;
            while (is_op(cur(P), ',')) {
                P->i++;
                if (is_op(cur(P), ')')) break;
                if (add(P, &x->args, expr(P))) return NULL;
            }
            return expect_op(P, ')') ? NULL : x;
        }
        if (t->op == '[') { P->i++; return literal_seq(P, JN_LIST, ']', t); }
        if (t->op == '{') { P->i++; return literal_seq(P, JN_DICT, '}', t); }
        break;
    default: break;
    }
    fail(P, t, "unexpected %s", describe(t, b, sizeof b));
    return NULL;
}

/* x[...]: an index, or a slice a:b:c with each part optional. */
static jnode *subscript(parser *P, jnode *obj, const jtok *at) {
    jnode *parts[3] = {NULL, NULL, NULL};
    int k = 0, slice = 0;
    for (;;) {
        if (!is_op(cur(P), ':') && !is_op(cur(P), ']') && !(parts[k] = expr(P))) return NULL;
        if (!is_op(cur(P), ':') || k == 2) break;
        P->i++; k++; slice = 1;
    }
    if (expect_op(P, ']')) return NULL;
    jnode *x = node(P, slice ? JN_SLICE : JN_ITEM, at);
    if (!x) return NULL;
    if (!slice && !parts[0]) { fail(P, at, "empty subscript"); return NULL; }
    x->a = obj; x->b = parts[0]; x->c = parts[1]; x->d = parts[2];
    return x;
}

static jnode *postfix(parser *P, jnode *x) {
    while (x) {
        const jtok *t = cur(P);
        jnode *y;
        if (is_op(t, '.')) {
            P->i++;
            const jtok *nm = cur(P);
            if (nm->type == JT_INT) {                     /* foo.0 is foo[0] */
                P->i++;
                if (!(y = node(P, JN_ITEM, t)) || !(y->b = node(P, JN_CONST, nm))) return NULL;
                y->b->lit = jv_int(nm->ival);
            } else {
                char b[64];
                if (nm->type != JT_NAME) { fail(P, nm, "expected a name after '.', got %s", describe(nm, b, sizeof b)); return NULL; }
                P->i++;
                if (!(y = node(P, JN_ATTR, t)) || !(y->name = name_of(P, nm))) return NULL;
            }
            y->a = x;
            x = y;
        } else if (is_op(t, '[')) {
            P->i++;
            x = subscript(P, x, t);
        } else if (is_op(t, '(')) {
            if (!(y = node(P, JN_CALL, t))) return NULL;
            y->a = x;
            if (call_args(P, y)) return NULL;
            x = y;
        } else break;
    }
    return x;
}

static jnode *filters(parser *P, jnode *x) {
    while (x) {
        const jtok *t = cur(P);
        char b[64];
        if (is_op(t, '|')) {
            P->i++;
            const jtok *nm = cur(P);
            jnode *y = node(P, JN_FILTER, nm);
            if (!y) return NULL;
            if (nm->type != JT_NAME) { fail(P, nm, "expected a filter name, got %s", describe(nm, b, sizeof b)); return NULL; }
            P->i++;
            if (!(y->name = name_of(P, nm))) return NULL;
            if (!jb_known_filter(y->name)) { fail(P, nm, "no filter named '%s'", y->name); return NULL; }
            y->a = x;
            if (is_op(cur(P), '(') && call_args(P, y)) return NULL;
            x = y;
        } else if (is_name(t, "is")) {
            P->i++;
            jnode *y = node(P, JN_TEST, t);
            if (!y) return NULL;
            if (is_name(cur(P), "not")) { P->i++; y->op = 1; }
            const jtok *nm = cur(P);
            if (nm->type != JT_NAME && !(nm->type == JT_OP && (nm->op == JO_EQ || nm->op == JO_NE))) {
                fail(P, nm, "expected a test name, got %s", describe(nm, b, sizeof b)); return NULL;
            }
            P->i++;
            y->name = nm->type == JT_NAME ? name_of(P, nm) : nm->op == JO_EQ ? "==" : "!=";
            if (!y->name) return NULL;
            if (!jb_known_test(y->name)) { fail(P, nm, "no test named '%s'", y->name); return NULL; }
            y->a = x;
            const jtok *n2 = cur(P);
            if (is_op(n2, '(')) {
                if (call_args(P, y)) return NULL;
            } else if ((n2->type == JT_NAME || n2->type == JT_STRING || n2->type == JT_INT || n2->type == JT_FLOAT ||
                        is_op(n2, '[') || is_op(n2, '{')) &&
                       !is_name(n2, "else") && !is_name(n2, "or") && !is_name(n2, "and") && !is_name(n2, "if") &&
                       !is_name(n2, "in") && !is_name(n2, "is") && !is_name(n2, "not")) {
                if (add(P, &y->args, postfix(P, primary(P)))) return NULL;   /* "is divisibleby 3" */
            }
            x = y;
        } else if (is_op(t, '(')) {
            jnode *y = node(P, JN_CALL, t);
            if (!y) return NULL;
            y->a = x;
            if (call_args(P, y)) return NULL;
            x = y;
        } else break;
    }
    return x;
}

static jnode *unary(parser *P, int with_filter) {
    const jtok *t = cur(P);
    jnode *x;
    if (is_op(t, '-') || is_op(t, '+')) {
        if (P->depth >= MAX_DEPTH) { fail(P, t, "expression nested too deep"); return NULL; }
        P->i++;
        if (!(x = node(P, JN_UNARY, t))) return NULL;
        x->op = t->op;
        P->depth++;
        x->a = unary(P, 0);
        P->depth--;
        if (!x->a) return NULL;
    } else x = primary(P);
    x = postfix(P, x);
    return with_filter ? filters(P, x) : x;
}

static jnode *binary(parser *P, jnode *l, const jtok *t, jnode *r) {
    if (!l || !r) return NULL;
    jnode *x = node(P, JN_BIN, t);
    if (x) { x->op = t->op; x->a = l; x->b = r; }
    return x;
}
static jnode *pow_(parser *P) {
    jnode *x = unary(P, 1);
    while (x && is_op(cur(P), JO_POW)) { const jtok *t = cur(P); P->i++; x = binary(P, x, t, unary(P, 1)); }
    return x;
}
static jnode *math2(parser *P) {
    jnode *x = pow_(P);
    while (x && (is_op(cur(P), '*') || is_op(cur(P), '/') || is_op(cur(P), JO_FLOORDIV) || is_op(cur(P), '%'))) {
        const jtok *t = cur(P); P->i++; x = binary(P, x, t, pow_(P));
    }
    return x;
}
static jnode *concat(parser *P) {
    jnode *x = math2(P);
    while (x && is_op(cur(P), '~')) { const jtok *t = cur(P); P->i++; x = binary(P, x, t, math2(P)); }
    return x;
}
static jnode *math1(parser *P) {
    jnode *x = concat(P);
    while (x && (is_op(cur(P), '+') || is_op(cur(P), '-'))) { const jtok *t = cur(P); P->i++; x = binary(P, x, t, concat(P)); }
    return x;
}
static jnode *compare(parser *P) {
    const jtok *at = cur(P);
    jnode *first = math1(P), *x = NULL;
    int ops[64], n = 0;
    if (!first) return NULL;
    for (;;) {
        const jtok *t = cur(P);
        int op = 0;
        if (t->type == JT_OP && (t->op == JO_EQ || t->op == JO_NE || t->op == '<' || t->op == '>' ||
                                 t->op == JO_LE || t->op == JO_GE)) { op = t->op; P->i++; }
        else if (is_name(t, "in")) { op = 'i'; P->i++; }
        else if (is_name(t, "not") && is_name(peek(P, 1), "in")) { op = 'n'; P->i += 2; }
        else break;
        if (n == 64) { fail(P, t, "comparison chain too long"); return NULL; }
        if (!x && !(x = node(P, JN_CMP, at))) return NULL;
        ops[n++] = op;
        if (add(P, &x->args, math1(P))) return NULL;
    }
    if (!x) return first;
    x->a = first;
    if (!(x->ops = ja_alloc(P->a, (size_t)n * sizeof *x->ops))) { fail(P, at, "out of memory"); return NULL; }
    memcpy(x->ops, ops, (size_t)n * sizeof *ops);
    return x;
}
static jnode *not_(parser *P) {
    const jtok *t = cur(P);
    if (!is_name(t, "not")) return compare(P);
    if (P->depth >= MAX_DEPTH) { fail(P, t, "expression nested too deep"); return NULL; }
    P->i++;
    P->depth++;
    jnode *x = node(P, JN_UNARY, t);
    if (x) { x->op = '!'; if (!(x->a = not_(P))) x = NULL; }
    P->depth--;
    return x;
}
static jnode *and_(parser *P) {
    jnode *x = not_(P);
    while (x && is_name(cur(P), "and")) {
        const jtok *t = cur(P); P->i++;
        jnode *y = node(P, JN_AND, t);
        if (!y || !(y->b = not_(P))) return NULL;
        y->a = x; x = y;
    }
    return x;
}
static jnode *or_(parser *P) {
    jnode *x = and_(P);
    while (x && is_name(cur(P), "or")) {
        const jtok *t = cur(P); P->i++;
        jnode *y = node(P, JN_OR, t);
        if (!y || !(y->b = and_(P))) return NULL;
        y->a = x; x = y;
    }
    return x;
}
static jnode *expr(parser *P) {          /* a if b else c */
    if (P->depth >= MAX_DEPTH) { fail(P, cur(P), "expression nested too deep"); return NULL; }
    P->depth++;
    jnode *x = or_(P);
    while (x && is_name(cur(P), "if")) {
        const jtok *t = cur(P); P->i++;
        jnode *y = node(P, JN_COND, t);
        if (!y || !(y->b = or_(P))) { x = NULL; break; }
        y->a = x;
        if (is_name(cur(P), "else")) { P->i++; if (!(y->c = expr(P))) { x = NULL; break; } }
        x = y;
    }
    P->depth--;
    return x;
}
static jnode *expr_nocond(parser *P) { return or_(P); }

/* "a, b" without parentheses is a tuple (in {{ }} and set values). */
static jnode *tuple_expr(parser *P, int end_type) {
    const jtok *at = cur(P);
    jnode *x = expr(P);
    if (!x || !is_op(cur(P), ',')) return x;
    jnode *t = node(P, JN_TUPLE, at);
    if (!t || add(P, &t->args, x)) return NULL;
    while (is_op(cur(P), ',')) {
        P->i++;
        if (cur(P)->type == end_type) break;
        if (add(P, &t->args, expr(P))) return NULL;
    }
    return t;
}

/* Target names of for / set: "a" or "a, b" or "(a, b)". */
static int targets(parser *P, jnode *x) {
    const char *v[16];
    int n = 0, paren = is_op(cur(P), '(');
    if (paren) P->i++;
    for (;;) {
        char b[64];
        if (cur(P)->type != JT_NAME) return fail(P, cur(P), "expected a name, got %s", describe(cur(P), b, sizeof b));
        if (n == 16) return fail(P, cur(P), "too many targets");
        if (!(v[n++] = name_of(P, cur(P)))) return -1;
        P->i++;
        if (!is_op(cur(P), ',')) break;
        P->i++;
    }
    if (paren && expect_op(P, ')')) return -1;
    if (!(x->names = ja_alloc(P->a, (size_t)n * sizeof *x->names))) return fail(P, cur(P), "out of memory");
    memcpy(x->names, v, (size_t)n * sizeof *v);
    x->nnames = n;
    return 0;
}

static int body(parser *P, jnodes *out, const char *const *ends, const jtok *opener, int *which);

static jnode *stmt_if(parser *P, const jtok *t) {
    jnode *x = node(P, JN_IF, t);
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    int which;
    if (!x || !(x->a = expr(P)) || expect_end(P, JT_BLOCK_END) || body(P, &x->args, ends, t, &which)) return NULL;
    if (which == 0) {                                    /* elif: an if in the else branch */
        const jtok *e = &P->t[P->i - 1];
        if (add(P, &x->kw, stmt_if(P, e))) return NULL;
        return x;
    }
    if (expect_end(P, JT_BLOCK_END)) return NULL;
    if (which == 1) {
        static const char *const endif[] = {"endif", NULL};
        if (body(P, &x->kw, endif, t, &which) || expect_end(P, JT_BLOCK_END)) return NULL;
    }
    return x;
}

static jnode *stmt_for(parser *P, const jtok *t) {
    jnode *x = node(P, JN_FOR, t);
    char b[64];
    if (!x || targets(P, x)) return NULL;
    if (!is_name(cur(P), "in")) { fail(P, cur(P), "expected 'in', got %s", describe(cur(P), b, sizeof b)); return NULL; }
    P->i++;
    if (!(x->a = expr_nocond(P))) return NULL;
    if (is_op(cur(P), ',')) {                             /* for x in a, b */
        jnode *tp = node(P, JN_TUPLE, cur(P));
        if (!tp || add(P, &tp->args, x->a)) return NULL;
        while (is_op(cur(P), ',')) { P->i++; if (add(P, &tp->args, expr_nocond(P))) return NULL; }
        x->a = tp;
    }
    if (is_name(cur(P), "if")) { P->i++; if (!(x->b = expr(P))) return NULL; }
    if (is_name(cur(P), "recursive")) { fail(P, cur(P), "recursive loops are not supported"); return NULL; }
    if (expect_end(P, JT_BLOCK_END)) return NULL;
    static const char *const ends[] = {"else", "endfor", NULL};
    int which;
    P->loops++;
    int rc = body(P, &x->args, ends, t, &which);
    P->loops--;
    if (rc || expect_end(P, JT_BLOCK_END)) return NULL;
    if (which == 0) {
        static const char *const endfor[] = {"endfor", NULL};
        if (body(P, &x->kw, endfor, t, &which) || expect_end(P, JT_BLOCK_END)) return NULL;
    }
    return x;
}

static jnode *stmt_set(parser *P, const jtok *t) {
    jnode *x = node(P, JN_SET, t);
    if (!x) return NULL;
    if (cur(P)->type == JT_NAME && is_op(peek(P, 1), '.') && peek(P, 2)->type == JT_NAME) {
        if (!(x->name = name_of(P, cur(P))) || !(x->attr = name_of(P, peek(P, 2)))) return NULL;
        P->i += 3;
    } else if (targets(P, x)) return NULL;
    if (is_op(cur(P), '=')) {
        P->i++;
        if (!(x->b = tuple_expr(P, JT_BLOCK_END)) || expect_end(P, JT_BLOCK_END)) return NULL;
        return x;
    }
    if (x->attr || x->nnames != 1) { fail(P, cur(P), "expected '='"); return NULL; }
    if (expect_end(P, JT_BLOCK_END)) return NULL;          /* {% set x %}...{% endset %} */
    static const char *const ends[] = {"endset", NULL};
    int which;
    x->kind = JN_SETBLOCK;
    if (body(P, &x->args, ends, t, &which) || expect_end(P, JT_BLOCK_END)) return NULL;
    return x;
}

static jnode *statement_(parser *P);
static jnode *statement(parser *P) {
    if (P->depth >= MAX_DEPTH) { fail(P, cur(P), "blocks nested too deep"); return NULL; }
    P->depth++;
    jnode *x = statement_(P);
    P->depth--;
    return x;
}

static jnode *statement_(parser *P) {
    const jtok *t = cur(P);
    char b[64];
    if (t->type != JT_NAME) { fail(P, t, "expected a tag name, got %s", describe(t, b, sizeof b)); return NULL; }
    P->i++;
    if (is_name(t, "if")) return stmt_if(P, t);
    if (is_name(t, "for")) return stmt_for(P, t);
    if (is_name(t, "set")) return stmt_set(P, t);
    if (is_name(t, "break") || is_name(t, "continue")) {
        if (!P->loops) { fail(P, t, "'%.*s' outside a for loop", (int)t->n, t->p); return NULL; }
        jnode *x = node(P, is_name(t, "break") ? JN_BREAK : JN_CONTINUE, t);
        return x && !expect_end(P, JT_BLOCK_END) ? x : NULL;
    }
    if (is_name(t, "generation")) {                        /* transformers' assistant-mask tag */
        static const char *const ends[] = {"endgeneration", NULL};
        jnode *x = node(P, JN_GENERATION, t);
        int which;
        if (!x || expect_end(P, JT_BLOCK_END) || body(P, &x->args, ends, t, &which) || expect_end(P, JT_BLOCK_END))
            return NULL;
        return x;
    }
    static const char *const unsupported[] = {"macro", "call", "filter", "include", "import", "from", "extends",
                                              "block", "with", "autoescape", "do", NULL};
    for (int k = 0; unsupported[k]; k++)
        if (is_name(t, unsupported[k])) { fail(P, t, "unsupported tag '%s'", unsupported[k]); return NULL; }
    fail(P, t, "unknown tag %s", describe(t, b, sizeof b));
    return NULL;
}

/* Statements up to a {% name %} with name in ends (NULL: to the end of the
 * template); *which is the index of the end found, its name consumed. */
static const char *last_end(const char *const *ends) {
    int k = 0;
    while (ends[k + 1]) k++;
    return ends[k];
}

static int body(parser *P, jnodes *out, const char *const *ends, const jtok *opener, int *which) {
    for (;;) {
        const jtok *t = cur(P);
        jnode *x;
        switch (t->type) {
        case JT_EOF:
            if (!ends) return 0;
            return fail(P, t, "unexpected end of template: '%.*s' at line %d needs '%s'", (int)opener->n,
                        opener->p, opener->line, last_end(ends));
        case JT_TEXT:
            P->i++;
            if (!(x = node(P, JN_TEXT, t))) return -1;
            x->lit = jv_str(t->p, t->n);
            if (add(P, out, x)) return -1;
            break;
        case JT_VAR_BEGIN:
            P->i++;
            if (!(x = node(P, JN_OUTPUT, t)) || !(x->a = tuple_expr(P, JT_VAR_END)) || expect_end(P, JT_VAR_END) ||
                add(P, out, x)) return -1;
            break;
        case JT_BLOCK_BEGIN:
            for (int k = 0; ends && ends[k]; k++)
                if (is_name(peek(P, 1), ends[k])) { *which = k; P->i += 2; return 0; }
            {
                const jtok *nm = peek(P, 1);
                if (nm->type == JT_NAME && ((nm->n > 3 && !memcmp(nm->p, "end", 3)) || is_name(nm, "else") ||
                                            is_name(nm, "elif"))) {
                    if (!ends) return fail(P, nm, "unexpected '%.*s'", (int)nm->n, nm->p);
                    return fail(P, nm, "unexpected '%.*s' (expected '%s')", (int)nm->n, nm->p, last_end(ends));
                }
            }
            P->i++;
            if (add(P, out, statement(P))) return -1;
            break;
        default: {
            char b[64];
            return fail(P, t, "unexpected %s", describe(t, b, sizeof b));
        }
        }
    }
}

int jinja_parse(jarena *a, const jtok *toks, int ntok, jnodes *out, char *err, size_t errcap) {
    parser P = {.a = a, .t = toks, .n = ntok, .err = err, .errcap = errcap};
    if (errcap) err[0] = 0;
    int which;
    return body(&P, out, NULL, NULL, &which);
}
