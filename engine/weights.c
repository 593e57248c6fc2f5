/* weights: see weights.h.  One plan (the list of tensors a config needs, each
 * with its expected shape and its place in the arena) drives checking,
 * loading and dummy filling alike.  Reads the checkpoint files it is given;
 * allocates one device arena. */
#include "engine/weights.h"
#include "engine/awq_weights.h"
#include "engine/safetensors.h"
#include "base/errbuf.h"
#include "base/file.h"
#include "base/rng.h"
#include "engine/kernels_ref.h"
#include <math.h>
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

enum { E_MATRIX, E_NORM, E_BIAS, E_ROUTER };
typedef struct w_entry {
    char    name[112];
    int     ndim;
    int64_t shape[3];
    size_t  off;             /* element offset in the arena */
    int     kind;
} w_entry;

enum { O_ATTN_NORM, O_QKV, O_BQKV, O_QNORM, O_KNORM, O_WO, O_MLP_NORM, O_GATE_UP, O_DOWN, O_ROUTER, O_N };
typedef struct w_plan {
    w_entry *e;              /* (n,) */
    int      n;
    size_t   elems;          /* arena size in elements */
    /* element offsets of the pieces of w_weights */
    size_t   embed, lm_head, final_norm;
    size_t  *layer;          /* (L, O_N) */
} w_plan;

int w_check_config(const mc_config *c, char *err, size_t errlen) {
    if (mc_validate(c, err, errlen)) return -1;
    if (c->arch != MC_ARCH_LLAMA && c->arch != MC_ARCH_MISTRAL && c->arch != MC_ARCH_QWEN2 &&
        c->arch != MC_ARCH_QWEN3 && c->arch != MC_ARCH_QWEN3_MOE)
        return errbuf_fail(err, errlen, "%s: model_type '%s' is not supported by the engine "
                    "(llama, mistral, qwen2, qwen3, qwen3_moe)", c->name, c->model_type);
    if (c->num_experts > 0 && c->arch != MC_ARCH_QWEN3_MOE)
        return errbuf_fail(err, errlen, "%s: mixture-of-experts models other than qwen3_moe are not supported",
                           c->name);
    if (c->num_experts > 0 && c->shared_expert_intermediate_size > 0)
        return errbuf_fail(err, errlen, "%s: shared experts are not supported", c->name);
    if (c->num_experts > 0 && (c->num_experts > K_MOE_MAX_EXPERTS || c->experts_per_tok > K_MOE_MAX_TOPK ||
                               c->experts_per_tok > c->num_experts))
        return errbuf_fail(err, errlen, "%s: %d experts, %d per token (the engine takes up to %d experts, "
                           "up to %d per token, and no more per token than there are)", c->name, c->num_experts,
                           c->experts_per_tok, K_MOE_MAX_EXPERTS, K_MOE_MAX_TOPK);
    if (c->num_experts > 0 && (c->moe_intermediate_size % 8 || c->hidden_size % 8))
        return errbuf_fail(err, errlen, "%s: moe_intermediate_size %d and hidden_size %d must be multiples of 8",
                           c->name, c->moe_intermediate_size, c->hidden_size);
    if (c->head_dim != 64 && c->head_dim != 128 && c->head_dim != 256)
        return errbuf_fail(err, errlen, "%s: head_dim %d (the attention kernels take 64, 128 or 256)", c->name, c->head_dim);
    if (c->num_kv_heads <= 0 || c->num_heads % c->num_kv_heads || c->num_heads / c->num_kv_heads > 16)
        return errbuf_fail(err, errlen, "%s: %d heads over %d kv heads (need a divisor, group <= 16)", c->name,
                    c->num_heads, c->num_kv_heads);
    if (c->rope_kind != MC_ROPE_NONE && c->rope_kind != MC_ROPE_LINEAR && c->rope_kind != MC_ROPE_LLAMA3)
        return errbuf_fail(err, errlen, "%s: rope scaling kind %d is not supported (none, linear, llama3)", c->name,
                    (int)c->rope_kind);
    if (c->num_layers > 1024 || c->hidden_size > 65536 || c->vocab_size > (1 << 22) ||
        c->intermediate_size > (1 << 20) || c->moe_intermediate_size > (1 << 20) || c->num_heads > 1024)
        return errbuf_fail(err, errlen, "%s: sizes out of range (layers %d, hidden %d, vocab %d, intermediate %d)",
                    c->name, c->num_layers, c->hidden_size, c->vocab_size, c->intermediate_size);
    if (!(c->rms_eps > 0 && c->rms_eps < 1) || !(c->rope_theta > 0))
        return errbuf_fail(err, errlen, "%s: rms_norm_eps %g or rope_theta %g out of range", c->name, c->rms_eps,
                    c->rope_theta);
    if (c->dtype == MC_DTYPE_AWQ4) return awq_check_config(c, err, errlen);
    return 0;
}

/* one planned tensor: its checkpoint name, shape (d2 = 0: 2-D, d1 = 0: 1-D), place */
static void add(w_plan *p, int kind, size_t off, int64_t d0, int64_t d1, int64_t d2, const char *name) {
    w_entry *e = &p->e[p->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->kind = kind;
    e->off = off;
    e->ndim = d2 ? 3 : d1 ? 2 : 1;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->shape[2] = d2;
}
#define ADDF(p, kind, off, d0, d1, d2, ...) do { char n_[112]; snprintf(n_, sizeof n_, __VA_ARGS__); \
    add(p, kind, off, d0, d1, d2, n_); } while (0)

/* reserves n elements, aligned to 128 (256 bytes) */
static size_t take(w_plan *p, size_t n) {
    size_t off = p->elems;
    p->elems += (n + 127) & ~(size_t)127;
    return off;
}

static void plan_free(w_plan *p) {
    free(p->e);
    free(p->layer);
    memset(p, 0, sizeof *p);
}

/* The MLP of layer i: dense gate/up/down, or a router and E experts packed as
 * (E, 2Im, D) and (E, D, Im), read per expert or (packed) as transformers 5
 * stores them. */
static void plan_mlp(w_plan *p, const mc_config *c, int i, int packed, size_t *o) {
    int64_t D = c->hidden_size;
    if (!mc_layer_is_moe(c, i)) {
        if (c->dtype == MC_DTYPE_AWQ4) return;           /* 4-bit: awq_weights.c's */
        int64_t I = c->intermediate_size;
        o[O_GATE_UP] = take(p, (size_t)(2 * I * D));
        ADDF(p, E_MATRIX, o[O_GATE_UP], I, D, 0, "model.layers.%d.mlp.gate_proj.weight", i);
        ADDF(p, E_MATRIX, o[O_GATE_UP] + I * D, I, D, 0, "model.layers.%d.mlp.up_proj.weight", i);
        o[O_DOWN] = take(p, (size_t)(D * I));
        ADDF(p, E_MATRIX, o[O_DOWN], D, I, 0, "model.layers.%d.mlp.down_proj.weight", i);
        return;
    }
    int64_t E = c->num_experts, I = c->moe_intermediate_size;
    o[O_ROUTER] = take(p, (size_t)(E * D));
    ADDF(p, E_ROUTER, o[O_ROUTER], E, D, 0, "model.layers.%d.mlp.gate.weight", i);
    o[O_GATE_UP] = take(p, (size_t)(E * 2 * I * D));
    o[O_DOWN] = take(p, (size_t)(E * D * I));
    if (packed) {
        ADDF(p, E_MATRIX, o[O_GATE_UP], E, 2 * I, D, "model.layers.%d.mlp.experts.gate_up_proj", i);
        ADDF(p, E_MATRIX, o[O_DOWN], E, D, I, "model.layers.%d.mlp.experts.down_proj", i);
        return;
    }
    for (int64_t e = 0; e < E; e++) {
        size_t gu = o[O_GATE_UP] + (size_t)(e * 2 * I * D);
        ADDF(p, E_MATRIX, gu, I, D, 0, "model.layers.%d.mlp.experts.%d.gate_proj.weight", i, (int)e);
        ADDF(p, E_MATRIX, gu + I * D, I, D, 0, "model.layers.%d.mlp.experts.%d.up_proj.weight", i, (int)e);
        ADDF(p, E_MATRIX, o[O_DOWN] + (size_t)(e * D * I), D, I, 0, "model.layers.%d.mlp.experts.%d.down_proj.weight",
             i, (int)e);
    }
}

static int plan_build(w_plan *p, const mc_config *c, int has_bias, int packed, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    int L = c->num_layers;
    int64_t D = c->hidden_size, hd = c->head_dim, nq = c->num_heads, nkv = c->num_kv_heads;
    int64_t V = c->vocab_size;
    int awq = c->dtype == MC_DTYPE_AWQ4;        /* the linears are 4-bit: awq_weights.c plans them */
    p->e = calloc((size_t)L * (16 + 3 * (size_t)c->num_experts) + 4, sizeof *p->e);
    p->layer = calloc((size_t)L * O_N, sizeof *p->layer);
    if (!p->e || !p->layer) { plan_free(p); return errbuf_fail(err, errlen, "out of memory"); }
    p->embed = take(p, (size_t)(V * D));
    add(p, E_MATRIX, p->embed, V, D, 0, "model.embed_tokens.weight");
    for (int i = 0; i < L; i++) {
        size_t *o = p->layer + (size_t)i * O_N;
        o[O_ATTN_NORM] = take(p, (size_t)D);
        ADDF(p, E_NORM, o[O_ATTN_NORM], D, 0, 0, "model.layers.%d.input_layernorm.weight", i);
        if (!awq) {
            o[O_QKV] = take(p, (size_t)((nq + 2 * nkv) * hd * D));
            ADDF(p, E_MATRIX, o[O_QKV], nq * hd, D, 0, "model.layers.%d.self_attn.q_proj.weight", i);
            ADDF(p, E_MATRIX, o[O_QKV] + nq * hd * D, nkv * hd, D, 0, "model.layers.%d.self_attn.k_proj.weight", i);
            ADDF(p, E_MATRIX, o[O_QKV] + (nq + nkv) * hd * D, nkv * hd, D, 0, "model.layers.%d.self_attn.v_proj.weight", i);
        }
        if (has_bias) {
            o[O_BQKV] = take(p, (size_t)((nq + 2 * nkv) * hd));
            ADDF(p, E_BIAS, o[O_BQKV], nq * hd, 0, 0, "model.layers.%d.self_attn.q_proj.bias", i);
            ADDF(p, E_BIAS, o[O_BQKV] + nq * hd, nkv * hd, 0, 0, "model.layers.%d.self_attn.k_proj.bias", i);
            ADDF(p, E_BIAS, o[O_BQKV] + (nq + nkv) * hd, nkv * hd, 0, 0, "model.layers.%d.self_attn.v_proj.bias", i);
        }
        if (c->qk_norm) {
            o[O_QNORM] = take(p, (size_t)hd);
            ADDF(p, E_NORM, o[O_QNORM], hd, 0, 0, "model.layers.%d.self_attn.q_norm.weight", i);
            o[O_KNORM] = take(p, (size_t)hd);
            ADDF(p, E_NORM, o[O_KNORM], hd, 0, 0, "model.layers.%d.self_attn.k_norm.weight", i);
        }
        if (!awq) {
            o[O_WO] = take(p, (size_t)(D * nq * hd));
            ADDF(p, E_MATRIX, o[O_WO], D, nq * hd, 0, "model.layers.%d.self_attn.o_proj.weight", i);
        }
        o[O_MLP_NORM] = take(p, (size_t)D);
        ADDF(p, E_NORM, o[O_MLP_NORM], D, 0, 0, "model.layers.%d.post_attention_layernorm.weight", i);
        plan_mlp(p, c, i, packed, o);
    }
    p->final_norm = take(p, (size_t)D);
    add(p, E_NORM, p->final_norm, D, 0, 0, "model.norm.weight");
    p->lm_head = p->embed;
    if (!c->tie_embeddings) {
        p->lm_head = take(p, (size_t)(V * D));
        add(p, E_MATRIX, p->lm_head, V, D, 0, "lm_head.weight");
    }
    return 0;
}

size_t w_bytes(const mc_config *c, int has_bias) {
    w_plan p = {0};
    char err[64];
    if (plan_build(&p, c, has_bias, 0, err, sizeof err)) return 0;
    size_t b = p.elems * 2 + (c->dtype == MC_DTYPE_AWQ4 ? awq_arena_bytes(c) : 0);
    plan_free(&p);
    return b;
}

/* ---- the checkpoint: one file or the shards of an index ---- */
typedef struct ckpt {
    st_file *f;              /* (n,) */
    int      n;
    const st_tensor **idx;   /* (nidx,) every tensor of every file, sorted by name */
    int      nidx;
} ckpt;

static void ckpt_close(ckpt *k) {
    for (int i = 0; i < k->n; i++) st_close(&k->f[i]);
    free(k->f);
    free(k->idx);
    memset(k, 0, sizeof *k);
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}
/* the name index (a 30B MoE checkpoint has about 19,000 tensors) */
static int ckpt_index(ckpt *k, char *err, size_t errlen) {
    size_t n = 0;
    for (int i = 0; i < k->n; i++) n += (size_t)k->f[i].n;
    k->idx = malloc((n + 1) * sizeof *k->idx);
    if (!k->idx) return errbuf_fail(err, errlen, "out of memory");
    for (int i = 0; i < k->n; i++)
        for (int j = 0; j < k->f[i].n; j++) k->idx[k->nidx++] = &k->f[i].t[j];
    qsort(k->idx, (size_t)k->nidx, sizeof *k->idx, by_name);
    return 0;
}

static int ckpt_open(ckpt *k, const char *dir, char *err, size_t errlen) {
    memset(k, 0, sizeof *k);
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, R_OK) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        k->f = calloc(1, sizeof *k->f);
        if (!k->f) return errbuf_fail(err, errlen, "out of memory");
        if (st_open(&k->f[0], path, err, errlen)) { ckpt_close(k); return -1; }
        k->n = 1;
        if (ckpt_index(k, err, errlen)) { ckpt_close(k); return -1; }
        return 0;
    }
    char *text = file_read_all(path, 64u << 20, NULL, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return errbuf_fail(err, errlen, "%s: no 'weight_map' object", path);
    }
    int cap = cJSON_GetArraySize(map);
    char **names = calloc((size_t)cap + 1, sizeof *names);
    int nn = 0, rc = 0;
    for (const cJSON *e = map->child; e && !rc; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..")) {
            rc = errbuf_fail(err, errlen, "%s: weight_map entry '%.100s' is not a file name in the directory",
                      path, e->string ? e->string : "?");
            break;
        }
        int seen = 0;
        for (int i = 0; i < nn; i++) seen |= !strcmp(names[i], e->valuestring);
        if (!seen) names[nn++] = e->valuestring;
    }
    if (!rc) {
        k->f = calloc((size_t)nn + 1, sizeof *k->f);
        for (int i = 0; i < nn && !rc; i++) {
            char sp[1024];
            snprintf(sp, sizeof sp, "%s/%s", dir, names[i]);
            rc = st_open(&k->f[i], sp, err, errlen);
            if (!rc) k->n++;
        }
    }
    free(names);
    cJSON_Delete(root);
    if (!rc) rc = ckpt_index(k, err, errlen);
    if (rc) ckpt_close(k);
    return rc;
}

static const st_tensor *ckpt_find(const ckpt *k, const char *name) {
    st_tensor key = {0};
    key.name = (char *)name;
    const st_tensor *kp = &key, *const *hit = k->idx ? bsearch(&kp, k->idx, (size_t)k->nidx, sizeof *k->idx, by_name) : NULL;
    return hit ? *hit : NULL;
}
static const st_tensor *ckpt_lookup(void *k, const char *name) { return ckpt_find(k, name); }

/* "[a, b, c]" */
static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

/* checks every planned tensor of the checkpoint: presence, shape, dtype */
static int check_tensors(const ckpt *k, const w_plan *p, const char *dir, char *err, size_t errlen) {
    for (int i = 0; i < p->n; i++) {
        const w_entry *e = &p->e[i];
        const st_tensor *t = ckpt_find(k, e->name);
        if (!t) return errbuf_fail(err, errlen, "%s: tensor '%s' is missing", dir, e->name);
        int same = t->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
        if (!same) {
            char a[96], b[96];
            return errbuf_fail(err, errlen, "%s: tensor '%s' has shape %s, the config needs %s", dir, e->name,
                               shape_str(a, sizeof a, t->ndim, t->shape), shape_str(b, sizeof b, e->ndim, e->shape));
        }
        if (t->dtype != ST_BF16 && t->dtype != ST_F16 && t->dtype != ST_F32)
            return errbuf_fail(err, errlen, "%s: tensor '%s' is %s (bf16, fp16 or fp32 only)", dir, e->name,
                        st_dtype_name(t->dtype));
    }
    return 0;
}

static int open_checked(ckpt *k, w_plan *p, const char *dir, const mc_config *c, int *has_bias, int *packed_out,
                        char *err, size_t errlen) {
    if (w_check_config(c, err, errlen) || ckpt_open(k, dir, err, errlen)) return -1;
    /* biases: the checkpoint says (Qwen2 has them, the others usually not) */
    *has_bias = ckpt_find(k, "model.layers.0.self_attn.q_proj.bias") != NULL;
    if (c->attn_bias && !*has_bias) {
        ckpt_close(k);
        return errbuf_fail(err, errlen, "%s: the config has attention biases but tensor "
                    "'model.layers.0.self_attn.q_proj.bias' is missing", dir);
    }
    /* experts: per expert (mlp.experts.E.gate_proj ...) or packed as transformers 5 keeps them */
    int packed = 0;
    for (int l = 0; l < c->num_layers && !packed; l++) {
        char name[112];
        snprintf(name, sizeof name, "model.layers.%d.mlp.experts.gate_up_proj", l);
        packed = mc_layer_is_moe(c, l) && ckpt_find(k, name) != NULL;
        if (mc_layer_is_moe(c, l)) break;
    }
    if (plan_build(p, c, *has_bias, packed, err, errlen)) { ckpt_close(k); return -1; }
    if (check_tensors(k, p, dir, err, errlen) ||
        (c->dtype == MC_DTYPE_AWQ4 && awq_check_tensors(ckpt_lookup, k, c, dir, err, errlen))) {
        plan_free(p);
        ckpt_close(k);
        return -1;
    }
    if (packed_out) *packed_out = packed;
    return 0;
}

int w_check_dir(const char *dir, const mc_config *c, int *has_bias, char *err, size_t errlen) {
    ckpt k;
    w_plan p = {0};
    if (open_checked(&k, &p, dir, c, has_bias, NULL, err, errlen)) return -1;
    plan_free(&p);
    ckpt_close(&k);
    return 0;
}

#ifdef PAGESIM_HAVE_CUDA
/* allocates the arena and points the pieces of *w into it */
static int arena_init(w_weights *w, const w_plan *p, const mc_config *c, int has_bias, char *err,
                      size_t errlen) {
    memset(w, 0, sizeof *w);
    w->bytes = p->elems * 2 + (c->dtype == MC_DTYPE_AWQ4 ? awq_arena_bytes(c) : 0);
    cudaError_t ce = cudaMalloc(&w->arena, w->bytes);
    if (ce != cudaSuccess) {
        w->arena = NULL;
        return errbuf_fail(err, errlen, "%s: cannot allocate %.2f GiB of GPU memory for the weights: %s", c->name,
                    w->bytes / 1073741824.0, cudaGetErrorString(ce));
    }
    k_bf16 *b = w->arena;
    w->layers = calloc((size_t)c->num_layers, sizeof *w->layers);
    if (!w->layers) { w_free(w); return errbuf_fail(err, errlen, "out of memory"); }
    w->num_layers = c->num_layers;
    w->has_bias = has_bias;
    w->has_qk_norm = c->qk_norm;
    w->embed = b + p->embed;
    w->lm_head = b + p->lm_head;
    w->final_norm = b + p->final_norm;
    for (int i = 0; i < c->num_layers; i++) {
        const size_t *o = p->layer + (size_t)i * O_N;
        w_layer *l = &w->layers[i];
        l->attn_norm = b + o[O_ATTN_NORM];
        l->wqkv = b + o[O_QKV];
        l->bqkv = has_bias ? b + o[O_BQKV] : NULL;
        l->q_norm = c->qk_norm ? b + o[O_QNORM] : NULL;
        l->k_norm = c->qk_norm ? b + o[O_KNORM] : NULL;
        l->wo = b + o[O_WO];
        l->mlp_norm = b + o[O_MLP_NORM];
        l->router = mc_layer_is_moe(c, i) ? b + o[O_ROUTER] : NULL;
        l->w_gate_up = b + o[O_GATE_UP];
        l->w_down = b + o[O_DOWN];
        if (c->dtype == MC_DTYPE_AWQ4) l->wqkv = l->wo = l->w_gate_up = l->w_down = NULL;
    }
    if (c->dtype == MC_DTYPE_AWQ4 && awq_attach(w, c, b + p->elems, err, errlen)) { w_free(w); return -1; }
    return 0;
}

/* elements of a planned tensor */
static size_t entry_elems(const w_entry *e) {
    size_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
    return n;
}

/* The arena plan of a rank: the same tensors in the same order as the
 * checkpoint's plan, at the shard's shapes (tp_rank_config). */
static int shard_plan(w_plan *pr, mc_config *rcfg, const w_plan *p, const mc_config *c, const tp_plan *tp,
                      int has_bias, int packed, char *err, size_t errlen) {
    tp_rank_config(tp, c, rcfg);
    if (plan_build(pr, rcfg, has_bias, packed, err, errlen)) return -1;
    if (pr->n != p->n) {
        plan_free(pr);
        return errbuf_fail(err, errlen, "%s: the tensor-parallel plan has %d tensors, the checkpoint's %d", c->name,
                           pr->n, p->n);
    }
    return 0;
}

int w_load(w_weights *w, const char *dir, const mc_config *c, char *err, size_t errlen) {
    return w_load_shard(w, dir, c, NULL, err, errlen);
}

int w_load_shard(w_weights *w, const char *dir, const mc_config *c, const tp_plan *tp, char *err, size_t errlen) {
    ckpt k;
    w_plan p = {0}, pr = {0};
    mc_config rcfg = *c;
    int has_bias, packed, rc = -1;
    memset(w, 0, sizeof *w);
    if (tp && c->dtype == MC_DTYPE_AWQ4)
        return errbuf_fail(err, errlen, "%s: AWQ checkpoints do not run with tensor parallelism", c->name);
    /* the checkpoint is checked at the whole model's shapes, then each rank reads its slices */
    if (open_checked(&k, &p, dir, c, &has_bias, &packed, err, errlen)) return -1;
    if (tp && shard_plan(&pr, &rcfg, &p, c, tp, has_bias, packed, err, errlen)) goto out;
    const w_plan *dst = tp ? &pr : &p;
    if (arena_init(w, dst, &rcfg, has_bias, err, errlen)) goto out;
    size_t cap = 0;
    uint16_t *stage = NULL;                      /* one tensor (or one shard of it): no full copy in host memory */
    for (int i = 0; i < p.n; i++) {
        const st_tensor *t = ckpt_find(&k, p.e[i].name);
        size_t n = entry_elems(&dst->e[i]);
        if (n > cap) {
            free(stage);
            cap = n;
            stage = malloc(cap * 2);
            if (!stage) { errbuf_fail(err, errlen, "out of memory staging '%s'", t->name); goto out_stage; }
        }
        if (tp) {
            tp_slice s;
            if (tp_shard_tensor(tp, t->name, t->ndim, t->shape, &s, err, errlen)) goto out_stage;
            if ((size_t)(s.outer * s.nr * s.nc) != n) {
                errbuf_fail(err, errlen, "%s: tensor-parallel rank %d's slice of '%s' has %lld elements, its place "
                            "in the arena %zu", dir, tp->rank, t->name, (long long)(s.outer * s.nr * s.nc), n);
                goto out_stage;
            }
            if (tp_slice_read(t, &s, stage, err, errlen)) goto out_stage;
        } else if (st_to_bf16(t, stage, err, errlen)) goto out_stage;
        cudaError_t ce = cudaMemcpy((k_bf16 *)w->arena + dst->e[i].off, stage, n * 2, cudaMemcpyHostToDevice);
        if (ce != cudaSuccess) {
            errbuf_fail(err, errlen, "%s: copying '%s' to the GPU: %s", dir, t->name, cudaGetErrorString(ce));
            goto out_stage;
        }
    }
    if (c->dtype == MC_DTYPE_AWQ4 && awq_load(w, ckpt_lookup, &k, c, dir, err, errlen)) goto out_stage;
    rc = 0;
out_stage:
    free(stage);
out:
    if (rc) w_free(w);
    plan_free(&pr);
    plan_free(&p);
    ckpt_close(&k);
    return rc;
}

int w_dummy(w_weights *w, const mc_config *c, uint64_t seed, char *err, size_t errlen) {
    return w_dummy_shard(w, c, NULL, seed, err, errlen);
}

int w_dummy_shard(w_weights *w, const mc_config *c, const tp_plan *tp, uint64_t seed, char *err, size_t errlen) {
    w_plan p = {0};
    mc_config rcfg = *c;
    memset(w, 0, sizeof *w);
    if (w_check_config(c, err, errlen)) return -1;
    if (tp && c->dtype == MC_DTYPE_AWQ4)
        return errbuf_fail(err, errlen, "%s: AWQ weights do not run with tensor parallelism", c->name);
    if (tp) tp_rank_config(tp, c, &rcfg);          /* the shard's shapes, filled as one GPU's would be */
    if (plan_build(&p, &rcfg, c->attn_bias, 0, err, errlen)) return -1;
    int rc = arena_init(w, &p, &rcfg, c->attn_bias, err, errlen);
    /* uniform(-a, a) has std a/sqrt(3): a = 0.02*sqrt(3) as transformers' init */
    if (!rc) rc = k_fill_random(w->arena, (int64_t)p.elems, seed, 0.0346f, 0);
    for (int i = 0; i < p.n && !rc; i++) {
        const w_entry *e = &p.e[i];
        if (e->kind == E_NORM) rc = k_fill_const((k_bf16 *)w->arena + e->off, e->shape[0], 1.0f, 0);
        /* routers: row r of std (2 / sqrt(D)) (1 + 0.3 u_r), see weights.h */
        for (int64_t r = 0; e->kind == E_ROUTER && r < e->shape[0] && !rc; r++) {
            uint64_t rs = rng_mix64(seed ^ rng_mix64((uint64_t)i << 20 | (uint64_t)r));
            float u = 2.0f * kref_uniform(rs, 1, 0) - 1.0f;
            float std = 2.0f / sqrtf((float)e->shape[1]) * (1.0f + 0.3f * u);
            rc = k_fill_random((k_bf16 *)w->arena + e->off + (size_t)(r * e->shape[1]), e->shape[1], rs,
                               std * 1.7320508f, 0);
        }
    }
    int said = 0;                                  /* awq_dummy names its own failure */
    if (!rc && c->dtype == MC_DTYPE_AWQ4) said = rc = awq_dummy(w, c, seed, err, errlen);
    if (!rc && cudaDeviceSynchronize() != cudaSuccess) rc = -1;
    if (rc) {
        if (w->arena && !said) errbuf_fail(err, errlen, "%s: filling dummy weights failed", c->name);
        w_free(w);
    }
    plan_free(&p);
    return rc;
}

void w_free(w_weights *w) {
    if (w->arena) cudaFree(w->arena);
    free(w->awq);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
#else
int w_load(w_weights *w, const char *dir, const mc_config *c, char *err, size_t errlen) {
    return w_load_shard(w, dir, c, NULL, err, errlen);
}
int w_load_shard(w_weights *w, const char *dir, const mc_config *c, const tp_plan *tp, char *err, size_t errlen) {
    (void)dir; (void)c; (void)tp;
    memset(w, 0, sizeof *w);
    return errbuf_fail(err, errlen, "engine built without CUDA (no nvcc)");
}
int w_dummy(w_weights *w, const mc_config *c, uint64_t seed, char *err, size_t errlen) {
    return w_dummy_shard(w, c, NULL, seed, err, errlen);
}
int w_dummy_shard(w_weights *w, const mc_config *c, const tp_plan *tp, uint64_t seed, char *err, size_t errlen) {
    (void)c; (void)tp; (void)seed;
    memset(w, 0, sizeof *w);
    return errbuf_fail(err, errlen, "engine built without CUDA (no nvcc)");
}
void w_free(w_weights *w) { free(w->awq); free(w->layers); memset(w, 0, sizeof *w); }
#endif
