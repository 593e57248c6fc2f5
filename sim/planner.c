/* planner: the KV-cache memory budget of a model on a GPU, estimated the way
 * vLLM determines it at start-up:
 *   kv = total * util - weights - activation peak - non-torch memory
 *   # GPU blocks = floor(kv / (kv_bytes_per_token * block_size))
 * vLLM measures the last two with a profile run (a dummy forward pass of
 * max_num_batched_tokens tokens, then the sampler on max_num_seqs sequences);
 * we estimate them from the model's shape.  CUDA-graph memory is captured
 * after the KV cache is allocated and comes out of the (1 - util) headroom,
 * so it is not subtracted here (vLLM does the same).
 * Pure arithmetic; plan_write_* write only to the stream they are given. */
#include "sim/planner.h"

#include <math.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MIB (1024.0 * 1024.0)

/* Constants of the estimate (bytes), each an observation about vLLM:
 * - PLAN_WORKSPACE: cuBLAS/cuBLASLt workspaces and caching-allocator
 *   rounding seen in torch's peak during the profile run.
 * - PLAN_NON_TORCH: memory outside torch tensors that appears during start-up
 *   (cuBLAS handles, the flash-attention/sampler kernels' module data);
 *   vLLM logs "non_torch_memory" of 0.1-0.3 GiB for one GPU.
 * - PLAN_NON_TORCH_TP: NCCL communicator buffers and the custom all-reduce's
 *   IPC buffers that appear with tensor parallelism.
 * - PLAN_AWQ_DEQUANT_MIN: vLLM's AWQ layer dequantizes the whole weight to
 *   fp16 and runs a dense GEMM when a batch has at least 256 tokens
 *   (awq.py, FP16_MATMUL_HEURISTIC_CONDITION), so the profile run holds one
 *   dequantized copy of the largest linear layer.
 * - PLAN_SAMPLER_COPIES: the sampler keeps fp32 logits, probabilities and
 *   log-probabilities of max_num_seqs x vocab at once. */
#define PLAN_WORKSPACE        (64.0 * MIB)
#define PLAN_NON_TORCH        (200.0 * MIB)
#define PLAN_NON_TORCH_TP     (512.0 * MIB)
#define PLAN_AWQ_DEQUANT_MIN  256
#define PLAN_SAMPLER_COPIES   3
/* vLLM V0 profiles max(max_model_len, 2048) tokens; it turns chunked prefill
 * on by itself above 32K tokens of context, and then profiles 2048 */
#define PLAN_MIN_BATCHED      2048
/* vLLM pads the vocabulary of a split embedding / lm_head to a multiple of 64
 * (DEFAULT_VOCAB_PADDING_SIZE) */
#define PLAN_VOCAB_PAD        64
#define PLAN_CHUNKED_ABOVE    32768

void plan_opts_default(plan_opts *o) {
    memset(o, 0, sizeof *o);
    o->util = 0.9;
    o->block_size = 16;
    o->tp = 1;
    o->dtype = -1;
    o->max_num_seqs = 256;
    o->swap_space_gib = 4.0;
}

double plan_non_torch_bytes(int tp) {
    return PLAN_NON_TORCH + (tp > 1 ? PLAN_NON_TORCH_TP : 0);
}

/* Peak of torch memory in the profile run, per GPU: the largest of the
 * attention phase, the MLP phase and the sampler, plus a workspace.
 *   attention: residual + normed input (2h), qkv output, attention output
 *   MLP:       residual + normed input (2h), gate_up output (2I), act out (I)
 *   MoE:       + per routed token (topk): gate_up (2m), act (m), expert out (h);
 *              router logits (E, fp32)
 *   OPT:       fc1 output (f) and its ReLU (f)
 *   AWQ:       one fp16 copy of the largest linear weight when T >= 256 */
double plan_activation_bytes(const mc_config *c, mc_dtype wdtype, int tp, int batched_tokens,
                             int max_num_seqs) {
    double a = wdtype == MC_DTYPE_FP32 ? 4 : 2;     /* activation bytes (AWQ: fp16) */
    double t = batched_tokens, h = c->hidden_size;
    double q = (double)c->num_heads * c->head_dim / tp;
    double kv = (double)(c->num_kv_heads >= tp ? c->num_kv_heads / tp : 1) * c->head_dim;
    double attn = t * a * (2 * h + q + 2 * kv + q);
    double mlp, widest;                             /* widest: largest linear weight, elements */
    if (c->arch == MC_ARCH_OPT) {
        double f = (double)c->intermediate_size / tp;
        mlp = t * a * (2 * h + 2 * f);
        widest = h * f;
    } else if (c->num_experts > 0) {
        double m = (double)c->moe_intermediate_size / tp, k = c->experts_per_tok;
        double s = (double)c->shared_expert_intermediate_size / tp;
        mlp = t * a * (2 * h + k * (3 * m + h) + 3 * s) + t * 4.0 * c->num_experts;
        widest = h * 2 * (m > s ? m : s);
    } else {
        double i = (double)c->intermediate_size / tp;
        mlp = t * a * (2 * h + 3 * i);
        widest = h * 2 * i;
    }
    if (widest < h * (q + 2 * kv)) widest = h * (q + 2 * kv);
    if (wdtype == MC_DTYPE_AWQ4 && batched_tokens >= PLAN_AWQ_DEQUANT_MIN) mlp += widest * 2;
    double sampler = (double)max_num_seqs * c->vocab_size * 4.0 * PLAN_SAMPLER_COPIES;
    double peak = attn > mlp ? attn : mlp;
    if (sampler > peak) peak = sampler;
    return peak + PLAN_WORKSPACE;
}

/* Vocabulary rows of the embedding (and lm_head) on one GPU: vLLM pads the
 * vocabulary to a multiple of 64 and splits it evenly; one GPU holds it
 * unpadded (the engine without tensor parallelism). */
static int64_t vocab_rows(const mc_config *c, int tp) {
    if (tp <= 1) return c->vocab_size;
    int64_t padded = ((int64_t)c->vocab_size + PLAN_VOCAB_PAD - 1) / PLAN_VOCAB_PAD * PLAN_VOCAB_PAD;
    return (padded + tp - 1) / tp;
}

/* One decoder layer on one GPU of tp: linear weights and the rest (elements);
 * moe: the layer runs the experts, else the dense MLP (a MoE model's
 * mlp_only layers). */
static void plan_layer(const mc_config *c, int tp, int moe, int64_t *linear_out, int64_t *other_out) {
    int64_t h = c->hidden_size, hd = c->head_dim, q = (int64_t)c->num_heads / tp * hd;
    int64_t kv = (int64_t)(c->num_kv_heads >= tp ? c->num_kv_heads / tp : 1) * hd;
    int64_t linear = h * q + 2 * h * kv + q * h, other = 0;      /* q, k, v, o */
    if (c->attn_bias) other += q + 2 * kv;                       /* split with their heads */
    if (c->arch == MC_ARCH_OPT && c->attn_bias) other += h;      /* out_proj bias, replicated */
    if (c->qk_norm) other += 2 * hd;
    if (c->arch == MC_ARCH_OPT) {
        int64_t f = c->intermediate_size / tp;
        linear += 2 * h * f;
        other += f + h + 4 * h;                                  /* fc1 bias split; fc2 bias, LayerNorms whole */
    } else if (moe) {
        linear += (int64_t)c->num_experts * 3 * h * (c->moe_intermediate_size / tp);
        other += h * c->num_experts;                             /* router, replicated */
        if (c->shared_expert_intermediate_size > 0)
            linear += 3 * h * (c->shared_expert_intermediate_size / tp), other += h;
        other += 2 * h;
    } else {
        linear += 3 * h * (c->intermediate_size / tp);
        other += 2 * h;                                          /* the two RMSNorms */
    }
    *linear_out = linear;
    *other_out = other;
}

int64_t plan_weight_bytes(const mc_config *c, mc_dtype dtype, int tp) {
    if (tp < 1) tp = 1;
    int64_t h = c->hidden_size, ls, os, ld, od;
    int nmoe = 0;
    for (int l = 0; l < c->num_layers; l++) nmoe += mc_layer_is_moe(c, l);
    plan_layer(c, tp, 1, &ls, &os);
    plan_layer(c, tp, 0, &ld, &od);
    int64_t outer = vocab_rows(c, tp) * h * (c->tie_embeddings ? 1 : 2);
    if (c->arch == MC_ARCH_OPT) outer += (int64_t)(c->max_position + 2) * h + 2 * h;
    else outer += h;
    int64_t lin = nmoe * ls + (c->num_layers - nmoe) * ld;
    int64_t rest = nmoe * os + (c->num_layers - nmoe) * od + outer;
    if (dtype != MC_DTYPE_AWQ4) return (lin + rest) * mc_dtype_bytes(dtype);
    return (int64_t)llround((double)lin * (0.5 + 2.5 / mc_quant_group(c))) + rest * 2;   /* as mc_weight_bytes */
}

int64_t plan_lora_bytes(const mc_config *c, mc_dtype dtype, int tp, int max_loras, int max_rank) {
    if (max_loras <= 0 || max_rank <= 0 || tp < 1) return 0;
    int64_t h = c->hidden_size, q = (int64_t)c->num_heads * c->head_dim / tp;
    int64_t kv = (int64_t)(c->num_kv_heads >= tp ? c->num_kv_heads / tp : 1) * c->head_dim;
    int64_t i = c->intermediate_size / tp, attn = (h + q) + 2 * (h + kv) + (q + h), mlp = 3 * (h + i), per = 0;
    for (int l = 0; l < c->num_layers; l++) per += attn + (mc_layer_is_moe(c, l) ? 0 : mlp);
    int bytes = dtype == MC_DTYPE_FP32 ? 4 : 2;                  /* AWQ: fp16 adapters */
    return per * max_rank * max_loras * bytes;
}

int64_t plan_kv_bytes_per_token(const mc_config *c, mc_dtype kv_dtype, int tp) {
    int kv_heads = c->num_kv_heads >= tp ? c->num_kv_heads / tp : 1;
    return 2LL * c->num_layers * kv_heads * c->head_dim * mc_dtype_bytes(kv_dtype);
}

/* Longest context the model supports: max_position_embeddings, stretched by
 * rope scaling factors that extend it (linear, dynamic, yarn). */
static long model_max_len(const mc_config *c) {
    double f = (c->rope_kind == MC_ROPE_LINEAR || c->rope_kind == MC_ROPE_DYNAMIC ||
                c->rope_kind == MC_ROPE_YARN) && c->rope_factor > 1 ? c->rope_factor : 1;
    int base = c->rope_kind == MC_ROPE_YARN && c->rope_orig_max_pos > 0 ? c->rope_orig_max_pos
                                                                        : c->max_position;
    return (long)(base * f);
}

static int check_opts(const mc_config *c, const cm_gpu *g, const plan_opts *o, char *err, size_t errlen) {
    if (!(o->util > 0 && o->util <= 1)) {
        snprintf(err, errlen, "--gpu-memory-utilization must be in (0, 1] (got %g)", o->util);
        return -1;
    }
    if (o->block_size <= 0 || o->block_size > 4096) {
        snprintf(err, errlen, "--block-size must be in 1..4096 (got %d)", o->block_size);
        return -1;
    }
    if (o->tp <= 0 || o->tp > 1024 || c->num_heads % o->tp != 0) {
        snprintf(err, errlen, "--tensor-parallel-size %d must be positive and divide the %d attention heads of %s",
                 o->tp, c->num_heads, c->name);
        return -1;
    }
    /* what vLLM (and the engine, engine/tp_shard.c) can split: KV heads split
     * or replicated evenly, MLP widths split evenly */
    if (c->num_kv_heads % o->tp != 0 && o->tp % c->num_kv_heads != 0) {
        snprintf(err, errlen, "--tensor-parallel-size %d and the %d KV heads of %s: one must divide the other",
                 o->tp, c->num_kv_heads, c->name);
        return -1;
    }
    int width = c->num_experts > 0 ? c->moe_intermediate_size : c->intermediate_size;
    if (width % o->tp != 0 || c->shared_expert_intermediate_size % o->tp != 0) {
        snprintf(err, errlen, "--tensor-parallel-size %d does not divide the MLP width %d of %s", o->tp, width, c->name);
        return -1;
    }
    if (o->max_model_len < 0) {
        snprintf(err, errlen, "--max-model-len must be positive (got %d)", o->max_model_len);
        return -1;
    }
    long limit = model_max_len(c);
    if (o->max_model_len == 0 && limit <= 0) {
        snprintf(err, errlen, "%s has no max_position_embeddings: give --max-model-len", c->name);
        return -1;
    }
    if (o->max_model_len > 0 && limit > 0 && o->max_model_len > limit) {
        snprintf(err, errlen, "--max-model-len %d exceeds the %ld positions of %s",
                 o->max_model_len, limit, c->name);
        return -1;
    }
    if (o->max_num_seqs <= 0 || o->max_num_batched_tokens < 0 || !(o->swap_space_gib >= 0)) {
        snprintf(err, errlen, "--max-num-seqs must be positive, --max-num-batched-tokens and "
                 "--swap-space non-negative");
        return -1;
    }
    if (o->max_loras < 0 || o->max_loras > 1024 || (o->max_loras > 0 && (o->max_lora_rank < 1 || o->max_lora_rank > 512))) {
        snprintf(err, errlen, "--max-loras must be in 0..1024 and --max-lora-rank in 1..512 (got %d, %d)",
                 o->max_loras, o->max_lora_rank);
        return -1;
    }
    if (o->dtype < -1 || o->dtype > MC_DTYPE_AWQ4) {
        snprintf(err, errlen, "unknown dtype %d", o->dtype);
        return -1;
    }
    if (!(g->mem_bytes > 0)) {
        snprintf(err, errlen, "GPU '%s' has no memory size", g->name);
        return -1;
    }
    return 0;
}

int plan_compute(const mc_config *c, const cm_gpu *g, const plan_opts *o, plan_result *r,
                 char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    if (mc_validate(c, err, errlen) < 0 || check_opts(c, g, o, err, errlen) < 0) return -1;
    snprintf(r->model, sizeof r->model, "%s", c->name);
    snprintf(r->gpu, sizeof r->gpu, "%s", g->name);
    r->wdtype = o->dtype >= 0 ? (mc_dtype)o->dtype : c->dtype;
    r->kvdtype = r->wdtype == MC_DTYPE_AWQ4 ? MC_DTYPE_FP16 : r->wdtype;
    r->tp = o->tp;
    r->util = o->util;
    r->block_size = o->block_size;
    r->max_num_seqs = o->max_num_seqs;
    r->max_model_len = o->max_model_len > 0 ? o->max_model_len : (int)model_max_len(c);
    if (o->max_num_batched_tokens > 0) r->batched_tokens = o->max_num_batched_tokens;
    else if (r->max_model_len > PLAN_CHUNKED_ABOVE) r->batched_tokens = PLAN_MIN_BATCHED;
    else r->batched_tokens = r->max_model_len > PLAN_MIN_BATCHED ? r->max_model_len : PLAN_MIN_BATCHED;

    r->total_bytes = g->mem_bytes;
    r->budget_bytes = g->mem_bytes * o->util;
    r->weight_bytes = (double)plan_weight_bytes(c, r->wdtype, o->tp);
    r->activation_bytes = plan_activation_bytes(c, r->wdtype, o->tp, r->batched_tokens, o->max_num_seqs);
    r->non_torch_bytes = plan_non_torch_bytes(o->tp);
    r->max_loras = o->max_loras;
    r->max_lora_rank = o->max_loras > 0 ? o->max_lora_rank : 0;
    r->lora_bytes = (double)plan_lora_bytes(c, r->wdtype, o->tp, o->max_loras, o->max_lora_rank);
    r->kv_bytes = r->budget_bytes - r->weight_bytes - r->activation_bytes - r->non_torch_bytes - r->lora_bytes;

    r->kv_bytes_per_token = plan_kv_bytes_per_token(c, r->kvdtype, o->tp);
    r->block_bytes = r->kv_bytes_per_token * o->block_size;
    r->num_blocks = r->kv_bytes > 0 ? (long)floor(r->kv_bytes / (double)r->block_bytes) : 0;
    r->num_cpu_blocks = (long)floor(o->swap_space_gib * GIB / (double)r->block_bytes);
    r->kv_tokens = r->num_blocks * (long)o->block_size;
    r->max_concurrency = (double)r->kv_tokens / r->max_model_len;
    r->max_len_that_fits = r->kv_tokens;
    r->fits = r->num_blocks > 0 && r->kv_tokens >= r->max_model_len;
    return 0;
}

/* ---- reports --------------------------------------------------------------- */

/* 86240 -> "86,240" (vLLM V1 groups digits in its log lines) */
static const char *grouped(long v, char *buf, size_t n) {
    char raw[32];
    int len = snprintf(raw, sizeof raw, "%ld", v < 0 ? -v : v), j = 0;
    if (v < 0 && (size_t)j + 1 < n) buf[j++] = '-';
    for (int i = 0; i < len && (size_t)j + 1 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0 && (size_t)j + 2 < n) buf[j++] = ',';
        buf[j++] = raw[i];
    }
    buf[j] = '\0';
    return buf;
}

void plan_write_text(FILE *f, const plan_result *r) {
    char a[32], b[32];
    fprintf(f, "model:    %s (%s weights, %s KV cache%s)\n", r->model, mc_dtype_name(r->wdtype),
            mc_dtype_name(r->kvdtype), r->tp > 1 ? ", per GPU" : "");
    fprintf(f, "gpu:      %s x %d, %.2f GiB each, gpu_memory_utilization %.2f\n", r->gpu, r->tp,
            r->total_bytes / GIB, r->util);
    fprintf(f, "memory budget          %8.2f GiB  (%.2f GiB x %.2f)\n", r->budget_bytes / GIB,
            r->total_bytes / GIB, r->util);
    fprintf(f, "  model weights        %8.2f GiB\n", r->weight_bytes / GIB);
    fprintf(f, "  activation peak      %8.2f GiB  (profile run: %d batched tokens, %d seqs)\n",
            r->activation_bytes / GIB, r->batched_tokens, r->max_num_seqs);
    fprintf(f, "  non-torch memory     %8.2f GiB\n", r->non_torch_bytes / GIB);
    if (r->max_loras > 0)
        fprintf(f, "  LoRA adapter slots   %8.2f GiB  (%d slots of rank %d, every linear layer)\n", r->lora_bytes / GIB,
                r->max_loras, r->max_lora_rank);
    fprintf(f, "  left for KV cache    %8.2f GiB\n", r->kv_bytes / GIB);
    fprintf(f, "KV bytes per token     %8lld B\n", (long long)r->kv_bytes_per_token);
    fprintf(f, "KV bytes per block     %8lld B  (%d tokens)\n", (long long)r->block_bytes, r->block_size);
    fprintf(f, "# GPU blocks: %ld, # CPU blocks: %ld\n", r->num_blocks, r->num_cpu_blocks);
    fprintf(f, "GPU KV cache size: %s tokens\n", grouped(r->kv_tokens, a, sizeof a));
    fprintf(f, "Maximum concurrency for %s tokens per request: %.2fx\n",
            grouped(r->max_model_len, b, sizeof b), r->max_concurrency);
    double need = r->weight_bytes + r->activation_bytes + r->non_torch_bytes + r->lora_bytes;
    if (r->num_blocks <= 0) {
        fprintf(f, "verdict: does not fit: weights %.2f GiB + activations %.2f GiB + non-torch "
                "%.2f GiB%s = %.2f GiB, more than the %.2f GiB budget (%.2f GiB x %.2f); nothing is "
                "left for the KV cache (vLLM: \"# GPU blocks: 0\").  Try a higher --gpu-memory-utilization, a "
                "smaller --max-model-len, a smaller or quantized model, or more GPUs (--tensor-parallel-size).\n",
                r->weight_bytes / GIB, r->activation_bytes / GIB, r->non_torch_bytes / GIB,
                r->lora_bytes > 0 ? " + LoRA slots" : "",
                need / GIB, r->budget_bytes / GIB, r->total_bytes / GIB, r->util);
    } else if (!r->fits) {
        fprintf(f, "verdict: does not fit at --max-model-len %d: the KV cache holds %ld tokens, "
                "fewer than one request of %d tokens (vLLM refuses to start).  The largest "
                "max-model-len that fits is %ld.\n", r->max_model_len, r->kv_tokens,
                r->max_model_len, r->max_len_that_fits);
    } else {
        fprintf(f, "verdict: fits: %ld blocks of %d tokens, %.2f GiB of KV cache, %.2f requests "
                "of %d tokens at once\n", r->num_blocks, r->block_size,
                (double)r->num_blocks * r->block_bytes / GIB, r->max_concurrency, r->max_model_len);
    }
}

void plan_write_json(FILE *f, const plan_result *r) {
    fprintf(f, "{\n  \"model\": \"");
    for (const char *p = r->model; *p; p++) {      /* names are plain, but escape anyway */
        if (*p == '"' || *p == '\\') fputc('\\', f);
        if ((unsigned char)*p >= 0x20) fputc(*p, f);
    }
    fprintf(f, "\",\n  \"gpu\": \"");
    for (const char *p = r->gpu; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        if ((unsigned char)*p >= 0x20) fputc(*p, f);
    }
    fprintf(f, "\",\n  \"weights_dtype\": \"%s\",\n  \"kv_dtype\": \"%s\",\n", mc_dtype_name(r->wdtype),
            mc_dtype_name(r->kvdtype));
    fprintf(f, "  \"tp\": %d,\n  \"util\": %.4g,\n  \"block_size\": %d,\n  \"max_model_len\": %d,\n",
            r->tp, r->util, r->block_size, r->max_model_len);
    fprintf(f, "  \"max_num_batched_tokens\": %d,\n  \"max_num_seqs\": %d,\n", r->batched_tokens,
            r->max_num_seqs);
    fprintf(f, "  \"total_bytes\": %.0f,\n  \"budget_bytes\": %.0f,\n  \"weight_bytes\": %.0f,\n",
            r->total_bytes, r->budget_bytes, r->weight_bytes);
    fprintf(f, "  \"activation_bytes\": %.0f,\n  \"non_torch_bytes\": %.0f,\n  \"kv_cache_bytes\": %.0f,\n",
            r->activation_bytes, r->non_torch_bytes, r->kv_bytes);
    fprintf(f, "  \"lora_bytes\": %.0f,\n  \"max_loras\": %d,\n  \"max_lora_rank\": %d,\n", r->lora_bytes,
            r->max_loras, r->max_lora_rank);
    fprintf(f, "  \"kv_bytes_per_token\": %lld,\n  \"kv_bytes_per_block\": %lld,\n",
            (long long)r->kv_bytes_per_token, (long long)r->block_bytes);
    fprintf(f, "  \"num_gpu_blocks\": %ld,\n  \"num_cpu_blocks\": %ld,\n  \"kv_cache_tokens\": %ld,\n",
            r->num_blocks, r->num_cpu_blocks, r->kv_tokens);
    fprintf(f, "  \"max_concurrency\": %.4f,\n  \"fits\": %s\n}\n", r->max_concurrency,
            r->fits ? "true" : "false");
}
