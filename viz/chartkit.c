/* chartkit: fonts, text and print-safe series styles for the lab charts (see
 * chartkit.h).  Draws only into the cairo context it is given. */
#include <math.h>
#include <stddef.h>
#include "viz/chartkit.h"

/* Okabe-Ito hues, darkest first, so that the first series print darkest. */
static const double SERIES[7][3] = {
    {0x00 / 255.0, 0x72 / 255.0, 0xB2 / 255.0},  /* blue */
    {0xD5 / 255.0, 0x5E / 255.0, 0x00 / 255.0},  /* vermillion */
    {0x00 / 255.0, 0x9E / 255.0, 0x73 / 255.0},  /* bluish green */
    {0xCC / 255.0, 0x79 / 255.0, 0xA7 / 255.0},  /* reddish purple */
    {0x33 / 255.0, 0x33 / 255.0, 0x33 / 255.0},  /* near black */
    {0xE6 / 255.0, 0x9F / 255.0, 0x00 / 255.0},  /* orange */
    {0x56 / 255.0, 0xB4 / 255.0, 0xE9 / 255.0},  /* sky blue */
};
#define NSERIES 7

void viz_ck_font(cairo_t *cr, double size, bool bold, bool mono) {
    cairo_select_font_face(cr, mono ? "DejaVu Sans Mono" : "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double viz_ck_text_w(cairo_t *cr, const char *t) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, t ? t : "", &e);
    return e.x_advance;
}

void viz_ck_text(cairo_t *cr, double x, double y, const char *t, double align) {
    if (!t) return;
    cairo_move_to(cr, x - align * viz_ck_text_w(cr, t), y);
    cairo_show_text(cr, t);
}

void viz_ck_ink(cairo_t *cr) { cairo_set_source_rgb(cr, 0.13, 0.13, 0.15); }

void viz_ck_series_rgb(int k, double rgb[3]) {
    const double *c = SERIES[(k < 0 ? -k : k) % NSERIES];
    rgb[0] = c[0]; rgb[1] = c[1]; rgb[2] = c[2];
}

void viz_ck_stroke_series(cairo_t *cr, int k, double width) {
    static const double dashes[5][4] = { {0}, {7, 3}, {2, 2.5}, {9, 3, 2, 3}, {4, 4} };
    static const int ndash[5] = { 0, 2, 2, 4, 2 };
    double rgb[3];
    viz_ck_series_rgb(k, rgb);
    cairo_save(cr);
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_set_line_width(cr, width);
    int d = k % 5;
    double scaled[4];
    for (int i = 0; i < ndash[d]; i++) scaled[i] = dashes[d][i] * width / 1.6;
    cairo_set_dash(cr, ndash[d] ? scaled : NULL, ndash[d], 0);
    cairo_stroke(cr);
    cairo_restore(cr);
}

void viz_ck_marker(cairo_t *cr, int k, double x, double y, double r) {
    double rgb[3];
    viz_ck_series_rgb(k, rgb);
    cairo_save(cr);
    cairo_new_path(cr);
    int shape = k % 6;
    switch (shape) {
    case 0: cairo_arc(cr, x, y, r, 0, 2 * M_PI); break;
    case 1: cairo_rectangle(cr, x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8); break;
    case 2: cairo_move_to(cr, x, y - r * 1.15); cairo_line_to(cr, x + r * 1.1, y + r * 0.8);
            cairo_line_to(cr, x - r * 1.1, y + r * 0.8); cairo_close_path(cr); break;
    case 3: cairo_move_to(cr, x, y - r * 1.2); cairo_line_to(cr, x + r * 1.2, y);
            cairo_line_to(cr, x, y + r * 1.2); cairo_line_to(cr, x - r * 1.2, y); cairo_close_path(cr); break;
    default: break;
    }
    if (shape <= 3) {
        /* filled for even series, hollow for odd ones: two more cues in grey print */
        if (k % 2 == 0) { cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]); cairo_fill_preserve(cr); }
        else { cairo_set_source_rgb(cr, 1, 1, 1); cairo_fill_preserve(cr); }
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_line_width(cr, 1.4);
        cairo_stroke(cr);
    } else {              /* a cross (4) or a plus (5) */
        double a = shape == 4 ? r : r * 1.2;
        if (shape == 4) { cairo_move_to(cr, x - a, y - a); cairo_line_to(cr, x + a, y + a);
                          cairo_move_to(cr, x - a, y + a); cairo_line_to(cr, x + a, y - a); }
        else { cairo_move_to(cr, x - a, y); cairo_line_to(cr, x + a, y);
               cairo_move_to(cr, x, y - a); cairo_line_to(cr, x, y + a); }
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_line_width(cr, 2);
        cairo_stroke(cr);
    }
    cairo_restore(cr);
}

/* Hatch lines over a clipped rectangle: style 1 diagonal, 2 cross-hatch,
 * 3 horizontal, 4 dots, 5 anti-diagonal; 0 none. */
static void hatch(cairo_t *cr, int style, double x, double y, double w, double h) {
    if (style == 0 || w <= 0 || h <= 0) return;
    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_clip(cr);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_set_line_width(cr, 1.3);
    const double g = 6;
    if (style == 4) {
        for (double yy = y + g / 2; yy < y + h; yy += g)
            for (double xx = x + g / 2; xx < x + w; xx += g) {
                cairo_new_sub_path(cr);
                cairo_arc(cr, xx, yy, 1.3, 0, 2 * M_PI);
            }
        cairo_fill(cr);
    } else if (style == 3) {
        for (double yy = y + g / 2; yy < y + h; yy += g) { cairo_move_to(cr, x, yy); cairo_line_to(cr, x + w, yy); }
        cairo_stroke(cr);
    } else {
        for (double d = -h; d < w; d += g) {
            if (style == 1 || style == 2) { cairo_move_to(cr, x + d, y + h); cairo_line_to(cr, x + d + h, y); }
            if (style == 2 || style == 5) { cairo_move_to(cr, x + d, y); cairo_line_to(cr, x + d + h, y + h); }
        }
        cairo_stroke(cr);
    }
    cairo_restore(cr);
}

void viz_ck_bar(cairo_t *cr, int k, double x, double y, double w, double h) {
    if (w <= 0 || h <= 0) return;
    double rgb[3];
    viz_ck_series_rgb(k, rgb);
    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_fill(cr);
    hatch(cr, k % 6, x, y, w, h);
    cairo_rectangle(cr, x, y, w, h);
    viz_ck_ink(cr);
    cairo_set_line_width(cr, 0.8);
    cairo_stroke(cr);
    cairo_restore(cr);
}

double viz_ck_nice_step(double range, int want) {
    double raw = range / (want > 0 ? want : 1);
    if (!(raw > 0)) return 1;
    double p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}
