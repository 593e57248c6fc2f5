/* errbuf.h: the engine's one way to fill a caller's error buffer
 * (char *err, size_t n): a formatted message, and -1 to return. */
#ifndef BASE_ERRBUF_H
#define BASE_ERRBUF_H
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

__attribute__((format(printf, 3, 4)))
static inline int errbuf_fail(char *err, size_t n, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return -1;
}
#endif
