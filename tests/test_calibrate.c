/* Tests of sim/calibrate: the fit recovers known coefficients from steps
 * timed by the cost model itself (with noise), and bad step files fail with
 * their file and line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "sim/calibrate.h"

static char err[1024];

static void make_model(cm_model *m, const char *gpu, int tp) {
    mc_config c;
    cm_gpu g;
    if (mc_load(&c, "data/models/opt-13b.json", err, sizeof err) ||
        cm_gpu_find(&g, gpu, err, sizeof err) ||
        cm_model_init(m, &c, &g, tp, c.dtype, err, sizeof err))
        fail_msg("%s", err);
}

/* A mix of prefill and decode steps, timed by `truth` with +-2% noise. */
static int synth(const cm_model *truth, cm_step_obs *s, int max) {
    uint64_t x = 12345;
    int n = 0;
    for (int i = 0; i < max; i++) {
        cm_batch b = { 0 };
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int kind = i % 3, seqs = 1 + (int)((x >> 33) % 64);
        long ctx = 64 + (long)((x >> 20) % 1500);
        if (kind == 0) {            /* prefill of a few prompts */
            int p = 1 + seqs % 8;
            b = (cm_batch){ .num_seqs = p, .prefill_tokens = p * ctx, .attn_ctx_tokens = p * ctx,
                            .attn_pairs = p * ctx * (ctx + 1) / 2 };
        } else {                    /* decode */
            b = (cm_batch){ .num_seqs = seqs, .decode_tokens = seqs, .attn_ctx_tokens = seqs * ctx,
                            .attn_pairs = seqs * ctx };
        }
        double noise = 1 + 0.02 * (((double)((x >> 11) % 2001) / 1000.0) - 1);
        s[n].b = b;
        s[n].seconds = cm_step_time(truth, &b) * noise;
        n++;
    }
    return n;
}

static void test_recovers_coefficients(void **state) {
    (void)state;
    cm_model truth, start;
    make_model(&truth, "A100-40GB", 1);
    truth.k.flops_eff = 0.45;
    truth.k.bw_eff = 0.7;
    truth.k.step_overhead_s = 0.005;
    truth.k.per_seq_s = 4e-5;
    make_model(&start, "A100-40GB", 1);          /* default coefficients */
    cm_step_obs s[300];
    int n = synth(&truth, s, 300);
    cm_fit_report r;
    if (cm_fit(&start, s, n, &r, err, sizeof err) != 0) fail_msg("%s", err);
    if (fabs(r.k.flops_eff - 0.45) > 0.03 || fabs(r.k.bw_eff - 0.7) > 0.03 ||
        fabs(r.k.step_overhead_s - 0.005) > 0.002 || fabs(r.k.per_seq_s - 4e-5) > 3e-5)
        fail_msg("fitted %g %g %g %g", r.k.flops_eff, r.k.bw_eff, r.k.step_overhead_s, r.k.per_seq_s);
    assert_true(r.r2 > 0.99);
    assert_true(r.mape_after < 0.03);
    assert_true(r.mape_after < r.mape_before);
    assert_true(r.n_flops_bound > 0 && r.n_bw_bound > 0);
    assert_int_equal(r.n, n);
    /* with TP 2, the all-reduce term is taken out before the fit */
    make_model(&truth, "H100", 2);
    truth.k.flops_eff = 0.5;
    truth.k.bw_eff = 0.75;
    make_model(&start, "H100", 2);
    n = synth(&truth, s, 300);
    assert_int_equal(cm_fit(&start, s, n, &r, err, sizeof err), 0);
    assert_true(fabs(r.k.flops_eff - 0.5) < 0.03 && fabs(r.k.bw_eff - 0.75) < 0.03);
}

static void test_decode_only(void **state) {
    (void)state;
    /* no FLOP-bound step: flops_eff stays as it was */
    cm_model truth, start;
    make_model(&truth, "H100", 1);
    truth.k.bw_eff = 0.6;
    make_model(&start, "H100", 1);
    cm_step_obs s[100];
    int n = 0;
    for (int i = 0; i < 100; i++) {
        cm_batch b = { .num_seqs = 1 + i % 32, .decode_tokens = 1 + i % 32,
                       .attn_ctx_tokens = (1 + i % 32) * (100 + 10 * i), .attn_pairs = 0 };
        s[n].b = b;
        s[n++].seconds = cm_step_time(&truth, &b);
    }
    cm_fit_report r;
    assert_int_equal(cm_fit(&start, s, n, &r, err, sizeof err), 0);
    assert_true(fabs(r.k.bw_eff - 0.6) < 0.01);
    assert_true(fabs(r.k.flops_eff - start.k.flops_eff) < 1e-12);
    assert_int_equal(r.n_flops_bound, 0);
    assert_int_equal(cm_fit(&start, s, 3, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "at least"));
}

static const char *write_tmp(const char *name, const char *text) {
    static char path[256];
    mkdir("build", 0777);
    mkdir("build/tmp", 0777);
    snprintf(path, sizeof path, "build/tmp/%s", name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_step_files(void **state) {
    (void)state;
    cm_step_obs *s;
    int n;
    const char *p = write_tmp("steps.json", "{\"steps\": [{\"prefill_tokens\": 512, \"decode_tokens\": 0,"
        " \"num_seqs\": 1, \"attn_ctx_tokens\": 512, \"attn_pairs\": 131328, \"seconds\": 0.05},"
        " {\"prefill_tokens\": 0, \"decode_tokens\": 8, \"num_seqs\": 8, \"attn_ctx_tokens\": 800,"
        " \"seconds\": 0.02}]}");
    assert_int_equal(cm_steps_load(p, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(s[0].b.attn_pairs, 131328);
    assert_int_equal(s[1].b.attn_pairs, 800);      /* defaults to attn_ctx_tokens */
    assert_true(s[1].seconds == 0.02);
    free(s);
    p = write_tmp("steps.csv", "seconds,num_seqs,prefill_tokens,decode_tokens,attn_ctx_tokens\n"
                  "0.01,4,0,4,400\n0.03,1,256,0,256\n");
    assert_int_equal(cm_steps_load(p, &s, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(s[1].b.prefill_tokens, 256);
    free(s);
    struct { const char *name, *text, *want; } bad[] = {
        { "sb1.csv", "seconds,num_seqs,prefill_tokens,decode_tokens,attn_ctx_tokens\n0.01,4,0,4,400\n0.01,x,0,4,4\n", "sb1.csv:3" },
        { "sb2.csv", "seconds,num_seqs,prefill_tokens,decode_tokens\n", "attn_ctx_tokens" },
        { "sb3.csv", "seconds,num_seqs,prefill_tokens,decode_tokens,attn_ctx_tokens\n0,4,0,4,400\n", "sb3.csv:2" },
        { "sb4.csv", "seconds,num_seqs,prefill_tokens,decode_tokens,attn_ctx_tokens\n0.1,-4,0,4,400\n", "num_seqs" },
        { "sb5.json", "[{\"seconds\": 0.1, \"num_seqs\": 1, \"prefill_tokens\": 3, \"decode_tokens\": 0}]", "step 1" },
        { "sb6.json", "[{\"seconds\": 0.1, \"num_seqs\": 1,\n", "sb6.json:2" },
        { "sb7.json", "[]", "no steps" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = write_tmp(bad[i].name, bad[i].text);
        s = (cm_step_obs *)&n;
        assert_int_equal(cm_steps_load(p, &s, &n, err, sizeof err), -1);
        assert_null(s);
        if (!strstr(err, bad[i].want)) fail_msg("%s: error lacks '%s': %s", bad[i].name, bad[i].want, err);
    }
    assert_int_equal(cm_steps_load("build/tmp/nosteps.json", &s, &n, err, sizeof err), -1);
}

/* The CSV through libcsv: a UTF-8 byte-order mark, comments, blank lines and
 * quoted fields are read; an unclosed quote is an error at its line. */
static void test_step_csv_forms(void **state) {
    (void)state;
    cm_step_obs *s = NULL;
    int n = 0;
    char err[512] = "";
    const char *p = write_tmp("steps_bom.csv", "\xEF\xBB\xBFseconds,num_seqs,prefill_tokens,decode_tokens,attn_ctx_tokens\n"
                              "# measured on an H200\n\n0.01, 4 ,0,4,400\n\"0.03\",1,256,0,256\n");
    if (cm_steps_load(p, &s, &n, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(n, 2);
    assert_int_equal(s[0].b.num_seqs, 4);
    assert_true(s[1].seconds == 0.03);
    assert_int_equal(s[1].b.prefill_tokens, 256);
    free(s);
    p = write_tmp("steps_quote.csv", "seconds,num_seqs,prefill_tokens,decode_tokens,attn_ctx_tokens\n"
                  "0.01,4,0,4,400\n0.01,\"4,0,4,400\n");
    assert_int_equal(cm_steps_load(p, &s, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "steps_quote.csv:3"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recovers_coefficients),
        cmocka_unit_test(test_decode_only),
        cmocka_unit_test(test_step_files),
        cmocka_unit_test(test_step_csv_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
