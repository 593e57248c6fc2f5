/* kernels_ref_lora: plain-C float references of the segmented LoRA kernels
 * (kernels_lora.h), same arguments with host arrays; tests/gpu/test_lora.c
 * compares the two, tests/test_lora.c checks them against y = W x + s B A x
 * per module.  Host memory only. */
#ifndef ENGINE_KERNELS_REF_LORA_H
#define ENGINE_KERNELS_REF_LORA_H
#include <stdint.h>
#include "engine/kernels_lora.h"

/* v (rows, RA) = x[perm[row]] (K,) . A_slot rows; x (T, x_stride), A_slot = A + slot * slot_stride (RA, K). */
void kref_lora_shrink(float *v, const float *x, int x_stride, const float *A, int64_t slot_stride, int RA, int K,
                      int ntiles, const int32_t *tiles, const int32_t *perm);
/* y[perm[row], n] = round_bf16(y + scale[slot] * v[row, j R ..] . B_slot[n, :R]) for n < N (y holds bf16 values). */
void kref_lora_expand(float *y, int y_stride, const float *v, int RA, const float *B, int64_t slot_stride,
                      const float *scale, const k_lora_slices *sl, int ntiles, const int32_t *tiles,
                      const int32_t *perm);
/* act (T, I) = SwiGLU of gu (T, 2I) with the gate/up adapters of the tiles' slots (all ntiles_all tiles). */
void kref_lora_silu(float *act, const float *gu, int I, const float *v, int RA, const float *B, int64_t slot_stride,
                    const float *scale, int R, int ntiles_all, const int32_t *tiles, const int32_t *perm);
#endif
