/* weights: see weights.h.  One plan (the list of tensors a config needs, each
 * with its expected shape and its place in the arena) drives checking,
 * loading and dummy filling alike.  Reads the checkpoint files it is given;
 * allocates one device arena. */
#include "engine/weights.h"
#include "engine/safetensors.h"
#include "base/errbuf.h"
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

enum { E_MATRIX, E_NORM, E_BIAS };
typedef struct w_entry {
    char    name[112];
    int     ndim;
    int64_t shape[2];
    size_t  off;             /* element offset in the arena */
    int     kind;
} w_entry;

typedef struct w_plan {
    w_entry *e;              /* (n,) */
    int      n;
    size_t   elems;          /* arena size in elements */
    /* element offsets of the pieces of w_weights */
    size_t   embed, lm_head, final_norm;
    size_t  *layer;          /* (L, 9): attn_norm wqkv bqkv q_norm k_norm wo mlp_norm gate_up down */
} w_plan;

int w_check_config(const mc_config *c, char *err, size_t errlen) {
    if (mc_validate(c, err, errlen)) return -1;
    if (c->arch != MC_ARCH_LLAMA && c->arch != MC_ARCH_MISTRAL && c->arch != MC_ARCH_QWEN2 &&
        c->arch != MC_ARCH_QWEN3)
        return errbuf_fail(err, errlen, "%s: model_type '%s' is not supported by the engine "
                    "(llama, mistral, qwen2, qwen3 dense)", c->name, c->model_type);
    if (c->num_experts > 0) return errbuf_fail(err, errlen, "%s: mixture-of-experts models are not supported", c->name);
    if (c->head_dim != 64 && c->head_dim != 128 && c->head_dim != 256)
        return errbuf_fail(err, errlen, "%s: head_dim %d (the attention kernels take 64, 128 or 256)", c->name, c->head_dim);
    if (c->num_kv_heads <= 0 || c->num_heads % c->num_kv_heads || c->num_heads / c->num_kv_heads > 16)
        return errbuf_fail(err, errlen, "%s: %d heads over %d kv heads (need a divisor, group <= 16)", c->name,
                    c->num_heads, c->num_kv_heads);
    if (c->rope_kind != MC_ROPE_NONE && c->rope_kind != MC_ROPE_LINEAR && c->rope_kind != MC_ROPE_LLAMA3)
        return errbuf_fail(err, errlen, "%s: rope scaling kind %d is not supported (none, linear, llama3)", c->name,
                    (int)c->rope_kind);
    if (c->num_layers > 1024 || c->hidden_size > 65536 || c->vocab_size > (1 << 22) ||
        c->intermediate_size > (1 << 20) || c->num_heads > 1024)
        return errbuf_fail(err, errlen, "%s: sizes out of range (layers %d, hidden %d, vocab %d, intermediate %d)",
                    c->name, c->num_layers, c->hidden_size, c->vocab_size, c->intermediate_size);
    if (!(c->rms_eps > 0 && c->rms_eps < 1) || !(c->rope_theta > 0))
        return errbuf_fail(err, errlen, "%s: rms_norm_eps %g or rope_theta %g out of range", c->name, c->rms_eps,
                    c->rope_theta);
    return 0;
}

static void add(w_plan *p, int kind, size_t off, int64_t d0, int64_t d1, const char *fmt, int i) {
    w_entry *e = &p->e[p->n++];
    snprintf(e->name, sizeof e->name, fmt, i);
    e->kind = kind;
    e->off = off;
    e->ndim = d1 ? 2 : 1;
    e->shape[0] = d0;
    e->shape[1] = d1;
}
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

static int plan_build(w_plan *p, const mc_config *c, int has_bias, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    int L = c->num_layers;
    int64_t D = c->hidden_size, hd = c->head_dim, nq = c->num_heads, nkv = c->num_kv_heads;
    int64_t I = c->intermediate_size, V = c->vocab_size;
    p->e = calloc((size_t)L * 16 + 4, sizeof *p->e);
    p->layer = calloc((size_t)L * 9, sizeof *p->layer);
    if (!p->e || !p->layer) { plan_free(p); return errbuf_fail(err, errlen, "out of memory"); }
    p->embed = take(p, (size_t)(V * D));
    add(p, E_MATRIX, p->embed, V, D, "model.embed_tokens.weight", 0);
    for (int i = 0; i < L; i++) {
        size_t *o = p->layer + (size_t)i * 9;
        o[0] = take(p, (size_t)D);
        add(p, E_NORM, o[0], D, 0, "model.layers.%d.input_layernorm.weight", i);
        o[1] = take(p, (size_t)((nq + 2 * nkv) * hd * D));
        add(p, E_MATRIX, o[1], nq * hd, D, "model.layers.%d.self_attn.q_proj.weight", i);
        add(p, E_MATRIX, o[1] + nq * hd * D, nkv * hd, D, "model.layers.%d.self_attn.k_proj.weight", i);
        add(p, E_MATRIX, o[1] + (nq + nkv) * hd * D, nkv * hd, D, "model.layers.%d.self_attn.v_proj.weight", i);
        if (has_bias) {
            o[2] = take(p, (size_t)((nq + 2 * nkv) * hd));
            add(p, E_BIAS, o[2], nq * hd, 0, "model.layers.%d.self_attn.q_proj.bias", i);
            add(p, E_BIAS, o[2] + nq * hd, nkv * hd, 0, "model.layers.%d.self_attn.k_proj.bias", i);
            add(p, E_BIAS, o[2] + (nq + nkv) * hd, nkv * hd, 0, "model.layers.%d.self_attn.v_proj.bias", i);
        }
        if (c->qk_norm) {
            o[3] = take(p, (size_t)hd);
            add(p, E_NORM, o[3], hd, 0, "model.layers.%d.self_attn.q_norm.weight", i);
            o[4] = take(p, (size_t)hd);
            add(p, E_NORM, o[4], hd, 0, "model.layers.%d.self_attn.k_norm.weight", i);
        }
        o[5] = take(p, (size_t)(D * nq * hd));
        add(p, E_MATRIX, o[5], D, nq * hd, "model.layers.%d.self_attn.o_proj.weight", i);
        o[6] = take(p, (size_t)D);
        add(p, E_NORM, o[6], D, 0, "model.layers.%d.post_attention_layernorm.weight", i);
        o[7] = take(p, (size_t)(2 * I * D));
        add(p, E_MATRIX, o[7], I, D, "model.layers.%d.mlp.gate_proj.weight", i);
        add(p, E_MATRIX, o[7] + I * D, I, D, "model.layers.%d.mlp.up_proj.weight", i);
        o[8] = take(p, (size_t)(D * I));
        add(p, E_MATRIX, o[8], D, I, "model.layers.%d.mlp.down_proj.weight", i);
    }
    p->final_norm = take(p, (size_t)D);
    add(p, E_NORM, p->final_norm, D, 0, "model.norm.weight", 0);
    p->lm_head = p->embed;
    if (!c->tie_embeddings) {
        p->lm_head = take(p, (size_t)(V * D));
        add(p, E_MATRIX, p->lm_head, V, D, "lm_head.weight", 0);
    }
    return 0;
}

size_t w_bytes(const mc_config *c, int has_bias) {
    w_plan p;
    char err[64];
    if (plan_build(&p, c, has_bias, err, sizeof err)) return 0;
    size_t b = p.elems * 2;
    plan_free(&p);
    return b;
}

/* ---- the checkpoint: one file or the shards of an index ---- */
typedef struct ckpt { st_file *f; int n; } ckpt;

static void ckpt_close(ckpt *k) {
    for (int i = 0; i < k->n; i++) st_close(&k->f[i]);
    free(k->f);
    memset(k, 0, sizeof *k);
}

static char *read_text(const char *path, size_t max) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max, fp) : 0;
    fclose(fp);
    if (!buf) return NULL;
    buf[n] = 0;
    return buf;
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
        return 0;
    }
    char *text = read_text(path, 64u << 20);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
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
    if (rc) ckpt_close(k);
    return rc;
}

static const st_tensor *ckpt_find(const ckpt *k, const char *name) {
    for (int i = 0; i < k->n; i++) {
        const st_tensor *t = st_find(&k->f[i], name);
        if (t) return t;
    }
    return NULL;
}

/* checks every planned tensor of the checkpoint: presence, shape, dtype */
static int check_tensors(const ckpt *k, const w_plan *p, const char *dir, char *err, size_t errlen) {
    for (int i = 0; i < p->n; i++) {
        const w_entry *e = &p->e[i];
        const st_tensor *t = ckpt_find(k, e->name);
        if (!t) return errbuf_fail(err, errlen, "%s: tensor '%s' is missing", dir, e->name);
        if (t->ndim != e->ndim || t->shape[0] != e->shape[0] || (e->ndim == 2 && t->shape[1] != e->shape[1]))
            return errbuf_fail(err, errlen, "%s: tensor '%s' has shape [%lld%s%lld], the config needs [%lld%s%lld]",
                        dir, e->name, (long long)t->shape[0], t->ndim > 1 ? ", " : "",
                        t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)e->shape[0],
                        e->ndim > 1 ? ", " : "", e->ndim > 1 ? (long long)e->shape[1] : 0LL);
        if (t->dtype != ST_BF16 && t->dtype != ST_F16 && t->dtype != ST_F32)
            return errbuf_fail(err, errlen, "%s: tensor '%s' is %s (bf16, fp16 or fp32 only)", dir, e->name,
                        st_dtype_name(t->dtype));
    }
    return 0;
}

static int open_checked(ckpt *k, w_plan *p, const char *dir, const mc_config *c, int *has_bias,
                        char *err, size_t errlen) {
    if (w_check_config(c, err, errlen) || ckpt_open(k, dir, err, errlen)) return -1;
    /* biases: the checkpoint says (Qwen2 has them, the others usually not) */
    *has_bias = ckpt_find(k, "model.layers.0.self_attn.q_proj.bias") != NULL;
    if (c->attn_bias && !*has_bias) {
        ckpt_close(k);
        return errbuf_fail(err, errlen, "%s: the config has attention biases but tensor "
                    "'model.layers.0.self_attn.q_proj.bias' is missing", dir);
    }
    if (plan_build(p, c, *has_bias, err, errlen)) { ckpt_close(k); return -1; }
    if (check_tensors(k, p, dir, err, errlen)) { plan_free(p); ckpt_close(k); return -1; }
    return 0;
}

int w_check_dir(const char *dir, const mc_config *c, int *has_bias, char *err, size_t errlen) {
    ckpt k;
    w_plan p;
    if (open_checked(&k, &p, dir, c, has_bias, err, errlen)) return -1;
    plan_free(&p);
    ckpt_close(&k);
    return 0;
}

#ifdef PAGESIM_HAVE_CUDA
/* allocates the arena and points the pieces of *w into it */
static int arena_init(w_weights *w, const w_plan *p, const mc_config *c, int has_bias, char *err,
                      size_t errlen) {
    memset(w, 0, sizeof *w);
    w->bytes = p->elems * 2;
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
        const size_t *o = p->layer + (size_t)i * 9;
        w_layer *l = &w->layers[i];
        l->attn_norm = b + o[0];
        l->wqkv = b + o[1];
        l->bqkv = has_bias ? b + o[2] : NULL;
        l->q_norm = c->qk_norm ? b + o[3] : NULL;
        l->k_norm = c->qk_norm ? b + o[4] : NULL;
        l->wo = b + o[5];
        l->mlp_norm = b + o[6];
        l->w_gate_up = b + o[7];
        l->w_down = b + o[8];
    }
    return 0;
}

int w_load(w_weights *w, const char *dir, const mc_config *c, char *err, size_t errlen) {
    ckpt k;
    w_plan p;
    int has_bias, rc = -1;
    memset(w, 0, sizeof *w);
    if (open_checked(&k, &p, dir, c, &has_bias, err, errlen)) return -1;
    if (arena_init(w, &p, c, has_bias, err, errlen)) goto out;
    size_t cap = 0;
    uint16_t *stage = NULL;
    for (int i = 0; i < p.n; i++) {
        const st_tensor *t = ckpt_find(&k, p.e[i].name);
        if ((size_t)t->numel > cap) {
            free(stage);
            cap = (size_t)t->numel;
            stage = malloc(cap * 2);
            if (!stage) { errbuf_fail(err, errlen, "out of memory staging '%s'", t->name); goto out_stage; }
        }
        if (st_to_bf16(t, stage, err, errlen)) goto out_stage;
        cudaError_t ce = cudaMemcpy((k_bf16 *)w->arena + p.e[i].off, stage, (size_t)t->numel * 2,
                                    cudaMemcpyHostToDevice);
        if (ce != cudaSuccess) {
            errbuf_fail(err, errlen, "%s: copying '%s' to the GPU: %s", dir, t->name, cudaGetErrorString(ce));
            goto out_stage;
        }
    }
    rc = 0;
out_stage:
    free(stage);
out:
    if (rc) w_free(w);
    plan_free(&p);
    ckpt_close(&k);
    return rc;
}

int w_dummy(w_weights *w, const mc_config *c, uint64_t seed, char *err, size_t errlen) {
    w_plan p;
    memset(w, 0, sizeof *w);
    if (w_check_config(c, err, errlen) || plan_build(&p, c, c->attn_bias, err, errlen)) return -1;
    int rc = arena_init(w, &p, c, c->attn_bias, err, errlen);
    /* uniform(-a, a) has std a/sqrt(3): a = 0.02*sqrt(3) as transformers' init */
    if (!rc) rc = k_fill_random(w->arena, (int64_t)p.elems, seed, 0.0346f, 0);
    for (int i = 0; i < p.n && !rc; i++)
        if (p.e[i].kind == E_NORM)
            rc = k_fill_const((k_bf16 *)w->arena + p.e[i].off, p.e[i].shape[0], 1.0f, 0);
    if (!rc && cudaDeviceSynchronize() != cudaSuccess) rc = -1;
    if (rc) {
        if (w->arena) errbuf_fail(err, errlen, "%s: filling dummy weights failed", c->name);
        w_free(w);
    }
    plan_free(&p);
    return rc;
}

void w_free(w_weights *w) {
    if (w->arena) cudaFree(w->arena);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
#else
int w_load(w_weights *w, const char *dir, const mc_config *c, char *err, size_t errlen) {
    (void)dir; (void)c;
    memset(w, 0, sizeof *w);
    return errbuf_fail(err, errlen, "engine built without CUDA (no nvcc)");
}
int w_dummy(w_weights *w, const mc_config *c, uint64_t seed, char *err, size_t errlen) {
    (void)c; (void)seed;
    memset(w, 0, sizeof *w);
    return errbuf_fail(err, errlen, "engine built without CUDA (no nvcc)");
}
void w_free(w_weights *w) { free(w->layers); memset(w, 0, sizeof *w); }
#endif
