/* test_viz_charts: `pagesim run --plot` figures.  The waste shares computed
 * from step series, the PNG's size and its bars' lengths (pixels of the token
 * colour in proportion to the token shares), an SVG that is XML, a PDF, and a
 * chart of real simulator runs (paged vs orca-max). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include <cairo.h>
#include "viz/charts.h"
#include "sim/simulate.h"

static void steps_of(met_step *st, int n, long tok, long resv, long intf, long ext) {
    memset(st, 0, (size_t)n * sizeof *st);
    for (int k = 0; k < n; k++) {
        st[k].time = 0.01 * (k + 1);
        st[k].dt = 0.01;
        st[k].slots_total = 1000;
        st[k].token_slots = tok * (k + 1) / n;
        st[k].reserved_slots = resv;
        st[k].internal_frag = intf;
        st[k].external_frag = ext;
        st[k].free_slots = 1000 - st[k].token_slots - resv - intf - ext;
    }
}

static void test_waste_shares(void **st) {
    (void)st;
    met_step s[4];
    steps_of(s, 4, 400, 100, 50, 0);
    viz_waste w = viz_waste_of_steps("x", s, 4);
    /* token slots 100,200,300,400 (mean 250) against 150 of waste each step */
    double t = 250.0, held = 250.0 + 150.0;
    assert_float_equal(w.token, t / held, 1e-9);
    assert_float_equal(w.reserved, 100.0 / held, 1e-9);
    assert_float_equal(w.internal, 50.0 / held, 1e-9);
    assert_float_equal(w.token + w.reserved + w.internal + w.external, 1.0, 1e-9);
    met_summary m;
    memset(&m, 0, sizeof m);
    m.share_token = 0.2; m.share_reserved = 0.1; m.share_internal = 0.05; m.share_external = 0.05;
    w = viz_waste_of_summary("y", &m);
    assert_float_equal(w.token, 0.5, 1e-9);
    assert_string_equal(w.label, "y");
}

static void pixel(cairo_surface_t *sf, int x, int y, int rgb[3]) {
    unsigned char *d = cairo_image_surface_get_data(sf);
    uint32_t v = *(uint32_t *)(d + y * cairo_image_surface_get_stride(sf) + x * 4);
    rgb[0] = (v >> 16) & 255; rgb[1] = (v >> 8) & 255; rgb[2] = v & 255;
}

static void test_files_and_bars(void **st) {
    (void)st;
    mkdir("build", 0777); mkdir("build/tmp", 0777);
    met_step a[50], b[50];
    steps_of(a, 50, 900, 0, 30, 0);
    steps_of(b, 50, 300, 500, 100, 50);
    viz_run_series runs[2] = { { "paged", a, 50 }, { "orca-max", b, 50 } };
    viz_waste bars[2];
    memset(bars, 0, sizeof bars);
    snprintf(bars[0].label, sizeof bars[0].label, "high");
    bars[0].token = 0.8; bars[0].reserved = 0.2; bars[0].paper = -1;
    snprintf(bars[1].label, sizeof bars[1].label, "low");
    bars[1].token = 0.2; bars[1].reserved = 0.5; bars[1].internal = 0.3; bars[1].paper = 0.25;
    char err[256];
    const char *png = "build/tmp/test_viz_chart.png", *svg = "build/tmp/test_viz_chart.svg",
               *pdf = "build/tmp/test_viz_chart.pdf";
    assert_int_equal(viz_plot_run(png, runs, 2, bars, 2, 900, 600, err, sizeof err), 0);
    assert_int_equal(viz_plot_run(svg, runs, 2, bars, 2, 900, 600, err, sizeof err), 0);
    assert_int_equal(viz_plot_run(pdf, runs, 0, bars, 2, 900, 300, err, sizeof err), 0);
    cairo_surface_t *sf = cairo_image_surface_create_from_png(png);
    assert_int_equal(cairo_surface_status(sf), CAIRO_STATUS_SUCCESS);
    int w = cairo_image_surface_get_width(sf), h = cairo_image_surface_get_height(sf);
    assert_int_equal(w, 900);
    assert_int_equal(h, 600);
    /* the token colour (bluish green 009E73): per row, the longest run in the
     * lower part; the two bars' runs are in the ratio of their token shares */
    int best[2] = {0, 0}, nb = 0, prev = 0;
    for (int y = h * 3 / 4 + 10; y < h; y++) {   /* below the time series */
        int run = 0, longest = 0;
        for (int x = 0; x < w; x++) {
            int c[3]; pixel(sf, x, y, c);
            if (abs(c[0] - 0x00) < 6 && abs(c[1] - 0x9E) < 6 && abs(c[2] - 0x73) < 6) { if (++run > longest) longest = run; }
            else run = 0;
        }
        if (longest > 20 && prev <= 20) nb++;
        if (longest > 20 && nb >= 1 && nb <= 2 && longest > best[nb - 1]) best[nb - 1] = longest;
        prev = longest;
    }
    assert_true(nb >= 2);
    double ratio = (double)best[0] / best[1];
    fprintf(stderr, "bars: %d px and %d px, ratio %.2f (want 4)\n", best[0], best[1], ratio);
    assert_true(ratio > 3.3 && ratio < 4.7);
    cairo_surface_destroy(sf);
    /* SVG: an XML document with a root <svg> element that closes */
    FILE *f = fopen(svg, "r");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    assert_true(n > 100);
    assert_memory_equal(buf, "<?xml", 5);
    assert_non_null(strstr(buf, "<svg"));
    assert_non_null(strstr(buf, "</svg>"));
    assert_non_null(strstr(buf, "width=\"900\""));
    f = fopen(pdf, "r");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, 5, f), 5);
    fclose(f);
    assert_memory_equal(buf, "%PDF-", 5);
    /* errors name the file */
    assert_int_equal(viz_plot_run("build/tmp/x.gif", runs, 2, bars, 2, 900, 600, err, sizeof err), -1);
    assert_non_null(strstr(err, "x.gif"));
    assert_int_equal(viz_plot_run(png, NULL, 0, NULL, 0, 900, 600, err, sizeof err), -1);
}

static void test_real_runs(void **st) {
    (void)st;
    int n = 40, pl[40], ol[40];
    double arr[40];
    for (int i = 0; i < n; i++) { pl[i] = 20 + (i * 37) % 60; ol[i] = 10 + (i * 53) % 90; arr[i] = 0.01 * i; }
    kv_policy pol[2] = { KV_PAGED, KV_ORCA_MAX };
    sim_result r[2];
    viz_run_series runs[2];
    viz_waste bars[2];
    char err[256];
    for (int p = 0; p < 2; p++) {
        sim_config c = sim_config_default();
        c.kv.policy = pol[p];
        c.kv.num_blocks = 64;
        c.kv.block_size = 16;
        c.kv.max_model_len = 256;
        c.kv.orca_max_len = 256;
        c.sched.max_model_len = 256;
        c.keep_steps = true;
        if (sim_run_lengths(&c, pl, ol, arr, n, &r[p], err, sizeof err)) fail_msg("%s", err);
        runs[p] = (viz_run_series){ kv_policy_name(pol[p]), r[p].steps, r[p].num_steps };
        bars[p] = viz_waste_of_summary(kv_policy_name(pol[p]), &r[p].summary);
    }
    assert_true(bars[0].token > bars[1].token);   /* paging wastes less */
    assert_int_equal(viz_plot_run("build/tmp/test_viz_chart_real.png", runs, 2, bars, 2, 1000, 640,
                                  err, sizeof err), 0);
    cairo_surface_t *sf = cairo_image_surface_create_from_png("build/tmp/test_viz_chart_real.png");
    assert_int_equal(cairo_image_surface_get_width(sf), 1000);
    cairo_surface_destroy(sf);
    /* the one-call form pagesim run --plot uses */
    const char *labels[2] = { "paged", "orca-max" };
    double paper[2] = { 0.963, 0.204 };
    assert_int_equal(viz_plot_results("build/tmp/test_viz_chart_results.svg", labels, r, 2, paper,
                                      err, sizeof err), 0);
    FILE *f = fopen("build/tmp/test_viz_chart_results.svg", "r");
    assert_non_null(f);
    char head[6] = {0};
    assert_int_equal(fread(head, 1, 5, f), 5);
    fclose(f);
    assert_string_equal(head, "<?xml");
    for (int p = 0; p < 2; p++) sim_result_free(&r[p]);
}

/* Under `make asan`: fontconfig, cairo's font caches and SDL keep
 * process-lifetime allocations that LeakSanitizer reports; not ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\nleak:libcairo.so\nleak:libSDL2\nleak:libX11.so\nleak:libdbus\n";
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_waste_shares),
        cmocka_unit_test(test_files_and_bars),
        cmocka_unit_test(test_real_runs),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
