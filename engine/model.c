/* model: see model.h.  The forward pass (model_forward) reads top to bottom
 * like llama2.c's forward; paging appears only in the slot mapping and the
 * block tables that the attention kernels read (attention.cu: kv_slot).
 * Tensor parallelism adds three all-reduces per layer's worth of places (after
 * the vocabulary-parallel embedding, the row-parallel o_proj and down_proj)
 * and the gather of the logits' vocabulary shards; rank 0 posts each step to
 * the other ranks before it runs it (engine/tp_worker.h).  A decode-only
 * step may instead replay the CUDA graph of its batch bucket
 * (engine/graph_runner.h: the same forward, captured once, and sampling);
 * swapped-out KV blocks go to a pinned host pool (engine/swap.h).
 * Owns the weights it is given, its activation buffers, the KV cache, the
 * graphs and the swap pool.  Over 600 lines because the forward, the memory
 * plan and the cache's copies share struct model, private to this file; the
 * graphs' and the swaps' own logic is in graph_runner.c and swap.c, and the
 * struct moves to a private header once the branches editing it are in. */
#include "engine/model.h"
#include "engine/model_probe.h"
#include "engine/awq_weights.h"
#include "engine/graph_runner.h"
#include "engine/mem_plan.h"
#include "engine/swap.h"
#include "engine/kernels_ref.h"
#include "engine/lora_rt.h"
#include "engine/tp_engine.h"
#include "engine/tp_worker.h"
#include "base/errbuf.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Activation buffers of model_create (bytes), without a GPU: what the memory
 * plan sets aside before the KV cache (see model.h). */
static size_t moe_rows(const mc_config *c, int T) { return c->num_experts > 0 ? (size_t)T * c->experts_per_tok : 0; }
static int has_dense_layer(const mc_config *c) {
    for (int l = 0; l < c->num_layers; l++) if (!mc_layer_is_moe(c, l)) return 1;
    return 0;
}
void model_resolve_opts(const mc_config *c, model_opts *o) {
    if (o->max_num_batched_tokens <= 0) o->max_num_batched_tokens = 2048;
    if (o->max_num_seqs <= 0) o->max_num_seqs = 256;
    if (o->max_model_len <= 0) o->max_model_len = c->max_position > 0 && c->max_position < 4096 ? c->max_position : 4096;
    if (o->block_size <= 0) o->block_size = 16;
    if (o->gpu_memory_utilization <= 0) o->gpu_memory_utilization = 0.9;
    if (o->max_logit_rows <= 0) o->max_logit_rows = o->max_num_seqs;
}

size_t model_activation_bytes(const mc_config *c, const model_opts *o) {
    size_t T = (size_t)(o->max_num_batched_tokens > 0 ? o->max_num_batched_tokens : 2048);
    size_t B = (size_t)(o->max_num_seqs > 0 ? o->max_num_seqs : 256);
    size_t R = (size_t)(o->max_logit_rows > 0 ? o->max_logit_rows : (int)B);
    size_t D = (size_t)c->hidden_size, hd = (size_t)c->head_dim, nq = (size_t)c->num_heads;
    size_t qkv = (nq + 2 * (size_t)c->num_kv_heads) * hd, I = (size_t)c->intermediate_size;
    size_t Im = (size_t)c->moe_intermediate_size, Tk = moe_rows(c, (int)T);
    size_t b = T * D * 2 * 2 + T * qkv * 2 + T * nq * hd * 2 + R * D * 2 + R * (size_t)c->vocab_size * 4;
    size_t act = has_dense_layer(c) ? T * I : 0;
    if (Tk * Im > act) act = Tk * Im;
    b += act * 2 + (has_dense_layer(c) ? T * 2 * I * 2 : 0);
    if (c->num_experts > 0)
        b += T * (size_t)c->num_experts * 2 + Tk * D * 2 +
             k_moe_bytes(c->num_experts, c->experts_per_tok, (int)T, (int)D, (int)Im, o->moe_gemm);
    if (c->dtype == MC_DTYPE_AWQ4)                 /* the dequantized linear of the prefill path */
        b += (T >= K_AWQ_SCRATCH_MIN_T ? awq_scratch_elems(c) * 2 : 0);
    return b;
}

#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <cublas_v2.h>

struct model {
    mc_config   c;
    model_opts  o;
    w_weights   w;
    cublasHandle_t blas;
    cudaStream_t   s;
    int D, nq, nkv, hd, qkv_dim, I, V, L, E, Im;   /* this rank's shapes (the whole model's on one GPU) */
    int Vr;                    /* vocabulary rows of this rank's embedding and lm_head (V on one GPU) */
    const tp_rank *tp;         /* tensor parallelism, or NULL */
    int leader;                /* rank 0 of tp: posts each step to the other ranks ... */
    int created;               /* ... once model_create is done (not its profile step) */
    int max_blocks;            /* per sequence: ceil(max_model_len / block_size) */
    float *inv_freq;           /* (hd/2,) RoPE frequencies with scaling */
    /* activations, sized for max_num_batched_tokens (T) and max_logit_rows (R); Tk = T k (MoE) */
    k_bf16 *x;                 /* (T, D) hidden state, then each sublayer's output */
    k_bf16 *res;               /* (T, D) residual stream */
    k_bf16 *qkv;               /* (T, (nq + 2 nkv) * hd) */
    k_bf16 *attn;              /* (T, nq * hd) */
    k_bf16 *gu;                /* (T, 2I) gate | up (dense layers) */
    k_bf16 *act;               /* (T, I) dense, (Tk, Im) MoE: SwiGLU output */
    k_bf16 *rlogits;           /* (T, E) router logits */
    k_bf16 *ey;                /* (Tk, D) the experts' outputs in expert order */
    k_moe   moe;               /* routing and permutation of the current MoE layer */
    k_bf16 *hrows;             /* (R, D) rows whose logits are wanted */
    float  *logits;            /* (R, V) (rank 0; a scrap on the other ranks) */
    float  *lshard;            /* (R, Vr) this rank's vocabulary columns; = logits on one GPU */
    float  *lstage;            /* ((N-1) R Vr) rank 0 with N > 1: the other ranks' columns */
    k_awq_work awq;            /* AWQ linears: the dequantize scratch (prefill) and split-K sums (decode) */
    float  *attn_ws;           /* decode attention split workspace */
    size_t  attn_ws_bytes;
    mprobe *probe;             /* profile and dumps (model_probe.h), or NULL */
    lora_rt *lora;             /* runtime LoRA (model_opts.lora), or NULL */
    mprobe_view view;          /* the current forward's buffers, for the probe */
    int32_t *dints, *hints;    /* device / pinned host: the batch's int arrays, packed */
    size_t   nints;
    cudaEvent_t staged;        /* recorded after each step's copies from pinned memory (hints, LoRA's):
                                * hints is rewritten only once the stream has passed it */
    k_sample_params *dparams;  /* (R,) */
    int32_t *dtokens;          /* (R,) */
    float   *dlogp;            /* (R,) */
    /* KV cache: one allocation; layer l's k at kv + 2l*per_layer, v right after */
    k_bf16 *kv;                /* (L, 2, num_blocks, block_size, nkv, hd) */
    size_t  kv_layer_elems;    /* num_blocks * block_size * nkv * hd */
    int     num_blocks;
    /* CUDA graphs of decode-only steps (graph_runner.h); graph_cap 0: eager */
    int     graph_cap;         /* the largest batch a graph takes */
    gr_runner *graphs;         /* or NULL */
    void   *blas_ws;           /* (BLAS_WS,) cuBLAS's workspace, fixed: the captured GEMMs keep using it */
    swap_pool *swap;           /* pinned host pool of swapped-out blocks (swap.h), or NULL */
};
#define BLAS_WS ((size_t)32 << 20)     /* cuBLAS's recommended workspace on Hopper */

const mc_config *model_config(const model *m) { return &m->c; }
const model_opts *model_options(const model *m) { return &m->o; }

static int dev_alloc(void **p, size_t bytes) { return cudaMalloc(p, bytes ? bytes : 16) == cudaSuccess ? 0 : -1; }

/* AWQ linears: split-K sums, and the scratch of the prefill path when a step may reach it */
static int alloc_awq(model *m) {
    m->awq.partial_elems = k_awq_partial_elems();
    m->awq.scratch_elems = m->o.max_num_batched_tokens >= K_AWQ_SCRATCH_MIN_T ? awq_scratch_elems(&m->c) : 0;
    return dev_alloc((void **)&m->awq.partial, m->awq.partial_elems * 4) ||
           (m->awq.scratch_elems && dev_alloc((void **)&m->awq.scratch, m->awq.scratch_elems * 2));
}

static int alloc_activations(model *m, char *err, size_t errlen) {
    size_t T = (size_t)m->o.max_num_batched_tokens, R = (size_t)m->o.max_logit_rows;
    size_t B = (size_t)m->o.max_num_seqs, Tk = moe_rows(&m->c, (int)T);
    int dense = has_dense_layer(&m->c);
    size_t act = dense ? T * m->I : 0;
    if (Tk * m->Im > act) act = Tk * m->Im;
    m->attn_ws_bytes = k_attention_workspace_bytes((int)B, m->nq, m->hd, m->o.max_model_len);
    m->nints = gr_staging_ints((int)T, (int)B, m->max_blocks, (int)R, m->graph_cap);   /* eager and graphs' layouts */
    if (dev_alloc((void **)&m->x, T * m->D * 2) || dev_alloc((void **)&m->res, T * m->D * 2) ||
        dev_alloc((void **)&m->qkv, T * m->qkv_dim * 2) || dev_alloc((void **)&m->attn, T * m->nq * m->hd * 2) ||
        (dense && dev_alloc((void **)&m->gu, T * 2 * m->I * 2)) || dev_alloc((void **)&m->act, act * 2) ||
        dev_alloc((void **)&m->hrows, R * m->D * 2) ||
        dev_alloc((void **)&m->logits, m->tp && tp_comm_rank(m->tp->comm) != 0 ? 0 : R * m->V * 4) ||
        dev_alloc((void **)&m->attn_ws, m->attn_ws_bytes) || dev_alloc((void **)&m->dints, m->nints * 4) ||
        dev_alloc((void **)&m->dparams, R * sizeof(k_sample_params)) ||
        dev_alloc((void **)&m->dtokens, R * 4) || dev_alloc((void **)&m->dlogp, R * 4) ||
        dev_alloc((void **)&m->inv_freq, (size_t)m->hd / 2 * 4) ||
        (m->E > 0 && (dev_alloc((void **)&m->rlogits, T * m->E * 2) || dev_alloc((void **)&m->ey, Tk * m->D * 2) ||
                      k_moe_create(&m->moe, m->E, m->c.experts_per_tok, (int)T, m->D, m->Im, m->o.moe_gemm,
                                   m->blas))) ||
        (m->w.awq && alloc_awq(m)) || cudaMallocHost((void **)&m->hints, m->nints * 4) != cudaSuccess ||
        (m->graph_cap && dev_alloc(&m->blas_ws, BLAS_WS)))
        return errbuf_fail(err, errlen, "%s: cannot allocate the activation buffers for %d tokens per step "
                    "(lower --max-num-batched-tokens)", m->c.name, m->o.max_num_batched_tokens);
    if (k_attention_workspace_init(m->attn_ws, m->attn_ws_bytes, (int)B, m->nq, m->s))
        return errbuf_fail(err, errlen, "cannot initialise the attention workspace");
    /* the logits of this rank's vocabulary rows, and rank 0's room for the others' */
    int N = m->tp ? tp_comm_size(m->tp->comm) : 1;
    m->lshard = m->logits;
    if (N > 1 && (dev_alloc((void **)&m->lshard, R * m->Vr * 4) ||
                  (m->leader && dev_alloc((void **)&m->lstage, (size_t)(N - 1) * R * m->Vr * 4))))
        return errbuf_fail(err, errlen, "%s: cannot allocate the logits shards of %zu rows", m->c.name, R);
    float *inv = malloc(sizeof(float) * (size_t)m->hd / 2);
    if (!inv) return errbuf_fail(err, errlen, "out of memory");
    kref_rope_inv_freq(inv, m->hd, m->c.rope_theta, (int)m->c.rope_kind, m->c.rope_factor,
                       m->c.rope_low_freq_factor, m->c.rope_high_freq_factor, m->c.rope_orig_max_pos);
    cudaMemcpy(m->inv_freq, inv, sizeof(float) * (size_t)m->hd / 2, cudaMemcpyHostToDevice);
    free(inv);
    return 0;
}

int model_profile_text(const model *m, char *buf, size_t n) { return mprobe_text(m->probe, buf, n); }

static k_bf16 *k_cache(model *m, int l) { return m->kv + (size_t)2 * l * m->kv_layer_elems; }
static k_bf16 *v_cache(model *m, int l) { return k_cache(m, l) + m->kv_layer_elems; }

/* ---- the forward pass ---------------------------------------------------- */
#define TRY(call) do { if ((call) != 0) { \
    return errbuf_fail(err, errlen, "%s: %s failed in layer %d (%s; %s)", m->c.name, #call, l, \
                cudaGetErrorString(cudaGetLastError()), k_last_error()); } } while (0)
/* a step of the forward: run it, then show it to the probe (model_probe.h) */
#define STEP(id, call) do { TRY(call); if (m->probe) mprobe_step(m->probe, id, l, &m->view); } while (0)
/* tensor parallelism: x (T, D), a partial sum on each rank, becomes the sum over the ranks */
#define ALLREDUCE(T) do { \
        if (m->tp && tp_allreduce(m->tp->comm, m->x, (size_t)(T) * m->D, m->s, err, errlen)) return -1; \
        if (m->tp && m->probe) mprobe_step(m->probe, MP_ALLREDUCE, l, &m->view); \
    } while (0)

static int check_batch(const model *m, const model_batch *b, char *err, size_t errlen) {
    if (b->T <= 0 || b->T > m->o.max_num_batched_tokens || b->B <= 0 || b->B > m->o.max_num_seqs)
        return errbuf_fail(err, errlen, "batch of %d tokens in %d sequences (limits %d, %d)", b->T, b->B,
                    m->o.max_num_batched_tokens, m->o.max_num_seqs);
    if ((b->all_logits ? b->T : b->B) > m->o.max_logit_rows)
        return errbuf_fail(err, errlen, "%d logits rows wanted, at most %d", b->all_logits ? b->T : b->B,
                    m->o.max_logit_rows);
    if (b->max_blocks_per_seq <= 0 || b->max_blocks_per_seq > m->max_blocks)
        return errbuf_fail(err, errlen, "max_blocks_per_seq %d (at most %d)", b->max_blocks_per_seq, m->max_blocks);
    if (b->query_start[0] != 0 || b->query_start[b->B] != b->T)
        return errbuf_fail(err, errlen, "query_start must run from 0 to T=%d", b->T);
    long slots = (long)m->num_blocks * m->o.block_size;
    for (int s = 0; s < b->B; s++) {
        int qn = b->query_start[s + 1] - b->query_start[s], ctx = b->context_lens[s];
        if (qn <= 0 || ctx < qn || ctx > b->max_blocks_per_seq * m->o.block_size)
            return errbuf_fail(err, errlen, "sequence %d: %d new tokens, context %d (at most %d)", s, qn, ctx,
                        b->max_blocks_per_seq * m->o.block_size);
        for (int j = 0; j < (ctx + m->o.block_size - 1) / m->o.block_size; j++) {
            int blk = b->block_tables[(size_t)s * b->max_blocks_per_seq + j];
            if (blk < 0 || blk >= m->num_blocks)
                return errbuf_fail(err, errlen, "sequence %d: block %d of its table is %d (pool of %d)", s, j, blk,
                            m->num_blocks);
        }
    }
    for (int t = 0; t < b->T; t++)
        if (b->input_ids[t] < 0 || b->input_ids[t] >= m->V || b->positions[t] < 0 ||
            b->slot_mapping[t] >= slots)
            return errbuf_fail(err, errlen, "token %d: id %d (vocab %d), position %d, slot %d (pool of %ld)", t,
                        b->input_ids[t], m->V, b->positions[t], b->slot_mapping[t], slots);
    return 0;
}

/* The batch's int arrays to the GPU in one copy, and what the attention
 * kernels read: ids, positions and slots (T,), then k_attn_batch's arrays,
 * then the rows whose logits are wanted (R,). */
typedef struct fwd_batch { const int32_t *ids, *pos, *slots, *rows; k_attn_batch ab; int R; } fwd_batch;

/* b's int arrays packed into h (pinned) as upload_batch lays them out; returns their number. */
static size_t pack_batch(const model *m, const model_batch *b, int32_t *h) {
    int T = b->T, B = b->B, R = b->all_logits ? T : B;
    size_t nb = (size_t)B * b->max_blocks_per_seq;
    if (m->tp) tp_vocab_local_ids(&m->tp->plan, b->input_ids, T, h);   /* -1: another rank's row */
    else memcpy(h, b->input_ids, 4 * (size_t)T);
    memcpy(h + T, b->positions, 4 * (size_t)T);
    memcpy(h + 2 * T, b->slot_mapping, 4 * (size_t)T);
    memcpy(h + 3 * T, b->query_start, 4 * (size_t)(B + 1));
    memcpy(h + 3 * T + B + 1, b->context_lens, 4 * (size_t)B);
    memcpy(h + 3 * T + 2 * B + 1, b->block_tables, 4 * nb);
    int32_t *hrow = h + 3 * T + 2 * B + 1 + nb;
    for (int r = 0; r < R; r++) hrow[r] = b->all_logits ? r : b->query_start[r + 1] - 1;
    return 3 * (size_t)T + 2 * B + 1 + nb + R;
}

/* Where a batch of T tokens, B sequences (tables W wide) and R logits rows
 * lies on the GPU once uploaded (max_q_len, max_context left at 0). */
static void fwd_layout(const model *m, int T, int B, int W, int R, fwd_batch *f) {
    f->ids = m->dints; f->pos = f->ids + T; f->slots = f->pos + T;
    f->ab = (k_attn_batch){B, T, f->slots + T, f->slots + T + B + 1, f->slots + T + 2 * B + 1, W, m->o.block_size, 0, 0};
    f->rows = f->ab.block_tables + (size_t)B * W;
    f->R = R;
}

/* The staging buffer is pinned and its copy asynchronous: before it is
 * rewritten, the previous step's copy must have run (a caller may queue
 * forwards back to back without waiting, as chunked prefills do: the GPU
 * would otherwise read the next batch's arrays at this batch's offsets). */
static int staging_wait(model *m) { return cudaEventSynchronize(m->staged) == cudaSuccess ? 0 : -1; }
static int staging_done(model *m) { return cudaEventRecord(m->staged, m->s) == cudaSuccess ? 0 : -1; }

static int upload_batch(model *m, const model_batch *b, fwd_batch *f) {
    int T = b->T, B = b->B;
    if (staging_wait(m)) return -1;
    size_t n = pack_batch(m, b, m->hints);
    if (cudaMemcpyAsync(m->dints, m->hints, 4 * n, cudaMemcpyHostToDevice, m->s) != cudaSuccess) return -1;
    fwd_layout(m, T, B, b->max_blocks_per_seq, b->all_logits ? T : B, f);
    k_attn_batch ab = f->ab;
    for (int s = 0; s < B; s++) {
        int qn = b->query_start[s + 1] - b->query_start[s];
        if (qn > ab.max_q_len) ab.max_q_len = qn;
        if (b->context_lens[s] > ab.max_context) ab.max_context = b->context_lens[s];
    }
    f->ab = ab;
    m->view = (mprobe_view){m->x, m->res, m->qkv, m->attn, NULL, T, m->D, m->qkv_dim, m->nq * m->hd,
                            ab.max_q_len > 1, m->s};
    return 0;
}

/* y (T, N) = x (T, K) @ W^T for the layer's linear i (AWQ_QKV ..): the 16-bit
 * w16 (N, K) through cuBLAS, or the AWQ kernels where the layer is 4-bit. */
static int linear(model *m, k_bf16 *y, const k_bf16 *x, const w_layer *w, int i, const k_bf16 *w16, int T, int N,
                  int K) {
    if (w->awq) return k_awq_gemm(m->blas, y, x, &w->awq[i], T, &m->awq, m->s);
    return k_gemm(m->blas, y, 0, x, w16, T, N, K, m->s);
}

/* The dense MLP: gate and up in one GEMM, SwiGLU, down.  x (T, D) -> x. */
static int mlp_dense(model *m, const w_layer *w, int T, int l, char *err, size_t errlen) {
    /* gate | up (T, 2I) */
    STEP(MP_GATE_UP, linear(m, m->gu, m->x, w, AWQ_GATE_UP, w->w_gate_up, T, 2 * m->I, m->D));
    /* act (T, I) = silu(gate) * up (LoRA: the adapters' gate and up deltas fused in) */
    if (lora_rt_active(m->lora)) STEP(MP_LORA, lora_rt_silu(m->lora, l, m->act, m->gu, m->I, m->x, m->D, T, m->s));
    else STEP(MP_SILU, k_silu_mul(m->act, m->gu, T, m->I, m->s));
    /* down projection */
    STEP(MP_DOWN, linear(m, m->x, m->act, w, AWQ_DOWN, w->w_down, T, m->D, m->I));
    if (lora_rt_active(m->lora)) STEP(MP_LORA, lora_rt_linear(m->lora, LORA_G_DOWN, l, m->x, m->D, m->act, m->I, m->s));
    return 0;
}

/* The mixture of experts (Qwen3-MoE): each token's k experts, weighted.  x (T, D) -> x. */
static int mlp_experts(model *m, const w_layer *w, int T, int l, char *err, size_t errlen) {
    m->view.moe = &m->moe;
    /* router logits (T, E) in the model dtype, as transformers' gate */
    STEP(MP_ROUTER, k_gemm(m->blas, m->rlogits, 0, m->x, w->router, T, m->E, m->D, m->s));
    /* softmax over all experts in fp32, the top k, renormalised (norm_topk_prob) */
    STEP(MP_ROUTE, k_moe_route(&m->moe, m->rlogits, T, m->c.norm_topk_prob, m->s));
    /* the (token, expert) pairs in expert order: counts, offsets, rows */
    STEP(MP_PERMUTE, k_moe_permute(&m->moe, T, m->s));
    /* every expert's gate/up over its rows, SwiGLU fused: act (T k, Im) */
    STEP(MP_EXPERTS_GATE_UP, k_moe_gate_up(&m->moe, m->act, m->x, w->w_gate_up, m->s));
    /* every expert's down projection: ey (T k, D) */
    STEP(MP_EXPERTS_DOWN, k_moe_down(&m->moe, m->ey, m->act, w->w_down, m->s));
    /* each token's k outputs weighted and added, expert by expert: x (T, D) */
    STEP(MP_COMBINE, k_moe_combine(&m->moe, m->x, m->ey, m->s));
    m->view.moe = NULL;
    return 0;
}

/* With tensor parallelism rank 0's own failures name it, as tp_group names the others'. */
static int rank0_fail(const model *m, char *err, size_t errlen) {
    if (m->tp && tp_comm_rank(m->tp->comm) == 0 && errlen && !strstr(err, "tensor-parallel rank")) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", err);
        snprintf(err, errlen, "tensor-parallel rank 0: %s", msg);
    }
    return -1;
}

static int forward(model *m, const model_batch *b, int *rows_out, char *err, size_t errlen);
int model_forward(model *m, const model_batch *b, int *rows_out, char *err, size_t errlen) {
    int i = gr_bucket(m->graphs, b);                 /* a decode-only step with graphs: its bucket's */
    if (i >= 0) {
        if (gr_step(m->graphs, i, b, NULL, NULL, err, errlen)) return -1;
        if (rows_out) *rows_out = b->B;
        return 0;
    }
    return forward(m, b, rows_out, err, errlen) ? rank0_fail(m, err, errlen) : 0;
}

static int layers(model *m, const fwd_batch *f, char *err, size_t errlen);
static int forward(model *m, const model_batch *b, int *rows_out, char *err, size_t errlen) {
    int l = -1;
    fwd_batch f;
    if (check_batch(m, b, err, errlen)) return -1;
    /* tensor parallelism: the other ranks run the same step on their shards */
    if (m->leader && m->created && tp_post_batch(m->tp->group, b, err, errlen)) return -1;
    if (m->probe) mprobe_step(m->probe, MP_EMBED, -1, &m->view);      /* the start of the step's GPU time */
    TRY(upload_batch(m, b, &f));
    /* LoRA: the batch's adapters in their GPU slots, its tokens grouped by slot */
    int lrc = m->lora ? lora_rt_prepare(m->lora, b->lora, b->query_start, b->B, b->T, m->s, err, errlen) : 0;
    TRY(staging_done(m));                      /* after LoRA's copy from its own pinned buffer too */
    if (lrc) return -1;
    mprobe_mark(m->probe, MH_UPLOAD);
    if (layers(m, &f, err, errlen)) return -1;
    mprobe_mark(m->probe, MH_LAUNCH);
    if (m->probe) mprobe_forward_end(m->probe, &m->view);
    if (rows_out) *rows_out = f.R;
    return 0;
}

/* The forward's GPU work over an uploaded batch: embeddings, the layers,
 * the logits of the wanted rows (what a graph captures). */
static int layers(model *m, const fwd_batch *fb, char *err, size_t errlen) {
    int l = -1;
    const fwd_batch f = *fb;
    int T = f.ab.T, D = m->D, nq = m->nq, nkv = m->nkv, hd = m->hd, QKV = m->qkv_dim;
    float eps = (float)m->c.rms_eps, scale = 1.0f / sqrtf((float)hd);

    /* token embeddings (with tensor parallelism each token's row is on one rank: zeros elsewhere) */
    TRY(k_embedding(m->x, m->w.embed, f.ids, T, D, m->Vr, m->s));
    /* the residual stream starts at zero, so every RMSNorm below adds the residual first */
    STEP(MP_EMBED, cudaMemsetAsync(m->res, 0, (size_t)T * D * 2, m->s));
    ALLREDUCE(T);
    for (l = 0; l < m->L; l++) {
        const w_layer *w = &m->w.layers[l];
        /* attention RMSNorm: res += x; x = rmsnorm(res) */
        STEP(MP_NORM, k_add_rmsnorm(m->x, m->res, w->attn_norm, T, D, eps, m->s));
        /* q, k, v projections in one GEMM */
        STEP(MP_QKV, linear(m, m->qkv, m->x, w, AWQ_QKV, w->wqkv, T, QKV, D));
        /* LoRA: q, k, v += scale B (A x) on the tokens of requests with an adapter */
        if (lora_rt_active(m->lora)) STEP(MP_LORA, lora_rt_linear(m->lora, LORA_G_QKV, l, m->qkv, QKV, m->x, D, m->s));
        /* q, k, v: Qwen2's biases, Qwen3's RMSNorm of each q and k head, RoPE of q and k at each
         * token's position, the new k and v into their slots of the paged cache: one kernel */
        k_qkv_w qw = {w->bqkv, w->q_norm, w->k_norm, eps};
        STEP(MP_ROPE_KV, k_qkv_prep(m->qkv, k_cache(m, l), v_cache(m, l), &qw, f.pos, m->inv_freq, f.slots, T, nq,
                                    nkv, hd, QKV, m->s));
        /* attention of each query over its sequence's cached tokens (block tables) */
        STEP(MP_ATTN, k_attention(m->attn, m->qkv, QKV, k_cache(m, l), v_cache(m, l), &f.ab, nq, nkv, hd, scale,
                                  m->attn_ws, m->attn_ws_bytes, m->s));
        /* output projection (a partial sum over this rank's heads, then the sum over the ranks) */
        STEP(MP_O, linear(m, m->x, m->attn, w, AWQ_O, w->wo, T, D, nq * hd));
        if (lora_rt_active(m->lora)) STEP(MP_LORA, lora_rt_linear(m->lora, LORA_G_O, l, m->x, D, m->attn, nq * hd, m->s));
        ALLREDUCE(T);
        /* MLP RMSNorm: res += x; x = rmsnorm(res) */
        STEP(MP_NORM, k_add_rmsnorm(m->x, m->res, w->mlp_norm, T, D, eps, m->s));
        /* the MLP: the token's experts where the layer has a router, else the dense SwiGLU */
        if (w->router ? mlp_experts(m, w, T, l, err, errlen) : mlp_dense(m, w, T, l, err, errlen)) return -1;
        ALLREDUCE(T);
    }
    /* final RMSNorm (adds the last residual) */
    STEP(MP_NORM, k_add_rmsnorm(m->x, m->res, m->w.final_norm, T, D, eps, m->s));
    /* the rows whose logits are wanted */
    TRY(k_gather_rows(m->hrows, m->x, f.rows, f.R, D, m->s));
    /* logits (R, Vr) in fp32 of this rank's vocabulary rows; rank 0 gathers them into (R, V) */
    STEP(MP_HEAD, k_gemm(m->blas, m->lshard, 1, m->hrows, m->w.lm_head, f.R, m->Vr, D, m->s));
    if (m->tp && tp_gather_logits(m->tp->comm, m->logits, m->lshard, m->lstage, f.R, m->Vr, m->V, m->s, err, errlen))
        return -1;
    return 0;
}
#undef ALLREDUCE
#undef STEP
#undef TRY

/* waits for the stream; with tensor parallelism through tp_sync, which names a failed rank */
static int stream_sync(model *m, const char *what, char *err, size_t errlen) {
    if (m->tp) return tp_sync(m->tp->comm, m->s, err, errlen);
    if (cudaStreamSynchronize(m->s) != cudaSuccess)
        return errbuf_fail(err, errlen, "%s: %s", what, cudaGetErrorString(cudaGetLastError()));
    return 0;
}

int model_sync(model *m, char *err, size_t errlen) { return stream_sync(m, "sync", err, errlen); }

int model_sample(model *m, int R, const k_sample_params *params, int32_t *tokens, char *err, size_t errlen) {
    if (R <= 0 || R > m->o.max_logit_rows) return errbuf_fail(err, errlen, "sample: %d rows", R);
    if (cudaMemcpyAsync(m->dparams, params, sizeof *params * (size_t)R, cudaMemcpyHostToDevice, m->s) ||
        k_sample(m->dtokens, m->logits, m->dparams, R, m->V, m->s) ||
        cudaMemcpyAsync(tokens, m->dtokens, 4 * (size_t)R, cudaMemcpyDeviceToHost, m->s))
        return errbuf_fail(err, errlen, "sample: %s", cudaGetErrorString(cudaGetLastError()));
    mprobe_mark(m->probe, MH_SAMPLE);
    int rc = stream_sync(m, "sample", err, errlen);
    mprobe_mark(m->probe, MH_WAIT);
    return rc;
}

/* ---- CUDA graphs (graph_runner.h): what the model lends them -------------- */
static int gr_check(void *ctx, const model_batch *b, char *err, size_t errlen) { return check_batch(ctx, b, err, errlen); }
static size_t gr_pack(void *ctx, const model_batch *b, int32_t *h) { return pack_batch(ctx, b, h); }
static int gr_staging(void *ctx, int done) { return done ? staging_done(ctx) : staging_wait(ctx); }
/* The forward of a packed decode batch of P rows.  Attention is partitioned
 * for max_model_len: its grid and reduce step fixed, a sequence's own
 * partitions set by its context alone, so the rows are an eager step's. */
static int gr_forward(void *ctx, int P, char *err, size_t errlen) {
    model *m = ctx;
    fwd_batch f;
    fwd_layout(m, P, P, m->max_blocks, P, &f);
    f.ab.max_q_len = 1;
    f.ab.max_context = m->o.max_model_len;
    return layers(m, &f, err, errlen);
}

int model_forward_sample(model *m, const model_batch *b, const k_sample_params *params, int32_t *tokens, int *rows,
                         char *err, size_t errlen) {
    int i = gr_bucket(m->graphs, b), R = b->B;
    if (i >= 0 ? gr_step(m->graphs, i, b, params, tokens, err, errlen)
               : model_forward(m, b, &R, err, errlen) || model_sample(m, R, params, tokens, err, errlen))
        return -1;
    if (rows) *rows = R;
    return 0;
}

int model_use_graphs(model *m, int on) { return gr_use(m->graphs, on); }
const cg_set *model_graphs(const model *m, const char **why) {
    if (why) *why = m->graphs ? NULL : cg_off_reason(&m->o);
    return gr_graphs(m->graphs);
}

int model_logits(model *m, int R, float *out, char *err, size_t errlen) {
    if (R <= 0 || R > m->o.max_logit_rows) return errbuf_fail(err, errlen, "logits: %d rows", R);
    if (cudaMemcpyAsync(out, m->logits, (size_t)R * m->V * 4, cudaMemcpyDeviceToHost, m->s))
        return errbuf_fail(err, errlen, "logits: %s", cudaGetErrorString(cudaGetLastError()));
    return stream_sync(m, "logits", err, errlen);
}

int model_logprobs(model *m, int R, const int32_t *ids, float *out, char *err, size_t errlen) {
    if (R <= 0 || R > m->o.max_logit_rows) return errbuf_fail(err, errlen, "logprobs: %d rows", R);
    if (cudaMemcpyAsync(m->dtokens, ids, 4 * (size_t)R, cudaMemcpyHostToDevice, m->s) ||
        k_logprobs(m->dlogp, m->logits, m->dtokens, R, m->V, m->s) ||
        cudaMemcpyAsync(out, m->dlogp, 4 * (size_t)R, cudaMemcpyDeviceToHost, m->s))
        return errbuf_fail(err, errlen, "logprobs: %s", cudaGetErrorString(cudaGetLastError()));
    return stream_sync(m, "logprobs", err, errlen);
}

int model_copy_block(model *m, int src, int dst, char *err, size_t errlen) {
    return model_swap(m, KV_COPY_GPU, src, dst, 1, err, errlen);
}

int model_swap(model *m, int kind, int src, int dst, int n, char *err, size_t errlen) {
    if (kind == KV_COPY_GPU && (src < 0 || dst < 0 || n < 1 || src + n > m->num_blocks || dst + n > m->num_blocks))
        return errbuf_fail(err, errlen, "copy of block %d to %d (pool of %d)", src, dst, m->num_blocks);
    if (kind != KV_COPY_GPU && !m->swap)
        return errbuf_fail(err, errlen, "a swap of KV blocks, but no swap space (preemption by swap needs "
                           "--swap-space > 0)");
    if (m->leader && m->created && tp_post_copy(m->tp->group, kind, src, dst, n, err, errlen)) return -1;
    if (kind != KV_COPY_GPU) {                                  /* this rank's shard of each block */
        swap_run r = {(kv_copy_kind)kind, src, dst, n};
        return swap_pool_copy(m->swap, m->kv, &r, m->s, err, errlen);
    }
    size_t blk = (size_t)m->o.block_size * m->nkv * m->hd;     /* elements of one block */
    for (int b = 0; b < n; b++)
        for (int l = 0; l < m->L; l++)
            if (cudaMemcpyAsync(k_cache(m, l) + (dst + b) * blk, k_cache(m, l) + (src + b) * blk, blk * 2,
                                cudaMemcpyDeviceToDevice, m->s) ||
                cudaMemcpyAsync(v_cache(m, l) + (dst + b) * blk, v_cache(m, l) + (src + b) * blk, blk * 2,
                                cudaMemcpyDeviceToDevice, m->s))
                return errbuf_fail(err, errlen, "block copy: %s", cudaGetErrorString(cudaGetLastError()));
    return 0;
}

int model_num_cpu_blocks(const model *m) { return swap_pool_blocks(m->swap); }
mprobe *model_probe(const model *m) { return m->probe; }

int model_num_blocks(const model *m) { return m->num_blocks; }

/* A full-size step (max_num_batched_tokens over max_num_seqs sequences) on a
 * scratch cache of one block, so that cuBLAS and every buffer reach their peak. */
static int profile_step(model *m, char *err, size_t errlen) {
    int T = m->o.max_num_batched_tokens, B = m->o.max_num_seqs < T ? m->o.max_num_seqs : T;
    if (B > m->o.max_logit_rows) B = m->o.max_logit_rows;
    int per = T / B, mb = m->max_blocks;
    int32_t *buf = calloc((size_t)4 * T + 2 * B + 1 + (size_t)B * mb, 4);
    if (!buf) return errbuf_fail(err, errlen, "out of memory");
    int32_t *ids = buf, *pos = ids + T, *slots = pos + T, *qs = slots + T, *ctx = qs + B + 1, *bt = ctx + B;
    qs[0] = 0;
    for (int s = 0; s < B; s++) {
        int n = s == B - 1 ? T - per * (B - 1) : per;
        if (n > m->o.max_model_len) n = m->o.max_model_len;
        qs[s + 1] = qs[s] + n;
        ctx[s] = n;
    }
    int Tuse = qs[B];
    for (int t = 0; t < Tuse; t++) { ids[t] = t % m->V; pos[t] = 0; slots[t] = -1; }
    model_batch b = {Tuse, B, ids, pos, slots, qs, ctx, bt, mb, 0, NULL};
    int rc = model_forward(m, &b, NULL, err, errlen);
    if (!rc) rc = stream_sync(m, "profile step", err, errlen);
    free(buf);
    return rc;
}

/* The shapes of this rank's shard (tp_rank_config: heads, KV heads, MLP and
 * expert widths, vocabulary rows); the whole model's on one GPU. */
static void set_shapes(model *m, const mc_config *c) {
    mc_config rc = *c;
    if (m->tp) tp_rank_config(&m->tp->plan, c, &rc);
    m->D = c->hidden_size; m->nq = rc.num_heads; m->nkv = rc.num_kv_heads; m->hd = c->head_dim;
    m->qkv_dim = (m->nq + 2 * m->nkv) * m->hd; m->I = rc.intermediate_size;
    m->V = c->vocab_size; m->Vr = rc.vocab_size;
    m->L = c->num_layers;
    m->E = c->num_experts; m->Im = rc.moe_intermediate_size;
    m->max_blocks = (m->o.max_model_len + m->o.block_size - 1) / m->o.block_size;
}

/* Rank 0 of several: the mailbox must hold the largest batch, then the other
 * ranks build their models with these options (model_create's collectives
 * with ours). */
static int tell_workers(model *m, char *err, size_t errlen) {
    size_t box;
    tp_group_mailbox(m->tp->group, &box);
    if (tp_mailbox_bytes(m->o.max_num_batched_tokens, m->o.max_num_seqs, m->max_blocks) > box)
        return errbuf_fail(err, errlen, "tensor parallelism: batches of %d tokens, %d sequences of up to %d tokens "
                           "are larger than tp_engine_start was told", m->o.max_num_batched_tokens,
                           m->o.max_num_seqs, m->o.max_model_len);
    return tp_post_create(m->tp->group, &m->o, err, errlen);
}

/* The memory plan after the profile step: the KV cache gets what
 * gpu_memory_utilization leaves (the fewest blocks any rank has room for). */
static int plan_kv(model *m, model_mem *mem, size_t free0, char *err, size_t errlen) {
    size_t free1, total;
    cudaMemGetInfo(&free1, &total);
    mem->weights = m->w.bytes;
    mem->activations = free0 - free1;
    mem->lora = lora_rt_held(m->lora);            /* allocated before free0 was read */
    mem->other = total - free0 - m->w.bytes - mem->lora;   /* context, NCCL, other processes */
    mem->kv_bytes_per_token = (size_t)2 * m->L * m->nkv * m->hd * 2;   /* this rank's KV heads */
    mem->block_size = m->o.block_size;
    /* the CUDA graphs' memory, set aside before the plan, counts as in use */
    mplan_in in = {(double)total, m->o.max_gpu_memory, m->o.gpu_memory_utilization,
                   (double)(total - free1) + (double)mem->graphs_reserved, (double)mem->weights,
                   (double)mem->activations, (double)mem->other + (double)mem->graphs_reserved,
                   mem->kv_bytes_per_token, m->o.block_size, m->o.max_model_len, m->o.num_gpu_blocks};
    mplan_out po;
    long nblocks = mplan_blocks(&in, &po);
    mem->total = (size_t)po.total;                 /* the device's, or --max-gpu-memory */
    nblocks = nblocks > 0x7fffffff / m->o.block_size ? 0x7fffffff / m->o.block_size : nblocks;
    int nb = (int)nblocks;
    if (m->tp && tp_min_int(m->tp->comm, nb, &nb, m->s, err, errlen)) return -1;
    if (mplan_check(&in, &po, nb, nb < nblocks, err, errlen)) return -1;
    m->num_blocks = nb;
    m->kv_layer_elems = (size_t)m->num_blocks * m->o.block_size * m->nkv * m->hd;
    if (dev_alloc((void **)&m->kv, 2 * m->kv_layer_elems * m->L * 2))
        return errbuf_fail(err, errlen, "cannot allocate the KV cache of %d blocks (%.2f GiB)", m->num_blocks,
             2.0 * m->kv_layer_elems * m->L * 2 / 1073741824.0);
    mem->num_blocks = m->num_blocks;
    mem->kv_cache = 2 * m->kv_layer_elems * m->L * 2;
    mem->kv_tokens = (long)m->num_blocks * m->o.block_size;
    mem->max_concurrency = (double)mem->kv_tokens / m->o.max_model_len;
    return 0;
}

/* The swap pool of swap_space GiB: blocks of this rank's KV heads (swap.h). */
static int make_swap_pool(model *m, model_mem *mem, char *err, size_t errlen) {
    int nb;
    swap_geom g = {2 * m->L, m->kv_layer_elems, (size_t)m->o.block_size * m->nkv * m->hd, m->num_blocks};
    if (swap_cpu_blocks(m->o.swap_space, mem->kv_bytes_per_token * m->o.block_size, &nb, err, errlen) ||
        swap_pool_create(&m->swap, &g, nb, err, errlen))
        return -1;
    mem->num_cpu_blocks = nb;
    mem->swap_bytes = swap_pool_bytes(m->swap);
    return 0;
}

/* The largest batch a graph takes (0: graphs off, cg_off_reason). */
static int graph_capacity(const model_opts *o) {
    if (cg_off_reason(o)) return 0;
    int cap = o->graph_max_batch > 0 && o->graph_max_batch < o->max_num_seqs ? o->graph_max_batch : o->max_num_seqs;
    if (cap > o->max_num_batched_tokens) cap = o->max_num_batched_tokens;
    return cap < o->max_logit_rows ? cap : o->max_logit_rows;
}

/* With graphs: cuBLAS keeps one workspace (its default pool would be
 * reallocated inside a capture) (stage 0); the runner, and what its graphs
 * will take set aside before the KV plan (1); then, the cache zeroed (a
 * padding row reads block 0), every bucket captured (2). */
static int graphs_setup(model *m, int stage, model_mem *mem, char *err, size_t errlen) {
    gr_model gm = {m, m->s, m->dints, m->hints, m->dtokens, m->logits, m->V, m->max_blocks, &m->probe,
                   gr_check, gr_pack, gr_forward, gr_staging};
    char why[768];
    if (!m->graph_cap) return 0;
    if (stage == 0 && (cublasSetStream(m->blas, m->s) != CUBLAS_STATUS_SUCCESS ||
                       cublasSetWorkspace(m->blas, m->blas_ws, BLAS_WS) != CUBLAS_STATUS_SUCCESS))
        return errbuf_fail(err, errlen, "CUDA graphs: cannot give cuBLAS its workspace");
    if ((stage == 1 && (gr_create(&m->graphs, &gm, m->graph_cap, m->o.graph_min_batch, err, errlen) ||
                        gr_estimate(m->graphs, &mem->graphs_reserved, err, errlen))) ||
        (stage == 2 && (cudaMemsetAsync(m->kv, 0, mem->kv_cache, m->s) != cudaSuccess ||
                        gr_capture(m->graphs, &mem->graphs, err, errlen)))) {
        snprintf(why, sizeof why, "%s", err);
        return errbuf_fail(err, errlen, "CUDA graphs: %s (--enforce-eager runs without them)", why);
    }
    if (stage == 2) cg_sizes(gr_graphs(m->graphs), &mem->num_graphs);
    return 0;
}

int model_create(model **out, const mc_config *c, w_weights *w, const model_opts *o, model_mem *mem,
                 char *err, size_t errlen) {
    *out = NULL;
    memset(mem, 0, sizeof *mem);
    model *m = calloc(1, sizeof *m);
    if (!m) { w_free(w); return errbuf_fail(err, errlen, "out of memory"); }
    m->c = *c;
    m->w = *w;
    memset(w, 0, sizeof *w);
    m->o = *o;
    model_resolve_opts(c, &m->o);
    m->tp = o->tp;
    m->leader = m->tp && tp_comm_rank(m->tp->comm) == 0 && tp_comm_size(m->tp->comm) > 1;
    set_shapes(m, c);
    m->graph_cap = graph_capacity(&m->o);
    int rc = -1;
    if (m->o.attention) k_attention_impl(m->o.attention);
    if (m->o.attention_partition) k_attention_partition(m->o.attention_partition);
    if (m->o.elementwise) k_elementwise_impl(m->o.elementwise);
    if (m->o.gpu_memory_utilization > 1 || m->o.block_size > 1024) {
        errbuf_fail(err, errlen, "gpu_memory_utilization %.2f or block_size %d out of range",
             m->o.gpu_memory_utilization, m->o.block_size);
        goto out;
    }
    if (m->o.lora && m->tp) {
        errbuf_fail(err, errlen, "--enable-lora with tensor parallelism: the shard plan is ready (engine/lora_pack.h), "
                    "the workers do not load adapters yet");
        goto out;
    }
    if (m->leader && tell_workers(m, err, errlen)) goto out;
    /* fp32 accumulation all the way: no bf16 partial sums in split-K reductions */
    if (cublasCreate(&m->blas) != CUBLAS_STATUS_SUCCESS || cudaStreamCreate(&m->s) != cudaSuccess ||
        cudaEventCreateWithFlags(&m->staged, cudaEventDisableTiming) != cudaSuccess ||
        cublasSetMathMode(m->blas, CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) !=
            CUBLAS_STATUS_SUCCESS) {
        errbuf_fail(err, errlen, "cannot initialise CUDA / cuBLAS");
        goto out;
    }
    m->view.s = m->s;
    /* LoRA adapters: packed, and their GPU slots, before the memory plan reads what is free */
    if (m->o.lora && lora_rt_create(&m->lora, m->o.lora, c, NULL, m->o.max_num_batched_tokens, err, errlen)) goto out;
    size_t free0, total;
    cudaMemGetInfo(&free0, &total);
    if (alloc_activations(m, err, errlen) || graphs_setup(m, 0, mem, err, errlen)) goto out;
    /* profile on a scratch cache of one block per layer */
    m->kv_layer_elems = (size_t)m->o.block_size * m->nkv * m->hd;
    m->num_blocks = 1;
    if (dev_alloc((void **)&m->kv, 2 * m->kv_layer_elems * m->L * 2)) { errbuf_fail(err, errlen, "cannot allocate"); goto out; }
    if (profile_step(m, err, errlen) || graphs_setup(m, 1, mem, err, errlen)) goto out;
    cudaFree(m->kv);
    m->kv = NULL;
    if (plan_kv(m, mem, free0, err, errlen)) goto out;
    if ((m->o.swap_space > 0 && make_swap_pool(m, mem, err, errlen)) || graphs_setup(m, 2, mem, err, errlen))
        goto out;
    /* the probes, after the profile step and the graphs' captures: only real steps count */
    mprobe_opts po = {.profile = m->o.profile, .host = m->o.host_probe, .dump_layer0 = m->o.dump_layer0,
                      .dump_experts = m->o.dump_experts};
    m->probe = mprobe_create(&po, m->L, m->o.max_num_batched_tokens, m->E, c->experts_per_tok, err, errlen);
    if (!m->probe && err[0]) goto out;
    /* every other rank has its model (and the same blocks): from here on, steps are posted */
    if (m->leader && tp_wait_ready(m->tp->group, m->num_blocks, 60, err, errlen)) goto out;
    m->created = 1;
    rc = 0;
out:
    if (rc) rank0_fail(m, err, errlen);
    if (rc) model_free(m);
    else *out = m;
    return rc;
}

void model_free(model *m) {
    if (!m) return;
    if (m->lshard == m->logits) m->lshard = NULL;
    void *bufs[] = {m->x, m->res, m->qkv, m->attn, m->gu, m->act, m->rlogits, m->ey, m->hrows, m->logits,
                    m->lshard, m->lstage, m->attn_ws, m->dints, m->dparams, m->dtokens, m->dlogp, m->inv_freq, m->kv,
                    m->awq.scratch, m->awq.partial};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) if (bufs[i]) cudaFree(bufs[i]);
    if (m->hints) cudaFreeHost(m->hints);
    gr_free(m->graphs);
    if (m->blas_ws) cudaFree(m->blas_ws);
    swap_pool_free(m->swap);
    k_moe_free(&m->moe);
    mprobe_free(m->probe);
    lora_rt_free(m->lora);
    if (m->blas) cublasDestroy(m->blas);
    if (m->staged) cudaEventDestroy(m->staged);
    if (m->s) cudaStreamDestroy(m->s);
    w_free(&m->w);
    free(m);
}
#else  /* built without CUDA: every entry point says so */
struct model { mc_config c; model_opts o; };
int model_create(model **out, const mc_config *c, w_weights *w, const model_opts *o, model_mem *mem,
                 char *err, size_t errlen) {
    (void)c; (void)o; (void)mem;
    *out = NULL;
    w_free(w);
    return errbuf_fail(err, errlen, "engine built without CUDA (no nvcc)");
}
int model_forward(model *m, const model_batch *b, int *rows, char *err, size_t errlen) {
    (void)m; (void)b; (void)rows; return errbuf_fail(err, errlen, "no CUDA");
}
int model_sample(model *m, int R, const k_sample_params *p, int32_t *t, char *err, size_t errlen) {
    (void)m; (void)R; (void)p; (void)t; return errbuf_fail(err, errlen, "no CUDA");
}
int model_logits(model *m, int R, float *out, char *err, size_t errlen) {
    (void)m; (void)R; (void)out; return errbuf_fail(err, errlen, "no CUDA");
}
int model_logprobs(model *m, int R, const int32_t *ids, float *out, char *err, size_t errlen) {
    (void)m; (void)R; (void)ids; (void)out; return errbuf_fail(err, errlen, "no CUDA");
}
int model_copy_block(model *m, int src, int dst, char *err, size_t errlen) {
    (void)m; (void)src; (void)dst; return errbuf_fail(err, errlen, "no CUDA");
}
int model_forward_sample(model *m, const model_batch *b, const k_sample_params *p, int32_t *t, int *rows, char *err,
                         size_t errlen) {
    (void)m; (void)b; (void)p; (void)t; (void)rows; return errbuf_fail(err, errlen, "no CUDA");
}
int model_swap(model *m, int kind, int src, int dst, int n, char *err, size_t errlen) {
    (void)m; (void)kind; (void)src; (void)dst; (void)n; return errbuf_fail(err, errlen, "no CUDA");
}
int model_use_graphs(model *m, int on) { (void)m; (void)on; return 0; }
const cg_set *model_graphs(const model *m, const char **why) { (void)m; if (why) *why = "no CUDA"; return NULL; }
int model_num_cpu_blocks(const model *m) { (void)m; return 0; }
mprobe *model_probe(const model *m) { (void)m; return NULL; }
int model_sync(model *m, char *err, size_t errlen) { (void)m; return errbuf_fail(err, errlen, "no CUDA"); }
int model_num_blocks(const model *m) { (void)m; return 0; }
int model_profile_text(const model *m, char *buf, size_t n) { (void)m; if (n) buf[0] = 0; return -1; }
const mc_config *model_config(const model *m) { return &m->c; }
const model_opts *model_options(const model *m) { return &m->o; }
void model_free(model *m) { (void)m; }
#endif
