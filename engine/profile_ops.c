/* profile_ops: the engine's operators timed on the GPU (see profile_ops.h).
 * Every op is called the way model.c calls it, on buffers of the model's
 * shape: weights and KV caches rotate over copies larger than the L2 cache
 * (each layer reads its own), activations do not (every layer reuses them).
 * A timing is CUDA events around enough calls for a few milliseconds, after
 * two warm-up calls.  Touches the GPU and its own buffers only. */
#include "engine/profile_ops.h"
#include "base/errbuf.h"
#include "engine/weights.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef PAGESIM_HAVE_CUDA
int pops_measure_ops(const mc_config *c, const pops_opts *o, opp_profile *p, FILE *log, char *err, size_t errlen) {
    (void)c; (void)o; (void)p; (void)log;
    return errbuf_fail(err, errlen, "operator profiles need the GPU: engine/ was built without CUDA (no nvcc)");
}
int pops_run(const mc_config *c, const char *model_dir, unsigned long long dummy_seed, const eng_config *cfg,
             const char *out_path, FILE *log, char *err, size_t errlen) {
    (void)c; (void)model_dir; (void)dummy_seed; (void)cfg; (void)out_path; (void)log;
    return errbuf_fail(err, errlen, "operator profiles need the GPU: engine/ was built without CUDA (no nvcc)");
}
#else
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include "base/rng.h"
#include "engine/kernels.h"
#include "engine/kernels_ref.h"

#define POPS_L2_BYTES (128.0 * 1024 * 1024)   /* rotate weights/KV over more than this (H200 L2: 50 MB) */
/* A heavy op (a call of POPS_HEAVY_MS or more: the GEMMs, attention and MoE
 * layers of prefill-sized steps) runs back to back for POPS_SUSTAIN_MS before
 * it is timed, and is timed over POPS_HEAVY_WINDOW_MS: the engine runs such
 * ops for seconds on end (a bias run's prefill: 16 steps of ~180 ms), where
 * the GPU holds lower clocks than in a burst of a few milliseconds.  In the
 * first H200 profiles (bursts), Qwen2.5-7B's steps of 8,192 tokens ran 7%
 * slower in the engine than their ops' sum, its first one after idle 3%. */
#define POPS_HEAVY_MS        0.1
#define POPS_SUSTAIN_MS      200.0
#define POPS_HEAVY_WINDOW_MS 30.0

typedef struct pops {
    cudaStream_t   s;
    cudaEvent_t    e0, e1;
    cublasHandle_t blas;
    FILE          *log;
    int D, L, nq, nkv, hd, qkv, I, V, E, K, Im;   /* per GPU */
} pops;

typedef int (*pops_fn)(void *ctx, int i);     /* one call; i rotates the buffers */

/* Microseconds per call of fn, or < 0 when a launch failed. */
static double timeit(pops *t, pops_fn fn, void *ctx) {
    float ms = 0;
    if (fn(ctx, 0) || fn(ctx, 1)) return -1;
    cudaEventRecord(t->e0, t->s);
    if (fn(ctx, 2)) return -1;
    cudaEventRecord(t->e1, t->s);
    if (cudaEventSynchronize(t->e1) != cudaSuccess || cudaEventElapsedTime(&ms, t->e0, t->e1) != cudaSuccess) return -1;
    int iters = ms > 0 ? (int)(3.0 / ms) : 200;
    if (iters < 5) iters = 5;
    if (iters > 200) iters = 200;
    if (ms >= POPS_HEAVY_MS) {                   /* sustained, as the engine runs it */
        for (int i = 0, w = (int)(POPS_SUSTAIN_MS / ms); i < w; i++)
            if (fn(ctx, i + 3)) return -1;
        if (iters < (int)(POPS_HEAVY_WINDOW_MS / ms)) iters = (int)(POPS_HEAVY_WINDOW_MS / ms);
    }
    cudaEventRecord(t->e0, t->s);
    for (int i = 0; i < iters; i++)
        if (fn(ctx, i + 3)) return -1;
    cudaEventRecord(t->e1, t->s);
    if (cudaEventSynchronize(t->e1) != cudaSuccess || cudaEventElapsedTime(&ms, t->e0, t->e1) != cudaSuccess) return -1;
    return 1e3 * ms / iters;
}

static int dalloc(void *p, size_t bytes) { return cudaMalloc((void **)p, bytes ? bytes : 16) == cudaSuccess ? 0 : -1; }

/* Copies of one buffer of `bytes` so that a rotation exceeds the L2 cache (1..8). */
static int copies_for(double bytes) {
    int n = (int)ceil(POPS_L2_BYTES / (bytes > 1 ? bytes : 1));
    return n < 1 ? 1 : n > 8 ? 8 : n;
}

/* 1, 2, 4, ... up to most, with midpoints from 16 on; most itself last. */
static int sizes(int *out, int cap, int most) {
    int n = 0;
    for (long v = 1; v <= most && n < cap; v *= 2) {
        out[n++] = (int)v;
        if (v >= 16 && v + v / 2 <= most && n < cap) out[n++] = (int)(v + v / 2);
    }
    if (n > 0 && out[n - 1] != most && n < cap) out[n++] = most;
    return n;
}

#define LOG(...) do { if (t->log) { fprintf(t->log, __VA_ARGS__); fflush(t->log); } } while (0)

/* ---- GEMMs ----------------------------------------------------------------------- */
typedef struct gemm_ctx { pops *t; void *y; int fp32; const k_bf16 *x, *w; int nc, T, N, K; } gemm_ctx;
static int gemm_call(void *c, int i) {
    gemm_ctx *g = c;
    return k_gemm(g->t->blas, g->y, g->fp32, g->x, g->w + (size_t)(i % g->nc) * g->N * g->K, g->T, g->N, g->K, g->t->s);
}

/* Times y (T, N) = x (T, K) @ w (N, K)^T at each T of ts into c. */
static int time_gemm(pops *t, opp_curve *c, const char *name, int N, int K, int fp32, const int *ts, int nt,
                     char *err, size_t errlen) {
    int maxT = ts[nt - 1], nc = copies_for(2.0 * N * K), rc = -1;
    k_bf16 *x = NULL, *w = NULL;
    void *y = NULL;
    if (dalloc(&x, (size_t)maxT * K * 2) || dalloc(&y, (size_t)maxT * N * (fp32 ? 4 : 2)) ||
        dalloc(&w, (size_t)nc * N * K * 2)) {
        errbuf_fail(err, errlen, "%s: cannot allocate %.2f GB", name, ((double)nc * N * K * 2 + (double)maxT * (K + 2.0 * N) * 2) / 1e9);
        goto out;
    }
    k_fill_random(x, (int64_t)maxT * K, 1, 1.0f, t->s);
    k_fill_random(w, (int64_t)nc * N * K, 2, 0.05f, t->s);
    for (int j = 0; j < nt; j++) {
        gemm_ctx g = { t, y, fp32, x, w, nc, ts[j], N, K };
        double us = timeit(t, gemm_call, &g);
        if (us < 0) { errbuf_fail(err, errlen, "%s at %d rows: %s", name, ts[j], k_last_error()); goto out; }
        opp_curve_add(c, ts[j], us);
    }
    LOG("  %-12s N %6d K %6d: %8.1f us at %d rows, %8.1f us at %d\n", name, N, K, c->us[0], ts[0], c->us[nt - 1], maxT);
    rc = 0;
out:
    cudaFree(x); cudaFree(y); cudaFree(w);
    return rc;
}

/* ---- per-token kernels ----------------------------------------------------------- */
typedef struct elem_ctx {
    pops *t;
    const mc_config *c;
    int T;
    k_bf16 *x, *res, *qkv, *gu, *act, *w, *bias, *qn, *kn, *kc, *vc, *table;
    int32_t *pos, *slots;
    float *inv;
} elem_ctx;

/* One layer's per-token kernels, in model.c's order. */
static int elem_layer_call(void *c, int i) {
    elem_ctx *e = c;
    pops *t = e->t;
    int T = e->T;
    float eps = (float)e->c->rms_eps;
    (void)i;
    if (k_add_rmsnorm(e->x, e->res, e->w, T, t->D, eps, t->s)) return -1;
    /* bias, q/k norms, RoPE and the KV write: one kernel, as model.c runs it */
    k_qkv_w qw = {e->c->attn_bias ? e->bias : NULL, e->c->qk_norm ? e->qn : NULL, e->c->qk_norm ? e->kn : NULL, eps};
    if (k_qkv_prep(e->qkv, e->kc, e->vc, &qw, e->pos, e->inv, e->slots, T, t->nq, t->nkv, t->hd, t->qkv, t->s))
        return -1;
    if (k_add_rmsnorm(e->x, e->res, e->w, T, t->D, eps, t->s)) return -1;
    return t->I > 0 ? k_silu_mul(e->act, e->gu, T, t->I, t->s) : 0;
}

/* Once per step: the embedding gather, the residual reset, the final norm, the rows' gather. */
static int elem_step_call(void *c, int i) {
    elem_ctx *e = c;
    pops *t = e->t;
    (void)i;
    if (k_embedding(e->x, e->table, e->pos, e->T, t->D, t->V, t->s)) return -1;
    if (cudaMemsetAsync(e->res, 0, (size_t)e->T * t->D * 2, t->s) != cudaSuccess) return -1;
    if (k_add_rmsnorm(e->x, e->res, e->w, e->T, t->D, (float)e->c->rms_eps, t->s)) return -1;
    return k_gather_rows(e->act, e->x, e->slots, e->T < 256 ? e->T : 256, t->D, t->s);
}

static int time_elementwise(pops *t, const mc_config *c, opp_profile *p, const int *ts, int nt, char *err, size_t errlen) {
    int maxT = ts[nt - 1], half = t->hd / 2, rc = -1;
    size_t T = (size_t)maxT;
    elem_ctx e;
    memset(&e, 0, sizeof e);
    e.t = t; e.c = c;
    int32_t *h = malloc(sizeof(int32_t) * T);
    float *inv = malloc(sizeof(float) * (size_t)half);
    if (!h || !inv || dalloc(&e.x, T * t->D * 2) || dalloc(&e.res, T * t->D * 2) || dalloc(&e.qkv, T * t->qkv * 2) ||
        dalloc(&e.gu, T * 2 * (t->I > 0 ? t->I : 1) * 2) || dalloc(&e.act, T * (t->I > t->D ? t->I : t->D) * 2) ||
        dalloc(&e.w, (size_t)t->D * 2) || dalloc(&e.bias, (size_t)t->qkv * 2) || dalloc(&e.qn, (size_t)t->hd * 2) ||
        dalloc(&e.kn, (size_t)t->hd * 2) || dalloc(&e.kc, T * t->nkv * t->hd * 2) || dalloc(&e.vc, T * t->nkv * t->hd * 2) ||
        dalloc(&e.table, (size_t)t->V * t->D * 2) || dalloc(&e.pos, T * 4) || dalloc(&e.slots, T * 4) ||
        dalloc(&e.inv, (size_t)half * 4)) {
        errbuf_fail(err, errlen, "per-token kernels: cannot allocate buffers for %d rows", maxT);
        goto out;
    }
    k_fill_random(e.x, (int64_t)T * t->D, 3, 1.0f, t->s);
    k_fill_random(e.res, (int64_t)T * t->D, 4, 1.0f, t->s);
    k_fill_random(e.qkv, (int64_t)T * t->qkv, 5, 1.0f, t->s);
    k_fill_random(e.gu, (int64_t)T * 2 * (t->I > 0 ? t->I : 1), 6, 1.0f, t->s);
    k_fill_random(e.w, t->D, 7, 1.0f, t->s);
    k_fill_random(e.bias, t->qkv, 8, 0.1f, t->s);
    k_fill_random(e.qn, t->hd, 9, 1.0f, t->s);
    k_fill_random(e.kn, t->hd, 10, 1.0f, t->s);
    k_fill_random(e.table, (int64_t)t->V * t->D, 11, 1.0f, t->s);
    kref_rope_inv_freq(inv, t->hd, c->rope_theta > 0 ? c->rope_theta : 10000.0, (int)c->rope_kind, c->rope_factor,
                       c->rope_low_freq_factor, c->rope_high_freq_factor, c->rope_orig_max_pos);
    for (int i = 0; i < maxT; i++) h[i] = (int32_t)((i * 7919L) % (t->V < 32768 ? t->V : 32768));
    cudaMemcpy(e.pos, h, T * 4, cudaMemcpyHostToDevice);       /* positions (and embedding ids) */
    for (int i = 0; i < maxT; i++) h[i] = i;
    cudaMemcpy(e.slots, h, T * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(e.inv, inv, (size_t)half * 4, cudaMemcpyHostToDevice);
    for (int j = 0; j < nt; j++) {
        e.T = ts[j];
        double a = timeit(t, elem_layer_call, &e), b = timeit(t, elem_step_call, &e);
        if (a < 0 || b < 0) { errbuf_fail(err, errlen, "per-token kernels at %d rows failed", ts[j]); goto out; }
        opp_curve_add(&p->elem_layer, ts[j], a);
        opp_curve_add(&p->elem_step, ts[j], b);
    }
    LOG("  %-12s %8.1f us per layer at %d rows, %8.1f us at %d\n", "elementwise", p->elem_layer.us[0], ts[0],
        p->elem_layer.us[nt - 1], maxT);
    rc = 0;
out:
    cudaFree(e.x); cudaFree(e.res); cudaFree(e.qkv); cudaFree(e.gu); cudaFree(e.act); cudaFree(e.w); cudaFree(e.bias);
    cudaFree(e.qn); cudaFree(e.kn); cudaFree(e.kc); cudaFree(e.vc); cudaFree(e.table); cudaFree(e.pos);
    cudaFree(e.slots); cudaFree(e.inv);
    free(h); free(inv);
    return rc;
}

/* ---- paged attention ------------------------------------------------------------- */
typedef struct attn_ctx {
    pops *t;
    k_bf16 *kc, *vc, *q, *out;
    float *ws;
    size_t ws_bytes, layer;
    int nl;
    k_attn_batch ab;
} attn_ctx;
static int attn_call(void *c, int i) {
    attn_ctx *a = c;
    pops *t = a->t;
    size_t o = (size_t)(i % a->nl) * a->layer;
    return k_attention(a->out, a->q, t->qkv, a->kc + o, a->vc + o, &a->ab, t->nq, t->nkv, t->hd,
                       1.0f / sqrtf((float)t->hd), a->ws, a->ws_bytes, t->s);
}

/* us per layer of B sequences of context C with Q queries each (KV in shuffled blocks); < 0 on failure. */
static double time_attention(pops *t, int B, int C, int Q, int bs) {
    int per = (C + bs - 1) / bs, nb = B * per;
    attn_ctx a;
    memset(&a, 0, sizeof a);
    a.t = t;
    a.layer = (size_t)nb * bs * t->nkv * t->hd;
    a.nl = copies_for(2.0 * 2 * (double)a.layer);
    a.ws_bytes = k_attention_workspace_bytes(B, t->nq, t->hd, C);
    size_t nints = (size_t)2 * B + 1 + nb;
    int32_t *h = malloc(sizeof(int32_t) * nints), *ints = NULL;
    double us = -1;
    if (!h || dalloc(&a.kc, a.layer * 2 * a.nl) || dalloc(&a.vc, a.layer * 2 * a.nl) ||
        dalloc(&a.q, (size_t)B * Q * t->qkv * 2) || dalloc(&a.out, (size_t)B * Q * t->nq * t->hd * 2) ||
        dalloc(&ints, nints * 4) || dalloc(&a.ws, a.ws_bytes) || k_attention_workspace_init(a.ws, a.ws_bytes, B, t->nq, t->s))
        goto out;
    k_fill_random(a.kc, (int64_t)a.layer * a.nl, 1, 1.0f, t->s);
    k_fill_random(a.vc, (int64_t)a.layer * a.nl, 2, 1.0f, t->s);
    k_fill_random(a.q, (int64_t)B * Q * t->qkv, 3, 1.0f, t->s);
    int32_t *qs = h, *ctx = qs + B + 1, *bt = ctx + B;
    for (int b = 0; b <= B; b++) qs[b] = b * Q;
    for (int b = 0; b < B; b++) ctx[b] = C;
    for (int i = 0; i < nb; i++) bt[i] = i;
    uint64_t st = 7;
    for (int i = nb - 1; i > 0; i--) {                /* blocks scattered, as a pool in use */
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((st >> 33) % (uint64_t)(i + 1)), x = bt[i];
        bt[i] = bt[j]; bt[j] = x;
    }
    cudaMemcpy(ints, h, nints * 4, cudaMemcpyHostToDevice);
    a.ab = (k_attn_batch){ B, B * Q, ints, ints + B + 1, ints + 2 * B + 1, per, bs, Q, C };
    us = timeit(t, attn_call, &a);
out:
    cudaFree(a.kc); cudaFree(a.vc); cudaFree(a.q); cudaFree(a.out); cudaFree(ints); cudaFree(a.ws);
    free(h);
    return us;
}

static int time_attn_all(pops *t, const pops_opts *o, opp_profile *p, char *err, size_t errlen) {
    static const int bs_list[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
    static const int cs_list[] = { 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536 };
    double row = 2.0 * 2 * t->nkv * t->hd, budget = 6e9;        /* KV bytes per token per layer; per case */
    opp_grid *g = &p->attn_decode;
    g->nx = g->ny = 0;
    for (size_t i = 0; i < sizeof bs_list / sizeof *bs_list && bs_list[i] <= o->max_seqs; i++) g->x[g->nx++] = bs_list[i];
    for (size_t j = 0; j < sizeof cs_list / sizeof *cs_list && cs_list[j] <= o->max_context; j++) g->y[g->ny++] = cs_list[j];
    if (g->nx == 0 || g->ny == 0) return errbuf_fail(err, errlen, "attention: no batch or context to time");
    for (int i = 0; i < g->nx; i++) {
        int last = -1;
        for (int j = 0; j < g->ny; j++) {
            if (g->x[i] * g->y[j] * row > budget && last >= 0) {   /* memory-bound: scale the last measured */
                g->us[i][j] = g->us[i][last] * g->y[j] / g->y[last];
                continue;
            }
            double us = time_attention(t, (int)g->x[i], (int)g->y[j], 1, o->block_size);
            if (us < 0) return errbuf_fail(err, errlen, "decode attention %gx%g failed: %s", g->x[i], g->y[j],
                                           cudaGetErrorString(cudaGetLastError()));
            g->us[i][j] = us;
            last = j;
        }
    }
    LOG("  %-12s %8.1f us per layer at %gx%g, %8.1f us at %gx%g\n", "decode attn", g->us[0][0], g->x[0], g->y[0],
        g->us[g->nx - 1][g->ny - 1], g->x[g->nx - 1], g->y[g->ny - 1]);
    int ts[OPP_MAX_POINTS], most = o->max_context > o->max_tokens ? o->max_context : o->max_tokens;
    if (most > 32768) most = 32768;
    int nt = sizes(ts, 24, most);
    for (int j = 0; j < nt; j++) {
        if (ts[j] < 2) continue;                           /* one token is decode */
        double us = time_attention(t, 1, ts[j], ts[j], o->block_size);
        if (us < 0) return errbuf_fail(err, errlen, "prefill attention of %d tokens failed", ts[j]);
        opp_curve_add(&p->attn_prefill, ts[j], us);
    }
    LOG("  %-12s %8.1f us per layer at %g tokens, %8.1f us at %g\n", "prefill attn", p->attn_prefill.us[0],
        p->attn_prefill.x[0], p->attn_prefill.us[p->attn_prefill.n - 1], p->attn_prefill.x[p->attn_prefill.n - 1]);
    return 0;
}

/* ---- LM head and sampling ----------------------------------------------------------- */
typedef struct sample_ctx { pops *t; int32_t *tok; const float *logits; const k_sample_params *params; int R; } sample_ctx;
static int sample_call(void *c, int i) {
    sample_ctx *s = c;
    (void)i;
    return k_sample(s->tok, s->logits, s->params, s->R, s->t->V, s->t->s);
}

/* Greedy into p->sampling, and at the study's temperature 0.6 and top-p 0.8 into p->sampling_topp. */
static int time_sampling(pops *t, opp_profile *p, const int *rs, int nr, char *err, size_t errlen) {
    int R = rs[nr - 1], rc = -1;
    float *logits = NULL, *row = malloc(sizeof(float) * (size_t)t->V);
    int32_t *tok = NULL;
    k_sample_params *params = NULL, *hp = calloc((size_t)R, sizeof *hp);
    if (!row || !hp || dalloc(&logits, (size_t)R * t->V * 4) || dalloc(&tok, (size_t)R * 4) ||
        dalloc(&params, (size_t)R * sizeof *params)) {
        errbuf_fail(err, errlen, "sampling: cannot allocate %d rows of %d logits", R, t->V);
        goto out;
    }
    uint64_t st = 5;
    for (int v = 0; v < t->V; v++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        row[v] = (float)((st >> 40) % 2000) / 100.0f;
    }
    for (int r = 0; r < R; r++) cudaMemcpy(logits + (size_t)r * t->V, row, sizeof(float) * (size_t)t->V, cudaMemcpyHostToDevice);
    for (int topp = 0; topp <= 1; topp++) {
        for (int r = 0; r < R; r++)                     /* bench: greedy; the bias study: T 0.6, top-p 0.8 */
            hp[r] = topp ? (k_sample_params){ 0.6f, 0, 0.8f, (uint64_t)r, 0 } : (k_sample_params){ 0.0f, 0, 1.0f, (uint64_t)r, 0 };
        cudaMemcpy(params, hp, (size_t)R * sizeof *hp, cudaMemcpyHostToDevice);
        for (int j = 0; j < nr; j++) {
            sample_ctx s = { t, tok, logits, params, rs[j] };
            double us = timeit(t, sample_call, &s);
            if (us < 0) { errbuf_fail(err, errlen, "sampling %d rows failed", rs[j]); goto out; }
            opp_curve_add(topp ? &p->sampling_topp : &p->sampling, rs[j], us);
        }
    }
    LOG("  %-12s %8.1f us greedy, %8.1f us at T 0.6 / top-p 0.8 for %d rows\n", "sampling",
        p->sampling.us[nr - 1], p->sampling_topp.us[nr - 1], R);
    rc = 0;
out:
    cudaFree(logits); cudaFree(tok); cudaFree(params);
    free(row); free(hp);
    return rc;
}

/* ---- mixture of experts ------------------------------------------------------------ */
typedef struct moe_ctx {
    pops *t;
    int T;
    k_bf16 *x, *router, *rlogits, *w_gu, *w_down, *act, *y, *out;
#ifdef K_MOE_MAX_EXPERTS
    k_moe m;
#endif
} moe_ctx;

#ifdef K_MOE_MAX_EXPERTS
/* The engine's MoE layer (engine/moe.cu): router GEMM, routing, permutation,
 * grouped gate/up + SwiGLU, grouped down, combine. */
static int moe_call(void *c, int i) {
    moe_ctx *m = c;
    pops *t = m->t;
    (void)i;
    return k_gemm(t->blas, m->rlogits, 0, m->x, m->router, m->T, t->E, t->D, t->s) ||
           k_moe_route(&m->m, m->rlogits, m->T, 1, t->s) || k_moe_permute(&m->m, m->T, t->s) ||
           k_moe_gate_up(&m->m, m->act, m->x, m->w_gu, t->s) || k_moe_down(&m->m, m->y, m->act, m->w_down, t->s) ||
           k_moe_combine(&m->m, m->out, m->y, t->s);
}
#else
/* Without engine/moe.cu (an older tree): the router GEMM and, for the tokens spread
 * evenly over the experts, one gate/up GEMM, SwiGLU and down GEMM per expert
 * that gets rows (cuBLAS, as a first engine would run them). */
static int moe_call(void *c, int i) {
    moe_ctx *m = c;
    pops *t = m->t;
    (void)i;
    long pairs = (long)m->T * t->K;
    int active = pairs < t->E ? (int)pairs : t->E, rows = (int)((pairs + active - 1) / active);
    if (k_gemm(t->blas, m->rlogits, 0, m->x, m->router, m->T, t->E, t->D, t->s)) return -1;
    for (int e = 0; e < active; e++) {
        size_t gu = (size_t)e * 2 * t->Im * t->D, dn = (size_t)e * t->D * t->Im;
        if (k_gemm(t->blas, m->y, 0, m->x, m->w_gu + gu, rows, 2 * t->Im, t->D, t->s) ||
            k_silu_mul(m->act, m->y, rows, t->Im, t->s) ||
            k_gemm(t->blas, m->out, 0, m->act, m->w_down + dn, rows, t->D, t->Im, t->s))
            return -1;
    }
    return 0;
}
#endif

static int time_moe(pops *t, opp_profile *p, const int *ts, int nt, int impl, char *err, size_t errlen) {
    int maxT = ts[nt - 1], rc = -1;
    size_t T = (size_t)maxT, TK = T * t->K, wide = (size_t)(2 * t->Im > t->D ? 2 * t->Im : t->D);
    moe_ctx m;
    memset(&m, 0, sizeof m);
    m.t = t;
    if (dalloc(&m.x, T * t->D * 2) || dalloc(&m.router, (size_t)t->E * t->D * 2) || dalloc(&m.rlogits, T * t->E * 2) ||
        dalloc(&m.w_gu, (size_t)t->E * 2 * t->Im * t->D * 2) || dalloc(&m.w_down, (size_t)t->E * t->D * t->Im * 2) ||
        dalloc(&m.act, TK * t->Im * 2) || dalloc(&m.y, TK * wide * 2) || dalloc(&m.out, TK * t->D * 2)) {
        errbuf_fail(err, errlen, "MoE layer: cannot allocate its experts and buffers for %d tokens", maxT);
        goto out;
    }
#ifdef K_MOE_MAX_EXPERTS
    if (k_moe_create(&m.m, t->E, t->K, maxT, t->D, t->Im, impl, t->blas)) {
        errbuf_fail(err, errlen, "MoE layer: k_moe_create failed");
        goto out;
    }
#endif
    /* rows of std 1 (an RMSNorm's output) and the dummy model's router (engine/weights.c:
     * row r of std (2 / sqrt(D)) (1 + 0.3 u_r)): logits of std ~2 and uneven experts (the
     * busiest 2-3.5x the mean, as trained routers), not the even loads of one scale */
    k_fill_random(m.x, (int64_t)T * t->D, 12, 1.7320508f, t->s);
    for (int r = 0; r < t->E; r++) {
        uint64_t rs = rng_mix64(13 ^ rng_mix64((uint64_t)r));
        float u = 2.0f * kref_uniform(rs, 1, 0) - 1.0f, sd = 2.0f / sqrtf((float)t->D) * (1.0f + 0.3f * u);
        k_fill_random(m.router + (size_t)r * t->D, t->D, rs, sd * 1.7320508f, t->s);
    }
    k_fill_random(m.w_gu, (int64_t)t->E * 2 * t->Im * t->D, 14, 0.05f, t->s);
    k_fill_random(m.w_down, (int64_t)t->E * t->D * t->Im, 15, 0.05f, t->s);
    for (int j = 0; j < nt; j++) {
        m.T = ts[j];
        double us = timeit(t, moe_call, &m);
        if (us < 0) { errbuf_fail(err, errlen, "MoE layer at %d tokens failed: %s", ts[j], k_last_error()); goto out; }
        opp_curve_add(&p->moe_layer, ts[j], us);
    }
    LOG("  %-12s %8.1f us at %d tokens, %8.1f us at %d\n", "moe layer", p->moe_layer.us[0], ts[0],
        p->moe_layer.us[nt - 1], maxT);
    rc = 0;
out:
#ifdef K_MOE_MAX_EXPERTS
    k_moe_free(&m.m);
#endif
    cudaFree(m.x); cudaFree(m.router); cudaFree(m.rlogits); cudaFree(m.w_gu); cudaFree(m.w_down);
    cudaFree(m.act); cudaFree(m.y); cudaFree(m.out);
    return rc;
}

/* ---- the whole profile ---------------------------------------------------------------- */
static void shape(opp_profile *p, const mc_config *c, const pops_opts *o, pops *t) {
    int tp = o->tp > 0 ? o->tp : 1;
    p->tp = tp;
    p->block_size = o->block_size;
    snprintf(p->model, sizeof p->model, "%s", c->name);
    p->hidden = c->hidden_size; p->layers = c->num_layers; p->heads = c->num_heads; p->kv_heads = c->num_kv_heads;
    p->head_dim = c->head_dim; p->intermediate = c->intermediate_size; p->vocab = c->vocab_size;
    p->experts = c->num_experts; p->experts_per_tok = c->experts_per_tok; p->moe_intermediate = c->moe_intermediate_size;
    /* Megatron split: heads, MLP and experts' columns and the vocabulary over tp;
     * KV heads replicated when fewer than GPUs */
    t->D = c->hidden_size; t->L = c->num_layers; t->hd = c->head_dim;
    t->nq = c->num_heads / tp;
    t->nkv = c->num_kv_heads >= tp ? c->num_kv_heads / tp : 1;
    t->qkv = (t->nq + 2 * t->nkv) * t->hd;
    t->I = c->num_experts > 0 ? 0 : c->intermediate_size / tp;
    t->V = c->vocab_size / tp;
    t->E = c->num_experts; t->K = c->experts_per_tok; t->Im = c->moe_intermediate_size / tp;
}

int pops_measure_ops(const mc_config *c, const pops_opts *o, opp_profile *p, FILE *log, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    pops tt, *t = &tt;
    memset(t, 0, sizeof *t);
    t->log = log;
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return errbuf_fail(err, errlen, "no CUDA device");
    snprintf(p->gpu, sizeof p->gpu, "%.63s", prop.name);
    shape(p, c, o, t);
    if (c->num_heads % p->tp || t->I * p->tp != (c->num_experts > 0 ? 0 : c->intermediate_size))
        return errbuf_fail(err, errlen, "%s: heads or MLP width do not split over %d GPUs", c->name, p->tp);
    if (cudaStreamCreate(&t->s) != cudaSuccess || cudaEventCreate(&t->e0) != cudaSuccess ||
        cudaEventCreate(&t->e1) != cudaSuccess || cublasCreate(&t->blas) != CUBLAS_STATUS_SUCCESS)
        return errbuf_fail(err, errlen, "cannot create a CUDA stream, events or a cuBLAS handle");
    cublasSetStream(t->blas, t->s);
    /* the engine's math mode (engine/model.c): no bf16 partial sums in split-K, which
     * rules out some kernels cuBLAS would pick for the narrow GEMMs otherwise */
    cublasSetMathMode(t->blas, CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
    int ts[OPP_MAX_POINTS], rs[OPP_MAX_POINTS], rc = -1;
    int nt = sizes(ts, 30, o->max_tokens), nr = sizes(rs, 30, o->max_seqs);
    LOG("profiling %s on %s (tp %d: heads %d + %d, MLP %d, vocab %d per GPU), %d token counts up to %d\n", c->name,
        p->gpu, p->tp, t->nq, t->nkv, t->I, t->V, nt, o->max_tokens);
    if (time_gemm(t, &p->gemm[OPP_QKV], "gemm qkv", t->qkv, t->D, 0, ts, nt, err, errlen) ||
        time_gemm(t, &p->gemm[OPP_O], "gemm o", t->D, t->nq * t->hd, 0, ts, nt, err, errlen) ||
        (t->I > 0 && time_gemm(t, &p->gemm[OPP_GATE_UP], "gemm gate_up", 2 * t->I, t->D, 0, ts, nt, err, errlen)) ||
        (t->I > 0 && time_gemm(t, &p->gemm[OPP_DOWN], "gemm down", t->D, t->I, 0, ts, nt, err, errlen)) ||
        time_gemm(t, &p->lm_head, "lm head", t->V, t->D, 1, rs, nr, err, errlen) ||
        time_elementwise(t, c, p, ts, nt, err, errlen) || time_attn_all(t, o, p, err, errlen) ||
        time_sampling(t, p, rs, nr, err, errlen) || (t->E > 0 && time_moe(t, p, ts, nt, o->moe_gemm, err, errlen)))
        goto out;
    rc = 0;
out:
    cublasDestroy(t->blas);
    cudaEventDestroy(t->e0); cudaEventDestroy(t->e1);
    cudaStreamDestroy(t->s);
    return rc;
}

int pops_run(const mc_config *c, const char *model_dir, unsigned long long dummy_seed, const eng_config *cfg,
             const char *out_path, FILE *log, char *err, size_t errlen) {
    static opp_profile p;                                /* ~30 KB: off the stack */
    const model_opts *mo = &cfg->model;
    pops_opts o = { mo->max_num_batched_tokens > 0 ? mo->max_num_batched_tokens : 8192,
                    mo->max_num_seqs > 0 ? mo->max_num_seqs : 256, mo->max_model_len > 0 ? mo->max_model_len : 8192,
                    mo->block_size > 0 ? mo->block_size : 16, 1, mo->moe_gemm };
    if (pops_measure_ops(c, &o, &p, log, err, errlen)) return -1;
    /* the CPU side needs the engine to run this model; a model it cannot run
     * yet (a new architecture) keeps its op timings and a CPU side of 0 */
    w_weights w;
    model_mem mem;
    eng_config ec = *cfg;
    if (ec.model.max_model_len <= 0) ec.model.max_model_len = 4096;
    eng *e = NULL;
    if ((model_dir ? w_load(&w, model_dir, c, err, errlen) : w_dummy(&w, c, dummy_seed, err, errlen)) == 0)
        e = eng_create(c, &w, &ec, &mem, err, errlen);
    if (!e) {
        if (log) fprintf(log, "  warning: no engine for %s (%s): the profile has no CPU side\n", c->name, err);
    } else {
        int rc = pops_measure_cpu(e, c, o.max_seqs, &p, log, err, errlen);
        eng_free(e);
        if (rc) return -1;
    }
    return opp_save(&p, out_path, err, errlen);
}
#endif
