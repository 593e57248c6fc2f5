/* planner: how much of a GPU is left for the KV cache once a model is loaded,
 * estimated the way vLLM measures it at start-up (gpu_memory_utilization x
 * total, minus weights, the activation peak of its profile run and non-torch
 * memory), and how many KV blocks and concurrent max-length requests that
 * buys.  Pure arithmetic over an mc_config and a cm_gpu; plan_write_* only
 * write to the stream they are given. */
#ifndef PLANNER_H
#define PLANNER_H
#include <stdint.h>
#include <stdio.h>
#include "sim/cost_model.h"
#include "sim/model_config.h"

typedef struct plan_opts {
    double util;                 /* gpu_memory_utilization, (0, 1]; vLLM default 0.9 */
    int    max_model_len;        /* tokens per request; 0 = max_position_embeddings */
    int    block_size;           /* tokens per KV block (16) */
    int    tp;                   /* tensor-parallel degree (1) */
    int    dtype;                /* weights mc_dtype; -1 = the config's (AWQ4 when quantized) */
    int    max_num_seqs;         /* profile run's sequences (256) */
    int    max_num_batched_tokens; /* profile run's tokens; 0 = as vLLM V0: max(max_model_len,
                                    * 2048), or 2048 above 32K (chunked prefill) */
    double swap_space_gib;       /* CPU swap space per GPU for "# CPU blocks" (4) */
    int    max_loras;            /* --enable-lora: GPU slots of LoRA adapters (0: LoRA off) */
    int    max_lora_rank;        /* their rank (vLLM's default 16) */
} plan_opts;

typedef struct plan_result {
    char    model[128];          /* config name */
    char    gpu[64];             /* GPU name */
    mc_dtype wdtype, kvdtype;
    int     tp, block_size, max_model_len, batched_tokens, max_num_seqs;
    double  util;
    /* bytes, per GPU */
    double  total_bytes;         /* device memory */
    double  budget_bytes;        /* total * util */
    double  weight_bytes;        /* model weights on one GPU (plan_weight_bytes) */
    double  activation_bytes;    /* profile-run peak (see planner.c for the estimate) */
    double  non_torch_bytes;     /* cuBLAS/NCCL/allocator memory outside torch tensors */
    double  lora_bytes;          /* LoRA adapter slots (plan_lora_bytes), 0 without --enable-lora */
    int     max_loras, max_lora_rank;
    double  kv_bytes;            /* budget - weights - activations - non-torch; may be < 0 */
    int64_t kv_bytes_per_token;  /* 2 x layers x kv_heads/tp x head_dim x KV dtype bytes */
    int64_t block_bytes;         /* kv_bytes_per_token x block_size */
    long    num_blocks;          /* floor(kv_bytes / block_bytes), 0 when kv_bytes <= 0 */
    long    num_cpu_blocks;      /* swap space / block_bytes */
    long    kv_tokens;           /* num_blocks x block_size */
    double  max_concurrency;     /* kv_tokens / max_model_len */
    int     fits;                /* 1: at least one max_model_len request fits */
    long    max_len_that_fits;   /* the largest max_model_len that would fit (kv_tokens) */
} plan_result;

/* vLLM's defaults: util 0.9, block 16, TP 1, 256 sequences, 4 GiB swap. */
void plan_opts_default(plan_opts *o);
/* Plans c on g.  "Does not fit" is a result (fits = 0), not an error; -1 and
 * a message only for bad options (util out of (0,1], block size, TP that does
 * not divide the heads, max_model_len beyond the model's positions). */
int  plan_compute(const mc_config *c, const cm_gpu *g, const plan_opts *o, plan_result *r,
                  char *err, size_t errlen);
/* The estimate's parts, exposed for tests and reports (bytes per GPU). */
double plan_activation_bytes(const mc_config *c, mc_dtype wdtype, int tp, int batched_tokens,
                             int max_num_seqs);
double plan_non_torch_bytes(int tp);
/* Bytes of weights on one GPU of tp, split as vLLM splits them (Megatron
 * style: q/k/v and gate/up by rows, o and down by columns, experts along their
 * width, the vocabulary padded to 64 and split; norms and the MoE router
 * whole on every GPU, KV heads whole when fewer than tp).  tp 1 equals
 * mc_weight_bytes.  The engine's own plan (engine/tp_shard.h) agrees byte
 * for byte (tests/test_tp_shard.c). */
int64_t plan_weight_bytes(const mc_config *c, mc_dtype dtype, int tp);
/* Bytes of max_loras LoRA slots of rank max_rank on one GPU of tp, as vLLM
 * allocates them (every linear of every layer: q, k, v, o and the dense
 * MLP's gate, up, down; a mixture-of-experts layer's attention only): A
 * (rank, in) and B (out, rank) per module in the weights' dtype, A whole and
 * B split with a column-parallel linear, A split and B whole with a
 * row-parallel one.  The engine's slots agree to their alignment
 * (tests/test_plan_lora.c). */
int64_t plan_lora_bytes(const mc_config *c, mc_dtype dtype, int tp, int max_loras, int max_rank);
/* KV bytes per token on one GPU: KV heads split over tp, one per GPU when fewer. */
int64_t plan_kv_bytes_per_token(const mc_config *c, mc_dtype kv_dtype, int tp);
/* Human report, vLLM's log lines included ("# GPU blocks: N, # CPU blocks: M",
 * "GPU KV cache size: N tokens", "Maximum concurrency for N tokens per
 * request: X.XXx") and a verdict line starting "verdict: fits" or
 * "verdict: does not fit". */
void plan_write_text(FILE *f, const plan_result *r);
/* The same as one JSON object. */
void plan_write_json(FILE *f, const plan_result *r);
#endif
