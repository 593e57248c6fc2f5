/* barchart: vertical bars for the lab figures: one group per category (a
 * policy, a configuration), one bar per series inside it, or the series
 * stacked into one bar; each bar's value written on or above it, and an
 * optional published value per category marked with a tick.  Bars differ by
 * colour and hatch (viz/chartkit.h), so the chart reads in black-and-white
 * print.  Draws only into the cairo context it is given. */
#ifndef VIZ_BARCHART_H
#define VIZ_BARCHART_H
#include <stdbool.h>
#include <cairo.h>

typedef struct viz_bar_chart {
    const char *title;               /* bold, above the plot; NULL = none */
    const char *y_label;
    const char *const *categories;   /* (ncats,) x-axis groups */
    int         ncats;
    const char *const *series;       /* (nseries,) legend entries; NULL with one series */
    int         nseries;
    const double *values;            /* (ncats, nseries) row-major; NAN = no bar */
    bool        stacked;             /* one bar per category, series stacked */
    const double *refs;              /* (ncats,) a value to mark per category (NAN = none), or NULL */
    const char *ref_label;           /* legend text of the marks ("the paper") */
    const char *value_format;        /* printf format of bar values ("%g"); "" = none */
    double      y_max;               /* 0: a round number above the data */
} viz_bar_chart;

/* Draws c into the rectangle (x, y, w, h) of cr.  Can't fail. */
void viz_bar_draw(cairo_t *cr, const viz_bar_chart *c, double x, double y, double w, double h);
#endif
