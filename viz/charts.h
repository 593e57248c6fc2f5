/* charts: the figures of `pagesim run --plot FILE.png|svg|pdf`: KV pool
 * utilization and waste over time (one line per policy), and the waste
 * breakdown per policy as stacked bars, like Figure 2 of the vLLM paper
 * (token states, reservation, internal and external fragmentation, as shares
 * of the memory held or lost).  Reads the metrics structs of sim/metrics.h;
 * writes only the file it is given. */
#ifndef VIZ_CHARTS_H
#define VIZ_CHARTS_H
#include <stddef.h>
#include "sim/metrics.h"
#include "sim/simulate.h"

typedef struct viz_run_series {  /* one run's step series */
    const char     *label;       /* "paged", "orca-max", ... */
    const met_step *steps;       /* (num_steps,) as sim_run keeps them (keep_steps) */
    int             num_steps;
} viz_run_series;

typedef struct viz_waste {       /* one bar: shares of the memory held or lost, sum 1 */
    char   label[32];
    double token, reserved, internal, external;
    double paper;                /* a published token share to mark (0..1), < 0 = none */
} viz_waste;

/* A bar from a run's summary (its time-averaged shares). */
viz_waste viz_waste_of_summary(const char *label, const met_summary *s);
/* A bar from a step series (shares weighted by step duration). */
viz_waste viz_waste_of_steps(const char *label, const met_step *steps, int n);
/* Writes the figure (format from the extension: .png, .svg, .pdf): the time
 * series of runs (nruns, may be 0) above the bars (nbars, may be 0).  Returns
 * 0, or -1 with err naming the file. */
int viz_plot_run(const char *path, const viz_run_series *runs, int nruns,
                 const viz_waste *bars, int nbars, int width, int height,
                 char *err, size_t errlen);
/* The one call for `pagesim run --plot FILE`: n results of sim_run (labels
 * (n,), e.g. the policy names; paper (n,) published token shares 0..1 to mark,
 * or NULL).  Time series for results that kept their steps, a bar for each.
 * 1200 x 760.  Returns 0, or -1 with err naming the file. */
int viz_plot_results(const char *path, const char *const *labels, const sim_result *res, int n,
                     const double *paper, char *err, size_t errlen);
#endif
