/* bias_figure: three panels with cairo (see bias_figure.h). */
#include "labs/bias_figure.h"
#include "viz/export.h"
#include <cairo.h>
#include <cairo-svg.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define FIG_W 1500
#define FIG_H 520

typedef struct box { double x, y, w, h; } box;

static void text(cairo_t *cr, double x, double y, double size, const char *s, double align, int bold) {
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align * e.x_advance, y);
    cairo_show_text(cr, s);
}

static void axes_y(cairo_t *cr, box b, double lo, double hi, double step, const char *fmt) {
    cairo_set_line_width(cr, 1);
    for (double v = ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
        double y = b.y + b.h - (v - lo) / (hi - lo) * b.h;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_move_to(cr, b.x, y); cairo_line_to(cr, b.x + b.w, y); cairo_stroke(cr);
        char t[32]; snprintf(t, sizeof t, fmt, v);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        text(cr, b.x - 6, y + 4, 11, t, 1, 0);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, b.x, b.y, b.w, b.h); cairo_stroke(cr);
}

/* Bars with error bars; names rotated under the axis. */
static void bars(cairo_t *cr, box b, const bias_group *g, int n, const char *title) {
    double lo = 0, hi = 0;
    for (int i = 0; i < n; i++) { lo = fmin(lo, g[i].mean - g[i].std); hi = fmax(hi, g[i].mean + g[i].std); }
    double step = (hi - lo) > 80 ? 20 : (hi - lo) > 30 ? 10 : 5;
    lo = floor(lo / step) * step - (lo < 0 ? 0 : 0); hi = ceil(hi / step) * step;
    if (hi - lo < step) hi = lo + step;
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, b.x + b.w / 2, b.y - 12, 15, title, 0.5, 1);
    axes_y(cr, b, lo, hi, step, "%.0f");
    double y0 = b.y + b.h - (0 - lo) / (hi - lo) * b.h, slot = b.w / (n ? n : 1);
    for (int i = 0; i < n; i++) {
        double x = b.x + i * slot + slot * 0.2, w = slot * 0.6;
        double y = b.y + b.h - (g[i].mean - lo) / (hi - lo) * b.h;
        if (g[i].mean >= 0) cairo_set_source_rgb(cr, 0.20, 0.45, 0.75); else cairo_set_source_rgb(cr, 0.80, 0.35, 0.25);
        cairo_rectangle(cr, x, fmin(y, y0), w, fabs(y - y0)); cairo_fill(cr);
        double ya = b.y + b.h - (g[i].mean + g[i].std - lo) / (hi - lo) * b.h;
        double yb = b.y + b.h - (g[i].mean - g[i].std - lo) / (hi - lo) * b.h;
        cairo_set_source_rgb(cr, 0, 0, 0); cairo_set_line_width(cr, 1.5);
        cairo_move_to(cr, x + w / 2, ya); cairo_line_to(cr, x + w / 2, yb);
        cairo_move_to(cr, x + w * 0.3, ya); cairo_line_to(cr, x + w * 0.7, ya);
        cairo_move_to(cr, x + w * 0.3, yb); cairo_line_to(cr, x + w * 0.7, yb);
        cairo_stroke(cr);
        cairo_save(cr);
        cairo_translate(cr, x + w / 2 + 4, b.y + b.h + 8);
        cairo_rotate(cr, -M_PI / 4);
        text(cr, 0, 0, 11, g[i].name, 1, 0);
        cairo_restore(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0); cairo_set_line_width(cr, 1);
    cairo_move_to(cr, b.x, y0); cairo_line_to(cr, b.x + b.w, y0); cairo_stroke(cr);
}

static void kv_panel(cairo_t *cr, box b, const bias_serving_result *sr) {
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, b.x + b.w / 2, b.y - 12, 15, "KV cache over time (set 1)", 0.5, 1);
    if (!sr || sr->pol[0].npts == 0) { axes_y(cr, b, 0, 100, 20, "%.0f%%"); text(cr, b.x + b.w / 2, b.y + b.h / 2, 13, "no serving simulation", 0.5, 0); return; }
    double tmax = 0;
    for (int p = 0; p < BIAS_NPOL; p++) if (sr->pol[p].npts) tmax = fmax(tmax, sr->pol[p].t[sr->pol[p].npts - 1]);
    if (tmax <= 0) tmax = 1;
    double vmax = 0;                                  /* y range: the data's, in whole 5% steps */
    for (int p = 0; p < BIAS_NPOL; p++)
        for (int i = 0; i < sr->pol[p].npts; i++) vmax = fmax(vmax, sr->pol[p].util[i]);
    double top = fmin(1.0, fmax(0.05, ceil(vmax * 1.15 * 20) / 20)), step = 0.2;
    static const double steps[] = { 0.01, 0.02, 0.05, 0.1, 0.2 };
    for (int i = 4; i >= 0; i--) if (steps[i] >= top / 7) step = steps[i];
    cairo_save(cr);
    axes_y(cr, b, 0, 100 * top, 100 * step, "%.0f%%");
    cairo_restore(cr);
    static const double col[BIAS_NPOL][3] = { { 0.20, 0.45, 0.75 }, { 0.85, 0.45, 0.10 } };
    for (int p = 0; p < BIAS_NPOL; p++) {
        const bias_serving_policy *q = &sr->pol[p];
        for (int k = 0; k < 2; k++) {
            const double *v = k == 0 ? q->util : q->token_share;
            cairo_set_source_rgb(cr, col[p][0], col[p][1], col[p][2]);
            cairo_set_line_width(cr, k == 0 ? 2 : 1.5);
            double dash[1] = { 5 };
            cairo_set_dash(cr, dash, k == 0 ? 0 : 1, 0);
            for (int i = 0; i < q->npts; i++) {
                double x = b.x + q->t[i] / tmax * b.w, y = b.y + b.h - v[i] / top * b.h;
                if (i == 0) cairo_move_to(cr, x, y); else cairo_line_to(cr, x, y);
            }
            cairo_stroke(cr);
            cairo_set_dash(cr, dash, 0, 0);
        }
    }
    char t[160];
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    snprintf(t, sizeof t, "simulated serving time (s), 0 to %.1f", tmax);
    text(cr, b.x + b.w / 2, b.y + b.h + 20, 11, t, 0.5, 0);
    const char *lab[4] = { "paged: held", "paged: token states", "contiguous: held", "contiguous: token states" };
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);          /* the legend over the lines, readable */
    cairo_rectangle(cr, b.x + b.w - 196, b.y + 4, 192, 70);
    cairo_fill(cr);
    for (int i = 0; i < 4; i++) {
        int p = i / 2;
        double y = b.y + 16 + i * 16;
        cairo_set_source_rgb(cr, col[p][0], col[p][1], col[p][2]);
        double dash[1] = { 5 };
        cairo_set_dash(cr, dash, i % 2, 0);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, b.x + b.w - 190, y - 4); cairo_line_to(cr, b.x + b.w - 165, y - 4); cairo_stroke(cr);
        cairo_set_dash(cr, dash, 0, 0);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(cr, b.x + b.w - 160, y, 11, lab[i], 0, 0);
    }
    snprintf(t, sizeof t, "%s x%d, %ld blocks of %d", sr->gpu, sr->tp, sr->num_blocks, sr->block_size);
    text(cr, b.x + 8, b.y + b.h - 8, 11, t, 0, 0);
}

static void draw(cairo_t *cr, const bias_result *r, const bias_serving_result *sr, const char *source) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    char t[240];
    snprintf(t, sizeof t, "Investment bias (%s): bias index %d; bias = (buys - sells) / answers x 100, mean over sets +/- std",
             source && *source ? source : "simulated", r->bias_index);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, 20, 24, 14, t, 0, 0);
    bars(cr, (box){ 60, 70, 520, 320 }, r->sector, r->nsector, "Bias by sector");
    bars(cr, (box){ 650, 70, 220, 320 }, r->size, r->nsize, "Bias by size (Q1 largest)");
    kv_panel(cr, (box){ 960, 70, 510, 320 }, sr);
}

typedef struct fig_ctx { const bias_result *r; const bias_serving_result *sr; const char *source; } fig_ctx;
static void draw_cb(cairo_t *cr, const void *ctx, double w, double h) {
    const fig_ctx *f = ctx;
    (void)w; (void)h;
    draw(cr, f->r, f->sr, f->source);
}

int bias_figure_write(const bias_result *r, const bias_serving_result *sr, const char *source,
                      const char *base, char *err, size_t errlen) {
    char path[4096];
    fig_ctx f = { r, sr, source };
    snprintf(path, sizeof path, "%s.png", base);
    if (viz_export_draw(path, VIZ_FMT_PNG, FIG_W, FIG_H, draw_cb, &f, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s.svg", base);
    return viz_export_draw(path, VIZ_FMT_SVG, FIG_W, FIG_H, draw_cb, &f, err, errlen);
}
