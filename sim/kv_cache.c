/* kv_cache: one interface over the paged policy (sim/block_manager.c) and the
 * four reservation baselines (sim/reserve_alloc.c); see sim/kv_cache.h.
 * Touches nothing but the pool it creates and the KV fields of the sequences
 * it is handed.
 *
 * Waste accounting (kv_usage_get), the vLLM paper's categories, in slots; the
 * five categories always sum to slots_total:
 *   token_slots     slots holding a token state: positions < s->num_tokens of
 *                   the live sequences on the GPU; a shared block counts once.
 *   reserved_slots  held slots a live sequence will still fill: positions in
 *                   [num_tokens, prompt_len + max_output) inside what it holds.
 *   internal_frag   held slots never to be used: what the policy reserved
 *                   beyond prompt_len + max_output (Orca Max/Pow2 guessing
 *                   long), a paged block's tail beyond the final length.
 *   external_frag   free slots that cannot serve the next waiting request:
 *                   reservation policies, when `next` fits in no free range
 *                   although the free total would hold it, ALL free slots
 *                   count here; plus the slots a buddy block holds beyond what
 *                   the policy asked (its power-of-two rounding), which the
 *                   paper's Figure 2 counts in "external fragmentation &
 *                   others".  Paged: always 0 (any free block serves).
 *   free_slots      the rest of the free slots.  Paged: freed blocks still in
 *                   the prefix cache count as free (they are evictable).
 * Blocks held by sequences missing from `live` count as token slots.
 * Swapped-out sequences hold CPU blocks only and add nothing here. */
#include "sim/kv_cache.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sim/block_manager.h"
#include "sim/reserve_alloc.h"

struct kv_cache {
    kv_config cfg;
    bm *bm;     /* KV_PAGED */
    ra *ra;     /* the reservation policies */
};

static const char *const policy_names[KV_NUM_POLICIES] = {
    [KV_PAGED] = "paged", [KV_CONTIGUOUS] = "contiguous", [KV_ORCA_MAX] = "orca-max",
    [KV_ORCA_POW2] = "orca-pow2", [KV_ORCA_ORACLE] = "orca-oracle",
};

const char *kv_policy_name(kv_policy p) {
    return (p >= 0 && p < KV_NUM_POLICIES) ? policy_names[p] : "unknown";
}

int kv_policy_parse(const char *name) {
    if (!name) return -1;
    for (int p = 0; p < KV_NUM_POLICIES; p++)
        if (strcmp(name, policy_names[p]) == 0) return p;
    /* spellings people type */
    if (strcmp(name, "vllm") == 0) return KV_PAGED;
    if (strcmp(name, "static") == 0) return KV_CONTIGUOUS;
    if (strcmp(name, "orca_max") == 0) return KV_ORCA_MAX;
    if (strcmp(name, "orca_pow2") == 0) return KV_ORCA_POW2;
    if (strcmp(name, "orca_oracle") == 0) return KV_ORCA_ORACLE;
    return -1;
}

kv_cache *kv_create(const kv_config *cfg, char *err, size_t errlen) {
    if (!cfg || cfg->policy < 0 || cfg->policy >= KV_NUM_POLICIES) {
        snprintf(err, errlen, "kv cache: unknown policy %d", cfg ? (int)cfg->policy : -1);
        return NULL;
    }
    if (cfg->num_blocks <= 0 || cfg->block_size <= 0) {
        snprintf(err, errlen, "kv cache: num_blocks (%d) and block_size (%d) must be positive",
                 cfg->num_blocks, cfg->block_size);
        return NULL;
    }
    if ((long long)cfg->num_blocks * cfg->block_size > (1LL << 40)) {
        snprintf(err, errlen, "kv cache: %d blocks of %d slots is too large", cfg->num_blocks, cfg->block_size);
        return NULL;
    }
    kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) { snprintf(err, errlen, "kv cache: out of memory"); return NULL; }
    kv->cfg = *cfg;
    if (cfg->policy == KV_PAGED)
        kv->bm = bm_create(cfg->num_blocks, cfg->block_size, cfg->num_cpu_blocks, cfg->prefix_caching, err, errlen);
    else
        kv->ra = ra_create(cfg, err, errlen);
    if (!kv->bm && !kv->ra) { free(kv); return NULL; }
    return kv;
}

void kv_destroy(kv_cache *kv) {
    if (!kv) return;
    bm_destroy(kv->bm);
    ra_destroy(kv->ra);
    free(kv);
}

const kv_config *kv_get_config(const kv_cache *kv) { return &kv->cfg; }
bm *kv_block_manager(kv_cache *kv) { return kv ? kv->bm : NULL; }

bool kv_can_admit(const kv_cache *kv, const seq *s, int watermark_blocks) {
    if (kv->bm) return bm_can_admit(kv->bm, s, watermark_blocks);
    return ra_can_admit(kv->ra, s, (long)watermark_blocks * kv->cfg.block_size);
}

bool kv_can_ever_fit(const kv_cache *kv, const seq *s, int watermark_blocks) {
    long bs = kv->cfg.block_size, pool = (long)kv->cfg.num_blocks * bs;
    long wm = watermark_blocks > 0 ? (long)watermark_blocks * bs : 0;
    long life = (long)s->prompt_len + s->max_output;
    if (life < s->num_tokens) life = s->num_tokens;
    if (kv->ra) {             /* one reservation for the whole life, or it cannot finish */
        long r = ra_reservation_for(kv->ra, s);
        return r >= life && r + wm <= pool;
    }
    /* the last sampled token's slot (index life - 1) is secured before it is
     * appended; an admission (first, or after a recompute) holds at most
     * life - 1 tokens and keeps the watermark free */
    long need = seq_blocks_for((int)life, (int)bs) * bs;
    long admit = (long)seq_blocks_for((int)(life - 1 > 0 ? life - 1 : 1), (int)bs) * bs + wm;
    return need <= pool && admit <= pool;
}

int kv_admit(kv_cache *kv, seq *s) {
    return kv->bm ? bm_admit(kv->bm, s) : ra_admit(kv->ra, s);
}

bool kv_can_append(const kv_cache *kv, const seq *s) {
    return kv->bm ? bm_can_append(kv->bm, s) : ra_can_append(kv->ra, s);
}

int kv_append_slot(kv_cache *kv, seq *s, kv_copy *copy) {
    return kv->bm ? bm_append_slot(kv->bm, s, copy) : 0;   /* a reservation is already writable */
}

void kv_commit_computed(kv_cache *kv, seq *s) {
    if (kv->bm) bm_commit_computed(kv->bm, s);
}

int kv_fork(kv_cache *kv, const seq *parent, seq *child) {
    return kv->bm ? bm_fork(kv->bm, parent, child) : ra_fork(kv->ra, parent, child);
}

void kv_release(kv_cache *kv, seq *s) {
    if (kv->bm) bm_release(kv->bm, s); else ra_release(kv->ra, s);
}

bool kv_can_swap_out(const kv_cache *kv, const seq *s) { return kv->bm && bm_can_swap_out(kv->bm, s); }
bool kv_can_swap_in(const kv_cache *kv, const seq *s) { return kv->bm && bm_can_swap_in(kv->bm, s); }
int  kv_swap_out(kv_cache *kv, seq *s, kv_copy *copies) { return kv->bm ? bm_swap_out(kv->bm, s, copies) : 0; }
int  kv_swap_in(kv_cache *kv, seq *s, kv_copy *copies) { return kv->bm ? bm_swap_in(kv->bm, s, copies) : 0; }

long kv_slot(const kv_cache *kv, const seq *s, int pos) {
    int bs = kv->cfg.block_size;
    if (kv->bm) return (long)s->block_table[pos / bs] * bs + pos % bs;
    return s->resv_start + pos;
}

int kv_block_table(const kv_cache *kv, const seq *s, int *out, int cap) {
    int bs = kv->cfg.block_size;
    if (kv->bm) {
        if (s->num_blocks > 0 && s->block_table[0] < 0) return -1;     /* on the CPU */
        for (int k = 0; k < s->num_blocks && k < cap; k++) out[k] = s->block_table[k];
        return s->num_blocks;
    }
    if (s->resv_start % bs) return -1;
    long n = (s->resv_len + bs - 1) / bs, first = s->resv_start / bs;
    for (long k = 0; k < n && k < cap; k++) out[k] = (int)(first + k);
    return (int)n;
}

void kv_usage_get(const kv_cache *kv, seq *const *live, int n, const seq *next, kv_usage *u) {
    if (kv->bm) bm_usage(kv->bm, live, n, u);
    else ra_usage(kv->ra, live, n, next, u);
}

int kv_check(const kv_cache *kv, seq *const *live, int n, char *err, size_t errlen) {
    if (kv->bm) return bm_check(kv->bm, live, n, err, errlen);
    int rc = ra_check(kv->ra, live, n, err, errlen);
    if (rc) return rc;
    kv_usage u;
    ra_usage(kv->ra, live, n, NULL, &u);
    long sum = u.token_slots + u.reserved_slots + u.internal_frag + u.external_frag + u.free_slots;
    if (sum != u.slots_total) {
        snprintf(err, errlen, "usage: categories sum to %ld, pool has %ld slots", sum, u.slots_total);
        return -1;
    }
    return 0;
}

void kv_block_views(const kv_cache *kv, seq *const *live, int n, kv_block_view *out) {
    if (kv->bm) bm_block_views(kv->bm, live, n, out);
    else ra_block_views(kv->ra, live, n, out);
}
