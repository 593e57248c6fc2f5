/* Tests of operator-profile step times (sim/op_profile.c) with a synthetic
 * profile: interpolation inside and beyond the measured points, a step's time
 * summed op by op, the file round trip and its errors (file and field, or the
 * line of a JSON syntax error), finding a profile by GPU and shape, the
 * roofline fallback when there is none, determinism of a simulation on a
 * profile, the host's time between steps (opp_post_time: in the simulated
 * clock, not in a step's own time), and the pagesim run / calibrate options
 * that use one. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "sim/op_profile.h"
#include "sim/calibrate.h"
#include "sim/simulate.h"
#include "sim/sim_executor.h"

#define TMP "build/tmp/op_profile"

static void near(double a, double b, double tol) {
    if (fabs(a - b) > tol * (fabs(b) > 1 ? fabs(b) : 1)) fail_msg("%.9g != %.9g", a, b);
}

/* A profile of qwen2.5-0.5b's shape whose ops are linear in their argument,
 * measured at powers of two, so every interpolated value is known exactly. */
static void synthetic(opp_profile *p, const mc_config *c) {
    memset(p, 0, sizeof *p);
    snprintf(p->gpu, sizeof p->gpu, "NVIDIA H200");
    snprintf(p->model, sizeof p->model, "%s", c->name);
    p->tp = 1; p->block_size = 16;
    p->hidden = c->hidden_size; p->layers = c->num_layers; p->heads = c->num_heads; p->kv_heads = c->num_kv_heads;
    p->head_dim = c->head_dim; p->intermediate = c->intermediate_size; p->vocab = c->vocab_size;
    for (double x = 1; x <= 4096; x *= 2) {
        for (int k = 0; k < OPP_NGEMM; k++) opp_curve_add(&p->gemm[k], x, 5 + (k + 1) * 0.01 * x);
        opp_curve_add(&p->elem_layer, x, 2 + 0.002 * x);
        opp_curve_add(&p->elem_step, x, 3 + 0.001 * x);
        opp_curve_add(&p->attn_prefill, x, 4 + 0.0001 * x * x);   /* not linear: the chords are what we get */
    }
    for (double r = 1; r <= 256; r *= 2) {
        opp_curve_add(&p->lm_head, r, 20 + 0.5 * r);
        opp_curve_add(&p->sampling, r, 10 + 0.1 * r);
    }
    opp_grid *g = &p->attn_decode;
    double bs[] = { 1, 4, 16, 64 }, cs[] = { 128, 512, 2048 };
    g->nx = 4; g->ny = 3;
    for (int i = 0; i < 4; i++) { g->x[i] = bs[i]; }
    for (int j = 0; j < 3; j++) { g->y[j] = cs[j]; }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) g->us[i][j] = 3 + 0.001 * bs[i] * cs[j];
    p->step_overhead_us = 300;
    p->per_seq_us = 2;
    p->gpu_floor_us = 0;
}

static mc_config small_config(void) {
    mc_config c;
    char err[256];
    if (mc_load(&c, "data/models/qwen2.5-0.5b.json", err, sizeof err)) fail_msg("%s", err);
    return c;
}

static void test_interpolation(void **st) {
    (void)st;
    opp_curve c = { 0 };
    assert_true(opp_curve_at(&c, 10) == 0);                     /* absent op */
    assert_int_equal(opp_curve_add(&c, 10, 100), 0);
    assert_int_equal(opp_curve_add(&c, 2, 20), 0);              /* kept ascending */
    assert_int_equal(opp_curve_add(&c, 6, 50), 0);
    assert_int_equal(c.n, 3);
    near(c.x[0], 2, 0); near(c.x[2], 10, 0);
    near(opp_curve_at(&c, 1), 20, 1e-12);                       /* below: the floor */
    near(opp_curve_at(&c, 4), 35, 1e-12);
    near(opp_curve_at(&c, 8), 75, 1e-12);
    near(opp_curve_at(&c, 20), 100 + 12.5 * 10, 1e-12);         /* beyond: the last slope */
    opp_curve_add(&c, 6, 40);                                   /* a repeated x replaces */
    assert_int_equal(c.n, 3);
    near(opp_curve_at(&c, 6), 40, 0);
    opp_curve d = { 0 };
    opp_curve_add(&d, 1, 50); opp_curve_add(&d, 2, 40);
    near(opp_curve_at(&d, 100), 40, 0);                         /* never a falling extrapolation */
    opp_curve full = { 0 };
    for (int i = 0; i < OPP_MAX_POINTS; i++) assert_int_equal(opp_curve_add(&full, i + 1, i), 0);
    assert_int_equal(opp_curve_add(&full, 1000, 1), -1);

    opp_profile p;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    const opp_grid *g = &p.attn_decode;
    near(opp_grid_at(g, 4, 512), 3 + 0.001 * 4 * 512, 1e-12);  /* a grid point */
    near(opp_grid_at(g, 10, 1280), (3 + 0.001 * 4 * 512) + 0.5 * 0.001 * 4 * 1536 + 0.5 * 0.001 * 12 * 512
                                       + 0.25 * 0.001 * 12 * 1536, 1e-9);   /* bilinear */
    near(opp_grid_at(g, 128, 2048), 2 * (3 + 0.001 * 64 * 2048), 1e-12);   /* beyond: proportional */
    near(opp_grid_at(g, 128, 4096), 4 * (3 + 0.001 * 64 * 2048), 1e-12);   /* ... in both */
    near(opp_grid_at(g, 0.5, 16), 3 + 0.001 * 128, 1e-12);                 /* below: clamped */
}

static void test_step_time_by_ops(void **st) {
    (void)st;
    opp_profile p;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    double L = mc.num_layers;
    /* 32 decode sequences of context 512 */
    cm_batch d = { .num_seqs = 32, .decode_tokens = 32, .attn_ctx_tokens = 32 * 512, .attn_pairs = 32 * 512 };
    double gemms = 0;
    for (int k = 0; k < OPP_NGEMM; k++) gemms += 5 + (k + 1) * 0.01 * 32;
    double want = 300 + 2 * 32 + L * (gemms + 2 + 0.002 * 32 + opp_grid_at(&p.attn_decode, 32, 512)) +
                  3 + 0.001 * 32 + 20 + 0.5 * 32 + 10 + 0.1 * 32;
    near(opp_step_time(&p, &d), want * 1e-6, 1e-12);
    /* one fresh prompt of 256 tokens: its pairs price a prefill of 256 */
    cm_batch f = { .num_seqs = 1, .prefill_tokens = 256, .attn_ctx_tokens = 256, .attn_pairs = 256 * 257 / 2 };
    double t256 = opp_step_time(&p, &f);
    gemms = 0;
    for (int k = 0; k < OPP_NGEMM; k++) gemms += 5 + (k + 1) * 0.01 * 256;
    double pre = opp_curve_at(&p.attn_prefill, sqrt(256.0 * 257));
    want = 300 + 2 + L * (gemms + 2 + 0.002 * 256 + pre) + 3 + 0.256 + 20.5 + 10.1;
    near(t256, want * 1e-6, 1e-12);
    /* a mixed step costs more than either part, less than both apart */
    cm_batch m = { .num_seqs = 33, .prefill_tokens = 256, .decode_tokens = 32,
                   .attn_ctx_tokens = 32 * 512 + 256, .attn_pairs = 32 * 512 + 256 * 257 / 2 };
    double tm = opp_step_time(&p, &m), td = opp_step_time(&p, &d);
    assert_true(tm > t256 && tm > td && tm < t256 + td);
    gemms = 0;
    for (int k = 0; k < OPP_NGEMM; k++) gemms += 5 + (k + 1) * 0.01 * 288;
    want = 300 + 2 * 33 + L * (gemms + 2 + 0.002 * 288 + opp_grid_at(&p.attn_decode, 32, 512) + pre) +
           3 + 0.288 + 20 + 0.5 * 33 + 10 + 0.1 * 33;
    near(tm, want * 1e-6, 1e-12);
    cm_batch idle = { 0 };
    near(opp_step_time(&p, &idle), 300e-6, 1e-12);
    /* a launch floor hides the ops of small steps, not of large ones */
    p.gpu_floor_us = (td * 1e6 - 300 - 2 * 32) + 500;
    near(opp_step_time(&p, &d), td + 500e-6, 1e-12);
    near(opp_step_time(&p, &m), tm, 1e-12);
    p.gpu_floor_us = 0;
    /* MoE layers count only for MoE shapes; the all-reduce only beyond one GPU */
    opp_curve_add(&p.moe_layer, 1, 1000);
    opp_curve_add(&p.allreduce, 1, 1000);
    near(opp_step_time(&p, &d), td, 1e-15);
    p.experts = 8; p.tp = 2;
    near(opp_step_time(&p, &d), td + L * 3000e-6, 1e-9);
}

/* Top-p sampling: its own curve when the caller's requests sample so and the
 * profile measured it; greedy's times otherwise; kept by the file. */
static void test_topp_sampling(void **st) {
    (void)st;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    opp_profile p, q;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    cm_batch d = { .num_seqs = 64, .decode_tokens = 64, .attn_ctx_tokens = 64 * 512, .attn_pairs = 64 * 512 };
    double greedy = opp_step_time(&p, &d);
    p.sample_topp = 1;                                          /* asked for, not measured: greedy's */
    near(opp_step_time(&p, &d), greedy, 1e-15);
    for (double r = 1; r <= 256; r *= 2) opp_curve_add(&p.sampling_topp, r, 40 + 30 * r);
    near(opp_step_time(&p, &d), greedy + (40 + 30 * 64 - (10 + 0.1 * 64)) * 1e-6, 1e-12);
    p.sample_topp = 0;                                          /* measured, not asked for */
    near(opp_step_time(&p, &d), greedy, 1e-15);
    char err[512];
    assert_int_equal(opp_save(&p, TMP "/topp.json", err, sizeof err), 0);
    assert_int_equal(opp_load(&q, TMP "/topp.json", err, sizeof err), 0);
    assert_int_equal(q.sampling_topp.n, 9);
    assert_int_equal(q.sample_topp, 0);                         /* the caller's, never the file's */
    q.sample_topp = 1;
    near(opp_step_time(&q, &d), greedy + (40 + 30 * 64 - (10 + 0.1 * 64)) * 1e-6, 1e-9);
    remove(TMP "/topp.json");
}

/* opp_resolve: auto finds or says why not, none is the roofline, a file must match. */
static void test_resolve(void **st) {
    (void)st;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755); mkdir(TMP "/r", 0755); mkdir(TMP "/r/H200", 0755);
    opp_profile p, q;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    char err[512], used[512];
    assert_int_equal(opp_save(&p, TMP "/r/H200/small.json", err, sizeof err), 0);
    assert_int_equal(opp_resolve(&q, NULL, TMP "/r", "H200", &mc, 1, used, sizeof used, err, sizeof err), 1);
    assert_non_null(strstr(used, "small.json"));
    assert_int_equal(opp_resolve(&q, "auto", TMP "/r", "H200", &mc, 2, used, sizeof used, err, sizeof err), 0);
    assert_non_null(strstr(used, "roofline (no operator profile of H200"));
    assert_non_null(strstr(used, "at TP 2"));
    assert_int_equal(opp_resolve(&q, "auto", TMP "/r", "H100-SXM", &mc, 1, used, sizeof used, err, sizeof err), 0);
    assert_int_equal(opp_resolve(&q, "none", TMP "/r", "H200", &mc, 1, used, sizeof used, err, sizeof err), 0);
    assert_non_null(strstr(used, "--op-profile none"));
    assert_int_equal(q.layers, 0);                              /* nothing left in it */
    assert_int_equal(opp_resolve(&q, TMP "/r/H200/small.json", "nowhere", "H200", &mc, 1, used, sizeof used, err,
                                 sizeof err), 1);
    assert_string_equal(used, TMP "/r/H200/small.json");
    assert_int_equal(opp_resolve(&q, TMP "/r/H200/small.json", "nowhere", "H200", &mc, 4, used, sizeof used, err,
                                 sizeof err), -1);
    assert_non_null(strstr(err, "small.json"));
    assert_non_null(strstr(err, "TP 4"));
    assert_int_equal(opp_resolve(&q, TMP "/r/H200/absent.json", "nowhere", "H200", &mc, 1, used, sizeof used, err,
                                 sizeof err), -1);
    assert_non_null(strstr(err, "absent.json"));
    remove(TMP "/r/H200/small.json"); rmdir(TMP "/r/H200"); rmdir(TMP "/r");
}

static void test_file_round_trip_and_errors(void **st) {
    (void)st;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    opp_profile p, q;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    char err[512];
    assert_int_equal(opp_save(&p, TMP "/p.json", err, sizeof err), 0);
    assert_int_equal(opp_load(&q, TMP "/p.json", err, sizeof err), 0);
    assert_string_equal(q.gpu, p.gpu);
    assert_int_equal(q.layers, p.layers);
    assert_true(opp_matches(&q, &mc, 1));
    assert_false(opp_matches(&q, &mc, 2));
    cm_batch b = { .num_seqs = 7, .prefill_tokens = 100, .decode_tokens = 6, .attn_ctx_tokens = 3000,
                   .attn_pairs = 8000 };
    near(opp_step_time(&q, &b), opp_step_time(&p, &b), 1e-9);  /* the file keeps what matters */
    struct { const char *text, *want; } cases[] = {
        { "{\"format\": \"pagesim-op-profile\",\n \"version\": 1,\n \"shape\": [1,\n", ":4: not a JSON object" },
        { "{\"format\": \"something-else\"}", "not an operator profile" },
        { "{\"format\": \"pagesim-op-profile\", \"version\": 2}", "version" },
        { "{\"format\": \"pagesim-op-profile\", \"version\": 1, \"shape\": {\"hidden_size\": 8}}", "num_layers: missing" },
        { "{\"format\": \"pagesim-op-profile\", \"version\": 1, \"shape\": {\"hidden_size\": 8, \"num_layers\": 2, "
          "\"num_heads\": 2, \"num_kv_heads\": 2, \"head_dim\": 4, \"intermediate_size\": 16, \"vocab_size\": 10}, "
          "\"ops\": {\"gemm_o\": {\"points\": [[1, 2], [4, 3], [2, 5]]}}}", "ops.gemm_o.points[2]: x not ascending" },
        { "{\"format\": \"pagesim-op-profile\", \"version\": 1, \"shape\": {\"hidden_size\": 8, \"num_layers\": 2, "
          "\"num_heads\": 2, \"num_kv_heads\": 2, \"head_dim\": 4, \"intermediate_size\": 16, \"vocab_size\": 10}, "
          "\"ops\": {\"attn_decode\": {\"xs\": [1, 2], \"ys\": [8], \"us\": [[1]]}}}", "ops.attn_decode.us" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(TMP "/bad.json", "w");
        fputs(cases[i].text, f);
        fclose(f);
        assert_int_equal(opp_load(&q, TMP "/bad.json", err, sizeof err), -1);
        if (!strstr(err, cases[i].want) || !strstr(err, "bad.json")) fail_msg("case %zu: '%s'", i, err);
    }
    remove(TMP "/bad.json");
    assert_int_equal(opp_load(&q, TMP "/none.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "none.json"));
}

static void test_find_and_fallback(void **st) {
    (void)st;
    char err[512], path[1024];
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    mkdir(TMP "/find", 0755); mkdir(TMP "/find/H100", 0755); mkdir(TMP "/find/H200", 0755);
    opp_profile p, q;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    snprintf(p.gpu, sizeof p.gpu, "NVIDIA H100 80GB HBM3");
    assert_int_equal(opp_save(&p, TMP "/find/H100/qwen.json", err, sizeof err), 0);
    snprintf(p.gpu, sizeof p.gpu, "NVIDIA H200");
    p.step_overhead_us = 111;
    assert_int_equal(opp_save(&p, TMP "/find/H200/qwen.json", err, sizeof err), 0);
    FILE *f = fopen(TMP "/find/notes.json", "w");               /* other JSON: skipped */
    fputs("{\"note\": 1}", f);
    fclose(f);
    assert_int_equal(opp_find(&q, TMP "/find", "H200", &mc, 1, path, sizeof path, err, sizeof err), 1);
    near(q.step_overhead_us, 111, 0);
    assert_non_null(strstr(path, "H200/qwen.json"));
    assert_int_equal(opp_find(&q, TMP "/find", "H100-SXM", &mc, 1, path, sizeof path, err, sizeof err), 1);
    near(q.step_overhead_us, 300, 0);
    assert_int_equal(opp_find(&q, TMP "/find", "A100-40GB", &mc, 1, path, sizeof path, err, sizeof err), 0);
    assert_int_equal(opp_find(&q, TMP "/find", "H200", &mc, 2, path, sizeof path, err, sizeof err), 0);
    assert_int_equal(opp_find(&q, TMP "/no-such-dir", "H200", &mc, 1, path, sizeof path, err, sizeof err), 0);

    /* the cost model: the profile when set, else the roofline */
    cm_gpu g;
    cm_model m;
    assert_int_equal(cm_gpu_find(&g, "H200", err, sizeof err), 0);
    assert_int_equal(cm_model_init(&m, &mc, &g, 1, mc.dtype, err, sizeof err), 0);
    cm_batch b = { .num_seqs = 16, .decode_tokens = 16, .attn_ctx_tokens = 16 * 700, .attn_pairs = 16 * 700 };
    double roof = cm_step_time(&m, &b);
    m.prof = &q;
    near(cm_step_time(&m, &b), opp_step_time(&q, &b), 1e-15);
    assert_true(fabs(cm_step_time(&m, &b) - roof) > 1e-6);
    m.prof = NULL;
    near(cm_step_time(&m, &b), roof, 0);
    /* tp 2 without a measured all-reduce: the roofline's is added */
    cm_model m2;
    assert_int_equal(cm_model_init(&m2, &mc, &g, 2, mc.dtype, err, sizeof err), 0);
    q.tp = 2;
    m2.prof = &q;
    assert_true(cm_step_time(&m2, &b) > opp_step_time(&q, &b));
}

static void test_simulation_is_deterministic(void **st) {
    (void)st;
    opp_profile p;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    cm_gpu g;
    cm_model m;
    char err[256];
    assert_int_equal(cm_gpu_find(&g, "H200", err, sizeof err), 0);
    assert_int_equal(cm_model_init(&m, &mc, &g, 1, mc.dtype, err, sizeof err), 0);
    m.prof = &p;
    wl_spec sp = { .kind = WL_SHAREGPT, .num_requests = 300, .rate = 20, .seed = 3, .max_len = 2048 };
    wl_request *r;
    int n;
    assert_int_equal(wl_generate(&sp, &r, &n, err, sizeof err), 0);
    sim_config c = sim_config_default();
    c.kv.num_blocks = 2000;
    c.model = &m;
    sim_result a, b;
    assert_int_equal(sim_run(&c, r, n, &a, err, sizeof err), 0);
    assert_int_equal(sim_run(&c, r, n, &b, err, sizeof err), 0);
    assert_true(a.summary.sim_time == b.summary.sim_time);
    assert_true(a.summary.norm_latency.mean == b.summary.norm_latency.mean);
    m.prof = NULL;
    sim_result roof;
    assert_int_equal(sim_run(&c, r, n, &roof, err, sizeof err), 0);
    assert_true(roof.summary.sim_time != a.summary.sim_time);
    sim_result_free(&a); sim_result_free(&b); sim_result_free(&roof);
    free(r);
}

/* The host's time between steps: read and written with the profile (absent
 * in older files: 0), left out of a step's own time (what a measured step's
 * seconds are compared with), added to the simulated clock once per step. */
/* Decode-only steps' own terms (decode_fit): a decode-only step is its ops plus
 * decode_step_us (either sign) plus decode_per_seq_us per sequence, never below
 * half its ops; a step with prefill keeps the general terms; the file keeps them,
 * a negative value included, and refuses one of the two without the other. */
static void test_decode_only_terms(void **st) {
    (void)st;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    opp_profile p, q;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    char err[512];
    cm_batch dec = { .num_seqs = 64, .decode_tokens = 64, .attn_ctx_tokens = 64 * 512, .attn_pairs = 64 * 512 };
    cm_batch pre = { .num_seqs = 4, .prefill_tokens = 2048, .attn_ctx_tokens = 2048, .attn_pairs = 4 * 512 * 513 / 2 };
    double d0 = opp_step_time(&p, &dec), p0 = opp_step_time(&p, &pre);
    double ops = d0 - (p.step_overhead_us + p.per_seq_us * 64) * 1e-6;      /* the decode step's ops alone */
    if (p.gpu_floor_us > 0) assert_true(ops >= p.gpu_floor_us * 1e-6);
    p.decode_fit = 1; p.decode_step_us = -40.0; p.decode_per_seq_us = 0.25;
    near(opp_step_time(&p, &dec), ops + (-40.0 + 0.25 * 64) * 1e-6, 1e-12);
    near(opp_step_time(&p, &pre), p0, 1e-15);                                /* prefill: unchanged */
    p.decode_step_us = -1e9;                                                 /* never below half the ops */
    near(opp_step_time(&p, &dec), 0.5 * ops, 1e-12);
    p.decode_step_us = -40.0;
    assert_int_equal(opp_save(&p, TMP "/dec.json", err, sizeof err), 0);
    assert_int_equal(opp_load(&q, TMP "/dec.json", err, sizeof err), 0);
    assert_int_equal(q.decode_fit, 1);
    near(q.decode_step_us, -40.0, 1e-9);
    near(q.decode_per_seq_us, 0.25, 1e-9);
    near(opp_step_time(&q, &dec), opp_step_time(&p, &dec), 1e-12);
    /* decode_step_us without decode_per_seq_us: refused, naming the field */
    FILE *f = fopen(TMP "/dec.json", "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    buf[k] = 0;
    fclose(f);
    char *a = strstr(buf, ", \"decode_per_seq_us\"");
    assert_non_null(a);
    char *b = strchr(a, '}');
    assert_non_null(b);
    memmove(a, b, strlen(b) + 1);
    f = fopen(TMP "/dec_bad.json", "w");
    assert_non_null(f);
    fputs(buf, f);
    fclose(f);
    assert_int_equal(opp_load(&q, TMP "/dec_bad.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "decode_per_seq_us"));
    /* without either key (profiles measured before): no decode terms */
    p.decode_fit = 0;
    assert_int_equal(opp_save(&p, TMP "/dec_old.json", err, sizeof err), 0);
    assert_int_equal(opp_load(&q, TMP "/dec_old.json", err, sizeof err), 0);
    assert_int_equal(q.decode_fit, 0);
    near(opp_step_time(&q, &dec), d0, 1e-15);
    remove(TMP "/dec.json"); remove(TMP "/dec_bad.json"); remove(TMP "/dec_old.json");
}

static void test_host_between_steps(void **st) {
    (void)st;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    opp_profile p, q;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    char err[512];
    near(opp_post_time(&p, 100), 0, 1e-15);
    p.post_step_us = 12.5; p.post_per_seq_us = 0.4;
    near(opp_post_time(&p, 100), (12.5 + 40) * 1e-6, 1e-12);
    near(opp_post_time(&p, 0), 12.5e-6, 1e-12);
    assert_int_equal(opp_save(&p, TMP "/post.json", err, sizeof err), 0);
    assert_int_equal(opp_load(&q, TMP "/post.json", err, sizeof err), 0);
    near(q.post_step_us, 12.5, 1e-9);
    near(q.post_per_seq_us, 0.4, 1e-9);
    /* a profile written before the term existed: no "post_*" keys, 0 */
    FILE *f = fopen(TMP "/post.json", "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    buf[k] = 0;
    fclose(f);
    char *a = strstr(buf, ", \"post_step_us\"");
    assert_non_null(a);
    char *b = strchr(a, '}');
    assert_non_null(b);
    memmove(a, b, strlen(b) + 1);
    f = fopen(TMP "/post_old.json", "w");
    assert_non_null(f);
    fputs(buf, f);
    fclose(f);
    assert_int_equal(opp_load(&q, TMP "/post_old.json", err, sizeof err), 0);
    assert_true(q.post_step_us == 0 && q.post_per_seq_us == 0);
    remove(TMP "/post.json"); remove(TMP "/post_old.json");

    cm_gpu g;
    cm_model m;
    assert_int_equal(cm_gpu_find(&g, "H200", err, sizeof err), 0);
    assert_int_equal(cm_model_init(&m, &mc, &g, 1, mc.dtype, err, sizeof err), 0);
    m.prof = &p;
    sched_batch sb;
    memset(&sb, 0, sizeof sb);
    sb.counts = (cm_batch){ .num_seqs = 64, .decode_tokens = 64, .attn_ctx_tokens = 64 * 512, .attn_pairs = 64 * 512 };
    simx x;
    simx_init(&x, &m, 1);
    near(cm_step_time(&m, &sb.counts), opp_step_time(&p, &sb.counts), 1e-15);   /* the step alone */
    near(simx_step_time(&x, &sb), opp_step_time(&p, &sb.counts) + (12.5 + 0.4 * 64) * 1e-6, 1e-12);
    /* a whole run: every step's clock advance grows by exactly its between-steps time */
    wl_spec sp = { .kind = WL_SHAREGPT, .num_requests = 200, .rate = 0, .seed = 5, .max_len = 2048 };
    wl_request *r;
    int n;
    assert_int_equal(wl_generate(&sp, &r, &n, err, sizeof err), 0);
    for (int i = 0; i < n; i++) r[i].arrival = 0;               /* no idle time: the same schedule */
    sim_config c = sim_config_default();
    c.kv.num_blocks = 4000;
    c.model = &m;
    c.keep_steps = true;
    sim_result with, without;
    assert_int_equal(sim_run(&c, r, n, &with, err, sizeof err), 0);
    p.post_step_us = p.post_per_seq_us = 0;
    assert_int_equal(sim_run(&c, r, n, &without, err, sizeof err), 0);
    assert_int_equal(with.num_steps, without.num_steps);
    double extra = 0;
    for (int i = 0; i < with.num_steps; i++) {
        assert_int_equal(with.steps[i].batch_seqs, without.steps[i].batch_seqs);
        extra += (12.5 + 0.4 * with.steps[i].batch_seqs) * 1e-6;
    }
    assert_true(extra > 0);
    near(with.summary.sim_time - without.summary.sim_time, extra, 1e-6);
    sim_result_free(&with); sim_result_free(&without);
    free(r);
}

static int sh(const char *cmd, char *out, size_t cap) {
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t k = fread(out, 1, cap - 1, f);
    out[k] = 0;
    int s = pclose(f);
    return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

static void test_commands(void **st) {
    (void)st;
    static char out[1 << 15];
    char cmd[1024], err[256];
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    opp_profile p;
    mc_config mc = small_config();
    synthetic(&p, &mc);
    assert_int_equal(opp_save(&p, TMP "/q.json", err, sizeof err), 0);
    const char *base = "run --model data/models/qwen2.5-0.5b.json --gpu H200 --requests 40 --num-blocks 3000";
    snprintf(cmd, sizeof cmd, "%s/pagesim %s --op-profile " TMP "/q.json 2>&1", tu_bindir(), base);
    assert_int_equal(sh(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "step times: operator profile " TMP "/q.json"));
    snprintf(cmd, sizeof cmd, "%s/pagesim %s --op-profile none 2>&1", tu_bindir(), base);
    assert_int_equal(sh(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "roofline"));
    /* a profile of another shape is refused (bad input: 2), naming both */
    snprintf(cmd, sizeof cmd, "%s/pagesim run --model data/models/qwen3-0.6b.json --gpu H200 --requests 5 "
             "--op-profile " TMP "/q.json 2>&1", tu_bindir());
    assert_int_equal(sh(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "q.json"));
    /* calibrate --op-profile: predictions of measured steps, nothing fitted.
     * Steps timed by the profile itself plus 10% are predicted 9.1% short. */
    FILE *f = fopen(TMP "/steps.csv", "w");
    fputs("prefill_tokens,decode_tokens,num_seqs,attn_ctx_tokens,attn_pairs,seconds\n", f);
    for (int i = 1; i <= 20; i++) {
        cm_batch b = { .num_seqs = i, .decode_tokens = i, .attn_ctx_tokens = i * 300L, .attn_pairs = i * 300L };
        fprintf(f, "0,%d,%d,%ld,%ld,%.9f\n", i, i, b.attn_ctx_tokens, b.attn_pairs, 1.1 * opp_step_time(&p, &b));
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/pagesim calibrate --measured " TMP "/steps.csv --model data/models/qwen2.5-0.5b.json "
             "--gpu H200 --op-profile " TMP "/q.json 2>&1", tu_bindir());
    assert_int_equal(sh(cmd, out, sizeof out), 0);
    const char *row = strstr(out, "operator profile");
    assert_non_null(row);
    double pred, wall, med;
    assert_int_equal(sscanf(row, "operator profile %lfs %lf%% %lf%%", &pred, &wall, &med), 3);
    near(wall, -9.1, 0.02);
    near(med, 9.1, 0.02);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interpolation),
        cmocka_unit_test(test_step_time_by_ops),
        cmocka_unit_test(test_topp_sampling),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_file_round_trip_and_errors),
        cmocka_unit_test(test_find_and_fallback),
        cmocka_unit_test(test_simulation_is_deterministic),
        cmocka_unit_test(test_host_between_steps),
        cmocka_unit_test(test_decode_only_terms),
        cmocka_unit_test(test_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
