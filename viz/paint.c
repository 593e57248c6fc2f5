/* paint: the block-pool renderer's palette and cairo helpers (see
 * viz/render.h for the palette, viz/paint.h for the helpers).  Draws only
 * into the cairo contexts it is given; keeps a small process-wide cache of
 * hatch tiles. */
#include <math.h>
#include <stdio.h>
#include "viz/paint.h"

/* ---- palette -------------------------------------------------------------
 * Okabe-Ito (colour-blind safe), without black: 7 hues.  Ids past the 7th
 * repeat the hues with stripes, and every block carries its owner's label
 * when there is room, so colour is never the only cue. */
static const double PALETTE[7][3] = {
    {0xE6 / 255.0, 0x9F / 255.0, 0x00 / 255.0},  /* orange */
    {0x56 / 255.0, 0xB4 / 255.0, 0xE9 / 255.0},  /* sky blue */
    {0x00 / 255.0, 0x9E / 255.0, 0x73 / 255.0},  /* bluish green */
    {0xCC / 255.0, 0x79 / 255.0, 0xA7 / 255.0},  /* reddish purple */
    {0x00 / 255.0, 0x72 / 255.0, 0xB2 / 255.0},  /* blue */
    {0xD5 / 255.0, 0x5E / 255.0, 0x00 / 255.0},  /* vermillion */
    {0xF0 / 255.0, 0xE4 / 255.0, 0x42 / 255.0},  /* yellow */
};
#define NPAL 7

void viz_owner_rgb(int owner, double rgb[3], bool *striped) {
    if (owner < 0) { viz_free_rgb(rgb); if (striped) *striped = false; return; }
    const double *c = PALETTE[owner % NPAL];
    rgb[0] = c[0]; rgb[1] = c[1]; rgb[2] = c[2];
    if (striped) *striped = (owner / NPAL) % 2 == 1;
}
void viz_free_rgb(double rgb[3])   { rgb[0] = rgb[1] = rgb[2] = 0.90; }
void viz_cached_rgb(double rgb[3]) { rgb[0] = 0.62; rgb[1] = 0.62; rgb[2] = 0.66; }


/* ---- painting helpers ------------------------------------------------------ */
void viz_font(cairo_t *cr, double size, bool bold) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}
double viz_text_w(cairo_t *cr, const char *t) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, t, &e);
    return e.x_advance;
}
double viz_text(cairo_t *cr, double x, double y, const char *t, const double c[3]) {
    viz_set_rgb(cr, c);
    cairo_move_to(cr, x, y);
    cairo_show_text(cr, t);
    return viz_text_w(cr, t);
}
void viz_text_centered(cairo_t *cr, double cx, double cy, const char *t, const double c[3]) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, t, &e);
    viz_set_rgb(cr, c);
    cairo_move_to(cr, cx - e.width / 2 - e.x_bearing, cy - e.height / 2 - e.y_bearing);
    cairo_show_text(cr, t);
}
void viz_rect_path(cairo_t *cr, viz_rect r, double rad) {
    if (rad <= 0.5) { cairo_rectangle(cr, r.x, r.y, r.w, r.h); return; }
    if (rad > r.w / 2) rad = r.w / 2;
    if (rad > r.h / 2) rad = r.h / 2;
    cairo_new_sub_path(cr);
    cairo_arc(cr, r.x + r.w - rad, r.y + rad, rad, -M_PI / 2, 0);
    cairo_arc(cr, r.x + r.w - rad, r.y + r.h - rad, rad, 0, M_PI / 2);
    cairo_arc(cr, r.x + rad, r.y + r.h - rad, rad, M_PI / 2, M_PI);
    cairo_arc(cr, r.x + rad, r.y + rad, rad, M_PI, 3 * M_PI / 2);
    cairo_close_path(cr);
}
/* Hatching on image surfaces: a small repeating tile, cached (stroking every
 * line of every hatched block costs tens of ms at 1024 blocks; a tile fill
 * costs almost nothing).  Bounded cache, kept for the process. */
typedef struct hatch_tile { int n, lw10, rgb; cairo_pattern_t *p; } hatch_tile;
static hatch_tile tiles[32];
static int ntiles;

static cairo_pattern_t *hatch_pattern(double step, double lw, const double c[3]) {
    int n = (int)lround(step < 2 ? 2 : step), lw10 = (int)lround(lw * 10);
    int rgb = ((int)lround(c[0] * 255) << 16) | ((int)lround(c[1] * 255) << 8) | (int)lround(c[2] * 255);
    for (int i = 0; i < ntiles; i++)
        if (tiles[i].n == n && tiles[i].lw10 == lw10 && tiles[i].rgb == rgb) return tiles[i].p;
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, n, n);
    cairo_t *t = cairo_create(sf);
    cairo_set_source_rgb(t, c[0], c[1], c[2]);
    cairo_set_line_width(t, lw);
    for (int k = -1; k <= 1; k++) {   /* the diagonal and its neighbours: seamless */
        cairo_move_to(t, k * n, n);
        cairo_line_to(t, k * n + n, 0);
    }
    cairo_stroke(t);
    cairo_destroy(t);
    cairo_pattern_t *p = cairo_pattern_create_for_surface(sf);
    cairo_surface_destroy(sf);
    cairo_pattern_set_extend(p, CAIRO_EXTEND_REPEAT);
    if (ntiles < (int)(sizeof tiles / sizeof tiles[0])) tiles[ntiles++] = (hatch_tile){ n, lw10, rgb, p };
    else { cairo_pattern_destroy(tiles[0].p); tiles[0] = (hatch_tile){ n, lw10, rgb, p }; }
    return p;
}

/* A tile on raster targets, real lines on vector ones (SVG, PDF stay crisp). */
void viz_hatch(cairo_t *cr, viz_rect r, double step, double lw, const double c[3]) {
    cairo_save(cr);
    if (cairo_surface_get_type(cairo_get_target(cr)) == CAIRO_SURFACE_TYPE_IMAGE) {
        cairo_set_source(cr, hatch_pattern(step, lw, c));
        cairo_rectangle(cr, r.x, r.y, r.w, r.h);
        cairo_fill(cr);
        cairo_restore(cr);
        return;
    }
    cairo_rectangle(cr, r.x, r.y, r.w, r.h);
    cairo_clip(cr);
    viz_set_rgb(cr, c);
    cairo_set_line_width(cr, lw);
    for (double d = -r.h; d < r.w; d += step) {
        cairo_move_to(cr, r.x + d, r.y + r.h);
        cairo_line_to(cr, r.x + d + r.h, r.y);
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}
double viz_chip(cairo_t *cr, double x, double y, double f, int id, const char *extra) {
    char t[48];
    snprintf(t, sizeof t, "s%d%s", id, extra ? extra : "");
    double rgb[3]; bool st;
    viz_owner_rgb(id, rgb, &st);
    double w = viz_text_w(cr, t) + f * 0.7, h = f * 1.3;
    viz_rect r = { x, y - h * 0.78, w, h };
    viz_rect_path(cr, r, f * 0.3);
    viz_set_rgb(cr, rgb);
    cairo_fill(cr);
    if (st) {   /* striped ids: stripes under the text only, so it stays readable */
        double d[3]; viz_mix(d, rgb, INK, 0.45);
        viz_hatch(cr, (viz_rect){ r.x, r.y + r.h * 0.72, r.w, r.h * 0.28 }, f * 0.35, 1.2, d);
    }
    double lum = 0.3 * rgb[0] + 0.59 * rgb[1] + 0.11 * rgb[2];
    viz_text(cr, x + f * 0.35, y, t, lum < 0.5 ? WHITE : INK);
    return w;
}

