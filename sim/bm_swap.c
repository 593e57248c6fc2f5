/* bm_swap: the block manager's CPU swap pool (see sim/block_manager.h):
 * twins (a GPU block and its CPU copy, so that sharing survives a swap), the
 * free stack of CPU blocks, and swap-out / swap-in of a sequence's table.
 * Touches the pool's CPU side and the tables it is handed. */
#include "sim/bm_internal.h"

/* ---- CPU pool and twins ------------------------------------------------------
 * A swap-out copies a GPU block to a CPU block and pairs them as twins, so
 * that siblings sharing the block (parallel sampling, beams) share one CPU
 * copy too, and on swap-in share one GPU block again: sharing survives a swap.
 * A shared block is copied before any write, and a block about to be written
 * in place loses its twin (bm_append_slot), so a twin stays a faithful copy
 * for every sequence holding it; the pair also breaks when either side is freed. */
static void untwin_cpu(bm *m, int c) {
    int g = m->cpu_twin[c];
    if (g >= 0 && m->gpu_twin[g] == c) m->gpu_twin[g] = -1;
    m->cpu_twin[c] = -1;
}
static void pair_twins(bm *m, int g, int c) {
    bm_untwin_gpu(m, g);
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
void bm_drop_cpu(bm *m, int c) {
    if (--m->cpu_ref[c] > 0) return;
    untwin_cpu(m, c);
    m->cpu_free[m->cpu_nfree++] = c;
}

/* ---- swap ----------------------------------------------------------------- */

/* Slots of logical block i that s has computed (its valid prefix there). */
static int valid_in_block(const bm *m, const seq *s, int i) {
    return bm_clampi((long)s->num_computed - (long)i * m->bs, 0, m->bs);
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
    if (s->num_blocks == 0 || bm_on_cpu(s) || m->ncpu == 0) return false;
    return swap_copies_needed(m, s, true) <= m->cpu_nfree;
}
bool bm_can_swap_in(const bm *m, const seq *s) {
    return bm_on_cpu(s) && swap_copies_needed(m, s, false) <= bm_num_free(m);
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
        bm_drop_block(m, g);
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
            g = bm_alloc_block(m);
            pair_twins(m, g, c);
            if (copies) copies[n] = (kv_copy){ .src = c, .dst = g, .kind = KV_SWAP_IN };
            n++;
        }
        bm_drop_cpu(m, c);
        s->block_table[i] = g;
    }
    s->status = SEQ_RUNNING;
    return n;
}

