/* Tests of the bias lab's step times from operator profiles: its serving
 * simulation (labs/bias_serving) and its comparison with a real run
 * (labs/bias_compare) take the shipped profile of the GPU and model
 * (data/profiles/H200/qwen2.5-7b.json) when there is one, say so, and fall
 * back to the roofline when there is none (another TP) or when asked
 * (--op-profile none); a profile of another model is an error.  A run whose
 * requests go one at a time is predicted to within 1e-9 of the time computed
 * here, independently, from the profile file's own points; so is a small
 * labs/bias run (the command), whose per-request lengths come from
 * --dump-prompts.  The comparison's calibration still fits the roofline
 * (and recovers known coefficients) when the predictions use a profile.
 * The lab samples with temperature and top-p, which the shipped profiles did
 * not time: the output says that greedy's times stand in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <sys/wait.h>
#include "labs/bias_compare.h"
#include "labs/bias_serving.h"
#include "sim/cost_model.h"
#include "sim/model_config.h"

#define PROF "data/profiles/H200/qwen2.5-7b.json"
#define CFG  "data/models/qwen2.5-7b.json"
#define TOKJ "data/tokenizers/qwen3/tokenizer.json"

static char T[128];
static const char *tp(const char *rel) { return tu_join(T, rel); }   /* "T/rel" */

static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state) {
    (void)state;
    return sh("mkdir -p %s && awk 'NR == 1 || NR %% 163 == 7' data/universe/sp500.csv > %s/tickers.csv", T, T) ? -1 : 0;
}
static int teardown(void **state) {
    (void)state;
    sh("rm -rf %s", T);
    return 0;
}

/* ---- the profile read here, apart from sim/op_profile.c -------------------------------- */
typedef struct pts { int n; double x[64], y[64]; } pts;
typedef struct ref_prof {
    cJSON *root;
    pts qkv, o, gate_up, down, head, elem, estep, prefill, sampling;
    pts topp;                    /* sampling at temperature and top-p, when the profile has it */
    int has_topp;
    double dx[16], dy[16], du[16][16];
    int ndx, ndy, layers;
    double overhead, per_seq, floor_us;
    double post, post_seq;       /* the host's time between steps (0 when absent) */
    int dec_fit;                 /* decode-only steps' own terms (profiles fitted with them) */
    double dec_a, dec_b;
} ref_prof;

static double opt_num(const cJSON *o, const char *key, int *had) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (had) *had = v != NULL;
    return v ? v->valuedouble : 0;
}

static void get_pts(const cJSON *ops, const char *name, pts *p) {
    const cJSON *a = cJSON_GetObjectItem(cJSON_GetObjectItem(ops, name), "points"), *e;
    assert_non_null(a);
    p->n = 0;
    cJSON_ArrayForEach(e, a) {
        p->x[p->n] = cJSON_GetArrayItem(e, 0)->valuedouble;
        p->y[p->n++] = cJSON_GetArrayItem(e, 1)->valuedouble;
    }
}

static void ref_load(ref_prof *r, const char *path) {
    char *s = tu_slurp(path);
    assert_non_null(s);
    r->root = cJSON_Parse(s);
    free(s);
    assert_non_null(r->root);
    const cJSON *ops = cJSON_GetObjectItem(r->root, "ops"), *cpu = cJSON_GetObjectItem(r->root, "cpu"), *e, *row;
    get_pts(ops, "gemm_qkv", &r->qkv); get_pts(ops, "gemm_o", &r->o); get_pts(ops, "gemm_gate_up", &r->gate_up);
    get_pts(ops, "gemm_down", &r->down); get_pts(ops, "lm_head", &r->head); get_pts(ops, "elem_layer", &r->elem);
    get_pts(ops, "elem_step", &r->estep); get_pts(ops, "attn_prefill", &r->prefill); get_pts(ops, "sampling", &r->sampling);
    r->has_topp = cJSON_GetObjectItem(ops, "sampling_topp") != NULL;
    if (r->has_topp) get_pts(ops, "sampling_topp", &r->topp);
    const cJSON *g = cJSON_GetObjectItem(ops, "attn_decode");
    r->ndx = r->ndy = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(g, "xs")) r->dx[r->ndx++] = e->valuedouble;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(g, "ys")) r->dy[r->ndy++] = e->valuedouble;
    int i = 0;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(g, "us")) {
        int j = 0;
        cJSON_ArrayForEach(e, row) r->du[i][j++] = e->valuedouble;
        i++;
    }
    r->layers = cJSON_GetObjectItem(cJSON_GetObjectItem(r->root, "shape"), "num_layers")->valueint;
    r->overhead = cJSON_GetObjectItem(cpu, "step_overhead_us")->valuedouble;
    r->per_seq = cJSON_GetObjectItem(cpu, "per_seq_us")->valuedouble;
    r->floor_us = cJSON_GetObjectItem(cpu, "gpu_floor_us")->valuedouble;
    r->post = opt_num(cpu, "post_step_us", NULL);
    r->post_seq = opt_num(cpu, "post_per_seq_us", NULL);
    r->dec_a = opt_num(cpu, "decode_step_us", &r->dec_fit);
    r->dec_b = opt_num(cpu, "decode_per_seq_us", NULL);
}

/* Linear between points, the first point's value below them (the cases here stay inside). */
static double at(const pts *p, double x) {
    assert_true(x <= p->x[p->n - 1]);
    if (x <= p->x[0]) return p->y[0];
    int i = 1;
    while (p->x[i] < x) i++;
    return p->y[i - 1] + (x - p->x[i - 1]) / (p->x[i] - p->x[i - 1]) * (p->y[i] - p->y[i - 1]);
}

/* One sequence alone: its decode attention at batch 1 (the grid's first row), linear in context. */
static double decode_attn(const ref_prof *r, double ctx) {
    pts row = { .n = r->ndy };
    for (int j = 0; j < r->ndy; j++) { row.x[j] = r->dy[j]; row.y[j] = r->du[0][j]; }
    assert_true(r->dx[0] == 1);
    return at(&row, ctx);
}

/* Seconds of one request served alone: its prefill step, then output - 1 decode steps;
 * sampled at top-p's times when topp and the profile has them, at greedy's otherwise. */
static double alone_s_sampled(const ref_prof *r, int prompt, int output, int topp) {
    const pts *samp = topp && r->has_topp ? &r->topp : &r->sampling;
    double per_layer_gemm_elem, s = 0;
    for (int k = 0; k < output; k++) {
        double T = k == 0 ? prompt : 1, us;
        per_layer_gemm_elem = at(&r->qkv, T) + at(&r->o, T) + at(&r->gate_up, T) + at(&r->down, T) + at(&r->elem, T);
        /* prefill: one fresh sequence of prompt (prompt + 1) / 2 pairs; decode: context prompt + k */
        double attn = k == 0 ? at(&r->prefill, sqrt((double)prompt * (prompt + 1))) : decode_attn(r, prompt + k);
        us = r->layers * (per_layer_gemm_elem + attn) + at(&r->estep, T) + at(&r->head, 1) + at(samp, 1);
        if (k > 0 && r->dec_fit) {                /* a decode-only step: its own terms */
            double t = r->dec_a + r->dec_b + us;
            s += (t > 0.5 * us ? t : 0.5 * us) * 1e-6;
        } else
            s += (r->overhead + r->per_seq + (us > r->floor_us ? us : r->floor_us)) * 1e-6;
        s += (r->post + r->post_seq) * 1e-6;      /* the host between this step and the next */
    }
    return s;
}

static double alone_s(const ref_prof *r, int prompt, int output) { return alone_s_sampled(r, prompt, output, 0); }

/* ---- the serving simulation ------------------------------------------------------------ */
static double serve(const char *op_profile, int tp_, int *prompts, int *outputs, int n, char *step_times, size_t cap,
                    int expect_rc) {
    bias_serving_config c;
    bias_serving_defaults(&c);
    c.gpu = "H200"; c.model_config = CFG; c.tp = tp_; c.max_workers = 1; c.op_profile = op_profile;
    bias_serving_result r;
    char err[512];
    int rc = bias_serving_run(&c, prompts, outputs, (size_t)n, 1, &r, err, sizeof err);
    assert_int_equal(rc, expect_rc);
    if (rc) { snprintf(step_times, cap, "%s", err); return 0; }
    snprintf(step_times, cap, "%s", r.step_times);
    double w = r.pol[BIAS_PAGED].wall_s;
    assert_true(fabs(r.pol[BIAS_CONTIGUOUS].wall_s - w) < 1e-9 * w);   /* alone, both policies run the same steps */
    bias_serving_free(&r);
    return w;
}

static void test_serving_takes_the_profile(void **state) {
    (void)state;
    TU_REQUIRE_FILE(PROF);
    int prompts[3] = { 500, 733, 64 }, outputs[3] = { 96, 41, 200 };
    ref_prof r;
    ref_load(&r, PROF);
    double want = 0;
    for (int i = 0; i < 3; i++) want += alone_s(&r, prompts[i], outputs[i]);
    char st[1200];
    double got = serve(NULL, 1, prompts, outputs, 3, st, sizeof st, 0);            /* auto */
    assert_non_null(strstr(st, "operator profile"));
    assert_non_null(strstr(st, PROF));
    assert_true(fabs(got - want) <= 1e-9 * want);
    assert_true(got > 1.45 && got < 2.0);           /* 337 steps at batch 1, ~4.7 ms each (graphs: 4.69 ms measured) */
    /* the same file given explicitly: the same figure */
    assert_true(fabs(serve(PROF, 1, prompts, outputs, 3, st, sizeof st, 0) - want) <= 1e-9 * want);
    /* none: the roofline, which says so and gives another figure */
    double roof = serve("none", 1, prompts, outputs, 3, st, sizeof st, 0);
    assert_non_null(strstr(st, "roofline"));
    assert_true(fabs(roof / want - 1) > 0.01);
    /* TP 2 has no profile: the roofline, and why */
    serve(NULL, 2, prompts, outputs, 3, st, sizeof st, 0);
    assert_non_null(strstr(st, "roofline (no operator profile of H200"));
    assert_non_null(strstr(st, "TP 2"));
    /* a profile of another model is an error naming the file */
    serve("data/profiles/H200/qwen3-0.6b.json", 1, prompts, outputs, 3, st, sizeof st, -1);
    assert_non_null(strstr(st, "qwen3-0.6b.json"));
    cJSON_Delete(r.root);
}

/* ---- the comparison -------------------------------------------------------------------- */
/* A trace "measured" by the roofline with known coefficients, on H200 and the 7B. */
static cm_model true_roofline(void) {
    mc_config mc;
    cm_gpu g;
    cm_model m;
    char err[512];
    assert_int_equal(mc_load(&mc, CFG, err, sizeof err), 0);
    assert_int_equal(cm_gpu_find(&g, "H200", err, sizeof err), 0);
    assert_int_equal(cm_model_init(&m, &mc, &g, 1, mc.dtype, err, sizeof err), 0);
    m.k.flops_eff = 0.4; m.k.bw_eff = 0.6; m.k.step_overhead_s = 0.003; m.k.per_seq_s = 3e-5;
    return m;
}

static void trace_of(bias_trace *t, const cm_model *m) {
    bias_trace_init(t, "engine");
    snprintf(t->kv_policy, sizeof t->kv_policy, "paged");
    snprintf(t->model_config, sizeof t->model_config, CFG);
    snprintf(t->gpu, sizeof t->gpu, "H200");
    t->num_blocks = 4000; t->block_size = 16; t->max_num_seqs = 1; t->max_num_batched_tokens = 8192;
    t->max_model_len = 4096; t->prefix_caching = 0; t->max_workers = 1;
    uint64_t x = 7;
    for (int set = 1; set <= 2; set++) {
        double clock = 0;
        for (int i = 0; i < 200; i++) {                      /* steps timed on the "GPU": both roofs */
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            int seqs = 1 + (int)((x >> 40) % 64), pre = (i % 3 == 0) ? 512 + (int)((x >> 20) % 7000) : 0;
            cm_batch b = { seqs, pre, pre ? seqs - 1 : seqs, (long)seqs * 600, (long)seqs * 600 + (long)pre * 300, 0, 0, 0, 0, 0 };
            double sec = cm_step_time(m, &b);
            clock += sec;
            bias_trace_step s = { set, clock, sec, b.num_seqs, b.prefill_tokens, b.decode_tokens, b.attn_ctx_tokens,
                                  b.attn_pairs };
            assert_int_equal(bias_trace_add_step(t, &s), 0);
        }
        bias_trace_req r1 = { set, 500, 96, 0, 0, 0.1, 1 }, r2 = { set, 733, 41, 0, 1, 1.1, 2 };
        assert_int_equal(bias_trace_add_req(t, &r1), 0);
        assert_int_equal(bias_trace_add_req(t, &r2), 0);
        assert_int_equal(bias_trace_add_wall(t, set, clock), 0);
    }
}

static cJSON *compare(const bias_trace *t, const char *op_profile, const char *coeffs, const char *name, char *summary) {
    const bias_trace *tl[1] = { t };
    bias_compare_config cc = { NULL, NULL, coeffs, 1, 0.9, NULL, op_profile, 0 };
    char err[512];
    int rc = bias_compare_write(&cc, tl, 1, T, name, summary, 2048, err, sizeof err);
    if (rc) fail_msg("%s", err);
    char path[256];
    snprintf(path, sizeof path, "%s/%s_att_compare.json", T, name);
    char *s = tu_slurp(path);
    cJSON *j = cJSON_Parse(s);
    free(s);
    assert_non_null(j);
    return j;
}

static double jnum(const cJSON *j, const char *a, const char *b, const char *c, const char *d) {
    const cJSON *x = cJSON_GetObjectItem(j, a);
    if (b) x = cJSON_GetObjectItem(x, b);
    if (c) x = cJSON_GetObjectItem(x, c);
    if (d) x = cJSON_GetObjectItem(x, d);
    assert_true(cJSON_IsNumber(x));
    return x->valuedouble;
}

static void test_compare_takes_the_profile(void **state) {
    (void)state;
    TU_REQUIRE_FILE(PROF);
    cm_model m = true_roofline();
    bias_trace t;
    trace_of(&t, &m);
    ref_prof r;
    ref_load(&r, PROF);
    double want = 2 * (alone_s(&r, 500, 96) + alone_s(&r, 733, 41));       /* two sets, one request at a time */
    char summary[2048];
    cJSON *j = compare(&t, NULL, NULL, "auto", summary);
    assert_non_null(strstr(cJSON_GetObjectItem(j, "step_times")->valuestring, PROF));
    assert_non_null(strstr(summary, "step times: operator profile"));
    assert_true(fabs(jnum(j, "policies", "paged", "predicted", "wall_time_s") - want) <= 1e-6 * want);
    /* the calibration fits the roofline even so: the true coefficients come back, and the held-out set too */
    const cJSON *cal = cJSON_GetObjectItem(j, "calibration");
    assert_true(cJSON_IsObject(cal));
    assert_non_null(strstr(cJSON_GetObjectItem(cal, "before")->valuestring, "operator profile"));
    assert_true(fabs(jnum(cal, "fitted", "flops_eff", NULL, NULL) - 0.4) < 1e-3);
    assert_true(fabs(jnum(cal, "fitted", "bw_eff", NULL, NULL) - 0.6) < 1e-3);
    assert_true(jnum(cal, "held_out_step_mape_after", NULL, NULL, NULL) < 1e-4);
    cJSON_Delete(j);
    /* --op-profile none, or coefficients alone: the roofline */
    j = compare(&t, "none", NULL, "none", summary);
    assert_non_null(strstr(cJSON_GetObjectItem(j, "step_times")->valuestring, "roofline"));
    assert_true(fabs(jnum(j, "policies", "paged", "predicted", "wall_time_s") / want - 1) > 0.01);
    cJSON_Delete(j);
    char err[512];
    assert_int_equal(cm_coeffs_save(&m.k, tp("true.json"), err, sizeof err), 0);
    j = compare(&t, NULL, tp("true.json"), "coeffs", summary);
    assert_non_null(strstr(cJSON_GetObjectItem(j, "step_times")->valuestring, "roofline (coefficients"));
    cJSON_Delete(j);
    /* a profile of another model: an error */
    const bias_trace *tl[1] = { &t };
    bias_compare_config bad = { NULL, NULL, NULL, 1, 0.9, NULL, "data/profiles/H200/qwen3-0.6b.json", 0 };
    assert_int_equal(bias_compare_write(&bad, tl, 1, T, "bad", summary, sizeof summary, err, sizeof err), -1);
    assert_non_null(strstr(err, "qwen3-0.6b.json"));
    cJSON_Delete(r.root);
    bias_trace_free(&t);
}

/* ---- labs/bias itself ------------------------------------------------------------------ */
static void test_lab_run_on_the_profile(void **state) {
    (void)state;
    TU_REQUIRE_FILE(PROF);
    TU_REQUIRE_FILE(TOKJ);
    const char *bin = tu_bindir();
    const char *opts = "--num-trials 3 --num-sets 1 --max-workers 1 --gpu H200 --tp 1 --model-config " CFG;
    assert_int_equal(sh("%s/labs/bias --tickers %s %s --dump-prompts %s > /dev/null", bin, tp("tickers.csv"), opts,
                        tp("d.jsonl")), 0);
    assert_int_equal(sh("%s/labs/bias --tickers %s %s --quiet --output-dir %s > %s", bin, tp("tickers.csv"), opts,
                        tp("run"), tp("out.txt")), 0);
    /* the requests one at a time, their lengths from the dump */
    ref_prof r;
    ref_load(&r, PROF);
    double want = 0;
    long out_tokens = 0;
    int n = 0;
    char *d = tu_slurp(tp("d.jsonl"));
    assert_non_null(d);
    for (char *line = strtok(d, "\n"); line; line = strtok(NULL, "\n"), n++) {
        cJSON *l = cJSON_Parse(line);
        assert_non_null(l);
        int prompt = cJSON_GetArraySize(cJSON_GetObjectItem(l, "ids"));
        int reply = cJSON_GetObjectItem(l, "reply_tokens")->valueint;
        assert_true(reply >= 1 && reply <= 1024);
        want += alone_s_sampled(&r, prompt, reply, 1);   /* the lab samples at T 0.6, top-p 0.8 */
        out_tokens += reply;
        cJSON_Delete(l);
    }
    free(d);
    assert_true(n >= 6);
    char *s = tu_slurp(tp("run/Qwen3-30B-A3B-Instruct-2507_att_memory.json"));
    assert_non_null(s);
    cJSON *j = cJSON_Parse(s);
    free(s);
    assert_non_null(j);
    assert_non_null(strstr(cJSON_GetObjectItem(j, "step_times")->valuestring, PROF));
    assert_int_equal((long)jnum(j, "output_tokens", NULL, NULL, NULL), out_tokens);   /* the dump's lengths are the run's */
    assert_true(fabs(jnum(j, "policies", "paged", "wall_time_s", NULL) - want) <= 1e-5 * want);   /* JSON's 6 digits */
    cJSON_Delete(j);
    char *o = tu_slurp(tp("out.txt"));
    assert_non_null(o);
    assert_non_null(strstr(o, "step times: operator profile " PROF));
    assert_non_null(strstr(o, r.has_topp ? "top-p sampling measured" : "top-p sampling at greedy's times"));
    free(o);
    /* --op-profile none: the roofline, said on the terminal */
    assert_int_equal(sh("%s/labs/bias --tickers %s %s --quiet --op-profile none --output-dir %s > %s", bin,
                        tp("tickers.csv"), opts, tp("run2"), tp("out2.txt")), 0);
    o = tu_slurp(tp("out2.txt"));
    assert_non_null(o);
    assert_non_null(strstr(o, "step times: roofline (--op-profile none)"));
    free(o);
    cJSON_Delete(r.root);
}

int main(void) {
    snprintf(T, sizeof T, "build/tmp/bias_op_profile.%ld", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serving_takes_the_profile),
        cmocka_unit_test(test_compare_takes_the_profile),
        cmocka_unit_test(test_lab_run_on_the_profile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
