/* text/jinja_int.h — what the jinja_*.c files share and nothing else
 * includes: the arena, values, tokens, the syntax tree and the render
 * context.  Every value and node lives in an arena (one per template for the
 * tree, one per render for values) and is freed with it, so no function here
 * frees a value. */
#ifndef TEXT_JINJA_INT_H
#define TEXT_JINJA_INT_H
#include <stddef.h>
#include <time.h>
#include <cJSON.h>

/* ---- arena ---------------------------------------------------------------- */
typedef struct ja_block ja_block;
typedef struct { ja_block *head; } jarena;
void *ja_alloc(jarena *a, size_t n);                  /* zeroed; NULL when out of memory */
char *ja_strndup(jarena *a, const char *s, size_t n); /* NUL-terminated copy */
void ja_release(jarena *a);

/* ---- output buffer (malloc'd; the render's result) ------------------------- */
typedef struct { char *p; size_t n, cap; int oom; } jbuf;    /* p: (cap,) */
void jbuf_put(jbuf *b, const char *s, size_t n);              /* sets oom on failure */
void jbuf_putc(jbuf *b, char ch);

/* ---- values ---------------------------------------------------------------- */
enum { JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_LOOP, JV_FUNC };

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jloop jloop;
typedef struct jfunc jfunc;
typedef struct jval {
    int t;                                    /* JV_* */
    union {
        int b;
        long long i;
        double f;
        struct { const char *p; size_t n; } s;   /* JV_STR: UTF-8 bytes (not NUL-terminated);
                                                    JV_UNDEF: what was missing, for messages */
        jlist *l;                             /* JV_LIST (tuples too) */
        jdict *d;                             /* JV_DICT, JV_NS (a namespace: mutable) */
        jloop *lp;
        jfunc *fn;
    } u;
} jval;
struct jlist { size_t n, cap; jval *v; int tuple; };  /* v: (cap,); tuple: prints as (a, b) */
struct jdict { size_t n, cap; jval *k, *v; };        /* k, v: (cap,), insertion order */
struct jloop { long long index0, length; const jlist *items; };
struct jfunc { int id; const char *name; jval self; }; /* a global, or method name bound to self */

jval jv_undef(const char *what);
jval jv_none(void);
jval jv_bool(int b);
jval jv_int(long long i);
jval jv_float(double f);
jval jv_str(const char *p, size_t n);                 /* borrows p */
jval jv_cstr(const char *s);
jlist *jl_new(jarena *a, size_t cap);
int jl_push(jarena *a, jlist *l, jval v);             /* -1 when out of memory */
jdict *jd_new(jarena *a, size_t cap);
int jd_set(jarena *a, jdict *d, jval k, jval v);      /* replaces an equal key */
int jd_find(const jdict *d, jval k);                  /* index, or -1 */
int jd_find_s(const jdict *d, const char *key);

int jv_truthy(jval v);
int jv_equal(jval a, jval b);                         /* Python ==, 1 == 1.0 == True */
int jv_is_num(jval v);                                /* int, float or bool */
double jv_num(jval v);
const char *jv_type_name(jval v);                     /* "str", "dict object", ... */

/* UTF-8 and Python's str */
size_t u8_count(const char *p, size_t n);             /* code points */
size_t u8_next(const char *p, size_t n, size_t i);    /* byte after the code point at i */
int u8_space_at(const char *p, size_t n, size_t i, size_t *len);  /* str.isspace() code point */
void jv_write_str(jbuf *b, jval v);                   /* str(v) */
void jv_write_repr(jbuf *b, jval v);                  /* repr(v) */
/* json.dumps(v, ensure_ascii=False, indent, separators, sort_keys); indent < 0: none.
 * Returns -1 for a value JSON cannot hold (undefined, a function). */
int jv_write_json(jarena *a, jbuf *b, jval v, int indent, const char *item_sep, const char *key_sep,
                  int sort_keys, int depth);
int jv_from_cjson(jarena *a, const cJSON *j, jval *out);

/* ---- tokens ------------------------------------------------------------------ */
enum { JT_EOF, JT_TEXT, JT_VAR_BEGIN, JT_VAR_END, JT_BLOCK_BEGIN, JT_BLOCK_END,
       JT_NAME, JT_STRING, JT_INT, JT_FLOAT, JT_OP };
/* operators: their ASCII character, or one of these for two characters */
enum { JO_EQ = 256, JO_NE, JO_LE, JO_GE, JO_FLOORDIV, JO_POW };
typedef struct {
    int type, op, line, col;
    const char *p; size_t n;        /* JT_TEXT, JT_NAME: source text; JT_STRING: decoded value */
    long long ival; double fval;
} jtok;
/* Splits src into tokens (whitespace control applied to the text tokens).
 * Returns the count (the last is JT_EOF), or -1 with a message in err. */
int jinja_lex(jarena *a, const char *src, size_t len, jtok **out, char *err, size_t errcap);

/* ---- syntax tree --------------------------------------------------------------- */
enum {
    /* statements */
    JN_TEXT, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_SETBLOCK, JN_BREAK, JN_CONTINUE, JN_GENERATION,
    /* expressions */
    JN_CONST, JN_NAME, JN_ATTR, JN_ITEM, JN_SLICE, JN_CALL, JN_FILTER, JN_TEST, JN_UNARY,
    JN_BIN, JN_AND, JN_OR, JN_CMP, JN_COND, JN_LIST, JN_TUPLE, JN_DICT
};
typedef struct jnode jnode;
typedef struct { jnode **v; int n, cap; } jnodes;
struct jnode {
    int kind, line, col;
    int op;                 /* JN_UNARY/JN_BIN: operator; JN_TEST: 1 when negated */
    const char *name;       /* NAME, ATTR, FILTER, TEST; SET: namespace of name.attr */
    const char *attr;       /* SET: the attribute of a namespace target, else NULL */
    jval lit;               /* CONST, TEXT */
    jnode *a, *b, *c, *d;   /* operands (see jinja_parse.c for each kind) */
    jnodes args;            /* call arguments, items, keys, CMP operands, statement bodies */
    jnodes kw;              /* keyword values, dict values, else bodies */
    const char **kwnames;   /* (kw.n,) */
    const char **names;     /* FOR / SET / SETBLOCK targets, (nnames,) */
    int nnames;
    int *ops;               /* CMP: (args.n,) operators */
};
/* Parses tokens into the statement list *body.  Returns 0, or -1 with err. */
int jinja_parse(jarena *a, const jtok *toks, int ntok, jnodes *body, char *err, size_t errcap);

/* ---- rendering ---------------------------------------------------------------- */
typedef struct jctx {
    jarena *a;              /* the values of this render */
    jbuf *out;
    char *err; size_t errcap;
    int failed;
    time_t now;
    int depth;              /* recursion guard */
} jctx;
/* Sets the render's error ("line L, column C: ..." when at is not NULL); returns -1. */
int jx_fail(jctx *c, const jnode *at, const char *fmt, ...);
int jx_render(jctx *c, const jnodes *body, const cJSON *vars);

/* globals, attributes, items, calls and str / dict methods (jinja_methods.c) */
enum { JF_RAISE = 1, JF_STRFTIME, JF_NAMESPACE, JF_RANGE, JF_DICT, JF_METHOD };
int jb_global(const char *name, jval *out);           /* 1 when name is a global function */
int jb_getattr(jctx *c, jval obj, const char *name, jval *out);
int jb_getitem(jctx *c, const jnode *at, jval obj, jval key, jval *out);
int jb_call(jctx *c, const jnode *at, jval fn, const jval *args, int nargs,
            const char **kwn, const jval *kwv, int nkw, jval *out);
int jb_iter(jctx *c, const jnode *at, jval v, jlist **out);    /* the items a for loop visits */
int jb_to_str(jctx *c, const jnode *at, jval v, jval *out);    /* str(v) as a JV_STR in the arena */
int jb_strip(jctx *c, const jnode *at, jval s, jval chars, int left, int right, jval *out);
/* Finds keyword name or else positional argument pos; returns 1 when given. */
int jb_arg(const jval *args, int nargs, const char **kwn, const jval *kwv, int nkw, int pos,
           const char *name, jval *out);

/* filters and tests (jinja_filters.c) */
int jb_known_filter(const char *name);
int jb_known_test(const char *name);
int jb_filter(jctx *c, const jnode *at, const char *name, jval v, const jval *args, int nargs,
              const char **kwn, const jval *kwv, int nkw, jval *out);
int jb_test(jctx *c, const jnode *at, const char *name, jval v, const jval *args, int nargs, int *res);

#endif
