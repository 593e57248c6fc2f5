/* bm_internal.h: the block manager's state, shared by sim/block_manager.c and
 * sim/bm_*.c (private: only those include it).
 *
 * Layout (indexed by physical block id b in [0, nb)):
 *   blk[b]      the hot state in one 16-byte record: ref (holders; 0 = free),
 *               where (W_USED, W_FREE = free without hash, W_CACHED = free and
 *               still hashed), next/prev (links of the two free queues: free,
 *               and cached with the least recently freed at the head), hashed
 *   hash, gen, parent, parent_gen, tok   prefix-cache identity of a full block:
 *               its chained hash, a generation bumped at each registration, the
 *               (block, generation) it follows, and its tokens (nb, bs)
 *   gpu_twin / cpu_twin / cpu_ref   the CPU swap pool (sim/bm_swap.c)
 * The blocks' life (take a free block, drop a holder, the two free queues
 * that make the prefix cache's LRU) is inline here: every admission, append
 * and release runs it. */
#ifndef SIM_BM_INTERNAL_H
#define SIM_BM_INTERNAL_H
#include "sim/block_manager.h"

enum { W_USED = 0, W_FREE = 1, W_CACHED = 2 };
enum { Q_FREE = 0, Q_CACHED = 1 };

typedef struct bm_queue { int head, tail, len; } bm_queue;
/* ref: holders; next/prev: free-queue links (-1 = none); where: W_*;
 * hashed: registered in the map */
typedef struct bm_block { int32_t ref, next, prev; uint8_t where, hashed; } bm_block;
typedef struct bm_mark { uint32_t stamp; int32_t tok, fin; } bm_mark;
typedef struct bm_entry { uint64_t hash; int32_t block; } bm_entry; /* block -1 = empty */

struct bm {
    int nb, bs, ncpu;
    bool pc;
    bm_block *blk;        /* (nb,) the hot per-block state, one 16-byte record */
    bm_queue  q[2];
    uint64_t *hash;       /* (nb,) */
    uint32_t *gen;        /* (nb,) */
    int32_t  *parent;     /* (nb,) < 0 for a first block (bm_root_parent) */
    uint32_t *parent_gen; /* (nb,) */
    int      *tok;        /* (nb, bs) tokens of registered blocks; NULL without caching */
    bm_entry *map;        /* (map_cap,) open addressing, linear probing */
    uint32_t  map_mask;
    int       map_len;
    int32_t  *cpu_free;   /* (ncpu,) stack of free CPU blocks */
    int       cpu_nfree;
    int32_t  *cpu_ref;    /* (ncpu,) swapped-out tables holding each CPU block */
    int32_t  *gpu_twin;   /* (nb,)  CPU block holding a copy of this GPU block, -1 none */
    int32_t  *cpu_twin;   /* (ncpu,) and back; a pair is valid only when mutual */
    int32_t  *cpu_valid;  /* (ncpu,) leading slots of the CPU block valid for all its holders */
    int      *scratch;    /* (2*nb + ncpu,) for views and checks */
    bm_mark  *mark;       /* (nb,) bm_usage's per-block maxima, valid when stamp == *epoch */
    uint32_t *epoch;      /* bm_usage's call counter (state a const query may update) */
    bm_hash_fn hfn;
    long hit_tokens, cow_copies, evictions;
};

/* ---- small helpers ------------------------------------------------------------ */
/* While swapped out, a table holds -(cpu block + 1) entries. */
static inline bool bm_on_cpu(const seq *s) { return s->num_blocks > 0 && s->block_table[0] < 0; }
static inline int bm_clampi(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }
/* Home slot of hash h in the prefix map. */
static inline uint32_t bm_map_slot(const bm *m, uint64_t h) { return (uint32_t)(h ^ (h >> 32)) & m->map_mask; }

/* ---- the prefix cache (sim/bm_prefix.c) ------------------------------------------ */
/* Drops b's hash (its map entry); b stays where it is. */
void bm_unregister(bm *m, int b);
/* The parent identity of a sequence's first block, and the hash its chain
 * starts from: -1 and BM_HASH_SEED without a LoRA adapter; with adapter a,
 * -1 - a and a seed of its own, so that a prefix computed under one adapter
 * (other K/V) never serves another (vLLM puts the adapter in the block hash). */
static inline int bm_root_parent(const seq *s) { return s->lora > 0 ? -1 - s->lora : -1; }
static inline uint64_t bm_root_hash(const seq *s) {
    return s->lora > 0 ? bm_hash_default(BM_HASH_SEED, &s->lora, 1) : BM_HASH_SEED;
}
/* Registers full block b: hash h, following block parent (bm_root_parent for
 * a first block), holding tokens (bs of them). */
void bm_register(bm *m, int b, uint64_t h, int parent, const int *tokens);
/* Walks the cached prefix of s: returns the number of full blocks hit (never
 * covering the last token, which must be computed to sample from), and how
 * many of them are in use (ref > 0) in *in_use.  Fills hits[] when non-NULL. */
int  bm_lookup_prefix(const bm *m, const seq *s, int *in_use, int *hits);

/* ---- the CPU pool (sim/bm_swap.c) ------------------------------------------------- */
/* Drops one holder of CPU block c (back on the free stack at zero). */
void bm_drop_cpu(bm *m, int c);
/* GPU block g loses its CPU twin (its content may change from now on). */
static inline void bm_untwin_gpu(bm *m, int g) {
    int c = m->gpu_twin[g];
    if (c >= 0 && m->cpu_twin[c] == g) m->cpu_twin[c] = -1;
    m->gpu_twin[g] = -1;
}

/* ---- the free queues: a FIFO of never-hashed free blocks, and the cached
 * free blocks with the least recently freed at the head (the LRU) ------------- */
static inline void bm_q_push(bm *m, int qi, int b) {
    bm_queue *q = &m->q[qi];
    m->blk[b].next = -1;
    m->blk[b].prev = q->tail;
    if (q->tail >= 0) m->blk[q->tail].next = b; else q->head = b;
    q->tail = b;
    q->len++;
}
static inline void bm_q_remove(bm *m, int qi, int b) {
    bm_queue *q = &m->q[qi];
    int p = m->blk[b].prev, n = m->blk[b].next;
    if (p >= 0) m->blk[p].next = n; else q->head = n;
    if (n >= 0) m->blk[n].prev = p; else q->tail = p;
    m->blk[b].next = m->blk[b].prev = -1;
    q->len--;
}

/* Free blocks in all (uncached + cached). */
static inline int bm_num_free(const bm *m) { return m->q[Q_FREE].len + m->q[Q_CACHED].len; }

/* Takes a free block (an unhashed one first, else the least recently freed
 * cached one, whose hash is dropped).  Caller has checked bm_num_free > 0.
 * (Out of line, in sim/block_manager.c, as the three below: inlined into
 * bm_append_slot they made its common path, a slot in a block it already
 * holds, save six registers it does not need.) */
int  bm_alloc_block(bm *m);
/* One holder less; at zero the block goes to the free or the cached queue. */
void bm_drop_block(bm *m, int b);
/* Takes a hit block (used: one more holder; cached free: back in use). */
void bm_take_block(bm *m, int b);

#endif
