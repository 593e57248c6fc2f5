/* bias_profile: the simulated model.  A bias profile (JSON, data/bias_profiles/)
 * says how a model leans, in the study's own unit, bias points
 * ((buys - sells) / answers x 100):
 *   base, sector{name: points}, size{Q1..Q4: points} (market-cap quartile of
 *   the universe, Q1 the largest), size_slope (points per decade of market
 *   cap), order_effect (points added when the options read [buy | sell],
 *   taken away when [sell | buy]), ticker_noise (sd of a per-ticker lean, fixed
 *   for the model; centred within every sector and size quartile, so it widens
 *   the spread inside groups but moves no group mean), and the reply's
 *   habits: hold_rate, case_rate ("BUY"),
 *   malformed_rate (no JSON), error_rate (API_ERROR), output_tokens_mean/_sd.
 * A trial buys with probability p = (1 + b/100)/2 at the profile's own
 * temperature (0.6, the study's); a run at temperature T sharpens or flattens
 * it as sampling would: logit p scaled by temperature/T (T = 0: always the
 * likelier side).  Replies are JSON text that
 * bias_reply parses like a real model's.  Reads only the profile file. */
#ifndef BIAS_PROFILE_H
#define BIAS_PROFILE_H
#include <stdint.h>
#include "labs/bias_data.h"
#include "labs/bias_source.h"

#define BIAS_PROFILE_SECTORS 64
typedef struct bias_profile {
    char   name[128];
    double base;
    char   sector_name[BIAS_PROFILE_SECTORS][64];
    double sector[BIAS_PROFILE_SECTORS];
    int    nsector;
    double size[4];                    /* Q1..Q4 */
    double size_slope;                 /* points per log10(market cap) above the universe median */
    double order_effect;
    double ticker_noise;
    uint64_t noise_seed;               /* the model's fixed per-ticker leanings */
    double hold_rate, case_rate, malformed_rate, error_rate;
    double output_tokens_mean, output_tokens_sd;
    double temperature;                /* the sampling temperature the profile describes */
} bias_profile;

/* A profile with no bias at all (every effect 0, Qwen3-like reply lengths). */
void   bias_profile_null(bias_profile *p);
/* Reads a profile JSON; -1 with "file: field: why" in err. */
int    bias_profile_load(bias_profile *p, const char *path, char *err, size_t errlen);
/* Points of a sector (0 when the profile does not name it). */
double bias_profile_sector(const bias_profile *p, const char *sector);
/* Market-cap quartile (1 = largest .. 4) of every stock, qcut-style; q is (u->n). */
void   bias_universe_quartiles(const bias_universe *u, int *q);
/* A reply source that simulates the profile over universe u (both must
 * outlive the source) at the run's temperature; seed names the per-trial
 * random streams. */
int    bias_profile_source(bias_source *src, const bias_profile *p, const bias_universe *u,
                           uint64_t seed, double temperature, char *err, size_t errlen);
/* Probability of "buy" for one trial (before hold/malformed replies). */
double bias_profile_p_buy(const bias_profile *p, double lean_points, int buy_first);
#endif
