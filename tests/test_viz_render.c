/* test_viz_render: the cairo renderer draws what the scene says, where the
 * layout says: pixels at known block positions (an owned slot, an empty one,
 * a shared block's badge, a cached block apart from a free one), layouts at
 * 16, 64 and 1024 blocks without overlaps, hit testing, and PNG/SVG/PDF files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "viz/scene.h"
#include "viz/render.h"
#include "viz/export.h"

#define W 1280
#define H 800

/* 16 blocks of 4: #0 s0 full, #1 s1 two tokens, #2 shared by s0 and s2
 * (ref 2), #3 cached, #4.. free. */
static void known_scene(viz_scene *s) {
    assert_int_equal(viz_scene_init(s, 16, 4), 0);
    viz_pool *p = &s->pool;
    p->blocks[0] = (viz_block){ 0, 1, 4, false, false };
    p->blocks[1] = (viz_block){ 1, 1, 2, false, false };
    p->blocks[2] = (viz_block){ 0, 2, 3, false, false };
    p->blocks[3] = (viz_block){ -1, 0, 0, true, false };
    int t0[2] = { 0, 2 }, t1[1] = { 1 }, t2[1] = { 2 };
    assert_true(viz_pool_add_seq(p, 0, 0, VIZ_Q_RUNNING, 5, 7, t0, 2) >= 0);
    assert_true(viz_pool_add_seq(p, 1, 1, VIZ_Q_RUNNING, 2, 2, t1, 1) >= 0);
    assert_true(viz_pool_add_seq(p, 2, 0, VIZ_Q_RUNNING, 3, 3, t2, 1) >= 0);
    for (int i = 0; i < 3; i++) assert_int_equal(viz_pool_enqueue(p, VIZ_Q_RUNNING, i), 0);
    assert_int_equal(viz_pool_enqueue(p, VIZ_Q_WAITING, 3), 0);
    viz_pool_count(p);
    s->step = 7;
    snprintf(s->title, sizeof s->title, "test scene");
}

/* RGB (0..255) of pixel (x, y) of an ARGB32 surface. */
static void pixel(cairo_surface_t *sf, double x, double y, int rgb[3]) {
    unsigned char *d = cairo_image_surface_get_data(sf);
    int stride = cairo_image_surface_get_stride(sf);
    uint32_t v = *(uint32_t *)(d + (int)y * stride + (int)x * 4);
    rgb[0] = (v >> 16) & 255; rgb[1] = (v >> 8) & 255; rgb[2] = v & 255;
}
static void assert_rgb(const int got[3], const double want[3], int tol) {
    for (int i = 0; i < 3; i++) {
        int w = (int)lround(want[i] * 255);
        if (abs(got[i] - w) > tol) fail_msg("channel %d: got %d, want %d (±%d)", i, got[i], w, tol);
    }
}
/* Mean RGB over a rectangle. */
static void mean_rgb(cairo_surface_t *sf, viz_rect r, double out[3]) {
    double s[3] = {0}; int n = 0;
    for (int y = (int)r.y; y < (int)(r.y + r.h); y++)
        for (int x = (int)r.x; x < (int)(r.x + r.w); x++) {
            int c[3]; pixel(sf, x, y, c);
            for (int i = 0; i < 3; i++) s[i] += c[i];
            n++;
        }
    for (int i = 0; i < 3; i++) out[i] = n ? s[i] / n : 0;
}

static void test_pixels_at_blocks(void **st) {
    (void)st;
    viz_scene s; known_scene(&s);
    cairo_surface_t *sf = viz_render_image(&s, W, H);
    assert_non_null(sf);
    viz_layout L; viz_layout_make(&L, &s, W, H);
    assert_true(L.pool.slots);
    assert_true(L.pool.labels);
    double want[3], white[3] = {1, 1, 1};
    int c[3];
    /* an owned slot holding a token: the owner's colour */
    viz_rect r = viz_layout_slot(&L.pool, 0, 1);
    pixel(sf, r.x + r.w / 2, r.y + r.h / 2, c);
    viz_owner_rgb(0, want, NULL);
    assert_rgb(c, want, 3);
    r = viz_layout_slot(&L.pool, 1, 0);
    pixel(sf, r.x + r.w / 2, r.y + r.h / 2, c);
    viz_owner_rgb(1, want, NULL);
    assert_rgb(c, want, 3);
    /* an empty slot of a held block, and of a free block: white */
    r = viz_layout_slot(&L.pool, 1, 3);
    pixel(sf, r.x + r.w / 2, r.y + r.h / 2, c);
    assert_rgb(c, white, 3);
    r = viz_layout_slot(&L.pool, 9, 0);
    pixel(sf, r.x + r.w / 2, r.y + r.h / 2, c);
    assert_rgb(c, white, 3);
    /* a free block's body (between its slots): the free colour */
    viz_rect b9 = viz_layout_block(&L.pool, 9);
    viz_rect s0 = viz_layout_slot(&L.pool, 9, 0);
    pixel(sf, b9.x + b9.w / 2, s0.y + s0.h + (b9.y + b9.h - s0.y - s0.h) / 2, c);
    viz_free_rgb(want);
    assert_rgb(c, want, 3);
    /* the shared block's ref-count badge is dark; a block with ref 1 has none there */
    viz_rect bd = viz_layout_badge(&L.pool, 2);
    pixel(sf, bd.x + bd.h * 0.35, bd.y + bd.h * 0.2, c);
    assert_true(c[0] < 80 && c[1] < 80 && c[2] < 80);
    bd = viz_layout_badge(&L.pool, 0);
    pixel(sf, bd.x + bd.h * 0.35, bd.y + bd.h * 0.2, c);
    assert_false(c[0] < 80 && c[1] < 80 && c[2] < 80);
    /* the cached block is drawn apart from a plain free one */
    viz_rect b3 = viz_layout_block(&L.pool, 3), b4 = viz_layout_block(&L.pool, 4);
    double m3[3], m4[3];
    mean_rgb(sf, (viz_rect){ b3.x + 4, b3.y + 4, b3.w - 8, b3.h - 8 }, m3);
    mean_rgb(sf, (viz_rect){ b4.x + 4, b4.y + 4, b4.w - 8, b4.h - 8 }, m4);
    double d = fabs(m3[0] - m4[0]) + fabs(m3[1] - m4[1]) + fabs(m3[2] - m4[2]);
    assert_true(d > 20);
    /* and a block changes colour with its owner */
    s.pool.blocks[0].owner = 4;
    cairo_surface_t *sf2 = viz_render_image(&s, W, H);
    r = viz_layout_slot(&L.pool, 0, 1);
    pixel(sf2, r.x + r.w / 2, r.y + r.h / 2, c);
    viz_owner_rgb(4, want, NULL);
    assert_rgb(c, want, 3);
    cairo_surface_destroy(sf2);
    cairo_surface_destroy(sf);
    viz_scene_free(&s);
}

static void test_palette_distinct(void **st) {
    (void)st;
    for (int i = 0; i < 7; i++)
        for (int j = i + 1; j < 7; j++) {
            double a[3], b[3];
            viz_owner_rgb(i, a, NULL);
            viz_owner_rgb(j, b, NULL);
            double d = fabs(a[0] - b[0]) + fabs(a[1] - b[1]) + fabs(a[2] - b[2]);
            assert_true(d > 0.25);
        }
    bool s0, s7;
    double a[3], b[3];
    viz_owner_rgb(0, a, &s0);
    viz_owner_rgb(7, b, &s7);
    assert_false(s0);
    assert_true(s7);   /* past the palette: the same hue, striped */
}

static bool overlaps(viz_rect a, viz_rect b) {
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/* Every block inside the canvas, off the side panel and the header, no two overlapping. */
static void check_layout(int n, int bs, bool cmp, bool want_slots) {
    viz_scene s;
    assert_int_equal(viz_scene_synthetic(&s, n, bs, 3), 0);
    if (cmp) { assert_int_equal(viz_pool_init(&s.cmp, "contiguous", n, bs), 0); s.has_cmp = true; }
    viz_layout L; viz_layout_make(&L, &s, W, H);
    for (int g = 0; g < (cmp ? 2 : 1); g++) {
        const viz_grid *gr = g ? &L.cmp : &L.pool;
        assert_int_equal(gr->slots, want_slots);
        viz_rect prev = {0};
        for (int b = 0; b < n; b++) {
            viz_rect r = viz_layout_block(gr, b);
            assert_true(r.w >= 2 && r.h >= 2);
            assert_true(r.x >= 0 && r.y >= L.header.y + L.header.h && r.x + r.w <= W && r.y + r.h <= H);
            assert_false(overlaps(r, L.side));
            if (cmp && g == 0) assert_false(overlaps(r, L.cmp.grid));
            if (b > 0 && b % gr->cols) assert_false(overlaps(r, prev));
            if (b >= gr->cols) assert_false(overlaps(r, viz_layout_block(gr, b - gr->cols)));
            prev = r;
            /* hit testing finds the block at its centre */
            int which = -1;
            assert_int_equal(viz_layout_hit(&L, &s, r.x + r.w / 2, r.y + r.h / 2, &which), b);
            assert_int_equal(which, g);
        }
    }
    /* it draws without a cairo error */
    cairo_surface_t *sf = viz_render_image(&s, W, H);
    assert_non_null(sf);
    assert_int_equal(cairo_surface_status(sf), CAIRO_STATUS_SUCCESS);
    cairo_surface_destroy(sf);
    viz_scene_free(&s);
}

static void test_layout_16(void **st)   { (void)st; check_layout(16, 4, false, true); check_layout(16, 4, true, true); }
static void test_layout_64(void **st)   { (void)st; check_layout(64, 4, false, true); check_layout(64, 16, true, true); }
static void test_layout_1024(void **st) { (void)st; check_layout(1024, 16, false, false); check_layout(1024, 16, true, false); }

static void test_files(void **st) {
    (void)st;
    mkdir("build", 0777);
    mkdir("build/tmp", 0777);
    viz_scene s; known_scene(&s);
    char err[256];
    const char *png = "build/tmp/test_viz_render.png", *svg = "build/tmp/test_viz_render.svg",
               *pdf = "build/tmp/test_viz_render.pdf";
    assert_int_equal(viz_export_scene(&s, png, 640, 400, err, sizeof err), 0);
    assert_int_equal(viz_export_scene(&s, svg, 640, 400, err, sizeof err), 0);
    assert_int_equal(viz_export_scene(&s, pdf, 640, 400, err, sizeof err), 0);
    cairo_surface_t *sf = cairo_image_surface_create_from_png(png);
    assert_int_equal(cairo_surface_status(sf), CAIRO_STATUS_SUCCESS);
    assert_int_equal(cairo_image_surface_get_width(sf), 640);
    assert_int_equal(cairo_image_surface_get_height(sf), 400);
    /* the PNG holds the same pixels as a direct render */
    cairo_surface_flush(sf);
    viz_layout L; viz_layout_make(&L, &s, 640, 400);
    viz_rect r = viz_layout_slot(&L.pool, 0, 0);
    int c[3]; double want[3];
    pixel(sf, r.x + r.w / 2, r.y + r.h / 2, c);
    viz_owner_rgb(0, want, NULL);
    assert_rgb(c, want, 3);
    cairo_surface_destroy(sf);
    FILE *f = fopen(svg, "r");
    assert_non_null(f);
    char buf[512] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(buf, "<svg"));
    f = fopen(pdf, "r");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, 5, f), 5);
    fclose(f);
    assert_memory_equal(buf, "%PDF-", 5);
    /* bad names fail with a message naming the file */
    assert_int_equal(viz_export_scene(&s, "build/tmp/x.bmp", 640, 400, err, sizeof err), -1);
    assert_non_null(strstr(err, "x.bmp"));
    assert_int_equal(viz_export_scene(&s, "/nonexistent-dir/a.png", 640, 400, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/a.png"));
    viz_scene_free(&s);
}

static void test_scene_copy(void **st) {
    (void)st;
    viz_scene s, d;
    known_scene(&s);
    assert_int_equal(viz_pool_push_history(&s.pool), 0);
    assert_int_equal(viz_pool_push_history(&s.pool), 0);
    assert_int_equal(viz_scene_copy(&d, &s), 0);
    assert_int_equal(d.pool.hist_n, 2);
    assert_float_equal(d.pool.hist_tokens[1], 9.0 / 64, 1e-6);
    assert_float_equal(d.pool.hist_held[1], 3.0 * 4 / 64, 1e-6);
    assert_int_equal(d.pool.num_seqs, 3);
    assert_int_equal(d.pool.seqs[0].table[1], 2);
    assert_int_equal(d.pool.queue_len[VIZ_Q_WAITING], 1);
    assert_int_equal(d.pool.c.blocks_used, 3);
    assert_int_equal(d.pool.c.tokens_held, 9);
    assert_int_equal(d.pool.c.blocks_cached, 1);
    s.pool.seqs[0].table[1] = 9;       /* a deep copy */
    assert_int_equal(d.pool.seqs[0].table[1], 2);
    viz_scene_free(&d);
    viz_scene_free(&s);
    assert_int_equal(viz_scene_init(&s, 0, 4), -1);
}

/* Under `make asan`: fontconfig, cairo's font caches and SDL keep
 * process-lifetime allocations that LeakSanitizer reports; not ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\nleak:libcairo.so\nleak:libSDL2\nleak:libX11.so\nleak:libdbus\n";
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_pixels_at_blocks),
        cmocka_unit_test(test_palette_distinct),
        cmocka_unit_test(test_layout_16),
        cmocka_unit_test(test_layout_64),
        cmocka_unit_test(test_layout_1024),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_scene_copy),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
