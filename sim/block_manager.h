/* block_manager: the paged KV-cache policy (PagedAttention), bm_.
 * A pool of num_blocks physical blocks of block_size token slots, a queue of
 * free blocks, per-block reference counts, per-sequence block tables
 * (seq->block_table), copy-on-write of a shared last block, automatic prefix
 * caching (hash chained over full blocks, token comparison on a hit, freed
 * blocks keep their hash and are evicted least-recently-freed first) and swap
 * to a bounded CPU pool.  Used through sim/kv_cache.h; tests may call it
 * directly.  While a sequence is swapped out its block table holds
 * -(cpu_block + 1) for each entry; bm_swap_out/in set s->status to
 * SEQ_SWAPPED/SEQ_RUNNING and return the copies made (blocks shared with a
 * sibling's swap are shared on the other side too, not copied twice).
 * Allocation takes a never-hashed free block first, else evicts the least
 * recently freed cached block.  bm_commit_computed registers a table's full,
 * computed blocks in order, stopping at a block another table still shares
 * (it may be full for one holder only); it is registered once held alone.
 * Acting without a yes from the matching can_* (a caller bug) changes nothing
 * rather than corrupting the pool.  Out of memory never aborts: the only
 * allocation of the acts is a sequence's block table, sized at admission for
 * its whole life (bm_admit returns -1 when it cannot be), so later acts on it
 * allocate nothing (bm_append_slot returns -1 only for a sequence grown past
 * that life whose table cannot grow). */
#ifndef BLOCK_MANAGER_H
#define BLOCK_MANAGER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sim/kv_cache.h"
#include "sim/sequence.h"

typedef struct bm bm;
/* Hash of one full block: parent = the previous block's hash (BM_HASH_SEED for
 * the first block), tokens = the block's block_size token ids. */
typedef uint64_t (*bm_hash_fn)(uint64_t parent, const int *tokens, int n);
#define BM_HASH_SEED 0x9e3779b97f4a7c15ULL

/* Returns NULL and fills err on bad sizes or no memory. */
bm  *bm_create(int num_blocks, int block_size, int num_cpu_blocks, bool prefix_caching,
               char *err, size_t errlen);
void bm_destroy(bm *m);
/* The default block hash (64-bit, FNV-style with a final mix).  Can't fail. */
uint64_t bm_hash_default(uint64_t parent, const int *tokens, int n);
/* Replaces the hash (tests force collisions with it); call before any block
 * is hashed.  NULL restores the default. */
void bm_set_hash_fn(bm *m, bm_hash_fn fn);

/* The operations of sim/kv_cache.h for the paged policy (same contracts). */
bool bm_can_admit(const bm *m, const seq *s, int watermark_blocks);
int  bm_admit(bm *m, seq *s);
bool bm_can_append(const bm *m, const seq *s);
int  bm_append_slot(bm *m, seq *s, kv_copy *copy);
void bm_commit_computed(bm *m, seq *s);
int  bm_fork(bm *m, const seq *parent, seq *child);
void bm_release(bm *m, seq *s);
bool bm_can_swap_out(const bm *m, const seq *s);
bool bm_can_swap_in(const bm *m, const seq *s);
int  bm_swap_out(bm *m, seq *s, kv_copy *copies);
int  bm_swap_in(bm *m, seq *s, kv_copy *copies);
void bm_usage(const bm *m, seq *const *live, int n, kv_usage *u);
void bm_block_views(const bm *m, seq *const *live, int n, kv_block_view *out);
/* Verifies the invariants (see kv_check) over the GPU and CPU pools. */
int  bm_check(const bm *m, seq *const *live, int n, char *err, size_t errlen);

/* Introspection for tests, the visualisation and the scheduler. */
typedef struct bm_stats {
    int  free_blocks;        /* blocks with ref 0 (uncached + cached) */
    int  cached_blocks;      /* of which still hold a prefix-cache hash */
    int  cpu_free_blocks;
    int  hashed_blocks;      /* entries in the hash map (used or free) */
    long prefix_hit_tokens;  /* cumulative */
    long cow_copies;         /* cumulative */
    long evictions;          /* cumulative: cached blocks reused */
} bm_stats;
void bm_get_stats(const bm *m, bm_stats *st);
int  bm_block_ref(const bm *m, int block);
bool bm_block_hashed(const bm *m, int block);
/* The block the next allocation will take (LRU victim when no uncached block
 * is free), or -1 when the pool is exhausted. */
int  bm_next_victim(const bm *m);
/* Full blocks of s that the prefix cache would serve now (0 without caching). */
int  bm_cached_prefix_blocks(const bm *m, const seq *s);
/* The block manager behind a KV_PAGED cache (NULL for the other policies);
 * defined in sim/kv_cache.c, for tests and the visualisation. */
bm  *kv_block_manager(kv_cache *kv);
#endif
