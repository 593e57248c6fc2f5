/* pagesim plan: how many KV blocks a model gets on a GPU (sim/planner.c does
 * the arithmetic).  Reads the config.json and the GPU table; prints a report
 * or JSON on stdout, errors on stderr. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apps/pagesim/commands.h"
#include "sim/cost_model.h"
#include "sim/model_config.h"
#include "sim/planner.h"

static void usage(FILE *f) {
    fputs("usage: pagesim plan --model CONFIG.json --gpu NAME|SIZE [options]\n"
          "\n"
          "How much GPU memory is left for the KV cache, estimated the way vLLM measures it\n"
          "at start-up, and how many blocks and concurrent requests that gives.\n"
          "\n"
          "  --model FILE               a Hugging Face config.json (data/models/*.json)\n"
          "  --gpu NAME|SIZE            a GPU of data/gpus.json (H100-SXM, H200, A100-40GB,\n"
          "                             A100-80GB, L4, RTX-4070, RTX-4090, ...) or a size (24GB)\n"
          "  --util F                   gpu_memory_utilization, (0, 1] (0.9)\n"
          "  --max-model-len N          tokens per request (the model's max positions)\n"
          "  --dtype bf16|fp16|fp32|awq4  weights dtype (the config's; AWQ when quantized)\n"
          "  --tp N                     tensor-parallel GPUs (1)\n"
          "  --block-size N             tokens per KV block (16)\n"
          "  --max-num-seqs N           sequences in the profile run (256)\n"
          "  --max-num-batched-tokens N tokens in the profile run (as vLLM V0:\n"
          "                             max(max-model-len, 2048), or 2048 above 32K where\n"
          "                             it turns chunked prefill on; vLLM V1's `vllm serve`\n"
          "                             profiles 2048 or 8192)\n"
          "  --swap-space GIB           CPU swap space per GPU for \"# CPU blocks\" (4)\n"
          "  --json                     print the plan as JSON\n"
          "  -h, --help                 this help\n"
          "\n"
          "The activation peak and non-torch memory are estimates from the model's shape\n"
          "(sim/planner.c lists the constants); vLLM measures them, so expect its numbers\n"
          "to differ by a few hundred MiB.\n"
          "\n"
          "Exit status: 0 when one max-model-len request fits, 1 when it does not fit,\n"
          "2 on bad input.\n"
          "\n"
          "example: pagesim plan --model data/models/qwen2.5-7b-instruct-awq.json --gpu RTX-4070 \\\n"
          "             --max-model-len 6144 --util 0.92\n", f);
}

static int parse_int(const char *opt, const char *s, int min, int *v) {
    char *end;
    errno = 0;
    long x = s ? strtol(s, &end, 10) : 0;
    if (!s || end == s || *end || errno || x < min || x > INT_MAX) {
        fprintf(stderr, "pagesim plan: %s wants an integer >= %d, got '%s'\n", opt, min, s ? s : "");
        return -1;
    }
    *v = (int)x;
    return 0;
}

static int parse_num(const char *opt, const char *s, double *v) {
    char *end;
    errno = 0;
    double x = s ? strtod(s, &end) : 0;
    if (!s || end == s || *end || errno || !isfinite(x)) {
        fprintf(stderr, "pagesim plan: %s wants a number, got '%s'\n", opt, s ? s : "");
        return -1;
    }
    *v = x;
    return 0;
}

int pagesim_cmd_plan(int argc, char **argv) {
    const char *model = NULL, *gpu = NULL;
    int json = 0;
    plan_opts o;
    plan_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        char *a = argv[i], *val = NULL, name[64];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (pagesim_cmd_option("pagesim plan", argc, argv, &i, name, sizeof name, &val)) return 2;
        int bad = 0;
        if (!strcmp(name, "--model")) model = val;
        else if (!strcmp(name, "--gpu")) gpu = val;
        else if (!strcmp(name, "--util")) bad = parse_num(name, val, &o.util);
        else if (!strcmp(name, "--max-model-len")) bad = parse_int(name, val, 1, &o.max_model_len);
        else if (!strcmp(name, "--tp")) bad = parse_int(name, val, 1, &o.tp);
        else if (!strcmp(name, "--block-size")) bad = parse_int(name, val, 1, &o.block_size);
        else if (!strcmp(name, "--max-num-seqs")) bad = parse_int(name, val, 1, &o.max_num_seqs);
        else if (!strcmp(name, "--max-num-batched-tokens"))
            bad = parse_int(name, val, 1, &o.max_num_batched_tokens);
        else if (!strcmp(name, "--swap-space")) bad = parse_num(name, val, &o.swap_space_gib);
        else if (!strcmp(name, "--dtype")) {
            o.dtype = mc_dtype_parse(val);
            if (o.dtype < 0) {
                fprintf(stderr, "pagesim plan: --dtype wants bf16, fp16, fp32 or awq4, got '%s'\n", val);
                bad = -1;
            }
        } else {
            fprintf(stderr, "pagesim plan: unknown option '%s' (see --help)\n", name);
            return 2;
        }
        if (bad) return 2;
    }
    if (!model || !gpu) {
        fprintf(stderr, "pagesim plan: --model and --gpu are required (see --help)\n");
        return 2;
    }
    char err[1024];
    mc_config cfg;
    cm_gpu g;
    plan_result r;
    if (mc_load(&cfg, model, err, sizeof err) < 0 || cm_gpu_find(&g, gpu, err, sizeof err) < 0 ||
        plan_compute(&cfg, &g, &o, &r, err, sizeof err) < 0) {
        fprintf(stderr, "pagesim plan: %s\n", err);
        return 2;
    }
    if (json) plan_write_json(stdout, &r);
    else plan_write_text(stdout, &r);
    return r.fits ? 0 : 1;
}
