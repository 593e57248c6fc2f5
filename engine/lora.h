/* lora: LoRA adapters as PEFT saves them, checked against the base model.
 * A directory holds adapter_config.json (r, lora_alpha, target_modules: a
 * list of module names, "all-linear", or a regular expression matched
 * against the whole module name; use_rslora; layers_to_transform) and
 * adapter_model.safetensors, whose tensors are named
 *   base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight  (r, in)
 *   base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight  (out, r)
 * (mlp.gate_proj / up_proj / down_proj alike) in bf16, fp16 or fp32.  Each
 * adapted linear computes y = W x + scale B (A x), scale = lora_alpha / r
 * (rank-stabilised: lora_alpha / sqrt(r)).
 *
 * The engine fuses q/k/v into one GEMM and gate/up into one (weights.h), so
 * an adapter is applied per fused linear ("group"): the A matrices of its
 * modules are stacked (each padded to the rank R of a slot) and share one
 * shrink x -> (A x) of width S R, and the B matrices are stacked along the
 * fused output dimension, each module's rows reading its own R columns of
 * A x.  lora_slot_layout says where each piece sits in a slot's image.
 *
 * Reads the files it is given (mapped read-only); no GPU; never prints. */
#ifndef ENGINE_LORA_H
#define ENGINE_LORA_H
#include <stddef.h>
#include <stdint.h>
#include "engine/safetensors.h"
#include "engine/tp_shard.h"
#include "sim/model_config.h"

/* The modules an adapter may target (PEFT's names), and the engine's fused linears. */
enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_NMOD };
enum { LORA_G_QKV, LORA_G_O, LORA_G_GATE_UP, LORA_G_DOWN, LORA_NGROUP };
#define LORA_MAX_SLICES 3         /* modules of one fused linear (q, k, v) */
#define LORA_MAX_RANK 512         /* the largest --max-lora-rank (vLLM's list ends at 512) */

typedef struct lora_peft_config {
    int      r;                   /* rank */
    double   alpha;               /* lora_alpha */
    int      use_rslora;          /* scale alpha / sqrt(r) instead of alpha / r */
    double   scale;               /* lora_scaling(r, alpha, use_rslora) */
    unsigned targets;             /* bit m: module m is named by target_modules (list / all-linear) */
    char     regex[256];          /* target_modules given as one pattern ("" otherwise) */
    int      nlayers;             /* layers_to_transform: how many (0: every layer) */
    int      layers[256];
    char     base_model[256];     /* base_model_name_or_path (information only) */
} lora_peft_config;

/* One adapter: its config, the mapped tensors, or seeded random values (benchmarks). */
typedef struct lora_adapter {
    char     name[128];           /* the name requests use */
    char     dir[512];
    lora_peft_config cfg;
    int      L;                   /* the base model's layers */
    st_file  f;
    const st_tensor **A, **B;     /* (L, LORA_NMOD): the module's lora_A (r, in) / lora_B (out, r), or NULL */
    uint64_t dummy_seed;          /* nonzero: no files; A and B of every module filled from this seed */
} lora_adapter;

/* PEFT's scaling: alpha / r, or alpha / sqrt(r) when rank-stabilised (use_rslora). */
double lora_scaling(int r, double alpha, int use_rslora);
/* Parses adapter_config.json text (len bytes; origin names it in messages).
 * Clear errors for what the engine cannot apply: no or a bad r, a target the
 * model family has no linear for (lm_head, embed_tokens, c_attn ...),
 * modules_to_save, DoRA, LoRA biases, rank or alpha patterns, fan_in_fan_out. */
int  lora_config_parse(const char *json, size_t len, const char *origin, lora_peft_config *out,
                       char *err, size_t errlen);
/* PEFT's name of module m ("q_proj" ...), and its (out, in) features in c. */
const char *lora_module_name(int m);
void lora_module_shape(const mc_config *c, int m, int64_t *out, int64_t *in);
/* Opens the adapter in dir for base model c: parses the config, maps the
 * tensors and checks them: every tensor names a module the model has (a
 * layer below L, a linear of the family: not a MoE layer's MLP), lora_A is
 * (r, in) and lora_B (out, r) at the base's in/out features, r within
 * max_rank (0: no limit) and what the config says, the config's targets all
 * have tensors.  -1 and a message (dir, tensor, shapes) otherwise. */
int  lora_adapter_open(lora_adapter *a, const char *name, const char *dir, const mc_config *c, int max_rank,
                       char *err, size_t errlen);
/* A random adapter of rank r on every linear of c ("all-linear"): A uniform
 * with std 1/sqrt(in), B with std 0.02, values from seed (benchmarks). */
int  lora_adapter_dummy(lora_adapter *a, const char *name, const mc_config *c, int r, uint64_t seed,
                        char *err, size_t errlen);
void lora_adapter_close(lora_adapter *a);
/* Module m of layer l as float: A (r, in) and B (out, r), r = a->cfg.r; 0, or
 * 1 when the adapter leaves the module alone (nothing written); -1 on error. */
int  lora_adapter_module(const lora_adapter *a, const mc_config *c, int l, int m, float *A, float *B,
                         char *err, size_t errlen);

#endif
