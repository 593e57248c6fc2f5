/* lab_prefix_bias: the bias experiment's prompts through the prefix cache
 * (see lab_prefix_bias.h).  The prompts are the study's (bias_prompt_build),
 * rendered in Qwen3's chat template and tokenized as the engine does
 * (text/); each reaches the sim/ core with its real token ids
 * (wl_request.ids), so a cache hit is a real shared prefix.  Reads the
 * tickers, the bias profile, the tokenizer and the model config. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/errbuf.h"
#include "base/rng.h"
#include "labs/bias_data.h"
#include "labs/bias_evidence.h"
#include "labs/bias_output.h"
#include "labs/bias_profile.h"
#include "labs/bias_prompt.h"
#include "labs/lab_kit.h"
#include "labs/lab_prefix_bias.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

#define TICKERS "data/universe/sp500.csv"
#define PROFILE "data/bias_profiles/qwen3-30b-a3b.json"
#define MODEL "data/models/qwen3-30b-a3b-instruct-2507.json"
#define TOKENIZER "data/tokenizers/qwen3/tokenizer.json"
#define KV_GIB 60.0                  /* one H200 at 0.9 utilization, less the 57 GiB of weights */

typedef struct prompts {
    int  *ids[LPB_NORDER];           /* (n * cap,) each prompt's ids, row k at k * cap */
    int  *len[LPB_NORDER];           /* (n,) */
    int   n, cap;
} prompts;

static void prompts_free(prompts *p) {
    for (int o = 0; o < LPB_NORDER; o++) { free(p->ids[o]); free(p->len[o]); }
}

/* The same prompt with the fixed instructions (everything from "Your final
 * response" on) moved right after the first line, before the ticker and the
 * evidence. */
static int instructions_first(const char *p, bias_buf *out) {
    const char *nl = strchr(p, '\n'), *tail = strstr(p, "Your final response");
    if (!nl || !tail || tail < nl) return -1;
    const char *mid_end = tail;                          /* drop the "---\n" that led into the tail */
    if (mid_end - p >= 4 && !strncmp(mid_end - 4, "---\n", 4)) mid_end -= 4;
    out->len = 0;
    bias_buf_add(out, p, (size_t)(nl + 1 - p));
    bias_buf_add(out, tail, strlen(tail));
    bias_buf_add(out, "\n", 1);
    bias_buf_add(out, nl + 1, (size_t)(mid_end - (nl + 1)));
    return out->oom ? -1 : 0;
}

/* ids of text: the tokenizer's, or (without one) one id per 4 bytes, the
 * same bytes giving the same id (the estimate bias_tokens uses). */
static int encode(tok_tokenizer *tok, const char *text, size_t len, tok_ids *ids) {
    if (tok) return tok_encode(tok, text, len, 0, ids);
    size_t n = (len + 3) / 4;
    if (n > ids->cap) {
        int32_t *v = realloc(ids->ids, n * sizeof *v);
        if (!v) return -1;
        ids->ids = v;
        ids->cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t h = 0x9e3779b97f4a7c15ULL;
        for (size_t k = 4 * i; k < 4 * i + 4 && k < len; k++) h = rng_mix64(h ^ (unsigned char)text[k]);
        ids->ids[i] = 1 + (int32_t)(h % 150000);
    }
    ids->n = n;
    return 0;
}

/* Builds, renders and tokenizes every prompt of set 1 in both orders. */
static int build(const bias_universe *u, uint64_t seed, int trials, tok_tokenizer *tok, prompts *P,
                 char *err, size_t n) {
    bias_buf prompt = {0}, var = {0};
    tok_ids ids = {0};
    char *render = NULL;
    size_t rcap = 0;
    int rc = -1;
    P->n = (int)u->n * trials;
    P->cap = 1024;
    for (int o = 0; o < LPB_NORDER; o++) {
        P->ids[o] = malloc((size_t)P->n * (size_t)P->cap * sizeof *P->ids[o]);
        P->len[o] = malloc((size_t)P->n * sizeof *P->len[o]);
        if (!P->ids[o] || !P->len[o]) { snprintf(err, n, "out of memory"); goto out; }
    }
    for (size_t k = 0; k < u->n; k++)
        for (int t = 0; t < trials; t++) {
            int i = (int)k * trials + t;
            bias_prompt_info info;
            prompt.len = 0;
            if (bias_prompt_build(&u->stocks[k], k, 1, t, trials, seed, &prompt, &info) < 0 ||
                instructions_first(prompt.s, &var) < 0) { snprintf(err, n, "out of memory"); goto out; }
            for (int o = 0; o < LPB_NORDER; o++) {
                chat_msg m = { "user", o == LPB_STUDY ? prompt.s : var.s };
                size_t need = chat_render(CHAT_QWEN3, &m, 1, 1, 0, NULL, 0);
                if (need == (size_t)-1) { snprintf(err, n, "the chat template cannot render a prompt"); goto out; }
                if (need + 1 > rcap) {
                    char *r = realloc(render, need + 1);
                    if (!r) { snprintf(err, n, "out of memory"); goto out; }
                    render = r;
                    rcap = need + 1;
                }
                chat_render(CHAT_QWEN3, &m, 1, 1, 0, render, rcap);
                if (encode(tok, render, need, &ids) < 0) { snprintf(err, n, "out of memory"); goto out; }
                if (ids.n > (size_t)P->cap) { errbuf_fail(err, n, "a bias prompt of %zu tokens", ids.n); goto out; }
                for (size_t j = 0; j < ids.n; j++) P->ids[o][(size_t)i * P->cap + j] = ids.ids[j];
                P->len[o][i] = (int)ids.n;
            }
        }
    rc = 0;
out:
    free(render);
    tok_ids_free(&ids);
    bias_buf_free(&prompt);
    bias_buf_free(&var);
    return rc;
}

/* Tokens prompts a and b start with in common. */
static int common(const prompts *P, int o, int a, int b) {
    const int *x = P->ids[o] + (size_t)a * P->cap, *y = P->ids[o] + (size_t)b * P->cap;
    int m = P->len[o][a] < P->len[o][b] ? P->len[o][a] : P->len[o][b], k = 0;
    while (k < m && x[k] == y[k]) k++;
    return k;
}

/* Every prompt sent at once (the study's client keeps 200 in flight; the
 * scheduler runs up to 256), replies of the profile's lengths. */
static int serve(const cm_model *m, const prompts *P, int o, bool caching, const int *out_len, int bs,
                 lab_prefix_bias_run *r, char *err, size_t n) {
    wl_request *q = calloc((size_t)P->n, sizeof *q);
    if (!q) { snprintf(err, n, "out of memory"); return -1; }
    long prompt_tokens = 0;
    for (int i = 0; i < P->n; i++) {
        q[i] = (wl_request){ .prompt_len = P->len[o][i], .output_len = out_len[i], .n = 1, .prefix_id = -1,
                             .ids = P->ids[o] + (size_t)i * P->cap };
        prompt_tokens += P->len[o][i];
    }
    sim_config c = sim_config_default();
    c.model = m;
    c.kv.block_size = bs;
    c.kv.num_blocks = lab_kit_blocks(m, KV_GIB, bs);
    c.kv.max_model_len = 4096;
    c.kv.prefix_caching = caching;
    c.sched.max_num_batched_tokens = 8192;
    sim_result res;
    int rc = sim_run(&c, q, P->n, &res, err, n);
    free(q);
    if (rc < 0) return -1;
    double hits = (double)res.summary.prefix_hit_tokens;
    r->hit_pct = 100 * hits / (double)prompt_tokens;
    r->prefill_per_prompt = ((double)prompt_tokens - hits) / P->n;
    r->blocks_saved = hits / bs / P->n;
    r->seconds = res.summary.sim_time;
    sim_result_free(&res);
    return 0;
}

int lab_prefix_bias_measure(uint64_t seed, int trials, lab_prefix_bias *o, char *err, size_t n) {
    memset(o, 0, sizeof *o);
    bias_universe u;
    bias_profile prof;
    cm_model m;
    if (bias_universe_load_tickers(&u, TICKERS, err, n) < 0) return -1;
    prompts P = {0};
    int *out_len = NULL, rc = -1;
    char terr[512];
    tok_tokenizer *tok = tok_load(TOKENIZER, terr, sizeof terr);
    if (bias_evidence_generate(&u, 1, err, n) < 0 || bias_profile_load(&prof, PROFILE, err, n) < 0 ||
        lab_kit_model(&m, MODEL, "H200", err, n) < 0 || build(&u, seed, trials, tok, &P, err, n) < 0) goto out;
    o->exact = tok != NULL;
    snprintf(o->tokens_source, sizeof o->tokens_source, "%s", tok ? "the Qwen3 tokenizer (" TOKENIZER ")"
             : "an estimate of one token per 4 bytes (no " TOKENIZER ")");
    o->prompts = P.n;
    o->tickers = (int)u.n;
    o->trials = trials;
    o->block_size = 16;
    if (!(out_len = malloc((size_t)P.n * sizeof *out_len))) { snprintf(err, n, "out of memory"); goto out; }
    uint64_t s = seed ^ 0xB1A5ull;
    double sum = 0;
    for (int i = 0; i < P.n; i++) {
        double u1 = ((double)(rng_splitmix64(&s) >> 11) + 0.5) * 0x1.0p-53, u2 = (double)(rng_splitmix64(&s) >> 11) * 0x1.0p-53;
        double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        out_len[i] = (int)fmax(8, lround(prof.output_tokens_mean + prof.output_tokens_sd * z));
        sum += P.len[LPB_STUDY][i];
    }
    o->mean_prompt = sum / P.n;
    for (int k = 0; k < LPB_NORDER; k++) {
        int all = P.len[k][0];
        double tick = 0;
        for (int i = 1; i < P.n; i++) { int c = common(&P, k, 0, i); if (c < all) all = c; }
        for (int t = 0; t < (int)u.n; t++) {          /* a ticker's prompts: the least they share */
            int least = P.len[k][t * trials];
            for (int j = 1; j < trials; j++) { int c = common(&P, k, t * trials, t * trials + j); if (c < least) least = c; }
            tick += least;
        }
        o->shared_all[k] = all;
        o->shared_ticker[k] = tick / (double)u.n;
        for (int c = 0; c < 2; c++)
            if (serve(&m, &P, k, c == 1, out_len, o->block_size, &o->r[k][c], err, n) < 0) goto out;
    }
    rc = 0;
out:
    free(out_len);
    prompts_free(&P);
    tok_free(tok);
    bias_universe_free(&u);
    return rc;
}
