/* buddy_alloc: binary buddy allocation over token slots (see buddy_alloc.h).
 * Touches nothing but its own free list.
 *
 * Free blocks are one array sorted by start, each (start, order) with
 * len = 2^order.  A block's buddy is start ^ len; the two merge into their
 * parent when both are free and the parent lies inside the pool (so the cuts
 * of a pool that is not a power of two are never crossed).  Blocks are merged
 * eagerly, so the free blocks of any gap between reservations are that gap's
 * largest aligned pieces, at most two of each order: the list holds at most
 * 2 x (log2(pool) + 1) x (reservations + 1) entries, and it is grown to that at
 * allocation, which keeps buddy_free allocation-free. */
#include "sim/buddy_alloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUDDY_MAX_ORDER 50

typedef struct bd_block { long start; int order; } bd_block;

struct buddy {
    long      total;       /* slots in the pool */
    bd_block *free;        /* (cap,) sorted by start */
    int       nfree, cap;
    long      free_total;
    int       nalloc;      /* live blocks handed out */
};

static long len_of(int order) { return 1L << order; }

static int order_for(long need) {
    int k = 0;
    while (len_of(k) < need) k++;
    return k;
}

long buddy_block_for(long need) { return need <= 1 ? 1 : len_of(order_for(need)); }

static int reserve(buddy *b, int want) {
    if (b->cap >= want) return 0;
    int cap = b->cap ? b->cap : 64;
    while (cap < want) cap *= 2;
    bd_block *f = realloc(b->free, (size_t)cap * sizeof *f);
    if (!f) return -1;
    b->free = f;
    b->cap = cap;
    return 0;
}

/* Index of the first free block with start >= s. */
static int lower_bound(const buddy *b, long s) {
    int lo = 0, hi = b->nfree;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (b->free[mid].start < s) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static void insert_at(buddy *b, int i, long start, int order) {
    memmove(b->free + i + 1, b->free + i, (size_t)(b->nfree - i) * sizeof *b->free);
    b->free[i] = (bd_block){ start, order };
    b->nfree++;
}

static void remove_at(buddy *b, int i) {
    memmove(b->free + i, b->free + i + 1, (size_t)(b->nfree - i - 1) * sizeof *b->free);
    b->nfree--;
}

buddy *buddy_create(long total, char *err, size_t errlen) {
    if (total < 1 || total > len_of(BUDDY_MAX_ORDER)) {
        snprintf(err, errlen, "buddy allocator: pool of %ld slots (want 1 .. 2^%d)", total, BUDDY_MAX_ORDER);
        return NULL;
    }
    buddy *b = calloc(1, sizeof *b);
    if (!b || reserve(b, 2 * BUDDY_MAX_ORDER + 2)) {
        snprintf(err, errlen, "buddy allocator: out of memory");
        buddy_destroy(b);
        return NULL;
    }
    b->total = total;
    /* the largest aligned power-of-two blocks that fit, from slot 0 */
    for (long pos = 0; pos < total;) {
        int k = BUDDY_MAX_ORDER;
        while (k > 0 && ((pos & (len_of(k) - 1)) != 0 || pos + len_of(k) > total)) k--;
        b->free[b->nfree++] = (bd_block){ pos, k };
        pos += len_of(k);
    }
    b->free_total = total;
    return b;
}

void buddy_destroy(buddy *b) {
    if (!b) return;
    free(b->free);
    free(b);
}

/* The free block to split for order k: the smallest order >= k, lowest start. */
static int best_fit(const buddy *b, int k) {
    int best = -1;
    for (int i = 0; i < b->nfree; i++)
        if (b->free[i].order >= k && (best < 0 || b->free[i].order < b->free[best].order)) best = i;
    return best;
}

bool buddy_can_alloc(const buddy *b, long need) {
    return need >= 1 && need <= b->total && best_fit(b, order_for(need)) >= 0;
}

long buddy_alloc(buddy *b, long need, long *held) {
    *held = 0;
    if (need < 1 || need > b->total) return -1;
    int k = order_for(need), i = best_fit(b, k);
    /* room for the halves split off now and for what later frees may add */
    long per_gap = 2L * (order_for(b->total) + 1);
    if (i < 0 || reserve(b, (int)(b->nfree + per_gap * (b->nalloc + 3)))) return -1;
    long start = b->free[i].start;
    int order = b->free[i].order;
    remove_at(b, i);
    while (order > k) {                   /* keep the lower half, free the upper */
        order--;
        long upper = start + len_of(order);
        insert_at(b, lower_bound(b, upper), upper, order);
    }
    b->free_total -= len_of(k);
    b->nalloc++;
    *held = len_of(k);
    return start;
}

void buddy_free(buddy *b, long start, long held) {
    int order = order_for(held);
    if (held <= 0 || len_of(order) != held || (start & (held - 1)) != 0 || start < 0 ||
        start + held > b->total)
        return;                           /* not a block of ours: misuse */
    b->free_total += held;
    b->nalloc--;
    for (;;) {
        long bud = start ^ len_of(order), parent = start & ~(len_of(order + 1) - 1);
        if (order >= BUDDY_MAX_ORDER || parent + len_of(order + 1) > b->total) break;
        int j = lower_bound(b, bud);
        if (j >= b->nfree || b->free[j].start != bud || b->free[j].order != order) break;
        remove_at(b, j);                  /* merge with the free buddy */
        start = parent;
        order++;
    }
    insert_at(b, lower_bound(b, start), start, order);
}

long buddy_free_total(const buddy *b) { return b->free_total; }

long buddy_largest_free(const buddy *b) {
    long m = 0;
    for (int i = 0; i < b->nfree; i++)
        if (len_of(b->free[i].order) > m) m = len_of(b->free[i].order);
    return m;
}

int buddy_num_free(const buddy *b) { return b->nfree; }

void buddy_free_block(const buddy *b, int i, long *start, long *len) {
    *start = b->free[i].start;
    *len = len_of(b->free[i].order);
}

int buddy_check(const buddy *b, char *err, size_t errlen) {
    long sum = 0;
    for (int i = 0; i < b->nfree; i++) {
        bd_block f = b->free[i];
        long len = len_of(f.order);
        if (f.order < 0 || f.order > BUDDY_MAX_ORDER || f.start < 0 || f.start + len > b->total) {
            snprintf(err, errlen, "buddy: free block %d [%ld, +%ld) outside the pool of %ld", i, f.start, len, b->total);
            return -1;
        }
        if (f.start & (len - 1)) {
            snprintf(err, errlen, "buddy: free block [%ld, +%ld) not aligned to its size", f.start, len);
            return -1;
        }
        if (i > 0 && b->free[i - 1].start + len_of(b->free[i - 1].order) > f.start) {
            snprintf(err, errlen, "buddy: free blocks %d and %d overlap or are out of order", i - 1, i);
            return -1;
        }
        long parent = f.start & ~(len_of(f.order + 1) - 1);
        int j = lower_bound(b, f.start ^ len);
        if (parent + len_of(f.order + 1) <= b->total && j < b->nfree && b->free[j].start == (f.start ^ len) &&
            b->free[j].order == f.order) {
            snprintf(err, errlen, "buddy: free buddies [%ld, +%ld) and [%ld, +%ld) left unmerged", f.start, len,
                     f.start ^ len, len);
            return -1;
        }
        sum += len;
    }
    if (sum != b->free_total) {
        snprintf(err, errlen, "buddy: free blocks sum to %ld, free total says %ld", sum, b->free_total);
        return -1;
    }
    return 0;
}
