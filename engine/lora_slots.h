/* lora_slots: which adapter each GPU slot holds (--max-loras slots), and the
 * batch's tokens grouped by slot for the segmented LoRA kernels.  A step pins
 * the slots of its adapters: an adapter already in a slot keeps it; another
 * takes a free slot, else the least recently used unpinned one (and must be
 * copied in); when every slot is pinned by other adapters it cannot run (the
 * scheduler's max_loras keeps a step from asking for more adapters than
 * there are slots).  Pure host bookkeeping: no GPU. */
#ifndef ENGINE_LORA_SLOTS_H
#define ENGINE_LORA_SLOTS_H
#include <stddef.h>
#include <stdint.h>

#define LORA_TILE 16             /* tokens of one adapter per kernel tile */

typedef struct lora_slots {
    int       n;                 /* slots */
    int      *adapter;           /* (n,) the adapter a slot holds (> 0), 0 = empty */
    int      *pins;              /* (n,) */
    uint64_t *used;              /* (n,) when it was last acquired (LRU) */
    uint64_t  clock;
} lora_slots;

/* n empty slots; -1 when n < 1 or memory is short. */
int  lora_slots_init(lora_slots *s, int n);
void lora_slots_free(lora_slots *s);
/* The slot of adapter id (> 0), pinned once more; *load = 1 when the adapter
 * was not there (it takes a free slot, else the least recently used unpinned
 * one: copy it in), else 0.  -1 when every slot is pinned by other adapters. */
int  lora_slots_acquire(lora_slots *s, int id, int *load);
/* Unpins slot k once. */
void lora_slots_release(lora_slots *s, int k);
/* The slot holding adapter id, or -1. */
int  lora_slots_find(const lora_slots *s, int id);
/* Checks the invariants (an adapter in at most one slot, pins only on held
 * slots, pins >= 0); 0, or -1 with a message. */
int  lora_slots_check(const lora_slots *s, char *err, size_t errlen);

/* The tokens of a batch grouped by slot: B sequences, sequence i's tokens
 * [query_start[i], query_start[i+1]) and its slot slot_of[i] (< 0 or NULL:
 * no adapter).  Fills perm (T,): first the tokens with an adapter, slot by
 * slot, in token order within a slot, then the others; and tiles (ntiles_all,
 * 3): (slot, first row, rows) with rows <= LORA_TILE and one slot per tile,
 * every row in one tile: the *ntiles tiles of the adapters' rows first, then
 * those of the other rows (slot -1).  Returns the rows with an adapter.
 * tiles needs room for T / LORA_TILE + nslots + 1 tiles. */
int  lora_group_tokens(const int32_t *slot_of, const int32_t *query_start, int B, int nslots, int32_t *perm,
                       int32_t *tiles, int *ntiles, int *ntiles_all);
#endif
