/* model: the forward pass of a Llama/Qwen/Mistral decoder, or a Qwen3-MoE one
 * (mixture-of-experts layers), on the GPU over a paged KV cache, its buffers,
 * and the memory plan that sizes the cache the way vLLM does.  One model serves one flattened batch per step; which
 * sequences run and where their tokens live (block tables, slots) is decided
 * by the caller (the scheduler).  Uses the GPU; never prints. */
#ifndef ENGINE_MODEL_H
#define ENGINE_MODEL_H
#include <stddef.h>
#include <stdint.h>
#include "engine/kernels.h"
#include "engine/weights.h"
#include "sim/model_config.h"

typedef struct tp_rank tp_rank;      /* engine/tp_engine.h */
typedef struct lora_set lora_set;    /* engine/lora_set.h */

typedef struct model_opts {
    int    max_num_batched_tokens;   /* tokens per step (activation buffers), default 2048 */
    int    max_num_seqs;             /* sequences per step, default 256 */
    int    max_model_len;            /* tokens per sequence, default min(max_position, 4096) */
    int    block_size;               /* KV slots per block, default 16 */
    double gpu_memory_utilization;   /* share of the GPU this model may use, default 0.9 */
    int    num_gpu_blocks;           /* > 0: this many KV blocks instead of what memory allows */
    double max_gpu_memory;           /* bytes; > 0: plan as if the GPU had no more (a smaller card's budget) */
    int    max_logit_rows;           /* rows of logits one step may return, default max_num_seqs */
    /* kernels (0: the default) */
    int    attention;                /* K_ATTN_* (k_attention_impl) */
    int    attention_partition;      /* keys per decode_mma partition, 0: the default (k_attention_partition) */
    int    elementwise;              /* K_ELEM_* (k_elementwise_impl) */
    int    moe_gemm;                 /* K_MOE_GEMM_*: the experts' GEMMs */
    /* probes (model_probe.h) */
    int    profile;                  /* GPU time of each class of step (model_profile_text) */
    const char *dump_layer0;         /* file: the first forward's layer-0 intermediates */
    const char *dump_experts;        /* file: every forward's chosen experts (MoE layers) */
    int    host_probe;               /* time the host's phases of each step (mprobe_host_text) */
    /* CUDA graphs (engine/cuda_graph.h): 0 (the default, as vLLM's) or 1 = a
     * decode-only step of up to graph_max_batch sequences replays the graph
     * of its batch bucket, captured in model_create; -1 (--enforce-eager) =
     * every step eager.  Off where cg_off_reason says. */
    int    cuda_graphs;
    int    graph_max_batch;          /* 0: max_num_seqs (within the token and logits rows limits) */
    int    graph_min_batch;          /* the smallest bucket, every smaller batch padded to it (0: 1,
                                        vLLM's; = graph_max_batch: every decode step one shape, a row
                                        independent of the batch: tests compare schedules bit for bit) */
    /* preemption by swap (engine/swap.h): GiB of pinned host memory per GPU
     * for swapped-out KV blocks, as vLLM's --swap-space; 0 = no pool */
    double swap_space;
    /* tensor parallelism (engine/tp_engine.h): this rank's shard, NCCL and
     * the other ranks; NULL: one GPU, exactly the path without it.  On rank
     * 0, model_create has the other ranks build their models with the same
     * options, and model_forward / model_copy_block post each step to them
     * before running it, so that every caller runs sharded unchanged. */
    const tp_rank *tp;
    /* runtime LoRA (--enable-lora): the adapters requests may name, in
     * lora->max_loras GPU slots of rank lora->max_rank (engine/lora_rt.h);
     * the caller keeps the set alive.  NULL: off, exactly the path without it. */
    const lora_set *lora;
} model_opts;

typedef struct model_mem {          /* what the memory plan found (bytes) */
    size_t total, weights, activations, other, kv_cache;
    size_t graphs_reserved, graphs;  /* CUDA graphs: set aside before the KV cache, and measured after capture */
    int    num_graphs;               /* graphs captured (0: eager) */
    size_t swap_bytes;               /* pinned host memory of the swap pool */
    int    num_cpu_blocks;           /* its blocks (0: no swap) */
    size_t kv_bytes_per_token;       /* 2 * layers * kv_heads * head_dim * 2 */
    int    num_blocks, block_size;
    long   kv_tokens;                /* num_blocks * block_size */
    double max_concurrency;          /* kv_tokens / max_model_len */
    size_t lora;                     /* LoRA slots and work buffers (--enable-lora), apart from other */
} model_mem;

/* One step's flattened batch, all host arrays (copied to the GPU by model_forward):
 *   input_ids (T,), positions (T,), slot_mapping (T,) physical KV slot of each
 *   new token (block_id * block_size + offset), query_start (B+1,),
 *   context_lens (B,) tokens in cache after this step, block_tables
 *   (B, max_blocks_per_seq). */
typedef struct model_batch {
    int T, B;
    const int32_t *input_ids, *positions, *slot_mapping;
    const int32_t *query_start, *context_lens, *block_tables;
    int max_blocks_per_seq;
    int all_logits;                  /* 1: logits of all T tokens; 0: last token of each sequence */
    const int32_t *lora;             /* (B,) each sequence's LoRA adapter (its lora_set id, 0 = none),
                                        or NULL: none (with model_opts.lora) */
} model_batch;

typedef struct model model;

/* o with every option left at 0 set to its default (the values above). */
void model_resolve_opts(const mc_config *c, model_opts *o);
/* Takes ownership of *w (cleared), allocates the activation buffers, runs a
 * full-size step to measure the activation peak, then gives the KV cache what
 * gpu_memory_utilization leaves.  -1 and a message with the numbers when the
 * memory does not suffice for one sequence of max_model_len.  With o->tp, w
 * is this rank's shard (w_load_shard), the plan is this GPU's and the blocks
 * are the fewest any rank has room for (every rank holds its KV heads of
 * every block); c is the whole model's config. */
int  model_create(model **out, const mc_config *c, w_weights *w, const model_opts *o, model_mem *mem,
                  char *err, size_t errlen);
/* Runs one step: writes the new tokens' K/V and leaves the logits (R, V)
 * float on the GPU; R = T or B (all_logits).  -1 and a message on a bad batch. */
int  model_forward(model *m, const model_batch *b, int *rows, char *err, size_t errlen);
/* Samples one token per logits row r < R with params[r] (host) -> tokens (R,) host. */
int  model_sample(model *m, int R, const k_sample_params *params, int32_t *tokens, char *err, size_t errlen);
/* model_forward, then model_sample of every row (R of them, in *rows) with
 * params (R,) host -> tokens (R,) host.  A decode-only step with CUDA graphs
 * is one upload (the batch and params) and one graph launch that samples too. */
int  model_forward_sample(model *m, const model_batch *b, const k_sample_params *params, int32_t *tokens,
                          int *rows, char *err, size_t errlen);
/* Whether decode-only steps replay graphs: on 1 (when graphs were captured)
 * or 0 (eager, for comparisons); returns the old setting. */
int  model_use_graphs(model *m, int on);
/* The graphs (engine/cuda_graph.h), NULL when off; *why: the reason then. */
const struct cg_set *model_graphs(const model *m, const char **why);
/* Copies logits rows [0, R) to host out (R, V). */
int  model_logits(model *m, int R, float *out, char *err, size_t errlen);
/* out (R,) host = log-probability of ids[r] (host) under logits row r. */
int  model_logprobs(model *m, int R, const int32_t *ids, float *out, char *err, size_t errlen);
/* Copies KV block src to block dst in every layer (copy-on-write). */
int  model_copy_block(model *m, int src, int dst, char *err, size_t errlen);
/* n blocks src.. to dst.. in every layer: kind KV_SWAP_OUT (GPU to the swap
 * pool), KV_SWAP_IN (back) or KV_COPY_GPU (sim/kv_cache.h: kv_copy_kind);
 * queued before the next step.  With tensor parallelism every rank copies
 * its shard.  -1 and a message without a pool (swap_space 0) or out of range. */
int  model_swap(model *m, int kind, int src, int dst, int n, char *err, size_t errlen);
/* Blocks of the swap pool (0: none). */
int  model_num_cpu_blocks(const model *m);
/* The probes (model_probe.h: the host's phases of a step too), or NULL. */
struct mprobe *model_probe(const model *m);
/* Waits until the model's GPU work is done (with tensor parallelism through
 * tp_sync: a failed or silent rank ends the wait with a message naming it). */
int  model_sync(model *m, char *err, size_t errlen);
/* With opts.profile: the GPU time of each class of step (GEMMs, attention,
 * norms, routing...) summed over the steps with prefill tokens and over the
 * decode-only steps, and the experts' loads, as text in buf.  -1 when not
 * profiling. */
int  model_profile_text(const model *m, char *buf, size_t n);
/* Bytes of the activation buffers model_create allocates for c and o (no GPU
 * needed): the part of the measured activation peak that is ours, to set
 * beside the planner's estimate (sim/planner.h). */
size_t model_activation_bytes(const mc_config *c, const model_opts *o);
/* KV blocks of the cache (what the scheduler's pool must have). */
int  model_num_blocks(const model *m);
const mc_config *model_config(const model *m);
const model_opts *model_options(const model *m);
void model_free(model *m);
#endif
