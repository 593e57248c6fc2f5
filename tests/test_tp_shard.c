/* Tests of the tensor-parallel sharding plan (engine/tp_shard.h), no GPU:
 * the per-rank heads, KV heads (split, or replicated when fewer than N), MLP
 * and expert widths and vocabulary rows of Qwen2.5-7B, Llama-3.1-70B and
 * Qwen3-30B-A3B at N = 1, 2, 4, 8; that the byte ranges the N ranks read of
 * every checkpoint tensor tile it exactly (once, or once per replica); that a
 * slice read from a safetensors image gives the right elements; the
 * vocabulary-parallel embedding's ids; that weights and KV bytes per GPU
 * agree with the planner (`pagesim plan --tp N`) byte for byte; and that the
 * GPU tests' random checkpoints (tests/gpu/tp_ckpt.h) are what the loader
 * takes, their packed experts holding the per-expert values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/tp_shard.h"
#include "engine/kernels_ref.h"
#include "engine/weights.h"
#include "sim/planner.h"
#include "sim/cost_model.h"
#include "tests/gpu/tp_ckpt.h"

static const char *models[] = {"data/models/qwen2.5-7b.json", "data/models/llama-3.1-70b.json",
                               "data/models/qwen3-30b-a3b-instruct-2507.json"};
static const int sizes[] = {1, 2, 4, 8};

static void load(mc_config *c, const char *path) {
    char err[256];
    if (mc_load(c, path, err, sizeof err)) fail_msg("%s", err);
}

/* Qwen2.5-7B's 28 heads do not split over 8 GPUs: the plan says so, and so does the planner */
static int splits(const mc_config *c, int n) { return c->num_heads % n == 0; }

static void test_plan_dims(void **st) {
    (void)st;
    char err[256];
    for (size_t m = 0; m < 3; m++) {
        mc_config c;
        load(&c, models[m]);
        for (size_t k = 0; k < 4; k++) {
            int N = sizes[k];
            tp_plan p;
            if (!splits(&c, N)) {
                assert_int_equal(tp_plan_init(&p, &c, N, 0, err, sizeof err), -1);
                assert_non_null(strstr(err, "attention heads"));
                continue;
            }
            int qseen[256] = {0}, kvseen[64] = {0}, vrows = 0;
            for (int r = 0; r < N; r++) {
                if (tp_plan_init(&p, &c, N, r, err, sizeof err)) fail_msg("%s N=%d: %s", models[m], N, err);
                assert_int_equal(p.nq * N, c.num_heads);
                for (int h = p.q0; h < p.q0 + p.nq; h++) qseen[h]++;
                for (int h = p.kv0; h < p.kv0 + p.nkv; h++) kvseen[h]++;
                /* each query head's KV head lives on its rank */
                int g = c.num_heads / c.num_kv_heads;
                assert_int_equal(p.q0 / g, p.kv0);
                assert_int_equal((p.q0 + p.nq - 1) / g, p.kv0 + p.nkv - 1);
                if (c.num_kv_heads < N) assert_int_equal(p.nkv, 1);
                if (c.num_experts) assert_int_equal(p.moe_inter * N, c.moe_intermediate_size);
                else assert_int_equal(p.inter * N, c.intermediate_size);
                assert_int_equal(p.vocab0, vrows);
                vrows += p.vocab_rows;
                if (N == 1) assert_int_equal(p.vocab_rows, c.vocab_size);
                else assert_int_equal(p.vocab_padded % TP_VOCAB_PAD, 0);
            }
            assert_true(vrows >= c.vocab_size && vrows - c.vocab_size < TP_VOCAB_PAD * (N > 1) + 1);
            for (int h = 0; h < c.num_heads; h++) assert_int_equal(qseen[h], 1);
            int rep = c.num_kv_heads >= N ? 1 : N / c.num_kv_heads;
            for (int h = 0; h < c.num_kv_heads; h++) assert_int_equal(kvseen[h], rep);
        }
    }
    /* the study's model at TP 4: experts 768 -> 4 x 192, one KV head per GPU; at 8, each KV head on 2 GPUs */
    mc_config c;
    tp_plan p;
    load(&c, models[2]);
    assert_int_equal(tp_plan_init(&p, &c, 4, 3, err, sizeof err), 0);
    assert_int_equal(p.moe_inter, 192);
    assert_int_equal(p.nq, 8);
    assert_int_equal(p.nkv, 1);
    assert_int_equal(p.kv0, 3);
    assert_int_equal(tp_plan_init(&p, &c, 8, 5, err, sizeof err), 0);
    assert_int_equal(p.kv_replicas, 2);
    assert_int_equal(p.kv0, 2);
    assert_int_equal(p.q0, 20);
}

static void test_plan_errors(void **st) {
    (void)st;
    char err[256];
    mc_config c;
    tp_plan p;
    load(&c, models[1]);
    assert_int_equal(tp_plan_init(&p, &c, 3, 0, err, sizeof err), -1);       /* 64 heads */
    assert_non_null(strstr(err, "tensor-parallel size 3"));
    load(&c, models[0]);
    c.num_heads = 24; c.num_kv_heads = 6;                                     /* 6 KV heads over 4 */
    assert_int_equal(tp_plan_init(&p, &c, 4, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "KV heads"));
    load(&c, models[0]);
    c.intermediate_size = 18946;
    assert_int_equal(tp_plan_init(&p, &c, 4, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "intermediate_size"));
    load(&c, models[0]);
    assert_int_equal(tp_plan_init(&p, &c, 2, 0, err, sizeof err), 0);
    tp_slice s;
    int64_t sh[2] = {3584, 3584};
    assert_int_equal(tp_shard_tensor(&p, "model.layers.0.self_attn.rotary.weight", 2, sh, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "no tensor-parallel rule"));
    sh[0] = 1000;                                                             /* q_proj of 28 x 128 rows */
    assert_int_equal(tp_shard_tensor(&p, "model.layers.0.self_attn.q_proj.weight", 2, sh, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "rows"));
}

/* ---- every tensor of layer 0 and the outer ones: the ranks' byte ranges tile it */
typedef struct rng { uint64_t off, len; } rng;
static int rng_cmp(const void *a, const void *b) {
    const rng *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off ? 1 : (x->len < y->len ? -1 : x->len > y->len);
}

typedef struct tile_ctx { const mc_config *c; int N; long tensors; } tile_ctx;

static int tile_one(void *ctx, const char *name, int ndim, const int64_t *shape) {
    tile_ctx *t = ctx;
    if (strstr(name, "layers.") && !strstr(name, "layers.0.")) return 0;
    if (strstr(name, "experts.") && !strstr(name, "experts.0.") && !strstr(name, "experts.127.")) return 0;
    char err[256];
    int64_t numel = shape[0] * (ndim >= 2 ? shape[1] : 1) * (ndim == 3 ? shape[2] : 1), total = 0, want_mult = 1;
    rng *r = NULL;
    size_t n = 0;
    for (int k = 0; k < t->N; k++) {
        tp_plan p;
        tp_slice s;
        assert_int_equal(tp_plan_init(&p, t->c, t->N, k, err, sizeof err), 0);
        if (tp_shard_tensor(&p, name, ndim, shape, &s, err, sizeof err)) fail_msg("%s", err);
        if (s.split == TP_REPLICATED) want_mult = t->N;
        else if (strstr(name, "k_proj") || strstr(name, "v_proj")) want_mult = p.kv_replicas;
        int64_t nr = tp_slice_nranges(&s);
        r = realloc(r, sizeof *r * (n + (size_t)nr));
        for (int64_t i = 0; i < nr; i++) {
            tp_slice_range(&s, i, 2, &r[n].off, &r[n].len);
            total += (int64_t)r[n].len / 2;
            n++;
        }
    }
    assert_int_equal(total, numel * want_mult);     /* no element twice (but for replicas), none left out */
    qsort(r, n, sizeof *r, rng_cmp);
    uint64_t end = 0;
    for (size_t i = 0; i < n; i += (size_t)want_mult) {
        for (int64_t j = 1; j < want_mult; j++) {   /* replicas read the very same bytes */
            assert_true(r[i + (size_t)j].off == r[i].off);
            assert_true(r[i + (size_t)j].len == r[i].len);
        }
        if (r[i].off != end) fail_msg("%s at N=%d: gap or overlap at byte %llu", name, t->N, (unsigned long long)end);
        end = r[i].off + r[i].len;
    }
    assert_true(end == (uint64_t)numel * 2);
    free(r);
    t->tensors++;
    return 0;
}

static void test_ranges_tile(void **st) {
    (void)st;
    char err[256];
    for (size_t m = 0; m < 3; m++) {
        mc_config c;
        load(&c, models[m]);
        for (size_t k = 0; k < 4; k++) {
            if (!splits(&c, sizes[k])) continue;
            tile_ctx t = {&c, sizes[k], 0};
            if (tp_tensors(&c, c.attn_bias, tile_one, &t, err, sizeof err)) fail_msg("%s", err);
            assert_true(t.tensors >= 10);
            if (c.num_experts) {               /* transformers 5 packs each layer's experts in two tensors */
                int64_t gu[3] = {c.num_experts, 2 * c.moe_intermediate_size, c.hidden_size};
                int64_t dn[3] = {c.num_experts, c.hidden_size, c.moe_intermediate_size};
                assert_int_equal(tile_one(&t, "model.layers.0.mlp.experts.gate_up_proj", 3, gu), 0);
                assert_int_equal(tile_one(&t, "model.layers.0.mlp.experts.down_proj", 3, dn), 0);
            }
        }
    }
}

/* ---- per GPU: the engine's plan = the planner (`pagesim plan --tp N`) ---- */
static void test_agrees_with_planner(void **st) {
    (void)st;
    char err[256];
    cm_gpu g;
    assert_int_equal(cm_gpu_find(&g, "H200", err, sizeof err), 0);
    for (size_t m = 0; m < 3; m++) {
        mc_config c;
        load(&c, models[m]);
        int64_t norms = ((int64_t)c.num_layers * (2 * c.hidden_size + (c.qk_norm ? 2 * c.head_dim : 0)) +
                         c.hidden_size) * 2;
        int64_t router = (int64_t)c.num_layers * c.num_experts * c.hidden_size * 2;
        for (size_t k = 0; k < 4; k++) {
            int N = sizes[k];
            plan_opts o;
            plan_result pr;
            plan_opts_default(&o);
            o.tp = N;
            o.max_model_len = 4096;
            int prc = plan_compute(&c, &g, &o, &pr, err, sizeof err);
            if (!splits(&c, N)) { assert_int_equal(prc, -1); continue; }
            assert_int_equal(prc, 0);
            int64_t sum = 0;
            for (int r = 0; r < N; r++) {
                tp_plan p;
                assert_int_equal(tp_plan_init(&p, &c, N, r, err, sizeof err), 0);
                int64_t w = tp_weight_bytes(&p, &c, c.attn_bias, err, sizeof err);
                if (w < 0) fail_msg("%s", err);
                if ((double)w != pr.weight_bytes)
                    fail_msg("%s N=%d rank %d: plan %lld bytes, planner %.0f", c.name, N, r, (long long)w, pr.weight_bytes);
                assert_int_equal(tp_kv_bytes_per_token(&p, &c), pr.kv_bytes_per_token);
                assert_int_equal(w, plan_weight_bytes(&c, MC_DTYPE_BF16, N));
                sum += w;
            }
            /* summed over GPUs: the model once, plus the copies of what is replicated */
            int64_t total = mc_weight_bytes(&c, MC_DTYPE_BF16), extra = (N - 1) * (norms + router);
            int64_t vpad = 0;
            if (N > 1) {
                tp_plan p;
                assert_int_equal(tp_plan_init(&p, &c, N, 0, err, sizeof err), 0);
                vpad = (int64_t)(p.vocab_padded - c.vocab_size) * c.hidden_size * 2 * (c.tie_embeddings ? 1 : 2);
            }
            if (c.num_kv_heads < N) {
                int64_t kvw = (int64_t)c.num_layers * 2 * c.head_dim * c.hidden_size * 2;   /* one KV head, k and v */
                extra += (N - c.num_kv_heads) * kvw;
            }
            assert_int_equal(sum, total + extra + vpad);
            if (N == 1) assert_int_equal(sum, total);
        }
    }
}

/* the rank's config gives the weight loader's arena the shard's size (weights.c's
 * plan, which pads each of its pieces to 128 elements), dense and MoE: what
 * engine/run logs as the weights per GPU is pagesim plan --tp N's figure */
static void test_rank_config(void **st) {
    (void)st;
    char err[256];
    for (size_t m = 0; m < 3; m++) {
        mc_config c, rc;
        load(&c, models[m]);
        for (size_t k = 0; k < 4; k++) {
            int N = sizes[k];
            if (!splits(&c, N)) continue;
            tp_plan p;
            assert_int_equal(tp_plan_init(&p, &c, N, N - 1, err, sizeof err), 0);
            tp_rank_config(&p, &c, &rc);
            assert_int_equal(rc.num_heads * N, c.num_heads);
            assert_int_equal(rc.vocab_size, p.vocab_rows);
            assert_int_equal(w_check_config(&rc, err, sizeof err), 0);
            int64_t plan = tp_weight_bytes(&p, &c, c.attn_bias, err, sizeof err);
            int64_t arena = (int64_t)w_bytes(&rc, c.attn_bias), pieces = 3 + (int64_t)c.num_layers * 10;
            if (arena < plan || arena - plan > pieces * 256)
                fail_msg("%s N=%d: arena %lld bytes, plan %lld", c.name, N, (long long)arena, (long long)plan);
            assert_int_equal(plan, plan_weight_bytes(&c, MC_DTYPE_BF16, N));
            if (N == 4 || m == 2)
                fprintf(stderr, "  %s N=%d: engine arena %.4f GiB per GPU, pagesim plan %.4f GiB\n", c.name, N,
                        arena / 1073741824.0, plan / 1073741824.0);
            if (N == 1) assert_memory_equal(&rc, &c, sizeof c);
        }
    }
}

/* the command itself: `pagesim plan --tp 4 --json` on the study's model */
static void test_plan_command(void **st) {
    (void)st;
    char cmd[512], err[256];
    snprintf(cmd, sizeof cmd, "%s/pagesim plan --model %s --gpu H200 --tp 4 --max-model-len 4096 --json 2>&1",
             tu_bindir(), models[2]);
    TU_REQUIRE_FILE(tu_join(tu_bindir(), "pagesim"));
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    assert_int_equal(pclose(f), 0);
    mc_config c;
    tp_plan p;
    load(&c, models[2]);
    assert_int_equal(tp_plan_init(&p, &c, 4, 2, err, sizeof err), 0);
    char want[128];
    snprintf(want, sizeof want, "\"weight_bytes\": %lld,", (long long)tp_weight_bytes(&p, &c, 0, err, sizeof err));
    if (!strstr(buf, want)) fail_msg("want %s in:\n%s", want, buf);
    snprintf(want, sizeof want, "\"kv_bytes_per_token\": %lld,", (long long)tp_kv_bytes_per_token(&p, &c));
    if (!strstr(buf, want)) fail_msg("want %s in:\n%s", want, buf);
}

/* ---- slices read from a safetensors image: the right elements, padding zero ---- */
static void put_header(unsigned char *img, size_t *len, const char *hdr) {
    uint64_t hl = strlen(hdr);
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)(hl >> (8 * i));
    memcpy(img + 8, hdr, hl);
    *len = 8 + hl;
}

static void test_slice_read(void **st) {
    (void)st;
    /* a toy config: 8 q heads, 2 KV heads of 4, hidden 16, vocab 100, at N = 4 (KV heads fewer than N) */
    mc_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "toy");
    c.num_heads = 8; c.num_kv_heads = 2; c.head_dim = 4; c.hidden_size = 16; c.intermediate_size = 8;
    c.vocab_size = 100;
    enum { D = 16, Q = 32, KV = 8, V = 100 };
    static float q[Q * D], k[KV * D], o[D * Q], e[V * D];
    for (int i = 0; i < Q * D; i++) q[i] = (float)i;
    for (int i = 0; i < KV * D; i++) k[i] = (float)-i;
    for (int i = 0; i < D * Q; i++) o[i] = (float)(1000 + i);
    for (int i = 0; i < V * D; i++) e[i] = (float)(i % 997) / 8;
    char hdr[1024];
    size_t qb = sizeof q, kb = sizeof k, ob = sizeof o, eb = sizeof e;
    snprintf(hdr, sizeof hdr,
             "{\"q\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[0,%zu]},"
             "\"k\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]},"
             "\"o\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]},"
             "\"e\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}}",
             Q, D, qb, KV, D, qb, qb + kb, D, Q, qb + kb, qb + kb + ob, V, D, qb + kb + ob, qb + kb + ob + eb);
    static unsigned char img[1 << 16];
    size_t len;
    put_header(img, &len, hdr);
    memcpy(img + len, q, qb); memcpy(img + len + qb, k, kb);
    memcpy(img + len + qb + kb, o, ob); memcpy(img + len + qb + kb + ob, e, eb);
    len += qb + kb + ob + eb;
    st_file f;
    char err[256];
    if (st_open_mem(&f, img, len, "toy", err, sizeof err)) fail_msg("%s", err);
    static uint16_t out[V * D];
    for (int r = 0; r < 4; r++) {
        tp_plan p;
        tp_slice s;
        assert_int_equal(tp_plan_init(&p, &c, 4, r, err, sizeof err), 0);
        /* q_proj: rows of heads [2r, 2r + 2) */
        const st_tensor *t = st_find(&f, "q");
        int64_t shq[2] = {Q, D};
        assert_int_equal(tp_shard_tensor(&p, "model.layers.0.self_attn.q_proj.weight", 2, shq, &s, err, sizeof err), 0);
        assert_int_equal(tp_slice_read(t, &s, out, err, sizeof err), 0);
        for (int i = 0; i < 2 * 4; i++)
            for (int j = 0; j < D; j++)
                assert_true(kref_bf2f(out[i * D + j]) == kref_bf2f(kref_f2bf(q[(r * 8 + i) * D + j])));
        /* k_proj: KV head r / 2 (each on 2 ranks) */
        int64_t shk[2] = {KV, D};
        assert_int_equal(tp_shard_tensor(&p, "model.layers.0.self_attn.k_proj.weight", 2, shk, &s, err, sizeof err), 0);
        assert_int_equal(tp_slice_read(st_find(&f, "k"), &s, out, err, sizeof err), 0);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < D; j++)
                assert_true(kref_bf2f(out[i * D + j]) == kref_bf2f(kref_f2bf(k[((r / 2) * 4 + i) * D + j])));
        /* o_proj: columns of heads [2r, 2r + 2), one range per row */
        int64_t sho[2] = {D, Q};
        assert_int_equal(tp_shard_tensor(&p, "model.layers.0.self_attn.o_proj.weight", 2, sho, &s, err, sizeof err), 0);
        assert_int_equal(tp_slice_nranges(&s), D);
        assert_int_equal(tp_slice_read(st_find(&f, "o"), &s, out, err, sizeof err), 0);
        for (int i = 0; i < D; i++)
            for (int j = 0; j < 8; j++)
                assert_true(kref_bf2f(out[i * 8 + j]) == kref_bf2f(kref_f2bf(o[i * Q + r * 8 + j])));
        /* embedding: 100 rows padded to 128 = 4 x 32; rank 3 has rows 96..99 and 28 zero rows */
        int64_t she[2] = {V, D};
        assert_int_equal(tp_shard_tensor(&p, "model.embed_tokens.weight", 2, she, &s, err, sizeof err), 0);
        assert_int_equal(s.nr, 32);
        memset(out, 0xff, sizeof out);
        assert_int_equal(tp_slice_read(st_find(&f, "e"), &s, out, err, sizeof err), 0);
        for (int i = 0; i < 32; i++)
            for (int j = 0; j < D; j++) {
                int row = r * 32 + i;
                float want = row < V ? kref_bf2f(kref_f2bf(e[row * D + j])) : 0.0f;
                assert_true(kref_bf2f(out[i * D + j]) == want);
            }
        /* a slice planned for another shape is refused */
        assert_int_equal(tp_slice_read(st_find(&f, "q"), &s, out, err, sizeof err), -1);
    }
    st_close(&f);
}

/* transformers 5's packed experts give each rank what the per-expert tensors give it */
static void test_packed_experts(void **st) {
    (void)st;
    enum { E = 3, I = 8, D = 4, N = 2 };
    mc_config c;
    memset(&c, 0, sizeof c);
    c.num_heads = 2; c.num_kv_heads = 2; c.head_dim = 4; c.hidden_size = D; c.vocab_size = 64;
    c.num_experts = E; c.moe_intermediate_size = I; c.experts_per_tok = 1;
    static uint16_t gu[E * 2 * I * D], dn[E * D * I];     /* packed: (E, 2I, D) gate|up, (E, D, I) */
    for (int i = 0; i < E * 2 * I * D; i++) gu[i] = kref_f2bf((float)i);
    for (int i = 0; i < E * D * I; i++) dn[i] = kref_f2bf((float)-i);
    char hdr[512];
    snprintf(hdr, sizeof hdr, "{\"gu\":{\"dtype\":\"BF16\",\"shape\":[%d,%d,%d],\"data_offsets\":[0,%zu]},"
             "\"dn\":{\"dtype\":\"BF16\",\"shape\":[%d,%d,%d],\"data_offsets\":[%zu,%zu]}}",
             E, 2 * I, D, sizeof gu, E, D, I, sizeof gu, sizeof gu + sizeof dn);
    static unsigned char img[4096];
    size_t len;
    put_header(img, &len, hdr);
    memcpy(img + len, gu, sizeof gu); memcpy(img + len + sizeof gu, dn, sizeof dn);
    len += sizeof gu + sizeof dn;
    st_file f;
    char err[256];
    if (st_open_mem(&f, img, len, "packed", err, sizeof err)) fail_msg("%s", err);
    for (int r = 0; r < N; r++) {
        tp_plan p;
        tp_slice s;
        uint16_t out[E * 2 * I * D];
        assert_int_equal(tp_plan_init(&p, &c, N, r, err, sizeof err), 0);
        const st_tensor *t = st_find(&f, "gu");
        assert_int_equal(tp_shard_tensor(&p, "model.layers.0.mlp.experts.gate_up_proj", 3, t->shape, &s, err, sizeof err), 0);
        assert_int_equal(tp_slice_read(t, &s, out, err, sizeof err), 0);
        assert_int_equal(s.outer * s.nr * s.nc, E * 2 * (I / N) * D);
        for (int e = 0; e < E; e++)                  /* (E, 2 I/N, D): gate rows of this rank, then up rows */
            for (int h = 0; h < 2; h++)
                for (int i = 0; i < I / N; i++)
                    for (int d = 0; d < D; d++)
                        assert_int_equal(out[((e * 2 + h) * (I / N) + i) * D + d],
                                         gu[((e * 2 * I) + h * I + r * (I / N) + i) * D + d]);
        t = st_find(&f, "dn");
        assert_int_equal(tp_shard_tensor(&p, "model.layers.0.mlp.experts.down_proj", 3, t->shape, &s, err, sizeof err), 0);
        assert_int_equal(tp_slice_read(t, &s, out, err, sizeof err), 0);
        for (int e = 0; e < E; e++)                  /* (E, D, I/N): this rank's columns */
            for (int d = 0; d < D; d++)
                for (int i = 0; i < I / N; i++)
                    assert_int_equal(out[(e * D + d) * (I / N) + i], dn[(e * D + d) * I + r * (I / N) + i]);
        int64_t odd[3] = {E, 2 * I + 2, D};          /* a width that does not split */
        assert_int_equal(tp_shard_tensor(&p, "model.layers.0.mlp.experts.gate_up_proj", 3, odd, &s, err, sizeof err), -1);
    }
    st_close(&f);
}

/* every id is looked up by exactly one rank; the others write zeros */
static void test_vocab_ids(void **st) {
    (void)st;
    char err[256];
    mc_config c;
    load(&c, models[2]);
    int32_t ids[6] = {0, 1, 37983, 37984, 151935, 151936 /* out of range */}, local[6];
    for (int N = 1; N <= 8; N *= 2) {
        int owners[6] = {0};
        for (int r = 0; r < N; r++) {
            tp_plan p;
            assert_int_equal(tp_plan_init(&p, &c, N, r, err, sizeof err), 0);
            tp_vocab_local_ids(&p, ids, 6, local);
            for (int t = 0; t < 6; t++)
                if (local[t] >= 0) {
                    owners[t]++;
                    assert_int_equal(local[t] + p.vocab0, ids[t]);
                    assert_true(local[t] < p.vocab_rows);
                }
        }
        for (int t = 0; t < 5; t++) assert_int_equal(owners[t], 1);
        assert_int_equal(owners[5], 0);
    }
}

static void test_checkpoint_writer(void **st) {
    (void)st;
    static const char *const moe =
        "{\"model_type\":\"qwen3_moe\",\"hidden_size\":256,\"num_hidden_layers\":2,\"num_attention_heads\":8,"
        "\"num_key_value_heads\":2,\"head_dim\":128,\"intermediate_size\":512,\"moe_intermediate_size\":128,"
        "\"num_experts\":8,\"num_experts_per_tok\":2,\"mlp_only_layers\":[1],\"vocab_size\":1000,"
        "\"max_position_embeddings\":4096,\"tie_word_embeddings\":false}";
    static const char *const dense =
        "{\"model_type\":\"qwen2\",\"hidden_size\":256,\"num_hidden_layers\":2,\"num_attention_heads\":8,"
        "\"num_key_value_heads\":2,\"head_dim\":64,\"intermediate_size\":512,\"vocab_size\":1000,"
        "\"max_position_embeddings\":4096,\"tie_word_embeddings\":false}";
    char err[512];
    mc_config c;
    int bias;
    if (tck_write("build/tmp/tp_ck_dense", dense, 0, &c, err, sizeof err)) fail_msg("%s", err);
    if (w_check_dir("build/tmp/tp_ck_dense", &c, &bias, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(bias, 1);
    if (tck_write("build/tmp/tp_ck_moe", moe, 0, &c, err, sizeof err) ||
        tck_write("build/tmp/tp_ck_moe_packed", moe, 1, &c, err, sizeof err))
        fail_msg("%s", err);
    if (w_check_dir("build/tmp/tp_ck_moe", &c, &bias, err, sizeof err) ||
        w_check_dir("build/tmp/tp_ck_moe_packed", &c, &bias, err, sizeof err))
        fail_msg("%s", err);
    /* a MoE model with a dense layer (mlp_only_layers): the plan, the planner and the arena agree */
    for (int N = 1; N <= 4; N *= 2) {
        tp_plan q;
        mc_config rc;
        assert_int_equal(tp_plan_init(&q, &c, N, 0, err, sizeof err), 0);
        int64_t w = tp_weight_bytes(&q, &c, 0, err, sizeof err);
        assert_int_equal(w, plan_weight_bytes(&c, MC_DTYPE_BF16, N));
        if (N == 1) assert_int_equal(w, mc_weight_bytes(&c, MC_DTYPE_BF16));
        tp_rank_config(&q, &c, &rc);
        int64_t arena = (int64_t)w_bytes(&rc, 0);
        assert_true(arena >= w && arena - w < 64 * 256);
    }
    /* rank 3 of 4: the packed tensors' slices are the per-expert slices, expert after expert */
    st_file fe, fp;
    if (st_open(&fe, "build/tmp/tp_ck_moe/model.safetensors", err, sizeof err) ||
        st_open(&fp, "build/tmp/tp_ck_moe_packed/model.safetensors", err, sizeof err))
        fail_msg("%s", err);
    tp_plan p;
    assert_int_equal(tp_plan_init(&p, &c, 4, 3, err, sizeof err), 0);
    enum { E = 8, I = 128, D = 256 };
    static uint16_t a[E * 2 * I * D], b[E * 2 * I * D];
    tp_slice s;
    const st_tensor *t = st_find(&fp, "model.layers.0.mlp.experts.gate_up_proj");
    assert_non_null(t);
    assert_int_equal(tp_shard_tensor(&p, t->name, t->ndim, t->shape, &s, err, sizeof err), 0);
    assert_int_equal(tp_slice_read(t, &s, a, err, sizeof err), 0);
    size_t n = 0;
    for (int e = 0; e < E; e++)
        for (int k = 0; k < 2; k++) {
            char nm[128];
            snprintf(nm, sizeof nm, "model.layers.0.mlp.experts.%d.%s_proj.weight", e, k ? "up" : "gate");
            t = st_find(&fe, nm);
            assert_non_null(t);
            assert_int_equal(tp_shard_tensor(&p, nm, t->ndim, t->shape, &s, err, sizeof err), 0);
            assert_int_equal(tp_slice_read(t, &s, b + n, err, sizeof err), 0);
            n += (size_t)(s.nr * s.nc);
        }
    assert_int_equal(n, (size_t)E * 2 * (I / 4) * D);
    assert_memory_equal(a, b, n * 2);
    st_close(&fe);
    st_close(&fp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_dims),
        cmocka_unit_test(test_plan_errors),
        cmocka_unit_test(test_ranges_tile),
        cmocka_unit_test(test_agrees_with_planner),
        cmocka_unit_test(test_rank_config),
        cmocka_unit_test(test_plan_command),
        cmocka_unit_test(test_slice_read),
        cmocka_unit_test(test_packed_experts),
        cmocka_unit_test(test_checkpoint_writer),
        cmocka_unit_test(test_vocab_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
