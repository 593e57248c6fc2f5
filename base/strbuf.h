/* strbuf.h: a growable NUL-terminated byte buffer (*s, *len, *cap), as the
 * server and the lab's client assemble HTTP bodies and streams. */
#ifndef BASE_STRBUF_H
#define BASE_STRBUF_H
#include <stdlib.h>
#include <string.h>

/* Appends n bytes of p; returns -1 when out of memory (the buffer unchanged). */
static inline int strbuf_add(char **s, size_t *len, size_t *cap, const char *p, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1) c *= 2;
        char *ns = realloc(*s, c);
        if (!ns) return -1;
        *s = ns; *cap = c;
    }
    memcpy(*s + *len, p, n);
    *len += n;
    (*s)[*len] = 0;
    return 0;
}
#endif
