/* lab_real_sheet: a lab's --real results on its worksheet.  A view is a few
 * quantities (panels: requests at once, tokens per second, memory saved ...)
 * for a few runs or settings (categories: paged and contiguous, n = 2, 4,
 * 6 ...), each simulated on the same requests and settings (lab_real_simulate)
 * beside measured on the GPU, and optionally the lab's own simulated value
 * where it is comparable.  lab_real_view_table and lab_real_view_figure put
 * the view into the lab as a data table (on the worksheet) and a figure of
 * grouped bars, one panel per quantity; lab_real_runs_table keeps every
 * number of every run (CSV and data.json).  The view must live as long as the lab (the figure draws from
 * it): keep it in the lab's result.  Draws with viz/; touches no file. */
#ifndef LAB_REAL_SHEET_H
#define LAB_REAL_SHEET_H
#include "labs/lab_content.h"
#include "labs/lab_real.h"

enum { LAB_RV_CATS = 8, LAB_RV_PANELS = 3 };

typedef struct lab_real_view {
    int         ncat, npanel;
    const char *cat[LAB_RV_CATS];             /* the runs or settings compared */
    const char *key[LAB_RV_CATS];             /* their table keys (NULL: cat) */
    const char *panel[LAB_RV_PANELS];         /* each panel's title */
    const char *unit[LAB_RV_PANELS];          /* its y label */
    const char *col[LAB_RV_PANELS];           /* its table columns' stem ("at_once": at_once_sim, _gpu) */
    const char *fmt[LAB_RV_PANELS];           /* printf format of its bar values ("%.1f") */
    double      ymax[LAB_RV_PANELS];          /* its y axis's top (0: above the data) */
    double      sim[LAB_RV_PANELS][LAB_RV_CATS];   /* simulated: the same requests and settings */
    double      gpu[LAB_RV_PANELS][LAB_RV_CATS];   /* measured on the GPU */
    double      ref[LAB_RV_PANELS][LAB_RV_CATS];   /* the lab's own simulation (NAN: not comparable) */
    const char *ref_label;                    /* the ticks' legend ("this lab's simulation") */
    /* the figure's data, set by lab_real_view_add */
    double      bars[LAB_RV_PANELS][2 * LAB_RV_CATS];
    const char *series[2];
    bool        has_ref[LAB_RV_PANELS];
} lab_real_view;

/* Clears v: no categories or panels, every ref NAN. */
void lab_real_view_init(lab_real_view *v);
/* Adds v's table (name.csv: key, then per panel <col>_sim, <col>_gpu and,
 * where a panel has refs, <col>_lab; printed on the worksheet).  0, or -1
 * with err. */
int  lab_real_view_table(lab *L, lab_real_view *v, const char *name, const char *caption, char *err, size_t errlen);
/* Adds v's figure (name.png/.svg): a panel of grouped bars per quantity,
 * simulated beside measured for each run, the refs as ticks.  Call it from
 * the figures callback, after the lab's own figures.  0, or -1 with err. */
int  lab_real_view_figure(lab *L, lab_real_view *v, const char *name, const char *caption, const char *look_at,
                          char *err, size_t errlen);
/* Every run's numbers (name.csv, not on the worksheet): two rows per run,
 * "<key> gpu" (measured) and "<key> sim" (simulated).  0, or -1 with err. */
int  lab_real_runs_table(lab *L, const char *name, int n, const char *const *keys, const lab_real_meas *gpu,
                         const lab_real_meas *sim, char *err, size_t errlen);
/* "NVIDIA H200, CUDA engine: Qwen3-0.6B's shape, random weights" as the
 * narrative and captions say where a measurement ran (owned by L). */
const char *lab_real_where(lab *L, const lab_real_meas *gpu);
#endif
