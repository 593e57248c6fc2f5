/* GPU tests of preemption by swap (engine/swap.h, eng_config.preempt):
 *  - the pool: runs of blocks out to pinned host memory and back, through
 *    the 2D copy and plane by plane, land byte for byte where the block ids
 *    say (every plane, nothing else touched); a run out of range is refused;
 *  - the model: a sequence's blocks swapped out, overwritten on the GPU by
 *    another sequence, and swapped into other blocks (two runs) give the
 *    same decode step memcmp-identical logits;
 *  - the engine: a pool far too small for 8 growing requests swaps them out
 *    and in (no recompute), every request finishes, and its greedy tokens and
 *    decode logits are bit-identical to an unconstrained run.  Both runs
 *    prefill all prompts in their first step and pad every decode step to
 *    one CUDA-graph bucket (graph_min_batch = max_num_seqs), so a row's
 *    arithmetic never depends on how many sequences run; eagerly (batches of
 *    different sizes) the tokens agree too but for near ties, as elsewhere.
 * Each case needs PAGESIM_GPU=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>
#include <stdio.h>
#include "tests/test_util.h"
#include <cuda_runtime_api.h>
#include "engine/engine.h"
#include "engine/model.h"
#include "engine/swap.h"
#include "engine/cuda_graph.h"

#define SMOL "data/models/smollm2-135m.json"

/* ---- the pool ---------------------------------------------------------------- */
static uint16_t *down(const void *d, size_t bytes) {
    uint16_t *h = malloc(bytes);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    assert_int_equal(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
}

static void pool_case(int planewise) {
    enum { PLANES = 6, NG = 20, NC = 10, BE = 16 * 2 * 64 };
    size_t plane = (size_t)NG * BE, total = plane * PLANES;
    k_bf16 *kv = NULL;
    char err[512];
    assert_int_equal(cudaMalloc((void **)&kv, total * 2), cudaSuccess);
    assert_int_equal(k_fill_random(kv, (int64_t)total, 77, 1.0f, 0), 0);
    uint16_t *before = down(kv, total * 2);
    swap_geom g = {PLANES, plane, BE, NG};
    swap_pool *p = NULL;
    if (swap_pool_create(&p, &g, NC, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(swap_pool_blocks(p), NC);
    assert_int_equal(swap_pool_bytes(p), (size_t)PLANES * NC * BE * 2);
    swap_pool_plane_copies(p, planewise);
    swap_run out1 = {KV_SWAP_OUT, 3, 2, 4}, out2 = {KV_SWAP_OUT, 11, 0, 1};
    assert_int_equal(swap_pool_copy(p, kv, &out1, 0, err, sizeof err), 0);
    assert_int_equal(swap_pool_copy(p, kv, &out2, 0, err, sizeof err), 0);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    const uint16_t *host = swap_pool_host(p);
    for (int l = 0; l < PLANES; l++) {                          /* the pool: (planes, NC, BE) */
        for (int i = 0; i < 4; i++)
            assert_memory_equal(host + ((size_t)l * NC + 2 + i) * BE, before + l * plane + (size_t)(3 + i) * BE, BE * 2);
        assert_memory_equal(host + (size_t)l * NC * BE, before + l * plane + (size_t)11 * BE, BE * 2);
    }
    /* the GPU blocks overwritten, then the CPU blocks back into others */
    assert_int_equal(cudaMemset(kv, 0xff, total * 2), cudaSuccess);
    swap_run in1 = {KV_SWAP_IN, 2, 12, 4}, in2 = {KV_SWAP_IN, 0, 3, 1};
    assert_int_equal(swap_pool_copy(p, kv, &in1, 0, err, sizeof err), 0);
    assert_int_equal(swap_pool_copy(p, kv, &in2, 0, err, sizeof err), 0);
    uint16_t *after = down(kv, total * 2);
    for (int l = 0; l < PLANES; l++)
        for (int b = 0; b < NG; b++) {
            const uint16_t *got = after + l * plane + (size_t)b * BE;
            int src = b >= 12 && b < 16 ? 3 + b - 12 : b == 3 ? 11 : -1;
            if (src >= 0) assert_memory_equal(got, before + l * plane + (size_t)src * BE, BE * 2);
            else for (int i = 0; i < BE; i++) assert_int_equal(got[i], 0xffff);   /* nothing else written */
        }
    swap_run bad = {KV_SWAP_IN, 8, 0, 3};                       /* CPU blocks 8..10 of 10 */
    assert_int_equal(swap_pool_copy(p, kv, &bad, 0, err, sizeof err), -1);
    bad = (swap_run){KV_SWAP_OUT, 18, 0, 3};                    /* GPU blocks 18..20 of 20 */
    assert_int_equal(swap_pool_copy(p, kv, &bad, 0, err, sizeof err), -1);
    fprintf(stderr, "  pool %s: round trip exact\n", planewise ? "plane by plane" : "2D copies");
    swap_pool_free(p);
    free(before); free(after);
    cudaFree(kv);
}
static void test_pool(void **st) { (void)st; TU_REQUIRE_GPU(); pool_case(0); pool_case(1); }

/* ---- the model --------------------------------------------------------------- */
static void test_model_swap_exact(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(SMOL);
    enum { W = 20, N = 150 };                                 /* table width; tokens cached */
    mc_config c;
    char err[1024];
    w_weights w;
    model *m;
    model_mem mem;
    if (mc_load(&c, SMOL, err, sizeof err) || w_dummy(&w, &c, 3, err, sizeof err)) fail_msg("%s", err);
    model_opts o = { .max_num_batched_tokens = 512, .max_num_seqs = 4, .max_model_len = 320, .num_gpu_blocks = 80,
                     .swap_space = 0.02 };
    if (model_create(&m, &c, &w, &o, &mem, err, sizeof err)) fail_msg("model_create: %s", err);
    assert_true(model_num_cpu_blocks(m) >= 10);
    int32_t t0[W], t1[W], t2[W];
    for (int j = 0; j < W; j++) { t0[j] = j; t1[j] = j; t2[j] = j < 6 ? 30 + j : 50 + j - 6; }
    static int32_t ids[N + 1], pos[N + 1], slots[N + 1];
    int32_t qs[2] = {0, N}, ctx = N, R;
    for (int i = 0; i < N; i++) { ids[i] = (i * 131 + 7) % 40000; pos[i] = i; slots[i] = i; }
    model_batch pre = {N, 1, ids, pos, slots, qs, &ctx, t0, W, 0};
    if (model_forward(m, &pre, &R, err, sizeof err)) fail_msg("%s", err);
    /* a decode step at position N: its logits */
    int32_t id = 4242, p = N, sl = N, q1[2] = {0, 1}, c1 = N + 1;
    model_batch dec = {1, 1, &id, &p, &sl, q1, &c1, t0, W, 0};
    float *l1 = malloc(sizeof(float) * c.vocab_size), *l2 = malloc(sizeof(float) * c.vocab_size);
    if (model_forward(m, &dec, &R, err, sizeof err) || model_logits(m, 1, l1, err, sizeof err)) fail_msg("%s", err);
    /* out (blocks 0..9 cover positions 0..159), overwritten by another sequence, in elsewhere */
    if (model_swap(m, KV_SWAP_OUT, 0, 5, 6, err, sizeof err) || model_swap(m, KV_SWAP_OUT, 6, 0, 4, err, sizeof err))
        fail_msg("swap out: %s", err);
    for (int i = 0; i < N; i++) ids[i] = (i * 977 + 3) % 40000;
    model_batch other = {N, 1, ids, pos, slots, qs, &ctx, t1, W, 0};
    if (model_forward(m, &other, &R, err, sizeof err)) fail_msg("%s", err);
    if (model_swap(m, KV_SWAP_IN, 5, 30, 6, err, sizeof err) || model_swap(m, KV_SWAP_IN, 0, 50, 4, err, sizeof err))
        fail_msg("swap in: %s", err);
    sl = 50 * 16 + (N - 96);                                   /* position N in the sequence's new table */
    dec.block_tables = t2;
    if (model_forward(m, &dec, &R, err, sizeof err) || model_logits(m, 1, l2, err, sizeof err)) fail_msg("%s", err);
    assert_memory_equal(l1, l2, sizeof(float) * c.vocab_size);
    /* refused: out of range, or a swap without a pool */
    assert_int_equal(model_swap(m, KV_SWAP_IN, model_num_cpu_blocks(m), 0, 1, err, sizeof err), -1);
    model_free(m);
    o.swap_space = 0;
    if (w_dummy(&w, &c, 3, err, sizeof err) || model_create(&m, &c, &w, &o, &mem, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(model_swap(m, KV_SWAP_OUT, 0, 0, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "swap space"));
    model_free(m);
    free(l1); free(l2);
}

/* ---- the engine --------------------------------------------------------------- */
enum { NR = 8, PL = 40, NT = 48 };
typedef struct lg_all { float *rows[NR]; int V; } lg_all;
static void on_logits(void *ctx, int id, int pos, const float *row, int V) {
    lg_all *g = ctx;
    if (id < 0 || id >= NR || pos < PL - 1 || pos >= PL - 1 + NT) return;
    if (!g->rows[id]) g->rows[id] = calloc((size_t)NT * V, sizeof(float));
    memcpy(g->rows[id] + (size_t)(pos - PL + 1) * V, row, sizeof(float) * V);
    g->V = V;
}

/* NR requests of PL tokens and NT new ones on a pool of `blocks`: tokens, logits, scheduler stats */
static sched_stats run_engine(int blocks, int swap, int graphs, lg_all *lg, int32_t tok[][NT]) {
    mc_config c;
    char err[1024];
    w_weights w;
    if (mc_load(&c, SMOL, err, sizeof err) || w_dummy(&w, &c, 3, err, sizeof err)) fail_msg("%s", err);
    eng_config cfg = {0};
    cfg.model = (model_opts){ .max_num_batched_tokens = 512, .max_num_seqs = NR, .max_model_len = 320,
                              .num_gpu_blocks = blocks, .cuda_graphs = graphs ? 1 : -1, .graph_max_batch = NR,
                              .graph_min_batch = NR, .swap_space = swap ? 0.02 : 0 };
    cfg.preempt = swap ? SCHED_PREEMPT_SWAP : SCHED_PREEMPT_RECOMPUTE;
    cfg.eos_id = -1;
    cfg.on_logits = lg ? on_logits : NULL;
    cfg.logits_ctx = lg;
    model_mem mem;
    eng *e = eng_create(&c, &w, &cfg, &mem, err, sizeof err);
    if (!e) fail_msg("eng_create: %s", err);
    for (int r = 0; r < NR; r++) {
        int p[PL];
        for (int i = 0; i < PL; i++) p[i] = (r * 7919 + i * 131 + 17) % 49000;
        eng_params ep = { .max_tokens = NT, .top_p = 1, .seed = (uint64_t)r };
        if (eng_add_request(e, r, p, PL, &ep, err, sizeof err)) fail_msg("%s", err);
    }
    int steps = 0;
    while (eng_has_work(e) && steps++ < 10000) {
        const eng_result *d;
        int nd;
        if (eng_step(e, &d, &nd, err, sizeof err) < 0) fail_msg("eng_step: %s", err);
        for (int i = 0; i < nd; i++) {
            assert_false(d[i].aborted);
            assert_int_equal(d[i].num_tokens, NT);
            memcpy(tok[d[i].id], d[i].tokens, sizeof(int32_t) * NT);
        }
    }
    assert_false(eng_has_work(e));
    sched_stats ss = *eng_sched_stats(e);
    kv_usage u;
    eng_usage(e, &u);
    assert_int_equal(u.blocks_used, 0);
    eng_free(e);
    return ss;
}

static void test_engine_swap_equals_unconstrained(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(SMOL);
    static int32_t tu[NR][NT], ts[NR][NT];
    lg_all lu = {{0}, 0}, ls = {{0}, 0};
    /* prompts need 8 x 3 blocks; at full length 8 x 6: 30 blocks swap */
    sched_stats su = run_engine(512, 0, 1, &lu, tu), ss = run_engine(30, 1, 1, &ls, ts);
    fprintf(stderr, "  graphs, one bucket: unconstrained %ld preemptions; 30 blocks %ld preemptions, %ld swap-outs, "
            "%ld swap-ins, %ld recomputes\n", su.preemptions, ss.preemptions, ss.swap_outs, ss.swap_ins, ss.recomputes);
    assert_int_equal(su.preemptions, 0);
    assert_true(ss.swap_outs > 0 && ss.swap_ins > 0);
    assert_int_equal(ss.recomputes, 0);
    for (int r = 0; r < NR; r++) {
        if (memcmp(tu[r], ts[r], sizeof tu[r])) {
            int j = 0;
            while (tu[r][j] == ts[r][j]) j++;
            fail_msg("request %d: token %d is %d unconstrained, %d with swaps", r, j, tu[r][j], ts[r][j]);
        }
        assert_memory_equal(lu.rows[r], ls.rows[r], sizeof(float) * NT * lu.V);
        free(lu.rows[r]); free(ls.rows[r]);
    }
    /* eager: batches of different sizes, so the same but for near ties */
    static int32_t eu[NR][NT], es[NR][NT];
    sched_stats s2 = run_engine(30, 1, 0, NULL, es);
    run_engine(512, 0, 0, NULL, eu);
    int same = 0;
    for (int r = 0; r < NR; r++) same += !memcmp(eu[r], es[r], sizeof eu[r]);
    fprintf(stderr, "  eager: %ld swap-outs, %d/%d requests' tokens identical to the unconstrained run\n",
            s2.swap_outs, same, NR);
    assert_true(s2.swap_outs > 0);
    assert_true(same >= NR - 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_model_swap_exact),
        cmocka_unit_test(test_engine_swap_equals_unconstrained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
