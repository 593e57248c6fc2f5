/* lora_pack: one adapter in the layout of a GPU slot.  The engine fuses
 * q/k/v into one GEMM and gate/up into one (weights.h), so an adapter is
 * applied per fused linear ("group"): the A matrices of the group's modules
 * are stacked, each padded to the slot's rank R, and share one shrink
 * x -> (A x) of width S R; the B matrices are stacked along the fused output
 * dimension, and each module's output rows read its own R columns of A x.
 * A module the adapter leaves alone, and the ranks past its own, are zeros.
 * With tensor parallelism each rank's slot holds its shard: A and B split
 * like their base linear (engine/tp_shard.h).  No GPU; reads the adapter. */
#ifndef ENGINE_LORA_PACK_H
#define ENGINE_LORA_PACK_H
#include <stddef.h>
#include <stdint.h>
#include "engine/lora.h"
#include "engine/tp_shard.h"
#include "sim/model_config.h"

typedef struct lora_group_layout {
    int     S;                    /* modules stacked (3, 1, 2, 1); 0: the layer has no such group (MoE MLP) */
    int     mod[LORA_MAX_SLICES]; /* their LORA_* */
    int     K, N;                 /* fused input and output widths (this rank's with tensor parallelism) */
    int     RA;                   /* rows of A: S R rounded up to 16 */
    int     slice_end[LORA_MAX_SLICES];  /* cumulative output rows of the modules in the fused output */
    size_t  a_off, b_off;         /* element offsets in the slot image: A (RA, K), B (N, R) */
} lora_group_layout;

typedef struct lora_layout {
    int     L, R;
    lora_group_layout *g;         /* (L, LORA_NGROUP) */
    size_t  elems;                /* bf16 elements of one slot (each piece 128-element aligned) */
} lora_layout;

/* The layout of one slot for c at rank R on tensor-parallel rank tp (NULL:
 * one GPU): q/k/v and gate/up column-parallel (B's rows split as the base's
 * rows, A whole), o and down row-parallel (A's columns split as the base's
 * columns, B whole), so that the rank's partial sums add up through the
 * all-reduce that follows o and down.  -1 when a width is not a multiple of
 * 16 (the shrink kernel's tiles) or memory is short. */
int  lora_slot_layout(lora_layout *lo, const mc_config *c, int R, const tp_plan *tp, char *err, size_t errlen);
void lora_layout_free(lora_layout *lo);
/* Fills img (lo->elems,) bf16 with adapter a in lo's layout (zeros where a
 * leaves a module alone and past its rank); tp as for lora_slot_layout.
 * -1 and a message when a's rank exceeds lo->R or a tensor cannot be read. */
int  lora_pack(const lora_adapter *a, const mc_config *c, const lora_layout *lo, const tp_plan *tp,
               uint16_t *img, char *err, size_t errlen);

#endif
