/* bias_compare: predicted against measured (see bias_compare.h).  Each trace
 * is simulated set by set with its own lengths, pool and limits through
 * sim/simulate.h; the cost model can be fitted on the first set's steps
 * (sim/calibrate.h) and the fit checked on the rest.  With bias_serving.c the
 * only labs files that include sim/.  Writes {model}_att_compare.json,
 * {model}_att_coeffs.json (when fitted) and {model}_att_compare.png/.svg. */
#include "labs/bias_compare.h"
#include "viz/export.h"
#include "labs/bias_aggregate.h"
#include "labs/bias_output.h"
#include "sim/calibrate.h"
#include "sim/cost_model.h"
#include "sim/metrics.h"
#include "sim/model_config.h"
#include "sim/planner.h"
#include "sim/simulate.h"
#include <cairo.h>
#include <cairo-svg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TRACES 4
#define MAX_PTS 400

/* The figures of one side (measured or predicted) of one trace. */
typedef struct side {
    double wall_s, tok_per_s, out_tok_per_s;
    met_pct ttft, tpot;
    int    has_kv, peak_blocks, max_seqs;
    double mean_seqs;
    double kv_util;                  /* held slots / pool, time-averaged */
    double token_share_of_held;      /* token slots / held slots (vLLM Fig. 2) */
    double internal_of_held;         /* internal fragmentation / held slots */
    long   preemptions;              /* predicted only */
    double held_dt;                  /* sum of held slots x step time (predict's accumulator) */
    double t[MAX_PTS], blocks[MAX_PTS]; int npts;   /* set 1's blocks in use over time */
} side;

typedef struct cmp {
    const bias_trace *tr;
    side meas, pred;
    long num_blocks;                 /* the pool simulated */
    int  max_num_seqs, batched, max_model_len, block_size, sets;
    long prompt_tokens, output_tokens;
    size_t nreq;
} cmp;

/* Sets present in the trace's requests, ascending (sets: (t->nreq) max). */
static int trace_sets(const bias_trace *t, int *sets) {
    int n = 0;
    for (size_t i = 0; i < t->nreq; i++) {
        int s = t->req[i].set, k;
        for (k = 0; k < n && sets[k] != s; k++) {}
        if (k == n) sets[n++] = s;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && sets[j - 1] > sets[j]; j--) { int x = sets[j]; sets[j] = sets[j - 1]; sets[j - 1] = x; }
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- measured -------------------------------------------------------------------------- */

static int measure(const bias_trace *t, side *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    double *tt = malloc((t->nreq + 1) * sizeof *tt), *tp = malloc((t->nreq + 1) * sizeof *tp);   /* (nreq) */
    if (!tt || !tp) { free(tt); free(tp); snprintf(err, errlen, "out of memory"); return -1; }
    int ntt = 0, ntp = 0;
    long tok = 0, out = 0;
    for (size_t i = 0; i < t->nreq; i++) {
        const bias_trace_req *r = &t->req[i];
        tok += r->prompt_tokens + r->output_tokens; out += r->output_tokens;
        tt[ntt++] = r->first_token_s - r->submit_s;
        if (r->output_tokens > 1) tp[ntp++] = (r->finish_s - r->first_token_s) / (r->output_tokens - 1);
    }
    for (int s = 0; s < t->nsets; s++) m->wall_s += t->set_wall_s[s];
    m->tok_per_s = m->wall_s > 0 ? (double)tok / m->wall_s : 0;
    m->out_tok_per_s = m->wall_s > 0 ? (double)out / m->wall_s : 0;
    met_percentiles(tt, ntt, &m->ttft);
    met_percentiles(tp, ntp, &m->tpot);
    free(tt); free(tp);
    double nsum = 0, nw = 0;
    for (size_t i = 0; i < t->nstep; i++) {
        const bias_trace_step *s = &t->step[i];
        if (s->num_seqs > m->max_seqs) m->max_seqs = s->num_seqs;
        nsum += s->seconds * s->num_seqs; nw += s->seconds;
    }
    m->mean_seqs = nw > 0 ? nsum / nw : 0;
    if (t->nkv) {
        m->has_kv = 1;
        double held = 0, tokw = 0, intw = 0, pool = 0;
        int first_set = t->kv[0].set, n1 = 0;
        for (size_t i = 0; i < t->nkv; i++) {
            const bias_trace_kv *k = &t->kv[i];
            /* weight: time to the next sample of the same set */
            double dt = (i + 1 < t->nkv && t->kv[i + 1].set == k->set) ? t->kv[i + 1].t_s - k->t_s : 0;
            if (dt < 0) dt = 0;
            double h = (double)(k->token_slots + k->reserved_slots + k->internal_frag);
            held += dt * h; tokw += dt * (double)k->token_slots; intw += dt * (double)k->internal_frag;
            pool += dt * (double)k->slots_total;
            if (k->blocks_used > m->peak_blocks) m->peak_blocks = k->blocks_used;
            if (k->set == first_set) n1++;
        }
        m->kv_util = pool > 0 ? held / pool : 0;
        m->token_share_of_held = held > 0 ? tokw / held : 0;
        m->internal_of_held = held > 0 ? intw / held : 0;
        int stride = (n1 + MAX_PTS - 1) / MAX_PTS;
        if (stride < 1) stride = 1;
        for (int i = 0; i < n1 && m->npts < MAX_PTS; i += stride) {
            m->t[m->npts] = t->kv[i].t_s; m->blocks[m->npts++] = t->kv[i].blocks_used;
        }
    }
    return 0;
}

/* ---- predicted ------------------------------------------------------------------------- */

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

/* Predicts every set of c->tr (or only `only` when > 0) with model m into p. */
static int predict(const cmp *c, const cm_model *m, int only, side *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    int *sets = malloc((c->tr->nreq + 1) * sizeof *sets);
    double *tt = malloc((c->tr->nreq + 1) * sizeof *tt), *tp = malloc((c->tr->nreq + 1) * sizeof *tp);
    int rc = -1, nt = 0, np = 0;
    if (!sets || !tt || !tp) { snprintf(err, errlen, "out of memory"); goto out; }
    int ns = trace_sets(c->tr, sets), first = 1;
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

/* ---- calibration ----------------------------------------------------------------------- */

typedef struct calib {
    int   done, n_fit, n_test;
    char  why[200];                             /* when not done */
    char  fit_on[96];
    cm_fit_report rep;
    double step_mape_before, step_mape_after;   /* on the held-out steps */
    int   npred;
    struct { char what[96]; double measured, before, after; } pred[8];
} calib;

static void steps_obs(const bias_trace *t, int set, int half, cm_step_obs *o, int *n) {
    size_t cnt = 0;
    for (size_t i = 0; i < t->nstep; i++) cnt += set <= 0 || t->step[i].set == set;
    size_t mid = cnt / 2, k = 0;
    *n = 0;
    for (size_t i = 0; i < t->nstep; i++) {
        const bias_trace_step *s = &t->step[i];
        if (set > 0 && s->set != set) continue;
        int take = half == 0 || (half == 1 && k < mid) || (half == 2 && k >= mid);
        k++;
        if (!take || s->seconds <= 0) continue;
        o[(*n)++] = (cm_step_obs){ { s->num_seqs, s->prefill_tokens, s->decode_tokens, s->attn_ctx_tokens,
                                     s->attn_pairs > 0 ? s->attn_pairs : s->attn_ctx_tokens, 0, 0 }, s->seconds };
    }
}

static double mape(const cm_model *m, const cm_step_obs *o, int n) {
    double e = 0;
    for (int i = 0; i < n; i++) e += fabs(cm_step_time(m, &o[i].b) - o[i].seconds) / o[i].seconds;
    return n ? e / n : 0;
}

/* Fits on trace 0's first set (or the first half of its steps when it has one
 * set) and predicts the rest, step by step and as whole sets. */
static int calibrate(cmp *c, int n, const cm_model *m, calib *k, const char *coeffs_path, char *err, size_t errlen) {
    memset(k, 0, sizeof *k);
    const bias_trace *t0 = c[0].tr;
    snprintf(k->why, sizeof k->why, "not done: %zu measured steps (a fit wants at least 32, and a server run has none)", t0->nstep);
    if (t0->nstep < 32) return 0;
    int sets[64], ns = 0;
    for (size_t i = 0; i < t0->nstep && ns < 64; i++) {
        int s = t0->step[i].set, j;
        for (j = 0; j < ns && sets[j] != s; j++) {}
        if (j == ns) sets[ns++] = s;
    }
    cm_step_obs *fit = malloc(t0->nstep * sizeof *fit), *test = NULL;
    size_t ntest_cap = 0;
    for (int i = 0; i < n; i++) ntest_cap += c[i].tr->nstep;
    test = malloc((ntest_cap + 1) * sizeof *test);
    int rc = -1, nf = 0, nt = 0;
    if (!fit || !test) { snprintf(err, errlen, "out of memory"); goto out; }
    if (ns >= 2) {
        steps_obs(t0, sets[0], 0, fit, &nf);
        snprintf(k->fit_on, sizeof k->fit_on, "%s set %d", t0->kv_policy, sets[0]);
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < c[i].tr->nstep; j++) {
                const bias_trace_step *s = &c[i].tr->step[j];
                if ((i == 0 && s->set == sets[0]) || s->seconds <= 0) continue;
                test[nt++] = (cm_step_obs){ { s->num_seqs, s->prefill_tokens, s->decode_tokens, s->attn_ctx_tokens,
                                              s->attn_pairs > 0 ? s->attn_pairs : s->attn_ctx_tokens, 0, 0 }, s->seconds };
            }
    } else {
        steps_obs(t0, 0, 1, fit, &nf);
        steps_obs(t0, 0, 2, test, &nt);
        snprintf(k->fit_on, sizeof k->fit_on, "%s first half of the steps", t0->kv_policy);
        for (int i = 1; i < n; i++)
            for (size_t j = 0; j < c[i].tr->nstep; j++) {
                const bias_trace_step *s = &c[i].tr->step[j];
                if (s->seconds > 0)
                    test[nt++] = (cm_step_obs){ { s->num_seqs, s->prefill_tokens, s->decode_tokens, s->attn_ctx_tokens,
                                                  s->attn_pairs > 0 ? s->attn_pairs : s->attn_ctx_tokens, 0, 0 }, s->seconds };
            }
    }
    if (nf < 16) { snprintf(k->why, sizeof k->why, "not done: only %d steps to fit on", nf); rc = 0; goto out; }
    if (cm_fit(m, fit, nf, &k->rep, err, errlen)) {             /* not fatal: reported as absent */
        snprintf(k->why, sizeof k->why, "not done: %.180s", err); rc = 0; goto out;
    }
    if (!(k->rep.r2 >= 0.5)) {                                 /* e.g. steps all of one shape */
        snprintf(k->why, sizeof k->why, "rejected: R^2 %.3g on %d steps (they do not vary enough to fit "
                 "four coefficients; the defaults are kept)", k->rep.r2, nf);
        rc = 0; goto out;
    }
    k->done = 1; k->n_fit = nf; k->n_test = nt;
    cm_model fm = *m;
    fm.k = k->rep.k;
    k->step_mape_before = mape(m, test, nt);
    k->step_mape_after = mape(&fm, test, nt);
    if (coeffs_path && cm_coeffs_save(&fm.k, coeffs_path, err, errlen)) goto out;
    /* whole sets predicted with the default and the fitted coefficients */
    for (int i = 0; i < n && k->npred < 8; i++) {
        int ts[64], tn = trace_sets(c[i].tr, ts);
        for (int j = 0; j < tn && k->npred < 8; j++) {
            if (i == 0 && ns >= 2 && ts[j] == sets[0]) continue;
            if (ts[j] < 1 || ts[j] > c[i].tr->nsets || c[i].tr->set_wall_s[ts[j] - 1] <= 0) continue;
            side a, b;
            if (predict(&c[i], m, ts[j], &a, err, errlen) || predict(&c[i], &fm, ts[j], &b, err, errlen)) goto out;
            snprintf(k->pred[k->npred].what, sizeof k->pred[k->npred].what, "%s set %d", c[i].tr->kv_policy, ts[j]);
            k->pred[k->npred].measured = c[i].tr->set_wall_s[ts[j] - 1];
            k->pred[k->npred].before = a.wall_s;
            k->pred[k->npred].after = b.wall_s;
            k->npred++;
        }
    }
    rc = 0;
out:
    free(fit); free(test);
    return rc;
}

/* ---- output ------------------------------------------------------------------------------ */

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

static double rel(double pred, double meas) { return meas != 0 ? (pred - meas) / meas : 0; }

/* ---- figure ------------------------------------------------------------------------------- */

static void text(cairo_t *cr, double x, double y, double size, const char *s, double align) {
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - align * e.x_advance, y);
    cairo_show_text(cr, s);
}

static const double colors[MAX_TRACES][3] = { { 0.20, 0.45, 0.75 }, { 0.85, 0.45, 0.10 }, { 0.3, 0.6, 0.3 }, { 0.5, 0.3, 0.6 } };

static void draw(cairo_t *cr, const cmp *c, int n, const char *title) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, 20, 24, 14, title, 0);
    /* left: KV blocks in use, set 1, measured (solid) and simulated (dashed) */
    double bx = 70, by = 60, bw = 560, bh = 330, tmax = 1e-9, vmax = 1;
    for (int i = 0; i < n; i++) {
        const side *s[2] = { &c[i].meas, &c[i].pred };
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < s[k]->npts; j++) { tmax = fmax(tmax, s[k]->t[j]); vmax = fmax(vmax, s[k]->blocks[j]); }
    }
    vmax *= 1.1;
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, bx, by, bw, bh); cairo_stroke(cr);
    char t[200];
    text(cr, bx + bw / 2, by - 10, 14, "KV blocks in use, set 1 (solid: measured, dashed: simulated)", 0.5);
    for (int g = 0; g <= 4; g++) {
        double y = by + bh - g * bh / 4;
        snprintf(t, sizeof t, "%.0f", vmax * g / 4);
        text(cr, bx - 6, y + 4, 11, t, 1);
    }
    snprintf(t, sizeof t, "seconds from the start of the set, 0 to %.1f", tmax);
    text(cr, bx + bw / 2, by + bh + 20, 11, t, 0.5);
    for (int i = 0; i < n; i++) {
        const side *s[2] = { &c[i].meas, &c[i].pred };
        for (int k = 0; k < 2; k++) {
            double dash[1] = { 6 };
            cairo_set_dash(cr, dash, k, 0);
            cairo_set_source_rgb(cr, colors[i][0], colors[i][1], colors[i][2]);
            cairo_set_line_width(cr, 2);
            for (int j = 0; j < s[k]->npts; j++) {
                double x = bx + s[k]->t[j] / tmax * bw, y = by + bh - s[k]->blocks[j] / vmax * bh;
                if (j == 0) cairo_move_to(cr, x, y); else cairo_line_to(cr, x, y);
            }
            cairo_stroke(cr);
            cairo_set_dash(cr, dash, 0, 0);
        }
        cairo_set_source_rgb(cr, colors[i][0], colors[i][1], colors[i][2]);     /* legend, bottom right */
        snprintf(t, sizeof t, "%s (%ld blocks)", c[i].tr->kv_policy, c[i].num_blocks);
        text(cr, bx + bw - 10, by + bh - 10 - 16 * (n - 1 - i), 12, t, 1);
    }
    /* right: predicted / measured for each figure */
    static const char *names[] = { "wall time", "tokens/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99",
                                   "peak blocks", "KV util", "token share" };
    enum { NM = 9 };
    double rx = 720, ry = 60, rw = 540, rh = 330, lo = 0, hi = 2;
    cairo_set_source_rgb(cr, 0, 0, 0);
    text(cr, rx + rw / 2, ry - 10, 14, "predicted / measured (1 = exact; band: +/-15%)", 0.5);
    cairo_set_source_rgb(cr, 0.92, 0.95, 0.92);
    cairo_rectangle(cr, rx, ry + rh - (1.15 - lo) / (hi - lo) * rh, rw, 0.30 / (hi - lo) * rh); cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, rx, ry, rw, rh); cairo_stroke(cr);
    for (int g = 0; g <= 4; g++) {
        double v = lo + g * (hi - lo) / 4, y = ry + rh - g * rh / 4;
        snprintf(t, sizeof t, "%.1f", v);
        text(cr, rx - 6, y + 4, 11, t, 1);
    }
    double y1 = ry + rh - (1 - lo) / (hi - lo) * rh;
    cairo_move_to(cr, rx, y1); cairo_line_to(cr, rx + rw, y1); cairo_stroke(cr);
    double slot = rw / NM;
    for (int m = 0; m < NM; m++) {
        for (int i = 0; i < n; i++) {
            const side *p = &c[i].pred, *q = &c[i].meas;
            double a, b;
            switch (m) {
            case 0: a = p->wall_s; b = q->wall_s; break;
            case 1: a = p->tok_per_s; b = q->tok_per_s; break;
            case 2: a = p->ttft.p50; b = q->ttft.p50; break;
            case 3: a = p->ttft.p99; b = q->ttft.p99; break;
            case 4: a = p->tpot.p50; b = q->tpot.p50; break;
            case 5: a = p->tpot.p99; b = q->tpot.p99; break;
            case 6: a = p->peak_blocks; b = q->has_kv ? q->peak_blocks : 0; break;
            case 7: a = p->kv_util; b = q->has_kv ? q->kv_util : 0; break;
            default: a = p->token_share_of_held; b = q->has_kv ? q->token_share_of_held : 0; break;
            }
            if (!(b > 0)) continue;
            double r = fmin(hi, a / b), w = slot * 0.7 / n, x = rx + m * slot + slot * 0.15 + i * w;
            cairo_set_source_rgb(cr, colors[i][0], colors[i][1], colors[i][2]);
            cairo_rectangle(cr, x, ry + rh - (r - lo) / (hi - lo) * rh, w * 0.9, (r - lo) / (hi - lo) * rh);
            cairo_fill(cr);
        }
        cairo_save(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_translate(cr, rx + m * slot + slot / 2 + 4, ry + rh + 10);
        cairo_rotate(cr, -M_PI / 5);
        text(cr, 0, 0, 11, names[m], 1);
        cairo_restore(cr);
    }
}

typedef struct fig_ctx { const cmp *c; int n; const char *title; } fig_ctx;
static void draw_cb(cairo_t *cr, const void *ctx, double w, double h) {
    const fig_ctx *f = ctx;
    (void)w; (void)h;
    draw(cr, f->c, f->n, f->title);
}

static int figure(const cmp *c, int n, const char *base, const char *title, char *err, size_t errlen) {
    enum { W = 1300, H = 470 };
    char path[4200];
    fig_ctx f = { c, n, title };
    snprintf(path, sizeof path, "%s.png", base);
    if (viz_export_draw(path, VIZ_FMT_PNG, W, H, draw_cb, &f, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s.svg", base);
    return viz_export_draw(path, VIZ_FMT_SVG, W, H, draw_cb, &f, err, errlen);
}

/* ---- the comparison ------------------------------------------------------------------------- */

int bias_compare_write(const bias_compare_config *cfg, const bias_trace *const *traces, int n,
                       const char *dir, const char *model, char *summary, size_t sumlen,
                       char *err, size_t errlen) {
    if (n < 1 || n > MAX_TRACES) { snprintf(err, errlen, "compare: 1 to %d traces, got %d", MAX_TRACES, n); return -1; }
    const bias_trace *t0 = traces[0];
    const char *gpu = cfg->gpu && *cfg->gpu ? cfg->gpu : t0->gpu;
    const char *mcp = cfg->model_config && *cfg->model_config ? cfg->model_config : t0->model_config;
    if (!gpu || !*gpu) { snprintf(err, errlen, "compare: which GPU did the run use? (--gpu NAME, e.g. H100 or H200)"); return -1; }
    if (!mcp || !*mcp) { snprintf(err, errlen, "compare: the model's config.json is unknown (--model-config FILE)"); return -1; }
    mc_config mc;
    cm_gpu g;
    cm_model m;
    if (cm_gpu_find(&g, gpu, err, errlen) || mc_load(&mc, mcp, err, errlen) ||
        cm_model_init(&m, &mc, &g, cfg->tp > 0 ? cfg->tp : 1, mc.dtype, err, errlen)) return -1;
    if (cfg->coeffs && cm_coeffs_load(&m.k, cfg->coeffs, err, errlen)) return -1;
    cmp *c = calloc((size_t)n, sizeof *c);
    calib *k = calloc(1, sizeof *k);
    bias_buf b = {0};
    int rc = -1;
    if (!c || !k) { snprintf(err, errlen, "out of memory"); goto out; }
    for (int i = 0; i < n; i++) {
        const bias_trace *t = traces[i];
        c[i].tr = t;
        c[i].block_size = t->block_size > 0 ? t->block_size : 16;
        c[i].max_model_len = t->max_model_len > 0 ? t->max_model_len : 4096;
        c[i].batched = t->max_num_batched_tokens > 0 ? t->max_num_batched_tokens : 8192;
        int seqs = t->max_num_seqs > 0 ? t->max_num_seqs : 256;
        c[i].max_num_seqs = t->max_workers > 0 && t->max_workers < seqs ? t->max_workers : seqs;
        c[i].num_blocks = t->num_blocks;
        if (c[i].num_blocks <= 0) {                       /* a server: the planner's pool */
            plan_opts po;
            plan_result pr;
            plan_opts_default(&po);
            po.util = cfg->gpu_util > 0 ? cfg->gpu_util : 0.9;
            po.block_size = c[i].block_size; po.max_model_len = c[i].max_model_len;
            po.max_num_batched_tokens = c[i].batched;
            if (plan_compute(&mc, &g, &po, &pr, err, errlen)) goto out;
            if (!pr.fits) { snprintf(err, errlen, "compare: %s does not fit on %s", mc.name, g.name); goto out; }
            c[i].num_blocks = pr.num_blocks;
        }
        for (size_t r = 0; r < t->nreq; r++) { c[i].prompt_tokens += t->req[r].prompt_tokens; c[i].output_tokens += t->req[r].output_tokens; }
        c[i].nreq = t->nreq;
        int *sets = malloc((t->nreq + 1) * sizeof *sets);
        if (!sets) { snprintf(err, errlen, "out of memory"); goto out; }
        c[i].sets = trace_sets(t, sets);
        free(sets);
        if (measure(t, &c[i].meas, err, errlen) || predict(&c[i], &m, 0, &c[i].pred, err, errlen)) goto out;
    }
    char cpath[4096];
    bias_path(cpath, sizeof cpath, dir, model, "_att_coeffs.json");
    if (calibrate(c, n, &m, k, cpath, err, errlen)) goto out;

    /* the JSON */
    bias_buf_printf(&b, "{\n");
    if (cfg->note && *cfg->note) { bias_buf_printf(&b, "  \"note\": "); bias_json_str(&b, cfg->note); bias_buf_printf(&b, ",\n"); }
    bias_buf_printf(&b, "  \"gpu\": ");
    bias_json_str(&b, g.name);
    bias_buf_printf(&b, ",\n  \"model\": ");
    bias_json_str(&b, mc.name);
    bias_buf_printf(&b, ",\n  \"model_config\": ");
    bias_json_str(&b, mcp);
    bias_buf_printf(&b, ",\n  \"tp\": %d,\n  \"coefficients\": ", cfg->tp > 0 ? cfg->tp : 1);
    bias_json_str(&b, cfg->coeffs ? cfg->coeffs : "defaults (sim/cost_model.c)");
    bias_buf_printf(&b, ",\n  \"definitions\": \"measured TTFT from the engine's arrival of the request (the client's submission); "
                    "predicted TTFT from when the client would send it (request k goes when the (k - max_workers)-th "
                    "simulated reply completes); TPOT = "
                    "(finish - first token) / (output tokens - 1); kv_utilization = held slots / pool, time-averaged; "
                    "token_share_of_held = token slots / held slots (the vLLM paper's Fig. 2); "
                    "internal_fragmentation_of_held = slots held but never to be used / held slots\",\n  \"policies\": {");
    for (int i = 0; i < n; i++) {
        const cmp *x = &c[i];
        bias_buf_printf(&b, "%s\n    \"%s\": {\n      \"source\": ", i ? "," : "", x->tr->kv_policy);
        bias_json_str(&b, x->tr->source);
        bias_buf_printf(&b, ",\n      \"requests\": %zu,\n      \"sets\": %d,\n      \"prompt_tokens\": %ld,\n"
                        "      \"output_tokens\": %ld,\n      \"num_blocks\": %ld,\n      \"block_size\": %d,\n"
                        "      \"max_num_seqs\": %d,\n      \"max_num_batched_tokens\": %d,\n      \"max_model_len\": %d,\n"
                        "      \"prefix_caching\": %s,\n      \"prefix_hit_tokens\": %ld,\n      \"measured\": ",
                        x->nreq, x->sets, x->prompt_tokens, x->output_tokens, x->num_blocks, x->block_size,
                        x->max_num_seqs, x->batched, x->max_model_len, x->tr->prefix_caching ? "true" : "false",
                        x->tr->prefix_hit_tokens);
        side_json(&b, &x->meas, 1, "      ");
        bias_buf_printf(&b, ",\n      \"predicted\": ");
        side_json(&b, &x->pred, 0, "      ");
        bias_buf_printf(&b, ",\n      \"error\": {\n        \"wall_time_rel\": "); num(&b, rel(x->pred.wall_s, x->meas.wall_s));
        bias_buf_printf(&b, ",\n        \"tokens_per_s_rel\": "); num(&b, rel(x->pred.tok_per_s, x->meas.tok_per_s));
        bias_buf_printf(&b, ",\n        \"ttft_p50_rel\": "); num(&b, rel(x->pred.ttft.p50, x->meas.ttft.p50));
        bias_buf_printf(&b, ",\n        \"tpot_p50_rel\": "); num(&b, rel(x->pred.tpot.p50, x->meas.tpot.p50));
        if (x->meas.has_kv) {
            bias_buf_printf(&b, ",\n        \"peak_blocks_rel\": "); num(&b, rel(x->pred.peak_blocks, x->meas.peak_blocks));
            bias_buf_printf(&b, ",\n        \"kv_utilization_points\": "); num(&b, 100 * (x->pred.kv_util - x->meas.kv_util));
            bias_buf_printf(&b, ",\n        \"token_share_points\": ");
            num(&b, 100 * (x->pred.token_share_of_held - x->meas.token_share_of_held));
        }
        bias_buf_printf(&b, "\n      }\n    }");
    }
    bias_buf_printf(&b, "\n  }");
    if (n >= 2) {
        bias_buf_printf(&b, ",\n  \"%s_over_%s\": {\n    \"measured_throughput_ratio\": ", c[0].tr->kv_policy, c[1].tr->kv_policy);
        num(&b, c[1].meas.tok_per_s > 0 ? c[0].meas.tok_per_s / c[1].meas.tok_per_s : 0);
        bias_buf_printf(&b, ",\n    \"predicted_throughput_ratio\": ");
        num(&b, c[1].pred.tok_per_s > 0 ? c[0].pred.tok_per_s / c[1].pred.tok_per_s : 0);
        bias_buf_printf(&b, ",\n    \"measured_max_seqs\": [%d, %d],\n    \"predicted_max_seqs\": [%d, %d]\n  }",
                        c[0].meas.max_seqs, c[1].meas.max_seqs, c[0].pred.max_seqs, c[1].pred.max_seqs);
    }
    bias_buf_printf(&b, ",\n  \"calibration\": ");
    if (!k->done) {
        bias_json_str(&b, k->why);
    } else {
        bias_buf_printf(&b, "{\n    \"fit_on\": ");
        bias_json_str(&b, k->fit_on);
        bias_buf_printf(&b, ",\n    \"coefficients_file\": ");
        bias_json_str(&b, cpath);
        bias_buf_printf(&b, ",\n    \"steps_fitted\": %d,\n    \"steps_held_out\": %d,\n    \"r2\": ", k->n_fit, k->n_test);
        num(&b, k->rep.r2);
        bias_buf_printf(&b, ",\n    \"fitted\": {\"flops_eff\": "); num(&b, k->rep.k.flops_eff);
        bias_buf_printf(&b, ", \"bw_eff\": "); num(&b, k->rep.k.bw_eff);
        bias_buf_printf(&b, ", \"step_overhead_s\": "); num(&b, k->rep.k.step_overhead_s);
        bias_buf_printf(&b, ", \"per_seq_s\": "); num(&b, k->rep.k.per_seq_s);
        bias_buf_printf(&b, "},\n    \"default\": {\"flops_eff\": "); num(&b, m.k.flops_eff);
        bias_buf_printf(&b, ", \"bw_eff\": "); num(&b, m.k.bw_eff);
        bias_buf_printf(&b, ", \"step_overhead_s\": "); num(&b, m.k.step_overhead_s);
        bias_buf_printf(&b, ", \"per_seq_s\": "); num(&b, m.k.per_seq_s);
        bias_buf_printf(&b, "},\n    \"held_out_step_mape_before\": "); num(&b, k->step_mape_before);
        bias_buf_printf(&b, ",\n    \"held_out_step_mape_after\": "); num(&b, k->step_mape_after);
        bias_buf_printf(&b, ",\n    \"held_out_sets\": [");
        for (int i = 0; i < k->npred; i++) {
            bias_buf_printf(&b, "%s\n      {\"what\": ", i ? "," : "");
            bias_json_str(&b, k->pred[i].what);
            bias_buf_printf(&b, ", \"measured_s\": "); num(&b, k->pred[i].measured);
            bias_buf_printf(&b, ", \"predicted_before_s\": "); num(&b, k->pred[i].before);
            bias_buf_printf(&b, ", \"predicted_after_s\": "); num(&b, k->pred[i].after);
            bias_buf_printf(&b, ", \"error_before_rel\": "); num(&b, rel(k->pred[i].before, k->pred[i].measured));
            bias_buf_printf(&b, ", \"error_after_rel\": "); num(&b, rel(k->pred[i].after, k->pred[i].measured));
            bias_buf_printf(&b, "}");
        }
        bias_buf_printf(&b, "\n    ]\n  }");
    }
    bias_buf_printf(&b, "\n}\n");
    if (b.oom) { snprintf(err, errlen, "out of memory"); goto out; }
    char path[4096];
    bias_path(path, sizeof path, dir, model, "_att_compare.json");
    if (bias_write_atomic(path, b.s, b.len, err, errlen)) goto out;
    char base[4096], title[512];
    bias_path(base, sizeof base, dir, model, "_att_compare");
    snprintf(title, sizeof title, "Simulation against reality: %s on %s (%s)%s", mc.name, g.name, t0->source,
             t0->dummy_weights ? "; dummy weights (times and memory are real, decisions mean nothing)" : "");
    if (figure(c, n, base, title, err, errlen)) goto out;
    size_t used = 0;
    summary[0] = 0;
    for (int i = 0; i < n && used < sumlen; i++) {
        const cmp *x = &c[i];
        int w = snprintf(summary + used, sumlen - used,
                         "%s: wall %.1f s measured, %.1f s predicted (%+.1f%%); %.0f vs %.0f tok/s",
                         x->tr->kv_policy, x->meas.wall_s, x->pred.wall_s, 100 * rel(x->pred.wall_s, x->meas.wall_s),
                         x->meas.tok_per_s, x->pred.tok_per_s);
        if (w > 0) used += (size_t)w;
        if (x->meas.has_kv && used < sumlen) {
            w = snprintf(summary + used, sumlen - used, "; KV util %.1f%% vs %.1f%%, token share %.1f%% vs %.1f%%, peak blocks %d vs %d",
                         100 * x->meas.kv_util, 100 * x->pred.kv_util, 100 * x->meas.token_share_of_held,
                         100 * x->pred.token_share_of_held, x->meas.peak_blocks, x->pred.peak_blocks);
            if (w > 0) used += (size_t)w;
        }
        if (used < sumlen) { w = snprintf(summary + used, sumlen - used, "\n"); if (w > 0) used += (size_t)w; }
    }
    if (k->done && used < sumlen)
        snprintf(summary + used, sumlen - used, "calibration (fit on %s): held-out step error %.1f%% -> %.1f%%\n",
                 k->fit_on, 100 * k->step_mape_before, 100 * k->step_mape_after);
    rc = 0;
out:
    bias_buf_free(&b);
    free(c); free(k);
    return rc;
}
