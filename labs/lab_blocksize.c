/* lab_blocksize: the block size, 1 to 256 tokens.  Small blocks waste almost
 * no memory but make the attention kernel do more work per token (one block
 * table lookup and one partial reduction per block); large blocks waste the
 * unused tail of each sequence's last block, so fewer requests fit.  Memory
 * and requests at once come from the sim/ core (paged KV cache, the shared
 * scheduler, the cost-model executor) on OPT-13B with ShareGPT- and
 * Alpaca-like requests; kernel work from a stated model (below); the decode
 * throughput estimate from sim/cost_model.c fed with both.  Reads the model
 * config and data/gpus.json; draws with viz/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "labs/lab_blocksize.h"
#include "labs/lab_content.h"
#include "labs/lab_real_sheet.h"
#include "sim/model_config.h"
#include "sim/simulate.h"
#include "viz/xychart.h"

enum { NB = 9, NW = 2 };
static const int BS[NB] = { 1, 2, 4, 8, 16, 32, 64, 128, 256 };
static const double KV_GB[6] = { 12, 6, 8, 10, 14, 16 };
#define B16 4                        /* index of block size 16 */
#define REQUESTS 400
#define GIB (1024.0 * 1024.0 * 1024.0)
/* The kernel model: a warp walks a sequence's blocks one by one; each block
 * costs BLOCK_COST token-reads of fixed work (the block-table lookup, the
 * dependent address, a reduction across the block) plus all its B slots (the
 * slots past the context are masked, not skipped).  Contiguous KV is one
 * block of exactly the context.  BLOCK_COST = 3 puts block size 16 at
 * 1.20-1.25x on these workloads, inside the 20-26% the vLLM paper measured
 * for its kernel against FasterTransformer's (sec. 7.1): that one number
 * calibrates the model; the curve's shape is the model's. */
#define BLOCK_COST 3.0

typedef struct bs_workload {
    const char *name;
    double mean_prompt, mean_output;
    double token[NB], unused[NB];    /* % of the held memory: token states, slots unused in blocks */
    double at_once[NB];              /* requests running while others wait */
    double kernel[NB];               /* attention kernel work per token, relative to contiguous */
    double step_ms[NB], tput[NB];    /* decode step estimate, tokens/s */
    double tput_rel[NB];             /* tput / tput at block size 16 */
    int    best;                     /* index of the highest tput */
} bs_workload;

enum { NR = 3, RB0 = B16 };          /* --real: block sizes 16, 32, 64 (the decode kernel's tensor-core path) */

typedef struct blocksize {
    double kv_gb;
    bs_workload w[NW];
    double xs[NB];
    viz_xy_series s_unused[NW], s_at[NW], s_kernel[NW], s_tput[NW];
    viz_xy_mark m16;
    /* --real: each workload at block sizes 16, 32, 64 on the engine, and simulated */
    bool   has_real;
    int    real_requests[NW];
    lab_real_meas gpu[NW][NR], sim[NW][NR];
    lab_real_view view;
} blocksize;

/* Kernel work of decoding the requests at block size B, over contiguous. */
static double kernel_work(const wl_request *r, int n, int B) {
    double paged = 0, contiguous = 0;
    for (int i = 0; i < n; i++)
        for (int L = r[i].prompt_len + 1; L < r[i].prompt_len + r[i].output_len; L++) {
            paged += ceil((double)L / B) * (B + BLOCK_COST);
            contiguous += L + BLOCK_COST;
        }
    return contiguous > 0 ? paged / contiguous : 1;
}

/* One block size: a saturated run (every request waiting at t = 0). */
static int measure(const cm_model *m, double kv_gb, uint64_t seed, const wl_request *r, int n, int b,
                   bs_workload *w, char *err, size_t errlen) {
    int B = BS[b];
    sim_config c = sim_config_default();
    c.kv.block_size = B;
    c.kv.num_blocks = (int)floor(kv_gb * GIB / ((double)mc_kv_bytes_per_token(&m->cfg, m->kvdtype) * B));
    c.model = m;
    c.seed = seed;
    c.sched.seed = seed;
    c.keep_steps = true;
    sim_result res;
    if (sim_run(&c, r, n, &res, err, errlen) < 0) return -1;
    const met_summary *s = &res.summary;
    double held = s->share_token + s->share_reserved + s->share_internal + s->share_external;
    w->token[b] = held > 0 ? 100 * s->share_token / held : 0;
    w->unused[b] = held > 0 ? 100 * (s->share_reserved + s->share_internal) / held : 0;
    double wt = 0, run = 0;
    for (int k = 0; k < res.num_steps; k++)
        if (res.steps[k].waiting > 0) { wt += res.steps[k].dt; run += res.steps[k].dt * res.steps[k].running; }
    w->at_once[b] = wt > 0 ? run / wt : s->mean_running;
    sim_result_free(&res);
    /* decode throughput: at_once sequences of the mean context per step, their
     * KV read with the kernel's extra work */
    w->kernel[b] = kernel_work(r, n, B);
    double ctx = w->mean_prompt + w->mean_output / 2;
    long seqs = lround(w->at_once[b]) > 0 ? lround(w->at_once[b]) : 1;
    cm_batch cb = { .num_seqs = (int)seqs, .decode_tokens = seqs,
                    .attn_ctx_tokens = (long)(seqs * ctx * w->kernel[b]), .attn_pairs = (long)(seqs * ctx) };
    double t = cm_step_time(m, &cb);
    w->step_ms[b] = 1e3 * t;
    w->tput[b] = seqs / t;
    return 0;
}

static int run(lab *L, char *err, size_t n) {
    blocksize *P = calloc(1, sizeof *P);
    if (!P) { snprintf(err, n, "out of memory"); return -1; }
    lab_set_result(L, P);
    P->kv_gb = KV_GB[lab_pick(L, 1, 6)];
    mc_config mc;
    cm_gpu g;
    cm_model m;
    if (mc_load(&mc, "data/models/opt-13b.json", err, n) < 0 || cm_gpu_find(&g, "A100-40GB", err, n) < 0 ||
        cm_model_init(&m, &mc, &g, 1, mc.dtype, err, n) < 0) return -1;
    lab_table *t = lab_table_add(L, "block_sizes", "Table 1. Each block size on each workload",
        "workload,block_size,token_pct,unused_in_blocks_pct,requests_at_once,kernel_work_x,decode_step_ms,"
        "decode_tokens_per_s,throughput_vs_16", true);
    if (!t) { snprintf(err, n, "out of memory"); return -1; }
    for (int k = 0; k < NW; k++) {
        bs_workload *w = &P->w[k];
        wl_spec sp = { .kind = k == 0 ? WL_SHAREGPT : WL_ALPACA, .num_requests = REQUESTS,
                       .seed = lab_seed(L), .max_len = 2048 };
        wl_request *r = NULL;
        int nr = 0;
        if (wl_generate(&sp, &r, &nr, err, n) < 0) return -1;
        w->name = k == 0 ? "ShareGPT" : "Alpaca";
        wl_stats(r, nr, &w->mean_prompt, &w->mean_output);
        for (int b = 0; b < NB; b++)
            if (measure(&m, P->kv_gb, lab_seed(L), r, nr, b, w, err, n) < 0) { free(r); return -1; }
        free(r);
        for (int b = 0; b < NB; b++) {
            w->tput_rel[b] = w->tput[b] / w->tput[B16];
            if (w->tput[b] > w->tput[w->best]) w->best = b;
        }
        for (int b = 0; b < NB; b++) {
            double v[8] = { BS[b], w->token[b], w->unused[b], w->at_once[b], w->kernel[b], w->step_ms[b],
                            w->tput[b], w->tput_rel[b] };
            if (lab_table_row(t, w->name, v) < 0) { snprintf(err, n, "out of memory"); return -1; }
        }
    }
    return 0;
}

/* ---- --real: block sizes on the CUDA engine -------------------------------------------- */

static const int REAL_REQUESTS[NW] = { 120, 400 };

/* The first requests of each workload, all waiting at once, in the lab's KV
 * cache size as token slots (OPT-13B's), at block sizes 16, 32 and 64. */
static int real_runs(lab *L, blocksize *P, const mc_config *mc, char *err, size_t n) {
    for (int k = 0; k < NW; k++) {
        wl_spec sp = { .kind = k == 0 ? WL_SHAREGPT : WL_ALPACA, .num_requests = REAL_REQUESTS[k], .seed = lab_seed(L),
                       .max_len = 2048 };
        wl_request *r = NULL;
        int nr = 0;
        if (wl_generate(&sp, &r, &nr, err, n) < 0) return -1;
        P->real_requests[k] = nr;
        for (int b = 0; b < NR; b++) {
            int B = BS[RB0 + b];
            lab_real_setup s = { .policy = KV_PAGED, .block_size = B, .max_model_len = 2048, .seed = lab_seed(L),
                .num_blocks = (int)floor(P->kv_gb * GIB / ((double)mc_kv_bytes_per_token(mc, mc->dtype) * B)) };
            if (lab_real_measure(L, &s, r, nr, &P->gpu[k][b], &P->sim[k][b], err, n) < 0) { free(r); return -1; }
        }
        free(r);
    }
    return 0;
}

static int real(lab *L, char *err, size_t n) {
    blocksize *P = lab_result(L);
    mc_config mc;
    if (mc_load(&mc, "data/models/opt-13b.json", err, n) < 0 || real_runs(L, P, &mc, err, n) < 0) return -1;
    P->has_real = true;
    lab_real_view *v = &P->view;
    lab_real_view_init(v);
    v->ncat = NW * NR;
    v->npanel = 3;
    v->panel[0] = "Requests at once while others wait"; v->unit[0] = "requests"; v->col[0] = "at_once"; v->fmt[0] = "%.0f";
    v->panel[1] = "Unused in partly filled blocks"; v->unit[1] = "% of the KV memory held or lost";
    v->col[1] = "unused_pct"; v->fmt[1] = "%.1f";
    v->panel[2] = "Output tokens/s against block size 16"; v->unit[2] = "times"; v->col[2] = "tput_vs_16";
    v->fmt[2] = "%.2f";
    for (int k = 0; k < NW; k++)
        for (int b = 0; b < NR; b++) {
            int c = k * NR + b;
            const lab_real_meas *g = &P->gpu[k][b], *sm = &P->sim[k][b];
            v->cat[c] = lab_fmt(L, "%s\n%d", P->w[k].name, BS[RB0 + b]);
            v->key[c] = lab_fmt(L, "%s %d", P->w[k].name, BS[RB0 + b]);
            v->sim[0][c] = sm->at_once; v->gpu[0][c] = g->at_once;
            v->sim[1][c] = 100 * (sm->reserved + sm->internal); v->gpu[1][c] = 100 * (g->reserved + g->internal);
            v->sim[2][c] = sm->out_tok_s / P->sim[k][0].out_tok_s; v->gpu[2][c] = g->out_tok_s / P->gpu[k][0].out_tok_s;
            v->ref[0][c] = P->w[k].at_once[RB0 + b];
            v->ref[2][c] = P->w[k].tput_rel[RB0 + b];
        }
    v->ref_label = "this lab's simulation (Figures 1 and 3)";
    const char *keys[NW * NR];
    for (int c = 0; c < NW * NR; c++) keys[c] = v->key[c];
    if (lab_real_view_table(L, v, "gpu", lab_fmt(L, "Table 2. Block sizes measured on the GPU against simulated "
        "(%s): %d ShareGPT-like and %d Alpaca-like requests waiting at once, %.0f GiB of OPT-13B's KV as token "
        "slots", lab_real_where(L, &P->gpu[0][0]), P->real_requests[0], P->real_requests[1], P->kv_gb), err, n) < 0)
        return -1;
    return lab_real_runs_table(L, "gpu_runs", NW * NR, keys, &P->gpu[0][0], &P->sim[0][0], err, n);
}

/* ---- figures ------------------------------------------------------------------ */

static void paint(cairo_t *cr) { cairo_set_source_rgb(cr, 1, 1, 1); cairo_paint(cr); }

static void draw_memory(cairo_t *cr, const void *ctx, double w, double h) {
    const blocksize *P = ctx;
    paint(cr);
    viz_xy_chart a = { .title = "KV memory unused in partly filled blocks", .x_label = "block size (tokens)",
                       .y_label = "% of the memory held", .series = P->s_unused, .nseries = NW,
                       .marks = &P->m16, .nmarks = 1, .log2_x = true, .y_format = "%g", .value_format = "%.1f" };
    viz_xy_chart b = { .title = "Requests running at once", .x_label = "block size (tokens)",
                       .y_label = "requests", .series = P->s_at, .nseries = NW, .marks = &P->m16, .nmarks = 1,
                       .log2_x = true, .y_format = "%g", .value_format = "%.0f" };
    viz_xy_draw(cr, &a, 8, 8, w / 2 - 16, h - 16);
    viz_xy_draw(cr, &b, w / 2 + 8, 8, w / 2 - 16, h - 16);
}

static void draw_kernel(cairo_t *cr, const void *ctx, double w, double h) {
    const blocksize *P = ctx;
    paint(cr);
    viz_xy_chart a = { .title = "Attention kernel work per token (model), relative to contiguous KV",
                       .x_label = "block size (tokens)", .y_label = "times the contiguous work",
                       .series = P->s_kernel, .nseries = NW, .marks = &P->m16, .nmarks = 1, .log2_x = true,
                       .y_min = 0, .y_max = 4.5, .y_format = "%g", .value_format = "%.2f" };
    viz_xy_draw(cr, &a, 8, 8, w - 16, h - 16);
}

static void draw_tput(cairo_t *cr, const void *ctx, double w, double h) {
    const blocksize *P = ctx;
    paint(cr);
    viz_xy_chart a = { .title = "Decode throughput (estimate), relative to block size 16",
                       .x_label = "block size (tokens)", .y_label = "throughput / throughput at 16",
                       .series = P->s_tput, .nseries = NW, .marks = &P->m16, .nmarks = 1, .log2_x = true,
                       .y_min = 0, .y_max = 1.2, .y_format = "%g", .value_format = "%.2f" };
    viz_xy_draw(cr, &a, 8, 8, w - 16, h - 16);
}

static int figures(lab *L, char *err, size_t n) {
    blocksize *P = lab_result(L);
    for (int b = 0; b < NB; b++) P->xs[b] = BS[b];
    for (int k = 0; k < NW; k++) {
        bs_workload *w = &P->w[k];
        const char *lab = lab_fmt(L, "%s (mean %.0f + %.0f tokens)", w->name, w->mean_prompt, w->mean_output);
        P->s_unused[k] = (viz_xy_series){ lab, P->xs, w->unused, NB, true, k == 1 };
        P->s_at[k] = (viz_xy_series){ lab, P->xs, w->at_once, NB, true, k == 0 };
        P->s_kernel[k] = (viz_xy_series){ lab, P->xs, w->kernel, NB, k == 0, false };
        P->s_tput[k] = (viz_xy_series){ lab, P->xs, w->tput_rel, NB, true, k == 1 };
    }
    P->m16 = (viz_xy_mark){ 16, true, "vLLM: 16", true };
    int rc = 0;
    rc |= lab_figure(L, &(lab_figure_spec){ "memory", lab_fmt(L, "Figure 1. Memory against block size "
        "(OPT-13B, %.0f GiB of KV cache, %d requests waiting at once)", P->kv_gb, REQUESTS),
        "left: the unused tail of each sequence's last block, as a share of the memory held; right: how "
        "many requests that leaves room for.  The x axis doubles at each tick.", 900, 400, draw_memory, P });
    rc |= lab_figure(L, &(lab_figure_spec){ "kernel", "Figure 2. Attention kernel work against block size "
        "(a stated model: each block costs 3 token-reads of fixed work plus all its slots)",
        "where the curves are lowest, and how steeply they rise on each side.", 900, 380, draw_kernel, P });
    rc |= lab_figure(L, &(lab_figure_spec){ "throughput", "Figure 3. Both together: estimated decode "
        "throughput (requests that fit / decode step time, with the kernel work of Figure 2)",
        "the block size where each curve peaks, and how far below its peak each curve is at 16.",
        900, 380, draw_tput, P });
    if (rc) { snprintf(err, n, "out of memory"); return -1; }
    if (P->has_real)
        return lab_real_view_figure(L, &P->view, "gpu", lab_fmt(L, "Figure 4. On the GPU: block sizes 16, 32 and 64 "
            "with the same token slots (%s)", lab_real_where(L, &P->gpu[0][0])), "each pair of bars: simulated (left) "
            "and measured (right); the ticks: this lab's Figures 1 and 3.  Right panel: does the real kernel slow "
            "down with larger blocks as Figure 2's model says?", err, n);
    return 0;
}

/* ---- questions, narrative, headlines ---------------------------------------------- */

static int argmin(const double *v) {
    int k = 0;
    for (int b = 1; b < NB; b++) if (v[b] < v[k]) k = b;
    return k;
}

static int questions(lab *L, char *err, size_t n) {
    const blocksize *P = lab_result(L);
    const bs_workload *sg = &P->w[0], *al = &P->w[1];
    int rc = 0;
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "On ShareGPT at block size 16, what share of the memory held sits unused in partly filled "
                "blocks?", .where = "Figure 1, left, the ShareGPT curve at 16 (or Table 1)", .unit = "%",
        .answer = sg->unused[B16], .tol = 0.3 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .predict = lab_fmt(L, "a sequence leaves about half of its last block unused.  An Alpaca request "
                           "holds about %.0f tokens on average.  Predict the unused share at block size 256.",
                           al->mean_prompt + al->mean_output / 2),
        .text = "Read the unused share for Alpaca at block size 256.",
        .where = "Figure 1, left, the Alpaca curve at 256", .unit = "%", .answer = al->unused[NB - 1], .tol = 1.0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many requests run at once on Alpaca at block size 256?",
        .where = "Figure 1, right, the Alpaca curve at 256", .unit = "requests",
        .answer = al->at_once[NB - 1], .tol = 1.0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many times the contiguous kernel's work does block size 1 cost on ShareGPT?",
        .where = "Figure 2, the ShareGPT curve at 1", .unit = "times", .answer = sg->kernel[0], .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "At which block size is the kernel work lowest on ShareGPT?",
        .where = "Figure 2, the lowest point of the ShareGPT curve (Table 1: kernel_work_x)",
        .unit = "tokens per block", .answer = BS[argmin(sg->kernel)], .tol = 0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "Short requests suffer most from big blocks: what is Alpaca's estimated throughput at block "
                "size 256, relative to block size 16?",
        .where = "Figure 3, the Alpaca curve at 256 (Table 1: throughput_vs_16)", .unit = "times",
        .answer = al->tput_rel[NB - 1], .tol = 0.02 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .text = "Why did vLLM pick 16 tokens per block?  Say what goes wrong with blocks of 1-4 tokens and "
                "with blocks of 128-256, using all three figures.",
        .key = "Small blocks waste almost no memory (at most a block's tail per sequence) but the kernel "
               "pays a fixed cost per block (table lookup, address, a reduction), so with 1-4 tokens per "
               "block it does 1.7-4x the work of a contiguous read.  Large blocks cut that overhead but "
               "leave up to a whole block unused per sequence: short requests (Alpaca) lose most of their "
               "memory at 128-256, fewer requests fit and throughput drops.  16 is near the best of both "
               "for long and for short requests: a robust default." });
    if (P->has_real)
        rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
            .text = lab_fmt(L, "On the GPU, ShareGPT at block size 64 ran %.2f times the output tokens per second of "
                "block size 16 (simulated: %.2f; this lab's estimate: %.2f).  The simulator's step times come from "
                "operators measured at block size 16: what can it not see that the engine does?  What do the "
                "requests at once say about memory?", P->gpu[0][2].out_tok_s / P->gpu[0][0].out_tok_s,
                P->sim[0][2].out_tok_s / P->sim[0][0].out_tok_s, P->w[0].tput_rel[RB0 + 2]),
            .key = "The block size changes two things.  Memory: a sequence wastes up to a block's tail, so larger "
                   "blocks leave fewer requests at once (Figure 1, and the first panel on the GPU, where the "
                   "scheduler and block manager are the same code, so the counts agree).  Kernel work: the "
                   "attention kernel walks a sequence's blocks; its per-block cost and the masked tail of the last "
                   "block change with the block size.  The simulator's operator profile was measured at 16 tokens "
                   "per block, so it prices attention the same at every block size: only the batch sizes move its "
                   "estimate, while the engine's time also holds the kernel's real cost of larger blocks (which "
                   "Figure 2 only models)." });
    if (rc) snprintf(err, n, "a question could not be added");
    return rc ? -1 : 0;
}

/* The block sizes whose throughput is within frac of the best: [*lo, *hi]. */
static void plateau(const bs_workload *w, double frac, int *lo, int *hi) {
    int a = w->best, b = w->best;
    while (a > 0 && w->tput[a - 1] >= (1 - frac) * w->tput[w->best]) a--;
    while (b < NB - 1 && w->tput[b + 1] >= (1 - frac) * w->tput[w->best]) b++;
    *lo = BS[a];
    *hi = BS[b];
}

static int narrative(lab *L, char *err, size_t n) {
    const blocksize *P = lab_result(L);
    const bs_workload *sg = &P->w[0], *al = &P->w[1];
    int rc = 0;
    rc |= lab_say(L, "OPT-13B, %.0f GiB of KV cache, %d requests waiting at once, block sizes 1 to 256.  "
                  "ShareGPT requests hold %.0f + %.0f tokens on average, Alpaca requests %.0f + %.0f.",
                  P->kv_gb, REQUESTS, sg->mean_prompt, sg->mean_output, al->mean_prompt, al->mean_output);
    rc |= lab_say(L, "Memory: at 16 tokens per block %.1f%% (ShareGPT) and %.1f%% (Alpaca) of the memory "
                  "held sits unused in blocks; at 256, %.1f%% and %.1f%%, and Alpaca runs %.0f requests at "
                  "once instead of %.0f.", sg->unused[B16], al->unused[B16], sg->unused[NB - 1],
                  al->unused[NB - 1], al->at_once[NB - 1], al->at_once[B16]);
    int slo, shi, alo, ahi;
    plateau(sg, 0.02, &slo, &shi);
    plateau(al, 0.02, &alo, &ahi);
    rc |= lab_say(L, "Kernel: block size 1 costs %.2fx the contiguous read, 16 costs %.2fx; the work is "
                  "lowest at %d on ShareGPT.  Together: the estimated throughput stays within 2%% of its best "
                  "from %d to %d tokens per block on ShareGPT and from %d to %d on Alpaca; 16 is %s.",
                  sg->kernel[0], sg->kernel[B16], BS[argmin(sg->kernel)], slo, shi, alo, ahi,
                  slo <= 16 && 16 <= shi && alo <= 16 && 16 <= ahi ? "inside both" : "not inside both");
    rc |= lab_todo(L, lab_fmt(L, "pagesim run --workload alpaca --block-size 256 --model "
                   "data/models/opt-13b.json --gpu A100-40GB --kv-gb %.3f --num-prompts %d --seed %llu",
                   P->kv_gb * GIB / 1e9, REQUESTS, (unsigned long long)lab_seed(L)),
                   "one point of Figure 1 with the simulator's full report (compare --block-size 16)");
    rc |= lab_todo(L, "pagesim --blocks 8 --block-size 16 --compare contiguous",
                   "the pool with big blocks: look at the empty slots of each sequence's last block");
    if (P->has_real)
        for (int k = 0; k < NW; k++)
            rc |= lab_say(L, "On the GPU (%s), %d %s-like requests at once: %.0f, %.0f and %.0f requests at once at "
                          "block sizes 16, 32 and 64 (simulated %.0f, %.0f, %.0f); %.0f, %.0f and %.0f output "
                          "tokens/s (simulated %.0f, %.0f, %.0f).", lab_real_where(L, &P->gpu[k][0]),
                          P->real_requests[k], P->w[k].name, P->gpu[k][0].at_once, P->gpu[k][1].at_once,
                          P->gpu[k][2].at_once, P->sim[k][0].at_once, P->sim[k][1].at_once, P->sim[k][2].at_once,
                          P->gpu[k][0].out_tok_s, P->gpu[k][1].out_tok_s, P->gpu[k][2].out_tok_s,
                          P->sim[k][0].out_tok_s, P->sim[k][1].out_tok_s, P->sim[k][2].out_tok_s);
    if (lab_seed(L) == LAB_PAPER_SEED) {
        rc |= lab_headline_add(L, &(lab_headline){ .what = "token share at block size 16, ShareGPT",
            .measured = sg->token[B16], .paper_lo = 96.3, .paper_hi = 96.3, .tol = 5, .unit = "%",
            .source = "vLLM paper, Fig. 2 (vLLM's bar)" });
        rc |= lab_headline_add(L, &(lab_headline){ .what = "best block size, ShareGPT",
            .measured = BS[sg->best], .paper_lo = 16, .paper_hi = 128, .tol = 0, .unit = "",
            .source = "vLLM paper, sec. 7.2: 16 to 128 perform best on ShareGPT" });
    }
    if (rc) snprintf(err, n, "out of memory");
    return rc ? -1 : 0;
}

const lab_def lab_blocksize = {
    .name = "blocksize",
    .title = "Block size: wasted memory against kernel work",
    .summary = "PagedAttention stores the KV cache in blocks of B tokens.  A sequence wastes at most the "
               "unused tail of its last block, so small blocks waste little memory; but the attention "
               "kernel pays a fixed cost for every block it visits, so small blocks cost more work per "
               "token.  You measure both from 1 to 256 tokens per block on long (ShareGPT) and short "
               "(Alpaca) requests, and see why vLLM uses 16.",
    .concepts = "block size, internal fragmentation, block table, kernel work per block, "
                "memory/compute trade-off",
    .minutes = 30,
    .seed_note = "the KV cache size (6-16 GiB) and the requests' lengths",
    .real_note = "120 ShareGPT-like and 400 Alpaca-like requests at once on the CUDA engine at block sizes 16, 32 "
                 "and 64 (its decode kernel's tensor-core sizes) in the same token slots: requests at once, unused "
                 "memory and tokens per second, measured beside simulated (Table 2, Figure 4)",
    .run = run, .figures = figures, .questions = questions, .narrative = narrative, .real = real,
    .free_result = free,
};
