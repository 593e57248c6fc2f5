/* lab_paging: contiguous reservation and Orca (Max, Pow2, Oracle) against
 * paged KV blocks: where the memory goes (the vLLM paper's Figure 2), how
 * many requests fit at once (its Fig. 13a ratios) and the sustainable request
 * rate (its Fig. 12), on OPT-13B with ShareGPT-like requests.  The numbers
 * come from labs/lab_paging_sim.c (the sim/ core); the pool picture from the
 * visualisation's scenario and renderer (viz/scenario.h, viz/render.h).
 * Reads the model config and data/gpus.json; draws with viz/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "labs/lab_content.h"
#include "labs/lab_paging.h"
#include "labs/lab_paging_sim.h"
#include "labs/lab_real_sheet.h"
#include "viz/barchart.h"
#include "viz/render.h"
#include "viz/scenario.h"
#include "viz/xychart.h"

static const double KV_GB[8] = { 12, 9, 10, 11, 13, 14, 15, 16 };
static const char *LABEL[LAB_PG_NPOL] = { "paged", "Orca (Oracle)", "Orca (Pow2)", "Orca (Max)" };
/* The paper's Fig. 13a: requests batched on average, OPT-13B, ShareGPT, 2 requests/s */
static const double PAPER_BATCH[LAB_PG_NPOL] = { 30.42, 13.62, 9.81, 7.00 };

typedef struct paging {
    lab_paging_numbers m;
    viz_scene pool;                  /* the classroom pool, paged beside a static KV cache */
    bool      has_pool;
    /* figure data */
    double shares[LAB_PG_NPOL * 4];  /* (policy, category) % of the memory held or lost */
    double paper[LAB_PG_NPOL];       /* the paper's token share, % */
    const char *cats[LAB_PG_NPOL];
    double at_once[LAB_PG_NPOL], paper_batch[LAB_PG_NPOL], rate[LAB_PG_NPOL];
    viz_xy_series lat[LAB_PG_NPOL];
    viz_xy_mark bar;
    /* --real: paged and contiguous on the engine, and simulated on the same requests */
    bool      has_real;
    int       real_requests;
    lab_real_meas gpu[2], sim[2];
    lab_real_view view;
} paging;

static void paging_free(void *p) {
    paging *P = p;
    if (P && P->has_pool) viz_scene_free(&P->pool);
    free(P);
}

/* The classroom scenario (16 blocks of 4 slots) with a static KV cache
 * beside it: the step where the static cache wastes the most slots. */
static int pool_picture(paging *P, uint64_t seed, char *err, size_t n) {
    viz_scenario_config c = viz_scenario_defaults(16, 4, seed);
    c.compare = KV_CONTIGUOUS;
    viz_scenario *v = viz_scenario_create(&c, err, n);
    if (!v) return -1;
    long best = -1;
    int rc;
    while ((rc = viz_scenario_step(v, err, n)) == 1) {
        const viz_scene *s = viz_scenario_scene(v);
        long waste = s->cmp.c.reserved_slots + s->cmp.c.internal_frag + s->cmp.c.external_frag;
        if (s->pool.c.blocks_used < 6 || waste <= best) continue;
        if (P->has_pool) viz_scene_free(&P->pool);
        P->has_pool = viz_scene_copy(&P->pool, s) == 0;
        if (!P->has_pool) { rc = -1; snprintf(err, n, "out of memory"); break; }
        best = waste;
    }
    viz_scenario_destroy(v);
    return rc < 0 ? -1 : 0;
}

static int run(lab *L, char *err, size_t n) {
    paging *P = calloc(1, sizeof *P);
    if (!P) { snprintf(err, n, "out of memory"); return -1; }
    lab_set_result(L, P);
    lab_paging_setup s = lab_paging_setup_default();
    s.kv_gb = KV_GB[lab_pick(L, 1, 8)];
    s.seed = lab_seed(L);
    if (lab_paging_measure(&s, &P->m, err, n) < 0) return -1;
    const lab_paging_numbers *m = &P->m;
    lab_table *t = lab_table_add(L, "policies", "Table 1. The four policies",
        "policy,token_pct,reserved_pct,internal_pct,external_pct,paper_token_pct,requests_at_once,"
        "largest_batch,sustainable_rate", false);
    if (!t) { snprintf(err, n, "out of memory"); return -1; }
    for (int p = 0; p < LAB_PG_NPOL; p++) {
        double v[8] = { 100 * m->token[p], 100 * m->reserved[p], 100 * m->internal[p], 100 * m->external[p],
                        100 * m->paper_token[p], m->at_once[p], m->max_at_once[p], m->rate[p] };
        if (lab_table_row(t, m->name[p], v) < 0) { snprintf(err, n, "out of memory"); return -1; }
    }
    lab_table *sw = lab_table_add(L, "rate_sweep", "The rate search: mean normalized latency by rate",
                                  "policy,rate,mean_normalized_latency", false);
    if (!sw) { snprintf(err, n, "out of memory"); return -1; }
    for (int p = 0; p < LAB_PG_NPOL; p++)
        for (int k = 0; k < m->sweep_n[p]; k++) {
            double v[2] = { m->sweep_rate[p][k], m->sweep_latency[p][k] };
            if (lab_table_row(sw, m->name[p], v) < 0) { snprintf(err, n, "out of memory"); return -1; }
        }
    return 0;
}

/* ---- --real: paged against contiguous on the CUDA engine ------------------------- */

enum { REAL_REQUESTS = 120 };        /* contiguous runs 7 at a time: about 20 s on an H200 */
static const char *REAL_KEY[2] = { "paged", "contiguous" };

/* The first REAL_REQUESTS of the lab's requests, all waiting at t = 0 (the
 * requests-at-once run), into a pool of the lab's token slots, paged and
 * with max-model-len = 2,048 slots reserved per request (the engine's
 * contiguous policy: Orca (Max) here). */
static int real(lab *L, char *err, size_t n) {
    paging *P = lab_result(L);
    const lab_paging_numbers *m = &P->m;
    wl_spec sp = { .kind = WL_SHAREGPT, .num_requests = REAL_REQUESTS, .rate = 0, .seed = lab_seed(L),
                   .max_len = lab_paging_setup_default().max_model_len };
    wl_request *r = NULL;
    int nr = 0;
    if (wl_generate(&sp, &r, &nr, err, n) < 0) return -1;
    for (int k = 0; k < 2; k++) {
        lab_real_setup s = { .policy = k ? KV_CONTIGUOUS : KV_PAGED, .block_size = m->block_size,
                             .num_blocks = m->num_blocks, .max_model_len = sp.max_len, .seed = lab_seed(L) };
        if (lab_real_measure(L, &s, r, nr, &P->gpu[k], &P->sim[k], err, n) < 0) { free(r); return -1; }
    }
    free(r);
    P->has_real = true;
    P->real_requests = nr;
    lab_real_view *v = &P->view;
    lab_real_view_init(v);
    v->ncat = 2;
    v->cat[0] = "paged";
    v->cat[1] = "contiguous\n(2,048 reserved)";
    v->key[1] = "contiguous";
    v->npanel = 3;
    v->panel[0] = "Requests at once while others wait"; v->unit[0] = "requests"; v->col[0] = "at_once"; v->fmt[0] = "%.1f";
    v->panel[1] = "Token states"; v->unit[1] = "% of the KV memory held or lost"; v->col[1] = "token_pct"; v->fmt[1] = "%.1f";
    v->ymax[1] = 100;
    v->panel[2] = "Output tokens per second"; v->unit[2] = "tokens / s"; v->col[2] = "tok_s"; v->fmt[2] = "%.0f";
    static const int LAB_POL[2] = { LAB_PG_PAGED, LAB_PG_MAX };
    for (int k = 0; k < 2; k++) {
        v->sim[0][k] = P->sim[k].at_once; v->gpu[0][k] = P->gpu[k].at_once;
        v->sim[1][k] = 100 * P->sim[k].token; v->gpu[1][k] = 100 * P->gpu[k].token;
        v->sim[2][k] = P->sim[k].out_tok_s; v->gpu[2][k] = P->gpu[k].out_tok_s;
        v->ref[0][k] = m->at_once[LAB_POL[k]];
    }
    v->ref_label = "Figure 3's simulation (1,000 requests)";
    if (lab_real_view_table(L, v, "gpu", lab_fmt(L, "Table 2. Measured on the GPU against simulated (%s), the same "
        "%d requests all waiting at once, %ld token slots", lab_real_where(L, &P->gpu[0]), nr,
        (long)m->num_blocks * m->block_size), err, n) < 0)
        return -1;
    return lab_real_runs_table(L, "gpu_runs", 2, REAL_KEY, P->gpu, P->sim, err, n);
}

/* ---- figures ------------------------------------------------------------------ */

static void draw_pool(cairo_t *cr, const void *ctx, double w, double h) {
    viz_render(cr, &((const paging *)ctx)->pool, w, h);
}

static void draw_memory(cairo_t *cr, const void *ctx, double w, double h) {
    const paging *P = ctx;
    static const char *parts[4] = { "token states", "reservation", "internal fragmentation",
                                    "external fragmentation & others" };
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    viz_bar_chart c = { .title = "KV memory held or lost: where it goes (% of it)", .y_label = "%",
                        .categories = P->cats, .ncats = LAB_PG_NPOL, .series = parts, .nseries = 4,
                        .values = P->shares, .stacked = true, .refs = P->paper,
                        .ref_label = "the paper's token share", .value_format = "%.1f", .y_max = 100 };
    viz_bar_draw(cr, &c, 10, 8, w - 20, h - 16);
}

static void draw_capacity(cairo_t *cr, const void *ctx, double w, double h) {
    const paging *P = ctx;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    viz_bar_chart a = { .title = "Requests at once while others wait", .y_label = "requests",
                        .categories = P->cats, .ncats = LAB_PG_NPOL, .nseries = 1,
                        .values = P->at_once, .refs = P->paper_batch,
                        .ref_label = "the paper (Fig. 13a, at 2 requests/s)", .value_format = "%.1f" };
    viz_bar_chart b = { .title = "Highest sustainable rate", .y_label = "requests / s",
                        .categories = P->cats, .ncats = LAB_PG_NPOL, .nseries = 1,
                        .values = P->rate, .value_format = "%.2f" };
    viz_bar_draw(cr, &a, 10, 8, w / 2 - 20, h - 16);
    viz_bar_draw(cr, &b, w / 2 + 10, 8, w / 2 - 20, h - 16);
}

static void draw_latency(cairo_t *cr, const void *ctx, double w, double h) {
    const paging *P = ctx;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    viz_xy_chart c = { .title = "Mean normalized latency (end-to-end / output tokens) by request rate",
                       .x_label = "requests / s (Poisson arrivals over 10 minutes)",
                       .y_label = "s per output token", .series = P->lat, .nseries = LAB_PG_NPOL,
                       .marks = &P->bar, .nmarks = 1, .y_min = 0, .y_max = 3, .y_format = "%g" };
    viz_xy_draw(cr, &c, 10, 8, w - 20, h - 16);
}

static int figures(lab *L, char *err, size_t n) {
    paging *P = lab_result(L);
    const lab_paging_numbers *m = &P->m;
    if (pool_picture(P, lab_seed(L), err, n) < 0) return -1;
    for (int p = 0; p < LAB_PG_NPOL; p++) {
        double *v = &P->shares[4 * p];
        v[0] = 100 * m->token[p]; v[1] = 100 * m->reserved[p];
        v[2] = 100 * m->internal[p]; v[3] = 100 * m->external[p];
        P->paper[p] = 100 * m->paper_token[p];
        P->cats[p] = LABEL[p];
        P->at_once[p] = m->at_once[p];
        P->paper_batch[p] = PAPER_BATCH[p];
        P->rate[p] = m->rate[p];
        P->lat[p] = (viz_xy_series){ LABEL[p], m->sweep_rate[p], m->sweep_latency[p], m->sweep_n[p], false, false };
    }
    P->bar = (viz_xy_mark){ 1.0, false, "sustainable: under 1 s per token", true };
    int rc = 0;
    rc |= lab_figure(L, &(lab_figure_spec){ "pool", "Figure 1. The same requests in a pool of 16 blocks of 4 "
        "slots: paged (left) and a static KV cache that reserves max-model-len slots per request (right)",
        "the hatched slots on the right: reserved for tokens not generated yet (or never).  Count the "
        "requests running on each side, and the blocks each request holds on the left.",
        960, 600, draw_pool, P });
    rc |= lab_figure(L, &(lab_figure_spec){ "memory", lab_fmt(L, "Figure 2. Where the KV cache memory goes "
        "(%.0f GiB, OPT-13B, %.0f requests/s; the vLLM paper's Figure 2)", m->kv_gb, 2.0),
        "the bottom, solid segment of each bar: the share holding token states; the black tick is the "
        "paper's value for it.  Above it: slots reserved for tokens still to come, slots that will "
        "never be used, and free memory that no waiting request can use.", 900, 440, draw_memory, P });
    rc |= lab_figure(L, &(lab_figure_spec){ "capacity", "Figure 3. How many requests fit, and how fast "
        "requests may arrive", "left: the batch each policy runs while requests wait for memory (the ticks: the "
        "paper's batches at 2 requests/s); right: the highest arrival rate whose mean normalized latency "
        "stays under 1 s per token.",
        900, 380, draw_capacity, P });
    rc |= lab_figure(L, &(lab_figure_spec){ "latency", "Figure 4. Latency as the request rate grows (the "
        "vLLM paper's Figure 12)", "where each policy's curve leaves the floor and crosses the dashed "
        "line: that rate is its sustainable rate in Figure 3.", 900, 400, draw_latency, P });
    if (rc) { snprintf(err, n, "out of memory"); return -1; }
    if (P->has_real)
        return lab_real_view_figure(L, &P->view, "gpu", lab_fmt(L, "Figure 5. On the GPU: %d of the requests, all "
            "waiting at once, paged and contiguous in the same %ld token slots (%s)", P->real_requests,
            (long)m->num_blocks * m->block_size, lab_real_where(L, &P->gpu[0])), "each pair of bars: simulated "
            "(left) and measured (right) for the same requests; the ticks: Figure 3's simulated batches.  Which "
            "numbers agree, and which differ?", err, n);
    return 0;
}

/* ---- questions ---------------------------------------------------------------- */

static int argmax(const double *v) {
    int k = 0;
    for (int p = 1; p < LAB_PG_NPOL; p++) if (v[p] > v[k]) k = p;
    return k;
}

static int questions(lab *L, char *err, size_t n) {
    const paging *P = lab_result(L);
    const lab_paging_numbers *m = &P->m;
    long slots = (long)m->num_blocks * m->block_size;
    int rc = 0;
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .predict = lab_fmt(L, "your KV cache holds %ld token slots (%d blocks of %d).  Orca (Max) reserves "
                           "2,048 slots for every request.  How many requests can it hold at once?",
                           slots, m->num_blocks, m->block_size),
        .text = "Read the number Orca (Max) really holds at once (Figure 3, left).",
        .where = "Figure 3, the left panel, the Orca (Max) bar", .unit = "requests",
        .answer = m->at_once[LAB_PG_MAX], .tol = 0.3 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "What share of the KV memory holds token states under Orca (Oracle)?",
        .where = "Figure 2, the solid segment of the Orca (Oracle) bar", .unit = "%",
        .answer = 100 * m->token[LAB_PG_ORACLE], .tol = 1.0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "And under paged?", .where = "Figure 2, the paged bar", .unit = "%",
        .answer = 100 * m->token[LAB_PG_PAGED], .tol = 1.0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_CHOICE,
        .text = "Which policy loses the most memory to internal fragmentation (slots reserved that its "
                "requests will never use)?",
        .where = "Figure 2, the third segment of each bar",
        .choices = "paged|orca-oracle|orca-pow2|orca-max", .correct = m->name[argmax(m->internal)] });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many times more requests does paged hold at once than Orca (Oracle)?  (The paper: "
                "2.2 times on OPT-13B.)",
        .where = "Figure 3, the left panel: divide the paged bar by the Orca (Oracle) bar", .unit = "times",
        .answer = m->at_once[LAB_PG_PAGED] / m->at_once[LAB_PG_ORACLE], .tol = 0.1 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many times higher is paged's sustainable request rate than Orca (Oracle)'s?  (The "
                "paper: 1.7 to 2.7 times on ShareGPT.)",
        .where = "Figure 3, the right panel (or where the curves of Figure 4 cross the dashed line)",
        .unit = "times", .answer = m->rate[LAB_PG_PAGED] / m->rate[LAB_PG_ORACLE], .tol = 0.1 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .text = "Orca (Oracle) knows every request's true output length, yet paged holds more requests at "
                "once.  Where does Oracle's memory go?  Use Figures 1 and 2.",
        .key = "Oracle reserves each request's final length when it is admitted: the slots of tokens not "
               "generated yet are held for the request's whole life (the reservation segment), and its "
               "contiguous ranges leave gaps between them that the next request does not fit (external "
               "fragmentation).  Paged takes a 16-token block only when the last one is full, so each "
               "sequence wastes at most part of one block, and any free block serves any request." });
    if (P->has_real) {
        const lab_real_meas *g = P->gpu, *sm = P->sim;
        rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
            .text = lab_fmt(L, "On the GPU (Table 2, Figure 5), paged ran %.1f requests at once against contiguous's "
                "%.1f (simulated: %.1f and %.1f), and served %.2f times as many output tokens per second (simulated: "
                "%.2f times).  Why do the requests at once agree so closely while the tokens per second differ, and "
                "why is the throughput gain smaller than the gain in requests at once?",
                g[0].at_once, g[1].at_once, sm[0].at_once, sm[1].at_once, g[0].out_tok_s / g[1].out_tok_s,
                sm[0].out_tok_s / sm[1].out_tok_s),
            .key = "Both runs use the same scheduler and block manager (sim/), and with every request waiting at "
                   "t = 0 their decisions do not depend on time: the same requests are admitted, in the same blocks, "
                   "at every step, so the batch sizes match (up to the time weighting of each step).  The seconds "
                   "come from different places: the simulator prices each step from operator timings measured once "
                   "(data/profiles), the engine runs the kernels, launches, sampling and host work for real.  The "
                   "throughput gain is smaller than the batch gain because a decode step is bound by reading the "
                   "weights: a batch several times larger costs more per step, but far less than that many times more; "
                   "the tail of the run, when the last long requests run alone, also counts in the seconds." });
    }
    if (rc) snprintf(err, n, "a question could not be added");
    return rc ? -1 : 0;
}

/* ---- narrative and headlines ----------------------------------------------------- */

static int headlines(lab *L) {
    const lab_paging_numbers *m = &((const paging *)lab_result(L))->m;
    int rc = 0;
    for (int p = 0; p < LAB_PG_NPOL; p++)          /* Orca on the paper's buddy allocator (sim/buddy_alloc.c) */
        rc |= lab_headline_add(L, &(lab_headline){ .what = lab_fmt(L, "token share, %s", LABEL[p]),
            .measured = 100 * m->token[p], .paper_lo = 100 * m->paper_token[p], .paper_hi = 100 * m->paper_token[p],
            .tol = 5, .unit = "%", .source = "vLLM paper, Fig. 2" });
    const char *batch = lab_fmt(L, "paged's batch is counted here while requests wait (memory-bound: %.1f); "
                                "the paper's 30.4 is its batch at 2 requests/s, near but not at its memory limit",
                                m->at_once[LAB_PG_PAGED]);
    rc |= lab_headline_add(L, &(lab_headline){ .what = "requests at once, paged / Orca (Max)",
        .measured = m->at_once[LAB_PG_PAGED] / m->at_once[LAB_PG_MAX], .paper_lo = 4.3, .paper_hi = 4.3,
        .tol = 0.7, .unit = "x", .source = "vLLM paper, sec. 6.2 and Fig. 13a", .gap = batch });
    rc |= lab_headline_add(L, &(lab_headline){ .what = "requests at once, paged / Orca (Oracle)",
        .measured = m->at_once[LAB_PG_PAGED] / m->at_once[LAB_PG_ORACLE], .paper_lo = 2.2, .paper_hi = 2.2,
        .tol = 0.4, .unit = "x", .source = "vLLM paper, sec. 6.2 and Fig. 13a", .gap = batch });
    rc |= lab_headline_add(L, &(lab_headline){ .what = "sustainable rate, paged / Orca (Oracle)",
        .measured = m->rate[LAB_PG_PAGED] / m->rate[LAB_PG_ORACLE], .paper_lo = 1.7, .paper_hi = 2.7,
        .tol = 0.3, .unit = "x", .source = "vLLM paper, sec. 6.2 (ShareGPT)" });
    rc |= lab_headline_add(L, &(lab_headline){ .what = "sustainable rate, paged / Orca (Max)",
        .measured = m->rate[LAB_PG_PAGED] / m->rate[LAB_PG_MAX], .paper_lo = 2.7, .paper_hi = 8,
        .tol = 0, .unit = "x", .source = "vLLM paper, sec. 6.2 (ShareGPT)" });
    return rc;
}

static int narrative(lab *L, char *err, size_t n) {
    const paging *P = lab_result(L);
    const lab_paging_numbers *m = &P->m;
    int rc = 0;
    rc |= lab_say(L, "OPT-13B on an A100-40GB with %.0f GiB of KV cache: %d blocks of %d tokens, %d token "
                  "slots (the paper's Table 1: 15.7K at 12 GiB); %d ShareGPT-like requests (mean prompt %.0f, "
                  "output %.0f tokens).", m->kv_gb, m->num_blocks, m->block_size, m->num_blocks * m->block_size,
                  lab_paging_setup_default().requests, m->mean_prompt, m->mean_output);
    rc |= lab_say(L, "Where the memory goes at 2 requests/s: token states hold %.1f%% of it under paged, "
                  "%.1f%% under Orca (Oracle), %.1f%% under Orca (Pow2), %.1f%% under Orca (Max); the rest "
                  "is reserved for future tokens or lost to fragmentation.  A static KV cache that reserves "
                  "max-model-len = 2,048 slots per request is Orca (Max) here.",
                  100 * m->token[0], 100 * m->token[1], 100 * m->token[2], 100 * m->token[3]);
    rc |= lab_say(L, "So paged runs %.1f requests at once while others wait, against %.1f (Oracle), %.1f "
                  "(Pow2) and %.1f (Max), and sustains %.2f requests/s against %.2f, %.2f and %.2f.",
                  m->at_once[0], m->at_once[1], m->at_once[2], m->at_once[3], m->rate[0], m->rate[1],
                  m->rate[2], m->rate[3]);
    rc |= lab_todo(L, "pagesim --blocks 16 --compare contiguous", "step through the pool of Figure 1 "
                   "(space: next step); try --compare orca-oracle");
    rc |= lab_todo(L, lab_fmt(L, "pagesim run --fig2 --num-gpu-blocks %d --seed %llu", m->num_blocks,
                              (unsigned long long)lab_seed(L)), "the Figure 2 numbers as a table");
    if (P->has_real) {
        const lab_real_meas *g = P->gpu, *sm = P->sim;
        rc |= lab_say(L, "On the GPU (%s): the first %d of these requests, all waiting at once, in the same %ld token "
                      "slots.  Paged ran %.1f requests at once (simulated: %.1f), contiguous (2,048 slots reserved each) "
                      "%.1f (%.1f); token states held %.1f%% and %.1f%% of the memory (%.1f%%, %.1f%%); %.0f against "
                      "%.0f output tokens/s, %.2fx (simulated: %.0f against %.0f, %.2fx); %.1f s against %.1f s.",
                      lab_real_where(L, &g[0]), P->real_requests, (long)m->num_blocks * m->block_size, g[0].at_once,
                      sm[0].at_once, g[1].at_once, sm[1].at_once, 100 * g[0].token, 100 * g[1].token, 100 * sm[0].token,
                      100 * sm[1].token, g[0].out_tok_s, g[1].out_tok_s, g[0].out_tok_s / g[1].out_tok_s,
                      sm[0].out_tok_s, sm[1].out_tok_s, sm[0].out_tok_s / sm[1].out_tok_s, g[0].seconds, g[1].seconds);
    }
    if (lab_seed(L) == LAB_PAPER_SEED) rc |= headlines(L);
    if (rc) snprintf(err, n, "out of memory");
    return rc ? -1 : 0;
}

const lab_def lab_paging = {
    .name = "paging",
    .title = "Paging: where the KV cache memory goes",
    .summary = "Before PagedAttention, a serving system reserved one contiguous range of KV slots per "
               "request: a static KV cache reserves max-model-len slots, Orca (Max) 2,048, Orca (Pow2) "
               "the next power of two, Orca (Oracle) exactly the final length.  vLLM pages the cache "
               "instead: blocks of 16 tokens, taken one at a time.  You measure where the memory goes, "
               "how many requests fit at once and how fast requests may arrive, and compare with the "
               "vLLM paper (Kwon et al., SOSP 2023).",
    .concepts = "KV cache, reservation, internal and external fragmentation, paging, block table, "
                "batch size, sustainable request rate",
    .minutes = 45,
    .seed_note = "the KV cache size (9-16 GiB) and the requests' lengths and arrival times",
    .real_note = "120 of the requests, all waiting at once, paged and contiguous (2,048 slots reserved each) on "
                 "the CUDA engine in the same token slots: requests at once, token share and tokens per second, "
                 "measured beside simulated (Table 2, Figure 5)",
    .run = run, .figures = figures, .questions = questions, .narrative = narrative, .real = real,
    .free_result = paging_free,
};
