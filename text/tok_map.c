/* tok_map.c: the tokenizer's byte-string map (see text/tok_map.h): open
 * addressing with linear probing, keys back to back in an arena.  Touches only
 * its own memory. */
#include "text/tok_map.h"
#include <stdlib.h>

int tok_map_init(tok_strmap *m, size_t expect) {
    size_t cap = 16;
    while (cap < expect * 2) cap <<= 1;
    memset(m, 0, sizeof *m);
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].id = -1;
    m->mask = cap - 1;
    return 0;
}
void tok_map_free(tok_strmap *m) { free(m->slots); free(m->arena); memset(m, 0, sizeof *m); }

static int map_grow(tok_strmap *m) {
    size_t cap = (m->mask + 1) * 2;
    tok_map_slot *ns = malloc(cap * sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < cap; i++) ns[i].id = -1;
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].id < 0) continue;
        size_t j = m->slots[i].h & (cap - 1);
        while (ns[j].id >= 0) j = (j + 1) & (cap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots); m->slots = ns; m->mask = cap - 1;
    return 0;
}
int tok_map_put(tok_strmap *m, const char *k, size_t n, int32_t id) {
    if ((m->n + 1) * 2 > m->mask + 1 && map_grow(m) < 0) return -1;
    uint64_t h = tok_hash_bytes(k, n);
    size_t i = h & m->mask;
    for (;; i = (i + 1) & m->mask) {
        tok_map_slot *s = &m->slots[i];
        if (s->id < 0) break;
        if (s->h == h && s->len == n && memcmp(m->arena + s->off, k, n) == 0) { s->id = id; return 0; }
    }
    if (m->arena_len + n > m->arena_cap) {
        size_t c = m->arena_cap ? m->arena_cap : 4096;
        while (c < m->arena_len + n) c *= 2;
        char *a = realloc(m->arena, c);
        if (!a) return -1;
        m->arena = a; m->arena_cap = c;
    }
    memcpy(m->arena + m->arena_len, k, n);
    m->slots[i] = (tok_map_slot){h, (uint32_t)m->arena_len, (uint32_t)n, id};
    m->arena_len += n; m->n++;
    return 0;
}

