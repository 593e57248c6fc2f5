/* cli: number options of the engine's front ends (see apps/engine/cli.h). */
#include "apps/engine/cli.h"
#include "engine/tp_comm.h"
#include "sim/planner.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_int(const char *prog, const char *opt, const char *v, long lo, long hi) {
    char *end = NULL;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "%s: %s wants an integer in [%ld, %ld], got '%s'\n", prog, opt, lo, hi, v ? v : "");
        exit(2);
    }
    return (int)x;
}

double cli_num(const char *prog, const char *opt, const char *v, double lo, double hi) {
    char *end = NULL;
    errno = 0;
    double x = v ? strtod(v, &end) : 0;
    if (!v || errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "%s: %s wants a number in [%g, %g], got '%s'\n", prog, opt, lo, hi, v ? v : "");
        exit(2);
    }
    return x;
}

int cli_model_option(const char *prog, const char *opt, const char *v, model_opts *m, kv_policy *kp) {
    if (!strcmp(opt, "--kv-policy")) {
        int p = v ? kv_policy_parse(v) : -1;
        if (p != KV_PAGED && p != KV_CONTIGUOUS) {
            fprintf(stderr, "%s: --kv-policy is paged or contiguous, got '%s'\n", prog, v ? v : "");
            exit(2);
        }
        *kp = (kv_policy)p;
    }
    else if (!strcmp(opt, "--max-num-batched-tokens")) m->max_num_batched_tokens = cli_int(prog, opt, v, 1, 1 << 24);
    else if (!strcmp(opt, "--max-num-seqs")) m->max_num_seqs = cli_int(prog, opt, v, 1, 1 << 16);
    else if (!strcmp(opt, "--max-model-len")) m->max_model_len = cli_int(prog, opt, v, 1, 1 << 24);
    else if (!strcmp(opt, "--block-size")) m->block_size = cli_int(prog, opt, v, 1, 1024);
    else if (!strcmp(opt, "--gpu-memory-utilization")) m->gpu_memory_utilization = cli_num(prog, opt, v, 0.01, 1);
    else if (!strcmp(opt, "--num-gpu-blocks")) m->num_gpu_blocks = cli_int(prog, opt, v, 1, 1 << 30);
    else return 0;
    return 1;
}

int cli_tp_option(const char *prog, const char *opt, const char *v, int *tp) {
    if (strcmp(opt, "--tensor-parallel-size") && strcmp(opt, "-tp")) return 0;
    *tp = cli_int(prog, opt, v, 1, 1024);
    return 1;
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
        fprintf(f, "Per GPU (pagesim plan --tp %d): weights %.3f GiB, KV cache %lld bytes/token\n", N, pw, pkv);
        return;
    }
    fprintf(f, "Per GPU: weights %.3f GiB, KV cache %zu bytes/token (pagesim plan --tp %d: weights %.3f GiB, "
            "%lld bytes/token); every GPU holds its KV heads of all %ld tokens\n", mem->weights / 1073741824.0,
            mem->kv_bytes_per_token, N, pw, pkv, mem->kv_tokens);
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
    static const char *const attn[] = {"default", "mma", "simt", NULL};
    static const char *const elem[] = {"vector", "scalar", NULL};
    static const char *const moe[] = {"grouped", "cublas", NULL};
    const char *v;
    /* the names of earlier sessions' scripts: v5 = mma, v2 = simt, PAGESIM_ELEM=v1 = scalar */
    if ((v = getenv("PAGESIM_ATTN")) && *v)
        m->attention = !strcmp(v, "v5") ? K_ATTN_MMA : !strcmp(v, "v2") ? K_ATTN_SIMT
                     : env_choice(prog, "PAGESIM_ATTN", v, attn);
    if ((v = getenv("PAGESIM_ELEM")) && *v)
        m->elementwise = !strcmp(v, "v1") ? K_ELEM_SCALAR : env_choice(prog, "PAGESIM_ELEM", v, elem);
    if ((v = getenv("PAGESIM_MOE_GEMM")) && *v) m->moe_gemm = env_choice(prog, "PAGESIM_MOE_GEMM", v, moe);
    if ((v = getenv("PAGESIM_PROFILE")) && *v && strcmp(v, "0")) m->profile = 1;
    if ((v = getenv("PAGESIM_DUMP_LAYER0")) && *v) m->dump_layer0 = v;
}
