/* text/jinja_lex.c — template text to tokens, as jinja2's lexer does it with
 * trim_blocks and lstrip_blocks on: line ends normalised to \n and one
 * trailing newline dropped; text between tags, with "-" / "+" whitespace
 * control and lstrip_blocks applied; names, numbers, strings (Python escapes
 * decoded) and operators inside {{ }} and {% %}; comments and raw blocks
 * resolved here.  Touches nothing but the arena it is given. */
#include "text/jinja_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    jarena *a;
    const char *s; size_t n, pos;   /* normalised source: s (n,) */
    size_t line, line_at, seen;     /* line number at byte `seen`, and where that line starts */
    jtok *t; int nt, cap;
    char *err; size_t errcap;
    int line_starting;              /* the last match ended with a newline */
} lexer;

static void where(lexer *L, size_t at, int *line, int *col) {
    if (at < L->seen) { L->line = 1; L->line_at = 0; L->seen = 0; }
    for (; L->seen < at; L->seen++)
        if (L->s[L->seen] == '\n') { L->line++; L->line_at = L->seen + 1; }
    *line = (int)L->line;
    *col = (int)(at - L->line_at) + 1;
}

static int fail(lexer *L, size_t at, const char *fmt, ...) {
    int line, col;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    where(L, at, &line, &col);
    snprintf(L->err, L->errcap, "line %d, column %d: %s", line, col, msg);
    return -1;
}

static jtok *push(lexer *L, int type, size_t at) {
    if (L->nt == L->cap) {
        int cap = L->cap ? 2 * L->cap : 64;
        jtok *t = ja_alloc(L->a, (size_t)cap * sizeof *t);
        if (!t) return NULL;
        if (L->nt) memcpy(t, L->t, (size_t)L->nt * sizeof *t);
        L->t = t; L->cap = cap;
    }
    jtok *k = &L->t[L->nt++];
    memset(k, 0, sizeof *k);
    k->type = type;
    where(L, at, &k->line, &k->col);
    return k;
}

static int is_sp(const char *s, size_t n, size_t i, size_t *len) { return u8_space_at(s, n, i, len); }

/* Emits the text s[from, to) before a tag with strip sign sign ('-', '+' or 0). */
static int text(lexer *L, size_t from, size_t to, int sign, int lstrip) {
    size_t end = to, k;
    if (sign == '-') {                                   /* text.rstrip() */
        while (end > from) {
            size_t b = end - 1;
            while (b > from && ((unsigned char)L->s[b] & 0xC0) == 0x80) b--;
            if (!is_sp(L->s, end, b, &k)) break;
            end = b;
        }
    } else if (sign != '+' && lstrip) {
        size_t l = to;
        while (l > from && L->s[l - 1] != '\n') l--;
        if ((l > from || L->line_starting) && l < to) {
            size_t i = l;
            while (i < to && is_sp(L->s, to, i, &k)) i += k;
            if (i == to) end = l;
        }
    }
    if (end > from) {
        jtok *t = push(L, JT_TEXT, from);
        if (!t) return -1;
        t->p = L->s + from; t->n = end - from;
    }
    return 0;
}

static size_t skip_space(lexer *L, size_t i) {
    size_t k;
    while (i < L->n && is_sp(L->s, L->n, i, &k)) i += k;
    return i;
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static void put_cp(jbuf *b, unsigned long cp) {
    char u[4];
    if (cp < 0x80) { jbuf_putc(b, (char)cp); return; }
    if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 63)); jbuf_put(b, u, 2); return; }
    if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 63)); u[2] = (char)(0x80 | (cp & 63));
        jbuf_put(b, u, 3); return;
    }
    u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 63));
    u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63));
    jbuf_put(b, u, 4);
}

/* A quoted string at i: decodes Python's escapes (as "unicode-escape" does). */
static int string(lexer *L, size_t i, size_t *end) {
    char q = L->s[i];
    jbuf b = {0};
    size_t j = i + 1;
    for (; j < L->n && L->s[j] != q; j++) {
        char ch = L->s[j];
        if (ch != '\\' || j + 1 >= L->n) { jbuf_putc(&b, ch); continue; }
        char e = L->s[++j];
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            unsigned long cp = 0;
            for (int d = 0; d < digits; d++) {
                int h = j + 1 + (size_t)d < L->n ? hexval(L->s[j + 1 + d]) : -1;
                if (h < 0) { free(b.p); return fail(L, j - 1, "truncated \\%c escape", e); }
                cp = cp * 16 + (unsigned long)h;
            }
            j += (size_t)digits;
            put_cp(&b, cp);
            continue;
        }
        if (e >= '0' && e <= '7') {
            unsigned long cp = (unsigned long)(e - '0');
            for (int d = 0; d < 2 && j + 1 < L->n && L->s[j + 1] >= '0' && L->s[j + 1] <= '7'; d++)
                cp = cp * 8 + (unsigned long)(L->s[++j] - '0');
            put_cp(&b, cp);
            continue;
        }
        switch (e) {
        case 'n': jbuf_putc(&b, '\n'); break;
        case 't': jbuf_putc(&b, '\t'); break;
        case 'r': jbuf_putc(&b, '\r'); break;
        case 'a': jbuf_putc(&b, '\a'); break;
        case 'b': jbuf_putc(&b, '\b'); break;
        case 'f': jbuf_putc(&b, '\f'); break;
        case 'v': jbuf_putc(&b, '\v'); break;
        case '\\': case '\'': case '"': jbuf_putc(&b, e); break;
        case '\n': break;                                  /* line continuation */
        default: jbuf_putc(&b, '\\'); jbuf_putc(&b, e);    /* unknown escapes stay */
        }
    }
    if (j >= L->n) { free(b.p); return fail(L, i, "unterminated string"); }
    jtok *t = push(L, JT_STRING, i);
    char *v = t && !b.oom ? ja_strndup(L->a, b.p ? b.p : "", b.n) : NULL;
    free(b.p);
    if (!v) return fail(L, i, "out of memory");
    t->p = v; t->n = b.n;
    *end = j + 1;
    return 0;
}

static int isdig(char c) { return c >= '0' && c <= '9'; }
static int isname(char c, int first) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && isdig(c));
}

/* A number at i (digits may be separated by '_'). */
static int number(lexer *L, size_t i, size_t *end) {
    char buf[128];
    size_t j = i, k = 0;
    int is_float = 0;
    while (j < L->n && (isdig(L->s[j]) || (L->s[j] == '_' && j + 1 < L->n && isdig(L->s[j + 1])))) {
        if (L->s[j] != '_' && k < sizeof buf - 1) buf[k++] = L->s[j];
        j++;
    }
    int after_dot = i > 0 && L->s[i - 1] == '.';
    if (!after_dot && j + 1 < L->n && L->s[j] == '.' && isdig(L->s[j + 1])) {
        is_float = 1;
        buf[k++] = '.';
        for (j++; j < L->n && (isdig(L->s[j]) || L->s[j] == '_'); j++) if (L->s[j] != '_' && k < sizeof buf - 1) buf[k++] = L->s[j];
    }
    if (!after_dot && j < L->n && (L->s[j] == 'e' || L->s[j] == 'E')) {
        size_t m = j + 1;
        if (m < L->n && (L->s[m] == '+' || L->s[m] == '-')) m++;
        if (m < L->n && isdig(L->s[m])) {
            is_float = 1;
            if (k < sizeof buf - 2) buf[k++] = 'e';
            for (size_t x = j + 1; x < m; x++) buf[k++] = L->s[x];
            for (j = m; j < L->n && (isdig(L->s[j]) || L->s[j] == '_'); j++) if (L->s[j] != '_' && k < sizeof buf - 1) buf[k++] = L->s[j];
        }
    }
    buf[k] = 0;
    jtok *t = push(L, is_float ? JT_FLOAT : JT_INT, i);
    if (!t) return fail(L, i, "out of memory");
    if (is_float) t->fval = strtod(buf, NULL);
    else t->ival = strtoll(buf, NULL, 10);
    t->p = L->s + i; t->n = j - i;
    *end = j;
    return 0;
}

/* Tokens of one {{ }} or {% %} from i; returns the position after its end. */
static int tag(lexer *L, size_t i, int block, size_t *end) {
    char stack[256];
    int depth = 0;
    const char *close = block ? "%}" : "}}";
    for (;;) {
        i = skip_space(L, i);
        if (i >= L->n) return fail(L, i, "unexpected end of template: missing '%s'", close);
        const char *s = L->s + i;
        size_t left = L->n - i;
        if (depth == 0) {                               /* the end of the tag */
            int minus = left >= 3 && s[0] == '-' && !memcmp(s + 1, close, 2);
            int plus = block && left >= 3 && s[0] == '+' && !memcmp(s + 1, close, 2);
            if (minus || plus || (left >= 2 && !memcmp(s, close, 2))) {
                jtok *t = push(L, block ? JT_BLOCK_END : JT_VAR_END, i);
                if (!t) return fail(L, i, "out of memory");
                i += (minus || plus) ? 3 : 2;
                if (minus) i = skip_space(L, i);
                else if (block && !plus && i < L->n && L->s[i] == '\n') i++;   /* trim_blocks */
                L->line_starting = i > 0 && L->s[i - 1] == '\n';
                *end = i;
                return 0;
            }
        }
        if (isdig(*s)) { if (number(L, i, &i)) return -1; continue; }
        if (*s == '\'' || *s == '"') { if (string(L, i, &i)) return -1; continue; }
        if (isname(*s, 1)) {
            size_t j = i;
            while (j < L->n && isname(L->s[j], 0)) j++;
            jtok *t = push(L, JT_NAME, i);
            if (!t) return fail(L, i, "out of memory");
            t->p = s; t->n = j - i;
            i = j;
            continue;
        }
        static const struct { const char *s; int op; } two[] = {
            {"//", JO_FLOORDIV}, {"**", JO_POW}, {"==", JO_EQ}, {"!=", JO_NE}, {">=", JO_GE}, {"<=", JO_LE}};
        int op = 0, w = 1;
        for (size_t k = 0; k < sizeof two / sizeof two[0]; k++)
            if (left >= 2 && !memcmp(s, two[k].s, 2)) { op = two[k].op; w = 2; break; }
        if (!op && strchr("+-/*%~[](){}<>=.:|,;", *s) && *s) op = *s;
        if (!op) return fail(L, i, "unexpected character '%c'", *s);
        if (op == '(' || op == '[' || op == '{') {
            if (depth == (int)sizeof stack) return fail(L, i, "brackets nested too deep");
            stack[depth++] = op == '(' ? ')' : op == '[' ? ']' : '}';
        } else if (op == ')' || op == ']' || op == '}') {
            if (!depth) return fail(L, i, "unexpected '%c'", op);
            if (stack[--depth] != op) return fail(L, i, "unexpected '%c', expected '%c'", op, stack[depth]);
        }
        jtok *t = push(L, JT_OP, i);
        if (!t) return fail(L, i, "out of memory");
        t->op = op; t->p = s; t->n = (size_t)w;
        i += (size_t)w;
    }
}

/* {% raw %} at i (its opener ends at body): the text up to {% endraw %}. */
static int raw(lexer *L, size_t body, size_t *end) {
    for (size_t j = body; j + 1 < L->n; j++) {
        if (L->s[j] != '{' || L->s[j + 1] != '%') continue;
        size_t k = j + 2;
        int sign = k < L->n && (L->s[k] == '-' || L->s[k] == '+') ? L->s[k++] : 0;
        k = skip_space(L, k);
        if (L->n - k < 6 || memcmp(L->s + k, "endraw", 6)) continue;
        k = skip_space(L, k + 6);
        int minus = k + 2 < L->n && L->s[k] == '-' && !memcmp(L->s + k + 1, "%}", 2);
        int plus = k + 2 < L->n && L->s[k] == '+' && !memcmp(L->s + k + 1, "%}", 2);
        if (!minus && !plus && (k + 1 >= L->n || memcmp(L->s + k, "%}", 2))) continue;
        if (text(L, body, j, sign, 1)) return -1;
        k += (minus || plus) ? 3 : 2;
        if (minus) k = skip_space(L, k);
        else if (!plus && k < L->n && L->s[k] == '\n') k++;
        L->line_starting = L->s[k - 1] == '\n';
        *end = k;
        return 0;
    }
    return fail(L, body, "missing end of raw directive");
}

/* Is there "{% raw %}" (any whitespace control) at i?  Sets *body after it. */
static int raw_begin(lexer *L, size_t i, size_t *body) {
    size_t k = i + 2;
    if (k < L->n && (L->s[k] == '-' || L->s[k] == '+')) k++;
    k = skip_space(L, k);
    if (L->n - k < 3 || memcmp(L->s + k, "raw", 3)) return 0;
    k = skip_space(L, k + 3);
    if (k + 2 < L->n && L->s[k] == '-' && !memcmp(L->s + k + 1, "%}", 2)) { *body = skip_space(L, k + 3); return 1; }
    if (k + 1 < L->n && !memcmp(L->s + k, "%}", 2)) { *body = k + 2; return 1; }
    return 0;
}

int jinja_lex(jarena *a, const char *src, size_t len, jtok **out, char *err, size_t errcap) {
    lexer L = {.a = a, .line = 1, .err = err, .errcap = errcap, .line_starting = 1};
    char *s = ja_alloc(a, len + 1);
    if (!s) { snprintf(err, errcap, "out of memory"); return -1; }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {                   /* \r\n and \r -> \n */
        if (src[i] == '\r') { s[n++] = '\n'; if (i + 1 < len && src[i + 1] == '\n') i++; }
        else s[n++] = src[i];
    }
    if (n && s[n - 1] == '\n') n--;                      /* keep_trailing_newline=False */
    L.s = s; L.n = n;
    size_t i = 0;
    while (i < n) {
        const char *open = NULL;
        size_t j = i;
        for (; j + 1 < n; j++)
            if (s[j] == '{' && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#')) { open = s + j; break; }
        if (!open) { if (text(&L, i, n, 0, 0)) return -1; break; }
        char kind = open[1];
        int sign = j + 2 < n && (s[j + 2] == '-' || s[j + 2] == '+') ? s[j + 2] : 0;
        size_t body;
        if (kind == '%' && raw_begin(&L, j, &body)) {
            if (text(&L, i, j, sign, 1) || raw(&L, body, &i)) return -1;
            continue;
        }
        if (text(&L, i, j, sign, kind != '{')) return -1;
        L.line_starting = 0;
        size_t k = j + 2 + (sign ? 1 : 0);
        if (kind == '#') {                               /* a comment: dropped */
            const char *e = NULL;
            for (size_t m = k; m + 1 < n; m++) if (s[m] == '#' && s[m + 1] == '}') { e = s + m; break; }
            if (!e) return fail(&L, j, "missing end of comment tag");
            size_t m = (size_t)(e - s);
            int esign = m > k && (s[m - 1] == '-' || s[m - 1] == '+') ? s[m - 1] : 0;
            i = m + 2;
            if (esign == '-') i = skip_space(&L, i);
            else if (esign != '+' && i < n && s[i] == '\n') i++;
            L.line_starting = s[i - 1] == '\n';
            continue;
        }
        jtok *t = push(&L, kind == '%' ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, j);
        if (!t) return fail(&L, j, "out of memory");
        if (tag(&L, k, kind == '%', &i)) return -1;
    }
    if (!push(&L, JT_EOF, n)) return fail(&L, n, "out of memory");
    *out = L.t;
    return L.nt;
}
