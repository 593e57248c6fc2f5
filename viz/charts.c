/* charts: utilization/waste over time and the waste bars (see charts.h).
 * Drawn with cairo through viz_export_draw, so PNG, SVG and PDF come from
 * the same code.  Touches only the output file. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "viz/charts.h"
#include "viz/export.h"
#include "viz/render.h"

/* Waste categories: colour-blind-safe hues, and a hatch on the waste ones. */
static const double CAT[4][3] = {
    {0x00 / 255.0, 0x9E / 255.0, 0x73 / 255.0},  /* token states: bluish green */
    {0xE6 / 255.0, 0x9F / 255.0, 0x00 / 255.0},  /* reservation: orange */
    {0xD5 / 255.0, 0x5E / 255.0, 0x00 / 255.0},  /* internal fragmentation: vermillion */
    {0xCC / 255.0, 0x79 / 255.0, 0xA7 / 255.0},  /* external fragmentation: purple */
};
static const char *CAT_NAME[4] = { "token states", "reservation", "internal frag.", "external frag. & others" };

static viz_waste norm(const char *label, double t, double r, double i, double e) {
    viz_waste w;
    memset(&w, 0, sizeof w);
    snprintf(w.label, sizeof w.label, "%s", label ? label : "");
    double s = t + r + i + e;
    if (s > 0) { w.token = t / s; w.reserved = r / s; w.internal = i / s; w.external = e / s; }
    w.paper = -1;
    return w;
}

/* "external & others" holds the free slots left idle while requests wait, as
 * sim/fig2.c counts them (the paper's Orca (Max) 8.9% is such slots) */
viz_waste viz_waste_of_summary(const char *label, const met_summary *s) {
    return norm(label, s->share_token, s->share_reserved, s->share_internal, s->share_external + s->share_free_waiting);
}

viz_waste viz_waste_of_steps(const char *label, const met_step *st, int n) {
    double t = 0, r = 0, i = 0, e = 0;
    for (int k = 0; k < n; k++) {
        double w = st[k].dt > 0 ? st[k].dt : 0;
        if (st[k].slots_total <= 0) continue;
        t += w * st[k].token_slots / st[k].slots_total;
        r += w * st[k].reserved_slots / st[k].slots_total;
        i += w * st[k].internal_frag / st[k].slots_total;
        e += w * st[k].external_frag / st[k].slots_total;
    }
    return norm(label, t, r, i, e);
}

typedef struct chart_ctx {
    const viz_run_series *runs; int nruns;
    const viz_waste *bars; int nbars;
} chart_ctx;

static void font(cairo_t *cr, double size, bool bold) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}
static double tw(cairo_t *cr, const char *t) { cairo_text_extents_t e; cairo_text_extents(cr, t, &e); return e.x_advance; }
static void text(cairo_t *cr, double x, double y, const char *t) { cairo_move_to(cr, x, y); cairo_show_text(cr, t); }
static void ink(cairo_t *cr) { cairo_set_source_rgb(cr, 0.13, 0.13, 0.15); }
static void hatch(cairo_t *cr, double x, double y, double w, double h) {
    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_clip(cr);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.55);
    cairo_set_line_width(cr, 1.2);
    for (double d = -h; d < w; d += 6) { cairo_move_to(cr, x + d, y + h); cairo_line_to(cr, x + d + h, y); }
    cairo_stroke(cr);
    cairo_restore(cr);
}

/* A "nice" tick step for a range. */
static double nice_step(double range, int want) {
    double raw = range / (want > 0 ? want : 1), p = pow(10, floor(log10(raw > 0 ? raw : 1)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* One time-series panel: y = f(step) in [0, 1] for every run. */
static void series_panel(cairo_t *cr, const chart_ctx *c, double x, double y, double w, double h,
                         double f, const char *title, int which) {
    font(cr, f * 1.1, true); ink(cr);
    text(cr, x, y + f, title);
    double px = x + f * 3.2, py = y + f * 1.8, pw = w - f * 3.6, ph = h - f * 4.2;
    double tmax = 0;
    for (int r = 0; r < c->nruns; r++)
        for (int k = 0; k < c->runs[r].num_steps; k++)
            if (c->runs[r].steps[k].time > tmax) tmax = c->runs[r].steps[k].time;
    if (tmax <= 0) tmax = 1;
    /* grid and axes */
    font(cr, f * 0.85, false);
    cairo_set_line_width(cr, 1);
    for (int i = 0; i <= 4; i++) {
        double yy = py + ph - ph * i / 4.0;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.9);
        cairo_move_to(cr, px, yy); cairo_line_to(cr, px + pw, yy); cairo_stroke(cr);
        char t[16]; snprintf(t, sizeof t, "%d%%", i * 25);
        ink(cr); text(cr, px - tw(cr, t) - f * 0.4, yy + f * 0.3, t);
    }
    double st = nice_step(tmax, 6);
    for (double tt = 0; tt <= tmax * 1.0001; tt += st) {
        double xx = px + pw * tt / tmax;
        char t[24]; snprintf(t, sizeof t, st < 1 ? "%.2g" : "%.0f", tt);
        ink(cr); text(cr, xx - tw(cr, t) / 2, py + ph + f * 1.2, t);
    }
    ink(cr); text(cr, px + pw - tw(cr, "time (s)"), py + ph + f * 2.4, "time (s)");
    cairo_rectangle(cr, px, py, pw, ph); ink(cr); cairo_stroke(cr);
    /* lines, one per run, dashed differently so they need no colour */
    static const double dashes[5][2] = { {1, 0}, {8, 4}, {3, 3}, {12, 3}, {2, 6} };
    double lw_max = 0;
    font(cr, f * 0.85, false);
    for (int r = 0; r < c->nruns; r++) { double t = tw(cr, c->runs[r].label ? c->runs[r].label : "?"); if (t > lw_max) lw_max = t; }
    for (int r = 0; r < c->nruns; r++) {
        double rgb[3]; viz_owner_rgb(r == 0 ? 2 : r == 1 ? 0 : r + 2, rgb, NULL);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_line_width(cr, 2);
        if (r % 5) cairo_set_dash(cr, dashes[r % 5], 2, 0);
        int n = c->runs[r].num_steps;
        int stride = n > 4000 ? n / 2000 : 1;   /* enough points for the pixels */
        bool first = true;
        for (int k = 0; k < n; k += stride) {
            const met_step *s = &c->runs[r].steps[k];
            if (s->slots_total <= 0) continue;
            double v = which == 0 ? (double)s->token_slots / s->slots_total
                                  : (double)(s->reserved_slots + s->internal_frag + s->external_frag) / s->slots_total;
            if (v < 0) v = 0;
            if (v > 1) v = 1;
            double xx = px + pw * s->time / tmax, yy = py + ph - ph * v;
            if (first) { cairo_move_to(cr, xx, yy); first = false; } else cairo_line_to(cr, xx, yy);
        }
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    /* the legend on a white box, over the lines */
    if (c->nruns > 0) {
        cairo_rectangle(cr, px + f * 0.3, py + f * 0.2, lw_max + f * 3, c->nruns * f * 1.3 + f * 0.5);
        cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
        cairo_fill(cr);
    }
    for (int r = 0; r < c->nruns; r++) {
        double rgb[3]; viz_owner_rgb(r == 0 ? 2 : r == 1 ? 0 : r + 2, rgb, NULL);
        cairo_set_line_width(cr, 2);
        double lx = px + f * 0.6, ly = py + f * 1.2 + r * f * 1.3;
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        if (r % 5) cairo_set_dash(cr, dashes[r % 5], 2, 0);
        cairo_move_to(cr, lx, ly - f * 0.3); cairo_line_to(cr, lx + f * 2, ly - f * 0.3); cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        font(cr, f * 0.85, false); ink(cr);
        text(cr, lx + f * 2.4, ly, c->runs[r].label ? c->runs[r].label : "?");
    }
}

/* Stacked horizontal bars, one per policy. */
static void bars_panel(cairo_t *cr, const chart_ctx *c, double x, double y, double w, double h, double f) {
    font(cr, f * 1.1, true); ink(cr);
    text(cr, x, y + f, "KV memory held or lost: where it goes (vLLM paper, Fig. 2)");
    font(cr, f * 0.85, false);
    double lab_w = 0;
    for (int i = 0; i < c->nbars; i++) { double t = tw(cr, c->bars[i].label); if (t > lab_w) lab_w = t; }
    double bx = x + lab_w + f, bw = w - lab_w - f * 1.5, by = y + f * 2;
    double legend_h = f * 2;
    double bh = (h - f * 2 - legend_h) / (c->nbars > 0 ? c->nbars : 1);
    if (bh > f * 3) bh = f * 3;
    for (int i = 0; i < c->nbars; i++) {
        const viz_waste *b = &c->bars[i];
        double v[4] = { b->token, b->reserved, b->internal, b->external };
        double yy = by + i * bh, xx = bx;
        ink(cr); font(cr, f * 0.9, false);
        text(cr, x, yy + bh * 0.55 + f * 0.3, b->label);
        for (int k = 0; k < 4; k++) {
            double ww = bw * v[k];
            if (ww <= 0) continue;
            cairo_rectangle(cr, xx, yy + bh * 0.1, ww, bh * 0.8);
            cairo_set_source_rgb(cr, CAT[k][0], CAT[k][1], CAT[k][2]);
            cairo_fill(cr);
            if (k > 0) hatch(cr, xx, yy + bh * 0.1, ww, bh * 0.8);
            xx += ww;
        }
        /* the token share, written on the bar (or after it when narrow) */
        char t[48];
        snprintf(t, sizeof t, "%.1f%%", b->token * 100);
        font(cr, f * 0.9, true);
        double tx = bx + bw * b->token - tw(cr, t) - f * 0.4;
        if (tx < bx + f * 0.3) { tx = bx + bw * b->token + f * 0.3; ink(cr); }
        else cairo_set_source_rgb(cr, 1, 1, 1);
        text(cr, tx, yy + bh * 0.55 + f * 0.3, t);
        if (b->paper >= 0) {   /* the published value, a tick on the bar */
            double px = bx + bw * b->paper;
            ink(cr); cairo_set_line_width(cr, 2);
            cairo_move_to(cr, px, yy + bh * 0.02); cairo_line_to(cr, px, yy + bh * 0.98); cairo_stroke(cr);
        }
    }
    /* legend */
    double lx = x, ly = y + h - f * 0.6;
    font(cr, f * 0.85, false);
    for (int k = 0; k < 4; k++) {
        cairo_rectangle(cr, lx, ly - f * 0.85, f * 1.4, f);
        cairo_set_source_rgb(cr, CAT[k][0], CAT[k][1], CAT[k][2]);
        cairo_fill(cr);
        if (k > 0) hatch(cr, lx, ly - f * 0.85, f * 1.4, f);
        ink(cr); text(cr, lx + f * 1.8, ly, CAT_NAME[k]);
        lx += f * 2.6 + tw(cr, CAT_NAME[k]);
    }
    bool any_paper = false;
    for (int i = 0; i < c->nbars; i++) if (c->bars[i].paper >= 0) any_paper = true;
    if (any_paper) { ink(cr); text(cr, lx, ly, "| = the paper's token share"); }
}

static void draw_chart(cairo_t *cr, const void *ctx, double W, double H) {
    const chart_ctx *c = ctx;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double f = (W < H ? W : H) / 50;
    if (f < 9) f = 9;
    if (f > 14) f = 14;
    double M = f * 1.2;
    double bars_h = c->nbars > 0 ? f * 4.5 + c->nbars * f * 3 : 0;
    if (c->nruns == 0) bars_h = H - 2 * M;
    double top_h = H - 2 * M - bars_h - (c->nbars > 0 && c->nruns > 0 ? f : 0);
    if (c->nruns > 0) {
        double pw = (W - 2 * M - f * 2) / 2;
        series_panel(cr, c, M, M, pw, top_h, f, "KV slots holding tokens (share of the pool)", 0);
        series_panel(cr, c, M + pw + f * 2, M, pw, top_h, f,
                     "reserved + fragmented slots (share of the pool)", 1);
    }
    if (c->nbars > 0) bars_panel(cr, c, M, H - M - bars_h, W - 2 * M, bars_h, f);
}

int viz_plot_run(const char *path, const viz_run_series *runs, int nruns,
                 const viz_waste *bars, int nbars, int width, int height,
                 char *err, size_t errlen) {
    if (nruns < 0 || nbars < 0 || (nruns == 0 && nbars == 0)) {
        snprintf(err, errlen, "%s: nothing to plot", path);
        return -1;
    }
    chart_ctx c = { runs, nruns, bars, nbars };
    return viz_export_draw(path, VIZ_FMT_UNKNOWN, width, height, draw_chart, &c, err, errlen);
}

int viz_plot_results(const char *path, const char *const *labels, const sim_result *res, int n,
                     const double *paper, char *err, size_t errlen) {
    enum { MAXR = 16 };
    viz_run_series runs[MAXR];
    viz_waste bars[MAXR];
    int nr = 0;
    if (n <= 0 || n > MAXR) { snprintf(err, errlen, "%s: %d results to plot (1..%d)", path, n, MAXR); return -1; }
    for (int i = 0; i < n; i++) {
        const char *lab = labels && labels[i] ? labels[i] : "run";
        if (res[i].steps && res[i].num_steps > 0)
            runs[nr++] = (viz_run_series){ lab, res[i].steps, res[i].num_steps };
        bars[i] = viz_waste_of_summary(lab, &res[i].summary);
        if (paper) bars[i].paper = paper[i];
    }
    return viz_plot_run(path, runs, nr, bars, n, 1200, nr > 0 ? 760 : 200 + 60 * n, err, errlen);
}
