/* reserve_alloc: the reservation baselines, ra_: each request gets one
 * contiguous range of slots for its whole life, over the same slot pool the
 * paged policy uses.  The policy asks for
 *   KV_CONTIGUOUS   max_model_len slots (a static KV cache)
 *   KV_ORCA_MAX     min(orca_max_len, max_model_len) slots (Orca paper: 2048)
 *   KV_ORCA_POW2    prompt_len + the next power of two >= max_output (the
 *                   output over-reserved by at most 2x; vLLM paper, 6.1)
 *   KV_ORCA_ORACLE  exactly prompt_len + max_output
 * and kv_config.allocator places it: KV_ALLOC_FIRST_FIT, exactly those slots
 * at the start of the first free range that holds them; KV_ALLOC_BUDDY, the
 * block of the next power of two (sim/buddy_alloc.h), so a 1,024-token prompt
 * holds 2,048 slots whatever the policy guessed (the paper's section 6.5).
 * The range is s->resv_start, s->resv_len (the whole block); token position p
 * lives in slot resv_start + p.  Used through sim/kv_cache.h; tests may call
 * it directly. */
#ifndef RESERVE_ALLOC_H
#define RESERVE_ALLOC_H
#include <stdbool.h>
#include <stddef.h>
#include "sim/kv_cache.h"
#include "sim/sequence.h"

typedef struct ra ra;

/* cfg->policy must be a reservation policy.  NULL + err on bad sizes / no memory. */
ra  *ra_create(const kv_config *cfg, char *err, size_t errlen);
void ra_destroy(ra *a);
/* Slots the policy asks for s (never fewer than s->num_tokens); the buddy
 * allocator holds the next power of two of that. */
long ra_reservation_for(const ra *a, const seq *s);
/* The operations of sim/kv_cache.h for reservation policies (same contracts). */
bool ra_can_admit(const ra *a, const seq *s, long watermark_slots);
int  ra_admit(ra *a, seq *s);
bool ra_can_append(const ra *a, const seq *s);
int  ra_fork(ra *a, const seq *parent, seq *child);
void ra_release(ra *a, seq *s);
void ra_usage(const ra *a, seq *const *live, int n, const seq *next, kv_usage *u);
void ra_block_views(const ra *a, seq *const *live, int n, kv_block_view *out);
int  ra_check(const ra *a, seq *const *live, int n, char *err, size_t errlen);
/* Free slots in all, and the longest free range. */
long ra_free_slots(const ra *a);
long ra_largest_free(const ra *a);
/* "first-fit" / "buddy" <-> kv_allocator; -1 when unknown. */
const char *ra_allocator_name(kv_allocator k);
int  ra_allocator_parse(const char *name);
#endif
