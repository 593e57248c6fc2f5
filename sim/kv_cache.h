/* kv_cache: the one interface the scheduler, the visualisation and the engine
 * use to place KV token states, whatever the allocation policy:
 *   KV_PAGED        PagedAttention: blocks on demand, ref counts, copy-on-write,
 *                   prefix caching, swap  (sim/block_manager.c, bm_)
 *   KV_CONTIGUOUS   static KV cache: max_model_len slots reserved per request
 *   KV_ORCA_MAX     Orca: orca_max_len (2048) slots reserved per request
 *   KV_ORCA_POW2    Orca: next power of two of (prompt + true output) slots
 *   KV_ORCA_ORACLE  Orca: exactly prompt + true output slots
 *                   (the four reservation policies: sim/reserve_alloc.c, ra_)
 * All policies share one slot pool of num_blocks * block_size token slots, so
 * their waste can be compared.  Checking is split from acting: kv_can_* may
 * say no; the matching action, called after a yes, cannot fail. */
#ifndef KV_CACHE_H
#define KV_CACHE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sim/sequence.h"

typedef enum { KV_PAGED, KV_CONTIGUOUS, KV_ORCA_MAX, KV_ORCA_POW2, KV_ORCA_ORACLE,
               KV_NUM_POLICIES } kv_policy;

/* How the reservation policies place their ranges (paged ignores it):
 * first-fit in a list of free ranges (what engine/'s contiguous policy does, the
 * zero value), or binary buddy blocks (the vLLM paper's Orca baselines). */
typedef enum { KV_ALLOC_FIRST_FIT, KV_ALLOC_BUDDY } kv_allocator;

typedef struct kv_config {
    kv_policy policy;
    int  num_blocks;         /* GPU pool: num_blocks * block_size slots */
    int  block_size;         /* token slots per block (16) */
    int  max_model_len;      /* longest sequence (prompt + output) */
    int  orca_max_len;       /* KV_ORCA_MAX reservation (2048) */
    bool prefix_caching;     /* paged only */
    int  num_cpu_blocks;     /* swap space in blocks (paged only); 0 = no swap */
    kv_allocator allocator;  /* reservation policies: first-fit (0) or buddy */
} kv_config;

/* A block copy the executor must perform before the step (copy-on-write or
 * swap): src and dst are physical block ids; for swaps one side is a CPU block. */
typedef enum { KV_COPY_GPU, KV_SWAP_OUT, KV_SWAP_IN } kv_copy_kind;
typedef struct kv_copy { int src, dst; kv_copy_kind kind; } kv_copy;

/* Where the pool's slots are, in the vLLM paper's categories.  Slot counts. */
typedef struct kv_usage {
    long slots_total;        /* num_blocks * block_size */
    long token_slots;        /* hold a token state (KV written or being written this step) */
    long reserved_slots;     /* held for tokens that will come (reservation) */
    long internal_frag;      /* held but never to be used (over-reservation, block tails) */
    long external_frag;      /* free, but unusable for the next waiting request; and
                                held beyond what the policy asked (buddy rounding):
                                the paper's "external fragmentation & others" */
    long free_slots;         /* free and usable */
    int  blocks_used;        /* blocks with ref > 0 (paged; reservation: blocks touched) */
    int  blocks_cached;      /* free blocks still holding a prefix-cache hash */
    int  blocks_total;
    long prefix_hit_tokens;  /* cumulative prompt tokens served from the prefix cache */
    long cow_copies;         /* cumulative copy-on-write copies */
} kv_usage;

typedef struct kv_cache kv_cache;   /* defined in sim/kv_cache.c */

/* Creates the pool.  Returns NULL and fills err on bad sizes or no memory. */
kv_cache *kv_create(const kv_config *cfg, char *err, size_t errlen);
void      kv_destroy(kv_cache *kv);
const kv_config *kv_get_config(const kv_cache *kv);
/* Room for s's whole current token list (prompt, or prompt+generated after a
 * recompute preemption), after prefix-cache hits (paged) or for its full
 * reservation (other policies)?  With watermark_blocks kept free. */
bool kv_can_admit(const kv_cache *kv, const seq *s, int watermark_blocks);
/* Could s ever run to its full length (prompt_len + max_output tokens) in
 * this pool, alone in it, with watermark_blocks free at each admission?  No
 * means no schedule can finish it: the scheduler refuses it at once (as vLLM
 * refuses a prompt longer than the cache) instead of preempting it forever.
 * Can't fail. */
bool kv_can_ever_fit(const kv_cache *kv, const seq *s, int watermark_blocks);
/* Gives s its blocks / reservation.  Prefix-cache hits set s->num_computed to
 * the cached tokens (whole blocks, never the entire prompt: at least the last
 * prompt token is computed).  Call only after kv_can_admit said yes.  Returns
 * 0, or -1 when s was not admitted and nothing changed: out of memory for its
 * block table or the allocator's bookkeeping (or called without that yes). */
int  kv_admit(kv_cache *kv, seq *s);
/* Room for the slot of token index s->num_tokens (the next generated token)? */
bool kv_can_append(const kv_cache *kv, const seq *s);
/* Makes that slot writable: a new block when the last is full, a copy-on-write
 * when the last block is shared.  Returns 1 and fills *copy when a copy is
 * needed, else 0; -1 when out of memory (nothing changed; only a sequence
 * grown past prompt_len + max_output, the life its table was sized for at
 * admission, may need memory here).  Call after kv_can_append said yes,
 * before s->num_tokens grows. */
int  kv_append_slot(kv_cache *kv, seq *s, kv_copy *copy);
/* Registers full blocks of s in the prefix cache once their KV is computed
 * (call after the step that computed them).  No-op without prefix caching. */
void kv_commit_computed(kv_cache *kv, seq *s);
/* child shares all of parent's blocks (ref counts +1).  Paged only; for
 * reservation policies the child gets its own reservation (returns -1 if none). */
int  kv_fork(kv_cache *kv, const seq *parent, seq *child);
/* Drops s's blocks / reservation (finished, aborted, or preempted by recompute). */
void kv_release(kv_cache *kv, seq *s);
/* Swap (paged only): can s's blocks go to the CPU pool / come back? */
bool kv_can_swap_out(const kv_cache *kv, const seq *s);
bool kv_can_swap_in(const kv_cache *kv, const seq *s);
/* Move s's blocks; writes the block moves into copies (cap >= s->num_blocks)
 * and returns their count. */
int  kv_swap_out(kv_cache *kv, seq *s, kv_copy *copies);
int  kv_swap_in(kv_cache *kv, seq *s, kv_copy *copies);
/* Physical slot of token position pos of s (block_table[pos/bs]*bs + pos%bs,
 * or resv_start + pos): the one place that knows the layout. */
long kv_slot(const kv_cache *kv, const seq *s, int pos);
/* The physical block table of s for any policy, as attention kernels read
 * it: out[k] = the block holding logical block k (paged: s->block_table; a
 * reservation synthesises its own, resv_start / block_size + k).  Writes at
 * most cap entries and returns the table's full length (compare with cap), or
 * -1 when s's KV has no block layout on the GPU: swapped out, or a
 * reservation that does not start on a block boundary.  So that
 * kv_slot(kv, s, p) == out[p / bs] * bs + p % bs for every held position. */
int  kv_block_table(const kv_cache *kv, const seq *s, int *out /* (cap,) */, int cap);
/* Fills u.  live: the sequences holding blocks (running and swapped), n of them;
 * next: the head of the waiting queue or NULL (for external fragmentation). */
void kv_usage_get(const kv_cache *kv, seq *const *live, int n, const seq *next, kv_usage *u);
/* Verifies every invariant (each block free xor used; ref count = number of
 * tables holding it; hashed blocks are full; free list consistent; reservations
 * disjoint).  Returns 0, or -1 with the first violation in err. */
int  kv_check(const kv_cache *kv, seq *const *live, int n, char *err, size_t errlen);
/* Per-block view for the visualisation: for block b, its ref count, the tokens
 * it holds, whether it is a freed block still cached, and an owner seq id
 * (-1 if free; the lowest id when shared).  Reservation policies report the
 * blocks their slot ranges cover. */
typedef struct kv_block_view { int ref, tokens, owner; bool cached; bool reserved; } kv_block_view;
void kv_block_views(const kv_cache *kv, seq *const *live, int n, kv_block_view *out /* (num_blocks,) */);
const char *kv_policy_name(kv_policy p);
int  kv_policy_parse(const char *name); /* "paged", "contiguous", "orca-max", ...; -1 if unknown */
#endif
