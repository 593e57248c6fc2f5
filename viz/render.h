/* render: the one cairo renderer of a viz_scene.  The window (SDL texture),
 * PNG/SVG/PDF export and the frame dump all call viz_render; the layout it
 * uses is computed by viz_layout_make so that tests and mouse hovering can
 * find a block's rectangle.  Draws only into the cairo context it is given. */
#ifndef VIZ_RENDER_H
#define VIZ_RENDER_H
#include <stdbool.h>
#include <cairo.h>
#include "viz/scene.h"

typedef struct viz_rect { double x, y, w, h; } viz_rect;

/* Where one pool's grid sits. */
typedef struct viz_grid {
    viz_rect panel;          /* the pool's panel (header, grid, counters) */
    viz_rect grid;           /* the block grid */
    int      cols, rows;     /* blocks per row, rows */
    double   cell_w, cell_h; /* pitch of one block */
    double   pad;            /* gap between blocks */
    int      slot_cols, slot_rows; /* slots inside a block */
    bool     slots;          /* per-slot detail drawn */
    bool     labels;         /* block ids and owner labels drawn */
} viz_grid;

typedef struct viz_layout {
    double   width, height;
    double   font;           /* base font size, px */
    viz_rect header;         /* title, step, event */
    viz_grid pool, cmp;      /* cmp used when the scene has a comparison pool */
    viz_rect side;           /* queues, block tables, legend */
} viz_layout;

/* Lays the scene out in a width x height canvas.  Can't fail. */
void viz_layout_make(viz_layout *L, const viz_scene *s, double width, double height);
/* Rectangle of block b of a grid (0 <= b < blocks), of slot k inside it, and of
 * its reference-count badge (drawn only when ref > 1 and labels are on). */
viz_rect viz_layout_block(const viz_grid *g, int b);
viz_rect viz_layout_slot(const viz_grid *g, int b, int k);
viz_rect viz_layout_badge(const viz_grid *g, int b);
/* Which block is at (x, y)?  Returns the block id and sets *which to 0 (pool)
 * or 1 (comparison pool), or -1 when none. */
int  viz_layout_hit(const viz_layout *L, const viz_scene *s, double x, double y, int *which);
/* Draws the whole scene into cr over width x height (device units).  Can't
 * fail (cairo records its own errors in cr). */
void viz_render(cairo_t *cr, const viz_scene *s, double width, double height);
/* Colour of a sequence id (colour-blind-safe palette), components 0..1, and
 * whether its blocks are drawn striped (ids past the palette's length). */
void viz_owner_rgb(int owner, double rgb[3], bool *striped);
/* Colours of plain free blocks, cached free blocks and empty slots. */
void viz_free_rgb(double rgb[3]);
void viz_cached_rgb(double rgb[3]);
#endif
