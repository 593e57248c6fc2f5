/* bench_awq: see bench_awq.h.  Each call goes round copies of its weights
 * (at least 256 MB in all) so that the 60 MB L2 cache holds none of what a
 * call reads; 20 timed calls after 3. */
#include "apps/engine/bench_awq.h"
#include "engine/awq.h"
#include "engine/awq_weights.h"
#include <stdlib.h>
#include <string.h>
#ifdef PAGESIM_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

static const char *const lin_names[AWQ_NLIN] = {"qkv", "o", "gate_up", "down"};

double bench_copy_gbps(void) {
    size_t n = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0, e1;
    float ms = 0;
    if (cudaMalloc(&a, n) || cudaMalloc(&b, n)) { cudaFree(a); return 0; }
    cudaMemset(a, 1, n);
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < 10; i++) cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, 0);
    cudaEventRecord(e1, 0);
    cudaEventSynchronize(e1);
    cudaEventElapsedTime(&ms, e0, e1);
    cudaFree(a); cudaFree(b);
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return ms > 0 ? 2.0 * n * 10 / (ms * 1e-3) / 1e9 : 0;
}

typedef struct awq_case {
    int K, N, G, copies;
    k_awq_linear *q;          /* (copies,) */
    void *qarena;
    k_bf16 *w16;              /* (copies, N, K) */
    k_bf16 *x, *y;            /* (T, K), (T, N) */
} awq_case;

/* microseconds per call: AWQ (bf16 = 0) or cuBLAS bf16 (1) */
static double time_calls(awq_case *a, int T, int bf16, void *blas, const k_awq_work *work) {
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    int iters = 20, rc = 0;
    for (int i = 0; i < iters + 3; i++) {
        if (i == 3) cudaEventRecord(e0, 0);
        int c = i % a->copies;
        rc |= bf16 ? k_gemm(blas, a->y, 0, a->x, a->w16 + (size_t)c * a->N * a->K, T, a->N, a->K, 0)
                   : k_awq_gemm(blas, a->y, a->x, &a->q[c], T, work, 0);
    }
    cudaEventRecord(e1, 0);
    float ms = 0;
    int ok = !rc && cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return ok ? 1e3 * ms / iters : -1;
}

static int case_make(awq_case *a, int K, int N, int G, int maxT) {
    memset(a, 0, sizeof *a);
    a->K = K; a->N = N; a->G = G;
    size_t qb = awq_qw_bytes(K, N), sb = awq_scales_bytes(K, N, G), zb = awq_zeros_bytes(K, N, G);
    size_t one = (qb + sb + zb + 3 * 256), w16 = (size_t)K * N * 2;
    a->copies = (int)((256u << 20) / w16) + 1;
    if (a->copies > 16) a->copies = 16;
    a->q = calloc((size_t)a->copies, sizeof *a->q);
    if (!a->q || cudaMalloc(&a->qarena, one * a->copies) || cudaMalloc((void **)&a->w16, w16 * a->copies) ||
        cudaMalloc((void **)&a->x, (size_t)maxT * K * 2) || cudaMalloc((void **)&a->y, (size_t)maxT * N * 2))
        return -1;
    for (int c = 0; c < a->copies; c++) {
        unsigned char *b = (unsigned char *)a->qarena + one * c;
        a->q[c] = (k_awq_linear){K, N, G, (uint32_t *)b, (uint16_t *)(b + ((qb + 255) & ~(size_t)255)),
                                 (uint32_t *)(b + ((qb + 255) & ~(size_t)255) + ((sb + 255) & ~(size_t)255))};
        if (k_awq_fill(&a->q[c], 17 + (uint64_t)c, 0.002f, 0.004f, 0) ||
            k_awq_dequant(a->w16 + (size_t)c * N * K, &a->q[c], 0))
            return -1;
    }
    k_fill_random(a->x, (int64_t)maxT * K, 3, 1.0f, 0);
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : -1;
}

static void case_free(awq_case *a) {
    cudaFree(a->qarena); cudaFree(a->w16); cudaFree(a->x); cudaFree(a->y);
    free(a->q);
}

int bench_awq_gemm(const mc_config *c, const char *spec, FILE *js) {
    int Ts[32], nT = 0, maxT = 1;
    for (const char *p = spec; *p && nT < 32;) {
        char *end;
        long t = strtol(p, &end, 10);
        if (end == p || t < 1 || t > 65536) {
            fprintf(stderr, "engine/bench: --awq-gemm wants token counts T,T,..., got '%s'\n", spec);
            return 1;
        }
        Ts[nT++] = (int)t;
        if (t > maxT) maxT = (int)t;
        p = *end == ',' ? end + 1 : end;
    }
    int G = c->quant_group_size == 64 ? 64 : 128;
    cublasHandle_t blas;
    if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) { fprintf(stderr, "engine/bench: no cuBLAS\n"); return 1; }
    cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
    double copy = bench_copy_gbps();
    k_awq_work work = {NULL, 0, NULL, k_awq_partial_elems()};
    work.scratch_elems = awq_scratch_elems(c);
    if (cudaMalloc((void **)&work.partial, work.partial_elems * 4) ||
        cudaMalloc((void **)&work.scratch, work.scratch_elems * 2)) {
        fprintf(stderr, "engine/bench: cannot allocate the AWQ workspace\n");
        return 1;
    }
    printf("AWQ linears of %s, group %d; device-to-device copy %.0f GB/s (read + written)\n", c->name, G, copy);
    printf("%-8s %6s %6s %6s | %9s %9s %7s | %9s %9s | %7s\n", "linear", "K", "N", "T", "awq us", "GB/s", "% copy",
           "bf16 us", "GB/s", "speedup");
    if (js) fprintf(js, "{\"config\": \"%s\", \"group\": %d, \"copy_gbps\": %.1f, \"cases\": [", c->name, G, copy);
    double layer_awq[32] = {0}, layer_bf[32] = {0};
    int first = 1, rc = 0;
    for (int i = 0; i < AWQ_NLIN && !rc; i++) {
        int K, N;
        awq_linear_shape(c, i, &K, &N);
        awq_case a;
        if (case_make(&a, K, N, G, maxT)) {
            fprintf(stderr, "engine/bench: cannot set up %s (%d x %d)\n", lin_names[i], K, N);
            case_free(&a);
            rc = 1;
            break;
        }
        double wq = (double)(awq_qw_bytes(K, N) + awq_scales_bytes(K, N, G) + awq_zeros_bytes(K, N, G));
        for (int t = 0; t < nT; t++) {
            int T = Ts[t];
            double ua = time_calls(&a, T, 0, blas, &work), ub = time_calls(&a, T, 1, blas, &work);
            if (ua < 0 || ub < 0) { fprintf(stderr, "engine/bench: %s T %d failed: %s\n", lin_names[i], T, k_last_error()); rc = 1; break; }
            double io = (double)T * (K + N) * 2;
            double ga = (wq + io) / (ua * 1e3), gb = ((double)K * N * 2 + io) / (ub * 1e3);
            printf("%-8s %6d %6d %6d | %9.1f %9.0f %6.1f%% | %9.1f %9.0f | %6.2fx\n", lin_names[i], K, N, T, ua, ga,
                   100 * ga / copy, ub, gb, ub / ua);
            if (js) fprintf(js, "%s{\"linear\": \"%s\", \"K\": %d, \"N\": %d, \"T\": %d, \"awq_us\": %.2f, "
                            "\"awq_gbps\": %.1f, \"bf16_us\": %.2f, \"bf16_gbps\": %.1f}", first ? "" : ", ",
                            lin_names[i], K, N, T, ua, ga, ub, gb);
            first = 0;
            layer_awq[t] += ua;
            layer_bf[t] += ub;
        }
        case_free(&a);
    }
    if (!rc)
        for (int t = 0; t < nT; t++)
            printf("one layer's four linears at T %d: AWQ %.1f us, bf16 %.1f us: %.2fx\n", Ts[t], layer_awq[t],
                   layer_bf[t], layer_bf[t] / layer_awq[t]);
    if (js) fprintf(js, "]}\n");
    cudaFree(work.partial); cudaFree(work.scratch);
    cublasDestroy(blas);
    return rc;
}
#else
int bench_awq_gemm(const mc_config *c, const char *spec, FILE *js) {
    (void)c; (void)spec; (void)js;
    fprintf(stderr, "engine/bench: built without CUDA (no nvcc)\n");
    return 1;
}
#endif
