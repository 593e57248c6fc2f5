/* bias_compare_fig: the comparison's figure, {model}_att_compare.png/.svg
 * (see labs/bias_compare.h): KV blocks in use over set 1, measured against
 * simulated, and predicted / measured for each figure.  Draws with cairo
 * through viz/export.h; writes only those two files. */
#include "labs/bias_compare_impl.h"
#include "viz/export.h"
#include <cairo.h>
#include <math.h>
#include <stdio.h>

static void text(cairo_t *cr, double x, double y, double size, const char *s, double align) {
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align * e.x_advance, y);
    cairo_show_text(cr, s);
}

static const double colors[MAX_TRACES][3] = { { 0.20, 0.45, 0.75 }, { 0.85, 0.45, 0.10 }, { 0.3, 0.6, 0.3 }, { 0.5, 0.3, 0.6 } };

/* Left: KV blocks in use over set 1, measured (solid) and simulated (dashed). */
static void draw_blocks(cairo_t *cr, const cmp *c, int n) {
    double bx = 70, by = 60, bw = 560, bh = 330, tmax = 1e-9, vmax = 1;
    for (int i = 0; i < n; i++) {
        const side *s[2] = { &c[i].meas, &c[i].pred };
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < s[k]->npts; j++) { tmax = fmax(tmax, s[k]->t[j]); vmax = fmax(vmax, s[k]->blocks[j]); }
    }
    vmax *= 1.1;
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, bx, by, bw, bh); cairo_stroke(cr);
    char t[200];
    text(cr, bx + bw / 2, by - 10, 14, "KV blocks in use, set 1 (solid: measured, dashed: simulated)", 0.5);
    for (int g = 0; g <= 4; g++) {
        double y = by + bh - g * bh / 4;
        snprintf(t, sizeof t, "%.0f", vmax * g / 4);
        text(cr, bx - 6, y + 4, 11, t, 1);
    }
    snprintf(t, sizeof t, "seconds from the start of the set, 0 to %.1f", tmax);
    text(cr, bx + bw / 2, by + bh + 20, 11, t, 0.5);
    for (int i = 0; i < n; i++) {
        const side *s[2] = { &c[i].meas, &c[i].pred };
        for (int k = 0; k < 2; k++) {
            double dash[1] = { 6 };
            cairo_set_dash(cr, dash, k, 0);
            cairo_set_source_rgb(cr, colors[i][0], colors[i][1], colors[i][2]);
            cairo_set_line_width(cr, 2);
            for (int j = 0; j < s[k]->npts; j++) {
                double x = bx + s[k]->t[j] / tmax * bw, y = by + bh - s[k]->blocks[j] / vmax * bh;
                if (j == 0) cairo_move_to(cr, x, y); else cairo_line_to(cr, x, y);
            }
            cairo_stroke(cr);
            cairo_set_dash(cr, dash, 0, 0);
        }
        cairo_set_source_rgb(cr, colors[i][0], colors[i][1], colors[i][2]);     /* legend, bottom right */
        snprintf(t, sizeof t, "%s (%ld blocks)", c[i].tr->kv_policy, c[i].num_blocks);
        text(cr, bx + bw - 10, by + bh - 10 - 16 * (n - 1 - i), 12, t, 1);
    }
}

/* Right: predicted / measured for each figure, one bar per trace. */
static void draw_ratios(cairo_t *cr, const cmp *c, int n) {
    char t[200];
    static const char *names[] = { "wall time", "tokens/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99",
                                   "peak blocks", "KV util", "token share" };
    enum { NM = 9 };
    double rx = 720, ry = 60, rw = 540, rh = 330, lo = 0, hi = 2;
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, rx + rw / 2, ry - 10, 14, "predicted / measured (1 = exact; band: +/-15%)", 0.5);
    cairo_set_source_rgb(cr, 0.92, 0.95, 0.92);
    cairo_rectangle(cr, rx, ry + rh - (1.15 - lo) / (hi - lo) * rh, rw, 0.30 / (hi - lo) * rh); cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, rx, ry, rw, rh); cairo_stroke(cr);
    for (int g = 0; g <= 4; g++) {
        double v = lo + g * (hi - lo) / 4, y = ry + rh - g * rh / 4;
        snprintf(t, sizeof t, "%.1f", v);
        text(cr, rx - 6, y + 4, 11, t, 1);
    }
    double y1 = ry + rh - (1 - lo) / (hi - lo) * rh;
    cairo_move_to(cr, rx, y1); cairo_line_to(cr, rx + rw, y1); cairo_stroke(cr);
    double slot = rw / NM;
    for (int m = 0; m < NM; m++) {
        for (int i = 0; i < n; i++) {
            const side *p = &c[i].pred, *q = &c[i].meas;
            double a, b;
            switch (m) {
            case 0: a = p->wall_s; b = q->wall_s; break;
            case 1: a = p->tok_per_s; b = q->tok_per_s; break;
            case 2: a = p->ttft.p50; b = q->ttft.p50; break;
            case 3: a = p->ttft.p99; b = q->ttft.p99; break;
            case 4: a = p->tpot.p50; b = q->tpot.p50; break;
            case 5: a = p->tpot.p99; b = q->tpot.p99; break;
            case 6: a = p->peak_blocks; b = q->has_kv ? q->peak_blocks : 0; break;
            case 7: a = p->kv_util; b = q->has_kv ? q->kv_util : 0; break;
            default: a = p->token_share_of_held; b = q->has_kv ? q->token_share_of_held : 0; break;
            }
            if (!(b > 0)) continue;
            double r = fmin(hi, a / b), w = slot * 0.7 / n, x = rx + m * slot + slot * 0.15 + i * w;
            cairo_set_source_rgb(cr, colors[i][0], colors[i][1], colors[i][2]);
            cairo_rectangle(cr, x, ry + rh - (r - lo) / (hi - lo) * rh, w * 0.9, (r - lo) / (hi - lo) * rh);
            cairo_fill(cr);
        }
        cairo_save(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_translate(cr, rx + m * slot + slot / 2 + 4, ry + rh + 10);
        cairo_rotate(cr, -M_PI / 5);
        text(cr, 0, 0, 11, names[m], 1);
        cairo_restore(cr);
    }
}

static void draw(cairo_t *cr, const cmp *c, int n, const char *title) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, 20, 24, 14, title, 0);
    draw_blocks(cr, c, n);
    draw_ratios(cr, c, n);
}

typedef struct fig_ctx { const cmp *c; int n; const char *title; } fig_ctx;
static void draw_cb(cairo_t *cr, const void *ctx, double w, double h) {
    const fig_ctx *f = ctx;
    (void)w; (void)h;
    draw(cr, f->c, f->n, f->title);
}

int bias_cmp_figure(const cmp *c, int n, const char *base, const char *title, char *err, size_t errlen) {
    enum { W = 1300, H = 470 };
    char path[4200];
    fig_ctx f = { c, n, title };
    snprintf(path, sizeof path, "%s.png", base);
    if (viz_export_draw(path, VIZ_FMT_PNG, W, H, draw_cb, &f, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s.svg", base);
    return viz_export_draw(path, VIZ_FMT_SVG, W, H, draw_cb, &f, err, errlen);
}

