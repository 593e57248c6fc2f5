/* cmd_viz: `pagesim [OPTIONS]`, the block-pool view: a window where there is
 * a display, else the terminal; or files (--png/--svg/--pdf, --frames).
 * Parses options, builds the scenario (classroom by default, or --workload)
 * and hands it to one output.  Prints; returns the exit status. */
#include <errno.h>
#include <math.h>
#include "base/file.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "apps/pagesim/commands.h"
#include "apps/common/front.h"
#include "base/opt.h"
#include "sim/planner.h"
#include "viz/scenario.h"
#include "viz/export.h"
#include "viz/tui.h"
#include "viz/window.h"

void pagesim_viz_usage(FILE *f) {
    fputs("usage: pagesim [--blocks N] [--block-size B] [--seed S] [--policy P] [--compare POLICY]\n"
          "               [--png|--svg|--pdf FILE] [--step K] [--frames DIR] [--size WxH]\n"
          "               [--tui] [--play] [--delay MS] [--no-color]\n"
          "               [--workload sharegpt|alpaca|fixed|FILE] [--num-prompts N] [--rate R]\n"
          "               [--prompt-len P --output-len O] [--max-model-len L] [--max-num-seqs N]\n"
          "               [--max-num-batched-tokens T] [--swap-blocks N | --swap-space GIB]\n"
          "               [--no-enable-prefix-caching]\n"
          "               [--model CONFIG.json --gpu NAME [--tensor-parallel-size N]]\n"
          "\n"
          "Shows PagedAttention's KV block pool step by step: requests arrive, grow\n"
          "token by token, share blocks (parallel sampling, copy-on-write, prefix\n"
          "cache), finish and free them; when the pool runs out the newest request is\n"
          "preempted.  The real block manager and scheduler drive the picture.\n"
          "\n"
          "  --blocks N            physical KV blocks in the pool (16; also --num-gpu-blocks)\n"
          "  --block-size B        token slots per block (4)\n"
          "  --seed S              seed of the scenario / workload (1)\n"
          "  --policy P            the allocator of the main pool (paged)\n"
          "  --compare POLICY      draw the same requests under a baseline allocator beside\n"
          "                        it: contiguous, orca-max, orca-pow2, orca-oracle\n"
          "  --png/--svg/--pdf F   write the final state (or step K) to a file and exit\n"
          "  --step K              the step to write (default: the last)\n"
          "  --frames DIR          write one PNG per step into DIR and exit\n"
          "  --size WxH            picture / window size (1280x800)\n"
          "  --tui                 the terminal view even where there is a display\n"
          "  --play                advance by itself (terminal and window)\n"
          "  --delay MS            between steps when playing (400)\n"
          "  --no-color            terminal view without ANSI colours\n"
          "  --workload KIND|FILE  serve a workload instead of the classroom scenario:\n"
          "                        sharegpt, alpaca, fixed, or a CSV/JSONL trace\n"
          "  --num-prompts N       synthetic workload size (8)\n"
          "  --rate R              requests per second, Poisson (0: all at once)\n"
          "  --prompt-len/--output-len   lengths of the fixed workload\n"
          "  --max-model-len L     prompt+output cap, and the contiguous reservation\n"
          "                        (default: half the pool, at most 16 blocks)\n"
          "  --max-num-seqs N      sequences per step\n"
          "  --max-num-batched-tokens T   token budget per step\n"
          "  --swap-blocks N       CPU swap space in blocks: preempt by swapping (0: recompute)\n"
          "  --swap-space GIB      the same in GiB, with --model (its KV bytes per block)\n"
          "  --enable-prefix-caching, --no-enable-prefix-caching   automatic prefix\n"
          "                        caching (on)\n"
          "  --model CONFIG.json --gpu NAME [--tensor-parallel-size N, -tp N]   step times\n"
          "                        from the cost model of that model on that GPU\n"
          "                        (data/models/*.json; H100-SXM, H200, A100-40GB, ...);\n"
          "                        without them a toy cost times the steps\n"
          "  --data-dir DIR        the project's data folder (data/... paths)\n"
          "  --version, -h/--help\n"
          "\n"
          "In the window: space step, p play/pause, +/- speed, r restart, s save PNG,\n"
          "q/Esc quit; hover a block to see its owner, slots and ref count.\n"
          "In the terminal: Enter/space step, p play, r restart, q quit.  Without a\n"
          "display the terminal view is used; when stdout is not a terminal the\n"
          "final frame is printed.\n"
          "Older names accepted: --requests, --max-len, --max-batched-tokens, --tp,\n"
          "--no-prefix-caching.  Exit status: 0 done, 1 failed, 2 bad usage or input.\n", f);
}

static int export_steps(viz_scenario *v, const char *file, const char *frames, int step_k,
                        int W, int H, char *err, size_t errlen) {
    int rc;
    const viz_scene *s = viz_scenario_scene(v);
    if (frames && viz_export_frame(s, frames, W, H, err, errlen)) return -1;
    while (step_k < 0 || s->step < step_k) {
        rc = viz_scenario_step(v, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) break;
        if (frames && viz_export_frame(s, frames, W, H, err, errlen)) return -1;
    }
    if (step_k >= 0 && s->step < step_k) {
        snprintf(err, errlen, "--step %d: the run ends at step %d", step_k, s->step);
        return -1;
    }
    if (file && viz_export_scene(s, file, W, H, err, errlen)) return -1;
    return 0;
}

/* Under `make asan`: fontconfig, cairo's font caches and SDL keep
 * process-lifetime allocations that LeakSanitizer reports at exit; not ours.
 * (A sanitizer hook; unused in ordinary builds.) */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\nleak:libcairo.so\nleak:libSDL2\nleak:libX11.so\nleak:libdbus\n";
}

enum { O_HELP = 'h', O_BLOCKS = 256, O_BLOCK_SIZE, O_SEED, O_STEP, O_DELAY, O_REQUESTS, O_PROMPT_LEN,
       O_OUTPUT_LEN, O_MAX_LEN, O_MAX_SEQS, O_MAX_BATCHED, O_SWAP_BLOCKS, O_TP, O_RATE, O_SIZE, O_PNG,
       O_SVG, O_PDF, O_FRAMES, O_COMPARE, O_POLICY, O_MODEL, O_GPU, O_WORKLOAD, O_TUI, O_PLAY, O_NO_COLOR,
       O_NO_PREFIX, O_PREFIX, O_SWAP_SPACE };
static const opt_spec k_opts[] = {
    { "help", O_HELP, OPT_FLAG },                FRONT_SPECS,
    { "blocks", O_BLOCKS, OPT_VALUE },           FRONT_BLOCKS_ROWS(O_BLOCKS),
    { "block-size", O_BLOCK_SIZE, OPT_VALUE },
    { "seed", O_SEED, OPT_VALUE },               { "step", O_STEP, OPT_VALUE },
    { "delay", O_DELAY, OPT_VALUE },             FRONT_PROMPTS_ROWS(O_REQUESTS),
    { "prompt-len", O_PROMPT_LEN, OPT_VALUE },   { "output-len", O_OUTPUT_LEN, OPT_VALUE },
    FRONT_MAX_LEN_ROWS(O_MAX_LEN),               FRONT_SEQS_ROWS(O_MAX_SEQS),
    FRONT_BATCHED_ROWS(O_MAX_BATCHED),
    { "swap-blocks", O_SWAP_BLOCKS, OPT_VALUE }, { "swap-space", O_SWAP_SPACE, OPT_VALUE },
    FRONT_TP_ROWS(O_TP),
    { "rate", O_RATE, OPT_VALUE },               { "size", O_SIZE, OPT_VALUE },
    { "png", O_PNG, OPT_VALUE },                 { "svg", O_SVG, OPT_VALUE },
    { "pdf", O_PDF, OPT_VALUE },                 { "frames", O_FRAMES, OPT_VALUE },
    { "compare", O_COMPARE, OPT_VALUE },         { "policy", O_POLICY, OPT_VALUE },
    { "model", O_MODEL, OPT_VALUE },             { "gpu", O_GPU, OPT_VALUE },
    { "workload", O_WORKLOAD, OPT_VALUE },       { "tui", O_TUI, OPT_FLAG },
    { "play", O_PLAY, OPT_FLAG },                { "no-color", O_NO_COLOR, OPT_FLAG },
    FRONT_PREFIX_ROWS(O_PREFIX, O_NO_PREFIX),
    { NULL, 0, 0 },
};

int pagesim_cmd_viz(int argc, char **argv) {
    int blocks = 16, bs = 4, seed = 1, step_k = -1, W = 1280, H = 800, delay = 400;
    int requests = 8, plen = 32, olen = 64, max_len = 0, max_seqs = 0, max_tok = 0, swap = 0, tp = 1;
    double rate = 0, swap_gib = -1;
    bool tui = false, play = false, color = true, no_prefix = false;
    const char *file = NULL, *frames = NULL, *compare = NULL, *workload = NULL, *policy = NULL;
    const char *model_path = NULL, *gpu = NULL;
    int nfile = 0;
    opt_parser p;
    const char *val;
    char err[512];
    int k, bad = 0;
    if (opt_begin(&p, argc, argv, k_opts, err, sizeof err)) return pagesim_bad_usage("pagesim", err);
    while (!bad && (k = opt_next(&p, &val, err, sizeof err)) != OPT_END) {
        const char *a = opt_name(&p);
        if (front_option("pagesim", k, val)) continue;
        switch (k) {
        case O_HELP: opt_end(&p); pagesim_viz_usage(stdout); return 0;
        case O_BLOCKS: bad = opt_int(a, val, 1, 1 << 20, &blocks, err, sizeof err); break;
        case O_BLOCK_SIZE: bad = opt_int(a, val, 1, 1024, &bs, err, sizeof err); break;
        case O_SEED: bad = opt_int(a, val, 0, 2147483647, &seed, err, sizeof err); break;
        case O_STEP: bad = opt_int(a, val, 0, 100000000, &step_k, err, sizeof err); break;
        case O_DELAY: bad = opt_int(a, val, 1, 60000, &delay, err, sizeof err); break;
        case O_REQUESTS: bad = opt_int(a, val, 1, 1000000, &requests, err, sizeof err); break;
        case O_PROMPT_LEN: bad = opt_int(a, val, 1, 1 << 24, &plen, err, sizeof err); break;
        case O_OUTPUT_LEN: bad = opt_int(a, val, 1, 1 << 24, &olen, err, sizeof err); break;
        case O_MAX_LEN: bad = opt_int(a, val, 2, 1 << 24, &max_len, err, sizeof err); break;
        case O_MAX_SEQS: bad = opt_int(a, val, 1, 1 << 20, &max_seqs, err, sizeof err); break;
        case O_MAX_BATCHED: bad = opt_int(a, val, 1, 1 << 24, &max_tok, err, sizeof err); break;
        case O_SWAP_BLOCKS: bad = opt_int(a, val, 0, 1 << 24, &swap, err, sizeof err); break;
        case O_SWAP_SPACE: bad = opt_num(a, val, 0, 1 << 20, &swap_gib, err, sizeof err); break;
        case O_TP: bad = opt_int(a, val, 1, 64, &tp, err, sizeof err); break;
        case O_RATE: bad = opt_num(a, val, 0, 1e300, &rate, err, sizeof err); break;
        case O_SIZE:
            if (sscanf(val, "%dx%d", &W, &H) != 2 || W < 200 || H < 150 || W > 16384 || H > 16384) {
                snprintf(err, sizeof err, "--size wants WxH (200x150 .. 16384x16384), got '%s'", val);
                bad = 1;
            }
            break;
        case O_PNG: case O_SVG: case O_PDF: {
            file = val; nfile++;
            viz_format want = k == O_PNG ? VIZ_FMT_PNG : k == O_SVG ? VIZ_FMT_SVG : VIZ_FMT_PDF;
            if (viz_format_of(val) != want) {
                snprintf(err, sizeof err, "%s %s: the file name must end in .%s", a, val, a + 2);
                bad = 1;
            }
            break;
        }
        case O_FRAMES: frames = val; break;
        case O_COMPARE: compare = val; break;
        case O_POLICY: policy = val; break;
        case O_MODEL: model_path = val; break;
        case O_GPU: gpu = val; break;
        case O_WORKLOAD: workload = val; break;
        case O_TUI: tui = true; break;
        case O_PLAY: play = true; break;
        case O_NO_COLOR: color = false; break;
        case O_NO_PREFIX: no_prefix = true; break;
        case O_PREFIX: no_prefix = false; break;
        case OPT_ARG: snprintf(err, sizeof err, "unexpected argument '%s'", val); bad = 1; break;
        default: bad = 1; break;                       /* OPT_ERROR: err says what */
        }
    }
    opt_end(&p);
    if (bad) return pagesim_bad_usage("pagesim", err);
    if (nfile > 1) { fputs("pagesim: give one of --png, --svg, --pdf\n", stderr); return 2; }
    if (step_k >= 0 && !file) { fputs("pagesim: --step goes with --png, --svg or --pdf\n", stderr); return 2; }
    if (front_check_output(nfile ? "--png/--svg/--pdf" : "", file, err, sizeof err)) return pagesim_bad_usage("pagesim", err);
    if (swap_gib >= 0 && !model_path) { fputs("pagesim: --swap-space GIB needs --model (else --swap-blocks N)\n", stderr); return 2; }
    if (frames && access(frames, W_OK) != 0 && file_mkdirs(frames) != 0) {
        fprintf(stderr, "pagesim: --frames %s: %s\n", frames, strerror(errno));
        return 2;
    }

    int rc = 1;
    wl_request *reqs = NULL;
    int nreq = 0;
    viz_scenario *v = NULL;
    viz_scenario_config cfg = viz_scenario_defaults(blocks, bs, (uint64_t)seed);
    if (max_len) { cfg.kv.max_model_len = max_len; cfg.kv.orca_max_len = max_len; cfg.sched.max_model_len = max_len; }
    if (max_seqs) cfg.sched.max_num_seqs = max_seqs;
    if (max_tok) cfg.sched.max_num_batched_tokens = max_tok;
    if (swap) { cfg.kv.num_cpu_blocks = swap; cfg.sched.preempt = SCHED_PREEMPT_SWAP; }
    if (no_prefix) cfg.kv.prefix_caching = false;
    if (policy) {
        int p = kv_policy_parse(policy);
        if (p < 0) {
            fprintf(stderr, "pagesim: --policy %s: want paged, contiguous, orca-max, orca-pow2 or orca-oracle\n", policy);
            return 2;
        }
        cfg.kv.policy = p;
    }
    if (compare) {
        int p = kv_policy_parse(compare);
        if (p < 0 || p == KV_PAGED) {
            fprintf(stderr, "pagesim: --compare %s: want contiguous, orca-max, orca-pow2 or orca-oracle\n", compare);
            return 2;
        }
        cfg.compare = p;
    }
    if (workload) {
        int kind = wl_kind_parse(workload);
        if (kind < 0) {
            fprintf(stderr, "pagesim: --workload %s: not sharegpt, alpaca, fixed, nor a readable file\n", workload);
            return 2;
        }
        wl_spec sp;
        memset(&sp, 0, sizeof sp);
        sp.kind = (wl_kind)kind; sp.num_requests = requests; sp.rate = rate; sp.seed = (uint64_t)seed;
        sp.max_len = cfg.kv.max_model_len; sp.fixed_prompt = plen; sp.fixed_output = olen;
        sp.path = kind == WL_TRACE ? workload : NULL;
        if (wl_generate(&sp, &reqs, &nreq, err, sizeof err)) { fprintf(stderr, "pagesim: %s\n", err); return 2; }
        cfg.reqs = reqs; cfg.num_reqs = nreq;
    }
    cm_model model;
    if (model_path || gpu) {
        mc_config mc;
        cm_gpu g;
        if (!model_path || !gpu) { fputs("pagesim: --model and --gpu go together\n", stderr); rc = 2; goto out; }
        if (mc_load(&mc, model_path, err, sizeof err) < 0 || cm_gpu_find(&g, gpu, err, sizeof err) < 0 ||
            cm_model_init(&model, &mc, &g, tp, mc.dtype, err, sizeof err) < 0) {
            fprintf(stderr, "pagesim: %s\n", err);
            rc = 2;
            goto out;
        }
        cfg.model = &model;
        if (swap_gib >= 0) {                       /* GiB -> blocks of this model's KV */
            double block_bytes = (double)plan_kv_bytes_per_token(&mc, model.kvdtype, tp) * bs;
            swap = block_bytes > 0 ? (int)fmin(swap_gib * 1073741824.0 / block_bytes, 1 << 24) : 0;
            cfg.kv.num_cpu_blocks = swap;
            cfg.sched.preempt = swap ? SCHED_PREEMPT_SWAP : SCHED_PREEMPT_RECOMPUTE;
        }
    }
    if (!(v = viz_scenario_create(&cfg, err, sizeof err))) { fprintf(stderr, "pagesim: %s\n", err); goto out; }

    if (file || frames) {
        if (export_steps(v, file, frames, step_k, W, H, err, sizeof err)) { fprintf(stderr, "pagesim: %s\n", err); goto out; }
        const viz_scene *s = viz_scenario_scene(v);
        if (file) printf("wrote %s (step %d)\n", file, s->step);
        if (frames) printf("wrote %d frames into %s\n", s->step + 1, frames);
        rc = 0;
        goto out;
    }
    viz_player pl = viz_scenario_player(v);
    if (!tui && viz_window_has_display()) {
        viz_window_opts wo = { W, H, play, delay, "pagesim", .keys = getenv("PAGESIM_KEYS") };
        /* the window's test hooks (viz/window.h) come from the environment */
        const char *shot = getenv("PAGESIM_SCREENSHOT"), *ks = getenv("PAGESIM_SCREENSHOT_STEP");
        const char *ms = getenv("PAGESIM_SCREENSHOT_MOUSE");            /* "x,y": hover there */
        if (shot && *shot) wo.screenshot = shot;
        if (ks) wo.screenshot_step = atoi(ks);
        if (ms && sscanf(ms, "%d,%d", &wo.hover_x, &wo.hover_y) == 2) wo.hover = true;
        int w = viz_window_run(&pl, &wo, err, sizeof err);
        if (w == 0) { rc = 0; goto out; }
        if (w < 0) { fprintf(stderr, "pagesim: %s\n", err); goto out; }
        fprintf(stderr, "pagesim: %s; using the terminal view\n", err);
        if (viz_scenario_restart(v, err, sizeof err)) { fprintf(stderr, "pagesim: %s\n", err); goto out; }
    }
    viz_tui_opts to = { play, delay, color && isatty(STDOUT_FILENO) && !getenv("NO_COLOR"), 80 };
    if (viz_tui_run(&pl, &to, stdout, err, sizeof err)) { fprintf(stderr, "pagesim: %s\n", err); goto out; }
    rc = 0;
out:
    viz_scenario_destroy(v);
    free(reqs);
    return rc;
}
