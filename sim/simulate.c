/* simulate: one call from requests to metrics (see simulate.h).  Wires the KV
 * cache, the scheduler, the cost-model executor and the step loop; feeds
 * arrivals; samples the pool during the steps.  Thread-safe (no globals);
 * touches no file. */
#include "sim/simulate.h"
#include "sim/step_loop.h"
#include "sim/sim_executor.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

typedef struct run_ctx {          /* what the observer needs */
    kv_cache      *kv;
    sched         *sc;
    met_collector *met;
    int            oom;
    int            every;         /* usage sampling period in steps */
    long           nstep;
    kv_usage       last;          /* the latest sample */
} run_ctx;

/* Samples the pool while the step runs and records the step. */
static void observe(void *ctx, const loop_step_info *info) {
    run_ctx *c = ctx;
    if (c->nstep++ % c->every == 0) {
        seq *const *live; const seq *next;
        int n = sched_live(c->sc, &live, &next);
        kv_usage_get(c->kv, live, n, next, &c->last);
    }
    const kv_usage u = c->last;
    const sched_batch *b = info->batch;
    met_step s;
    memset(&s, 0, sizeof s);
    s.time = info->start + info->seconds;
    s.dt = info->seconds;
    sched_counts(c->sc, &s.running, &s.waiting, &s.swapped);
    s.batch_seqs = b->num_items;
    s.prefill_tokens = b->counts.prefill_tokens;
    s.decode_tokens = b->counts.decode_tokens;
    s.batch_tokens = s.prefill_tokens + s.decode_tokens;
    s.preemptions = b->preempted;
    s.num_copies = b->num_copies;
    s.blocks_used = u.blocks_used; s.blocks_total = u.blocks_total;
    s.slots_total = u.slots_total; s.token_slots = u.token_slots;
    s.reserved_slots = u.reserved_slots; s.internal_frag = u.internal_frag;
    s.external_frag = u.external_frag; s.free_slots = u.free_slots;
    if (met_add_step(c->met, &s)) c->oom = 1;
}

typedef struct arr_key { double t; int i; } arr_key;   /* sort key: no globals, thread-safe */
static int cmp_arrival(const void *a, const void *b) {
    const arr_key *x = a, *y = b;
    if (x->t != y->t) return (x->t > y->t) - (x->t < y->t);
    return (x->i > y->i) - (x->i < y->i);
}

static double wall_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int sim_run(const sim_config *cfg, const wl_request *reqs, int n, sim_result *out,
            char *err, size_t errlen) {
    int rc = -1;
    kv_cache *kv = NULL; sched *sc = NULL; met_collector *met = NULL;
    int *order = NULL, *ids = NULL;
    loop lp; memset(&lp, 0, sizeof lp);
    memset(out, 0, sizeof *out);
    double w0 = wall_now();
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
    met = met_create(cfg->keep_steps);
    order = malloc(((size_t)n + 1) * sizeof *order);         /* (n,) by arrival */
    ids = malloc((size_t)max_prompt * sizeof *ids);          /* (max_prompt,) */
    if (!met || !order || !ids) { snprintf(err, errlen, "simulate: out of memory"); goto done; }
    {
        arr_key *k = malloc(((size_t)n + 1) * sizeof *k);     /* (n,) */
        if (!k) { snprintf(err, errlen, "simulate: out of memory"); goto done; }
        for (int i = 0; i < n; i++) { k[i].t = reqs[i].arrival; k[i].i = i; }
        qsort(k, (size_t)n, sizeof *k, cmp_arrival);
        for (int i = 0; i < n; i++) order[i] = k[i].i;
        free(k);
    }

    simx x;
    simx_init(&x, cfg->model, cfg->seed);
    double t0 = n > 0 ? reqs[order[0]].arrival : 0;
    if (loop_init(&lp, sc, simx_executor(&x), t0, -1)) {
        snprintf(err, errlen, "simulate: out of memory");
        goto done;
    }
    run_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.kv = kv; ctx.sc = sc; ctx.met = met;
    ctx.every = cfg->usage_every > 0 ? cfg->usage_every
              : (cfg->kv.num_blocks / 2048 > 1 ? cfg->kv.num_blocks / 2048 : 1);
    lp.observe = observe; lp.observe_ctx = &ctx;

    int next = 0, finished = 0, report_every = n / 100 > 0 ? n / 100 : 1;
    while (next < n || sched_has_work(sc)) {
        while (next < n && reqs[order[next]].arrival <= lp.now) {
            const wl_request *r = &reqs[order[next]];
            wl_prompt_tokens(r, order[next], cfg->seed, ids);
            if (!sched_add(sc, order[next], ids, r->prompt_len, r->output_len, r->n, r->beam,
                           r->arrival, NULL)) {
                snprintf(err, errlen, "simulate: out of memory adding request %d", order[next]);
                goto done;
            }
            next++;
        }
        if (!sched_has_work(sc)) { lp.now = reqs[order[next]].arrival; continue; }
        loop_step_info info;
        int st = loop_step(&lp, &info, err, errlen);
        if (st < 0) goto done;
        if (st == 0) {
            if (next >= n) {
                int r_, w_, s_;
                sched_counts(sc, &r_, &w_, &s_);
                snprintf(err, errlen, "simulate: stalled at t=%.3f s with %d running, %d waiting, "
                         "%d swapped (the pool is too small for them)", lp.now, r_, w_, s_);
                goto done;
            }
            if (reqs[order[next]].arrival > lp.now) lp.now = reqs[order[next]].arrival;
        }
        for (int i = 0; i < info.n_done; i++) {
            const sched_done *d = &info.done[i];
            met_request r;
            memset(&r, 0, sizeof r);
            r.id = d->id; r.prompt_len = d->prompt_len; r.output_len = d->output_len;
            r.num_seqs = d->num_seqs; r.num_preemptions = d->num_preemptions;
            r.aborted = d->aborted; r.arrival = d->arrival;
            r.abort_reason = d->why;
            r.refused = d->refused;
            r.first_scheduled = d->first_scheduled; r.first_token = d->first_token;
            r.finish_time = d->finish_time;
            met_request_finish(&r);
            if (met_add_request(met, &r)) ctx.oom = 1;
            finished++;
            if (cfg->progress && finished % report_every == 0)
                cfg->progress(cfg->progress_ctx, finished, n, lp.now);
        }
        if (ctx.oom) { snprintf(err, errlen, "simulate: out of memory recording metrics"); goto done; }
        if (cfg->check) {
            seq *const *live; const seq *nw;
            int nl = sched_live(sc, &live, &nw);
            char why[256];
            if (kv_check(kv, live, nl, why, sizeof why) != 0) {
                snprintf(err, errlen, "simulate: kv_check failed after step %ld: %s", lp.steps, why);
                goto done;
            }
        }
        if (cfg->max_steps > 0 && lp.steps >= cfg->max_steps) break;
    }

    if (met_summarize(met, &out->summary)) { snprintf(err, errlen, "simulate: out of memory"); goto done; }
    {
        kv_usage u;
        seq *const *live; const seq *nw;
        int nl = sched_live(sc, &live, &nw);
        kv_usage_get(kv, live, nl, nw, &u);
        const sched_stats *ss = sched_get_stats(sc);
        out->summary.swap_outs = ss->swap_outs;
        out->summary.swap_ins = ss->swap_ins;
        out->summary.forks = ss->forks;
        out->summary.preemptions = ss->preemptions;
        out->summary.cow_copies = u.cow_copies;
        out->summary.prefix_hit_tokens = u.prefix_hit_tokens;
    }
    int ns, nr;
    const met_step *steps = met_steps(met, &ns);
    const met_request *rq = met_requests(met, &nr);
    if (ns > 0) {
        out->steps = malloc((size_t)ns * sizeof *out->steps);
        if (!out->steps) { snprintf(err, errlen, "simulate: out of memory"); goto done; }
        memcpy(out->steps, steps, (size_t)ns * sizeof *steps);
        out->num_steps = ns;
    }
    if (nr > 0) {
        out->requests = malloc((size_t)nr * sizeof *out->requests);
        if (!out->requests) { snprintf(err, errlen, "simulate: out of memory"); goto done; }
        memcpy(out->requests, rq, (size_t)nr * sizeof *rq);
        out->num_requests = nr;
    }
    out->summary.wall_time = wall_now() - w0;
    rc = 0;
done:
    if (rc != 0) sim_result_free(out);
    loop_free(&lp);
    sched_destroy(sc);
    kv_destroy(kv);
    met_destroy(met);
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
