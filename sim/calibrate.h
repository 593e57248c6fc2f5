/* calibrate: fits the cost model's coefficients (cm_coeffs) to step times
 * measured on a real GPU, by least squares (GSL).  Reads only the file of
 * measured steps it is given. */
#ifndef CALIBRATE_H
#define CALIBRATE_H
#include <stddef.h>
#include "sim/cost_model.h"

/* One measured step: what it did and how long it took. */
typedef struct cm_step_obs {
    cm_batch b;              /* num_seqs, prefill/decode tokens, attn_ctx_tokens, attn_pairs */
    double   seconds;        /* measured wall time of the step */
} cm_step_obs;

typedef struct cm_fit_report {
    cm_coeffs k;             /* fitted coefficients (allreduce_lat_s kept from the model) */
    int    n;                /* steps used */
    int    n_flops_bound;    /* steps the fit puts on the FLOP roof */
    int    n_bw_bound;       /* ... and on the bandwidth roof */
    int    iterations;       /* rounds of classify-and-fit until stable */
    double r2;               /* coefficient of determination of the fit */
    double mape_before;      /* mean |predicted - measured| / measured, default coefficients */
    double mape_after;       /* the same with the fitted ones */
} cm_fit_report;

/* Reads measured steps: JSON (an array of objects, or {"steps": [...]}) or
 * CSV with a header, fields prefill_tokens, decode_tokens, num_seqs,
 * attn_ctx_tokens, seconds (attn_pairs optional: attn_ctx_tokens when
 * absent).  *out is malloc'd.  -1 with err naming the file (and line or
 * step) on bad input. */
int cm_steps_load(const char *path, cm_step_obs **out, int *n, char *err, size_t errlen);
/* Fits t = step_overhead + per_seq * num_seqs + max(F / (peak * flops_eff),
 * B / (bw * bw_eff)) [+ TP all-reduces] to the steps: each step is assigned
 * to the roof that bounds it, a linear least-squares fit follows
 * (gsl_multifit_linear), and both repeat until the assignment is stable.
 * A roof no step reaches keeps m's coefficient.  -1 with err when there are
 * too few steps or the fit is degenerate. */
int cm_fit(const cm_model *m, const cm_step_obs *s, int n, cm_fit_report *rep,
           char *err, size_t errlen);

/* How well a model predicts measured steps, with nothing fitted: the sums
 * (wall time of the steps) and the per-step relative errors. */
typedef struct cm_predict_report {
    int    n;
    double measured_s, predicted_s;   /* sums over the steps */
    double wall_err;                  /* predicted_s / measured_s - 1 */
    double median_abs_err;            /* of |predicted / measured - 1| per step */
    double p90_abs_err, mean_abs_err;
} cm_predict_report;
/* Predicts each step with cm_step_time (an operator profile when m has one).
 * 0, or -1 with err (no steps, no memory). */
int cm_predict(const cm_model *m, const cm_step_obs *s, int n, cm_predict_report *rep, char *err, size_t errlen);
#endif
