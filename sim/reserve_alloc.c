/* reserve_alloc: contiguous reservations, placed first-fit or by a buddy
 * allocator (see sim/reserve_alloc.h).  Touches only its free space and the
 * resv_start/resv_len/num_computed fields of the sequences it is handed.
 *
 * First-fit: free space is a sorted array of disjoint, coalesced ranges
 * (start, len).  Placing at the start of the first range that fits never
 * splits a range, so the list holds at most (live reservations + 1) ranges;
 * it is grown at admission, which keeps release allocation-free.
 * Buddy: sim/buddy_alloc.c holds the free blocks; a reservation holds the
 * whole block (resv_len = the power of two), of which the policy asked
 * ra_reservation_for() slots. */
#include "sim/reserve_alloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sim/buddy_alloc.h"

typedef struct ra_range { long start, len; } ra_range;

struct ra {
    kv_policy policy;
    long      total;       /* slots in the pool: num_blocks * block_size */
    int       bs, nb;
    long      resv_max;    /* KV_CONTIGUOUS / KV_ORCA_MAX reservation */
    long      max_model_len;
    ra_range *free;        /* first-fit: (cap,) sorted by start, disjoint, never adjacent */
    int       nfree, cap;
    long      free_total;
    int       nresv;       /* live reservations */
    buddy    *bd;          /* buddy: its free blocks (free/nfree unused) */
};

static const char *const alloc_names[] = { [KV_ALLOC_FIRST_FIT] = "first-fit", [KV_ALLOC_BUDDY] = "buddy" };

const char *ra_allocator_name(kv_allocator k) {
    return k == KV_ALLOC_FIRST_FIT || k == KV_ALLOC_BUDDY ? alloc_names[k] : "unknown";
}

int ra_allocator_parse(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "first-fit") || !strcmp(name, "first_fit") || !strcmp(name, "firstfit")) return KV_ALLOC_FIRST_FIT;
    if (!strcmp(name, "buddy")) return KV_ALLOC_BUDDY;
    return -1;
}

ra *ra_create(const kv_config *cfg, char *err, size_t errlen) {
    if (cfg->policy == KV_PAGED || cfg->policy < 0 || cfg->policy >= KV_NUM_POLICIES) {
        snprintf(err, errlen, "reservation allocator: policy %d is not a reservation policy", (int)cfg->policy);
        return NULL;
    }
    if (cfg->num_blocks <= 0 || cfg->block_size <= 0 || cfg->max_model_len <= 0 || cfg->orca_max_len < 0) {
        snprintf(err, errlen, "reservation allocator: bad sizes (blocks %d, block size %d, max_model_len %d, orca_max_len %d)",
                 cfg->num_blocks, cfg->block_size, cfg->max_model_len, cfg->orca_max_len);
        return NULL;
    }
    if (cfg->allocator != KV_ALLOC_FIRST_FIT && cfg->allocator != KV_ALLOC_BUDDY) {
        snprintf(err, errlen, "reservation allocator: unknown allocator %d", (int)cfg->allocator);
        return NULL;
    }
    ra *a = calloc(1, sizeof *a);
    if (!a) goto oom;
    a->policy = cfg->policy;
    a->bs = cfg->block_size;
    a->nb = cfg->num_blocks;
    a->total = (long)cfg->num_blocks * cfg->block_size;
    a->max_model_len = cfg->max_model_len;
    long orca = cfg->orca_max_len > 0 ? cfg->orca_max_len : 2048;
    a->resv_max = cfg->policy == KV_CONTIGUOUS ? cfg->max_model_len
                : (orca < cfg->max_model_len ? orca : cfg->max_model_len);
    a->cap = 64;
    a->free = malloc((size_t)a->cap * sizeof *a->free);
    if (!a->free) goto oom;
    a->free[0] = (ra_range){ 0, a->total };
    a->nfree = 1;
    a->free_total = a->total;
    if (cfg->allocator == KV_ALLOC_BUDDY && !(a->bd = buddy_create(a->total, err, errlen))) {
        ra_destroy(a);
        return NULL;
    }
    return a;
oom:
    snprintf(err, errlen, "reservation allocator: out of memory");
    ra_destroy(a);
    return NULL;
}

void ra_destroy(ra *a) {
    if (!a) return;
    buddy_destroy(a->bd);
    free(a->free);
    free(a);
}

long ra_reservation_for(const ra *a, const seq *s) {
    long life = (long)s->prompt_len + s->max_output;
    if (life < s->num_tokens) life = s->num_tokens;
    long r;
    switch (a->policy) {
    case KV_ORCA_POW2: {
        /* the output's next power of two (the paper: "if the true output
         * length is 25, it reserves 32 positions for outputs"), but never
         * beyond what the model can hold */
        long out = life - s->prompt_len, o2 = 1;
        while (o2 < out) o2 *= 2;
        r = s->prompt_len + o2;
        long cap = a->max_model_len > life ? a->max_model_len : life;
        if (r > cap) r = cap;
        break;
    }
    case KV_ORCA_ORACLE: r = life; break;
    default: r = a->resv_max; break;     /* KV_CONTIGUOUS, KV_ORCA_MAX */
    }
    return r < s->num_tokens ? s->num_tokens : r;
}

/* Index of the first free range with at least need slots, or -1. */
static int first_fit(const ra *a, long need) {
    for (int i = 0; i < a->nfree; i++)
        if (a->free[i].len >= need) return i;
    return -1;
}

/* Slots a placement of need takes: need, or its buddy block. */
static long held_for(const ra *a, long need) { return a->bd ? buddy_block_for(need) : need; }

static bool fits(const ra *a, long need) {
    return a->bd ? buddy_can_alloc(a->bd, need) : first_fit(a, need) >= 0;
}

bool ra_can_admit(const ra *a, const seq *s, long watermark_slots) {
    long need = ra_reservation_for(a, s);
    if (ra_free_slots(a) - held_for(a, need) < (watermark_slots > 0 ? watermark_slots : 0)) return false;
    return fits(a, need);
}

/* Takes need slots from range i (its start); can't fail. */
static long take(ra *a, int i, long need) {
    long start = a->free[i].start;
    a->free[i].start += need;
    a->free[i].len -= need;
    if (a->free[i].len == 0) {
        memmove(a->free + i, a->free + i + 1, (size_t)(a->nfree - i - 1) * sizeof *a->free);
        a->nfree--;
    }
    a->free_total -= need;
    a->nresv++;
    return start;
}

/* Keeps room for one more range than there can ever be (see the top). */
static int grow(ra *a) {
    if (a->cap >= a->nresv + 2) return 0;
    int cap = a->cap * 2;
    ra_range *f = realloc(a->free, (size_t)cap * sizeof *f);
    if (!f) return -1;
    a->free = f;
    a->cap = cap;
    return 0;
}

/* Places need slots for s: resv_start/resv_len set; -1 when none fit (or no memory). */
static int place(ra *a, long need, seq *s) {
    if (a->bd) {
        long held, start = buddy_alloc(a->bd, need, &held);
        if (start < 0) return -1;
        s->resv_start = start;
        s->resv_len = held;
        a->nresv++;
        return 0;
    }
    int i = first_fit(a, need);
    if (i < 0 || grow(a)) return -1;
    s->resv_start = take(a, i, need);
    s->resv_len = need;
    return 0;
}

int ra_admit(ra *a, seq *s) {
    long need = ra_reservation_for(a, s);
    if (a->bd) {
        if (s->resv_len > 0) return -1;               /* misuse: already placed */
        if (place(a, need, s)) return -1;             /* no room (misuse) or no memory: nothing changed */
        s->num_computed = 0;
        return 0;
    }
    int i = first_fit(a, need);
    if (i < 0 || s->resv_len > 0) return -1;          /* misuse: no room, or already placed */
    if (grow(a)) return -1;                           /* out of memory: nothing changed */
    s->resv_start = take(a, i, need);
    s->resv_len = need;
    s->num_computed = 0;
    return 0;
}

bool ra_can_append(const ra *a, const seq *s) { (void)a; return s->resv_len > 0 && s->num_tokens < s->resv_len; }

int ra_fork(ra *a, const seq *parent, seq *child) {
    child->resv_start = 0;
    child->resv_len = 0;
    child->num_blocks = 0;
    if (place(a, ra_reservation_for(a, parent), child)) {
        child->resv_start = 0;
        child->resv_len = 0;
        return -1;
    }
    return 0;
}

void ra_release(ra *a, seq *s) {
    if (s->resv_len <= 0) return;
    long start = s->resv_start, len = s->resv_len;
    if (a->bd) {
        buddy_free(a->bd, start, len);
        a->nresv--;
        s->resv_start = 0;
        s->resv_len = 0;
        return;
    }
    /* first range after the released one */
    int lo = 0, hi = a->nfree;
    while (lo < hi) { int mid = (lo + hi) / 2; if (a->free[mid].start < start) lo = mid + 1; else hi = mid; }
    bool join_prev = lo > 0 && a->free[lo - 1].start + a->free[lo - 1].len == start;
    bool join_next = lo < a->nfree && start + len == a->free[lo].start;
    if (join_prev && join_next) {
        a->free[lo - 1].len += len + a->free[lo].len;
        memmove(a->free + lo, a->free + lo + 1, (size_t)(a->nfree - lo - 1) * sizeof *a->free);
        a->nfree--;
    } else if (join_prev) {
        a->free[lo - 1].len += len;
    } else if (join_next) {
        a->free[lo].start = start;
        a->free[lo].len += len;
    } else {
        memmove(a->free + lo + 1, a->free + lo, (size_t)(a->nfree - lo) * sizeof *a->free);
        a->free[lo] = (ra_range){ start, len };
        a->nfree++;
    }
    a->free_total += len;
    a->nresv--;
    s->resv_start = 0;
    s->resv_len = 0;
}

long ra_free_slots(const ra *a) { return a->bd ? buddy_free_total(a->bd) : a->free_total; }
long ra_largest_free(const ra *a) {
    if (a->bd) return buddy_largest_free(a->bd);
    long m = 0;
    for (int i = 0; i < a->nfree; i++) if (a->free[i].len > m) m = a->free[i].len;
    return m;
}

/* ---- accounting ----------------------------------------------------------- */
/* The free space as ranges in address order, whichever the allocator. */
static int nfree_ranges(const ra *a) { return a->bd ? buddy_num_free(a->bd) : a->nfree; }
static ra_range free_range(const ra *a, int i) {
    ra_range r;
    if (a->bd) buddy_free_block(a->bd, i, &r.start, &r.len);
    else r = a->free[i];
    return r;
}

void ra_usage(const ra *a, seq *const *live, int n, const seq *next, kv_usage *u) {
    memset(u, 0, sizeof *u);
    u->slots_total = a->total;
    u->blocks_total = a->nb;
    long held = 0, free_total = ra_free_slots(a);
    for (int k = 0; k < n; k++) {
        const seq *s = live[k];
        if (!s || s->resv_len <= 0) continue;
        long life = (long)s->prompt_len + s->max_output;
        if (life < s->num_tokens) life = s->num_tokens;
        long asked = ra_reservation_for(a, s);        /* what the policy asked; the rest is rounding */
        if (asked > s->resv_len) asked = s->resv_len;
        long tok = s->num_tokens < s->resv_len ? s->num_tokens : s->resv_len;
        long fin = life < asked ? life : asked;
        if (fin < tok) fin = tok;
        u->token_slots += tok;
        u->reserved_slots += fin - tok;
        u->internal_frag += asked > fin ? asked - fin : 0;
        u->external_frag += s->resv_len - (asked > fin ? asked : fin);
        held += s->resv_len;
    }
    /* reservations of sequences not passed in: count them as holding tokens */
    if (a->total - free_total > held) u->token_slots += a->total - free_total - held;
    u->free_slots = free_total;
    if (next && free_total > 0) {
        long need = ra_reservation_for(a, next);
        if (free_total >= held_for(a, need) && !fits(a, need)) {
            u->external_frag += free_total;      /* enough in total, none in one piece */
            u->free_slots = 0;
        }
    }
    /* blocks touched by a reservation = blocks not entirely inside a free range */
    int whole_free = 0;
    for (int i = 0; i < nfree_ranges(a); i++) {
        ra_range f = free_range(a, i);
        long first = (f.start + a->bs - 1) / a->bs, end = (f.start + f.len) / a->bs;
        if (end > first) whole_free += (int)(end - first);
    }
    u->blocks_used = a->nb - whole_free;
}

void ra_block_views(const ra *a, seq *const *live, int n, kv_block_view *out) {
    for (int b = 0; b < a->nb; b++) out[b] = (kv_block_view){ .ref = 0, .tokens = 0, .owner = -1 };
    for (int k = 0; k < n; k++) {
        const seq *s = live[k];
        if (!s || s->resv_len <= 0 || s->resv_start < 0 || s->resv_start + s->resv_len > a->total) continue;
        long tok_end = s->resv_start + (s->num_tokens < s->resv_len ? s->num_tokens : s->resv_len);
        long b0 = s->resv_start / a->bs, b1 = (s->resv_start + s->resv_len - 1) / a->bs;
        for (long b = b0; b <= b1; b++) {
            long lo = b * a->bs, hi = lo + a->bs;
            if (lo < s->resv_start) lo = s->resv_start;
            long th = hi < tok_end ? hi : tok_end;
            kv_block_view *v = &out[b];
            v->ref++;
            v->reserved = true;
            if (th > lo) v->tokens += (int)(th - lo);
            if (v->owner < 0 || s->id < v->owner) v->owner = s->id;
        }
    }
}

/* ---- invariants ----------------------------------------------------------- */
#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); rc = -1; goto out; } while (0)

static int cmp_start(const void *x, const void *y) {
    long a = (*(const seq *const *)x)->resv_start, b = (*(const seq *const *)y)->resv_start;
    return (a > b) - (a < b);
}

int ra_check(const ra *a, seq *const *live, int n, char *err, size_t errlen) {
    int rc = 0, m = 0;
    const seq **r = malloc(((size_t)n + 1) * sizeof *r);   /* (n,) live reservations */
    if (!r) { snprintf(err, errlen, "check: out of memory"); return -1; }
    long held = 0, sum_free = 0;
    for (int k = 0; k < n; k++) {
        const seq *s = live[k];
        if (!s) continue;
        if (s->num_blocks != 0) FAIL("seq %d: reservation policy but %d blocks in its table", s->id, s->num_blocks);
        if (s->resv_len < 0) FAIL("seq %d: negative reservation %ld", s->id, s->resv_len);
        if (s->resv_len == 0) continue;
        if (s->resv_start < 0 || s->resv_start + s->resv_len > a->total)
            FAIL("seq %d: reservation [%ld, %ld) outside the pool of %ld slots", s->id, s->resv_start,
                 s->resv_start + s->resv_len, a->total);
        if (s->num_tokens > s->resv_len)
            FAIL("seq %d: %d tokens in a reservation of %ld", s->id, s->num_tokens, s->resv_len);
        if (a->bd && (buddy_block_for(s->resv_len) != s->resv_len || (s->resv_start & (s->resv_len - 1))))
            FAIL("seq %d: reservation [%ld, +%ld) is not an aligned buddy block", s->id, s->resv_start, s->resv_len);
        r[m++] = s;
        held += s->resv_len;
    }
    qsort(r, (size_t)m, sizeof *r, cmp_start);
    for (int i = 1; i < m; i++)
        if (r[i - 1]->resv_start + r[i - 1]->resv_len > r[i]->resv_start)
            FAIL("reservations of seqs %d and %d overlap", r[i - 1]->id, r[i]->id);
    /* free ranges: sorted, non-empty, coalesced (first-fit; buddy_check checks
     * the buddy's own rules), inside, and clear of every reservation */
    if (a->bd && buddy_check(a->bd, err, errlen)) { rc = -1; goto out; }
    int j = 0;
    for (int i = 0; i < nfree_ranges(a); i++) {
        ra_range f = free_range(a, i);
        if (f.len <= 0 || f.start < 0 || f.start + f.len > a->total)
            FAIL("free range %d [%ld, +%ld) is empty or outside the pool", i, f.start, f.len);
        if (!a->bd && i > 0 && a->free[i - 1].start + a->free[i - 1].len >= f.start)
            FAIL("free ranges %d and %d overlap or touch", i - 1, i);
        while (j < m && r[j]->resv_start + r[j]->resv_len <= f.start) j++;
        if (j < m && r[j]->resv_start < f.start + f.len)
            FAIL("free range [%ld, +%ld) overlaps seq %d's reservation", f.start, f.len, r[j]->id);
        sum_free += f.len;
    }
    if (sum_free != ra_free_slots(a)) FAIL("free ranges sum to %ld, free total says %ld", sum_free, ra_free_slots(a));
    if (m != a->nresv) FAIL("%d reservations passed in, allocator holds %d", m, a->nresv);
    if (held + sum_free != a->total) FAIL("%ld reserved + %ld free != %ld slots", held, sum_free, a->total);
    if (!a->bd && a->nfree > a->nresv + 1) FAIL("%d free ranges for %d reservations", a->nfree, a->nresv);
out:
    free(r);
    return rc;
}
