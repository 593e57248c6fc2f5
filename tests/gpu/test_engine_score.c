/* GPU tests of the engine's score mode (eng_params.score) on dummy weights of
 * a small shipped config (data/models/smollm2-135m.json): the
 * log-probabilities a scoring request gets through the engine (sim/'s
 * scheduler, the paged cache, chunked prefill) equal those of one plain
 * forward of the same prompt on a model of the same weights; the likeliest
 * candidate is the request's token; with every logits row copied out
 * (on_logits) the scores are the log-softmax of the last prompt position's
 * row; and on the workload of tests/engine_score_case.h (a pool of 15
 * blocks, 12-token chunks, two generations growing beside the scoring
 * requests) scoring requests hit the prefix cache and are preempted and
 * recomputed, and still score what the plain forward says.  Each case needs
 * PAGESIM_GPU=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>
#include <stdio.h>
#include "tests/test_util.h"
#include "tests/engine_score_case.h"
#include "engine/engine.h"
#include "engine/model.h"

#define CFG "data/models/smollm2-135m.json"
#define SEED 3                      /* the dummy weights' seed, engine and reference alike */
#define K 16                        /* candidates per scoring request */
/* ||engine - reference|| / ||reference - its mean|| over a request's K
 * log-probabilities: the error against the spread of the candidates' logits
 * (the mean is the log-sum-exp both share), as the engine's logits are
 * compared everywhere (bf16; chunked prefill and cached prefixes against one
 * whole prefill).  Independent logits (another position's, say) are about
 * 1.4 apart on this measure. */
#define TOL 3e-2

static mc_config load_config(void) {
    mc_config c;
    char err[512];
    if (mc_load(&c, CFG, err, sizeof err)) fail_msg("%s", err);
    return c;
}

static eng *make_engine(const eng_config *cfg) {
    mc_config c = load_config();
    char err[512];
    w_weights w;
    if (w_dummy(&w, &c, SEED, err, sizeof err)) fail_msg("w_dummy: %s", err);
    model_mem mem;
    eng *e = eng_create(&c, &w, cfg, &mem, err, sizeof err);
    if (!e) fail_msg("eng_create: %s", err);
    return e;
}

/* The reference: a model of the same weights that runs one whole prompt per forward. */
enum { REF_LEN = 256 };
static model *make_ref(void) {
    mc_config c = load_config();
    char err[512];
    w_weights w;
    if (w_dummy(&w, &c, SEED, err, sizeof err)) fail_msg("w_dummy: %s", err);
    model_opts o = { .max_num_batched_tokens = REF_LEN, .max_num_seqs = 1, .max_model_len = REF_LEN,
                     .num_gpu_blocks = REF_LEN / 16, .block_size = 16 };
    model_mem mem;
    model *m = NULL;
    if (model_create(&m, &c, &w, &o, &mem, err, sizeof err)) fail_msg("model_create: %s", err);
    return m;
}

/* The log-probabilities of cand (k,) after prompt p (n tokens): one forward of
 * the whole prompt as one sequence whose block table is the identity (position
 * i is slot i), then the last position's row.  The row itself too (V,) when
 * row is not NULL. */
static void ref_scores(model *m, const int *p, int n, const int32_t *cand, int k, float *out, float *row) {
    static int32_t ids[REF_LEN], pos[REF_LEN], table[REF_LEN / 16];
    char err[512];
    assert_true(n > 0 && n <= REF_LEN);
    for (int i = 0; i < n; i++) { ids[i] = p[i]; pos[i] = i; }
    for (int j = 0; j < REF_LEN / 16; j++) table[j] = j;
    int32_t qs[2] = { 0, n }, ctx[1] = { n };
    model_batch b = { n, 1, ids, pos, pos, qs, ctx, table, REF_LEN / 16, 0, NULL };
    int rows;
    if (model_forward(m, &b, &rows, err, sizeof err)) fail_msg("model_forward: %s", err);
    assert_int_equal(rows, 1);
    for (int j = 0; j < k; j++)
        if (model_logprobs(m, 1, &cand[j], &out[j], err, sizeof err)) fail_msg("model_logprobs: %s", err);
    if (row && model_logits(m, 1, row, err, sizeof err)) fail_msg("model_logits: %s", err);
}

static int prompt_tok(int r, int i) { return (r * 7919 + i * 131 + 17) % 49000; }

/* Candidates: the reference row's least and most likely tokens (the best not
 * first) and K - 2 others spread over the vocabulary. */
static void pick_candidates(const float *row, int V, int32_t *cand) {
    int hi = 0, lo = 0;
    for (int v = 1; v < V; v++) {
        if (row[v] > row[hi]) hi = v;
        if (row[v] < row[lo]) lo = v;
    }
    cand[0] = lo; cand[1] = hi;
    for (int k = 2; k < K; k++) {
        int v = (int)(((long)k * 3067 + 11) % V);
        while (v == hi || v == lo) v = (v + 1) % V;
        cand[k] = v;
    }
}

static void fixed_candidates(int32_t *cand) {
    for (int k = 0; k < K; k++) cand[k] = 11 + k * 3001;                  /* < 49152 */
}

typedef struct results { eng_result r[64]; float scores[64][K]; int got[64]; } results;
static int keep(void *ctx, const eng_result *d, char *err, size_t errlen) {
    (void)err; (void)errlen;
    results *x = ctx;
    assert_true(d->id >= 0 && d->id < 64 && !x->got[d->id]);
    x->r[d->id] = *d;
    x->got[d->id] = 1;
    for (int k = 0; k < d->num_scores && k < K; k++) x->scores[d->id][k] = d->scores[k];
    return 0;
}

static void add_score(eng *e, int id, const int *p, int n, const int32_t *cand) {
    char err[512];
    eng_params ep = { .max_tokens = 1, .top_p = 1, .score = true, .score_ids = cand, .num_score = K };
    assert_int_equal(eng_add_request(e, id, p, n, &ep, err, sizeof err), 0);
}

/* Compares request r's engine scores with the reference's (the error
 * measure of TOL) and checks that its token is its likeliest candidate, and
 * the reference's too when the reference's margin is clear.  Returns the error. */
static double check_scores(const results *x, int r, const float *ref, const int32_t *cand) {
    assert_true(x->got[r]);
    const eng_result *d = &x->r[r];
    assert_false(d->aborted);
    assert_int_equal(d->num_scores, K);
    assert_int_equal(d->num_tokens, 1);
    double mean = 0, num = 0, den = 0;
    for (int k = 0; k < K; k++) mean += ref[k] / K;
    int best = 0, rbest = 0, rsecond = -1;
    for (int k = 0; k < K; k++) {
        double e = x->scores[r][k];
        if (!isfinite(e)) fail_msg("request %d candidate %d: score %f", r, k, e);
        num += (e - ref[k]) * (e - ref[k]);
        den += (ref[k] - mean) * (ref[k] - mean);
        if (e > x->scores[r][best]) best = k;
        if (ref[k] > ref[rbest]) { rsecond = rbest; rbest = k; }
        else if (k != rbest && (rsecond < 0 || ref[k] > ref[rsecond])) rsecond = k;
    }
    double rel = den > 0 ? sqrt(num / den) : INFINITY;
    if (!(rel < TOL)) {
        for (int k = 0; k < K; k++) fprintf(stderr, "    candidate %d (%d): engine %.5f, forward %.5f\n", k, cand[k],
                                            x->scores[r][k], ref[k]);
        fail_msg("request %d: scores differ from the forward's by %.3e (relative to their spread)", r, rel);
    }
    assert_int_equal(d->tokens[0], cand[best]);
    if (rsecond >= 0 && ref[rbest] - ref[rsecond] > 4 * TOL * sqrt(den / K)) assert_int_equal(best, rbest);
    return rel;
}

/* Scoring requests of several lengths, alone and in one batch, whole and in
 * chunks, against the plain forward; the candidates include the reference's
 * most and least likely tokens. */
enum { NP = 5 };
static const int plens[NP] = { 5, 37, 100, 200, 130 };

static void test_score_equals_forward(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    model *ref = make_ref();
    const int V = model_config(ref)->vocab_size;
    float *row = malloc(sizeof(float) * (size_t)V), want[NP][K];
    int32_t cand[NP][K];
    static int p[NP][REF_LEN];
    for (int r = 0; r < NP; r++) {
        for (int i = 0; i < plens[r]; i++) p[r][i] = prompt_tok(r, i);
        int32_t any = 0;
        ref_scores(ref, p[r], plens[r], &any, 1, want[r], row);
        pick_candidates(row, V, cand[r]);
        ref_scores(ref, p[r], plens[r], cand[r], K, want[r], NULL);
    }
    model_free(ref);
    free(row);
    eng_config cfg = { .model = { .max_num_batched_tokens = 128, .max_num_seqs = 8, .max_model_len = 320,
                                  .num_gpu_blocks = 256 }, .eos_id = -1 };
    eng *e = make_engine(&cfg);
    static results x;
    memset(&x, 0, sizeof x);
    eng_hooks h = { .on_result = keep, .ctx = &x };
    char err[512];
    add_score(e, 0, p[0], plens[0], cand[0]);                       /* alone, one chunk */
    if (eng_run(e, &h, err, sizeof err)) fail_msg("eng_run: %s", err);
    for (int r = 1; r < NP; r++) add_score(e, r, p[r], plens[r], cand[r]);   /* together, chunked */
    if (eng_run(e, &h, err, sizeof err)) fail_msg("eng_run: %s", err);
    for (int r = 0; r < NP; r++) {
        double d = check_scores(&x, r, want[r], cand[r]);
        fprintf(stderr, "  prompt %d (%d tokens): least/most likely %.4f / %.4f (forward %.4f / %.4f), error %.2e\n",
                r, plens[r], x.scores[r][0], x.scores[r][1], want[r][0], want[r][1], d);
    }
    eng_free(e);
}

/* With on_logits every row comes out: the scores are the log-softmax of the
 * row of the last prompt position, to float precision (the same logits). */
typedef struct last_rows { float *row[NP]; int V; } last_rows;
static void on_logits(void *ctx, int id, int position, const float *row, int V) {
    last_rows *g = ctx;
    if (id < 0 || id >= NP || position != plens[id] - 1) return;
    if (!g->row[id]) g->row[id] = malloc(sizeof(float) * (size_t)V);
    memcpy(g->row[id], row, sizeof(float) * (size_t)V);
    g->V = V;
}

static void test_score_rows_with_all_logits(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    static last_rows g;
    memset(&g, 0, sizeof g);
    eng_config cfg = { .model = { .max_num_batched_tokens = 96, .max_num_seqs = 8, .max_model_len = 320,
                                  .num_gpu_blocks = 256 }, .eos_id = -1, .on_logits = on_logits, .logits_ctx = &g };
    eng *e = make_engine(&cfg);
    static int p[NP][REF_LEN];
    int32_t cand[K];
    fixed_candidates(cand);
    for (int r = 0; r < NP; r++) {
        for (int i = 0; i < plens[r]; i++) p[r][i] = prompt_tok(r + 10, i);
        add_score(e, r, p[r], plens[r], cand);
    }
    static results x;
    memset(&x, 0, sizeof x);
    eng_hooks h = { .on_result = keep, .ctx = &x };
    char err[512];
    if (eng_run(e, &h, err, sizeof err)) fail_msg("eng_run: %s", err);
    for (int r = 0; r < NP; r++) {
        assert_non_null(g.row[r]);
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < g.V; v++) if (g.row[r][v] > mx) mx = g.row[r][v];
        for (int v = 0; v < g.V; v++) sum += exp((double)g.row[r][v] - mx);
        float want[K];
        for (int k = 0; k < K; k++) want[k] = (float)(g.row[r][cand[k]] - mx - log(sum));
        for (int k = 0; k < K; k++)
            if (!(fabs((double)x.scores[r][k] - want[k]) < 1e-3))
                fail_msg("request %d candidate %d: engine %.6f, log-softmax of its row %.6f", r, k, x.scores[r][k], want[k]);
        free(g.row[r]);
    }
    eng_free(e);
}

/* The workload of tests/engine_score_case.h: prefix-cache hits and
 * preemption by recompute of scoring requests, the scores still those of the
 * plain forward; the generations run to their length. */
static void test_score_prefix_cache_and_preemption(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    static int p[SCASE_N][SCASE_LEN];
    int32_t cand[K];
    fixed_candidates(cand);
    float want[SCASE_N][K];
    model *ref = make_ref();
    for (int r = 0; r < SCASE_N; r++) {
        for (int i = 0; i < scase_len(r); i++) p[r][i] = scase_token(r, i);
        if (scase_is_score(r)) ref_scores(ref, p[r], scase_len(r), cand, K, want[r], NULL);
    }
    model_free(ref);
    eng_config cfg = { .model = { .max_num_batched_tokens = SCASE_BUDGET, .max_num_seqs = SCASE_SEQS,
                                  .max_model_len = SCASE_MAX_LEN, .block_size = SCASE_BLOCK_SIZE,
                                  .num_gpu_blocks = SCASE_BLOCKS },
                       .prefix_caching = true, .eos_id = -1 };
    eng *e = make_engine(&cfg);
    char err[512];
    for (int r = 0; r < SCASE_N; r++) {
        if (scase_is_score(r)) { add_score(e, r, p[r], scase_len(r), cand); continue; }
        eng_params ep = { .max_tokens = scase_max_tokens(r), .top_p = 1, .seed = (uint64_t)r };
        assert_int_equal(eng_add_request(e, r, p[r], scase_len(r), &ep, err, sizeof err), 0);
    }
    static results x;
    memset(&x, 0, sizeof x);
    eng_hooks h = { .on_result = keep, .ctx = &x };
    if (eng_run(e, &h, err, sizeof err)) fail_msg("eng_run: %s", err);
    met_summary ms;
    assert_int_equal(eng_summary(e, &ms), 0);
    int preempted = 0;
    double worst = 0;
    for (int r = 0; r < SCASE_N; r++) {
        assert_true(x.got[r]);
        if (!scase_is_score(r)) { assert_int_equal(x.r[r].num_tokens, SCASE_GEN_OUT); continue; }
        double d = check_scores(&x, r, want[r], cand);
        if (d > worst) worst = d;
        preempted += x.r[r].num_preemptions > 0;
    }
    fprintf(stderr, "  %ld preemptions (%d scoring requests recomputed), %ld prefix-hit tokens; largest error "
            "against the forward %.2e\n", ms.preemptions, preempted, ms.prefix_hit_tokens, worst);
    assert_true(preempted > 0);
    assert_true(ms.prefix_hit_tokens >= 8 * SCASE_PREFIX / 2);
    kv_usage u;
    eng_usage(e, &u);
    assert_int_equal(u.blocks_used, 0);
    eng_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_equals_forward),
        cmocka_unit_test(test_score_rows_with_all_logits),
        cmocka_unit_test(test_score_prefix_cache_and_preemption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
