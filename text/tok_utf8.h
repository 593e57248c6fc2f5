/* tok_utf8.h: UTF-8 checks and repair for the tokenizer (private to
 * text/tok_*.c), by Python's rules for bytes.decode("utf-8", "replace"). */
#ifndef TEXT_TOK_UTF8_H
#define TEXT_TOK_UTF8_H
#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (n bytes left), or -(maximal invalid
 * subpart length) as Python's decoder counts it. */
static inline int tok_utf8_seq(const unsigned char *s, size_t n) {
    unsigned b = s[0];
    if (b < 0x80) return 1;
    int need; unsigned lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b == 0xE0) { need = 2; lo = 0xA0; }
    else if (b == 0xED) { need = 2; hi = 0x9F; }
    else if (b >= 0xE1 && b <= 0xEF) need = 2;
    else if (b == 0xF0) { need = 3; lo = 0x90; }
    else if (b == 0xF4) { need = 3; hi = 0x8F; }
    else if (b >= 0xF1 && b <= 0xF3) need = 3;
    else return -1;
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) return -k;
        unsigned c = s[k];
        if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return -k;
    }
    return need + 1;
}

/* 1 when s (n bytes) is valid UTF-8. */
int tok_utf8_valid(const char *s, size_t n);
/* Returns 0 with *fixed = NULL when text is valid, else 0 with a malloc'd copy
 * in *fixed (*flen bytes) where every maximal invalid subsequence is U+FFFD;
 * -1 when out of memory. */
int tok_utf8_repair(const char *text, size_t len, char **fixed, size_t *flen);
#endif
