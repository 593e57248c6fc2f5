/* lab_content: what a lab's callbacks add to its run: the result they keep,
 * data tables, figures, questions, headline numbers and narrative.  Strings
 * given here are copied (lab_fmt's are owned by the lab already), so callers
 * may pass stack buffers.  Each adder returns 0, or -1 when out of memory (or
 * on a bad argument, said in the comment). */
#ifndef LAB_CONTENT_H
#define LAB_CONTENT_H
#include <stdarg.h>
#include <stdbool.h>
#include "labs/lab.h"
#include "viz/export.h"

/* The result of run, given back to the other callbacks; freed by the def's
 * free_result in lab_free. */
void  lab_set_result(lab *L, void *result);
void *lab_result(const lab *L);
/* One of n variants for this seed, dimension salt: 0 (the paper's setup) at
 * LAB_PAPER_SEED, else a hash of (seed, salt) mod n.  n <= 0 gives 0. */
int   lab_pick(const lab *L, unsigned salt, int n);
/* A formatted string owned by the lab (until lab_free); NULL on memory. */
const char *lab_fmt(lab *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A data table: written as <name>.csv and into data.json; printed on the
 * worksheet when on_sheet.  columns: comma-separated names, the first one a
 * text key ("policy,token_share_pct,requests_at_once"). */
typedef struct lab_table lab_table;
lab_table *lab_table_add(lab *L, const char *name, const char *caption, const char *columns,
                         bool on_sheet);
/* A row: key and (columns - 1) numbers. */
int   lab_table_row(lab_table *t, const char *key, const double *vals);

/* A figure: drawn by draw(cr, ctx, w, h) (viz/export.h) into <name>.png and
 * <name>.svg at width x height, and scaled onto the worksheet.  ctx must
 * live until lab_free (point into the result). */
typedef struct lab_figure_spec {
    const char *name;                /* file stem: "memory" -> memory.png, memory.svg */
    const char *caption;             /* "Figure 1. Where the KV cache memory goes" */
    const char *look_at;             /* what the student should look at in it */
    int         width, height;       /* pixels (PNG), points (SVG) */
    viz_draw_fn draw;
    const void *ctx;
} lab_figure_spec;
int   lab_figure(lab *L, const lab_figure_spec *f);

/* A worksheet question.  Questions are numbered q1, q2, ... in order. */
typedef enum { LAB_Q_NUMBER, LAB_Q_CHOICE, LAB_Q_EXPLAIN } lab_q_kind;
typedef struct lab_question {
    lab_q_kind  kind;
    const char *text;                /* the question as printed */
    const char *where;               /* where to look: "Figure 1, the orca-oracle bar" */
    const char *unit;                /* printed after the answer line ("%", "requests"); may be NULL */
    double      answer;              /* NUMBER: the run's value */
    double      tol;                 /* NUMBER: right when |given - answer| <= tol */
    const char *choices;             /* CHOICE: "paged|orca-max|orca-pow2" */
    const char *correct;             /* CHOICE: the right one, one of choices */
    const char *predict;             /* a prediction asked BEFORE the run ("Predict ..."), or
                                        NULL; recorded as qN_prediction, never graded */
    const char *key;                 /* the teacher's model answer (EXPLAIN: required) */
} lab_question;
/* -1 also when the question is malformed (no text, a CHOICE whose correct is
 * not among its choices, a negative tolerance, an EXPLAIN without key). */
int   lab_ask(lab *L, const lab_question *q);
/* A headline number (labs/lab.h).  -1 also when tol < 0 or hi < lo. */
int   lab_headline_add(lab *L, const lab_headline *h);

/* A paragraph of the narrative. */
int   lab_say(lab *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A command for the worksheet's "what to run" list, with why to run it. */
int   lab_todo(lab *L, const char *command, const char *why);
#endif
