/* bench_sim: how fast the simulator runs, on one core.
 *   1. 1,000,000 ShareGPT-like requests, paged, Poisson arrivals at 90% of the
 *      measured capacity (so the waiting queue stays short): simulated time
 *      and wall time, target <= 30 s wall.
 *   2. 12,810 requests of ~500 prompt / ~100 output tokens (the seed study's
 *      size), all at t=0, under every policy: target < 1 s wall each.
 * Model: Qwen3-30B-A3B (data/models) on one H200, KV blocks from the memory
 * planner.  Targets are judged on this process's CPU time (the machine may
 * be shared; wall time is printed too).  PAGESIM_BENCH_REQUESTS overrides the 1,000,000 (quick checks). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sim/simulate.h"
#include "sim/planner.h"

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu(void) {       /* this process's CPU seconds: the machine may be shared */
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int gen(wl_kind kind, int n, double rate, int p, int o, wl_request **r, int *m) {
    wl_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.kind = kind; sp.num_requests = n; sp.rate = rate; sp.seed = 7; sp.max_len = 4096;
    sp.fixed_prompt = p; sp.fixed_output = o;
    char err[256];
    if (wl_generate(&sp, r, m, err, sizeof err) < 0) { fprintf(stderr, "bench_sim: %s\n", err); return -1; }
    return 0;
}

int main(void) {
    char err[512];
    mc_config mc; cm_gpu g; cm_model m;
    const char *cfg_path = "data/models/qwen3-30b-a3b-instruct-2507.json";
    if (mc_load(&mc, cfg_path, err, sizeof err) < 0 || cm_gpu_find(&g, "H200", err, sizeof err) < 0 ||
        cm_model_init(&m, &mc, &g, 1, mc.dtype, err, sizeof err) < 0) {
        fprintf(stderr, "bench_sim: %s\n", err);
        return 1;
    }
    plan_opts po; plan_result pr;
    plan_opts_default(&po);
    po.max_model_len = 4096;
    if (plan_compute(&mc, &g, &po, &pr, err, sizeof err) < 0 || !pr.fits) {
        fprintf(stderr, "bench_sim: planner: %s\n", pr.fits ? err : "model does not fit");
        return 1;
    }
    sim_config c = sim_config_default();
    c.model = &m;
    c.kv.num_blocks = (int)pr.num_blocks;
    c.kv.max_model_len = 4096;
    c.kv.orca_max_len = 2048;
    printf("model %s on %s: %d KV blocks of 16 tokens\n", mc.name, g.name, c.kv.num_blocks);

    /* capacity: 20,000 requests at once */
    wl_request *r; int n;
    if (gen(WL_SHAREGPT, 20000, 0, 0, 0, &r, &n)) return 1;
    sim_result res;
    if (sim_run(&c, r, n, &res, err, sizeof err) < 0) { fprintf(stderr, "bench_sim: %s\n", err); return 1; }
    double cap = res.summary.req_per_s;
    sim_result_free(&res); free(r);

    /* 1. a million requests */
    int big = 1000000;
    const char *env = getenv("PAGESIM_BENCH_REQUESTS");
    if (env && atoi(env) > 0) big = atoi(env);
    double w0 = wall(), c0 = cpu();
    if (gen(WL_SHAREGPT, big, 0.9 * cap, 0, 0, &r, &n)) return 1;
    c.usage_every = 256;          /* the pool census is O(blocks): sample it */
    if (sim_run(&c, r, n, &res, err, sizeof err) < 0) { fprintf(stderr, "bench_sim: %s\n", err); return 1; }
    double w1 = wall() - w0, c1 = cpu() - c0;
    printf("sim_1M_sharegpt_paged: %d requests at %.2f req/s (90%% of capacity %.2f): "
           "simulated %.0f s (%.1f h), %ld steps, %d finished; wall %.2f s, cpu %.2f s "
           "(target <= 30 s on one core) %s\n",
           n, 0.9 * cap, cap, res.summary.sim_time, res.summary.sim_time / 3600, res.summary.steps,
           res.summary.num_finished, w1, c1, c1 <= 30 ? "OK" : "SLOW");
    sim_result_free(&res); free(r);

    /* 2. the seed study's size under every policy */
    c.usage_every = 0;            /* auto */
    if (gen(WL_FIXED, 12810, 0, 500, 100, &r, &n)) return 1;
    for (int p = 0; p < KV_NUM_POLICIES; p++) {
        c.kv.policy = (kv_policy)p;
        double t0 = wall(), u0 = cpu();
        if (sim_run(&c, r, n, &res, err, sizeof err) < 0) { fprintf(stderr, "bench_sim: %s\n", err); return 1; }
        double w = wall() - t0, u = cpu() - u0;
        printf("sim_12810_%-12s simulated %8.1f s, %6ld steps, %5.1f%% token share; wall %.3f s, "
               "cpu %.3f s (target < 1 s) %s\n", kv_policy_name((kv_policy)p), res.summary.sim_time,
               res.summary.steps, 100 * res.summary.token_share_of_used, w, u, u < 1 ? "OK" : "SLOW");
        sim_result_free(&res);
    }
    free(r);
    return 0;
}
