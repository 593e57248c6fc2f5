/* bm_prefix: the block manager's automatic prefix cache (see
 * sim/block_manager.h): the default block hash, a map hash -> block (open
 * addressing, linear probing, duplicates allowed: two identical blocks may
 * both be cached), registration of a sequence's full computed blocks, and the
 * lookup of a sequence's cached prefix.  A hit needs hash, parent identity
 * and tokens to match, so a hash collision can never serve a wrong block.
 * Touches the pool's map and prefix identities only. */
#include "sim/bm_internal.h"
#include <string.h>

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

/* ---- hash map: duplicates allowed (two identical blocks may both be cached) --- */

static void map_insert(bm *m, int b) {
    uint32_t i = bm_map_slot(m, m->hash[b]);
    while (m->map[i].block >= 0) i = (i + 1) & m->map_mask;
    m->map[i].hash = m->hash[b];
    m->map[i].block = b;
    m->map_len++;
}
/* Removes b's entry, shifting later entries of the probe run back (no tombstones). */
static void map_remove(bm *m, int b) {
    uint32_t i = bm_map_slot(m, m->hash[b]);
    while (m->map[i].block != b) i = (i + 1) & m->map_mask;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & m->map_mask;
        if (m->map[j].block < 0) break;
        uint32_t home = bm_map_slot(m, m->map[j].hash);
        /* move j into the hole i unless its home lies cyclically in (i, j] */
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) { m->map[i] = m->map[j]; i = j; }
    }
    m->map[i].block = -1;
    m->map_len--;
}
/* The registered block with hash h following (parent, pgen) and holding tokens, or -1. */
static int map_find(const bm *m, uint64_t h, int parent, uint32_t pgen, const int *tokens) {
    uint32_t i = bm_map_slot(m, h);
    for (; m->map[i].block >= 0; i = (i + 1) & m->map_mask) {
        int b = m->map[i].block;
        if (m->map[i].hash != h || m->parent[b] != parent) continue;
        if (parent >= 0 && m->parent_gen[b] != pgen) continue;
        if (memcmp(m->tok + (size_t)b * m->bs, tokens, (size_t)m->bs * sizeof *tokens) == 0) return b;
    }
    return -1;
}

void bm_unregister(bm *m, int b) {
    map_remove(m, b);
    m->blk[b].hashed = 0;
}
void bm_register(bm *m, int b, uint64_t h, int parent, const int *tokens) {
    m->hash[b] = h;
    m->gen[b]++;
    m->parent[b] = parent;
    m->parent_gen[b] = parent >= 0 ? m->gen[parent] : 0;
    memcpy(m->tok + (size_t)b * m->bs, tokens, (size_t)m->bs * sizeof *tokens);
    m->blk[b].hashed = 1;
    map_insert(m, b);
    /* a sibling on the CPU may hold an older, partial copy: it must not come
     * back to a block that is now full and in the cache */
    if (m->ncpu) bm_untwin_gpu(m, b);
}

/* ---- prefix lookup and registration ----------------------------------------- */
int bm_lookup_prefix(const bm *m, const seq *s, int *in_use, int *hits) {
    int used = 0, n = 0;
    if (m->pc && m->map_len > 0) {
        int max_hit = (s->num_tokens - 1) / m->bs;
        uint64_t h = bm_root_hash(s);
        int parent = bm_root_parent(s);
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

int bm_cached_prefix_blocks(const bm *m, const seq *s) { return bm_lookup_prefix(m, s, NULL, NULL); }

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
        int parent = i > 0 ? s->block_table[i - 1] : bm_root_parent(s);
        uint64_t ph = parent >= 0 ? m->hash[parent] : bm_root_hash(s);
        const int *t = s->tokens + (size_t)i * m->bs;
        bm_register(m, b, m->hfn(ph, t, m->bs), parent, t);
    }
}

