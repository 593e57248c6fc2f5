/* file.c: whole-file reading and mkdir -p (see base/file.h).  Touches only
 * the files and directories it is given. */
#include "base/file.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *file_read_stream(FILE *f, const char *name, size_t max, size_t *len, char *err, size_t errlen) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);                    /* (cap,) grows by doubling; n bytes read */
    if (!buf) goto oom;
    for (;;) {
        if (n + 1 == cap) {
            if (max && n > max) break;
            char *b = realloc(buf, cap * 2);
            if (!b) goto oom;
            buf = b; cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", name, strerror(errno ? errno : EIO));
        free(buf);
        return NULL;
    }
    if (max && n > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", name, max);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
oom:
    snprintf(err, errlen, "%s: out of memory", name);
    free(buf);
    return NULL;
}

char *file_read_all(const char *path, size_t max, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
        return NULL;
    }
    char *buf = file_read_stream(f, path, max, len, err, errlen);
    fclose(f);
    return buf;
}

int file_mkdirs(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0) { errno = ENOENT; return -1; }
    if (n >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return (mkdir(tmp, 0755) < 0 && errno != EEXIST) ? -1 : 0;
}

int file_mkparent(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    memcpy(tmp, path, n + 1);
    char *s = strrchr(tmp, '/');
    if (!s || s == tmp) return 0;
    *s = 0;
    return file_mkdirs(tmp);
}
