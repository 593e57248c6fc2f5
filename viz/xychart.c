/* xychart: line charts for the lab figures (see xychart.h).  Layout, top to
 * bottom: title, plot (y ticks on the left), x ticks and label, legend.
 * Draws only into the cairo context it is given. */
#include <math.h>
#include <stdio.h>
#include "viz/chartkit.h"
#include "viz/xychart.h"

typedef struct xy_frame {        /* where the data land */
    double px, py, pw, ph;       /* plot rectangle */
    double x0, x1, y0, y1;       /* data range (x in log2 when log2_x) */
    bool   log2_x;
} xy_frame;

/* Rectangles already taken by markers and labels, so that a value label can
 * look for a free place (or give up) instead of covering another. */
enum { MAXBOX = 512 };
typedef struct xy_boxes { double b[MAXBOX][4]; int n; } xy_boxes;   /* x0, y0, x1, y1 */

static void take(xy_boxes *B, double x0, double y0, double x1, double y1) {
    if (B->n == MAXBOX) return;
    double *b = B->b[B->n++];
    b[0] = x0; b[1] = y0; b[2] = x1; b[3] = y1;
}
static bool is_free(const xy_boxes *B, double x0, double y0, double x1, double y1) {
    for (int i = 0; i < B->n; i++) {
        const double *b = B->b[i];
        if (x0 < b[2] && b[0] < x1 && y0 < b[3] && b[1] < y1) return false;
    }
    return true;
}

static double fx(const xy_frame *F, double x) {
    double v = F->log2_x ? log2(x > 0 ? x : 1e-9) : x;
    return F->px + F->pw * (F->x1 > F->x0 ? (v - F->x0) / (F->x1 - F->x0) : 0.5);
}
static double fy(const xy_frame *F, double y) {
    return F->py + F->ph - F->ph * (F->y1 > F->y0 ? (y - F->y0) / (F->y1 - F->y0) : 0.5);
}

/* The data's range; y rounded up to a tick. */
static void data_range(const viz_xy_chart *c, xy_frame *F, double *ystep) {
    double xmin = INFINITY, xmax = -INFINITY, ymax = -INFINITY, ymin = INFINITY;
    for (int s = 0; s < c->nseries; s++)
        for (int i = 0; i < c->series[s].n; i++) {
            double xv = c->series[s].x[i], yv = c->series[s].y[i];
            if (c->log2_x) xv = log2(xv > 0 ? xv : 1e-9);
            if (!isfinite(xv) || !isfinite(yv)) continue;
            if (xv < xmin) xmin = xv;
            if (xv > xmax) xmax = xv;
            if (yv < ymin) ymin = yv;
            if (yv > ymax) ymax = yv;
        }
    for (int m = 0; m < c->nmarks; m++)
        if (!c->marks[m].vertical && c->marks[m].at > ymax) ymax = c->marks[m].at;
    if (!isfinite(xmin)) { xmin = 0; xmax = 1; ymin = 0; ymax = 1; }
    if (xmax <= xmin) xmax = xmin + 1;
    F->x0 = xmin; F->x1 = xmax;
    if (c->y_min != 0 || c->y_max != 0) {
        F->y0 = c->y_min; F->y1 = c->y_max;
    } else {
        F->y0 = ymin < 0 ? ymin : 0;
        F->y1 = ymax > F->y0 ? ymax : F->y0 + 1;
    }
    *ystep = viz_ck_nice_step(F->y1 - F->y0, 5);
    if (c->y_min == 0 && c->y_max == 0) F->y1 = ceil(F->y1 / *ystep - 1e-9) * *ystep;
}

static void axes(cairo_t *cr, const viz_xy_chart *c, const xy_frame *F, double ystep, double f) {
    const char *yf = c->y_format ? c->y_format : "%g";
    char t[48];
    viz_ck_font(cr, f * 0.85, false, false);
    cairo_set_line_width(cr, 0.8);
    for (double v = F->y0; v <= F->y1 + ystep * 1e-6; v += ystep) {
        double yy = fy(F, v);
        cairo_set_source_rgb(cr, 0.85, 0.85, 0.87);
        cairo_move_to(cr, F->px, yy); cairo_line_to(cr, F->px + F->pw, yy); cairo_stroke(cr);
        snprintf(t, sizeof t, yf, fabs(v) < ystep * 1e-6 ? 0.0 : v);
        viz_ck_ink(cr);
        viz_ck_text(cr, F->px - f * 0.4, yy + f * 0.3, t, 1);
    }
    if (c->log2_x) {
        for (double e = ceil(F->x0); e <= F->x1 + 1e-9; e += 1) {
            snprintf(t, sizeof t, "%.0f", pow(2, e));
            viz_ck_text(cr, fx(F, pow(2, e)), F->py + F->ph + f * 1.2, t, 0.5);
        }
    } else {
        double st = viz_ck_nice_step(F->x1 - F->x0, 6);
        for (double v = ceil(F->x0 / st) * st; v <= F->x1 + st * 1e-6; v += st) {
            snprintf(t, sizeof t, "%g", fabs(v) < st * 1e-6 ? 0.0 : v);   /* never "-0" */
            viz_ck_text(cr, fx(F, v), F->py + F->ph + f * 1.2, t, 0.5);
        }
    }
    viz_ck_ink(cr);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, F->px, F->py, F->pw, F->ph);
    cairo_stroke(cr);
    viz_ck_font(cr, f * 0.9, false, false);
    if (c->x_label) viz_ck_text(cr, F->px + F->pw / 2, F->py + F->ph + f * 2.5, c->x_label, 0.5);
    if (c->y_label) {
        cairo_save(cr);
        cairo_translate(cr, F->px - f * 3.6, F->py + F->ph / 2);
        cairo_rotate(cr, -M_PI / 2);
        viz_ck_text(cr, 0, 0, c->y_label, 0.5);
        cairo_restore(cr);
    }
}

static void marks(cairo_t *cr, const viz_xy_chart *c, const xy_frame *F, double f, xy_boxes *B) {
    viz_ck_font(cr, f * 0.8, false, false);
    for (int m = 0; m < c->nmarks; m++) {
        const viz_xy_mark *k = &c->marks[m];
        double d[2] = { 4, 3 };
        cairo_save(cr);
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.38);
        cairo_set_line_width(cr, 1.2);
        cairo_set_dash(cr, d, 2, 0);
        if (k->vertical) {
            double xx = fx(F, k->at);
            cairo_move_to(cr, xx, F->py); cairo_line_to(cr, xx, F->py + F->ph);
        } else {
            double yy = fy(F, k->at);
            cairo_move_to(cr, F->px, yy); cairo_line_to(cr, F->px + F->pw, yy);
        }
        cairo_stroke(cr);
        cairo_restore(cr);
        if (!k->label) continue;
        viz_ck_ink(cr);
        double tw = viz_ck_text_w(cr, k->label), lx, ly;
        if (k->vertical) { lx = fx(F, k->at) + f * 0.3; ly = k->label_start ? F->py + F->ph - f * 0.4 : F->py + f * 1.0; }
        else if (k->label_start) { lx = F->px + f * 0.3; ly = fy(F, k->at) - f * 0.35; }
        else { lx = F->px + F->pw - f * 0.3 - tw; ly = fy(F, k->at) - f * 0.35; }
        viz_ck_text(cr, lx, ly, k->label, 0);
        take(B, lx, ly - f * 0.8, lx + tw, ly + f * 0.2);
    }
}

static void lines(cairo_t *cr, const viz_xy_chart *c, const xy_frame *F, double f, xy_boxes *B) {
    const char *yf = c->value_format ? c->value_format : c->y_format ? c->y_format : "%g";
    double r = f * 0.32;
    cairo_save(cr);
    cairo_rectangle(cr, F->px - f, F->py - f, F->pw + 2 * f, F->ph + 2 * f);
    cairo_clip(cr);
    for (int s = 0; s < c->nseries; s++) {
        const viz_xy_series *S = &c->series[s];
        bool first = true;
        for (int i = 0; i < S->n; i++) {
            if (!isfinite(S->y[i])) { first = true; continue; }
            double xx = fx(F, S->x[i]), yy = fy(F, S->y[i]);
            if (first) cairo_move_to(cr, xx, yy); else cairo_line_to(cr, xx, yy);
            first = false;
        }
        viz_ck_stroke_series(cr, s, 2);
        for (int i = 0; i < S->n; i++)
            if (isfinite(S->y[i])) {
                double xx = fx(F, S->x[i]), yy = fy(F, S->y[i]);
                viz_ck_marker(cr, s, xx, yy, r);
                take(B, xx - r * 1.3, yy - r * 1.3, xx + r * 1.3, yy + r * 1.3);
            }
    }
    cairo_restore(cr);
    /* value labels: above (or below) the point, else the other side, else a
     * step further; none where every place is taken */
    viz_ck_font(cr, f * 0.75, false, false);
    for (int s = 0; s < c->nseries; s++) {
        const viz_xy_series *S = &c->series[s];
        if (!S->values) continue;
        for (int i = 0; i < S->n; i++) {
            if (!isfinite(S->y[i])) continue;
            char t[32];
            snprintf(t, sizeof t, yf, S->y[i]);
            double xx = fx(F, S->x[i]), yy = fy(F, S->y[i]), w = viz_ck_text_w(cr, t);
            double off[4] = { -f * 0.6, f * 1.3, -f * 1.5, f * 2.2 };   /* baselines: above, below, ... */
            if (S->values_below) { double a = off[0]; off[0] = off[1]; off[1] = a; a = off[2]; off[2] = off[3]; off[3] = a; }
            for (int k = 0; k < 4; k++) {
                double ty = yy + off[k], x0 = xx - w / 2 - 1, y0 = ty - f * 0.75, x1 = xx + w / 2 + 1, y1 = ty + f * 0.2;
                if (y0 < F->py || y1 > F->py + F->ph || !is_free(B, x0, y0, x1, y1)) continue;
                cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
                cairo_rectangle(cr, x0, y0, x1 - x0, y1 - y0);
                cairo_fill(cr);
                viz_ck_ink(cr);
                viz_ck_text(cr, xx, ty, t, 0.5);
                take(B, x0, y0, x1, y1);
                break;
            }
        }
    }
}

/* The legend in rows under the plot; returns its height. */
static double legend(cairo_t *cr, const viz_xy_chart *c, double x, double y, double w, double f, bool draw) {
    viz_ck_font(cr, f * 0.85, false, false);
    double lx = x, ly = y + f, sw = f * 2.6;
    for (int s = 0; s < c->nseries; s++) {
        const char *lab = c->series[s].label ? c->series[s].label : "";
        double iw = sw + f * 0.4 + viz_ck_text_w(cr, lab) + f * 1.2;
        if (lx + iw > x + w && lx > x) { lx = x; ly += f * 1.4; }
        if (draw) {
            cairo_move_to(cr, lx, ly - f * 0.3); cairo_line_to(cr, lx + sw, ly - f * 0.3);
            viz_ck_stroke_series(cr, s, 2);
            viz_ck_marker(cr, s, lx + sw / 2, ly - f * 0.3, f * 0.32);
            viz_ck_ink(cr);
            viz_ck_text(cr, lx + sw + f * 0.4, ly, lab, 0);
        }
        lx += iw;
    }
    return c->nseries > 0 ? ly - y + f * 0.5 : 0;
}

void viz_xy_draw(cairo_t *cr, const viz_xy_chart *c, double x, double y, double w, double h) {
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
    double leg_h = legend(cr, c, x + f * 4.5, 0, w - f * 4.5, f, false);
    xy_frame F;
    double ystep;
    data_range(c, &F, &ystep);
    F.log2_x = c->log2_x;
    F.px = x + f * 4.8;
    F.pw = w - f * 5.6;
    F.py = top + f * 0.5;
    F.ph = y + h - F.py - f * 3.2 - leg_h;
    if (F.ph < f * 4) F.ph = f * 4;
    /* a little room left and right so that end markers are not cut */
    double pad = (F.x1 - F.x0) * 0.04;
    F.x0 -= pad; F.x1 += pad;
    xy_boxes B;                      /* taken rectangles (16 KiB on the stack) */
    B.n = 0;
    axes(cr, c, &F, ystep, f);
    marks(cr, c, &F, f, &B);
    lines(cr, c, &F, f, &B);
    legend(cr, c, F.px, F.py + F.ph + f * 2.9, F.pw, f, true);
    cairo_restore(cr);
}
