/* simulate: one call from requests to metrics (see simulate.h).  Wires the KV
 * cache, the scheduler, the cost-model executor and the step loop, and runs
 * them through the driver (sim/driver.h: arrivals, idle clock, stalls, the
 * metrics).  Thread-safe (no globals); touches no file. */
#include "sim/simulate.h"
#include "sim/driver.h"
#include "sim/sim_executor.h"
#include "base/clock.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sim_config sim_config_default(void) {
    sim_config c;
    memset(&c, 0, sizeof c);
    c.kv.policy = KV_PAGED;
    c.kv.block_size = 16;
    c.kv.max_model_len = 2048;
    c.kv.orca_max_len = 2048;
    c.sched = sched_config_default();
    c.seed = 1;
    return c;
}

typedef struct arr_key { double t; int i; } arr_key;   /* sort key: no globals, thread-safe */
static int cmp_arrival(const void *a, const void *b) {
    const arr_key *x = a, *y = b;
    if (x->t != y->t) return (x->t > y->t) - (x->t < y->t);
    return (x->i > y->i) - (x->i < y->i);
}

/* The workload as the driver's source: requests in order of arrival, their
 * prompt ids made when they arrive (a million prompts never sit in memory). */
typedef struct sim_source {
    const wl_request *reqs;
    const int *order;             /* (n,) request indices by arrival */
    int        n, next;
    uint64_t   seed;
    int       *ids;               /* (max_prompt,) the prompt being handed over */
} sim_source;

static int source_next(void *ctx, double now, drv_request *r, double *next_at, char *err, size_t errlen) {
    (void)err; (void)errlen;
    sim_source *src = ctx;
    if (src->next >= src->n) return DRV_SRC_END;
    int i = src->order[src->next];
    const wl_request *w = &src->reqs[i];
    if (w->arrival > now) { *next_at = w->arrival; return DRV_SRC_LATER; }
    wl_prompt_tokens(w, i, src->seed, src->ids);
    *r = (drv_request){ i, src->ids, w->prompt_len, w->output_len, w->n, w->beam, w->arrival, NULL, w->lora };
    src->next++;
    return DRV_SRC_REQUEST;
}

typedef struct progress_ctx { const sim_config *cfg; int finished, total, every; } progress_ctx;
static void on_step(void *ctx, const loop_step_info *info) {
    progress_ctx *p = ctx;
    for (int i = 0; i < info->n_done; i++)
        if (++p->finished % p->every == 0)
            p->cfg->progress(p->cfg->progress_ctx, p->finished, p->total, info->start + info->seconds);
}

/* Copies the collector's records into the result. */
static int copy_records(const met_collector *met, sim_result *out) {
    int ns, nr;
    const met_step *steps = met_steps(met, &ns);
    const met_request *rq = met_requests(met, &nr);
    if (ns > 0) {
        if (!(out->steps = malloc((size_t)ns * sizeof *out->steps))) return -1;
        memcpy(out->steps, steps, (size_t)ns * sizeof *steps);
        out->num_steps = ns;
    }
    if (nr > 0) {
        if (!(out->requests = malloc((size_t)nr * sizeof *out->requests))) return -1;
        memcpy(out->requests, rq, (size_t)nr * sizeof *rq);
        out->num_requests = nr;
    }
    return 0;
}

int sim_run(const sim_config *cfg, const wl_request *reqs, int n, sim_result *out,
            char *err, size_t errlen) {
    int rc = -1;
    kv_cache *kv = NULL; sched *sc = NULL; drv *d = NULL;
    int *order = NULL, *ids = NULL;
    loop lp; memset(&lp, 0, sizeof lp);
    memset(out, 0, sizeof *out);
    double w0 = clock_now_s();
    if (n < 0 || (n > 0 && !reqs)) { snprintf(err, errlen, "simulate: no requests"); return -1; }
    int max_prompt = 1;
    for (int i = 0; i < n; i++) {
        if (reqs[i].prompt_len <= 0 || reqs[i].output_len <= 0 || reqs[i].arrival < 0) {
            snprintf(err, errlen, "simulate: request %d: prompt_len %d, output_len %d, arrival %g "
                     "(lengths must be positive, arrival >= 0)", i, reqs[i].prompt_len,
                     reqs[i].output_len, reqs[i].arrival);
            return -1;
        }
        if (reqs[i].prompt_len > max_prompt) max_prompt = reqs[i].prompt_len;
    }
    if (!(kv = kv_create(&cfg->kv, err, errlen))) goto done;
    if (!(sc = sched_create(&cfg->sched, kv, err, errlen))) goto done;
    order = malloc(((size_t)n + 1) * sizeof *order);         /* (n,) by arrival */
    ids = malloc((size_t)max_prompt * sizeof *ids);          /* (max_prompt,) */
    arr_key *k = malloc(((size_t)n + 1) * sizeof *k);         /* (n,) */
    if (!order || !ids || !k) { free(k); snprintf(err, errlen, "simulate: out of memory"); goto done; }
    for (int i = 0; i < n; i++) { k[i].t = reqs[i].arrival; k[i].i = i; }
    qsort(k, (size_t)n, sizeof *k, cmp_arrival);
    for (int i = 0; i < n; i++) order[i] = k[i].i;
    free(k);

    simx x;
    simx_init(&x, cfg->model, cfg->seed);
    if (loop_init(&lp, sc, simx_executor(&x), n > 0 ? reqs[order[0]].arrival : 0, -1)) {
        snprintf(err, errlen, "simulate: out of memory");
        goto done;
    }
    /* the caller's hook: the driver chains it after its own observe (after
     * execute, before postprocess) */
    lp.observe = cfg->on_step;
    lp.observe_ctx = cfg->on_step_ctx;
    sim_source src = { reqs, order, n, 0, cfg->seed, ids };
    progress_ctx pc = { cfg, 0, n, n / 100 > 0 ? n / 100 : 1 };
    drv_config dc = drv_config_default();
    dc.source = (drv_source){ source_next, &src };
    dc.keep_steps = cfg->keep_steps;
    dc.keep_requests = true;
    dc.usage_every = cfg->usage_every;
    dc.max_steps = cfg->max_steps;
    dc.check = cfg->check;
    if (cfg->progress) { dc.on_step = on_step; dc.ctx = &pc; }
    if (!(d = drv_create(&lp, kv, &dc, err, errlen))) goto done;
    if (drv_run(d, err, errlen) < 0) goto done;
    if (drv_summary(d, &out->summary) || copy_records(drv_metrics(d), out)) {
        snprintf(err, errlen, "simulate: out of memory");
        goto done;
    }
    out->summary.wall_time = clock_now_s() - w0;
    rc = 0;
done:
    if (rc != 0) sim_result_free(out);
    drv_destroy(d);
    loop_free(&lp);
    sched_destroy(sc);
    kv_destroy(kv);
    free(order); free(ids);
    return rc;
}

int sim_run_lengths(const sim_config *cfg, const int *prompt_len, const int *output_len,
                    const double *arrival, int n, sim_result *out, char *err, size_t errlen) {
    if (n < 0 || (n > 0 && (!prompt_len || !output_len))) {
        snprintf(err, errlen, "simulate: no lengths");
        return -1;
    }
    wl_request *r = calloc((size_t)n + 1, sizeof *r);
    if (!r) { snprintf(err, errlen, "simulate: out of memory"); return -1; }
    for (int i = 0; i < n; i++) {
        r[i].arrival = arrival ? arrival[i] : 0;
        r[i].prompt_len = prompt_len[i];
        r[i].output_len = output_len[i];
        r[i].n = 1; r[i].prefix_id = -1;
    }
    int rc = sim_run(cfg, r, n, out, err, errlen);
    free(r);
    return rc;
}

void sim_result_free(sim_result *r) {
    if (!r) return;
    free(r->steps); free(r->requests);
    memset(r, 0, sizeof *r);
}

void *sim_result_json(const sim_config *cfg, const sim_result *r) {
    cJSON *root = met_json(&r->summary, r->steps, r->num_steps, r->requests, r->num_requests);
    if (!root || !cfg) return root;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "policy", kv_policy_name(cfg->kv.policy));
    cJSON_AddNumberToObject(c, "num_blocks", cfg->kv.num_blocks);
    cJSON_AddNumberToObject(c, "block_size", cfg->kv.block_size);
    cJSON_AddNumberToObject(c, "max_model_len", cfg->kv.max_model_len);
    cJSON_AddNumberToObject(c, "orca_max_len", cfg->kv.orca_max_len);
    cJSON_AddBoolToObject(c, "prefix_caching", cfg->kv.prefix_caching);
    cJSON_AddNumberToObject(c, "num_cpu_blocks", cfg->kv.num_cpu_blocks);
    cJSON_AddNumberToObject(c, "max_num_seqs", cfg->sched.max_num_seqs);
    cJSON_AddNumberToObject(c, "max_num_batched_tokens", cfg->sched.max_num_batched_tokens);
    cJSON_AddBoolToObject(c, "chunked_prefill", cfg->sched.chunked_prefill);
    cJSON_AddStringToObject(c, "preempt", cfg->sched.preempt == SCHED_PREEMPT_SWAP ? "swap" : "recompute");
    cJSON_AddBoolToObject(c, "static_batching", cfg->sched.static_batching);
    cJSON_AddNumberToObject(c, "seed", (double)cfg->seed);
    if (cfg->model) {
        cJSON_AddStringToObject(c, "model", cfg->model->cfg.name);
        cJSON_AddStringToObject(c, "gpu", cfg->model->gpu.name);
        cJSON_AddNumberToObject(c, "tp", cfg->model->tp);
    }
    cJSON_AddItemToObject(root, "config", c);
    return root;
}
