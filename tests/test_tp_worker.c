/* Tests of what rank 0 posts to the tensor-parallel workers and their loop
 * (engine/tp_worker.h), no GPU: every worker sees exactly rank 0's batches
 * (ids, positions, slots, query starts, contexts, block tables) step after
 * step through the mailbox's two slots, and its block copies, in order; a
 * lying message is refused; a forward that fails on a worker reaches rank 0
 * with the worker's message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/tp_worker.h"

enum { ECHO = TP_MSG_USER + 8 };

/* a checksum of everything a batch carries */
static int64_t digest(const model_batch *b) {
    uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(uint32_t)(v)) * 1099511628211ull)
    MIX(b->T); MIX(b->B); MIX(b->max_blocks_per_seq); MIX(b->all_logits);
    for (int t = 0; t < b->T; t++) { MIX(b->input_ids[t]); MIX(b->positions[t]); MIX(b->slot_mapping[t]); }
    for (int s = 0; s <= b->B; s++) MIX(b->query_start[s]);
    for (int s = 0; s < b->B; s++) MIX(b->context_lens[s]);
    for (int i = 0; i < b->B * b->max_blocks_per_seq; i++) MIX(b->block_tables[i]);
#undef MIX
    return (int64_t)(h >> 1);
}

typedef struct fake { tp_group *g; int steps; } fake;

static int fake_forward(void *model, const model_batch *b, char *err, size_t errlen) {
    fake *f = model;
    if (b->input_ids[0] == -42) return snprintf(err, errlen, "cudaMalloc failed: out of memory (step %d)", f->steps), -1;
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = ECHO;
    m.arg[0] = digest(b);
    f->steps++;
    return tp_group_reply(f->g, &m);
}
static int fake_copy(void *model, int src, int dst, char *err, size_t errlen) {
    (void)err; (void)errlen;
    fake *f = model;
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = ECHO;
    m.arg[0] = 1000000 * src + dst + f->steps;
    return tp_group_reply(f->g, &m);
}
static int fake_sync(void *model, char *err, size_t errlen) { (void)model; (void)err; (void)errlen; return 0; }

static int worker(tp_group *g, void *ctx, char *err, size_t errlen) {
    (void)ctx;
    fake f = {g, 0};
    tp_worker_ops ops = {fake_forward, fake_copy, fake_sync};
    return tp_worker_loop(g, &ops, &f, err, errlen);
}

/* a random batch of up to T tokens in B sequences (arrays in buf) */
static model_batch make_batch(int32_t *buf, int T, int B, int M, unsigned seed) {
    srand(seed);
    int32_t *ids = buf, *pos = ids + T, *slots = pos + T, *qs = slots + T, *ctx = qs + B + 1, *bt = ctx + B;
    qs[0] = 0;
    for (int s = 0; s < B; s++) { qs[s + 1] = (s + 1) * T / B; ctx[s] = qs[s + 1] - qs[s] + rand() % 100; }
    for (int t = 0; t < T; t++) { ids[t] = rand() % 150000; pos[t] = rand() % 4096; slots[t] = rand() % 100000; }
    for (int i = 0; i < B * M; i++) bt[i] = rand() % 5000;
    return (model_batch){T, B, ids, pos, slots, qs, ctx, bt, M, (int)(seed & 1)};
}

static void test_batches_reach_every_worker(void **st) {
    (void)st;
    char err[512];
    enum { TMAX = 2048, BMAX = 64, M = 32 };
    tp_group *g;
    assert_int_equal(tp_group_start(&g, 4, tp_mailbox_bytes(TMAX, BMAX, M), worker, NULL, err, sizeof err), 0);
    int32_t *buf = malloc(sizeof(int32_t) * (3 * TMAX + 2 * BMAX + 1 + BMAX * M));
    int64_t got[4];
    for (int step = 0; step < 40; step++) {
        int T = step % 5 == 0 ? TMAX : 1 + (step * 97) % TMAX, B = 1 + step % BMAX;
        if (B > T) B = T;
        model_batch b = make_batch(buf, T, B, M - step % 3, (unsigned)step);
        if (step % 7 == 3) {
            assert_int_equal(tp_post_copy(g, step, step + 1, err, sizeof err), 0);
            assert_int_equal(tp_group_gather(g, ECHO, got, 10, err, sizeof err), 0);
            for (int r = 1; r < 4; r++) assert_int_equal(got[r], 1000000 * step + step + 1 + step);
        }
        assert_int_equal(tp_post_batch(g, &b, err, sizeof err), 0);
        int64_t want = digest(&b);
        memset(buf, 0xab, sizeof(int32_t) * (size_t)T);      /* rank 0 reuses its arrays at once */
        assert_int_equal(tp_group_gather(g, ECHO, got, 10, err, sizeof err), 0);
        for (int r = 1; r < 4; r++) assert_int_equal(got[r], want);
    }
    /* a batch larger than the mailbox is refused before anything is sent */
    model_batch big = make_batch(buf, TMAX, BMAX, M, 1);
    big.max_blocks_per_seq = 4 * M;
    assert_int_equal(tp_post_batch(g, &big, err, sizeof err), -1);
    assert_non_null(strstr(err, "mailbox"));
    free(buf);
    assert_int_equal(tp_group_stop(g, 5), 0);
}

static void test_lying_message(void **st) {
    (void)st;
    char err[512];
    tp_group *g;
    assert_int_equal(tp_group_start(&g, 1, tp_mailbox_bytes(16, 4, 4), worker, NULL, err, sizeof err), 0);
    tp_msg m;
    memset(&m, 0, sizeof m);
    model_batch b;
    m.kind = TP_MSG_STEP;
    m.arg[0] = 16; m.arg[1] = 4; m.arg[2] = 4; m.arg[4] = 64;
    assert_int_equal(tp_batch_unpack(g, &m, &b, err, sizeof err), 0);
    assert_int_equal(b.T, 16);
    m.arg[4] = 1 << 20;                                       /* past the mailbox */
    assert_int_equal(tp_batch_unpack(g, &m, &b, err, sizeof err), -1);
    m.arg[4] = 64; m.arg[0] = 1 << 20;                        /* more tokens than it holds */
    assert_int_equal(tp_batch_unpack(g, &m, &b, err, sizeof err), -1);
    m.arg[0] = -1;
    assert_int_equal(tp_batch_unpack(g, &m, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "mailbox"));
    assert_int_equal(tp_group_stop(g, 1), 0);
}

static void test_worker_failure_reaches_rank0(void **st) {
    (void)st;
    char err[512];
    tp_group *g;
    int32_t buf[3 * 8 + 2 * 2 + 1 + 2 * 4];
    assert_int_equal(tp_group_start(&g, 3, tp_mailbox_bytes(8, 2, 4), worker, NULL, err, sizeof err), 0);
    model_batch b = make_batch(buf, 8, 2, 4, 7);
    assert_int_equal(tp_post_batch(g, &b, err, sizeof err), 0);
    assert_int_equal(tp_group_gather(g, ECHO, NULL, 10, err, sizeof err), 0);
    buf[0] = -42;                                             /* the workers' forward fails on this one */
    assert_int_equal(tp_post_batch(g, &b, err, sizeof err), 0);
    assert_int_equal(tp_group_gather(g, ECHO, NULL, 10, err, sizeof err), -1);
    assert_non_null(strstr(err, "tensor-parallel rank"));
    assert_non_null(strstr(err, "out of memory (step 1)"));
    assert_int_equal(tp_group_stop(g, 5), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_reach_every_worker),
        cmocka_unit_test(test_lying_message),
        cmocka_unit_test(test_worker_failure_reaches_rank0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
