/* bias_compare: simulation against reality.  bias_compare_write simulates
 * the prompts of each trace (labs/bias_trace.h: what a real run measured)
 * with the measured reply lengths on the same GPU, model config and engine
 * limits (sim/simulate.h), and sets predicted against measured: wall time,
 * tokens/s, TTFT and TPOT percentiles, peak KV blocks, KV utilization and
 * internal fragmentation, for each trace given (paged, and contiguous when a
 * run with --kv-policy contiguous is at hand).  With two or more sets of
 * steps it also fits the cost model on the first set (sim/calibrate.h) and
 * predicts the others, before (the profile's or the roofline's step times)
 * and after fitting (the roofline with fitted coefficients).  Writes
 * {model}_att_compare.json and a figure ({model}_att_compare.png/.svg).
 * Reads data/gpus.json, the model config and trace files; writes only those
 * files.  The parts: bias_measure.c (the measured side), bias_predict.c (the
 * simulated side), bias_calib.c (the fit), bias_compare_json.c and
 * bias_compare_fig.c (the outputs), bias_compare.c (this call). */
#ifndef BIAS_COMPARE_H
#define BIAS_COMPARE_H
#include <stddef.h>
#include "labs/bias_trace.h"

typedef struct bias_compare_config {
    const char *gpu;             /* GPU table name (the trace's when NULL) */
    const char *model_config;    /* config.json (the trace's when NULL) */
    const char *coeffs;          /* cost-model coefficients file (pagesim calibrate), or NULL */
    int tp;                      /* 1 */
    double gpu_util;             /* for a trace that does not know its pool size (0.9) */
    const char *note;            /* added to the JSON (e.g. dummy weights), or NULL */
    const char *op_profile;      /* step times: "auto" or NULL (the operator profile of this GPU and
                                    model in data/profiles/ when there is one, else the roofline),
                                    "none" (the roofline) or a profile file (sim/op_profile.h);
                                    NULL with coeffs: the roofline with those coefficients.  The
                                    calibration always fits the roofline's coefficients */
    int sample_topp;             /* the runs sampled with temperature and top-p (or the first trace says
                                    so): the profile's top-p sampling times when it has them */
} bias_compare_config;

/* Compares each trace (n of them: typically paged, then contiguous) with its
 * simulation and writes {dir}/{model}_att_compare.json and the figure.
 * Fills summary (a few lines for the terminal).  -1 with err. */
int  bias_compare_write(const bias_compare_config *c, const bias_trace *const *traces, int n,
                        const char *dir, const char *model, char *summary, size_t sumlen,
                        char *err, size_t errlen);
#endif
