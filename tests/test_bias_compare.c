/* Tests of the bias lab's simulation-against-reality step (labs/bias_compare):
 * a trace survives its file; a "measured" run that is itself a simulation
 * with known cost-model coefficients is predicted exactly when the compare
 * gets those coefficients (and off when it uses the defaults), for paged and
 * contiguous traces alike; fitting on one set's steps recovers the
 * coefficients and predicts the held-out steps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <cjson/cJSON.h>
#include <math.h>
#include "labs/bias_compare.h"
#include "sim/cost_model.h"
#include "sim/model_config.h"
#include "sim/simulate.h"

static char T[128];
static const char *tp(const char *rel) { return tu_join(T, rel); }   /* "T/rel" */
#define CFG "data/models/qwen2.5-7b.json"
#define GPU "H100-SXM"
#define NREQ 160

static int setup(void **state) {
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", T);
    return system(cmd) == 0 ? 0 : -1;
}
static int teardown(void **state) {
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", T);
    return system(cmd) == 0 ? 0 : 0;
}


static double jget(const cJSON *j, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = j;
    for (char *t = strtok(buf, "."); t && cur; t = strtok(NULL, ".")) cur = cJSON_GetObjectItemCaseSensitive(cur, t);
    return cJSON_IsNumber(cur) ? cur->valuedouble : NAN;
}

/* The "true GPU": the cost model with coefficients unlike the defaults. */
static cm_model true_model(void) {
    mc_config mc;
    cm_gpu g;
    cm_model m;
    char err[512];
    assert_int_equal(mc_load(&mc, CFG, err, sizeof err), 0);
    assert_int_equal(cm_gpu_find(&g, GPU, err, sizeof err), 0);
    assert_int_equal(cm_model_init(&m, &mc, &g, 1, mc.dtype, err, sizeof err), 0);
    m.k.flops_eff *= 0.55;
    m.k.bw_eff *= 0.7;
    m.k.step_overhead_s = 0.004;
    m.k.per_seq_s = 2e-5;
    return m;
}

/* A trace measured on the "true GPU": two sets simulated with m, as the
 * engine would have recorded them (KV sampled after every step). */
static void simulated_trace(bias_trace *t, const cm_model *m, kv_policy pol, int num_blocks) {
    bias_trace_init(t, "engine");
    snprintf(t->kv_policy, sizeof t->kv_policy, "%s", pol == KV_PAGED ? "paged" : "contiguous");
    snprintf(t->model_config, sizeof t->model_config, CFG);
    snprintf(t->gpu, sizeof t->gpu, GPU);
    t->num_blocks = num_blocks; t->block_size = 16; t->max_num_seqs = 64; t->max_num_batched_tokens = 8192;
    t->max_model_len = 2048; t->prefix_caching = 0; t->max_workers = 64;
    uint64_t x = 12345;
    for (int set = 1; set <= 2; set++) {
        wl_request w[NREQ];
        for (int i = 0; i < NREQ; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            w[i] = (wl_request){ .arrival = 0, .prompt_len = 300 + (int)((x >> 33) % 300),
                                 .output_len = 20 + (int)((x >> 17) % 130), .n = 1, .prefix_id = -1 };
        }
        sim_config sc = sim_config_default();
        sc.kv.policy = pol; sc.kv.num_blocks = num_blocks; sc.kv.block_size = 16; sc.kv.max_model_len = 2048;
        sc.kv.prefix_caching = false;
        sc.sched.max_num_seqs = 64; sc.sched.max_num_batched_tokens = 8192; sc.sched.max_model_len = 2048;
        sc.model = m; sc.keep_steps = true; sc.usage_every = 1;
        sim_result r;
        char err[512];
        assert_int_equal(sim_run(&sc, w, NREQ, &r, err, sizeof err), 0);
        /* a client with 64 workers sends request k when the (k - 64)-th reply is complete */
        double fin[NREQ];
        for (int i = 0; i < r.num_requests; i++) fin[i] = r.requests[i].finish_time;
        for (int i = 1; i < r.num_requests; i++)
            for (int j = i; j > 0 && fin[j - 1] > fin[j]; j--) { double x = fin[j]; fin[j] = fin[j - 1]; fin[j - 1] = x; }
        for (int id = 0; id < NREQ; id++)                 /* in arrival order, as a client sends them */
        for (int i = 0; i < r.num_requests; i++) {
            const met_request *q = &r.requests[i];
            if (q->id != id) continue;
            double sent = id < 64 ? 0 : fin[id - 64];
            bias_trace_req tr = { set, q->prompt_len, q->output_len, 0, sent, q->first_token, q->finish_time };
            assert_int_equal(bias_trace_add_req(t, &tr), 0);
        }
        for (int i = 0; i < r.num_steps; i++) {
            const met_step *s = &r.steps[i];
            /* the engine samples after a step: the state the next step runs with */
            bias_trace_kv k = { set, s->time - s->dt, s->blocks_used, s->blocks_total, s->slots_total, s->token_slots,
                                s->reserved_slots, s->internal_frag };
            assert_int_equal(bias_trace_add_kv(t, &k), 0);
        }
        assert_int_equal(bias_trace_add_wall(t, set, r.summary.sim_time), 0);
        sim_result_free(&r);
    }
}

static void test_trace_roundtrip(void **state) {
    (void)state;
    bias_trace t, u;
    char err[512];
    bias_trace_init(&t, "engine");
    snprintf(t.gpu, sizeof t.gpu, "H200");
    t.num_blocks = 1234; t.dummy_weights = 1; t.max_workers = 7; t.temperature = 0.6; t.top_p = 0.8;
    bias_trace_req r = { 2, 500, 90, 31, 0.5, 0.75, 3.25 };
    bias_trace_step s = { 2, 1.5, 0.0125, 17, 4000, 16, 9000, 123456 };
    bias_trace_kv k = { 2, 1.5, 300, 1234, 19744, 4000, 100, 20 };
    assert_int_equal(bias_trace_add_req(&t, &r), 0);
    assert_int_equal(bias_trace_add_step(&t, &s), 0);
    assert_int_equal(bias_trace_add_kv(&t, &k), 0);
    assert_int_equal(bias_trace_add_wall(&t, 2, 4.5), 0);
    assert_int_equal(bias_trace_write(&t, T, "rt", err, sizeof err), 0);
    assert_int_equal(bias_trace_load(&u, tp("rt_att_trace.json"), err, sizeof err), 0);
    assert_string_equal(u.gpu, "H200");
    assert_int_equal(u.num_blocks, 1234);
    assert_int_equal(u.dummy_weights, 1);
    assert_int_equal(u.max_workers, 7);
    assert_true(u.temperature == 0.6 && u.top_p == 0.8);
    assert_int_equal(u.nsets, 2);
    assert_true(u.set_wall_s[0] == 0 && fabs(u.set_wall_s[1] - 4.5) < 1e-9);
    assert_int_equal(u.nreq, 1); assert_int_equal(u.nstep, 1); assert_int_equal(u.nkv, 1);
    assert_true(u.req[0].set == 2 && u.req[0].prompt_tokens == 500 && u.req[0].shared_prefix == 31);
    assert_true(fabs(u.req[0].finish_s - 3.25) < 1e-9);
    assert_true(u.step[0].attn_pairs == 123456 && fabs(u.step[0].seconds - 0.0125) < 1e-9);
    assert_true(u.kv[0].token_slots == 4000 && u.kv[0].internal_frag == 20);
    char *csv = tu_slurp(tp("rt_att_steps.csv"));                   /* pagesim calibrate's input */
    assert_non_null(csv);
    assert_non_null(strstr(csv, "prefill_tokens,decode_tokens,num_seqs,attn_ctx_tokens"));
    assert_non_null(strstr(csv, "4000,16,17,9000,123456,0.0125000"));
    free(csv);
    bias_trace_free(&t); bias_trace_free(&u);
    FILE *f = fopen(tp("bad.json"), "w");                         /* a broken trace names its file */
    fputs("{\"requests\": [[1, 2, 3]]}", f);
    fclose(f);
    assert_int_equal(bias_trace_load(&u, tp("bad.json"), err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.json"));
}

static void test_predicts_a_known_gpu(void **state) {
    (void)state;
    cm_model m = true_model();
    char err[512], summary[2048];
    assert_int_equal(cm_coeffs_save(&m.k, tp("true.json"), err, sizeof err), 0);
    bias_trace paged, contig;
    simulated_trace(&paged, &m, KV_PAGED, 1500);
    simulated_trace(&contig, &m, KV_CONTIGUOUS, 1500);
    const bias_trace *tl[2] = { &paged, &contig };
    /* with the true coefficients the prediction is the measurement */
    bias_compare_config cc = { NULL, NULL, tp("true.json"), 1, 0.9, "a note", "none", 0 };
    assert_int_equal(bias_compare_write(&cc, tl, 2, T, "k", summary, sizeof summary, err, sizeof err), 0);
    char *s = tu_slurp(tp("k_att_compare.json"));
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "note")->valuestring, "a note");
    static const char *pol[2] = { "paged", "contiguous" };
    for (int p = 0; p < 2; p++) {
        char q[128];
        #define G(x) (snprintf(q, sizeof q, "policies.%s.%s", pol[p], x), jget(j, q))
        assert_true(G("measured.wall_time_s") > 0);
        assert_true(fabs(G("error.wall_time_rel")) < 1e-6);
        assert_true(fabs(G("error.tokens_per_s_rel")) < 1e-5);
        assert_true(fabs(G("error.ttft_p50_rel")) < 1e-5);
        assert_true(fabs(G("error.tpot_p50_rel")) < 1e-5);
        assert_true(fabs(G("error.peak_blocks_rel")) < 1e-9);
        assert_true(fabs(G("error.kv_utilization_points")) < 0.5);
        assert_true(fabs(G("error.token_share_points")) < 0.5);
        assert_true(G("measured.peak_kv_blocks_used") > 0 && G("measured.peak_kv_blocks_used") <= 1500);
        #undef G
    }
    /* paged holds more sequences than contiguous in the same pool, and is faster */
    assert_true(jget(j, "paged_over_contiguous.measured_throughput_ratio") > 1.0);
    assert_true(fabs(jget(j, "paged_over_contiguous.measured_throughput_ratio") -
                     jget(j, "paged_over_contiguous.predicted_throughput_ratio")) < 1e-4);
    assert_int_equal(access(tp("k_att_compare.png"), R_OK), 0);
    assert_int_equal(access(tp("k_att_compare.svg"), R_OK), 0);
    cJSON_Delete(j);
    free(s);
    /* with the default coefficients it is off, and says by how much */
    bias_compare_config cd = { NULL, NULL, NULL, 1, 0.9, NULL, "none", 0 };
    assert_int_equal(bias_compare_write(&cd, tl, 1, T, "d", summary, sizeof summary, err, sizeof err), 0);
    s = tu_slurp(tp("d_att_compare.json"));
    j = cJSON_Parse(s);
    assert_non_null(j);
    assert_true(fabs(jget(j, "policies.paged.error.wall_time_rel")) > 0.05);
    assert_non_null(strstr(summary, "paged: wall"));
    cJSON_Delete(j);
    free(s);
    bias_trace_free(&paged); bias_trace_free(&contig);
}

static void test_calibration_on_one_set(void **state) {
    (void)state;
    cm_model m = true_model();
    bias_trace t;
    bias_trace_init(&t, "engine");
    snprintf(t.model_config, sizeof t.model_config, CFG);
    snprintf(t.gpu, sizeof t.gpu, GPU);
    t.num_blocks = 4000; t.block_size = 16; t.max_num_seqs = 64; t.max_num_batched_tokens = 8192; t.max_model_len = 2048;
    t.prefix_caching = 0; t.max_workers = 64;
    uint64_t x = 99;
    for (int set = 1; set <= 2; set++) {              /* steps timed on the true GPU: prefill- and decode-bound */
        double clock = 0;
        for (int i = 0; i < 300; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            int seqs = 1 + (int)((x >> 40) % 64);
            int pre = (i % 3 == 0) ? 512 + (int)((x >> 20) % 7000) : 0;
            cm_batch b = { seqs, pre, pre ? seqs - 1 : seqs, (long)seqs * 600, (long)seqs * 600 + (long)pre * 300, 0, 0, 0, 0, 0 };
            double sec = cm_step_time(&m, &b);
            clock += sec;
            bias_trace_step s = { set, clock, sec, b.num_seqs, b.prefill_tokens, b.decode_tokens, b.attn_ctx_tokens, b.attn_pairs };
            assert_int_equal(bias_trace_add_step(&t, &s), 0);
        }
        bias_trace_req r = { set, 500, 100, 0, 0, 0.1, 2 };           /* one request per set: enough to simulate */
        assert_int_equal(bias_trace_add_req(&t, &r), 0);
        assert_int_equal(bias_trace_add_wall(&t, set, clock), 0);
    }
    const bias_trace *tl[1] = { &t };
    bias_compare_config cc = { NULL, NULL, NULL, 1, 0.9, NULL, "none", 0 };
    char err[512], summary[2048];
    assert_int_equal(bias_compare_write(&cc, tl, 1, T, "c", summary, sizeof summary, err, sizeof err), 0);
    char *s = tu_slurp(tp("c_att_compare.json"));
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    double before = jget(j, "calibration.held_out_step_mape_before"), after = jget(j, "calibration.held_out_step_mape_after");
    assert_true(before > 0.10);
    assert_true(after < 0.01);
    assert_true(fabs(jget(j, "calibration.fitted.flops_eff") / m.k.flops_eff - 1) < 0.05);
    assert_true(fabs(jget(j, "calibration.fitted.step_overhead_s") - m.k.step_overhead_s) < 5e-4);
    assert_int_equal(jget(j, "calibration.steps_fitted"), 300);
    /* the coefficients file reads back */
    cm_coeffs k;
    assert_int_equal(cm_coeffs_load(&k, tp("c_att_coeffs.json"), err, sizeof err), 0);
    assert_true(fabs(k.flops_eff / m.k.flops_eff - 1) < 0.05);
    assert_non_null(strstr(summary, "calibration"));
    cJSON_Delete(j);
    free(s);
    bias_trace_free(&t);
}

int main(void) {
    snprintf(T, sizeof T, "build/tmp/bias_compare.%ld", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_roundtrip),
        cmocka_unit_test(test_predicts_a_known_gpu),
        cmocka_unit_test(test_calibration_on_one_set),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
