/* bias_serving: the bias lab's link to the serving simulator (see
 * bias_serving.h).  The only file of labs/ that includes sim/. */
#include "labs/bias_serving.h"
#include "labs/bias_output.h"
#include "sim/cost_model.h"
#include "sim/model_config.h"
#include "sim/op_profile.h"
#include "sim/planner.h"
#include "sim/simulate.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STUDY_SECONDS 152.0
#define STUDY_PROMPTS 12810
#define MAX_POINTS 400

void bias_serving_defaults(bias_serving_config *c) {
    memset(c, 0, sizeof *c);
    c->gpu = "H200"; c->tp = 4; c->max_workers = 200; c->max_tokens = 1024;
    c->max_model_len = 4096; c->block_size = 16; c->gpu_util = 0.9;
    c->max_num_batched_tokens = 8192;
    c->op_profile = "auto";
}

void bias_serving_free(bias_serving_result *r) {
    for (int p = 0; p < BIAS_NPOL; p++) { free(r->pol[p].t); free(r->pol[p].util); free(r->pol[p].token_share); }
    memset(r, 0, sizeof *r);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Adds one set's simulation to policy pol; keeps the series of the first set. */
static int add_set(bias_serving_policy *pol, const sim_result *res, int first, double *ttft, double *lat,
                   size_t *nreq) {
    const met_summary *s = &res->summary;
    pol->wall_s += s->sim_time;
    pol->preemptions += s->preemptions;
    if (s->max_running > pol->max_running) pol->max_running = s->max_running;
    for (int i = 0; i < res->num_requests; i++) {
        const met_request *q = &res->requests[i];
        /* the study's client sends a request when a worker frees: time from admission */
        ttft[*nreq] = q->first_token - q->first_scheduled;
        lat[*nreq] = q->finish_time - q->first_scheduled;
        (*nreq)++;
    }
    double held = 0, tok = 0, dur = 0;
    for (int i = 0; i < res->num_steps; i++) {
        const met_step *st = &res->steps[i];
        if (st->slots_total <= 0) continue;
        double h = (double)(st->token_slots + st->reserved_slots + st->internal_frag);
        held += st->dt * h / (double)st->slots_total;
        tok += st->dt * (double)st->token_slots;
        dur += st->dt;
        (void)tok;
    }
    pol->kv_util_mean += dur > 0 ? held / dur : 0;     /* averaged over sets by the caller */
    pol->token_share_of_used += s->token_share_of_used;
    pol->share_internal += s->share_internal;
    pol->share_external += s->share_external;
    pol->mean_running += s->mean_running;
    if (first && res->num_steps > 0) {
        int stride = (res->num_steps + MAX_POINTS - 1) / MAX_POINTS, n = (res->num_steps + stride - 1) / stride;
        pol->t = malloc((size_t)n * sizeof *pol->t);
        pol->util = malloc((size_t)n * sizeof *pol->util);
        pol->token_share = malloc((size_t)n * sizeof *pol->token_share);
        if (!pol->t || !pol->util || !pol->token_share) return -1;
        for (int k = 0; k < n; k++) {
            const met_step *st = &res->steps[k * stride];
            double tot = st->slots_total > 0 ? (double)st->slots_total : 1;
            pol->t[k] = st->time;
            pol->util[k] = (double)(st->token_slots + st->reserved_slots + st->internal_frag) / tot;
            pol->token_share[k] = (double)st->token_slots / tot;
        }
        pol->npts = n;
    }
    return 0;
}

/* The GPU, the model and their memory plan of c: 0, or -1 with err. */
static int serving_setup(const bias_serving_config *c, mc_config *mc, cm_gpu *g, cm_model *m, plan_result *plan,
                         char *err, size_t errlen) {
    plan_opts po;
    if (cm_gpu_find(g, c->gpu, err, errlen) || mc_load(mc, c->model_config, err, errlen) ||
        cm_model_init(m, mc, g, c->tp, mc->dtype, err, errlen)) return -1;
    plan_opts_default(&po);
    po.tp = c->tp; po.block_size = c->block_size; po.util = c->gpu_util;
    po.max_model_len = c->max_model_len;
    if (c->max_num_batched_tokens > 0) po.max_num_batched_tokens = c->max_num_batched_tokens;
    if (plan_compute(mc, g, &po, plan, err, errlen)) return -1;
    if (!plan->fits || plan->num_blocks <= 0) {
        snprintf(err, errlen, "%s does not fit on %s with TP %d (no room for the KV cache)", mc->name, g->name, c->tp);
        return -1;
    }
    return 0;
}

int bias_serving_check(const bias_serving_config *c, char *err, size_t errlen) {
    mc_config mc;
    cm_gpu g;
    cm_model m;
    plan_result plan;
    return serving_setup(c, &mc, &g, &m, &plan, err, errlen);
}

int bias_serving_run(const bias_serving_config *c, const int *prompt_tokens, const int *output_tokens,
                     size_t per_set, int num_sets, bias_serving_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    mc_config mc;
    cm_gpu g;
    cm_model m;
    plan_result plan;
    if (serving_setup(c, &mc, &g, &m, &plan, err, errlen)) return -1;
    opp_profile *prof = malloc(sizeof *prof);           /* step times: the profile when there is one */
    if (!prof) { snprintf(err, errlen, "out of memory"); return -1; }
    char used[1024];
    int found = opp_resolve(prof, c->op_profile, "data/profiles", g.name, &mc, c->tp, used, sizeof used, err, errlen);
    if (found < 0) { free(prof); return -1; }
    if (found) m.prof = prof;
    prof->sample_topp = c->sample_topp;
    snprintf(r->step_times, sizeof r->step_times, "%s%s%s", found ? "operator profile " : "", used,
             !found || !c->sample_topp ? "" : prof->sampling_topp.n ? "; top-p sampling measured"
                                                                    : "; top-p sampling at greedy's times (not in the profile)");
    snprintf(r->gpu, sizeof r->gpu, "%s", g.name);
    snprintf(r->model, sizeof r->model, "%s", mc.name);
    r->tp = c->tp; r->block_size = c->block_size; r->max_model_len = c->max_model_len;
    r->num_blocks = plan.num_blocks; r->kv_tokens = plan.kv_tokens; r->num_sets = num_sets;
    r->prompts = per_set * (size_t)num_sets;
    r->max_num_seqs = c->max_workers < 256 ? c->max_workers : 256;   /* vLLM's max_num_seqs caps it */
    for (size_t i = 0; i < r->prompts; i++) { r->prompt_tokens += prompt_tokens[i]; r->output_tokens += output_tokens[i]; }

    double *ttft = malloc((r->prompts ? r->prompts : 1) * sizeof *ttft);   /* (prompts) */
    double *lat = malloc((r->prompts ? r->prompts : 1) * sizeof *lat);
    int *olen = malloc((per_set ? per_set : 1) * sizeof *olen);            /* (per_set) */
    int rc = -1;
    if (!ttft || !lat || !olen) { snprintf(err, errlen, "out of memory"); goto out; }
    for (int p = 0; p < BIAS_NPOL; p++) {
        bias_serving_policy *pol = &r->pol[p];
        size_t nreq = 0;
        for (int s = 0; s < num_sets; s++) {
            sim_config sc = sim_config_default();
            sc.kv.policy = p == BIAS_PAGED ? KV_PAGED : KV_CONTIGUOUS;
            sc.kv.num_blocks = (int)(plan.num_blocks > 2000000000L ? 2000000000L : plan.num_blocks);
            sc.kv.block_size = c->block_size;
            sc.kv.max_model_len = c->max_model_len;
            sc.sched.max_num_seqs = r->max_num_seqs;
            sc.sched.max_model_len = c->max_model_len;
            if (c->max_num_batched_tokens > 0) sc.sched.max_num_batched_tokens = c->max_num_batched_tokens;
            sc.model = &m;
            sc.keep_steps = true;
            sc.usage_every = 8;                             /* the figure wants a fine time series */
            const int *pl = prompt_tokens + per_set * (size_t)s, *ol = output_tokens + per_set * (size_t)s;
            for (size_t i = 0; i < per_set; i++) {          /* at least 1 token; within max_tokens and the length */
                int o = ol[i] < 1 ? 1 : ol[i] > c->max_tokens ? c->max_tokens : ol[i];
                if (pl[i] + o > c->max_model_len) o = c->max_model_len - pl[i] > 1 ? c->max_model_len - pl[i] : 1;
                olen[i] = o;
            }
            sim_result res;
            if (sim_run_lengths(&sc, pl, olen, NULL, (int)per_set, &res, err, errlen)) goto out;
            int bad = add_set(pol, &res, s == 0, ttft, lat, &nreq);
            sim_result_free(&res);
            if (bad) { snprintf(err, errlen, "out of memory"); goto out; }
        }
        pol->kv_util_mean /= num_sets; pol->token_share_of_used /= num_sets;
        pol->share_internal /= num_sets; pol->share_external /= num_sets; pol->mean_running /= num_sets;
        double st = 0, sl = 0;
        for (size_t i = 0; i < nreq; i++) { st += ttft[i]; sl += lat[i]; }
        pol->ttft_mean_s = nreq ? st / (double)nreq : 0;
        pol->latency_mean_s = nreq ? sl / (double)nreq : 0;
        qsort(ttft, nreq, sizeof *ttft, cmp_d);
        pol->ttft_p50_s = nreq ? ttft[(nreq - 1) / 2] : 0;
        pol->ttft_p99_s = nreq ? ttft[(size_t)ceil(0.99 * (double)nreq) - 1] : 0;
        pol->total_tok_per_s = pol->wall_s > 0 ? (double)(r->prompt_tokens + r->output_tokens) / pol->wall_s : 0;
        pol->out_tok_per_s = pol->wall_s > 0 ? (double)r->output_tokens / pol->wall_s : 0;
        pol->req_per_s = pol->wall_s > 0 ? (double)r->prompts / pol->wall_s : 0;
    }
    /* "KV util" alone read backwards (paged 1% beside contiguous 13%): say that it is the share of
     * the pool held, and how much of what is held is token states, where paged wins */
    snprintf(r->summary_line, sizeof r->summary_line,
             "%s x%d, %ld KV blocks: paged %.1f s (%.0f tok/s; holds %.1f%% of the KV pool on average, "
             "%.0f%% of that token states), contiguous %.1f s (holds %.1f%% of the pool, %.0f%% of that token "
             "states: the rest is reserved for tokens not yet written; %d running max)",
             r->gpu, r->tp, r->num_blocks, r->pol[0].wall_s, r->pol[0].total_tok_per_s, 100 * r->pol[0].kv_util_mean,
             100 * r->pol[0].token_share_of_used, r->pol[1].wall_s, 100 * r->pol[1].kv_util_mean,
             100 * r->pol[1].token_share_of_used, r->pol[1].max_running);
    rc = 0;
out:
    free(ttft); free(lat); free(olen); free(prof);
    return rc;
}

static void num(bias_buf *b, double x) {
    char t[64];
    bias_fmt_double(t, sizeof t, bias_round_nd(x, 6));
    bias_buf_add(b, t, strlen(t));
}

static void series(bias_buf *b, const double *v, int n) {
    bias_buf_add(b, "[", 1);
    for (int i = 0; i < n; i++) { if (i) bias_buf_add(b, ", ", 2); num(b, v[i]); }
    bias_buf_add(b, "]", 1);
}

int bias_serving_write(const bias_serving_result *r, const char *dir, const char *model, char *err, size_t errlen) {
    bias_buf b = {0};
    static const char *const names[BIAS_NPOL] = { "paged", "contiguous" };
    bias_buf_printf(&b, "{\n  \"simulated\": true,\n  \"gpu\": \"%s\",\n  \"model\": ", r->gpu);
    bias_json_str(&b, r->model);
    bias_buf_printf(&b, ",\n  \"step_times\": ");
    bias_json_str(&b, r->step_times);
    bias_buf_printf(&b, ",\n  \"tp\": %d,\n  \"block_size\": %d,\n  \"num_blocks\": %ld,\n  \"kv_tokens\": %ld,\n"
                    "  \"max_model_len\": %d,\n  \"max_num_seqs\": %d,\n  \"sets\": %d,\n  \"prompts\": %zu,\n"
                    "  \"prompt_tokens\": %ld,\n  \"output_tokens\": %ld,\n  \"policies\": {",
                    r->tp, r->block_size, r->num_blocks, r->kv_tokens, r->max_model_len, r->max_num_seqs,
                    r->num_sets, r->prompts, r->prompt_tokens, r->output_tokens);
    for (int p = 0; p < BIAS_NPOL; p++) {
        const bias_serving_policy *q = &r->pol[p];
        bias_buf_printf(&b, "%s\n    \"%s\": {\n      \"wall_time_s\": ", p ? "," : "", names[p]); num(&b, q->wall_s);
        bias_buf_printf(&b, ",\n      \"total_tokens_per_s\": "); num(&b, q->total_tok_per_s);
        bias_buf_printf(&b, ",\n      \"output_tokens_per_s\": "); num(&b, q->out_tok_per_s);
        bias_buf_printf(&b, ",\n      \"requests_per_s\": "); num(&b, q->req_per_s);
        bias_buf_printf(&b, ",\n      \"ttft_mean_s\": "); num(&b, q->ttft_mean_s);
        bias_buf_printf(&b, ",\n      \"ttft_p50_s\": "); num(&b, q->ttft_p50_s);
        bias_buf_printf(&b, ",\n      \"ttft_p99_s\": "); num(&b, q->ttft_p99_s);
        bias_buf_printf(&b, ",\n      \"latency_mean_s\": "); num(&b, q->latency_mean_s);
        bias_buf_printf(&b, ",\n      \"kv_utilization_mean\": "); num(&b, q->kv_util_mean);
        bias_buf_printf(&b, ",\n      \"token_share_of_used\": "); num(&b, q->token_share_of_used);
        bias_buf_printf(&b, ",\n      \"internal_fragmentation_share\": "); num(&b, q->share_internal);
        bias_buf_printf(&b, ",\n      \"external_fragmentation_share\": "); num(&b, q->share_external);
        bias_buf_printf(&b, ",\n      \"mean_running\": "); num(&b, q->mean_running);
        bias_buf_printf(&b, ",\n      \"max_running\": %d,\n      \"preemptions\": %ld,\n      \"set1_time_s\": ", q->max_running, q->preemptions);
        series(&b, q->t, q->npts);
        bias_buf_printf(&b, ",\n      \"set1_kv_utilization\": ");
        series(&b, q->util, q->npts);
        bias_buf_printf(&b, ",\n      \"set1_token_share\": ");
        series(&b, q->token_share, q->npts);
        bias_buf_printf(&b, "\n    }");
    }
    bias_buf_printf(&b, "\n  },\n  \"study_check\": {\n    \"measured_time_s\": %.1f,\n    \"measured_prompts\": %d,\n"
                    "    \"measured_setup\": \"Qwen3-30B-A3B-Instruct-2507, 4 x H200, TP 4, vLLM\",\n    \"predicted_time_s\": ",
                    STUDY_SECONDS, STUDY_PROMPTS);
    num(&b, r->pol[BIAS_PAGED].wall_s);
    bias_buf_printf(&b, ",\n    \"predicted_prompts\": %zu\n  }\n}\n", r->prompts);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_att_memory.json", dir, model);
    int rc = b.oom ? -1 : bias_write_atomic(path, b.s, b.len, err, errlen);
    if (b.oom) snprintf(err, errlen, "out of memory");
    bias_buf_free(&b);
    return rc;
}

void bias_serving_print_check(const bias_serving_result *r, FILE *f) {
    const bias_serving_policy *p = &r->pol[BIAS_PAGED];
    fprintf(f, "Predicted serving time: %.1f s for %zu prompts (%s x %d GPUs, TP %d, paged KV, %d in flight)\n",
            p->wall_s, r->prompts, r->gpu, r->tp, r->tp, r->max_num_seqs);
    fprintf(f, "  step times: %s\n", r->step_times);
    fprintf(f, "  the study measured:    %.1f s for %d prompts (Qwen3-30B-A3B-Instruct-2507, 4 x H200, TP 4, vLLM)\n",
            STUDY_SECONDS, STUDY_PROMPTS);
    if (r->prompts > 0)
        fprintf(f, "  per prompt: predicted %.2f ms, measured %.2f ms (ratio %.2f)\n",
                1000 * p->wall_s / (double)r->prompts, 1000 * STUDY_SECONDS / STUDY_PROMPTS,
                (p->wall_s / (double)r->prompts) / (STUDY_SECONDS / STUDY_PROMPTS));
}
