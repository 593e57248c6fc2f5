/* barchart: grouped or stacked vertical bars for the lab figures (see
 * barchart.h).  Layout, top to bottom: title, plot, category labels (a '\n'
 * in a label breaks it into lines), legend.  Draws only into cr. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "viz/barchart.h"
#include "viz/chartkit.h"

static double val(const viz_bar_chart *c, int cat, int s) { return c->values[cat * c->nseries + s]; }

static double top_value(const viz_bar_chart *c) {
    double m = 0;
    for (int i = 0; i < c->ncats; i++) {
        double sum = 0;
        for (int s = 0; s < c->nseries; s++) {
            double v = val(c, i, s);
            if (!isfinite(v)) continue;
            if (c->stacked) sum += v > 0 ? v : 0;
            else if (v > m) m = v;
        }
        if (sum > m) m = sum;
        if (c->refs && isfinite(c->refs[i]) && c->refs[i] > m) m = c->refs[i];
    }
    return m > 0 ? m : 1;
}

/* Category label lines, centred under cx; returns the number of lines. */
static int category_label(cairo_t *cr, const char *lab, double cx, double y, double maxw, double f) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", lab ? lab : "");
    int n = 0;
    for (char *p = buf, *nl; p; p = nl ? nl + 1 : NULL, n++) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        double size = f * 0.85;
        viz_ck_font(cr, size, false, false);
        while (viz_ck_text_w(cr, p) > maxw && size > f * 0.55) { size *= 0.92; viz_ck_font(cr, size, false, false); }
        viz_ck_ink(cr);
        viz_ck_text(cr, cx, y + n * f * 1.05, p, 0.5);
    }
    return n;
}

static double legend(cairo_t *cr, const viz_bar_chart *c, double x, double y, double w, double f, bool draw) {
    if (!c->series && !c->refs) return 0;
    viz_ck_font(cr, f * 0.85, false, false);
    double lx = x, ly = y + f;
    int items = (c->series ? c->nseries : 0) + (c->refs && c->ref_label ? 1 : 0);
    for (int k = 0; k < items; k++) {
        bool ref = !c->series || k == c->nseries;
        const char *lab = ref ? c->ref_label : c->series[k];
        double iw = f * 1.8 + viz_ck_text_w(cr, lab ? lab : "") + f * 1.3;
        if (lx + iw > x + w && lx > x) { lx = x; ly += f * 1.4; }
        if (draw) {
            if (ref) {
                viz_ck_ink(cr);
                cairo_set_line_width(cr, 2.2);
                cairo_move_to(cr, lx, ly - f * 0.35); cairo_line_to(cr, lx + f * 1.4, ly - f * 0.35);
                cairo_stroke(cr);
            } else {
                viz_ck_bar(cr, k, lx, ly - f * 0.85, f * 1.4, f);
            }
            viz_ck_ink(cr);
            viz_ck_text(cr, lx + f * 1.8, ly, lab ? lab : "", 0);
        }
        lx += iw;
    }
    return items > 0 ? ly - y + f * 0.5 : 0;
}

static void value_label(cairo_t *cr, const char *fmt, double v, double cx, double y, double f, bool inside) {
    char t[32];
    snprintf(t, sizeof t, fmt, v);
    viz_ck_font(cr, f * 0.78, true, false);
    if (inside) {     /* on a white pad, so it reads over any colour or hatch */
        double w = viz_ck_text_w(cr, t);
        cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
        cairo_rectangle(cr, cx - w / 2 - 2, y - f * 0.75, w + 4, f * 0.95);
        cairo_fill(cr);
    }
    viz_ck_ink(cr);
    viz_ck_text(cr, cx, y, t, 0.5);
}

/* Bars first, then the published ticks, then the values on top of both. */
static void bars(cairo_t *cr, const viz_bar_chart *c, double px, double py, double pw, double ph,
                 double ymax, double f) {
    const char *fmt = c->value_format ? c->value_format : "%g";
    bool show = fmt[0] != 0;
    double gw = pw / c->ncats;
    int per = c->stacked ? 1 : c->nseries;
    double bw = gw * 0.72 / per;
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < c->ncats; i++) {
            double gx = px + gw * i + gw * 0.14, base = py + ph;
            if (pass == 1) {
                if (!c->refs || !isfinite(c->refs[i])) continue;
                double yy = py + ph - ph * c->refs[i] / ymax;
                viz_ck_ink(cr);
                cairo_set_line_width(cr, 2.2);
                cairo_move_to(cr, gx - gw * 0.06, yy); cairo_line_to(cr, gx + bw * per + gw * 0.06, yy);
                cairo_stroke(cr);
                continue;
            }
            for (int s = 0; s < c->nseries; s++) {
                double v = val(c, i, s);
                if (!isfinite(v)) continue;
                double hh = ph * (v > 0 ? v : 0) / ymax;
                double bx = c->stacked ? gx : gx + bw * s;
                double by = c->stacked ? base - hh : py + ph - hh;
                if (c->stacked) base -= hh;
                if (pass == 0) { viz_ck_bar(cr, s, bx, by, bw, hh); continue; }
                if (!show) continue;
                if (c->stacked && hh > f * 1.1) value_label(cr, fmt, v, bx + bw / 2, by + hh / 2 + f * 0.3, f, true);
                if (c->stacked) continue;
                double ly = by - f * 0.3;        /* above the bar, or above a tick that would cross it */
                if (c->refs && isfinite(c->refs[i])) {
                    double ty = py + ph - ph * c->refs[i] / ymax;
                    if (ty > ly - f * 1.0 && ty < by + f * 0.2) ly = fmin(ly, ty - f * 0.35);
                }
                value_label(cr, fmt, v, bx + bw / 2, ly, f * (bw < f * 3 ? 0.85 : 1), false);
            }
        }
}

void viz_bar_draw(cairo_t *cr, const viz_bar_chart *c, double x, double y, double w, double h) {
    if (c->ncats <= 0 || c->nseries <= 0 || !c->values) return;
    double f = fmin(w / 34, h / 20);   /* about 12 px in a 400-px panel */
    if (f < 9) f = 9;
    if (f > 15) f = 15;
    cairo_save(cr);
    double top = y;
    if (c->title) {
        viz_ck_font(cr, f * 1.05, true, false);
        viz_ck_ink(cr);
        viz_ck_text(cr, x, y + f, c->title, 0);
        top += f * 1.8;
    }
    int lines = 1;
    for (int i = 0; i < c->ncats; i++) {
        int n = 1;
        for (const char *p = c->categories[i]; p && *p; p++) if (*p == '\n') n++;
        if (n > lines) lines = n;
    }
    double px = x + f * 4.8, pw = w - f * 5.4;
    double leg_h = legend(cr, c, px, 0, pw, f, false);
    double py = top + f * 1.2, ph = y + h - py - f * (1.0 + 1.05 * lines) - leg_h;
    if (ph < f * 4) ph = f * 4;
    double ymax = c->y_max > 0 ? c->y_max : top_value(c) * 1.08;
    double step = viz_ck_nice_step(ymax, 5);
    if (c->y_max <= 0) ymax = ceil(ymax / step - 1e-9) * step;
    /* grid and y ticks */
    viz_ck_font(cr, f * 0.85, false, false);
    cairo_set_line_width(cr, 0.8);
    for (double v = 0; v <= ymax + step * 1e-6; v += step) {
        double yy = py + ph - ph * v / ymax;
        char t[32];
        snprintf(t, sizeof t, "%g", v);
        cairo_set_source_rgb(cr, 0.85, 0.85, 0.87);
        cairo_move_to(cr, px, yy); cairo_line_to(cr, px + pw, yy); cairo_stroke(cr);
        viz_ck_ink(cr);
        viz_ck_text(cr, px - f * 0.4, yy + f * 0.3, t, 1);
    }
    if (c->y_label) {
        viz_ck_font(cr, f * 0.9, false, false);
        cairo_save(cr);
        cairo_translate(cr, px - f * 3.6, py + ph / 2);
        cairo_rotate(cr, -M_PI / 2);
        viz_ck_text(cr, 0, 0, c->y_label, 0.5);
        cairo_restore(cr);
    }
    bars(cr, c, px, py, pw, ph, ymax, f);
    viz_ck_ink(cr);
    cairo_set_line_width(cr, 1);
    cairo_move_to(cr, px, py + ph); cairo_line_to(cr, px + pw, py + ph); cairo_stroke(cr);
    double gw = pw / c->ncats;
    for (int i = 0; i < c->ncats; i++)
        category_label(cr, c->categories[i], px + gw * (i + 0.5), py + ph + f * 1.2, gw * 0.96, f);
    legend(cr, c, px, py + ph + f * (0.6 + 1.05 * lines), pw, f, true);
    cairo_restore(cr);
}
