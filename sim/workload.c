/* workload: the requests a simulation serves.  Synthetic ShareGPT-like and
 * Alpaca-like lengths (log-normal, heavy-tailed, fitted to the vLLM paper's
 * means), fixed lengths, or a trace file (CSV or JSONL); Poisson arrivals at a
 * rate or all at t = 0.  Everything is seeded with our own PRNG
 * (xoshiro256**), so a seed gives the same requests on every machine.
 * Reads only the trace file it is given. */
#include "sim/workload.h"
#include "base/file.h"
#include "base/rng.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define WL_MAX_REQUESTS 100000000   /* 1e8: bounds the allocation */
#define WL_MAX_TOKENS   (1 << 24)   /* per request length bound for traces */

/* ---- PRNG: splitmix64 seeds xoshiro256** ----------------------------------- */

typedef struct wl_rng { uint64_t s[4]; } wl_rng;

static void rng_seed(wl_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(wl_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return out;
}

/* uniform in (0, 1): never 0, so log() is safe */
static double rng_unit(wl_rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

/* standard normal (Box-Muller; the second value is dropped for simplicity) */
static double rng_normal(wl_rng *r) {
    double u1 = rng_unit(r), u2 = rng_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- synthetic lengths ----------------------------------------------------- */

/* Target means: vLLM paper (Kwon et al., SOSP 2023), Fig. 11.  The spreads
 * (log-space sigma) are ours: ShareGPT prompts are very heavy-tailed (a few
 * pasted documents among many one-liners), its outputs less so; Alpaca
 * instructions are short and regular.  ShareGPT's output spread, 0.8, is the
 * one the paper's own measurements on this dataset point to: with the buddy
 * baselines (sim/fig2.c), sigma 0.7-0.8 puts every category of its Figure 2
 * within 3.5 points and the batch sizes of its Figure 13a within 5%, where
 * 0.6 or 0.9 leave Orca (Pow2) 5-6 points off (the prompt spread hardly
 * matters; scan of 1.0-1.5 x 0.6-0.9, seeds 1-3, 7,200 requests).  The means
 * hold after the max_len filter too: wl_fit moves mu until the filtered sample
 * means hit the targets. */
typedef struct wl_dist { double mean_p, mean_o, sigma_p, sigma_o; } wl_dist;
static const wl_dist WL_SHAREGPT_DIST = { 161.31, 337.99, 1.2, 0.8 };
static const wl_dist WL_ALPACA_DIST   = { 19.31, 58.45, 0.6, 0.9 };

/* clip: max_len is too short for the distribution to be filtered (most pairs
 * would be drawn again), so lengths are clipped instead and the means are
 * whatever fits */
typedef struct wl_lognorm { double mu_p, mu_o, sigma_p, sigma_o; int max_len, clip; } wl_lognorm;

static int ln_len(wl_rng *r, double mu, double sigma) {
    double x = exp(mu + sigma * rng_normal(r));
    if (x > WL_MAX_TOKENS) x = WL_MAX_TOKENS;
    long v = lround(x);
    return v < 1 ? 1 : (int)v;
}

/* One (prompt, output) pair; pairs longer than max_len are drawn again, as
 * vLLM's benchmark drops ShareGPT conversations that do not fit. */
static void ln_pair(wl_rng *r, const wl_lognorm *d, int *p, int *o) {
    for (int tries = 0;; tries++) {
        *p = ln_len(r, d->mu_p, d->sigma_p);
        *o = ln_len(r, d->mu_o, d->sigma_o);
        if (d->max_len <= 0 || *p + *o <= d->max_len) return;
        if (d->clip || tries > 100) {
            if (*p >= d->max_len) *p = d->max_len - 1 > 0 ? d->max_len - 1 : 1;
            *o = d->max_len - *p > 0 ? d->max_len - *p : 1;
            return;
        }
    }
}

/* Sets mu so that the sample means (after rounding, the floor of 1 and the
 * max_len filter) match the targets: a few fixed-point rounds on a fixed
 * internal sample, so the fit does not depend on the user's seed. */
static wl_lognorm wl_fit(const wl_dist *t, int max_len) {
    wl_lognorm d = { log(t->mean_p) - t->sigma_p * t->sigma_p / 2,
                     log(t->mean_o) - t->sigma_o * t->sigma_o / 2, t->sigma_p, t->sigma_o, max_len, 0 };
    enum { N = 40000, ROUNDS = 8, PROBE = 4000 };
    if (max_len > 0) {
        /* most pairs fit: filter and fit the means; many do not: filter
         * without fitting (the targets are out of reach); most do not: clip */
        wl_rng r;
        rng_seed(&r, 0x5eed5eedULL);
        int fit = 0;
        for (int i = 0; i < PROBE; i++)
            fit += ln_len(&r, d.mu_p, d.sigma_p) + ln_len(&r, d.mu_o, d.sigma_o) <= max_len;
        if (fit < PROBE / 2) { d.clip = 1; return d; }
        if (fit < PROBE * 9 / 10) return d;
    }
    for (int round = 0; round < ROUNDS; round++) {
        wl_rng r;
        rng_seed(&r, 0x5eed5eedULL);
        double sp = 0, so = 0;
        for (int i = 0; i < N; i++) {
            int p, o;
            ln_pair(&r, &d, &p, &o);
            sp += p, so += o;
        }
        double step_p = log(t->mean_p / (sp / N)), step_o = log(t->mean_o / (so / N));
        d.mu_p += step_p > 0.5 ? 0.5 : step_p < -0.5 ? -0.5 : step_p;   /* no run-away */
        d.mu_o += step_o > 0.5 ? 0.5 : step_o < -0.5 ? -0.5 : step_o;
    }
    return d;
}

/* ---- generation ------------------------------------------------------------ */

static void req_defaults(wl_request *q) {
    memset(q, 0, sizeof *q);
    q->n = 1;
    q->prefix_id = -1;
}

/* Clips prompt+output to max_len (keeps at least one token of each). */
static void clip(wl_request *q, int max_len) {
    if (max_len <= 1 || q->prompt_len + q->output_len <= max_len) return;
    if (q->prompt_len >= max_len) q->prompt_len = max_len - 1;
    q->output_len = max_len - q->prompt_len;
    if (q->prefix_len > q->prompt_len) q->prefix_len = q->prompt_len;
}

static int check_spec(const wl_spec *s, char *err, size_t errlen) {
    if (s->kind != WL_TRACE && (s->num_requests <= 0 || s->num_requests > WL_MAX_REQUESTS)) {
        snprintf(err, errlen, "number of requests must be in 1..%d (got %d)", WL_MAX_REQUESTS,
                 s->num_requests);
        return -1;
    }
    if (s->kind == WL_TRACE && s->num_requests < 0) {
        snprintf(err, errlen, "number of requests must be >= 0 (got %d)", s->num_requests);
        return -1;
    }
    if (!(s->rate >= 0) || !isfinite(s->rate)) {
        snprintf(err, errlen, "request rate must be >= 0 (0 = all at once), got %g", s->rate);
        return -1;
    }
    if (s->max_len < 0 || s->max_len == 1) {
        snprintf(err, errlen, "max_len must be 0 (no limit) or >= 2 (got %d)", s->max_len);
        return -1;
    }
    if (s->kind == WL_FIXED && (s->fixed_prompt <= 0 || s->fixed_output <= 0)) {
        snprintf(err, errlen, "fixed workload: prompt and output lengths must be positive (got %d, %d)",
                 s->fixed_prompt, s->fixed_output);
        return -1;
    }
    if (s->kind == WL_TRACE && (!s->path || !*s->path)) {
        snprintf(err, errlen, "trace workload: no file given");
        return -1;
    }
    if ((int)s->kind < WL_SHAREGPT || (int)s->kind > WL_TRACE) {
        snprintf(err, errlen, "unknown workload kind %d", (int)s->kind);
        return -1;
    }
    return 0;
}

int wl_generate(const wl_spec *spec, wl_request **out, int *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    if (check_spec(spec, err, errlen) < 0) return -1;
    if (spec->kind == WL_TRACE) {
        wl_request *r;
        int m;
        if (wl_load_trace(spec->path, &r, &m, err, errlen) < 0) return -1;
        if (spec->num_requests > 0 && spec->num_requests < m) m = spec->num_requests;
        for (int i = 0; i < m; i++) clip(&r[i], spec->max_len);
        *out = r;
        *n = m;
        return 0;
    }
    int m = spec->num_requests;
    wl_request *r = malloc((size_t)m * sizeof *r);   /* (num_requests,) */
    if (!r) {
        snprintf(err, errlen, "out of memory for %d requests", m);
        return -1;
    }
    wl_lognorm d = { 0 };
    if (spec->kind == WL_SHAREGPT) d = wl_fit(&WL_SHAREGPT_DIST, spec->max_len);
    if (spec->kind == WL_ALPACA) d = wl_fit(&WL_ALPACA_DIST, spec->max_len);
    /* two streams, so changing the rate does not change the lengths */
    wl_rng lens, arr;
    rng_seed(&lens, spec->seed);
    rng_seed(&arr, spec->seed ^ 0xa5a5a5a5deadbeefULL);
    double t = 0;
    for (int i = 0; i < m; i++) {
        wl_request *q = &r[i];
        req_defaults(q);
        if (spec->kind == WL_FIXED) {
            q->prompt_len = spec->fixed_prompt;
            q->output_len = spec->fixed_output;
            clip(q, spec->max_len);
        } else {
            ln_pair(&lens, &d, &q->prompt_len, &q->output_len);
        }
        if (spec->rate > 0) t += -log(rng_unit(&arr)) / spec->rate;
        q->arrival = t;
    }
    *out = r;
    *n = m;
    return 0;
}

/* ---- traces ---------------------------------------------------------------- */

enum { C_ARRIVAL, C_PROMPT, C_OUTPUT, C_N, C_BEAM, C_PREFIX_ID, C_PREFIX_LEN, C_NCOLS };
static const char *const col_names[C_NCOLS] = {
    "arrival", "prompt_len", "output_len", "n", "beam", "prefix_id", "prefix_len"
};

/* Parses one value of column c into q; -1 with err naming file:line. */
static int set_field(wl_request *q, int c, const char *text, const char *path, long line,
                     char *err, size_t errlen) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    while (*end && isspace((unsigned char)*end)) end++;
    if (end == text || *end || errno || !isfinite(v)) {
        snprintf(err, errlen, "%s:%ld: %s '%s' is not a number", path, line, col_names[c], text);
        return -1;
    }
    if (c == C_ARRIVAL) {
        if (v < 0) {
            snprintf(err, errlen, "%s:%ld: arrival %g is negative", path, line, v);
            return -1;
        }
        q->arrival = v;
        return 0;
    }
    if (v != floor(v)) {
        snprintf(err, errlen, "%s:%ld: %s %g is not an integer", path, line, col_names[c], v);
        return -1;
    }
    double lo = (c == C_PROMPT || c == C_OUTPUT || c == C_N) ? 1 : (c == C_PREFIX_ID ? -1 : 0);
    if (v < lo || v > WL_MAX_TOKENS) {
        snprintf(err, errlen, "%s:%ld: %s %g is out of range (%s %g..%d)", path, line, col_names[c],
                 v, v < 0 ? "negative; want" : "want", lo, WL_MAX_TOKENS);
        return -1;
    }
    int iv = (int)v;
    switch (c) {
    case C_PROMPT: q->prompt_len = iv; break;
    case C_OUTPUT: q->output_len = iv; break;
    case C_N: q->n = iv; break;
    case C_BEAM: q->beam = iv; break;
    case C_PREFIX_ID: q->prefix_id = iv; break;
    case C_PREFIX_LEN: q->prefix_len = iv; break;
    }
    return 0;
}

static int finish_row(wl_request *q, const char *path, long line, char *err, size_t errlen) {
    if (q->prefix_len > q->prompt_len) {
        snprintf(err, errlen, "%s:%ld: prefix_len %d is longer than prompt_len %d", path, line,
                 q->prefix_len, q->prompt_len);
        return -1;
    }
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    if (e - s >= 2 && *s == '"' && e[-1] == '"') { e[-1] = '\0'; s++; }
    return s;
}

/* Splits a CSV line in place on commas; returns the number of fields. */
static int split_csv(char *s, char **f, int max) {
    int k = 0;
    for (;;) {
        char *c = strchr(s, ',');
        if (c) *c = '\0';
        if (k < max) f[k] = trim(s);
        k++;
        if (!c) break;
        s = c + 1;
    }
    return k;
}

/* Growable array of requests: (cap,) */
typedef struct req_vec { wl_request *v; int n, cap; } req_vec;

static wl_request *vec_push(req_vec *a) {
    if (a->n == a->cap) {
        if (a->cap >= WL_MAX_REQUESTS) return NULL;
        int cap = a->cap ? a->cap * 2 : 1024;
        wl_request *v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        a->v = v;
        a->cap = cap;
    }
    wl_request *q = &a->v[a->n++];
    req_defaults(q);
    return q;
}

static int load_csv(FILE *f, const char *path, req_vec *a, char *err, size_t errlen) {
    char *line = NULL, *fields[32];
    size_t cap = 0;
    long lineno = 0;
    int col_of[C_NCOLS], ncols = 0, rc = -1, have_header = 0;
    for (int c = 0; c < C_NCOLS; c++) col_of[c] = -1;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        int k = split_csv(s, fields, 32);
        if (!have_header) {
            ncols = k;
            for (int i = 0; i < k && i < 32; i++)
                for (int c = 0; c < C_NCOLS; c++)
                    if (!strcasecmp(fields[i], col_names[c])) col_of[c] = i;
            for (int c = C_PROMPT; c <= C_OUTPUT; c++)
                if (col_of[c] < 0) {
                    snprintf(err, errlen, "%s:%ld: missing column '%s' in the header (want "
                             "arrival,prompt_len,output_len[,n,beam])", path, lineno, col_names[c]);
                    goto out;
                }
            have_header = 1;
            continue;
        }
        if (k != ncols) {
            snprintf(err, errlen, "%s:%ld: %d fields, the header has %d", path, lineno, k, ncols);
            goto out;
        }
        wl_request *q = vec_push(a);
        if (!q) { snprintf(err, errlen, "%s:%ld: too many requests", path, lineno); goto out; }
        for (int c = 0; c < C_NCOLS; c++)
            if (col_of[c] >= 0 && col_of[c] < 32 &&
                set_field(q, c, fields[col_of[c]], path, lineno, err, errlen) < 0)
                goto out;
        if (finish_row(q, path, lineno, err, errlen) < 0) goto out;
    }
    if (!have_header) {
        snprintf(err, errlen, "%s: empty trace (want a header arrival,prompt_len,output_len)", path);
        goto out;
    }
    rc = 0;
out:
    free(line);
    return rc;
}

static int load_jsonl(FILE *f, const char *path, req_vec *a, char *err, size_t errlen) {
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = -1;
    cJSON *o = NULL;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        o = cJSON_Parse(s);
        if (!cJSON_IsObject(o)) {
            snprintf(err, errlen, "%s:%ld: not a JSON object", path, lineno);
            goto out;
        }
        wl_request *q = vec_push(a);
        if (!q) { snprintf(err, errlen, "%s:%ld: too many requests", path, lineno); goto out; }
        for (int c = 0; c < C_NCOLS; c++) {
            const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, col_names[c]);
            if (!it || cJSON_IsNull(it)) {
                if (c == C_PROMPT || c == C_OUTPUT) {
                    snprintf(err, errlen, "%s:%ld: missing field '%s'", path, lineno, col_names[c]);
                    goto out;
                }
                continue;
            }
            char num[64];
            if (cJSON_IsNumber(it)) snprintf(num, sizeof num, "%.17g", it->valuedouble);
            else if (cJSON_IsString(it)) snprintf(num, sizeof num, "%s", it->valuestring);
            else snprintf(num, sizeof num, "(not a number)");
            if (set_field(q, c, num, path, lineno, err, errlen) < 0) goto out;
        }
        if (finish_row(q, path, lineno, err, errlen) < 0) goto out;
        cJSON_Delete(o);
        o = NULL;
    }
    rc = 0;
out:
    cJSON_Delete(o);
    free(line);
    return rc;
}

/* (arrival, original position): sorting these keeps equal arrivals in file order */
typedef struct arr_key { double t; int i; } arr_key;

static int by_arrival(const void *x, const void *y) {
    const arr_key *a = x, *b = y;
    if (a->t != b->t) return a->t > b->t ? 1 : -1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Orders requests by arrival, stably.  -1 when out of memory. */
static int sort_by_arrival(req_vec *a) {
    int sorted = 1;
    for (int i = 1; i < a->n && sorted; i++) sorted = a->v[i - 1].arrival <= a->v[i].arrival;
    if (sorted) return 0;
    arr_key *k = malloc((size_t)a->n * sizeof *k);          /* (n,) */
    wl_request *v = malloc((size_t)a->n * sizeof *v);       /* (n,) */
    if (!k || !v) { free(k); free(v); return -1; }
    for (int i = 0; i < a->n; i++) k[i] = (arr_key){ a->v[i].arrival, i };
    qsort(k, (size_t)a->n, sizeof *k, by_arrival);
    for (int i = 0; i < a->n; i++) v[i] = a->v[k[i].i];
    free(k);
    free(a->v);
    a->v = v;
    a->cap = a->n;
    return 0;
}

int wl_load_trace(const char *path, wl_request **out, int *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    if (!path || !*path) { snprintf(err, errlen, "no trace file given"); return -1; }
    char where[4200];
    FILE *f = fopen(file_data_path(path, where, sizeof where), "r");
    if (!f) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    req_vec a = { 0 };
    int c;
    while ((c = fgetc(f)) != EOF && isspace(c)) {}
    int jsonl = c == '{';
    rewind(f);
    int rc = jsonl ? load_jsonl(f, path, &a, err, errlen) : load_csv(f, path, &a, err, errlen);
    if (rc == 0 && ferror(f)) { snprintf(err, errlen, "%s: read error", path); rc = -1; }
    fclose(f);
    if (rc == 0 && a.n == 0) { snprintf(err, errlen, "%s: no requests in the trace", path); rc = -1; }
    if (rc < 0) { free(a.v); return -1; }
    if (sort_by_arrival(&a) < 0) {
        snprintf(err, errlen, "%s: out of memory sorting %d requests", path, a.n);
        free(a.v);
        return -1;
    }
    *out = a.v;
    *n = a.n;
    return 0;
}

/* ---- tokens, kinds, stats -------------------------------------------------- */

void wl_prompt_tokens(const wl_request *r, int i, uint64_t seed, int *ids) {
    if (r->ids) { memcpy(ids, r->ids, (size_t)r->prompt_len * sizeof *ids); return; }
    int shared = (r->prefix_id >= 0 && r->prefix_len > 0) ? r->prefix_len : 0;
    if (shared > r->prompt_len) shared = r->prompt_len;
    for (int t = 0; t < r->prompt_len; t++) {
        /* one hash per (stream, position): prefix tokens depend on the prefix id only */
        uint64_t key = t < shared ? (0x7072656669780000ULL ^ (uint64_t)r->prefix_id)
                                  : (0x7265717565737400ULL ^ ((uint64_t)(uint32_t)i << 1));
        uint64_t x = seed ^ (key * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)t << 32);
        ids[t] = 1 + (int)(rng_splitmix64(&x) % 32000);   /* ids in 1..32000 */
    }
}

int wl_kind_parse(const char *s) {
    if (!s || !*s) return -1;
    if (!strcasecmp(s, "sharegpt")) return WL_SHAREGPT;
    if (!strcasecmp(s, "alpaca")) return WL_ALPACA;
    if (!strcasecmp(s, "fixed")) return WL_FIXED;
    char where[4200];
    return access(file_data_path(s, where, sizeof where), R_OK) == 0 ? WL_TRACE : -1;
}

void wl_stats(const wl_request *r, int n, double *mean_prompt, double *mean_output) {
    double p = 0, o = 0;
    for (int i = 0; i < n; i++) p += r[i].prompt_len, o += r[i].output_len;
    *mean_prompt = n > 0 ? p / n : 0;
    *mean_output = n > 0 ? o / n : 0;
}
