/* file.c: whole-file reading, atomic writing, mkdir -p and the data folder
 * (see base/file.h).  Touches only the files and directories it is given
 * (and, while writing one, its path.tmp.PID sibling). */
#include "base/file.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[4096];              /* file_set_data_dir's; "" = none */

void file_set_data_dir(const char *dir) {
    snprintf(data_dir, sizeof data_dir, "%s", dir ? dir : "");
    size_t n = strlen(data_dir);
    while (n > 1 && data_dir[n - 1] == '/') data_dir[--n] = 0;
}

const char *file_data_dir(void) { return data_dir[0] ? data_dir : NULL; }

const char *file_data_path(const char *path, char *buf, size_t n) {
    if (!path || !data_dir[0] || strncmp(path, "data/", 5) != 0 || access(path, F_OK) == 0) return path;
    if ((size_t)snprintf(buf, n, "%s/%s", data_dir, path + 5) >= n || access(buf, F_OK) != 0) return path;
    return buf;
}

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
    char where[4200];
    FILE *f = fopen(file_data_path(path, where, sizeof where), "rb");
    if (!f) {
        int e = errno;
        if (e == ENOENT && data_dir[0] && !strncmp(path, "data/", 5))
            snprintf(err, errlen, "%s: %s (nor in the data folder %s)", path, strerror(e), data_dir);
        else snprintf(err, errlen, "%s: %s", path, strerror(e));
        return NULL;
    }
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

/* the temporary of the atomic write in progress, for file_atomic_cleanup */
static char tmp_path[4200];
static volatile sig_atomic_t tmp_live;

void file_atomic_cleanup(void) {
    if (tmp_live) unlink(tmp_path);
}

/* Writes data to fd whole; 0, or -1 with errno. */
static int write_all(int fd, const void *data, size_t len) {
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        off += (size_t)w;
    }
    return 0;
}

/* A device, a pipe or a socket (/dev/stdout, /dev/null, a FIFO): written in
 * place, since a rename would replace it with a regular file. */
static int write_in_place(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0 || write_all(fd, data, len) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (close(fd) != 0) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return write_in_place(path, data, len, err, errlen);
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        snprintf(err, errlen, "%.200s...: %s", path, strerror(ENAMETOOLONG));
        return -1;
    }
    memcpy(tmp_path, tmp, sizeof tmp);
    tmp_live = 1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644), rc = -1;
    if (fd < 0) { snprintf(err, errlen, "%s: %s", tmp, strerror(errno)); goto out; }
    if (write_all(fd, data, len) != 0) { snprintf(err, errlen, "%s: %s", tmp, strerror(errno)); goto out; }
    if (fsync(fd) != 0) { snprintf(err, errlen, "%s: %s", tmp, strerror(errno)); goto out; }
    int c = close(fd);
    fd = -1;
    if (c != 0) { snprintf(err, errlen, "%s: %s", tmp, strerror(errno)); goto out; }
    if (rename(tmp, path) != 0) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); goto out; }
    tmp_live = 0;
    char dir[4200];                                /* the rename itself made durable */
    memcpy(dir, path, strlen(path) + 1);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    rc = 0;
out:
    if (fd >= 0) close(fd);
    if (rc) unlink(tmp);
    tmp_live = 0;
    return rc;
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
