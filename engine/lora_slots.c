/* lora_slots: see lora_slots.h.  Touches only the slot table it is given. */
#include "engine/lora_slots.h"
#include "base/errbuf.h"
#include <stdlib.h>
#include <string.h>

int lora_slots_init(lora_slots *s, int n) {
    memset(s, 0, sizeof *s);
    if (n < 1) return -1;
    s->n = n;
    s->adapter = calloc((size_t)n, sizeof *s->adapter);
    s->pins = calloc((size_t)n, sizeof *s->pins);
    s->used = calloc((size_t)n, sizeof *s->used);
    if (!s->adapter || !s->pins || !s->used) { lora_slots_free(s); return -1; }
    return 0;
}

void lora_slots_free(lora_slots *s) {
    free(s->adapter); free(s->pins); free(s->used);
    memset(s, 0, sizeof *s);
}

int lora_slots_find(const lora_slots *s, int id) {
    for (int k = 0; k < s->n; k++) if (s->adapter[k] == id) return k;
    return -1;
}

int lora_slots_acquire(lora_slots *s, int id, int *load) {
    *load = 0;
    if (id <= 0) return -1;
    int k = lora_slots_find(s, id);
    if (k < 0) {                                 /* an empty slot, else the least recently used unpinned one */
        int empty = -1, lru = -1;
        for (int j = 0; j < s->n; j++) {
            if (!s->adapter[j]) { if (empty < 0) empty = j; }
            else if (!s->pins[j] && (lru < 0 || s->used[j] < s->used[lru])) lru = j;
        }
        k = empty >= 0 ? empty : lru;
        if (k < 0) return -1;
        s->adapter[k] = id;
        *load = 1;
    }
    s->pins[k]++;
    s->used[k] = ++s->clock;
    return k;
}

void lora_slots_release(lora_slots *s, int k) {
    if (k >= 0 && k < s->n && s->pins[k] > 0) s->pins[k]--;
}

int lora_slots_check(const lora_slots *s, char *err, size_t errlen) {
    for (int k = 0; k < s->n; k++) {
        if (s->pins[k] < 0 || (s->pins[k] > 0 && s->adapter[k] <= 0))
            return errbuf_fail(err, errlen, "slot %d: %d pins on adapter %d", k, s->pins[k], s->adapter[k]);
        for (int j = 0; j < k; j++)
            if (s->adapter[k] > 0 && s->adapter[j] == s->adapter[k])
                return errbuf_fail(err, errlen, "adapter %d in slots %d and %d", s->adapter[k], j, k);
    }
    return 0;
}

/* appends the tiles of rows [first, rows) of slot k */
static void add_tiles(int32_t *tiles, int *nt, int k, int first, int rows) {
    for (int r = first; r < rows; r += LORA_TILE) {
        tiles[3 * *nt] = k;
        tiles[3 * *nt + 1] = r;
        tiles[3 * *nt + 2] = rows - r < LORA_TILE ? rows - r : LORA_TILE;
        (*nt)++;
    }
}

int lora_group_tokens(const int32_t *slot_of, const int32_t *query_start, int B, int nslots, int32_t *perm,
                      int32_t *tiles, int *ntiles, int *ntiles_all) {
    int rows = 0, nt = 0;
    for (int k = 0; k <= nslots; k++) {          /* slot by slot (few: --max-loras), then the base model's */
        int first = rows, want = k < nslots ? k : -1;
        if (k == nslots) *ntiles = nt;
        for (int i = 0; i < B; i++) {
            int si = slot_of ? slot_of[i] : -1;
            if ((si < 0 || si >= nslots ? -1 : si) != want) continue;
            for (int t = query_start[i]; t < query_start[i + 1]; t++) perm[rows++] = t;
        }
        add_tiles(tiles, &nt, want, first, rows);
        if (k == nslots) rows = first;           /* the rows with an adapter */
    }
    *ntiles_all = nt;
    return rows;
}
