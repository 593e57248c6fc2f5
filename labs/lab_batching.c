/* lab_batching: a plain generate() loop takes B prompts, runs them until
 * the longest has finished, then takes the next B (static batching); a
 * serving engine schedules every step anew: a finished sequence's place goes
 * to a waiting request at once (continuous batching).  The lab serves the
 * same offline batch of requests (all waiting at t = 0) both ways on the
 * sim/ core (sched_config.static_batching), with contiguous and paged KV
 * memory, and static batch sizes from 1 to 256.  The pool picture comes from
 * viz/scenario + viz/render.  Reads the model config and data/gpus.json. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "labs/lab_batching.h"
#include "labs/lab_content.h"
#include "labs/lab_kit.h"
#include "labs/lab_real_sheet.h"
#include "viz/render.h"
#include "viz/scenario.h"
#include "viz/xychart.h"

enum { NB = 8, REQUESTS = 512, TL_PTS = 120, B32 = 4, B64 = 5 };
enum { CONTIG, PAGED, NMEM };
static const int BATCH[NB] = { 1, 4, 8, 16, 32, 64, 128, 256 };
#define MODEL "data/models/qwen2.5-7b.json"
#define GPU "A100-40GB"
#define KV_GIB 18.0                  /* 0.9 x 40 GiB less 14.2 GiB of bf16 weights and activations */
#define MAX_LEN 2048

typedef struct bt_run { double tok_s, seconds, running; } bt_run;

typedef struct batching {
    wl_kind kind;
    double mean_prompt, mean_output;
    bt_run stat[NMEM][NB];           /* static batching, batch size BATCH[i] */
    bt_run cont[NMEM];               /* continuous batching, up to 256 sequences */
    /* running sequences over time: static (contiguous) batch 32, continuous (paged) */
    double tl_t[2][TL_PTS], tl_run[2][TL_PTS];
    int    tl_n[2];
    viz_scene pool;
    bool   has_pool;
    /* figure data */
    double xs[NB], tput[NMEM][NB], ratio[NB];
    viz_xy_series s_tput[NMEM], s_ratio[1], s_tl[2];
    viz_xy_mark m_tput[NMEM], m_ratio[2];
    /* --real: static batches of 32 and 64 (contiguous) and continuous batching (paged) on the engine */
    bool   has_real;
    int    real_requests;
    lab_real_meas gpu[3], sim[3];
    lab_real_view view;
} batching;

static void batching_free(void *p) {
    batching *B = p;
    if (B && B->has_pool) viz_scene_free(&B->pool);
    free(B);
}

/* Running sequences over time, averaged over TL_PTS windows of equal time. */
static void timeline(batching *B, int k, const sim_result *res) {
    if (res->num_steps == 0) return;
    double t1 = res->steps[res->num_steps - 1].time;
    int j = 0;
    for (int w = 0; w < TL_PTS; w++) {
        double a = t1 * w / TL_PTS, b = t1 * (w + 1) / TL_PTS, sum = 0, dt = 0;
        for (; j < res->num_steps && res->steps[j].time <= b; j++) {
            sum += res->steps[j].running * res->steps[j].dt;
            dt += res->steps[j].dt;
        }
        if (dt <= 0) continue;
        B->tl_t[k][B->tl_n[k]] = 0.5 * (a + b);
        B->tl_run[k][B->tl_n[k]] = sum / dt;
        B->tl_n[k]++;
    }
}

static int serve(batching *B, const cm_model *m, const wl_request *r, int nr, bool stat, int mem, int batch,
                 int tl, bt_run *o, char *err, size_t n) {
    sim_config c = sim_config_default();
    c.model = m;
    c.kv.num_blocks = lab_kit_blocks(m, KV_GIB, 16);
    c.kv.policy = mem == PAGED ? KV_PAGED : KV_CONTIGUOUS;
    c.kv.max_model_len = MAX_LEN;
    c.sched.static_batching = stat;
    c.sched.max_num_seqs = batch;
    c.keep_steps = tl >= 0;
    sim_result res;
    if (sim_run(&c, r, nr, &res, err, n) < 0) return -1;
    *o = (bt_run){ res.summary.out_tok_per_s, res.summary.sim_time, res.summary.mean_running };
    if (tl >= 0) timeline(B, tl, &res);
    sim_result_free(&res);
    return 0;
}

static int run(lab *L, char *err, size_t n) {
    batching *B = calloc(1, sizeof *B);
    if (!B) { snprintf(err, n, "out of memory"); return -1; }
    lab_set_result(L, B);
    cm_model m;
    if (lab_kit_model(&m, MODEL, GPU, err, n) < 0) return -1;
    B->kind = lab_pick(L, 1, 3) == 2 ? WL_ALPACA : WL_SHAREGPT;
    wl_spec sp = { .kind = B->kind, .num_requests = REQUESTS, .rate = 0, .seed = lab_seed(L), .max_len = MAX_LEN };
    wl_request *r = NULL;
    int nr = 0;
    if (wl_generate(&sp, &r, &nr, err, n) < 0) return -1;
    wl_stats(r, nr, &B->mean_prompt, &B->mean_output);
    int rc = 0;
    for (int mem = 0; mem < NMEM && rc == 0; mem++) {
        for (int i = 0; i < NB && rc == 0; i++)
            rc = serve(B, &m, r, nr, true, mem, BATCH[i], mem == CONTIG && i == B32 ? 0 : -1, &B->stat[mem][i], err, n);
        if (rc == 0) rc = serve(B, &m, r, nr, false, mem, 256, mem == PAGED ? 1 : -1, &B->cont[mem], err, n);
    }
    free(r);
    if (rc < 0) return -1;
    lab_table *t = lab_table_add(L, "batching", lab_fmt(L, "Table 1. %d requests waiting at once, Qwen2.5-7B on an "
        "A100-40GB: output tokens per second and simulated seconds to serve them all, by batching and KV memory; busy places: sequences running on average (static: "
        "contiguous; continuous: paged)",
        REQUESTS), "batching,batch_size,contiguous_tok_s,paged_tok_s,contiguous_s,paged_s,"
        "continuous_paged_vs_this,busy_places", true);
    if (!t) { snprintf(err, n, "out of memory"); return -1; }
    for (int i = 0; i < NB; i++) {
        double v[7] = { BATCH[i], B->stat[CONTIG][i].tok_s, B->stat[PAGED][i].tok_s, B->stat[CONTIG][i].seconds,
                        B->stat[PAGED][i].seconds, B->cont[PAGED].tok_s / B->stat[CONTIG][i].tok_s,
                        B->stat[CONTIG][i].running };
        if (lab_table_row(t, "static", v) < 0) { snprintf(err, n, "out of memory"); return -1; }
    }
    double v[7] = { 256, B->cont[CONTIG].tok_s, B->cont[PAGED].tok_s, B->cont[CONTIG].seconds, B->cont[PAGED].seconds,
                    B->cont[PAGED].tok_s / B->cont[CONTIG].tok_s, B->cont[PAGED].running };
    if (lab_table_row(t, "continuous", v) < 0) { snprintf(err, n, "out of memory"); return -1; }
    return 0;
}

/* ---- --real: static against continuous batching on the CUDA engine ---------------------- */

enum { REAL_REQUESTS = 128, REAL_BLOCKS = 64 * MAX_LEN / 16, REAL_RUNS = 3 };
static const char *REAL_KEY[REAL_RUNS] = { "static 32", "static 64", "continuous" };

/* The first REAL_REQUESTS of the lab's requests, all waiting at t = 0: a
 * generate() loop of 32 and of 64 (sched_config.static_batching through
 * eng_config, contiguous KV: 64 reservations of 2,048 fit the pool) and
 * continuous batching with paged KV (256 places). */
static int real(lab *L, char *err, size_t n) {
    batching *B = lab_result(L);
    wl_spec sp = { .kind = B->kind, .num_requests = REAL_REQUESTS, .rate = 0, .seed = lab_seed(L), .max_len = MAX_LEN };
    wl_request *r = NULL;
    int nr = 0;
    if (wl_generate(&sp, &r, &nr, err, n) < 0) return -1;
    static const int seqs[REAL_RUNS] = { 32, 64, 256 };
    for (int k = 0; k < REAL_RUNS; k++) {
        lab_real_setup s = { .policy = k < 2 ? KV_CONTIGUOUS : KV_PAGED, .block_size = 16, .num_blocks = REAL_BLOCKS,
                             .max_num_seqs = seqs[k], .static_batching = k < 2, .max_model_len = MAX_LEN,
                             .seed = lab_seed(L) };
        if (lab_real_measure(L, &s, r, nr, &B->gpu[k], &B->sim[k], err, n) < 0) { free(r); return -1; }
    }
    free(r);
    B->has_real = true;
    B->real_requests = nr;
    lab_real_view *v = &B->view;
    lab_real_view_init(v);
    v->ncat = REAL_RUNS;
    v->npanel = 2;
    v->panel[0] = "Output tokens per second"; v->unit[0] = "tokens / s"; v->col[0] = "tok_s"; v->fmt[0] = "%.0f";
    v->panel[1] = "Sequences running on average"; v->unit[1] = "sequences"; v->col[1] = "running"; v->fmt[1] = "%.1f";
    static const char *cat[REAL_RUNS] = { "static 32\n(generate())", "static 64\n(generate())", "continuous\n(paged)" };
    for (int k = 0; k < REAL_RUNS; k++) {
        v->cat[k] = cat[k];
        v->key[k] = REAL_KEY[k];
        v->sim[0][k] = B->sim[k].out_tok_s; v->gpu[0][k] = B->gpu[k].out_tok_s;
        v->sim[1][k] = B->sim[k].mean_running; v->gpu[1][k] = B->gpu[k].mean_running;
    }
    if (lab_real_view_table(L, v, "gpu", lab_fmt(L, "Table 2. Measured on the GPU against simulated (%s): %d "
        "requests waiting at once", lab_real_where(L, &B->gpu[0]), nr), err, n) < 0)
        return -1;
    return lab_real_runs_table(L, "gpu_runs", REAL_RUNS, REAL_KEY, B->gpu, B->sim, err, n);
}

/* ---- figures ------------------------------------------------------------------ */

/* A pool of 16 blocks of 4 slots under static batching of 4: eight short
 * requests and one long one; the step with the most free blocks while
 * requests wait for the batch's longest to finish. */
static int pool_picture(batching *B, uint64_t seed, char *err, size_t n) {
    static const int out[8] = { 3, 5, 6, 30, 4, 4, 6, 8 };
    wl_request req[8];
    for (int i = 0; i < 8; i++)
        req[i] = (wl_request){ .arrival = 0, .prompt_len = 4 + i % 3, .output_len = out[i], .n = 1, .prefix_id = -1 };
    viz_scenario_config c = viz_scenario_defaults(16, 4, seed);
    c.kv.prefix_caching = false;
    c.sched.static_batching = true;
    c.sched.max_num_seqs = 4;
    c.reqs = req;
    c.num_reqs = 8;
    viz_scenario *v = viz_scenario_create(&c, err, n);
    if (!v) return -1;
    int rc, best = -1;
    while ((rc = viz_scenario_step(v, err, n)) == 1) {
        const viz_scene *s = viz_scenario_scene(v);
        int idle = s->pool.c.blocks_total - s->pool.c.blocks_used;
        if (s->pool.queue_len[VIZ_Q_WAITING] == 0 || s->pool.queue_len[VIZ_Q_RUNNING] == 0 || idle <= best) continue;
        if (B->has_pool) viz_scene_free(&B->pool);
        B->has_pool = viz_scene_copy(&B->pool, s) == 0;
        if (!B->has_pool) { rc = -1; snprintf(err, n, "out of memory"); break; }
        best = idle;
    }
    viz_scenario_destroy(v);
    if (rc >= 0 && !B->has_pool) { snprintf(err, n, "the pool never kept requests waiting"); return -1; }
    return rc < 0 ? -1 : 0;
}

static void paint(cairo_t *cr) { cairo_set_source_rgb(cr, 1, 1, 1); cairo_paint(cr); }

static void draw_pool(cairo_t *cr, const void *ctx, double w, double h) {
    viz_render(cr, &((const batching *)ctx)->pool, w, h);
}

static void draw_tput(cairo_t *cr, const void *ctx, double w, double h) {
    const batching *B = ctx;
    paint(cr);
    viz_xy_chart a = { .title = "Output tokens per second", .x_label = "static batch size (generate() loop)",
                       .y_label = "tokens / s", .series = B->s_tput, .nseries = NMEM, .marks = B->m_tput,
                       .nmarks = 1, .log2_x = true, .y_min = 0, .y_format = "%g", .value_format = "%.0f" };
    viz_xy_chart b = { .title = "Continuous (paged) / static (contiguous)", .x_label = "static batch size",
                       .y_label = "times faster (batch 1, 4: off the top)", .series = B->s_ratio, .nseries = 1,
                       .marks = B->m_ratio, .nmarks = 2, .log2_x = true, .y_min = 0, .y_max = 20,
                       .y_format = "%g", .value_format = "%.1f" };
    viz_xy_draw(cr, &a, 8, 8, w / 2 - 16, h - 16);
    viz_xy_draw(cr, &b, w / 2 + 8, 8, w / 2 - 16, h - 16);
}

static void draw_timeline(cairo_t *cr, const void *ctx, double w, double h) {
    const batching *B = ctx;
    paint(cr);
    viz_xy_chart c = { .title = "Sequences running, averaged over short windows", .x_label = "simulated time (s)",
                       .y_label = "sequences", .series = B->s_tl, .nseries = 2, .y_min = 0, .y_format = "%g" };
    viz_xy_draw(cr, &c, 8, 8, w - 16, h - 16);
}

static int figures(lab *L, char *err, size_t n) {
    batching *B = lab_result(L);
    if (pool_picture(B, lab_seed(L), err, n) < 0) return -1;
    for (int i = 0; i < NB; i++) {
        B->xs[i] = BATCH[i];
        for (int mem = 0; mem < NMEM; mem++) B->tput[mem][i] = B->stat[mem][i].tok_s;
        B->ratio[i] = B->cont[PAGED].tok_s / B->stat[CONTIG][i].tok_s;
    }
    B->s_tput[0] = (viz_xy_series){ "static, contiguous KV", B->xs, B->tput[CONTIG], NB, true, true };
    B->s_tput[1] = (viz_xy_series){ "static, paged KV", B->xs, B->tput[PAGED], NB, false, false };
    B->m_tput[0] = (viz_xy_mark){ B->cont[PAGED].tok_s, false,
                                  lab_fmt(L, "continuous, paged: %.0f", B->cont[PAGED].tok_s), true };
    B->s_ratio[0] = (viz_xy_series){ "continuous / static", B->xs, B->ratio, NB, true, false };
    B->m_ratio[0] = (viz_xy_mark){ 2, false, "2x", true };
    B->m_ratio[1] = (viz_xy_mark){ 5, false, "5x: the notebook's 2-5x", true };
    B->s_tl[0] = (viz_xy_series){ "static batching, batch 32 (contiguous KV)", B->tl_t[0], B->tl_run[0], B->tl_n[0], false, false };
    B->s_tl[1] = (viz_xy_series){ "continuous batching (paged KV)", B->tl_t[1], B->tl_run[1], B->tl_n[1], false, false };
    int rc = 0;
    rc |= lab_figure(L, &(lab_figure_spec){ "pool", "Figure 1. Static batching of 4 in a pool of 16 blocks of 4 "
        "slots: three of the batch's requests have finished and left, their blocks are free, and the waiting "
        "requests still wait", "the free blocks and the waiting queue (right): nothing is admitted until the "
        "batch's longest request has finished.", 960, 600, draw_pool, B });
    rc |= lab_figure(L, &(lab_figure_spec){ "throughput", lab_fmt(L, "Figure 2. %d %s-like requests waiting at "
        "once (Qwen2.5-7B, A100-40GB): a generate() loop of batch B against continuous batching", REQUESTS,
        B->kind == WL_ALPACA ? "Alpaca" : "ShareGPT"), "left: how the static loop's throughput grows with B, "
        "and the continuous line above it; right: how many times faster continuous batching is, against the "
        "notebook's 2-5x band.", 900, 400, draw_tput, B });
    rc |= lab_figure(L, &(lab_figure_spec){ "timeline", "Figure 3. How many sequences run over time: a static "
        "batch of 32 against continuous batching, the same requests", "the saw teeth of the static loop: each "
        "batch starts full and empties as its requests finish, until the longest is done.", 900, 380,
        draw_timeline, B });
    if (rc) { snprintf(err, n, "out of memory"); return -1; }
    if (B->has_real)
        return lab_real_view_figure(L, &B->view, "gpu", lab_fmt(L, "Figure 4. On the GPU: %d of the requests, a "
            "generate() loop of 32 and of 64 against continuous batching (%s)", B->real_requests,
            lab_real_where(L, &B->gpu[0])), "each pair of bars: simulated (left) and measured (right).  How many "
            "times faster is continuous batching on the GPU, and how full are the static batches?", err, n);
    return 0;
}

/* ---- questions, narrative, headlines ------------------------------------------------ */

static int questions(lab *L, char *err, size_t n) {
    const batching *B = lab_result(L);
    int lo = 0;                                       /* the smallest B with a ratio under 5 */
    while (lo < NB && B->cont[PAGED].tok_s / B->stat[CONTIG][lo].tok_s >= 5) lo++;
    double sched_gain = B->cont[CONTIG].tok_s / B->stat[CONTIG][NB - 1].tok_s;
    double mem_gain = B->stat[PAGED][NB - 1].tok_s / B->stat[CONTIG][NB - 1].tok_s;
    int rc = 0;
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .predict = lab_fmt(L, "a static batch of 32 runs until its longest request is done; outputs here "
                           "average %.0f tokens, with a long tail.  Predict how many times faster continuous "
                           "batching serves the same requests.", B->mean_output),
        .text = "Read the ratio at batch 32.", .where = "Figure 2, right, at 32 (Table 1: continuous_paged_vs_this)",
        .unit = "times", .answer = B->cont[PAGED].tok_s / B->stat[CONTIG][B32].tok_s, .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many output tokens per second does the generate() loop reach with batch 8?",
        .where = "Figure 2, left, the static contiguous curve at 8 (Table 1)", .unit = "tokens/s",
        .answer = B->stat[CONTIG][2].tok_s, .tol = fmax(1.0, 0.005 * B->stat[CONTIG][2].tok_s) });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "From which static batch size on is continuous batching less than 5 times faster (inside the "
                "notebook's 2-5x)?", .where = "Figure 2, right, where the curve falls under the 5x line",
        .unit = "sequences per batch", .answer = lo < NB ? BATCH[lo] : 0, .tol = 0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "At batch 32, what share of the batch's places are empty on average (1 - sequences running / 32)?",
        .where = "Table 1, static 32, busy_places (Figure 3, the static curve)", .unit = "%",
        .answer = 100 * (1 - B->stat[CONTIG][B32].running / 32), .tol = 1 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_CHOICE,
        .text = "With 256 places either way, which buys more here: continuous scheduling (continuous against "
                "static, both contiguous) or paged memory (paged against contiguous, both static)?",
        .where = "Table 1: the continuous row's contiguous_tok_s and the static 256 row",
        .choices = "scheduling|memory", .correct = sched_gain > mem_gain ? "scheduling" : "memory" });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .text = "Why is a generate() loop slower than a serving engine on the same GPU, and why does the gap "
                "shrink as its batch grows?  What else would make Transformers' generate() slower than this "
                "simulation of it?",
        .key = "The loop runs a batch until its longest request finishes: the others' places stay empty (the "
               "saw teeth of Figure 3), and waiting requests cannot use them; a decode step costs almost the "
               "same for 8 or 64 sequences (it reads the weights once), so empty places are lost throughput.  "
               "Continuous batching refills each place at the next step.  A bigger batch amortises the weights "
               "over more sequences and keeps more places busy, so the gap shrinks, but the tail remains, and "
               "memory limits the batch (a contiguous cache reserves max-model-len per sequence).  Transformers "
               "also pads every prompt to the batch's longest, runs attention over the padding, and has more "
               "per-step overhead than a serving engine; none of that is in this simulation." });
    if (B->has_real)
        rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
            .text = lab_fmt(L, "On the GPU, continuous batching served %.2f times the output tokens per second of a "
                "generate() loop of 64 and %.2f times a loop of 32 (simulated on the same requests: %.2f and %.2f "
                "times).  Is that inside the notebook's 2-5x?  The engine's loop still schedules like a server "
                "(paged or contiguous KV, no padding): what would a real Transformers generate() add?",
                B->gpu[2].out_tok_s / B->gpu[1].out_tok_s, B->gpu[2].out_tok_s / B->gpu[0].out_tok_s,
                B->sim[2].out_tok_s / B->sim[1].out_tok_s, B->sim[2].out_tok_s / B->sim[0].out_tok_s),
            .key = "The static loop waits for each batch's longest request: its places empty as the short ones "
                   "finish (the busy places in Table 2), while continuous batching refills them, so it decodes "
                   "more sequences per step at almost the same step time.  The engine's static mode only changes "
                   "when requests are admitted; a Transformers generate() loop also pads every prompt to the "
                   "batch's longest, computes attention over the padding, keeps finished sequences in the batch "
                   "(generating padding until the longest stops), and runs Python per step, so it would be slower "
                   "still and the ratio larger." });
    if (rc) snprintf(err, n, "a question could not be added");
    return rc ? -1 : 0;
}

static int narrative(lab *L, char *err, size_t n) {
    const batching *B = lab_result(L);
    int rc = 0;
    rc |= lab_say(L, "Qwen2.5-7B on an A100-40GB with %.0f GiB of KV cache; %d %s-like requests (%.0f + %.0f tokens) "
                  "all waiting at t = 0, as in a notebook benchmark.  A generate() loop takes B of them, runs "
                  "until the longest is done, then takes the next B; a serving engine refills each place at once "
                  "(continuous batching, up to 256 sequences).", KV_GIB, REQUESTS,
                  B->kind == WL_ALPACA ? "Alpaca" : "ShareGPT", B->mean_prompt, B->mean_output);
    rc |= lab_say(L, "The loop serves %.0f output tokens/s with batch 1, %.0f with 8, %.0f with 32 and %.0f with 256; "
                  "continuous batching serves %.0f (%.0f with a contiguous KV cache): %.1fx the loop at 32, %.1fx "
                  "at 64, %.1fx at 128.  A batch of 32 keeps %.1f places busy on average.",
                  B->stat[CONTIG][0].tok_s, B->stat[CONTIG][2].tok_s, B->stat[CONTIG][B32].tok_s,
                  B->stat[CONTIG][NB - 1].tok_s, B->cont[PAGED].tok_s, B->cont[CONTIG].tok_s,
                  B->cont[PAGED].tok_s / B->stat[CONTIG][B32].tok_s, B->cont[PAGED].tok_s / B->stat[CONTIG][B64].tok_s,
                  B->cont[PAGED].tok_s / B->stat[CONTIG][B64 + 1].tok_s, B->stat[CONTIG][B32].running);
    rc |= lab_todo(L, lab_fmt(L, "pagesim run --workload %s --num-prompts %d --static-batching --max-num-seqs 32 "
                   "--policy contiguous --model %s --gpu %s --kv-gb %.2f --seed %llu",
                   B->kind == WL_ALPACA ? "alpaca" : "sharegpt", REQUESTS, MODEL, GPU, KV_GIB * LAB_KIT_GIB / 1e9,
                   (unsigned long long)lab_seed(L)), "the generate() loop of batch 32 with the simulator's full "
                   "report; drop --static-batching and --policy for the serving engine");
    rc |= lab_todo(L, "pagesim --blocks 16", "the classroom pool with continuous batching: a finished request's "
                   "blocks go to a waiting one at the next step");
    if (B->has_real)
        rc |= lab_say(L, "On the GPU (%s), %d of these requests: a generate() loop of 32 served %.0f output tokens/s, "
                      "of 64 %.0f, continuous batching %.0f: %.2fx the loop of 64 (simulated on the same requests: "
                      "%.0f, %.0f and %.0f, %.2fx).  The static batches kept %.1f and %.1f places busy on average "
                      "(simulated %.1f and %.1f).", lab_real_where(L, &B->gpu[0]), B->real_requests, B->gpu[0].out_tok_s,
                      B->gpu[1].out_tok_s, B->gpu[2].out_tok_s, B->gpu[2].out_tok_s / B->gpu[1].out_tok_s,
                      B->sim[0].out_tok_s, B->sim[1].out_tok_s, B->sim[2].out_tok_s,
                      B->sim[2].out_tok_s / B->sim[1].out_tok_s, B->gpu[0].mean_running, B->gpu[1].mean_running,
                      B->sim[0].mean_running, B->sim[1].mean_running);
    if (lab_seed(L) == LAB_PAPER_SEED)
        rc |= lab_headline_add(L, &(lab_headline){ .what = "continuous / static, generate() batch 64",
            .measured = B->cont[PAGED].tok_s / B->stat[CONTIG][B64].tok_s, .paper_lo = 2, .paper_hi = 5, .tol = 0,
            .unit = "x", .source = "the seed notebook's expectation: vLLM 2-5x faster than Transformers",
            .gap = lab_fmt(L, "the notebook's batch size is not known here: batch 32 gives %.1fx, 128 gives %.1fx; "
                           "Transformers' padding and per-step overhead are not simulated",
                           B->cont[PAGED].tok_s / B->stat[CONTIG][B32].tok_s,
                           B->cont[PAGED].tok_s / B->stat[CONTIG][B64 + 1].tok_s) });
    if (rc) snprintf(err, n, "out of memory");
    return rc ? -1 : 0;
}

const lab_def lab_batching = {
    .name = "batching",
    .title = "Batching: a generate() loop against continuous batching",
    .summary = "A plain generate() loop batches B prompts and runs them until the longest has finished (static "
               "batching); a serving engine such as vLLM decides the batch again at every step, so a finished "
               "request's place goes to a waiting one at once (continuous batching).  You serve the same requests "
               "both ways, with contiguous and paged KV memory and batch sizes from 1 to 256, and check the seed "
               "notebook's expectation that vLLM is 2-5x faster than Transformers.",
    .concepts = "static batching, continuous (iteration-level) batching, batch size, throughput, tail of a batch, "
                "memory-bound decode",
    .minutes = 30,
    .seed_note = "the requests, ShareGPT- or Alpaca-like",
    .real_note = "128 of the requests on the CUDA engine: a generate() loop of 32 and of 64 (static batching, "
                 "contiguous KV) against continuous batching (paged): tokens per second and busy places, measured "
                 "beside simulated (Table 2, Figure 4)",
    .run = run, .figures = figures, .questions = questions, .narrative = narrative, .real = real,
    .free_result = batching_free,
};
