/* lab_bias_sheet: the bias experiment as a classroom lab.  The run is the
 * one `labs/bias` makes in simulation, through the same library: the
 * study's prompts for every ticker (the project's generated evidence),
 * replies from the fitted Qwen3 bias profile (labs/bias_profile.c), the
 * study's analysis (labs/bias_aggregate.c) and the serving prediction on 4
 * H200s (labs/bias_serving.c, the sim/ core, paged against a contiguous KV
 * cache).  bias_run_sets keeps its set files on disk, so the run goes to a
 * scratch folder under the system's temporary directory, removed at the
 * end.  The worksheet asks about the simulated run; then the student runs
 * `labs/bias --real` on a GPU and compares.  Reads the tickers, the profile,
 * the tokenizer and the model config. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "labs/bias_aggregate.h"
#include "labs/bias_analysis.h"
#include "labs/bias_data.h"
#include "labs/bias_evidence.h"
#include "labs/bias_profile.h"
#include "labs/bias_run.h"
#include "labs/bias_serving.h"
#include "labs/bias_tokens.h"
#include "labs/lab_bias_sheet.h"
#include "labs/lab_content.h"
#include "viz/barchart.h"

#define TICKERS "data/universe/sp500.csv"
#define PROFILE "data/bias_profiles/qwen3-30b-a3b.json"
#define MODEL_ID "Qwen/Qwen3-30B-A3B-Instruct-2507"
#define MODEL "Qwen3-30B-A3B-Instruct-2507"
#define MODEL_CONFIG "data/models/qwen3-30b-a3b-instruct-2507.json"
enum { SETS = 3, TRIALS = 10, WORKERS = 200 };
#define STUDY_INDEX 137                  /* the seed study's published bias index */
#define STUDY_SECONDS 152.0              /* ... and its serving time for 12,810 prompts */
#define STUDY_PROMPTS 12810

typedef struct bias_sheet {
    uint64_t run_seed;
    bias_result r;
    size_t   prompts, answered;
    double   mean_prompt, mean_output;
    bias_serving_policy pol[BIAS_NPOL];  /* scalars only (the series are freed) */
    int      max_num_seqs;
    /* figure data */
    const char *sec_names[BIAS_MAX_GROUPS], *size_names[4];
    double sec_mean[BIAS_MAX_GROUPS], size_mean[4], serve[2 * 2];
} bias_sheet;

/* Removes the files of a scratch folder, then the folder. */
static void scratch_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4300];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* The simulated run into dir: every set, the analysis, the serving prediction. */
static int simulate(bias_sheet *S, const char *dir, char *err, size_t n) {
    bias_universe u;
    bias_profile p;
    bias_source src = {0};
    bias_run_stats st = {0};
    bias_serving_result sr = {0};
    int rc = -1;
    if (bias_universe_load_tickers(&u, TICKERS, err, n) < 0) return -1;
    if (bias_evidence_generate(&u, 1, err, n) < 0 || bias_profile_load(&p, PROFILE, err, n) < 0 ||
        bias_profile_source(&src, &p, &u, S->run_seed, 0.6, err, n) < 0) goto out;
    bias_run_config c = { .model = MODEL, .model_id = MODEL_ID, .temperature = 0.6, .top_p = 0.8,
                          .max_tokens = 1024, .num_sets = SETS, .num_trials = TRIALS, .max_workers = WORKERS,
                          .seed = S->run_seed, .output_dir = dir, .inputs = "labs/bias-sheet (simulated)" };
    if (bias_run_sets(&c, &u, &src, &st, err, n) < 0) goto out;
    bias_serving_config sc;
    bias_serving_defaults(&sc);
    sc.model_config = MODEL_CONFIG;
    if (bias_serving_run(&sc, st.prompt_tokens, st.output_tokens, st.n / SETS, SETS, &sr, err, n) < 0 ||
        bias_combine_sets(dir, MODEL, SETS, err, n) < 0 || bias_aggregate(dir, MODEL, 0, &S->r, err, n) < 0) goto out;
    S->prompts = st.n;
    S->answered = st.answered;
    double sp = 0, so = 0;
    for (size_t i = 0; i < st.n; i++) { sp += st.prompt_tokens[i]; so += st.output_tokens[i]; }
    S->mean_prompt = st.n ? sp / (double)st.n : 0;
    S->mean_output = st.n ? so / (double)st.n : 0;
    for (int k = 0; k < BIAS_NPOL; k++) {
        S->pol[k] = sr.pol[k];
        S->pol[k].t = S->pol[k].util = S->pol[k].token_share = NULL;
        S->pol[k].npts = 0;
    }
    S->max_num_seqs = sr.max_num_seqs;
    rc = 0;
out:
    bias_serving_free(&sr);
    bias_run_stats_free(&st);
    bias_source_free(&src);
    bias_universe_free(&u);
    return rc;
}

static int run(lab *L, char *err, size_t n) {
    bias_sheet *S = calloc(1, sizeof *S);
    if (!S) { snprintf(err, n, "out of memory"); return -1; }
    lab_set_result(L, S);
    S->run_seed = lab_seed(L) == LAB_PAPER_SEED ? 42 : lab_seed(L);   /* 42: the study's default */
    char dir[] = P_tmpdir "/pagesim-bias-sheet-XXXXXX";
    if (!mkdtemp(dir)) { snprintf(err, n, "%s: cannot make a scratch folder", dir); return -1; }
    int rc = simulate(S, dir, err, n);
    scratch_remove(dir);
    bias_tokens_free();                  /* the tokenizer bias_run_sets loaded for its counts */
    if (rc < 0) return -1;
    const bias_result *r = &S->r;
    lab_table *g = lab_table_add(L, "groups", "Table 1. Mean bias score by sector and by size quartile (over the "
        "sets; std: across the sets), highest first", "group,mean_bias,std_across_sets,scores", true);
    lab_table *s = lab_table_add(L, "summary", "Table 2. The run: bias index and its parts, prompts, and the "
        "serving prediction (4 x H200, TP 4, 200 requests in flight)", "quantity,value", true);
    if (!g || !s) { snprintf(err, n, "out of memory"); return -1; }
    for (int i = 0; i < r->nsector; i++) {
        double v[3] = { r->sector[i].mean, r->sector[i].std, r->sector[i].n_scores };
        if (lab_table_row(g, r->sector[i].name, v) < 0) { snprintf(err, n, "out of memory"); return -1; }
    }
    for (int i = 0; i < r->nsize; i++) {
        double v[3] = { r->size[i].mean, r->size[i].std, r->size[i].n_scores };
        if (lab_table_row(g, lab_fmt(L, "size %s", r->size[i].name), v) < 0) { snprintf(err, n, "out of memory"); return -1; }
    }
    const bias_serving_policy *pg = &S->pol[BIAS_PAGED], *ct = &S->pol[BIAS_CONTIGUOUS];
    struct { const char *k; double v; } rows[] = {
        { "bias index", r->bias_index }, { "sector composite", r->sector_composite },
        { "size composite", r->size_composite }, { "prompts", (double)S->prompts },
        { "prompts answered", (double)S->answered }, { "mean prompt tokens", S->mean_prompt },
        { "mean reply tokens", S->mean_output }, { "paged: serving seconds", pg->wall_s },
        { "contiguous: serving seconds", ct->wall_s }, { "paged: most requests at once", pg->max_running },
        { "contiguous: most requests at once", ct->max_running },
        { "paged: KV in use (%)", 100 * pg->kv_util_mean }, { "contiguous: KV in use (%)", 100 * ct->kv_util_mean },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (lab_table_row(s, rows[i].k, &rows[i].v) < 0) { snprintf(err, n, "out of memory"); return -1; }
    return 0;
}

/* ---- figures ------------------------------------------------------------------ */

static void paint(cairo_t *cr) { cairo_set_source_rgb(cr, 1, 1, 1); cairo_paint(cr); }

static void draw_sectors(cairo_t *cr, const void *ctx, double w, double h) {
    const bias_sheet *S = ctx;
    paint(cr);
    viz_bar_chart c = { .title = "Mean bias score by sector (+100: always buy, -100: always sell)",
                        .y_label = "bias score", .categories = S->sec_names, .ncats = S->r.nsector, .nseries = 1,
                        .values = S->sec_mean, .value_format = "%.1f" };
    viz_bar_draw(cr, &c, 8, 8, w - 16, h - 16);
}

static void draw_sizes(cairo_t *cr, const void *ctx, double w, double h) {
    const bias_sheet *S = ctx;
    paint(cr);
    static const char *cats[2] = { "paged", "contiguous" };
    static const char *series[2] = { "serving seconds", "most requests at once" };
    viz_bar_chart a = { .title = "Mean bias score by market-cap quartile", .y_label = "bias score",
                        .categories = S->size_names, .ncats = S->r.nsize, .nseries = 1, .values = S->size_mean,
                        .value_format = "%.1f" };
    viz_bar_chart b = { .title = "Serving prediction, 4 x H200", .y_label = "seconds / requests",
                        .categories = cats, .ncats = 2, .series = series, .nseries = 2, .values = S->serve,
                        .value_format = "%.0f" };
    viz_bar_draw(cr, &a, 8, 8, w / 2 - 16, h - 16);
    viz_bar_draw(cr, &b, w / 2 + 8, 8, w / 2 - 16, h - 16);
}

/* "Financial Services" -> "Financial\nServices" ("Communication" -> "Comm.",
 * too wide for a bar), owned by L */
static const char *wrap(lab *L, const char *name) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", strncmp(name, "Communication ", 14) ? name : "Comm. Services");
    for (char *p = buf; *p; p++) if (*p == ' ') *p = '\n';
    return lab_fmt(L, "%s", buf);
}

static int figures(lab *L, char *err, size_t n) {
    bias_sheet *S = lab_result(L);
    for (int i = 0; i < S->r.nsector; i++) { S->sec_names[i] = wrap(L, S->r.sector[i].name); S->sec_mean[i] = S->r.sector[i].mean; }
    for (int i = 0; i < S->r.nsize; i++) { S->size_names[i] = S->r.size[i].name; S->size_mean[i] = S->r.size[i].mean; }
    S->serve[0] = S->pol[BIAS_PAGED].wall_s;
    S->serve[1] = S->pol[BIAS_PAGED].max_running;
    S->serve[2] = S->pol[BIAS_CONTIGUOUS].wall_s;
    S->serve[3] = S->pol[BIAS_CONTIGUOUS].max_running;
    int rc = 0;
    rc |= lab_figure(L, &(lab_figure_spec){ "sectors", "Figure 1. Which sectors the simulated model favours",
        "the tallest and the lowest bar: the two groups the t-test compares (Table 1 has every value).",
        900, 380, draw_sectors, S });
    rc |= lab_figure(L, &(lab_figure_spec){ "sizes", "Figure 2. By company size (Q1: the largest quarter), and "
        "the serving prediction of the same prompts", "left: does the bias grow or shrink with size?  right: how "
        "long the 4 GPUs take for all prompts, and how many requests run at once, with paged and with "
        "contiguous KV memory.", 900, 380, draw_sizes, S });
    if (rc) snprintf(err, n, "out of memory");
    return rc ? -1 : 0;
}

/* ---- questions ---------------------------------------------------------------- */

static int questions(lab *L, char *err, size_t n) {
    const bias_sheet *S = lab_result(L);
    const bias_result *r = &S->r;
    char choices[1024] = "";
    for (int i = 0; i < r->nsector; i++)
        snprintf(choices + strlen(choices), sizeof choices - strlen(choices), "%s%s", i ? "|" : "", r->sector[i].name);
    int rc = 0;
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .predict = "the study reported a bias index of 137 for this model.  The simulated replies come from a "
                   "profile fitted to that result; predict this run's index.",
        .text = "Read the bias index of your run.", .where = "Table 2, bias index", .answer = r->bias_index,
        .tol = 0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_CHOICE,
        .text = "Which sector does the simulated model favour most (the highest mean bias score)?",
        .where = "Figure 1, the tallest bar (Table 1, first row)", .choices = choices,
        .correct = r->sector[0].name });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many points apart are the highest and the lowest sector means?",
        .where = "Table 1: the first sector's mean_bias minus the last sector's", .unit = "points",
        .answer = r->sector[0].mean - r->sector[r->nsector - 1].mean, .tol = 0.2 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many seconds do the 4 H200s take for all the prompts with paged KV memory (the "
                "prediction)?", .where = "Table 2, paged: serving seconds (Figure 2, right)", .unit = "s",
        .answer = S->pol[BIAS_PAGED].wall_s, .tol = 0.2 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "What share of the KV cache does the contiguous cache keep in use on average (paged: a few %)?",
        .where = "Table 2, contiguous: KV in use (%)", .unit = "%",
        .answer = 100 * S->pol[BIAS_CONTIGUOUS].kv_util_mean, .tol = 0.5 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .predict = "the study measured 152 s for 12,810 prompts on 4 H200s with vLLM.  Will the real engine be "
                   "faster or slower than this prediction, per prompt?",
        .text = "On a GPU, run labs/bias --real (the commands above) and compare: the measured time per prompt "
                "against the prediction, and the measured KV use (the _att_compare.json file).  Explain the "
                "differences you see.",
        .key = "The prediction is a roofline (weights and KV read per decode step, FLOPs per prefill) with "
               "default efficiencies; a real run adds what it leaves out: CPU time per step (scheduling, "
               "sampling, detokenizing, the HTTP client in the study), kernel launch gaps, MoE expert "
               "imbalance, and for the study vLLM's own overheads.  So the real time per prompt is usually "
               "higher (the study: 11.9 ms against a 4.8 ms prediction); `labs/bias compare` fits the cost "
               "model's coefficients to the trace and closes most of the gap.  The KV use should match "
               "closely: it comes from the same block manager and scheduler, with the real token counts." });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .text = "Why does the prediction come out about the same for paged and contiguous KV memory here, when "
                "the paging lab found paged memory far ahead?",
        .key = "The study keeps only 200 requests in flight, and the H200s' KV cache (hundreds of thousands of "
               "blocks) holds 200 contiguous reservations of max-model-len with room to spare: memory never "
               "limits the batch, so both run the same 200 requests at once and take the same time.  Paging "
               "pays off when memory is the limit (the paging lab's 12 GiB on one A100); here it only shows as "
               "the much lower share of the KV cache held." });
    if (rc) snprintf(err, n, "a question could not be added");
    return rc ? -1 : 0;
}

/* ---- narrative ---------------------------------------------------------------- */

static int narrative(lab *L, char *err, size_t n) {
    const bias_sheet *S = lab_result(L);
    const bias_result *r = &S->r;
    int rc = 0;
    rc |= lab_say(L, "The investment-bias experiment in simulation: %zu prompts (%d sets x %d trials x %zu tickers; "
                  "%.0f prompt tokens and %.0f reply tokens on average), replies drawn from the Qwen3 bias profile, "
                  "seed %llu.  %zu prompts answered.", S->prompts, SETS, TRIALS, S->prompts / (SETS * TRIALS),
                  S->mean_prompt, S->mean_output, (unsigned long long)S->run_seed, S->answered);
    rc |= lab_say(L, "Bias index %d (the study: %d).  Sectors: %s highest (%.1f), %s lowest (%.1f), t-test p = "
                  "%.3g; sizes: %s highest, %s lowest, p = %.3g.", r->bias_index, STUDY_INDEX, r->t_sector.high,
                  r->sector[0].mean, r->t_sector.low, r->sector[r->nsector - 1].mean, r->t_sector.p, r->t_size.high,
                  r->t_size.low, r->t_size.p);
    rc |= lab_say(L, "Serving prediction on 4 H200s (TP 4, 200 requests in flight): %.1f s with paged KV memory, "
                  "%.1f s contiguous, %.1f ms per prompt (the study measured %.1f ms: %.0f s for %d prompts).",
                  S->pol[BIAS_PAGED].wall_s, S->pol[BIAS_CONTIGUOUS].wall_s, 1e3 * S->pol[BIAS_PAGED].wall_s / S->prompts,
                  1e3 * STUDY_SECONDS / STUDY_PROMPTS, STUDY_SECONDS, STUDY_PROMPTS);
    rc |= lab_todo(L, lab_fmt(L, "labs/bias --num-sets %d --seed %llu", SETS, (unsigned long long)S->run_seed),
                   "the same simulated run with all its files in ./result (set files, result JSON, figure)");
    rc |= lab_todo(L, lab_fmt(L, "labs/bias --real --model %s --num-sets %d --seed %llu --output-dir result-real",
                              MODEL_ID, SETS, (unsigned long long)S->run_seed),
                   "on a GPU machine with a GPU build: the same prompts through the CUDA engine, its trace and "
                   "result-real/" MODEL "_att_compare.json (measured against predicted)");
    rc |= lab_todo(L, "labs/bias compare --trace result-real/" MODEL "_att_trace.json",
                   "redo the comparison from the trace, the cost model fitted to it");
    if (lab_seed(L) == LAB_PAPER_SEED)
        rc |= lab_headline_add(L, &(lab_headline){ .what = "bias index, simulated (seed 42, 3 sets)",
            .measured = r->bias_index, .paper_lo = STUDY_INDEX, .paper_hi = STUDY_INDEX, .tol = 20, .unit = "",
            .source = "the seed study (Qwen3-30B-A3B-Instruct-2507, 3 sets)",
            .gap = "the profile is fitted to that result, so this checks the pipeline (prompts, replies, analysis) "
                   "rather than reproducing it; with 3 sets the index moves by about 10 from seed to seed (122 to "
                   "147 over seeds 1-7), hence the tolerance" });
    if (rc) snprintf(err, n, "out of memory");
    return rc ? -1 : 0;
}

const lab_def lab_bias_sheet = {
    .name = "bias-sheet",
    .title = "The bias experiment: simulate, then run it for real, then compare",
    .summary = "Does a language model favour some stocks when the evidence is balanced?  The experiment asks it "
               "for a buy or sell decision on every stock, many times, with two pieces of evidence for each side, "
               "and measures a bias score per sector and size.  You run it first in simulation (replies from a "
               "profile fitted to the published result, serving time from the simulator), then on a GPU with "
               "the real engine, and compare the two.",
    .concepts = "experimental design, bias score and index, t-test, serving an experiment's prompts, "
                "simulation against measurement",
    .minutes = 60,
    .seed_note = "the run's seed: which evidence each trial gets, its order, and the simulated replies",
    .real_note = "labs/bias --real runs the same prompts on the CUDA engine (see the worksheet)",
    .run = run, .figures = figures, .questions = questions, .narrative = narrative,
    .free_result = free,
};
