/* cli: the engine front ends' shared options (see apps/engine/cli.h). */
#include "apps/engine/cli.h"
#include "engine/cuda_graph.h"
#include "engine/tp_comm.h"
#include "sim/planner.h"
#include "sim/gpu_table.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void cli_usage_error(const char *prog, const char *err) {
    fprintf(stderr, "%s: %s (see --help)\n", prog, err);
    exit(2);
}

int cli_int(const char *prog, const char *name, const char *v, long lo, long hi) {
    char err[256];
    int x;
    if (opt_int(name, v, lo, hi, &x, err, sizeof err)) cli_usage_error(prog, err);
    return x;
}

double cli_num(const char *prog, const char *name, const char *v, double lo, double hi) {
    char err[256];
    double x;
    if (opt_num(name, v, lo, hi, &x, err, sizeof err)) cli_usage_error(prog, err);
    return x;
}

unsigned long long cli_u64(const char *prog, const char *name, const char *v) {
    char err[256];
    unsigned long long x;
    if (opt_u64(name, v, &x, err, sizeof err)) cli_usage_error(prog, err);
    return x;
}

int cli_model_option(const char *prog, int key, const char *name, const char *v, model_opts *m,
                     kv_policy *kp) {
    switch (key) {
    case CLI_KV_POLICY: {
        int p = kv_policy_parse(v);
        if (p != KV_PAGED && p != KV_CONTIGUOUS) {
            char err[256];
            snprintf(err, sizeof err, "--kv-policy is paged or contiguous, got '%s'", v);
            cli_usage_error(prog, err);
        }
        *kp = (kv_policy)p;
        return 1;
    }
    case CLI_MAX_BATCHED: m->max_num_batched_tokens = cli_int(prog, name, v, 1, 1 << 24); return 1;
    case CLI_MAX_SEQS: m->max_num_seqs = cli_int(prog, name, v, 1, 1 << 16); return 1;
    case CLI_MAX_LEN: m->max_model_len = cli_int(prog, name, v, 1, 1 << 24); return 1;
    case CLI_BLOCK_SIZE: m->block_size = cli_int(prog, name, v, 1, 1024); return 1;
    case CLI_GPU_UTIL: m->gpu_memory_utilization = cli_num(prog, name, v, 0.01, 1); return 1;
    case CLI_NUM_GPU_BLOCKS: m->num_gpu_blocks = cli_int(prog, name, v, 1, 1 << 30); return 1;
    case CLI_MAX_GPU_MEM: {                       /* a size, or a GPU of the table */
        cm_gpu g;
        char err[1024], msg[1200];
        if (cm_gpu_find(&g, v, err, sizeof err)) {
            snprintf(msg, sizeof msg, "%s wants a size (12GiB) or a GPU name: %s", name, err);
            cli_usage_error(prog, msg);
        }
        m->max_gpu_memory = g.mem_bytes;
        return 1;
    }
    default: return 0;
    }
}

void cli_tp_check(const char *prog, int tp) {
    char err[512];
    if (tp == 0) return;
    if (tp_check_size(tp, err, sizeof err)) {
        fprintf(stderr, "%s: --tensor-parallel-size %d: %s\n", prog, tp, err);
        exit(2);
    }
}

tp_engine *cli_tp_start(const char *prog, int tp, const model_opts *m) {
    char err[1024];
    tp_engine *t = NULL;
    if (tp == 0) return NULL;
    tp_engine_args a = {tp, *m, 0};
    if (tp_engine_start(&t, &a, err, sizeof err)) {
        fprintf(stderr, "%s: --tensor-parallel-size %d: %s\n", prog, tp, err);
        exit(1);
    }
    return t;
}

void cli_tp_report(FILE *f, const tp_engine *t, const mc_config *c, const model_mem *mem) {
    if (!t) return;
    char line[1024];
    int N = tp_engine_size(t);
    tp_engine_describe(t, c, line, sizeof line);
    fprintf(f, "%s\n", line);
    double pw = plan_weight_bytes(c, MC_DTYPE_BF16, N) / 1073741824.0;
    long long pkv = (long long)plan_kv_bytes_per_token(c, MC_DTYPE_BF16, N);
    if (!mem) {
        fprintf(f, "Per GPU (pagesim plan -tp %d): weights %.3f GiB, KV cache %lld bytes/token\n", N, pw, pkv);
        return;
    }
    fprintf(f, "Per GPU: weights %.3f GiB, KV cache %zu bytes/token (pagesim plan -tp %d: weights %.3f GiB, "
            "%lld bytes/token); every GPU holds its KV heads of all %ld tokens\n", mem->weights / 1073741824.0,
            mem->kv_bytes_per_token, N, pw, pkv, mem->kv_tokens);
}

void cli_plan_report(FILE *f, const mc_config *c, const model_opts *m, const model_mem *mem) {
    double total = mem ? (double)mem->total : m->max_gpu_memory;
    if (!(total > 0)) return;
    cm_gpu g = {"this budget", total, 0, 0, 0};
    plan_opts o;
    plan_opts_default(&o);
    o.util = m->gpu_memory_utilization > 0 ? m->gpu_memory_utilization : 0.9;
    o.max_model_len = m->max_model_len;
    o.block_size = m->block_size > 0 ? m->block_size : 16;
    o.max_num_seqs = m->max_num_seqs > 0 ? m->max_num_seqs : 256;
    o.max_num_batched_tokens = m->max_num_batched_tokens;
    plan_result r;
    char err[512];
    if (plan_compute(c, &g, &o, &r, err, sizeof err)) {
        fprintf(f, "pagesim plan: %s\n", err);
        return;
    }
    fprintf(f, "pagesim plan (%.2f GiB x %.2f, max_model_len %d, %d batched tokens, %d seqs): weights %.2f GiB, "
            "activation peak %.2f GiB, non-torch %.2f GiB, # GPU blocks: %ld, GPU KV cache size: %ld tokens, "
            "maximum concurrency %.2fx: %s\n", total / 1073741824.0, r.util, r.max_model_len, r.batched_tokens,
            r.max_num_seqs, r.weight_bytes / 1073741824.0, r.activation_bytes / 1073741824.0,
            r.non_torch_bytes / 1073741824.0, r.num_blocks, r.kv_tokens, r.max_concurrency,
            r.fits ? "fits" : "does not fit");
}

/* the index of v in names[] (NULL-terminated), or exit 2 naming the variable */
static int env_choice(const char *prog, const char *var, const char *v, const char *const *names) {
    for (int i = 0; names[i]; i++) if (!strcmp(v, names[i])) return i;
    fprintf(stderr, "%s: %s is one of", prog, var);
    for (int i = 0; names[i]; i++) fprintf(stderr, " %s", names[i]);
    fprintf(stderr, ", got '%s'\n", v);
    exit(2);
}

void cli_engine_env(const char *prog, model_opts *m) {
    static const char *const attn[] = {"default", "mma", "simt", "mma-heads", NULL};
    static const char *const elem[] = {"vector", "scalar", NULL};
    static const char *const moe[] = {"grouped", "cublas", NULL};
    const char *v;
    /* the names of earlier sessions' scripts: v5 = mma, v2 = simt, PAGESIM_ELEM=v1 = scalar */
    if ((v = getenv("PAGESIM_ATTN")) && *v)
        m->attention = !strcmp(v, "v5") ? K_ATTN_MMA : !strcmp(v, "v2") ? K_ATTN_SIMT
                     : env_choice(prog, "PAGESIM_ATTN", v, attn);
    if ((v = getenv("PAGESIM_ATTN_PART")) && *v) {
        char *end;
        long k = strtol(v, &end, 10);
        if (*end || k < 256 || k % 256 || k > 65536) {
            fprintf(stderr, "%s: PAGESIM_ATTN_PART is a multiple of 256 up to 65536 (keys per decode partition), got '%s'\n",
                    prog, v);
            exit(2);
        }
        m->attention_partition = (int)k;
    }
    if ((v = getenv("PAGESIM_ELEM")) && *v)
        m->elementwise = !strcmp(v, "v1") ? K_ELEM_SCALAR : env_choice(prog, "PAGESIM_ELEM", v, elem);
    if ((v = getenv("PAGESIM_MOE_GEMM")) && *v) m->moe_gemm = env_choice(prog, "PAGESIM_MOE_GEMM", v, moe);
    if ((v = getenv("PAGESIM_PROFILE")) && *v && strcmp(v, "0")) m->profile = 1;
    if ((v = getenv("PAGESIM_DUMP_LAYER0")) && *v) m->dump_layer0 = v;
}

int cli_engine_option(const char *prog, int key, const char *name, const char *v, eng_config *cfg) {
    switch (key) {
    case CLI_CUDA_GRAPHS:
    case CLI_ENFORCE_EAGER: {
        int want = key == CLI_CUDA_GRAPHS ? 1 : -1;
        if (cfg->model.cuda_graphs == -want) cli_usage_error(prog, "--cuda-graphs and --enforce-eager contradict");
        cfg->model.cuda_graphs = want;
        return 1;
    }
    case CLI_PREEMPTION_MODE:
        if (!strcmp(v, "recompute")) cfg->preempt = SCHED_PREEMPT_RECOMPUTE;
        else if (!strcmp(v, "swap")) cfg->preempt = SCHED_PREEMPT_SWAP;
        else {
            char err[256];
            snprintf(err, sizeof err, "--preemption-mode is recompute or swap, got '%s'", v);
            cli_usage_error(prog, err);
        }
        return 1;
    case CLI_SWAP_SPACE: cfg->model.swap_space = cli_num(prog, name, v, 0, 1 << 20); return 1;
    default: return 0;
    }
}

void cli_engine_report(FILE *f, const eng *e, const eng_config *cfg, const model_mem *mem) {
    const char *why = NULL;
    int n = 0;
    const cg_set *g = model_graphs(eng_model(e), &why);
    const int *sizes = cg_sizes(g, &n);
    if (g && n > 0)
        fprintf(f, "CUDA graphs: %d captured for decode-only batches of 1 to %d sequences, %.1f MiB on the GPU "
                "(%.1f MiB set aside before the KV cache)\n", n, sizes[n - 1], mem->graphs / 1048576.0,
                mem->graphs_reserved / 1048576.0);
    else
        fprintf(f, "CUDA graphs: off, every step eager (%s)\n", why ? why : "?");
    if (cfg->preempt == SCHED_PREEMPT_SWAP)
        fprintf(f, "Preemption: swap, %d CPU blocks in %.2f GiB of pinned host memory\n", mem->num_cpu_blocks,
                mem->swap_bytes / 1073741824.0);
    else
        fprintf(f, "Preemption: recompute\n");
}
