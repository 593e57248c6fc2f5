/* cli: number options of the engine's front ends (engine/run, bench, serve).
 * Front-end helpers: on a bad value they print "PROG: OPT wants ..." and exit
 * with status 2, so call them only from *_main.c. */
#ifndef ENGINE_CLI_H
#define ENGINE_CLI_H
/* The integer in v (whole string), in [lo, hi]. */
int    cli_int(const char *prog, const char *opt, const char *v, long lo, long hi);
/* The number in v (whole string), in [lo, hi]. */
double cli_num(const char *prog, const char *opt, const char *v, double lo, double hi);
#endif
