/* kernels_lora: host launchers of the segmented LoRA kernels (engine/lora.cu),
 * Punica's SGMV idea: the batch's tokens with an adapter are grouped by the
 * GPU slot of their adapter (engine/lora_slots.h: perm, tiles of up to
 * LORA_TILE rows of one slot), so that each tile reads its adapter's A and B
 * once for all its tokens.  Per fused linear of a layer (engine/lora_pack.h):
 *   shrink  v (rows, RA) fp32 = x[perm[row]] (K,) @ A_slot (RA, K)^T
 *   expand  y[perm[row], n] += scale[slot] * v[row, j R .. j R + R) . B_slot[n, :R]
 *           for the output rows n of module j (slice j of the fused output)
 * A_slot = A + slot * slot_stride, and B alike: a slot's pieces sit at the
 * same offsets in every slot.  Tokens without an adapter are in no tile and
 * keep y as the base GEMM wrote it.  Each row's result depends on that row
 * alone (a fixed order of additions), so a request gets the same values
 * whatever shares its batch.  Device pointers; launchers return 0, or -1 on
 * a bad argument; they never synchronise.  References: kernels_ref_lora.h. */
#ifndef ENGINE_KERNELS_LORA_H
#define ENGINE_KERNELS_LORA_H
#include <stdint.h>
#include "engine/kernels.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct k_lora_batch {
    int rows;                    /* tokens with an adapter (host knowledge) */
    int ntiles;                  /* tiles of those rows (host knowledge) */
    int ntiles_all;              /* and then the tiles of the tokens without one (slot -1) */
    const int32_t *perm;         /* (T,) the token of each row: rows with an adapter grouped by slot,
                                    then the others */
    const int32_t *tiles;        /* (ntiles_all, 3) slot (-1: none), first row, rows (<= LORA_TILE) */
    float *work;                 /* (work_elems,) fp32 scratch of the shrink's split-K partials; NULL: none */
    int64_t work_elems;
} k_lora_batch;

/* The shrink adds K in fixed splits of K_LORA_KSPLIT: v = ((P0 + P1) + P2) ...
 * with P_s the split's partial, whatever the batch, so that a row's value is
 * the same in any batch.  Small batches (at most K_LORA_SPLIT_ROWS rows, and
 * a work buffer of k_lora_shrink_work floats) run one block per split and add
 * the partials from work; larger ones loop over the splits in a block. */
#define K_LORA_KSPLIT 512
#define K_LORA_SPLIT_ROWS 1024
static inline int64_t k_lora_shrink_work(int RA, int K, int rows) {
    return (int64_t)((K + K_LORA_KSPLIT - 1) / K_LORA_KSPLIT) * rows * RA;
}

typedef struct k_lora_slices {   /* the modules of a fused linear along its output */
    int S;                       /* 1..3 */
    int R;                       /* rank of a slot: module j reads v columns [j R, j R + R) */
    int end[3];                  /* cumulative output rows: module j owns [end[j-1], end[j]); N = end[S-1] */
} k_lora_slices;

/* v (rows, RA) fp32 = x[perm[row]] @ A_slot^T.  x (T, x_stride) bf16,
 * A (nslots, ...) with A_slot (RA, K) row-major.  K and RA multiples of 16,
 * x_stride of 8, slot_stride of 128 (elements), A 256-byte aligned.  Uses
 * b->work when b->rows <= K_LORA_SPLIT_ROWS and it holds
 * k_lora_shrink_work(RA, K, b->rows) floats. */
int k_lora_shrink(float *v, const k_bf16 *x, int x_stride, const k_bf16 *A, int64_t slot_stride, int RA, int K,
                  const k_lora_batch *b, cudaStream_t s);
/* y[perm[row], n] = bf16(y + scale[slot] * sum_k<R v[row, j R + k] B_slot[n, k]) for n < N.
 * y (T, y_stride) bf16, v (rows, RA), B_slot (N, R) row-major, scale (nslots,)
 * fp32.  y_stride and every end[j] multiples of 8.  The sum runs on tensor
 * cores with v split into two bf16 (v = hi + lo, about 16 bits kept). */
int k_lora_expand(k_bf16 *y, int y_stride, const float *v, int RA, const k_bf16 *B, int64_t slot_stride,
                  const float *scale, const k_lora_slices *sl, const k_lora_batch *b, cudaStream_t s);

/* SwiGLU with the gate/up adapters fused in, for every token (all tiles):
 * act[t] = bf16(bf16(silu(g')) * u'), g' = bf16(gate + s dg), u' = bf16(up +
 * s du) with dg, du the expand of the fused gate|up linear (slices [I, 2I],
 * rank R: v columns [0, R) and [R, 2R)); tokens without an adapter: plain
 * k_silu_mul.  gu (T, 2I), act (T, I); I and R multiples of 8. */
int k_lora_silu(k_bf16 *act, const k_bf16 *gu, int I, const float *v, int RA, const k_bf16 *B, int64_t slot_stride,
                const float *scale, int R, const k_lora_batch *b, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
