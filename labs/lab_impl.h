/* lab_impl: the inside of a lab run, shared by the framework's own files
 * (lab.c, lab_grade.c, lab_write.c, lab_sheet_md.c, lab_sheet_pdf.c).  A lab's
 * callbacks do not include this: they use labs/lab_content.h. */
#ifndef LAB_IMPL_H
#define LAB_IMPL_H
#include "labs/lab.h"
#include "labs/lab_content.h"

struct lab_table {
    char   *name, *caption;
    char  **cols;                    /* (ncols,) column names; cols[0] is the key */
    int     ncols;
    char  **keys;                    /* (nrows,) */
    double *vals;                    /* (nrows, ncols - 1) row-major */
    int     nrows, cap;
    bool    on_sheet;
};

typedef struct lab_todo_item { char *command, *why; } lab_todo_item;
struct lab_real_measurer;            /* labs/lab_real.h */

struct lab {
    const lab_def *def;
    uint64_t       seed;
    void          *result;
    char         **strs;             /* (nstrs,) every string the lab owns */
    int            nstrs, strs_cap;
    lab_table    **tables;           /* (ntables,) */
    int            ntables;
    lab_figure_spec *figs;           /* (nfigs,) strings owned through strs */
    int            nfigs;
    lab_question  *qs;               /* (nqs,) */
    int            nqs;
    lab_headline  *heads;            /* (nheads,) */
    int            nheads;
    lab_todo_item *todos;            /* (ntodos,) */
    int            ntodos;
    char          *narrative;        /* paragraphs joined by "\n\n" */
    size_t         narr_len, narr_cap;
    char         **files;            /* (nfiles,) names written by lab_write, relative to its dir */
    int            nfiles;
    const struct lab_real_measurer *real;   /* --real's measurer (lab_real_use); NULL: the engine */
};

/* A copy of s owned by L (NULL stays NULL); NULL on memory when s != NULL. */
char *lab_own(lab *L, const char *s);
/* Cell (row r, number column c >= 1) of t as printed on a sheet: a column of
 * whole numbers plainly, any other with the same decimals throughout (2, or 1
 * when its values reach 100); "-" for a missing value. */
void  lab_table_cell(const lab_table *t, int r, int c, char *buf, size_t n);
/* "q3" for question i (0-based) into buf. */
void  lab_qid(int i, char *buf, size_t n);
#endif
