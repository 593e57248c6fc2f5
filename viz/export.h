/* export: a viz_scene (or any cairo drawing) to PNG, SVG or PDF files, and one
 * PNG per step into a directory.  Writes only the files it is given. */
#ifndef VIZ_EXPORT_H
#define VIZ_EXPORT_H
#include <stddef.h>
#include <cairo.h>
#include "viz/scene.h"

typedef enum { VIZ_FMT_PNG, VIZ_FMT_SVG, VIZ_FMT_PDF, VIZ_FMT_UNKNOWN } viz_format;

/* Format from a file name's extension (case-insensitive). */
viz_format viz_format_of(const char *path);
/* A drawing callback: draws into cr over width x height. */
typedef void (*viz_draw_fn)(cairo_t *cr, const void *ctx, double width, double height);
/* Draws fn into path in format fmt (UNKNOWN: from the extension).  Returns 0,
 * or -1 with err naming the file. */
int viz_export_draw(const char *path, viz_format fmt, int width, int height,
                    viz_draw_fn fn, const void *ctx, char *err, size_t errlen);
/* The scene into path (format from the extension). */
int viz_export_scene(const viz_scene *s, const char *path, int width, int height,
                     char *err, size_t errlen);
/* The scene into dir/step_NNNNN.png (dir is created if missing). */
int viz_export_frame(const viz_scene *s, const char *dir, int width, int height,
                     char *err, size_t errlen);
/* Renders into a new ARGB32 image surface (for the window and tests); NULL
 * when out of memory.  Free with cairo_surface_destroy. */
cairo_surface_t *viz_render_image(const viz_scene *s, int width, int height);
#endif
