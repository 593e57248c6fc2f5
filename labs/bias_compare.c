/* bias_compare: predicted against measured (see bias_compare.h).  Each trace
 * is simulated set by set with its own lengths, pool and limits
 * (labs/bias_predict.c) beside what it measured (labs/bias_measure.c); the
 * cost model can be fitted on the first set's steps (labs/bias_calib.c) and
 * the fit checked on the rest.  With bias_serving.c the only labs files that
 * call the simulator.  Writes {model}_att_compare.json
 * (labs/bias_compare_json.c), {model}_att_coeffs.json (when fitted) and
 * {model}_att_compare.png/.svg (labs/bias_compare_fig.c). */
#include "labs/bias_compare_impl.h"
#include "labs/bias_aggregate.h"
#include "sim/model_config.h"
#include "sim/op_profile.h"
#include "sim/planner.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* c's engine limits and pool from trace t (a server's pool from the planner),
 * its totals and sets. */
static int setup_cmp(cmp *c, const bias_trace *t, const bias_compare_config *cfg, const mc_config *mc,
                     const cm_gpu *g, char *err, size_t errlen) {
    c->tr = t;
    c->block_size = t->block_size > 0 ? t->block_size : 16;
    c->max_model_len = t->max_model_len > 0 ? t->max_model_len : 4096;
    c->batched = t->max_num_batched_tokens > 0 ? t->max_num_batched_tokens : 8192;
    int seqs = t->max_num_seqs > 0 ? t->max_num_seqs : 256;
    c->max_num_seqs = t->max_workers > 0 && t->max_workers < seqs ? t->max_workers : seqs;
    c->num_blocks = t->num_blocks;
    if (c->num_blocks <= 0) {                       /* a server: the planner's pool */
        plan_opts po;
        plan_result pr;
        plan_opts_default(&po);
        po.util = cfg->gpu_util > 0 ? cfg->gpu_util : 0.9;
        po.block_size = c->block_size; po.max_model_len = c->max_model_len;
        po.max_num_batched_tokens = c->batched;
        if (plan_compute(mc, g, &po, &pr, err, errlen)) return -1;
        if (!pr.fits) { snprintf(err, errlen, "compare: %s does not fit on %s", mc->name, g->name); return -1; }
        c->num_blocks = pr.num_blocks;
    }
    for (size_t r = 0; r < t->nreq; r++) { c->prompt_tokens += t->req[r].prompt_tokens; c->output_tokens += t->req[r].output_tokens; }
    c->nreq = t->nreq;
    int *sets = malloc((t->nreq + 1) * sizeof *sets);
    if (!sets) { snprintf(err, errlen, "out of memory"); return -1; }
    c->sets = bias_cmp_trace_sets(t, sets);
    free(sets);
    return 0;
}

/* A few lines for the terminal: measured against predicted per trace. */
static void summarize(const cmp *c, int n, const calib *k, const char *step_times, char *summary, size_t sumlen) {
    int w0 = snprintf(summary, sumlen, "step times: %s\n", step_times);
    size_t used = w0 > 0 && (size_t)w0 < sumlen ? (size_t)w0 : 0;
    if (!used) summary[0] = 0;
    for (int i = 0; i < n && used < sumlen; i++) {
        const cmp *x = &c[i];
        int w = snprintf(summary + used, sumlen - used,
                         "%s: wall %.1f s measured, %.1f s predicted (%+.1f%%); %.0f vs %.0f tok/s",
                         x->tr->kv_policy, x->meas.wall_s, x->pred.wall_s, 100 * bias_cmp_rel(x->pred.wall_s, x->meas.wall_s),
                         x->meas.tok_per_s, x->pred.tok_per_s);
        if (w > 0) used += (size_t)w;
        if (x->meas.has_kv && used < sumlen) {
            w = snprintf(summary + used, sumlen - used, "; KV pool held %.1f%% vs %.1f%%, token states of what is held %.1f%% vs %.1f%%, peak blocks %d vs %d",
                         100 * x->meas.kv_util, 100 * x->pred.kv_util, 100 * x->meas.token_share_of_held,
                         100 * x->pred.token_share_of_held, x->meas.peak_blocks, x->pred.peak_blocks);
            if (w > 0) used += (size_t)w;
        }
        if (used < sumlen) { w = snprintf(summary + used, sumlen - used, "\n"); if (w > 0) used += (size_t)w; }
    }
    if (k->done && used < sumlen)
        snprintf(summary + used, sumlen - used, "calibration (fit on %s): held-out step error %.1f%% -> %.1f%%\n",
                 k->fit_on, 100 * k->step_mape_before, 100 * k->step_mape_after);
}

int bias_compare_write(const bias_compare_config *cfg, const bias_trace *const *traces, int n,
                       const char *dir, const char *model, char *summary, size_t sumlen,
                       char *err, size_t errlen) {
    if (n < 1 || n > MAX_TRACES) { snprintf(err, errlen, "compare: 1 to %d traces, got %d", MAX_TRACES, n); return -1; }
    const bias_trace *t0 = traces[0];
    const char *gpu = cfg->gpu && *cfg->gpu ? cfg->gpu : t0->gpu;
    const char *mcp = cfg->model_config && *cfg->model_config ? cfg->model_config : t0->model_config;
    if (!gpu || !*gpu) { snprintf(err, errlen, "compare: which GPU did the run use? (--gpu NAME, e.g. H100 or H200)"); return -1; }
    if (!mcp || !*mcp) { snprintf(err, errlen, "compare: the model's config.json is unknown (--model-config FILE)"); return -1; }
    mc_config mc;
    cm_gpu g;
    cm_model m;
    if (cm_gpu_find(&g, gpu, err, errlen) || mc_load(&mc, mcp, err, errlen) ||
        cm_model_init(&m, &mc, &g, cfg->tp > 0 ? cfg->tp : 1, mc.dtype, err, errlen)) return -1;
    if (cfg->coeffs && cm_coeffs_load(&m.k, cfg->coeffs, err, errlen)) return -1;
    cmp *c = calloc((size_t)n, sizeof *c);
    calib *k = calloc(1, sizeof *k);
    opp_profile *prof = malloc(sizeof *prof);          /* the step times: a profile when there is one */
    bias_buf b = {0};
    int rc = -1, found;
    char used[1024], step_times[1200];
    if (!c || !k || !prof) { snprintf(err, errlen, "out of memory"); goto out; }
    /* coefficients given without a profile asked for: the roofline they calibrate */
    const char *spec = cfg->op_profile ? cfg->op_profile : cfg->coeffs ? "none" : "auto";
    if ((found = opp_resolve(prof, spec, "data/profiles", g.name, &mc, m.tp, used, sizeof used, err, errlen)) < 0)
        goto out;
    if (found) m.prof = prof;
    prof->sample_topp = cfg->sample_topp || (t0->temperature > 0 && t0->top_p > 0 && t0->top_p < 1);
    if (!found && cfg->coeffs) snprintf(used, sizeof used, "roofline (coefficients %s)", cfg->coeffs);
    snprintf(step_times, sizeof step_times, "%s%s%s", found ? "operator profile " : "", used,
             !found || !prof->sample_topp ? "" : prof->sampling_topp.n ? "; top-p sampling measured"
                                                                       : "; top-p sampling at greedy's times (not in the profile)");
    for (int i = 0; i < n; i++)
        if (setup_cmp(&c[i], traces[i], cfg, &mc, &g, err, errlen) ||
            bias_cmp_measure(traces[i], &c[i].meas, err, errlen) ||
            bias_cmp_predict(&c[i], &m, 0, &c[i].pred, err, errlen)) goto out;
    char cpath[4096];
    bias_path(cpath, sizeof cpath, dir, model, "_att_coeffs.json");
    if (bias_cmp_calibrate(c, n, &m, k, cpath, err, errlen)) goto out;

    bias_cmp_json(&b, cfg, c, n, k, &m, g.name, mc.name, mcp, cpath, step_times);
    if (b.oom) { snprintf(err, errlen, "out of memory"); goto out; }
    char path[4096];
    bias_path(path, sizeof path, dir, model, "_att_compare.json");
    if (bias_write_atomic(path, b.s, b.len, err, errlen)) goto out;
    char base[4096], title[512];
    bias_path(base, sizeof base, dir, model, "_att_compare");
    snprintf(title, sizeof title, "Simulation against reality: %s on %s (%s)%s", mc.name, g.name, t0->source,
             t0->dummy_weights ? "; dummy weights (times and memory are real, decisions mean nothing)" : "");
    if (bias_cmp_figure(c, n, base, title, err, errlen)) goto out;
    summarize(c, n, k, step_times, summary, sumlen);
    rc = 0;
out:
    bias_buf_free(&b);
    free(c); free(k); free(prof);
    return rc;
}
