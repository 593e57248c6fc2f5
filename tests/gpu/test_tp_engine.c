/* GPU tests of the engine with tensor parallelism on ONE GPU (issue 13):
 * --tensor-parallel-size 1 goes through the real NCCL path (tp_engine_start
 * of size 1: a communicator of one, the all-reduces after the embedding,
 * o_proj and every MLP, the logits gather, tp_sync for every wait) and gives
 * results bit-identical to the engine without it: every generated token
 * (greedy and sampled), the logits of every position (memcmp), the tokens
 * and log-probabilities of a request of 3 parallel samples (copy-on-write
 * of its prompt's last block) and the scores of a score-mode request, for
 * a dense model and a MoE one (dummy weights), and for a checkpoint read by
 * w_load against the same one read by w_load_shard.  The memory plan per
 * rank equals the plain one.  Several GPUs: tests/gpu/test_tp_comm.c.
 * Each case needs PAGESIM_GPU=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "tests/gpu/tp_ckpt.h"
#include "engine/engine.h"
#include "engine/tp_engine.h"

#define NP 6
static const int plens[NP] = {5, 37, 100, 200, 1, 64};
enum { MAXTOK = 24, VMAX = 50000 };

typedef struct logits_rec {      /* every position's logits of every request, in order of arrival */
    float  *rows;                /* (cap, V) */
    int32_t *who;                /* (cap, 2) request, position */
    size_t  n, cap;
    int     V;
} logits_rec;

static void on_logits(void *ctx, int id, int pos, const float *row, int V) {
    logits_rec *g = ctx;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 512;
        g->rows = realloc(g->rows, g->cap * (size_t)V * sizeof(float));
        g->who = realloc(g->who, g->cap * 2 * sizeof(int32_t));
        assert_non_null(g->rows);
    }
    memcpy(g->rows + g->n * (size_t)V, row, sizeof(float) * (size_t)V);
    g->who[2 * g->n] = id;
    g->who[2 * g->n + 1] = pos;
    g->n++;
    g->V = V;
}

enum { NSAMP = 3, NSCORE = 5 };
typedef struct outcome {
    int32_t tokens[NP][MAXTOK];
    int32_t samp[NSAMP][MAXTOK];          /* request NP: n = 3, sampled, with log-probabilities */
    float   samp_lp[NSAMP][MAXTOK];
    float   scores[NSCORE];               /* request NP + 1: score mode */
    logits_rec lg;
    model_mem mem;
} outcome;

/* Runs NP requests (even ids greedy, odd ids sampled at T 0.8, top-p 0.9) through an engine on
 * c: weights from dir (NULL: dummy, seed 3), with tp (size 1) or without. */
static void run(const mc_config *c, const char *dir, int with_tp, outcome *o) {
    char err[1024];
    eng_config cfg = {0};
    cfg.model.max_num_batched_tokens = 256;   /* the 200-token prompt in chunks */
    cfg.model.max_num_seqs = 8;
    cfg.model.max_model_len = 320;
    cfg.model.num_gpu_blocks = 256;
    cfg.eos_id = -1;
    cfg.on_logits = on_logits;
    cfg.logits_ctx = &o->lg;
    tp_engine *t = NULL;
    if (with_tp) {
        tp_engine_args a = {1, cfg.model, 60};
        if (tp_engine_start(&t, &a, err, sizeof err)) fail_msg("tp_engine_start: %s", err);
    }
    w_weights w;
    if (tp_engine_load(t, c, dir, 3, &w, err, sizeof err)) fail_msg("load: %s", err);
    cfg.model.tp = tp_engine_rank(t);
    eng *e = eng_create(c, &w, &cfg, &o->mem, err, sizeof err);
    if (!e) fail_msg("eng_create: %s", err);
    for (int r = 0; r < NP; r++) {
        int p[256];
        for (int i = 0; i < plens[r]; i++) p[i] = (r * 7919 + i * 131 + 17) % (c->vocab_size < VMAX ? c->vocab_size : VMAX);
        eng_params ep = {.max_tokens = MAXTOK, .temperature = r % 2 ? 0.8f : 0.0f, .top_p = r % 2 ? 0.9f : 1.0f,
                         .seed = (uint64_t)(100 + r)};
        assert_int_equal(eng_add_request(e, r, p, plens[r], &ep, err, sizeof err), 0);
    }
    int q[40];
    for (int i = 0; i < 40; i++) q[i] = (i * 37 + 11) % 1000;
    eng_params sp = {.max_tokens = MAXTOK, .temperature = 1.0f, .top_p = 1.0f, .seed = 7};
    eng_output_opts oo = {.n = NSAMP, .logprobs = 1};
    if (eng_add_request_out(e, NP, q, 40, &sp, &oo, err, sizeof err)) fail_msg("n = %d: %s", NSAMP, err);
    int32_t cand[NSCORE] = {3, 14, 159, 265, 358};
    eng_params sc = {.max_tokens = 1, .top_p = 1.0f, .score = true, .score_ids = cand, .num_score = NSCORE};
    if (eng_add_request(e, NP + 1, q, 33, &sc, err, sizeof err)) fail_msg("score: %s", err);
    int steps = 0, done = 0;
    while (eng_has_work(e) && steps < 5000) {
        const eng_result *d;
        int nd;
        if (eng_step(e, &d, &nd, err, sizeof err) < 0) fail_msg("eng_step: %s", err);
        for (int i = 0; i < nd; i++, done++) {
            if (d[i].id == NP + 1) {
                assert_int_equal(d[i].num_scores, NSCORE);
                memcpy(o->scores, d[i].scores, sizeof o->scores);
                continue;
            }
            if (d[i].id == NP) {
                assert_int_equal(d[i].num_samples, NSAMP);
                for (int k = 0; k < NSAMP; k++) {
                    assert_int_equal(d[i].samples[k].num_tokens, MAXTOK);
                    memcpy(o->samp[k], d[i].samples[k].tokens, sizeof o->samp[k]);
                    memcpy(o->samp_lp[k], d[i].samples[k].logprobs, sizeof o->samp_lp[k]);
                }
                continue;
            }
            assert_int_equal(d[i].num_tokens, MAXTOK);
            memcpy(o->tokens[d[i].id], d[i].tokens, sizeof o->tokens[0]);
        }
        steps++;
    }
    assert_int_equal(done, NP + 2);
    eng_free(e);
    assert_int_equal(tp_engine_stop(t), 0);
}

static void compare(const mc_config *c, const char *dir, const char *what) {
    static outcome a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    run(c, dir, 0, &a);
    run(c, dir, 1, &b);
    assert_memory_equal(a.tokens, b.tokens, sizeof a.tokens);
    assert_memory_equal(a.samp, b.samp, sizeof a.samp);
    assert_memory_equal(a.samp_lp, b.samp_lp, sizeof a.samp_lp);
    assert_memory_equal(a.scores, b.scores, sizeof a.scores);
    assert_int_equal(a.lg.n, b.lg.n);
    assert_memory_equal(a.lg.who, b.lg.who, a.lg.n * 2 * sizeof(int32_t));
    assert_memory_equal(a.lg.rows, b.lg.rows, a.lg.n * (size_t)a.lg.V * sizeof(float));
    /* the plan of one rank of one is the plain plan (NCCL's own memory aside, in 'other') */
    assert_int_equal(a.mem.weights, b.mem.weights);
    assert_int_equal(a.mem.kv_bytes_per_token, b.mem.kv_bytes_per_token);
    assert_int_equal(a.mem.num_blocks, b.mem.num_blocks);
    fprintf(stderr, "  %s: -tp 1 through NCCL = no tensor parallelism: %d x %d tokens, %d samples with their "
            "log-probabilities, %d scores and %zu logits rows of %d bit-identical (weights %zu bytes, %zu KV bytes/token each; other memory %.0f MiB vs %.0f MiB)\n", what,
            NP, MAXTOK, NSAMP, NSCORE, a.lg.n, a.lg.V, a.mem.weights, a.mem.kv_bytes_per_token, a.mem.other / 1048576.0,
            b.mem.other / 1048576.0);
    free(a.lg.rows); free(a.lg.who); free(b.lg.rows); free(b.lg.who);
}

static void test_dense_dummy(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE("data/models/smollm2-135m.json");
    mc_config c;
    char err[512];
    if (mc_load(&c, "data/models/smollm2-135m.json", err, sizeof err)) fail_msg("%s", err);
    compare(&c, NULL, "smollm2-135m (dummy weights)");
}

static void test_moe_dummy(void **st) {
    (void)st; TU_REQUIRE_GPU();
    mc_config c;
    char err[512];
    mkdir("build", 0755); mkdir("build/tmp", 0755);
    FILE *f = fopen("build/tmp/test-tp-moe.json", "w");
    assert_non_null(f);
    fprintf(f, "{\"model_type\":\"qwen3_moe\",\"hidden_size\":256,\"num_hidden_layers\":4,\"num_attention_heads\":4,"
            "\"num_key_value_heads\":2,\"head_dim\":64,\"vocab_size\":50000,\"intermediate_size\":512,"
            "\"moe_intermediate_size\":128,\"num_experts\":16,\"num_experts_per_tok\":4,\"norm_topk_prob\":true,"
            "\"mlp_only_layers\":[1],\"max_position_embeddings\":4096,\"tie_word_embeddings\":false}");
    fclose(f);
    if (mc_load(&c, "build/tmp/test-tp-moe.json", err, sizeof err)) fail_msg("%s", err);
    compare(&c, NULL, "qwen3-moe 16 experts (dummy weights)");
}

static void test_checkpoint(void **st) {
    (void)st; TU_REQUIRE_GPU();
    mc_config c;
    char err[512];
    if (tck_write("build/tmp/tp_ckpt_engine", "{\"model_type\":\"qwen3_moe\",\"hidden_size\":256,\"num_hidden_layers\":2,"
                  "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"head_dim\":128,\"intermediate_size\":512,"
                  "\"moe_intermediate_size\":128,\"num_experts\":8,\"num_experts_per_tok\":2,\"norm_topk_prob\":true,"
                  "\"vocab_size\":1000,\"max_position_embeddings\":4096,\"tie_word_embeddings\":false}", 1, &c, err,
                  sizeof err))
        fail_msg("%s", err);
    compare(&c, "build/tmp/tp_ckpt_engine", "qwen3-moe checkpoint (packed experts): w_load vs w_load_shard");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_dummy),
        cmocka_unit_test(test_moe_dummy),
        cmocka_unit_test(test_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
