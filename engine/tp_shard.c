/* tp_shard: see tp_shard.h.  The plan is arithmetic on an mc_config; the
 * slices are chosen from the tensors' Hugging Face names (a name without a
 * rule is an error, never silently replicated).  Touches no file but the
 * mapped tensors tp_slice_read is given. */
#include "engine/tp_shard.h"
#include "base/errbuf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tp_plan_init(tp_plan *p, const mc_config *c, int size, int rank, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    int nq = c->num_heads, nkv = c->num_kv_heads;
    if (size < 1 || size > 1024 || rank < 0 || rank >= size)
        return errbuf_fail(err, errlen, "tensor-parallel rank %d of %d", rank, size);
    if (nq <= 0 || nkv <= 0 || nq % nkv)
        return errbuf_fail(err, errlen, "%s: %d attention heads over %d KV heads", c->name, nq, nkv);
    if (nq % size)
        return errbuf_fail(err, errlen, "%s: its %d attention heads do not split over tensor-parallel size %d "
                           "(the size must divide them)", c->name, nq, size);
    if (nkv % size && size % nkv)
        return errbuf_fail(err, errlen, "%s: its %d KV heads and tensor-parallel size %d: one must divide the "
                           "other (KV heads are split, or replicated when fewer than the ranks)", c->name, nkv, size);
    int moe = c->num_experts > 0;
    if (!moe && c->intermediate_size % size)
        return errbuf_fail(err, errlen, "%s: intermediate_size %d does not split over tensor-parallel size %d",
                           c->name, c->intermediate_size, size);
    if (moe && (c->moe_intermediate_size % size || c->shared_expert_intermediate_size % size))
        return errbuf_fail(err, errlen, "%s: expert width %d (shared %d) does not split over tensor-parallel "
                           "size %d", c->name, c->moe_intermediate_size, c->shared_expert_intermediate_size, size);
    p->size = size;
    p->rank = rank;
    p->head_dim = c->head_dim;
    p->nq_total = nq;
    p->nkv_total = nkv;
    p->nq = nq / size;
    p->q0 = rank * p->nq;
    if (nkv >= size) {
        p->kv_replicas = 1;
        p->nkv = nkv / size;
        p->kv0 = rank * p->nkv;
    } else {                                /* vLLM: num_kv_head_replicas = N / kv_heads */
        p->kv_replicas = size / nkv;
        p->nkv = 1;
        p->kv0 = rank / p->kv_replicas;
    }
    /* the query heads here must read exactly the KV heads here */
    int group = nq / nkv;
    if (p->q0 / group != p->kv0 || (p->q0 + p->nq - 1) / group != p->kv0 + p->nkv - 1)
        return errbuf_fail(err, errlen, "%s: rank %d's query heads [%d, %d) do not map onto its KV heads [%d, %d)",
                           c->name, rank, p->q0, p->q0 + p->nq, p->kv0, p->kv0 + p->nkv);
    /* a MoE model's dense width (its mlp_only layers) splits when it can; a
     * dense tensor that does not split is refused when it is loaded */
    p->inter = c->intermediate_size % size == 0 ? c->intermediate_size / size : 0;
    p->moe_inter = moe ? c->moe_intermediate_size / size : 0;
    p->shared_inter = moe ? c->shared_expert_intermediate_size / size : 0;
    p->vocab = c->vocab_size;
    if (size == 1) {
        p->vocab_rows = c->vocab_size;      /* one GPU: exactly the engine without tensor parallelism */
    } else {
        int padded = (c->vocab_size + TP_VOCAB_PAD - 1) / TP_VOCAB_PAD * TP_VOCAB_PAD;
        p->vocab_rows = (padded + size - 1) / size;
    }
    p->vocab0 = rank * p->vocab_rows;
    p->vocab_padded = size * p->vocab_rows;
    return 0;
}

void tp_rank_config(const tp_plan *p, const mc_config *c, mc_config *out) {
    *out = *c;
    out->num_heads = p->nq;
    out->num_kv_heads = p->nkv;
    if (p->inter) out->intermediate_size = p->inter;
    out->moe_intermediate_size = p->moe_inter;
    out->shared_expert_intermediate_size = p->shared_inter;
    out->vocab_size = p->vocab_rows;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* rows [r0, r0 + nr) of a (rows, cols) tensor */
static void by_rows(tp_slice *s, tp_split k, int64_t r0, int64_t nr) {
    s->split = k;
    s->r0 = r0;
    s->nr = nr;
    s->c0 = 0;
    s->nc = s->cols;
}

int tp_shard_tensor(const tp_plan *p, const char *name, int ndim, const int64_t *shape, tp_slice *s,
                    char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (ndim < 1 || ndim > 3 || shape[0] <= 0 || (ndim >= 2 && shape[1] <= 0) || (ndim == 3 && shape[2] <= 0))
        return errbuf_fail(err, errlen, "tensor '%s': %d dimensions (1 to 3 expected)", name, ndim);
    s->ndim = ndim;
    for (int i = 0; i < ndim; i++) s->shape[i] = shape[i];
    s->outer = 1;
    s->rows = shape[0];
    s->cols = ndim == 2 ? shape[1] : 1;
    int64_t hd = p->head_dim, N = p->size;
    int64_t want_rows = -1, want_cols = -1;   /* the plan's idea of the full shape (-1: any) */
    if (ndim == 3) {                          /* packed experts: (E, 2I, D) gate|up, (E, D, I) down */
        int gu = ends_with(name, "experts.gate_up_proj"), dn = ends_with(name, "experts.down_proj");
        if ((!gu && !dn) || (gu && shape[1] % (2 * N)) || (dn && shape[2] % N))
            return errbuf_fail(err, errlen, "tensor '%s' [%lld, %lld, %lld]: no tensor-parallel rule for it at size "
                               "%lld", name, (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)N);
        s->outer = gu ? 2 * shape[0] : shape[0];
        s->rows = gu ? shape[1] / 2 : shape[1];
        s->cols = shape[2];
        if (gu) {
            by_rows(s, TP_COLUMN, p->rank * (s->rows / N), s->rows / N);
        } else {
            by_rows(s, TP_ROW, 0, s->rows);
            s->c0 = p->rank * (s->cols / N);
            s->nc = s->cols / N;
        }
        return 0;
    }
    if (ends_with(name, "self_attn.q_proj.weight") || ends_with(name, "self_attn.q_proj.bias")) {
        by_rows(s, TP_COLUMN, p->q0 * hd, p->nq * hd);
        want_rows = (int64_t)p->nq_total * hd;
    } else if (ends_with(name, "self_attn.k_proj.weight") || ends_with(name, "self_attn.k_proj.bias") ||
               ends_with(name, "self_attn.v_proj.weight") || ends_with(name, "self_attn.v_proj.bias")) {
        by_rows(s, TP_COLUMN, p->kv0 * hd, p->nkv * hd);
        want_rows = (int64_t)p->nkv_total * hd;
    } else if (ends_with(name, "self_attn.o_proj.weight")) {
        if (ndim != 2) return errbuf_fail(err, errlen, "tensor '%s': a matrix expected", name);
        by_rows(s, TP_ROW, 0, s->rows);
        s->c0 = p->q0 * hd;
        s->nc = p->nq * hd;
        want_cols = (int64_t)p->nq_total * hd;
    } else if (ends_with(name, "gate_proj.weight") || ends_with(name, "up_proj.weight") ||
               ends_with(name, ".w1.weight") || ends_with(name, ".w3.weight")) {
        if (s->rows % N) return errbuf_fail(err, errlen, "tensor '%s': %lld rows do not split over %lld ranks",
                                            name, (long long)s->rows, (long long)N);
        by_rows(s, TP_COLUMN, p->rank * (s->rows / N), s->rows / N);
    } else if (ends_with(name, "down_proj.weight") || ends_with(name, ".w2.weight")) {
        if (ndim != 2 || s->cols % N)
            return errbuf_fail(err, errlen, "tensor '%s': %lld columns do not split over %lld ranks", name,
                               (long long)s->cols, (long long)N);
        by_rows(s, TP_ROW, 0, s->rows);
        s->c0 = p->rank * (s->cols / N);
        s->nc = s->cols / N;
    } else if (ends_with(name, "embed_tokens.weight") || ends_with(name, "lm_head.weight")) {
        by_rows(s, TP_VOCAB, p->vocab0, p->vocab_rows);
        want_rows = p->vocab;
    } else if (ends_with(name, "norm.weight") || ends_with(name, "mlp.gate.weight") ||
               ends_with(name, "block_sparse_moe.gate.weight") || ends_with(name, "shared_expert_gate.weight")) {
        by_rows(s, TP_REPLICATED, 0, s->rows);    /* norms, routers: every rank holds all of it */
    } else {
        return errbuf_fail(err, errlen, "tensor '%s': no tensor-parallel rule for this name", name);
    }
    if ((want_rows >= 0 && s->rows != want_rows) || (want_cols >= 0 && s->cols != want_cols))
        return errbuf_fail(err, errlen, "tensor '%s': shape [%lld, %lld], the plan of %d heads of %d needs %lld %s",
                           name, (long long)s->rows, (long long)s->cols, p->nq_total, p->head_dim,
                           (long long)(want_rows >= 0 ? want_rows : want_cols), want_rows >= 0 ? "rows" : "columns");
    return 0;
}

/* rows of the slice that lie in the tensor (the rest is padding) */
static int64_t real_rows(const tp_slice *s) {
    int64_t end = s->r0 + s->nr < s->rows ? s->r0 + s->nr : s->rows;
    return end > s->r0 ? end - s->r0 : 0;
}

/* ranges of one outer block: whole rows are one range, else one per row */
static int64_t per_outer(const tp_slice *s) {
    int64_t n = real_rows(s);
    return n == 0 ? 0 : s->nc == s->cols ? 1 : n;
}

int64_t tp_slice_nranges(const tp_slice *s) { return s->outer * per_outer(s); }

void tp_slice_range(const tp_slice *s, int64_t i, int elem_bytes, uint64_t *off, uint64_t *len) {
    int64_t per = per_outer(s), o = i / per, j = i % per, base = o * s->rows * s->cols;
    if (s->nc == s->cols) {
        *off = (uint64_t)(base + s->r0 * s->cols) * (uint64_t)elem_bytes;
        *len = (uint64_t)(real_rows(s) * s->cols) * (uint64_t)elem_bytes;
    } else {
        *off = (uint64_t)(base + (s->r0 + j) * s->cols + s->c0) * (uint64_t)elem_bytes;
        *len = (uint64_t)s->nc * (uint64_t)elem_bytes;
    }
}

int tp_slice_read(const st_tensor *t, const tp_slice *s, uint16_t *out, char *err, size_t errlen) {
    int same = t->ndim == s->ndim;
    for (int i = 0; same && i < s->ndim; i++) same = t->shape[i] == s->shape[i];
    if (!same)
        return errbuf_fail(err, errlen, "tensor '%s': its shape is not the one the slice was planned for", t->name);
    int64_t n = tp_slice_nranges(s), eb = st_dtype_size(t->dtype), done = 0, block = s->nr * s->nc;
    for (int64_t i = 0; i < n; i++) {
        uint64_t off, len;
        tp_slice_range(s, i, (int)eb, &off, &len);
        if (st_range_to_bf16(t, (int64_t)(off / (uint64_t)eb), (int64_t)(len / (uint64_t)eb), out + done, err, errlen))
            return -1;
        done += (int64_t)(len / (uint64_t)eb);
        if (done % block && (i + 1) % per_outer(s) == 0) {      /* vocabulary padding at the block's end */
            int64_t pad = block - done % block;
            memset(out + done, 0, (size_t)pad * 2);
            done += pad;
        }
    }
    memset(out + done, 0, (size_t)(s->outer * block - done) * 2);   /* padding (or a block of padding only) */
    return 0;
}

/* ---- the checkpoint's tensors (Hugging Face names, checkpoint order) ---- */
typedef struct lister { tp_tensor_fn fn; void *ctx; int rc; } lister;

static void put(lister *l, int64_t d0, int64_t d1, const char *fmt, int a, int b) {
    if (l->rc) return;
    char name[160];
    int64_t shape[2] = {d0, d1};
    snprintf(name, sizeof name, fmt, a, b);
    l->rc = l->fn(l->ctx, name, d1 ? 2 : 1, shape);
}

int tp_tensors(const mc_config *c, int has_bias, tp_tensor_fn fn, void *ctx, char *err, size_t errlen) {
    if (c->arch != MC_ARCH_LLAMA && c->arch != MC_ARCH_MISTRAL && c->arch != MC_ARCH_QWEN2 &&
        c->arch != MC_ARCH_QWEN3 && c->arch != MC_ARCH_QWEN3_MOE)
        return errbuf_fail(err, errlen, "%s: no tensor list for model_type '%s'", c->name, c->model_type);
    lister l = {fn, ctx, 0};
    int64_t D = c->hidden_size, hd = c->head_dim, q = (int64_t)c->num_heads * hd, kv = (int64_t)c->num_kv_heads * hd;
    int64_t V = c->vocab_size, E = c->num_experts, M = c->moe_intermediate_size;
    const char *L = "model.layers.%d.";
    char f[160];
#define PUT(d0, d1, suffix, b) (snprintf(f, sizeof f, "%s%s", L, suffix), put(&l, d0, d1, f, i, b))
    put(&l, V, D, "model.embed_tokens.weight", 0, 0);
    for (int i = 0; i < c->num_layers && !l.rc; i++) {
        PUT(D, 0, "input_layernorm.weight", 0);
        PUT(q, D, "self_attn.q_proj.weight", 0);
        PUT(kv, D, "self_attn.k_proj.weight", 0);
        PUT(kv, D, "self_attn.v_proj.weight", 0);
        if (has_bias) {
            PUT(q, 0, "self_attn.q_proj.bias", 0);
            PUT(kv, 0, "self_attn.k_proj.bias", 0);
            PUT(kv, 0, "self_attn.v_proj.bias", 0);
        }
        if (c->qk_norm) {
            PUT(hd, 0, "self_attn.q_norm.weight", 0);
            PUT(hd, 0, "self_attn.k_norm.weight", 0);
        }
        PUT(D, q, "self_attn.o_proj.weight", 0);
        PUT(D, 0, "post_attention_layernorm.weight", 0);
        if (mc_layer_is_moe(c, i)) {          /* a MoE model's mlp_only layers are dense */
            PUT(E, D, "mlp.gate.weight", 0);
            for (int e = 0; e < E && !l.rc; e++) {
                PUT(M, D, "mlp.experts.%d.gate_proj.weight", e);
                PUT(M, D, "mlp.experts.%d.up_proj.weight", e);
                PUT(D, M, "mlp.experts.%d.down_proj.weight", e);
            }
        } else {
            PUT(c->intermediate_size, D, "mlp.gate_proj.weight", 0);
            PUT(c->intermediate_size, D, "mlp.up_proj.weight", 0);
            PUT(D, c->intermediate_size, "mlp.down_proj.weight", 0);
        }
    }
#undef PUT
    put(&l, D, 0, "model.norm.weight", 0, 0);
    if (!c->tie_embeddings) put(&l, V, D, "lm_head.weight", 0, 0);
    return l.rc;
}

typedef struct counter { const tp_plan *p; int64_t bytes; char *err; size_t errlen; } counter;

static int count_one(void *ctx, const char *name, int ndim, const int64_t *shape) {
    counter *k = ctx;
    tp_slice s;
    if (tp_shard_tensor(k->p, name, ndim, shape, &s, k->err, k->errlen)) return -1;
    k->bytes += s.outer * s.nr * s.nc * 2;
    return 0;
}

int64_t tp_weight_bytes(const tp_plan *p, const mc_config *c, int has_bias, char *err, size_t errlen) {
    counter k = {p, 0, err, errlen};
    if (tp_tensors(c, has_bias, count_one, &k, err, errlen)) return -1;
    return k.bytes;
}

int64_t tp_kv_bytes_per_token(const tp_plan *p, const mc_config *c) {
    return 2LL * c->num_layers * p->nkv * p->head_dim * 2;
}

void tp_vocab_local_ids(const tp_plan *p, const int32_t *ids, int T, int32_t *out) {
    int64_t end = (int64_t)p->vocab0 + p->vocab_rows;
    if (end > p->vocab) end = p->vocab;
    for (int t = 0; t < T; t++) out[t] = ids[t] >= p->vocab0 && ids[t] < end ? ids[t] - p->vocab0 : -1;
}
