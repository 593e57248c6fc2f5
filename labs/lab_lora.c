/* lab_lora: serving a LoRA fine-tune merged (the adapter folded into the
 * weights: the base model's speed and memory, one model per fine-tune)
 * against runtime LoRA (one base model, adapters in max_loras GPU slots of
 * rank r: fewer KV blocks, and extra kernels every step), the seed
 * notebook's comparison.  The simulation is labs/lab_lora_run.c, --real
 * (the same comparison on the CUDA engine) labs/lab_lora_real.c; this file
 * is the worksheet: figures, questions, narrative and the lab's def. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "labs/lab_content.h"
#include "labs/lab_kit.h"
#include "labs/lab_lora.h"
#include "labs/lab_lora_impl.h"

static void paint(cairo_t *cr) { cairo_set_source_rgb(cr, 1, 1, 1); cairo_paint(cr); }

static void draw_memory(cairo_t *cr, const void *ctx, double w, double h) {
    const lab_lora_res *Z = ctx;
    paint(cr);
    viz_xy_chart c = { .title = "KV cache blocks left", .x_label = "max_loras (adapter slots on the GPU)",
                       .y_label = "KV blocks of 16 tokens", .series = Z->s_mem, .nseries = LAB_LORA_NRANKS,
                       .marks = Z->m_mem, .nmarks = 1, .log2_x = true, .y_min = 0,
                       .y_max = 1.25 * (double)Z->off.num_blocks, .y_format = "%g",
                       .value_format = "%.0f" };
    viz_xy_draw(cr, &c, 8, 8, w - 16, h - 16);
}

static void draw_speed(cairo_t *cr, const void *ctx, double w, double h) {
    const lab_lora_res *Z = ctx;
    paint(cr);
    viz_bar_chart a = { .title = "Output tokens per second", .y_label = "tokens / s", .categories = Z->cats,
                        .ncats = LAB_LORA_NCASES, .nseries = 1, .values = Z->bars, .value_format = "%.0f" };
    viz_xy_chart b = { .title = "One decode step", .x_label = "sequences in the step", .y_label = "ms",
                       .series = Z->s_step, .nseries = 3, .log2_x = true, .y_min = 0, .y_format = "%g",
                       .value_format = "%.1f" };
    viz_bar_draw(cr, &a, 8, 8, w / 2 - 16, h - 16);
    viz_xy_draw(cr, &b, w / 2 + 8, 8, w / 2 - 16, h - 16);
}

static void draw_adapters(cairo_t *cr, const void *ctx, double w, double h) {
    const lab_lora_res *Z = ctx;
    paint(cr);
    viz_xy_chart c = { .title = "Output tokens per second by adapters in the workload",
                       .x_label = "different adapters among the requests", .y_label = "tokens / s",
                       .series = Z->s_adapt, .nseries = 2, .marks = Z->m_adapt, .nmarks = 1, .log2_x = true,
                       .y_min = 0, .y_format = "%g", .value_format = "%.0f" };
    viz_xy_draw(cr, &c, 8, 8, w - 16, h - 16);
}

static void draw_deploy(cairo_t *cr, const void *ctx, double w, double h) {
    const lab_lora_res *Z = ctx;
    paint(cr);
    viz_xy_chart c = { .title = "GPU memory for the weights of N fine-tunes", .x_label = "fine-tunes served (N)",
                       .y_label = "GiB", .series = Z->s_ft, .nseries = 2, .marks = Z->m_ft, .nmarks = 1,
                       .log2_x = true, .y_min = 0, .y_format = "%g", .value_format = "%.0f" };
    viz_xy_draw(cr, &c, 8, 8, w - 16, h - 16);
}

static void figure_data(lab *L, lab_lora_res *Z) {
    for (int i = 0; i < LAB_LORA_NSLOTS; i++) {
        Z->x_slots[i] = LAB_LORA_SLOTS[i];
        for (int k = 0; k < LAB_LORA_NRANKS; k++) Z->y_blocks[k][i] = (double)Z->mem[k][i].num_blocks;
    }
    for (int k = 0; k < LAB_LORA_NRANKS; k++)
        Z->s_mem[k] = (viz_xy_series){ lab_fmt(L, "rank %d%s", LAB_LORA_RANKS[k],
                                               LAB_LORA_RANKS[k] == Z->rank ? " (yours)" : ""),
                                       Z->x_slots, Z->y_blocks[k], LAB_LORA_NSLOTS, k == LAB_LORA_NRANKS - 1, true };
    Z->m_mem[0] = (viz_xy_mark){ (double)Z->off.num_blocks, false,
                                 lab_fmt(L, "LoRA off (a merged model): %ld", Z->off.num_blocks), false };
    static const char *cat[LAB_LORA_NCASES] = { "merged", "runtime,\n1 adapter", "runtime,\n8 adapters",
                                            "runtime, 16\nover 8 slots" };
    for (int k = 0; k < LAB_LORA_NCASES; k++) { Z->cats[k] = cat[k]; Z->bars[k] = Z->cs[k].tok_s; }
    for (int i = 0; i < LAB_LORA_NBATCH; i++) Z->x_batch[i] = LAB_LORA_BATCH[i];
    static const char *step[3] = { "merged", "runtime, 1 adapter", "runtime, up to 8 adapters" };
    for (int s = 0; s < 3; s++)
        Z->s_step[s] = (viz_xy_series){ step[s], Z->x_batch, Z->step_ms[s], LAB_LORA_NBATCH, s == 0, s == 0 };
    for (int i = 0; i < LAB_LORA_NADAPT; i++) {
        Z->x_adapt[i] = LAB_LORA_ADAPT[i];
        for (int s = 0; s < 2; s++) Z->y_adapt[s][i] = Z->ad[s][i].tok_s;
    }
    Z->s_adapt[0] = (viz_xy_series){ "8 slots (max_loras 8)", Z->x_adapt, Z->y_adapt[0], LAB_LORA_NADAPT, true, true };
    Z->s_adapt[1] = (viz_xy_series){ "a slot for each adapter (max_loras = adapters)", Z->x_adapt, Z->y_adapt[1],
                                     LAB_LORA_NADAPT, false, false };
    Z->m_adapt[0] = (viz_xy_mark){ 8, true, "8 slots", false };
    for (int i = 0; i < LAB_LORA_NFT; i++) {
        Z->x_ft[i] = LAB_LORA_FT[i];
        Z->y_ft[0][i] = LAB_LORA_FT[i] * Z->weights_gib;
        Z->y_ft[1][i] = Z->weights_gib + LAB_LORA_FT[i] * Z->slot_gib;
    }
    Z->s_ft[0] = (viz_xy_series){ "N merged models", Z->x_ft, Z->y_ft[0], LAB_LORA_NFT, true, false };
    Z->s_ft[1] = (viz_xy_series){ lab_fmt(L, "one base + N slots of rank %d", Z->rank), Z->x_ft, Z->y_ft[1],
                                  LAB_LORA_NFT, true, true };
    Z->m_ft[0] = (viz_xy_mark){ Z->off.budget_bytes / LAB_KIT_GIB, false,
                                lab_fmt(L, "one %s at 0.9: %.0f GiB", Z->gpu, Z->off.budget_bytes / LAB_KIT_GIB),
                                true };
}

static int figures(lab *L, char *err, size_t n) {
    lab_lora_res *Z = lab_result(L);
    figure_data(L, Z);
    int rc = 0;
    rc |= lab_figure(L, &(lab_figure_spec){ "memory", lab_fmt(L, "Figure 1. Runtime LoRA's adapter slots come out "
        "of the KV cache: Qwen2.5-7B on one %s, max-model-len %d", Z->gpu, LAB_LORA_MAX_LEN), "how many blocks each "
        "doubling of max_loras costs, and how much more at rank 64 than at rank 8.", 900, 420, draw_memory, Z });
    rc |= lab_figure(L, &(lab_figure_spec){ "speed", lab_fmt(L, "Figure 2. %d ShareGPT-like requests waiting at "
        "once, adapters of rank %d: a merged model against runtime LoRA (left); one decode step by batch size "
        "(right)", LAB_LORA_REQUESTS, Z->rank), "left: what one adapter costs, and what 8 cost; right: the gap between "
        "the lines, and how it compares to the step at batch 1 and at batch 128.", 960, 420, draw_speed, Z });
    rc |= lab_figure(L, &(lab_figure_spec){ "adapters", "Figure 3. The same requests spread over more and more "
        "adapters: 8 GPU slots against a slot for each", "what happens between 8 and 9 adapters with 8 slots (a "
        "request without a slot is passed over, as vLLM does), and what a slot for every adapter costs further right.",
        900, 400, draw_adapters, Z });
    rc |= lab_figure(L, &(lab_figure_spec){ "deploy", "Figure 4. Serving N fine-tunes: N merged models need N copies "
        "of the weights; runtime LoRA one copy and N small slots", "where each line crosses one GPU's budget.", 900,
        380, draw_deploy, Z });
    if (rc) { snprintf(err, n, "out of memory"); return -1; }
    return lab_lora_real_figure(L, err, n);
}

/* ---- questions ---------------------------------------------------------------- */

static int questions(lab *L, char *err, size_t n) {
    const lab_lora_res *Z = lab_result(L);
    int kr = 0;
    while (LAB_LORA_RANKS[kr] != Z->rank) kr++;
    const plan_result *p8 = &Z->mem[kr][LAB_LORA_SLOTS8], *p64 = &Z->mem[LAB_LORA_NRANKS - 1][LAB_LORA_NSLOTS - 1];
    double room = (Z->off.budget_bytes - Z->off.activation_bytes - Z->off.non_torch_bytes) / LAB_KIT_GIB;
    int rc = 0;
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .predict = lab_fmt(L, "one adapter slot of rank %d holds A and B for every linear layer of the 7B model "
                           "(about %.0f MiB).  Predict what share of the KV cache 8 slots take.", Z->rank,
                           Z->slot_gib * 1024),
        .text = lab_fmt(L, "What share of the KV blocks do 8 slots of rank %d take (1 - blocks with 8 slots / blocks "
                        "with LoRA off)?", Z->rank),
        .where = lab_fmt(L, "Table 1, rows off and 8, column blocks_r%d (Figure 1)", Z->rank), .unit = "%",
        .answer = 100.0 * (1.0 - (double)p8->num_blocks / (double)Z->off.num_blocks), .tol = 0.3 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = lab_fmt(L, "How many requests of %d tokens fit at once with 64 slots of rank 64?", LAB_LORA_MAX_LEN),
        .where = "Table 1, row 64, column at_once_r64 (Figure 1, rank 64)", .unit = "requests",
        .answer = p64->max_concurrency, .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "Runtime LoRA with a single adapter: its throughput as a share of the merged model's?",
        .where = "Table 2, runtime, 1 adapter: vs_merged (Figure 2, left)", .unit = "%",
        .answer = 100.0 * Z->cs[LAB_LORA_RT1].tok_s / Z->cs[LAB_LORA_MERGED].tok_s, .tol = 0.5 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "How many milliseconds does runtime LoRA with up to 8 adapters add to a decode step of 32 sequences?",
        .where = "Table 3, batch 32: added_8_ms (Figure 2, right)", .unit = "ms",
        .answer = Z->step_ms[2][LAB_LORA_B32] - Z->step_ms[0][LAB_LORA_B32], .tol = 0.05 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = "With 8 slots, requests of 9 adapters instead of 8: the throughput with 9 as a share of that with 8?",
        .where = "Table 4, tok_s_8_slots at 9 and at 8 (Figure 3)", .unit = "%",
        .answer = 100.0 * Z->ad[0][LAB_LORA_A9].tok_s / Z->ad[0][LAB_LORA_A8].tok_s, .tol = 1 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER,
        .text = lab_fmt(L, "At least how many %s GPUs hold the weights of 8 merged fine-tunes (each GPU: weights "
                        "under its 0.9 budget, less the activations and other memory, %.1f GiB)?", Z->gpu, room),
        .where = "Table 5, 8 fine-tunes: merged_gpus (Figure 4)", .unit = "GPUs",
        .answer = ceil(8 / floor(room / Z->weights_gib)), .tol = 0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_CHOICE,
        .text = "You serve one fine-tune (the notebook's Text-to-SQL model) to a few users at a time, and each "
                "reply's latency matters.  Merged or runtime?",
        .where = "Figure 2, right: the step at batch 1 to 8", .choices = "merged|runtime",
        .correct = Z->step_ms[1][0] > Z->step_ms[0][0] ? "merged" : "runtime" });
    if (Z->has_real) rc |= lab_lora_real_question(L);      /* the same question, with the GPU's numbers */
    else rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .text = "Why does runtime LoRA cost time even with one adapter, and why less than a few percent of a big "
                "batch's step?  When would you merge, and when serve adapters at run time?",
        .key = "Runtime LoRA runs two extra small kernels per adapted linear (shrink v = A x, expand y += B v) "
               "in every step with an adapter's token: 7 linears x 28 layers x 2 here.  Their FLOPs (2 r (in + "
               "out) per token) and weights (r (in + out) per adapter) are tiny next to the base model's, but "
               "each kernel has a fixed cost of a few microseconds, so the step pays about 1.6 ms whatever the "
               "batch: a large share at batch 1, a few percent at batch 128.  More adapters add their slots' "
               "bytes (each read once a step).  The slots also take KV memory (Table 1), fewer sequences fit, "
               "and the scheduler runs at most max_loras adapters at once: a request of another adapter waits "
               "for a slot to empty while later requests of loaded adapters pass it (as vLLM's scheduler does), "
               "so fewer sequences run and the loss grows with the adapters beyond the slots.  Merge when one "
               "fine-tune serves most "
               "traffic and latency "
               "counts: base speed and memory.  Serve at run time when many fine-tunes share a base: N merged "
               "models need N copies of the weights (Figure 4), runtime LoRA one copy and N small slots, and "
               "requests of every adapter share one batch." });
    if (rc) snprintf(err, n, "a question could not be added");
    return rc ? -1 : 0;
}

/* ---- narrative, headlines ------------------------------------------------------ */

static int headlines(lab *L, const lab_lora_res *Z) {
    int rc = 0;
    rc |= lab_headline_add(L, &(lab_headline){
        .what = "added to a decode step of 32 sequences, runtime LoRA, 1 adapter",
        .measured = Z->step_ms[1][LAB_LORA_B32] - Z->step_ms[0][LAB_LORA_B32], .paper_lo = 2, .paper_hi = 2, .tol = 1,
        .unit = "ms", .source = "Punica (Chen et al. 2023): \"only adding 2 ms latency per token\" (published)",
        .gap = "the LoRA kernel's fixed cost (4 us) was chosen knowing Punica's figure: this checks the order of "
               "magnitude, it does not reproduce a measurement" });
    rc |= lab_headline_add(L, &(lab_headline){ .what = "throughput lost, 8 adapters mixed against the merged model",
        .measured = 100.0 * (1.0 - Z->cs[LAB_LORA_RT8].tok_s / Z->cs[LAB_LORA_MERGED].tok_s),
        .paper_lo = 5, .paper_hi = 40,
        .tol = 0, .unit = "%", .source = "S-LoRA (Sheng et al. 2023): runtime LoRA costs a few tens of percent of "
        "throughput at most (read as 5-40%; published, not measured here)",
        .gap = "S-LoRA's own kernels, Llama 7-30B on A100s and its traces; here vLLM-like kernels in the cost model" });
    return rc;
}

static int narrative(lab *L, char *err, size_t n) {
    const lab_lora_res *Z = lab_result(L);
    int kr = 0;
    while (LAB_LORA_RANKS[kr] != Z->rank) kr++;
    const plan_result *p8 = &Z->mem[kr][LAB_LORA_SLOTS8];
    const lab_lora_case *c = Z->cs;
    int rc = 0;
    rc |= lab_say(L, "Qwen2.5-7B (bf16, %.1f GiB of weights) on one %s; adapters of rank %d on every linear layer "
                  "(%.0f MiB a slot).  A merged model is the base model with the adapter folded in: its speed and "
                  "its memory, one model per fine-tune.  Runtime LoRA keeps one base model and max_loras adapter "
                  "slots on the GPU, taken from the KV cache, and adds two small kernels per linear layer to every "
                  "step that serves an adapter.", Z->weights_gib, Z->gpu, Z->rank, Z->slot_gib * 1024);
    rc |= lab_say(L, "Memory: LoRA off leaves %ld KV blocks (%.2f requests of %d tokens at once); 8 slots of rank %d "
                  "leave %ld (%.1f%% fewer, %.2f requests); 64 slots of rank 64 leave %ld.",
                  Z->off.num_blocks, Z->off.max_concurrency, LAB_LORA_MAX_LEN, Z->rank, p8->num_blocks,
                  100.0 * (1.0 - (double)p8->num_blocks / (double)Z->off.num_blocks), p8->max_concurrency,
                  Z->mem[LAB_LORA_NRANKS - 1][LAB_LORA_NSLOTS - 1].num_blocks);
    rc |= lab_say(L, "Speed, %d ShareGPT-like requests waiting at once: merged %.0f output tokens/s; runtime LoRA with "
                  "1 adapter %.0f (%.1f%% less), with 8 adapters mixed %.0f (%.1f%% less), 16 adapters over 8 slots "
                  "%.0f.  A decode step of 32 sequences takes %.1f ms merged, %.1f ms with 1 adapter, %.1f ms with 8; "
                  "at batch 1, %.1f against %.1f ms (%.0f%% slower).", LAB_LORA_REQUESTS, c[0].tok_s, c[1].tok_s,
                  100 * (1 - c[1].tok_s / c[0].tok_s), c[2].tok_s, 100 * (1 - c[2].tok_s / c[0].tok_s), c[3].tok_s,
                  Z->step_ms[0][LAB_LORA_B32], Z->step_ms[1][LAB_LORA_B32], Z->step_ms[2][LAB_LORA_B32],
                  Z->step_ms[0][0],
                  Z->step_ms[1][0], 100 * (Z->step_ms[1][0] / Z->step_ms[0][0] - 1));
    rc |= lab_say(L, "The scheduler runs at most max_loras adapters at once (vLLM's --max-loras): with 8 slots, 8 "
                  "adapters serve %.0f tokens/s and 9 adapters %.0f (%.1f sequences running on average against "
                  "%.1f): a request whose adapter finds no free slot waits until one of the 8 adapters has no "
                  "sequence left; the scheduler passes over it for that step and admits later requests whose "
                  "adapters are loaded (as vLLM's V1 scheduler does), but until a slot frees the ninth adapter's "
                  "requests do not run, so fewer sequences share each step.  A slot for each of 32 adapters "
                  "gives %.0f tokens/s.",
                  Z->ad[0][LAB_LORA_A8].tok_s, Z->ad[0][LAB_LORA_A9].tok_s, Z->ad[0][LAB_LORA_A9].running,
                  Z->ad[0][LAB_LORA_A8].running, Z->ad[1][LAB_LORA_NADAPT - 1].tok_s);
    rc |= lab_say(L, "Published numbers, not measured here: Punica (Chen et al. 2023) reports that its batched LoRA "
                  "kernels add about 2 ms per token; S-LoRA (Sheng et al. 2023) serves thousands of adapters on "
                  "one GPU, where merged copies (its vLLM-packed baseline) run out of memory at a few, at a cost of "
                  "a few tens of percent of throughput at most.  The cost model's LoRA term (sim/cost_lora.c) "
                  "charges 4 us per LoRA kernel, chosen knowing Punica's figure, plus the adapters' FLOPs and "
                  "bytes: its +%.1f ms at batch 32 checks the order of magnitude, it is not a measurement.  Not "
                  "simulated: copying an adapter into a free slot when its first request arrives, adapters of "
                  "different ranks in one batch, LoRA on the embeddings and the lm_head.",
                  Z->step_ms[1][LAB_LORA_B32] - Z->step_ms[0][LAB_LORA_B32]);
    rc |= lab_lora_real_say(L);
    rc |= lab_todo(L, lab_fmt(L, "pagesim plan --model %s --gpu %s --max-model-len %d --enable-lora --max-loras 8 "
                   "--max-lora-rank %d", LAB_LORA_MODEL, Z->gpu, LAB_LORA_MAX_LEN, Z->rank),
                   "the planner's report with "
                   "8 adapter slots (the \"LoRA adapter slots\" line); drop the last three options for LoRA off");
    rc |= lab_todo(L, lab_fmt(L, "engine/bench --dummy-weights %s --workload fixed --num-requests 1024 "
                   "--prompt-len 512 --output-len 96 --enable-lora --max-lora-rank %d --max-loras 8 --lora-dummy 8",
                   LAB_LORA_MODEL, Z->rank),
                   "on a GPU: runtime LoRA measured on the engine, 8 random adapters mixed (--lora-dummy 1: one "
                   "adapter; without the LoRA options: the base model, which is what a merged model runs at)");
    if (lab_seed(L) == LAB_PAPER_SEED) rc |= headlines(L, Z);
    if (rc) snprintf(err, n, "out of memory");
    return rc ? -1 : 0;
}

const lab_def lab_lora = {
    .name = "lora",
    .title = "LoRA: a merged model against adapters at run time",
    .summary = "A LoRA fine-tune can be served merged (the adapter folded into the weights: the base model's speed "
               "and memory, one model per fine-tune) or at run time (one base model, adapters in GPU slots, many "
               "fine-tunes in one batch).  You compare the two as the seed notebook does, in simulation: the KV "
               "memory the adapter slots take, throughput and step time with 1 and 8 adapters, the scheduler's "
               "limit of max_loras adapters at once, and the memory N merged models need.",
    .concepts = "LoRA, merged weights, runtime adapters, adapter slots (max_loras, max_lora_rank), KV budget, "
                "kernel overhead, scheduling by adapter",
    .minutes = 30,
    .seed_note = "the GPU (A100-80GB, H100 or H200), the adapters' rank (8-64) and the requests",
    .real_note = "the speed cases on the CUDA engine (random weights of Qwen3-0.6B's shape, random adapters of the "
                 "lab's rank): merged, runtime LoRA with 1 adapter, 8 adapters mixed, 16 over 8 slots; output "
                 "tokens per second, KV blocks and time per output token, measured beside simulated (Table 6, "
                 "Figure 5)",
    .run = lab_lora_simulate, .figures = figures, .questions = questions, .narrative = narrative,
    .real = lab_lora_real,
    .free_result = lab_lora_free,
};
