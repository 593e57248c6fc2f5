/* metrics: step and request records, the summary, and their JSON (see
 * metrics.h).  Touches a file only in met_write_json. */
#include "sim/metrics.h"
#include "base/file.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct met_collector {
    bool         keep_steps;
    met_step    *steps;  int n_steps, steps_cap;    /* (steps_cap,) */
    met_request *reqs;   int n_reqs, reqs_cap;      /* (reqs_cap,) */
    long   n_step_total;
    double t_first, t_last;                          /* first step start, last step end */
    /* sums weighted by step duration */
    double w, w_token, w_resv, w_int, w_ext, w_free, w_total, w_free_wait;
    double w_running, w_waiting, w_blocks;
    double sum_batch_tokens;
    int    max_running, max_waiting, max_swapped, max_blocks;
    long   preemptions;
};

met_collector *met_create(bool keep_steps) {
    met_collector *m = calloc(1, sizeof *m);
    if (m) { m->keep_steps = keep_steps; m->t_first = -1; }
    return m;
}

void met_destroy(met_collector *m) {
    if (!m) return;
    free(m->steps); free(m->reqs); free(m);
}

static int grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap : 256;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return -1;
    *p = q; *cap = nc;
    return 0;
}

int met_add_step(met_collector *m, const met_step *s) {
    if (m->t_first < 0) m->t_first = s->time - s->dt;
    m->t_last = s->time;
    m->n_step_total++;
    double dt = s->dt;
    m->w += dt;
    m->w_token += dt * (double)s->token_slots;
    m->w_resv  += dt * (double)s->reserved_slots;
    m->w_int   += dt * (double)s->internal_frag;
    m->w_ext   += dt * (double)s->external_frag;
    m->w_free  += dt * (double)s->free_slots;
    if (s->waiting > 0) m->w_free_wait += dt * (double)s->free_slots;
    m->w_total += dt * (double)s->slots_total;
    m->w_running += dt * s->running;
    m->w_waiting += dt * s->waiting;
    m->w_blocks  += dt * s->blocks_used;
    m->sum_batch_tokens += (double)s->batch_tokens;
    if (s->running > m->max_running) m->max_running = s->running;
    if (s->waiting > m->max_waiting) m->max_waiting = s->waiting;
    if (s->swapped > m->max_swapped) m->max_swapped = s->swapped;
    if (s->blocks_used > m->max_blocks) m->max_blocks = s->blocks_used;
    m->preemptions += s->preemptions;
    if (!m->keep_steps) return 0;
    if (grow((void **)&m->steps, &m->steps_cap, m->n_steps + 1, sizeof *m->steps)) return -1;
    m->steps[m->n_steps++] = *s;
    return 0;
}

void met_request_finish(met_request *r) {
    r->ttft = r->first_token >= 0 ? r->first_token - r->arrival : 0;
    r->e2e = r->finish_time - r->arrival;
    r->tpot = (r->output_len > 1 && r->first_token >= 0)
            ? (r->finish_time - r->first_token) / (r->output_len - 1) : 0;
    r->norm_latency = r->output_len > 0 ? r->e2e / r->output_len : 0;
}

int met_add_request(met_collector *m, const met_request *r) {
    if (grow((void **)&m->reqs, &m->reqs_cap, m->n_reqs + 1, sizeof *m->reqs)) return -1;
    m->reqs[m->n_reqs++] = *r;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int met_percentiles(const double *v, int n, met_pct *out) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return 0;
    double *c = malloc((size_t)n * sizeof *c);
    if (!c) return -1;
    double sum = 0;
    for (int i = 0; i < n; i++) { c[i] = v[i]; sum += v[i]; }
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    /* nearest rank: the smallest value with at least p% of the values <= it */
    #define RANK(p) c[(int)((p) * n / 100.0 + 0.999999) - 1 < 0 ? 0 : \
                      (int)((p) * n / 100.0 + 0.999999) - 1 >= n ? n - 1 : \
                      (int)((p) * n / 100.0 + 0.999999) - 1]
    out->mean = sum / n;
    out->p50 = RANK(50); out->p90 = RANK(90); out->p99 = RANK(99);
    #undef RANK
    out->max = c[n - 1];
    free(c);
    return 0;
}

int met_summarize(const met_collector *m, met_summary *o) {
    memset(o, 0, sizeof *o);
    int n = m->n_reqs, k = 0;
    double *v[4] = { NULL, NULL, NULL, NULL };
    for (int j = 0; j < 4; j++) if (!(v[j] = malloc(((size_t)n + 1) * sizeof(double)))) goto oom;
    double t0 = m->t_first, t1 = m->t_last;
    for (int i = 0; i < n; i++) {
        const met_request *r = &m->reqs[i];
        o->num_requests++;
        if (r->aborted) { o->num_aborted++; o->num_refused += r->refused; continue; }
        o->num_finished++;
        o->prompt_tokens += r->prompt_len;
        o->output_tokens += (long)r->output_len * (r->num_seqs > 0 ? r->num_seqs : 1);
        v[0][k] = r->ttft; v[1][k] = r->tpot; v[2][k] = r->e2e; v[3][k] = r->norm_latency;
        k++;
        if (t0 < 0 || r->arrival < t0) t0 = r->arrival;
        if (r->finish_time > t1) t1 = r->finish_time;
    }
    if (met_percentiles(v[0], k, &o->ttft) || met_percentiles(v[1], k, &o->tpot) ||
        met_percentiles(v[2], k, &o->e2e) || met_percentiles(v[3], k, &o->norm_latency)) goto oom;
    for (int j = 0; j < 4; j++) free(v[j]);
    o->steps = m->n_step_total;
    o->sim_time = t0 >= 0 && t1 > t0 ? t1 - t0 : 0;
    if (o->sim_time > 0) {
        o->req_per_s = o->num_finished / o->sim_time;
        o->out_tok_per_s = o->output_tokens / o->sim_time;
        o->total_tok_per_s = (o->output_tokens + o->prompt_tokens) / o->sim_time;
    }
    if (m->w_total > 0) {
        o->share_token = m->w_token / m->w_total;
        o->share_reserved = m->w_resv / m->w_total;
        o->share_internal = m->w_int / m->w_total;
        o->share_external = m->w_ext / m->w_total;
        o->share_free = m->w_free / m->w_total;
    }
    double used = m->w_token + m->w_resv + m->w_int + m->w_ext;
    o->token_share_of_used = used > 0 ? m->w_token / used : 0;
    if (m->w_total > 0) o->share_free_waiting = m->w_free_wait / m->w_total;
    used += m->w_free_wait;
    o->token_share_loaded = used > 0 ? m->w_token / used : 0;
    if (m->w > 0) {
        o->mean_running = m->w_running / m->w;
        o->mean_waiting = m->w_waiting / m->w;
        o->mean_blocks_used = m->w_blocks / m->w;
    }
    o->mean_batch_tokens = m->n_step_total ? m->sum_batch_tokens / m->n_step_total : 0;
    o->max_running = m->max_running; o->max_waiting = m->max_waiting;
    o->max_swapped = m->max_swapped;
    o->max_blocks_used = m->max_blocks;
    o->preemptions = m->preemptions;
    return 0;
oom:
    for (int j = 0; j < 4; j++) free(v[j]);
    return -1;
}

const met_step *met_steps(const met_collector *m, int *n) { *n = m->n_steps; return m->steps; }
const met_request *met_requests(const met_collector *m, int *n) { *n = m->n_reqs; return m->reqs; }

/* ---- JSON ------------------------------------------------------------------- */
static cJSON *pct_json(const met_pct *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mean", p->mean);
    cJSON_AddNumberToObject(o, "p50", p->p50);
    cJSON_AddNumberToObject(o, "p90", p->p90);
    cJSON_AddNumberToObject(o, "p99", p->p99);
    cJSON_AddNumberToObject(o, "max", p->max);
    return o;
}

void *met_summary_json(const met_summary *s) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
#define NUM(f) cJSON_AddNumberToObject(o, #f, (double)s->f)
    NUM(num_requests); NUM(num_finished); NUM(num_aborted); NUM(num_refused);
    NUM(prompt_tokens); NUM(output_tokens); NUM(steps);
    NUM(sim_time); NUM(wall_time); NUM(req_per_s); NUM(out_tok_per_s); NUM(total_tok_per_s);
    cJSON_AddItemToObject(o, "ttft", pct_json(&s->ttft));
    cJSON_AddItemToObject(o, "tpot", pct_json(&s->tpot));
    cJSON_AddItemToObject(o, "e2e", pct_json(&s->e2e));
    cJSON_AddItemToObject(o, "norm_latency", pct_json(&s->norm_latency));
    NUM(share_token); NUM(share_reserved); NUM(share_internal); NUM(share_external);
    NUM(share_free); NUM(token_share_of_used); NUM(share_free_waiting); NUM(token_share_loaded);
    NUM(mean_running); NUM(mean_waiting); NUM(mean_batch_tokens); NUM(mean_blocks_used);
    NUM(max_running); NUM(max_waiting); NUM(max_swapped); NUM(max_blocks_used);
    NUM(preemptions); NUM(swap_outs); NUM(swap_ins); NUM(cow_copies);
    NUM(prefix_hit_tokens); NUM(forks);
#undef NUM
    return o;
}

void *met_json(const met_summary *s, const met_step *steps, int n_steps,
               const met_request *reqs, int n_reqs) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddItemToObject(root, "summary", met_summary_json(s));
    /* steps as columns: one array per field keeps the file compact */
    cJSON *st = cJSON_AddObjectToObject(root, "steps");
#define COL(f) do { cJSON *a = cJSON_AddArrayToObject(st, #f); \
        for (int i = 0; i < n_steps; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)steps[i].f)); } while (0)
    COL(time); COL(dt); COL(running); COL(waiting); COL(swapped); COL(batch_seqs);
    COL(batch_tokens); COL(prefill_tokens); COL(decode_tokens); COL(preemptions);
    COL(num_copies); COL(blocks_used); COL(blocks_total); COL(slots_total); COL(token_slots);
    COL(reserved_slots); COL(internal_frag); COL(external_frag); COL(free_slots);
#undef COL
    cJSON *rq = cJSON_AddArrayToObject(root, "requests");
    for (int i = 0; i < n_reqs; i++) {
        const met_request *r = &reqs[i];
        cJSON *o = cJSON_CreateObject();
#define NUM(f) cJSON_AddNumberToObject(o, #f, (double)r->f)
        NUM(id); NUM(prompt_len); NUM(output_len); NUM(num_seqs); NUM(num_preemptions);
        cJSON_AddBoolToObject(o, "aborted", r->aborted);
        if (r->aborted) {
            cJSON_AddBoolToObject(o, "refused", r->refused);
            cJSON_AddStringToObject(o, "abort_reason", r->abort_reason ? r->abort_reason : "unknown");
        }
        NUM(arrival); NUM(first_scheduled); NUM(first_token); NUM(finish_time);
        NUM(ttft); NUM(tpot); NUM(e2e); NUM(norm_latency);
#undef NUM
        cJSON_AddItemToArray(rq, o);
    }
    return root;
}

int met_write_json(const void *json, const char *path, char *err, size_t errlen) {
    char *txt = cJSON_PrintUnformatted((const cJSON *)json);
    if (!txt) { snprintf(err, errlen, "%s: out of memory printing JSON", path); return -1; }
    size_t n = strlen(txt);
    txt[n] = '\n';                                  /* the NUL becomes the closing newline */
    int rc = file_write_atomic(path, txt, n + 1, err, errlen);
    free(txt);
    return rc;
}
