/* cost_model: the simulator's executor clock.  One step's time is a roofline,
 *   max(FLOPs / (peak * flops_eff), bytes / (bw * bw_eff))
 *   + tensor-parallel all-reduces + step_overhead + per_seq * num_seqs,
 * all per GPU.  GPU specs come from data/gpus.json (cm_gpu_find); the
 * coefficients from cm_coeffs_default() or a JSON file written by
 * `pagesim calibrate`.  Reads files only in cm_gpu_find / cm_coeffs_load and
 * writes only in cm_coeffs_save. */
#include "sim/cost_model.h"
#include "sim/op_profile.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- GPUs ------------------------------------------------------------------ */

/* lower-case, without '-', '_' and ' ': "RTX 4070" == "rtx-4070" == "RTX4070" */
static void norm_name(char *dst, size_t n, const char *src) {
    size_t j = 0;
    for (; *src && j + 1 < n; src++)
        if (*src != '-' && *src != '_' && *src != ' ') dst[j++] = (char)tolower((unsigned char)*src);
    dst[j] = '\0';
}

/* "24GB", "12GiB", "12 G", "16000MiB" -> bytes (GPU "GB" are binary); 0 when not a size */
static double parse_size(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v)) return 0;
    while (*end == ' ') end++;
    char u[8];
    norm_name(u, sizeof u, end);
    double mul = 0;
    if (!strcmp(u, "gb") || !strcmp(u, "gib") || !strcmp(u, "g")) mul = 1024.0 * 1024 * 1024;
    else if (!strcmp(u, "mb") || !strcmp(u, "mib") || !strcmp(u, "m")) mul = 1024.0 * 1024;
    else if (!strcmp(u, "tb") || !strcmp(u, "tib")) mul = 1024.0 * 1024 * 1024 * 1024;
    return mul * v;   /* <= 0 for a negative or zero size: the caller rejects it */
}

/* Reads the whole file; NULL when it cannot. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long len;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && len < (16L << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1))) {
        if (fread(buf, 1, (size_t)len, f) == (size_t)len) buf[len] = '\0';
        else { free(buf); buf = NULL; }
    }
    fclose(f);
    return buf;
}

/* $PAGESIM_GPUS, else data/gpus.json from the current directory, else next to
 * the executable (the repository root holds pagesim). */
static char *gpus_text(char *path, size_t n) {
    const char *env = getenv("PAGESIM_GPUS");
    if (env && *env) { snprintf(path, n, "%s", env); return slurp(path); }
    snprintf(path, n, "data/gpus.json");
    char *t = slurp(path);
    if (t) return t;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return NULL;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = '\0';
    for (int up = 0; up < 3 && !t; up++) {        /* ./pagesim, build/bin/pagesim, build/tests/x */
        snprintf(path, n, "%s/data/gpus.json", exe);
        t = slurp(path);
        if (!(slash = strrchr(exe, '/'))) break;
        *slash = '\0';
    }
    if (!t) snprintf(path, n, "data/gpus.json");
    return t;
}

static int num_field(const cJSON *g, const char *key, double *v, const char *path, int idx,
                     char *err, size_t errlen) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(g, key);
    if (!cJSON_IsNumber(it) || !(it->valuedouble > 0) || !isfinite(it->valuedouble)) {
        snprintf(err, errlen, "%s: gpus[%d]: field '%s' must be a positive number", path, idx, key);
        return -1;
    }
    *v = it->valuedouble;
    return 0;
}

static int gpu_from_json(cm_gpu *g, const cJSON *j, const char *path, int idx, char *err, size_t errlen) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    double mib, bw, tf, link;
    if (!cJSON_IsString(name)) {
        snprintf(err, errlen, "%s: gpus[%d]: missing field 'name'", path, idx);
        return -1;
    }
    if (num_field(j, "mem_mib", &mib, path, idx, err, errlen) ||
        num_field(j, "mem_bw_gbs", &bw, path, idx, err, errlen) ||
        num_field(j, "tflops_16", &tf, path, idx, err, errlen) ||
        num_field(j, "link_gbs", &link, path, idx, err, errlen))
        return -1;
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name->valuestring);
    g->mem_bytes = mib * 1024 * 1024;
    g->mem_bw = bw * 1e9;
    g->flops_16 = tf * 1e12;
    g->link_bw = link * 1e9;
    return 0;
}

static int name_matches(const cJSON *j, const char *want) {
    char a[64];
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (cJSON_IsString(name)) {
        norm_name(a, sizeof a, name->valuestring);
        if (!strcmp(a, want)) return 1;
    }
    const cJSON *al, *aliases = cJSON_GetObjectItemCaseSensitive(j, "aliases");
    cJSON_ArrayForEach(al, aliases) {
        if (!cJSON_IsString(al)) continue;
        norm_name(a, sizeof a, al->valuestring);
        if (!strcmp(a, want)) return 1;
    }
    return 0;
}

int cm_gpu_find(cm_gpu *g, const char *name_or_size, char *err, size_t errlen) {
    char path[4200], want[64];
    int rc = -1;
    cJSON *root = NULL;
    char *text = NULL;
    memset(g, 0, sizeof *g);
    if (!name_or_size || !*name_or_size) {
        snprintf(err, errlen, "no GPU given (a name from data/gpus.json or a size like 24GB)");
        return -1;
    }
    text = gpus_text(path, sizeof path);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read the GPU table (set PAGESIM_GPUS or run from the "
                 "repository root)", path);
        goto out;
    }
    const char *end = NULL;
    root = cJSON_ParseWithOpts(text, &end, 0);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "gpus");
    if (!root || !cJSON_IsArray(list)) {
        snprintf(err, errlen, "%s: not a GPU table (want {\"gpus\": [...]})", path);
        goto out;
    }
    norm_name(want, sizeof want, name_or_size);
    const cJSON *j;
    int idx = 0;
    cJSON_ArrayForEach(j, list) {
        if (name_matches(j, want)) { rc = gpu_from_json(g, j, path, idx, err, errlen); goto out; }
        idx++;
    }
    /* a size: the known GPU of nearest memory lends its bandwidth and FLOP/s */
    double bytes = parse_size(name_or_size);
    if (bytes > 0) {
        double best = INFINITY;
        cm_gpu cand;
        idx = 0;
        cJSON_ArrayForEach(j, list) {
            if (gpu_from_json(&cand, j, path, idx++, err, errlen) < 0) goto out;
            if (fabs(cand.mem_bytes - bytes) < best) { best = fabs(cand.mem_bytes - bytes); *g = cand; }
        }
        if (isinf(best)) {
            snprintf(err, errlen, "%s: the GPU table is empty", path);
            goto out;
        }
        char like[64];
        snprintf(like, sizeof like, "%s", g->name);
        snprintf(g->name, sizeof g->name, "%.20s(like %.30s)", name_or_size, like);
        g->mem_bytes = bytes;
        rc = 0;
        goto out;
    }
    {   /* unknown: list the names we know */
        size_t off = (size_t)snprintf(err, errlen, "unknown GPU '%s' (not in %s, not a size like "
                                      "24GB); known:", name_or_size, path);
        cJSON_ArrayForEach(j, list) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "name");
            if (cJSON_IsString(n) && off < errlen)
                off += (size_t)snprintf(err + off, errlen - off, " %s", n->valuestring);
        }
        const char *s0 = name_or_size;
        if (isdigit((unsigned char)*s0) || *s0 == '-' || *s0 == '+' || *s0 == '.')
            snprintf(err, errlen, "GPU size '%s' must be a positive size like 24GB or 12GiB", s0);
    }
out:
    cJSON_Delete(root);
    free(text);
    if (rc < 0) memset(g, 0, sizeof *g);
    return rc;
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

double cm_step_time(const cm_model *m, const cm_batch *b) {
    const cm_coeffs *k = &m->k;
    long tokens = b->prefill_tokens + b->decode_tokens;
    if (m->prof) {
        double t = opp_step_time(m->prof, b);
        if (m->tp > 1 && tokens > 0 && m->prof->allreduce.n == 0) t += allreduce_time(m, tokens);
        return t + cm_swap_time(m, b->swap_blocks, b->swap_tokens);   /* profiles measure no swaps */
    }
    double t = k->step_overhead_s + k->per_seq_s * (b->num_seqs > 0 ? b->num_seqs : 0);
    t += cm_swap_time(m, b->swap_blocks, b->swap_tokens);
    if (tokens <= 0) return t;
    double t_flops = cm_step_flops(m, b) / (m->gpu.flops_16 * k->flops_eff);
    double t_bytes = cm_step_bytes(m, b) / (m->gpu.mem_bw * k->bw_eff);
    t += t_flops > t_bytes ? t_flops : t_bytes;
    if (m->tp > 1) t += allreduce_time(m, tokens);
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
    char *text = slurp(path);
    *k = cm_coeffs_default();
    if (!text) {
        snprintf(err, errlen, "%s: %s", path, errno ? strerror(errno) : "cannot read");
        return -1;
    }
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
