/* model_config: reads a Hugging Face config.json into mc_config and derives
 * parameter counts, weight bytes and KV bytes per token from it.
 * Touches only the file it is given (mc_load); everything else is pure. */
#include "sim/model_config.h"
#include "base/file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* AWQ (and 4-bit GPTQ) as vLLM loads it: 4-bit weights packed 8 per int32,
 * one fp16 scale and one 4-bit zero point per group of 128 input rows.  Only
 * the linear layers of the decoder are quantized; embeddings, lm_head, norms,
 * biases and MoE routers stay 16-bit. */
#define MC_AWQ_GROUP 128

/* ---- JSON field helpers ----------------------------------------------------- */

/* Reads an integer field; returns 0 when absent (and sets *v = dflt), 1 when
 * read, -1 (with err) when present but not a non-negative integer. */
static int get_int(const cJSON *o, const char *key, int dflt, int *v,
                   const char *origin, char *err, size_t errlen) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    *v = dflt;
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0) {
        snprintf(err, errlen, "%s: field '%s' must be a non-negative integer", origin, key);
        return -1;
    }
    if (it->valuedouble > INT_MAX) {
        snprintf(err, errlen, "%s: field '%s' is %.6g: implausibly large", origin, key, it->valuedouble);
        return -1;
    }
    *v = (int)it->valuedouble;
    return 1;
}

static int get_double(const cJSON *o, const char *key, double dflt, double *v,
                      const char *origin, char *err, size_t errlen) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    *v = dflt;
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
        snprintf(err, errlen, "%s: field '%s' must be a number", origin, key);
        return -1;
    }
    *v = it->valuedouble;
    return 1;
}

static int get_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it)) return dflt;
    if (cJSON_IsBool(it)) return cJSON_IsTrue(it);
    if (cJSON_IsNumber(it)) return it->valuedouble != 0;
    return dflt;
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* A required positive integer: the first of up to three alternative keys. */
static int need_pos(const cJSON *o, const char *k1, const char *k2, const char *k3, int *v,
                    const char *origin, char *err, size_t errlen) {
    const char *keys[3] = { k1, k2, k3 };
    for (int i = 0; i < 3; i++) {
        if (!keys[i]) continue;
        int r = get_int(o, keys[i], 0, v, origin, err, errlen);
        if (r < 0) return -1;
        if (r == 1) {
            if (*v <= 0) {
                snprintf(err, errlen, "%s: field '%s' must be positive (got %d)", origin, keys[i], *v);
                return -1;
            }
            return 0;
        }
    }
    snprintf(err, errlen, "%s: missing field '%s'", origin, k1);
    return -1;
}

static void set_name(mc_config *c, const cJSON *o, const char *origin) {
    const char *n = get_str(o, "_name_or_path");
    if (n && *n) { snprintf(c->name, sizeof c->name, "%s", n); return; }
    /* .../NAME/config.json -> NAME; .../NAME.json -> NAME */
    const char *base = strrchr(origin, '/');
    base = base ? base + 1 : origin;
    if (!strcmp(base, "config.json") && base != origin) {
        const char *end = base - 1, *start = end;
        while (start > origin && start[-1] != '/') start--;
        snprintf(c->name, sizeof c->name, "%.*s", (int)(end - start), start);
        return;
    }
    size_t len = strlen(base);
    if (len > 5 && !strcmp(base + len - 5, ".json")) len -= 5;
    snprintf(c->name, sizeof c->name, "%.*s", (int)len, base);
}

static mc_arch arch_of(const char *mt) {
    static const struct { const char *s; mc_arch a; } map[] = {
        { "llama", MC_ARCH_LLAMA }, { "mistral", MC_ARCH_MISTRAL }, { "qwen2", MC_ARCH_QWEN2 },
        { "qwen3", MC_ARCH_QWEN3 }, { "qwen3_moe", MC_ARCH_QWEN3_MOE },
        { "mixtral", MC_ARCH_MIXTRAL }, { "opt", MC_ARCH_OPT },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(mt, map[i].s)) return map[i].a;
    return MC_ARCH_OTHER;
}

/* RoPE settings: "rope_scaling" (transformers < 5) or "rope_parameters"
 * (transformers >= 5 writes rope_theta and the scaling there, and no longer
 * at the top level). */
static int parse_rope(mc_config *c, const cJSON *o, const char *origin, char *err, size_t errlen) {
    const char *field = "rope_scaling";
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, field);
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(o, "rope_parameters");
    c->rope_kind = MC_ROPE_NONE;
    c->rope_factor = 1.0;
    if ((!rs || cJSON_IsNull(rs)) && rp && !cJSON_IsNull(rp)) {
        field = "rope_parameters";
        rs = rp;
        if (cJSON_IsObject(rp) && !cJSON_GetObjectItemCaseSensitive(o, "rope_theta") &&
            get_double(rp, "rope_theta", c->rope_theta, &c->rope_theta, origin, err, errlen) < 0)
            return -1;
    }
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs)) {
        snprintf(err, errlen, "%s: field '%s' must be an object or null", origin, field);
        return -1;
    }
    const char *t = get_str(rs, "rope_type");
    if (!t) t = get_str(rs, "type");
    if (!t || !strcmp(t, "default")) c->rope_kind = MC_ROPE_NONE;
    else if (!strcmp(t, "linear")) c->rope_kind = MC_ROPE_LINEAR;
    else if (!strcmp(t, "dynamic")) c->rope_kind = MC_ROPE_DYNAMIC;
    else if (!strcmp(t, "llama3")) c->rope_kind = MC_ROPE_LLAMA3;
    else if (!strcmp(t, "yarn")) c->rope_kind = MC_ROPE_YARN;
    else {
        snprintf(err, errlen, "%s: field '%s.rope_type' has unknown value '%s'", origin, field, t);
        return -1;
    }
    if (get_double(rs, "factor", 1.0, &c->rope_factor, origin, err, errlen) < 0 ||
        get_double(rs, "low_freq_factor", 1.0, &c->rope_low_freq_factor, origin, err, errlen) < 0 ||
        get_double(rs, "high_freq_factor", 4.0, &c->rope_high_freq_factor, origin, err, errlen) < 0 ||
        get_int(rs, "original_max_position_embeddings", c->rope_orig_max_pos,
                &c->rope_orig_max_pos, origin, err, errlen) < 0)
        return -1;
    return 0;
}

/* The rest of a 4-bit quantization_config, for the engine's loader (which
 * checks what it supports): group_size (-1: one group per column), zero_point,
 * version, and whether modules_to_not_convert names any module. */
static int parse_quant(mc_config *c, const cJSON *q, const char *method, int bits, const char *origin,
                       char *err, size_t errlen) {
    snprintf(c->quant_method, sizeof c->quant_method, "%s", method);
    c->quant_bits = bits;
    c->quant_group_size = MC_AWQ_GROUP;
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(q, "group_size");
    if (g && !cJSON_IsNull(g)) {
        if (!cJSON_IsNumber(g) || g->valuedouble != floor(g->valuedouble) || g->valuedouble < -1 ||
            g->valuedouble == 0 || g->valuedouble > 1 << 20) {
            snprintf(err, errlen, "%s: field 'quantization_config.group_size' must be a positive integer or -1",
                     origin);
            return -1;
        }
        c->quant_group_size = (int)g->valuedouble;
    }
    c->quant_zero_point = get_bool(q, "zero_point", 1);
    const char *v = get_str(q, "version");
    snprintf(c->quant_version, sizeof c->quant_version, "%s", v ? v : "");
    const cJSON *skip = cJSON_GetObjectItemCaseSensitive(q, "modules_to_not_convert");
    c->quant_skip_modules = cJSON_IsArray(skip) && cJSON_GetArraySize(skip) > 0;
    return 0;
}

static int parse_dtype(mc_config *c, const cJSON *o, const char *origin, char *err, size_t errlen) {
    const char *t = get_str(o, "torch_dtype");
    if (!t) t = get_str(o, "dtype");
    c->dtype = MC_DTYPE_BF16;
    if (t) {
        if (!strcmp(t, "bfloat16")) c->dtype = MC_DTYPE_BF16;
        else if (!strcmp(t, "float16") || !strcmp(t, "half")) c->dtype = MC_DTYPE_FP16;
        else if (!strcmp(t, "float32") || !strcmp(t, "float")) c->dtype = MC_DTYPE_FP32;
        else {
            snprintf(err, errlen, "%s: field 'torch_dtype' has unknown value '%s'", origin, t);
            return -1;
        }
    }
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "quantization_config");
    if (!q || cJSON_IsNull(q)) return 0;
    if (!cJSON_IsObject(q)) {
        snprintf(err, errlen, "%s: field 'quantization_config' must be an object", origin);
        return -1;
    }
    const char *m = get_str(q, "quant_method");
    if (!m) {
        snprintf(err, errlen, "%s: missing field 'quantization_config.quant_method'", origin);
        return -1;
    }
    int bits;
    if (get_int(q, "bits", 4, &bits, origin, err, errlen) < 0) return -1;
    if ((!strcasecmp(m, "awq") || !strcasecmp(m, "gptq")) && bits == 4) {
        c->dtype = MC_DTYPE_AWQ4;
        return parse_quant(c, q, m, bits, origin, err, errlen);
    }
    snprintf(err, errlen, "%s: field 'quantization_config': %d-bit '%s' is not supported "
             "(4-bit awq/gptq are)", origin, bits, m);
    return -1;
}

/* ---- loading --------------------------------------------------------------- */

/* Which layers are sparse and how routing weights are normalised
 * (transformers' Qwen2/3-MoE: norm_topk_prob default false,
 * decoder_sparse_step 1, mlp_only_layers []; Mixtral always renormalises). */
static int parse_sparse_layers(mc_config *c, const cJSON *o, const char *origin, char *err, size_t errlen) {
    c->norm_topk_prob = get_bool(o, "norm_topk_prob", c->arch == MC_ARCH_MIXTRAL);
    if (c->arch == MC_ARCH_MIXTRAL) c->norm_topk_prob = 1;
    if (get_int(o, "decoder_sparse_step", 1, &c->decoder_sparse_step, origin, err, errlen) < 0) return -1;
    if (c->decoder_sparse_step <= 0) {
        snprintf(err, errlen, "%s: field 'decoder_sparse_step' must be positive (got %d)", origin,
                 c->decoder_sparse_step);
        return -1;
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "mlp_only_layers");
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsArray(a)) {
        snprintf(err, errlen, "%s: field 'mlp_only_layers' must be a list of layer indices", origin);
        return -1;
    }
    for (const cJSON *it = a->child; it; it = it->next) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (v != floor(v) || v < 0 || v >= c->num_layers || v >= MC_MAX_LAYERS_MASK) {
            snprintf(err, errlen, "%s: field 'mlp_only_layers' holds %s, not a layer index in 0..%d", origin,
                     cJSON_IsNumber(it) ? "an out-of-range value" : "a non-number",
                     (c->num_layers < MC_MAX_LAYERS_MASK ? c->num_layers : MC_MAX_LAYERS_MASK) - 1);
            return -1;
        }
        c->mlp_only[(int)v / 8] |= (uint8_t)(1u << ((int)v % 8));
    }
    return 0;
}

int mc_layer_is_moe(const mc_config *c, int l) {
    if (c->num_experts <= 0 || l < 0 || l >= c->num_layers) return 0;
    if (l < MC_MAX_LAYERS_MASK && (c->mlp_only[l / 8] >> (l % 8) & 1)) return 0;
    int step = c->decoder_sparse_step > 0 ? c->decoder_sparse_step : 1;
    return (l + 1) % step == 0;
}

static int parse_obj(mc_config *c, const cJSON *o, const char *origin, char *err, size_t errlen) {
    set_name(c, o, origin);
    const char *mt = get_str(o, "model_type");
    if (!mt) {
        snprintf(err, errlen, "%s: missing field 'model_type'", origin);
        return -1;
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    c->arch = arch_of(mt);
    int opt = c->arch == MC_ARCH_OPT;

    if (need_pos(o, "hidden_size", opt ? "word_embed_proj_dim" : NULL, NULL, &c->hidden_size, origin, err, errlen) ||
        need_pos(o, "num_hidden_layers", "n_layer", NULL, &c->num_layers, origin, err, errlen) ||
        need_pos(o, "num_attention_heads", "n_head", NULL, &c->num_heads, origin, err, errlen) ||
        need_pos(o, "vocab_size", NULL, NULL, &c->vocab_size, origin, err, errlen))
        return -1;
    int kvh = get_int(o, "num_key_value_heads", c->num_heads, &c->num_kv_heads, origin, err, errlen);
    int hd = kvh < 0 ? -1 : get_int(o, "head_dim", c->hidden_size / c->num_heads, &c->head_dim, origin, err, errlen);
    if (kvh == 1 && c->num_kv_heads == 0) {        /* given as 0: no KV cache at all, not "the default" */
        snprintf(err, errlen, "%s: field 'num_key_value_heads' must be positive (got 0)", origin);
        return -1;
    }
    if (hd == 1 && c->head_dim == 0) {             /* null means the default; 0 is an error */
        snprintf(err, errlen, "%s: field 'head_dim' must be positive (got 0)", origin);
        return -1;
    }
    if (kvh < 0 || hd < 0 ||
        get_int(o, "max_position_embeddings", 0, &c->max_position, origin, err, errlen) < 0 ||
        get_int(o, "sliding_window", 0, &c->sliding_window, origin, err, errlen) < 0 ||
        get_double(o, "rms_norm_eps", 1e-6, &c->rms_eps, origin, err, errlen) < 0 ||
        get_double(o, "rope_theta", 10000.0, &c->rope_theta, origin, err, errlen) < 0)
        return -1;
    if (!get_bool(o, "use_sliding_window", 1)) c->sliding_window = 0;
    c->rope_orig_max_pos = c->max_position;
    if (opt) c->rope_kind = MC_ROPE_NONE, c->rope_factor = 1.0;
    else if (parse_rope(c, o, origin, err, errlen) < 0) return -1;

    /* MLP width: OPT ffn_dim; MoE models without a dense MLP may omit it */
    int r = get_int(o, opt ? "ffn_dim" : "intermediate_size", 0, &c->intermediate_size,
                    origin, err, errlen);
    if (r < 0) return -1;

    if (get_int(o, "num_experts", 0, &c->num_experts, origin, err, errlen) < 0) return -1;
    if (c->num_experts == 0 &&
        get_int(o, "num_local_experts", 0, &c->num_experts, origin, err, errlen) < 0) return -1;
    if (c->num_experts > 0) {
        if (need_pos(o, "num_experts_per_tok", NULL, NULL, &c->experts_per_tok, origin, err, errlen) < 0)
            return -1;
        /* Mixtral: intermediate_size is the expert width */
        if (get_int(o, "moe_intermediate_size", c->intermediate_size, &c->moe_intermediate_size,
                    origin, err, errlen) < 0 ||
            get_int(o, "shared_expert_intermediate_size", 0, &c->shared_expert_intermediate_size,
                    origin, err, errlen) < 0)
            return -1;
        if (c->moe_intermediate_size <= 0) {
            snprintf(err, errlen, "%s: missing field 'moe_intermediate_size'", origin);
            return -1;
        }
        if (parse_sparse_layers(c, o, origin, err, errlen) < 0) return -1;
    } else if (r == 0) {
        snprintf(err, errlen, "%s: missing field '%s'", origin, opt ? "ffn_dim" : "intermediate_size");
        return -1;
    }

    /* OPT ties its head to the embeddings by default; the others do not */
    c->tie_embeddings = get_bool(o, "tie_word_embeddings", opt);
    c->qk_norm = c->arch == MC_ARCH_QWEN3 || c->arch == MC_ARCH_QWEN3_MOE;
    c->attn_bias = get_bool(o, "attention_bias", c->arch == MC_ARCH_QWEN2 || opt);
    if (opt) c->attn_bias = get_bool(o, "enable_bias", 1);
    if (parse_dtype(c, o, origin, err, errlen) < 0) return -1;
    char why[512];
    if (mc_validate(c, why, sizeof why) < 0) {     /* name the file, not only the model */
        snprintf(err, errlen, "%s: %s", origin, why);
        return -1;
    }
    return 0;
}

/* 1-based line of position p in text */
static int line_of(const char *text, const char *p) {
    int line = 1;
    for (const char *q = text; q < p && *q; q++) if (*q == '\n') line++;
    return line;
}

int mc_parse(mc_config *c, const char *json, const char *origin, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    if (!origin) origin = "(config)";
    if (!json) {
        snprintf(err, errlen, "%s: no text", origin);
        return -1;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(json, &end, 0);
    if (!o) {
        snprintf(err, errlen, "%s:%d: not valid JSON", origin, line_of(json, end ? end : json));
        return -1;
    }
    int rc = -1;
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: not a JSON object", origin);
        goto out;
    }
    rc = parse_obj(c, o, origin, err, errlen);
out:
    cJSON_Delete(o);
    if (rc < 0) memset(c, 0, sizeof *c);
    return rc;
}

int mc_load(mc_config *c, const char *path, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    int rc = -1;
    size_t len = 0;
    char *buf = file_read_all(path, 64u << 20, &len, err, errlen);   /* (len + 1,) the file and a NUL */
    if (!buf) return -1;
    if (memchr(buf, '\0', len)) {
        snprintf(err, errlen, "%s: binary data, not a config.json", path);
        goto out;
    }
    rc = mc_parse(c, buf, path, err, errlen);
out:
    free(buf);
    return rc;
}

int mc_validate(const mc_config *c, char *err, size_t errlen) {
    const char *o = c->name[0] ? c->name : "(config)";
    if (c->hidden_size <= 0 || c->num_layers <= 0 || c->num_heads <= 0 || c->vocab_size <= 0 ||
        c->head_dim <= 0 || c->num_kv_heads <= 0) {
        snprintf(err, errlen, "%s: hidden_size, num_hidden_layers, num_attention_heads, head_dim, "
                 "num_key_value_heads and vocab_size must all be positive", o);
        return -1;
    }
    if (c->num_kv_heads > c->num_heads || c->num_heads % c->num_kv_heads != 0) {
        snprintf(err, errlen, "%s: num_key_value_heads (%d) must divide num_attention_heads (%d)",
                 o, c->num_kv_heads, c->num_heads);
        return -1;
    }
    if (c->num_experts > 0 && (c->experts_per_tok <= 0 || c->experts_per_tok > c->num_experts ||
                               c->moe_intermediate_size <= 0)) {
        snprintf(err, errlen, "%s: num_experts_per_tok (%d) must be in 1..num_experts (%d), "
                 "with moe_intermediate_size > 0", o, c->experts_per_tok, c->num_experts);
        return -1;
    }
    if (c->num_experts == 0 && c->intermediate_size <= 0) {
        snprintf(err, errlen, "%s: intermediate_size must be positive", o);
        return -1;
    }
    for (int l = 0; c->num_experts > 0 && c->intermediate_size <= 0 && l < c->num_layers; l++)
        if (!mc_layer_is_moe(c, l)) {
            snprintf(err, errlen, "%s: layer %d keeps a dense MLP (mlp_only_layers, decoder_sparse_step) "
                     "but intermediate_size is missing", o, l);
            return -1;
        }
    /* guard the int64 arithmetic below against absurd sizes: name the field and its bound */
    static const struct { const char *key; size_t off; int max; } lim[] = {
        { "hidden_size", offsetof(mc_config, hidden_size), 1 << 20 },
        { "num_hidden_layers", offsetof(mc_config, num_layers), 10000 },
        { "vocab_size", offsetof(mc_config, vocab_size), 1 << 24 },
        { "head_dim", offsetof(mc_config, head_dim), 65536 },
        { "num_attention_heads", offsetof(mc_config, num_heads), 65536 },
        { "intermediate_size", offsetof(mc_config, intermediate_size), 1 << 22 },
        { "moe_intermediate_size", offsetof(mc_config, moe_intermediate_size), 1 << 22 },
        { "num_experts", offsetof(mc_config, num_experts), 65536 },
    };
    for (size_t i = 0; i < sizeof lim / sizeof *lim; i++) {
        int v = *(const int *)((const char *)c + lim[i].off);
        if (v > lim[i].max) {
            snprintf(err, errlen, "%s: %s %d is implausibly large (at most %d)", o, lim[i].key, v, lim[i].max);
            return -1;
        }
    }
    return 0;
}

/* ---- counting -------------------------------------------------------------- */

/* Parameters of one decoder layer, split into linear weights (which AWQ
 * quantizes) and the rest (biases, norms, router: 16-bit).  moe: the layer
 * runs the experts (else the dense MLP); active: count only experts_per_tok
 * of them. */
typedef struct layer_params { int64_t linear, other; } layer_params;

static layer_params layer_count(const mc_config *c, int active, int moe) {
    layer_params p = { 0, 0 };
    int64_t h = c->hidden_size, q = (int64_t)c->num_heads * c->head_dim,
            kv = (int64_t)c->num_kv_heads * c->head_dim;
    p.linear += h * q + 2 * h * kv + q * h;                 /* q, k, v, o */
    if (c->attn_bias) p.other += q + 2 * kv;
    if (c->arch == MC_ARCH_OPT && c->attn_bias) p.other += h;   /* out_proj bias */
    if (c->qk_norm) p.other += 2 * c->head_dim;
    if (c->arch == MC_ARCH_OPT) {
        int64_t f = c->intermediate_size;
        p.linear += 2 * h * f;                              /* fc1, fc2 */
        p.other += f + h;                                   /* their biases */
        p.other += 4 * h;                                   /* two LayerNorms: weight + bias */
        return p;
    }
    if (moe) {
        int64_t e = active ? c->experts_per_tok : c->num_experts;
        p.linear += e * 3 * h * c->moe_intermediate_size;   /* gate, up, down per expert */
        p.other += h * c->num_experts;                      /* router */
        if (c->shared_expert_intermediate_size > 0)
            p.linear += 3 * h * c->shared_expert_intermediate_size, p.other += h;  /* + its gate */
    } else {
        p.linear += 3 * h * c->intermediate_size;           /* gate, up, down (SwiGLU) */
    }
    p.other += 2 * h;                                       /* two RMSNorms */
    return p;
}

/* embeddings + final norm + lm_head */
static int64_t outer_count(const mc_config *c) {
    int64_t h = c->hidden_size, v = c->vocab_size;
    int64_t n = v * h + (c->tie_embeddings ? 0 : v * h);
    if (c->arch == MC_ARCH_OPT) n += (int64_t)(c->max_position + 2) * h + 2 * h; /* learned positions, final LN */
    else n += h;
    return n;
}

/* the decoder layers together: MoE layers and dense ones counted apart */
static layer_params body_count(const mc_config *c, int active) {
    int nmoe = 0;
    for (int l = 0; l < c->num_layers; l++) nmoe += mc_layer_is_moe(c, l);
    layer_params s = layer_count(c, active, 1), d = layer_count(c, active, 0), p;
    p.linear = (int64_t)nmoe * s.linear + (int64_t)(c->num_layers - nmoe) * d.linear;
    p.other = (int64_t)nmoe * s.other + (int64_t)(c->num_layers - nmoe) * d.other;
    return p;
}

int64_t mc_num_params(const mc_config *c) {
    layer_params p = body_count(c, 0);
    return outer_count(c) + p.linear + p.other;
}

int64_t mc_active_params(const mc_config *c) {
    layer_params p = body_count(c, 1);
    return outer_count(c) + p.linear + p.other;
}

int64_t mc_weight_bytes(const mc_config *c, mc_dtype dtype) {
    layer_params p = body_count(c, 0);
    int64_t linear = p.linear;
    int64_t rest = outer_count(c) + p.other;
    if (dtype != MC_DTYPE_AWQ4)
        return (linear + rest) * mc_dtype_bytes(dtype);
    /* per weight: 4 bits; per group of 128 weights along the input: a 16-bit
     * scale and a 4-bit zero -> 0.5 + 2.5/128 bytes per weight */
    double q = (double)linear * (0.5 + 2.5 / mc_quant_group(c));
    return (int64_t)llround(q) + rest * 2;
}

int64_t mc_kv_bytes_per_token(const mc_config *c, mc_dtype kv_dtype) {
    return 2LL * c->num_layers * c->num_kv_heads * c->head_dim * mc_dtype_bytes(kv_dtype);
}

int mc_quant_group(const mc_config *c) {
    return c->quant_group_size > 0 ? c->quant_group_size : MC_AWQ_GROUP;
}

int mc_dtype_bytes(mc_dtype d) {
    switch (d) {
    case MC_DTYPE_FP32: return 4;
    case MC_DTYPE_BF16: case MC_DTYPE_FP16: case MC_DTYPE_AWQ4: return 2;
    }
    return 2;
}

int mc_dtype_parse(const char *s) {
    if (!s) return -1;
    if (!strcasecmp(s, "bf16") || !strcasecmp(s, "bfloat16")) return MC_DTYPE_BF16;
    if (!strcasecmp(s, "fp16") || !strcasecmp(s, "float16") || !strcasecmp(s, "half")) return MC_DTYPE_FP16;
    if (!strcasecmp(s, "fp32") || !strcasecmp(s, "float32")) return MC_DTYPE_FP32;
    if (!strcasecmp(s, "awq4") || !strcasecmp(s, "awq")) return MC_DTYPE_AWQ4;
    return -1;
}

const char *mc_dtype_name(mc_dtype d) {
    switch (d) {
    case MC_DTYPE_BF16: return "bf16";
    case MC_DTYPE_FP16: return "fp16";
    case MC_DTYPE_FP32: return "fp32";
    case MC_DTYPE_AWQ4: return "awq4";
    }
    return "?";
}
