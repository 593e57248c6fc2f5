/* lab_planning: the memory planner on a 12 GB card, the seed study's story.
 * Qwen2.5-14B-Instruct-AWQ with vLLM's defaults leaves nothing for the KV
 * cache ("# GPU blocks: 0"); Qwen2.5-7B-Instruct-AWQ fits; then the two knobs,
 * max-model-len and gpu-memory-utilization, and what they buy in concurrent
 * requests.  Every number comes from sim/planner.c (what `pagesim plan`
 * prints), so a student can rerun any of them.  Reads the model configs in data/models and
 * data/gpus.json; draws with viz/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "labs/lab_content.h"
#include "labs/lab_planning.h"
#include "sim/planner.h"
#include "viz/barchart.h"
#include "viz/xychart.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define M14 "data/models/qwen2.5-14b-instruct-awq.json"
#define M7  "data/models/qwen2.5-7b-instruct-awq.json"
#define PROBE_LEN 16384              /* the prediction question's max-model-len */

/* Variants: the card, the max-model-len triple, the utilization pair. */
static const struct { const char *name, *gpu_arg; } CARDS[5] = {
    { "RTX 4070 (12 GB)", "RTX-4070" }, { "RTX 3060 (12 GB)", "12288MiB" },
    { "RTX 2080 Ti (11 GB)", "11264MiB" }, { "RTX 3080 (10 GB)", "10240MiB" },
    { "RTX 4060 Ti (16 GB)", "16380MiB" },
};
static const int LENS[3][3] = { {4096, 6144, 8192}, {2048, 4096, 8192}, {3072, 6144, 12288} };
static const double UTILS[3][2] = { {0.90, 0.92}, {0.85, 0.90}, {0.90, 0.95} };

typedef struct planning {
    const char *card, *gpu_arg;
    int    lens[3];
    double utils[2];
    plan_result def14, def7;         /* vLLM's defaults: the model's positions, util 0.90 */
    plan_result p[2][3][2];          /* [0 = 14B, 1 = 7B][max-model-len][util] */
    plan_result probe;               /* 7B at PROBE_LEN, utils[1] */
    /* figure data */
    const char *bar_cats[5];
    double bar_vals[5 * 4];          /* (5 configs, 4 parts) GiB */
    double bar_budget[5];
    double xs[3], conc[4][3];        /* concurrency lines: 7B lo/hi, 14B lo/hi */
    viz_xy_series series[4];
    viz_xy_mark one;
} planning;

static int plan_at(const mc_config *c, const cm_gpu *g, int len, double util, plan_result *r,
                   char *err, size_t n) {
    plan_opts o;
    plan_opts_default(&o);
    o.max_model_len = len;
    o.util = util;
    return plan_compute(c, g, &o, r, err, n);
}

static int run(lab *L, char *err, size_t n) {
    planning *P = calloc(1, sizeof *P);
    if (!P) { snprintf(err, n, "out of memory"); return -1; }
    lab_set_result(L, P);
    int card = lab_pick(L, 1, 5), lens = lab_pick(L, 2, 3), utils = lab_pick(L, 3, 3);
    P->card = CARDS[card].name;
    P->gpu_arg = CARDS[card].gpu_arg;
    memcpy(P->lens, LENS[lens], sizeof P->lens);
    memcpy(P->utils, UTILS[utils], sizeof P->utils);
    mc_config mc[2];
    cm_gpu g;
    if (mc_load(&mc[0], M14, err, n) < 0 || mc_load(&mc[1], M7, err, n) < 0 ||
        cm_gpu_find(&g, P->gpu_arg, err, n) < 0) return -1;
    if (plan_at(&mc[0], &g, 0, 0.90, &P->def14, err, n) < 0 ||
        plan_at(&mc[1], &g, 0, 0.90, &P->def7, err, n) < 0 ||
        plan_at(&mc[1], &g, PROBE_LEN, P->utils[1], &P->probe, err, n) < 0) return -1;
    for (int m = 0; m < 2; m++)
        for (int l = 0; l < 3; l++)
            for (int u = 0; u < 2; u++)
                if (plan_at(&mc[m], &g, P->lens[l], P->utils[u], &P->p[m][l][u], err, n) < 0) return -1;
    lab_table *t = lab_table_add(L, "plans", "Table 1. The planner's numbers for each configuration",
        "config,max_model_len,util,weights_gib,activation_gib,kv_cache_gib,gpu_blocks,kv_tokens,"
        "max_concurrency", true);
    if (!t) { snprintf(err, n, "out of memory"); return -1; }
    const plan_result *rows[14];
    int nr = 0;
    rows[nr++] = &P->def14;
    rows[nr++] = &P->def7;
    for (int m = 0; m < 2; m++)
        for (int l = 0; l < 3; l++)
            for (int u = 0; u < 2; u++) rows[nr++] = &P->p[m][l][u];
    for (int i = 0; i < nr; i++) {
        const plan_result *r = rows[i];
        double v[8] = { r->max_model_len, r->util, r->weight_bytes / GIB, r->activation_bytes / GIB,
                        (r->kv_bytes > 0 ? r->kv_bytes : 0) / GIB, r->num_blocks, r->kv_tokens,
                        round(r->max_concurrency * 100) / 100 };
        const char *key = strstr(r->model, "14B") ? "14B-AWQ" : "7B-AWQ";
        if (lab_table_row(t, i < 2 ? lab_fmt(L, "%s defaults", key) : key, v) < 0) {
            snprintf(err, n, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* ---- figures ------------------------------------------------------------------ */

static void draw_memory(cairo_t *cr, const void *ctx, double w, double h) {
    const planning *P = ctx;
    static const char *parts[4] = { "weights", "activation peak", "non-torch", "KV cache" };
    char title[160];
    snprintf(title, sizeof title, "Where the %s goes (GiB; tick = budget, memory x utilization)", P->card);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    viz_bar_chart c = { .title = title, .y_label = "GiB", .categories = P->bar_cats, .ncats = 5,
                        .series = parts, .nseries = 4, .values = P->bar_vals, .stacked = true,
                        .refs = P->bar_budget, .ref_label = "budget", .value_format = "%.2f" };
    viz_bar_draw(cr, &c, 12, 10, w - 24, h - 20);
}

/* Two panels, the 7B and the 14B, each on its own scale. */
static void draw_concurrency(cairo_t *cr, const void *ctx, double w, double h) {
    const planning *P = ctx;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    for (int m = 0; m < 2; m++) {
        viz_xy_chart c = { .title = m == 0 ? "Qwen2.5-7B-AWQ" : "Qwen2.5-14B-AWQ",
                           .x_label = "max-model-len (tokens)",
                           .y_label = m == 0 ? "requests at once (concurrency, x)" : NULL,
                           .series = &P->series[2 * m], .nseries = 2, .marks = &P->one, .nmarks = 1,
                           .y_format = "%g", .value_format = "%.2f" };
        viz_xy_draw(cr, &c, 12 + m * w / 2, 10, w / 2 - 24, h - 20);
    }
}

static void bar_config(planning *P, int k, const char *cat, const plan_result *r) {
    P->bar_cats[k] = cat;
    double *v = &P->bar_vals[k * 4];
    v[0] = r->weight_bytes / GIB;
    v[1] = r->activation_bytes / GIB;
    v[2] = r->non_torch_bytes / GIB;
    v[3] = r->kv_bytes > 0 ? r->kv_bytes / GIB : NAN;
    P->bar_budget[k] = r->budget_bytes / GIB;
}

static int figures(lab *L, char *err, size_t n) {
    planning *P = lab_result(L);
    double uh = P->utils[1];
    bar_config(P, 0, lab_fmt(L, "14B defaults\n32768, 0.90"), &P->def14);
    bar_config(P, 1, lab_fmt(L, "14B\n%d, %.2f", P->lens[0], uh), &P->p[0][0][1]);
    for (int l = 0; l < 3; l++)
        bar_config(P, 2 + l, lab_fmt(L, "7B\n%d, %.2f", P->lens[l], uh), &P->p[1][l][1]);
    for (int l = 0; l < 3; l++) {
        P->xs[l] = P->lens[l];
        for (int u = 0; u < 2; u++) {
            P->conc[u][l] = P->p[1][l][u].max_concurrency;
            P->conc[2 + u][l] = P->p[0][l][u].max_concurrency;
        }
    }
    for (int s = 0; s < 4; s++)
        P->series[s] = (viz_xy_series){ lab_fmt(L, "%s, util %.2f", s < 2 ? "7B-AWQ" : "14B-AWQ", P->utils[s % 2]),
                                        P->xs, P->conc[s], 3, true, s % 2 == 0 };
    P->one = (viz_xy_mark){ 1.0, false, "1 request", false };
    if (lab_figure(L, &(lab_figure_spec){ "memory", lab_fmt(L, "Figure 1. Where the memory of the %s goes", P->card),
            "the height of each bar against its budget tick: what is left under the tick after the "
            "weights, the activation peak of vLLM's start-up profile run and the non-torch memory is "
            "the KV cache.  The first bar has no KV segment.", 820, 470, draw_memory, P }) < 0 ||
        lab_figure(L, &(lab_figure_spec){ "concurrency", "Figure 2. Concurrency against max-model-len",
            "how the concurrency falls as max-model-len grows, and the gap between the two "
            "utilizations of the same model (the two panels have their own scales).  Under the "
            "dashed \"1 request\" line not even one request of max-model-len tokens fits, and vLLM "
            "refuses to start.", 860, 400, draw_concurrency, P }) < 0) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- questions ---------------------------------------------------------------- */

static int questions(lab *L, char *err, size_t n) {
    const planning *P = lab_result(L);
    int l1 = P->lens[0], l2 = P->lens[1];
    double ul = P->utils[0], uh = P->utils[1];
    long more_util = P->p[1][1][1].num_blocks - P->p[1][1][0].num_blocks;
    long shorter = P->p[1][0][0].num_blocks - P->p[1][1][0].num_blocks;
    const char *m7 = "data/models/qwen2.5-7b-instruct-awq.json";
    int rc = 0;
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = lab_fmt(L, "Qwen2.5-14B-Instruct-AWQ with vLLM's defaults (max-model-len = its 32,768 "
                        "positions, gpu-memory-utilization 0.90) on the %s: what number follows "
                        "\"# GPU blocks:\" in vLLM's log?", P->card),
        .where = "Figure 1, the first bar, and the \"14B-AWQ defaults\" row of Table 1",
        .unit = "blocks", .answer = (double)P->def14.num_blocks, .tol = 0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many GiB do the 14B model's 4-bit AWQ weights take on the GPU?",
        .where = "Figure 1, the \"weights\" segment of the 14B bars", .unit = "GiB",
        .answer = P->def14.weight_bytes / GIB, .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = lab_fmt(L, "At gpu-memory-utilization %.2f and max-model-len %d, how many requests of "
                        "%d tokens can Qwen2.5-7B-AWQ hold at once (vLLM's \"Maximum concurrency\")?",
                        uh, l2, l2),
        .where = "Figure 2, the 7B line at that utilization, or Table 1", .unit = "x",
        .answer = P->p[1][1][1].max_concurrency, .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .predict = lab_fmt(L, "at max-model-len %d (not in the figures), what will the 7B's maximum "
                           "concurrency be at utilization %.2f?  Reason from Table 1.", PROBE_LEN, uh),
        .text = lab_fmt(L, "Run  pagesim plan --model %s --gpu %s --max-model-len %d --gpu-memory-utilization %.2f  "
                        "and write the concurrency it prints.", m7, P->gpu_arg, PROBE_LEN, uh),
        .where = "the \"Maximum concurrency\" line of that pagesim plan command", .unit = "x",
        .answer = P->probe.max_concurrency, .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = lab_fmt(L, "How many more KV blocks does the 7B get at utilization %.2f than at %.2f "
                        "(max-model-len %d)?", uh, ul, l2),
        .where = "Table 1, the gpu_blocks of the two 7B rows at that max-model-len", .unit = "blocks",
        .answer = (double)more_util, .tol = 0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_CHOICE,
        .text = lab_fmt(L, "The 7B at max-model-len %d and utilization %.2f: which frees more KV cache, "
                        "raising the utilization to %.2f, or lowering max-model-len to %d?", l2, ul, uh, l1),
        .where = "Table 1: compare the gpu_blocks of the three 7B rows involved",
        .choices = "utilization|max-model-len",
        .correct = more_util >= shorter ? "utilization" : "max-model-len" });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .text = "The weights do not change with max-model-len.  Why, then, does the KV cache shrink "
                "when max-model-len grows (Figure 1)?",
        .key = "At start-up vLLM profiles a forward pass of max_num_batched_tokens = max(max-model-len, "
               "2048) tokens; its activation peak grows with those tokens.  The KV cache gets what is "
               "left of utilization x memory after the weights, that peak and the non-torch memory, "
               "so a longer max-model-len leaves fewer KV blocks (and each request may use more)." });
    bool weights_fit = P->def14.weight_bytes < P->def14.budget_bytes;
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .text = weights_fit
            ? "The 14B model's weights are smaller than the budget.  Why does vLLM still refuse to start it "
              "with its defaults, and name two ways to make it start on this card."
            : "On this card the 14B model's weights alone are larger than the budget at utilization 0.90.  "
              "Which changes could make it start: a shorter max-model-len, a higher utilization, a smaller "
              "model, a second GPU?  Say why for each.",
        .key = weights_fit
            ? "Budget - weights - the activation peak of a 32,768-token profile run - non-torch memory leaves "
              "no block, or fewer tokens than one max-model-len request, so vLLM stops.  Fixes: a much "
              "smaller max-model-len, a higher gpu-memory-utilization, a smaller model (the 7B AWQ), or a "
              "second GPU (tensor parallelism)."
            : "A shorter max-model-len only shrinks the activation peak: the weights still do not fit.  A "
              "higher utilization helps only if utilization x memory exceeds weights + activations + "
              "non-torch memory.  A smaller model (the 7B AWQ) or a second GPU (tensor parallelism halves "
              "the weights per GPU) make it start." });
    if (rc) snprintf(err, n, "a question could not be added");
    return rc ? -1 : 0;
}

/* ---- narrative and headlines ----------------------------------------------------- */

static int narrative(lab *L, char *err, size_t n) {
    const planning *P = lab_result(L);
    const plan_result *d = &P->def14, *f = &P->p[1][1][1];
    int rc = 0;
    rc |= lab_say(L, "Qwen2.5-14B-AWQ with vLLM's defaults on the %s: weights %.2f GiB + activation "
                  "peak %.2f GiB (a %d-token profile run) + non-torch %.2f GiB against a budget of "
                  "%.2f GiB: %s.", P->card, d->weight_bytes / GIB, d->activation_bytes / GIB,
                  d->batched_tokens, d->non_torch_bytes / GIB, d->budget_bytes / GIB,
                  d->num_blocks == 0 ? "nothing is left, \"# GPU blocks: 0\", vLLM refuses to start"
                  : !d->fits ? lab_fmt(L, "%ld blocks (%ld tokens) are left, fewer than one request of %d "
                                      "tokens, and vLLM refuses to start", d->num_blocks, d->kv_tokens,
                                      d->max_model_len)
                  : lab_fmt(L, "%ld blocks are left, %.2f requests of %d tokens", d->num_blocks,
                            d->max_concurrency, d->max_model_len));
    rc |= lab_say(L, "Qwen2.5-7B-AWQ at max-model-len %d, utilization %.2f: %ld blocks of 16 tokens, "
                  "%ld tokens of KV cache, %.2f requests of %d tokens at once.", P->lens[1], P->utils[1],
                  f->num_blocks, f->kv_tokens, f->max_concurrency, P->lens[1]);
    rc |= lab_say(L, "Concurrency = KV tokens / max-model-len, and the KV cache itself shrinks as "
                  "max-model-len grows (the profile run's activations grow with it).");
    rc |= lab_todo(L, lab_fmt(L, "pagesim plan --model %s --gpu %s", M14, P->gpu_arg),
                   "the 14B with vLLM's defaults: find the \"# GPU blocks\" line and the verdict");
    rc |= lab_todo(L, lab_fmt(L, "pagesim plan --model %s --gpu %s --max-model-len %d --gpu-memory-utilization %.2f", M7,
                              P->gpu_arg, P->lens[1], P->utils[1]), "the 7B that fits");
    if (lab_seed(L) == LAB_PAPER_SEED) {
        rc |= lab_headline_add(L, &(lab_headline){ .what = "14B-AWQ, 12 GB card, defaults: # GPU blocks",
            .measured = (double)d->num_blocks, .paper_lo = 0, .paper_hi = 0, .tol = 0, .unit = "",
            .source = "the seed study's vLLM log" });
        rc |= lab_headline_add(L, &(lab_headline){ .what = "Qwen2.5-7B KV bytes per token (16-bit)",
            .measured = (double)f->kv_bytes_per_token, .paper_lo = 57344, .paper_hi = 57344, .tol = 0,
            .unit = " B", .source = "2 x 28 layers x 4 KV heads x 128 x 2 B (its config.json)" });
    }
    if (rc) snprintf(err, n, "out of memory");
    return rc ? -1 : 0;
}

const lab_def lab_planning = {
    .name = "planning",
    .title = "Planning: will the model fit, and how many requests at once?",
    .summary = "vLLM reserves gpu-memory-utilization x the GPU's memory, loads the weights, runs one "
               "forward pass of max-model-len tokens to measure its activation peak, and gives what is "
               "left to the KV cache in blocks of 16 tokens.  On a 12 GB card Qwen2.5-14B-AWQ with "
               "vLLM's defaults leaves nothing (\"# GPU blocks: 0\"); Qwen2.5-7B-AWQ fits.  You predict, "
               "then check, how max-model-len and gpu-memory-utilization trade off.",
    .concepts = "KV bytes per token, memory budget, profile run, GPU blocks, maximum concurrency, "
                "max-model-len, gpu-memory-utilization",
    .minutes = 30,
    .seed_note = "the card (10-16 GB), the three max-model-len values and the two utilizations",
    .real_note = NULL,
    .run = run, .figures = figures, .questions = questions, .narrative = narrative,
    .free_result = free,
};
