/* bias_predict: the simulated side of a comparison (see labs/bias_compare.h):
 * each set of a trace simulated with its own prompts, measured reply lengths,
 * pool and limits through sim/simulate.h, with TTFT counted from when the
 * client (keeping max_workers requests in flight) would send each request.
 * Reads the trace; runs the simulator; writes nothing. */
#include "labs/bias_compare_impl.h"
#include "sim/simulate.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Simulates set `set` of t with model m; adds to p (first: keep the series). */
static int simulate_set(const cmp *c, const cm_model *m, int set, int first, side *p, double *ttft, double *tpot,
                        int *nt, int *np, char *err, size_t errlen) {
    size_t n = 0;
    for (size_t i = 0; i < c->tr->nreq; i++) n += c->tr->req[i].set == set;
    wl_request *w = calloc(n ? n : 1, sizeof *w);      /* (n) */
    if (!w) { snprintf(err, errlen, "out of memory"); return -1; }
    size_t *ord = malloc((n ? n : 1) * sizeof *ord), k = 0;   /* (n) the set's requests in submission order */
    if (!ord) { free(w); snprintf(err, errlen, "out of memory"); return -1; }
    for (size_t i = 0; i < c->tr->nreq; i++) if (c->tr->req[i].set == set) ord[k++] = i;
    for (size_t i = 1; i < n; i++)                      /* stable insertion sort by submit time */
        for (size_t j = i; j > 0 && c->tr->req[ord[j - 1]].submit_s > c->tr->req[ord[j]].submit_s; j--) {
            size_t x = ord[j]; ord[j] = ord[j - 1]; ord[j - 1] = x;
        }
    k = 0;
    for (size_t oi = 0; oi < n; oi++) {
        const bias_trace_req *r = &c->tr->req[ord[oi]];
        int o = r->output_tokens < 1 ? 1 : r->output_tokens;
        if (r->prompt_tokens + o > c->max_model_len) o = c->max_model_len - r->prompt_tokens > 1 ? c->max_model_len - r->prompt_tokens : 1;
        w[k++] = (wl_request){ .arrival = 0, .prompt_len = r->prompt_tokens, .output_len = o, .n = 1,
                               .prefix_id = r->shared_prefix > 0 ? 0 : -1, .prefix_len = r->shared_prefix };
    }
    sim_config sc = sim_config_default();
    sc.kv.policy = strcmp(c->tr->kv_policy, "contiguous") == 0 ? KV_CONTIGUOUS : KV_PAGED;
    sc.kv.num_blocks = (int)c->num_blocks;
    sc.kv.block_size = c->block_size;
    sc.kv.max_model_len = c->max_model_len;
    sc.kv.prefix_caching = sc.kv.policy == KV_PAGED && c->tr->prefix_caching;
    sc.sched.max_num_seqs = c->max_num_seqs;
    sc.sched.max_num_batched_tokens = c->batched;
    sc.sched.max_model_len = c->max_model_len;
    sc.model = m;
    sc.keep_steps = true;
    sc.usage_every = 1;                             /* the engine samples the pool after every step too */
    sim_result res;
    int rc = sim_run(&sc, w, (int)n, &res, err, errlen);
    free(w); free(ord);
    if (rc) return -1;
    const met_summary *s = &res.summary;
    p->wall_s += s->sim_time;
    p->preemptions += s->preemptions;
    if (s->max_running > p->max_seqs) p->max_seqs = s->max_running;
    /* The client keeps W requests in flight: request k (submission order) is
     * sent when the (k - W)-th reply completes.  Its TTFT counts from then. */
    int W = c->tr->max_workers > 0 ? c->tr->max_workers : c->max_num_seqs;
    double *fin = malloc(((size_t)res.num_requests + 1) * sizeof *fin);   /* (num_requests) */
    if (!fin) { sim_result_free(&res); snprintf(err, errlen, "out of memory"); return -1; }
    for (int i = 0; i < res.num_requests; i++) fin[i] = res.requests[i].finish_time;
    qsort(fin, (size_t)res.num_requests, sizeof *fin, cmp_double);
    for (int i = 0; i < res.num_requests; i++) {
        const met_request *q = &res.requests[i];
        double sent = q->id < W || q->id - W >= res.num_requests ? q->arrival : fin[q->id - W];
        ttft[(*nt)++] = q->first_token - (sent > q->arrival ? sent : q->arrival);
        if (q->output_len > 1) tpot[(*np)++] = q->tpot;
    }
    free(fin);
    for (int i = 0; i < res.num_steps; i++) {
        const met_step *st = &res.steps[i];
        if (st->slots_total <= 0) continue;
        double h = (double)(st->token_slots + st->reserved_slots + st->internal_frag);
        p->kv_util += st->dt * h / (double)st->slots_total;       /* sums; normalised by the caller */
        p->token_share_of_held += st->dt * (double)st->token_slots;
        p->internal_of_held += st->dt * (double)st->internal_frag;
        p->mean_seqs += st->dt * st->running;
        p->held_dt += st->dt * h;
        if (st->blocks_used > p->peak_blocks) p->peak_blocks = st->blocks_used;
    }
    if (first && res.num_steps) {
        int stride = (res.num_steps + MAX_PTS - 1) / MAX_PTS;
        p->npts = 0;
        for (int i = 0; i < res.num_steps && p->npts < MAX_PTS; i += stride) {
            p->t[p->npts] = res.steps[i].time; p->blocks[p->npts++] = res.steps[i].blocks_used;
        }
    }
    p->has_kv = 1;
    sim_result_free(&res);
    return 0;
}

int bias_cmp_predict(const cmp *c, const cm_model *m, int only, side *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    int *sets = malloc((c->tr->nreq + 1) * sizeof *sets);
    double *tt = malloc((c->tr->nreq + 1) * sizeof *tt), *tp = malloc((c->tr->nreq + 1) * sizeof *tp);
    int rc = -1, nt = 0, np = 0;
    if (!sets || !tt || !tp) { snprintf(err, errlen, "out of memory"); goto out; }
    int ns = bias_cmp_trace_sets(c->tr, sets), first = 1;
    double dur = 0, held = 0;
    long tok = 0, outt = 0;
    for (int i = 0; i < ns; i++) {
        if (only > 0 && sets[i] != only) continue;
        double w0 = p->wall_s;
        if (simulate_set(c, m, sets[i], first, p, tt, tp, &nt, &np, err, errlen)) goto out;
        dur += p->wall_s - w0;
        first = 0;
        for (size_t k = 0; k < c->tr->nreq; k++)
            if (c->tr->req[k].set == sets[i]) { tok += c->tr->req[k].prompt_tokens + c->tr->req[k].output_tokens; outt += c->tr->req[k].output_tokens; }
    }
    held = p->held_dt;
    double pool = (double)c->num_blocks * c->block_size;
    p->kv_util = dur > 0 && pool > 0 ? p->kv_util / dur : 0;
    p->token_share_of_held = held > 0 ? p->token_share_of_held / held : 0;
    p->internal_of_held = held > 0 ? p->internal_of_held / held : 0;
    p->mean_seqs = dur > 0 ? p->mean_seqs / dur : 0;
    p->tok_per_s = p->wall_s > 0 ? (double)tok / p->wall_s : 0;
    p->out_tok_per_s = p->wall_s > 0 ? (double)outt / p->wall_s : 0;
    met_percentiles(tt, nt, &p->ttft);
    met_percentiles(tp, np, &p->tpot);
    rc = 0;
out:
    free(sets); free(tt); free(tp);
    return rc;
}

