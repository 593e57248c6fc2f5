/* GPU tests of the engine loop (engine/engine.h) on dummy weights of a small
 * shipped config (data/models/smollm2-135m.json): a batch gives what each
 * request gives alone, the contiguous policy gives exactly what paged gives,
 * a pool too small for the batch preempts (recompute) and still finishes
 * every request at its length, and eng_abort ends waiting and running
 * requests and gives their blocks back, and eng_tokens streams a live
 * request's tokens; a request with a later arrival time is released then
 * (the engine sleeps till it) and one still queued can be aborted.  Each case
 * needs PAGESIM_GPU=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>
#include <stdio.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "engine/engine.h"

#define CFG "data/models/smollm2-135m.json"
#define NP 4
static const int plens[NP] = {5, 37, 100, 200};

static int prompt_tok(int r, int i) { return (r * 7919 + i * 131 + 17) % 49000; }

typedef struct lg_rec { float *first[NP]; int V; } lg_rec;   /* logits of each prompt's last position */
static void on_logits(void *ctx, int id, int pos, const float *row, int V) {
    lg_rec *g = ctx;
    if (id < 0 || id >= NP || pos != plens[id] - 1) return;
    if (!g->first[id]) g->first[id] = malloc(sizeof(float) * V);
    memcpy(g->first[id], row, sizeof(float) * V);
    g->V = V;
}

static const char *cfg_path = CFG;

static eng *make(eng_config *cfg) {
    mc_config c;
    char err[512];
    w_weights w;
    if (mc_load(&c, cfg_path, err, sizeof err)) fail_msg("%s", err);
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

/* adds the requests [r0, r1) and runs until idle; tokens[r] (max_tokens each) */
static void run(eng *e, int r0, int r1, int max_tokens, int32_t tokens[][64], int *aborted) {
    char err[512];
    for (int r = r0; r < r1; r++) {
        int p[256];
        for (int i = 0; i < plens[r % NP]; i++) p[i] = prompt_tok(r % NP, i);
        eng_params ep = { .max_tokens = max_tokens, .top_p = 1, .seed = (uint64_t)r };
        assert_int_equal(eng_add_request(e, r, p, plens[r % NP], &ep, err, sizeof err), 0);
    }
    int steps = 0;
    while (eng_has_work(e) && steps < 5000) {
        const eng_result *d;
        int nd;
        if (eng_step(e, &d, &nd, err, sizeof err) < 0) fail_msg("eng_step: %s", err);
        for (int i = 0; i < nd; i++) {
            if (aborted && d[i].aborted) aborted[d[i].id] = 1;
            if (d[i].aborted) continue;
            assert_int_equal(d[i].num_tokens, max_tokens);
            memcpy(tokens[d[i].id], d[i].tokens, sizeof(int32_t) * max_tokens);
        }
        steps++;
    }
    assert_false(eng_has_work(e));
}

static double rel_l2(const float *a, const float *b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) { num += (double)(a[i] - b[i]) * (a[i] - b[i]); den += (double)b[i] * b[i]; }
    return den > 0 ? sqrt(num / den) : INFINITY;
}

static void test_batch_equals_single(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    lg_rec gb = {0}, gs = {0};
    static int32_t tb[NP][64], ts[NP][64];
    eng_config cfg = small_config();
    cfg.on_logits = on_logits;
    cfg.logits_ctx = &gb;
    eng *e = make(&cfg);
    run(e, 0, NP, 16, tb, NULL);
    eng_free(e);
    cfg.logits_ctx = &gs;
    e = make(&cfg);
    for (int r = 0; r < NP; r++) run(e, r, r + 1, 16, ts, NULL);
    eng_free(e);
    int same = 0;
    for (int r = 0; r < NP; r++) {
        assert_non_null(gb.first[r]);
        assert_non_null(gs.first[r]);
        double d = rel_l2(gs.first[r], gb.first[r], gb.V);
        fprintf(stderr, "  prompt %d (%d tokens): logits batch vs single rel L2 %.2e\n", r, plens[r], d);
        assert_true(d < 1e-2);
        same += !memcmp(tb[r], ts[r], sizeof tb[r]);
        free(gb.first[r]); free(gs.first[r]);
    }
    fprintf(stderr, "  %d/%d requests: identical tokens\n", same, NP);
    assert_true(same >= NP - 1);
}

/* A small Qwen3-MoE (16 experts, top-4, layer 1 dense): a batch gives what
 * each request gives alone (the batch's prefill runs the wgmma kernel, the
 * single requests mma.sync), and the cuBLAS path agrees. */
#define MOE_CFG "build/tmp/test-moe.json"
static void test_moe_engine(void **st) {
    (void)st; TU_REQUIRE_GPU();
    mkdir("build", 0755); mkdir("build/tmp", 0755);
    FILE *f = fopen(MOE_CFG, "w");
    assert_non_null(f);
    fprintf(f, "{\"model_type\":\"qwen3_moe\",\"hidden_size\":256,\"num_hidden_layers\":4,\"num_attention_heads\":4,"
            "\"num_key_value_heads\":2,\"head_dim\":64,\"vocab_size\":50000,\"intermediate_size\":512,"
            "\"moe_intermediate_size\":128,\"num_experts\":16,\"num_experts_per_tok\":4,\"norm_topk_prob\":true,"
            "\"mlp_only_layers\":[1],\"max_position_embeddings\":4096,\"tie_word_embeddings\":false}");
    fclose(f);
    cfg_path = MOE_CFG;
    lg_rec gb = {0}, gs = {0}, gc = {0};
    static int32_t tb[NP][64], ts[NP][64], tc[NP][64];
    eng_config cfg = small_config();
    cfg.on_logits = on_logits;
    cfg.logits_ctx = &gb;
    eng *e = make(&cfg);
    run(e, 0, NP, 16, tb, NULL);
    eng_free(e);
    cfg.logits_ctx = &gs;
    e = make(&cfg);
    for (int r = 0; r < NP; r++) run(e, r, r + 1, 16, ts, NULL);
    eng_free(e);
    cfg.logits_ctx = &gc;
    cfg.model.moe_gemm = K_MOE_GEMM_CUBLAS;
    e = make(&cfg);
    run(e, 0, NP, 16, tc, NULL);
    eng_free(e);
    cfg_path = CFG;
    int same = 0, same_c = 0;
    for (int r = 0; r < NP; r++) {
        double d = rel_l2(gs.first[r], gb.first[r], gb.V), dc = rel_l2(gc.first[r], gb.first[r], gb.V);
        fprintf(stderr, "  MoE prompt %d: logits single vs batch rel L2 %.2e, cuBLAS vs ours %.2e\n", r, d, dc);
        assert_true(d < 1e-2 && dc < 1e-2);
        same += !memcmp(tb[r], ts[r], sizeof tb[r]);
        same_c += !memcmp(tb[r], tc[r], sizeof tb[r]);
        free(gb.first[r]); free(gs.first[r]); free(gc.first[r]);
    }
    fprintf(stderr, "  MoE: %d/%d identical tokens batch vs single, %d/%d cuBLAS vs ours\n", same, NP, same_c, NP);
    assert_true(same >= NP - 1 && same_c >= NP - 1);
}

static void test_contiguous_equals_paged(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    static int32_t tp[NP][64], tc[NP][64];
    eng_config cfg = small_config();
    eng *e = make(&cfg);
    run(e, 0, NP, 24, tp, NULL);
    kv_usage u;
    eng_usage(e, &u);
    assert_int_equal(u.blocks_used, 0);
    eng_free(e);
    cfg.kv_policy = KV_CONTIGUOUS;
    e = make(&cfg);
    run(e, 0, NP, 24, tc, NULL);
    eng_free(e);
    for (int r = 0; r < NP; r++) assert_memory_equal(tp[r], tc[r], sizeof tp[r]);
}

static void test_preemption(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    static int32_t t[2 * NP][64];
    eng_config cfg = small_config();
    cfg.model.num_gpu_blocks = 24;        /* 384 slots for 8 requests of up to 248 tokens */
    eng *e = make(&cfg);
    run(e, 0, 2 * NP, 48, t, NULL);       /* asserts every request got its 48 tokens */
    const sched_stats *ss = eng_sched_stats(e);
    fprintf(stderr, "  %ld preemptions (recompute)\n", ss->preemptions);
    assert_true(ss->preemptions > 0);
    kv_usage u;
    eng_usage(e, &u);
    assert_int_equal(u.blocks_used, 0);
    eng_free(e);
}

static void test_abort(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    static int32_t t[NP][64];
    int ab[NP] = {0};
    char err[512];
    eng_config cfg = small_config();
    cfg.model.max_num_seqs = 1;           /* one runs, the others wait */
    eng *e = make(&cfg);
    for (int r = 0; r < 3; r++) {
        int p[256];
        for (int i = 0; i < plens[r]; i++) p[i] = prompt_tok(r, i);
        eng_params ep = { .max_tokens = 20, .top_p = 1, .seed = (uint64_t)r };
        assert_int_equal(eng_add_request(e, r, p, plens[r], &ep, err, sizeof err), 0);
    }
    const eng_result *d;
    int nd;
    assert_int_equal(eng_step(e, &d, &nd, err, sizeof err), 1);      /* request 0 prefills */
    assert_int_equal(eng_step(e, &d, &nd, err, sizeof err), 1);      /* and decodes */
    kv_usage u;
    eng_usage(e, &u);
    assert_true(u.blocks_used > 0);
    assert_int_equal(eng_abort(e, 2), 0);                            /* waiting */
    assert_int_equal(eng_abort(e, 0), 0);                            /* running */
    assert_int_equal(eng_abort(e, 7), -1);                           /* unknown */
    eng_usage(e, &u);
    assert_int_equal(u.blocks_used, 0);
    run(e, 0, 0, 20, t, ab);                                         /* request 1 finishes */
    assert_true(ab[0] && ab[2] && !ab[1]);
    eng_free(e);
}

/* eng_tokens (streaming): a live request's tokens grow by one a decode step,
 * each prefix is what it finally returns, and a finished id is not live. */
static void test_tokens_stream(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    char err[512];
    eng_config cfg = small_config();
    eng *e = make(&cfg);
    int p[256];
    for (int i = 0; i < plens[1]; i++) p[i] = prompt_tok(1, i);
    eng_params ep = { .max_tokens = 24, .top_p = 1, .seed = 1 };
    assert_int_equal(eng_add_request(e, 1, p, plens[1], &ep, err, sizeof err), 0);
    int32_t seen[64];
    int last = 0, steps = 0, done = 0;
    while (eng_has_work(e) && steps++ < 200) {
        const eng_result *d;
        int nd;
        assert_int_equal(eng_step(e, &d, &nd, err, sizeof err), 1);
        if (nd == 1) {
            assert_int_equal(d[0].num_tokens, 24);
            for (int j = 0; j < last; j++) assert_int_equal(d[0].tokens[j], seen[j]);
            done = 1;
            break;
        }
        const int32_t *toks;
        int n = eng_tokens(e, 1, &toks);
        assert_true(n == last + 1);                      /* one new token each step */
        for (int j = 0; j < last; j++) assert_int_equal(toks[j], seen[j]);
        memcpy(seen, toks, sizeof(int32_t) * (size_t)n);
        last = n;
    }
    assert_true(done && last >= 20);
    const int32_t *toks;
    assert_int_equal(eng_tokens(e, 1, &toks), -1);
    assert_int_equal(eng_tokens(e, 99, &toks), -1);
    eng_free(e);
}

/* Arrival times: the driver releases a request at its arrival (eng_run
 * sleeps until then with nothing else to run), its result counts from that
 * time; a request still queued is aborted without running. */
typedef struct arrived { eng_result r[4]; int got[4]; } arrived;
static int keep_result(void *ctx, const eng_result *d, char *err, size_t errlen) {
    (void)err; (void)errlen;
    arrived *a = ctx;
    assert_true(d->id >= 0 && d->id < 4 && !a->got[d->id]);
    a->r[d->id] = *d;
    a->got[d->id] = 1;
    return 0;
}

static void test_arrivals(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG);
    char err[512];
    eng_config cfg = small_config();
    eng *e = make(&cfg);
    int p[256];
    for (int i = 0; i < plens[1]; i++) p[i] = prompt_tok(1, i);
    double t0 = eng_now(e);
    for (int r = 0; r < 3; r++) {
        eng_params ep = { .max_tokens = 8, .top_p = 1, .seed = (uint64_t)r, .arrival = r == 0 ? 0 : t0 + 0.3 * r };
        assert_int_equal(eng_add_request(e, r, p, plens[1], &ep, err, sizeof err), 0);
    }
    const int32_t *toks;
    assert_int_equal(eng_tokens(e, 0, &toks), 0);        /* arrived: in the scheduler at once */
    assert_int_equal(eng_abort(e, 2), 0);                /* queued for t0 + 0.6 */
    assert_int_equal(eng_abort(e, 2), -1);
    static arrived a;
    eng_hooks h = { .on_result = keep_result, .ctx = &a };
    if (eng_run(e, &h, err, sizeof err)) fail_msg("eng_run: %s", err);
    assert_false(eng_has_work(e));
    assert_true(a.got[0] && a.got[1] && a.got[2]);
    assert_true(!a.r[0].aborted && a.r[0].num_tokens == 8);
    assert_true(!a.r[1].aborted && a.r[1].num_tokens == 8);
    assert_true(a.r[1].arrival == t0 + 0.3);              /* its own time, not when it was added */
    assert_true(a.r[1].first_token >= t0 + 0.3 && a.r[1].first_token > a.r[0].finish);
    assert_true(a.r[2].aborted && a.r[2].num_tokens == 0);
    assert_true(eng_now(e) >= t0 + 0.3);
    fprintf(stderr, "  request 1 arrived at +%.3f s, first token +%.3f s\n", a.r[1].arrival - t0,
            a.r[1].first_token - t0);
    eng_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_single),
        cmocka_unit_test(test_moe_engine),
        cmocka_unit_test(test_contiguous_equals_paged),
        cmocka_unit_test(test_preemption),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_tokens_stream),
        cmocka_unit_test(test_arrivals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
