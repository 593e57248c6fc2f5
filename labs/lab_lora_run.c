/* lab_lora_run: the lora lab's simulation, four sections on the sim/ core.
 *   memory      the planner (sim/planner.h) with max_loras slots of rank r
 *               taken from the KV budget: KV blocks and requests at once;
 *   speed       1,000 ShareGPT-like requests waiting at once through sim_run:
 *               a merged model (the base model's cost), runtime LoRA with one
 *               adapter, with 8 mixed, and 16 over 8 slots; a decode step's
 *               time by batch size from the cost model (sim/cost_lora.h);
 *   adapters    the same requests spread over 1 to 32 adapters, with 8 slots
 *               and with a slot for each adapter (sched_config.max_loras);
 *   deployment  the weights of N merged fine-tunes against one base and N slots.
 * Reads the model config and data/gpus.json; writes nothing; prints nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/rng.h"
#include "labs/lab_content.h"
#include "labs/lab_kit.h"
#include "labs/lab_lora_impl.h"

const int LAB_LORA_SLOTS[LAB_LORA_NSLOTS] = { 1, 2, 4, 8, 16, 32, 64 };
const int LAB_LORA_RANKS[LAB_LORA_NRANKS] = { 8, 16, 32, 64 };
const int LAB_LORA_BATCH[LAB_LORA_NBATCH] = { 1, 8, 16, 32, 64, 128 };
const int LAB_LORA_ADAPT[LAB_LORA_NADAPT] = { 1, 2, 4, 8, 9, 12, 16, 32 };
const int LAB_LORA_FT[LAB_LORA_NFT] = { 1, 2, 4, 8, 16 };
static const char *GPUS[3] = { "A100-80GB", "H100-SXM", "H200" };
static const int SEED_RANK[4] = { 16, 8, 32, 64 };

void lab_lora_free(void *p) { free(p); }

static int plan(const lab_lora_res *Z, int slots, int rank, plan_result *r, char *err, size_t n) {
    plan_opts o;
    plan_opts_default(&o);
    o.max_model_len = LAB_LORA_MAX_LEN;
    o.max_loras = slots;
    o.max_lora_rank = rank;
    if (plan_compute(&Z->model.cfg, &Z->model.gpu, &o, r, err, n) < 0) return -1;
    if (r->num_blocks <= 0) { snprintf(err, n, "%s on %s: no KV blocks left with %d slots of rank %d",
                                       r->model, r->gpu, slots, rank); return -1; }
    return 0;
}

void lab_lora_assign(wl_request *r, int nr, int adapters, uint64_t seed) {
    uint64_t st = seed * 0x9E3779B97F4A7C15ull + (uint64_t)adapters;
    for (int i = 0; i < nr; i++)
        r[i].lora = adapters > 0 ? 1 + (int)(rng_splitmix64(&st) % (uint64_t)adapters) : 0;
}

/* The requests through sim_run with the pool of p, slots of rank (0: a
 * merged model, no LoRA cost) and the scheduler's max_loras. */
static int serve(const lab_lora_res *Z, const wl_request *r, int nr, const plan_result *p, int rank, int max_loras,
                 lab_lora_case *o, char *err, size_t n) {
    cm_model m = Z->model;
    m.lora = cm_lora_default(rank);
    sim_config c = sim_config_default();
    c.model = &m;
    c.kv.num_blocks = (int)p->num_blocks;
    c.kv.max_model_len = LAB_LORA_MAX_LEN;
    c.sched.max_loras = max_loras;
    c.seed = 1;
    sim_result res;
    if (sim_run(&c, r, nr, &res, err, n) < 0) return -1;
    double wait = 0;
    for (int i = 0; i < res.num_requests; i++) wait += res.requests[i].first_scheduled - res.requests[i].arrival;
    *o = (lab_lora_case){ res.summary.out_tok_per_s, res.summary.sim_time, res.summary.mean_running,
                      res.num_requests ? wait / res.num_requests : 0, 1e3 * res.summary.tpot.mean, p->num_blocks };
    sim_result_free(&res);
    return 0;
}

static int memory_section(lab *L, lab_lora_res *Z, char *err, size_t n) {
    if (plan(Z, 0, 16, &Z->off, err, n) < 0) return -1;
    for (int k = 0; k < LAB_LORA_NRANKS; k++)
        for (int i = 0; i < LAB_LORA_NSLOTS; i++)
            if (plan(Z, LAB_LORA_SLOTS[i], LAB_LORA_RANKS[k], &Z->mem[k][i], err, n) < 0) return -1;
    Z->weights_gib = Z->off.weight_bytes / LAB_KIT_GIB;
    Z->slot_gib = (double)plan_lora_bytes(&Z->model.cfg, MC_DTYPE_BF16, 1, 1, Z->rank) / LAB_KIT_GIB;
    lab_table *t = lab_table_add(L, "memory", lab_fmt(L, "Table 1. Qwen2.5-7B (bf16, %.1f GiB) on one %s at vLLM's "
        "defaults (gpu-memory-utilization 0.9, max-model-len %d): KV blocks of 16 tokens left, and requests of %d "
        "tokens at once, once max_loras adapter slots of rank r are taken (off: LoRA off, as a merged model)",
        Z->weights_gib, Z->gpu, LAB_LORA_MAX_LEN, LAB_LORA_MAX_LEN),
        "max_loras,blocks_r8,blocks_r16,blocks_r32,blocks_r64,at_once_r8,at_once_r16,at_once_r32,at_once_r64", true);
    if (!t) goto oom;
    double v[8];
    for (int k = 0; k < LAB_LORA_NRANKS; k++) { v[k] = (double)Z->off.num_blocks; v[4 + k] = Z->off.max_concurrency; }
    if (lab_table_row(t, "off", v) < 0) goto oom;
    for (int i = 0; i < LAB_LORA_NSLOTS; i++) {
        for (int k = 0; k < LAB_LORA_NRANKS; k++) {
            v[k] = (double)Z->mem[k][i].num_blocks;
            v[4 + k] = Z->mem[k][i].max_concurrency;
        }
        if (lab_table_row(t, lab_fmt(L, "%d", LAB_LORA_SLOTS[i]), v) < 0) goto oom;
    }
    return 0;
oom:
    snprintf(err, n, "out of memory");
    return -1;
}

static const plan_result *mem_at(const lab_lora_res *Z, int slots) {
    int k = 0, i = 0;
    while (k < LAB_LORA_NRANKS - 1 && LAB_LORA_RANKS[k] != Z->rank) k++;
    while (i < LAB_LORA_NSLOTS - 1 && LAB_LORA_SLOTS[i] != slots) i++;
    return &Z->mem[k][i];
}

/* Decode step times by batch size, context = the mean prompt + half the mean output. */
static void step_times(lab_lora_res *Z) {
    long ctx = lround(Z->mean_prompt + Z->mean_output / 2);
    for (int i = 0; i < LAB_LORA_NBATCH; i++) {
        int b = LAB_LORA_BATCH[i];
        cm_batch d = { .num_seqs = b, .decode_tokens = b, .attn_ctx_tokens = b * ctx, .attn_pairs = b * ctx };
        cm_model m = Z->model;
        Z->step_ms[0][i] = 1e3 * cm_step_time(&m, &d);
        m.lora = cm_lora_default(Z->rank);
        d.lora_tokens = b;
        d.lora_adapters = 1;
        Z->step_ms[1][i] = 1e3 * cm_step_time(&m, &d);
        d.lora_adapters = b < 8 ? b : 8;
        Z->step_ms[2][i] = 1e3 * cm_step_time(&m, &d);
    }
}

static int speed_section(lab *L, lab_lora_res *Z, wl_request *r, int nr, char *err, size_t n) {
    static const int adapters[LAB_LORA_NCASES] = { 0, 1, 8, 16 }, slots[LAB_LORA_NCASES] = { 0, 1, 8, 8 };
    static const char *key[LAB_LORA_NCASES] = { "merged", "runtime, 1 adapter", "runtime, 8 adapters",
                                            "runtime, 16 adapters, 8 slots" };
    lab_table *t = lab_table_add(L, "speed", lab_fmt(L, "Table 2. %d ShareGPT-like requests waiting at once (%.0f + "
        "%.0f tokens), adapters of rank %d: output tokens per second, simulated seconds, sequences running on "
        "average, mean time per output token, KV blocks", LAB_LORA_REQUESTS, Z->mean_prompt, Z->mean_output, Z->rank),
        "serving,adapters,max_loras,tok_s,seconds,running,tpot_ms,kv_blocks,vs_merged", true);
    if (!t) goto oom;
    for (int k = 0; k < LAB_LORA_NCASES; k++) {
        lab_lora_assign(r, nr, adapters[k], lab_seed(L));
        const plan_result *p = k == LAB_LORA_MERGED ? &Z->off : mem_at(Z, slots[k]);
        if (serve(Z, r, nr, p, k == LAB_LORA_MERGED ? 0 : Z->rank, slots[k], &Z->cs[k], err, n) < 0) return -1;
    }
    for (int k = 0; k < LAB_LORA_NCASES; k++) {
        const lab_lora_case *c = &Z->cs[k];
        double v[8] = { adapters[k], slots[k], c->tok_s, c->seconds, c->running, c->tpot_ms, (double)c->blocks,
                        c->tok_s / Z->cs[LAB_LORA_MERGED].tok_s };
        if (lab_table_row(t, key[k], v) < 0) goto oom;
    }
    step_times(Z);
    t = lab_table_add(L, "step", lab_fmt(L, "Table 3. One decode step of B sequences (context %.0f tokens) in the "
        "cost model, ms: a merged model, runtime LoRA (rank %d) with 1 adapter, with up to 8",
        round(Z->mean_prompt + Z->mean_output / 2), Z->rank),
        "batch,merged_ms,runtime_1_ms,runtime_8_ms,added_1_ms,added_8_ms", true);
    if (!t) goto oom;
    for (int i = 0; i < LAB_LORA_NBATCH; i++) {
        double v[5] = { Z->step_ms[0][i], Z->step_ms[1][i], Z->step_ms[2][i], Z->step_ms[1][i] - Z->step_ms[0][i],
                        Z->step_ms[2][i] - Z->step_ms[0][i] };
        if (lab_table_row(t, lab_fmt(L, "%d", LAB_LORA_BATCH[i]), v) < 0) goto oom;
    }
    return 0;
oom:
    snprintf(err, n, "out of memory");
    return -1;
}

static int adapters_section(lab *L, lab_lora_res *Z, wl_request *r, int nr, char *err, size_t n) {
    lab_table *t = lab_table_add(L, "adapters", lab_fmt(L, "Table 4. The same requests spread evenly at random over "
        "A adapters (rank %d): with 8 slots (max_loras 8) and with a slot for each adapter (max_loras A)", Z->rank),
        "adapters,tok_s_8_slots,tok_s_a_slots,running_8_slots,running_a_slots,wait_s_8_slots,wait_s_a_slots", true);
    if (!t) goto oom;
    for (int i = 0; i < LAB_LORA_NADAPT; i++) {
        int a = LAB_LORA_ADAPT[i];
        lab_lora_assign(r, nr, a, lab_seed(L));
        plan_result pa;
        if (serve(Z, r, nr, mem_at(Z, 8), Z->rank, 8, &Z->ad[0][i], err, n) < 0) return -1;
        if (a == 8) Z->ad[1][i] = Z->ad[0][i];
        else if (plan(Z, a, Z->rank, &pa, err, n) < 0 || serve(Z, r, nr, &pa, Z->rank, a, &Z->ad[1][i], err, n) < 0)
            return -1;
        double v[6] = { Z->ad[0][i].tok_s, Z->ad[1][i].tok_s, Z->ad[0][i].running, Z->ad[1][i].running,
                        Z->ad[0][i].wait_s, Z->ad[1][i].wait_s };
        if (lab_table_row(t, lab_fmt(L, "%d", a), v) < 0) goto oom;
    }
    return 0;
oom:
    snprintf(err, n, "out of memory");
    return -1;
}

static int deploy_section(lab *L, lab_lora_res *Z, char *err, size_t n) {
    lab_table *t = lab_table_add(L, "deploy", lab_fmt(L, "Table 5. GPU memory for the weights of N fine-tunes: N "
        "merged models against one base model with N adapter slots of rank %d (GiB; the %s's budget at 0.9: "
        "%.1f GiB)", Z->rank, Z->gpu, Z->off.budget_bytes / LAB_KIT_GIB),
        "fine_tunes,merged_gib,runtime_gib,merged_gpus", true);
    if (!t) { snprintf(err, n, "out of memory"); return -1; }
    double room = (Z->off.budget_bytes - Z->off.activation_bytes - Z->off.non_torch_bytes) / LAB_KIT_GIB;
    for (int i = 0; i < LAB_LORA_NFT; i++) {
        int f = LAB_LORA_FT[i];
        double v[3] = { f * Z->weights_gib, Z->weights_gib + f * Z->slot_gib, ceil(f / floor(room / Z->weights_gib)) };
        if (lab_table_row(t, lab_fmt(L, "%d", f), v) < 0) { snprintf(err, n, "out of memory"); return -1; }
    }
    return 0;
}

int lab_lora_simulate(lab *L, char *err, size_t n) {
    lab_lora_res *Z = calloc(1, sizeof *Z);
    if (!Z) { snprintf(err, n, "out of memory"); return -1; }
    lab_set_result(L, Z);
    Z->gpu = GPUS[lab_pick(L, 1, 3)];
    Z->rank = SEED_RANK[lab_pick(L, 2, 4)];
    if (lab_kit_model(&Z->model, LAB_LORA_MODEL, Z->gpu, err, n) < 0) return -1;
    wl_spec sp = { .kind = WL_SHAREGPT, .num_requests = LAB_LORA_REQUESTS, .rate = 0, .seed = lab_seed(L),
                   .max_len = 2048 };
    wl_request *r = NULL;
    int nr = 0;
    if (wl_generate(&sp, &r, &nr, err, n) < 0) return -1;
    wl_stats(r, nr, &Z->mean_prompt, &Z->mean_output);
    int rc = memory_section(L, Z, err, n);
    if (rc == 0) rc = speed_section(L, Z, r, nr, err, n);
    if (rc == 0) rc = adapters_section(L, Z, r, nr, err, n);
    if (rc == 0) rc = deploy_section(L, Z, err, n);
    free(r);
    return rc;
}
