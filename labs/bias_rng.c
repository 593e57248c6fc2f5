/* bias_rng: xoshiro256** with splitmix64 seeding; normal by Box-Muller,
 * gamma by Marsaglia-Tsang.  Pure computation. */
#include "labs/bias_rng.h"
#include "base/rng.h"
#include <math.h>

void bias_rng_init(bias_rng *r, uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
    uint64_t x = a;
    uint64_t h = rng_splitmix64(&x);
    x = h ^ b; h = rng_splitmix64(&x);
    x = h ^ c; h = rng_splitmix64(&x);
    x = h ^ d;
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t bias_rng_next(bias_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

double bias_rng_uniform(bias_rng *r) { return (double)(bias_rng_next(r) >> 11) * 0x1.0p-53; }

uint32_t bias_rng_below(bias_rng *r, uint32_t n) {
    if (n <= 1) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = bias_rng_next(r); while (x >= lim);
    return (uint32_t)(x % n);
}

double bias_rng_normal(bias_rng *r) {
    double u = bias_rng_uniform(r), v = bias_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

double bias_rng_gamma(bias_rng *r, double k) {
    if (k < 1.0) return bias_rng_gamma(r, k + 1.0) * pow(1.0 - bias_rng_uniform(r), 1.0 / k);
    double d = k - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = bias_rng_normal(r), v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = 1.0 - bias_rng_uniform(r);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

uint64_t bias_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ULL; }
    return h;
}
