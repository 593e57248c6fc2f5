/* render: draws a viz_scene with cairo (see render.h).  Layout first (pure
 * arithmetic, shared with hit testing and the tests), then painting.
 * Scales from 16 blocks (every slot, block ids, owners, badges) to 1024
 * (blocks as fill bars, no per-block text).  Touches only the cairo context. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "viz/render.h"

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

static const double INK[3] = {0.13, 0.13, 0.15};
static const double DIM[3] = {0.40, 0.40, 0.44};
static const double WHITE[3] = {1, 1, 1};

static void set_rgb(cairo_t *cr, const double c[3]) { cairo_set_source_rgb(cr, c[0], c[1], c[2]); }
static void mix(double out[3], const double a[3], const double b[3], double t) {
    for (int i = 0; i < 3; i++) out[i] = a[i] * (1 - t) + b[i] * t;
}

/* ---- layout -------------------------------------------------------------- */

static void slot_shape(int bs, int *sc, int *sr) {
    *sc = bs <= 8 ? bs : 8;
    *sr = (bs + *sc - 1) / *sc;
}

/* Fits n blocks in area a; decides what detail fits. */
static void grid_fit(viz_grid *g, viz_rect a, int n, int bs, double font) {
    slot_shape(bs, &g->slot_cols, &g->slot_rows);
    double ar = (double)g->slot_rows / g->slot_cols;  /* slot area height / width */
    double band = font * 1.35;                          /* label band above slots */
    double best = 0, best_score = 0; int bc = 1;
    bool best_lab = false;
    for (int cols = 1; cols <= n; cols++) {
        int rows = (n + cols - 1) / cols;
        double cw = a.w / cols;
        for (int lab = 1; lab >= 0; lab--) {
            double b = lab ? band : 0;
            /* cell height = (cw * 0.88) * ar + b + margins (0.12 cw) */
            double ch_max = a.h / rows;
            double cwh = (ch_max - b) / (ar * 0.88 + 0.16);
            double c = cw < cwh ? cw : cwh;
            if (c > font * 13) c = font * 13;            /* a block never grows huge */
            if (lab && c < font * 3.6) continue;          /* no room for "#12 s3" */
            /* labels are worth a smaller block (they make colour optional);
             * ties (both capped): the wider grid */
            double score = lab ? c : c * 0.6;
            if (score > best_score + 1e-9 || (score > best_score - 1e-9 && c >= font * 13 - 1e-9)) {
                best_score = score; best = c; bc = cols; best_lab = lab;
            }
        }
    }
    g->cols = bc;
    g->rows = (n + bc - 1) / bc;
    g->labels = best_lab;
    g->cell_w = best;
    g->cell_h = best * (ar * 0.88 + 0.16) + (best_lab ? band : 0);
    g->pad = best * 0.08 > 1 ? best * 0.08 : 1;
    if (g->pad > 8) g->pad = 8;
    if (best < 10) g->pad = best >= 4 ? 1 : 0;
    g->slots = (best * 0.8) / g->slot_cols >= 4.0;
    /* centre the grid horizontally in its area */
    double gw = g->cols * g->cell_w, gh = g->rows * g->cell_h;
    g->grid = (viz_rect){ a.x + (a.w - gw) / 2, a.y, gw, gh };
}

void viz_layout_make(viz_layout *L, const viz_scene *s, double W, double H) {
    memset(L, 0, sizeof *L);
    L->width = W; L->height = H;
    double m = W < H ? W : H;
    L->font = m / 52;
    if (L->font < 10) L->font = 10;
    if (L->font > 15) L->font = 15;
    double f = L->font, M = f * 0.9;
    L->header = (viz_rect){ M, M * 0.6, W - 2 * M, f * 3.2 };
    double top = L->header.y + L->header.h + f * 0.4;
    double side_w = W * 0.27;
    if (side_w < f * 17) side_w = f * 17;
    if (side_w > f * 26) side_w = f * 26;
    if (side_w > W * 0.45) side_w = W * 0.45;
    L->side = (viz_rect){ W - M - side_w, top, side_w, H - top - M };
    double main_w = L->side.x - M - f * 0.8;
    int npanels = s->has_cmp ? 2 : 1;
    double gap = f * 1.2;
    double pw = (main_w - (npanels - 1) * gap) / npanels;
    for (int i = 0; i < npanels; i++) {
        viz_grid *g = i == 0 ? &L->pool : &L->cmp;
        const viz_pool *p = i == 0 ? &s->pool : &s->cmp;
        g->panel = (viz_rect){ M + i * (pw + gap), top, pw, H - top - M };
        viz_rect a = { g->panel.x, g->panel.y + f * 1.8, g->panel.w, g->panel.h - f * 1.8 - f * 3.4 };
        grid_fit(g, a, p->num_blocks > 0 ? p->num_blocks : 1, p->block_size > 0 ? p->block_size : 1, f);
    }
}

viz_rect viz_layout_block(const viz_grid *g, int b) {
    int r = b / g->cols, c = b % g->cols;
    double h = g->pad / 2;
    return (viz_rect){ g->grid.x + c * g->cell_w + h, g->grid.y + r * g->cell_h + h,
                       g->cell_w - g->pad, g->cell_h - g->pad };
}

/* The slot area inside a block rectangle. */
static viz_rect slot_area(const viz_grid *g, viz_rect br) {
    double band = g->labels ? (g->cell_h - g->cell_w * (g->slot_rows * 0.88 / g->slot_cols + 0.16)) : 0;
    double in = br.w * 0.05;
    return (viz_rect){ br.x + in, br.y + band + in, br.w - 2 * in, br.h - band - 2 * in };
}

viz_rect viz_layout_slot(const viz_grid *g, int b, int k) {
    viz_rect a = slot_area(g, viz_layout_block(g, b));
    double sw = a.w / g->slot_cols, sh = a.h / g->slot_rows;
    double gp = sw * 0.12;
    int r = k / g->slot_cols, c = k % g->slot_cols;
    return (viz_rect){ a.x + c * sw + gp / 2, a.y + r * sh + gp / 2, sw - gp, sh - gp };
}

viz_rect viz_layout_badge(const viz_grid *g, int b) {
    viz_rect br = viz_layout_block(g, b);
    double d = g->labels ? g->cell_h - g->cell_w * (g->slot_rows * 0.88 / g->slot_cols + 0.16) : br.w * 0.4;
    if (d > br.w * 0.45) d = br.w * 0.45;
    return (viz_rect){ br.x + br.w - d * 1.05, br.y - d * 0.35, d * 1.3, d };
}

int viz_layout_hit(const viz_layout *L, const viz_scene *s, double x, double y, int *which) {
    for (int i = 0; i < (s->has_cmp ? 2 : 1); i++) {
        const viz_grid *g = i == 0 ? &L->pool : &L->cmp;
        const viz_pool *p = i == 0 ? &s->pool : &s->cmp;
        if (x < g->grid.x || y < g->grid.y || g->cell_w <= 0) continue;
        int c = (int)((x - g->grid.x) / g->cell_w), r = (int)((y - g->grid.y) / g->cell_h);
        if (c >= g->cols || r >= g->rows) continue;
        int b = r * g->cols + c;
        if (b >= p->num_blocks) continue;
        if (which) *which = i;
        return b;
    }
    return -1;
}

/* ---- painting helpers ------------------------------------------------------ */

static void font(cairo_t *cr, double size, bool bold) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}
static double text_w(cairo_t *cr, const char *t) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, t, &e);
    return e.x_advance;
}
/* Text with its left baseline at (x, y); returns the advance. */
static double text(cairo_t *cr, double x, double y, const char *t, const double c[3]) {
    set_rgb(cr, c);
    cairo_move_to(cr, x, y);
    cairo_show_text(cr, t);
    return text_w(cr, t);
}
static void text_centered(cairo_t *cr, double cx, double cy, const char *t, const double c[3]) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, t, &e);
    set_rgb(cr, c);
    cairo_move_to(cr, cx - e.width / 2 - e.x_bearing, cy - e.height / 2 - e.y_bearing);
    cairo_show_text(cr, t);
}
static void rect_path(cairo_t *cr, viz_rect r, double rad) {
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

/* Diagonal hatching clipped to r: a tile on raster targets, real lines on
 * vector ones (SVG, PDF stay crisp). */
static void hatch(cairo_t *cr, viz_rect r, double step, double lw, const double c[3]) {
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
    set_rgb(cr, c);
    cairo_set_line_width(cr, lw);
    for (double d = -r.h; d < r.w; d += step) {
        cairo_move_to(cr, r.x + d, r.y + r.h);
        cairo_line_to(cr, r.x + d + r.h, r.y);
    }
    cairo_stroke(cr);
    cairo_restore(cr);
}
/* A small coloured chip "sN" (sequence); returns its width. */
static double chip(cairo_t *cr, double x, double y, double f, int id, const char *extra) {
    char t[48];
    snprintf(t, sizeof t, "s%d%s", id, extra ? extra : "");
    double rgb[3]; bool st;
    viz_owner_rgb(id, rgb, &st);
    double w = text_w(cr, t) + f * 0.7, h = f * 1.3;
    viz_rect r = { x, y - h * 0.78, w, h };
    rect_path(cr, r, f * 0.3);
    set_rgb(cr, rgb);
    cairo_fill(cr);
    if (st) {   /* striped ids: stripes under the text only, so it stays readable */
        double d[3]; mix(d, rgb, INK, 0.45);
        hatch(cr, (viz_rect){ r.x, r.y + r.h * 0.72, r.w, r.h * 0.28 }, f * 0.35, 1.2, d);
    }
    double lum = 0.3 * rgb[0] + 0.59 * rgb[1] + 0.11 * rgb[2];
    text(cr, x + f * 0.35, y, t, lum < 0.5 ? WHITE : INK);
    return w;
}

/* ---- one block ------------------------------------------------------------ */

static void draw_block(cairo_t *cr, const viz_grid *g, const viz_pool *p, int b, double f) {
    const viz_block *k = &p->blocks[b];
    viz_rect br = viz_layout_block(g, b);
    bool held = k->ref > 0 || k->reserved;
    double col[3], light[3], dark[3];
    bool striped = false;
    if (held) {
        viz_owner_rgb(k->owner, col, &striped);
        mix(light, col, WHITE, 0.72);
        mix(dark, col, INK, 0.45);
    } else if (k->cached) {
        viz_cached_rgb(col);
        mix(light, col, WHITE, 0.55);
        mix(dark, col, INK, 0.5);
    } else {
        viz_free_rgb(col);
        mix(light, col, WHITE, 0.0);
        mix(dark, col, INK, 0.25);
    }
    double rad = g->slots ? br.w * 0.06 : 0;
    /* body */
    rect_path(cr, br, rad);
    set_rgb(cr, light);
    cairo_fill(cr);
    if (k->cached && !held && g->slots) hatch(cr, br, br.w / 9, 1.2, col);
    else if (k->cached && !held) {   /* small: a solid mid grey, unlike plain free */
        rect_path(cr, br, rad); set_rgb(cr, col); cairo_fill(cr);
    }
    if (!g->slots) {
        /* compact: the fill bar is the share of slots holding tokens */
        if (held && p->block_size > 0) {
            double fr = (double)k->tokens / p->block_size;
            viz_rect bar = { br.x, br.y, br.w * fr, br.h };
            set_rgb(cr, col);
            cairo_rectangle(cr, bar.x, bar.y, bar.w, bar.h);
            cairo_fill(cr);
            if (striped) {   /* ids past the palette: two-tone (cheaper than stripes here) */
                set_rgb(cr, dark);
                cairo_rectangle(cr, bar.x, bar.y + bar.h * 0.62, bar.w, bar.h * 0.38);
                cairo_fill(cr);
            }
            if (k->reserved && k->tokens < p->block_size) {
                viz_rect rest = { br.x + bar.w, br.y, br.w - bar.w, br.h };
                hatch(cr, rest, 3, 0.8, col);
            }
        }
        if (k->ref > 1) {   /* shared: a dark corner triangle */
            double d = br.w * 0.5 < br.h * 0.6 ? br.w * 0.5 : br.h * 0.6;
            set_rgb(cr, INK);
            cairo_move_to(cr, br.x + br.w - d, br.y);
            cairo_line_to(cr, br.x + br.w, br.y);
            cairo_line_to(cr, br.x + br.w, br.y + d);
            cairo_close_path(cr);
            cairo_fill(cr);
        }
        return;
    }
    /* outline: dashed for cached prefix blocks, thick for shared ones */
    rect_path(cr, br, rad);
    set_rgb(cr, dark);
    cairo_set_line_width(cr, k->ref > 1 ? 2.5 : 1.0);
    if (k->cached && !held) { double d[2] = {4, 3}; cairo_set_dash(cr, d, 2, 0); cairo_set_line_width(cr, 1.5); }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    /* slots */
    for (int s = 0; s < p->block_size; s++) {
        viz_rect sr = viz_layout_slot(g, b, s);
        rect_path(cr, sr, sr.w * 0.15);
        if (held && s < k->tokens) {
            set_rgb(cr, col);
            cairo_fill_preserve(cr);
            if (striped) { cairo_new_path(cr); hatch(cr, sr, sr.w / 3, 1.2, dark); rect_path(cr, sr, sr.w * 0.15); }
            set_rgb(cr, dark);
            cairo_set_line_width(cr, 1);
            cairo_stroke(cr);
        } else {
            set_rgb(cr, WHITE);
            cairo_fill_preserve(cr);
            set_rgb(cr, held ? col : dark);
            cairo_set_line_width(cr, 1);
            cairo_stroke(cr);
            if (held && k->reserved) hatch(cr, sr, sr.w / 3.5, 1, col);
        }
    }
    /* labels: block id left, owner (or "cached") right */
    if (g->labels) {
        double band = g->cell_h - g->cell_w * (g->slot_rows * 0.88 / g->slot_cols + 0.16);
        double fs = band * 0.62;
        if (fs > f) fs = f;
        char t[32];
        font(cr, fs, false);
        snprintf(t, sizeof t, "#%d", b);
        double y = br.y + band * 0.78;
        double left_end = br.x + br.w * 0.05 + text(cr, br.x + br.w * 0.05, y, t, DIM);
        if (held && k->owner >= 0) {
            font(cr, fs, true);
            snprintf(t, sizeof t, "s%d", k->owner);
        } else if (k->cached) {
            snprintf(t, sizeof t, "cached");
        } else t[0] = 0;
        double tw = text_w(cr, t);
        double right = br.x + br.w - br.w * 0.05 - (k->ref > 1 ? viz_layout_badge(g, b).w : 0);
        if (t[0] && right - tw > left_end + fs * 0.4)   /* only where it does not touch the id */
            text(cr, right - tw, y, t, held ? dark : DIM);
    }
    if (k->ref > 1 && g->labels) {
        viz_rect bd = viz_layout_badge(g, b);
        rect_path(cr, bd, bd.h / 2);
        set_rgb(cr, INK);
        cairo_fill_preserve(cr);
        set_rgb(cr, WHITE);
        cairo_set_line_width(cr, 1.5);
        cairo_stroke(cr);
        char t[16];
        snprintf(t, sizeof t, "x%d", k->ref);
        font(cr, bd.h * 0.62, true);
        text_centered(cr, bd.x + bd.w / 2, bd.y + bd.h / 2, t, WHITE);
    } else if (k->ref > 1) {
        double d = br.w * 0.35;
        set_rgb(cr, INK);
        cairo_move_to(cr, br.x + br.w - d, br.y);
        cairo_line_to(cr, br.x + br.w, br.y);
        cairo_line_to(cr, br.x + br.w, br.y + d);
        cairo_close_path(cr);
        cairo_fill(cr);
    }
}

/* ---- panels --------------------------------------------------------------- */

/* A small area chart: share of the pool held (light) and holding tokens
 * (dark), one column per step so far. */
static void history(cairo_t *cr, const viz_pool *p, viz_rect r, double f) {
    char t[64];
    font(cr, f * 0.85, true);
    double lx = r.x + text(cr, r.x, r.y + f * 0.9, "the pool over the steps", INK) + f * 1.2;
    font(cr, f * 0.8, false);
    double held_c[3], tok_c[3];
    viz_owner_rgb(4, tok_c, NULL);
    mix(held_c, tok_c, WHITE, 0.65);
    cairo_rectangle(cr, lx, r.y + f * 0.15, f, f * 0.8); set_rgb(cr, held_c); cairo_fill(cr);
    lx += f * 1.3 + text(cr, lx + f * 1.3, r.y + f * 0.9, "blocks held", DIM);
    lx += f * 1.0;
    cairo_rectangle(cr, lx, r.y + f * 0.15, f, f * 0.8); set_rgb(cr, tok_c); cairo_fill(cr);
    text(cr, lx + f * 1.3, r.y + f * 0.9, "slots holding tokens", DIM);
    viz_rect a = { r.x + f * 2.8, r.y + f * 1.6, r.w - f * 2.8, r.h - f * 2.6 };
    if (a.w < 20 || a.h < 10) return;
    cairo_rectangle(cr, a.x, a.y, a.w, a.h);
    cairo_set_source_rgb(cr, 0.97, 0.97, 0.98);
    cairo_fill_preserve(cr);
    set_rgb(cr, DIM);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    int n = p->hist_n;
    double dx = a.w / (n > 1 ? n - 1 : 1);
    for (int k = 0; k < 2; k++) {
        const float *v = k == 0 ? p->hist_held : p->hist_tokens;
        cairo_move_to(cr, a.x, a.y + a.h);
        for (int i = 0; i < n; i++) {
            double y = v[i] < 0 ? 0 : v[i] > 1 ? 1 : v[i];
            cairo_line_to(cr, a.x + i * dx, a.y + a.h - y * a.h);
        }
        cairo_line_to(cr, a.x + (n - 1) * dx, a.y + a.h);
        cairo_close_path(cr);
        set_rgb(cr, k == 0 ? held_c : tok_c);
        cairo_fill(cr);
    }
    font(cr, f * 0.75, false);
    text(cr, r.x, a.y + f * 0.6, "100%", DIM);
    text(cr, r.x + f * 1.2, a.y + a.h, "0", DIM);
    snprintf(t, sizeof t, "step %d", n - 1);
    text(cr, a.x + a.w - text_w(cr, t), a.y + a.h + f * 0.95, t, DIM);
}

static void draw_pool(cairo_t *cr, const viz_grid *g, const viz_pool *p, double f, bool main) {
    char t[160];
    font(cr, f * 1.1, true);
    double x = g->panel.x, y = g->panel.y + f * 1.15;
    snprintf(t, sizeof t, "%s", p->policy);
    x += text(cr, x, y, t, INK);
    font(cr, f * 0.9, false);
    int k = snprintf(t, sizeof t, "   %d blocks x %d slots   running %d  waiting %d", p->num_blocks,
                     p->block_size, p->queue_len[VIZ_Q_RUNNING], p->queue_len[VIZ_Q_WAITING]);
    if (!main && p->c.time_s > 0)   /* the baseline keeps its own clock */
        snprintf(t + k, sizeof t - (size_t)k, "   t = %.3f s", p->c.time_s);
    /* a narrow panel (two pools side by side): a smaller font, never over the neighbour */
    for (double sz = f * 0.9; text_w(cr, t) > g->panel.x + g->panel.w - x && sz > f * 0.55; sz *= 0.93)
        font(cr, sz, false);
    text(cr, x, y, t, DIM);
    /* small blocks: no antialiasing (pixel-aligned fills take pixman's fast path) */
    if (!g->slots) cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    for (int b = 0; b < p->num_blocks; b++) draw_block(cr, g, p, b, f);
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_DEFAULT);
    /* counters under the grid */
    const viz_counters *c = &p->c;
    double cy = g->grid.y + g->grid.h + f * 1.5;
    double max_cy = g->panel.y + g->panel.h - f * 1.7;
    if (cy > max_cy) cy = max_cy;
    font(cr, f * 0.95, false);
    snprintf(t, sizeof t, "blocks used %d/%d   cached %d   tokens held %ld",
             c->blocks_used, c->blocks_total, c->blocks_cached, c->tokens_held);
    text(cr, g->panel.x, cy, t, INK);
    if (c->reserved_slots > 0)
        snprintf(t, sizeof t, "utilization %.1f%%   reserved %ld   internal frag %ld slots",
                 c->utilization * 100, c->reserved_slots, c->internal_frag);
    else
        snprintf(t, sizeof t, "utilization %.1f%%   internal frag %ld slots   ext %ld",
                 c->utilization * 100, c->internal_frag, c->external_frag);
    text(cr, g->panel.x, cy + f * 1.35, t, INK);
    /* the pool over time, where there is room under the counters */
    double top = cy + f * 2.6, room = g->panel.y + g->panel.h - top;
    if (room >= f * 7 && p->hist_n >= 2) history(cr, p, (viz_rect){ g->panel.x, top, g->panel.w * 0.9,
                                                                      room > f * 12 ? f * 12 : room }, f);
}

/* Chips of a queue on one or more lines; returns the y after them. */
static double draw_queue(cairo_t *cr, const viz_pool *p, viz_queue q, double x, double y,
                         double w, double f, int max_lines) {
    char t[48];
    font(cr, f * 0.95, true);
    snprintf(t, sizeof t, "%s (%d)", viz_queue_name(q), p->queue_len[q]);
    text(cr, x, y, t, INK);
    y += f * 1.45;
    font(cr, f * 0.85, false);
    double cx = x + f * 0.5;
    int lines = 1;
    if (p->queue_len[q] == 0) { text(cr, cx, y, "-", DIM); return y + f * 1.5; }
    for (int i = 0; i < p->queue_len[q]; i++) {
        snprintf(t, sizeof t, "s%d", p->queue[q][i]);
        double cw = text_w(cr, t) + f * 1.1;
        double more_w = lines == max_lines && i < p->queue_len[q] - 1 ? text_w(cr, "+9999 more") : 0;
        if (cx + cw + more_w > x + w) {
            if (lines == max_lines) {
                snprintf(t, sizeof t, "+%d more", p->queue_len[q] - i);
                text(cr, cx, y, t, DIM);
                break;
            }
            lines++; cx = x + f * 0.5; y += f * 1.5;
        }
        cx += chip(cr, cx, y, f * 0.85, p->queue[q][i], NULL) + f * 0.3;
    }
    return y + f * 1.6;
}

/* Block tables of the live sequences: "s3  9 tok  [5][2][7]". */
static double draw_tables(cairo_t *cr, const viz_pool *p, double x, double y, double w,
                          double ymax, double f) {
    char t[64];
    font(cr, f * 0.95, true);
    bool resv = strcmp(p->policy, "paged") != 0;
    text(cr, x, y, resv ? "reservations (slot ranges)" : "block tables (logical -> physical)", INK);
    y += f * 1.5;
    double rh = f * 1.45;
    int shown = 0;
    for (int i = 0; i < p->num_seqs; i++) {
        const viz_seq *s = &p->seqs[i];
        if (y + rh > ymax) {
            font(cr, f * 0.85, false);
            snprintf(t, sizeof t, "+%d more sequences", p->num_seqs - shown);
            text(cr, x, y, t, DIM);
            return y + rh;
        }
        font(cr, f * 0.85, false);
        double cx = x + chip(cr, x, y, f * 0.85, s->id, s->queue == VIZ_Q_SWAPPED ? " (cpu)" : NULL) + f * 0.4;
        snprintf(t, sizeof t, "%d tok", s->num_tokens);
        cx += text(cr, cx, y, t, DIM) + f * 0.5;
        if (resv) {
            if (s->resv_len > 0)
                snprintf(t, sizeof t, "slots %ld-%ld", s->resv_start, s->resv_start + s->resv_len - 1);
            else snprintf(t, sizeof t, "-");
            text(cr, cx, y, t, INK);
        } else {
            font(cr, f * 0.78, false);
            for (int j = 0; j < s->num_blocks; j++) {
                if (s->table[j] >= 0) snprintf(t, sizeof t, "%d", s->table[j]);
                else snprintf(t, sizeof t, "c%d", -s->table[j] - 1);   /* swapped: a CPU block */
                double bw = text_w(cr, t) + f * 0.5;
                if (bw < f * 1.4) bw = f * 1.4;
                if (cx + bw > x + w - f * 1.2 && j < s->num_blocks - 1) {
                    text(cr, cx, y, "...", DIM);
                    break;
                }
                viz_rect r = { cx, y - f * 0.95, bw, f * 1.25 };
                int blk = s->table[j];
                bool shared = blk >= 0 && blk < p->num_blocks && p->blocks[blk].ref > 1;
                cairo_rectangle(cr, r.x, r.y, r.w, r.h);
                set_rgb(cr, WHITE);
                cairo_fill_preserve(cr);
                set_rgb(cr, shared ? INK : DIM);
                cairo_set_line_width(cr, shared ? 2 : 1);
                cairo_stroke(cr);
                text_centered(cr, r.x + r.w / 2, r.y + r.h / 2, t, INK);
                cx += bw + f * 0.15;
            }
        }
        y += rh;
        shown++;
    }
    if (p->num_seqs == 0) { font(cr, f * 0.85, false); text(cr, x, y, "-", DIM); y += rh; }
    return y;
}

/* Legend swatch + text on one line. */
static void legend_row(cairo_t *cr, double x, double y, double f, int kind, const char *label) {
    viz_rect r = { x, y - f * 0.9, f * 1.6, f * 1.1 };
    double c[3], d[3];
    switch (kind) {
    case 0: viz_owner_rgb(0, c, NULL); mix(d, c, INK, 0.45);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); set_rgb(cr, c); cairo_fill_preserve(cr);
            set_rgb(cr, d); cairo_set_line_width(cr, 1); cairo_stroke(cr); break;
    case 1: viz_owner_rgb(0, c, NULL);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); set_rgb(cr, WHITE); cairo_fill_preserve(cr);
            set_rgb(cr, c); cairo_set_line_width(cr, 1); cairo_stroke(cr); break;
    case 2: viz_free_rgb(c); mix(d, c, INK, 0.25);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); set_rgb(cr, c); cairo_fill_preserve(cr);
            set_rgb(cr, d); cairo_set_line_width(cr, 1); cairo_stroke(cr); break;
    case 3: { viz_cached_rgb(c); mix(d, c, WHITE, 0.55);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); set_rgb(cr, d); cairo_fill(cr);
            hatch(cr, r, 4, 1.2, c);
            double dash[2] = {3, 2}; cairo_set_dash(cr, dash, 2, 0);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); mix(d, c, INK, 0.5); set_rgb(cr, d);
            cairo_stroke(cr); cairo_set_dash(cr, NULL, 0, 0); break; }
    case 4: rect_path(cr, r, r.h / 2); set_rgb(cr, INK); cairo_fill(cr);
            font(cr, f * 0.7, true); text_centered(cr, r.x + r.w / 2, r.y + r.h / 2, "x2", WHITE); break;
    case 5: viz_owner_rgb(0, c, NULL);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); set_rgb(cr, WHITE); cairo_fill(cr);
            hatch(cr, r, 3.5, 1, c);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); set_rgb(cr, c); cairo_stroke(cr); break;
    }
    font(cr, f * 0.85, false);
    text(cr, x + f * 2.1, y, label, INK);
}

static void draw_side(cairo_t *cr, const viz_layout *L, const viz_scene *s) {
    double f = L->font, x = L->side.x, w = L->side.w;
    const viz_pool *p = &s->pool;
    bool resv = s->has_cmp || strcmp(p->policy, "paged") != 0;
    int legend_n = resv ? 6 : 5;
    double legend_h = f * 1.5 + legend_n * f * 1.45;
    double y = L->side.y + f * 0.9;
    /* a light background panel */
    cairo_rectangle(cr, L->side.x - f * 0.5, L->side.y - f * 0.2, L->side.w + f * 0.5, L->side.h + f * 0.2);
    cairo_set_source_rgb(cr, 0.965, 0.965, 0.975);
    cairo_fill(cr);
    for (int q = 0; q < VIZ_Q_N; q++) y = draw_queue(cr, p, (viz_queue)q, x, y, w - f * 0.5, f, 2);
    y += f * 0.3;
    double ymax = L->side.y + L->side.h - legend_h - f * 0.5;
    draw_tables(cr, p, x, y, w - f * 0.2, ymax, f);
    /* legend at the bottom */
    double ly = L->side.y + L->side.h - legend_h + f * 0.9;
    font(cr, f * 0.95, true);
    text(cr, x, ly, "legend", INK);
    ly += f * 1.5;
    bool compact = !L->pool.slots;
    legend_row(cr, x, ly, f, 0, compact ? "bar: share of a block's slots with tokens"
                                        : "slot holding a token (colour, label = seq)"); ly += f * 1.45;
    legend_row(cr, x, ly, f, 1, "empty slot of a held block"); ly += f * 1.45;
    legend_row(cr, x, ly, f, 2, "free block"); ly += f * 1.45;
    legend_row(cr, x, ly, f, 3, "free, prefix still cached"); ly += f * 1.45;
    legend_row(cr, x, ly, f, 4, compact ? "shared block (dark corner when small)" : "shared block: ref count"); ly += f * 1.45;
    if (resv) legend_row(cr, x, ly, f, 5, "reserved, not yet used (waste)");
}

static void draw_header(cairo_t *cr, const viz_layout *L, const viz_scene *s) {
    double f = L->font;
    char t[96];
    font(cr, f * 1.35, true);
    double y = L->header.y + f * 1.35;
    text(cr, L->header.x, y, s->title[0] ? s->title : "pagesim", INK);
    if (s->time_s >= 0) snprintf(t, sizeof t, "step %d   t = %.3f s", s->step, s->time_s);
    else snprintf(t, sizeof t, "step %d", s->step);
    font(cr, f * 1.35, true);
    text(cr, L->header.x + L->header.w - text_w(cr, t), y, t, INK);
    font(cr, f * 1.0, false);
    /* the event line, cut to the width */
    char ev[sizeof s->event];
    snprintf(ev, sizeof ev, "%s", s->event);
    size_t n = strlen(ev);
    while (n > 3 && text_w(cr, ev) > L->header.w) { n--; ev[n] = 0; ev[n - 1] = ev[n - 2] = '.'; }
    text(cr, L->header.x, y + f * 1.55, ev, DIM);
}

void viz_render(cairo_t *cr, const viz_scene *s, double W, double H) {
    viz_layout L;
    viz_layout_make(&L, s, W, H);
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    draw_header(cr, &L, s);
    draw_pool(cr, &L.pool, &s->pool, L.font, true);
    if (s->has_cmp) {
        /* a thin divider between the two pools */
        double x = L.cmp.panel.x - L.font * 0.6;
        cairo_move_to(cr, x, L.cmp.panel.y);
        cairo_line_to(cr, x, L.cmp.panel.y + L.cmp.panel.h);
        cairo_set_source_rgb(cr, 0.8, 0.8, 0.82);
        cairo_set_line_width(cr, 1);
        cairo_stroke(cr);
        draw_pool(cr, &L.cmp, &s->cmp, L.font, false);
    }
    draw_side(cr, &L, s);
    cairo_restore(cr);
}
