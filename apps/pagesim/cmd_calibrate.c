/* pagesim calibrate: fits the cost model's coefficients to step times
 * measured on a real GPU (sim/calibrate.c does the fit).  Reads the measured
 * steps, the config.json and the GPU table; writes the coefficients to --out
 * (or stdout); the report goes to stderr when the JSON goes to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sim/calibrate.h"
#include "apps/pagesim/commands.h"
#include "apps/common/front.h"
#include "base/opt.h"
#include "sim/cost_model.h"
#include "sim/model_config.h"
#include "sim/op_profile.h"

static void usage(FILE *f) {
    fputs("usage: pagesim calibrate --measured STEPS --model CONFIG.json --gpu NAME [options]\n"
          "\n"
          "Fits the cost model's coefficients (flops_eff, bw_eff, step_overhead_s, per_seq_s)\n"
          "to step times measured on a real GPU, by least squares.\n"
          "\n"
          "  --measured FILE   measured steps: JSON (an array, or {\"steps\": [...]}) or CSV with\n"
          "                    prefill_tokens, decode_tokens, num_seqs, attn_ctx_tokens, seconds\n"
          "                    (attn_pairs optional)\n"
          "  --model FILE      the model's config.json\n"
          "  --gpu NAME        the GPU the steps ran on (data/gpus.json)\n"
          "  --tensor-parallel-size N, -tp N   tensor-parallel GPUs (1)\n"
          "  --dtype D         weights dtype bf16|fp16|fp32|awq4 (the config's)\n"
          "  --out FILE        write the coefficients there (default: stdout)\n"
          "  --op-profile P    fit nothing: how well the operator profile P (engine/bench\n"
          "                    --profile-ops) predicts the measured steps, beside the roofline\n"
          "  --data-dir DIR    the project's data folder (data/... paths)\n"
          "  --version, -h, --help\n"
          "\n"
          "The coefficients file is read back by the simulator (cm_coeffs_load).\n"
          "Exit status: 0 done, 1 the output could not be written, 2 bad usage or input.\n", f);
}

enum { O_HELP = 'h', O_MEASURED = 256, O_MODEL, O_GPU, O_OUT, O_DTYPE, O_TP, O_OP_PROFILE };
static const opt_spec k_opts[] = {
    { "help", O_HELP, OPT_FLAG },          { "measured", O_MEASURED, OPT_VALUE },
    { "model", O_MODEL, OPT_VALUE },       { "gpu", O_GPU, OPT_VALUE },
    { "out", O_OUT, OPT_VALUE },           { "dtype", O_DTYPE, OPT_VALUE },
    FRONT_TP_ROWS(O_TP),                   { "op-profile", O_OP_PROFILE, OPT_VALUE },
    FRONT_SPECS,
    { NULL, 0, 0 },
};

int pagesim_cmd_calibrate(int argc, char **argv) {
    const char *measured = NULL, *model = NULL, *gpu = NULL, *out = NULL, *dtype = NULL, *prof_path = NULL;
    int tp = 1, k, bad = 0;
    char err[1024];
    opt_parser p;
    const char *v;
    if (opt_begin(&p, argc, argv, k_opts, err, sizeof err)) return pagesim_bad_usage("pagesim calibrate", err);
    while (!bad && (k = opt_next(&p, &v, err, sizeof err)) != OPT_END) {
        if (front_option("pagesim calibrate", k, v)) continue;
        switch (k) {
        case O_HELP: opt_end(&p); usage(stdout); return 0;
        case O_MEASURED: measured = v; break;
        case O_MODEL: model = v; break;
        case O_GPU: gpu = v; break;
        case O_OUT: out = v; break;
        case O_DTYPE: dtype = v; break;
        case O_OP_PROFILE: prof_path = v; break;
        case O_TP: bad = opt_int(opt_name(&p), v, 1, 1024, &tp, err, sizeof err); break;
        case OPT_ARG: snprintf(err, sizeof err, "unexpected argument '%s'", v); bad = 1; break;
        default: bad = 1; break;                       /* OPT_ERROR: err says what */
        }
    }
    opt_end(&p);
    if (bad) return pagesim_bad_usage("pagesim calibrate", err);
    if (!measured || !model || !gpu) {
        fprintf(stderr, "pagesim calibrate: --measured, --model and --gpu are required (see --help)\n");
        return 2;
    }
    mc_config cfg;
    cm_gpu g;
    cm_model m;
    cm_step_obs *steps = NULL;
    cm_fit_report rep;
    int n = 0, rc = 2;
    int wd = -1;
    if (dtype && (wd = mc_dtype_parse(dtype)) < 0) {
        fprintf(stderr, "pagesim calibrate: --dtype wants bf16, fp16, fp32 or awq4, got '%s'\n", dtype);
        return 2;
    }
    if (mc_load(&cfg, model, err, sizeof err) < 0 || cm_gpu_find(&g, gpu, err, sizeof err) < 0 ||
        cm_model_init(&m, &cfg, &g, tp, wd >= 0 ? (mc_dtype)wd : cfg.dtype, err, sizeof err) < 0 ||
        cm_steps_load(measured, &steps, &n, err, sizeof err) < 0) {
        fprintf(stderr, "pagesim calibrate: %s\n", err);
        goto done;
    }
    if (prof_path) {                               /* predict, fit nothing */
        static opp_profile prof;
        cm_predict_report pr, rr;
        if (opp_load(&prof, prof_path, err, sizeof err) < 0 || cm_predict(&m, steps, n, &rr, err, sizeof err) < 0) {
            fprintf(stderr, "pagesim calibrate: %s\n", err);
            goto done;
        }
        if (!opp_matches(&prof, &cfg, tp))
            fprintf(stderr, "pagesim calibrate: warning: %s was measured for %s (tp %d), not %s (tp %d)\n",
                    prof_path, prof.model, prof.tp, cfg.name, tp);
        m.prof = &prof;
        if (cm_predict(&m, steps, n, &pr, err, sizeof err) < 0) { fprintf(stderr, "pagesim calibrate: %s\n", err); goto done; }
        printf("%d steps of %s on %s x %d, measured %.3f s\n", n, cfg.name, g.name, tp, pr.measured_s);
        printf("  %-28s %10s %9s %12s %9s %9s\n", "predictor", "predicted", "wall err", "median |err|",
               "p90", "mean");
        printf("  %-28s %9.3fs %+8.1f%% %11.1f%% %8.1f%% %8.1f%%\n", "operator profile", pr.predicted_s,
               100 * pr.wall_err, 100 * pr.median_abs_err, 100 * pr.p90_abs_err, 100 * pr.mean_abs_err);
        printf("  %-28s %9.3fs %+8.1f%% %11.1f%% %8.1f%% %8.1f%%\n", "roofline (default coeffs)", rr.predicted_s,
               100 * rr.wall_err, 100 * rr.median_abs_err, 100 * rr.p90_abs_err, 100 * rr.mean_abs_err);
        rc = 0;
        goto done;
    }
    if (cm_fit(&m, steps, n, &rep, err, sizeof err) < 0) {
        fprintf(stderr, "pagesim calibrate: %s\n", err);
        goto done;
    }
    FILE *r = out ? stdout : stderr;
    fprintf(r, "calibrated %s on %s x %d from %d steps (%d FLOP-bound, %d bandwidth-bound), "
            "%d rounds\n", cfg.name, g.name, tp, rep.n, rep.n_flops_bound, rep.n_bw_bound, rep.iterations);
    fprintf(r, "  flops_eff        %.4f   (default %.4f)\n", rep.k.flops_eff, m.k.flops_eff);
    fprintf(r, "  bw_eff           %.4f   (default %.4f)\n", rep.k.bw_eff, m.k.bw_eff);
    fprintf(r, "  step_overhead_s  %.6f (default %.6f)\n", rep.k.step_overhead_s, m.k.step_overhead_s);
    fprintf(r, "  per_seq_s        %.3e (default %.3e)\n", rep.k.per_seq_s, m.k.per_seq_s);
    fprintf(r, "  R^2 %.4f; mean |error| %.1f%% with the defaults, %.1f%% fitted\n", rep.r2,
            100 * rep.mape_before, 100 * rep.mape_after);
    if (out) {
        if (cm_coeffs_save(&rep.k, out, err, sizeof err) < 0) {
            fprintf(stderr, "pagesim calibrate: %s\n", err);
            rc = FRONT_FAIL;
            goto done;
        }
        fprintf(r, "wrote %s\n", out);
    } else {                                       /* the same keys as cm_coeffs_save */
        printf("{\n  \"flops_eff\": %.9g,\n  \"bw_eff\": %.9g,\n  \"step_overhead_s\": %.9g,\n"
               "  \"per_seq_s\": %.9g,\n  \"allreduce_lat_s\": %.9g\n}\n", rep.k.flops_eff,
               rep.k.bw_eff, rep.k.step_overhead_s, rep.k.per_seq_s, rep.k.allreduce_lat_s);
    }
    rc = 0;
done:
    free(steps);
    return rc;
}
