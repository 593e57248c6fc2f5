/* tok_utf8.c: UTF-8 validation and repair (see text/tok_utf8.h).  Touches
 * only its own memory. */
#include "text/tok_utf8.h"
#include <stdlib.h>
#include <string.h>

int tok_utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int k = tok_utf8_seq((const unsigned char *)s + i, n - i);
        if (k < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

int tok_utf8_repair(const char *text, size_t len, char **fixed, size_t *flen) {
    *fixed = NULL; *flen = len;
    size_t i = 0;
    while (i < len) {
        int k = tok_utf8_seq((const unsigned char *)text + i, len - i);
        if (k < 0) break;
        i += (size_t)k;
    }
    if (i == len) return 0;
    char *o = malloc(len * 3 + 3);
    if (!o) return -1;
    memcpy(o, text, i);
    size_t on = i;
    while (i < len) {
        int k = tok_utf8_seq((const unsigned char *)text + i, len - i);
        if (k > 0) { memcpy(o + on, text + i, (size_t)k); on += (size_t)k; i += (size_t)k; }
        else { memcpy(o + on, "\xEF\xBF\xBD", 3); on += 3; i += (size_t)(-k); }
    }
    *fixed = o; *flen = on;
    return 0;
}

