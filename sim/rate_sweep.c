/* rate_sweep: sustainable request rates by simulation (see rate_sweep.h).
 * Reads a setting's model config and data/gpus.json; prints nothing.
 *
 * The settings are the paper's Table 1: OPT-13B on one A100 (40 GB) with
 * 12 GB of KV cache (15.7K slots), OPT-66B on 4 A100s with 21 GB (9.7K),
 * OPT-175B on 8 A100-80GBs with 264 GB (60.1K); LLaMA-13B, which the paper
 * serves on one A100 in its section 6.4, has OPT-13B's KV shape and so the
 * same 15.7K slots.  Its traces last an hour, OPT-175B's 15 minutes. */
#include "sim/rate_sweep.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RS_MIN_REQUESTS 200
#define RS_MAX_REQUESTS 2000000
#define RS_MAX_RATE     1e5

void rs_spec_default(rs_spec *s) {
    memset(s, 0, sizeof *s);
    sim_config c = sim_config_default();
    s->kv = c.kv;
    s->kv.allocator = KV_ALLOC_BUDDY;
    s->sched = c.sched;
    s->workload = WL_SHAREGPT;
    s->fixed_prompt = 512;
    s->fixed_output = 128;
    s->window_s = 3600;
    s->max_norm_latency = 1.0;
    s->tol = 0.02;
    s->seed = 1;
}

int rs_norm_latency_at(const rs_spec *s, kv_policy p, double rate, double *norm, char *err, size_t errlen) {
    if (!(rate > 0) || !(s->window_s > 0)) {
        snprintf(err, errlen, "rate sweep: rate (%g) and window (%g s) must be positive", rate, s->window_s);
        return -1;
    }
    if (s->workload == WL_TRACE) {
        snprintf(err, errlen, "rate sweep: a trace has its own arrival times; sweep a synthetic workload");
        return -1;
    }
    double want = ceil(rate * s->window_s);
    wl_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.kind = s->workload;
    sp.num_requests = want < RS_MIN_REQUESTS ? RS_MIN_REQUESTS : want > RS_MAX_REQUESTS ? RS_MAX_REQUESTS : (int)want;
    sp.rate = rate;
    sp.seed = s->seed;
    sp.max_len = s->kv.max_model_len;
    sp.fixed_prompt = s->fixed_prompt;
    sp.fixed_output = s->fixed_output;
    wl_request *reqs = NULL;
    int n = 0;
    if (wl_generate(&sp, &reqs, &n, err, errlen) < 0) return -1;
    sim_config c = sim_config_default();
    c.kv = s->kv;
    c.kv.policy = p;
    c.sched = s->sched;
    c.model = s->model;
    c.seed = s->seed;
    sim_result r;
    int rc = sim_run(&c, reqs, n, &r, err, errlen);
    free(reqs);
    if (rc < 0) return -1;
    *norm = r.summary.num_aborted > 0 ? INFINITY : r.summary.norm_latency.mean;
    sim_result_free(&r);
    if (s->progress) s->progress(s->progress_ctx, p, rate, *norm);
    return 0;
}

/* *ok: does p sustain rate? */
static int probe(const rs_spec *s, kv_policy p, double rate, bool *ok, char *err, size_t errlen) {
    double v;
    if (rs_norm_latency_at(s, p, rate, &v, err, errlen) < 0) return -1;
    *ok = v <= s->max_norm_latency;
    return 0;
}

int rs_sustainable_rate(const rs_spec *s, kv_policy p, double start, double *rate, char *err, size_t errlen) {
    double lo = 0, hi = start > 0 ? start : 0.25, tol = s->tol > 0 ? s->tol : 0.02;
    bool ok;
    *rate = 0;
    if (probe(s, p, hi, &ok, err, errlen) < 0) return -1;
    if (ok) {                                   /* bracket upwards */
        do {
            lo = hi;
            hi *= 2;
            if (hi > RS_MAX_RATE) { *rate = lo; return 0; }
            if (probe(s, p, hi, &ok, err, errlen) < 0) return -1;
        } while (ok);
    } else {                                    /* ... or downwards */
        for (;;) {
            double down = hi / 2;
            if (down < 1e-4) { *rate = 0; return 0; }
            if (probe(s, p, down, &ok, err, errlen) < 0) return -1;
            if (ok) { lo = down; break; }
            hi = down;
        }
    }
    while (hi - lo > tol * hi) {
        double mid = 0.5 * (lo + hi);
        if (probe(s, p, mid, &ok, err, errlen) < 0) return -1;
        if (ok) lo = mid; else hi = mid;
    }
    *rate = lo;
    return 0;
}

/* ---- the paper's settings ------------------------------------------------------ */
static const rs_setting rs_settings[] = {
    { "opt-13b",   "OPT-13B, 1 x A100-40GB",   "data/models/opt-13b.json",   "A100-40GB", 1, 15728, 3600 },
    { "opt-66b",   "OPT-66B, 4 x A100-40GB",   "data/models/opt-66b.json",   "A100-40GB", 4, 9700,  3600 },
    { "opt-175b",  "OPT-175B, 8 x A100-80GB",  "data/models/opt-175b.json",  "A100-80GB", 8, 60100, 900 },
    { "llama-13b", "LLaMA-13B, 1 x A100-40GB", "data/models/llama-13b.json", "A100-40GB", 1, 15728, 3600 },
};

const rs_setting *rs_paper_settings(int *n) {
    *n = (int)(sizeof rs_settings / sizeof rs_settings[0]);
    return rs_settings;
}

const rs_setting *rs_paper_setting(const char *name) {
    int n;
    const rs_setting *t = rs_paper_settings(&n);
    for (int i = 0; name && i < n; i++)
        if (!strcmp(t[i].name, name)) return &t[i];
    return NULL;
}

int rs_run_setting(const rs_setting *st, wl_kind wl, const rs_spec *tmpl, rs_row *row, char *err, size_t errlen) {
    static const kv_policy pol[RS_NPOL] = { KV_PAGED, KV_ORCA_ORACLE, KV_ORCA_POW2, KV_ORCA_MAX };
    memset(row, 0, sizeof *row);
    row->setting = st;
    row->workload = wl;
    mc_config mc;
    cm_gpu g;
    cm_model m;
    rs_spec s = *tmpl;
    if (!s.model) {                               /* the setting's model on its GPUs */
        if (mc_load(&mc, st->model_path, err, errlen) < 0 || cm_gpu_find(&g, st->gpu, err, errlen) < 0 ||
            cm_model_init(&m, &mc, &g, st->tp, mc.dtype, err, errlen) < 0)
            return -1;
        s.model = &m;
    }
    s.workload = wl;
    if (!(s.window_s > 0)) s.window_s = st->window_s;
    if (s.kv.block_size <= 0) s.kv.block_size = 16;
    s.kv.num_blocks = (int)(st->kv_slots / s.kv.block_size);
    /* paged sustains the most; each Orca variant starts below the one before */
    double start = 0;
    for (int i = 0; i < RS_NPOL; i++) {
        if (rs_sustainable_rate(&s, pol[i], start, &row->rate[i], err, errlen) < 0) return -1;
        start = row->rate[i] > 0 ? row->rate[i] / (i == 0 ? 2.0 : 1.5) : 0;
    }
    return 0;
}
