/* block_manager: the paged KV-cache policy (see sim/block_manager.h): the pool's
 * life (create, destroy), admission (with prefix-cache hits), append (a new
 * block, or copy-on-write of a shared last block), fork and release, and the
 * introspection calls.  The prefix cache's map is sim/bm_prefix.c, the CPU
 * pool and swap sim/bm_swap.c, the accounting sim/bm_usage.c, the invariants
 * sim/bm_check.c; the state and the blocks' life are in sim/bm_internal.h.
 * Touches only its own pool and the block tables / progress fields of the
 * sequences it is handed (block_table, num_blocks, table_cap, num_computed).
 * Hot paths allocate nothing: block tables are sized for the request's whole
 * life at admission. */
#include "sim/bm_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the blocks' life (see sim/bm_internal.h) --------------------------------- */
/* Takes a free block (an unhashed one first, else the least recently freed
 * cached one, whose hash is dropped).  Caller has checked bm_num_free > 0. */
int bm_alloc_block(bm *m) {
    int b;
    if (m->q[Q_FREE].len > 0) {
        b = m->q[Q_FREE].head;
        bm_q_remove(m, Q_FREE, b);
    } else {
        b = m->q[Q_CACHED].head;
        bm_q_remove(m, Q_CACHED, b);
        bm_unregister(m, b);
        m->evictions++;
    }
    m->blk[b].ref = 1;
    m->blk[b].where = W_USED;
    return b;
}
void bm_drop_block(bm *m, int b) {
    if (--m->blk[b].ref > 0) return;
    if (m->ncpu) bm_untwin_gpu(m, b);      /* its content may be overwritten from now on */
    if (m->blk[b].hashed) { m->blk[b].where = W_CACHED; bm_q_push(m, Q_CACHED, b); }
    else { m->blk[b].where = W_FREE; bm_q_push(m, Q_FREE, b); }
}
/* Takes a hit block (used: one more holder; cached free: back in use). */
void bm_take_block(bm *m, int b) {
    if (m->blk[b].ref == 0) { bm_q_remove(m, Q_CACHED, b); m->blk[b].where = W_USED; }
    m->blk[b].ref++;
}

/* Makes s->block_table hold at least need entries: 0, or -1 when out of
 * memory (the table unchanged).  Growth is geometric and happens at admission,
 * sized for the request's whole life, so an append grows it only for a
 * sequence longer than the life it was admitted for. */
static int table_reserve(seq *s, int need) {
    if (s->table_cap >= need) return 0;
    int cap = s->table_cap > 0 ? s->table_cap : 4;
    while (cap < need) cap *= 2;
    int *t = realloc(s->block_table, (size_t)cap * sizeof *t);
    if (!t) return -1;
    s->block_table = t;
    s->table_cap = cap;
    return 0;
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
    for (int b = 0; b < num_blocks; b++) { m->blk[b].where = W_FREE; bm_q_push(m, Q_FREE, b); }
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

/* ---- admission, append, commit -------------------------------------------- */
bool bm_can_admit(const bm *m, const seq *s, int watermark_blocks) {
    int need = seq_blocks_for(s->num_tokens, m->bs);
    int in_use = 0;
    bm_lookup_prefix(m, s, &in_use, NULL);
    /* hits on used blocks cost nothing; hits on cached free blocks leave the free queue */
    need -= in_use;
    return bm_num_free(m) - need >= (watermark_blocks > 0 ? watermark_blocks : 0);
}

int bm_admit(bm *m, seq *s) {
    int total = seq_blocks_for(s->num_tokens, m->bs);
    int life = s->prompt_len + s->max_output;
    if (life < s->num_tokens) life = s->num_tokens;
    if (s->num_blocks > 0) return -1;                  /* misuse: already holds blocks */
    /* the one allocation, before anything changes */
    if (table_reserve(s, seq_blocks_for(life + 1, m->bs))) return -1;
    int in_use = 0;
    int nhit = bm_lookup_prefix(m, s, &in_use, s->block_table);
    if (bm_num_free(m) < total - in_use) return -1;    /* misuse: no room (kv_can_admit said no) */
    for (int i = 0; i < nhit; i++) bm_take_block(m, s->block_table[i]);
    for (int i = nhit; i < total; i++) s->block_table[i] = bm_alloc_block(m);
    s->num_blocks = total;
    s->num_computed = nhit * m->bs;
    m->hit_tokens += (long)nhit * m->bs;
    return 0;
}

/* Blocks needed to make slot s->num_tokens writable: 0 or 1. */
static int append_need(const bm *m, const seq *s) {
    int pos = s->num_tokens;
    if (pos / m->bs >= s->num_blocks) return 1;                  /* a new block */
    return m->blk[s->block_table[pos / m->bs]].ref > 1 ? 1 : 0;       /* copy-on-write */
}

/* A free block settles it without reading the table (this runs for every
 * running sequence at every step). */
bool bm_can_append(const bm *m, const seq *s) { return bm_num_free(m) > 0 || append_need(m, s) == 0; }

/* The last block is full: s gets a new one (its table grown first when s has
 * outlived the life it was admitted for).  Out of line: most appends write
 * into a block s already holds, and that path stays short. */
static __attribute__((noinline)) int append_block(bm *m, seq *s, int li) {
    if (li > s->num_blocks || bm_num_free(m) == 0 || bm_on_cpu(s)) return 0;   /* misuse */
    if (table_reserve(s, li + 1)) return -1;           /* out of memory: nothing changed */
    s->block_table[li] = bm_alloc_block(m);
    s->num_blocks = li + 1;
    return 0;
}

/* The last block is shared (a fork's): s gets a private copy of it. */
static __attribute__((noinline)) int append_copy(bm *m, seq *s, int li, int old, kv_copy *copy) {
    if (bm_num_free(m) == 0) return 0;                 /* misuse: no room */
    int nb = bm_alloc_block(m);
    m->blk[old].ref--;              /* still > 0: the other holders keep it */
    s->block_table[li] = nb;
    m->cow_copies++;
    if (copy) { copy->src = old; copy->dst = nb; copy->kind = KV_COPY_GPU; }
    return 1;
}

int bm_append_slot(bm *m, seq *s, kv_copy *copy) {
    int li = s->num_tokens / m->bs;
    /* the misuse guards (no room, swapped out, table short) cost a compare each */
    if (li >= s->num_blocks) return append_block(m, s, li);
    int old = s->block_table[li];
    if (old < 0) return 0;
    if (m->blk[old].ref > 1) return append_copy(m, s, li, old, copy);
    /* written in place from now on: a CPU twin would go stale for a sibling
     * that swaps back in and writes this block's tail differently */
    if (m->ncpu) bm_untwin_gpu(m, old);
    return 0;
}

/* ---- fork, release -------------------------------------------------------- */
int bm_fork(bm *m, const seq *parent, seq *child) {
    /* a swapped parent's CPU blocks are not shared: fork it while on the GPU */
    if (bm_on_cpu(parent)) { child->num_blocks = 0; return -1; }
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
        if (b >= 0) bm_drop_block(m, b);
        else bm_drop_cpu(m, -b - 1);
    }
    s->num_blocks = 0;
}

/* ---- introspection -------------------------------------------------------- */
void bm_get_stats(const bm *m, bm_stats *st) {
    st->free_blocks = bm_num_free(m);
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

