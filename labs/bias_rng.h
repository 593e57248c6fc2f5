/* bias_rng: the bias lab's own seeded PRNG (xoshiro256** seeded through
 * splitmix64).  Every trial gets its own stream from (seed, set, ticker, trial,
 * purpose), so prompts and simulated replies do not depend on the order in
 * which trials run: a resumed run draws exactly what an unbroken one would. */
#ifndef BIAS_RNG_H
#define BIAS_RNG_H
#include <stdint.h>

typedef struct bias_rng { uint64_t s[4]; } bias_rng;

/* Streams are named by up to four numbers (e.g. seed, set, ticker index, trial). */
void     bias_rng_init(bias_rng *r, uint64_t a, uint64_t b, uint64_t c, uint64_t d);
uint64_t bias_rng_next(bias_rng *r);
double   bias_rng_uniform(bias_rng *r);               /* [0, 1) */
uint32_t bias_rng_below(bias_rng *r, uint32_t n);     /* 0 .. n-1, unbiased */
double   bias_rng_normal(bias_rng *r);                /* standard normal */
double   bias_rng_gamma(bias_rng *r, double shape);   /* Gamma(shape, 1), shape > 0 */
/* 64-bit FNV-1a of a string, to name a stream after a ticker. */
uint64_t bias_hash(const char *s);
#endif
