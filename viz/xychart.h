/* xychart: a line chart of a few series over a shared x axis (linear or
 * powers of two), with reference lines, drawn into any rectangle of a cairo
 * context, for the classroom labs' figures.  Series differ by colour, dash
 * and marker, so the chart reads in black-and-white print; the legend sits
 * under the plot, where it cannot cover a line.  Draws only into cr. */
#ifndef VIZ_XYCHART_H
#define VIZ_XYCHART_H
#include <stdbool.h>
#include <cairo.h>

typedef struct viz_xy_series {
    const char   *label;         /* legend text */
    const double *x, *y;         /* (n,) points, x increasing */
    int           n;
    bool          values;        /* write each point's y beside it (value_format) */
    bool          values_below;  /* ... under the point instead of above it */
} viz_xy_series;

typedef struct viz_xy_mark {     /* a reference line across the plot */
    double      at;              /* x (vertical) or y (horizontal) */
    bool        vertical;
    const char *label;           /* written along the line, at its end ... */
    bool        label_start;     /* ... or at its start (left / bottom) */
} viz_xy_mark;

typedef struct viz_xy_chart {
    const char *title;           /* bold, above the plot; NULL = none */
    const char *x_label, *y_label;
    const viz_xy_series *series; /* (nseries,) */
    int         nseries;
    const viz_xy_mark *marks;    /* (nmarks,) may be NULL */
    int         nmarks;
    bool        log2_x;          /* x in powers of two, a tick at each */
    double      y_min, y_max;    /* both 0: 0 .. a round number above the data */
    const char *y_format;        /* printf format of the y ticks ("%g") */
    const char *value_format;    /* ... of the point values (NULL: y_format) */
} viz_xy_chart;

/* Draws c into the rectangle (x, y, w, h) of cr (font size from the
 * rectangle; about 300 x 200 at least).  Can't fail. */
void viz_xy_draw(cairo_t *cr, const viz_xy_chart *c, double x, double y, double w, double h);
#endif
