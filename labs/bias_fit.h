/* bias_fit: fits a bias profile to a published result JSON (the study's
 * {model}_att_result.json): sector and size effects by backfitting an
 * additive model over a universe so that the expected group means equal the
 * published ones, and the per-ticker noise from the published t statistics.
 * Reads the result file; writes only the profile file it is asked to. */
#ifndef BIAS_FIT_H
#define BIAS_FIT_H
#include "labs/bias_data.h"
#include "labs/bias_profile.h"
#include "labs/bias_output.h"

/* Fits p (its reply habits are left as they are) from result_json over u,
 * assuming the result came from num_sets sets of num_trials trials.  Appends
 * a note on the fit (residuals, noise) to note.  -1 with err on a bad file. */
int bias_fit_profile(const char *result_json, const bias_universe *u, int num_sets, int num_trials,
                     bias_profile *p, bias_buf *note, char *err, size_t errlen);
/* Writes p as profile JSON (with "note") through a temporary file. */
int bias_profile_write(const bias_profile *p, const char *note, const char *path,
                       char *err, size_t errlen);
/* Expected group means of p over u (no sampling noise): sector[] in the order
 * of p->sector_name, size[4] for Q1..Q4.  For checks and the fit's note. */
void bias_profile_expected(const bias_profile *p, const bias_universe *u, double *sector, double *size);
#endif
