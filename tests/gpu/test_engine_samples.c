/* GPU tests of what a request gets back beyond one sequence (engine.h:
 * eng_add_request_out), on dummy weights of data/models/smollm2-135m.json:
 * n > 1 samples forked by the scheduler with copy-on-write (each sample its
 * own seeded stream, sample 0 the n = 1 result, the parent's KV intact),
 * and log-probabilities: the sampled token's (model_logprobs) and the top k
 * (eng_top_logprobs over the host logits), against log_softmax of the rows
 * the on_logits hook sees.  Each case needs PAGESIM_GPU=1 (make test-gpu). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/engine.h"

#define CFG "data/models/smollm2-135m.json"
#define PLEN 37
#define MAXT 24

static eng *make(eng_config *cfg) {
    mc_config c;
    char err[512];
    w_weights w;
    assert_int_equal(mc_load(&c, CFG, err, sizeof err), 0);
    if (w_dummy(&w, &c, 3, err, sizeof err)) fail_msg("w_dummy: %s", err);
    model_mem mem;
    eng *e = eng_create(&c, &w, cfg, &mem, err, sizeof err);
    if (!e) fail_msg("eng_create: %s", err);
    return e;
}

static eng_config small_config(void) {
    eng_config cfg = {0};
    cfg.model.max_num_batched_tokens = 512;
    cfg.model.max_num_seqs = 16;
    cfg.model.max_model_len = 320;
    cfg.model.num_gpu_blocks = 256;
    cfg.eos_id = -1;
    return cfg;
}

/* One request (id, n samples, temperature, seed, logprobs, top k) run to
 * its end; its samples copied into out[k] (MAXT tokens) and lp / top. */
typedef struct {
    int32_t tok[4][MAXT];
    float lp[4][MAXT];
    int32_t top_id[4][MAXT][5];
    float top_lp[4][MAXT][5];
    int n, finish[4];
} got;

static void run_one(eng *e, int id, int n, float temp, uint64_t seed, int logprobs, int k, got *g) {
    char err[512];
    int p[PLEN];
    for (int i = 0; i < PLEN; i++) p[i] = (i * 131 + 17) % 49000;
    eng_params ep = { .max_tokens = MAXT, .temperature = temp, .top_p = 1, .seed = seed };
    eng_output_opts o = {n, logprobs, k};
    assert_int_equal(eng_add_request_out(e, id, p, PLEN, &ep, &o, err, sizeof err), 0);
    int done = 0, steps = 0;
    memset(g, 0, sizeof *g);
    while (eng_has_work(e) && steps++ < 1000) {
        const eng_result *d;
        int nd;
        if (eng_step(e, &d, &nd, err, sizeof err) < 0) fail_msg("eng_step: %s", err);
        for (int i = 0; i < nd; i++) {
            if (d[i].id != id) continue;
            done = 1;
            assert_false(d[i].aborted);
            assert_int_equal(d[i].num_samples, n);
            g->n = n;
            for (int s = 0; s < n; s++) {
                const eng_sample *sm = &d[i].samples[s];
                assert_int_equal(sm->num_tokens, MAXT);
                g->finish[s] = sm->finish;
                memcpy(g->tok[s], sm->tokens, sizeof g->tok[s]);
                if (logprobs) memcpy(g->lp[s], sm->logprobs, sizeof g->lp[s]);
                for (int t = 0; t < MAXT && k; t++)
                    for (int j = 0; j < k; j++) {
                        g->top_id[s][t][j] = sm->top_ids[t * k + j];
                        g->top_lp[s][t][j] = sm->top_lps[t * k + j];
                    }
            }
            assert_memory_equal(d[i].tokens, g->tok[0], sizeof g->tok[0]);   /* the result is sample 0 */
        }
    }
    assert_true(done);
}

static int common_prefix(const int32_t *a, const int32_t *b) {
    int i = 0;
    while (i < MAXT && a[i] == b[i]) i++;
    return i;
}

static void test_parallel_samples(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    eng_config cfg = small_config();
    eng *e = make(&cfg);
    static got one, three, again;
    run_one(e, 0, 1, 0.8f, 5, 0, 0, &one);
    run_one(e, 1, 3, 0.8f, 5, 0, 0, &three);
    assert_int_equal(eng_sched_stats(e)->forks, 2);
    kv_usage u;
    eng_usage(e, &u);
    fprintf(stderr, "  n=3: %ld copy-on-write copies; prefix shared with n=1: %d of %d; samples 1, 2: %d, %d in common with 0\n",
            u.cow_copies, common_prefix(one.tok[0], three.tok[0]), MAXT,
            common_prefix(three.tok[0], three.tok[1]), common_prefix(three.tok[0], three.tok[2]));
    assert_true(u.cow_copies >= 2);                            /* 37 % 16: the last prompt block is shared */
    assert_int_equal(u.blocks_used, 0);                         /* all given back */
    for (int s = 0; s < 3; s++) assert_int_equal(three.finish[s], SEQ_FINISH_LENGTH);
    assert_true(common_prefix(one.tok[0], three.tok[0]) >= MAXT / 2);   /* sample 0 = the n=1 stream */
    assert_true(memcmp(three.tok[0], three.tok[1], sizeof three.tok[0]) ||
                memcmp(three.tok[0], three.tok[2], sizeof three.tok[0]));   /* own streams */
    run_one(e, 2, 3, 0.8f, 5, 0, 0, &again);                   /* seeded: the same again */
    for (int s = 0; s < 3; s++) assert_true(common_prefix(three.tok[s], again.tok[s]) >= MAXT / 2);
    eng_free(e);
}

/* Greedy n=2: both samples follow the n=1 greedy path; the parent's KV
 * survived its children's copy-on-write. */
static void test_greedy_samples(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    eng_config cfg = small_config();
    eng *e = make(&cfg);
    static got one, two;
    run_one(e, 0, 1, 0, 1, 0, 0, &one);
    run_one(e, 1, 2, 0, 1, 0, 0, &two);
    int a = common_prefix(one.tok[0], two.tok[0]), b = common_prefix(one.tok[0], two.tok[1]);
    fprintf(stderr, "  greedy n=2 vs n=1: %d and %d of %d tokens in common\n", a, b, MAXT);
    assert_true(a >= MAXT - 4 && b >= MAXT - 4);
    eng_free(e);
}

/* Rows of logits seen by on_logits, by position (request 0 only). */
typedef struct { float *row[PLEN + MAXT]; int V; } rows;
static void keep_row(void *ctx, int id, int pos, const float *row, int V) {
    rows *r = ctx;
    if (id != 0 || pos < 0 || pos >= PLEN + MAXT) return;
    if (!r->row[pos]) r->row[pos] = malloc(sizeof(float) * (size_t)V);
    memcpy(r->row[pos], row, sizeof(float) * (size_t)V);
    r->V = V;
}

static void test_logprobs(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    static rows rw;
    static got ref, plain;
    eng_config cfg = small_config();
    cfg.on_logits = keep_row;
    cfg.logits_ctx = &rw;
    eng *e = make(&cfg);
    run_one(e, 0, 1, 0, 1, 1, 5, &ref);                        /* every row on the host too */
    eng_free(e);
    cfg.on_logits = NULL;
    e = make(&cfg);
    run_one(e, 0, 1, 0, 1, 1, 5, &plain);                       /* the serving path: last rows only */
    eng_free(e);
    double worst = 0, worst_plain = 0;
    for (int t = 0; t < MAXT; t++) {
        const float *row = rw.row[PLEN - 1 + t];                /* the position that predicted token t */
        assert_non_null(row);
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < rw.V; i++) mx = row[i] > mx ? row[i] : mx;
        for (int i = 0; i < rw.V; i++) sum += exp((double)row[i] - mx);
        double lse = mx + log(sum), want = row[ref.tok[0][t]] - lse;
        double d = fabs(ref.lp[0][t] - want);
        if (d > worst) worst = d;
        assert_true(ref.lp[0][t] <= 1e-6);
        assert_int_equal(ref.top_id[0][t][0], ref.tok[0][t]);  /* greedy: the likeliest */
        assert_true(fabs(ref.top_lp[0][t][0] - ref.lp[0][t]) < 1e-3);
        double p = 0;
        for (int j = 0; j < 5; j++) {
            assert_true(fabs(ref.top_lp[0][t][j] - (row[ref.top_id[0][t][j]] - lse)) < 1e-3);
            if (j) assert_true(ref.top_lp[0][t][j - 1] >= ref.top_lp[0][t][j]);
            p += exp(ref.top_lp[0][t][j]);
        }
        assert_true(p <= 1 + 1e-4);
        if (plain.tok[0][t] == ref.tok[0][t] && fabs(plain.lp[0][t] - ref.lp[0][t]) > worst_plain)
            worst_plain = fabs(plain.lp[0][t] - ref.lp[0][t]);
    }
    fprintf(stderr, "  logprob vs host log_softmax: max |diff| %.2e; serving path vs all-rows path %.2e; "
            "tokens in common %d of %d\n", worst, worst_plain, common_prefix(ref.tok[0], plain.tok[0]), MAXT);
    assert_true(worst < 1e-3);
    assert_true(worst_plain < 5e-2);
    for (int i = 0; i < PLEN + MAXT; i++) free(rw.row[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_samples),
        cmocka_unit_test(test_greedy_samples),
        cmocka_unit_test(test_logprobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
