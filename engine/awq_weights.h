/* awq_weights: AWQ checkpoints in the weight loader (engine/weights.c calls
 * these where the config says quant_method awq).  The decoder layers' seven
 * linears are quantized (q, k, v, o, gate, up, down); the loader keeps them
 * fused as the 16-bit model does (q|k|v and gate|up side by side along the
 * outputs) in the tile layout of engine/awq_tile.h, after the 16-bit tensors
 * in the same arena.  Reads the checkpoint through the loader's lookup;
 * copies to the GPU only in awq_load / awq_dummy. */
#ifndef ENGINE_AWQ_WEIGHTS_H
#define ENGINE_AWQ_WEIGHTS_H
#include <stddef.h>
#include <stdint.h>
#include "engine/awq.h"
#include "engine/safetensors.h"
#include "sim/model_config.h"

/* A layer's quantized linears, in this order (w_layer.awq points to 4). */
enum { AWQ_QKV, AWQ_O, AWQ_GATE_UP, AWQ_DOWN, AWQ_NLIN };

typedef struct w_weights w_weights;
/* The loader's tensor lookup: the tensor called name, or NULL. */
typedef const st_tensor *(*awq_find_fn)(void *ctx, const char *name);

/* 0 when the engine runs this quantization_config (awq, 4 bits, version gemm,
 * zero_point, group 64 or 128, nothing left unconverted, a dense model, every
 * linear's shape the kernels take); else -1 and why. */
int    awq_check_config(const mc_config *c, char *err, size_t errlen);
/* Shapes (K inputs, N outputs) of linear i of c's layers. */
void   awq_linear_shape(const mc_config *c, int i, int *K, int *N);
/* Elements of the bf16 scratch the prefill path dequantizes into: the largest linear's K N. */
size_t awq_scratch_elems(const mc_config *c);
/* Device bytes of the quantized linears of every layer (each piece 256-byte aligned). */
size_t awq_arena_bytes(const mc_config *c);
/* Checks every quantized tensor of the checkpoint: presence, shape, dtype
 * (qweight, qzeros I32; scales F16); -1 naming the tensor otherwise. */
int    awq_check_tensors(awq_find_fn find, void *ctx, const mc_config *c, const char *dir, char *err, size_t errlen);
/* Host: linear i of layer l, fused and repacked (qw (awq_qw_bytes), scales,
 * zeros of its (K, N)), as the loader puts it on the GPU. */
int    awq_stage_linear(awq_find_fn find, void *ctx, const mc_config *c, int l, int i, uint32_t *qw,
                        uint16_t *scales, uint32_t *zeros, char *err, size_t errlen);
/* Points w's layers' quantized linears into base (the arena's AWQ part, of
 * awq_arena_bytes); w->layers must exist.  -1 when out of memory. */
int    awq_attach(w_weights *w, const mc_config *c, void *base, char *err, size_t errlen);
/* Loads the checkpoint's quantized linears into the attached places. */
int    awq_load(w_weights *w, awq_find_fn find, void *ctx, const mc_config *c, const char *dir, char *err,
                size_t errlen);
/* Random 4-bit weights and zeros, scales giving weights of std about 0.02. */
int    awq_dummy(w_weights *w, const mc_config *c, uint64_t seed, char *err, size_t errlen);
#endif
