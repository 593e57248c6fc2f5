/* GPU tests of tensor-parallel sharding on ONE GPU (issue 13): the N shards
 * of a decoder layer, read from a safetensors image by the engine's plan
 * (engine/tp_shard.h), run one after another with the engine's kernels and
 * cuBLAS; their partial outputs, summed where the all-reduce goes, equal the
 * unsharded layer within bf16 tolerance.  N = 2 and 4; a Qwen2-like layer
 * (biases, 8 q heads over 2 KV heads: fewer KV heads than N at 4) and a
 * Qwen3-like one (q/k norms, head_dim 128); two steps (prefill, then a
 * decode over the paged cache, same block tables on every rank), each
 * rank's KV cache holding its KV heads.  MoE: a Qwen3-MoE MLP through the
 * engine's own kernels (engine/moe.cu: router GEMM, routing, permutation,
 * grouped gate/up + SwiGLU and down, combine; the grouped path and the cuBLAS
 * one), router replicated, each expert split along its width, so each rank
 * routes every token alike and computes its slice of the experts (the weight
 * loader's shards: tests/gpu/test_tp_load.c).  The vocabulary-parallel
 * embedding and lm_head give one GPU's embeddings, logits, greedy tokens and
 * log-probabilities.  And the real NCCL path with a communicator of one
 * (all-reduce at both points, logits gather) is bit-identical to the
 * layer without it.  Each case needs PAGESIM_GPU=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/kernels.h"
#include "engine/kernels_ref.h"
#include "engine/tp_shard.h"
#include "engine/tp_comm.h"
#include <cuda_runtime_api.h>
#include <cublas_v2.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {                /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static void *dev(size_t bytes) {
    void *d = NULL;
    assert_int_equal(cudaMalloc(&d, bytes + 16), cudaSuccess);
    assert_int_equal(cudaMemset(d, 0xff, bytes), cudaSuccess);     /* NaN until written */
    return d;
}
static void *up(const void *h, size_t bytes) {
    void *d = dev(bytes);
    assert_int_equal(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}
static float *down_bf(const k_bf16 *d, size_t n) {
    uint16_t *h = malloc(n * 2);
    float *x = malloc(n * sizeof *x);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    assert_int_equal(cudaMemcpy(h, d, n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < n; i++) x[i] = kref_bf2f(h[i]);
    free(h);
    return x;
}
static k_bf16 *up_f(const float *x, size_t n) {              /* floats -> bf16 on the GPU */
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = kref_f2bf(x[i]);
    k_bf16 *d = up(h, n * 2);
    free(h);
    return d;
}
static double rel_l2(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
#define CHECK_CLOSE(got, want, n, tol, ...) do { double e_ = rel_l2(got, want, n); char w_[128]; \
    snprintf(w_, sizeof w_, __VA_ARGS__); fprintf(stderr, "  %-44s rel L2 %.3e\n", w_, e_); \
    assert_true(e_ < (tol)); } while (0)

/* ---- a checkpoint in memory: named bf16 tensors in a safetensors image ---- */
typedef struct ckpt { char hdr[1 << 16]; size_t hl, dl; unsigned char *data; st_file f; } ckpt;

static void ck_add(ckpt *k, const char *name, int64_t d0, int64_t d1, float scale, float base) {
    int64_t n = d0 * (d1 ? d1 : 1);
    k->data = realloc(k->data, k->dl + (size_t)n * 2);
    uint16_t *p = (uint16_t *)(k->data + k->dl);
    for (int64_t i = 0; i < n; i++) p[i] = kref_f2bf(base + scale * frand());
    char shape[64];
    if (d1) snprintf(shape, sizeof shape, "[%lld,%lld]", (long long)d0, (long long)d1);
    else snprintf(shape, sizeof shape, "[%lld]", (long long)d0);
    k->hl += (size_t)snprintf(k->hdr + k->hl, sizeof k->hdr - k->hl, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":%s,"
                              "\"data_offsets\":[%zu,%zu]}", k->hl > 1 ? "," : "", name, shape, k->dl,
                              k->dl + (size_t)n * 2);
    k->dl += (size_t)n * 2;
}
static void ck_open(ckpt *k) {
    k->hl += (size_t)snprintf(k->hdr + k->hl, sizeof k->hdr - k->hl, "}");
    size_t len = 8 + k->hl + k->dl;
    unsigned char *img = malloc(len);
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)((uint64_t)k->hl >> (8 * i));
    memcpy(img + 8, k->hdr, k->hl);
    memcpy(img + 8 + k->hl, k->data, k->dl);
    free(k->data);
    k->data = img;                          /* the image must outlive the st_file */
    char err[256];
    if (st_open_mem(&k->f, img, len, "layer", err, sizeof err)) fail_msg("%s", err);
}
static void ck_close(ckpt *k) { st_close(&k->f); free(k->data); }

/* the rank's slice of `name`, read as the loader will, appended at dst (host) */
static size_t slice(const ckpt *k, const tp_plan *p, const char *name, uint16_t *dst) {
    const st_tensor *t = st_find(&k->f, name);
    if (!t) fail_msg("no tensor %s", name);
    tp_slice s;
    char err[256];
    if (tp_shard_tensor(p, name, t->ndim, t->shape, &s, err, sizeof err) ||
        tp_slice_read(t, &s, dst, err, sizeof err))
        fail_msg("%s", err);
    return (size_t)(s.outer * s.nr * s.nc);
}

/* ---- one layer's weights on the GPU: the whole layer (N 1) or one rank's shard ---- */
typedef struct cfg { int D, nq, nkv, hd, I, E, topk, moe_I, bias, qk_norm; } cfg;
typedef struct lw {
    int nq, nkv, I, moe_I;
    k_bf16 *attn_norm, *wqkv, *bqkv, *q_norm, *k_norm, *wo, *mlp_norm, *router;
    k_bf16 *gate_up;             /* dense (2I, D); MoE (E, 2 moe_I, D) gate|up per expert, as weights.c packs them */
    k_bf16 *down;                /* dense (D, I); MoE (E, D, moe_I) */
} lw;

static mc_config as_mc(const cfg *c) {
    mc_config m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "test layer");
    m.hidden_size = c->D; m.num_heads = c->nq; m.num_kv_heads = c->nkv; m.head_dim = c->hd;
    m.intermediate_size = c->I; m.num_experts = c->E; m.experts_per_tok = c->topk;
    m.moe_intermediate_size = c->moe_I; m.vocab_size = 1000; m.num_layers = 1;
    return m;
}

static void make_ckpt(ckpt *k, const cfg *c) {
    memset(k, 0, sizeof k->hdr);
    k->hl = (size_t)snprintf(k->hdr, sizeof k->hdr, "{");
    k->dl = 0;
    k->data = NULL;
    int64_t D = c->D, q = (int64_t)c->nq * c->hd, kv = (int64_t)c->nkv * c->hd;
    float ws = 1.0f / sqrtf((float)D);
    ck_add(k, "model.layers.0.input_layernorm.weight", D, 0, 0.5f, 1.0f);
    ck_add(k, "model.layers.0.self_attn.q_proj.weight", q, D, 2 * ws, 0);
    ck_add(k, "model.layers.0.self_attn.k_proj.weight", kv, D, 2 * ws, 0);
    ck_add(k, "model.layers.0.self_attn.v_proj.weight", kv, D, 2 * ws, 0);
    if (c->bias) {
        ck_add(k, "model.layers.0.self_attn.q_proj.bias", q, 0, 0.3f, 0);
        ck_add(k, "model.layers.0.self_attn.k_proj.bias", kv, 0, 0.3f, 0);
        ck_add(k, "model.layers.0.self_attn.v_proj.bias", kv, 0, 0.3f, 0);
    }
    if (c->qk_norm) {
        ck_add(k, "model.layers.0.self_attn.q_norm.weight", c->hd, 0, 0.5f, 1.0f);
        ck_add(k, "model.layers.0.self_attn.k_norm.weight", c->hd, 0, 0.5f, 1.0f);
    }
    ck_add(k, "model.layers.0.self_attn.o_proj.weight", D, q, 1.0f / sqrtf((float)q), 0);
    ck_add(k, "model.layers.0.post_attention_layernorm.weight", D, 0, 0.5f, 1.0f);
    if (c->E) {
        char nm[128];
        ck_add(k, "model.layers.0.mlp.gate.weight", c->E, D, 4 * ws, 0);
        for (int e = 0; e < c->E; e++) {
            snprintf(nm, sizeof nm, "model.layers.0.mlp.experts.%d.gate_proj.weight", e);
            ck_add(k, nm, c->moe_I, D, 2 * ws, 0);
            snprintf(nm, sizeof nm, "model.layers.0.mlp.experts.%d.up_proj.weight", e);
            ck_add(k, nm, c->moe_I, D, 2 * ws, 0);
            snprintf(nm, sizeof nm, "model.layers.0.mlp.experts.%d.down_proj.weight", e);
            ck_add(k, nm, D, c->moe_I, 2.0f / sqrtf((float)c->moe_I), 0);
        }
    } else {
        ck_add(k, "model.layers.0.mlp.gate_proj.weight", c->I, D, 2 * ws, 0);
        ck_add(k, "model.layers.0.mlp.up_proj.weight", c->I, D, 2 * ws, 0);
        ck_add(k, "model.layers.0.mlp.down_proj.weight", D, c->I, 2.0f / sqrtf((float)c->I), 0);
    }
    ck_open(k);
}

/* rank r of N's weights, each tensor read through its tp_slice (the fused
 * q|k|v and gate|up matrices assembled as weights.c fuses them) */
static void load_rank(lw *w, const ckpt *k, const cfg *c, int N, int r) {
    mc_config m = as_mc(c);
    tp_plan p;
    char err[256];
    if (tp_plan_init(&p, &m, N, r, err, sizeof err)) fail_msg("%s", err);
    memset(w, 0, sizeof *w);
    w->nq = p.nq; w->nkv = p.nkv; w->I = p.inter; w->moe_I = p.moe_inter;
    size_t big = (size_t)(c->nq + 2 * c->nkv) * c->hd * c->D + (size_t)4 * c->D * (c->I + c->moe_I * (c->E + 1)) + 4096;
    uint16_t *h = malloc(big * 2);
    size_t n;
#define LOAD1(field, name) (n = slice(k, &p, name, h), w->field = up(h, n * 2))
    LOAD1(attn_norm, "model.layers.0.input_layernorm.weight");
    n = slice(k, &p, "model.layers.0.self_attn.q_proj.weight", h);
    n += slice(k, &p, "model.layers.0.self_attn.k_proj.weight", h + n);
    n += slice(k, &p, "model.layers.0.self_attn.v_proj.weight", h + n);
    assert_int_equal(n, (size_t)(p.nq + 2 * p.nkv) * c->hd * c->D);
    w->wqkv = up(h, n * 2);
    if (c->bias) {
        n = slice(k, &p, "model.layers.0.self_attn.q_proj.bias", h);
        n += slice(k, &p, "model.layers.0.self_attn.k_proj.bias", h + n);
        n += slice(k, &p, "model.layers.0.self_attn.v_proj.bias", h + n);
        w->bqkv = up(h, n * 2);
    }
    if (c->qk_norm) {
        LOAD1(q_norm, "model.layers.0.self_attn.q_norm.weight");
        LOAD1(k_norm, "model.layers.0.self_attn.k_norm.weight");
    }
    LOAD1(wo, "model.layers.0.self_attn.o_proj.weight");
    assert_int_equal(n, (size_t)c->D * p.nq * c->hd);
    LOAD1(mlp_norm, "model.layers.0.post_attention_layernorm.weight");
    if (c->E) {
        LOAD1(router, "model.layers.0.mlp.gate.weight");
        assert_int_equal(n, (size_t)c->E * c->D);                 /* replicated */
        size_t egu = (size_t)2 * p.moe_inter * c->D, edn = (size_t)c->D * p.moe_inter;
        uint16_t *dn = malloc((size_t)c->E * edn * 2);
        for (int e = 0; e < c->E; e++) {                           /* packed per expert, as weights.c does */
            char g[128], u[128], d[128];
            snprintf(g, sizeof g, "model.layers.0.mlp.experts.%d.gate_proj.weight", e);
            snprintf(u, sizeof u, "model.layers.0.mlp.experts.%d.up_proj.weight", e);
            snprintf(d, sizeof d, "model.layers.0.mlp.experts.%d.down_proj.weight", e);
            n = slice(k, &p, g, h + e * egu);
            n += slice(k, &p, u, h + e * egu + n);
            assert_int_equal(n, egu);
            assert_int_equal(slice(k, &p, d, dn + e * edn), edn);
        }
        w->gate_up = up(h, c->E * egu * 2);
        w->down = up(dn, c->E * edn * 2);
        free(dn);
    } else {
        n = slice(k, &p, "model.layers.0.mlp.gate_proj.weight", h);
        n += slice(k, &p, "model.layers.0.mlp.up_proj.weight", h + n);
        w->gate_up = up(h, n * 2);
        LOAD1(down, "model.layers.0.mlp.down_proj.weight");
    }
#undef LOAD1
    free(h);
}

static void free_lw(lw *w) {
    k_bf16 *b[] = {w->attn_norm, w->wqkv, w->bqkv, w->q_norm, w->k_norm, w->wo, w->mlp_norm, w->gate_up, w->down, w->router};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) cudaFree(b[i]);
}

/* ---- a batch of 3 sequences over a paged cache, same block tables on every rank ---- */
enum { BS = 16, NBLK = 64, MAXB = 16, B = 3 };
typedef struct step {
    int T;
    int32_t *pos, *slots;                    /* device (T,) */
    k_attn_batch ab;                         /* device arrays */
} step;

static int plen[B] = {37, 5, 100};
static int32_t table[B][MAXB];               /* shuffled physical blocks */

static void make_tables(void) {
    int perm[NBLK];
    for (int i = 0; i < NBLK; i++) perm[i] = i;
    for (int i = NBLK - 1; i > 0; i--) { int j = (int)((frand() + 1) * 0.5f * (float)(i + 1)) % (i + 1), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
    for (int s = 0, u = 0; s < B; s++)
        for (int j = 0; j < MAXB; j++) table[s][j] = j < 8 ? perm[u++] : 0;
}

/* decode 0: the prompts (prefill); 1: one more token each (decode) */
static step make_step(int decode) {
    step st;
    int32_t qs[B + 1], ctx[B], pos[256], slots[256];
    int T = 0, maxq = 0, maxc = 0;
    qs[0] = 0;
    for (int s = 0; s < B; s++) {
        int first = decode ? plen[s] : 0, n = decode ? 1 : plen[s];
        for (int i = 0; i < n; i++, T++) {
            pos[T] = first + i;
            slots[T] = table[s][pos[T] / BS] * BS + pos[T] % BS;
        }
        qs[s + 1] = T;
        ctx[s] = first + n;
        if (n > maxq) maxq = n;
        if (ctx[s] > maxc) maxc = ctx[s];
    }
    st.T = T;
    st.pos = up(pos, 4 * (size_t)T);
    st.slots = up(slots, 4 * (size_t)T);
    st.ab = (k_attn_batch){B, T, up(qs, sizeof qs), up(ctx, sizeof ctx), up(table, sizeof table), MAXB, BS, maxq, maxc};
    return st;
}

typedef struct rank_state {                  /* a rank's KV cache and scratch */
    k_bf16 *kc, *vc;                         /* (NBLK * BS, nkv, hd) */
    k_bf16 *qkv, *attn, *gu, *act;
    float *ws;
    size_t wsb;
} rank_state;

static void rank_init(rank_state *rs, const cfg *c, const lw *w, int Tmax) {
    size_t slots = (size_t)NBLK * BS;
    rs->kc = dev(slots * w->nkv * c->hd * 2);
    rs->vc = dev(slots * w->nkv * c->hd * 2);
    rs->qkv = dev((size_t)Tmax * (w->nq + 2 * w->nkv) * c->hd * 2);
    rs->attn = dev((size_t)Tmax * w->nq * c->hd * 2);
    int wide = (c->E ? w->moe_I : w->I);
    rs->gu = dev((size_t)Tmax * 2 * wide * 2);
    rs->act = dev((size_t)Tmax * wide * 2);
    rs->wsb = k_attention_workspace_bytes(B, w->nq, c->hd, MAXB * BS);
    rs->ws = dev(rs->wsb);
    assert_int_equal(k_attention_workspace_init(rs->ws, rs->wsb, B, w->nq, 0), 0);
}
static void rank_free(rank_state *rs) {
    void *b[] = {rs->kc, rs->vc, rs->qkv, rs->attn, rs->gu, rs->act, rs->ws};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) cudaFree(b[i]);
}

static cublasHandle_t blas;
static cudaStream_t S;                        /* every launch of the tests (NCCL too) */
static float *inv_freq;                       /* device (hd/2,) */

/* the attention half as model_forward runs it: res += x; x = norm(res); ... ; x = o_proj(attn) (a partial sum on a shard) */
static void attn_half(const cfg *c, const lw *w, rank_state *rs, const step *st, k_bf16 *x, k_bf16 *res) {
    int T = st->T, D = c->D, hd = c->hd, QKV = (w->nq + 2 * w->nkv) * hd;
    assert_int_equal(k_add_rmsnorm(x, res, w->attn_norm, T, D, 1e-6f, S), 0);
    assert_int_equal(k_gemm(blas, rs->qkv, 0, x, w->wqkv, T, QKV, D, S), 0);
    if (w->bqkv) assert_int_equal(k_add_bias(rs->qkv, w->bqkv, T, QKV, S), 0);
    if (w->q_norm) {
        assert_int_equal(k_head_rmsnorm(rs->qkv, T, w->nq, hd, QKV, w->q_norm, 1e-6f, S), 0);
        assert_int_equal(k_head_rmsnorm(rs->qkv + (size_t)w->nq * hd, T, w->nkv, hd, QKV, w->k_norm, 1e-6f, S), 0);
    }
    assert_int_equal(k_rope(rs->qkv, st->pos, inv_freq, T, w->nq, w->nkv, hd, QKV, S), 0);
    assert_int_equal(k_kv_write(rs->kc, rs->vc, rs->qkv, st->slots, T, w->nq, w->nkv, hd, QKV, S), 0);
    assert_int_equal(k_attention(rs->attn, rs->qkv, QKV, rs->kc, rs->vc, &st->ab, w->nq, w->nkv, hd,
                                 1.0f / sqrtf((float)hd), rs->ws, rs->wsb, S), 0);
    assert_int_equal(k_gemm(blas, x, 0, rs->attn, w->wo, T, D, w->nq * hd, S), 0);
}

/* the dense MLP half: res += x; x = norm(res); x = down(silu(gate) * up) (a partial sum on a shard) */
static void mlp_half(const cfg *c, const lw *w, rank_state *rs, int T, k_bf16 *x, k_bf16 *res) {
    assert_int_equal(k_add_rmsnorm(x, res, w->mlp_norm, T, c->D, 1e-6f, S), 0);
    assert_int_equal(k_gemm(blas, rs->gu, 0, x, w->gate_up, T, 2 * w->I, c->D, S), 0);
    assert_int_equal(k_silu_mul(rs->act, rs->gu, T, w->I, S), 0);
    assert_int_equal(k_gemm(blas, x, 0, rs->act, w->down, T, c->D, w->I, S), 0);
}

static int moe_impl = K_MOE_GEMM_GROUPED;      /* the experts' GEMMs: the engine's grouped kernels or cuBLAS */

/* the MoE half as model_forward runs it (engine/moe.cu): res += x; x = norm(res);
 * router logits (T, E) from the whole router, routing (softmax in fp32, top k,
 * renormalised), permutation, every expert's gate/up + SwiGLU and down at this
 * rank's width, combine: x (T, D), a partial sum on a shard.  Returns x (host). */
static float *moe_half(const cfg *c, const lw *w, int T, k_bf16 *x, k_bf16 *res) {
    int D = c->D, E = c->E, K = c->topk, I = w->moe_I;
    assert_int_equal(k_add_rmsnorm(x, res, w->mlp_norm, T, D, 1e-6f, S), 0);
    k_moe moe;
    assert_int_equal(k_moe_create(&moe, E, K, T, D, I, moe_impl, blas), 0);
    k_bf16 *dlog = dev((size_t)T * E * 2), *act = dev((size_t)T * K * I * 2), *ey = dev((size_t)T * K * D * 2);
    assert_int_equal(k_gemm(blas, dlog, 0, x, w->router, T, E, D, S), 0);
    assert_int_equal(k_moe_route(&moe, dlog, T, 1, S), 0);
    assert_int_equal(k_moe_permute(&moe, T, S), 0);
    assert_int_equal(k_moe_gate_up(&moe, act, x, w->gate_up, S), 0);
    assert_int_equal(k_moe_down(&moe, ey, act, w->down, S), 0);
    assert_int_equal(k_moe_combine(&moe, x, ey, S), 0);
    float *out = down_bf(x, (size_t)T * D);
    k_moe_free(&moe);
    cudaFree(dlog); cudaFree(act); cudaFree(ey);
    return out;
}

static void setup_shared(const cfg *c) {
    if (!blas) {
        assert_int_equal(cudaStreamCreate(&S), cudaSuccess);
        assert_int_equal(cublasCreate(&blas), CUBLAS_STATUS_SUCCESS);
        cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
    }
    float inv[128];
    kref_rope_inv_freq(inv, c->hd, 1e6, 0, 1, 1, 1, 0);
    cudaFree(inv_freq);
    inv_freq = up(inv, sizeof(float) * (size_t)c->hd / 2);
}

/* x (T, D) host floats summed over ranks, rounded to bf16 once, as the all-reduce leaves them */
static void add_into(float *sum, const float *x, size_t n) { for (size_t i = 0; i < n; i++) sum[i] += x[i]; }
static void round_bf(float *x, size_t n) { for (size_t i = 0; i < n; i++) x[i] = kref_round_bf(x[i]); }

/* every rank's K cache holds the whole cache's KV heads of that rank, at the
 * slots of the block tables (the same tables on every rank) */
static void check_kv(const cfg *c, int N, const rank_state *fs, const rank_state *rs, int decode, const char *what) {
    size_t slots = (size_t)NBLK * BS, hd = (size_t)c->hd;
    float *kf = down_bf(fs->kc, slots * c->nkv * hd);
    for (int r = 0; r < N; r++) {
        mc_config m = as_mc(c);
        tp_plan p;
        char err[128];
        assert_int_equal(tp_plan_init(&p, &m, N, r, err, sizeof err), 0);
        float *kr = down_bf(rs[r].kc, slots * p.nkv * hd);
        float *want = malloc(sizeof *want * 256 * p.nkv * hd), *got = malloc(sizeof *got * 256 * p.nkv * hd);
        size_t m2 = 0;
        for (int s = 0; s < B; s++)             /* the slots written so far, through the block tables */
            for (int t = 0; t < plen[s] + decode && m2 < 256; t++, m2++) {
                size_t sl = (size_t)table[s][t / BS] * BS + t % BS;
                memcpy(got + m2 * p.nkv * hd, kr + sl * p.nkv * hd, sizeof(float) * p.nkv * hd);
                memcpy(want + m2 * p.nkv * hd, kf + (sl * c->nkv + p.kv0) * hd, sizeof(float) * p.nkv * hd);
            }
        CHECK_CLOSE(got, want, m2 * p.nkv * hd, 1e-2, "%s N=%d rank %d: K cache heads [%d, %d)", what, N, r, p.kv0,
                    p.kv0 + p.nkv);
        free(kr); free(want); free(got);
    }
    free(kf);
}

/* the layer whole and in N shards over two steps; returns nothing, asserts */
static void check_layer(const cfg *c, int N, const char *what) {
    setup_shared(c);
    ckpt k;
    make_ckpt(&k, c);
    make_tables();
    lw full, sh[4];
    rank_state fs, rs[4];
    int Tmax = 160, D = c->D;
    load_rank(&full, &k, c, 1, 0);
    rank_init(&fs, c, &full, Tmax);
    for (int r = 0; r < N; r++) { load_rank(&sh[r], &k, c, N, r); rank_init(&rs[r], c, &sh[r], Tmax); }
    k_bf16 *x = dev((size_t)Tmax * D * 2), *res = dev((size_t)Tmax * D * 2);
    for (int decode = 0; decode < 2; decode++) {
        step st = make_step(decode);
        int T = st.T;
        size_t n = (size_t)T * D;
        float *x0 = malloc(n * sizeof *x0), *r0 = malloc(n * sizeof *r0);
        for (size_t i = 0; i < n; i++) { x0[i] = kref_round_bf(frand()); r0[i] = kref_round_bf(2 * frand()); }
        /* whole layer: attention half, then MLP half on its output */
        k_bf16 *dx0 = up_f(x0, n), *dr0 = up_f(r0, n);
        cudaMemcpy(x, dx0, n * 2, cudaMemcpyDeviceToDevice);
        cudaMemcpy(res, dr0, n * 2, cudaMemcpyDeviceToDevice);
        attn_half(c, &full, &fs, &st, x, res);
        float *a_full = down_bf(x, n), *res1 = down_bf(res, n);
        float *m_full = c->E ? moe_half(c, &full, T, x, res) : (mlp_half(c, &full, &fs, T, x, res), down_bf(x, n));
        float *res2 = down_bf(res, n);
        /* N shards, one after another; the sums stand where the all-reduces go */
        float *a_sum = calloc(n, sizeof *a_sum), *m_sum = calloc(n, sizeof *m_sum);
        for (int r = 0; r < N; r++) {
            cudaMemcpy(x, dx0, n * 2, cudaMemcpyDeviceToDevice);
            cudaMemcpy(res, dr0, n * 2, cudaMemcpyDeviceToDevice);
            attn_half(c, &sh[r], &rs[r], &st, x, res);
            float *p = down_bf(x, n);
            add_into(a_sum, p, n);
            free(p);
        }
        round_bf(a_sum, n);
        CHECK_CLOSE(a_sum, a_full, n, 1e-2, "%s N=%d %s: attention (o_proj sum)", what, N, decode ? "decode" : "prefill");
        check_kv(c, N, &fs, rs, decode, what);
        /* the MLP half from the whole layer's state after attention (so that the MoE routing is the same) */
        k_bf16 *da = up_f(a_full, n), *dr1 = up_f(res1, n);
        for (int r = 0; r < N; r++) {
            cudaMemcpy(x, da, n * 2, cudaMemcpyDeviceToDevice);
            cudaMemcpy(res, dr1, n * 2, cudaMemcpyDeviceToDevice);
            float *p = c->E ? moe_half(c, &sh[r], T, x, res) : (mlp_half(c, &sh[r], &rs[r], T, x, res), down_bf(x, n));
            add_into(m_sum, p, n);
            free(p);
        }
        round_bf(m_sum, n);
        CHECK_CLOSE(m_sum, m_full, n, 1e-2, "%s N=%d %s: %s (down_proj sum)", what, N, decode ? "decode" : "prefill",
                    c->E ? "MoE experts" : "MLP");
        /* dense: the layer end to end, the shards' sums feeding the next half, against the whole layer */
        if (!c->E) {
            float *out_full = malloc(n * sizeof *out_full), *out_sh = malloc(n * sizeof *out_sh);
            for (size_t i = 0; i < n; i++) out_full[i] = res2[i] + m_full[i];
            k_bf16 *das = up_f(a_sum, n);
            float *chain = calloc(n, sizeof *chain);
            for (int r = 0; r < N; r++) {
                cudaMemcpy(x, das, n * 2, cudaMemcpyDeviceToDevice);
                cudaMemcpy(res, dr1, n * 2, cudaMemcpyDeviceToDevice);
                mlp_half(c, &sh[r], &rs[r], T, x, res);
                float *p = down_bf(x, n);
                add_into(chain, p, n);
                free(p);
            }
            round_bf(chain, n);
            float *rs2 = down_bf(res, n);
            for (size_t i = 0; i < n; i++) out_sh[i] = rs2[i] + chain[i];
            CHECK_CLOSE(out_sh, out_full, n, 1e-2, "%s N=%d %s: layer output", what, N, decode ? "decode" : "prefill");
            free(out_full); free(out_sh); free(chain); free(rs2);
            cudaFree(das);
        }
        free(x0); free(r0); free(a_full); free(res1); free(m_full); free(res2); free(a_sum); free(m_sum);
        cudaFree(dx0); cudaFree(dr0); cudaFree(da); cudaFree(dr1);
        cudaFree(st.pos); cudaFree(st.slots);
        cudaFree((void *)st.ab.query_start); cudaFree((void *)st.ab.context_lens); cudaFree((void *)st.ab.block_tables);
    }
    for (int r = 0; r < N; r++) { free_lw(&sh[r]); rank_free(&rs[r]); }
    free_lw(&full);
    rank_free(&fs);
    cudaFree(x); cudaFree(res);
    ck_close(&k);
}

/* Qwen2-like: q/k/v biases, 8 q heads over 2 KV heads (at N 4 each KV head on 2 ranks) */
static const cfg qwen2_like = {256, 8, 2, 64, 512, 0, 0, 0, 1, 0};
/* Qwen3-like: q/k norms, head_dim 128, 16 q heads over 4 KV heads */
static const cfg qwen3_like = {256, 16, 4, 128, 768, 0, 0, 0, 0, 1};
/* Qwen3-MoE-like: 8 experts of width 128, 2 per token, 8 q heads over 2 KV heads */
static const cfg moe_like = {256, 8, 2, 128, 0, 8, 2, 128, 0, 1};

static void test_dense_qwen2_like(void **st) {
    (void)st; TU_REQUIRE_GPU();
    check_layer(&qwen2_like, 2, "qwen2-like");
    check_layer(&qwen2_like, 4, "qwen2-like (2 KV heads)");
}
static void test_dense_qwen3_like(void **st) {
    (void)st; TU_REQUIRE_GPU();
    check_layer(&qwen3_like, 2, "qwen3-like");
    check_layer(&qwen3_like, 4, "qwen3-like");
}
static void test_moe(void **st) {
    (void)st; TU_REQUIRE_GPU();
    check_layer(&moe_like, 2, "moe-like");
    check_layer(&moe_like, 4, "moe-like (2 KV heads)");
    moe_impl = K_MOE_GEMM_CUBLAS;
    check_layer(&moe_like, 2, "moe-like, cuBLAS experts");
    moe_impl = K_MOE_GEMM_GROUPED;
}

/* vocabulary-parallel embedding (masked lookups, summed) and lm_head (shards side by side) = one GPU's */
static void test_vocab_parallel(void **st) {
    (void)st; TU_REQUIRE_GPU();
    cfg c0 = qwen2_like;
    setup_shared(&c0);
    enum { D = 256, V = 1000, T = 40, R = 40 };
    ckpt k;
    memset(&k, 0, sizeof k.hdr);
    k.hl = (size_t)snprintf(k.hdr, sizeof k.hdr, "{");
    k.dl = 0; k.data = NULL;
    ck_add(&k, "model.embed_tokens.weight", V, D, 1.0f, 0);
    ck_add(&k, "lm_head.weight", V, D, 0.1f, 0);
    ck_open(&k);
    mc_config m = as_mc(&c0);
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((frand() + 1) * 0.5f * V) % V;
    ids[0] = 0; ids[1] = V - 1; ids[2] = 767; ids[3] = 768;   /* shard edges at N 4: 256-row shards of 1024 */
    int32_t *dids = up(ids, sizeof ids);
    k_bf16 *emb_full = dev((size_t)T * D * 2), *head_full = NULL, *table_full = NULL;
    float *lg_full = dev((size_t)R * V * 4);
    uint16_t *h = malloc((size_t)V * D * 2 + 4096 * D * 2);
    tp_plan p1;
    char err[256];
    assert_int_equal(tp_plan_init(&p1, &m, 1, 0, err, sizeof err), 0);
    table_full = up(h, slice(&k, &p1, "model.embed_tokens.weight", h) * 2);
    head_full = up(h, slice(&k, &p1, "lm_head.weight", h) * 2);
    assert_int_equal(k_embedding(emb_full, table_full, dids, T, D, V, S), 0);
    assert_int_equal(k_gemm(blas, lg_full, 1, emb_full, head_full, R, V, D, S), 0);
    float *want_e = down_bf(emb_full, (size_t)T * D);
    float *want_l = malloc(sizeof(float) * R * V);
    cudaMemcpy(want_l, lg_full, sizeof(float) * R * V, cudaMemcpyDeviceToHost);
    for (int N = 2; N <= 4; N += 2) {
        float *e_sum = calloc((size_t)T * D, sizeof *e_sum), *l_cat = malloc(sizeof(float) * R * V);
        for (int r = 0; r < N; r++) {
            tp_plan p;
            assert_int_equal(tp_plan_init(&p, &m, N, r, err, sizeof err), 0);
            k_bf16 *tab = up(h, slice(&k, &p, "model.embed_tokens.weight", h) * 2);
            k_bf16 *head = up(h, slice(&k, &p, "lm_head.weight", h) * 2);
            int32_t local[T];
            tp_vocab_local_ids(&p, ids, T, local);
            int32_t *dl = up(local, sizeof local);
            k_bf16 *e = dev((size_t)T * D * 2);
            float *lg = dev((size_t)R * p.vocab_rows * 4);
            assert_int_equal(k_embedding(e, tab, dl, T, D, p.vocab_rows, S), 0);
            float *eh = down_bf(e, (size_t)T * D);
            add_into(e_sum, eh, (size_t)T * D);
            /* the logits of this shard from the whole embedding rows, as the model will after its final norm */
            assert_int_equal(k_gemm(blas, lg, 1, emb_full, head, R, p.vocab_rows, D, S), 0);
            float *lh = malloc(sizeof(float) * R * p.vocab_rows);
            cudaMemcpy(lh, lg, sizeof(float) * R * p.vocab_rows, cudaMemcpyDeviceToHost);
            for (int i = 0; i < R; i++)
                for (int j = 0; j < p.vocab_rows && p.vocab0 + j < V; j++)
                    l_cat[(size_t)i * V + p.vocab0 + j] = lh[(size_t)i * p.vocab_rows + j];
            for (int i = 0; i < R; i++)                     /* padding rows are zero weights: zero logits */
                for (int j = V - p.vocab0; j < p.vocab_rows; j++) if (j >= 0) assert_true(lh[(size_t)i * p.vocab_rows + j] == 0.0f);
            free(eh); free(lh);
            cudaFree(tab); cudaFree(head); cudaFree(dl); cudaFree(e); cudaFree(lg);
        }
        assert_true(rel_l2(e_sum, want_e, (size_t)T * D) == 0.0);      /* one rank each, the rest zeros: exact */
        CHECK_CLOSE(l_cat, want_l, (size_t)R * V, 1e-6, "lm_head N=%d: logits side by side", N);
        /* greedy tokens and log-probabilities from the gathered logits = one GPU's */
        float *dcat = up(l_cat, sizeof(float) * R * V);
        k_sample_params sp[R];
        memset(sp, 0, sizeof sp);
        for (int i = 0; i < R; i++) sp[i].top_p = 1;
        k_sample_params *dsp = up(sp, sizeof sp);
        int32_t *t1 = dev(4 * R), *t2 = dev(4 * R);
        float *p1d = dev(4 * R), *p2d = dev(4 * R);
        assert_int_equal(k_sample(t1, lg_full, dsp, R, V, S), 0);
        assert_int_equal(k_sample(t2, dcat, dsp, R, V, S), 0);
        assert_int_equal(k_logprobs(p1d, lg_full, t1, R, V, S), 0);
        assert_int_equal(k_logprobs(p2d, dcat, t1, R, V, S), 0);
        int32_t a[R], b[R];
        float la[R], lb[R];
        cudaMemcpy(a, t1, sizeof a, cudaMemcpyDeviceToHost);
        cudaMemcpy(b, t2, sizeof b, cudaMemcpyDeviceToHost);
        cudaMemcpy(la, p1d, sizeof la, cudaMemcpyDeviceToHost);
        cudaMemcpy(lb, p2d, sizeof lb, cudaMemcpyDeviceToHost);
        assert_memory_equal(a, b, sizeof a);
        CHECK_CLOSE(lb, la, R, 1e-5, "log-probabilities N=%d", N);
        free(e_sum); free(l_cat);
        cudaFree(dcat); cudaFree(dsp); cudaFree(t1); cudaFree(t2); cudaFree(p1d); cudaFree(p2d);
    }
    free(h); free(want_e); free(want_l);
    cudaFree(dids); cudaFree(emb_full); cudaFree(head_full); cudaFree(table_full); cudaFree(lg_full);
    ck_close(&k);
}

/* -tp 1 through the real NCCL path: a communicator of one, the all-reduce at
 * both points of the layer and the logits gather, bit-identical to no NCCL */
static void test_comm_of_one(void **st) {
    (void)st; TU_REQUIRE_GPU();
    char err[512];
    tp_group *g;
    tp_comm *comm;
    assert_int_equal(tp_group_start(&g, 1, 0, NULL, NULL, err, sizeof err), 0);
    if (tp_comm_init(&comm, g, 60, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(tp_comm_size(comm), 1);
    const cfg *c = &qwen3_like;
    setup_shared(c);
    ckpt k;
    make_ckpt(&k, c);
    make_tables();
    lw w;
    rank_state a, b;
    load_rank(&w, &k, c, 1, 0);
    rank_init(&a, c, &w, 160);
    rank_init(&b, c, &w, 160);
    int D = c->D;
    k_bf16 *xa = dev(160 * (size_t)D * 2), *ra = dev(160 * (size_t)D * 2), *xb = dev(160 * (size_t)D * 2),
           *rb = dev(160 * (size_t)D * 2);
    for (int decode = 0; decode < 2; decode++) {
        step s = make_step(decode);
        size_t n = (size_t)s.T * D;
        float *x0 = malloc(n * sizeof *x0);
        for (size_t i = 0; i < n; i++) x0[i] = kref_round_bf(frand());
        k_bf16 *d0 = up_f(x0, n);
        cudaMemcpy(xa, d0, n * 2, cudaMemcpyDeviceToDevice); cudaMemcpy(xb, d0, n * 2, cudaMemcpyDeviceToDevice);
        cudaMemset(ra, 0, n * 2); cudaMemset(rb, 0, n * 2);
        attn_half(c, &w, &a, &s, xa, ra);
        mlp_half(c, &w, &a, s.T, xa, ra);
        attn_half(c, &w, &b, &s, xb, rb);
        assert_int_equal(tp_allreduce(comm, xb, n, S, err, sizeof err), 0);
        mlp_half(c, &w, &b, s.T, xb, rb);
        assert_int_equal(tp_allreduce(comm, xb, n, S, err, sizeof err), 0);
        assert_int_equal(tp_sync(comm, S, err, sizeof err), 0);
        float *ga = down_bf(xa, n), *gb = down_bf(xb, n), *gra = down_bf(ra, n), *grb = down_bf(rb, n);
        assert_memory_equal(ga, gb, n * sizeof *ga);
        assert_memory_equal(gra, grb, n * sizeof *gra);
        fprintf(stderr, "  comm of one, %s: layer output bit-identical (%zu values)\n", decode ? "decode" : "prefill", n);
        free(x0); free(ga); free(gb); free(gra); free(grb);
        cudaFree(d0); cudaFree(s.pos); cudaFree(s.slots);
    }
    /* logits: into their own buffer then gathered, or gathered in place: the same floats */
    enum { R = 7, V = 1000 };
    float *shard = dev(sizeof(float) * R * V), *out = dev(sizeof(float) * R * V);
    float h[R * V], o[R * V];
    for (int i = 0; i < R * V; i++) h[i] = frand() * 10;
    cudaMemcpy(shard, h, sizeof h, cudaMemcpyHostToDevice);
    assert_int_equal(tp_gather_logits(comm, out, shard, NULL, R, V, V, S, err, sizeof err), 0);
    assert_int_equal(tp_gather_logits(comm, shard, shard, NULL, R, V, V, S, err, sizeof err), 0);
    assert_int_equal(tp_sync(comm, S, err, sizeof err), 0);
    cudaMemcpy(o, out, sizeof o, cudaMemcpyDeviceToHost);
    assert_memory_equal(o, h, sizeof h);
    cudaMemcpy(o, shard, sizeof o, cudaMemcpyDeviceToHost);
    assert_memory_equal(o, h, sizeof h);
    int mn = 0;
    assert_int_equal(tp_min_int(comm, 12345, &mn, S, err, sizeof err), 0);
    assert_int_equal(mn, 12345);
    cudaFree(shard); cudaFree(out);
    free_lw(&w); rank_free(&a); rank_free(&b);
    cudaFree(xa); cudaFree(ra); cudaFree(xb); cudaFree(rb);
    ck_close(&k);
    tp_comm_free(comm);
    assert_int_equal(tp_group_stop(g, 1), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_qwen2_like),
        cmocka_unit_test(test_dense_qwen3_like),
        cmocka_unit_test(test_moe),
        cmocka_unit_test(test_vocab_parallel),
        cmocka_unit_test(test_comm_of_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
