/* cli: number options of the engine's front ends (see engine/cli.h). */
#include "engine/cli.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int cli_int(const char *prog, const char *opt, const char *v, long lo, long hi) {
    char *end = NULL;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "%s: %s wants an integer in [%ld, %ld], got '%s'\n", prog, opt, lo, hi, v ? v : "");
        exit(2);
    }
    return (int)x;
}

double cli_num(const char *prog, const char *opt, const char *v, double lo, double hi) {
    char *end = NULL;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "%s: %s wants a number in [%g, %g], got '%s'\n", prog, opt, lo, hi, v ? v : "");
        exit(2);
    }
    return x;
}
