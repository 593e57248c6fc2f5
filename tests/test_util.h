/* Helpers shared by the cmocka tests: paths to ../shared data, to the built
 * commands, GPU gating.  Include after <cmocka.h>. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Directory of the read-only study data (../shared by default). */
static inline const char *tu_shared_dir(void) {
    const char *s = getenv("PAGESIM_SHARED");
    return (s && *s) ? s : "../shared";
}
/* Writes "<shared>/<rel>" into buf; returns 1 when that file exists. */
static inline int tu_shared_path(char *buf, size_t n, const char *rel) {
    snprintf(buf, n, "%s/%s", tu_shared_dir(), rel);
    return access(buf, R_OK) == 0;
}
/* Directory holding the built commands (pagesim, labs/bias, ...). */
static inline const char *tu_bindir(void) {
    const char *s = getenv("PAGESIM_BINDIR");
    return (s && *s) ? s : ".";
}
/* GPU tests call this first: under `make test` (PAGESIM_GPU=0) they skip. */
#define TU_REQUIRE_GPU() do { const char *g_ = getenv("PAGESIM_GPU"); \
    if (!g_ || strcmp(g_, "1") != 0) { skip(); return; } } while (0)
/* Skip (not pass) a test whose optional input file is absent. */
#define TU_REQUIRE_FILE(path) do { if (access((path), R_OK) != 0) { \
    fprintf(stderr, "skip: %s absent\n", (path)); skip(); return; } } while (0)
/* "dir/rel" in one of eight rotating static buffers (eight live at a time). */
static inline const char *tu_join(const char *dir, const char *rel) {
    static char ring[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(ring[k], sizeof ring[k], "%s/%s", dir, rel);
    return ring[k];
}
/* Reads a whole file into a NUL-terminated malloc'd string (NULL if unreadable). */
static inline char *tu_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { free(s); s = NULL; }
    if (s) s[n] = 0;
    fclose(f);
    return s;
}
#endif
