/* buddy_alloc: a binary buddy allocator over a range of token slots, buddy_.
 * The reservation baselines (sim/reserve_alloc.c) place their ranges with it
 * when kv_config.allocator is KV_ALLOC_BUDDY, as the vLLM paper assumes its
 * Orca baselines do (section 6.1): a request of n slots gets a block of the
 * next power of two >= n, aligned to its size; a freed block merges with its
 * buddy while the buddy is free too.
 * A pool that is not a power of two is cut into the largest aligned blocks
 * that fit, greedily from slot 0 (15,728 slots: 8192 + 4096 + 2048 + 1024 +
 * 256 + 64 + 32 + 16); no merge crosses those cuts.  Placement is
 * deterministic: the smallest free block that fits, the lowest address among
 * equals.  Pure data structure: touches nothing but itself. */
#ifndef BUDDY_ALLOC_H
#define BUDDY_ALLOC_H
#include <stdbool.h>
#include <stddef.h>

typedef struct buddy buddy;

/* A pool of total slots (1 .. 2^50).  NULL + err on a bad size or no memory. */
buddy *buddy_create(long total, char *err, size_t errlen);
void   buddy_destroy(buddy *b);
/* The block size a request of need slots gets: the next power of two (need >= 1). */
long   buddy_block_for(long need);
/* Is there a free block of at least buddy_block_for(need) slots? */
bool   buddy_can_alloc(const buddy *b, long need);
/* Takes a block for need slots: returns its first slot and sets *held to its
 * size, or returns -1 (no free block large enough, or out of memory growing
 * the free list; *held = 0). */
long   buddy_alloc(buddy *b, long need, long *held);
/* Gives back the block [start, start + held) that buddy_alloc returned.  Can't fail. */
void   buddy_free(buddy *b, long start, long held);
/* Free slots in all, and the largest free block. */
long   buddy_free_total(const buddy *b);
long   buddy_largest_free(const buddy *b);
/* The free blocks in address order: n of them, block i = [start, start + len). */
int    buddy_num_free(const buddy *b);
void   buddy_free_block(const buddy *b, int i, long *start, long *len);
/* Verifies the free list: sorted, disjoint, inside the pool, each block aligned
 * to its size, no two free buddies left unmerged, the total right.  0, or -1
 * with the first violation in err. */
int    buddy_check(const buddy *b, char *err, size_t errlen);
#endif
