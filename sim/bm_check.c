/* bm_check: the block manager's invariants (see sim/block_manager.h): every
 * block free xor used; ref count = number of tables holding it; hashed blocks
 * full, in order and holding their tokens; queues, map, CPU pool and twins
 * consistent; the accounting adds up.  Reads the pool; uses its scratch. */
#include "sim/bm_internal.h"
#include <stdio.h>
#include <string.h>

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
                int want = i > 0 ? s->block_table[i - 1] : bm_root_parent(s);
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
    if (used + bm_num_free(m) != m->nb) FAIL("%d used + %d free != %d blocks", used, bm_num_free(m), m->nb);
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
            for (uint32_t j = bm_map_slot(m, m->map[i].hash); j != i; j = (j + 1) & m->map_mask)
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

