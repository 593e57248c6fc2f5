/* bench_moe: see bench_moe.h.  One layer's weights at the config's shape
 * (E experts of width Im, hidden D: for Qwen3-30B-A3B 1.2 GB, far over the
 * 60 MB L2, so every call reads them from memory).  Each op is timed with
 * CUDA events over ITERS calls after WARM; the layer is the sum of its ops
 * run back to back.  FLOPs: gate/up 2 Tk (2 Im) D, down 2 Tk D Im, router
 * 2 T E D; bytes: the touched experts' weights. */
#include "apps/engine/bench_moe.h"
#include "engine/kernels.h"
#include "engine/kernels_ref.h"
#include "base/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <cublas_v2.h>

#define WARM 3
#define ITERS 20

typedef struct moe_bufs {
    int T, D, E, k, Im;
    k_bf16 *x, *wr, *wgu, *wd, *lg, *act, *ey, *out;   /* (T,D) (E,D) (E,2Im,D) (E,D,Im) (T,E) (Tk,Im) (Tk,D) (T,D) */
    int32_t *ids;                                      /* (T, k) host: the routing */
    float *w;                                          /* (T, k) host */
} moe_bufs;

enum { OP_ROUTER, OP_ROUTE, OP_PERMUTE, OP_GATE_UP, OP_DOWN, OP_COMBINE, OP_N };

static int run_op(k_moe *m, cublasHandle_t h, const moe_bufs *b, int op) {
    switch (op) {
    case OP_ROUTER: return k_gemm(h, b->lg, 0, b->x, b->wr, b->T, b->E, b->D, 0);
    case OP_ROUTE: return k_moe_route(m, b->lg, b->T, 1, 0);
    case OP_PERMUTE: return k_moe_permute(m, b->T, 0);
    case OP_GATE_UP: return k_moe_gate_up(m, b->act, b->x, b->wgu, 0);
    case OP_DOWN: return k_moe_down(m, b->ey, b->act, b->wd, 0);
    default: return k_moe_combine(m, b->out, b->ey, 0);
    }
}

/* ms per call of op, or < 0 */
static double time_op(k_moe *m, cublasHandle_t h, const moe_bufs *b, int op) {
    cudaEvent_t e0, e1;
    float ms = -1;
    for (int i = 0; i < WARM; i++) if (run_op(m, h, b, op)) return -1;
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < ITERS; i++) if (run_op(m, h, b, op)) return -1;
    cudaEventRecord(e1, 0);
    if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) ms = -1;
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return ms < 0 ? -1 : ms / ITERS;
}

/* ms of the whole layer, ops back to back (with_router: from the router GEMM on) */
static double time_layer(k_moe *m, cublasHandle_t h, const moe_bufs *b, int with_router) {
    cudaEvent_t e0, e1;
    float ms = -1;
    int first = with_router ? OP_ROUTER : OP_PERMUTE;
    for (int i = 0; i < WARM + ITERS; i++) {
        if (i == WARM) { cudaEventCreate(&e0); cudaEventCreate(&e1); cudaEventRecord(e0, 0); }
        for (int op = first; op < OP_N; op++) if (run_op(m, h, b, op)) return -1;
    }
    cudaEventRecord(e1, 0);
    if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) ms = -1;
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return ms < 0 ? -1 : ms / ITERS;
}

/* uniform routing: k distinct experts per token from splitmix64, weights 1/k */
static void uniform_routing(moe_bufs *b, uint64_t seed) {
    uint64_t st = seed;
    char *used = malloc((size_t)b->E);
    for (int t = 0; t < b->T; t++) {
        memset(used, 0, (size_t)b->E);
        for (int i = 0; i < b->k; i++) {
            int e;
            do e = (int)(rng_splitmix64(&st) % (uint64_t)b->E); while (used[e]);
            used[e] = 1;
        }
        for (int e = 0, i = 0; e < b->E; e++)
            if (used[e]) { b->ids[(size_t)t * b->k + i] = e; b->w[(size_t)t * b->k + i] = 1.0f / b->k; i++; }
    }
    free(used);
}

/* the dummy router of engine/weights.c (row e: std (2 / sqrt(D)) (1 + 0.3 u_e)) on random x */
static int router_routing(k_moe *m, cublasHandle_t h, moe_bufs *b) {
    for (int e = 0; e < b->E; e++) {
        uint64_t rs = rng_mix64(0x5eed ^ (uint64_t)e);
        float u = 2.0f * kref_uniform(rs, 1, 0) - 1.0f, std = 2.0f / sqrtf((float)b->D) * (1.0f + 0.3f * u);
        if (k_fill_random(b->wr + (size_t)e * b->D, b->D, rs, std * 1.7320508f, 0)) return -1;
    }
    if (run_op(m, h, b, OP_ROUTER) || run_op(m, h, b, OP_ROUTE) || cudaDeviceSynchronize() != cudaSuccess ||
        cudaMemcpy(b->ids, m->topk_ids, sizeof(int32_t) * (size_t)b->T * b->k, cudaMemcpyDeviceToHost) ||
        cudaMemcpy(b->w, m->topk_w, sizeof(float) * (size_t)b->T * b->k, cudaMemcpyDeviceToHost))
        return -1;
    return 0;
}

/* busiest expert / mean, experts touched */
static void load_stats(const moe_bufs *b, double *imb, int *touched) {
    int *c = calloc((size_t)b->E, sizeof *c), mx = 0;
    for (size_t i = 0; i < (size_t)b->T * b->k; i++) c[b->ids[i]]++;
    *touched = 0;
    for (int e = 0; e < b->E; e++) { mx = c[e] > mx ? c[e] : mx; *touched += c[e] > 0; }
    *imb = mx / ((double)b->T * b->k / b->E);
    free(c);
}

static int one_case(moe_bufs *b, cublasHandle_t h, int routing, double pt, double pg, FILE *rf, FILE *js, int *first) {
    static const char *rname[2] = {"uniform", "router"}, *pname[2] = {"grouped", "cublas"};
    double imb = 0;
    int touched = 0;
    for (int path = K_MOE_GEMM_GROUPED; path <= K_MOE_GEMM_CUBLAS; path++) {
        k_moe m;
        if (k_moe_create(&m, b->E, b->k, b->T, b->D, b->Im, path, h)) return -1;
        if (routing == 1 && path == K_MOE_GEMM_GROUPED && router_routing(&m, h, b)) { k_moe_free(&m); return -1; }
        if (routing == 0 && path == K_MOE_GEMM_GROUPED) uniform_routing(b, 0x1234 + (uint64_t)b->T);
        if (path == K_MOE_GEMM_GROUPED) {
            load_stats(b, &imb, &touched);
            if (rf) {                      /* for bench_moe_torch.py: T k E routing, then ids (T, k) */
                int32_t hdr[4] = {b->T, b->k, b->E, routing};
                fwrite(hdr, 4, 4, rf);
                fwrite(b->ids, 4, (size_t)b->T * b->k, rf);
                fwrite(b->w, 4, (size_t)b->T * b->k, rf);
            }
        }
        cudaMemcpy(m.topk_ids, b->ids, sizeof(int32_t) * (size_t)b->T * b->k, cudaMemcpyHostToDevice);
        cudaMemcpy(m.topk_w, b->w, sizeof(float) * (size_t)b->T * b->k, cudaMemcpyHostToDevice);
        double ms[OP_N];
        for (int op = 0; op < OP_N; op++) {
            if (op == OP_ROUTE || (op == OP_ROUTER)) { ms[op] = 0; continue; }   /* the routing stays as given */
            if ((ms[op] = time_op(&m, h, b, op)) < 0) { k_moe_free(&m); return -1; }
        }
        double layer = time_layer(&m, h, b, 0);
        k_moe_free(&m);
        double tk = (double)b->T * b->k, fgu = 2 * tk * 2 * b->Im * b->D, fd = 2 * tk * b->D * b->Im;
        double wbytes = (double)touched * 3 * b->D * b->Im * 2;
        printf("%6d %-8s %-7s %5.2fx %4d | %8.3f %7.1f %5.1f%% | %8.3f %7.1f %5.1f%% | %7.3f %7.3f | %8.3f %7.0f %5.1f%%\n",
               b->T, rname[routing], pname[path], imb, touched, ms[OP_GATE_UP], fgu / ms[OP_GATE_UP] / 1e9,
               100 * fgu / ms[OP_GATE_UP] / 1e9 / pt, ms[OP_DOWN], fd / ms[OP_DOWN] / 1e9,
               100 * fd / ms[OP_DOWN] / 1e9 / pt, ms[OP_PERMUTE], ms[OP_COMBINE], layer,
               wbytes / (ms[OP_GATE_UP] + ms[OP_DOWN]) / 1e6, 100 * wbytes / (ms[OP_GATE_UP] + ms[OP_DOWN]) / 1e6 / pg);
        if (js) fprintf(js, "%s{\"tokens\": %d, \"routing\": \"%s\", \"path\": \"%s\", \"busiest_over_mean\": %.3f, "
                        "\"experts_touched\": %d, \"gate_up_ms\": %.4f, \"down_ms\": %.4f, \"permute_ms\": %.4f, "
                        "\"combine_ms\": %.4f, \"layer_ms\": %.4f, \"gate_up_tflops\": %.1f, \"down_tflops\": %.1f, "
                        "\"weights_gbps\": %.0f}", *first ? "" : ", ", b->T, rname[routing], pname[path], imb, touched,
                        ms[OP_GATE_UP], ms[OP_DOWN], ms[OP_PERMUTE], ms[OP_COMBINE], layer, fgu / ms[OP_GATE_UP] / 1e9,
                        fd / ms[OP_DOWN] / 1e9, wbytes / (ms[OP_GATE_UP] + ms[OP_DOWN]) / 1e6);
        *first = 0;
    }
    /* the router and routing kernels of the layer (the same for both paths) */
    return 0;
}

int bench_moe_layer(const mc_config *c, const char *spec, double pt, double pg, const char *save_routing, FILE *js) {
    if (c->num_experts <= 0) { fprintf(stderr, "engine/bench: --moe-layer needs a mixture-of-experts config\n"); return 1; }
    int Ts[16], n = 0;
    for (const char *p = spec; *p && n < 16;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 65536) { fprintf(stderr, "engine/bench: --moe-layer wants T[,T...], got '%s'\n", spec); return 1; }
        Ts[n++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') { fprintf(stderr, "engine/bench: --moe-layer wants T[,T...], got '%s'\n", spec); return 1; }
    }
    int maxT = 0;
    for (int i = 0; i < n; i++) maxT = Ts[i] > maxT ? Ts[i] : maxT;
    moe_bufs b = {0, c->hidden_size, c->num_experts, c->experts_per_tok, c->moe_intermediate_size,
                  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t Tk = (size_t)maxT * b.k, D = (size_t)b.D, E = (size_t)b.E, Im = (size_t)b.Im;
    cublasHandle_t h = NULL;
    FILE *rf = NULL;
    int rc = 1, first = 1;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(h, CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) ||
        cudaMalloc((void **)&b.x, maxT * D * 2) || cudaMalloc((void **)&b.wr, E * D * 2) ||
        cudaMalloc((void **)&b.wgu, E * 2 * Im * D * 2) || cudaMalloc((void **)&b.wd, E * D * Im * 2) ||
        cudaMalloc((void **)&b.lg, maxT * E * 2) || cudaMalloc((void **)&b.act, Tk * Im * 2) ||
        cudaMalloc((void **)&b.ey, Tk * D * 2) || cudaMalloc((void **)&b.out, maxT * D * 2) ||
        !(b.ids = malloc(Tk * 4)) || !(b.w = malloc(Tk * 4))) {
        fprintf(stderr, "engine/bench: cannot allocate the layer for --moe-layer\n");
        goto out;
    }
    if (save_routing && !(rf = fopen(save_routing, "wb"))) { fprintf(stderr, "engine/bench: cannot write %s\n", save_routing); goto out; }
    k_fill_random(b.x, (int64_t)(maxT * D), 1, 1.7320508f, 0);            /* std 1, as after an RMSNorm */
    k_fill_random(b.wgu, (int64_t)(E * 2 * Im * D), 2, 0.0346f, 0);       /* std 0.02 */
    k_fill_random(b.wd, (int64_t)(E * D * Im), 3, 0.0346f, 0);
    printf("MoE layer of %s: %d experts of width %d, hidden %d, %d per token; peaks %.0f TFLOP/s, %.0f GB/s; "
           "ms per call (%d after %d)\n", c->name, b.E, b.Im, b.D, b.k, pt, pg, ITERS, WARM);
    printf("%6s %-8s %-7s %6s %4s | %8s %7s %6s | %8s %7s %6s | %7s %7s | %8s %7s %6s\n", "tokens", "routing", "path",
           "busy", "exp", "gate/up", "TFLOP/s", "%peak", "down", "TFLOP/s", "%peak", "permute", "combine", "layer",
           "wGB/s", "%peak");
    if (js) fprintf(js, "{\"config\": \"%s\", \"peak_tflops\": %.1f, \"peak_gbps\": %.1f, \"cases\": [", c->name, pt, pg);
    for (int i = 0; i < n; i++) {
        b.T = Ts[i];
        for (int routing = 0; routing < 2; routing++)
            if (one_case(&b, h, routing, pt, pg, rf, js, &first)) {
                fprintf(stderr, "engine/bench: --moe-layer %d failed: %s; %s\n", b.T,
                        cudaGetErrorString(cudaGetLastError()), k_last_error());
                goto out;
            }
        /* the router GEMM and the fused routing kernel at this T */
        k_moe m;
        if (!k_moe_create(&m, b.E, b.k, b.T, b.D, b.Im, K_MOE_GEMM_GROUPED, h)) {
            double r0 = time_op(&m, h, &b, OP_ROUTER), r1 = time_op(&m, h, &b, OP_ROUTE);
            printf("%6d router GEMM %.3f ms, routing (softmax, top-%d) %.3f ms\n", b.T, r0, b.k, r1);
            k_moe_free(&m);
        }
    }
    if (js) fprintf(js, "]}\n");
    rc = 0;
out:
    if (rf) fclose(rf);
    cudaFree(b.x); cudaFree(b.wr); cudaFree(b.wgu); cudaFree(b.wd); cudaFree(b.lg); cudaFree(b.act);
    cudaFree(b.ey); cudaFree(b.out);
    free(b.ids); free(b.w);
    if (h) cublasDestroy(h);
    return rc;
}
#else
int bench_moe_layer(const mc_config *c, const char *spec, double pt, double pg, const char *save_routing, FILE *js) {
    (void)c; (void)spec; (void)pt; (void)pg; (void)save_routing; (void)js;
    fprintf(stderr, "engine/bench: built without CUDA\n");
    return 1;
}
#endif
