/* model_probe: see model_probe.h.  Profiling records a CUDA event after each
 * step and adds the intervals up at the end of the forward; the expert loads
 * and chosen experts are copied asynchronously into pinned memory and read
 * at the end of the forward; the layer-0 dump synchronises (a diagnostic).
 * Files: layer 0: int32 magic "PSL0", count, then per tensor a 16-byte name,
 * rows, cols and rows x cols float32; experts: per forward int32 T, k and the
 * number of MoE layers, then per MoE layer its index and ids (T, k). */
#include "engine/model_probe.h"
#include "base/errbuf.h"
#include "engine/kernels_ref.h"
#include "base/clock.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PAGESIM_HAVE_CUDA
static const char *step_names[MP_NSTEPS] = {
    "input copy + embedding", "RMSNorm (+ residual)", "q/k/v GEMM", "bias, q/k norm, RoPE, KV write",
    "attention", "o GEMM", "gate/up GEMM", "SwiGLU", "down GEMM", "router GEMM", "routing (softmax, top-k)", "permutation",
    "experts gate/up + SwiGLU", "experts down", "combine", "all-reduce (tensor parallel)",
    "LoRA adapters (shrink, expand; SwiGLU with them)", "logits rows + vocabulary GEMM"};

struct mprobe {
    int L, max_T, E, k;
    /* profile */
    int          profile;
    cudaEvent_t *ev;                 /* (nev_cap,) */
    int         *ev_step;            /* (nev_cap,) step that ends at each event */
    int          nev, nev_cap;
    double       ms[2][MP_NSTEPS];   /* [decode-only][step] */
    long         steps[2];
    /* expert loads: counts of each MoE layer of the forward, pinned (L, E) */
    int32_t     *counts;
    int          nmoe;               /* MoE layers seen in this forward */
    double       load_max[2], load_cv[2];   /* sums of max/mean and of CV over (forward, layer) */
    long         load_n[2];
    /* chosen experts */
    FILE        *fexp;
    int32_t     *ids;                /* (L, max_T, k) pinned */
    int         *ids_layer;          /* (L,) layer of each slot */
    /* layer 0 */
    FILE        *f0;
    int          n0;
    /* the host's phases: this step's, then the sums [decode-only] */
    int          host;
    double       last, cur[MH_NPHASES], hsum[2][MH_NPHASES];
    long         hsteps[2];
};

mprobe *mprobe_create(const mprobe_opts *o, int L, int max_T, int E, int k, char *err, size_t errlen) {
    if (errlen) err[0] = 0;
    if (!o || (!o->profile && !o->dump_layer0 && !o->dump_experts && !o->host)) return NULL;
    mprobe *p = calloc(1, sizeof *p);
    if (!p) { errbuf_fail(err, errlen, "out of memory"); return NULL; }
    p->L = L; p->max_T = max_T; p->E = E; p->k = k;
    p->host = o->host;
    if (o->profile) {
        p->profile = 1;
        p->nev_cap = 20 * L + 16;
        p->ev = calloc((size_t)p->nev_cap, sizeof *p->ev);
        p->ev_step = calloc((size_t)p->nev_cap, sizeof *p->ev_step);
        if (!p->ev || !p->ev_step) goto oom;
        for (int i = 0; i < p->nev_cap; i++)
            if (cudaEventCreate(&p->ev[i]) != cudaSuccess) { p->nev_cap = i; break; }
        if (E > 0 && cudaMallocHost((void **)&p->counts, sizeof(int32_t) * (size_t)L * E) != cudaSuccess) goto oom;
    }
    if (o->dump_experts && E > 0) {
        if (!(p->fexp = fopen(o->dump_experts, "wb"))) {
            errbuf_fail(err, errlen, "cannot write %s", o->dump_experts);
            mprobe_free(p);
            return NULL;
        }
        p->ids_layer = calloc((size_t)L, sizeof *p->ids_layer);
        if (!p->ids_layer || cudaMallocHost((void **)&p->ids, sizeof(int32_t) * (size_t)L * max_T * k) != cudaSuccess)
            goto oom;
    }
    if (o->dump_layer0) {
        int32_t hdr[2] = {0, 0};
        if (!(p->f0 = fopen(o->dump_layer0, "wb")) || fwrite(hdr, 4, 2, p->f0) != 2) {
            errbuf_fail(err, errlen, "cannot write %s", o->dump_layer0);
            mprobe_free(p);
            return NULL;
        }
    }
    return p;
oom:
    mprobe_free(p);
    errbuf_fail(err, errlen, "out of memory (probes)");
    return NULL;
}

/* layer 0: one tensor (rows, cols) of the GPU as float32 */
static void l0_put(mprobe *p, const char *name, const k_bf16 *dev, int rows, int cols, cudaStream_t s) {
    size_t n = (size_t)rows * cols;
    uint16_t *h = malloc(n * 2);
    float *x = malloc(n * sizeof(float));
    char nm[16] = {0};
    int32_t rc[2] = {rows, cols};
    if (h && x && cudaStreamSynchronize(s) == cudaSuccess &&
        cudaMemcpy(h, dev, n * 2, cudaMemcpyDeviceToHost) == cudaSuccess) {
        for (size_t i = 0; i < n; i++) x[i] = kref_bf2f(h[i]);
        snprintf(nm, sizeof nm, "%s", name);
        fwrite(nm, 1, 16, p->f0);
        fwrite(rc, 4, 2, p->f0);
        fwrite(x, sizeof(float), n, p->f0);
        p->n0++;
    }
    free(h);
    free(x);
}

static void l0_step(mprobe *p, mprobe_point step, const mprobe_view *v) {
    switch (step) {
    case MP_NORM: if (!p->n0) l0_put(p, "xnorm", v->x, v->T, v->D, v->s); break;   /* the attention norm */
    case MP_ROPE_KV: l0_put(p, "qkv", v->qkv, v->T, v->QKV, v->s); break;
    case MP_ATTN: l0_put(p, "attn", v->attn, v->T, v->AO, v->s); break;
    case MP_O: l0_put(p, "oproj", v->x, v->T, v->D, v->s); break;
    case MP_DOWN: case MP_COMBINE: {            /* layer output = res + x (the next norm adds them) */
        int32_t hdr[2] = {0x304c5350 /* "PSL0" */, 0};
        l0_put(p, "res", v->res, v->T, v->D, v->s);
        l0_put(p, "x", v->x, v->T, v->D, v->s);
        hdr[1] = p->n0;
        fseek(p->f0, 0, SEEK_SET);
        fwrite(hdr, 4, 2, p->f0);
        fclose(p->f0);
        p->f0 = NULL;
        break;
    }
    default: break;
    }
}

void mprobe_step(mprobe *p, mprobe_point step, int layer, const mprobe_view *v) {
    if (!p) return;
    if (p->profile && p->nev < p->nev_cap) {
        p->ev_step[p->nev] = step;
        cudaEventRecord(p->ev[p->nev++], v->s);
    }
    if (step == MP_ROUTE && v->moe && p->nmoe < p->L) {
        if (p->ids && v->T <= p->max_T) {
            p->ids_layer[p->nmoe] = layer;
            cudaMemcpyAsync(p->ids + (size_t)p->nmoe * p->max_T * p->k, v->moe->topk_ids,
                            sizeof(int32_t) * (size_t)v->T * p->k, cudaMemcpyDeviceToHost, v->s);
        }
    }
    if (step == MP_PERMUTE && v->moe && p->nmoe < p->L) {
        if (p->counts)
            cudaMemcpyAsync(p->counts + (size_t)p->nmoe * p->E, v->moe->counts, sizeof(int32_t) * p->E,
                            cudaMemcpyDeviceToHost, v->s);
        p->nmoe++;
    }
    if (p->f0 && layer == 0) l0_step(p, step, v);
}

void mprobe_forward_end(mprobe *p, const mprobe_view *v) {
    if (!p) return;
    int kind = v->prefill ? 0 : 1;
    if (p->profile && p->nev >= 2) {
        cudaEventSynchronize(p->ev[p->nev - 1]);
        for (int i = 1; i < p->nev; i++) {
            float ms = 0;
            cudaEventElapsedTime(&ms, p->ev[i - 1], p->ev[i]);
            p->ms[kind][p->ev_step[i]] += ms;
        }
        p->steps[kind]++;
    }
    p->nev = 0;
    if (p->nmoe > 0 && (p->counts || p->fexp)) cudaStreamSynchronize(v->s);
    for (int l = 0; p->counts && l < p->nmoe; l++) {     /* load of each expert: max / mean, CV */
        const int32_t *c = p->counts + (size_t)l * p->E;
        double mean = (double)v->T * p->k / p->E, mx = 0, var = 0;
        for (int e = 0; e < p->E; e++) { mx = c[e] > mx ? c[e] : mx; var += (c[e] - mean) * (c[e] - mean); }
        if (mean <= 0) continue;
        p->load_max[kind] += mx / mean;
        p->load_cv[kind] += sqrt(var / p->E) / mean;
        p->load_n[kind]++;
    }
    if (p->fexp && p->nmoe > 0) {
        int32_t hdr[3] = {v->T, p->k, p->nmoe};
        fwrite(hdr, 4, 3, p->fexp);
        for (int l = 0; l < p->nmoe; l++) {
            fwrite(&p->ids_layer[l], 4, 1, p->fexp);
            fwrite(p->ids + (size_t)l * p->max_T * p->k, 4, (size_t)v->T * p->k, p->fexp);
        }
        fflush(p->fexp);
    }
    p->nmoe = 0;
}

int mprobe_text(const mprobe *p, char *buf, size_t n) {
    size_t off = 0;
    if (n) buf[0] = 0;
    if (!p || !p->profile) return -1;
    for (int k = 0; k < 2; k++) {
        double tot = 0;
        for (int c = 0; c < MP_NSTEPS; c++) tot += p->ms[k][c];
        off += snprintf(buf + off, off < n ? n - off : 0, "%s steps: %ld, GPU time %.1f ms\n",
                        k ? "decode-only" : "with prefill", p->steps[k], tot);
        for (int c = 0; c < MP_NSTEPS && tot > 0; c++)
            if (p->ms[k][c] > 0)
                off += snprintf(buf + off, off < n ? n - off : 0, "  %-32s %10.1f ms %5.1f%%\n", step_names[c],
                                p->ms[k][c], 100 * p->ms[k][c] / tot);
        if (p->load_n[k])
            off += snprintf(buf + off, off < n ? n - off : 0, "  expert load over %ld (step, layer): busiest "
                            "expert %.2fx the mean, coefficient of variation %.2f\n", p->load_n[k],
                            p->load_max[k] / p->load_n[k], p->load_cv[k] / p->load_n[k]);
    }
    return 0;
}

void mprobe_mark(mprobe *p, mprobe_phase ph) {
    if (!p || !p->host) return;
    double t = clock_now_s();
    if (p->last > 0) p->cur[ph] += t - p->last;
    p->last = t;
}

void mprobe_host_step(mprobe *p, int decode_only) {
    if (!p || !p->host) return;
    int k = decode_only ? 1 : 0;
    for (int i = 0; i < MH_NPHASES; i++) {
        if (decode_only >= 0) p->hsum[k][i] += p->cur[i];
        p->cur[i] = 0;
    }
    if (decode_only >= 0) p->hsteps[k]++;
}

int mprobe_host_text(const mprobe *p, char *buf, size_t n) {
    static const char *names[MH_NPHASES] = {"outside the engine (caller)", "schedule (driver, scheduler)",
        "block copies, swaps", "batch build", "upload (check, pack, copy)", "forward launch (kernels or graph)",
        "sample launch", "wait for the GPU + copy-back", "record tokens", "postprocess, metrics"};
    size_t off = 0;
    if (n) buf[0] = 0;
    if (!p || !p->host) return -1;
    off += snprintf(buf + off, off < n ? n - off : 0, "  %-36s %14s %14s\n", "host time per step (us)",
                    "decode-only", "with prefill");
    double tot[2] = {0, 0}, busy[2];
    for (int k = 0; k < 2; k++) for (int i = 0; i < MH_NPHASES; i++) tot[k] += p->hsum[k][i];
    for (int k = 0; k < 2; k++) busy[k] = tot[k] - p->hsum[k][MH_WAIT];
    for (int i = 0; i < MH_NPHASES; i++)
        off += snprintf(buf + off, off < n ? n - off : 0, "  %-36s %14.1f %14.1f\n", names[i],
                        p->hsteps[1] ? 1e6 * p->hsum[1][i] / p->hsteps[1] : 0,
                        p->hsteps[0] ? 1e6 * p->hsum[0][i] / p->hsteps[0] : 0);
    off += snprintf(buf + off, off < n ? n - off : 0, "  %-36s %14.1f %14.1f\n  steps: %ld decode-only, %ld with "
                    "prefill; the host is busy %.1f%% of a decode-only step's time\n", "host busy (all but the wait)",
                    p->hsteps[1] ? 1e6 * busy[1] / p->hsteps[1] : 0, p->hsteps[0] ? 1e6 * busy[0] / p->hsteps[0] : 0,
                    p->hsteps[1], p->hsteps[0], tot[1] > 0 ? 100 * busy[1] / tot[1] : 0);
    return 0;
}

void mprobe_free(mprobe *p) {
    if (!p) return;
    for (int i = 0; p->ev && i < p->nev_cap; i++) cudaEventDestroy(p->ev[i]);
    free(p->ev);
    free(p->ev_step);
    if (p->counts) cudaFreeHost(p->counts);
    if (p->ids) cudaFreeHost(p->ids);
    free(p->ids_layer);
    if (p->fexp) fclose(p->fexp);
    if (p->f0) fclose(p->f0);
    free(p);
}
#else
mprobe *mprobe_create(const mprobe_opts *o, int L, int max_T, int E, int k, char *err, size_t errlen) {
    (void)o; (void)L; (void)max_T; (void)E; (void)k;
    if (errlen) err[0] = 0;
    return NULL;
}
void mprobe_step(mprobe *p, mprobe_point step, int layer, const mprobe_view *v) { (void)p; (void)step; (void)layer; (void)v; }
void mprobe_forward_end(mprobe *p, const mprobe_view *v) { (void)p; (void)v; }
int  mprobe_text(const mprobe *p, char *buf, size_t n) { (void)p; if (n) buf[0] = 0; return -1; }
void mprobe_mark(mprobe *p, mprobe_phase ph) { (void)p; (void)ph; }
void mprobe_host_step(mprobe *p, int decode_only) { (void)p; (void)decode_only; }
int  mprobe_host_text(const mprobe *p, char *buf, size_t n) { (void)p; if (n) buf[0] = 0; return -1; }
void mprobe_free(mprobe *p) { (void)p; }
#endif
