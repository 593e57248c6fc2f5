/* text/jinja_value.c — the values a template computes with, as Python has
 * them: the arena they live in, lists and dicts, truth and equality, str()
 * and repr(), json.dumps (transformers' tojson) and the conversion from the
 * cJSON variables a render is given.  Touches only its arena and buffers. */
#include "text/jinja_int.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- arena ---------------------------------------------------------------------- */
struct ja_block { ja_block *next; size_t used, cap; _Alignas(16) unsigned char data[]; };

void *ja_alloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    ja_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 60000 ? n : 60000;
        if (!(b = malloc(sizeof *b + cap))) return NULL;
        b->used = 0; b->cap = cap; b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *ja_strndup(jarena *a, const char *s, size_t n) {
    char *p = ja_alloc(a, n + 1);
    if (p) { if (n) memcpy(p, s, n); p[n] = 0; }
    return p;
}

void ja_release(jarena *a) {
    for (ja_block *b = a->head, *next; b; b = next) { next = b->next; free(b); }
    a->head = NULL;
}

/* ---- output buffer ----------------------------------------------------------------- */
void jbuf_put(jbuf *b, const char *s, size_t n) {
    if (b->oom || !n) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p; b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
void jbuf_putc(jbuf *b, char ch) { jbuf_put(b, &ch, 1); }

/* ---- constructors, lists and dicts --------------------------------------------------- */
jval jv_undef(const char *what) { jval v = {.t = JV_UNDEF}; v.u.s.p = what; v.u.s.n = what ? strlen(what) : 0; return v; }
jval jv_none(void) { jval v = {.t = JV_NONE}; return v; }
jval jv_bool(int b) { jval v = {.t = JV_BOOL}; v.u.b = !!b; return v; }
jval jv_int(long long i) { jval v = {.t = JV_INT}; v.u.i = i; return v; }
jval jv_float(double f) { jval v = {.t = JV_FLOAT}; v.u.f = f; return v; }
jval jv_str(const char *p, size_t n) { jval v = {.t = JV_STR}; v.u.s.p = p ? p : ""; v.u.s.n = n; return v; }
jval jv_cstr(const char *s) { return jv_str(s, strlen(s)); }

jlist *jl_new(jarena *a, size_t cap) {
    jlist *l = ja_alloc(a, sizeof *l);
    if (l && cap && !(l->v = ja_alloc(a, cap * sizeof *l->v))) return NULL;
    if (l) l->cap = cap;
    return l;
}
int jl_push(jarena *a, jlist *l, jval v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        jval *nv = ja_alloc(a, cap * sizeof *nv);
        if (!nv) return -1;
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv; l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}
jdict *jd_new(jarena *a, size_t cap) {
    jdict *d = ja_alloc(a, sizeof *d);
    if (d && cap && (!(d->k = ja_alloc(a, cap * sizeof *d->k)) || !(d->v = ja_alloc(a, cap * sizeof *d->v)))) return NULL;
    if (d) d->cap = cap;
    return d;
}
int jd_find(const jdict *d, jval k) {
    for (size_t i = 0; i < d->n; i++) if (jv_equal(d->k[i], k)) return (int)i;
    return -1;
}
int jd_find_s(const jdict *d, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, key, n)) return (int)i;
    return -1;
}
int jd_set(jarena *a, jdict *d, jval k, jval v) {
    int at = jd_find(d, k);
    if (at >= 0) { d->v[at] = v; return 0; }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 4;
        jval *nk = ja_alloc(a, cap * sizeof *nk), *nv = ja_alloc(a, cap * sizeof *nv);
        if (!nk || !nv) return -1;
        if (d->n) { memcpy(nk, d->k, d->n * sizeof *nk); memcpy(nv, d->v, d->n * sizeof *nv); }
        d->k = nk; d->v = nv; d->cap = cap;
    }
    d->k[d->n] = k; d->v[d->n] = v; d->n++;
    return 0;
}

/* ---- truth, numbers, equality --------------------------------------------------------- */
int jv_truthy(jval v) {
    switch (v.t) {
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s.n != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    case JV_NS: case JV_LOOP: case JV_FUNC: return 1;
    default: return 0;                                    /* undefined, none */
    }
}
int jv_is_num(jval v) { return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL; }
double jv_num(jval v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.t == JV_BOOL ? v.u.b : 0; }

int jv_equal(jval a, jval b) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return (a.t == JV_INT ? a.u.i : a.u.b) == (b.t == JV_INT ? b.u.i : b.u.b);
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case JV_UNDEF: case JV_NONE: return 1;
    case JV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case JV_LIST:
        if (a.u.l->n != b.u.l->n || a.u.l->tuple != b.u.l->tuple) return 0;
        for (size_t i = 0; i < a.u.l->n; i++) if (!jv_equal(a.u.l->v[i], b.u.l->v[i])) return 0;
        return 1;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            int k = jd_find(b.u.d, a.u.d->k[i]);
            if (k < 0 || !jv_equal(a.u.d->v[i], b.u.d->v[k])) return 0;
        }
        return 1;
    case JV_NS: return a.u.d == b.u.d;
    case JV_LOOP: return a.u.lp == b.u.lp;
    default: return a.u.fn == b.u.fn;
    }
}

const char *jv_type_name(jval v) {
    static const char *n[] = {"undefined", "NoneType", "bool", "int", "float", "str", "list", "dict",
                              "Namespace", "LoopContext", "function"};
    return n[v.t];
}

/* ---- UTF-8 ------------------------------------------------------------------------------- */
size_t u8_next(const char *p, size_t n, size_t i) {
    unsigned char c = (unsigned char)p[i];
    size_t w = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    for (size_t k = 1; k < w; k++)
        if (i + k >= n || ((unsigned char)p[i + k] & 0xC0) != 0x80) return i + 1;   /* invalid: one byte */
    return i + w;
}
size_t u8_count(const char *p, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i = u8_next(p, n, i)) c++;
    return c;
}
static int32_t u8_cp(const char *p, size_t n, size_t i, size_t *len) {
    int32_t cp = -1;
    utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)p + i, (utf8proc_ssize_t)(n - i), &cp);
    *len = r > 0 ? (size_t)r : 1;
    return r > 0 ? cp : (unsigned char)p[i];
}
int u8_space_at(const char *p, size_t n, size_t i, size_t *len) {
    int32_t c = u8_cp(p, n, i, len);
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- str() and repr() --------------------------------------------------------------------- */
/* Python's repr of a float: the shortest digits that read back, fixed
 * notation for exponents -4..15, else d.ddde+XX. */
static void put_float(jbuf *b, double x, int json) {
    char buf[64], digits[32];
    if (isnan(x)) { jbuf_put(b, json ? "NaN" : "nan", 3); return; }
    if (isinf(x)) { const char *s = json ? (x < 0 ? "-Infinity" : "Infinity") : (x < 0 ? "-inf" : "inf"); jbuf_put(b, s, strlen(s)); return; }
    int p;
    for (p = 1; p <= 17; p++) { snprintf(buf, sizeof buf, "%.*e", p - 1, x); if (strtod(buf, NULL) == x) break; }
    if (signbit(x)) jbuf_putc(b, '-');
    const char *s = buf + (buf[0] == '-');
    size_t nd = 0;
    for (; *s && *s != 'e'; s++) if (*s >= '0' && *s <= '9') digits[nd++] = *s;
    int e = atoi(s + 1), decpt = e + 1;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            jbuf_put(b, "0.", 2);
            for (int k = 0; k < -decpt; k++) jbuf_putc(b, '0');
            jbuf_put(b, digits, nd);
        } else if ((size_t)decpt >= nd) {
            jbuf_put(b, digits, nd);
            for (size_t k = nd; k < (size_t)decpt; k++) jbuf_putc(b, '0');
            jbuf_put(b, ".0", 2);
        } else {
            jbuf_put(b, digits, (size_t)decpt); jbuf_putc(b, '.'); jbuf_put(b, digits + decpt, nd - (size_t)decpt);
        }
        return;
    }
    jbuf_putc(b, digits[0]);
    if (nd > 1) { jbuf_putc(b, '.'); jbuf_put(b, digits + 1, nd - 1); }
    snprintf(buf, sizeof buf, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    jbuf_put(b, buf, strlen(buf));
}

static void put_str_repr(jbuf *b, const char *p, size_t n) {
    int sq = memchr(p, '\'', n) != NULL, dq = memchr(p, '"', n) != NULL;
    char q = sq && !dq ? '"' : '\'', esc[16];
    jbuf_putc(b, q);
    for (size_t i = 0, len; i < n; i += len) {
        int32_t c = u8_cp(p, n, i, &len);
        if (c == '\\' || c == q) { jbuf_putc(b, '\\'); jbuf_putc(b, (char)c); continue; }
        if (c == '\n') { jbuf_put(b, "\\n", 2); continue; }
        if (c == '\r') { jbuf_put(b, "\\r", 2); continue; }
        if (c == '\t') { jbuf_put(b, "\\t", 2); continue; }
        utf8proc_category_t cat = c >= 0 ? utf8proc_category(c) : UTF8PROC_CATEGORY_CN;
        int printable = c == ' ' || !(cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
                                      cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO ||
                                      cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_ZL ||
                                      cat == UTF8PROC_CATEGORY_ZP || cat == UTF8PROC_CATEGORY_ZS);
        if (printable) { jbuf_put(b, p + i, len); continue; }
        if (c < 0x100) snprintf(esc, sizeof esc, "\\x%02x", (unsigned)c);
        else if (c < 0x10000) snprintf(esc, sizeof esc, "\\u%04x", (unsigned)c);
        else snprintf(esc, sizeof esc, "\\U%08x", (unsigned)c);
        jbuf_put(b, esc, strlen(esc));
    }
    jbuf_putc(b, q);
}

static void put_items(jbuf *b, jval v) {
    if (v.t == JV_LIST) {
        jbuf_putc(b, v.u.l->tuple ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n; i++) { if (i) jbuf_put(b, ", ", 2); jv_write_repr(b, v.u.l->v[i]); }
        if (v.u.l->tuple && v.u.l->n == 1) jbuf_putc(b, ',');
        jbuf_putc(b, v.u.l->tuple ? ')' : ']');
        return;
    }
    jbuf_putc(b, '{');
    for (size_t i = 0; i < v.u.d->n; i++) {
        if (i) jbuf_put(b, ", ", 2);
        jv_write_repr(b, v.u.d->k[i]); jbuf_put(b, ": ", 2); jv_write_repr(b, v.u.d->v[i]);
    }
    jbuf_putc(b, '}');
}

void jv_write_str(jbuf *b, jval v) {
    char num[32];
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: jbuf_put(b, "None", 4); return;
    case JV_BOOL: jbuf_put(b, v.u.b ? "True" : "False", v.u.b ? 4 : 5); return;
    case JV_INT: snprintf(num, sizeof num, "%lld", v.u.i); jbuf_put(b, num, strlen(num)); return;
    case JV_FLOAT: put_float(b, v.u.f, 0); return;
    case JV_STR: jbuf_put(b, v.u.s.p, v.u.s.n); return;
    case JV_LIST: case JV_DICT: put_items(b, v); return;
    case JV_NS: { jval d = v; d.t = JV_DICT; jbuf_put(b, "<Namespace ", 11); put_items(b, d); jbuf_putc(b, '>'); return; }
    case JV_LOOP: jbuf_put(b, "<LoopContext>", 13); return;
    default: jbuf_put(b, "<function>", 10); return;
    }
}
void jv_write_repr(jbuf *b, jval v) {
    if (v.t == JV_STR) put_str_repr(b, v.u.s.p, v.u.s.n);
    else if (v.t == JV_UNDEF) jbuf_put(b, "Undefined", 9);
    else jv_write_str(b, v);
}

/* ---- json.dumps ------------------------------------------------------------------------------ */
static void put_json_str(jbuf *b, const char *p, size_t n) {
    char esc[8];
    jbuf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r" :
                        c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        if (e) jbuf_put(b, e, 2);
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); jbuf_put(b, esc, 6); }
        else jbuf_putc(b, (char)c);
    }
    jbuf_putc(b, '"');
}

static void newline(jbuf *b, int indent, int level) {
    jbuf_putc(b, '\n');
    for (int k = 0; k < indent * level; k++) jbuf_putc(b, ' ');
}

static int key_cmp(const void *x, const void *y) {
    const jval *a = x, *b = y;
    size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
    int c = memcmp(a->u.s.p, b->u.s.p, n);
    return c ? c : (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
}

int jv_write_json(jarena *a, jbuf *b, jval v, int indent, const char *item_sep, const char *key_sep,
                  int sort_keys, int depth) {
    char num[32];
    if (depth > 200) return -1;
    switch (v.t) {
    case JV_NONE: jbuf_put(b, "null", 4); return 0;
    case JV_BOOL: jbuf_put(b, v.u.b ? "true" : "false", v.u.b ? 4 : 5); return 0;
    case JV_INT: snprintf(num, sizeof num, "%lld", v.u.i); jbuf_put(b, num, strlen(num)); return 0;
    case JV_FLOAT: put_float(b, v.u.f, 1); return 0;
    case JV_STR: put_json_str(b, v.u.s.p, v.u.s.n); return 0;
    case JV_LIST: {
        if (!v.u.l->n) { jbuf_put(b, "[]", 2); return 0; }
        jbuf_putc(b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jbuf_put(b, item_sep, strlen(item_sep));
            if (indent >= 0) newline(b, indent, depth + 1);
            if (jv_write_json(a, b, v.u.l->v[i], indent, item_sep, key_sep, sort_keys, depth + 1)) return -1;
        }
        if (indent >= 0) newline(b, indent, depth);
        jbuf_putc(b, ']');
        return 0;
    }
    case JV_DICT: {
        jdict *d = v.u.d;
        if (!d->n) { jbuf_put(b, "{}", 2); return 0; }
        jval *keys = ja_alloc(a, d->n * sizeof *keys);     /* keys as JSON has them: strings */
        size_t *idx = ja_alloc(a, d->n * sizeof *idx);
        if (!keys || !idx) return -1;
        for (size_t i = 0; i < d->n; i++) {
            jval k = d->k[i];
            if (k.t != JV_STR) {
                jbuf kb = {0};
                if (k.t == JV_NONE) jbuf_put(&kb, "null", 4);
                else if (k.t == JV_BOOL) jbuf_put(&kb, k.u.b ? "true" : "false", k.u.b ? 4 : 5);
                else if (k.t == JV_INT || k.t == JV_FLOAT) jv_write_str(&kb, k);
                else { free(kb.p); return -1; }
                char *s = kb.oom ? NULL : ja_strndup(a, kb.p, kb.n);
                free(kb.p);
                if (!s) return -1;
                k = jv_str(s, kb.n);
            }
            keys[i] = k;
            keys[i].t = JV_STR;
        }
        if (sort_keys) {                                  /* sort (key, index) pairs by key */
            jval *pairs = ja_alloc(a, d->n * 2 * sizeof *pairs);
            if (!pairs) return -1;
            for (size_t i = 0; i < d->n; i++) { pairs[2 * i] = keys[i]; pairs[2 * i + 1] = jv_int((long long)i); }
            qsort(pairs, d->n, 2 * sizeof *pairs, key_cmp);
            for (size_t i = 0; i < d->n; i++) { keys[i] = pairs[2 * i]; idx[i] = (size_t)pairs[2 * i + 1].u.i; }
        } else for (size_t i = 0; i < d->n; i++) idx[i] = i;
        jbuf_putc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i) jbuf_put(b, item_sep, strlen(item_sep));
            if (indent >= 0) newline(b, indent, depth + 1);
            put_json_str(b, keys[i].u.s.p, keys[i].u.s.n);
            jbuf_put(b, key_sep, strlen(key_sep));
            if (jv_write_json(a, b, d->v[idx[i]], indent, item_sep, key_sep, sort_keys, depth + 1)) return -1;
        }
        if (indent >= 0) newline(b, indent, depth);
        jbuf_putc(b, '}');
        return 0;
    }
    default: return -1;                                   /* undefined, namespace, loop, function */
    }
}

/* ---- from cJSON ------------------------------------------------------------------------------- */
int jv_from_cjson(jarena *a, const cJSON *j, jval *out) {
    if (!j || cJSON_IsNull(j)) { *out = jv_none(); return 0; }
    if (cJSON_IsBool(j)) { *out = jv_bool(cJSON_IsTrue(j)); return 0; }
    if (cJSON_IsNumber(j)) {
        double x = j->valuedouble;
        *out = (x == floor(x) && fabs(x) < 9007199254740992.0) ? jv_int((long long)x) : jv_float(x);
        return 0;
    }
    if (cJSON_IsString(j) || cJSON_IsRaw(j)) { *out = jv_cstr(j->valuestring ? j->valuestring : ""); return 0; }
    const cJSON *it;
    if (cJSON_IsArray(j)) {
        jlist *l = jl_new(a, (size_t)cJSON_GetArraySize(j));
        if (!l) return -1;
        cJSON_ArrayForEach(it, j) {
            jval v;
            if (jv_from_cjson(a, it, &v) || jl_push(a, l, v)) return -1;
        }
        out->t = JV_LIST; out->u.l = l;
        return 0;
    }
    if (cJSON_IsObject(j)) {
        jdict *d = jd_new(a, (size_t)cJSON_GetArraySize(j));
        if (!d) return -1;
        cJSON_ArrayForEach(it, j) {
            jval v;
            if (jv_from_cjson(a, it, &v) || jd_set(a, d, jv_cstr(it->string ? it->string : ""), v)) return -1;
        }
        out->t = JV_DICT; out->u.d = d;
        return 0;
    }
    *out = jv_none();
    return 0;
}
