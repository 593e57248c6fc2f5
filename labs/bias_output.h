/* bias_output: the study's output files, written the way its Python writes
 * them: CSV as pandas' to_csv (minimal quoting), JSON as json.dump (indent,
 * key order, Python's float repr).  Final files go through a temporary file,
 * fsync and rename, so a half-written file never looks complete. */
#ifndef BIAS_OUTPUT_H
#define BIAS_OUTPUT_H
#include <stdio.h>
#include <stddef.h>
#include "labs/bias_analysis.h"

/* A growable text buffer. */
typedef struct bias_buf { char *s; size_t len, cap; int oom; } bias_buf;
void bias_buf_add(bias_buf *b, const char *s, size_t n);
void bias_buf_printf(bias_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bias_buf_free(bias_buf *b);
/* Appends the whole file at path; -1 when it cannot be opened (errno says why). */
int  bias_buf_read_file(bias_buf *b, const char *path);

/* Python's repr of a float ("56.0", "2.5927524908205676e-40", "NaN"). */
void bias_fmt_double(char *out, size_t n, double x);
/* Python's round(x, nd) for a float (exact decimal rounding, ties to even). */
double bias_round_nd(double x, int nd);
/* Appends s as a JSON string (json.dumps with ensure_ascii=False). */
void bias_json_str(bias_buf *b, const char *s);
/* Appends one CSV row of n fields (quoted when they hold , " CR or LF). */
void bias_csv_row(bias_buf *b, const char *const *fields, int n);

/* The study's {model}_att_result.json text (indent 4, no final newline). */
int  bias_result_json(const bias_result *r, bias_buf *out);
/* Writes data to path through path.tmp.PID + fsync + rename (file_write_atomic). */
int  bias_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen);
/* Removes the temporaries DIR/{model}_att_*.tmp.PID that a killed run left
 * (those of a process that no longer exists); returns how many. */
int  bias_remove_stale_tmp(const char *dir, const char *model);
#endif
