/* tp_shard: the sharding plan of tensor parallelism over N GPUs, Megatron
 * style as vLLM and nano-vllm split a Llama/Qwen decoder, for one rank:
 *   q/k/v      column-parallel by heads (output rows split; KV heads
 *              replicated over N / kv_heads ranks when there are fewer than N)
 *   o_proj     row-parallel (input columns split), then an all-reduce
 *   gate/up    column-parallel; down row-parallel, then an all-reduce
 *   experts    (MoE) each expert's gate/up/down split along its intermediate
 *              dimension like a dense MLP (Qwen3-30B-A3B at N 4: 768 -> 4 x 192);
 *              the router is replicated
 *   embedding  vocabulary-parallel (rows split; vLLM pads the vocabulary to a
 *   lm_head    multiple of 64, then splits it evenly; padding rows are zero)
 *   norms      replicated
 * and which rows and columns of each checkpoint tensor a rank reads, so that
 * each rank reads only its own shard of the mapped safetensors files.
 * ("column"/"row" are Megatron's names for the weight (out, in): a column-
 * parallel weight is split along its output rows in the checkpoint's
 * (out_features, in_features) layout, a row-parallel one along its input
 * columns.)  Pure C: no GPU, no file but the tensors it is given. */
#ifndef ENGINE_TP_SHARD_H
#define ENGINE_TP_SHARD_H
#include <stddef.h>
#include <stdint.h>
#include "engine/safetensors.h"
#include "sim/model_config.h"

#define TP_VOCAB_PAD 64          /* vLLM's DEFAULT_VOCAB_PADDING_SIZE */

typedef struct tp_plan {
    int size, rank;              /* N ranks; this one */
    int head_dim, nq_total, nkv_total;
    int nq, q0;                  /* query heads of this rank: [q0, q0 + nq) */
    int nkv, kv0;                /* KV heads of this rank: [kv0, kv0 + nkv) */
    int kv_replicas;             /* ranks holding each KV head (1: split) */
    int inter, moe_inter, shared_inter;   /* MLP widths on this rank: dense, per expert, shared expert */
    int vocab;                   /* V of the config */
    int vocab_rows, vocab0;      /* embedding / lm_head rows here: [vocab0, vocab0 + vocab_rows);
                                  * rows >= V are padding (zero).  N = 1: V rows, no padding */
    int vocab_padded;            /* N * vocab_rows */
} tp_plan;

typedef enum { TP_REPLICATED, TP_COLUMN, TP_ROW, TP_VOCAB } tp_split;

typedef struct tp_slice {        /* what one rank reads of one checkpoint tensor */
    tp_split split;
    int      ndim;               /* 1, 2, or 3 (transformers 5's packed experts) */
    int64_t  shape[3];           /* the checkpoint's shape */
    int64_t  outer;              /* the tensor seen as (outer, rows, cols): 1 but for packed experts */
    int64_t  rows, cols;         /* (cols 1 when 1-D) */
    int64_t  r0, nr;             /* rows [r0, r0 + nr) of each outer block; rows >= `rows` are zero padding */
    int64_t  c0, nc;             /* columns [c0, c0 + nc) */
} tp_slice;

/* The plan of rank `rank` of `size` for c; -1 and a message naming the model
 * and the size when c does not split (heads, KV heads, MLP widths). */
int  tp_plan_init(tp_plan *p, const mc_config *c, int size, int rank, char *err, size_t errlen);
/* The config of one rank's shard: c with its heads, KV heads, MLP and expert
 * widths and vocabulary rows, so that the weight loader's arena plan and the
 * model's buffers come out at the shard's shapes (the full vocabulary stays
 * p->vocab: token ids and the gathered logits use it). */
void tp_rank_config(const tp_plan *p, const mc_config *c, mc_config *out);
/* How rank p->rank shards the checkpoint tensor `name` of shape (ndim,) (by
 * its Hugging Face name: q_proj, o_proj, gate_proj, experts.E.down_proj,
 * mlp.gate (router), embed_tokens, ...; transformers 5's packed
 * experts.gate_up_proj (E, 2I, D) is read as (2E, I, D) split by rows, so a
 * rank gets (E, 2 I/N, D) gate|up per expert, and experts.down_proj (E, D,
 * I) by columns); -1 for a name without a rule or a shape that disagrees
 * with the plan. */
int  tp_shard_tensor(const tp_plan *p, const char *name, int ndim, const int64_t *shape, tp_slice *s,
                     char *err, size_t errlen);
/* The slice is nranges contiguous byte ranges of the tensor's data (one per
 * outer block for rows, one per row for columns); range i: offset and length
 * in bytes for elements of elem_bytes.  Padding rows read nothing. */
int64_t tp_slice_nranges(const tp_slice *s);
void tp_slice_range(const tp_slice *s, int64_t i, int elem_bytes, uint64_t *off, uint64_t *len);
/* Reads the slice of t as bf16 into out (outer, nr, nc), padding rows
 * zeroed; reads only the slice's bytes.  -1 when t's shape is not the slice's. */
int  tp_slice_read(const st_tensor *t, const tp_slice *s, uint16_t *out, char *err, size_t errlen);
/* Calls fn for every tensor of a Hugging Face checkpoint of c (dense
 * llama/mistral/qwen2/qwen3 and qwen3_moe), with its name and shape, in
 * checkpoint order; stops at fn's first nonzero return and returns it. */
typedef int (*tp_tensor_fn)(void *ctx, const char *name, int ndim, const int64_t *shape);
int  tp_tensors(const mc_config *c, int has_bias, tp_tensor_fn fn, void *ctx, char *err, size_t errlen);
/* bf16 bytes of the weights one rank holds (the tensors' own bytes, without
 * the arena's alignment); -1 on error.  KV bytes per token on one rank. */
int64_t tp_weight_bytes(const tp_plan *p, const mc_config *c, int has_bias, char *err, size_t errlen);
int64_t tp_kv_bytes_per_token(const tp_plan *p, const mc_config *c);
/* The vocabulary-parallel embedding's ids on this rank: out[t] = ids[t] -
 * vocab0 for ids in this rank's rows, else -1 (k_embedding writes zeros),
 * so that the sum over ranks (an all-reduce) is the full embedding. */
void tp_vocab_local_ids(const tp_plan *p, const int32_t *ids, int T, int32_t *out);
#endif
