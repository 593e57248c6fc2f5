/* lora_rt: runtime LoRA in the forward pass (--enable-lora).  A model's
 * adapters live in --max-loras GPU slots of rank --max-lora-rank, each an
 * image in the fused layout of engine/lora_pack.h, all packed on the host at
 * start-up (a bad adapter fails there, not mid-run).  Before each forward,
 * lora_rt_prepare gives the batch's adapters their slots (copying in those
 * not resident: engine/lora_slots.h) and groups the tokens by slot; then,
 * after each base GEMM of a layer, lora_rt_linear adds scale B (A x) to the
 * rows of the tokens with an adapter (kernels_lora.h), and lora_rt_silu runs
 * the dense MLP's SwiGLU with the gate/up adapters fused in.  With tensor
 * parallelism a rank's slots hold its shard (A and B split as their base
 * linear), so the row-parallel deltas add up in the all-reduce that follows.
 * Owns its device buffers; uses the GPU (stubs without CUDA); never prints. */
#ifndef ENGINE_LORA_RT_H
#define ENGINE_LORA_RT_H
#include <stddef.h>
#include <stdint.h>
#include "engine/kernels.h"
#include "engine/lora_set.h"
#include "engine/tp_shard.h"
#include "sim/model_config.h"

typedef struct lora_rt lora_rt;

/* Device bytes lora_rt_create allocates for set's limits on c (tp: a rank's
 * shard, or NULL), for steps of up to max_T tokens; 0 when c cannot take
 * adapters.  No GPU. */
size_t lora_rt_bytes(const lora_set *set, const mc_config *c, const tp_plan *tp, int max_T);
/* Packs every adapter of set (kept by the caller, not copied) and allocates
 * the slots and work buffers on the current GPU.  -1 and a message. */
int  lora_rt_create(lora_rt **out, const lora_set *set, const mc_config *c, const tp_plan *tp, int max_T,
                    char *err, size_t errlen);
/* The step's adapters: adapters (B,) the id of each sequence's adapter (0 or
 * NULL: none), its tokens [query_start[i], query_start[i+1]) of T.  Copies
 * missing adapters into slots and uploads the grouping on stream s.  -1 with
 * a message when the batch names more adapters than there are slots, or an
 * id that is not in the set. */
int  lora_rt_prepare(lora_rt *r, const int32_t *adapters, const int32_t *query_start, int B, int T, cudaStream_t s,
                     char *err, size_t errlen);
/* Whether the prepared step has tokens with an adapter. */
int  lora_rt_active(const lora_rt *r);
/* After the base GEMM of fused linear `group` (LORA_G_*) of layer l:
 * y (T, y_stride) += scale B (A x) on the adapters' rows, x (T, x_stride) the
 * GEMM's input.  Nothing without such rows or modules.  0, or -1. */
int  lora_rt_linear(lora_rt *r, int group, int l, k_bf16 *y, int y_stride, const k_bf16 *x, int x_stride,
                    cudaStream_t s);
/* The dense MLP's SwiGLU of layer l: act (T, I) from gu (T, 2I), the
 * gate/up adapters' deltas (from x (T, x_stride), the GEMM's input) fused in;
 * k_silu_mul when the step has no adapter rows.  0, or -1. */
int  lora_rt_silu(lora_rt *r, int l, k_bf16 *act, const k_bf16 *gu, int I, const k_bf16 *x, int x_stride, int T,
                  cudaStream_t s);
/* Device bytes held (slots and work buffers). */
size_t lora_rt_held(const lora_rt *r);
void lora_rt_free(lora_rt *r);
#endif
