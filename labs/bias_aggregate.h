/* bias_aggregate: the study's aggregation step over files in an output
 * directory: combine {model}_att_set_{n}.csv into {model}_att_combined.csv
 * (or read the combined file when it exists, as the study does), analyse it,
 * write {model}_att_result.json.  Touches only files of that model in dir. */
#ifndef BIAS_AGGREGATE_H
#define BIAS_AGGREGATE_H
#include <stddef.h>
#include "labs/bias_analysis.h"
#include "labs/bias_data.h"

/* Column order of the study's set and combined files. */
#define BIAS_NCOLS 11
extern const char *const bias_columns[BIAS_NCOLS];

/* "{dir}/{model}{suffix}" into out. */
void bias_path(char *out, size_t n, const char *dir, const char *model, const char *suffix);
/* Analyses a combined table (columns set,ticker,name,sector,marketcap,llm_answer). */
int  bias_analyze_table(const bias_csv *t, bias_result *r, char *err, size_t errlen);
/* Writes {model}_att_combined.csv from the set files 1..num_sets found in dir
 * (num_sets 0: every set file there); the set column becomes the set number. */
int  bias_combine_sets(const char *dir, const char *model, int num_sets, char *err, size_t errlen);
/* Writes {dir}/{model}_att_result.json for r. */
int  bias_write_result(const char *dir, const char *model, const bias_result *r, char *err, size_t errlen);
/* The whole aggregation; with rebuild != 0 the combined file is rebuilt from
 * the set files even when it exists.  Fills r and writes the result JSON. */
int  bias_aggregate(const char *dir, const char *model, int rebuild, bias_result *r,
                    char *err, size_t errlen);
#endif
