/* pagesim plan: how many KV blocks a model gets on a GPU (sim/planner.c does
 * the arithmetic).  Reads the config.json and the GPU table; prints a report
 * or JSON on stdout, errors on stderr. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apps/pagesim/commands.h"
#include "apps/common/front.h"
#include "base/opt.h"
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
          "  --gpu-memory-utilization F (0, 1] (0.9)\n"
          "  --max-model-len N          tokens per request (the model's max positions)\n"
          "  --dtype bf16|fp16|fp32|awq4  weights dtype (the config's; AWQ when quantized)\n"
          "  --tensor-parallel-size N, -tp N  tensor-parallel GPUs (1)\n"
          "  --block-size N             tokens per KV block (16)\n"
          "  --max-num-seqs N           sequences in the profile run (256)\n"
          "  --max-num-batched-tokens N tokens in the profile run (as vLLM V0:\n"
          "                             max(max-model-len, 2048), or 2048 above 32K where\n"
          "                             it turns chunked prefill on; vLLM V1's `vllm serve`\n"
          "                             profiles 2048 or 8192)\n"
          "  --swap-space GIB           CPU swap space per GPU for \"# CPU blocks\" (4)\n"
          "  --enable-lora              set aside GPU slots for LoRA adapters (as vLLM):\n"
          "  --max-loras N              adapters in GPU memory at once (1)\n"
          "  --max-lora-rank R          the slots' rank (16)\n"
          "  --json                     print the plan as JSON\n"
          "  --data-dir DIR             the project's data folder (data/... paths)\n"
          "  --version, -h, --help\n"
          "  (older names accepted: --util, --tp, --swap-gb, --max-len, --max-batched-tokens)\n"
          "\n"
          "The activation peak and non-torch memory are estimates from the model's shape\n"
          "(sim/planner.c lists the constants); vLLM measures them, so expect its numbers\n"
          "to differ by a few hundred MiB.\n"
          "\n"
          "Exit status: 0 when one max-model-len request fits, 1 when it does not fit (or\n"
          "the output could not be written), 2 on bad usage or input.\n"
          "\n"
          "example: pagesim plan --model data/models/qwen2.5-7b-instruct-awq.json --gpu RTX-4070 \\\n"
          "             --max-model-len 6144 --gpu-memory-utilization 0.92\n", f);
}

enum { O_HELP = 'h', O_JSON = 256, O_MODEL, O_GPU, O_UTIL, O_MAX_LEN, O_TP, O_BLOCK_SIZE, O_MAX_SEQS,
       O_MAX_BATCHED, O_SWAP, O_DTYPE, O_ENABLE_LORA, O_MAX_LORAS, O_MAX_LORA_RANK };
static const opt_spec k_opts[] = {
    { "help", O_HELP, OPT_FLAG },          { "json", O_JSON, OPT_FLAG },
    { "model", O_MODEL, OPT_VALUE },       { "gpu", O_GPU, OPT_VALUE },
    FRONT_UTIL_ROWS(O_UTIL),               FRONT_MAX_LEN_ROWS(O_MAX_LEN),
    FRONT_TP_ROWS(O_TP),                   { "block-size", O_BLOCK_SIZE, OPT_VALUE },
    FRONT_SEQS_ROWS(O_MAX_SEQS),           FRONT_BATCHED_ROWS(O_MAX_BATCHED),
    FRONT_SWAP_ROWS(O_SWAP),               { "dtype", O_DTYPE, OPT_VALUE },
    { "enable-lora", O_ENABLE_LORA, OPT_FLAG }, { "max-loras", O_MAX_LORAS, OPT_VALUE },
    { "max-lora-rank", O_MAX_LORA_RANK, OPT_VALUE },
    FRONT_SPECS,
    { NULL, 0, 0 },
};

/* Sets o, model, gpu, json from the command line.  0, 1 for --help, or -1 with err. */
static int parse_args(int argc, char **argv, plan_opts *o, const char **model, const char **gpu, int *json,
                      char *err, size_t n) {
    opt_parser p;
    const char *v;
    int k, rc = 0, lora = 0, loras = 1, rank = 16;
    if (opt_begin(&p, argc, argv, k_opts, err, n)) return -1;
    while (rc == 0 && (k = opt_next(&p, &v, err, n)) != OPT_END) {
        const char *name = opt_name(&p);
        if (front_option("pagesim plan", k, v)) continue;
        switch (k) {
        case O_HELP: rc = 1; break;
        case O_JSON: *json = 1; break;
        case O_MODEL: *model = v; break;
        case O_GPU: *gpu = v; break;
        case O_UTIL: rc = opt_num(name, v, -1e300, 1e300, &o->util, err, n); break;
        case O_MAX_LEN: rc = opt_int(name, v, 1, INT_MAX, &o->max_model_len, err, n); break;
        case O_TP: rc = opt_int(name, v, 1, INT_MAX, &o->tp, err, n); break;
        case O_BLOCK_SIZE: rc = opt_int(name, v, 1, INT_MAX, &o->block_size, err, n); break;
        case O_MAX_SEQS: rc = opt_int(name, v, 1, INT_MAX, &o->max_num_seqs, err, n); break;
        case O_MAX_BATCHED: rc = opt_int(name, v, 1, INT_MAX, &o->max_num_batched_tokens, err, n); break;
        case O_SWAP: rc = opt_num(name, v, -1e300, 1e300, &o->swap_space_gib, err, n); break;
        case O_DTYPE:
            if ((o->dtype = mc_dtype_parse(v)) < 0) {
                snprintf(err, n, "--dtype wants bf16, fp16, fp32 or awq4, got '%s'", v);
                rc = -1;
            }
            break;
        case O_ENABLE_LORA: lora = 1; break;
        case O_MAX_LORAS: rc = opt_int(name, v, 1, 1024, &loras, err, n); break;
        case O_MAX_LORA_RANK: rc = opt_int(name, v, 1, 512, &rank, err, n); break;
        case OPT_ARG: snprintf(err, n, "unexpected argument '%s'", v); rc = -1; break;
        default: rc = -1; break;                       /* OPT_ERROR: err says what */
        }
    }
    opt_end(&p);
    if (lora) { o->max_loras = loras; o->max_lora_rank = rank; }
    return rc;
}

int pagesim_cmd_plan(int argc, char **argv) {
    const char *model = NULL, *gpu = NULL;
    int json = 0;
    plan_opts o;
    plan_opts_default(&o);
    char err[1024];
    int pr = parse_args(argc, argv, &o, &model, &gpu, &json, err, sizeof err);
    if (pr == 1) { usage(stdout); return 0; }
    if (pr < 0) return pagesim_bad_usage("pagesim plan", err);
    if (!model || !gpu) {
        fprintf(stderr, "pagesim plan: --model and --gpu are required (see --help)\n");
        return FRONT_USAGE;
    }
    mc_config cfg;
    cm_gpu g;
    plan_result r;
    if (mc_load(&cfg, model, err, sizeof err) < 0 || cm_gpu_find(&g, gpu, err, sizeof err) < 0 ||
        plan_compute(&cfg, &g, &o, &r, err, sizeof err) < 0) {
        fprintf(stderr, "pagesim plan: %s\n", err);
        return FRONT_USAGE;
    }
    if (json) plan_write_json(stdout, &r);
    else plan_write_text(stdout, &r);
    return r.fits ? 0 : 1;
}
