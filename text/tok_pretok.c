/* tok_pretok.c: the pre-tokenizer (see text/tok_internal.h): each Split step
 * (a PCRE2 regex, JIT-compiled, or a literal string) cuts the pieces of the
 * previous step by its behaviour (Isolated, Removed, MergedWithPrevious,
 * MergedWithNext); the pieces of the last step go to BPE.  Pieces are
 * (start, len) pairs into the normalized segment, ping-ponged between two
 * lists.  Touches only the call's scratch. */
#include "text/tok_internal.h"
#include <string.h>

static int add_piece(tok_piecelist *l, size_t start, size_t len) {
    if (tok_grow((void **)&l->v, &l->cap, 2 * l->n + 2, sizeof *l->v) < 0) return -1;
    l->v[2 * l->n] = start; l->v[2 * l->n + 1] = len; l->n++;
    return 0;
}

/* Hands a piece [start, start+len) of s to the next step: BPE when last. */
static int emit(tok_tokenizer *t, tok_work *w, tok_piecelist *dst, int last, const char *s,
                size_t start, size_t len) {
    if (len == 0) return 0;
    if (last) return tok_bpe_word(t, w, s + start, len);
    return add_piece(dst, start, len);
}

/* Splits piece [ps, ps+pl) of s by one Split step. */
static int split_piece(tok_tokenizer *t, tok_work *w, const pcre2_code *re, int behavior, tok_piecelist *dst, int last,
                       const char *s, size_t ps, size_t pl) {
    const char *sub = s + ps;
    size_t off = 0, prev_end = 0, next_start = 0;
    while (off <= pl) {
        int rc = pcre2_jit_match(re, (PCRE2_SPTR)sub, pl, off, 0, w->md, NULL);
        if (rc == PCRE2_ERROR_JIT_BADOPTION)
            rc = pcre2_match(re, (PCRE2_SPTR)sub, pl, off, PCRE2_NO_UTF_CHECK, w->md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(w->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {           /* empty match: step over one character */
            size_t k = ms + 1;
            while (k < pl && ((unsigned char)sub[k] & 0xC0) == 0x80) k++;
            off = k;
            continue;
        }
        switch (behavior) {
        case BEH_ISOLATED:
            if (emit(t, w, dst, last, s, ps + prev_end, ms - prev_end) < 0) return -1;
            if (emit(t, w, dst, last, s, ps + ms, me - ms) < 0) return -1;
            break;
        case BEH_REMOVED:
            if (emit(t, w, dst, last, s, ps + prev_end, ms - prev_end) < 0) return -1;
            break;
        case BEH_MERGED_PREV:
            if (emit(t, w, dst, last, s, ps + prev_end, me - prev_end) < 0) return -1;
            break;
        case BEH_MERGED_NEXT:
            if (emit(t, w, dst, last, s, ps + next_start, ms - next_start) < 0) return -1;
            next_start = ms;
            break;
        }
        prev_end = off = me;
    }
    if (behavior == BEH_MERGED_NEXT) return emit(t, w, dst, last, s, ps + next_start, pl - next_start);
    return emit(t, w, dst, last, s, ps + prev_end, pl - prev_end);
}

int tok_encode_segment(tok_tokenizer *t, tok_work *w, const char *seg, size_t len, int first) {
    const char *s; size_t n;
    if (tok_normalize(t, w, seg, len, first, &s, &n) < 0) return -1;
    if (n == 0) return 0;
    if (t->n_pre == 0) return tok_bpe_word(t, w, s, n);
    tok_piecelist *src = &w->pl[0], *dst = &w->pl[1];
    src->n = 0;
    if (add_piece(src, 0, n) < 0) return -1;
    int has4 = 0;   /* 4-byte UTF-8 present: use the Unicode-15-widened regexes */
    for (size_t i = 0; i < n && !has4; i++) has4 = (unsigned char)s[i] >= 0xF0;
    for (int si = 0; si < t->n_pre; si++) {
        int last = si == t->n_pre - 1;
        const tok_pre_step *st = &t->pre[si];
        const pcre2_code *re = has4 && st->re_wide ? st->re_wide : st->re;
        dst->n = 0;
        for (size_t p = 0; p < src->n; p++)
            if (split_piece(t, w, re, st->behavior, dst, last, s, src->v[2 * p], src->v[2 * p + 1]) < 0) return -1;
        tok_piecelist *x = src; src = dst; dst = x;
    }
    return 0;
}

