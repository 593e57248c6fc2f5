/* Tests of what rank 0 posts to the tensor-parallel workers and their loop
 * (engine/tp_worker.h), no GPU: every worker gets what to load (the config,
 * the checkpoint path, the dummy seed) and the model options rank 0 resolved
 * (probes and pointers left out), and its READY carries its blocks, which
 * rank 0 checks; then every worker sees exactly rank 0's batches (ids,
 * positions, slots, query starts, contexts, block tables) step after step
 * through the mailbox's two slots, and its block copies, in order; a lying
 * message is refused; a message out of order, a load that fails, a worker
 * with other blocks, a forward that fails: each reaches rank 0 naming the
 * rank with the worker's message. */
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

/* a digest of what a worker was told to load */
static int64_t load_digest(const tp_load *l) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = l->c.name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (const char *p = l->dir; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ (uint64_t)l->c.hidden_size) * 1099511628211ull;
    h = (h ^ l->dummy_seed) * 1099511628211ull;
    return (int64_t)(h >> 1);
}
/* the blocks a worker answers: a digest of the options it got (rank 3 lies when asked) */
static int opts_blocks(const model_opts *o) {
    uint64_t h = 7;
    int v[] = {o->max_num_batched_tokens, o->max_num_seqs, o->max_model_len, o->block_size, o->num_gpu_blocks,
               o->max_logit_rows, o->attention, o->elementwise, o->moe_gemm, o->profile,
               o->dump_layer0 != NULL, o->dump_experts != NULL, o->tp != NULL, (int)(o->gpu_memory_utilization * 1000)};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) h = h * 1000003 + (uint64_t)(uint32_t)v[i];
    return (int)(h % 1000000);
}

static int fake_load(void *model, const tp_load *l, char *err, size_t errlen) {
    fake *f = model;
    if (!strcmp(l->dir, "/no/such/checkpoint") && tp_group_rank(f->g) == 2)
        return snprintf(err, errlen, "/no/such/checkpoint/model.safetensors: No such file"), -1;
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = ECHO;
    m.arg[0] = load_digest(l);
    return tp_group_reply(f->g, &m);
}
static int fake_create(void *model, const model_opts *o, int *num_blocks, char *err, size_t errlen) {
    (void)err; (void)errlen;
    fake *f = model;
    *num_blocks = opts_blocks(o) + (o->num_gpu_blocks == 666 && tp_group_rank(f->g) == 3);
    return 0;
}

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
static int fake_copy(void *model, int kind, int src, int dst, int n, char *err, size_t errlen) {
    (void)err; (void)errlen;
    fake *f = model;
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = ECHO;
    m.arg[0] = 1000000 * src + 1000 * n + 100 * kind + dst + f->steps;   /* dst + steps < 100 */
    return tp_group_reply(f->g, &m);
}
static int fake_sync(void *model, char *err, size_t errlen) { (void)model; (void)err; (void)errlen; return 0; }

static int worker(tp_group *g, void *ctx, char *err, size_t errlen) {
    (void)ctx;
    fake f = {g, 0};
    tp_worker_ops ops = {fake_load, fake_create, fake_forward, fake_copy, fake_sync};
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
    return (model_batch){T, B, ids, pos, slots, qs, ctx, bt, M, (int)(seed & 1), NULL};
}

/* rank 0's part of start-up: what to load, then the model options, then READY */
static model_opts test_opts(void) {
    model_opts o = {.max_num_batched_tokens = 2048, .max_num_seqs = 64, .max_model_len = 512, .block_size = 16,
                    .gpu_memory_utilization = 0.85, .max_logit_rows = 64, .attention = 1, .moe_gemm = 1,
                    .profile = 1, .dump_layer0 = "x.bin", .dump_experts = "e.bin"};
    return o;
}
static void boot(tp_group *g, int n) {
    char err[512];
    int64_t got[8];
    tp_load *l = calloc(1, sizeof *l);
    snprintf(l->c.name, sizeof l->c.name, "qwen3-30b-a3b");
    l->c.hidden_size = 2048;
    snprintf(l->dir, sizeof l->dir, "/models/Qwen3-30B-A3B");
    l->dummy_seed = 42;
    assert_int_equal(tp_post_load(g, l, err, sizeof err), 0);
    assert_int_equal(tp_group_gather(g, ECHO, got, 10, err, sizeof err), 0);
    for (int r = 1; r < n; r++) assert_int_equal(got[r], load_digest(l));
    free(l);
    model_opts o = test_opts(), sent = o;
    assert_int_equal(tp_post_create(g, &o, err, sizeof err), 0);
    sent.profile = 0;                         /* what a worker must see: no probes, no pointers */
    sent.dump_layer0 = sent.dump_experts = NULL;
    if (tp_wait_ready(g, opts_blocks(&sent), 10, err, sizeof err)) fail_msg("%s", err);
}

static void test_start_up(void **st) {
    (void)st;
    char err[512];
    tp_group *g;
    assert_int_equal(tp_group_start(&g, 4, tp_mailbox_bytes(64, 4, 4), worker, NULL, err, sizeof err), 0);
    boot(g, 4);
    assert_int_equal(tp_group_stop(g, 5), 0);
    /* a worker whose blocks differ from rank 0's is named */
    assert_int_equal(tp_group_start(&g, 4, tp_mailbox_bytes(64, 4, 4), worker, NULL, err, sizeof err), 0);
    tp_load l;
    memset(&l, 0, sizeof l);
    assert_int_equal(tp_post_load(g, &l, err, sizeof err), 0);
    assert_int_equal(tp_group_gather(g, ECHO, NULL, 10, err, sizeof err), 0);
    model_opts o = test_opts();
    o.num_gpu_blocks = 666;
    assert_int_equal(tp_post_create(g, &o, err, sizeof err), 0);
    o.profile = 0; o.dump_layer0 = o.dump_experts = NULL;
    assert_int_equal(tp_wait_ready(g, opts_blocks(&o), 10, err, sizeof err), -1);
    fprintf(stderr, "  %s\n", err);
    assert_non_null(strstr(err, "tensor-parallel rank 3 has"));
    tp_group_stop(g, 5);
}

static void test_load_failure_and_order(void **st) {
    (void)st;
    char err[512];
    tp_group *g;
    /* rank 2 cannot read the checkpoint: rank 0 hears it, with the worker's words */
    assert_int_equal(tp_group_start(&g, 3, tp_mailbox_bytes(64, 4, 4), worker, NULL, err, sizeof err), 0);
    tp_load l;
    memset(&l, 0, sizeof l);
    snprintf(l.dir, sizeof l.dir, "/no/such/checkpoint");
    assert_int_equal(tp_post_load(g, &l, err, sizeof err), 0);
    assert_int_equal(tp_group_gather(g, ECHO, NULL, 10, err, sizeof err), -1);
    fprintf(stderr, "  %s\n", err);
    assert_non_null(strstr(err, "tensor-parallel rank 2"));
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(tp_group_stop(g, 5), -1);
    /* a step before the model exists is refused by every worker */
    int32_t buf[3 * 8 + 2 * 2 + 1 + 2 * 4];
    assert_int_equal(tp_group_start(&g, 2, tp_mailbox_bytes(8, 2, 4), worker, NULL, err, sizeof err), 0);
    model_batch b = make_batch(buf, 8, 2, 4, 3);
    assert_int_equal(tp_post_batch(g, &b, err, sizeof err), 0);
    assert_int_equal(tp_group_gather(g, ECHO, NULL, 10, err, sizeof err), -1);
    fprintf(stderr, "  %s\n", err);
    assert_non_null(strstr(err, "before loading"));
    assert_int_equal(tp_group_stop(g, 5), -1);
}

static void test_batches_reach_every_worker(void **st) {
    (void)st;
    char err[512];
    enum { TMAX = 2048, BMAX = 64, M = 32 };
    tp_group *g;
    assert_int_equal(tp_group_start(&g, 4, tp_mailbox_bytes(TMAX, BMAX, M), worker, NULL, err, sizeof err), 0);
    boot(g, 4);
    int32_t *buf = malloc(sizeof(int32_t) * (3 * TMAX + 2 * BMAX + 1 + BMAX * M));
    int64_t got[4];
    for (int step = 0; step < 40; step++) {
        int T = step % 5 == 0 ? TMAX : 1 + (step * 97) % TMAX, B = 1 + step % BMAX;
        if (B > T) B = T;
        model_batch b = make_batch(buf, T, B, M - step % 3, (unsigned)step);
        if (step % 7 == 3) {
            /* a copy-on-write or a swap run of n blocks: every rank gets kind, src, dst and n */
            int kind = step % 3, n = 1 + step % 4;
            assert_int_equal(tp_post_copy(g, kind, step, step + 1, n, err, sizeof err), 0);
            assert_int_equal(tp_group_gather(g, ECHO, got, 10, err, sizeof err), 0);
            for (int r = 1; r < 4; r++)
                assert_int_equal(got[r], 1000000 * step + 1000 * n + 100 * kind + step + 1 + step);
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
    boot(g, 3);
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
        cmocka_unit_test(test_start_up),
        cmocka_unit_test(test_load_failure_and_order),
        cmocka_unit_test(test_batches_reach_every_worker),
        cmocka_unit_test(test_lying_message),
        cmocka_unit_test(test_worker_failure_reaches_rank0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
