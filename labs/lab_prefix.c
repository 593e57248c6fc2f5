/* lab_prefix: automatic prefix caching.  A full KV block is known by a hash
 * of its tokens chained with its parent's; a new prompt that starts with
 * blocks already in the pool (held, or freed but still cached) takes them
 * instead of computing them again.  Two workloads, both on the sim/ core:
 *   - the vLLM paper's section 6.4: translation prompts that share a one-shot
 *     (80 tokens) or five-shot (341 tokens) prefix of examples, LLaMA-13B on
 *     an A100-40GB with 12 GiB of KV cache: the highest sustainable request
 *     rate of Orca (Oracle), paged blocks, and paged blocks with the prefix
 *     cached (its 1.67x and 3.58x);
 *   - the bias experiment's own prompts (labs/lab_prefix_bias.c).
 * The pool picture comes from viz/scenario + viz/render.  Reads the model
 * configs, data/gpus.json and (through lab_prefix_bias) the bias lab's data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/rng.h"
#include "labs/lab_content.h"
#include "labs/lab_kit.h"
#include "labs/lab_prefix.h"
#include "labs/lab_prefix_bias.h"
#include "labs/lab_real_sheet.h"
#include "viz/barchart.h"
#include "viz/render.h"
#include "viz/scenario.h"
#include "viz/xychart.h"

enum { NP = 2, NPOL = 3, TRIALS = 10 };
enum { ORACLE, PAGED, CACHED };
static const int PREFIX[NP] = { 80, 341 };          /* the paper's one-shot and five-shot prefixes */
static const char *SHOT[NP] = { "one-shot", "five-shot" };
static const char *POL_NAME[NPOL] = { "Orca (Oracle)", "paged", "paged + prefix cache" };
static const double PAPER_GAIN[NP] = { 1.67, 3.58 };
static const double KV_GIB[3] = { 12, 10, 14 };
#define INPUT_MEAN 30.0              /* a WMT16 English sentence in LLaMA tokens (our estimate) */
#define OUTPUT_MEAN 35.0             /* its German translation */
#define WINDOW_S 150.0               /* each run: Poisson arrivals over this long (>= 200 requests) */
#define MAX_LATENCY 1.0              /* sustainable: mean normalized latency under 1 s/token */

typedef struct px_setting {          /* one (prefix, policy) */
    lab_kit_sweep sweep;
    double hit_pct, computed;        /* at the probe rate: prompt tokens from the cache (%), computed per request */
} px_setting;

typedef struct prefix_lab {
    double kv_gib;
    uint64_t seed;
    double probe_rate[NP];           /* 80% of Orca (Oracle)'s sustainable rate */
    px_setting s[NP][NPOL];
    lab_prefix_bias bias;
    viz_scene pool;
    bool   has_pool;
    /* figure data */
    viz_xy_series lat[NP][NPOL];
    viz_xy_mark bar;
    double rates[NP * NPOL], hits[2 * 2];
    const char *cats[NP];
    char   titles[NP][96];
    /* --real: the translation prompts with the prefix cache off and on, on the engine and simulated */
    bool   has_real;
    int    real_requests, real_blocks;
    lab_real_meas gpu[NP][2], sim[NP][2];
    lab_real_view view;
} prefix_lab;

static void prefix_free(void *p) {
    prefix_lab *P = p;
    if (P && P->has_pool) viz_scene_free(&P->pool);
    free(P);
}

/* ---- the translation workload ------------------------------------------------------ */

static double lognormal(uint64_t *s, double mean, double cv) {
    double u1 = ((double)(rng_splitmix64(s) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = (double)(rng_splitmix64(s) >> 11) * 0x1.0p-53;
    double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2), s2 = log(1 + cv * cv);
    return mean * exp(sqrt(s2) * z - s2 / 2);
}

typedef struct mk_ctx { int prefix; uint64_t seed; } mk_ctx;

/* Poisson arrivals at rate over WINDOW_S: prompt = the shared prefix + a
 * sentence (lognormal, mean 30 tokens), output = its translation (mean 35). */
static int make(void *ctx, double rate, wl_request **out, int *n, char *err, size_t errlen) {
    const mk_ctx *c = ctx;
    int N = (int)ceil(rate * WINDOW_S);
    if (N < 200) N = 200;
    wl_request *r = calloc((size_t)N, sizeof *r);
    if (!r) { snprintf(err, errlen, "out of memory"); return -1; }
    uint64_t s = c->seed * 0x9E3779B97F4A7C15ull + 0x7072ull;
    double t = 0;
    for (int i = 0; i < N; i++) {
        t += -log(1 - (double)(rng_splitmix64(&s) >> 11) * 0x1.0p-53) / rate;
        int in = (int)lround(lognormal(&s, INPUT_MEAN, 0.5)), o = (int)lround(lognormal(&s, OUTPUT_MEAN, 0.5));
        r[i] = (wl_request){ .arrival = t, .prompt_len = c->prefix + (in < 3 ? 3 : in), .output_len = o < 2 ? 2 : o,
                             .n = 1, .prefix_id = 0, .prefix_len = c->prefix };
    }
    *out = r;
    *n = N;
    return 0;
}

static sim_config config(const cm_model *m, int num_blocks, int pol, uint64_t seed) {
    sim_config c = sim_config_default();
    c.model = m;
    c.kv.num_blocks = num_blocks;
    c.kv.policy = pol == ORACLE ? KV_ORCA_ORACLE : KV_PAGED;
    c.kv.prefix_caching = pol == CACHED;
    c.seed = c.sched.seed = seed;
    return c;
}

static int translation(prefix_lab *P, char *err, size_t n) {
    cm_model m;
    if (lab_kit_model(&m, "data/models/llama-13b.json", "A100-40GB", err, n) < 0) return -1;
    int nb = lab_kit_blocks(&m, P->kv_gib, 16);
    for (int k = 0; k < NP; k++) {
        mk_ctx c = { PREFIX[k], P->seed };
        for (int p = 0; p < NPOL; p++) {
            sim_config cfg = config(&m, nb, p, P->seed);
            double start = p == ORACLE ? 4 : P->s[k][ORACLE].sweep.sustainable;   /* bracket from Oracle's */
            if (lab_kit_sustainable(&cfg, make, &c, start, MAX_LATENCY, &P->s[k][p].sweep, err, n) < 0) return -1;
        }
        /* hits and requests at once where all three keep up */
        P->probe_rate[k] = 0.8 * P->s[k][ORACLE].sweep.sustainable;
        wl_request *r = NULL;
        int nr = 0;
        if (make(&c, P->probe_rate[k], &r, &nr, err, n) < 0) return -1;
        for (int p = 0; p < NPOL; p++) {
            sim_config cfg = config(&m, nb, p, P->seed);
            sim_result res;
            if (sim_run(&cfg, r, nr, &res, err, n) < 0) { free(r); return -1; }
            P->s[k][p].hit_pct = 100.0 * (double)res.summary.prefix_hit_tokens / (double)res.summary.prompt_tokens;
            P->s[k][p].computed = (double)(res.summary.prompt_tokens - res.summary.prefix_hit_tokens) / nr;
            sim_result_free(&res);
        }
        free(r);
    }
    return 0;
}

static int run(lab *L, char *err, size_t n) {
    prefix_lab *P = calloc(1, sizeof *P);
    if (!P) { snprintf(err, n, "out of memory"); return -1; }
    lab_set_result(L, P);
    P->seed = lab_seed(L);
    P->kv_gib = KV_GIB[lab_pick(L, 1, 3)];
    if (translation(P, err, n) < 0 || lab_prefix_bias_measure(P->seed, TRIALS, &P->bias, err, n) < 0) return -1;
    lab_table *t = lab_table_add(L, "translation", lab_fmt(L, "Table 1. Translation prompts with a shared prefix "
        "(LLaMA-13B, %.0f GiB of KV cache): the highest sustainable rate, and at 80%% of Orca (Oracle)'s rate "
        "the share of prompt tokens served by the cache and the prompt tokens computed per request", P->kv_gib),
        "setting,prefix_tokens,sustainable_req_per_s,vs_oracle,cache_hit_pct,computed_per_request", true);
    lab_table *b = lab_table_add(L, "bias_prompts", lab_fmt(L, "Table 2. The bias experiment's prompts, one set "
        "(%d prompts, %d-token blocks): tokens all prompts and a ticker's prompts start with, the share served by "
        "the cache, tokens computed and blocks saved per prompt, simulated seconds with and without the cache",
        P->bias.prompts, P->bias.block_size), "prompt_order,shared_all,shared_ticker,cache_hit_pct,computed,"
        "blocks_saved,seconds_cached,seconds_uncached", true);
    if (!t || !b) { snprintf(err, n, "out of memory"); return -1; }
    static const char *KEY[NPOL] = { "orca-oracle", "paged", "paged+cache" };
    for (int k = 0; k < NP; k++)
        for (int p = 0; p < NPOL; p++) {
            const px_setting *s = &P->s[k][p];
            double v[5] = { PREFIX[k], s->sweep.sustainable, s->sweep.sustainable / P->s[k][ORACLE].sweep.sustainable,
                            s->hit_pct, s->computed };
            if (lab_table_row(t, lab_fmt(L, "%s %s", SHOT[k], KEY[p]), v) < 0) { snprintf(err, n, "out of memory"); return -1; }
        }
    static const char *ORDER[LPB_NORDER] = { "the study's", "instructions first" };
    for (int o = 0; o < LPB_NORDER; o++) {
        const lab_prefix_bias_run *on = &P->bias.r[o][1], *off = &P->bias.r[o][0];
        double v[7] = { P->bias.shared_all[o], P->bias.shared_ticker[o], on->hit_pct, on->prefill_per_prompt,
                        on->blocks_saved, on->seconds, off->seconds };
        if (lab_table_row(b, ORDER[o], v) < 0) { snprintf(err, n, "out of memory"); return -1; }
    }
    return 0;
}

/* ---- --real: the prefix cache on the CUDA engine ------------------------------------ */

enum { REAL_REQUESTS = 400 };

/* REAL_REQUESTS translation requests of each prefix, all waiting at once, in
 * the lab's pool (LLaMA-13B's token slots), without and with the prefix
 * cache. */
static int real(lab *L, char *err, size_t n) {
    prefix_lab *P = lab_result(L);
    cm_model m;
    if (lab_kit_model(&m, "data/models/llama-13b.json", "A100-40GB", err, n) < 0) return -1;
    P->real_blocks = lab_kit_blocks(&m, P->kv_gib, 16);
    for (int k = 0; k < NP; k++) {
        mk_ctx c = { PREFIX[k], P->seed };
        wl_request *r = NULL;
        int nr = 0;
        if (make(&c, REAL_REQUESTS / WINDOW_S, &r, &nr, err, n) < 0) return -1;
        for (int i = 0; i < nr; i++) r[i].arrival = 0;
        for (int on = 0; on < 2; on++) {
            lab_real_setup s = { .policy = KV_PAGED, .block_size = 16, .num_blocks = P->real_blocks,
                                 .prefix_caching = on, .max_model_len = 2048, .seed = P->seed };
            if (lab_real_measure(L, &s, r, nr, &P->gpu[k][on], &P->sim[k][on], err, n) < 0) { free(r); return -1; }
        }
        free(r);
        P->real_requests = nr;
    }
    P->has_real = true;
    lab_real_view *v = &P->view;
    lab_real_view_init(v);
    v->ncat = 2 * NP;
    v->npanel = 3;
    v->panel[0] = "Prompt tokens served by the cache"; v->unit[0] = "%"; v->col[0] = "hit_pct"; v->fmt[0] = "%.1f";
    v->ymax[0] = 100;
    v->panel[1] = "Requests at once while others wait"; v->unit[1] = "requests"; v->col[1] = "at_once"; v->fmt[1] = "%.0f";
    v->panel[2] = "Output tokens per second"; v->unit[2] = "tokens / s"; v->col[2] = "tok_s"; v->fmt[2] = "%.0f";
    static const char *cat[2 * NP] = { "one-shot\ncache off", "one-shot\ncache on", "five-shot\ncache off",
                                       "five-shot\ncache on" };
    static const char *key[2 * NP] = { "one-shot off", "one-shot on", "five-shot off", "five-shot on" };
    for (int k = 0; k < NP; k++)
        for (int on = 0; on < 2; on++) {
            int c = 2 * k + on;
            v->cat[c] = cat[c];
            v->key[c] = key[c];
            v->sim[0][c] = P->sim[k][on].hit_pct; v->gpu[0][c] = P->gpu[k][on].hit_pct;
            v->sim[1][c] = P->sim[k][on].at_once; v->gpu[1][c] = P->gpu[k][on].at_once;
            v->sim[2][c] = P->sim[k][on].out_tok_s; v->gpu[2][c] = P->gpu[k][on].out_tok_s;
            v->ref[0][c] = P->s[k][on ? CACHED : PAGED].hit_pct;
        }
    v->ref_label = "Table 1's simulation (Poisson arrivals)";
    if (lab_real_view_table(L, v, "gpu", lab_fmt(L, "Table 3. The prefix cache measured on the GPU against simulated "
        "(%s): %d translation requests of each prefix waiting at once, %d blocks of 16 tokens",
        lab_real_where(L, &P->gpu[0][0]), P->real_requests, P->real_blocks), err, n) < 0)
        return -1;
    return lab_real_runs_table(L, "gpu_runs", 2 * NP, key, &P->gpu[0][0], &P->sim[0][0], err, n);
}

/* ---- figures ------------------------------------------------------------------ */

/* The classroom pool: of the steps with a prefix-cache hit, the first with
 * the most shared blocks (the hit's blocks held by two requests at once). */
static int pool_picture(prefix_lab *P, uint64_t seed, char *err, size_t n) {
    viz_scenario_config c = viz_scenario_defaults(16, 4, seed);
    viz_scenario *v = viz_scenario_create(&c, err, n);
    if (!v) return -1;
    int rc, best = -1;
    while ((rc = viz_scenario_step(v, err, n)) == 1) {
        const viz_scene *s = viz_scenario_scene(v);
        int shared = 0;
        for (int b = 0; b < s->pool.num_blocks; b++) shared += s->pool.blocks[b].ref > 1;
        if (!strstr(s->event, "prefix-cache hit") || shared <= best) continue;
        if (P->has_pool) viz_scene_free(&P->pool);
        P->has_pool = viz_scene_copy(&P->pool, s) == 0;
        if (!P->has_pool) { rc = -1; snprintf(err, n, "out of memory"); break; }
        best = shared;
    }
    viz_scenario_destroy(v);
    if (rc >= 0 && !P->has_pool) { snprintf(err, n, "the classroom pool showed no prefix-cache hit"); return -1; }
    return rc < 0 ? -1 : 0;
}

static void paint(cairo_t *cr) { cairo_set_source_rgb(cr, 1, 1, 1); cairo_paint(cr); }

static void draw_pool(cairo_t *cr, const void *ctx, double w, double h) {
    viz_render(cr, &((const prefix_lab *)ctx)->pool, w, h);
}

static void draw_latency(cairo_t *cr, const void *ctx, double w, double h) {
    const prefix_lab *P = ctx;
    paint(cr);
    for (int k = 0; k < NP; k++) {
        viz_xy_chart c = { .title = P->titles[k], .x_label = "requests / s", .y_label = "s per output token",
                           .series = P->lat[k], .nseries = NPOL, .marks = &P->bar, .nmarks = 1, .y_min = 0,
                           .y_max = 2, .y_format = "%g" };
        viz_xy_draw(cr, &c, 8 + k * w / 2, 8, w / 2 - 16, h - 16);
    }
}

static void draw_bias(cairo_t *cr, const void *ctx, double w, double h) {
    const prefix_lab *P = ctx;
    paint(cr);
    static const char *cats[2] = { "the study's order\n(evidence, then instructions)", "instructions first\n(then the evidence)" };
    static const char *series[2] = { "served by the prefix cache", "computed" };
    viz_bar_chart c = { .title = "The bias prompts: tokens per prompt", .y_label = "tokens", .categories = cats,
                        .ncats = 2, .series = series, .nseries = 2, .values = P->hits, .stacked = true,
                        .value_format = "%.0f" };
    viz_bar_draw(cr, &c, 8, 8, w - 16, h - 16);
}

static int figures(lab *L, char *err, size_t n) {
    prefix_lab *P = lab_result(L);
    if (pool_picture(P, P->seed, err, n) < 0) return -1;
    for (int k = 0; k < NP; k++) {
        snprintf(P->titles[k], sizeof P->titles[k], "%s prefix (%d tokens)", SHOT[k], PREFIX[k]);
        for (int p = 0; p < NPOL; p++) {
            const lab_kit_sweep *s = &P->s[k][p].sweep;
            P->lat[k][p] = (viz_xy_series){ POL_NAME[p], s->rate, s->latency, s->n, false, false };
        }
    }
    /* the runs past the knee go off the top of the plot (unbounded latency) */
    P->bar = (viz_xy_mark){ MAX_LATENCY, false, "sustainable: under 1 s per token", true };
    for (int o = 0; o < LPB_NORDER; o++) {
        const lab_prefix_bias_run *on = &P->bias.r[o][1];
        P->hits[2 * o] = P->bias.mean_prompt - on->prefill_per_prompt;
        P->hits[2 * o + 1] = on->prefill_per_prompt;
    }
    int rc = 0;
    rc |= lab_figure(L, &(lab_figure_spec){ "pool", "Figure 1. The classroom pool (16 blocks of 4 slots): a "
        "request whose prompt starts with a system prompt already in the pool", "the blocks with a count (x2): "
        "the new request's block table points at the first request's prompt blocks instead of new ones (the "
        "event line says how many tokens it reused).  Step through it with pagesim: later, freed blocks stay "
        "hatched as cached, and a request that arrives after the first has finished still hits them.",
        960, 600, draw_pool, P });
    rc |= lab_figure(L, &(lab_figure_spec){ "latency", lab_fmt(L, "Figure 2. Translation with a shared prefix "
        "of examples: latency as the request rate grows (LLaMA-13B, A100-40GB, %.0f GiB of KV cache; the vLLM "
        "paper's Figure 16)", P->kv_gib), "where each curve leaves the floor and crosses the dashed line: "
        "that rate is the policy's sustainable rate (Table 1).", 900, 400, draw_latency, P });
    rc |= lab_figure(L, &(lab_figure_spec){ "bias", lab_fmt(L, "Figure 3. The bias experiment's %d prompts "
        "through the prefix cache (Qwen3-30B-A3B on one H200; %s)", P->bias.prompts, P->bias.tokens_source),
        "the bottom segment: prompt tokens whose KV came from the cache; the top: tokens computed.  What moves "
        "when the fixed instructions come before the evidence?", 900, 400, draw_bias, P });
    if (rc) { snprintf(err, n, "out of memory"); return -1; }
    if (P->has_real)
        return lab_real_view_figure(L, &P->view, "gpu", lab_fmt(L, "Figure 4. On the GPU: %d translation requests "
            "of each prefix waiting at once, the prefix cache off and on (%s)", P->real_requests,
            lab_real_where(L, &P->gpu[0][0])), "each pair of bars: simulated (left) and measured (right); the ticks: "
            "Table 1's cache hits.  How much does the cache raise the requests at once and the tokens per second?",
            err, n);
    return 0;
}

/* ---- questions ---------------------------------------------------------------- */

static int questions(lab *L, char *err, size_t n) {
    const prefix_lab *P = lab_result(L);
    const lab_prefix_bias *B = &P->bias;
    double g1 = P->s[0][CACHED].sweep.sustainable / P->s[0][ORACLE].sweep.sustainable;
    double g5 = P->s[1][CACHED].sweep.sustainable / P->s[1][ORACLE].sweep.sustainable;
    double paged5 = P->s[1][PAGED].sweep.sustainable / P->s[1][ORACLE].sweep.sustainable;
    int rc = 0;
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .predict = lab_fmt(L, "a five-shot prompt is %d tokens of examples followed by a sentence of about %.0f "
                           "tokens; the cache serves whole 16-token blocks only.  Predict the share of the prompt "
                           "tokens served by the cache.", PREFIX[1], INPUT_MEAN),
        .text = "Read the share the cache served, five-shot, paged + prefix cache.",
        .where = "Table 1, five-shot paged+cache, cache_hit_pct", .unit = "%",
        .answer = P->s[1][CACHED].hit_pct, .tol = 0.5 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "One-shot: how many times Orca (Oracle)'s sustainable rate does paged + prefix cache sustain?  "
                "(The paper: 1.67.)", .where = "Table 1, one-shot paged+cache, vs_oracle (or Figure 2, left)",
        .unit = "times", .answer = g1, .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "Five-shot?  (The paper: 3.58.)", .where = "Table 1, five-shot paged+cache, vs_oracle",
        .unit = "times", .answer = g5, .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "And paged blocks without the prefix cache, five-shot?",
        .where = "Table 1, five-shot paged, vs_oracle", .unit = "times", .answer = paged5, .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .predict = "every bias prompt starts with the same instruction line, then its ticker, then its evidence, "
                   "then the same answer instructions.  Predict the share of prompt tokens the cache serves.",
        .text = "Read the share served with the study's prompt order.",
        .where = "Figure 3, the left bar (Table 2, the study's, cache_hit_pct)", .unit = "%",
        .answer = B->r[LPB_STUDY][1].hit_pct, .tol = 0.5 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many tokens does each bias prompt compute when the instructions come first?",
        .where = "Table 2, instructions first, computed (Figure 3, the top of the right bar)",
        .unit = "tokens", .answer = B->r[LPB_FIRST][1].prefill_per_prompt, .tol = 1.0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .text = "Why does the cache pay off so much more with five examples than with one, and why do the bias "
                "prompts gain little in the study's order?  What does paging alone (without the cache) buy here?",
        .key = "With the prefix cached, a request computes and stores only its own sentence: its KV is a few "
               "blocks instead of the prefix's 6 or 22 more, so far more requests fit at once and each prefill "
               "is short.  Orca (Oracle) and paged blocks without the cache compute and hold the whole prefix for "
               "every request; paging alone only removes reservation waste, which is small here because Oracle "
               "knows each length.  The five-shot prefix is most of each prompt, so the gain grows with it.  The "
               "cache serves only whole blocks of an identical prefix: the bias prompts share one instruction "
               "line and then, per ticker, the ticker's lines; the evidence differs per trial and everything "
               "after it, the long answer instructions included, can never hit.  Putting the fixed instructions "
               "first makes them a shared prefix (up to the option order, which the study alternates)." });
    if (P->has_real) {
        const lab_real_meas *g = P->gpu[1], *sm = P->sim[1];
        rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
            .text = lab_fmt(L, "On the GPU, five-shot, the prefix cache served %.1f%% of the prompt tokens (simulated: "
                "%.1f%%) and raised the output tokens per second %.2f times (simulated: %.2f times).  Why do the hit "
                "rates agree exactly, and what in a real step does the simulator's time leave out or misjudge here?",
                g[1].hit_pct, sm[1].hit_pct, g[1].out_tok_s / g[0].out_tok_s, sm[1].out_tok_s / sm[0].out_tok_s),
            .key = "The cache is the block manager's (sim/): the same prompts (the same token ids) hit the same full "
                   "blocks in both, so the hits are counted by the same code.  The time differs: the simulator "
                   "prices a step from operator timings measured on fresh prefills and decodes, while a step with "
                   "cached blocks runs attention over a context it did not compute (a prefill chunk that starts "
                   "after the cached blocks), copies block tables and sampling work the profile averages; the "
                   "engine also pays host work per request.  With the cache more requests fit at once, and a "
                   "decode step of a larger batch costs little more, so throughput rises with the batch." });
    }
    if (rc) snprintf(err, n, "a question could not be added");
    return rc ? -1 : 0;
}

/* ---- narrative and headlines ------------------------------------------------------ */

static int narrative(lab *L, char *err, size_t n) {
    const prefix_lab *P = lab_result(L);
    const lab_prefix_bias *B = &P->bias;
    int rc = 0;
    rc |= lab_say(L, "Translation prompts (LLaMA-13B on an A100-40GB, %.0f GiB of KV cache): a shared prefix of "
                  "examples, %d tokens one-shot or %d five-shot, then a sentence of about %.0f tokens; the "
                  "translation is about %.0f tokens.  Orca (Oracle) reserves each request's exact length and "
                  "computes its whole prompt; paged blocks take memory as it fills; with the prefix cache, the "
                  "prefix's blocks are computed once and shared.", P->kv_gib, PREFIX[0], PREFIX[1], INPUT_MEAN,
                  OUTPUT_MEAN);
    for (int k = 0; k < NP; k++)
        rc |= lab_say(L, "%s: sustainable %.1f requests/s (Orca Oracle), %.1f (paged), %.1f (paged + prefix cache, "
                      "%.2fx Oracle; the paper: %.2fx); the cache serves %.1f%% of the prompt tokens.",
                      k ? "Five-shot" : "One-shot", P->s[k][ORACLE].sweep.sustainable, P->s[k][PAGED].sweep.sustainable,
                      P->s[k][CACHED].sweep.sustainable,
                      P->s[k][CACHED].sweep.sustainable / P->s[k][ORACLE].sweep.sustainable, PAPER_GAIN[k],
                      P->s[k][CACHED].hit_pct);
    rc |= lab_say(L, "The bias experiment's %d prompts of one set (%d tickers x %d trials, %.0f tokens each in "
                  "Qwen3's chat template, counted by %s): every prompt shares its first %d tokens, a ticker's "
                  "prompts %.0f.  The prefix cache serves %.1f%% of the prompt tokens; with the fixed instructions "
                  "moved before the evidence, %.1f%% (%.0f tokens computed per prompt instead of %.0f).",
                  B->prompts, B->tickers, B->trials, B->mean_prompt, B->tokens_source, B->shared_all[LPB_STUDY],
                  B->shared_ticker[LPB_STUDY], B->r[LPB_STUDY][1].hit_pct, B->r[LPB_FIRST][1].hit_pct,
                  B->r[LPB_FIRST][1].prefill_per_prompt, B->r[LPB_STUDY][1].prefill_per_prompt);
    rc |= lab_todo(L, "pagesim --blocks 16", "the classroom pool (space: next step): early on a request's system "
                   "prompt hits the first request's blocks; near the end, one hits blocks freed but still cached");
    rc |= lab_todo(L, "labs/bias --dump-prompts out/prefix/prompts.jsonl --num-sets 1",
                   "the bias prompts as the engine sees them (text and token ids): compare two trials of a ticker");
    if (lab_seed(L) == LAB_PAPER_SEED) {
        const char *gap = lab_fmt(L, "here Orca (Oracle) is limited by the prefix's prefill work, done for every "
                          "request (paged blocks alone gain %.0f%% and %.0f%%), and the cache removes it; the paper "
                          "does not say what limited its baseline, and a slower step does not explain the gap (20 ms "
                          "more per step makes ours 2.5x and 5.9x)",
                          100 * (P->s[0][PAGED].sweep.sustainable / P->s[0][ORACLE].sweep.sustainable - 1),
                          100 * (P->s[1][PAGED].sweep.sustainable / P->s[1][ORACLE].sweep.sustainable - 1));
        for (int k = 0; k < NP; k++)
            rc |= lab_headline_add(L, &(lab_headline){ .what = lab_fmt(L, "%s: paged + cache / Orca (Oracle)", SHOT[k]),
                .measured = P->s[k][CACHED].sweep.sustainable / P->s[k][ORACLE].sweep.sustainable,
                .paper_lo = PAPER_GAIN[k], .paper_hi = PAPER_GAIN[k], .tol = k ? 2.2 : 0.8, .unit = "x",
                .source = "vLLM paper, sec. 6.4 (LLaMA-13B, WMT16 En-De)", .gap = gap });
    }
    if (P->has_real)
        for (int k = 0; k < NP; k++) {
            const lab_real_meas *g = P->gpu[k], *sm = P->sim[k];
            rc |= lab_say(L, "On the GPU (%s), %s: %d requests at once in %d blocks; the cache served %.1f%% of the "
                          "prompt tokens (simulated %.1f%%), ran %.0f requests at once instead of %.0f (simulated %.0f "
                          "and %.0f) and %.0f output tokens/s instead of %.0f: %.2fx (simulated %.2fx).",
                          lab_real_where(L, &g[0]), SHOT[k], P->real_requests, P->real_blocks, g[1].hit_pct,
                          sm[1].hit_pct, g[1].at_once, g[0].at_once, sm[1].at_once, sm[0].at_once, g[1].out_tok_s,
                          g[0].out_tok_s, g[1].out_tok_s / g[0].out_tok_s, sm[1].out_tok_s / sm[0].out_tok_s);
        }
    if (rc) snprintf(err, n, "out of memory");
    return rc ? -1 : 0;
}

const lab_def lab_prefix = {
    .name = "prefix",
    .title = "Prefix caching: prompts that start the same",
    .summary = "Many prompts start with the same text: a system prompt, the examples of a few-shot prompt, an "
               "experiment's template.  With automatic prefix caching a full KV block is known by a hash of its "
               "tokens (chained with the blocks before it), and a new prompt that starts with blocks already in "
               "the pool takes them instead of computing them.  You measure what that buys on the vLLM paper's "
               "one-shot and five-shot translation prompts, and on the bias experiment's own prompts.",
    .concepts = "automatic prefix caching, block hashes, shared prefix, prefill work, few-shot prompts, "
                "prompt design for caching",
    .minutes = 30,
    .seed_note = "the KV cache size (10-14 GiB), the translation requests, and the bias prompts' evidence order",
    .real_note = "400 one-shot and 400 five-shot translation requests at once on the CUDA engine with the prefix "
                 "cache off and on (--enable-prefix-caching): hits, requests at once, tokens per second, measured "
                 "beside simulated (Table 3, Figure 4)",
    .run = run, .figures = figures, .questions = questions, .narrative = narrative, .real = real,
    .free_result = prefix_free,
};
