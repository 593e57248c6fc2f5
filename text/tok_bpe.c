/* tok_bpe.c: byte-pair encoding of one pre-tokenized piece (see
 * text/tok_internal.h): initial symbols (single bytes for byte-level vocabs,
 * characters with byte fallback / unk otherwise), then merges from a min-heap
 * of candidate pairs, lowest rank first and leftmost on ties, as HF
 * `tokenizers` does; a direct-mapped word cache (under a try-lock) skips the
 * merge loop for pieces seen before.  Touches the tokenizer's word cache and
 * the call's scratch. */
#include "text/tok_internal.h"
#include <string.h>

int tok_grow(void **p, size_t *cap, size_t need, size_t elsz) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elsz);
    if (!q) return -1;
    *p = q; *cap = c;
    return 0;
}

/* ---- the merge heap: lowest rank first, leftmost on ties ---------------- */
static inline int cand_less(const tok_cand *a, const tok_cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}
static int heap_push(tok_work *w, tok_cand c) {
    if (tok_grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof *w->heap) < 0) return -1;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p]; i = p;
    }
    w->heap[i] = c;
    return 0;
}
static tok_cand heap_pop(tok_work *w) {
    tok_cand top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const tok_cand *best = &last;
        if (l < n && cand_less(&w->heap[l], best)) { m = l; best = &w->heap[l]; }
        if (r < n && cand_less(&w->heap[r], best)) { m = r; }
        if (m == i) break;
        w->heap[i] = w->heap[m]; i = m;
    }
    if (n) w->heap[i] = last;
    return top;
}

/* BPE on one pre-tokenized piece; appends its ids to w->out. */
int tok_bpe_word(tok_tokenizer *t, tok_work *w, const char *s, size_t len) {
    if (len == 0) return 0;
    uint64_t h = 0;
    int cacheable = len <= CACHE_KEY_MAX;
    if (cacheable) {
        h = tok_hash_bytes(s, len);
        tok_cache_ent *e = &t->cache[h & (CACHE_SLOTS - 1)];
        if (pthread_mutex_trylock(&t->cache_mu) == 0) {
            if (e->h == h && e->klen == len && e->nids && memcmp(e->key, s, len) == 0) {
                int32_t ids[CACHE_IDS_MAX]; int n = e->nids;
                memcpy(ids, e->ids, (size_t)n * sizeof *ids);
                pthread_mutex_unlock(&t->cache_mu);
                for (int i = 0; i < n; i++) if (tok_push_id(w->out, ids[i]) < 0) return -1;
                return 0;
            }
            pthread_mutex_unlock(&t->cache_mu);
        }
    }
    if (t->ignore_merges) {
        int32_t id = tok_map_get(&t->vocab, s, len);
        if (id >= 0) return tok_push_id(w->out, id);
    }
    /* initial symbols */
    if (tok_grow((void **)&w->syms, &w->syms_cap, len * 4 + 1, sizeof *w->syms) < 0) return -1;
    int32_t n = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < len; i++) {
            int32_t id = t->byte_id[(unsigned char)s[i]];
            if (id < 0) { id = t->unk_id; if (id < 0) continue; }
            w->syms[n] = (tok_sym){id, n - 1, n + 1, 1}; n++;
        }
    } else {
        for (size_t i = 0; i < len;) {
            int k = tok_utf8_seq((const unsigned char *)s + i, len - i);
            if (k <= 0) k = 1;
            int32_t id = tok_map_get(&t->vocab, s + i, (size_t)k);
            if (id >= 0) { w->syms[n] = (tok_sym){id, n - 1, n + 1, k}; n++; }
            else {
                int ok = t->byte_fallback;
                for (int j = 0; ok && j < k; j++) ok = t->bf_id[(unsigned char)s[i + j]] >= 0;
                if (ok) {
                    for (int j = 0; j < k; j++) { w->syms[n] = (tok_sym){t->bf_id[(unsigned char)s[i + j]], n - 1, n + 1, 1}; n++; }
                } else if (t->unk_id >= 0) {
                    if (t->fuse_unk && n > 0 && w->syms[n - 1].id == t->unk_id) w->syms[n - 1].len += k;
                    else { w->syms[n] = (tok_sym){t->unk_id, n - 1, n + 1, k}; n++; }
                }
            }
            i += (size_t)k;
        }
    }
    if (n == 0) return 0;
    w->syms[n - 1].next = -1;
    /* merge loop: lowest rank first, leftmost on ties */
    w->heap_n = 0;
    for (int32_t i = 0; i + 1 < n; i++) {
        const tok_mm_slot *m = tok_mm_get(&t->merges, w->syms[i].id, w->syms[i + 1].id);
        if (m && heap_push(w, (tok_cand){m->rank, i, m->id}) < 0) return -1;
    }
    while (w->heap_n) {
        tok_cand c = heap_pop(w);
        tok_sym *a = &w->syms[c.pos];
        if (a->len == 0 || a->next < 0) continue;
        tok_sym *b = &w->syms[a->next];
        const tok_mm_slot *m = tok_mm_get(&t->merges, a->id, b->id);
        if (!m || m->id != c.id) continue;
        a->id = c.id; a->len += b->len; b->len = 0;
        a->next = b->next;
        if (a->next >= 0) w->syms[a->next].prev = c.pos;
        if (a->prev >= 0) {
            m = tok_mm_get(&t->merges, w->syms[a->prev].id, a->id);
            if (m && heap_push(w, (tok_cand){m->rank, a->prev, m->id}) < 0) return -1;
        }
        if (a->next >= 0) {
            m = tok_mm_get(&t->merges, a->id, w->syms[a->next].id);
            if (m && heap_push(w, (tok_cand){m->rank, c.pos, m->id}) < 0) return -1;
        }
    }
    size_t first = w->out->n;
    for (int32_t i = 0; i >= 0; i = w->syms[i].next)
        if (tok_push_id(w->out, w->syms[i].id) < 0) return -1;
    size_t nids = w->out->n - first;
    if (cacheable && nids <= CACHE_IDS_MAX && pthread_mutex_trylock(&t->cache_mu) == 0) {
        tok_cache_ent *e = &t->cache[h & (CACHE_SLOTS - 1)];
        e->h = h; e->klen = (uint8_t)len; e->nids = (uint8_t)nids;
        memcpy(e->key, s, len);
        memcpy(e->ids, w->out->ids + first, nids * sizeof(int32_t));
        pthread_mutex_unlock(&t->cache_mu);
    }
    return 0;
}

