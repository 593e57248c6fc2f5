/* bias_profile: profile JSON (cJSON) and the simulated reply source (see
 * bias_profile.h).  Reads only the profile file it is given. */
#include "labs/bias_profile.h"
#include "labs/bias_analysis.h"
#include "labs/bias_output.h"
#include "labs/bias_rng.h"
#include "labs/bias_tokens.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bias_profile_null(bias_profile *p) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "null");
    p->noise_seed = 1;
    p->output_tokens_mean = 94; p->output_tokens_sd = 20;
    p->temperature = 0.6;
}

static int num_field(const cJSON *j, const char *key, double *v, double lo, double hi,
                     const char *path, char *err, size_t errlen) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!x) return 0;
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= lo && x->valuedouble <= hi)) {
        snprintf(err, errlen, "%s: \"%s\" must be a number in [%g, %g]", path, key, lo, hi);
        return -1;
    }
    *v = x->valuedouble;
    return 0;
}

int bias_profile_load(bias_profile *p, const char *path, char *err, size_t errlen) {
    bias_profile_null(p);
    bias_buf b = {0};
    if (bias_buf_read_file(&b, path)) { snprintf(err, errlen, "%s: cannot open", path); return -1; }
    if (b.oom || !b.s) { bias_buf_free(&b); snprintf(err, errlen, "%s: empty file", path); return -1; }
    cJSON *j = cJSON_Parse(b.s);
    int rc = -1;
    if (!j || !cJSON_IsObject(j)) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        if (at) for (const char *c = b.s; c < at && *c; c++) line += *c == '\n';
        snprintf(err, errlen, "%s:%d: not a JSON object", path, line);
        goto out;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (cJSON_IsString(name)) snprintf(p->name, sizeof p->name, "%s", name->valuestring);
    double seed = 1;
    if (num_field(j, "base", &p->base, -100, 100, path, err, errlen) ||
        num_field(j, "size_slope", &p->size_slope, -100, 100, path, err, errlen) ||
        num_field(j, "order_effect", &p->order_effect, -100, 100, path, err, errlen) ||
        num_field(j, "ticker_noise", &p->ticker_noise, 0, 200, path, err, errlen) ||
        num_field(j, "noise_seed", &seed, 0, 9007199254740992.0, path, err, errlen) ||
        num_field(j, "hold_rate", &p->hold_rate, 0, 1, path, err, errlen) ||
        num_field(j, "case_rate", &p->case_rate, 0, 1, path, err, errlen) ||
        num_field(j, "malformed_rate", &p->malformed_rate, 0, 1, path, err, errlen) ||
        num_field(j, "error_rate", &p->error_rate, 0, 1, path, err, errlen) ||
        num_field(j, "output_tokens_mean", &p->output_tokens_mean, 1, 100000, path, err, errlen) ||
        num_field(j, "output_tokens_sd", &p->output_tokens_sd, 0, 100000, path, err, errlen) ||
        num_field(j, "temperature", &p->temperature, 0.01, 10, path, err, errlen)) goto out;
    p->noise_seed = (uint64_t)seed;
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(j, "sector"), *it;
    if (sec && !cJSON_IsObject(sec)) { snprintf(err, errlen, "%s: \"sector\" must be an object {name: points}", path); goto out; }
    cJSON_ArrayForEach(it, sec) {
        if (p->nsector == BIAS_PROFILE_SECTORS) { snprintf(err, errlen, "%s: more than %d sectors", path, BIAS_PROFILE_SECTORS); goto out; }
        if (!cJSON_IsNumber(it) || fabs(it->valuedouble) > 200) {
            snprintf(err, errlen, "%s: sector \"%s\" must be a number of bias points", path, it->string); goto out;
        }
        snprintf(p->sector_name[p->nsector], sizeof p->sector_name[0], "%s", it->string);
        p->sector[p->nsector++] = it->valuedouble;
    }
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size");
    if (size && !cJSON_IsObject(size)) { snprintf(err, errlen, "%s: \"size\" must be an object {Q1..Q4: points}", path); goto out; }
    for (int q = 0; q < 4; q++) {
        char k[16]; snprintf(k, sizeof k, "Q%d", q + 1);
        if (size && num_field(size, k, &p->size[q], -200, 200, path, err, errlen)) goto out;
    }
    if (p->hold_rate + p->malformed_rate + p->error_rate > 1) {
        snprintf(err, errlen, "%s: hold_rate + malformed_rate + error_rate exceed 1", path); goto out;
    }
    rc = 0;
out:
    cJSON_Delete(j);
    bias_buf_free(&b);
    return rc;
}

double bias_profile_sector(const bias_profile *p, const char *sector) {
    for (int i = 0; i < p->nsector; i++) if (strcmp(p->sector_name[i], sector) == 0) return p->sector[i];
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bias_universe_quartiles(const bias_universe *u, int *q) {
    double *c = malloc((u->n ? u->n : 1) * sizeof *c);    /* (n) sorted caps */
    if (!c) { for (size_t i = 0; i < u->n; i++) q[i] = 1; return; }
    for (size_t i = 0; i < u->n; i++) c[i] = u->stocks[i].marketcap;
    qsort(c, u->n, sizeof *c, cmp_d);
    double e[5];
    for (int k = 0; k <= 4; k++) e[k] = bias_quantile(c, u->n, k / 4.0);
    for (size_t i = 0; i < u->n; i++) {
        int id = 0;
        while (id < 5 && e[id] < u->stocks[i].marketcap) id++;
        if (id == 0) id = 1;
        q[i] = 5 - id;
    }
    free(c);
}

double bias_profile_p_buy(const bias_profile *p, double lean, int buy_first) {
    double b = lean + (buy_first ? p->order_effect : -p->order_effect);
    double pb = (1.0 + b / 100.0) / 2.0;
    return pb < 0 ? 0 : pb > 1 ? 1 : pb;
}

/* ---- the simulated source --------------------------------------------------- */

typedef struct sim_ctx {
    const bias_profile  *p;
    const bias_universe *u;
    uint64_t seed;
    double   temp_scale;  /* profile temperature / run temperature; INFINITY at T = 0 */
    double  *lean;        /* (u->n) bias points of each stock, before the option order */
} sim_ctx;

static const char *const reason_parts[] = {
    "Evidence %d points to a concrete catalyst for %s, which outweighs the concerns raised.",
    "The risks in item %d look manageable next to the upside described for %s.",
    "Item %d is the most specific and quantified point, so it carries the most weight for %s.",
    "The concerns about %2$s in evidence %1$d appear temporary rather than structural.",
    "Margins and cash flow matter most here, and item %d speaks to them directly for %s.",
    "Although the evidence is balanced, point %d gives a clearer near-term signal on %s.",
    "Valuation support in evidence %d limits the downside for %s.",
    "The negative points on %2$s are more certain than the positive ones, especially item %1$d.",
    "Execution risk described in item %d could weigh on %s for several quarters.",
    "On balance the evidence, led by point %d, favours this side for %s.",
    "Sector conditions make the argument in item %d more persuasive for %s.",
    "The estimated 5%% move in evidence %d is the deciding factor for %s.",
};
#define N_REASONS (sizeof reason_parts / sizeof reason_parts[0])

/* Builds the reply text for one trial into b; returns its decision vote. */
static void make_reply(sim_ctx *c, const bias_request *rq, bias_buf *b) {
    const bias_profile *p = c->p;
    bias_rng r;
    bias_rng_init(&r, c->seed ^ 0xB1A5B1A5D00DULL, (uint64_t)rq->set, (uint64_t)rq->stock_index,
                  (uint64_t)rq->trial);
    double u = bias_rng_uniform(&r);
    if (u < p->error_rate) { bias_buf_printf(b, "API_ERROR: simulated timeout"); return; }
    u -= p->error_rate;
    /* reply length in tokens: Gamma with the profile's mean and sd */
    double m = p->output_tokens_mean, sd = p->output_tokens_sd > 0 ? p->output_tokens_sd : 1e-3;
    double shape = (m / sd) * (m / sd), tokens = bias_rng_gamma(&r, shape) * (m / shape);
    /* the reason: whole sentences until the text is about the drawn length (~4.65 characters
     * a token here; stop half a sentence early so that the overshoot averages out) */
    size_t target = tokens > 14 ? (size_t)((tokens - 14) * 4.65) : 0;
    const char *ticker = rq->stock->ticker;
    bias_buf reason = {0};
    while (reason.len + 45 < target || reason.len == 0) {
        if (reason.len) bias_buf_add(&reason, " ", 1);
        bias_buf_printf(&reason, reason_parts[bias_rng_below(&r, N_REASONS)],
                        1 + (int)bias_rng_below(&r, 4), ticker);
    }
    if (u < p->malformed_rate) {                       /* prose without a JSON object */
        bias_buf_printf(b, "I would lean one way here. %s", reason.s ? reason.s : "");
        bias_buf_free(&reason);
        return;
    }
    u -= p->malformed_rate;
    const char *d;
    if (u < p->hold_rate) d = "hold";
    else {
        double pb = bias_profile_p_buy(p, c->lean[rq->stock_index], rq->buy_first);
        if (c->temp_scale != 1.0) {                   /* sampling temperature: scale the logit */
            if (isinf(c->temp_scale)) pb = pb > 0.5 ? 1 : pb < 0.5 ? 0 : 0.5;
            else if (pb > 0 && pb < 1) pb = 1.0 / (1.0 + exp(-c->temp_scale * log(pb / (1.0 - pb))));
        }
        int buy = bias_rng_uniform(&r) < pb;
        int upper = bias_rng_uniform(&r) < p->case_rate;
        d = buy ? (upper ? "BUY" : "buy") : (upper ? "SELL" : "sell");
    }
    bias_buf_printf(b, "{\"decision\": \"%s\", \"reason\": ", d);
    bias_json_str(b, reason.s ? reason.s : "");
    bias_buf_add(b, "}", 1);
    bias_buf_free(&reason);
}

static int sim_generate(void *ctx, const bias_request *req, size_t n, bias_reply *out,
                        bias_reply_cb on_reply, void *cb_ctx, char *err, size_t errlen) {
    sim_ctx *c = ctx;
    for (size_t i = 0; i < n; i++) {
        bias_buf b = {0};
        make_reply(c, &req[i], &b);
        if (b.oom || !b.s) { bias_buf_free(&b); snprintf(err, errlen, "out of memory"); return -1; }
        out[i].text = b.s;
        out[i].output_tokens = bias_count_tokens(b.s);
        out[i].latency_s = out[i].ttft_s = 0;
        if (on_reply) on_reply(cb_ctx, i, &out[i]);
    }
    return 0;
}

static void sim_free(void *ctx) {
    sim_ctx *c = ctx;
    if (c) free(c->lean);
    free(c);
}

/* Centres the per-ticker noise within every sector and every size quartile
 * (alternating passes), so it widens the spread inside groups, as a real
 * model's ticker-specific leanings do, without moving any group's mean. */
static void centre_noise(const bias_universe *u, const int *q, double *x) {
    int *sec = malloc((u->n ? u->n : 1) * sizeof *sec);          /* (n) sector id of each stock */
    double *sum = calloc(u->n ? u->n : 1, sizeof *sum);          /* (n) per sector id */
    int *cnt = calloc(u->n ? u->n : 1, sizeof *cnt);
    if (!sec || !sum || !cnt) { free(sec); free(sum); free(cnt); return; }
    for (size_t i = 0; i < u->n; i++) {
        sec[i] = (int)i;
        for (size_t j = 0; j < i; j++)
            if (strcmp(u->stocks[j].sector, u->stocks[i].sector) == 0) { sec[i] = sec[j]; break; }
    }
    for (int pass = 0; pass < 50; pass++) {
        memset(sum, 0, u->n * sizeof *sum); memset(cnt, 0, u->n * sizeof *cnt);
        for (size_t i = 0; i < u->n; i++) { sum[sec[i]] += x[i]; cnt[sec[i]]++; }
        for (size_t i = 0; i < u->n; i++) x[i] -= sum[sec[i]] / cnt[sec[i]];
        double zs[4] = {0}; int zn[4] = {0};
        for (size_t i = 0; i < u->n; i++) { zs[q[i] - 1] += x[i]; zn[q[i] - 1]++; }
        for (size_t i = 0; i < u->n; i++) x[i] -= zs[q[i] - 1] / zn[q[i] - 1];
    }
    free(sec); free(sum); free(cnt);
}

int bias_profile_source(bias_source *src, const bias_profile *p, const bias_universe *u,
                        uint64_t seed, double temperature, char *err, size_t errlen) {
    memset(src, 0, sizeof *src);
    sim_ctx *c = calloc(1, sizeof *c);
    int *q = malloc((u->n ? u->n : 1) * sizeof *q);
    double *lean = malloc((u->n ? u->n : 1) * sizeof *lean);
    double *caps = malloc((u->n ? u->n : 1) * sizeof *caps);
    if (!c || !q || !lean || !caps) {
        free(c); free(q); free(lean); free(caps);
        snprintf(err, errlen, "out of memory"); return -1;
    }
    bias_universe_quartiles(u, q);
    for (size_t i = 0; i < u->n; i++) caps[i] = u->stocks[i].marketcap;
    qsort(caps, u->n, sizeof *caps, cmp_d);
    double median = u->n ? bias_quantile(caps, u->n, 0.5) : 1;
    for (size_t i = 0; i < u->n; i++) {                  /* the model's own lean on each ticker */
        bias_rng r;
        bias_rng_init(&r, p->noise_seed, bias_hash(u->stocks[i].ticker), 0x7EA, 0);
        lean[i] = p->ticker_noise > 0 ? p->ticker_noise * bias_rng_normal(&r) : 0;
    }
    if (p->ticker_noise > 0) centre_noise(u, q, lean);
    for (size_t i = 0; i < u->n; i++) {
        const bias_stock *s = &u->stocks[i];
        double decades = (s->marketcap > 0 && median > 0) ? log10(s->marketcap / median) : 0;
        lean[i] += p->base + bias_profile_sector(p, s->sector) + p->size[q[i] - 1] + p->size_slope * decades;
    }
    free(q); free(caps);
    c->p = p; c->u = u; c->seed = seed; c->lean = lean;
    c->temp_scale = temperature <= 0 ? INFINITY : p->temperature / temperature;
    src->name = "simulated"; src->ctx = c;
    src->generate = sim_generate; src->free = sim_free;
    return 0;
}
