/* pagesim run: simulate a workload under a KV allocation policy and print its
 * metrics (a summary table; everything as JSON with --json).  Also the vLLM
 * paper's reproductions: --fig2 (share of KV memory holding token states,
 * paged vs Orca Max/Pow2/Oracle) and --rate-sweep (highest sustainable request
 * rate, paged over Orca Oracle).  Reads the model config, data/gpus.json and a
 * trace file; writes only the --json file; progress goes to stderr when it is
 * a terminal. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "apps/pagesim/commands.h"
#include "apps/common/front.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/opt.h"
#include "sim/simulate.h"
#include "sim/planner.h"
#include "sim/model_config.h"
#include "sim/cost_model.h"
#include "sim/workload.h"
#include "sim/reserve_alloc.h"
#include "sim/fig2.h"
#include "sim/rate_sweep.h"
#include "sim/op_profile.h"
#include "viz/charts.h"
#include "viz/export.h"

typedef struct run_opts {
    const char *workload, *model_path, *gpu, *json, *policy, *plot, *allocator, *setting, *op_profile;
    cm_swap_copies swap_copies;
    int    requests, block_size, num_blocks, max_num_seqs, max_batched, n, beam;
    int    max_model_len, tp, prompt_len, output_len, usage_every;
    double rate, kv_gb, util, swap_gb, max_norm_latency, sweep_seconds;
    unsigned long long seed;
    int    preempt_swap, static_batching, prefix_caching, no_chunked, steps, no_steps,
           check, fig2, sweep, quiet, workload_given;
} run_opts;

static void usage(FILE *f) {
    fputs("usage: pagesim run --workload sharegpt|alpaca|fixed|FILE --model CONFIG.json --gpu NAME\n"
          "                   [--policy paged|contiguous|orca-max|orca-pow2|orca-oracle] [options]\n"
          "       pagesim run --fig2 [options]        the vLLM paper's Figure 2\n"
          "       pagesim run --rate-sweep [options]  highest sustainable rate, paged vs Orca Oracle\n"
          "\n"
          "Simulates serving a workload: continuous batching over a KV cache of blocks\n"
          "(paged) or of per-request reservations (the baselines), step times from a GPU\n"
          "roofline.  Prints a summary; --json writes every metric.\n"
          "\n"
          "workload:\n"
          "  --workload W          sharegpt, alpaca, fixed, or a trace file (CSV/JSONL:\n"
          "                        arrival,prompt_len,output_len[,n,beam])  [sharegpt]\n"
          "  --num-prompts N       number of requests [1000; --fig2: 7200; a trace: all]\n"
          "  --rate R              Poisson arrivals, requests/s; 0 = all at t=0 [0]\n"
          "  --prompt-len P --output-len O   lengths of --workload fixed [512 128]\n"
          "  --n N                 parallel samples per request [1]\n"
          "  --beam B              beam width (beam search) [off]\n"
          "  --seed S              [1]\n"
          "model and memory:\n"
          "  --model CONFIG.json   Hugging Face config.json (data/models/*.json)\n"
          "  --gpu NAME            H100-SXM, H200, A100-40GB, A100-80GB, L4, RTX-4070,\n"
          "                        RTX-4090, or a size like 24GB\n"
          "  --tensor-parallel-size N, -tp N   tensor-parallel GPUs [1]\n"
          "  --num-gpu-blocks N    KV blocks (else from --kv-gb, else the memory planner)\n"
          "  --kv-gb G             KV cache size in GB (10^9 bytes)\n"
          "  --gpu-memory-utilization U   for the planner [0.9]\n"
          "  --block-size B        tokens per block [16]\n"
          "  --max-model-len L     longest request (clips outputs) [2048]\n"
          "  --op-profile P        step times from operator timings (engine/bench --profile-ops):\n"
          "                        a file, auto (a profile of this GPU and model in\n"
          "                        data/profiles/) or none (the roofline) [auto]\n"
          "scheduler:\n"
          "  --policy P            paged, contiguous, orca-max, orca-pow2, orca-oracle [paged]\n"
          "  --allocator A         how the reservation policies place their ranges: buddy\n"
          "                        (power-of-two blocks, as the vLLM paper's Orca) or\n"
          "                        first-fit (exact sizes, as engine/'s contiguous) [buddy]\n"
          "  --max-num-seqs N      [256]\n"
          "  --max-num-batched-tokens N   token budget per step [2048]\n"
          "  --no-chunked-prefill  run each prompt whole\n"
          "  --preempt recompute|swap     [recompute]\n"
          "  --swap-space GIB      CPU swap space for --preempt swap [4]\n"
          "  --swap-copies per-block|runs   how swap copies are priced: per-block as vLLM\n"
          "                        (a copy call per block, layer and K/V), runs as engine/\n"
          "                        (one call per run of consecutive blocks) [per-block]\n"
          "  --static-batching     a new batch only when the last has finished\n"
          "  --enable-prefix-caching, --no-enable-prefix-caching   automatic prefix\n"
          "                        caching (paged) [on, as vLLM; --fig2, --rate-sweep: off,\n"
          "                        as the paper's vLLM]\n"
          "output:\n"
          "  --plot FILE           charts (.png/.svg/.pdf): pool use and waste over time,\n"
          "                        and the waste breakdown as bars (with --fig2: Figure 2)\n"
          "  --json OUT            all metrics as JSON (steps included up to 20000\n"
          "                        requests, or with --steps; never with --no-steps)\n"
          "  --usage-every K       sample the pool every K steps [auto: 1 per 2048 blocks]\n"
          "  --check               verify the KV cache invariants after every step (slow)\n"
          "  --quiet               no progress on stderr\n"
          "  --data-dir DIR        the project's data folder [$PAGESIM_DATA, else the data/\n"
          "                        beside this program]; data/... paths are looked up there\n"
          "  --version, -h/--help\n"
          "reproductions:\n"
          "  --fig2                Figure 2, all four categories against the paper: OPT-13B,\n"
          "                        A100-40GB, 12 GiB of KV cache, ShareGPT at 2 req/s for an\n"
          "                        hour, buddy allocator; each may be overridden\n"
          "  --rate-sweep          the highest rate whose mean normalized latency stays under\n"
          "                        --max-norm-latency [1.0 s/token], paged and the three Orca\n"
          "                        variants: the paper's settings (OPT-13B on one A100-40GB,\n"
          "                        OPT-66B on 4, OPT-175B on 8 A100-80GB, LLaMA-13B) on\n"
          "                        ShareGPT and Alpaca, next to the paper's gains; or one of\n"
          "                        them (--setting NAME, --workload W), or --model/--gpu/--tp\n"
          "                        with its pool; each run serves rate x --sweep-seconds\n"
          "                        requests [the paper's traces: 3600 s, 900 s for OPT-175B]\n"
          "\n"
          "Older names are accepted too: --requests, --num-requests, --num-blocks, --util,\n"
          "--swap-gb, --tp, --prefix-caching, --no-prefix-caching, --max-batched-tokens.\n"
          "Exit status: 0 done, 1 the run failed (or a write error), 2 bad usage or input.\n", f);
}

/* ---- argument parsing --------------------------------------------------------- */
enum { O_HELP = 'h', O_WORKLOAD = 256, O_MODEL, O_GPU, O_JSON, O_PLOT, O_POLICY, O_REQUESTS, O_RATE,
       O_BLOCK_SIZE, O_NUM_BLOCKS, O_KV_GB, O_UTIL, O_SWAP_GB, O_MAX_SEQS, O_MAX_BATCHED, O_MAX_LEN,
       O_N, O_BEAM, O_TP, O_PROMPT_LEN, O_OUTPUT_LEN, O_USAGE_EVERY, O_SWEEP_SECONDS, O_MAX_NORM,
       O_SEED, O_PREEMPT, O_STATIC, O_PREFIX, O_NO_CHUNKED, O_STEPS, O_NO_STEPS, O_CHECK, O_QUIET,
       O_FIG2, O_SWEEP, O_SETTING, O_OP_PROFILE, O_ALLOCATOR, O_NO_PREFIX, O_SWAP_COPIES };
static const opt_spec k_opts[] = {
    { "help", O_HELP, OPT_FLAG },               FRONT_SPECS,
    { "workload", O_WORKLOAD, OPT_VALUE },      { "model", O_MODEL, OPT_VALUE },
    { "gpu", O_GPU, OPT_VALUE },                { "json", O_JSON, OPT_VALUE },
    { "plot", O_PLOT, OPT_VALUE },              { "policy", O_POLICY, OPT_VALUE },
    FRONT_PROMPTS_ROWS(O_REQUESTS),             { "rate", O_RATE, OPT_VALUE },
    { "block-size", O_BLOCK_SIZE, OPT_VALUE },  FRONT_BLOCKS_ROWS(O_NUM_BLOCKS),
    { "kv-gb", O_KV_GB, OPT_VALUE },            FRONT_UTIL_ROWS(O_UTIL),
    FRONT_SWAP_ROWS(O_SWAP_GB),                 FRONT_SEQS_ROWS(O_MAX_SEQS),
    FRONT_BATCHED_ROWS(O_MAX_BATCHED),          FRONT_MAX_LEN_ROWS(O_MAX_LEN),
    { "n", O_N, OPT_VALUE },                    { "beam", O_BEAM, OPT_VALUE },
    FRONT_TP_ROWS(O_TP),
    { "prompt-len", O_PROMPT_LEN, OPT_VALUE },  { "output-len", O_OUTPUT_LEN, OPT_VALUE },
    { "usage-every", O_USAGE_EVERY, OPT_VALUE },{ "sweep-seconds", O_SWEEP_SECONDS, OPT_VALUE },
    { "max-norm-latency", O_MAX_NORM, OPT_VALUE },
    { "seed", O_SEED, OPT_VALUE },              { "preempt", O_PREEMPT, OPT_VALUE },
    { "static-batching", O_STATIC, OPT_FLAG },  FRONT_PREFIX_ROWS(O_PREFIX, O_NO_PREFIX),
    { "no-chunked-prefill", O_NO_CHUNKED, OPT_FLAG },
    { "steps", O_STEPS, OPT_FLAG },             { "no-steps", O_NO_STEPS, OPT_FLAG },
    { "check", O_CHECK, OPT_FLAG },             { "quiet", O_QUIET, OPT_FLAG },
    { "fig2", O_FIG2, OPT_FLAG },               { "rate-sweep", O_SWEEP, OPT_FLAG },
    { "setting", O_SETTING, OPT_VALUE },        { "op-profile", O_OP_PROFILE, OPT_VALUE },
    { "allocator", O_ALLOCATOR, OPT_VALUE },   { "swap-copies", O_SWAP_COPIES, OPT_VALUE },
    { NULL, 0, 0 },
};

/* A number > 0 (or >= 0 when zero_ok), as the counts and sizes above want. */
static int positive(const char *name, const char *v, bool zero_ok, double *out, char *err, size_t n) {
    if (opt_num(name, v, 0, 1e300, out, err, n) == 0 && (zero_ok || *out > 0)) return 0;
    snprintf(err, n, "%s: expected a number %s 0, got '%s'", name, zero_ok ? ">=" : ">", v ? v : "(nothing)");
    return -1;
}

/* One option k with value v into o; 0, or -1 with err. */
static int set_option(run_opts *o, int k, const char *name, const char *v, char *err, size_t n) {
    const long M = 1000000000L;
    switch (k) {
    case O_WORKLOAD: o->workload = v; o->workload_given = 1; return 0;
    case O_SETTING: o->setting = v; return 0;
    case O_OP_PROFILE: o->op_profile = v; return 0;
    case O_ALLOCATOR:
        if (ra_allocator_parse(v) < 0) { snprintf(err, n, "--allocator: expected buddy or first-fit, got '%s'", v); return -1; }
        o->allocator = v;
        return 0;
    case O_SWAP_COPIES:
        if (cm_swap_copies_parse(v, &o->swap_copies)) {
            snprintf(err, n, "--swap-copies: expected per-block or runs, got '%s'", v);
            return -1;
        }
        return 0;
    case O_MODEL: o->model_path = v; return 0;
    case O_GPU: o->gpu = v; return 0;
    case O_JSON: o->json = v; return 0;
    case O_PLOT: o->plot = v; return 0;
    case O_POLICY: o->policy = v; return 0;
    case O_REQUESTS: return opt_int(name, v, 1, M, &o->requests, err, n);
    case O_RATE: return positive(name, v, true, &o->rate, err, n);
    case O_BLOCK_SIZE: return opt_int(name, v, 1, M, &o->block_size, err, n);
    case O_NUM_BLOCKS: return opt_int(name, v, 1, M, &o->num_blocks, err, n);
    case O_KV_GB: return positive(name, v, false, &o->kv_gb, err, n);
    case O_UTIL: return positive(name, v, false, &o->util, err, n);
    case O_SWAP_GB: return positive(name, v, true, &o->swap_gb, err, n);
    case O_MAX_SEQS: return opt_int(name, v, 1, M, &o->max_num_seqs, err, n);
    case O_MAX_BATCHED: return opt_int(name, v, 1, M, &o->max_batched, err, n);
    case O_MAX_LEN: return opt_int(name, v, 2, M, &o->max_model_len, err, n);
    case O_N: return opt_int(name, v, 1, M, &o->n, err, n);
    case O_BEAM: return opt_int(name, v, 1, M, &o->beam, err, n);
    case O_TP: return opt_int(name, v, 1, M, &o->tp, err, n);
    case O_PROMPT_LEN: return opt_int(name, v, 1, M, &o->prompt_len, err, n);
    case O_OUTPUT_LEN: return opt_int(name, v, 1, M, &o->output_len, err, n);
    case O_USAGE_EVERY: return opt_int(name, v, 1, M, &o->usage_every, err, n);
    case O_SWEEP_SECONDS: return positive(name, v, false, &o->sweep_seconds, err, n);
    case O_MAX_NORM: return positive(name, v, false, &o->max_norm_latency, err, n);
    case O_SEED: return opt_u64(name, v, &o->seed, err, n);
    case O_PREEMPT:
        if (!strcmp(v, "swap")) o->preempt_swap = 1;
        else if (strcmp(v, "recompute")) { snprintf(err, n, "--preempt: expected recompute or swap, got '%s'", v); return -1; }
        return 0;
    case O_STATIC: o->static_batching = 1; return 0;
    case O_PREFIX: o->prefix_caching = 1; return 0;
    case O_NO_PREFIX: o->prefix_caching = 0; return 0;
    case O_NO_CHUNKED: o->no_chunked = 1; return 0;
    case O_STEPS: o->steps = 1; return 0;
    case O_NO_STEPS: o->no_steps = 1; return 0;
    case O_CHECK: o->check = 1; return 0;
    case O_QUIET: o->quiet = 1; return 0;
    case O_FIG2: o->fig2 = 1; return 0;
    case O_SWEEP: o->sweep = 1; return 0;
    case OPT_ARG: snprintf(err, n, "unexpected argument '%s' (pagesim run --help)", v); return -1;
    default: return -1;                                /* OPT_ERROR: err says what */
    }
}

/* Returns 0, 1 for --help, -1 with err. */
static int parse_args(int argc, char **argv, run_opts *o, char *err, size_t n) {
    memset(o, 0, sizeof *o);
    o->workload = "sharegpt"; o->policy = "paged"; o->requests = 0; o->block_size = 16;
    o->max_num_seqs = 256; o->max_batched = 2048; o->n = 1; o->max_model_len = 2048; o->tp = 1;
    o->prompt_len = 512; o->output_len = 128; o->util = 0.9; o->swap_gb = 4; o->seed = 1;
    o->max_norm_latency = 1.0; o->rate = -1; o->prefix_caching = -1; o->sweep_seconds = 0; o->allocator = "buddy"; o->op_profile = "auto";
    opt_parser p;
    const char *v;
    int k, rc = 0;
    if (opt_begin(&p, argc, argv, k_opts, err, n)) return -1;
    while (rc == 0 && (k = opt_next(&p, &v, err, n)) != OPT_END) {
        if (k == O_HELP) rc = 1;
        else if (front_option("pagesim run", k, v)) continue;
        else if (k == OPT_ERROR) { size_t l = strlen(err); snprintf(err + l, n - l, " (pagesim run --help)"); rc = -1; }
        else rc = set_option(o, k, opt_name(&p), v, err, n);
    }
    opt_end(&p);
    return rc;
}

/* ---- one simulation ----------------------------------------------------------- */
typedef struct run_env {          /* what every simulation of one command shares */
    cm_model    model;
    wl_request *reqs;
    int         nreq;
    int         num_blocks, num_cpu_blocks;
    int64_t     kv_bytes_per_token;
    opp_profile prof;             /* step times, when model.prof points here */
    char        prof_path[1024];
} run_env;

/* The progress line (stderr, a terminal): from one second into the run, at
 * most five times a second, and the last one. */
static void progress(void *ctx, int finished, int total, double t) {
    (void)ctx;
    static double t0 = -1, last;
    static int shown;
    double now = clock_now_s();
    if (t0 < 0) t0 = last = now;
    if (finished < total && (now - t0 < 1.0 || now - last < 0.2)) return;
    if (finished == total && !shown) return;
    last = now;
    shown = 1;
    fprintf(stderr, "\r  %d/%d requests finished, %.0f s simulated ", finished, total, t);
    if (finished == total) fputc('\n', stderr);
}

static sim_config make_config(const run_opts *o, const run_env *e, int policy) {
    sim_config c = sim_config_default();
    c.kv.policy = (kv_policy)policy;
    c.kv.num_blocks = e->num_blocks;
    c.kv.block_size = o->block_size;
    c.kv.max_model_len = o->max_model_len;
    c.kv.orca_max_len = 2048 < o->max_model_len ? 2048 : o->max_model_len;
    c.kv.prefix_caching = o->prefix_caching >= 0 ? o->prefix_caching : 1;   /* vLLM V1's default */
    c.kv.allocator = (kv_allocator)ra_allocator_parse(o->allocator);
    c.kv.num_cpu_blocks = o->preempt_swap ? e->num_cpu_blocks : 0;
    c.sched.max_num_seqs = o->max_num_seqs;
    c.sched.max_num_batched_tokens = o->max_batched;
    c.sched.chunked_prefill = !o->no_chunked;
    c.sched.preempt = o->preempt_swap ? SCHED_PREEMPT_SWAP : SCHED_PREEMPT_RECOMPUTE;
    c.sched.static_batching = o->static_batching;
    c.sched.seed = o->seed;
    c.model = &e->model;
    c.seed = o->seed;
    c.check = o->check;
    c.usage_every = o->usage_every;              /* 0: auto (simulate.h) */
    c.keep_steps = o->json && !o->no_steps && (o->steps || e->nreq <= 20000);
    if (!o->quiet && isatty(2) && !o->fig2 && !o->sweep) c.progress = progress;
    return c;
}

/* Loads the model and GPU, builds the workload at `rate`, sizes the pool. */
static int setup(const run_opts *o, double rate, run_env *e, char *err, size_t n) {
    memset(e, 0, sizeof *e);
    mc_config mc;
    cm_gpu g;
    if (!o->model_path) { snprintf(err, n, "--model CONFIG.json is required"); return -1; }
    if (!o->gpu) { snprintf(err, n, "--gpu NAME is required"); return -1; }
    if (mc_load(&mc, o->model_path, err, n) < 0) return -1;
    if (cm_gpu_find(&g, o->gpu, err, n) < 0) return -1;
    mc_dtype wd = mc.dtype;
    if (cm_model_init(&e->model, &mc, &g, o->tp, wd, err, n) < 0) return -1;
    e->model.swap_copies = o->swap_copies;
    /* step times: an operator profile (given, or found in data/profiles/), else the roofline */
    if (o->op_profile && strcmp(o->op_profile, "none")) {
        int found = 1;
        char pdir[4200];
        if (!strcmp(o->op_profile, "auto"))
            found = opp_find(&e->prof, file_data_path("data/profiles", pdir, sizeof pdir), g.name, &mc, o->tp, e->prof_path, sizeof e->prof_path, err, n);
        else if (opp_load(&e->prof, o->op_profile, err, n) == 0) {
            snprintf(e->prof_path, sizeof e->prof_path, "%s", o->op_profile);
            if (!opp_matches(&e->prof, &mc, o->tp)) {
                snprintf(err, n, "%s: measured for %s at tp %d, not %s's shape at tp %d", o->op_profile,
                         e->prof.model, e->prof.tp, mc.name, o->tp);
                return -1;
            }
        } else found = -1;
        if (found < 0) return -1;
        if (found) e->model.prof = &e->prof;
    }
    e->kv_bytes_per_token = plan_kv_bytes_per_token(&mc, e->model.kvdtype, o->tp);   /* KV heads whole when fewer than tp */
    if (e->kv_bytes_per_token <= 0) { snprintf(err, n, "%s: KV bytes per token is 0", o->model_path); return -1; }
    double block_bytes = (double)e->kv_bytes_per_token * o->block_size;
    if (o->num_blocks > 0) e->num_blocks = o->num_blocks;
    else if (o->kv_gb > 0) e->num_blocks = (int)floor(o->kv_gb * 1e9 / block_bytes);
    else {
        plan_opts po; plan_result pr;
        plan_opts_default(&po);
        po.util = o->util; po.max_model_len = o->max_model_len; po.block_size = o->block_size;
        po.tp = o->tp; po.max_num_seqs = o->max_num_seqs;
        if (plan_compute(&mc, &g, &po, &pr, err, n) < 0) return -1;
        if (!pr.fits || pr.num_blocks <= 0) {
            snprintf(err, n, "%s does not fit on %s at util %.2f: %.2f GB left for the KV cache "
                     "(weights %.2f GB)", mc.name, g.name, o->util, pr.kv_bytes / 1e9, pr.weight_bytes / 1e9);
            return -1;
        }
        e->num_blocks = pr.num_blocks > 100000000 ? 100000000 : (int)pr.num_blocks;
    }
    if (e->num_blocks <= 0) { snprintf(err, n, "the KV cache holds no block of %d tokens", o->block_size); return -1; }
    e->num_cpu_blocks = (int)floor(o->swap_gb * (double)(1ull << 30) / block_bytes);

    wl_spec sp;
    memset(&sp, 0, sizeof sp);
    int kind = wl_kind_parse(o->workload);
    if (kind < 0) {
        snprintf(err, n, "--workload: '%s' is not sharegpt, alpaca, fixed or a readable trace file",
                 o->workload ? o->workload : "(nothing)");
        return -1;
    }
    sp.kind = (wl_kind)kind; sp.num_requests = o->requests; sp.rate = rate; sp.seed = o->seed;
    sp.max_len = o->max_model_len; sp.fixed_prompt = o->prompt_len; sp.fixed_output = o->output_len;
    sp.path = o->workload;
    if (wl_generate(&sp, &e->reqs, &e->nreq, err, n) < 0) return -1;
    if (e->nreq <= 0) { snprintf(err, n, "%s: no requests", o->workload); return -1; }
    for (int i = 0; i < e->nreq; i++) {
        if (o->n > 1) e->reqs[i].n = o->n;
        if (o->beam > 1) e->reqs[i].beam = o->beam;
    }
    return 0;
}

static void print_summary(FILE *f, const run_opts *o, const run_env *e, const sim_config *c,
                          const sim_result *r) {
    const met_summary *s = &r->summary;
    double mp, mo;
    wl_stats(e->reqs, e->nreq, &mp, &mo);
    fprintf(f, "pagesim run: %s on %s (TP %d), policy %s%s, %d blocks x %d tokens (%.2f GB KV)\n",
            e->model.cfg.name, e->model.gpu.name, e->model.tp, kv_policy_name(c->kv.policy),
            c->kv.policy != KV_PAGED ? "" : c->kv.prefix_caching ? " (prefix caching on)" : " (prefix caching off)",
            c->kv.num_blocks, c->kv.block_size,
            (double)c->kv.num_blocks * c->kv.block_size * (double)e->kv_bytes_per_token / 1e9);
    fprintf(f, "workload: %s, %d requests, mean prompt %.1f / output %.1f tokens, rate %s\n",
            o->workload, e->nreq, mp, mo,
            wl_kind_parse(o->workload) == WL_TRACE ? "from the trace" : o->rate > 0 ? "Poisson" : "all at t=0");
    if (o->rate > 0) fprintf(f, "          %.3f requests/s\n", o->rate);
    fprintf(f, "step times: %s%s\n", e->model.prof ? "operator profile " : "roofline (no operator profile)",
            e->model.prof ? e->prof_path : "");
    fprintf(f, "\n  %-28s %12s\n", "metric", "value");
    fprintf(f, "  %-28s %12d\n", "requests finished", s->num_finished);
    fprintf(f, "  %-28s %12d\n", "requests aborted", s->num_aborted);
    if (s->num_refused > 0)
        fprintf(f, "  %-28s %12d   (prompt + output beyond the %ld-slot pool or max_model_len %d)\n",
                "  of which never fit", s->num_refused, (long)c->kv.num_blocks * c->kv.block_size,
                c->sched.max_model_len > 0 ? c->sched.max_model_len : c->kv.max_model_len);
    fprintf(f, "  %-28s %12.2f\n", "simulated time (s)", s->sim_time);
    fprintf(f, "  %-28s %12.3f\n", "throughput (requests/s)", s->req_per_s);
    fprintf(f, "  %-28s %12.1f\n", "output tokens/s", s->out_tok_per_s);
    fprintf(f, "  %-28s %12.1f\n", "total tokens/s", s->total_tok_per_s);
    fprintf(f, "\n  %-22s %10s %10s %10s %10s\n", "latency (s)", "mean", "p50", "p90", "p99");
    const met_pct *p[4] = { &s->ttft, &s->tpot, &s->e2e, &s->norm_latency };
    const char *nm[4] = { "TTFT", "TPOT", "end-to-end", "normalized (s/token)" };
    for (int i = 0; i < 4; i++)
        fprintf(f, "  %-22s %10.4f %10.4f %10.4f %10.4f\n", nm[i], p[i]->mean, p[i]->p50, p[i]->p90, p[i]->p99);
    fprintf(f, "\n  KV pool, time-averaged share of all slots\n");
    fprintf(f, "  %-28s %11.1f%%\n", "token states", 100 * s->share_token);
    fprintf(f, "  %-28s %11.1f%%\n", "reserved", 100 * s->share_reserved);
    fprintf(f, "  %-28s %11.1f%%\n", "internal fragmentation", 100 * s->share_internal);
    fprintf(f, "  %-28s %11.1f%%\n", "external fragmentation", 100 * s->share_external);
    fprintf(f, "  %-28s %11.1f%%\n", "free", 100 * s->share_free);
    fprintf(f, "  %-28s %11.1f%%\n", "token states / held+lost", 100 * s->token_share_of_used);
    fprintf(f, "\n  %-28s %12.1f\n", "mean running sequences", s->mean_running);
    fprintf(f, "  %-28s %12.1f\n", "mean waiting requests", s->mean_waiting);
    fprintf(f, "  %-28s %12ld\n", "steps", s->steps);
    fprintf(f, "  %-28s %12ld\n", "preemptions", s->preemptions);
    if (s->swap_outs) fprintf(f, "  %-28s %12ld\n", "swap-outs", s->swap_outs);
    if (s->cow_copies) fprintf(f, "  %-28s %12ld\n", "copy-on-write copies", s->cow_copies);
    if (s->prefix_hit_tokens) fprintf(f, "  %-28s %12ld\n", "prefix-cache hit tokens", s->prefix_hit_tokens);
    fprintf(f, "  %-28s %12.3f\n", "wall time (s)", s->wall_time);
}

/* ---- Figure 2 ------------------------------------------------------------------
 * The computation is sim/fig2.c's; here the paper's setting is the default
 * (OPT-13B, A100-40GB, 12 GiB of KV cache, ShareGPT, 2 requests/s for an
 * hour, Orca on the buddy allocator) and the table is printed. */
static void print_cell(double measured, double paper) {
    if (isnan(paper)) printf(" %5.1f     -      ", measured);
    else printf(" %5.1f %5.1f %+5.1f ", measured, paper, measured - paper);
}

static int run_fig2(run_opts *o, char *err, size_t n) {
    if (!o->model_path) o->model_path = "data/models/opt-13b.json";
    if (!o->gpu) o->gpu = "A100-40GB";
    if (o->rate < 0) o->rate = FIG2_PAPER_RATE;
    if (o->requests <= 0) o->requests = FIG2_PAPER_REQUESTS;
    int paper_pool = o->kv_gb <= 0 && o->num_blocks <= 0;
    if (paper_pool) o->num_blocks = 1;           /* placeholder: sized below */
    run_env e;
    if (setup(o, o->rate, &e, err, n) < 0) { free(e.reqs); return FRONT_USAGE; }
    sim_config c = make_config(o, &e, KV_PAGED);
    if (o->prefix_caching < 0) c.kv.prefix_caching = false;     /* the paper's vLLM had none */
    if (paper_pool) {
        fig2_paper_config(&c, (double)e.kv_bytes_per_token);
        c.kv.allocator = (kv_allocator)ra_allocator_parse(o->allocator);
    }
    c.keep_steps = o->plot != NULL;
    double mp, mo;
    wl_stats(e.reqs, e.nreq, &mp, &mo);
    fig2_table t;
    sim_result res[FIG2_NPOL];
    if (fig2_compute(&c, e.reqs, e.nreq, &t, o->plot ? res : NULL, err, n) < 0) { free(e.reqs); return FRONT_FAIL; }
    printf("Figure 2 (vLLM paper): where the KV cache memory goes, %% of the memory held or lost\n");
    printf("%s on %s, %d blocks x %d = %ld slots (%.2f GiB), %s allocator; %s: %d requests "
           "(mean prompt %.1f, output %.1f) at %.2f req/s\n\n", e.model.cfg.name, e.model.gpu.name,
           c.kv.num_blocks, c.kv.block_size, (long)c.kv.num_blocks * c.kv.block_size,
           (double)c.kv.num_blocks * c.kv.block_size * (double)e.kv_bytes_per_token / 1073741824.0,
           ra_allocator_name(c.kv.allocator), o->workload, e.nreq, mp, mo, o->rate);
    static const char *const head[FIG2_NCAT] = { "token states", "reservation", "internal frag.",
                                                  "external & others" };
    printf("  %-12s", "");
    for (int k = 0; k < FIG2_NCAT; k++) printf(" %-19s", head[k]);
    printf(" %s\n  %-12s", "batched (Fig. 13a)", "policy");
    for (int k = 0; k < FIG2_NCAT; k++) printf(" %5s %5s %5s ", "ours", "paper", "diff");
    printf(" %6s %6s\n", "ours", "paper");
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "policies");
    const char *labels[FIG2_NPOL];
    double paper_tok[FIG2_NPOL];
    for (int i = 0; i < FIG2_NPOL; i++) {
        const fig2_row *r = &t.row[i];
        printf("  %-12s", kv_policy_name(r->policy));
        for (int k = 0; k < FIG2_NCAT; k++) print_cell(r->measured[k], r->paper[k]);
        printf(" %6.2f %6.2f\n", r->mean_running, r->paper_running);
        labels[i] = kv_policy_name(r->policy);
        paper_tok[i] = r->paper[FIG2_TOKEN] / 100;
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "policy", kv_policy_name(r->policy));
        static const char *const key[FIG2_NCAT] = { "token", "reserved", "internal", "external" };
        for (int k = 0; k < FIG2_NCAT; k++) {
            char kk[32];
            snprintf(kk, sizeof kk, "%s_pct", key[k]);
            cJSON_AddNumberToObject(p, kk, r->measured[k]);
            snprintf(kk, sizeof kk, "paper_%s_pct", key[k]);
            if (isnan(r->paper[k])) cJSON_AddNullToObject(p, kk);
            else cJSON_AddNumberToObject(p, kk, r->paper[k]);
        }
        cJSON_AddNumberToObject(p, "mean_running", r->mean_running);
        cJSON_AddNumberToObject(p, "paper_mean_running", r->paper_running);
        cJSON_AddNumberToObject(p, "req_per_s", r->req_per_s);
        cJSON_AddItemToArray(arr, p);
    }
    cJSON_AddNumberToObject(root, "worst_diff_points", t.worst);
    printf("\n  largest difference from the paper: %.1f points (every category within 5: %s)\n", t.worst,
           t.worst <= 5 ? "yes" : "no");
    printf("  vLLM's bar is labelled with its token share only (the other 3.7%% is not split); its batch\n"
           "  differs because our step times are shorter than the paper's, so paged is not memory-bound at\n"
           "  2 req/s.  --allocator first-fit shows what the buddy allocator adds.\n");
    int rc = 0;
    if (o->json && met_write_json(root, o->json, err, n) < 0) rc = FRONT_FAIL;
    if (rc == 0 && o->plot) {
        if (viz_plot_results(o->plot, labels, res, FIG2_NPOL, paper_tok, err, n) < 0) rc = FRONT_FAIL;
        else printf("  plot written to %s\n", o->plot);
    }
    if (o->plot) for (int k = 0; k < FIG2_NPOL; k++) sim_result_free(&res[k]);
    cJSON_Delete(root);
    free(e.reqs);
    return rc;
}

/* ---- rate sweep ------------------------------------------------------------------
 * The computation is sim/rate_sweep.c's: for each setting, the highest rate
 * whose mean normalized latency stays under --max-norm-latency, per policy.
 * Without --model, the paper's settings (or --setting NAME) on ShareGPT and
 * Alpaca (or --workload); with --model, that model's pool (--num-blocks,
 * --kv-gb or the planner) on --workload.  Progress goes to stderr. */
typedef struct sweep_progress { const char *what; int tty, quiet; } sweep_progress;

static void sweep_tick(void *ctx, kv_policy p, double rate, double norm) {
    sweep_progress *sp = ctx;
    if (sp->quiet) return;
    if (sp->tty) fprintf(stderr, "\r  %s, %-11s %9.3f req/s -> %8.3f s/token   ", sp->what, kv_policy_name(p), rate, norm);
}

static void sweep_row_print(const rs_row *r, const char *label, const char *wl) {
    printf("  %-26s %-8s", label, wl);
    for (int i = 0; i < RS_NPOL; i++) printf(" %8.3f", r->rate[i]);
    double vo = r->rate[RS_ORACLE] > 0 ? r->rate[RS_PAGED] / r->rate[RS_ORACLE] : INFINITY;
    double vm = r->rate[RS_MAX] > 0 ? r->rate[RS_PAGED] / r->rate[RS_MAX] : INFINITY;
    printf("   %6.2fx %6.2fx", vo, vm);
    int opt_sharegpt = r->setting && !strncmp(r->setting->name, "opt-", 4) && r->workload == WL_SHAREGPT;
    if (opt_sharegpt) printf("   %.1f-%.1fx %.1f-%.0fx\n", RS_PAPER_ORACLE_LO, RS_PAPER_ORACLE_HI, RS_PAPER_MAX_LO, RS_PAPER_MAX_HI);
    else printf("   %9s %7s\n", "-", "-");
}

static cJSON *sweep_row_json(const rs_row *r, const char *name, const char *wl) {
    static const char *const key[RS_NPOL] = { "paged", "orca_oracle", "orca_pow2", "orca_max" };
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "setting", name);
    cJSON_AddStringToObject(j, "workload", wl);
    for (int i = 0; i < RS_NPOL; i++) cJSON_AddNumberToObject(j, key[i], r->rate[i]);
    if (r->rate[RS_ORACLE] > 0) cJSON_AddNumberToObject(j, "paged_over_oracle", r->rate[RS_PAGED] / r->rate[RS_ORACLE]);
    if (r->rate[RS_MAX] > 0) cJSON_AddNumberToObject(j, "paged_over_max", r->rate[RS_PAGED] / r->rate[RS_MAX]);
    return j;
}

static void sweep_template(const run_opts *o, rs_spec *t) {
    rs_spec_default(t);
    t->kv.block_size = o->block_size;
    t->kv.max_model_len = o->max_model_len;
    t->kv.orca_max_len = 2048 < o->max_model_len ? 2048 : o->max_model_len;
    t->kv.allocator = (kv_allocator)ra_allocator_parse(o->allocator);
    t->sched.max_num_seqs = o->max_num_seqs;
    t->sched.max_num_batched_tokens = o->max_batched;
    t->sched.chunked_prefill = !o->no_chunked;
    t->max_norm_latency = o->max_norm_latency;
    t->window_s = o->sweep_seconds;                /* 0: each setting's trace length */
    t->seed = o->seed;
    t->fixed_prompt = o->prompt_len;
    t->fixed_output = o->output_len;
    if (o->prefix_caching >= 0) t->kv.prefix_caching = o->prefix_caching;   /* else the paper's: off */
}

static int run_sweep(run_opts *o, char *err, size_t n) {
    static const char *const wlname[3] = { "sharegpt", "alpaca", "fixed" };
    rs_spec tmpl;
    sweep_template(o, &tmpl);
    sweep_progress sp = { "", isatty(2), o->quiet };
    tmpl.progress = sweep_tick;
    tmpl.progress_ctx = &sp;
    int nwl = 1, kinds[2] = { WL_SHAREGPT, WL_ALPACA };
    if (o->workload_given && ((kinds[0] = wl_kind_parse(o->workload)) < 0 || kinds[0] == WL_TRACE)) {
        snprintf(err, n, "--workload: a rate sweep needs sharegpt, alpaca or fixed, got '%s'", o->workload);
        return FRONT_USAGE;
    }
    if (!o->workload_given && !o->model_path) nwl = 2;
    /* the settings: one custom (--model, its pool as a run would size it), or the paper's */
    run_env e;
    memset(&e, 0, sizeof e);
    rs_setting custom;
    int ns = 1;
    const rs_setting *all = &custom;
    if (o->model_path) {
        run_opts oo = *o;
        oo.requests = 1;
        if (!o->gpu) { snprintf(err, n, "--gpu NAME is required with --model"); return FRONT_USAGE; }
        if (setup(&oo, 0, &e, err, n) < 0) { free(e.reqs); return FRONT_USAGE; }
        free(e.reqs);
        custom = (rs_setting){ "custom", e.model.cfg.name, o->model_path, o->gpu, o->tp,
                               (long)e.num_blocks * o->block_size, 3600 };
        tmpl.model = &e.model;                     /* with its operator profile, if any */
    } else if (o->setting && !(all = rs_paper_setting(o->setting))) {
        snprintf(err, n, "--setting: unknown '%s' (opt-13b, opt-66b, opt-175b, llama-13b)", o->setting);
        return FRONT_USAGE;
    } else if (!o->setting) {
        all = rs_paper_settings(&ns);
    }
    printf("Sustainable request rate: the highest whose mean normalized latency stays <= %.3f s/token\n"
           "Orca on the %s allocator; Poisson arrivals for ", o->max_norm_latency, ra_allocator_name(tmpl.kv.allocator));
    if (o->sweep_seconds > 0) printf("%.0f s per run", o->sweep_seconds);
    else printf("an hour per run (15 min for OPT-175B), as the paper's traces");
    printf(", seed %llu\n\n  %-26s %-8s %8s %8s %8s %8s   %14s   %17s\n", o->seed, "setting", "workload", "paged",
           "oracle", "pow2", "max", "paged over", "paper (ShareGPT)");
    printf("  %-26s %-8s %35s   %7s %7s   %9s %7s\n", "", "", "requests/s", "oracle", "max", "oracle", "max");
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "rows");
    cJSON_AddNumberToObject(root, "max_norm_latency", o->max_norm_latency);
    double lo_o = INFINITY, hi_o = 0, lo_m = INFINITY, hi_m = 0;
    rs_row r;
    for (int k = 0; k < ns; k++)
        for (int w = 0; w < nwl; w++) {
            char what[96];
            snprintf(what, sizeof what, "%s %s", all[k].name, wlname[kinds[w]]);
            sp.what = what;
            if (rs_run_setting(&all[k], (wl_kind)kinds[w], &tmpl, &r, err, n) < 0) { cJSON_Delete(root); return FRONT_FAIL; }
            if (sp.tty && !sp.quiet) fprintf(stderr, "\r%120s\r", "");
            else if (!sp.quiet) fprintf(stderr, "  %s done\n", what);
            sweep_row_print(&r, all[k].label, wlname[kinds[w]]);
            fflush(stdout);
            cJSON_AddItemToArray(arr, sweep_row_json(&r, all[k].name, wlname[kinds[w]]));
            if (!strncmp(all[k].name, "opt-", 4) && kinds[w] == WL_SHAREGPT && r.rate[RS_ORACLE] > 0 && r.rate[RS_MAX] > 0) {
                double vo = r.rate[RS_PAGED] / r.rate[RS_ORACLE], vm = r.rate[RS_PAGED] / r.rate[RS_MAX];
                lo_o = fmin(lo_o, vo); hi_o = fmax(hi_o, vo); lo_m = fmin(lo_m, vm); hi_m = fmax(hi_m, vm);
            }
        }
    if (o->model_path)
        printf("\n  paged / orca-oracle: %.2fx   paged / orca-max: %.2fx   ", r.rate[RS_ORACLE] > 0 ?
               r.rate[RS_PAGED] / r.rate[RS_ORACLE] : 0, r.rate[RS_MAX] > 0 ? r.rate[RS_PAGED] / r.rate[RS_MAX] : 0);
    else if (hi_o > 0)
        printf("\n  OPT models on ShareGPT: paged sustains %.1f-%.1fx Orca (Oracle) and %.1f-%.1fx Orca (Max)\n  ",
               lo_o, hi_o, lo_m, hi_m);
    if (o->model_path || hi_o > 0)
        printf("(the paper, ShareGPT: %.1f-%.1fx and %.1f-%.0fx)\n", RS_PAPER_ORACLE_LO, RS_PAPER_ORACLE_HI,
               RS_PAPER_MAX_LO, RS_PAPER_MAX_HI);
    int rc = o->json && met_write_json(root, o->json, err, n) < 0 ? FRONT_FAIL : 0;
    cJSON_Delete(root);
    return rc;
}

/* An output path we can write (and, for --plot, a format we draw): checked
 * before anything runs, so that a typo costs no simulation.  0, or -1 with err. */
static int check_output(const char *opt, const char *path, int plot, char *err, size_t n) {
    if (plot && path && viz_format_of(path) == VIZ_FMT_UNKNOWN) {
        snprintf(err, n, "%s %s: the file name must end in .png, .svg or .pdf", opt, path);
        return -1;
    }
    return front_check_output(opt, path, err, n);
}

int pagesim_cmd_run(int argc, char **argv) {
    run_opts o;
    char err[512] = "";
    int pr = parse_args(argc, argv, &o, err, sizeof err);
    if (pr == 1) { usage(stdout); return 0; }
    if (pr < 0) { fprintf(stderr, "pagesim run: %s\n", err); return FRONT_USAGE; }
    if (o.fig2 && o.sweep) { fprintf(stderr, "pagesim run: --fig2 and --rate-sweep are separate runs\n"); return FRONT_USAGE; }
    if (check_output("--json", o.json, 0, err, sizeof err) || check_output("--plot", o.plot, 1, err, sizeof err)) {
        fprintf(stderr, "pagesim run: %s\n", err);
        return FRONT_USAGE;
    }
    if (o.fig2 || o.sweep) {
        int rc = o.fig2 ? run_fig2(&o, err, sizeof err) : run_sweep(&o, err, sizeof err);
        if (rc) fprintf(stderr, "pagesim run %s: %s\n", o.fig2 ? "--fig2" : "--rate-sweep", err);
        return rc;
    }
    int policy = kv_policy_parse(o.policy);
    if (policy < 0) {
        fprintf(stderr, "pagesim run: --policy: unknown '%s' (paged, contiguous, orca-max, "
                "orca-pow2, orca-oracle)\n", o.policy ? o.policy : "(nothing)");
        return FRONT_USAGE;
    }
    if (o.rate < 0) o.rate = 0;
    if (o.requests <= 0 && wl_kind_parse(o.workload) != WL_TRACE) o.requests = 1000;   /* a trace: all of it */
    run_env e;
    if (setup(&o, o.rate, &e, err, sizeof err) < 0) {     /* the model, GPU, pool and workload: input */
        fprintf(stderr, "pagesim run: %s\n", err);
        free(e.reqs);
        return FRONT_USAGE;
    }
    sim_config c = make_config(&o, &e, policy);
    if (o.plot) c.keep_steps = true;
    sim_result r;
    if (sim_run(&c, e.reqs, e.nreq, &r, err, sizeof err) < 0) {
        fprintf(stderr, "pagesim run: %s\n", err);
        free(e.reqs);
        return FRONT_FAIL;
    }
    print_summary(stdout, &o, &e, &c, &r);
    int rc = 0;
    if (o.json) {
        cJSON *j = sim_result_json(&c, &r);
        if (!j || met_write_json(j, o.json, err, sizeof err) < 0) {
            fprintf(stderr, "pagesim run: %s\n", j ? err : "out of memory");
            rc = FRONT_FAIL;
        } else {
            printf("\nmetrics written to %s\n", o.json);
        }
        cJSON_Delete(j);
    }
    if (o.plot) {
        const char *lab = kv_policy_name(c.kv.policy);
        if (viz_plot_results(o.plot, &lab, &r, 1, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "pagesim run: %s\n", err);
            rc = FRONT_FAIL;
        } else {
            printf("plot written to %s\n", o.plot);
        }
    }
    sim_result_free(&r);
    free(e.reqs);
    return rc;
}
