/* lab_kit: the labs' common measurements on the sim/ core (see lab_kit.h).
 * Reads the model config and data/gpus.json; writes nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/errbuf.h"
#include "labs/lab_kit.h"
#include "sim/model_config.h"

int lab_kit_model(cm_model *m, const char *config, const char *gpu, char *err, size_t errlen) {
    mc_config mc;
    cm_gpu g;
    if (mc_load(&mc, config, err, errlen) < 0 || cm_gpu_find(&g, gpu, err, errlen) < 0) return -1;
    return cm_model_init(m, &mc, &g, 1, mc.dtype, err, errlen);
}

int lab_kit_blocks(const cm_model *m, double kv_gib, int block_size) {
    double per_block = (double)mc_kv_bytes_per_token(&m->cfg, m->kvdtype) * block_size;
    return (int)floor(kv_gib * LAB_KIT_GIB / per_block);
}

/* ---- blocks with and without sharing ------------------------------------------ */

static void share_step(void *ctx, const loop_step_info *info) {
    lab_kit_share *sh = ctx;
    const sched_batch *b = info->batch;
    long held = 0, unshared = 0;
    sh->step++;
    for (int i = 0; i < b->num_items; i++) {
        const seq *s = b->items[i].s;
        for (int k = 0; k < s->num_blocks; k++) {
            int p = s->block_table[k];
            if (p < 0 || p >= sh->num_blocks) continue;      /* a swapped-out entry */
            unshared++;
            if (sh->stamp[p] != sh->step) { sh->stamp[p] = sh->step; held++; }
        }
    }
    sh->w += info->seconds;
    sh->held += info->seconds * (double)held;
    sh->unshared += info->seconds * (double)unshared;
    if (!sh->keep || sh->oom) return;
    if (sh->n == sh->cap) {
        int c = sh->cap ? 2 * sh->cap : 4096;
        double *t = realloc(sh->t, (size_t)c * sizeof *t);
        if (t) sh->t = t;
        double *h = t ? realloc(sh->s_held, (size_t)c * sizeof *h) : NULL;
        if (h) sh->s_held = h;
        double *u = h ? realloc(sh->s_unshared, (size_t)c * sizeof *u) : NULL;
        if (u) sh->s_unshared = u;
        if (!u) { sh->oom = true; return; }
        sh->cap = c;
    }
    sh->t[sh->n] = info->start + info->seconds;
    sh->s_held[sh->n] = (double)held;
    sh->s_unshared[sh->n] = (double)unshared;
    sh->n++;
}

int lab_kit_share_init(lab_kit_share *sh, sim_config *c, int num_blocks, bool keep) {
    memset(sh, 0, sizeof *sh);
    sh->stamp = calloc((size_t)num_blocks + 1, sizeof *sh->stamp);
    if (!sh->stamp) return -1;
    sh->num_blocks = num_blocks;
    sh->keep = keep;
    c->on_step = share_step;
    c->on_step_ctx = sh;
    return 0;
}

void lab_kit_share_free(lab_kit_share *sh) {
    free(sh->stamp); free(sh->t); free(sh->s_held); free(sh->s_unshared);
    memset(sh, 0, sizeof *sh);
}

double lab_kit_share_saved(const lab_kit_share *sh) {
    return sh->unshared > 0 ? 1 - sh->held / sh->unshared : 0;
}

/* ---- sustainable rate ----------------------------------------------------------- */

static void keep_point(lab_kit_sweep *o, double rate, double lat) {
    int k = o->n;
    if (k == LAB_KIT_MAXPTS) return;
    while (k > 0 && o->rate[k - 1] > rate) {
        o->rate[k] = o->rate[k - 1];
        o->latency[k] = o->latency[k - 1];
        k--;
    }
    o->rate[k] = rate;
    o->latency[k] = lat;
    o->n++;
}

/* Mean normalized latency of one run at rate (aborted requests: infinite). */
static int latency_at(const sim_config *c, lab_kit_requests_fn make, void *ctx, double rate,
                      lab_kit_sweep *o, double *lat, char *err, size_t errlen) {
    wl_request *r = NULL;
    int n = 0;
    if (make(ctx, rate, &r, &n, err, errlen) < 0) return -1;
    sim_result res;
    int rc = sim_run(c, r, n, &res, err, errlen);
    free(r);
    if (rc < 0) return -1;
    *lat = res.summary.num_aborted > 0 ? INFINITY : res.summary.norm_latency.mean;
    keep_point(o, rate, *lat);
    sim_result_free(&res);
    return 0;
}

int lab_kit_sustainable(const sim_config *c, lab_kit_requests_fn make, void *ctx, double start_rate,
                        double max_latency, lab_kit_sweep *o, char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    double lo = 0, hi = start_rate > 0 ? start_rate : 0.25, v;
    for (;;) {
        if (latency_at(c, make, ctx, hi, o, &v, err, errlen) < 0) return -1;
        if (v > max_latency) break;
        lo = hi;
        hi *= 2;
        if (hi > 1e4) return errbuf_fail(err, errlen, "no rate up to 10,000 requests/s is unsustainable");
    }
    while (hi - lo > 0.03 * hi) {
        double mid = 0.5 * (lo + hi);
        if (latency_at(c, make, ctx, mid, o, &v, err, errlen) < 0) return -1;
        if (v <= max_latency) lo = mid; else hi = mid;
    }
    o->sustainable = lo;
    return 0;
}
