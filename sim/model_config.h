/* model_config: the shape of a transformer read from a Hugging Face config.json.
 * Shared by the cost model and memory planner (sim/) and the engine loader
 * (engine/).  Touches only the file it is given. */
#ifndef MODEL_CONFIG_H
#define MODEL_CONFIG_H
#include <stddef.h>
#include <stdint.h>

typedef enum { MC_ARCH_LLAMA, MC_ARCH_MISTRAL, MC_ARCH_QWEN2, MC_ARCH_QWEN3,
               MC_ARCH_QWEN3_MOE, MC_ARCH_MIXTRAL, MC_ARCH_OPT, MC_ARCH_OTHER } mc_arch;
typedef enum { MC_DTYPE_BF16, MC_DTYPE_FP16, MC_DTYPE_FP32, MC_DTYPE_AWQ4 } mc_dtype;
typedef enum { MC_ROPE_NONE, MC_ROPE_LINEAR, MC_ROPE_DYNAMIC, MC_ROPE_LLAMA3, MC_ROPE_YARN } mc_rope_kind;

#define MC_MAX_LAYERS_MASK 1024   /* mlp_only_layers may name layers 0..1023 */

typedef struct mc_config {
    char   name[128];            /* _name_or_path or the file's directory name */
    char   model_type[32];       /* "llama", "qwen2", "qwen3", "mistral", "opt", "qwen3_moe" ... */
    mc_arch arch;
    int    hidden_size;          /* d_model */
    int    num_layers;           /* num_hidden_layers */
    int    num_heads;            /* num_attention_heads */
    int    num_kv_heads;         /* num_key_value_heads (= num_heads when absent) */
    int    head_dim;             /* head_dim, else hidden_size / num_heads */
    int    intermediate_size;    /* dense MLP width (OPT: ffn_dim) */
    int    vocab_size;
    int    max_position;         /* max_position_embeddings */
    double rms_eps;              /* rms_norm_eps (1e-6 default) */
    double rope_theta;           /* 10000 default */
    mc_rope_kind rope_kind;      /* rope_scaling.rope_type / type */
    double rope_factor;          /* rope_scaling.factor */
    double rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int    rope_orig_max_pos;    /* original_max_position_embeddings */
    int    tie_embeddings;       /* tie_word_embeddings */
    int    qk_norm;              /* Qwen3: per-head RMSNorm on q and k */
    int    attn_bias;            /* Qwen2: bias on q,k,v projections */
    int    sliding_window;       /* 0 = none */
    /* mixture of experts (0 experts = dense) */
    int    num_experts;          /* num_experts / num_local_experts */
    int    experts_per_tok;      /* num_experts_per_tok */
    int    moe_intermediate_size;
    int    shared_expert_intermediate_size;
    int    norm_topk_prob;       /* divide the top-k routing weights by their sum (Mixtral: always) */
    int    decoder_sparse_step;  /* layer l is sparse when (l + 1) % step == 0 (default 1: all) */
    uint8_t mlp_only[MC_MAX_LAYERS_MASK / 8]; /* bit l: layer l keeps a dense MLP (mlp_only_layers) */
    mc_dtype dtype;              /* torch_dtype; AWQ when quantization_config says so */
    /* 4-bit quantization_config (dtype AWQ4): what the engine's loader checks */
    char   quant_method[16];     /* quant_method: "awq" or "gptq" ("" when not quantized) */
    char   quant_version[16];    /* version: AutoAWQ's "gemm", "gemv", ... ("" when absent) */
    int    quant_bits;           /* bits (4) */
    int    quant_group_size;     /* group_size: weights per scale along the input (-1: the whole column) */
    int    quant_zero_point;     /* zero_point (default true): a 4-bit zero per group */
    int    quant_skip_modules;   /* modules_to_not_convert names at least one module */
} mc_config;

/* Parses config.json at `path`.  On error returns -1, fills err (naming the
 * file and the field) and leaves *c zeroed. */
int    mc_load(mc_config *c, const char *path, char *err, size_t errlen);
/* Same, from a JSON text in memory (`origin` names it in errors). */
int    mc_parse(mc_config *c, const char *json, const char *origin, char *err, size_t errlen);
/* Checks sizes are positive and consistent; -1 and a message otherwise. */
int    mc_validate(const mc_config *c, char *err, size_t errlen);
/* 1 when layer l runs a mixture of experts (num_experts > 0, on the sparse
 * step and not in mlp_only_layers), 0 when it keeps the dense MLP. */
int    mc_layer_is_moe(const mc_config *c, int l);
/* Total parameter count (embeddings, attention, MLP or experts, norms, head). */
int64_t mc_num_params(const mc_config *c);
/* Parameters touched per token (MoE: only experts_per_tok experts). */
int64_t mc_active_params(const mc_config *c);
/* Bytes of weights on the GPU for dtype (AWQ4: 4-bit weights + scales, 16-bit rest). */
int64_t mc_weight_bytes(const mc_config *c, mc_dtype dtype);
/* KV bytes per token: 2 * layers * kv_heads * head_dim * bytes(kv_dtype). */
int64_t mc_kv_bytes_per_token(const mc_config *c, mc_dtype kv_dtype);
/* The AWQ group size the weight bytes count with: group_size, or 128 when
 * the config gives none (or -1). */
int    mc_quant_group(const mc_config *c);
/* Bytes per element of a dtype (AWQ4 counts as 2: its activations/KV are fp16). */
int    mc_dtype_bytes(mc_dtype d);
/* "bf16" / "fp16" / "fp32" / "awq4" <-> mc_dtype; -1 when unknown. */
int    mc_dtype_parse(const char *s);
const char *mc_dtype_name(mc_dtype d);
#endif
