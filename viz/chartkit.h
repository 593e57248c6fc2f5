/* chartkit: the small drawing vocabulary the lab charts share (viz/xychart.c,
 * viz/barchart.c): fonts and text, and per-series styles that survive
 * black-and-white printing: a colour from the colour-blind-safe palette of
 * viz/render.c, plus a dash pattern and a marker shape (lines) or a hatch
 * pattern (bars), so that series differ without colour.  Draws only into the
 * cairo context it is given. */
#ifndef VIZ_CHARTKIT_H
#define VIZ_CHARTKIT_H
#include <stdbool.h>
#include <cairo.h>

/* Sets the font (DejaVu Sans, or DejaVu Sans Mono when mono) of size px. */
void   viz_ck_font(cairo_t *cr, double size, bool bold, bool mono);
/* Width of t in the current font. */
double viz_ck_text_w(cairo_t *cr, const char *t);
/* Draws t with its baseline at y: align 0 left at x, 0.5 centred, 1 right. */
void   viz_ck_text(cairo_t *cr, double x, double y, const char *t, double align);
/* The dark ink of text and axes. */
void   viz_ck_ink(cairo_t *cr);
/* Series k's colour (components 0..1): dark enough to read as grey in print. */
void   viz_ck_series_rgb(int k, double rgb[3]);
/* Strokes the current path in series k's line style (colour, width, dash). */
void   viz_ck_stroke_series(cairo_t *cr, int k, double width);
/* Draws series k's marker (circle, square, triangle, diamond, cross, ...)
 * centred at (x, y), r its half-size. */
void   viz_ck_marker(cairo_t *cr, int k, double x, double y, double r);
/* Fills a rectangle in series k's bar style: its colour and hatch k (none,
 * diagonal, cross-hatch, horizontal, dots, ...), outlined in ink. */
void   viz_ck_bar(cairo_t *cr, int k, double x, double y, double w, double h);
/* A round tick step for range split into about want parts (1, 2, 5 x 10^n). */
double viz_ck_nice_step(double range, int want);
#endif
