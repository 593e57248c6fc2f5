/* Tests of the CUDA graphs' host side (engine/cuda_graph.h,
 * engine/graph_runner.h), no GPU: vLLM's batch buckets (1, 2, 4, 8, then
 * multiples of 8, and the largest batch itself) for several largest
 * batches, the bucket each batch size gets (the smallest that holds it: at a
 * bucket's edge its own, one above the next), a decode batch padded to its
 * bucket (real rows as given, tables widened with zeros, padding rows that
 * write no KV and read one key of block 0), greedy parameters for padding
 * rows, where the parameters sit after a packed batch, and why graphs stay
 * off (not asked for, tensor parallelism, probes, the experts' cuBLAS path). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "engine/cuda_graph.h"
#include "engine/graph_runner.h"

static void test_buckets(void **st) {
    (void)st;
    static const struct { int cap, n, last_but_one; } cases[] = {
        {1, 1, 0}, {2, 2, 1}, {3, 3, 2}, {4, 3, 2}, {5, 4, 4}, {8, 4, 4}, {9, 5, 8}, {16, 5, 8},
        {100, 16, 96}, {256, 35, 248}, {1024, 131, 1016},
    };
    int sizes[CG_MAX_BUCKETS];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int cap = cases[k].cap, n = cg_buckets(cap, 1, sizes, CG_MAX_BUCKETS);
        assert_int_equal(n, cases[k].n);
        assert_int_equal(sizes[n - 1], cap);                     /* the largest batch has a graph */
        if (n > 1) assert_int_equal(sizes[n - 2], cases[k].last_but_one);
        for (int i = 0; i < n; i++) {
            if (i > 0) assert_true(sizes[i] > sizes[i - 1]);
            int s = sizes[i];
            assert_true(s == 1 || s == 2 || s == 4 || s % 8 == 0 || s == cap);
        }
    }
    assert_int_equal(cg_buckets(256, 1, sizes, CG_MAX_BUCKETS), 35);
    static const int want[] = {1, 2, 4, 8, 16, 24, 32};
    assert_memory_equal(sizes, want, sizeof want);
    assert_int_equal(cg_buckets(0, 1, sizes, CG_MAX_BUCKETS), 0);
    assert_int_equal(cg_buckets(256, 1, sizes, 10), 0);              /* no room: none */
    /* a smallest bucket: the batches below it pad to it */
    assert_int_equal(cg_buckets(8, 8, sizes, CG_MAX_BUCKETS), 1);   /* one bucket: one shape */
    assert_int_equal(sizes[0], 8);
    assert_int_equal(cg_buckets(4, 8, sizes, CG_MAX_BUCKETS), 1);   /* at most cap */
    assert_int_equal(sizes[0], 4);
    assert_int_equal(cg_buckets(256, 8, sizes, CG_MAX_BUCKETS), 32);
    assert_int_equal(sizes[0], 8);
    assert_int_equal(sizes[1], 16);
    assert_int_equal(cg_buckets(30, 5, sizes, CG_MAX_BUCKETS), 5);  /* 5, 8, 16, 24, 30 */
    static const int want5[] = {5, 8, 16, 24, 30};
    assert_memory_equal(sizes, want5, sizeof want5);
    assert_int_equal(cg_buckets(30, 0, sizes, CG_MAX_BUCKETS), 7);  /* 0: as 1 */
}

static void test_bucket_choice(void **st) {
    (void)st;
    int sizes[CG_MAX_BUCKETS];
    for (int cap = 1; cap <= 300; cap++)
    for (int min = 1; min <= 16; min += 7) {                      /* 1, 8, 15 */
        int n = cg_buckets(cap, min, sizes, CG_MAX_BUCKETS);
        assert_int_equal(sizes[0], min < cap ? min : cap);
        for (int B = 1; B <= cap; B++) {
            int i = cg_bucket(sizes, n, B);
            assert_true(i >= 0 && i < n);
            assert_true(sizes[i] >= B);                            /* it holds the batch */
            assert_true(i == 0 || sizes[i - 1] < B);               /* and is the smallest that does */
        }
        assert_int_equal(cg_bucket(sizes, n, cap + 1), -1);        /* above the last: eager */
        assert_int_equal(cg_bucket(sizes, n, 0), -1);
    }
    int n = cg_buckets(256, 1, sizes, CG_MAX_BUCKETS);                /* the edges */
    assert_int_equal(sizes[cg_bucket(sizes, n, 3)], 4);
    assert_int_equal(sizes[cg_bucket(sizes, n, 8)], 8);
    assert_int_equal(sizes[cg_bucket(sizes, n, 9)], 16);
    assert_int_equal(sizes[cg_bucket(sizes, n, 17)], 24);
    assert_int_equal(sizes[cg_bucket(sizes, n, 249)], 256);
}

static void test_pad_batch(void **st) {
    (void)st;
    enum { B = 3, W0 = 5, P = 4, W = 7 };
    int32_t ids[B] = {11, 12, 13}, pos[B] = {40, 7, 99}, slots[B] = {640, 113, 1603};
    int32_t qs[B + 1] = {0, 1, 2, 3}, ctx[B] = {41, 8, 100}, tables[B * W0];
    for (int i = 0; i < B * W0; i++) tables[i] = 100 + i;
    model_batch b = {B, B, ids, pos, slots, qs, ctx, tables, W0, 1, NULL};
    cg_pad_buf buf = {0};
    model_batch pb;
    char err[256];
    assert_int_equal(cg_pad_batch(&b, P, W, &buf, &pb, err, sizeof err), 0);
    assert_int_equal(pb.T, P);
    assert_int_equal(pb.B, P);
    assert_int_equal(pb.max_blocks_per_seq, W);
    assert_int_equal(pb.all_logits, 1);
    for (int i = 0; i < B; i++) {                                 /* the real rows as given */
        assert_int_equal(pb.input_ids[i], ids[i]);
        assert_int_equal(pb.positions[i], pos[i]);
        assert_int_equal(pb.slot_mapping[i], slots[i]);
        assert_int_equal(pb.context_lens[i], ctx[i]);
        for (int j = 0; j < W; j++) assert_int_equal(pb.block_tables[i * W + j], j < W0 ? tables[i * W0 + j] : 0);
    }
    for (int i = B; i < P; i++) {                                 /* padding: one token, no KV write, one key */
        assert_int_equal(pb.input_ids[i], 0);
        assert_int_equal(pb.positions[i], 0);
        assert_int_equal(pb.slot_mapping[i], -1);
        assert_int_equal(pb.context_lens[i], 1);
        for (int j = 0; j < W; j++) assert_int_equal(pb.block_tables[i * W + j], 0);
    }
    for (int i = 0; i <= P; i++) assert_int_equal(pb.query_start[i], i);
    /* no batch: every row padding; P == B: nothing added */
    assert_int_equal(cg_pad_batch(NULL, 8, W, &buf, &pb, err, sizeof err), 0);
    assert_int_equal(pb.B, 8);
    assert_int_equal(pb.slot_mapping[7], -1);
    assert_int_equal(cg_pad_batch(&b, B, W0, &buf, &pb, err, sizeof err), 0);
    assert_memory_equal(pb.block_tables, tables, sizeof tables);
    /* refused: fewer rows or a narrower table than the batch, a batch with a prefill */
    assert_int_equal(cg_pad_batch(&b, B - 1, W, &buf, &pb, err, sizeof err), -1);
    assert_int_equal(cg_pad_batch(&b, P, W0 - 1, &buf, &pb, err, sizeof err), -1);
    int32_t qs2[B + 1] = {0, 2, 3, 4};
    model_batch mixed = {B + 1, B, ids, pos, slots, qs2, ctx, tables, W0, 0, NULL};
    assert_int_equal(cg_pad_batch(&mixed, 8, W, &buf, &pb, err, sizeof err), -1);
    assert_non_null(strstr(err, "decode-only"));
    cg_pad_buf_free(&buf);
}

static void test_pad_params(void **st) {
    (void)st;
    k_sample_params in[2] = {{0.7f, 40, 0.9f, 5, 3}, {1.0f, 0, 1.0f, 6, 0}}, out[5];
    memset(out, 0x5a, sizeof out);
    cg_pad_params(in, 2, 5, out);
    assert_memory_equal(out, in, sizeof in);
    for (int i = 2; i < 5; i++) {
        assert_true(out[i].temperature == 0.0f && out[i].top_k == 0 && out[i].top_p == 1.0f);
        assert_true(out[i].seed == 0 && out[i].step == 0);
    }
    cg_pad_params(NULL, 0, 3, out);                              /* no parameters: every row greedy */
    assert_true(out[0].temperature == 0.0f && out[2].top_p == 1.0f);
}

static void test_params_offset(void **st) {
    (void)st;
    static const int Ps[] = {1, 3, 8, 256, 1024}, Ws[] = {1, 64, 256};
    for (size_t i = 0; i < sizeof Ps / sizeof Ps[0]; i++)
        for (size_t j = 0; j < sizeof Ws / sizeof Ws[0]; j++) {
            size_t ints = (size_t)Ps[i] * (6 + Ws[j]) + 1, off = gr_params_offset(Ps[i], Ws[j]);
            assert_int_equal(off % 64, 0);                        /* aligned for the 8-byte fields */
            assert_true(off >= 4 * ints && off < 4 * ints + 64);  /* right after the packed batch */
        }
}

/* The staging buffer the model allocates (gr_staging_ints) holds every
 * layout it is given: an eager batch of up to T tokens in up to B sequences
 * (e.g. tests/gpu/test_cuda_graph.c's prefill of one sequence of 1,345
 * tokens with max_num_seqs 40, max_model_len 2,560), and every bucket's
 * padded batch with its parameters at gr_params_offset. */
static void test_staging_fits(void **st) {
    (void)st;
    static const struct { int T, B, len, bs, R; } opts[] = {
        {2048, 40, 2560, 16, 40}, {2048, 256, 4096, 16, 256}, {64, 64, 4096, 16, 64}, {1, 1, 16, 16, 1},
        {8192, 1024, 32768, 16, 1024}, {512, 8, 100000, 1, 512},
    };
    int sizes[CG_MAX_BUCKETS];
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        int Tm = opts[k].T, Bm = opts[k].B, W = (opts[k].len + opts[k].bs - 1) / opts[k].bs, Rm = opts[k].R;
        int cap = Bm < Tm ? Bm : Tm;
        cap = cap < Rm ? cap : Rm;
        for (int graphs = 0; graphs < 2; graphs++) {
            size_t ints = gr_staging_ints(Tm, Bm, W, Rm, graphs ? cap : 0);
            /* eager batches: T tokens in B sequences, tables w wide, one logits row per sequence or per token */
            for (int T = 1; T <= Tm; T = T < 16 ? T + 1 : T * 3 / 2 + 1)
                for (int B = 1; B <= Bm && B <= T; B = B < 4 ? B + 1 : B * 2) {
                    int R = T <= Rm ? T : B;
                    assert_true(3 * (size_t)T + 2 * B + 1 + (size_t)B * W + R <= ints);
                }
            size_t one = 3 * (size_t)1345 + 2 + 1 + (size_t)W + 1;   /* the Qwen3 rig's failing prefill */
            if (Tm >= 1345) assert_true(one <= ints);
            if (!graphs) continue;
            int n = cg_buckets(cap, 1, sizes, CG_MAX_BUCKETS);
            assert_true(n > 0);
            for (int i = 0; i < n; i++)
                assert_true(gr_params_offset(sizes[i], W) + sizeof(k_sample_params) * (size_t)sizes[i] <= 4 * ints);
        }
    }
    /* graphs larger than the eager layout (a small token budget, wide tables) still fit */
    assert_true(gr_staging_ints(64, 64, 256, 64, 64) * 4 >= gr_params_offset(64, 256) + 64 * sizeof(k_sample_params));
    assert_int_equal(gr_staging_ints(10, 2, 4, 2, 0), 30 + 4 + 1 + 8 + 2);
}

static void test_off_reasons(void **st) {
    (void)st;
    model_opts o;
    memset(&o, 0, sizeof o);
    assert_null(cg_off_reason(&o));                               /* the default: graphs, as vLLM's */
    o.cuda_graphs = -1;                                           /* --enforce-eager */
    assert_non_null(strstr(cg_off_reason(&o), "--enforce-eager"));
    o.cuda_graphs = 1;
    assert_null(cg_off_reason(&o));
    o.tp = (const tp_rank *)&o;                                   /* any rank: off */
    assert_non_null(strstr(cg_off_reason(&o), "tensor parallelism"));
    o.tp = NULL;
    o.profile = 1;
    assert_non_null(strstr(cg_off_reason(&o), "probes"));
    o.profile = 0;
    o.dump_experts = "x";
    assert_non_null(cg_off_reason(&o));
    o.dump_experts = NULL;
    o.moe_gemm = K_MOE_GEMM_CUBLAS;
    assert_non_null(strstr(cg_off_reason(&o), "cuBLAS"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_bucket_choice),
        cmocka_unit_test(test_pad_batch),
        cmocka_unit_test(test_pad_params),
        cmocka_unit_test(test_params_offset),
        cmocka_unit_test(test_staging_fits),
        cmocka_unit_test(test_off_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
