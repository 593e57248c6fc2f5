/* bench_viz: time to render one frame of the block pool with the cairo
 * renderer (what the window does 60 times a second): 1,024 blocks of 16 slots,
 * alone and with a comparison pool, at 1280x800; 16 blocks for reference.
 * Target: under 16 ms a frame. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "viz/scene.h"
#include "viz/render.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and max milliseconds of reps renders. */
static int bench(const char *name, int blocks, int bs, int compare, double *med) {
    viz_scene s;
    if (viz_scene_synthetic(&s, blocks, bs, 11)) return -1;
    if (compare) {
        viz_scene c2;
        if (viz_scene_synthetic(&c2, blocks, bs, 12)) return -1;
        s.cmp = c2.pool;                      /* take its pool */
        snprintf(s.cmp.policy, sizeof s.cmp.policy, "contiguous");
        s.has_cmp = true;
    }
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1280, 800);
    enum { REPS = 40 };
    double t[REPS];
    for (int i = 0; i < 3; i++) { cairo_t *cr = cairo_create(sf); viz_render(cr, &s, 1280, 800); cairo_destroy(cr); }
    for (int i = 0; i < REPS; i++) {
        double t0 = now();
        cairo_t *cr = cairo_create(sf);
        viz_render(cr, &s, 1280, 800);
        cairo_destroy(cr);
        cairo_surface_flush(sf);
        t[i] = (now() - t0) * 1e3;
    }
    qsort(t, REPS, sizeof t[0], cmp);
    *med = t[REPS / 2];
    printf("  %-34s median %6.2f ms   p90 %6.2f ms   max %6.2f ms   (%d renders)\n",
           name, t[REPS / 2], t[REPS * 9 / 10], t[REPS - 1], REPS);
    cairo_surface_destroy(sf);
    viz_scene_free(&s);
    return 0;
}

int main(void) {
    double m16, m1024, mcmp;
    printf("bench_viz: one frame of the block-pool scene, cairo image surface 1280x800\n");
    if (bench("16 blocks x 4 slots", 16, 4, 0, &m16) ||
        bench("1024 blocks x 16 slots", 1024, 16, 0, &m1024) ||
        bench("1024 blocks x 16, --compare", 1024, 16, 1, &mcmp)) {
        fprintf(stderr, "bench_viz: out of memory\n");
        return 1;
    }
    printf("render 1024 blocks: %.2f ms per frame (target < 16 ms): %s\n", m1024,
           m1024 < 16 ? "met" : "MISSED");
    return 0;
}
