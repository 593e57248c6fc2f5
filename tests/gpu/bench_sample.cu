/* bench_sample: k_sample (engine/sampling.cu, radix select) beside the kernel it
 * replaced (bisection: 32 passes per threshold), timed in one binary at R = 1,
 * 64, 256, 1024 rows of V = 151,936 (Qwen3), temperature 0.6 / top-p 0.8 (the
 * study's setting), on near-uniform rows (dummy weights) and spread rows (a
 * trained model), plus top-k 50, both, and greedy at R = 256.  Prints ms per
 * call and GB/s of logits (R x V x 4 bytes once / time), the time of one plain
 * read of the logits (the floor of a pass) and how many of the old and new
 * tokens agree (the definitions differ slightly: fixed-point mass vs float).
 * The old kernel lives here only, as sample_bisect_kernel, so that before and
 * after are measured by the same binary; the engine has only the new one.
 *   build: scripts/gpu/topp_run.sh (nvcc against build/gpu/obj/lib{engcu,engine}.a)
 *   run:   build/gpu/bench_sample [iterations] */
#include <stdio.h>
#include <stdlib.h>
#include "engine/common.cuh"
#include "engine/kernels_ref.h"
#include "tests/sample_rows.h"

#define OLD_THREADS 1024

/* ---- the former kernel, verbatim (sampling.cu before the radix select; its block_argmax is
 *      engine/common.cuh's, unchanged) ------------------------------------------------ */
__device__ __forceinline__ uint32_t old_fkey(float f) {
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__global__ void __launch_bounds__(OLD_THREADS)
sample_bisect_kernel(int32_t *tokens, const float *logits, const k_sample_params *params, int V) {
    int r = blockIdx.x, tid = threadIdx.x;
    const float *row = logits + (size_t)r * V;
    k_sample_params p = params[r];
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    if (p.temperature <= 0) {
        for (int i = tid; i < V; i += OLD_THREADS)
            if (row[i] > bv || bi == 0x7fffffff) { bv = row[i]; bi = i; }
        block_argmax(bv, bi)   /* engine/common.cuh: the same code as then */;
        if (tid == 0) tokens[r] = bi;
        return;
    }
    float zmax = -INFINITY;
    for (int i = tid; i < V; i += OLD_THREADS) zmax = fmaxf(zmax, row[i] / p.temperature);
    zmax = block_max(zmax);
    uint32_t thr = 0;
    if (p.top_k > 0 && p.top_k < V) {              /* largest key with count(>= key) >= k */
        for (int bit = 31; bit >= 0; bit--) {
            uint32_t cand = thr | (1u << bit);
            float c = 0;
            for (int i = tid; i < V; i += OLD_THREADS) c += old_fkey(row[i] / p.temperature) >= cand;
            if (block_sum(c) >= (float)p.top_k) thr = cand;
        }
    }
    if (p.top_p < 1.0f) {                          /* largest key with mass(>= key) >= top_p */
        float tot = 0;
        for (int i = tid; i < V; i += OLD_THREADS) {
            float z = row[i] / p.temperature;
            if (old_fkey(z) >= thr) tot += expf(z - zmax);
        }
        float target = p.top_p * block_sum(tot);
        uint32_t k = 0;
        for (int bit = 31; bit >= 0; bit--) {
            uint32_t cand = k | (1u << bit);
            uint32_t lim = cand > thr ? cand : thr;
            float m = 0;
            for (int i = tid; i < V; i += OLD_THREADS) {
                float z = row[i] / p.temperature;
                if (old_fkey(z) >= lim) m += expf(z - zmax);
            }
            if (block_sum(m) >= target) k = cand;
        }
        if (k > thr) thr = k;
    }
    for (int i = tid; i < V; i += OLD_THREADS) {
        float z = row[i] / p.temperature;
        if (old_fkey(z) < thr) continue;
        float v = z - logf(-logf(kref_uniform(p.seed, p.step, (uint64_t)i)));
        if (v > bv || bi == 0x7fffffff) { bv = v; bi = i; }
    }
    block_argmax(bv, bi)   /* engine/common.cuh: the same code as then */;
    if (tid == 0) tokens[r] = bi;
}
static int k_sample_bisect(int32_t *tokens, const float *logits, const k_sample_params *params, int R, int V,
                           cudaStream_t s) {
    sample_bisect_kernel<<<R, OLD_THREADS, 0, s>>>(tokens, logits, params, V);
    return cudaPeekAtLastError() == cudaSuccess ? 0 : -1;
}

/* ---- the floor: one plain read of every row ---------------------------------------- */
__global__ void read_kernel(float *out, const float *logits, int V) {
    const float4 *r = reinterpret_cast<const float4 *>(logits + (size_t)blockIdx.x * V);
    float a = 0;
    for (int j = threadIdx.x; j < V / 4; j += blockDim.x) { float4 q = __ldg(r + j); a += q.x + q.y + q.z + q.w; }
    a = block_sum(a);
    if (threadIdx.x == 0) out[blockIdx.x] = a;
}

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)

typedef int (*sample_fn)(int32_t *, const float *, const k_sample_params *, int, int, cudaStream_t);
static int read_fn(int32_t *t, const float *l, const k_sample_params *p, int R, int V, cudaStream_t s) {
    (void)p;
    read_kernel<<<R, 1024, 0, s>>>((float *)t, l, V);
    return cudaPeekAtLastError() == cudaSuccess ? 0 : -1;
}

static double time_ms(sample_fn f, int32_t *tok, const float *lg, const k_sample_params *p, int R, int V, int iters) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    for (int i = 0; i < 2; i++) if (f(tok, lg, p, R, V, 0)) { fprintf(stderr, "launch failed\n"); exit(1); }
    CK(cudaEventRecord(a, 0));
    for (int i = 0; i < iters; i++) f(tok, lg, p, R, V, 0);
    CK(cudaEventRecord(b, 0));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    CK(cudaGetLastError());
    cudaEventDestroy(a); cudaEventDestroy(b);
    return ms / iters;
}

int main(int argc, char **argv) {
    const int V = 151936, RMAX = 1024, NDISTINCT = 16;
    int iters = argc > 1 ? atoi(argv[1]) : 10;
    if (iters < 1) iters = 1;
    float *lg = NULL, *host = (float *)malloc(sizeof(float) * (size_t)V * NDISTINCT);
    int32_t *tok = NULL;
    k_sample_params *dp = NULL, *hp = (k_sample_params *)calloc(RMAX, sizeof *hp);
    CK(cudaMalloc((void **)&lg, sizeof(float) * (size_t)RMAX * V));
    CK(cudaMalloc((void **)&tok, sizeof(float) * RMAX));
    CK(cudaMalloc((void **)&dp, sizeof *hp * RMAX));
    int32_t *t_old = (int32_t *)malloc(4 * RMAX), *t_new = (int32_t *)malloc(4 * RMAX);
    printf("k_sample: bisection (old) vs radix select (new), V = %d, %d iterations per figure\n", V, iters);
    printf("%-13s %-22s %5s | %9s %8s | %9s %8s | %8s %7s | %s\n", "rows", "params", "R", "old ms", "GB/s",
           "new ms", "GB/s", "speedup", "1 read", "old = new tokens");
    static const struct { int kind; const char *name; } rows[] = {{SR_UNIFORM, "near-uniform"}, {SR_SPREAD, "spread"}};
    struct { float T; int k; float p; const char *name; } ps[] = {
        {0.6f, 0, 0.8f, "T 0.6 top-p 0.8"}, {0.6f, 50, 1.0f, "T 0.6 top-k 50"},
        {0.6f, 50, 0.8f, "T 0.6 k 50 p 0.8"}, {1.0f, 0, 1.0f, "T 1 (no filter)"}, {0.0f, 0, 1.0f, "greedy"}};
    static const int rs[] = {1, 64, 256, 1024};
    for (int w = 0; w < 2; w++) {
        for (int d = 0; d < NDISTINCT; d++) sr_fill(host + (size_t)d * V, V, rows[w].kind, 77 + (uint64_t)d);
        for (int r = 0; r < RMAX; r++)
            CK(cudaMemcpy(lg + (size_t)r * V, host + (size_t)(r % NDISTINCT) * V, sizeof(float) * V,
                          cudaMemcpyHostToDevice));
        for (int q = 0; q < 5; q++) {
            for (int j = 0; j < 4; j++) {
                int R = rs[j];
                if (q > 0 && R != 256) continue;                  /* the other settings at R = 256 */
                for (int r = 0; r < R; r++) hp[r] = (k_sample_params){ps[q].T, ps[q].k, ps[q].p, 1000 + (uint64_t)r, 7};
                CK(cudaMemcpy(dp, hp, sizeof *hp * R, cudaMemcpyHostToDevice));
                double mo = time_ms(k_sample_bisect, tok, lg, dp, R, V, iters);
                CK(cudaMemcpy(t_old, tok, 4 * R, cudaMemcpyDeviceToHost));
                double mn = time_ms(k_sample, tok, lg, dp, R, V, iters);
                CK(cudaMemcpy(t_new, tok, 4 * R, cudaMemcpyDeviceToHost));
                double mr = time_ms(read_fn, tok, lg, dp, R, V, iters);
                int same = 0;
                for (int r = 0; r < R; r++) same += t_old[r] == t_new[r];
                double gb = (double)R * V * 4 / 1e9;
                printf("%-13s %-22s %5d | %9.3f %8.0f | %9.3f %8.0f | %7.1fx %7.3f | %d/%d\n", rows[w].name, ps[q].name,
                       R, mo, gb / (mo / 1e3), mn, gb / (mn / 1e3), mo / mn, mr, same, R);
                fflush(stdout);
            }
        }
    }
    printf("(1 read: ms of one plain float4 read of the R rows, the floor of one pass; new/1 read = passes' worth)\n");
    cudaFree(lg); cudaFree(tok); cudaFree(dp);
    free(host); free(hp); free(t_old); free(t_new);
    return 0;
}
