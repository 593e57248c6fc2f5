/* GPU tests of the segmented LoRA kernels (engine/lora.cu, kernels_lora.h)
 * against their plain-C references (engine/kernels_ref_lora.c) on fresh
 * random inputs: batches mixing three adapter slots with tokens that have
 * none (sequences of 1 to 40 tokens, so tiles of 1 to 16 rows), the shrink
 * at several ranks and widths (K below one split, K not a multiple of the
 * split, A x wider than one block's 64 columns; a single row) both split
 * (work buffer: a block per split) and looped (no work buffer): the two bit
 * for bit equal; the expand over one and three stacked modules (slice ends
 * off the 16-column fragments, ranks not a multiple of 16),
 * the SwiGLU with the gate/up adapters fused; tokens without an adapter
 * keep their bits; a sequence's rows are bit for bit the same in a batch
 * and alone; and the runtime (engine/lora_rt.h) with random adapters in
 * fewer slots than adapters, steps that evict and reload, against the
 * references on the host-packed images.  Outputs are poisoned with NaN. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "tests/gpu/gpu_test_util.h"
#include "engine/kernels_lora.h"
#include "engine/kernels_ref_lora.h"
#include "engine/lora_pack.h"
#include "engine/lora_rt.h"
#include "engine/lora_slots.h"

enum { NSLOT = 3, MAXB = 64 };

/* A random batch: B sequences of 1..40 tokens (mostly 1: decode), each with
 * a slot in -1..NSLOT-1 (B = 1: one token with a slot); qs (B+1,), slot_of
 * (B,); the grouping in perm/tiles. */
typedef struct batch {
    int B, T, rows, nt, nall;
    int32_t qs[MAXB + 1], slot_of[MAXB], perm[MAXB * 40], tiles[3 * (MAXB * 40 / 16 + NSLOT + 2)];
    k_lora_batch kb;             /* device copies */
    int32_t *dperm, *dtiles;
} batch;

static void batch_make(batch *b, int B, int seed) {
    rng_state = 0x9e37 + (uint64_t)seed;
    b->B = B;
    b->qs[0] = 0;
    for (int i = 0; i < B; i++) {
        b->slot_of[i] = irand(NSLOT + 1) - 1;
        b->qs[i + 1] = b->qs[i] + (irand(3) == 0 ? 1 + irand(40) : 1);
    }
    if (B == 1) {                                /* one row, with an adapter */
        b->slot_of[0] = seed % NSLOT;
        b->qs[1] = 1;
    }
    b->T = b->qs[B];
    b->rows = lora_group_tokens(b->slot_of, b->qs, B, NSLOT, b->perm, b->tiles, &b->nt, &b->nall);
    b->dperm = up(b->perm, sizeof(int32_t) * b->T);
    b->dtiles = up(b->tiles, sizeof(int32_t) * 3 * b->nall);
    b->kb = (k_lora_batch){b->rows, b->nt, b->nall, b->dperm, b->dtiles, NULL, 0};
}
static void batch_free(batch *b) { cudaFree(b->dperm); cudaFree(b->dtiles); }

/* rel L2 over the adapters' rows only (v: (rows, RA)); split (work) = looped, bit for bit */
static void shrink_case(int RA, int K, int B, int seed) {
    batch b;
    batch_make(&b, B, seed);
    int64_t stride = ((int64_t)RA * K + 127) / 128 * 128;
    float *x = rnd((size_t)b.T * K, 1), *A = rnd((size_t)stride * NSLOT, 0.05f);
    k_bf16 *dx = up_bf(x, (size_t)b.T * K), *dA = up_bf(A, (size_t)stride * NSLOT);
    float *dv = poisoned(sizeof(float) * (size_t)b.T * RA), *ref = malloc(sizeof(float) * (size_t)b.T * RA);
    assert_int_equal(k_lora_shrink(dv, dx, K, dA, stride, RA, K, &b.kb, 0), 0);   /* looped: no work buffer */
    float *v = down(dv, sizeof(float) * (size_t)b.T * RA);
    kref_lora_shrink(ref, x, K, A, stride, RA, K, b.nt, b.tiles, b.perm);
    char what[80];
    snprintf(what, sizeof what, "shrink RA %d K %d (%d rows)", RA, K, b.rows);
    CHECK_CLOSE(v, ref, (size_t)b.rows * RA, 1e-5, what);
    k_lora_batch kw = b.kb;                                                       /* split: a block per split */
    kw.work_elems = k_lora_shrink_work(RA, K, b.rows);
    kw.work = poisoned(sizeof(float) * (size_t)kw.work_elems);
    float *dv2 = poisoned(sizeof(float) * (size_t)b.T * RA);
    assert_int_equal(k_lora_shrink(dv2, dx, K, dA, stride, RA, K, &kw, 0), 0);
    float *v2 = down(dv2, sizeof(float) * (size_t)b.T * RA);
    assert_memory_equal(v, v2, sizeof(float) * (size_t)b.rows * RA);
    fprintf(stderr, "  %s: split = looped bit for bit\n", what);
    free(x); free(A); free(v); free(v2); free(ref);
    cudaFree(dx); cudaFree(dA); cudaFree(dv); cudaFree(dv2); cudaFree(kw.work);
    batch_free(&b);
}

static void test_shrink(void **st) {
    (void)st; TU_REQUIRE_GPU();
    const int cases[][3] = {{16, 64, 48},  {48, 3584, 48}, {32, 272, 48}, {192, 1024, 48}, {16, 18944, 48},
                            {96, 896, 48}, {48, 1040, 48}, {16, 528, 1},  {64, 3584, 1},   {80, 512, 64}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) shrink_case(cases[c][0], cases[c][1], cases[c][2], (int)c);
}

static void test_expand(void **st) {
    (void)st; TU_REQUIRE_GPU();
    /* (S, R, slice ends): o/down, q|k|v at 7B-like widths, gate|up */
    const k_lora_slices cases[] = {{1, 16, {512, 0, 0}}, {3, 16, {448, 512, 576}}, {3, 64, {256, 320, 384}},
                                   {2, 8, {96, 192, 0}}, {1, 32, {3584, 0, 0}}, {3, 16, {136, 200, 264}},
                                   {2, 24, {264, 520, 0}}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const k_lora_slices *sl = &cases[c];
        int N = sl->end[sl->S - 1], RA = (sl->S * sl->R + 15) / 16 * 16, ys = N + 8 * (int)(c & 1);   /* a wider row too */
        batch b;
        batch_make(&b, 40, 100 + (int)c);
        int64_t stride = ((int64_t)N * sl->R + 127) / 128 * 128;
        float *v = malloc(sizeof(float) * (size_t)b.T * RA), *B = rnd((size_t)stride * NSLOT, 0.1f);
        for (size_t i = 0; i < (size_t)b.T * RA; i++) v[i] = frand();
        float *y = rnd((size_t)b.T * ys, 1), scale[NSLOT] = {2.0f, 0.5f, 8.0f};
        float *dv = up(v, sizeof(float) * (size_t)b.T * RA), *dscale = up(scale, sizeof scale);
        k_bf16 *dB = up_bf(B, (size_t)stride * NSLOT), *dy = up_bf(y, (size_t)b.T * ys);
        assert_int_equal(k_lora_expand(dy, ys, dv, RA, dB, stride, dscale, sl, &b.kb, 0), 0);
        float *got = down_bf(dy, (size_t)b.T * ys);
        float *ref = malloc(sizeof(float) * (size_t)b.T * ys);
        memcpy(ref, y, sizeof(float) * (size_t)b.T * ys);
        kref_lora_expand(ref, ys, v, RA, B, stride, scale, sl, b.nt, b.tiles, b.perm);
        char what[64];
        snprintf(what, sizeof what, "expand S %d R %d N %d", sl->S, sl->R, N);
        CHECK_CLOSE(got, ref, (size_t)b.T * ys, 2e-3, what);
        for (int t = b.rows; t < b.T; t++)                              /* the base model's rows: untouched */
            assert_memory_equal(got + (size_t)b.perm[t] * ys, y + (size_t)b.perm[t] * ys, sizeof(float) * ys);
        for (int t = 0; t < b.T; t++)                                   /* columns past N: untouched */
            for (int n = N; n < ys; n++) assert_true(got[(size_t)t * ys + n] == y[(size_t)t * ys + n]);
        free(v); free(B); free(y); free(got); free(ref);
        cudaFree(dv); cudaFree(dscale); cudaFree(dB); cudaFree(dy);
        batch_free(&b);
    }
}

static void test_silu(void **st) {
    (void)st; TU_REQUIRE_GPU();
    const int cases[][2] = {{96, 8}, {18944, 16}, {512, 64}, {136, 24}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int I = cases[c][0], R = cases[c][1], RA = (2 * R + 15) / 16 * 16;
        batch b;
        batch_make(&b, 32, 200 + (int)c);
        int64_t stride = ((int64_t)2 * I * R + 127) / 128 * 128;
        float *v = malloc(sizeof(float) * (size_t)b.T * RA), *B = rnd((size_t)stride * NSLOT, 0.1f);
        for (size_t i = 0; i < (size_t)b.T * RA; i++) v[i] = frand();
        float *gu = rnd((size_t)b.T * 2 * I, 3), scale[NSLOT] = {1.0f, 4.0f, 0.25f};
        float *dv = up(v, sizeof(float) * (size_t)b.T * RA), *dscale = up(scale, sizeof scale);
        k_bf16 *dB = up_bf(B, (size_t)stride * NSLOT), *dgu = up_bf(gu, (size_t)b.T * 2 * I);
        k_bf16 *dact = poisoned((size_t)b.T * I * 2);
        assert_int_equal(k_lora_silu(dact, dgu, I, dv, RA, dB, stride, dscale, R, &b.kb, 0), 0);
        float *act = down_bf(dact, (size_t)b.T * I), *ref = malloc(sizeof(float) * (size_t)b.T * I);
        kref_lora_silu(ref, gu, I, v, RA, B, stride, scale, R, b.nall, b.tiles, b.perm);
        char what[64];
        snprintf(what, sizeof what, "SwiGLU + LoRA I %d R %d", I, R);
        CHECK_CLOSE(act, ref, (size_t)b.T * I, 5e-3, what);
        /* the base model's rows: exactly k_silu_mul's */
        k_bf16 *dplain = poisoned((size_t)b.T * I * 2);
        assert_int_equal(k_silu_mul(dplain, dgu, b.T, I, 0), 0);
        float *plain = down_bf(dplain, (size_t)b.T * I);
        for (int t = b.rows; t < b.T; t++)
            assert_memory_equal(act + (size_t)b.perm[t] * I, plain + (size_t)b.perm[t] * I, sizeof(float) * I);
        free(v); free(B); free(gu); free(act); free(ref); free(plain);
        cudaFree(dv); cudaFree(dscale); cudaFree(dB); cudaFree(dgu); cudaFree(dact); cudaFree(dplain);
        batch_free(&b);
    }
}

/* A sequence's rows come out bit for bit the same whatever else is in the batch. */
static void test_batch_invariance(void **st) {
    (void)st; TU_REQUIRE_GPU();
    const int K = 1536, RA = 48, N = 768;
    const k_lora_slices sl = {3, 16, {512, 640, 768}};
    batch b;
    batch_make(&b, 40, 7);
    int64_t sa = (int64_t)RA * K, sb = (int64_t)N * 16;
    float *x = rnd((size_t)b.T * K, 1), *A = rnd((size_t)sa * NSLOT, 0.05f), *B = rnd((size_t)sb * NSLOT, 0.1f);
    float scale[NSLOT] = {2, 3, 4};
    k_bf16 *dx = up_bf(x, (size_t)b.T * K), *dA = up_bf(A, (size_t)sa * NSLOT), *dB = up_bf(B, (size_t)sb * NSLOT);
    float *dscale = up(scale, sizeof scale), *dv = poisoned(sizeof(float) * (size_t)b.T * RA);
    float *zero = calloc((size_t)b.T * N, sizeof(float));
    k_bf16 *dy = up_bf(zero, (size_t)b.T * N);
    b.kb.work_elems = k_lora_shrink_work(RA, K, b.rows);                 /* the batch splits K over blocks, */
    b.kb.work = poisoned(sizeof(float) * (size_t)b.kb.work_elems);      /* each sequence alone loops */
    assert_int_equal(k_lora_shrink(dv, dx, K, dA, sa, RA, K, &b.kb, 0), 0);
    assert_int_equal(k_lora_expand(dy, N, dv, RA, dB, sb, dscale, &sl, &b.kb, 0), 0);
    float *all = down_bf(dy, (size_t)b.T * N);
    int checked = 0;
    for (int s = 0; s < b.B; s++) {
        if (b.slot_of[s] < 0) continue;
        batch one;                                              /* sequence s alone */
        one.B = 1;
        one.qs[0] = 0;
        one.qs[1] = b.qs[s + 1] - b.qs[s];
        one.slot_of[0] = b.slot_of[s];
        one.T = one.qs[1];
        one.rows = lora_group_tokens(one.slot_of, one.qs, 1, NSLOT, one.perm, one.tiles, &one.nt, &one.nall);
        one.dperm = up(one.perm, sizeof(int32_t) * one.T);
        one.dtiles = up(one.tiles, sizeof(int32_t) * 3 * one.nall);
        one.kb = (k_lora_batch){one.rows, one.nt, one.nall, one.dperm, one.dtiles, NULL, 0};
        k_bf16 *dx1 = up_bf(x + (size_t)b.qs[s] * K, (size_t)one.T * K), *dy1 = up_bf(zero, (size_t)one.T * N);
        assert_int_equal(k_lora_shrink(dv, dx1, K, dA, sa, RA, K, &one.kb, 0), 0);
        assert_int_equal(k_lora_expand(dy1, N, dv, RA, dB, sb, dscale, &sl, &one.kb, 0), 0);
        float *y1 = down_bf(dy1, (size_t)one.T * N);
        assert_memory_equal(y1, all + (size_t)b.qs[s] * N, sizeof(float) * (size_t)one.T * N);
        checked += one.T;
        free(y1);
        cudaFree(dx1); cudaFree(dy1);
        batch_free(&one);
    }
    fprintf(stderr, "  batch = alone: %d tokens of %d sequences bit-identical\n", checked, b.B);
    assert_true(checked > 0);
    free(x); free(A); free(B); free(zero); free(all);
    cudaFree(dx); cudaFree(dA); cudaFree(dB); cudaFree(dscale); cudaFree(dv); cudaFree(dy); cudaFree(b.kb.work);
    batch_free(&b);
}

/* A prefill-sized batch: sequences of 1500, 1500, 1500 and 600 tokens (slots
 * 0, 1, 2, none), so over K_LORA_SPLIT_ROWS rows and 256+ tiles (the
 * looped shrink with blocks of 2 tiles, some of two slots; expand and SwiGLU
 * blocks of 2 tiles): against the references, and the first sequence alone
 * (94 tiles: one a block) gives the same bits. */
typedef struct big {
    int T, rows, nt, nall;
    int32_t *perm, *tiles;
    k_lora_batch kb;
} big;

static void big_make(big *g, int B, const int32_t *len, const int32_t *slot) {
    int32_t qs[5] = {0};
    for (int i = 0; i < B; i++) qs[i + 1] = qs[i] + len[i];
    g->T = qs[B];
    g->perm = malloc(sizeof(int32_t) * (size_t)g->T);
    g->tiles = malloc(sizeof(int32_t) * 3 * (size_t)(g->T / 16 + NSLOT + 2 + B));
    g->rows = lora_group_tokens(slot, qs, B, NSLOT, g->perm, g->tiles, &g->nt, &g->nall);
    g->kb = (k_lora_batch){g->rows, g->nt, g->nall, up(g->perm, sizeof(int32_t) * (size_t)g->T),
                           up(g->tiles, sizeof(int32_t) * 3 * (size_t)g->nall), NULL, 0};
}

static void big_free(big *g) {
    cudaFree((void *)g->kb.perm); cudaFree((void *)g->kb.tiles); free(g->perm); free(g->tiles);
}

/* v (rows, 48), y (T, 384) and act (T, 136) of batch g, fresh outputs from y0 */
static void big_run(const big *g, float **v, float **y, float **act, const k_bf16 *dx, const k_bf16 *dA,
                    const k_bf16 *dB, const k_bf16 *dBg, const k_bf16 *dgu, const float *dscale, const float *y0) {
    const int K = 1040, RA = 48, I = 136, R = 16, N = 384;
    const k_lora_slices sl = {3, 16, {256, 320, N}};
    float *dv = poisoned(sizeof(float) * (size_t)g->rows * RA);
    k_bf16 *dy = up_bf(y0, (size_t)g->T * N), *dact = poisoned((size_t)g->T * I * 2);
    assert_int_equal(k_lora_shrink(dv, dx, K, dA, (int64_t)RA * K, RA, K, &g->kb, 0), 0);
    assert_int_equal(k_lora_expand(dy, N, dv, RA, dB, (int64_t)N * R, dscale, &sl, &g->kb, 0), 0);
    assert_int_equal(k_lora_silu(dact, dgu, I, dv, RA, dBg, (int64_t)2 * I * R, dscale, R, &g->kb, 0), 0);
    *v = down(dv, sizeof(float) * (size_t)g->rows * RA);
    *y = down_bf(dy, (size_t)g->T * N);
    *act = down_bf(dact, (size_t)g->T * I);
    cudaFree(dv); cudaFree(dy); cudaFree(dact);
}

static void test_large(void **st) {
    (void)st; TU_REQUIRE_GPU();
    const int32_t len[4] = {1500, 1500, 1500, 600}, slot[4] = {0, 1, 2, -1};
    const int K = 1040, RA = 48, I = 136, R = 16, N = 384;
    const k_lora_slices sl = {3, 16, {256, 320, N}};
    big g, one;
    big_make(&g, 4, len, slot);
    big_make(&one, 1, len, slot);
    assert_true(g.rows > K_LORA_SPLIT_ROWS && g.nt >= 256 && one.rows == len[0]);
    int64_t sa = (int64_t)RA * K, sb = (int64_t)N * R, sg = (int64_t)2 * I * R;
    float *x = rnd((size_t)g.T * K, 1), *A = rnd((size_t)sa * NSLOT, 0.05f), *B = rnd((size_t)sb * NSLOT, 0.1f);
    float *Bg = rnd((size_t)sg * NSLOT, 0.1f), *y0 = rnd((size_t)g.T * N, 1), *gu = rnd((size_t)g.T * 2 * I, 3);
    float scale[NSLOT] = {2.0f, 0.5f, 4.0f};
    k_bf16 *dx = up_bf(x, (size_t)g.T * K), *dA = up_bf(A, (size_t)sa * NSLOT), *dB = up_bf(B, (size_t)sb * NSLOT);
    k_bf16 *dBg = up_bf(Bg, (size_t)sg * NSLOT), *dgu = up_bf(gu, (size_t)g.T * 2 * I);
    float *dscale = up(scale, sizeof scale), *v, *y, *act, *v1, *y1, *act1;
    big_run(&g, &v, &y, &act, dx, dA, dB, dBg, dgu, dscale, y0);
    big_run(&one, &v1, &y1, &act1, dx, dA, dB, dBg, dgu, dscale, y0);
    float *rv = malloc(sizeof(float) * (size_t)g.rows * RA), *ract = malloc(sizeof(float) * (size_t)g.T * I);
    kref_lora_shrink(rv, x, K, A, sa, RA, K, g.nt, g.tiles, g.perm);
    CHECK_CLOSE(v, rv, (size_t)g.rows * RA, 1e-5, "large batch: shrink (looped)");
    kref_lora_expand(y0, N, v, RA, B, sb, scale, &sl, g.nt, g.tiles, g.perm);       /* y0 becomes the reference */
    CHECK_CLOSE(y, y0, (size_t)g.T * N, 2e-3, "large batch: expand");
    kref_lora_silu(ract, gu, I, v, RA, Bg, sg, scale, R, g.nall, g.tiles, g.perm);
    CHECK_CLOSE(act, ract, (size_t)g.T * I, 5e-3, "large batch: SwiGLU + LoRA");
    assert_memory_equal(v1, v, sizeof(float) * (size_t)len[0] * RA);                /* alone = in the batch */
    assert_memory_equal(y1, y, sizeof(float) * (size_t)len[0] * N);
    assert_memory_equal(act1, act, sizeof(float) * (size_t)len[0] * I);
    fprintf(stderr, "  large batch (%d rows, %d tiles): a sequence alone = in the batch, bit for bit\n", g.rows, g.nt);
    free(x); free(A); free(B); free(Bg); free(y0); free(gu); free(v); free(y); free(act); free(v1); free(y1);
    free(act1); free(rv); free(ract);
    cudaFree(dx); cudaFree(dA); cudaFree(dB); cudaFree(dBg); cudaFree(dgu); cudaFree(dscale);
    big_free(&g);
    big_free(&one);
}

/* The runtime: 3 random adapters in 2 slots; steps that name different pairs
 * (evicting, reloading) give the references' deltas on the host-packed images. */
static void test_runtime(void **st) {
    (void)st; TU_REQUIRE_GPU();
    static const char *cfg =
        "{\"model_type\":\"qwen2\",\"hidden_size\":256,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
        "\"num_key_value_heads\":2,\"intermediate_size\":512,\"vocab_size\":128,\"max_position_embeddings\":512,"
        "\"rms_norm_eps\":1e-6}";
    mc_config c;
    char err[512];
    assert_int_equal(mc_parse(&c, cfg, "tiny", err, sizeof err), 0);
    lora_set set;
    assert_int_equal(lora_set_init(&set, 2, 16, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "a%d", i);
        assert_int_equal(lora_set_add_dummy(&set, name, &c, 11 + (uint64_t)i, err, sizeof err), i + 1);
    }
    lora_rt *rt;
    if (lora_rt_create(&rt, &set, &c, NULL, 256, err, sizeof err)) fail_msg("%s", err);
    lora_layout lo;
    assert_int_equal(lora_slot_layout(&lo, &c, 16, NULL, err, sizeof err), 0);
    float *img[3];
    uint16_t *h = malloc(lo.elems * 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lora_pack(&set.a[i], &c, &lo, NULL, h, err, sizeof err), 0);
        img[i] = malloc(sizeof(float) * lo.elems);
        for (size_t k = 0; k < lo.elems; k++) img[i][k] = kref_bf2f(h[k]);
    }
    const int steps[][4] = {{1, 2, 0, 1}, {3, 0, 3, 3}, {2, 1, 2, 0}, {0, 0, 0, 0}, {3, 2, 3, 2}};
    const lora_group_layout *g = &lo.g[1 * LORA_NGROUP + LORA_G_QKV];
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        int32_t qs[5] = {0, 7, 8, 30, 31}, ad[4];
        memcpy(ad, steps[s], sizeof ad);
        int T = qs[4];
        assert_int_equal(lora_rt_prepare(rt, ad, qs, 4, T, 0, err, sizeof err), 0);
        float *x = rnd((size_t)T * 256, 1), *y = rnd((size_t)T * g->N, 1);
        k_bf16 *dx = up_bf(x, (size_t)T * 256), *dy = up_bf(y, (size_t)T * g->N);
        assert_int_equal(lora_rt_linear(rt, LORA_G_QKV, 1, dy, g->N, dx, 256, 0), 0);
        float *got = down_bf(dy, (size_t)T * g->N), *ref = malloc(sizeof(float) * (size_t)T * g->N);
        memcpy(ref, y, sizeof(float) * (size_t)T * g->N);
        for (int i = 0; i < 4; i++) {                          /* each sequence alone through the references */
            if (!ad[i]) continue;
            int32_t perm[32], tiles[3 * 4], one[2] = {0, qs[i + 1] - qs[i]}, sl0 = 0, nt, nall;
            lora_group_tokens(&sl0, one, 1, 1, perm, tiles, &nt, &nall);
            for (int r = 0; r < one[1]; r++) perm[r] += qs[i];
            float *v = malloc(sizeof(float) * 32 * g->RA), sc = (float)set.a[ad[i] - 1].cfg.scale;
            kref_lora_shrink(v, x, 256, img[ad[i] - 1] + g->a_off, 0, g->RA, g->K, nt, tiles, perm);
            k_lora_slices sl = {g->S, 16, {g->slice_end[0], g->slice_end[1], g->slice_end[2]}};
            kref_lora_expand(ref, g->N, v, g->RA, img[ad[i] - 1] + g->b_off, 0, &sc, &sl, nt, tiles, perm);
            free(v);
        }
        char what[64];
        snprintf(what, sizeof what, "runtime step %zu (adapters %d %d %d %d)", s, ad[0], ad[1], ad[2], ad[3]);
        CHECK_CLOSE(got, ref, (size_t)T * g->N, 2e-3, what);
        assert_int_equal(lora_rt_active(rt), ad[0] || ad[1] || ad[2] || ad[3]);
        free(x); free(y); free(got); free(ref);
        cudaFree(dx); cudaFree(dy);
    }
    int32_t qs[4] = {0, 1, 2, 3}, three[3] = {1, 2, 3};   /* three adapters, two slots: refused */
    assert_int_equal(lora_rt_prepare(rt, three, qs, 3, 3, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "--max-loras"));
    for (int i = 0; i < 3; i++) free(img[i]);
    free(h);
    lora_layout_free(&lo);
    lora_rt_free(rt);
    lora_set_free(&set);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shrink), cmocka_unit_test(test_expand), cmocka_unit_test(test_silu),
        cmocka_unit_test(test_batch_invariance), cmocka_unit_test(test_large), cmocka_unit_test(test_runtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
