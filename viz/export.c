/* export: PNG/SVG/PDF files of a scene or a chart (see export.h).  All
 * formats go through viz_export_draw, so one drawing function serves every
 * output.  Touches only the files it is asked to write. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include "viz/export.h"
#include "viz/render.h"

viz_format viz_format_of(const char *path) {
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot) return VIZ_FMT_UNKNOWN;
    if (!strcasecmp(dot, ".png")) return VIZ_FMT_PNG;
    if (!strcasecmp(dot, ".svg")) return VIZ_FMT_SVG;
    if (!strcasecmp(dot, ".pdf")) return VIZ_FMT_PDF;
    return VIZ_FMT_UNKNOWN;
}

int viz_export_draw(const char *path, viz_format fmt, int width, int height,
                    viz_draw_fn fn, const void *ctx, char *err, size_t errlen) {
    int rc = -1;
    cairo_surface_t *sf = NULL;
    cairo_t *cr = NULL;
    if (fmt == VIZ_FMT_UNKNOWN) fmt = viz_format_of(path);
    if (width <= 0 || height <= 0) { snprintf(err, errlen, "%s: bad size %dx%d", path, width, height); return -1; }
    switch (fmt) {
    case VIZ_FMT_PNG: sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height); break;
    case VIZ_FMT_SVG: sf = cairo_svg_surface_create(path, width, height); break;
    case VIZ_FMT_PDF: sf = cairo_pdf_surface_create(path, width, height); break;
    default:
        snprintf(err, errlen, "%s: unknown format (use .png, .svg or .pdf)", path);
        return -1;
    }
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "%s: %s", path, cairo_status_to_string(cairo_surface_status(sf)));
        goto out;
    }
    cr = cairo_create(sf);
    fn(cr, ctx, width, height);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "%s: drawing failed: %s", path, cairo_status_to_string(cairo_status(cr)));
        goto out;
    }
    cairo_destroy(cr);
    cr = NULL;
    if (fmt == VIZ_FMT_PNG) {
        cairo_status_t st = cairo_surface_write_to_png(sf, path);
        if (st != CAIRO_STATUS_SUCCESS) {
            snprintf(err, errlen, "%s: cannot write: %s", path,
                     st == CAIRO_STATUS_WRITE_ERROR ? strerror(errno) : cairo_status_to_string(st));
            goto out;
        }
    }
    cairo_surface_finish(sf);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) {
        snprintf(err, errlen, "%s: cannot write: %s", path, cairo_status_to_string(cairo_surface_status(sf)));
        goto out;
    }
    rc = 0;
out:
    if (cr) cairo_destroy(cr);
    if (sf) cairo_surface_destroy(sf);
    return rc;
}

static void draw_scene(cairo_t *cr, const void *ctx, double w, double h) {
    viz_render(cr, (const viz_scene *)ctx, w, h);
}

int viz_export_scene(const viz_scene *s, const char *path, int width, int height,
                     char *err, size_t errlen) {
    return viz_export_draw(path, VIZ_FMT_UNKNOWN, width, height, draw_scene, s, err, errlen);
}

int viz_export_frame(const viz_scene *s, const char *dir, int width, int height,
                     char *err, size_t errlen) {
    char path[4096];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/step_%05d.png", dir, s->step);
    return viz_export_draw(path, VIZ_FMT_PNG, width, height, draw_scene, s, err, errlen);
}

cairo_surface_t *viz_render_image(const viz_scene *s, int width, int height) {
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) { cairo_surface_destroy(sf); return NULL; }
    cairo_t *cr = cairo_create(sf);
    viz_render(cr, s, width, height);
    cairo_destroy(cr);
    cairo_surface_flush(sf);
    return sf;
}
