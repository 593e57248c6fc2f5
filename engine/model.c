/* model: see model.h.  The forward pass (model_forward) reads top to bottom
 * like llama2.c's forward; paging appears only in the slot mapping and the
 * block tables that the attention kernels read (attention.cu: kv_slot).
 * Owns the weights it is given, its activation buffers and the KV cache. */
#include "engine/model.h"
#include "engine/kernels_ref.h"
#include "base/errbuf.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <cublas_v2.h>

struct model {
    mc_config   c;
    model_opts  o;
    w_weights   w;
    cublasHandle_t blas;
    cudaStream_t   s;
    int D, nq, nkv, hd, qkv_dim, I, V, L;
    int max_blocks;            /* per sequence: ceil(max_model_len / block_size) */
    float *inv_freq;           /* (hd/2,) RoPE frequencies with scaling */
    /* activations, sized for max_num_batched_tokens (T) and max_logit_rows (R) */
    k_bf16 *x;                 /* (T, D) hidden state, then each sublayer's output */
    k_bf16 *res;               /* (T, D) residual stream */
    k_bf16 *qkv;               /* (T, (nq + 2 nkv) * hd) */
    k_bf16 *attn;              /* (T, nq * hd) */
    k_bf16 *gu;                /* (T, 2I) gate | up */
    k_bf16 *act;               /* (T, I) */
    k_bf16 *hrows;             /* (R, D) rows whose logits are wanted */
    float  *logits;            /* (R, V) */
    float  *attn_ws;           /* decode attention split workspace */
    size_t  attn_ws_bytes;
    const char *dump_layer0;   /* PAGESIM_DUMP_LAYER0: file for the next forward's layer 0 */
    /* PAGESIM_PROFILE: CUDA events between the ops of each forward, summed per
     * op class, for steps with prefill tokens (0) and decode-only steps (1) */
    cudaEvent_t *ev;           /* (nev_cap,) */
    int   *ev_cat;             /* (nev_cap,) class of the interval ending at each event */
    int    nev, nev_cap;
    double prof_ms[2][16];
    long   prof_steps[2];
    int32_t *dints, *hints;    /* device / pinned host: the batch's int arrays, packed */
    size_t   nints;
    k_sample_params *dparams;  /* (R,) */
    int32_t *dtokens;          /* (R,) */
    float   *dlogp;            /* (R,) */
    /* KV cache: one allocation; layer l's k at kv + 2l*per_layer, v right after */
    k_bf16 *kv;                /* (L, 2, num_blocks, block_size, nkv, hd) */
    size_t  kv_layer_elems;    /* num_blocks * block_size * nkv * hd */
    int     num_blocks;
};

const mc_config *model_config(const model *m) { return &m->c; }
const model_opts *model_options(const model *m) { return &m->o; }

static int dev_alloc(void **p, size_t bytes) { return cudaMalloc(p, bytes ? bytes : 16) == cudaSuccess ? 0 : -1; }

static int alloc_activations(model *m, char *err, size_t errlen) {
    size_t T = (size_t)m->o.max_num_batched_tokens, R = (size_t)m->o.max_logit_rows;
    size_t B = (size_t)m->o.max_num_seqs;
    m->attn_ws_bytes = k_attention_workspace_bytes((int)B, m->nq, m->hd, m->o.max_model_len);
    m->nints = 3 * T + 2 * B + 1 + B * (size_t)m->max_blocks + R;
    if (dev_alloc((void **)&m->x, T * m->D * 2) || dev_alloc((void **)&m->res, T * m->D * 2) ||
        dev_alloc((void **)&m->qkv, T * m->qkv_dim * 2) || dev_alloc((void **)&m->attn, T * m->nq * m->hd * 2) ||
        dev_alloc((void **)&m->gu, T * 2 * m->I * 2) || dev_alloc((void **)&m->act, T * m->I * 2) ||
        dev_alloc((void **)&m->hrows, R * m->D * 2) || dev_alloc((void **)&m->logits, R * m->V * 4) ||
        dev_alloc((void **)&m->attn_ws, m->attn_ws_bytes) || dev_alloc((void **)&m->dints, m->nints * 4) ||
        dev_alloc((void **)&m->dparams, R * sizeof(k_sample_params)) ||
        dev_alloc((void **)&m->dtokens, R * 4) || dev_alloc((void **)&m->dlogp, R * 4) ||
        dev_alloc((void **)&m->inv_freq, (size_t)m->hd / 2 * 4) ||
        cudaMallocHost((void **)&m->hints, m->nints * 4) != cudaSuccess)
        return errbuf_fail(err, errlen, "%s: cannot allocate the activation buffers for %d tokens per step "
                    "(lower --max-num-batched-tokens)", m->c.name, m->o.max_num_batched_tokens);
    float *inv = malloc(sizeof(float) * (size_t)m->hd / 2);
    if (!inv) return errbuf_fail(err, errlen, "out of memory");
    kref_rope_inv_freq(inv, m->hd, m->c.rope_theta, (int)m->c.rope_kind, m->c.rope_factor,
                       m->c.rope_low_freq_factor, m->c.rope_high_freq_factor, m->c.rope_orig_max_pos);
    cudaMemcpy(m->inv_freq, inv, sizeof(float) * (size_t)m->hd / 2, cudaMemcpyHostToDevice);
    free(inv);
    return 0;
}

/* ---- a diagnostic: layer 0's intermediates of one forward, to compare with
 * transformers' hooks (tests/gpu/compare_hf.py --diag-layer0).  File: int32
 * magic "PSL0", count, then per tensor a 16-byte name, rows, cols and rows x
 * cols float32.  Synchronises; only when PAGESIM_DUMP_LAYER0 is set. */
typedef struct l0_dump { FILE *f; int n; } l0_dump;

static void l0_put(model *m, l0_dump *d, const char *name, const k_bf16 *dev, int rows, int cols) {
    if (!d->f) return;
    size_t n = (size_t)rows * cols;
    uint16_t *h = malloc(n * 2);
    float *x = malloc(n * sizeof(float));
    char nm[16] = {0};
    int32_t rc[2] = {rows, cols};
    if (h && x && cudaStreamSynchronize(m->s) == cudaSuccess &&
        cudaMemcpy(h, dev, n * 2, cudaMemcpyDeviceToHost) == cudaSuccess) {
        for (size_t i = 0; i < n; i++) x[i] = kref_bf2f(h[i]);
        snprintf(nm, sizeof nm, "%s", name);
        fwrite(nm, 1, 16, d->f);
        fwrite(rc, 4, 2, d->f);
        fwrite(x, sizeof(float), n, d->f);
        d->n++;
    }
    free(h);
    free(x);
}

static void l0_close(l0_dump *d) {
    if (!d->f) return;
    int32_t hdr[2] = {0x304c5350 /* "PSL0" */, d->n};
    fseek(d->f, 0, SEEK_SET);
    fwrite(hdr, 4, 2, d->f);
    fclose(d->f);
    d->f = NULL;
}

enum { P_IO, P_NORM, P_QKV, P_ELEM, P_ATTN, P_O, P_GATEUP, P_SILU, P_DOWN, P_HEAD, P_N };
static const char *prof_names[P_N] = {"input copy + embedding", "RMSNorm (+ residual)", "q/k/v GEMM",
    "bias, q/k norm, RoPE, KV write", "attention", "o GEMM", "gate/up GEMM", "SwiGLU", "down GEMM",
    "logits rows + vocabulary GEMM"};

/* the op that just ended belongs to class cat */
static void prof_mark(model *m, int cat) {
    if (!m->ev || m->nev >= m->nev_cap) return;
    m->ev_cat[m->nev] = cat;
    cudaEventRecord(m->ev[m->nev++], m->s);
}

static void prof_collect(model *m, int kind) {
    if (!m->ev || m->nev < 2) return;
    cudaEventSynchronize(m->ev[m->nev - 1]);
    for (int i = 1; i < m->nev; i++) {
        float ms = 0;
        cudaEventElapsedTime(&ms, m->ev[i - 1], m->ev[i]);
        m->prof_ms[kind][m->ev_cat[i]] += ms;
    }
    m->prof_steps[kind]++;
    m->nev = 0;
}

int model_profile_text(const model *m, char *buf, size_t n) {
    size_t off = 0;
    if (n) buf[0] = 0;
    if (!m->ev) return -1;
    for (int k = 0; k < 2; k++) {
        double tot = 0;
        for (int c = 0; c < P_N; c++) tot += m->prof_ms[k][c];
        off += snprintf(buf + off, off < n ? n - off : 0, "%s steps: %ld, GPU time %.1f ms\n",
                        k ? "decode-only" : "with prefill", m->prof_steps[k], tot);
        for (int c = 0; c < P_N && tot > 0; c++)
            off += snprintf(buf + off, off < n ? n - off : 0, "  %-32s %10.1f ms %5.1f%%\n", prof_names[c],
                            m->prof_ms[k][c], 100 * m->prof_ms[k][c] / tot);
    }
    return 0;
}

static k_bf16 *k_cache(model *m, int l) { return m->kv + (size_t)2 * l * m->kv_layer_elems; }
static k_bf16 *v_cache(model *m, int l) { return k_cache(m, l) + m->kv_layer_elems; }

/* ---- the forward pass ---------------------------------------------------- */
#define TRY(call) do { if ((call) != 0) { \
    return errbuf_fail(err, errlen, "%s: %s failed in layer %d (%s; %s)", m->c.name, #call, l, \
                cudaGetErrorString(cudaGetLastError()), k_last_error()); } } while (0)

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

int model_forward(model *m, const model_batch *b, int *rows_out, char *err, size_t errlen) {
    int l = -1;
    if (check_batch(m, b, err, errlen)) return -1;
    int T = b->T, B = b->B, D = m->D, nq = m->nq, nkv = m->nkv, hd = m->hd, QKV = m->qkv_dim;
    int R = b->all_logits ? T : B;
    float eps = (float)m->c.rms_eps;
    /* the batch's int arrays, packed into one copy */
    int32_t *h = m->hints;
    size_t nb = (size_t)B * b->max_blocks_per_seq;
    memcpy(h, b->input_ids, 4 * (size_t)T);
    memcpy(h + T, b->positions, 4 * (size_t)T);
    memcpy(h + 2 * T, b->slot_mapping, 4 * (size_t)T);
    memcpy(h + 3 * T, b->query_start, 4 * (size_t)(B + 1));
    memcpy(h + 3 * T + B + 1, b->context_lens, 4 * (size_t)B);
    memcpy(h + 3 * T + 2 * B + 1, b->block_tables, 4 * nb);
    int32_t *hrow = h + 3 * T + 2 * B + 1 + nb;
    for (int r = 0; r < R; r++) hrow[r] = b->all_logits ? r : b->query_start[r + 1] - 1;
    size_t n = 3 * (size_t)T + 2 * B + 1 + nb + R;
    if (m->ev) { m->nev = 0; prof_mark(m, P_IO); }
    TRY(cudaMemcpyAsync(m->dints, h, 4 * n, cudaMemcpyHostToDevice, m->s));
    const int32_t *ids = m->dints, *pos = ids + T, *slots = pos + T;
    k_attn_batch ab = {B, T, slots + T, slots + T + B + 1, slots + T + 2 * B + 1, b->max_blocks_per_seq,
                       m->o.block_size, 0, 0};
    for (int s = 0; s < B; s++) {
        int qn = b->query_start[s + 1] - b->query_start[s];
        if (qn > ab.max_q_len) ab.max_q_len = qn;
        if (b->context_lens[s] > ab.max_context) ab.max_context = b->context_lens[s];
    }
    const int32_t *drows = ab.block_tables + nb;
    float scale = 1.0f / sqrtf((float)hd);
    l0_dump dd = {NULL, 0};
    if (m->dump_layer0) {                     /* once: the next forward after model_create */
        int32_t hdr[2] = {0, 0};
        dd.f = fopen(m->dump_layer0, "wb");
        if (dd.f) fwrite(hdr, 4, 2, dd.f);
        m->dump_layer0 = NULL;
    }

    /* token embeddings; the residual stream starts at zero so that every
     * RMSNorm below can be the fused "add residual, then normalise" */
    TRY(k_embedding(m->x, m->w.embed, ids, T, D, m->V, m->s));
    TRY(cudaMemsetAsync(m->res, 0, (size_t)T * D * 2, m->s));
    prof_mark(m, P_IO);
    for (l = 0; l < m->L; l++) {
        const w_layer *w = &m->w.layers[l];
        /* attention RMSNorm: res += x; x = rmsnorm(res) */
        TRY(k_add_rmsnorm(m->x, m->res, w->attn_norm, T, D, eps, m->s));
        prof_mark(m, P_NORM);
        if (l == 0) l0_put(m, &dd, "xnorm", m->x, T, D);
        /* q, k, v projections in one GEMM (+ bias for Qwen2) */
        TRY(k_gemm(m->blas, m->qkv, 0, m->x, w->wqkv, T, QKV, D, m->s));
        prof_mark(m, P_QKV);
        if (w->bqkv) TRY(k_add_bias(m->qkv, w->bqkv, T, QKV, m->s));
        /* Qwen3: RMSNorm of each q head and each k head */
        if (w->q_norm) {
            TRY(k_head_rmsnorm(m->qkv, T, nq, hd, QKV, w->q_norm, eps, m->s));
            TRY(k_head_rmsnorm(m->qkv + (size_t)nq * hd, T, nkv, hd, QKV, w->k_norm, eps, m->s));
        }
        /* RoPE on q and k at each token's position */
        TRY(k_rope(m->qkv, pos, m->inv_freq, T, nq, nkv, hd, QKV, m->s));
        if (l == 0) l0_put(m, &dd, "qkv", m->qkv, T, QKV);
        /* the new tokens' k and v go to their slots in the paged cache */
        TRY(k_kv_write(k_cache(m, l), v_cache(m, l), m->qkv, slots, T, nq, nkv, hd, QKV, m->s));
        prof_mark(m, P_ELEM);
        /* attention of each query over its sequence's cached tokens (block tables) */
        TRY(k_attention(m->attn, m->qkv, QKV, k_cache(m, l), v_cache(m, l), &ab, nq, nkv, hd, scale,
                        m->attn_ws, m->attn_ws_bytes, m->s));
        prof_mark(m, P_ATTN);
        if (l == 0) l0_put(m, &dd, "attn", m->attn, T, nq * hd);
        /* output projection */
        TRY(k_gemm(m->blas, m->x, 0, m->attn, w->wo, T, D, nq * hd, m->s));
        prof_mark(m, P_O);
        if (l == 0) l0_put(m, &dd, "oproj", m->x, T, D);
        /* MLP RMSNorm: res += x; x = rmsnorm(res) */
        TRY(k_add_rmsnorm(m->x, m->res, w->mlp_norm, T, D, eps, m->s));
        prof_mark(m, P_NORM);
        /* gate and up projections in one GEMM, SwiGLU, down projection */
        TRY(k_gemm(m->blas, m->gu, 0, m->x, w->w_gate_up, T, 2 * m->I, D, m->s));
        prof_mark(m, P_GATEUP);
        TRY(k_silu_mul(m->act, m->gu, T, m->I, m->s));
        prof_mark(m, P_SILU);
        TRY(k_gemm(m->blas, m->x, 0, m->act, w->w_down, T, D, m->I, m->s));
        prof_mark(m, P_DOWN);
        if (l == 0) {                         /* layer output = res + x (the next norm adds them) */
            l0_put(m, &dd, "res", m->res, T, D);
            l0_put(m, &dd, "x", m->x, T, D);
            l0_close(&dd);
        }
    }
    /* final RMSNorm (adds the last residual) */
    TRY(k_add_rmsnorm(m->x, m->res, m->w.final_norm, T, D, eps, m->s));
    prof_mark(m, P_NORM);
    /* logits of the rows wanted, in fp32 */
    TRY(k_gather_rows(m->hrows, m->x, drows, R, D, m->s));
    TRY(k_gemm(m->blas, m->logits, 1, m->hrows, m->w.lm_head, R, m->V, D, m->s));
    prof_mark(m, P_HEAD);
    prof_collect(m, ab.max_q_len > 1 ? 0 : 1);
    if (rows_out) *rows_out = R;
    return 0;
}
#undef TRY

int model_sample(model *m, int R, const k_sample_params *params, int32_t *tokens, char *err, size_t errlen) {
    if (R <= 0 || R > m->o.max_logit_rows) return errbuf_fail(err, errlen, "sample: %d rows", R);
    if (cudaMemcpyAsync(m->dparams, params, sizeof *params * (size_t)R, cudaMemcpyHostToDevice, m->s) ||
        k_sample(m->dtokens, m->logits, m->dparams, R, m->V, m->s) ||
        cudaMemcpyAsync(tokens, m->dtokens, 4 * (size_t)R, cudaMemcpyDeviceToHost, m->s) ||
        cudaStreamSynchronize(m->s))
        return errbuf_fail(err, errlen, "sample: %s", cudaGetErrorString(cudaGetLastError()));
    return 0;
}

int model_logits(model *m, int R, float *out, char *err, size_t errlen) {
    if (R <= 0 || R > m->o.max_logit_rows) return errbuf_fail(err, errlen, "logits: %d rows", R);
    if (cudaMemcpyAsync(out, m->logits, (size_t)R * m->V * 4, cudaMemcpyDeviceToHost, m->s) ||
        cudaStreamSynchronize(m->s))
        return errbuf_fail(err, errlen, "logits: %s", cudaGetErrorString(cudaGetLastError()));
    return 0;
}

int model_logprobs(model *m, int R, const int32_t *ids, float *out, char *err, size_t errlen) {
    if (R <= 0 || R > m->o.max_logit_rows) return errbuf_fail(err, errlen, "logprobs: %d rows", R);
    if (cudaMemcpyAsync(m->dtokens, ids, 4 * (size_t)R, cudaMemcpyHostToDevice, m->s) ||
        k_logprobs(m->dlogp, m->logits, m->dtokens, R, m->V, m->s) ||
        cudaMemcpyAsync(out, m->dlogp, 4 * (size_t)R, cudaMemcpyDeviceToHost, m->s) ||
        cudaStreamSynchronize(m->s))
        return errbuf_fail(err, errlen, "logprobs: %s", cudaGetErrorString(cudaGetLastError()));
    return 0;
}

int model_copy_block(model *m, int src, int dst, char *err, size_t errlen) {
    if (src < 0 || dst < 0 || src >= m->num_blocks || dst >= m->num_blocks)
        return errbuf_fail(err, errlen, "copy of block %d to %d (pool of %d)", src, dst, m->num_blocks);
    size_t blk = (size_t)m->o.block_size * m->nkv * m->hd;     /* elements of one block */
    for (int l = 0; l < m->L; l++)
        if (cudaMemcpyAsync(k_cache(m, l) + dst * blk, k_cache(m, l) + src * blk, blk * 2,
                            cudaMemcpyDeviceToDevice, m->s) ||
            cudaMemcpyAsync(v_cache(m, l) + dst * blk, v_cache(m, l) + src * blk, blk * 2,
                            cudaMemcpyDeviceToDevice, m->s))
            return errbuf_fail(err, errlen, "block copy: %s", cudaGetErrorString(cudaGetLastError()));
    return 0;
}

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
    model_batch b = {Tuse, B, ids, pos, slots, qs, ctx, bt, mb, 0};
    int rc = model_forward(m, &b, NULL, err, errlen);
    if (!rc && cudaStreamSynchronize(m->s) != cudaSuccess)
        rc = errbuf_fail(err, errlen, "profile step: %s", cudaGetErrorString(cudaGetLastError()));
    free(buf);
    return rc;
}

int model_create(model **out, const mc_config *c, w_weights *w, const model_opts *o, model_mem *mem,
                 char *err, size_t errlen) {
    *out = NULL;
    memset(mem, 0, sizeof *mem);
    model *m = calloc(1, sizeof *m);
    if (!m) return errbuf_fail(err, errlen, "out of memory");
    m->c = *c;
    m->w = *w;
    memset(w, 0, sizeof *w);
    m->o = *o;
    if (m->o.max_num_batched_tokens <= 0) m->o.max_num_batched_tokens = 2048;
    if (m->o.max_num_seqs <= 0) m->o.max_num_seqs = 256;
    if (m->o.max_model_len <= 0) m->o.max_model_len = c->max_position > 0 && c->max_position < 4096 ? c->max_position : 4096;
    if (m->o.block_size <= 0) m->o.block_size = 16;
    if (m->o.gpu_memory_utilization <= 0) m->o.gpu_memory_utilization = 0.9;
    if (m->o.max_logit_rows <= 0) m->o.max_logit_rows = m->o.max_num_seqs;
    m->D = c->hidden_size; m->nq = c->num_heads; m->nkv = c->num_kv_heads; m->hd = c->head_dim;
    m->qkv_dim = (m->nq + 2 * m->nkv) * m->hd; m->I = c->intermediate_size; m->V = c->vocab_size;
    m->L = c->num_layers;
    m->max_blocks = (m->o.max_model_len + m->o.block_size - 1) / m->o.block_size;
    int rc = -1;
    if (m->o.gpu_memory_utilization > 1 || m->o.block_size > 1024) {
        errbuf_fail(err, errlen, "gpu_memory_utilization %.2f or block_size %d out of range",
             m->o.gpu_memory_utilization, m->o.block_size);
        goto out;
    }
    /* fp32 accumulation all the way: no bf16 partial sums in split-K reductions */
    if (cublasCreate(&m->blas) != CUBLAS_STATUS_SUCCESS || cudaStreamCreate(&m->s) != cudaSuccess ||
        cublasSetMathMode(m->blas, CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) !=
            CUBLAS_STATUS_SUCCESS) {
        errbuf_fail(err, errlen, "cannot initialise CUDA / cuBLAS");
        goto out;
    }
    size_t free0, total;
    cudaMemGetInfo(&free0, &total);
    if (alloc_activations(m, err, errlen)) goto out;
    /* profile on a scratch cache of one block per layer */
    m->kv_layer_elems = (size_t)m->o.block_size * m->nkv * m->hd;
    m->num_blocks = 1;
    if (dev_alloc((void **)&m->kv, 2 * m->kv_layer_elems * m->L * 2)) { errbuf_fail(err, errlen, "cannot allocate"); goto out; }
    if (profile_step(m, err, errlen)) goto out;
    cudaFree(m->kv);
    m->kv = NULL;
    size_t free1;
    cudaMemGetInfo(&free1, &total);
    mem->total = total;
    mem->weights = m->w.bytes;
    mem->activations = free0 - free1;
    mem->other = total - free0 - m->w.bytes;       /* context, other processes */
    mem->kv_bytes_per_token = (size_t)2 * m->L * m->nkv * m->hd * 2;
    mem->block_size = m->o.block_size;
    size_t block_bytes = mem->kv_bytes_per_token * m->o.block_size;
    double budget = m->o.gpu_memory_utilization * (double)total - (double)(total - free1);
    long nblocks = budget > 0 ? (long)(budget / (double)block_bytes) : 0;
    if (o->num_gpu_blocks > 0) nblocks = o->num_gpu_blocks;
    if (nblocks < m->max_blocks) {
        errbuf_fail(err, errlen, "not enough GPU memory for the KV cache: %.2f GiB x utilization %.2f = %.2f GiB; "
             "in use %.2f GiB (weights %.2f GiB, activation peak %.2f GiB, other %.2f GiB) leaves %.2f GiB "
             "= %ld tokens at %zu bytes/token, but one sequence of max_model_len %d needs %d tokens",
             total / 1073741824.0, m->o.gpu_memory_utilization,
             m->o.gpu_memory_utilization * total / 1073741824.0, (total - free1) / 1073741824.0,
             mem->weights / 1073741824.0, mem->activations / 1073741824.0, mem->other / 1073741824.0,
             budget / 1073741824.0, nblocks * m->o.block_size, mem->kv_bytes_per_token, m->o.max_model_len,
             m->max_blocks * m->o.block_size);
        goto out;
    }
    m->num_blocks = (int)(nblocks > 0x7fffffff / m->o.block_size ? 0x7fffffff / m->o.block_size : nblocks);
    m->kv_layer_elems = (size_t)m->num_blocks * m->o.block_size * m->nkv * m->hd;
    if (dev_alloc((void **)&m->kv, 2 * m->kv_layer_elems * m->L * 2)) {
        errbuf_fail(err, errlen, "cannot allocate the KV cache of %d blocks (%.2f GiB)", m->num_blocks,
             2.0 * m->kv_layer_elems * m->L * 2 / 1073741824.0);
        goto out;
    }
    mem->num_blocks = m->num_blocks;
    m->dump_layer0 = getenv("PAGESIM_DUMP_LAYER0");
    if (getenv("PAGESIM_PROFILE")) {        /* after the profile step: only real steps count */
        m->nev_cap = 16 * m->L + 16;
        m->ev = calloc((size_t)m->nev_cap, sizeof *m->ev);
        m->ev_cat = calloc((size_t)m->nev_cap, sizeof *m->ev_cat);
        for (int i = 0; m->ev && m->ev_cat && i < m->nev_cap; i++)
            if (cudaEventCreate(&m->ev[i]) != cudaSuccess) m->nev_cap = i;
        if (!m->ev_cat) { free(m->ev); m->ev = NULL; }
    }
    mem->kv_cache = 2 * m->kv_layer_elems * m->L * 2;
    mem->kv_tokens = (long)m->num_blocks * m->o.block_size;
    mem->max_concurrency = (double)mem->kv_tokens / m->o.max_model_len;
    rc = 0;
out:
    if (rc) model_free(m);
    else *out = m;
    return rc;
}

void model_free(model *m) {
    if (!m) return;
    void *bufs[] = {m->x, m->res, m->qkv, m->attn, m->gu, m->act, m->hrows, m->logits, m->attn_ws,
                    m->dints, m->dparams, m->dtokens, m->dlogp, m->inv_freq, m->kv};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) if (bufs[i]) cudaFree(bufs[i]);
    if (m->hints) cudaFreeHost(m->hints);
    for (int i = 0; m->ev && i < m->nev_cap; i++) cudaEventDestroy(m->ev[i]);
    free(m->ev);
    free(m->ev_cat);
    if (m->blas) cublasDestroy(m->blas);
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
int model_num_blocks(const model *m) { (void)m; return 0; }
int model_profile_text(const model *m, char *buf, size_t n) { (void)m; if (n) buf[0] = 0; return -1; }
const mc_config *model_config(const model *m) { return &m->c; }
const model_opts *model_options(const model *m) { return &m->o; }
void model_free(model *m) { (void)m; }
#endif
