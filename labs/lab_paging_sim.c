/* lab_paging_sim: the paging lab's measurements on the sim/ core (see
 * lab_paging_sim.h).  Every run is one sim_run: the shared scheduler, KV
 * cache and cost-model executor.  Reads the model config and data/gpus.json;
 * writes nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/errbuf.h"
#include "labs/lab_paging_sim.h"
#include "sim/model_config.h"
#include "sim/simulate.h"
#include "sim/workload.h"

static const kv_policy POLICY[LAB_PG_NPOL] = { KV_PAGED, KV_ORCA_ORACLE, KV_ORCA_POW2, KV_ORCA_MAX };
/* vLLM paper, Fig. 2: share of KV memory holding token states */
static const double PAPER_TOKEN[LAB_PG_NPOL] = { 0.963, 0.382, 0.268, 0.204 };

lab_paging_setup lab_paging_setup_default(void) {
    return (lab_paging_setup){ .model_path = "data/models/opt-13b.json", .gpu = "A100-40GB",
                               .kv_gb = 12, .rate = 2.0, .requests = 1000, .max_model_len = 2048,
                               .seed = 1, .sweep = true, .sweep_seconds = 600, .max_norm_latency = 1.0 };
}

typedef struct env {
    const lab_paging_setup *s;
    cm_model model;
    int      num_blocks;
} env;

static sim_config config_for(const env *e, int p) {
    sim_config c = sim_config_default();
    c.kv.policy = POLICY[p];
    c.kv.num_blocks = e->num_blocks;
    c.kv.block_size = 16;
    c.kv.max_model_len = e->s->max_model_len;
    c.kv.orca_max_len = e->s->max_model_len < 2048 ? e->s->max_model_len : 2048;
    c.kv.allocator = KV_ALLOC_BUDDY;              /* the paper's Orca (sim/buddy_alloc.c) */
    c.sched.seed = e->s->seed;
    c.model = &e->model;
    c.seed = e->s->seed;
    return c;
}

static int requests(const env *e, double rate, int n, wl_request **out, int *nout, char *err, size_t len) {
    wl_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.kind = WL_SHAREGPT;
    sp.num_requests = n;
    sp.rate = rate;
    sp.seed = e->s->seed;
    sp.max_len = e->s->max_model_len;
    return wl_generate(&sp, out, nout, err, len);
}

/* Figure 2 at the setup's rate: the categories as `pagesim run --fig2` counts
 * them (free slots left idle while requests wait are "others"). */
static int figure2(const env *e, lab_paging_numbers *o, char *err, size_t n) {
    wl_request *r = NULL;
    int nr = 0;
    if (requests(e, e->s->rate, e->s->requests, &r, &nr, err, n) < 0) return -1;
    wl_stats(r, nr, &o->mean_prompt, &o->mean_output);
    for (int p = 0; p < LAB_PG_NPOL; p++) {
        sim_config c = config_for(e, p);
        sim_result res;
        if (sim_run(&c, r, nr, &res, err, n) < 0) { free(r); return -1; }
        const met_summary *s = &res.summary;
        double ext = s->share_external + s->share_free_waiting;
        double used = s->share_token + s->share_reserved + s->share_internal + ext;
        o->token[p] = used > 0 ? s->share_token / used : 0;
        o->reserved[p] = used > 0 ? s->share_reserved / used : 0;
        o->internal[p] = used > 0 ? s->share_internal / used : 0;
        o->external[p] = used > 0 ? ext / used : 0;
        o->fig2[p] = *s;
        sim_result_free(&res);
    }
    free(r);
    return 0;
}

/* Requests at once while others wait: every request arrives at t = 0; the
 * running count averaged (by step time) over the steps with a queue. */
static int at_once(const env *e, lab_paging_numbers *o, char *err, size_t n) {
    wl_request *r = NULL;
    int nr = 0;
    if (requests(e, 0, e->s->requests, &r, &nr, err, n) < 0) return -1;
    for (int p = 0; p < LAB_PG_NPOL; p++) {
        sim_config c = config_for(e, p);
        c.keep_steps = true;
        sim_result res;
        if (sim_run(&c, r, nr, &res, err, n) < 0) { free(r); return -1; }
        double w = 0, sum = 0;
        int mx = 0;
        for (int k = 0; k < res.num_steps; k++) {
            const met_step *st = &res.steps[k];
            if (st->waiting <= 0) continue;
            w += st->dt;
            sum += st->dt * st->running;
            if (st->running > mx) mx = st->running;
        }
        o->at_once[p] = w > 0 ? sum / w : NAN;
        o->max_at_once[p] = mx;
        sim_result_free(&res);
    }
    free(r);
    return 0;
}

/* Keeps a measured point, in order of rate. */
static void keep_point(lab_paging_numbers *o, int p, double rate, double lat) {
    int k = o->sweep_n[p];
    if (k == LAB_PG_MAXPTS) return;
    while (k > 0 && o->sweep_rate[p][k - 1] > rate) {
        o->sweep_rate[p][k] = o->sweep_rate[p][k - 1];
        o->sweep_latency[p][k] = o->sweep_latency[p][k - 1];
        k--;
    }
    o->sweep_rate[p][k] = rate;
    o->sweep_latency[p][k] = lat;
    o->sweep_n[p]++;
}

/* Mean normalized latency at rate (rate x sweep_seconds requests, at least 200). */
static int latency_at(const env *e, lab_paging_numbers *o, int p, double rate, double *lat,
                      char *err, size_t n) {
    double want = ceil(rate * e->s->sweep_seconds);
    wl_request *r = NULL;
    int nr = 0;
    if (requests(e, rate, want < 200 ? 200 : want > 1e6 ? 1000000 : (int)want, &r, &nr, err, n) < 0) return -1;
    sim_config c = config_for(e, p);
    sim_result res;
    int rc = sim_run(&c, r, nr, &res, err, n);
    if (rc == 0) {
        *lat = res.summary.num_aborted > 0 ? INFINITY : res.summary.norm_latency.mean;
        keep_point(o, p, rate, *lat);
        sim_result_free(&res);
    }
    free(r);
    return rc;
}

/* The highest rate whose latency stays under the bar: bracket by doubling,
 * bisect to 3% (as `pagesim run --rate-sweep`, which bisects to 2%). */
static int sustainable(const env *e, lab_paging_numbers *o, int p, double *best, char *err, size_t n) {
    double lo = 0, hi = 0.25, v;
    for (;;) {
        if (latency_at(e, o, p, hi, &v, err, n) < 0) return -1;
        if (v > e->s->max_norm_latency) break;
        lo = hi;
        hi *= 2;
        if (hi > 1e4) { *best = hi; return 0; }
    }
    while (hi - lo > 0.03 * hi) {
        double mid = 0.5 * (lo + hi);
        if (latency_at(e, o, p, mid, &v, err, n) < 0) return -1;
        if (v <= e->s->max_norm_latency) lo = mid; else hi = mid;
    }
    *best = lo;
    return 0;
}

int lab_paging_measure(const lab_paging_setup *s, lab_paging_numbers *o, char *err, size_t n) {
    memset(o, 0, sizeof *o);
    env e = { .s = s };
    mc_config mc;
    cm_gpu g;
    if (mc_load(&mc, s->model_path, err, n) < 0 || cm_gpu_find(&g, s->gpu, err, n) < 0 ||
        cm_model_init(&e.model, &mc, &g, 1, mc.dtype, err, n) < 0) return -1;
    double block_bytes = (double)mc_kv_bytes_per_token(&mc, e.model.kvdtype) * 16;
    e.num_blocks = (int)floor(s->kv_gb * 1073741824.0 / block_bytes);
    if (e.num_blocks <= 0) return errbuf_fail(err, n, "%.1f GB holds no KV block of %s", s->kv_gb, mc.name);
    o->num_blocks = e.num_blocks;
    o->block_size = 16;
    o->kv_gb = s->kv_gb;
    for (int p = 0; p < LAB_PG_NPOL; p++) {
        o->name[p] = kv_policy_name(POLICY[p]);
        o->paper_token[p] = PAPER_TOKEN[p];
        o->rate[p] = NAN;
    }
    if (figure2(&e, o, err, n) < 0 || at_once(&e, o, err, n) < 0) return -1;
    if (s->sweep)
        for (int p = 0; p < LAB_PG_NPOL; p++)
            if (sustainable(&e, o, p, &o->rate[p], err, n) < 0) return -1;
    return 0;
}
