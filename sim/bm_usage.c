/* bm_usage: the block manager's accounting (see sim/kv_cache.h, kv_usage):
 * what each held slot is used for, from the live tables, and the per-block
 * view the visualisation draws.  Reads the pool; writes only bm_usage's
 * per-block marks and the views it is handed. */
#include "sim/bm_internal.h"
#include <string.h>

/* ---- accounting ----------------------------------------------------------- */

/* Per block (views): tokens held, max over its holders, into tok[] and the
 * final fill into fin[]; -1 where no live GPU table holds the block. */
static void fill_per_block(const bm *m, seq *const *live, int n, int *tok, int *fin) {
    for (int b = 0; b < m->nb; b++) tok[b] = fin[b] = -1;
    for (int k = 0; k < n; k++) {
        const seq *s = live[k];
        if (!s || bm_on_cpu(s)) continue;
        long final = (long)s->prompt_len + s->max_output;
        if (final < s->num_tokens) final = s->num_tokens;
        for (int i = 0; i < s->num_blocks; i++) {
            int b = s->block_table[i];
            if (b < 0 || b >= m->nb) continue;
            long base = (long)i * m->bs;
            int t = bm_clampi(s->num_tokens - base, 0, m->bs);
            int f = bm_clampi(final - base, 0, m->bs);
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
        if (!s || bm_on_cpu(s)) continue;
        long final = (long)s->prompt_len + s->max_output;
        if (final < s->num_tokens) final = s->num_tokens;
        for (int i = 0; i < s->num_blocks; i++) {
            int b = s->block_table[i];
            if (b < 0 || b >= m->nb) continue;
            long base = (long)i * bs;
            int t = bm_clampi(s->num_tokens - base, 0, bs);
            int f = bm_clampi(final - base, 0, bs);
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
    u->blocks_used = m->nb - bm_num_free(m);
    u->token_slots = tok;
    u->reserved_slots = res;
    u->internal_frag = in;
    /* used blocks whose holders were not passed in: count them as token slots */
    if (u->blocks_used > seen) u->token_slots += (long)(u->blocks_used - seen) * bs;
    u->blocks_cached = m->q[Q_CACHED].len;
    u->free_slots = (long)bm_num_free(m) * bs;
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
        if (!s || bm_on_cpu(s)) continue;
        for (int i = 0; i < s->num_blocks; i++) {
            int b = s->block_table[i];
            if (b < 0 || b >= m->nb) continue;
            if (out[b].owner < 0 || s->id < out[b].owner) out[b].owner = s->id;
        }
    }
}

