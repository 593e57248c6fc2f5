/* block_manager: the paged KV-cache policy (see sim/block_manager.h).
 * Touches only its own pool and the block tables / progress fields of the
 * sequences it is handed (block_table, num_blocks, table_cap, num_computed).
 *
 * Layout (indexed by physical block id b in [0, nb)):
 *   blk[b]      the hot state in one 16-byte record: ref (holders; 0 = free),
 *               where (W_USED, W_FREE = free without hash, W_CACHED = free and
 *               still hashed), next/prev (links of the two free queues: free,
 *               and cached with the least recently freed at the head), hashed
 *   hash, gen, parent, parent_gen, tok   prefix-cache identity of a full block:
 *               its chained hash, a generation bumped at each registration, the
 *               (block, generation) it follows, and its tokens (nb, bs)
 *   gpu_twin / cpu_twin / cpu_ref   the CPU swap pool (see "CPU pool and twins")
 * A hit needs hash, parent identity and tokens to match, so a hash collision
 * can never serve a wrong block.  Hot paths allocate nothing: block tables are
 * sized for the request's whole life at admission. */
#include "sim/block_manager.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int32_t  *parent;     /* (nb,) -1 for a first block */
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

/* ---- hashing -------------------------------------------------------------- */
uint64_t bm_hash_default(uint64_t parent, const int *tokens, int n) {
    uint64_t h = parent ^ 0xcbf29ce484222325ULL;
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)tokens[i];
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL;   /* murmur finaliser */
    h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

void bm_set_hash_fn(bm *m, bm_hash_fn fn) { m->hfn = fn ? fn : bm_hash_default; }

/* ---- free queues ---------------------------------------------------------- */
static void q_push_tail(bm *m, int qi, int b) {
    bm_queue *q = &m->q[qi];
    m->blk[b].next = -1;
    m->blk[b].prev = q->tail;
    if (q->tail >= 0) m->blk[q->tail].next = b; else q->head = b;
    q->tail = b;
    q->len++;
}
static void q_remove(bm *m, int qi, int b) {
    bm_queue *q = &m->q[qi];
    int p = m->blk[b].prev, n = m->blk[b].next;
    if (p >= 0) m->blk[p].next = n; else q->head = n;
    if (n >= 0) m->blk[n].prev = p; else q->tail = p;
    m->blk[b].next = m->blk[b].prev = -1;
    q->len--;
}

static void untwin_gpu(bm *m, int g);

/* ---- hash map: duplicates allowed (two identical blocks may both be cached) --- */
static uint32_t map_slot(const bm *m, uint64_t h) { return (uint32_t)(h ^ (h >> 32)) & m->map_mask; }

static void map_insert(bm *m, int b) {
    uint32_t i = map_slot(m, m->hash[b]);
    while (m->map[i].block >= 0) i = (i + 1) & m->map_mask;
    m->map[i].hash = m->hash[b];
    m->map[i].block = b;
    m->map_len++;
}
/* Removes b's entry, shifting later entries of the probe run back (no tombstones). */
static void map_remove(bm *m, int b) {
    uint32_t i = map_slot(m, m->hash[b]);
    while (m->map[i].block != b) i = (i + 1) & m->map_mask;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & m->map_mask;
        if (m->map[j].block < 0) break;
        uint32_t home = map_slot(m, m->map[j].hash);
        /* move j into the hole i unless its home lies cyclically in (i, j] */
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) { m->map[i] = m->map[j]; i = j; }
    }
    m->map[i].block = -1;
    m->map_len--;
}
/* The registered block with hash h following (parent, pgen) and holding tokens, or -1. */
static int map_find(const bm *m, uint64_t h, int parent, uint32_t pgen, const int *tokens) {
    uint32_t i = map_slot(m, h);
    for (; m->map[i].block >= 0; i = (i + 1) & m->map_mask) {
        int b = m->map[i].block;
        if (m->map[i].hash != h || m->parent[b] != parent) continue;
        if (parent >= 0 && m->parent_gen[b] != pgen) continue;
        if (memcmp(m->tok + (size_t)b * m->bs, tokens, (size_t)m->bs * sizeof *tokens) == 0) return b;
    }
    return -1;
}

static void unregister(bm *m, int b) {
    map_remove(m, b);
    m->blk[b].hashed = 0;
}
static void register_block(bm *m, int b, uint64_t h, int parent, const int *tokens) {
    m->hash[b] = h;
    m->gen[b]++;
    m->parent[b] = parent;
    m->parent_gen[b] = parent >= 0 ? m->gen[parent] : 0;
    memcpy(m->tok + (size_t)b * m->bs, tokens, (size_t)m->bs * sizeof *tokens);
    m->blk[b].hashed = 1;
    map_insert(m, b);
    /* a sibling on the CPU may hold an older, partial copy: it must not come
     * back to a block that is now full and in the cache */
    if (m->ncpu) untwin_gpu(m, b);
}

/* ---- blocks --------------------------------------------------------------- */
static int num_free(const bm *m) { return m->q[Q_FREE].len + m->q[Q_CACHED].len; }

/* Takes a free block (an unhashed one first, else the least recently freed
 * cached one, whose hash is dropped).  Caller has checked num_free > 0. */
static int alloc_block(bm *m) {
    int b;
    if (m->q[Q_FREE].len > 0) {
        b = m->q[Q_FREE].head;
        q_remove(m, Q_FREE, b);
    } else {
        b = m->q[Q_CACHED].head;
        q_remove(m, Q_CACHED, b);
        unregister(m, b);
        m->evictions++;
    }
    m->blk[b].ref = 1;
    m->blk[b].where = W_USED;
    return b;
}
static void drop_block(bm *m, int b) {
    if (--m->blk[b].ref > 0) return;
    if (m->ncpu) untwin_gpu(m, b);      /* its content may be overwritten from now on */
    if (m->blk[b].hashed) { m->blk[b].where = W_CACHED; q_push_tail(m, Q_CACHED, b); }
    else { m->blk[b].where = W_FREE; q_push_tail(m, Q_FREE, b); }
}
/* Takes a hit block (used: one more holder; cached free: back in use). */
static void take_block(bm *m, int b) {
    if (m->blk[b].ref == 0) { q_remove(m, Q_CACHED, b); m->blk[b].where = W_USED; }
    m->blk[b].ref++;
}

/* Makes s->block_table hold at least need entries.  Growth is geometric and
 * happens at admission (sized for the whole request), so appends rarely get
 * here.  Out of memory here has no way back: the contract says admission and
 * append cannot fail, so we stop loudly rather than corrupt the pool. */
static void table_reserve(seq *s, int need) {
    if (s->table_cap >= need) return;
    int cap = s->table_cap > 0 ? s->table_cap : 4;
    while (cap < need) cap *= 2;
    int *t = realloc(s->block_table, (size_t)cap * sizeof *t);
    if (!t) { fputs("block_manager: out of memory growing a block table\n", stderr); abort(); }
    s->block_table = t;
    s->table_cap = cap;
}

/* ---- create / destroy ------------------------------------------------------ */
bm *bm_create(int num_blocks, int block_size, int num_cpu_blocks, bool prefix_caching,
              char *err, size_t errlen) {
    if (num_blocks <= 0 || block_size <= 0 || num_cpu_blocks < 0 || num_blocks > (1 << 28)) {
        snprintf(err, errlen, "block manager: bad sizes (blocks %d, block size %d, cpu blocks %d)",
                 num_blocks, block_size, num_cpu_blocks);
        return NULL;
    }
    bm *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    size_t nb = (size_t)num_blocks;
    m->nb = num_blocks; m->bs = block_size; m->ncpu = num_cpu_blocks; m->pc = prefix_caching;
    m->hfn = bm_hash_default;
    m->blk = calloc(nb, sizeof *m->blk);
    m->hash = calloc(nb, sizeof *m->hash);
    m->gen = calloc(nb, sizeof *m->gen);
    m->parent = calloc(nb, sizeof *m->parent);
    m->parent_gen = calloc(nb, sizeof *m->parent_gen);
    m->scratch = malloc((2 * nb + (size_t)num_cpu_blocks + 1) * sizeof *m->scratch);
    m->mark = calloc(nb, sizeof *m->mark);
    m->epoch = calloc(1, sizeof *m->epoch);
    m->cpu_free = malloc(((size_t)num_cpu_blocks + 1) * sizeof *m->cpu_free);
    m->cpu_ref = calloc((size_t)num_cpu_blocks + 1, sizeof *m->cpu_ref);
    m->gpu_twin = malloc(nb * sizeof *m->gpu_twin);
    m->cpu_twin = malloc(((size_t)num_cpu_blocks + 1) * sizeof *m->cpu_twin);
    m->cpu_valid = calloc((size_t)num_cpu_blocks + 1, sizeof *m->cpu_valid);
    if (!m->blk || !m->hash || !m->gen ||
        !m->parent || !m->parent_gen || !m->scratch || !m->mark || !m->epoch || !m->cpu_free || !m->cpu_ref ||
        !m->gpu_twin || !m->cpu_twin || !m->cpu_valid) goto oom;
    if (prefix_caching) {
        uint32_t cap = 16;
        while (cap < 2 * nb) cap *= 2;
        m->map = malloc(cap * sizeof *m->map);
        m->tok = malloc(nb * (size_t)block_size * sizeof *m->tok);
        if (!m->map || !m->tok) goto oom;
        for (uint32_t i = 0; i < cap; i++) m->map[i].block = -1;
        m->map_mask = cap - 1;
    }
    m->q[0].head = m->q[0].tail = m->q[1].head = m->q[1].tail = -1;
    for (int b = 0; b < num_blocks; b++) { m->blk[b].where = W_FREE; q_push_tail(m, Q_FREE, b); }
    for (int b = 0; b < num_blocks; b++) m->gpu_twin[b] = -1;
    for (int c = 0; c < num_cpu_blocks; c++) { m->cpu_free[c] = num_cpu_blocks - 1 - c; m->cpu_twin[c] = -1; }
    m->cpu_nfree = num_cpu_blocks;
    return m;
oom:
    snprintf(err, errlen, "block manager: out of memory for %d blocks of %d slots", num_blocks, block_size);
    bm_destroy(m);
    return NULL;
}

void bm_destroy(bm *m) {
    if (!m) return;
    free(m->cpu_valid); free(m->cpu_twin); free(m->gpu_twin); free(m->cpu_ref); free(m->cpu_free); free(m->epoch); free(m->mark); free(m->scratch);
    free(m->tok); free(m->map);
    free(m->parent_gen); free(m->parent); free(m->gen); free(m->hash);
    free(m->blk);
    free(m);
}

/* ---- prefix lookup -------------------------------------------------------- */
/* Walks the cached prefix of s: returns the number of full blocks hit (never
 * covering the last token, which must be computed to sample from), and how
 * many of them are in use (ref > 0) in *in_use.  Fills hits[] when non-NULL. */
static int lookup_prefix(const bm *m, const seq *s, int *in_use, int *hits) {
    int used = 0, n = 0;
    if (m->pc && m->map_len > 0) {
        int max_hit = (s->num_tokens - 1) / m->bs;
        uint64_t h = BM_HASH_SEED;
        int parent = -1;
        for (; n < max_hit; n++) {
            const int *t = s->tokens + (size_t)n * m->bs;
            uint64_t hn = m->hfn(h, t, m->bs);
            int b = map_find(m, hn, parent, parent >= 0 ? m->gen[parent] : 0, t);
            if (b < 0) break;
            if (m->blk[b].ref > 0) used++;
            if (hits) hits[n] = b;
            h = hn;
            parent = b;
        }
    }
    if (in_use) *in_use = used;
    return n;
}

int bm_cached_prefix_blocks(const bm *m, const seq *s) { return lookup_prefix(m, s, NULL, NULL); }

/* While swapped out, a table holds -(cpu block + 1) entries. */
static bool on_cpu(const seq *s) { return s->num_blocks > 0 && s->block_table[0] < 0; }

/* ---- admission, append, commit -------------------------------------------- */
bool bm_can_admit(const bm *m, const seq *s, int watermark_blocks) {
    int need = seq_blocks_for(s->num_tokens, m->bs);
    int in_use = 0;
    lookup_prefix(m, s, &in_use, NULL);
    /* hits on used blocks cost nothing; hits on cached free blocks leave the free queue */
    need -= in_use;
    return num_free(m) - need >= (watermark_blocks > 0 ? watermark_blocks : 0);
}

void bm_admit(bm *m, seq *s) {
    int total = seq_blocks_for(s->num_tokens, m->bs);
    int life = s->prompt_len + s->max_output;
    if (life < s->num_tokens) life = s->num_tokens;
    if (s->num_blocks > 0) return;                     /* misuse: already holds blocks */
    table_reserve(s, seq_blocks_for(life + 1, m->bs));
    int in_use = 0;
    int nhit = lookup_prefix(m, s, &in_use, s->block_table);
    if (num_free(m) < total - in_use) return;          /* misuse: no room (kv_can_admit said no) */
    for (int i = 0; i < nhit; i++) take_block(m, s->block_table[i]);
    for (int i = nhit; i < total; i++) s->block_table[i] = alloc_block(m);
    s->num_blocks = total;
    s->num_computed = nhit * m->bs;
    m->hit_tokens += (long)nhit * m->bs;
}

/* Blocks needed to make slot s->num_tokens writable: 0 or 1. */
static int append_need(const bm *m, const seq *s) {
    int pos = s->num_tokens;
    if (pos / m->bs >= s->num_blocks) return 1;                  /* a new block */
    return m->blk[s->block_table[pos / m->bs]].ref > 1 ? 1 : 0;       /* copy-on-write */
}

/* A free block settles it without reading the table (this runs for every
 * running sequence at every step). */
bool bm_can_append(const bm *m, const seq *s) { return num_free(m) > 0 || append_need(m, s) == 0; }

int bm_append_slot(bm *m, seq *s, kv_copy *copy) {
    int li = s->num_tokens / m->bs;
    /* the misuse guards (no room, swapped out, table short) cost a compare each */
    if (li >= s->num_blocks) {                          /* the last block is full: a new one */
        if (li > s->num_blocks || num_free(m) == 0 || on_cpu(s)) return 0;
        table_reserve(s, li + 1);
        s->block_table[li] = alloc_block(m);
        s->num_blocks = li + 1;
        return 0;
    }
    int old = s->block_table[li];
    if (old < 0) return 0;
    if (m->blk[old].ref <= 1) {
        /* written in place from now on: a CPU twin would go stale for a sibling
         * that swaps back in and writes this block's tail differently */
        if (m->ncpu) untwin_gpu(m, old);
        return 0;
    }
    if (num_free(m) == 0) return 0;
    /* shared last block (a fork's): this sequence gets a private copy */
    int nb = alloc_block(m);
    m->blk[old].ref--;              /* still > 0: the other holders keep it */
    s->block_table[li] = nb;
    m->cow_copies++;
    if (copy) { copy->src = old; copy->dst = nb; copy->kind = KV_COPY_GPU; }
    return 1;
}

void bm_commit_computed(bm *m, seq *s) {
    if (!m->pc || s->num_blocks == 0 || s->block_table[0] < 0) return;
    int done = s->num_computed < s->num_tokens ? s->num_computed : s->num_tokens;
    int full = done / m->bs;
    if (full > s->num_blocks) full = s->num_blocks;
    /* registered blocks form a prefix of every table: find its end */
    int i = full;
    while (i > 0 && !m->blk[s->block_table[i - 1]].hashed) i--;
    for (; i < full; i++) {
        int b = s->block_table[i];
        /* a block another table shares may be full for this sequence only (a
         * slot made writable before a fork is written into the shared block):
         * it is registered once this sequence holds it alone */
        if (m->blk[b].ref > 1) break;
        int parent = i > 0 ? s->block_table[i - 1] : -1;
        uint64_t ph = parent >= 0 ? m->hash[parent] : BM_HASH_SEED;
        const int *t = s->tokens + (size_t)i * m->bs;
        register_block(m, b, m->hfn(ph, t, m->bs), parent, t);
    }
}

static int clampi(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/* ---- CPU pool and twins ------------------------------------------------------
 * A swap-out copies a GPU block to a CPU block and pairs them as twins, so
 * that siblings sharing the block (parallel sampling, beams) share one CPU
 * copy too, and on swap-in share one GPU block again: sharing survives a swap.
 * A shared block is copied before any write, and a block about to be written
 * in place loses its twin (bm_append_slot), so a twin stays a faithful copy
 * for every sequence holding it; the pair also breaks when either side is freed. */
static void untwin_gpu(bm *m, int g) {
    int c = m->gpu_twin[g];
    if (c >= 0 && m->cpu_twin[c] == g) m->cpu_twin[c] = -1;
    m->gpu_twin[g] = -1;
}
static void untwin_cpu(bm *m, int c) {
    int g = m->cpu_twin[c];
    if (g >= 0 && m->gpu_twin[g] == c) m->gpu_twin[g] = -1;
    m->cpu_twin[c] = -1;
}
static void pair_twins(bm *m, int g, int c) {
    untwin_gpu(m, g);
    untwin_cpu(m, c);
    m->gpu_twin[g] = c;
    m->cpu_twin[c] = g;
}
static int twin_of_gpu(const bm *m, int g) {
    int c = m->gpu_twin[g];
    return (c >= 0 && m->cpu_twin[c] == g && m->cpu_ref[c] > 0) ? c : -1;
}
static int twin_of_cpu(const bm *m, int c) {
    int g = m->cpu_twin[c];
    return (g >= 0 && m->gpu_twin[g] == c && m->blk[g].ref > 0) ? g : -1;
}
static void drop_cpu(bm *m, int c) {
    if (--m->cpu_ref[c] > 0) return;
    untwin_cpu(m, c);
    m->cpu_free[m->cpu_nfree++] = c;
}

/* ---- fork, release -------------------------------------------------------- */
int bm_fork(bm *m, const seq *parent, seq *child) {
    /* a swapped parent's CPU blocks are not shared: fork it while on the GPU */
    if (on_cpu(parent)) { child->num_blocks = 0; return -1; }
    if (child->table_cap < parent->table_cap) {
        int *t = realloc(child->block_table, (size_t)parent->table_cap * sizeof *t);
        if (!t) return -1;
        child->block_table = t;
        child->table_cap = parent->table_cap;
    }
    for (int i = 0; i < parent->num_blocks; i++) {
        int b = parent->block_table[i];
        child->block_table[i] = b;
        if (b >= 0) m->blk[b].ref++;
    }
    child->num_blocks = parent->num_blocks;
    return 0;
}

void bm_release(bm *m, seq *s) {
    /* last block first, so that a prefix's first blocks are the last evicted */
    for (int i = s->num_blocks - 1; i >= 0; i--) {
        int b = s->block_table[i];
        if (b >= 0) drop_block(m, b);
        else drop_cpu(m, -b - 1);
    }
    s->num_blocks = 0;
}

/* ---- swap ----------------------------------------------------------------- */

/* Slots of logical block i that s has computed (its valid prefix there). */
static int valid_in_block(const bm *m, const seq *s, int i) {
    return clampi((long)s->num_computed - (long)i * m->bs, 0, m->bs);
}
/* The CPU twin of GPU block g that holds everything s has computed in it
 * (logical block i), or -1.  The twin was copied when some sibling left; s
 * may have written more since, and then needs a copy of its own. */
static int usable_twin_of_gpu(const bm *m, const seq *s, int i, int g) {
    int c = twin_of_gpu(m, g);
    return (c >= 0 && valid_in_block(m, s, i) <= m->cpu_valid[c]) ? c : -1;
}
/* Blocks a swap of s must copy: those without a usable twin on the other side. */
static int swap_copies_needed(const bm *m, const seq *s, bool out) {
    int need = 0;
    for (int i = 0; i < s->num_blocks; i++) {
        int e = s->block_table[i];
        need += out ? usable_twin_of_gpu(m, s, i, e) < 0 : twin_of_cpu(m, -e - 1) < 0;
    }
    return need;
}

bool bm_can_swap_out(const bm *m, const seq *s) {
    if (s->num_blocks == 0 || on_cpu(s) || m->ncpu == 0) return false;
    return swap_copies_needed(m, s, true) <= m->cpu_nfree;
}
bool bm_can_swap_in(const bm *m, const seq *s) {
    return on_cpu(s) && swap_copies_needed(m, s, false) <= num_free(m);
}
int bm_swap_out(bm *m, seq *s, kv_copy *copies) {
    int n = 0;
    if (!bm_can_swap_out(m, s)) return 0;              /* misuse: leaves s as it is */
    for (int i = 0; i < s->num_blocks; i++) {
        int g = s->block_table[i];
        int c = usable_twin_of_gpu(m, s, i, g);
        if (c >= 0) m->cpu_ref[c]++;                 /* a sibling already copied it */
        else {
            c = m->cpu_free[--m->cpu_nfree];
            m->cpu_ref[c] = 1;
            m->cpu_valid[c] = valid_in_block(m, s, i);
            pair_twins(m, g, c);
            if (copies) copies[n] = (kv_copy){ .src = g, .dst = c, .kind = KV_SWAP_OUT };
            n++;
        }
        drop_block(m, g);
        s->block_table[i] = -c - 1;
    }
    s->status = SEQ_SWAPPED;
    return n;
}
/* A CPU block is never written after its copy, and every holder's computed
 * prefix lies within cpu_valid; a GPU twin still in use agrees with it there
 * (its holders write only past their own computed prefix, with the same
 * tokens where their histories are shared), so a sibling coming back shares it. */
int bm_swap_in(bm *m, seq *s, kv_copy *copies) {
    int n = 0;
    if (!bm_can_swap_in(m, s)) return 0;               /* misuse: leaves s as it is */
    for (int i = 0; i < s->num_blocks; i++) {
        int c = -s->block_table[i] - 1;
        int g = twin_of_cpu(m, c);
        if (g >= 0) m->blk[g].ref++;                 /* a sibling already brought it back */
        else {
            g = alloc_block(m);
            pair_twins(m, g, c);
            if (copies) copies[n] = (kv_copy){ .src = c, .dst = g, .kind = KV_SWAP_IN };
            n++;
        }
        drop_cpu(m, c);
        s->block_table[i] = g;
    }
    s->status = SEQ_RUNNING;
    return n;
}

/* ---- accounting ----------------------------------------------------------- */

/* Per block (views): tokens held, max over its holders, into tok[] and the
 * final fill into fin[]; -1 where no live GPU table holds the block. */
static void fill_per_block(const bm *m, seq *const *live, int n, int *tok, int *fin) {
    for (int b = 0; b < m->nb; b++) tok[b] = fin[b] = -1;
    for (int k = 0; k < n; k++) {
        const seq *s = live[k];
        if (!s || on_cpu(s)) continue;
        long final = (long)s->prompt_len + s->max_output;
        if (final < s->num_tokens) final = s->num_tokens;
        for (int i = 0; i < s->num_blocks; i++) {
            int b = s->block_table[i];
            if (b < 0 || b >= m->nb) continue;
            long base = (long)i * m->bs;
            int t = clampi(s->num_tokens - base, 0, m->bs);
            int f = clampi(final - base, 0, m->bs);
            if (t > tok[b]) tok[b] = t;
            if (f > fin[b]) fin[b] = f;
        }
    }
}

/* One pass over the live GPU tables: a block's categories come from the
 * maxima over its holders (tokens held, final fill); a shared block seen again
 * only corrects its own contribution.  Cost: the live tables, not the pool. */
void bm_usage(const bm *m, seq *const *live, int n, kv_usage *u) {
    uint32_t e = ++*m->epoch;
    if (e == 0) {                                       /* wrapped: forget old stamps */
        for (int b = 0; b < m->nb; b++) m->mark[b].stamp = 0;
        e = ++*m->epoch;
    }
    long tok = 0, res = 0, in = 0;
    int seen = 0, bs = m->bs;
    for (int k = 0; k < n; k++) {
        const seq *s = live[k];
        if (!s || on_cpu(s)) continue;
        long final = (long)s->prompt_len + s->max_output;
        if (final < s->num_tokens) final = s->num_tokens;
        for (int i = 0; i < s->num_blocks; i++) {
            int b = s->block_table[i];
            if (b < 0 || b >= m->nb) continue;
            long base = (long)i * bs;
            int t = clampi(s->num_tokens - base, 0, bs);
            int f = clampi(final - base, 0, bs);
            bm_mark *mk = &m->mark[b];
            if (mk->stamp != e) {
                *mk = (bm_mark){ e, t, f };
                tok += t; res += f - t; in += bs - f;
                seen++;
            } else if (t > mk->tok || f > mk->fin) {    /* shared: keep the maxima */
                tok -= mk->tok; res -= mk->fin - mk->tok; in -= bs - mk->fin;
                if (t > mk->tok) mk->tok = t;
                if (f > mk->fin) mk->fin = f;
                tok += mk->tok; res += mk->fin - mk->tok; in += bs - mk->fin;
            }
        }
    }
    memset(u, 0, sizeof *u);
    u->blocks_total = m->nb;
    u->slots_total = (long)m->nb * bs;
    u->blocks_used = m->nb - num_free(m);
    u->token_slots = tok;
    u->reserved_slots = res;
    u->internal_frag = in;
    /* used blocks whose holders were not passed in: count them as token slots */
    if (u->blocks_used > seen) u->token_slots += (long)(u->blocks_used - seen) * bs;
    u->blocks_cached = m->q[Q_CACHED].len;
    u->free_slots = (long)num_free(m) * bs;
    u->external_frag = 0;
    u->prefix_hit_tokens = m->hit_tokens;
    u->cow_copies = m->cow_copies;
}

void bm_block_views(const bm *m, seq *const *live, int n, kv_block_view *out) {
    int *tok = m->scratch, *fin = m->scratch + m->nb;
    fill_per_block(m, live, n, tok, fin);
    for (int b = 0; b < m->nb; b++) {
        out[b] = (kv_block_view){ .ref = m->blk[b].ref, .owner = -1,
                                  .cached = m->blk[b].ref == 0 && m->blk[b].hashed, .reserved = false };
        if (m->blk[b].ref > 0) out[b].tokens = tok[b] < 0 ? m->bs : tok[b];
        else out[b].tokens = m->blk[b].hashed ? m->bs : 0;
    }
    for (int k = 0; k < n; k++) {
        const seq *s = live[k];
        if (!s || on_cpu(s)) continue;
        for (int i = 0; i < s->num_blocks; i++) {
            int b = s->block_table[i];
            if (b < 0 || b >= m->nb) continue;
            if (out[b].owner < 0 || s->id < out[b].owner) out[b].owner = s->id;
        }
    }
}

/* ---- introspection -------------------------------------------------------- */
void bm_get_stats(const bm *m, bm_stats *st) {
    st->free_blocks = num_free(m);
    st->cached_blocks = m->q[Q_CACHED].len;
    st->cpu_free_blocks = m->cpu_nfree;
    st->hashed_blocks = m->map_len;
    st->prefix_hit_tokens = m->hit_tokens;
    st->cow_copies = m->cow_copies;
    st->evictions = m->evictions;
}
int  bm_block_ref(const bm *m, int b) { return (b >= 0 && b < m->nb) ? m->blk[b].ref : -1; }
bool bm_block_hashed(const bm *m, int b) { return b >= 0 && b < m->nb && m->blk[b].hashed; }
int  bm_next_victim(const bm *m) {
    return m->q[Q_FREE].len > 0 ? m->q[Q_FREE].head : m->q[Q_CACHED].head;
}

/* ---- invariants ----------------------------------------------------------- */
#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

static int check_queue(const bm *m, int qi, int want_where, int *seen, char *err, size_t errlen) {
    const bm_queue *q = &m->q[qi];
    int count = 0, prev = -1;
    for (int b = q->head; b >= 0; b = m->blk[b].next) {
        if (b >= m->nb) FAIL("queue %d: block id %d out of range", qi, b);
        if (seen[b]) FAIL("queue %d: block %d listed twice (or in both queues)", qi, b);
        seen[b] = 1;
        if (m->blk[b].prev != prev) FAIL("queue %d: block %d has prev %d, expected %d", qi, b, m->blk[b].prev, prev);
        if (m->blk[b].ref != 0) FAIL("block %d is in a free queue with ref %d", b, m->blk[b].ref);
        if (m->blk[b].where != want_where) FAIL("block %d: queue %d but state %d", b, qi, m->blk[b].where);
        if ((qi == Q_CACHED) != (m->blk[b].hashed != 0))
            FAIL("block %d: in the %s queue but %shashed", b, qi == Q_CACHED ? "cached" : "free",
                 m->blk[b].hashed ? "" : "not ");
        prev = b;
        if (++count > m->nb) FAIL("queue %d: cycle", qi);
    }
    if (prev != q->tail) FAIL("queue %d: tail %d, last element %d", qi, q->tail, prev);
    if (count != q->len) FAIL("queue %d: length %d, counted %d", qi, q->len, count);
    return 0;
}

int bm_check(const bm *m, seq *const *live, int n, char *err, size_t errlen) {
    int *refs = m->scratch, *seen = m->scratch + m->nb, *cpu = m->scratch + 2 * m->nb;
    memset(refs, 0, (size_t)m->nb * sizeof *refs);
    memset(seen, 0, (size_t)m->nb * sizeof *seen);
    memset(cpu, 0, (size_t)m->ncpu * sizeof *cpu);
    for (int k = 0; k < n; k++) {
        const seq *s = live[k];
        if (!s) continue;
        if (s->num_blocks < 0 || s->num_blocks > s->table_cap)
            FAIL("seq %d: %d blocks for a table of %d", s->id, s->num_blocks, s->table_cap);
        if (s->num_blocks == 0) continue;
        int lo = seq_blocks_for(s->num_tokens, m->bs), hi = seq_blocks_for(s->num_tokens + 1, m->bs);
        if (s->num_blocks < lo || s->num_blocks > hi)
            FAIL("seq %d: %d blocks for %d tokens (block size %d)", s->id, s->num_blocks, s->num_tokens, m->bs);
        if (s->num_computed > s->num_tokens)
            FAIL("seq %d: %d computed of %d tokens", s->id, s->num_computed, s->num_tokens);
        bool cpu_side = s->block_table[0] < 0;
        bool hashed_run = true;
        for (int i = 0; i < s->num_blocks; i++) {
            int b = s->block_table[i];
            if ((b < 0) != cpu_side) FAIL("seq %d: block table mixes GPU and CPU blocks", s->id);
            if (cpu_side) {
                int c = -b - 1;
                if (c >= m->ncpu) FAIL("seq %d: CPU block %d out of range", s->id, c);
                cpu[c]++;
                if (m->cpu_ref[c] <= 0) FAIL("CPU block %d held by seq %d but free", c, s->id);
                continue;
            }
            if (b >= m->nb) FAIL("seq %d: block %d out of range", s->id, b);
            refs[b]++;
            if (m->blk[b].hashed) {
                if (!hashed_run) FAIL("seq %d: hashed block %d after an unhashed one", s->id, b);
                if ((long)(i + 1) * m->bs > s->num_tokens)
                    FAIL("seq %d: hashed block %d (logical %d) is not full (%d tokens)", s->id, b, i, s->num_tokens);
                int want = i > 0 ? s->block_table[i - 1] : -1;
                if (m->parent[b] != want || (want >= 0 && m->parent_gen[b] != m->gen[want]))
                    FAIL("seq %d: hashed block %d does not follow its table's block %d", s->id, b, want);
                if (memcmp(m->tok + (size_t)b * m->bs, s->tokens + (size_t)i * m->bs,
                           (size_t)m->bs * sizeof(int)) != 0)
                    FAIL("seq %d: hashed block %d holds other tokens", s->id, b);
            } else hashed_run = false;
        }
    }
    int used = 0;
    for (int b = 0; b < m->nb; b++) {
        if (refs[b] != m->blk[b].ref) FAIL("block %d: ref %d but %d tables hold it", b, m->blk[b].ref, refs[b]);
        if (m->blk[b].ref < 0) FAIL("block %d: negative ref %d", b, m->blk[b].ref);
        if (m->blk[b].ref > 0) { used++; if (m->blk[b].where != W_USED) FAIL("block %d used but marked free", b); }
        if (m->blk[b].hashed && !m->pc) FAIL("block %d hashed without prefix caching", b);
    }
    if (check_queue(m, Q_FREE, W_FREE, seen, err, errlen)) return -1;
    if (check_queue(m, Q_CACHED, W_CACHED, seen, err, errlen)) return -1;
    for (int b = 0; b < m->nb; b++)
        if (m->blk[b].ref == 0 && !seen[b]) FAIL("block %d has ref 0 but is in no free queue", b);
    if (used + num_free(m) != m->nb) FAIL("%d used + %d free != %d blocks", used, num_free(m), m->nb);
    /* map: each hashed block once, under its own hash; nothing else */
    if (m->pc) {
        int entries = 0, hashed = 0;
        for (int b = 0; b < m->nb; b++) hashed += m->blk[b].hashed;
        for (uint32_t i = 0; i <= m->map_mask; i++) {
            int b = m->map[i].block;
            if (b < 0) continue;
            entries++;
            if (b >= m->nb || !m->blk[b].hashed) FAIL("map slot %u: block %d is not hashed", i, b);
            if (m->map[i].hash != m->hash[b]) FAIL("map slot %u: stale hash for block %d", i, b);
            /* reachable from its home slot without crossing an empty slot */
            for (uint32_t j = map_slot(m, m->map[i].hash); j != i; j = (j + 1) & m->map_mask)
                if (m->map[j].block < 0) FAIL("map slot %u: block %d unreachable", i, b);
        }
        if (entries != hashed || entries != m->map_len)
            FAIL("map: %d entries, %d hashed blocks, length %d", entries, hashed, m->map_len);
    }
    /* CPU pool: used xor on the free stack */
    int cpu_used = 0;
    for (int c = 0; c < m->ncpu; c++) {
        if (m->cpu_ref[c] != cpu[c]) FAIL("CPU block %d: ref %d, held by %d tables", c, m->cpu_ref[c], cpu[c]);
        cpu_used += m->cpu_ref[c] > 0;
        int g = m->cpu_twin[c];
        if (g >= 0 && (g >= m->nb || m->gpu_twin[g] != c || m->cpu_ref[c] == 0 || m->blk[g].ref == 0))
            FAIL("CPU block %d: broken twin %d", c, g);
    }
    for (int g = 0; g < m->nb; g++) {
        int c = m->gpu_twin[g];
        if (c >= 0 && (c >= m->ncpu || m->cpu_twin[c] != g || m->blk[g].ref == 0))
            FAIL("block %d: broken twin CPU block %d", g, c);
    }
    if (cpu_used + m->cpu_nfree != m->ncpu) FAIL("CPU pool: %d used + %d free != %d", cpu_used, m->cpu_nfree, m->ncpu);
    for (int k = 0; k < m->cpu_nfree; k++) {
        int c = m->cpu_free[k];
        if (c < 0 || c >= m->ncpu || m->cpu_ref[c] || cpu[c] < 0) FAIL("CPU free stack: bad entry %d", c);
        cpu[c] = -1;
    }
    /* the accounting adds up */
    kv_usage u;
    bm_usage(m, live, n, &u);
    if (u.token_slots + u.reserved_slots + u.internal_frag + u.external_frag + u.free_slots != u.slots_total)
        FAIL("usage: categories sum to %ld, pool has %ld slots",
             u.token_slots + u.reserved_slots + u.internal_frag + u.external_frag + u.free_slots, u.slots_total);
    return 0;
}
