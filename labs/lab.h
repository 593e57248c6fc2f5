/* lab: the classroom-lab framework.  A lab is a lab_def: its name and texts
 * and four callbacks that, for one seed, run its simulation on the sim/ core
 * and describe what it found:
 *   run        simulate; keep the results (lab_set_result) and the data
 *              tables (labs/lab_content.h: lab_table_add)
 *   figures    the figures, as cairo drawings made with viz/ (lab_figure)
 *   questions  the worksheet's questions, each with its answer computed from
 *              the run and a tolerance (lab_ask), and the headline numbers
 *              beside the paper's (lab_headline)
 *   narrative  a few lines of what the run shows (lab_say, lab_todo)
 *   real       (--real) the same measurement on the CUDA engine, kept beside
 *              the simulated one (labs/lab_real.h, labs/lab_real_sheet.h)
 * The framework turns that into out/<name>/ (labs/lab_write.h): PNG and SVG
 * figures, CSV and JSON data, the worksheet in Markdown and as PDF in A4 and
 * Letter, an answers template, and with --teacher the answer key; and it
 * grades a student's answers (labs/lab_grade.h).  The front end
 * (apps/labs/lab_cli.c) does the printing.  Library code: returns errors,
 * prints nothing, reads no environment. */
#ifndef LAB_H
#define LAB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lab lab;              /* one run of one lab, defined in labs/lab_impl.h */

/* The default seed: every lab's paper setup, where its headline numbers are. */
#define LAB_PAPER_SEED 1

typedef struct lab_def {
    const char *name;                /* "paging": the command labs/paging, the folder out/paging */
    const char *title;               /* "Paging: where the KV cache memory goes" */
    const char *summary;             /* a paragraph: what the lab shows (help, worksheet) */
    const char *concepts;            /* for the teachers' table: "KV cache, fragmentation, ..." */
    int         minutes;             /* time in class */
    const char *seed_note;           /* what --seed changes ("the KV cache size, 8-16 GB") */
    const char *real_note;           /* what --real would measure on the engine; NULL = nothing */
    /* Each returns 0, or -1 with err.  Only run is required; the others may be NULL. */
    int  (*run)(lab *L, char *err, size_t errlen);
    int  (*figures)(lab *L, char *err, size_t errlen);
    int  (*questions)(lab *L, char *err, size_t errlen);
    int  (*narrative)(lab *L, char *err, size_t errlen);
    /* --real: repeats the central measurement on the GPU engine (labs/lab_real.h)
     * and keeps it in the result, right after run, so that questions, figures
     * and narrative can put it beside the simulation; NULL = not written yet. */
    int  (*real)(lab *L, char *err, size_t errlen);
    void (*free_result)(void *result);   /* frees what run gave lab_set_result */
} lab_def;

/* What lab_run does beyond run + questions (which --check needs). */
enum { LAB_WITH_FIGURES = 1, LAB_WITH_NARRATIVE = 2, LAB_WITH_REAL = 4, LAB_WITH_ALL = 3 };

/* A lab for one seed (nothing run yet).  NULL + err on memory or a def without run. */
lab  *lab_create(const lab_def *def, uint64_t seed, char *err, size_t errlen);
/* Runs the callbacks: run, real when parts asks it, questions, then as parts
 * asks figures and narrative.  Returns 0, or -1 with err prefixed by the
 * lab's name. */
int   lab_run(lab *L, int parts, char *err, size_t errlen);
void  lab_free(lab *L);
const lab_def *lab_get_def(const lab *L);
uint64_t lab_seed(const lab *L);
/* The narrative, paragraphs separated by blank lines ("" before lab_run). */
const char *lab_narrative(const lab *L);

/* A headline number: this run's value beside a published one, with the
 * tolerance the lab states (tests check it; the README quotes it). */
typedef struct lab_headline {
    const char *what;                /* "paged / Orca (Max), requests at once" */
    double      measured;
    double      paper_lo, paper_hi;  /* the published value (lo = hi) or range */
    double      tol;                 /* within: lo - tol <= measured <= hi + tol */
    const char *unit;                /* "%", "x", "blocks", NULL */
    const char *source;              /* "vLLM paper, Fig. 13a" */
    const char *gap;                 /* why it differs today, or NULL */
} lab_headline;
int   lab_num_headlines(const lab *L);
const lab_headline *lab_headline_at(const lab *L, int i);
bool  lab_headline_within(const lab_headline *h);
#endif
