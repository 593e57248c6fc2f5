/* weights: a model's parameters on the GPU, in one device allocation (the
 * arena), bf16, at the shapes of an mc_config.  Loaded from a Hugging Face
 * checkpoint directory (model.safetensors, or the shards that
 * model.safetensors.index.json names; bf16/fp16/fp32 on disk) or filled with
 * seeded random values (--dummy-weights).  q/k/v projections are stored fused
 * as one matrix, and so are gate/up, so each is one GEMM.  Mixture-of-experts
 * layers (Qwen3-MoE) hold a router and their experts packed into one tensor
 * each, read from per-expert checkpoint tensors (mlp.experts.E.gate_proj ...)
 * or from transformers 5's packed ones (mlp.experts.gate_up_proj, down_proj).
 * AWQ checkpoints (quant_method awq): the layers' linears stay 4-bit, fused
 * the same way, after the 16-bit tensors (engine/awq_weights.h). */
#ifndef ENGINE_WEIGHTS_H
#define ENGINE_WEIGHTS_H
#include <stddef.h>
#include <stdint.h>
#include "engine/awq.h"
#include "engine/kernels.h"
#include "engine/tp_shard.h"
#include "sim/model_config.h"

typedef struct w_layer {
    k_bf16 *attn_norm;     /* (D,) input_layernorm */
    k_bf16 *wqkv;          /* ((nq + 2*nkv) * hd, D)  q_proj | k_proj | v_proj rows */
    k_bf16 *bqkv;          /* ((nq + 2*nkv) * hd,) or NULL */
    k_bf16 *q_norm;        /* (hd,) Qwen3, else NULL */
    k_bf16 *k_norm;        /* (hd,) Qwen3, else NULL */
    k_bf16 *wo;            /* (D, nq * hd) o_proj */
    k_bf16 *mlp_norm;      /* (D,) post_attention_layernorm */
    /* the MLP: dense, or (router != NULL) a mixture of E experts of width Im,
     * each expert's tensors packed one after the other on load */
    k_bf16 *router;        /* (E, D) mlp.gate, or NULL for a dense MLP */
    k_bf16 *w_gate_up;     /* dense (2I, D) gate_proj | up_proj rows; MoE (E, 2Im, D) the same per expert */
    k_bf16 *w_down;        /* dense (D, I) down_proj; MoE (E, D, Im) */
    /* AWQ checkpoints: the quantized qkv, o, gate_up, down (engine/awq_weights.h,
     * AWQ_QKV ..), and wqkv, wo, w_gate_up, w_down NULL; else NULL */
    k_awq_linear *awq;
} w_layer;

typedef struct w_weights {
    void    *arena;        /* the one device allocation */
    size_t   bytes;
    k_bf16  *embed;        /* (V, D) */
    k_bf16  *lm_head;      /* (V, D), = embed when the embeddings are tied */
    k_bf16  *final_norm;   /* (D,) */
    w_layer *layers;       /* (L,) host array of device pointers */
    int      num_layers;
    int      has_bias, has_qk_norm;
    k_awq_linear *awq;     /* (L, AWQ_NLIN) host array the layers' awq point into, or NULL */
} w_weights;

/* Checks that the engine can run this config (architecture, head_dim,
 * grouped heads, rope scaling, sizes); -1 and a message otherwise. */
int    w_check_config(const mc_config *c, char *err, size_t errlen);
/* Device bytes the weights of c take (with q/k/v biases when has_bias). */
size_t w_bytes(const mc_config *c, int has_bias);
/* Checks a checkpoint directory against c without a GPU: every tensor is
 * present with the right shape and a loadable dtype.  Sets *has_bias. */
int    w_check_dir(const char *dir, const mc_config *c, int *has_bias, char *err, size_t errlen);
/* Loads the checkpoint in dir onto the GPU.  -1 and a message on error
 * (nothing is left allocated). */
int    w_load(w_weights *w, const char *dir, const mc_config *c, char *err, size_t errlen);
/* Tensor parallelism: rank tp->rank's shard of the checkpoint (checked at
 * c's whole shapes first), at the shapes of tp_rank_config(tp, c); each
 * tensor's slice is read from the mapped files alone (tp_slice_read), so no
 * rank holds a whole tensor in host memory.  tp NULL: w_load. */
int    w_load_shard(w_weights *w, const char *dir, const mc_config *c, const tp_plan *tp, char *err, size_t errlen);
/* Random weights (uniform, std 0.02) from seed; norms are 1.  Routers: row e
 * uniform with std (2 / sqrt(D)) (1 + 0.3 u_e), u_e uniform in [-1, 1], so
 * that on RMS-normalised inputs the router logits have std about 2 (top-1
 * probability about 0.3 of 128 experts) and the experts' loads differ (max
 * about 1.8x the mean), as a trained router's do; a constant scale would
 * spread the tokens almost perfectly evenly. */
int    w_dummy(w_weights *w, const mc_config *c, uint64_t seed, char *err, size_t errlen);
/* Random weights of rank tp->rank's shard, filled as w_dummy fills a whole
 * model of the shard's shapes (routers and norms alike on every rank, so the
 * replicated ones agree).  tp NULL: w_dummy. */
int    w_dummy_shard(w_weights *w, const mc_config *c, const tp_plan *tp, uint64_t seed, char *err, size_t errlen);
void   w_free(w_weights *w);
#endif
