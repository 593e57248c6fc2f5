/* Seeded randomized test of the KV cache (issue 2): admit / prefill / append /
 * fork / release / preempt by recompute / swap out / swap in, mixed at random
 * under every policy, with kv_check after each operation.  A shadow of the
 * pool (GPU and CPU slots) plays the executor: it writes each computed token
 * into its slot, performs the copies the cache asks for, and after every
 * operation each live sequence must read back its own tokens, which catches
 * a wrong prefix hit, a missed copy-on-write or a lost swap.
 * PAGESIM_KV_RANDOM_OPS overrides the operations per configuration, and
 * PAGESIM_KV_RANDOM_SEED mixes another seed in (soak runs). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "sim/kv_cache.h"
#include "sim/block_manager.h"

#define MAX_SEQS 24

typedef struct rt {
    kv_cache *kv;
    int bs, nb, ncpu;
    bool paged;
    kv_config cfg;
    seq  s[MAX_SEQS];
    bool used[MAX_SEQS];
    int *gpu;          /* (nb*bs,) token written in each slot, -1 = never */
    int *cpu;          /* (ncpu*bs,) */
    kv_copy *copies;   /* (64,) */
    uint64_t rng;
    int next_id;
    long ops[10];      /* operations that acted, by kind */
    long swap_shared;  /* blocks a swap did not copy: shared with a sibling's copy */
} rt;

static uint32_t rnd(rt *t) {   /* xorshift64*: seeded, portable */
    t->rng ^= t->rng >> 12; t->rng ^= t->rng << 25; t->rng ^= t->rng >> 27;
    return (uint32_t)((t->rng * 0x2545F4914F6CDD1DULL) >> 32);
}
static int rndn(rt *t, int n) { return (int)(rnd(t) % (uint32_t)n); }

static uint64_t weak_hash(uint64_t parent, const int *tok, int n) {   /* collides a lot */
    uint64_t h = parent;
    for (int i = 0; i < n; i++) h += (uint64_t)tok[i];
    return h % 7;
}

/* Collides as much, and lands near the end of the hash map so that probe
 * runs wrap around (backward-shift deletion across the wrap). */
static uint64_t wrap_hash(uint64_t parent, const int *tok, int n) { return 0xFFFFFFF0ULL + weak_hash(parent, tok, n); }

static bool on_cpu(const seq *s) { return s->num_blocks > 0 && s->block_table[0] < 0; }

/* Slot of pos in the GPU shadow (>= 0) or CPU shadow (-(slot+1)). */
static long where(const rt *t, const seq *s, int pos) {
    if (!t->paged) return s->resv_start + pos;
    int e = s->block_table[pos / t->bs];
    if (e < 0) return -((long)(-e - 1) * t->bs + pos % t->bs) - 1;
    return (long)e * t->bs + pos % t->bs;
}
static int *cell(rt *t, long w) { return w >= 0 ? &t->gpu[w] : &t->cpu[-w - 1]; }

static void apply_copies(rt *t, const kv_copy *c, int n) {
    for (int i = 0; i < n; i++) {
        int *src = c[i].kind == KV_SWAP_IN ? t->cpu : t->gpu;
        int *dst = c[i].kind == KV_SWAP_OUT ? t->cpu : t->gpu;
        memcpy(dst + (size_t)c[i].dst * t->bs, src + (size_t)c[i].src * t->bs, (size_t)t->bs * sizeof(int));
    }
}

/* The executor computes positions [num_computed, upto) of s. */
static void compute(rt *t, seq *s, int upto) {
    for (int p = s->num_computed; p < upto; p++) *cell(t, where(t, s, p)) = s->tokens[p];
    s->num_computed = upto;
    kv_commit_computed(t->kv, s);
}

/* What the reservation policy asks for s, derived here from kv_cache.h's
 * description (not from reserve_alloc.c): a buddy block holds more. */
static long asked(const rt *t, const seq *s, long life) {
    long mml = t->cfg.max_model_len, r = life;
    switch (t->cfg.policy) {
    case KV_CONTIGUOUS: r = mml; break;
    case KV_ORCA_MAX: r = t->cfg.orca_max_len < mml ? t->cfg.orca_max_len : mml; break;
    case KV_ORCA_POW2: {
        long o2 = 1;
        while (o2 < life - s->prompt_len) o2 *= 2;
        r = s->prompt_len + o2;
        if (r > (mml > life ? mml : life)) r = mml > life ? mml : life;
        break;
    }
    default: break;
    }
    return r < s->num_tokens ? s->num_tokens : r;
}

static void verify(rt *t) {
    seq *live[MAX_SEQS];
    int n = 0;
    for (int i = 0; i < MAX_SEQS; i++) if (t->used[i]) live[n++] = &t->s[i];
    char err[256] = "";
    if (kv_check(t->kv, live, n, err, sizeof err)) fail_msg("%s: kv_check: %s", kv_policy_name(kv_get_config(t->kv)->policy), err);
    for (int k = 0; k < n; k++) {
        seq *s = live[k];
        if (s->status == SEQ_WAITING) continue;
        for (int p = 0; p < s->num_computed; p++) {
            int got = *cell(t, where(t, s, p));
            if (got != s->tokens[p])
                fail_msg("%s: seq %d position %d reads token %d, holds %d",
                         kv_policy_name(kv_get_config(t->kv)->policy), s->id, p, got, s->tokens[p]);
        }
    }
    kv_usage u;
    kv_usage_get(t->kv, live, n, NULL, &u);
    assert_int_equal(u.token_slots + u.reserved_slots + u.internal_frag + u.external_frag + u.free_slots,
                     u.slots_total);
    /* the same categories, counted slot by slot the slow way */
    long tok = 0, res = 0, in = 0, heldslots = 0, slack = 0;
    char *state = calloc((size_t)t->nb * t->bs, 1);     /* (nb*bs,) 0 free, 1 slack, 2 internal, 3 reserved, 4 token */
    for (int k = 0; k < n; k++) {
        seq *s = live[k];
        if (s->status == SEQ_WAITING || on_cpu(s)) continue;
        long life = (long)s->prompt_len + s->max_output;
        if (life < s->num_tokens) life = s->num_tokens;
        long held = t->paged ? (long)s->num_blocks * t->bs : s->resv_len;
        long ask = t->paged ? held : asked(t, s, life);
        for (long p = 0; p < held; p++) {
            long w = where(t, s, (int)p);
            char v = p < s->num_tokens ? 4 : p < life ? 3 : p < ask ? 2 : 1;
            if (v > state[w]) state[w] = v;
        }
    }
    for (long w = 0; w < (long)t->nb * t->bs; w++) {
        tok += state[w] == 4; res += state[w] == 3; in += state[w] == 2; slack += state[w] == 1;
        heldslots += state[w] != 0;
    }
    free(state);
    if (t->paged || t->cfg.allocator == KV_ALLOC_FIRST_FIT) assert_int_equal(slack, 0);
    assert_int_equal(u.token_slots, tok);
    assert_int_equal(u.reserved_slots, res);
    assert_int_equal(u.internal_frag, in);
    assert_int_equal(u.free_slots + u.external_frag, u.slots_total - heldslots + slack);
}

static int pick(rt *t, seq_status st) {   /* a random used seq in state st, or -1 */
    int start = rndn(t, MAX_SEQS);
    for (int k = 0; k < MAX_SEQS; k++) {
        int i = (start + k) % MAX_SEQS;
        if (t->used[i] && t->s[i].status == st) return i;
    }
    return -1;
}
static int free_index(rt *t) {
    for (int i = 0; i < MAX_SEQS; i++) if (!t->used[i]) return i;
    return -1;
}
static void drop(rt *t, int i) {
    kv_release(t->kv, &t->s[i]);
    seq_free(&t->s[i]);
    t->used[i] = false;
}

static void op_new(rt *t) {
    int i = free_index(t);
    if (i < 0) return;
    int prompt[24], n = 1 + rndn(t, 20);
    int family = rndn(t, 3);                       /* shared prefixes make cache hits */
    int shared = rndn(t, n + 1);
    for (int k = 0; k < n; k++) prompt[k] = k < shared ? family * 100 + k : rndn(t, 4);
    assert_int_equal(seq_init(&t->s[i], t->next_id, t->next_id, prompt, n, 1 + rndn(t, 20), 0), 0);
    t->next_id++;
    t->used[i] = true;
    t->ops[0]++;
}
static void op_admit(rt *t) {
    int i = pick(t, SEQ_WAITING);
    if (i < 0) return;
    seq *s = &t->s[i];
    if (!kv_can_admit(t->kv, s, rndn(t, 3))) return;
    kv_admit(t->kv, s);
    s->status = SEQ_RUNNING;
    assert_true(s->num_computed < s->num_tokens);
    assert_int_equal(s->num_computed % t->bs, 0);
    t->ops[1]++;
}
/* A child that shares all of p's blocks; recompute: its computed length. */
static void fork_child(rt *t, seq *p, int recompute) {
    int j = free_index(t);
    if (j < 0) return;
    seq *c = &t->s[j];
    assert_int_equal(seq_fork(c, p, t->next_id++), 0);
    c->num_computed = recompute;
    if (kv_fork(t->kv, p, c) != 0) { assert_false(t->paged); seq_free(c); return; }
    t->used[j] = true;
    if (!t->paged) {   /* a reservation is the child's own: the executor copies the KV */
        for (int q = 0; q < c->num_computed; q++) t->gpu[c->resv_start + q] = t->gpu[p->resv_start + q];
    }
    t->ops[5]++;
}

/* One scheduler step of one sequence, as sim/scheduler.c runs it: a prefill
 * chunk, or (when the chunk reaches the end) append_slot for the token to be
 * sampled, the KV of [num_computed, num_tokens) written, commit, maybe the
 * group's children forked (they recompute the last token), then the sampled
 * token appended.  Its KV is written by the NEXT step, so a fork or a swap can
 * come between making a slot writable and writing it. */
static void op_step(rt *t) {
    int i = pick(t, SEQ_RUNNING);
    if (i < 0) return;
    seq *s = &t->s[i];
    int rem = s->num_tokens - s->num_computed;
    assert_true(rem >= 1);
    int chunk = 1 + rndn(t, 8);
    if (chunk < rem) { compute(t, s, s->num_computed + chunk); t->ops[2]++; return; }
    if (!kv_can_append(t->kv, s)) return;
    kv_copy c = { -1, -1, KV_COPY_GPU };
    int nc = kv_append_slot(t->kv, s, &c);
    if (nc) { assert_int_equal(c.kind, KV_COPY_GPU); assert_int_not_equal(c.src, c.dst); apply_copies(t, &c, 1); }
    compute(t, s, s->num_tokens);
    if (rndn(t, 6) == 0) fork_child(t, s, s->num_tokens - 1);   /* parallel samples */
    assert_int_equal(seq_append_token(s, rndn(t, 4)), 0);
    t->ops[4]++;
    if (seq_reached_length(s)) { drop(t, i); t->ops[3]++; }     /* finished */
}
/* Beam-style fork of a sequence between steps. */
static void op_fork(rt *t) {
    int i = pick(t, SEQ_RUNNING);
    if (i < 0) return;
    fork_child(t, &t->s[i], t->s[i].num_computed);
}
static void op_release(rt *t) {
    int i = rndn(t, MAX_SEQS);
    if (!t->used[i]) return;
    drop(t, i);
    t->ops[6]++;
}
static void op_preempt(rt *t) {
    int i = pick(t, SEQ_RUNNING);
    if (i < 0) return;
    kv_release(t->kv, &t->s[i]);
    seq_reset_for_recompute(&t->s[i]);
    t->ops[7]++;
}
static void op_swap_out(rt *t) {
    int i = pick(t, SEQ_RUNNING);
    if (i < 0 || !kv_can_swap_out(t->kv, &t->s[i])) return;
    int n = kv_swap_out(t->kv, &t->s[i], t->copies);
    assert_true(n <= t->s[i].num_blocks);          /* blocks a sibling copied are shared */
    t->swap_shared += t->s[i].num_blocks - n;
    apply_copies(t, t->copies, n);
    assert_true(on_cpu(&t->s[i]) || n == 0);
    t->ops[8]++;
}
static void op_swap_in(rt *t) {
    int i = pick(t, SEQ_SWAPPED);
    if (i < 0 || !kv_can_swap_in(t->kv, &t->s[i])) return;
    int n = kv_swap_in(t->kv, &t->s[i], t->copies);
    assert_true(n <= t->s[i].num_blocks);
    t->swap_shared += t->s[i].num_blocks - n;
    apply_copies(t, t->copies, n);
    t->ops[9]++;
}

static long ops_per_config(long dflt) {
    const char *e = getenv("PAGESIM_KV_RANDOM_OPS");
    long v = e ? atol(e) : 0;
    return v > 0 ? v : dflt;
}

static void run(kv_config cfg, bm_hash_fn hash, uint64_t seed, long nops) {
    char err[256];
    rt t;
    memset(&t, 0, sizeof t);
    t.kv = kv_create(&cfg, err, sizeof err);
    if (!t.kv) fail_msg("kv_create: %s", err);
    if (hash) bm_set_hash_fn(kv_block_manager(t.kv), hash);
    t.bs = cfg.block_size; t.nb = cfg.num_blocks; t.ncpu = cfg.num_cpu_blocks;
    t.paged = cfg.policy == KV_PAGED;
    t.cfg = cfg;
    t.gpu = malloc((size_t)t.nb * t.bs * sizeof *t.gpu);
    t.cpu = malloc(((size_t)t.ncpu * t.bs + 1) * sizeof *t.cpu);
    t.copies = malloc(64 * sizeof *t.copies);
    for (long k = 0; k < (long)t.nb * t.bs; k++) t.gpu[k] = -1;
    for (long k = 0; k < (long)t.ncpu * t.bs; k++) t.cpu[k] = -1;
    const char *es = getenv("PAGESIM_KV_RANDOM_SEED");   /* other seeds, for soak runs */
    t.rng = seed ^ (es ? strtoull(es, NULL, 0) * 0x9E3779B97F4A7C15ULL : 0);
    if (!t.rng) t.rng = 1;
    long acted = 0, tries = 0;
    for (; acted < nops && tries < 20 * nops; tries++) {
        long before = 0;
        for (int k = 0; k < 10; k++) before += t.ops[k];
        int r = rndn(&t, 100);
        if (r < 12) op_new(&t);
        else if (r < 26) op_admit(&t);
        else if (r < 72) op_step(&t);
        else if (r < 78) op_fork(&t);
        else if (r < 83) op_release(&t);
        else if (r < 89) op_preempt(&t);
        else if (r < 95) op_swap_out(&t);
        else op_swap_in(&t);
        for (int k = 0; k < 10; k++) before -= t.ops[k];
        if (before == 0) continue;      /* nothing happened: no operation to count */
        acted++;
        verify(&t);
    }
    assert_int_equal(acted, nops);
    kv_usage hu;
    kv_usage_get(t.kv, NULL, 0, NULL, &hu);
    fprintf(stderr, "# %s bs %d: %ld operations: new %ld admit %ld prefill-chunk %ld finish %ld step %ld fork %ld "
            "release %ld preempt %ld swap-out %ld swap-in %ld; prefix-hit tokens %ld, copy-on-write %ld, "
            "swapped blocks shared %ld\n",
            kv_policy_name(cfg.policy), t.bs, acted, t.ops[0], t.ops[1], t.ops[2], t.ops[3], t.ops[4],
            t.ops[5], t.ops[6], t.ops[7], t.ops[8], t.ops[9], hu.prefix_hit_tokens, hu.cow_copies, t.swap_shared);
    /* every kind of operation must have happened, or the test proves little */
    const int need[10] = { 1, 1, 1, 1, 1, 1, 1, 1, t.paged && t.ncpu > 0, t.paged && t.ncpu > 0 };
    for (int k = 0; k < 10; k++)
        if (need[k] && t.ops[k] < nops / 1000) fail_msg("%s: operation %d acted only %ld times",
                                                        kv_policy_name(cfg.policy), k, t.ops[k]);
    for (int i = 0; i < MAX_SEQS; i++) if (t.used[i]) drop(&t, i);
    verify(&t);
    kv_usage u;
    kv_usage_get(t.kv, NULL, 0, NULL, &u);
    assert_int_equal(u.free_slots, u.slots_total);     /* everything came back */
    if (t.paged && cfg.prefix_caching) assert_true(u.prefix_hit_tokens > 0);
    free(t.copies); free(t.cpu); free(t.gpu);
    kv_destroy(t.kv);
}

static kv_config paged_cfg(int blocks, int bs, bool pc, int cpu) {
    return (kv_config){ .policy = KV_PAGED, .num_blocks = blocks, .block_size = bs,
                        .max_model_len = 64, .orca_max_len = 48, .prefix_caching = pc,
                        .num_cpu_blocks = cpu };
}

static void test_paged_prefix_swap(void **st) { (void)st; run(paged_cfg(40, 4, true, 16), NULL, 0x1234567ULL, ops_per_config(100000)); }
static void test_paged_weak_hash(void **st) { (void)st; run(paged_cfg(40, 4, true, 12), weak_hash, 0xabcdefULL, ops_per_config(30000)); }
static void test_paged_wrap_hash(void **st) { (void)st; run(paged_cfg(40, 4, true, 12), wrap_hash, 0xfeedULL, ops_per_config(20000)); }
static void test_paged_plain(void **st) { (void)st; run(paged_cfg(30, 3, false, 10), NULL, 0x77ULL, ops_per_config(30000)); }
static void test_block_size_one(void **st) { (void)st; run(paged_cfg(120, 1, true, 40), NULL, 0x99ULL, ops_per_config(20000)); }
static void reserve(kv_policy p, kv_allocator al, uint64_t seed) {
    kv_config c = { .policy = p, .num_blocks = 60, .block_size = 4, .max_model_len = 64, .orca_max_len = 48,
                    .allocator = al };
    run(c, NULL, seed, ops_per_config(20000));
}
static void test_contiguous(void **st) { (void)st; reserve(KV_CONTIGUOUS, KV_ALLOC_FIRST_FIT, 11); }
static void test_orca_max(void **st) { (void)st; reserve(KV_ORCA_MAX, KV_ALLOC_FIRST_FIT, 12); }
static void test_orca_pow2(void **st) { (void)st; reserve(KV_ORCA_POW2, KV_ALLOC_FIRST_FIT, 13); }
static void test_orca_oracle(void **st) { (void)st; reserve(KV_ORCA_ORACLE, KV_ALLOC_FIRST_FIT, 14); }
/* the same over the buddy allocator (a pool of 240 slots: 128 + 64 + 32 + 16) */
static void test_buddy_contiguous(void **st) { (void)st; reserve(KV_CONTIGUOUS, KV_ALLOC_BUDDY, 21); }
static void test_buddy_orca_max(void **st) { (void)st; reserve(KV_ORCA_MAX, KV_ALLOC_BUDDY, 22); }
static void test_buddy_orca_pow2(void **st) { (void)st; reserve(KV_ORCA_POW2, KV_ALLOC_BUDDY, 23); }
static void test_buddy_orca_oracle(void **st) { (void)st; reserve(KV_ORCA_ORACLE, KV_ALLOC_BUDDY, 24); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paged_prefix_swap),
        cmocka_unit_test(test_paged_weak_hash),
        cmocka_unit_test(test_paged_wrap_hash),
        cmocka_unit_test(test_paged_plain),
        cmocka_unit_test(test_block_size_one),
        cmocka_unit_test(test_contiguous),
        cmocka_unit_test(test_orca_max),
        cmocka_unit_test(test_orca_pow2),
        cmocka_unit_test(test_orca_oracle),
        cmocka_unit_test(test_buddy_contiguous),
        cmocka_unit_test(test_buddy_orca_max),
        cmocka_unit_test(test_buddy_orca_pow2),
        cmocka_unit_test(test_buddy_orca_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
