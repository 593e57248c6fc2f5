/* tok_map.h: the tokenizer's two hash maps (private to text/tok_*.c):
 * byte string -> id (vocab, added tokens; keys in an arena the map owns) and
 * (left id, right id) -> (merge rank, merged id).  The lookups are inline:
 * BPE calls them for every symbol pair. */
#ifndef TEXT_TOK_MAP_H
#define TEXT_TOK_MAP_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 64-bit hash of n bytes (the maps' and the word cache's). */
static inline uint64_t tok_hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
    while (n >= 8) {
        uint64_t w; memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull; h ^= h >> 29;
        s += 8; n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    h = (h ^ w) * 0x94D049BB133111EBull; h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull; h ^= h >> 27;
    return h;
}

/* Byte string -> id, keys stored in an arena owned by the map. */
typedef struct { uint64_t h; uint32_t off, len; int32_t id; } tok_map_slot;
typedef struct {
    tok_map_slot *slots;  /* (mask+1,) id < 0 marks an empty slot */
    size_t mask, n;
    char *arena;          /* (arena_cap,) keys back to back */
    size_t arena_len, arena_cap;
} tok_strmap;

/* Empty map sized for about expect keys; -1 when out of memory. */
int  tok_map_init(tok_strmap *m, size_t expect);
void tok_map_free(tok_strmap *m);
/* Inserts or overwrites; -1 when out of memory. */
int  tok_map_put(tok_strmap *m, const char *k, size_t n, int32_t id);
/* The id of key k (n bytes), or -1. */
static inline int32_t tok_map_get(const tok_strmap *m, const char *k, size_t n) {
    if (!m->slots) return -1;
    uint64_t h = tok_hash_bytes(k, n);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const tok_map_slot *s = &m->slots[i];
        if (s->id < 0) return -1;
        if (s->h == h && s->len == n && memcmp(m->arena + s->off, k, n) == 0) return s->id;
    }
}

/* (left id, right id) -> (rank, merged id). */
typedef struct { uint64_t key; int32_t rank, id; } tok_mm_slot;
typedef struct { tok_mm_slot *slots; size_t mask; } tok_mergemap;
#define TOK_MM_EMPTY UINT64_MAX

static inline uint64_t tok_mm_hash(uint64_t k) { k ^= k >> 33; k *= 0xFF51AFD7ED558CCDull; k ^= k >> 33; return k; }
static inline const tok_mm_slot *tok_mm_get(const tok_mergemap *m, int32_t a, int32_t b) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = tok_mm_hash(k) & m->mask;; i = (i + 1) & m->mask) {
        const tok_mm_slot *s = &m->slots[i];
        if (s->key == k) return s;
        if (s->key == TOK_MM_EMPTY) return NULL;
    }
}

#endif
