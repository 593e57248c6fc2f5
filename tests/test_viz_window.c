/* test_viz_window: the SDL2 path.  Under the dummy video driver the window
 * draws a known scene and its screenshot hook (read back from the SDL
 * renderer) shows the right colours at the right blocks.  Under Xvfb (skipped
 * when xvfb-run is absent) `pagesim --blocks 16` opens a real window whose
 * screenshot matches the PNG the file export draws of the same step. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "viz/scene.h"
#include "viz/render.h"
#include "viz/window.h"

static void pixel(cairo_surface_t *sf, double x, double y, int rgb[3]) {
    unsigned char *d = cairo_image_surface_get_data(sf);
    int stride = cairo_image_surface_get_stride(sf);
    uint32_t v = *(uint32_t *)(d + (int)y * stride + (int)x * 4);
    rgb[0] = (v >> 16) & 255; rgb[1] = (v >> 8) & 255; rgb[2] = v & 255;
}
static bool near_rgb(const int c[3], const double w[3], int tol) {
    for (int i = 0; i < 3; i++) if (abs(c[i] - (int)lround(w[i] * 255)) > tol) return false;
    return true;
}

typedef struct fake { viz_scene s; } fake;
static int f_step(void *c, char *e, size_t n) { (void)c; (void)e; (void)n; return 0; }
static int f_restart(void *c, char *e, size_t n) { (void)c; (void)e; (void)n; return 0; }
static const viz_scene *f_scene(void *c) { return &((fake *)c)->s; }

static void test_dummy_driver(void **st) {
    (void)st;
    mkdir("build", 0777); mkdir("build/tmp", 0777);
    const char *shot = "build/tmp/test_viz_window_dummy.png";
    remove(shot);
    setenv("SDL_VIDEODRIVER", "dummy", 1);
    fake fk;
    assert_int_equal(viz_scene_init(&fk.s, 16, 4), 0);
    fk.s.pool.blocks[5] = (viz_block){ 2, 1, 4, false, false };
    fk.s.pool.blocks[6] = (viz_block){ 5, 2, 3, false, false };
    viz_pool_count(&fk.s.pool);
    viz_player p = { &fk, f_step, f_restart, f_scene };
    viz_window_opts o = { 800, 600, false, 100, "test", .screenshot = shot };
    char err[256];
    int rc = viz_window_run(&p, &o, err, sizeof err);
    if (rc == 1) { fprintf(stderr, "skip: no SDL dummy driver: %s\n", err); skip(); }
    assert_int_equal(rc, 0);
    cairo_surface_t *sf = cairo_image_surface_create_from_png(shot);
    assert_int_equal(cairo_surface_status(sf), CAIRO_STATUS_SUCCESS);
    int w = cairo_image_surface_get_width(sf), h = cairo_image_surface_get_height(sf);
    assert_true(w >= 200 && h >= 150);
    viz_layout L;
    viz_layout_make(&L, &fk.s, w, h);
    int c[3]; double want[3], white[3] = {1, 1, 1};
    viz_rect r = viz_layout_slot(&L.pool, 5, 2);
    pixel(sf, r.x + r.w / 2, r.y + r.h / 2, c);
    viz_owner_rgb(2, want, NULL);
    assert_true(near_rgb(c, want, 4));
    r = viz_layout_slot(&L.pool, 6, 0);
    pixel(sf, r.x + r.w / 2, r.y + r.h / 2, c);
    viz_owner_rgb(5, want, NULL);
    assert_true(near_rgb(c, want, 4));
    r = viz_layout_slot(&L.pool, 6, 3);                     /* its empty slot */
    pixel(sf, r.x + r.w / 2, r.y + r.h / 2, c);
    assert_true(near_rgb(c, white, 4));
    /* hovering block 5 shows the tooltip (a dark box below-right of the
     * pointer) over what was a light area */
    viz_rect b5 = viz_layout_block(&L.pool, 5);
    int mx = (int)(b5.x + b5.w / 2), my = (int)(b5.y + b5.h / 2);
    int before[3];
    pixel(sf, mx + 30, my + 18 + L.font * 0.3, before);
    cairo_surface_destroy(sf);
    o.hover = true; o.hover_x = mx; o.hover_y = my;     /* the tooltip shows */
    assert_int_equal(viz_window_run(&p, &o, err, sizeof err), 0);
    sf = cairo_image_surface_create_from_png(shot);
    assert_int_equal(cairo_surface_status(sf), CAIRO_STATUS_SUCCESS);
    int after[3];
    pixel(sf, mx + 30, my + 18 + L.font * 0.3, after);
    assert_true(before[0] + before[1] + before[2] > 400);
    assert_true(after[0] + after[1] + after[2] < 150);
    cairo_surface_destroy(sf);
    viz_scene_free(&fk.s);
}

/* Share of pixels that differ by more than 8 per channel. */
static double diff_share(cairo_surface_t *a, cairo_surface_t *b) {
    int w = cairo_image_surface_get_width(a), h = cairo_image_surface_get_height(a);
    long bad = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int p[3], q[3];
            pixel(a, x, y, p); pixel(b, x, y, q);
            if (abs(p[0] - q[0]) > 8 || abs(p[1] - q[1]) > 8 || abs(p[2] - q[2]) > 8) bad++;
        }
    return (double)bad / ((double)w * h);
}

/* system(), again when the command could not be executed (126/127): another
 * make may be relinking pagesim at that moment. */
static int run_cmd(const char *cmd) {
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        rc = system(cmd);
        if (!WIFEXITED(rc) || (WEXITSTATUS(rc) != 126 && WEXITSTATUS(rc) != 127)) break;
        sleep(2);
    }
    return rc;
}

static void test_xvfb_window(void **st) {
    (void)st;
    if (system("command -v xvfb-run >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skip: xvfb-run absent\n"); skip();
    }
    char bin[1024], cmd[4096];
    snprintf(bin, sizeof bin, "%s/pagesim", tu_bindir());
    TU_REQUIRE_FILE(bin);
    mkdir("build", 0777); mkdir("build/tmp", 0777);
    const char *shot = "build/tmp/test_viz_xvfb.png", *ref = "build/tmp/test_viz_xvfb_ref.png";
    remove(shot); remove(ref);
    /* a real X server; the window's own frame after 5 steps */
    snprintf(cmd, sizeof cmd,
             "env -u SDL_VIDEODRIVER ASAN_OPTIONS=detect_leaks=0 PAGESIM_SCREENSHOT=%s PAGESIM_SCREENSHOT_STEP=5 "
             "timeout 60 xvfb-run -a -s '-screen 0 1400x900x24' %s --blocks 16 --size 1280x800 "
             ">build/tmp/test_viz_xvfb.log 2>&1", shot, bin);
    int rc = run_cmd(cmd);
    if (rc != 0) {
        system("cat build/tmp/test_viz_xvfb.log >&2");
        fail_msg("pagesim under xvfb-run exited %d", rc);
    }
    cairo_surface_t *a = cairo_image_surface_create_from_png(shot);
    assert_int_equal(cairo_surface_status(a), CAIRO_STATUS_SUCCESS);
    int w = cairo_image_surface_get_width(a), h = cairo_image_surface_get_height(a);
    assert_true(w >= 400 && h >= 300);
    /* the file export of the same step at the same size */
    snprintf(cmd, sizeof cmd, "%s --blocks 16 --step 5 --size %dx%d --png %s >/dev/null", bin, w, h, ref);
    assert_int_equal(run_cmd(cmd), 0);
    cairo_surface_t *b = cairo_image_surface_create_from_png(ref);
    assert_int_equal(cairo_surface_status(b), CAIRO_STATUS_SUCCESS);
    assert_int_equal(cairo_image_surface_get_width(b), w);
    assert_int_equal(cairo_image_surface_get_height(b), h);
    /* the window shows the pool: owner colours present, same picture as the file */
    double want[3];
    viz_owner_rgb(0, want, NULL);
    long hits = 0;
    for (int y = 0; y < h; y += 2)
        for (int x = 0; x < w; x += 2) { int c[3]; pixel(a, x, y, c); if (near_rgb(c, want, 3)) hits++; }
    assert_true(hits > 200);
    double d = diff_share(a, b);
    fprintf(stderr, "xvfb: %dx%d, %ld owner-0 samples, %.4f%% pixels differ from the PNG export\n",
            w, h, hits, d * 100);
    assert_true(d < 0.01);
    cairo_surface_destroy(a);
    cairo_surface_destroy(b);
}

/* Under `make asan`: SDL's video drivers (loaded with dlopen, unloaded at
 * SDL_Quit) leave allocations LeakSanitizer cannot even name; leak checking
 * is off for this binary and for the window it starts (the other viz tests
 * keep it, with fontconfig and cairo's caches suppressed). */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void) { return "detect_leaks=0"; }

/* Keys in a real window: three steps, save, restart, save, quit. */
static void test_xvfb_keys(void **st) {
    (void)st;
    if (system("command -v xvfb-run >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skip: xvfb-run absent\n"); skip();
    }
    char bin[1024], cmd[4096], abs_bin[2048];
    snprintf(bin, sizeof bin, "%s/pagesim", tu_bindir());
    TU_REQUIRE_FILE(bin);
    if (!realpath(bin, abs_bin)) fail_msg("realpath %s", bin);
    mkdir("build", 0777); mkdir("build/tmp", 0777);
    run_cmd("rm -rf build/tmp/test_viz_keys && mkdir -p build/tmp/test_viz_keys");
    snprintf(cmd, sizeof cmd,
             "cd build/tmp/test_viz_keys && env -u SDL_VIDEODRIVER ASAN_OPTIONS=detect_leaks=0 "
             "PAGESIM_KEYS='   srsq' timeout 60 xvfb-run -a -s '-screen 0 1400x900x24' %s --blocks 16 "
             "--size 1280x800 >log 2>&1", abs_bin);
    assert_int_equal(run_cmd(cmd), 0);
    const char *want[2] = { "build/tmp/test_viz_keys/pagesim-step0003.png",
                            "build/tmp/test_viz_keys/pagesim-step0000.png" };
    for (int i = 0; i < 2; i++) {
        cairo_surface_t *sf = cairo_image_surface_create_from_png(want[i]);
        if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) fail_msg("%s: not written", want[i]);
        assert_int_equal(cairo_image_surface_get_width(sf), 1280);
        cairo_surface_destroy(sf);
    }
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_dummy_driver),
        cmocka_unit_test(test_xvfb_window),
        cmocka_unit_test(test_xvfb_keys),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
