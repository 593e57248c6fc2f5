/* lab_lora_real: the LoRA lab's --real, the seed notebook's comparison on
 * the CUDA engine.  The speed section's four cases (a merged model, runtime
 * LoRA with one adapter for every request, 8 adapters mixed in the batch, 16
 * adapters over 8 GPU slots) run on the engine with random weights of
 * Qwen3-0.6B's shape and random all-linear adapters of the lab's rank
 * (lab_real_setup's LoRA settings: engine/lora_set.h's dummy adapters; a
 * merged checkpoint has the base model's shapes and kernels, so "merged" is
 * the base model), the KV pool sized by the engine's memory plan at
 * gpu_memory_utilization 0.9 (the adapter slots come out of it).  Beside
 * each run, the same requests and settings simulated (lab_real_simulate:
 * the cost model's LoRA term, sim/cost_lora.h, and the planner's pool).
 * Output tokens per second, KV blocks and mean time per output token go into
 * a table, a figure, a question and a paragraph.  Prints nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "labs/lab_content.h"
#include "labs/lab_lora_impl.h"

enum { REAL_REQUESTS = 256, REAL_MAX_LEN = 2048 };
static const int ADAPTERS[LAB_LORA_NCASES] = { 0, 1, 8, 16 }, SLOTS[LAB_LORA_NCASES] = { 0, 1, 8, 8 };
static const char *KEY[LAB_LORA_NCASES] = { "merged", "runtime, 1 adapter", "runtime, 8 adapters",
                                            "runtime, 16 adapters, 8 slots" };

/* The view: per case, measured beside simulated, three panels. */
static void view(lab_lora_res *Z) {
    lab_real_view *v = &Z->view;
    lab_real_view_init(v);
    v->ncat = LAB_LORA_NCASES;
    v->npanel = 3;
    v->panel[0] = "Output tokens per second"; v->unit[0] = "tokens / s"; v->col[0] = "tok_s"; v->fmt[0] = "%.0f";
    v->panel[1] = "KV cache blocks"; v->unit[1] = "blocks of 16 tokens"; v->col[1] = "kv_blocks"; v->fmt[1] = "%.0f";
    v->panel[2] = "Mean time per output token"; v->unit[2] = "ms"; v->col[2] = "tpot_ms"; v->fmt[2] = "%.1f";
    static const char *cat[LAB_LORA_NCASES] = { "merged", "runtime,\n1 adapter", "runtime,\n8 adapters",
                                                "runtime, 16\nover 8 slots" };
    for (int k = 0; k < LAB_LORA_NCASES; k++) {
        v->cat[k] = cat[k];
        v->key[k] = KEY[k];
        v->sim[0][k] = Z->rsim[k].out_tok_s; v->gpu[0][k] = Z->rgpu[k].out_tok_s;
        v->sim[1][k] = Z->rsim[k].num_blocks; v->gpu[1][k] = Z->rgpu[k].num_blocks;
        v->sim[2][k] = 1e3 * Z->rsim[k].tpot_mean; v->gpu[2][k] = 1e3 * Z->rgpu[k].tpot_mean;
    }
}

int lab_lora_real(lab *L, char *err, size_t n) {
    lab_lora_res *Z = lab_result(L);
    wl_spec sp = { .kind = WL_SHAREGPT, .num_requests = REAL_REQUESTS, .rate = 0, .seed = lab_seed(L),
                   .max_len = REAL_MAX_LEN };
    wl_request *r = NULL;
    int nr = 0;
    if (wl_generate(&sp, &r, &nr, err, n) < 0) return -1;
    for (int k = 0; k < LAB_LORA_NCASES; k++) {
        lab_lora_assign(r, nr, ADAPTERS[k], lab_seed(L));
        lab_real_setup s = { .policy = KV_PAGED, .block_size = 16, .gpu_memory_utilization = 0.9,
                             .max_num_seqs = 256, .max_model_len = REAL_MAX_LEN, .max_loras = SLOTS[k],
                             .max_lora_rank = Z->rank, .lora_adapters = ADAPTERS[k], .seed = lab_seed(L) };
        if (lab_real_measure(L, &s, r, nr, &Z->rgpu[k], &Z->rsim[k], err, n) < 0) { free(r); return -1; }
    }
    double mp, mo;
    wl_stats(r, nr, &mp, &mo);
    free(r);
    Z->has_real = true;
    Z->real_requests = nr;
    view(Z);
    if (lab_real_view_table(L, &Z->view, "gpu", lab_fmt(L, "Table 6. Measured on the GPU against simulated (%s): "
        "%d ShareGPT-like requests waiting at once (%.0f + %.0f tokens), adapters of rank %d on every linear layer, "
        "the KV pool what gpu-memory-utilization 0.9 leaves: output tokens per second, KV blocks, mean time per "
        "output token", lab_real_where(L, &Z->rgpu[0]), nr, mp, mo, Z->rank), err, n) < 0)
        return -1;
    return lab_real_runs_table(L, "gpu_runs", LAB_LORA_NCASES, KEY, Z->rgpu, Z->rsim, err, n);
}

int lab_lora_real_figure(lab *L, char *err, size_t n) {
    lab_lora_res *Z = lab_result(L);
    if (!Z->has_real) return 0;
    return lab_real_view_figure(L, &Z->view, "gpu", lab_fmt(L, "Figure 5. On the GPU: %d ShareGPT-like requests, "
        "a merged model against runtime LoRA of rank %d (%s)", Z->real_requests, Z->rank,
        lab_real_where(L, &Z->rgpu[0])), "each pair of bars: simulated (left) and measured (right).  What one "
        "adapter costs on the GPU, what 8 and 16 cost, and how many KV blocks the slots take.", err, n);
}

/* share of the merged model's output tokens per second, % */
static double share(const lab_real_meas *m, int k) { return 100.0 * m[k].out_tok_s / m[LAB_LORA_MERGED].out_tok_s; }

int lab_lora_real_question(lab *L) {
    const lab_lora_res *Z = lab_result(L);
    if (!Z->has_real) return 0;
    const lab_real_meas *g = Z->rgpu, *s = Z->rsim;
    return lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN,
        .text = lab_fmt(L, "On the GPU, runtime LoRA served %.1f%% of the merged model's output tokens per second "
            "with one adapter, %.1f%% with 8 and %.1f%% with 16 over 8 slots (simulated: %.1f%%, %.1f%%, %.1f%%); "
            "8 slots of rank %d cost %d KV blocks (simulated %d).  Why does runtime LoRA cost time even with "
            "one adapter, and why does this small model lose a larger share than Table 2's 7B model?  Where do the "
            "measurement and the simulation part?  When would you merge, and when serve adapters at run time?", share(g, 1), share(g, 2), share(g, 3), share(s, 1), share(s, 2), share(s, 3), Z->rank,
            g[LAB_LORA_MERGED].num_blocks - g[LAB_LORA_RT8].num_blocks,
            s[LAB_LORA_MERGED].num_blocks - s[LAB_LORA_RT8].num_blocks),
        .key = "Runtime LoRA adds a shrink and an expand kernel per adapted linear to every step with an adapter's "
               "token, whatever the batch; their cost is mostly fixed (launch and a small GEMM), so it is a "
               "larger share of a 0.6B model's short step than of a 7B model's.  More adapters in a step read "
               "more slot bytes and split the batch into more segments; 16 adapters over 8 slots also hold "
               "requests back until a slot frees (the scheduler's max_loras), so fewer sequences share each "
               "step, and the engine copies adapters into slots as they change.  The slots take A and B for every "
               "linear (tens of MiB at this size), a small share of a large KV pool.  The simulation charges a "
               "fixed 4 us per LoRA kernel per linear and the adapters' FLOPs and bytes; it has no slot loads, "
               "no eager launch overhead beyond its profile, and the planner estimates activations and other "
               "memory where the engine measures them, so the pools differ by that estimate, not by the slots.  Merge "
               "when one fine-tune serves most traffic and latency counts: the base model's speed and memory.  "
               "Serve at run time when many fine-tunes share a base: N merged models need N copies of the weights "
               "(Figure 4), runtime LoRA one copy and N small slots, and requests of every adapter share a batch." });
}

int lab_lora_real_say(lab *L) {
    const lab_lora_res *Z = lab_result(L);
    if (!Z->has_real) return 0;
    const lab_real_meas *g = Z->rgpu, *s = Z->rsim;
    return lab_say(L, "On the GPU (%s), %d ShareGPT-like requests waiting at once, adapters of rank %d: the merged "
        "model served %.0f output tokens/s, runtime LoRA with 1 adapter %.0f (%.1f%% less), with 8 adapters %.0f "
        "(%.1f%% less), 16 adapters over 8 slots %.0f (simulated on the same requests: %.0f, %.0f, %.0f and %.0f).  "
        "Mean time per output token: %.1f, %.1f, %.1f and %.1f ms (simulated %.1f, %.1f, %.1f, %.1f).  KV blocks at "
        "gpu-memory-utilization 0.9: %d merged, %d with 8 slots (the planner: %d and %d).",
        lab_real_where(L, &g[0]), Z->real_requests, Z->rank, g[0].out_tok_s, g[1].out_tok_s,
        100 - share(g, 1), g[2].out_tok_s, 100 - share(g, 2), g[3].out_tok_s, s[0].out_tok_s, s[1].out_tok_s,
        s[2].out_tok_s, s[3].out_tok_s, 1e3 * g[0].tpot_mean, 1e3 * g[1].tpot_mean, 1e3 * g[2].tpot_mean,
        1e3 * g[3].tpot_mean, 1e3 * s[0].tpot_mean, 1e3 * s[1].tpot_mean, 1e3 * s[2].tpot_mean,
        1e3 * s[3].tpot_mean, g[LAB_LORA_MERGED].num_blocks, g[LAB_LORA_RT8].num_blocks,
        s[LAB_LORA_MERGED].num_blocks, s[LAB_LORA_RT8].num_blocks);
}
