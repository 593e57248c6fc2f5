/* bench_tp_allreduce: NCCL's bf16 all-reduce as the tensor-parallel engine
 * calls it (engine/tp_comm.h: one process per GPU, NVLS off), at the
 * engine's message sizes: T tokens x hidden D x 2 bytes, for the hidden
 * sizes of Qwen3-30B-A3B (2048), Qwen2.5-7B (3584) and Llama-3.1-70B (8192),
 * at TP 2, 4 and 8 as far as the GPUs go.  Prints per size the time of one
 * all-reduce (median of 9 batches of 20), the algorithm and bus bandwidth,
 * then a least-squares fit of t = latency + 2 (N-1)/N x bytes / link
 * bandwidth: the two coefficients of the cost model (sim/cost_model.c:
 * allreduce_lat_s, link_gbs) for issue 14.  Without 2 GPUs it says so and
 * ends with status 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "engine/tp_comm.h"
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#if defined(PAGESIM_HAVE_CUDA) && defined(PAGESIM_HAVE_NCCL)
static const int hidden[] = {2048, 3584, 8192};
static const int tokens[] = {1, 8, 64, 256, 1024, 4096, 16384};
enum { NH = 3, NT = 7, BATCHES = 9, ITERS = 20 };

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* every rank runs the same calls; rank 0's times go into ms (NH x NT) */
static int measure(tp_comm *c, float *ms, char *err, size_t errlen) {
    cudaStream_t s;
    cudaEvent_t e0, e1;
    k_bf16 *x;
    size_t maxn = (size_t)16384 * 8192;
    if (cudaStreamCreate(&s) || cudaEventCreate(&e0) || cudaEventCreate(&e1) ||
        cudaMalloc((void **)&x, maxn * 2) || cudaMemset(x, 0, maxn * 2))
        return snprintf(err, errlen, "CUDA set-up failed"), -1;
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < NT; t++) {
            size_t n = (size_t)tokens[t] * hidden[h];
            float b[BATCHES];
            for (int i = 0; i < 3; i++) if (tp_allreduce(c, x, n, s, err, errlen)) return -1;   /* warm-up */
            for (int k = 0; k < BATCHES; k++) {
                if (tp_sync(c, s, err, errlen)) return -1;
                cudaEventRecord(e0, s);
                for (int i = 0; i < ITERS; i++) if (tp_allreduce(c, x, n, s, err, errlen)) return -1;
                cudaEventRecord(e1, s);
                if (tp_sync(c, s, err, errlen)) return -1;
                cudaEventElapsedTime(&b[k], e0, e1);
                b[k] /= ITERS;
            }
            qsort(b, BATCHES, sizeof b[0], cmp_f);
            ms[h * NT + t] = b[BATCHES / 2];
        }
    cudaFree(x);
    return 0;
}

static int worker(tp_group *g, void *ctx, char *err, size_t errlen) {
    (void)ctx;
    tp_comm *c;
    float ms[NH * NT];
    tp_msg q;
    if (tp_comm_init(&c, g, 120, err, errlen) || measure(c, ms, err, errlen) || tp_group_recv(g, &q, err, errlen))
        return -1;
    tp_comm_free(c);
    return 0;
}

/* one tensor-parallel size, in a child process (rank 0 initialises CUDA) */
static int run_size(int N) {
    char err[1024];
    tp_group *g;
    tp_comm *c;
    float ms[NH * NT];
    if (tp_group_start(&g, N, 0, worker, NULL, err, sizeof err) || tp_comm_init(&c, g, 120, err, sizeof err) ||
        measure(c, ms, err, sizeof err)) {
        fprintf(stderr, "bench_tp_allreduce: TP %d: %s\n", N, err);
        return -1;
    }
    printf("TP %d (NCCL, bf16 sum in place, NVLS off): one all-reduce of T x D bf16\n", N);
    printf("  %6s %6s %12s %10s %10s %10s\n", "D", "T", "bytes", "time us", "alg GB/s", "bus GB/s");
    double sx = 0, sy = 0, sxx = 0, sxy = 0, f = 2.0 * (N - 1) / N;
    int npts = 0;
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < NT; t++) {
            double bytes = (double)tokens[t] * hidden[h] * 2, sec = ms[h * NT + t] * 1e-3;
            printf("  %6d %6d %12.0f %10.1f %10.1f %10.1f\n", hidden[h], tokens[t], bytes, sec * 1e6,
                   bytes / sec / 1e9, bytes * f / sec / 1e9);
            double xv = f * bytes;                       /* t = lat + xv / bw */
            sx += xv; sy += sec; sxx += xv * xv; sxy += xv * sec; npts++;
        }
    double slope = (npts * sxy - sx * sy) / (npts * sxx - sx * sx), lat = (sy - slope * sx) / npts;
    printf("  cost model (least squares over the %d sizes): allreduce_lat_s %.3e, link_gbs %.0f\n\n", npts, lat,
           slope > 0 ? 1e-9 / slope : 0.0);
    tp_comm_free(c);
    tp_group_stop(g, 10);
    return 0;
}

int main(void) {
    char err[512];
    int n = 0;
    if (tp_device_count(&n, err, sizeof err) || n < 2) {
        printf("bench_tp_allreduce: skipped: needs 2 GPUs, this machine shows %d%s%s\n", n, n ? "" : ": ", n ? "" : err);
        return 0;
    }
    int rc = 0;
    for (int N = 2; N <= n && N <= 8; N *= 2) {
        fflush(NULL);
        pid_t p = fork();
        if (p == 0) _exit(run_size(N) ? 1 : 0);
        int st = 0;
        waitpid(p, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) rc = 1;
    }
    return rc;
}
#else
int main(void) {
    printf("bench_tp_allreduce: skipped: built without CUDA and NCCL\n");
    return 0;
}
#endif
