/* fig2: the vLLM paper's Figure 2 measured by simulation (see fig2.h).
 * Runs sim_run four times; touches no file and prints nothing.
 *
 * The paper's numbers are the labels of its Figure 2 bars and of its
 * Figure 13a (average batched requests, OPT-13B, ShareGPT, 2 requests/s).
 * Orca (Oracle) has no internal-fragmentation bar: it reserves exactly the
 * final length, so 0.  The vLLM bar is labelled with its token states only
 * (96.3%); its other 3.7% is not split, so only the token share is compared. */
#include "sim/fig2.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static const kv_policy fig2_policy[FIG2_NPOL] = { KV_PAGED, KV_ORCA_MAX, KV_ORCA_POW2, KV_ORCA_ORACLE };
static const double fig2_paper_pct[FIG2_NPOL][FIG2_NCAT] = {
    { 96.3, NAN, NAN, NAN },        /* vLLM */
    { 20.4, 13.3, 57.3, 8.9 },      /* Orca (Max) */
    { 26.8, 17.9, 13.6, 41.6 },     /* Orca (Pow2) */
    { 38.2, 25.2, 0.0, 36.6 },      /* Orca (Oracle) */
};
static const double fig2_paper_batch[FIG2_NPOL] = { 30.42, 7.00, 9.81, 13.62 };

const char *fig2_category_name(int c) {
    static const char *const names[FIG2_NCAT] = { "token states", "reservation", "internal fragmentation",
                                                  "external fragmentation & others" };
    return c >= 0 && c < FIG2_NCAT ? names[c] : "?";
}

void fig2_paper_config(sim_config *cfg, double kv_bytes_per_token) {
    int bs = cfg->kv.block_size > 0 ? cfg->kv.block_size : 16;
    cfg->kv.block_size = bs;
    cfg->kv.num_blocks = kv_bytes_per_token > 0 ? (int)floor(FIG2_PAPER_KV_BYTES / (kv_bytes_per_token * bs)) : 0;
    cfg->kv.allocator = KV_ALLOC_BUDDY;
    cfg->kv.orca_max_len = 2048;
}

/* The measured categories of one run, % of the memory held or lost. */
static void shares(const met_summary *s, double out[FIG2_NCAT]) {
    double v[FIG2_NCAT] = { s->share_token, s->share_reserved, s->share_internal,
                            s->share_external + s->share_free_waiting };
    double sum = v[0] + v[1] + v[2] + v[3];
    for (int c = 0; c < FIG2_NCAT; c++) out[c] = sum > 0 ? 100 * v[c] / sum : 0;
}

int fig2_compute(const sim_config *cfg, const wl_request *reqs, int n, fig2_table *t,
                 sim_result *keep, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    if (keep) memset(keep, 0, FIG2_NPOL * sizeof *keep);
    for (int i = 0; i < FIG2_NPOL; i++) {
        sim_config c = *cfg;
        c.kv.policy = fig2_policy[i];
        c.keep_steps = c.keep_steps && keep;
        sim_result r;
        if (sim_run(&c, reqs, n, &r, err, errlen) < 0) {
            if (keep) for (int k = 0; k < i; k++) sim_result_free(&keep[k]);
            return -1;
        }
        fig2_row *row = &t->row[i];
        row->policy = fig2_policy[i];
        shares(&r.summary, row->measured);
        memcpy(row->paper, fig2_paper_pct[i], sizeof row->paper);
        row->mean_running = r.summary.mean_running;
        row->paper_running = fig2_paper_batch[i];
        row->req_per_s = r.summary.req_per_s;
        for (int k = 0; k < FIG2_NCAT; k++)
            if (!isnan(row->paper[k]) && fabs(row->measured[k] - row->paper[k]) > row->worst)
                row->worst = fabs(row->measured[k] - row->paper[k]);
        if (row->worst > t->worst) t->worst = row->worst;
        if (keep) keep[i] = r;
        else sim_result_free(&r);
    }
    return 0;
}
