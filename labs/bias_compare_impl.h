/* bias_compare_impl.h: what the parts of the comparison share (private to
 * labs/bias_compare*.c, bias_measure.c, bias_predict.c and bias_calib.c; see
 * labs/bias_compare.h): one side's figures, one trace's comparison, the
 * calibration's result, and the steps between them. */
#ifndef BIAS_COMPARE_IMPL_H
#define BIAS_COMPARE_IMPL_H
#include "labs/bias_compare.h"
#include "labs/bias_output.h"
#include "sim/calibrate.h"
#include "sim/cost_model.h"
#include "sim/metrics.h"

#define MAX_TRACES 4
#define MAX_PTS 400

/* The figures of one side (measured or predicted) of one trace. */
typedef struct side {
    double wall_s, tok_per_s, out_tok_per_s;
    met_pct ttft, tpot;
    int    has_kv, peak_blocks, max_seqs;
    double mean_seqs;
    double kv_util;                  /* held slots / pool, time-averaged */
    double token_share_of_held;      /* token slots / held slots (vLLM Fig. 2) */
    double internal_of_held;         /* internal fragmentation / held slots */
    long   preemptions;              /* predicted only */
    double held_dt;                  /* sum of held slots x step time (predict's accumulator) */
    double t[MAX_PTS], blocks[MAX_PTS]; int npts;   /* set 1's blocks in use over time */
} side;

typedef struct cmp {
    const bias_trace *tr;
    side meas, pred;
    long num_blocks;                 /* the pool simulated */
    int  max_num_seqs, batched, max_model_len, block_size, sets;
    long prompt_tokens, output_tokens;
    size_t nreq;
} cmp;

typedef struct calib {
    int   done, n_fit, n_test;
    char  why[200];                             /* when not done */
    char  fit_on[96];
    cm_fit_report rep;
    double step_mape_before, step_mape_after;   /* on the held-out steps */
    int   npred;
    struct { char what[96]; double measured, before, after; } pred[8];
} calib;

/* Relative error of pred against meas (0 when meas is 0). */
static inline double bias_cmp_rel(double pred, double meas) { return meas != 0 ? (pred - meas) / meas : 0; }

/* Sets present in the trace's requests, ascending (sets: (t->nreq) max). */
int  bias_cmp_trace_sets(const bias_trace *t, int *sets);
/* The measured side of trace t (labs/bias_measure.c).  -1 with err. */
int  bias_cmp_measure(const bias_trace *t, side *m, char *err, size_t errlen);
/* The simulated side of c's trace with model m, every set (or only set
 * `only` when > 0) (labs/bias_predict.c).  -1 with err. */
int  bias_cmp_predict(const cmp *c, const cm_model *m, int only, side *p, char *err, size_t errlen);
/* Fits the cost model on trace 0's first set (or the first half of its
 * steps) and predicts the rest, saving the fit to coeffs_path; k says why
 * when it was not done (labs/bias_calib.c).  The fit is the roofline's
 * (m's coefficients, m->prof ignored); "before" is m itself (its operator
 * profile when it has one).  -1 with err. */
int  bias_cmp_calibrate(cmp *c, int n, const cm_model *m, calib *k, const char *coeffs_path,
                        char *err, size_t errlen);
/* {model}_att_compare.json's text into b (labs/bias_compare_json.c). */
void bias_cmp_json(bias_buf *b, const bias_compare_config *cfg, const cmp *c, int n, const calib *k,
                   const cm_model *m, const char *gpu, const char *model, const char *mcp, const char *cpath,
                   const char *step_times);
/* base.png and base.svg: blocks in use over time, and predicted / measured
 * for each figure (labs/bias_compare_fig.c).  -1 with err. */
int  bias_cmp_figure(const cmp *c, int n, const char *base, const char *title, char *err, size_t errlen);
#endif
