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
#endif
