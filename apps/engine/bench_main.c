/* engine/bench: offline throughput of the engine (engine/engine.h) on a
 * synthetic workload, every request submitted at once (as vLLM's
 * benchmark_throughput and nano-vllm's bench.py), and the paged decode
 * attention kernel alone.  Prints the figures and, with --json, writes them.
 *   engine/bench (--model DIR | --dummy-weights CONFIG.json)
 *                [--workload fixed --num-prompts N --prompt-len P --output-len O]
 *                [--workload uniform --num-prompts N --min-len A --max-len B]
 *                [--peak-tflops F --peak-gbps G] [--kv-policy paged|contiguous] ...
 *   engine/bench --dummy-weights CONFIG.json --attention 64:1024,256:4096 [--peak-gbps G]
 *   engine/bench --dummy-weights CONFIG.json --elementwise 8192 [--peak-gbps G]
 * The roofline: each step's FLOPs (2 x matmul parameters x tokens, the
 * vocabulary head for the sampled rows, 4 x layers x heads x head_dim per
 * attention (query, key) pair) at --peak-tflops, and its bytes (the weights,
 * the KV read by attention and written) at --peak-gbps; a step takes at least
 * the larger of the two.  Pass the GEMM rate and copy bandwidth measured on
 * the same GPU (tests/gpu/bench_hf.py --peaks measures both). */
#include "apps/engine/cli.h"
#include "apps/engine/cli_lora.h"
#include "apps/engine/bench_moe.h"
#include "apps/engine/bench_awq.h"
#include "engine/engine.h"
#include "engine/kernels_ref.h"
#include "engine/weights.h"
#include "engine/profile_ops.h"
#include "engine/bench_steps.h"
#include "engine/bench_sim.h"
#include "engine/cuda_graph.h"
#include "engine/model_probe.h"
#include "sim/model_config.h"
#include "sim/workload.h"
#include "base/clock.h"
#include "base/errbuf.h"
#include "base/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define PROG "engine/bench"
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

static void usage(FILE *f) {
    fprintf(f,
        "usage: engine/bench (--model DIR | --dummy-weights CONFIG.json) [options]\n"
        "  --workload fixed|uniform  fixed: every request --prompt-len P and --output-len O tokens;\n"
        "                            uniform: prompt and output lengths uniform in [--min-len, --max-len]\n"
        "                            (nano-vllm's bench shape)  (default fixed)\n"
        "  --num-prompts N           requests, all submitted at t = 0 (default 1024; also --num-requests)\n"
        "  --prompt-len P --output-len O   fixed lengths (default 512, 96)\n"
        "  --min-len A --max-len B   uniform lengths (default 100, 1024)\n"
        "  --seed S                  workload seed (default 0); prompt ids uniform in [0, 10000)\n"
        "  --temperature T           sampling temperature (default 0: greedy); EOS is ignored\n"
        "  --save-workload FILE      write the requests (one line each: output_len id,id,...) for\n"
        "                            tests/gpu/bench_hf.py, so both sides run the same prompts\n"
        "  --peak-tflops F           measured bf16 GEMM rate, for the roofline (default 790)\n"
        "  --peak-gbps G             measured memory bandwidth GB/s, for the roofline (default 4300)\n"
        "  --attention B:C[:Q],...   only time the paged attention kernels: B sequences of context C\n"
        "                            (the config's heads), Q queries each (default 1: decode; more:\n"
        "                            the last Q positions, prefill), K/V bytes read and FLOP/s\n"
        "  --elementwise T           only time the per-token kernels (SwiGLU, add + RMSNorm, bias,\n"
        "                            RoPE, KV write) on T rows of the config's widths, the scalar\n"
        "                            kernels against the default; bytes moved per second\n"
        "  --moe-layer T,T,...       only time a mixture-of-experts layer of the config at T tokens\n"
        "                            (routing uniform and through a dummy router; both GEMM paths)\n"
        "  --save-routing FILE       with --moe-layer: the routing, for tests/gpu/bench_moe_torch.py\n"
        "  --awq-gemm T,T,...        only time the config's 4-bit AWQ linears at T tokens against cuBLAS\n"
        "                            bf16 on the same shapes: weights read per second, speedup\n"
        "  --json FILE               write the figures as JSON\n"
        "  --trace FILE              the requests of a trace (CSV/JSONL: arrival,prompt_len,output_len),\n"
        "                            each submitted at its arrival time (seconds from the start)\n"
        "  --steps-out FILE          every step as CSV (pagesim calibrate's columns)\n"
        "  --op-profile P.json       predict every step with the operator profile P and report the error\n"
        "  --profile-ops OUT.json    only time this model's operators (GEMMs, attention, per-token kernels,\n"
        "                            sampling, MoE) and the CPU side of a step: a profile for pagesim\n"
        "  --simulate                after the run, the simulator's prediction of it (the same requests,\n"
        "                            pool and scheduler; step times from --op-profile, else the GPU's\n"
        "                            roofline): time, output tokens/s, preemptions, the preempted\n"
        "                            requests' latency, beside what the engine measured\n"
        "  --kv-policy paged|contiguous, --no-enable-prefix-caching, --max-num-batched-tokens N (default\n"
        "  8192), --max-num-seqs N (256), --max-model-len N, --block-size N, --gpu-memory-utilization F,\n"
        "  --num-gpu-blocks N, --max-gpu-memory SIZE|GPU, --dummy-seed S, --tensor-parallel-size N (-tp N),\n"
        "  --data-dir DIR, --version: as engine/run\n"
        CLI_ENGINE_HELP
        "  --enable-lora, --lora-modules NAME=PATH ..., --max-loras N, --max-lora-rank R: as engine/serve;\n"
        "                            request r uses adapter r mod (adapters) + 1\n"
        "  --lora-dummy N            N random adapters on every linear at --max-lora-rank (with\n"
        "                            --enable-lora): 1 = one adapter for every request\n"
        "Every run prints where a step's host time goes (schedule, batch build, upload, launch, sample,\n"
        "the wait for the GPU, postprocess), decode-only steps apart.\n"
        "Exit status: 0 done, 1 the run failed (the GPU, a write error), 2 bad usage or input.\n");
}


static int uniform(uint64_t *st, int lo, int hi) { return lo + (int)(rng_splitmix64(st) % (uint64_t)(hi - lo + 1)); }

/* ---- the paged decode attention kernel alone ------------------------------- */
#ifdef PAGESIM_HAVE_CUDA
/* B sequences of context C, Q queries each (1: decode; more: the last Q
 * positions, a prefill or a chunk after a cached prefix), K/V in shuffled
 * blocks; layers of cache enough that the L2 cache cannot hold what one call
 * reads.  *tflops: 4 x heads x head_dim per (query, visible key) pair. */
static int bench_attention(const mc_config *c, int B, int C, int Q, int bs, double *gbps, double *us,
                           double *tflops) {
    int nq = c->num_heads, nkv = c->num_kv_heads, hd = c->head_dim, qkv = (nq + 2 * nkv) * hd;
    int per = (C + bs - 1) / bs, nb = B * per;
    size_t layer = (size_t)nb * bs * nkv * hd;            /* elements of one K (or V) layer */
    size_t bytes = (size_t)B * C * nkv * hd * 2 * 2;      /* K and V read per call */
    int NL = (int)((1ull << 31) / (2 * layer * 2)) + 1;
    if (NL > 16) NL = 16;
    k_bf16 *kc = NULL, *vc = NULL, *q = NULL, *out = NULL;
    int32_t *ints = NULL;
    float *ws = NULL;
    size_t wsb = k_attention_workspace_bytes(B, nq, hd, C);
    int32_t *h = malloc(sizeof(int32_t) * ((size_t)2 * B + 1 + nb));
    int rc = -1;
    if (!h || cudaMalloc((void **)&kc, layer * 2 * NL) || cudaMalloc((void **)&vc, layer * 2 * NL) ||
        cudaMalloc((void **)&q, (size_t)B * Q * qkv * 2) || cudaMalloc((void **)&out, (size_t)B * Q * nq * hd * 2) ||
        cudaMalloc((void **)&ints, sizeof(int32_t) * ((size_t)2 * B + 1 + nb)) || cudaMalloc((void **)&ws, wsb) ||
        k_attention_workspace_init(ws, wsb, B, nq, 0))
        goto out;
    k_fill_random(kc, (int64_t)layer * NL, 1, 1.0f, 0);
    k_fill_random(vc, (int64_t)layer * NL, 2, 1.0f, 0);
    k_fill_random(q, (int64_t)B * Q * qkv, 3, 1.0f, 0);
    int32_t *qs = h, *ctx = qs + B + 1, *bt = ctx + B;
    for (int b = 0; b <= B; b++) qs[b] = b * Q;
    for (int b = 0; b < B; b++) ctx[b] = C;
    for (int i = 0; i < nb; i++) bt[i] = i;
    uint64_t st = 7;
    for (int i = nb - 1; i > 0; i--) {
        int j = (int)(rng_splitmix64(&st) % (uint64_t)(i + 1)), t = bt[i];
        bt[i] = bt[j]; bt[j] = t;
    }
    cudaMemcpy(ints, h, sizeof(int32_t) * ((size_t)2 * B + 1 + nb), cudaMemcpyHostToDevice);
    k_attn_batch ab = {B, B * Q, ints, ints + B + 1, ints + 2 * B + 1, per, bs, Q, C};
    float scale = 1.0f / 11.3f;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    int iters = 30;
    for (int i = 0; i < 3; i++)
        if (k_attention(out, q, qkv, kc, vc, &ab, nq, nkv, hd, scale, ws, wsb, 0)) goto out;
    cudaEventRecord(e0, 0);
    for (int i = 0; i < iters; i++) {
        size_t o = (size_t)(i % NL) * layer;
        k_attention(out, q, qkv, kc + o, vc + o, &ab, nq, nkv, hd, scale, ws, wsb, 0);
    }
    cudaEventRecord(e1, 0);
    float ms = 0;
    if (cudaEventSynchronize(e1) != cudaSuccess) goto out;
    cudaEventElapsedTime(&ms, e0, e1);
    *us = 1e3 * ms / iters;
    *gbps = bytes / (*us * 1e-6) / 1e9;
    double pairs = (double)B * ((double)Q * (C - Q) + (double)Q * (Q + 1) / 2);
    *tflops = 4.0 * nq * hd * pairs / (*us * 1e-6) / 1e12;
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    rc = 0;
out:
    cudaFree(kc); cudaFree(vc); cudaFree(q); cudaFree(out); cudaFree(ints); cudaFree(ws);
    free(h);
    return rc;
}

/* device 0's name, and its peak DRAM bandwidth (GB/s) from the GPU table
 * (data/gpus.json), else 0 */
static double datasheet_gbps(char *name, size_t n) {
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) { snprintf(name, n, "?"); return 0; }
    snprintf(name, n, "%s", p.name);
    cm_gpu g;
    char err[512];
    return cm_gpu_for_device(&g, p.name, (double)p.totalGlobalMem, err, sizeof err) == 0 ? g.mem_bw / 1e9 : 0;
}

/* ---- the per-token elementwise kernels alone -------------------------------
 * Each kernel at T rows of the config's widths, with the scalar kernels
 * (K_ELEM_SCALAR) and the default; its calls go round copies of its
 * buffers in one pool so that the L2 cache holds none of what a call reads. */
enum { EW_SILU, EW_NORM, EW_BIAS, EW_ROPE, EW_KV, EW_N };
static const char *const ew_names[EW_N] = {"silu_mul", "add_rmsnorm", "add_bias", "rope", "kv_write"};
typedef struct ew_bench {
    int T, D, I, nq, nkv, hd, qkv;  /* rows; hidden, intermediate; heads; qkv row width */
    k_bf16 *pool;                   /* (pool_n,) the kernels' row buffers, copies side by side */
    size_t pool_n;
    k_bf16 *w, *bias;               /* (D,) norm weight, (qkv,) bias */
    int32_t *pos, *slots;           /* (T,) positions, KV slots (slot t for row t) */
    float *inv;                     /* (hd/2,) RoPE inverse frequencies */
} ew_bench;

/* Elements of one copy of kernel k's buffers; *bytes: what a call reads and writes. */
static size_t ew_footprint(const ew_bench *b, int k, double *bytes) {
    size_t T = (size_t)b->T, kv = (size_t)b->nkv * b->hd;
    switch (k) {
    case EW_SILU: *bytes = 2.0 * T * b->I * 3; return T * 3 * b->I;            /* gu (T,2I), act (T,I) */
    case EW_NORM: *bytes = 2.0 * T * b->D * 4 + 2.0 * b->D; return 2 * T * b->D;   /* x, res (T,D) */
    case EW_BIAS: *bytes = 2.0 * T * b->qkv * 2 + 2.0 * b->qkv; return T * b->qkv; /* qkv (T,qkv) */
    case EW_ROPE: *bytes = 2.0 * T * (b->nq + b->nkv) * b->hd * 2 + 4.0 * T; return T * b->qkv;
    default: *bytes = 2.0 * T * kv * 4 + 4.0 * T; return T * b->qkv + 2 * T * kv;  /* + k, v cache */
    }
}
static int ew_launch(const ew_bench *b, int k, k_bf16 *p) {
    size_t T = (size_t)b->T, kv = (size_t)b->nkv * b->hd;
    switch (k) {
    case EW_SILU: return k_silu_mul(p + T * 2 * b->I, p, b->T, b->I, 0);
    case EW_NORM: return k_add_rmsnorm(p, p + T * b->D, b->w, b->T, b->D, 1e-6f, 0);
    case EW_BIAS: return k_add_bias(p, b->bias, b->T, b->qkv, 0);
    case EW_ROPE: return k_rope(p, b->pos, b->inv, b->T, b->nq, b->nkv, b->hd, b->qkv, 0);
    default:
        return k_kv_write(p + T * b->qkv, p + T * b->qkv + T * kv, p, b->slots, b->T, b->nq, b->nkv,
                          b->hd, b->qkv, 0);
    }
}
/* microseconds per call of kernel k, or < 0 on a failed launch */
static double ew_time(const ew_bench *b, int k) {
    double bytes;
    size_t fp = (ew_footprint(b, k, &bytes) + 127) / 128 * 128;     /* copies 256-byte aligned */
    int nc = (int)(b->pool_n / fp), iters = 20;
    if (nc > 8) nc = 8;
    if (nc < 1) return -1;
    for (int i = 0; i < 3; i++)
        if (ew_launch(b, k, b->pool + (size_t)(i % nc) * fp)) return -1;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < iters; i++) ew_launch(b, k, b->pool + (size_t)((i + 3) % nc) * fp);
    cudaEventRecord(e1, 0);
    float ms = 0;
    int ok = cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess;
    cudaEventDestroy(e0); cudaEventDestroy(e1);
    return ok ? 1e3 * ms / iters : -1;
}

static int run_elementwise(const mc_config *c, int T, double peak_gbps, FILE *js) {
    ew_bench b = {T, c->hidden_size, c->intermediate_size, c->num_heads, c->num_kv_heads, c->head_dim,
                  (c->num_heads + 2 * c->num_kv_heads) * c->head_dim, NULL, 0, NULL, NULL, NULL, NULL, NULL};
    char gpu[256];
    double sheet = datasheet_gbps(gpu, sizeof gpu), copy = bench_copy_gbps(), bytes;
    size_t most = 0;
    for (int k = 0; k < EW_N; k++) {
        size_t f = ew_footprint(&b, k, &bytes);
        if (f > most) most = f;
    }
    b.pool_n = 2 * (most + 128);
    int half = b.hd / 2, rc = 1;
    float *hinv = malloc(sizeof(float) * (size_t)half);
    int32_t *hpos = malloc(sizeof(int32_t) * (size_t)T);
    uint64_t st = 11;
    if (!hinv || !hpos) goto out;
    kref_rope_inv_freq(hinv, b.hd, c->rope_theta > 0 ? c->rope_theta : 10000.0, 0, 1, 1, 1, 0);
    for (int t = 0; t < T; t++) hpos[t] = (int32_t)(rng_splitmix64(&st) % 32768);
    if (cudaMalloc((void **)&b.pool, b.pool_n * 2) || cudaMalloc((void **)&b.w, (size_t)b.D * 2) ||
        cudaMalloc((void **)&b.bias, (size_t)b.qkv * 2) || cudaMalloc((void **)&b.pos, sizeof(int32_t) * (size_t)T) ||
        cudaMalloc((void **)&b.slots, sizeof(int32_t) * (size_t)T) || cudaMalloc((void **)&b.inv, sizeof(float) * (size_t)half)) {
        fprintf(stderr, "engine/bench: cannot allocate %.2f GB for --elementwise %d\n", b.pool_n * 2e-9, T);
        goto out;
    }
    k_fill_random(b.pool, (int64_t)b.pool_n, 1, 1.0f, 0);
    k_fill_random(b.w, b.D, 2, 1.0f, 0);
    k_fill_random(b.bias, b.qkv, 3, 0.1f, 0);
    cudaMemcpy(b.pos, hpos, sizeof(int32_t) * (size_t)T, cudaMemcpyHostToDevice);
    cudaMemcpy(b.inv, hinv, sizeof(float) * (size_t)half, cudaMemcpyHostToDevice);
    for (int t = 0; t < T; t++) hpos[t] = t;
    cudaMemcpy(b.slots, hpos, sizeof(int32_t) * (size_t)T, cudaMemcpyHostToDevice);
    printf("per-token kernels, %s: %d rows, hidden %d, intermediate %d, heads %d + %d of %d (qkv row %d)\n",
           c->name, T, b.D, b.I, b.nq, b.nkv, b.hd, b.qkv);
    printf("GPU %s: --peak-gbps %.0f, device-to-device copy %.0f GB/s (read + written), datasheet %.0f\n", gpu,
           peak_gbps, copy, sheet);
    printf("%-12s %9s | %10s %8s %7s | %10s %8s %7s | %7s\n", "kernel", "MB/call", "scalar us", "GB/s", "% peak",
           "default us", "GB/s", "% peak", "speedup");
    if (js) fprintf(js, "{\"gpu\": \"%s\", \"config\": \"%s\", \"rows\": %d, \"peak_gbps\": %.1f, "
                    "\"copy_gbps\": %.1f, \"kernels\": [", gpu, c->name, T, peak_gbps, copy);
    double layer[2] = {0, 0};         /* one layer's calls: silu, 2 x norm, bias, rope, kv write */
    int old = k_elementwise_impl(-1);
    for (int k = 0; k < EW_N; k++) {
        double us[2];
        ew_footprint(&b, k, &bytes);
        for (int impl = 1; impl >= 0; impl--) {     /* kv_write (attention.cu) has one kernel */
            k_elementwise_impl(impl);
            us[impl] = ew_time(&b, k);
            if (us[impl] < 0) {
                fprintf(stderr, "engine/bench: %s failed: %s\n", ew_names[k], cudaGetErrorString(cudaGetLastError()));
                k_elementwise_impl(old);
                goto out;
            }
            layer[impl] += us[impl] * (k == EW_NORM ? 2 : 1);
        }
        double g1 = bytes / (us[1] * 1e3), g0 = bytes / (us[0] * 1e3);   /* GB/s */
        printf("%-12s %9.1f | %10.1f %8.0f %6.1f%% | %10.1f %8.0f %6.1f%% | %6.2fx\n", ew_names[k], bytes / 1e6,
               us[1], g1, 100 * g1 / peak_gbps, us[0], g0, 100 * g0 / peak_gbps, us[1] / us[0]);
        if (js) fprintf(js, "%s{\"name\": \"%s\", \"bytes\": %.0f, \"scalar_us\": %.2f, \"scalar_gbps\": %.1f, "
                        "\"default_us\": %.2f, \"default_gbps\": %.1f}", k ? ", " : "", ew_names[k], bytes, us[1],
                        g1, us[0], g0);
    }
    k_elementwise_impl(old);
    printf("one layer (silu_mul, 2 x add_rmsnorm, add_bias, rope, kv_write): scalar %.1f us, default %.1f us; "
           "x %d layers: %.2f -> %.2f ms per forward of %d rows\n", layer[1], layer[0], c->num_layers,
           layer[1] * c->num_layers / 1e3, layer[0] * c->num_layers / 1e3, T);
    if (js) fprintf(js, "], \"layer_scalar_us\": %.2f, \"layer_default_us\": %.2f}\n", layer[1], layer[0]);
    rc = 0;
out:
    cudaFree(b.pool); cudaFree(b.w); cudaFree(b.bias); cudaFree(b.pos); cudaFree(b.slots); cudaFree(b.inv);
    free(hinv); free(hpos);
    return rc;
}
#endif

static int run_attention(const mc_config *c, const char *spec, int bs, double peak_gbps, double peak_tflops,
                         FILE *js) {
#ifdef PAGESIM_HAVE_CUDA
    char gpu[256];
    double sheet = datasheet_gbps(gpu, sizeof gpu), copy = bench_copy_gbps();
    printf("paged attention, %s: %d heads over %d kv heads, head_dim %d, block %d\n", c->name,
           c->num_heads, c->num_kv_heads, c->head_dim, bs);
    printf("GPU %s: datasheet %.0f GB/s, device-to-device copy %.0f GB/s (read + written); "
           "--peak-tflops %.0f\n", gpu, sheet, copy, peak_tflops);
    (void)peak_gbps;
    printf("%6s %6s %6s %10s %10s %12s %12s %9s %8s\n", "batch", "ctx", "query", "us/call", "GB/s", "% datasheet",
           "% copy", "TFLOP/s", "% peak");
    if (js) fprintf(js, "{\"gpu\": \"%s\", \"datasheet_gbps\": %.0f, \"copy_gbps\": %.1f, \"config\": \"%s\", \"cases\": [",
                    gpu, sheet, copy, c->name);
    const char *p = spec;
    int first = 1;
    while (*p) {
        int B, C, Q = 1, used = 0;
        if (sscanf(p, "%d:%d%n", &B, &C, &used) != 2 || B < 1 || C < 1 || B > 4096 || C > (1 << 20)) {
            fprintf(stderr, "engine/bench: --attention wants B:C[:Q][,B:C[:Q]...], got '%s'\n", spec);
            return 2;
        }
        p += used;
        if (*p == ':') {
            int u2 = 0;
            if (sscanf(p, ":%d%n", &Q, &u2) != 1 || Q < 1 || Q > C || (double)B * Q > (1 << 20)) {
                fprintf(stderr, "engine/bench: --attention: Q must be in 1..C (and B x Q <= 2^20), got '%s'\n", spec);
                return 2;
            }
            p += u2;
        }
        if (*p == ',') p++;
        double gbps = 0, us = 0, tf = 0;
        if (bench_attention(c, B, C, Q, bs, &gbps, &us, &tf)) {
            fprintf(stderr, "engine/bench: attention %d:%d failed: %s\n", B, C, cudaGetErrorString(cudaGetLastError()));
            return 1;
        }
        printf("%6d %6d %6d %10.1f %10.0f %11.1f%% %11.1f%% %9.1f %7.1f%%\n", B, C, Q, us, gbps,
               sheet > 0 ? 100 * gbps / sheet : 0, copy > 0 ? 100 * gbps / copy : 0, tf,
               peak_tflops > 0 ? 100 * tf / peak_tflops : 0);
        if (js) fprintf(js, "%s{\"batch\": %d, \"ctx\": %d, \"query\": %d, \"us\": %.2f, \"gbps\": %.1f, "
                        "\"tflops\": %.2f}", first ? "" : ", ", B, C, Q, us, gbps, tf);
        first = 0;
    }
    if (js) fprintf(js, "]}\n");
    return 0;
#else
    (void)c; (void)spec; (void)bs; (void)peak_gbps; (void)peak_tflops; (void)js;
    fprintf(stderr, "engine/bench: built without CUDA (no nvcc)\n");
    return 1;
#endif
}

enum { O_HELP = 'h', O_NO_PREFIX = 256, O_MODEL, O_DUMMY, O_WORKLOAD, O_NUM_REQUESTS, O_PROMPT_LEN,
       O_OUTPUT_LEN, O_MIN_LEN, O_MAX_LEN, O_SEED, O_DUMMY_SEED, O_TEMPERATURE, O_SAVE, O_JSON, O_ATTENTION,
       O_ELEMENTWISE, O_PEAK_TFLOPS, O_PEAK_GBPS, O_MOE_LAYER, O_SAVE_ROUTING, O_TRACE, O_STEPS_OUT,
       O_OP_PROFILE, O_PROFILE_OPS, O_ENABLE_PREFIX, O_AWQ_GEMM, O_SIMULATE, O_LORA_DUMMY };
static const opt_spec k_opts[] = {
    { "help", O_HELP, OPT_FLAG },                FRONT_PREFIX_ROWS(O_ENABLE_PREFIX, O_NO_PREFIX),
    { "model", O_MODEL, OPT_VALUE },             { "dummy-weights", O_DUMMY, OPT_VALUE },
    { "workload", O_WORKLOAD, OPT_VALUE },       FRONT_PROMPTS_ROWS(O_NUM_REQUESTS),
    FRONT_SPECS,
    { "prompt-len", O_PROMPT_LEN, OPT_VALUE },   { "output-len", O_OUTPUT_LEN, OPT_VALUE },
    { "min-len", O_MIN_LEN, OPT_VALUE },         { "max-len", O_MAX_LEN, OPT_VALUE },
    { "seed", O_SEED, OPT_VALUE },               { "dummy-seed", O_DUMMY_SEED, OPT_VALUE },
    { "temperature", O_TEMPERATURE, OPT_VALUE }, { "save-workload", O_SAVE, OPT_VALUE },
    { "json", O_JSON, OPT_VALUE },               { "attention", O_ATTENTION, OPT_VALUE },
    { "elementwise", O_ELEMENTWISE, OPT_VALUE }, { "peak-tflops", O_PEAK_TFLOPS, OPT_VALUE },
    { "peak-gbps", O_PEAK_GBPS, OPT_VALUE },    { "moe-layer", O_MOE_LAYER, OPT_VALUE },
    { "save-routing", O_SAVE_ROUTING, OPT_VALUE }, { "trace", O_TRACE, OPT_VALUE },
    { "steps-out", O_STEPS_OUT, OPT_VALUE },    { "op-profile", O_OP_PROFILE, OPT_VALUE },
    { "profile-ops", O_PROFILE_OPS, OPT_VALUE }, { "awq-gemm", O_AWQ_GEMM, OPT_VALUE },
    { "simulate", O_SIMULATE, OPT_FLAG },        { "lora-dummy", O_LORA_DUMMY, OPT_VALUE },
    CLI_MODEL_SPECS,
    CLI_LORA_SPECS,
    CLI_TP_SPECS,
    CLI_ENGINE_SPECS,
    { NULL, 0, 0 },
};

/* The run's figures, summed by eng_run's hooks: each step against the
 * roofline (its FLOPs at the GEMM rate, its bytes at the bandwidth), each
 * finished request's latencies. */
typedef struct bench_acc {
    bstep_log *slog;
    double peak_tflops, peak_gbps;
    double pm, kvb, wread, head, attn, xbytes, E, K;      /* the roofline's constants */
    double flops, bytes, roof, t_pf, t_dec, f_pf, roof_dec; /* steps with prefill / decode-only steps */
    long   n_pf, n_dec, seqs_dec, steps, prefill_done;
    long   done, gen;
    double ttft_sum, tpot_sum, lat_sum;
    int    ntpot;
    bsim_figures meas;                                    /* latencies, the preempted ones apart */
} bench_acc;

static int bench_step(void *ctx, const eng_step_info *si, char *err, size_t errlen) {
    bench_acc *a = ctx;
    if (bstep_add(a->slog, si)) return errbuf_fail(err, errlen, "cannot record the step (out of memory)");
    double T = si->prefill_tokens + si->decode_tokens;
    double f = 2 * a->pm * T + a->head * si->num_seqs + a->attn * (double)si->attn_pairs;
    double b = a->wread - a->xbytes + (a->E > 0 ? a->xbytes * (1 - pow(1 - a->K / a->E, T)) : 0) +
               a->kvb * ((double)si->attn_ctx_tokens + T);
    double fc = f / (a->peak_tflops * 1e12), bm = b / (a->peak_gbps * 1e9), r = fc > bm ? fc : bm;
    a->flops += f;
    a->bytes += b;
    a->roof += r;
    if (si->prefill_tokens > 0) { a->n_pf++; a->t_pf += si->seconds; a->f_pf += f; }
    else { a->n_dec++; a->t_dec += si->seconds; a->seqs_dec += si->num_seqs; a->roof_dec += r; }
    a->prefill_done += si->prefill_tokens;
    a->steps++;
    return 0;
}

static int bench_result(void *ctx, const eng_result *d, char *err, size_t errlen) {
    (void)err; (void)errlen;
    bench_acc *a = ctx;
    a->done++;
    a->gen += d->num_tokens;
    a->ttft_sum += d->first_token - d->arrival;
    a->lat_sum += d->finish - d->arrival;
    bsim_add(&a->meas, d->finish - d->arrival, d->num_preemptions);
    if (d->num_tokens > 1) { a->tpot_sum += (d->finish - d->first_token) / (d->num_tokens - 1); a->ntpot++; }
    return 0;
}

/* The GPU of this machine in the GPU table (for --simulate's roofline). */
static int bench_gpu(cm_gpu *g, char *err, size_t errlen) {
#ifdef PAGESIM_HAVE_CUDA
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return errbuf_fail(err, errlen, "no GPU properties");
    return cm_gpu_for_device(g, p.name, (double)p.totalGlobalMem, err, errlen);
#else
    (void)g;
    return errbuf_fail(err, errlen, "built without CUDA (no nvcc)");
#endif
}

/* After the run: the graphs replayed, the preemptions and the preempted
 * requests' latency, where a step's host time went, and with simulate the
 * simulator's prediction beside them; their JSON members into js.  0, or 1
 * (printed) when the prediction fails. */
static int runtime_report(eng *e, const eng_config *cfg, const mc_config *c, const model_mem *mem, bsim_figures *m,
                          double wall, long gen, const char *op_prof, int simulate, const int *pl, const int *ol,
                          const wl_request *tr, int nreq, char *js, size_t jn) {
    int ng = 0;
    const char *why = NULL;
    const cg_set *g = model_graphs(eng_model(e), &why);
    const sched_stats *ss = eng_sched_stats(e);
    cg_sizes(g, &ng);
    bsim_finish(m);
    m->seconds = wall;
    m->output_tok_s = wall > 0 ? gen / wall : 0;
    m->preemptions = ss->preemptions; m->swap_outs = ss->swap_outs; m->swap_ins = ss->swap_ins;
    if (ng) printf("  CUDA graphs: %d buckets, %ld replays\n", ng, cg_launches(g, -1));
    else printf("  CUDA graphs: off (%s)\n", why ? why : "?");
    printf("  preemption by %s: %ld preemptions (%ld swap-outs, %ld swap-ins); %d of %d requests preempted, their "
           "mean latency %.2f s (all: %.2f s)\n", cfg->preempt == SCHED_PREEMPT_SWAP ? "swap" : "recompute",
           ss->preemptions, ss->swap_outs, ss->swap_ins, m->preempted, m->requests, m->preempted_latency,
           m->mean_latency);
    static char host[4096];
    if (mprobe_host_text(model_probe(eng_model(e)), host, sizeof host) == 0) printf("%s", host);
    snprintf(js, jn, ", \"cuda_graphs\": %d, \"graph_replays\": %ld, \"preemption\": \"%s\", \"swap_outs\": %ld, "
             "\"swap_ins\": %ld, \"preempted_requests\": %d, \"preempted_latency_s\": %.4f, \"mean_latency_s\": %.4f",
             ng, cg_launches(g, -1), cfg->preempt == SCHED_PREEMPT_SWAP ? "swap" : "recompute", ss->swap_outs,
             ss->swap_ins, m->preempted, m->preempted_latency, m->mean_latency);
    if (!simulate) return 0;
    char err[1024];
    cm_gpu gpu;
    bsim_figures p;
    double *arr = tr ? malloc(sizeof *arr * (size_t)nreq) : NULL;
    for (int r = 0; arr && r < nreq; r++) arr[r] = tr[r].arrival;
    int rc = bench_gpu(&gpu, err, sizeof err) ||
             bsim_predict(c, cfg, model_options(eng_model(e)), mem, pl, ol, arr, nreq, op_prof, &gpu, &p, err, sizeof err);
    free(arr);
    if (rc) { fprintf(stderr, "engine/bench: --simulate: %s\n", err); return 1; }
    bsim_report(stdout, cfg->preempt == SCHED_PREEMPT_SWAP ? "swap" : "recompute", m, &p);
    size_t o = strlen(js);
    snprintf(js + o, jn - o, ", \"sim_seconds\": %.3f, \"sim_output_tok_s\": %.1f, \"sim_preemptions\": %ld, "
             "\"sim_preempted_latency_s\": %.4f", p.seconds, p.output_tok_s, p.preemptions, p.preempted_latency);
    return 0;
}

int main(int argc, char **argv) {
    front_init(PROG);
    const char *model_dir = NULL, *dummy = NULL, *workload = "fixed", *save = NULL, *json = NULL, *attn = NULL;
    const char *moe = NULL, *save_routing = NULL, *awq_gemm = NULL;
    const char *trace = NULL, *steps_out = NULL, *op_prof = NULL, *prof_out = NULL;
    int nreq = 1024, plen = 512, olen = 96, lo = 100, hi = 1024, ew_rows = 0;
    double peak_tflops = 790, peak_gbps = 4300, temperature = 0;
    unsigned long long seed = 0, dummy_seed = 0;
    int tp = 0;                             /* --tensor-parallel-size (0: not given, one GPU without NCCL) */
    int simulate = 0;
    eng_config cfg = {0};
    cfg.prefix_caching = true;
    cfg.eos_id = -1;
    cfg.model.max_num_batched_tokens = 8192;
    cfg.model.host_probe = 1;               /* where a step's host time goes: a few clock reads a step */
    static cli_lora lora;
    int lora_dummy = 0;
    cli_lora_init(&lora);
    opt_parser op;
    const char *v;
    char perr[256];
    int k;
    cli_engine_env(PROG, &cfg.model);
    if (opt_begin(&op, argc, argv, k_opts, perr, sizeof perr)) cli_usage_error(PROG, perr);
    while ((k = opt_next(&op, &v, perr, sizeof perr)) != OPT_END) {
        const char *a = opt_name(&op);
        switch (k) {
        case O_HELP: usage(stdout); return 0;
        case O_NO_PREFIX: cfg.prefix_caching = false; break;
        case O_ENABLE_PREFIX: cfg.prefix_caching = true; break;
        case O_MODEL: model_dir = v; break;
        case O_DUMMY: dummy = v; break;
        case O_WORKLOAD: workload = v; break;
        case O_NUM_REQUESTS: nreq = cli_int(PROG, a, v, 1, 1 << 20); break;
        case O_PROMPT_LEN: plen = cli_int(PROG, a, v, 1, 1 << 20); break;
        case O_OUTPUT_LEN: olen = cli_int(PROG, a, v, 1, 1 << 20); break;
        case O_MIN_LEN: lo = cli_int(PROG, a, v, 1, 1 << 20); break;
        case O_MAX_LEN: hi = cli_int(PROG, a, v, 1, 1 << 20); break;
        case O_SEED: seed = cli_u64(PROG, a, v); break;
        case O_DUMMY_SEED: dummy_seed = cli_u64(PROG, a, v); break;
        case O_TEMPERATURE: temperature = cli_num(PROG, a, v, 0, 100); break;
        case O_SAVE: save = v; break;
        case O_JSON: json = v; break;
        case O_ATTENTION: attn = v; break;
        case O_TRACE: trace = v; break;
        case O_STEPS_OUT: steps_out = v; break;
        case O_OP_PROFILE: op_prof = v; break;
        case O_PROFILE_OPS: prof_out = v; break;
        case O_SIMULATE: simulate = 1; break;
        case O_ELEMENTWISE: ew_rows = cli_int(PROG, a, v, 1, 1 << 16); break;
        case O_MOE_LAYER: moe = v; break;
        case O_AWQ_GEMM: awq_gemm = v; break;
        case O_SAVE_ROUTING: save_routing = v; break;
        case O_PEAK_TFLOPS: peak_tflops = cli_num(PROG, a, v, 1, 1e6); break;
        case O_PEAK_GBPS: peak_gbps = cli_num(PROG, a, v, 1, 1e6); break;
        case CLI_TP: tp = cli_int(PROG, a, v, 1, 1024); break;
        case O_LORA_DUMMY: lora_dummy = cli_int(PROG, a, v, 1, 64); break;
        case OPT_ARG:
            if (cli_lora_positional(PROG, v, &lora)) break;
            snprintf(perr, sizeof perr, "unexpected argument '%s'", v);
            cli_usage_error(PROG, perr);
        case OPT_ERROR: cli_usage_error(PROG, perr);
        default:
            cli_shared_option(PROG, k, a, v, &cfg, &lora);
            break;
        }
    }
    opt_end(&op);
    if (!model_dir == !dummy) { fprintf(stderr, "engine/bench: give --model DIR or --dummy-weights CONFIG.json\n"); usage(stderr); return 2; }
    cli_tp_check(PROG, tp);                 /* before anything starts CUDA */
    {                                       /* the KV policy and the preemption mode agree */
        char cerr[256];
        if (eng_check_config(&cfg, cerr, sizeof cerr)) cli_usage_error(PROG, cerr);
    }
    if (strcmp(workload, "fixed") && strcmp(workload, "uniform")) {
        fprintf(stderr, "engine/bench: --workload is fixed or uniform, got '%s'\n", workload);
        return 2;
    }
    if (lo > hi) { fprintf(stderr, "engine/bench: --min-len %d > --max-len %d\n", lo, hi); return 2; }
    char err[1024], path[1024];
    mc_config c;
    snprintf(path, sizeof path, "%s/config.json", model_dir ? model_dir : "");
    if (mc_load(&c, dummy ? dummy : path, err, sizeof err) || w_check_config(&c, err, sizeof err)) {
        fprintf(stderr, "engine/bench: %s\n", err);
        return FRONT_USAGE;
    }
    if (front_check_output("--json", json, err, sizeof err) || front_check_output("--save-workload", save, err, sizeof err) ||
        front_check_output("--steps-out", steps_out, err, sizeof err) || front_check_output("--profile-ops", prof_out, err, sizeof err) ||
        front_check_output("--save-routing", save_routing, err, sizeof err))
        cli_usage_error(PROG, err);
    if (lora_dummy && !lora.enabled) cli_usage_error(PROG, "--lora-dummy needs --enable-lora");
    cfg.model.lora = cli_lora_load(PROG, &lora, &c, stderr);
    if (lora_dummy) cli_lora_dummy(PROG, &lora, &c, lora_dummy, stderr);
    int nlora = cfg.model.lora ? cfg.model.lora->n : 0;
    if (prof_out) {
        if (pops_run(&c, model_dir, dummy_seed, &cfg, prof_out, stderr, err, sizeof err)) {
            fprintf(stderr, "engine/bench: %s\n", err);
            return 1;
        }
        printf("operator profile of %s written to %s\n", c.name, prof_out);
        return 0;
    }
    FILE *js = NULL;
    if (json && !(js = fopen(json, "w"))) { fprintf(stderr, "engine/bench: cannot write %s\n", json); return 1; }
    if (attn) {
#ifdef PAGESIM_HAVE_CUDA
        k_attention_impl(cfg.model.attention);     /* PAGESIM_ATTN */
        if (cfg.model.attention_partition) k_attention_partition(cfg.model.attention_partition);
#endif
        int rc = run_attention(&c, attn, cfg.model.block_size > 0 ? cfg.model.block_size : 16, peak_gbps, peak_tflops, js);
        if (js) fclose(js);
        return rc;
    }
    if (moe) {
        int rc = bench_moe_layer(&c, moe, peak_tflops, peak_gbps, save_routing, js);
        if (js) fclose(js);
        return rc;
    }
    if (awq_gemm) {
        int rc = bench_awq_gemm(&c, awq_gemm, js);
        if (js) fclose(js);
        return rc;
    }
    if (ew_rows) {
#ifdef PAGESIM_HAVE_CUDA
        int rc = run_elementwise(&c, ew_rows, peak_gbps, js);
#else
        int rc = 1;
        fprintf(stderr, "engine/bench: built without CUDA (no nvcc)\n");
#endif
        if (js) fclose(js);
        return rc;
    }

    /* the workload: lengths and prompt ids from one seeded stream (a trace: its lengths and arrivals) */
    wl_request *tr = NULL;
    if (trace) {
        if (wl_load_trace(trace, &tr, &nreq, err, sizeof err)) { fprintf(stderr, "engine/bench: %s\n", err); return 1; }
        workload = "trace";
    }
    int **prompts = calloc((size_t)nreq, sizeof *prompts), *pl = calloc((size_t)nreq, sizeof *pl);
    int *ol = calloc((size_t)nreq, sizeof *ol);
    if (!prompts || !pl || !ol) { fprintf(stderr, "engine/bench: out of memory\n"); return 1; }
    uint64_t st = seed * 0x9e3779b97f4a7c15ull + 1;
    int idmax = c.vocab_size < 10000 ? c.vocab_size : 10000, longest = 0;
    long total_prompt = 0, total_out = 0;
    for (int r = 0; r < nreq; r++) {
        int uni = !strcmp(workload, "uniform");
        pl[r] = tr ? tr[r].prompt_len : uni ? uniform(&st, lo, hi) : plen;
        ol[r] = tr ? tr[r].output_len : uni ? uniform(&st, lo, hi) : olen;
        prompts[r] = malloc(sizeof(int) * (size_t)pl[r]);
        if (!prompts[r]) { fprintf(stderr, "engine/bench: out of memory\n"); return 1; }
        for (int i = 0; i < pl[r]; i++) prompts[r][i] = (int)(rng_splitmix64(&st) % (uint64_t)idmax);
        if (pl[r] + ol[r] > longest) longest = pl[r] + ol[r];
        total_prompt += pl[r];
        total_out += ol[r];
    }
    if (save) {
        FILE *f = fopen(save, "w");
        if (!f) { fprintf(stderr, "engine/bench: cannot write %s\n", save); return 1; }
        for (int r = 0; r < nreq; r++) {
            fprintf(f, "%d ", ol[r]);
            for (int i = 0; i < pl[r]; i++) fprintf(f, i ? ",%d" : "%d", prompts[r][i]);
            fprintf(f, "\n");
        }
        if (fclose(f)) { fprintf(stderr, "engine/bench: write error on %s\n", save); return 1; }
    }
    if (cfg.model.max_model_len <= 0) cfg.model.max_model_len = longest > 4096 ? longest : 4096;

    tp_engine *tpe = cli_tp_start(PROG, tp, &cfg.model);   /* the other ranks, each loading its shard below */
    double t0 = clock_now_s();
    w_weights w;
    if (tp_engine_load(tpe, &c, model_dir, dummy_seed, &w, err, sizeof err)) {
        fprintf(stderr, "engine/bench: %s\n", err);
        tp_engine_stop(tpe);
        return 1;
    }
    cfg.model.tp = tp_engine_rank(tpe);
    size_t wbytes = w.bytes * (size_t)tp_engine_size(tpe);   /* the roofline's: every GPU's shard (about) */
    model_mem mem;
    eng *e = eng_create(&c, &w, &cfg, &mem, err, sizeof err);
    if (!e) { fprintf(stderr, "engine/bench: %s\n", err); tp_engine_stop(tpe); return 1; }
    const model_opts *mo = model_options(eng_model(e));
    cli_tp_report(stderr, tpe, &c, &mem);
    cli_lora_report(stderr, &lora, &c, mem.lora);
    fprintf(stderr, "%s: weights %.2f GiB, activation peak %.2f GiB, GPU KV cache size: %ld tokens (%s), "
            "setup %.1f s\n", c.name, mem.weights / 1073741824.0, mem.activations / 1073741824.0, mem.kv_tokens,
            kv_policy_name(cfg.kv_policy), clock_now_s() - t0);
    cli_engine_report(stderr, e, &cfg, &mem);
    /* the roofline's constants; with tensor parallelism, of all N GPUs (N times the peaks) */
    double ngpu = tp_engine_size(tpe);
    peak_tflops *= ngpu;
    peak_gbps *= ngpu;
    bstep_log slog;
    bench_acc a = { .slog = &slog, .peak_tflops = peak_tflops, .peak_gbps = peak_gbps };
    double D = c.hidden_size, L = c.num_layers, nq = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim;
    double I = c.intermediate_size, V = c.vocab_size;
    a.pm = L * (D * (nq + 2 * nkv) * hd + nq * hd * D + 3 * D * I);   /* matmul params per token */
    a.kvb = (double)mem.kv_bytes_per_token * ngpu;                   /* every GPU's KV heads */
    a.wread = (double)wbytes - (c.tie_embeddings ? 0 : V * D * 2);   /* the embedding table is gathered */
    a.head = 2 * V * D;
    a.attn = 4 * L * nq * hd;
    /* MoE layers: k experts and the router per token; a step reads the experts some token chose
     * (in expectation E (1 - (1 - k/E)^T) of E) */
    double nmoe = 0, E = c.num_experts, K = c.experts_per_tok, Im = c.moe_intermediate_size;
    for (int l = 0; l < c.num_layers; l++) nmoe += mc_layer_is_moe(&c, l);
    a.pm += nmoe * (K * 3 * D * Im + D * E - 3 * D * I);
    a.xbytes = nmoe * E * 3 * D * Im * 2;                               /* every expert's weights */
    a.E = E; a.K = K;
    if (bstep_open(&slog, steps_out, op_prof, &c, err, sizeof err)) { fprintf(stderr, "engine/bench: %s\n", err); return 1; }
    /* every request now, a trace's at its arrival (the driver releases them) */
    double start = clock_now_s(), at0 = eng_now(e);
    for (int r = 0; r < nreq; r++) {
        eng_params p = { .max_tokens = ol[r], .temperature = (float)temperature, .top_p = 1.0f,
                         .seed = seed + (uint64_t)r, .arrival = tr ? at0 + tr[r].arrival : 0,
                         .lora = nlora ? 1 + r % nlora : 0 };
        if (eng_add_request(e, r, prompts[r], pl[r], &p, err, sizeof err)) {
            fprintf(stderr, "engine/bench: %s\n", err);
            return 1;
        }
    }
    eng_hooks hooks = { .on_step = bench_step, .on_result = bench_result, .ctx = &a };
    if (eng_run(e, &hooks, err, sizeof err)) { fprintf(stderr, "engine/bench: step %ld: %s\n", a.steps, err); return 1; }
    double flops = a.flops, bytes = a.bytes, roof = a.roof, t_pf = a.t_pf, t_dec = a.t_dec, f_pf = a.f_pf;
    double roof_dec = a.roof_dec, ttft_sum = a.ttft_sum, tpot_sum = a.tpot_sum, lat_sum = a.lat_sum;
    long n_pf = a.n_pf, n_dec = a.n_dec, seqs_dec = a.seqs_dec, steps = a.steps, done = a.done, gen = a.gen;
    long prefill_done = a.prefill_done;
    int ntpot = a.ntpot;
    double wall = clock_now_s() - start;
    const sched_stats *ss = eng_sched_stats(e);
    double tot = (double)total_prompt + gen;
    printf("engine/bench %s, workload %s: %d requests, %ld prompt + %ld output tokens (%ld asked), "
           "max_num_batched_tokens %d, max_num_seqs %d, KV %s%s\n", c.name, workload, nreq, total_prompt, gen,
           total_out, mo->max_num_batched_tokens, mo->max_num_seqs, kv_policy_name(cfg.kv_policy),
           tpe ? (tp > 1 ? ", tensor parallel over NCCL (roofline: all GPUs)" : ", tensor parallel size 1 (NCCL)") : "");
    if (nlora) printf("  LoRA: %d adapter%s of rank %d on every linear, %d GPU slots; request r uses adapter r mod %d + 1\n",
                      nlora, nlora == 1 ? "" : "s", lora.set.max_rank, lora.set.max_loras, nlora);
    printf("  wall %.2f s, %ld steps (%.2f ms/step): %.0f total tokens/s, %.0f output tokens/s, %ld preemptions\n",
           wall, steps, 1e3 * wall / (steps ? steps : 1), tot / wall, gen / wall, ss->preemptions);
    printf("  mean TTFT %.1f ms, mean TPOT %.2f ms, mean latency %.2f s\n", done ? 1e3 * ttft_sum / done : 0,
           ntpot ? 1e3 * tpot_sum / ntpot : 0, done ? lat_sum / done : 0);
    printf("  roofline (GEMM %.0f TFLOP/s, %.0f GB/s): %.3g PFLOP -> %.2f s at the GEMM rate = %.1f%% of wall; "
           "%.1f GB -> %.2f s; per-step max(compute, memory) %.2f s = %.1f%% of wall\n",
           peak_tflops, peak_gbps, flops / 1e15, flops / (peak_tflops * 1e12),
           100 * flops / (peak_tflops * 1e12) / wall, bytes / 1e9, bytes / (peak_gbps * 1e9), roof,
           100 * roof / wall);
    printf("  steps with prefill: %ld, %.2f s (%.0f TFLOP/s); decode-only steps: %ld, %.2f s (%.2f ms each, "
           "batch %.0f, %.0f%% of their roofline)\n", n_pf, t_pf, t_pf > 0 ? f_pf / t_pf / 1e12 : 0, n_dec, t_dec,
           n_dec ? 1e3 * t_dec / n_dec : 0, n_dec ? (double)seqs_dec / n_dec : 0, t_dec > 0 ? 100 * roof_dec / t_dec : 0);
    /* the pool in the simulator's categories, from the engine's metrics collector */
    met_summary ms;
    if (eng_summary(e, &ms)) { fprintf(stderr, "engine/bench: out of memory\n"); return 1; }
    double held = ms.share_token + ms.share_reserved + ms.share_internal + ms.share_external;
    long peak_blocks = ms.max_blocks_used;
    printf("  achieved %.0f TFLOP/s; prefill tokens computed %ld (recomputed %ld); KV peak %ld of %d blocks, "
           "token states %.1f%% of held slots, internal fragmentation %.1f%% (time-averaged)\n", flops / wall / 1e12,
           prefill_done, prefill_done - total_prompt, peak_blocks, mem.num_blocks,
           100 * ms.token_share_of_used, held > 0 ? 100 * ms.share_internal / held : 0);
    char pjs[512], rjs[1024];
    bstep_report(&slog, stdout, pjs, sizeof pjs);
    if (bstep_close(&slog)) { fprintf(stderr, "engine/bench: write error on %s\n", steps_out); return 1; }
    if (runtime_report(e, &cfg, &c, &mem, &a.meas, wall, gen, simulate ? op_prof : NULL, simulate, pl, ol, tr, nreq,
                       rjs, sizeof rjs))
        return 1;
    if (js) {
        fprintf(js, "{\"config\": \"%s\", \"workload\": \"%s\", \"kv_policy\": \"%s\", \"requests\": %d, "
                "\"prompt_tokens\": %ld, \"output_tokens\": %ld, \"wall_s\": %.3f, \"steps\": %ld, "
                "\"total_tok_s\": %.1f, \"output_tok_s\": %.1f, \"preemptions\": %ld, \"pflop\": %.4f, "
                "\"compute_roofline_pct\": %.2f, \"roofline_pct\": %.2f, \"achieved_tflops\": %.1f, "
                "\"peak_tflops\": %.1f, \"peak_gbps\": %.1f, \"mean_ttft_ms\": %.2f, \"mean_tpot_ms\": %.3f, "
                "\"kv_blocks\": %d, \"kv_peak_blocks\": %ld, \"tensor_parallel_size\": %d, \"tensor_parallel_nccl\": %d, "
                "\"max_num_batched_tokens\": %d, \"lora_adapters\": %d, \"max_lora_rank\": %d%s%s}\n",
                c.name, workload, kv_policy_name(cfg.kv_policy), nreq, total_prompt, gen, wall, steps, tot / wall,
                gen / wall, ss->preemptions, flops / 1e15, 100 * flops / (peak_tflops * 1e12) / wall,
                100 * roof / wall, flops / wall / 1e12, peak_tflops, peak_gbps,
                done ? 1e3 * ttft_sum / done : 0, ntpot ? 1e3 * tpot_sum / ntpot : 0, mem.num_blocks,
                peak_blocks, (int)ngpu, tpe != NULL, mo->max_num_batched_tokens, nlora, nlora ? lora.set.max_rank : 0,
                rjs, pjs);
        fclose(js);
    }
    static char prof[4096];
    if (model_profile_text(eng_model(e), prof, sizeof prof) == 0) printf("  GPU time by op (PAGESIM_PROFILE):\n%s", prof);
    eng_free(e);
    if (tp_engine_stop(tpe)) { fprintf(stderr, "engine/bench: a tensor-parallel worker did not end well\n"); return 1; }
    for (int r = 0; r < nreq; r++) free(prompts[r]);
    free(prompts); free(pl); free(ol); free(tr);
    cli_lora_free(&lora);
    return done == nreq ? 0 : 1;
}
