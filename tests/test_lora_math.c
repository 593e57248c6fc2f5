/* Tests of LoRA arithmetic on the CPU: an adapter packed into a GPU slot's
 * fused layout (q|k|v and gate|up stacked) and run through the kernels' C
 * references (shrink, expand, SwiGLU with the adapters fused) gives, token
 * by token, what each module's y = W x + scale B (A x) gives, for a batch
 * mixing two adapters (q/v only at rank 8 in slots of rank 16, all-linear at
 * rank 16 with rsLoRA) and tokens without one; the tensor-parallel shards
 * (column-parallel: B's rows split; row-parallel: A's columns split) add up
 * to the whole; the merge W' = W + scale B A against a straightforward
 * double-precision reference, and engine/merge's checkpoint (tensors,
 * dtypes, copied files). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "tests/lora_fixture.h"
#include "engine/kernels_ref_lora.h"
#include "engine/lora_pack.h"
#include "engine/lora_slots.h"
#include "engine/merge.h"
#include "engine/safetensors.h"
#include <math.h>
#include <unistd.h>

static char tmp[64];
static int setup(void **st) {
    (void)st;
    snprintf(tmp, sizeof tmp, "/tmp/pagesim-loram-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}
static int teardown(void **st) { (void)st; lf_rmtree(tmp); return 0; }

static float *rand_bf(size_t n, float sc) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = kref_round_bf(sc * lf_rand());
    return x;
}

/* The two adapters of these tests, opened, and their values. */
typedef struct two { lora_adapter a[2]; lf_adapter fa[2]; mc_config c; } two;
static void two_open(two *t) {
    char d0[256], d1[256], err[512];
    lf_config_of(&t->c);
    snprintf(d0, sizeof d0, "%s/qv", tmp);
    snprintf(d1, sizeof d1, "%s/all", tmp);
    lf_write_adapter(d0, lf_cfg(8, 16, "[\"q_proj\", \"v_proj\"]", 0, NULL), LF_QV, 8, ST_BF16, 0, &t->fa[0]);
    lf_write_adapter(d1, lf_cfg(16, 32, "\"all-linear\"", 1, NULL), LF_ALL, 16, ST_BF16, 0, &t->fa[1]);
    if (lora_adapter_open(&t->a[0], "qv", d0, &t->c, 16, err, sizeof err) ||
        lora_adapter_open(&t->a[1], "all", d1, &t->c, 16, err, sizeof err))
        fail_msg("%s", err);
}
static void two_close(two *t) {
    for (int i = 0; i < 2; i++) { lora_adapter_close(&t->a[i]); lf_adapter_free(&t->fa[i]); }
}

/* the arena of nslots packed images as floats (what the kernels read) */
static float *arena_of(const two *t, const lora_layout *lo, const tp_plan *tp, int nslots) {
    float *ar = malloc(sizeof(float) * lo->elems * (size_t)nslots);
    uint16_t *img = malloc(2 * lo->elems);
    char err[512];
    for (int k = 0; k < nslots; k++) {
        if (lora_pack(&t->a[k], &t->c, lo, tp, img, err, sizeof err)) fail_msg("%s", err);
        for (size_t i = 0; i < lo->elems; i++) ar[(size_t)k * lo->elems + i] = kref_bf2f(img[i]);
    }
    free(img);
    return ar;
}

/* delta (out,) of module m of layer l of adapter fa for input x (in,): scale B (A x), in double */
static void ref_delta(const lf_adapter *fa, const mc_config *c, double scale, int l, int m, const float *x, double *d) {
    int64_t out, in;
    lora_module_shape(c, m, &out, &in);
    int r = fa->r;
    for (int64_t o = 0; o < out; o++) d[o] = 0;
    if (!fa->A[l][m]) return;
    for (int k = 0; k < r; k++) {
        double ax = 0;
        for (int64_t i = 0; i < in; i++) ax += (double)fa->A[l][m][k * in + i] * x[i];
        for (int64_t o = 0; o < out; o++) d[o] += scale * fa->B[l][m][o * r + k] * ax;
    }
}

/* |got - want| within one bf16 rounding of want */
static void close_bf(float got, double want, const char *what, int t, int n) {
    if (fabs(got - want) > fabs(want) * (1.0 / 128) + 1e-6)
        fail_msg("%s: token %d, column %d: %.6g, want %.6g", what, t, n, got, want);
}

enum { NSEQ = 7 };
static const int k_slot[NSEQ] = {0, -1, 1, 0, 1, -1, 1};    /* slot 0: the q/v adapter, 1: all-linear */
static const int k_len[NSEQ] = {5, 3, 17, 1, 1, 20, 2};

static void test_fused_matches_modules(void **st) {
    (void)st;
    two t;
    two_open(&t);
    lora_layout lo;
    char err[512];
    if (lora_slot_layout(&lo, &t.c, 16, NULL, err, sizeof err)) fail_msg("%s", err);
    float *ar = arena_of(&t, &lo, NULL, 2), scale[2] = {(float)t.a[0].cfg.scale, (float)t.a[1].cfg.scale};
    assert_true(scale[0] == 2.0f && scale[1] == 8.0f);                     /* 16 / 8, rsLoRA 32 / sqrt(16) */
    int32_t qs[NSEQ + 1] = {0}, slot_of[NSEQ], perm[64], tiles[3 * 16], nt, nall;
    for (int i = 0; i < NSEQ; i++) { qs[i + 1] = qs[i] + k_len[i]; slot_of[i] = k_slot[i]; }
    int T = qs[NSEQ], rows = lora_group_tokens(slot_of, qs, NSEQ, 2, perm, tiles, &nt, &nall);
    assert_int_equal(rows, T - 23);
    int slot_tok[64];
    for (int i = 0; i < NSEQ; i++) for (int x = qs[i]; x < qs[i + 1]; x++) slot_tok[x] = k_slot[i];
    static const struct { int g, in, out; } G[] = {{LORA_G_QKV, 64, 128}, {LORA_G_O, 64, 64}, {LORA_G_DOWN, 96, 64}};
    for (int l = 0; l < 2; l++)
        for (size_t gi = 0; gi < 3; gi++) {
            const lora_group_layout *g = &lo.g[l * LORA_NGROUP + G[gi].g];
            assert_int_equal(g->K, G[gi].in);
            assert_int_equal(g->N, G[gi].out);
            float *x = rand_bf((size_t)T * g->K, 1), *y = rand_bf((size_t)T * g->N, 1), *y0 = malloc(sizeof(float) * T * g->N);
            memcpy(y0, y, sizeof(float) * T * g->N);
            float *v = malloc(sizeof(float) * (size_t)T * g->RA);
            kref_lora_shrink(v, x, g->K, ar + g->a_off, (int64_t)lo.elems, g->RA, g->K, nt, tiles, perm);
            k_lora_slices sl = {g->S, 16, {g->slice_end[0], g->slice_end[1], g->slice_end[2]}};
            kref_lora_expand(y, g->N, v, g->RA, ar + g->b_off, (int64_t)lo.elems, scale, &sl, nt, tiles, perm);
            for (int tok = 0; tok < T; tok++) {
                int k = slot_tok[tok];
                if (k < 0) {                                                  /* no adapter: untouched */
                    assert_memory_equal(y + (size_t)tok * g->N, y0 + (size_t)tok * g->N, sizeof(float) * g->N);
                    continue;
                }
                for (int j = 0, col = 0; j < g->S; j++) {                     /* module by module, as PEFT */
                    double d[128];
                    int64_t out, in;
                    lora_module_shape(&t.c, g->mod[j], &out, &in);
                    ref_delta(&t.fa[k], &t.c, t.a[k].cfg.scale, l, g->mod[j], x + (size_t)tok * g->K, d);
                    for (int64_t o = 0; o < out; o++, col++)
                        close_bf(y[(size_t)tok * g->N + col], y0[(size_t)tok * g->N + col] + d[o],
                                 lora_module_name(g->mod[j]), tok, col);
                }
            }
            free(x); free(y); free(y0); free(v);
        }
    /* SwiGLU with the gate/up adapters fused, against gate/up updated module by module */
    const lora_group_layout *g = &lo.g[1 * LORA_NGROUP + LORA_G_GATE_UP];
    assert_int_equal(g->N, 192);
    float *x = rand_bf((size_t)T * 64, 1), *gu = rand_bf((size_t)T * 192, 2), *act = malloc(sizeof(float) * T * 96);
    float *v = malloc(sizeof(float) * (size_t)T * g->RA);
    kref_lora_shrink(v, x, 64, ar + g->a_off, (int64_t)lo.elems, g->RA, 64, nt, tiles, perm);
    kref_lora_silu(act, gu, 96, v, g->RA, ar + g->b_off, (int64_t)lo.elems, scale, 16, nall, tiles, perm);
    for (int tok = 0; tok < T; tok++) {
        int k = slot_tok[tok];
        double dg[96] = {0}, du[96] = {0};
        if (k >= 0) {
            ref_delta(&t.fa[k], &t.c, t.a[k].cfg.scale, 1, LORA_GATE, x + (size_t)tok * 64, dg);
            ref_delta(&t.fa[k], &t.c, t.a[k].cfg.scale, 1, LORA_UP, x + (size_t)tok * 64, du);
        }
        for (int n = 0; n < 96; n++) {
            double gg = kref_round_bf((float)(gu[(size_t)tok * 192 + n] + dg[n]));
            double uu = kref_round_bf((float)(gu[(size_t)tok * 192 + 96 + n] + du[n]));
            close_bf(act[(size_t)tok * 96 + n], kref_round_bf((float)(gg / (1 + exp(-gg)))) * uu, "swiglu", tok, n);
        }
    }
    free(x); free(gu); free(act); free(v); free(ar);
    lora_layout_free(&lo);
    two_close(&t);
}

/* Tensor parallelism at 2: each rank's slot holds its shard; column-parallel
 * outputs are the whole's columns, row-parallel partial sums add up to it. */
static void test_shards_add_up(void **st) {
    (void)st;
    two t;
    two_open(&t);
    char err[512];
    lora_layout whole, part[2];
    tp_plan tp[2];
    if (lora_slot_layout(&whole, &t.c, 16, NULL, err, sizeof err)) fail_msg("%s", err);
    float *aw = arena_of(&t, &whole, NULL, 2), *ap[2], scale[2] = {2, 8};
    for (int r = 0; r < 2; r++) {
        if (tp_plan_init(&tp[r], &t.c, 2, r, err, sizeof err) || lora_slot_layout(&part[r], &t.c, 16, &tp[r], err, sizeof err))
            fail_msg("%s", err);
        ap[r] = arena_of(&t, &part[r], &tp[r], 2);
    }
    int32_t qs[NSEQ + 1] = {0}, slot_of[NSEQ], perm[64], tiles[48], nt, nall;
    for (int i = 0; i < NSEQ; i++) { qs[i + 1] = qs[i] + k_len[i]; slot_of[i] = k_slot[i]; }
    int T = qs[NSEQ];
    lora_group_tokens(slot_of, qs, NSEQ, 2, perm, tiles, &nt, &nall);
    for (int gi = 0; gi < LORA_NGROUP; gi++) {
        const lora_group_layout *gw = &whole.g[LORA_NGROUP + gi];
        int row_par = gi == LORA_G_O || gi == LORA_G_DOWN;
        float *x = rand_bf((size_t)T * gw->K, 1), *yw = calloc((size_t)T * gw->N, sizeof(float));
        float *v = malloc(sizeof(float) * (size_t)T * gw->RA);
        k_lora_slices sl = {gw->S, 16, {gw->slice_end[0], gw->slice_end[1], gw->slice_end[2]}};
        kref_lora_shrink(v, x, gw->K, aw + gw->a_off, (int64_t)whole.elems, gw->RA, gw->K, nt, tiles, perm);
        kref_lora_expand(yw, gw->N, v, gw->RA, aw + gw->b_off, (int64_t)whole.elems, scale, &sl, nt, tiles, perm);
        double *sum = calloc((size_t)T * gw->N, sizeof(double));
        for (int r = 0; r < 2; r++) {
            const lora_group_layout *g = &part[r].g[LORA_NGROUP + gi];
            assert_int_equal(g->K, row_par ? gw->K / 2 : gw->K);
            assert_int_equal(g->N, row_par ? gw->N : gw->N / 2);
            /* the rank's input: its columns of x when row-parallel (heads q0.., MLP columns rank*I/2..) */
            int c0 = gi == LORA_G_O ? tp[r].q0 * t.c.head_dim : r * g->K;
            float *xr = malloc(sizeof(float) * (size_t)T * g->K), *yr = calloc((size_t)T * g->N, sizeof(float));
            for (int tok = 0; tok < T; tok++)
                memcpy(xr + (size_t)tok * g->K, x + (size_t)tok * gw->K + (row_par ? c0 : 0), sizeof(float) * g->K);
            float *vr = malloc(sizeof(float) * (size_t)T * g->RA);
            k_lora_slices slr = {g->S, 16, {g->slice_end[0], g->slice_end[1], g->slice_end[2]}};
            kref_lora_shrink(vr, xr, g->K, ap[r] + g->a_off, (int64_t)part[r].elems, g->RA, g->K, nt, tiles, perm);
            kref_lora_expand(yr, g->N, vr, g->RA, ap[r] + g->b_off, (int64_t)part[r].elems, scale, &slr, nt, tiles, perm);
            for (int tok = 0; tok < T; tok++)
                for (int n = 0; n < g->N; n++) {
                    int col = n;                          /* column-parallel: the rank's rows of each module */
                    if (!row_par) {
                        int j = 0;
                        while (n >= g->slice_end[j]) j++;
                        int first = j ? g->slice_end[j - 1] : 0, wfirst = j ? gw->slice_end[j - 1] : 0;
                        int per = g->slice_end[j] - first;
                        int r0 = gi == LORA_G_QKV && j == 0 ? tp[r].q0 * t.c.head_dim
                               : gi == LORA_G_QKV ? tp[r].kv0 * t.c.head_dim : r * per;
                        col = wfirst + r0 + (n - first);
                        /* exactly the whole's column: same A, same B row, same order */
                        assert_true(yr[(size_t)tok * g->N + n] == yw[(size_t)tok * gw->N + col]);
                    }
                    sum[(size_t)tok * gw->N + col] += yr[(size_t)tok * g->N + n];
                }
            free(xr); free(yr); free(vr);
        }
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)T * gw->N; i++) {
            num += (sum[i] - yw[i]) * (sum[i] - yw[i]);
            den += (double)yw[i] * yw[i];
        }
        if (!(den > 0 && sqrt(num / den) < 8e-3)) fail_msg("group %d: shards' sum off by rel L2 %.3g", gi, sqrt(num / den));
        free(x); free(yw); free(v); free(sum);
    }
    for (int r = 0; r < 2; r++) { free(ap[r]); lora_layout_free(&part[r]); }
    free(aw);
    lora_layout_free(&whole);
    two_close(&t);
}

static void test_merge_delta(void **st) {
    (void)st;
    const int64_t O = 37, I = 53;
    const int r = 5;
    float *w = rand_bf((size_t)(O * I), 1), *A = rand_bf((size_t)(r * I), 0.5f), *B = rand_bf((size_t)(O * r), 0.5f);
    float *w0 = malloc(sizeof(float) * (size_t)(O * I));
    memcpy(w0, w, sizeof(float) * (size_t)(O * I));
    merge_delta(w, A, B, O, I, r, 1.75f);
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            double want = w0[o * I + i];
            for (int k = 0; k < r; k++) want += 1.75 * B[o * r + k] * A[k * I + i];
            assert_true(fabs(w[o * I + i] - want) < 1e-5 * (1 + fabs(want)));
        }
    free(w); free(A); free(B); free(w0);
}

static int same_file(const char *a, const char *b) {
    char *x = tu_slurp(a), *y = tu_slurp(b);
    int same = x && y && !strcmp(x, y);
    free(x); free(y);
    return same;
}

static void test_merge_checkpoint(void **st) {
    (void)st;
    char base[256], ad[256], out[256], err[1024];
    snprintf(base, sizeof base, "%s/base", tmp);
    snprintf(ad, sizeof ad, "%s/ad", tmp);
    snprintf(out, sizeof out, "%s/merged", tmp);
    lf_write_base(base);
    lf_adapter fa;
    lf_write_adapter(ad, lf_cfg(8, 16, "\"all-linear\"", 1, NULL), LF_ALL, 8, ST_F16, 0, &fa);   /* fp16 adapter */
    merge_stats ms;
    assert_int_equal(merge_lora(base, ad, base, NULL, NULL, &ms, err, sizeof err), -1);     /* never over the base */
    assert_non_null(strstr(err, "base model's directory"));
    if (merge_lora(base, ad, out, NULL, NULL, &ms, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(ms.shards, 2);
    assert_int_equal(ms.merged, 14);
    assert_int_equal(ms.tensors, 1 + 2 * 12 + 2);
    assert_int_equal(ms.files_copied, 4);        /* config, generation_config, the index, tokenizer.json */
    static const char *const copied[] = {"config.json", "generation_config.json", "tokenizer.json", "model.safetensors.index.json"};
    for (int i = 0; i < 4; i++) assert_true(same_file(tu_join(base, copied[i]), tu_join(out, copied[i])));
    assert_int_equal(access(tu_join(out, "pytorch_model.bin"), F_OK), -1);   /* unmerged weights left behind */
    double scale = 16 / sqrt(8.0);
    int checked = 0, off_by_rounding = 0;
    for (int s = 1; s <= 2; s++) {
        char name[64];
        snprintf(name, sizeof name, "model-0000%d-of-00002.safetensors", s);
        st_file fb, fo;
        if (st_open(&fb, tu_join(base, name), err, sizeof err) || st_open(&fo, tu_join(out, name), err, sizeof err))
            fail_msg("%s", err);
        assert_int_equal(fb.n, fo.n);
        for (int i = 0; i < fb.n; i++) {
            const st_tensor *tb = &fb.t[i], *to = st_find(&fo, tb->name);
            assert_non_null(to);
            assert_int_equal(to->dtype, tb->dtype);                            /* the base's dtype kept */
            assert_int_equal(to->numel, tb->numel);
            int l, m = -1;
            char part[16], mod[16];
            if (strstr(tb->name, "_proj.weight") && sscanf(tb->name, "model.layers.%d.%15[a-z_].%15[a-z_]", &l, part, mod) == 3)
                for (m = 0; m < LORA_NMOD && strcmp(lora_module_name(m), mod); m++) {}
            if (m < 0 || m == LORA_NMOD) {                                     /* not adapted: byte for byte */
                assert_memory_equal(to->data, tb->data, tb->nbytes);
                continue;
            }
            int64_t O = tb->shape[0], I = tb->shape[1];
            float *w = malloc(sizeof(float) * (size_t)tb->numel), *got = malloc(sizeof(float) * (size_t)tb->numel);
            assert_int_equal(st_to_f32(tb, w, err, sizeof err), 0);
            assert_int_equal(st_to_f32(to, got, err, sizeof err), 0);
            for (int64_t o = 0; o < O; o++)
                for (int64_t x = 0; x < I; x++) {
                    double want = w[o * I + x];
                    for (int k = 0; k < 8; k++) want += scale * fa.B[l][m][o * 8 + k] * fa.A[l][m][k * I + x];
                    float wr;                                                   /* want, stored in the dtype */
                    unsigned char b4[4];
                    float wf = (float)want;
                    st_from_f32(tb->dtype, &wf, 1, b4);
                    st_tensor one = *tb;
                    one.numel = 1;
                    one.data = b4;
                    st_to_f32(&one, &wr, err, sizeof err);
                    float g = got[o * I + x];
                    double ulp = tb->dtype == ST_BF16 ? 1.0 / 128 : tb->dtype == ST_F16 ? 1.0 / 1024 : 1e-6;
                    if (g != wr) {
                        off_by_rounding += tb->dtype != ST_F32;   /* fp32: the last bit of a float sum */
                        if (fabs(g - want) > ulp * fabs(want) + 1e-7) fail_msg("%s[%lld, %lld] = %g, want %g", tb->name,
                                                                              (long long)o, (long long)x, g, want);
                    }
                    checked++;
                }
            free(w); free(got);
        }
        st_close(&fb);
        st_close(&fo);
    }
    assert_int_equal(checked, 2 * (64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 96 * 64));
    assert_true(off_by_rounding * 200 < checked);                              /* ties of fp32 vs double: rare */
    lf_adapter_free(&fa);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_matches_modules), cmocka_unit_test(test_shards_add_up),
        cmocka_unit_test(test_merge_delta),           cmocka_unit_test(test_merge_checkpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
