/* cost_model: the simulator's executor clock.  One step's time is a roofline,
 *   max(FLOPs / (peak * flops_eff), bytes / (bw * bw_eff))
 *   + tensor-parallel all-reduces + step_overhead + per_seq * num_seqs,
 * all per GPU.  GPU specs come from the GPU table (sim/gpu_table.c); the
 * coefficients from cm_coeffs_default() or a JSON file written by
 * `pagesim calibrate`.  Reads files only in cm_coeffs_load and writes only in
 * cm_coeffs_save. */
#include "sim/cost_model.h"
#include "base/file.h"
#include "sim/op_profile.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Default coefficients: plausible for vLLM (V1, CUDA graphs) on Hopper.
 * - flops_eff 0.55: a large bf16 GEMM reaches ~0.8 of peak (measured here on
 *   an H200: ~790 of 989 TFLOP/s, ../shared/DESIGN.md); a whole prefill step
 *   (attention, norms, activations, smaller GEMMs) typically reaches 40-60 %
 *   model-FLOPs utilisation in public vLLM/Sarathi measurements.
 * - bw_eff 0.8: decode GEMVs stream weights at ~75-85 % of peak HBM bandwidth.
 * - step_overhead 1.5 ms: scheduling, input preparation and launching one
 *   step.  vLLM's v0.6.0 release notes (Sept. 2024) measured that the GPU was
 *   busy only 38 % of the time for Llama-3-8B on an H100 before their
 *   overhead work (multi-step scheduling, async output processing, then the V1
 *   engine), which brought the CPU side of a decode step down to about a
 *   millisecond or two; batch-1 decode of an 8B model on an H100 then takes
 *   roughly 7 ms per token, about 1 ms above its weights / (0.8 x 3.35 TB/s)
 *   = 6.0 ms bound.  (Estimates from public reports, not our measurement.)
 * - per_seq 10 us: per running sequence per step (sampling, detokenizing,
 *   output bookkeeping): a few ms per step at 256 running sequences.
 * - allreduce_lat 8 us: one small NCCL/custom all-reduce over NVLink.
 * - host_bw 25 GB/s: swapped KV blocks cross PCIe 4.0 x16 (32 GB/s per
 *   direction), of which pinned cudaMemcpyAsync copies reach about 80 %.
 * - copy_call_s 3 us: vLLM swaps a block with one cudaMemcpyAsync per layer
 *   for its keys and one for its values; each call costs a few microseconds
 *   to issue and start.  With these two, swapping 256 OPT-13B tokens out and
 *   back in takes about 150 ms in 1-token blocks and 17 ms in 256-token
 *   blocks: the shape of the vLLM paper's Figure 19a (about 135 ms and
 *   10-20 ms; read off its plot, not a measurement of ours).
 * `pagesim calibrate` replaces these with values fitted to a real run. */
cm_coeffs cm_coeffs_default(void) {
    cm_coeffs k = {
        .flops_eff = 0.55,
        .bw_eff = 0.80,
        .step_overhead_s = 1.5e-3,
        .per_seq_s = 10e-6,
        .allreduce_lat_s = 8e-6,
        .host_bw = 25e9,
        .copy_call_s = 3e-6,
    };
    return k;
}

/* ---- the model ------------------------------------------------------------- */

int cm_model_init(cm_model *m, const mc_config *cfg, const cm_gpu *gpu, int tp,
                  mc_dtype wdtype, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (mc_validate(cfg, err, errlen) < 0) return -1;
    if (tp < 1 || tp > 1024) {
        snprintf(err, errlen, "tensor-parallel degree must be >= 1 (got %d)", tp);
        return -1;
    }
    if (cfg->num_heads % tp != 0) {
        snprintf(err, errlen, "%s: %d attention heads do not split over %d GPUs",
                 cfg->name, cfg->num_heads, tp);
        return -1;
    }
    if (!(gpu->mem_bytes > 0 && gpu->mem_bw > 0 && gpu->flops_16 > 0 && gpu->link_bw > 0)) {
        snprintf(err, errlen, "GPU '%s': memory, bandwidth, FLOP/s and link bandwidth must be positive",
                 gpu->name);
        return -1;
    }
    if ((int)wdtype < MC_DTYPE_BF16 || (int)wdtype > MC_DTYPE_AWQ4) {
        snprintf(err, errlen, "unknown weight dtype %d", (int)wdtype);
        return -1;
    }
    m->cfg = *cfg;
    m->gpu = *gpu;
    m->tp = tp;
    m->wdtype = wdtype;
    /* the KV cache holds activations' dtype: AWQ models compute in fp16 */
    m->kvdtype = wdtype == MC_DTYPE_AWQ4 ? MC_DTYPE_FP16 : wdtype;
    m->k = cm_coeffs_default();
    return 0;
}

/* Parameters of the embedding table and the lm_head (OPT: + positions). */
static double outer_params(const mc_config *c) {
    double vh = (double)c->vocab_size * c->hidden_size;
    double n = c->tie_embeddings ? vh : 2 * vh;
    if (c->arch == MC_ARCH_OPT) n += (double)(c->max_position + 2) * c->hidden_size;
    return n;
}

/* Per GPU.  The decoder body costs 2 FLOPs per active parameter per new
 * token; the lm_head runs only for the one token each sequence samples
 * (vLLM computes logits for sampled positions only); attention costs
 * 4 * layers * heads * head_dim per (query, key) pair (QK^T and PV). */
double cm_step_flops(const cm_model *m, const cm_batch *b) {
    const mc_config *c = &m->cfg;
    double tokens = (double)(b->prefill_tokens + b->decode_tokens);
    double body = (double)mc_active_params(c) - outer_params(c);
    double head = (double)c->vocab_size * c->hidden_size;
    double f = 2.0 * body * tokens + 2.0 * head * (tokens > 0 ? b->num_seqs : 0)
             + 4.0 * c->num_layers * (double)c->num_heads * c->head_dim * (double)b->attn_pairs;
    return f / m->tp;
}

/* Bytes of linear-layer weights per parameter in the weight dtype. */
static double linear_bytes_per_param(mc_dtype d) {
    return d == MC_DTYPE_AWQ4 ? 0.5 + 2.5 / 128 : (double)mc_dtype_bytes(d);
}

/* Per GPU: weights once per step (MoE: only the experts some token routes to,
 * in expectation E * (1 - (1 - k/E)^tokens) per layer), KV read for every new
 * token's context, and the KV written for the new tokens. */
double cm_step_bytes(const cm_model *m, const cm_batch *b) {
    const mc_config *c = &m->cfg;
    long tokens = b->prefill_tokens + b->decode_tokens;
    if (tokens <= 0) return 0;
    double w = (double)mc_weight_bytes(c, m->wdtype);
    if (c->num_experts > 0) {
        double e = c->num_experts, k = c->experts_per_tok;
        int nmoe = 0;                     /* layers with experts (mlp_only_layers keep a dense MLP) */
        for (int l = 0; l < c->num_layers; l++) nmoe += mc_layer_is_moe(c, l);
        double experts = (double)nmoe * e * 3.0 * c->hidden_size * c->moe_intermediate_size
                       * linear_bytes_per_param(m->wdtype);
        double touched = 1.0 - pow(1.0 - k / e, (double)tokens);
        w = w - experts + experts * touched;
    }
    double kv = (double)mc_kv_bytes_per_token(c, m->kvdtype);
    return (w + kv * (double)b->attn_ctx_tokens + kv * (double)tokens) / m->tp;
}

/* Two ring all-reduces per layer of tokens x hidden 16-bit values. */
static double allreduce_time(const cm_model *m, long tokens) {
    double bytes = (double)tokens * m->cfg.hidden_size * 2.0;
    double ring = 2.0 * (m->tp - 1) / m->tp * bytes / m->gpu.link_bw;
    return 2.0 * m->cfg.num_layers * (m->k.allreduce_lat_s + ring);
}

double cm_swap_time(const cm_model *m, long blocks, long tokens) {
    if (blocks <= 0) return 0;
    double bytes = (double)tokens * (double)mc_kv_bytes_per_token(&m->cfg, m->kvdtype) / (m->tp > 0 ? m->tp : 1);
    return (double)blocks * 2.0 * m->cfg.num_layers * m->k.copy_call_s + bytes / m->k.host_bw;
}

double cm_swap_batch_time(const cm_model *m, const cm_batch *b) {
    if (m->swap_copies != CM_SWAP_RUNS || b->swap_blocks <= 0) return cm_swap_time(m, b->swap_blocks, b->swap_tokens);
    double bytes = (double)b->swap_tokens * (double)mc_kv_bytes_per_token(&m->cfg, m->kvdtype) / (m->tp > 0 ? m->tp : 1);
    long runs = b->swap_runs > 0 ? b->swap_runs : 1;
    return (double)runs * m->k.copy_call_s + bytes / m->k.host_bw;
}

const char *cm_swap_copies_name(cm_swap_copies c) { return c == CM_SWAP_RUNS ? "runs" : "per-block"; }

int cm_swap_copies_parse(const char *name, cm_swap_copies *out) {
    if (!strcmp(name, "per-block")) { *out = CM_SWAP_PER_BLOCK; return 0; }
    if (!strcmp(name, "runs")) { *out = CM_SWAP_RUNS; return 0; }
    return -1;
}

double cm_step_time(const cm_model *m, const cm_batch *b) {
    const cm_coeffs *k = &m->k;
    long tokens = b->prefill_tokens + b->decode_tokens;
    if (m->prof) {
        double t = opp_step_time(m->prof, b);
        if (m->tp > 1 && tokens > 0 && m->prof->allreduce.n == 0) t += allreduce_time(m, tokens);
        t += cm_swap_batch_time(m, b);                                  /* profiles measure no swaps */
        if (b->lora_tokens > 0) t += cm_lora_time(m, b);               /* nor LoRA */
        return t;
    }
    double t = k->step_overhead_s + k->per_seq_s * (b->num_seqs > 0 ? b->num_seqs : 0);
    t += cm_swap_batch_time(m, b);
    if (tokens <= 0) return t;
    double t_flops = cm_step_flops(m, b) / (m->gpu.flops_16 * k->flops_eff);
    double t_bytes = cm_step_bytes(m, b) / (m->gpu.mem_bw * k->bw_eff);
    t += t_flops > t_bytes ? t_flops : t_bytes;
    if (m->tp > 1) t += allreduce_time(m, tokens);
    if (b->lora_tokens > 0) t += cm_lora_time(m, b);   /* separate kernels, after the base GEMMs */
    return t;
}

/* ---- coefficient files ---------------------------------------------------- */

static const struct { const char *key; size_t off; double lo, hi; } k_fields[] = {
    { "flops_eff",       offsetof(cm_coeffs, flops_eff),       1e-4, 1.0 },
    { "bw_eff",          offsetof(cm_coeffs, bw_eff),          1e-4, 1.0 },
    { "step_overhead_s", offsetof(cm_coeffs, step_overhead_s), 0.0, 10.0 },
    { "per_seq_s",       offsetof(cm_coeffs, per_seq_s),       0.0, 1.0 },
    { "allreduce_lat_s", offsetof(cm_coeffs, allreduce_lat_s), 0.0, 1.0 },
    { "host_bw",         offsetof(cm_coeffs, host_bw),         1e6, 1e13 },
    { "copy_call_s",     offsetof(cm_coeffs, copy_call_s),     0.0, 1.0 },
};
#define K_NFIELDS (sizeof k_fields / sizeof k_fields[0])

int cm_coeffs_load(cm_coeffs *k, const char *path, char *err, size_t errlen) {
    int rc = -1;
    cJSON *root = NULL;
    *k = cm_coeffs_default();
    char *text = file_read_all(path, 16u << 20, NULL, err, errlen);
    if (!text) return -1;
    const char *end = NULL;
    root = cJSON_ParseWithOpts(text, &end, 0);
    if (!cJSON_IsObject(root)) {
        int line = 1;
        for (const char *p = text; end && p < end && *p; p++) if (*p == '\n') line++;
        snprintf(err, errlen, "%s:%d: not a JSON object of coefficients", path, line);
        goto out;
    }
    for (size_t i = 0; i < K_NFIELDS; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, k_fields[i].key);
        if (!it) continue;                        /* absent: keep the default */
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= k_fields[i].lo) ||
            !(it->valuedouble <= k_fields[i].hi)) {
            snprintf(err, errlen, "%s: field '%s' must be a number in [%g, %g]", path,
                     k_fields[i].key, k_fields[i].lo, k_fields[i].hi);
            goto out;
        }
        *(double *)((char *)k + k_fields[i].off) = it->valuedouble;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    free(text);
    if (rc < 0) *k = cm_coeffs_default();
    return rc;
}

int cm_coeffs_save(const cm_coeffs *k, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    fputs("{\n", f);
    for (size_t i = 0; i < K_NFIELDS; i++)
        fprintf(f, "  \"%s\": %.9g%s\n", k_fields[i].key,
                *(const double *)((const char *)k + k_fields[i].off), i + 1 < K_NFIELDS ? "," : "");
    fputs("}\n", f);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
