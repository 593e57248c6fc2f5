/* paint.h: the cairo helpers the block-pool renderer's files share (private
 * to viz/render.c, viz/render_block.c and viz/paint.c): the ink colours,
 * text, rounded rectangles, hatching, sequence chips, and one block. */
#ifndef VIZ_PAINT_H
#define VIZ_PAINT_H
#include <stdbool.h>
#include <cairo.h>
#include "viz/render.h"

static const double INK[3] = {0.13, 0.13, 0.15};
static const double DIM[3] = {0.40, 0.40, 0.44};
static const double WHITE[3] = {1, 1, 1};

static inline void viz_set_rgb(cairo_t *cr, const double c[3]) { cairo_set_source_rgb(cr, c[0], c[1], c[2]); }
/* out = a * (1 - t) + b * t */
static inline void viz_mix(double out[3], const double a[3], const double b[3], double t) {
    for (int i = 0; i < 3; i++) out[i] = a[i] * (1 - t) + b[i] * t;
}
/* The renderer's font at size px (bold or not). */
void   viz_font(cairo_t *cr, double size, bool bold);
/* Advance of t in the current font. */
double viz_text_w(cairo_t *cr, const char *t);
/* Text with its left baseline at (x, y); returns the advance. */
double viz_text(cairo_t *cr, double x, double y, const char *t, const double c[3]);
/* Text centred on (cx, cy). */
void   viz_text_centered(cairo_t *cr, double cx, double cy, const char *t, const double c[3]);
/* The path of r with corners of radius rad (square below half a pixel). */
void   viz_rect_path(cairo_t *cr, viz_rect r, double rad);
/* Diagonal hatching clipped to r (step apart, lw wide, colour c). */
void   viz_hatch(cairo_t *cr, viz_rect r, double step, double lw, const double c[3]);
/* A small coloured chip "sN" (sequence id, then extra) at (x, y); returns its width. */
double viz_chip(cairo_t *cr, double x, double y, double f, int id, const char *extra);
/* Block b of pool p in grid g, font size f (viz/render_block.c). */
void   viz_draw_block(cairo_t *cr, const viz_grid *g, const viz_pool *p, int b, double f);
#endif
