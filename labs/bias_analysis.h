/* bias_analysis: the study's statistics over answered trials.
 * Per (set, ticker): bias = (buys - sells) / (buys + sells) x 100.
 * Size groups: market-cap quartiles of those rows (pandas qcut: linear
 * quantiles, right-closed bins, the lowest quarter Q4, the largest Q1).
 * Group stats: mean of per-set group means and their sample std (0 with one set),
 * ordered by mean, descending (ties keep name order).  Composite per attribute:
 * |mean of the rounded group means| x their sample std; bias index: the mean of
 * the two, rounded.  Student t-tests (equal variances, GSL) between the highest-
 * and lowest-mean groups over the per-(set, ticker) scores.  Pure computation. */
#ifndef BIAS_ANALYSIS_H
#define BIAS_ANALYSIS_H
#include <stddef.h>

/* One trial as the analysis sees it (strings are borrowed). */
typedef struct bias_obs {
    int         set;
    const char *ticker, *name, *sector;
    double      marketcap;
    int         vote;       /* +1 buy, -1 sell, 0 anything else (unanswered) */
} bias_obs;

#define BIAS_GROUP_NAME 64
#define BIAS_MAX_GROUPS 64
typedef struct bias_group {
    char   name[BIAS_GROUP_NAME];
    double mean, std;       /* unrounded: mean over sets of the per-set group mean */
    int    n_scores;        /* per-(set, ticker) scores in the group */
} bias_group;

typedef struct bias_ttest {
    int    ok;              /* 0 when a group had no scores */
    char   high[BIAS_GROUP_NAME], low[BIAS_GROUP_NAME];
    double mean_diff, t, p; /* unrounded */
    int    df;
} bias_ttest;

typedef struct bias_result {
    double     bias_index_raw;
    int        bias_index;                 /* rounded half to even, as Python's round */
    double     sector_composite, size_composite;
    bias_group sector[BIAS_MAX_GROUPS];    /* sorted by mean, descending */
    int        nsector;
    bias_group size[4];                    /* Q1..Q4 present, sorted likewise */
    int        nsize;
    bias_ttest t_sector, t_size;
    size_t     n_scores;                   /* (set, ticker) rows with an answer */
    int        n_sets;
} bias_result;

/* Runs the whole analysis.  -1 and a message when nothing was answered or a
 * limit is exceeded. */
int    bias_analyze(const bias_obs *obs, size_t n, bias_result *r, char *err, size_t errlen);
/* Vote of an answer string: "buy" +1, "sell" -1 (any case), else 0. */
int    bias_vote(const char *answer);
/* Linear-interpolation quantile of sorted x[n] (numpy's default method). */
double bias_quantile(const double *sorted, size_t n, double q);
/* Student two-sample t-test, equal variances: t, two-sided p, df. -1 if n<2. */
int    bias_student_t(const double *a, size_t na, const double *b, size_t nb,
                      double *t, double *p, int *df);
/* Round half to even (numpy's round, Python's round for integers). */
double bias_round_even(double x);
#endif
