/* bias_compare_json: {model}_att_compare.json, predicted against measured
 * for each trace, the paged/contiguous ratios and the calibration (see
 * labs/bias_compare.h).  Builds the text in a buffer; the caller writes it. */
#include "labs/bias_compare_impl.h"
#include "labs/bias_output.h"
#include <math.h>
#include <string.h>

static void num(bias_buf *b, double x) {
    char t[64];
    bias_fmt_double(t, sizeof t, isfinite(x) ? bias_round_nd(x, 6) : 0);
    bias_buf_add(b, t, strlen(t));
}

static void pct(bias_buf *b, const char *name, const met_pct *p) {
    bias_buf_printf(b, "\"%s\": {\"mean\": ", name); num(b, p->mean);
    bias_buf_printf(b, ", \"p50\": "); num(b, p->p50);
    bias_buf_printf(b, ", \"p90\": "); num(b, p->p90);
    bias_buf_printf(b, ", \"p99\": "); num(b, p->p99);
    bias_buf_printf(b, "}");
}

static void side_json(bias_buf *b, const side *s, int measured, const char *ind) {
    bias_buf_printf(b, "{\n%s  \"wall_time_s\": ", ind); num(b, s->wall_s);
    bias_buf_printf(b, ",\n%s  \"total_tokens_per_s\": ", ind); num(b, s->tok_per_s);
    bias_buf_printf(b, ",\n%s  \"output_tokens_per_s\": ", ind); num(b, s->out_tok_per_s);
    bias_buf_printf(b, ",\n%s  ", ind); pct(b, "ttft_s", &s->ttft);
    bias_buf_printf(b, ",\n%s  ", ind); pct(b, "tpot_s", &s->tpot);
    bias_buf_printf(b, ",\n%s  \"max_seqs_running\": %d,\n%s  \"mean_seqs_running\": ", ind, s->max_seqs, ind);
    num(b, s->mean_seqs);
    if (s->has_kv) {
        bias_buf_printf(b, ",\n%s  \"peak_kv_blocks_used\": %d,\n%s  \"kv_utilization\": ", ind, s->peak_blocks, ind);
        num(b, s->kv_util);
        bias_buf_printf(b, ",\n%s  \"token_share_of_held\": ", ind); num(b, s->token_share_of_held);
        bias_buf_printf(b, ",\n%s  \"internal_fragmentation_of_held\": ", ind); num(b, s->internal_of_held);
    } else {
        bias_buf_printf(b, ",\n%s  \"kv\": \"not measured (a server run: no engine block tables)\"", ind);
    }
    if (!measured) bias_buf_printf(b, ",\n%s  \"preemptions\": %ld", ind, s->preemptions);
    bias_buf_printf(b, "\n%s}", ind);
}

/* One trace's object under "policies". */
static void policy_json(bias_buf *b, const cmp *x, int first) {
    bias_buf_printf(b, "%s\n    \"%s\": {\n      \"source\": ", first ? "" : ",", x->tr->kv_policy);
    bias_json_str(b, x->tr->source);
    bias_buf_printf(b, ",\n      \"requests\": %zu,\n      \"sets\": %d,\n      \"prompt_tokens\": %ld,\n"
                    "      \"output_tokens\": %ld,\n      \"num_blocks\": %ld,\n      \"block_size\": %d,\n"
                    "      \"max_num_seqs\": %d,\n      \"max_num_batched_tokens\": %d,\n      \"max_model_len\": %d,\n"
                    "      \"prefix_caching\": %s,\n      \"prefix_hit_tokens\": %ld,\n      \"measured\": ",
                    x->nreq, x->sets, x->prompt_tokens, x->output_tokens, x->num_blocks, x->block_size,
                    x->max_num_seqs, x->batched, x->max_model_len, x->tr->prefix_caching ? "true" : "false",
                    x->tr->prefix_hit_tokens);
    side_json(b, &x->meas, 1, "      ");
    bias_buf_printf(b, ",\n      \"predicted\": ");
    side_json(b, &x->pred, 0, "      ");
    bias_buf_printf(b, ",\n      \"error\": {\n        \"wall_time_rel\": "); num(b, bias_cmp_rel(x->pred.wall_s, x->meas.wall_s));
    bias_buf_printf(b, ",\n        \"tokens_per_s_rel\": "); num(b, bias_cmp_rel(x->pred.tok_per_s, x->meas.tok_per_s));
    bias_buf_printf(b, ",\n        \"ttft_p50_rel\": "); num(b, bias_cmp_rel(x->pred.ttft.p50, x->meas.ttft.p50));
    bias_buf_printf(b, ",\n        \"tpot_p50_rel\": "); num(b, bias_cmp_rel(x->pred.tpot.p50, x->meas.tpot.p50));
    if (x->meas.has_kv) {
        bias_buf_printf(b, ",\n        \"peak_blocks_rel\": "); num(b, bias_cmp_rel(x->pred.peak_blocks, x->meas.peak_blocks));
        bias_buf_printf(b, ",\n        \"kv_utilization_points\": "); num(b, 100 * (x->pred.kv_util - x->meas.kv_util));
        bias_buf_printf(b, ",\n        \"token_share_points\": ");
        num(b, 100 * (x->pred.token_share_of_held - x->meas.token_share_of_held));
    }
    bias_buf_printf(b, "\n      }\n    }");
}

/* "calibration": why it was not done, or the fit and its held-out errors
 * (before: m's step times, the profile's when it has one; after: the
 * roofline with the fitted coefficients). */
static void calib_json(bias_buf *b, const calib *k, const cm_model *m, const char *cpath, const char *step_times) {
    if (!k->done) {
        bias_json_str(b, k->why);
    } else {
        bias_buf_printf(b, "{\n    \"fit_on\": ");
        bias_json_str(b, k->fit_on);
        bias_buf_printf(b, ",\n    \"coefficients_file\": ");
        bias_json_str(b, cpath);
        bias_buf_printf(b, ",\n    \"before\": ");
        bias_json_str(b, step_times);
        bias_buf_printf(b, ",\n    \"after\": \"roofline with the fitted coefficients\"");
        bias_buf_printf(b, ",\n    \"steps_fitted\": %d,\n    \"steps_held_out\": %d,\n    \"r2\": ", k->n_fit, k->n_test);
        num(b, k->rep.r2);
        bias_buf_printf(b, ",\n    \"fitted\": {\"flops_eff\": "); num(b, k->rep.k.flops_eff);
        bias_buf_printf(b, ", \"bw_eff\": "); num(b, k->rep.k.bw_eff);
        bias_buf_printf(b, ", \"step_overhead_s\": "); num(b, k->rep.k.step_overhead_s);
        bias_buf_printf(b, ", \"per_seq_s\": "); num(b, k->rep.k.per_seq_s);
        bias_buf_printf(b, "},\n    \"default\": {\"flops_eff\": "); num(b, m->k.flops_eff);
        bias_buf_printf(b, ", \"bw_eff\": "); num(b, m->k.bw_eff);
        bias_buf_printf(b, ", \"step_overhead_s\": "); num(b, m->k.step_overhead_s);
        bias_buf_printf(b, ", \"per_seq_s\": "); num(b, m->k.per_seq_s);
        bias_buf_printf(b, "},\n    \"held_out_step_mape_before\": "); num(b, k->step_mape_before);
        bias_buf_printf(b, ",\n    \"held_out_step_mape_after\": "); num(b, k->step_mape_after);
        bias_buf_printf(b, ",\n    \"held_out_sets\": [");
        for (int i = 0; i < k->npred; i++) {
            bias_buf_printf(b, "%s\n      {\"what\": ", i ? "," : "");
            bias_json_str(b, k->pred[i].what);
            bias_buf_printf(b, ", \"measured_s\": "); num(b, k->pred[i].measured);
            bias_buf_printf(b, ", \"predicted_before_s\": "); num(b, k->pred[i].before);
            bias_buf_printf(b, ", \"predicted_after_s\": "); num(b, k->pred[i].after);
            bias_buf_printf(b, ", \"error_before_rel\": "); num(b, bias_cmp_rel(k->pred[i].before, k->pred[i].measured));
            bias_buf_printf(b, ", \"error_after_rel\": "); num(b, bias_cmp_rel(k->pred[i].after, k->pred[i].measured));
            bias_buf_printf(b, "}");
        }
        bias_buf_printf(b, "\n    ]\n  }");
    }
}

void bias_cmp_json(bias_buf *b, const bias_compare_config *cfg, const cmp *c, int n, const calib *k,
                   const cm_model *m, const char *gpu, const char *model, const char *mcp, const char *cpath,
                   const char *step_times) {
    bias_buf_printf(b, "{\n");
    if (cfg->note && *cfg->note) { bias_buf_printf(b, "  \"note\": "); bias_json_str(b, cfg->note); bias_buf_printf(b, ",\n"); }
    bias_buf_printf(b, "  \"gpu\": ");
    bias_json_str(b, gpu);
    bias_buf_printf(b, ",\n  \"model\": ");
    bias_json_str(b, model);
    bias_buf_printf(b, ",\n  \"model_config\": ");
    bias_json_str(b, mcp);
    bias_buf_printf(b, ",\n  \"tp\": %d,\n  \"step_times\": ", cfg->tp > 0 ? cfg->tp : 1);
    bias_json_str(b, step_times);
    bias_buf_printf(b, ",\n  \"coefficients\": ");
    bias_json_str(b, m->prof ? "unused (the operator profile's step times)"
                             : cfg->coeffs ? cfg->coeffs : "defaults (sim/cost_model.c)");
    bias_buf_printf(b, ",\n  \"definitions\": \"measured TTFT from the engine's arrival of the request (the client's submission); "
                    "predicted TTFT from when the client would send it (request k goes when the (k - max_workers)-th "
                    "simulated reply completes); TPOT = "
                    "(finish - first token) / (output tokens - 1); kv_utilization = held slots / pool, time-averaged; "
                    "token_share_of_held = token slots / held slots (the vLLM paper's Fig. 2); "
                    "internal_fragmentation_of_held = slots held but never to be used / held slots\",\n  \"policies\": {");
    for (int i = 0; i < n; i++) policy_json(b, &c[i], i == 0);
    bias_buf_printf(b, "\n  }");
    if (n >= 2) {
        bias_buf_printf(b, ",\n  \"%s_over_%s\": {\n    \"measured_throughput_ratio\": ", c[0].tr->kv_policy, c[1].tr->kv_policy);
        num(b, c[1].meas.tok_per_s > 0 ? c[0].meas.tok_per_s / c[1].meas.tok_per_s : 0);
        bias_buf_printf(b, ",\n    \"predicted_throughput_ratio\": ");
        num(b, c[1].pred.tok_per_s > 0 ? c[0].pred.tok_per_s / c[1].pred.tok_per_s : 0);
        bias_buf_printf(b, ",\n    \"measured_max_seqs\": [%d, %d],\n    \"predicted_max_seqs\": [%d, %d]\n  }",
                        c[0].meas.max_seqs, c[1].meas.max_seqs, c[0].pred.max_seqs, c[1].pred.max_seqs);
    }
    bias_buf_printf(b, ",\n  \"calibration\": ");
    calib_json(b, k, m, cpath, step_times);
    bias_buf_printf(b, "\n}\n");
}
