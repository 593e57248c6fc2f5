/* tp_worker: see tp_worker.h.  Mailbox layout: 64 bytes of rank 0's own
 * bookkeeping (the next slot), then two slots of int32 arrays
 *   ids (T) | positions (T) | slots (T) | query_start (B+1) | context_lens (B) | block_tables (B, M)
 * The message says T, B, M, all_logits and the slot's offset.  Touches only
 * the group's mailbox and sockets. */
#include "engine/tp_worker.h"
#include "base/errbuf.h"
#include <stdint.h>
#include <string.h>

#define HEAD 64

static size_t slot_bytes(int T, int B, int M) {
    size_t n = 4 * (3 * (size_t)T + 2 * (size_t)B + 1 + (size_t)B * (size_t)M);
    return (n + 63) & ~(size_t)63;
}

size_t tp_mailbox_bytes(int T, int B, int M) { return HEAD + 2 * slot_bytes(T, B, M); }

int tp_post_batch(tp_group *g, const model_batch *b, char *err, size_t errlen) {
    size_t n, need = slot_bytes(b->T, b->B, b->max_blocks_per_seq);
    unsigned char *box = tp_group_mailbox(g, &n);
    if (b->T <= 0 || b->B <= 0 || b->max_blocks_per_seq <= 0 || HEAD + 2 * need > n)
        return errbuf_fail(err, errlen, "tensor parallelism: a batch of %d tokens, %d sequences x %d blocks needs "
                           "%zu mailbox bytes, there are %zu", b->T, b->B, b->max_blocks_per_seq, HEAD + 2 * need, n);
    int64_t *next = (int64_t *)box;          /* rank 0's: which slot is written next */
    size_t off = HEAD + (size_t)(*next & 1) * ((n - HEAD) / 2);
    *next += 1;
    int32_t *p = (int32_t *)(box + off);
    size_t T = (size_t)b->T, B = (size_t)b->B;
    memcpy(p, b->input_ids, 4 * T);
    memcpy(p + T, b->positions, 4 * T);
    memcpy(p + 2 * T, b->slot_mapping, 4 * T);
    memcpy(p + 3 * T, b->query_start, 4 * (B + 1));
    memcpy(p + 3 * T + B + 1, b->context_lens, 4 * B);
    memcpy(p + 3 * T + 2 * B + 1, b->block_tables, 4 * B * (size_t)b->max_blocks_per_seq);
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = TP_MSG_STEP;
    m.arg[0] = b->T;
    m.arg[1] = b->B;
    m.arg[2] = b->max_blocks_per_seq;
    m.arg[3] = b->all_logits;
    m.arg[4] = (int64_t)off;
    return tp_group_post(g, &m, err, errlen);
}

int tp_post_copy(tp_group *g, int src, int dst, char *err, size_t errlen) {
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = TP_MSG_COPY;
    m.arg[0] = src;
    m.arg[1] = dst;
    return tp_group_post(g, &m, err, errlen);
}

int tp_batch_unpack(tp_group *g, const tp_msg *m, model_batch *b, char *err, size_t errlen) {
    size_t n;
    unsigned char *box = tp_group_mailbox(g, &n);
    int64_t T = m->arg[0], B = m->arg[1], M = m->arg[2], off = m->arg[4];
    if (m->kind != TP_MSG_STEP || T <= 0 || B <= 0 || M <= 0 || T > (1 << 24) || B > (1 << 24) || M > (1 << 24) ||
        off < HEAD || off % 4 || (size_t)off + slot_bytes((int)T, (int)B, (int)M) > n)
        return errbuf_fail(err, errlen, "tensor-parallel rank %d: a step message that does not fit the mailbox "
                           "(T %lld, B %lld, M %lld at %lld of %zu)", tp_group_rank(g), (long long)T, (long long)B,
                           (long long)M, (long long)off, n);
    const int32_t *p = (const int32_t *)(box + off);
    memset(b, 0, sizeof *b);
    b->T = (int)T;
    b->B = (int)B;
    b->input_ids = p;
    b->positions = p + T;
    b->slot_mapping = p + 2 * T;
    b->query_start = p + 3 * T;
    b->context_lens = p + 3 * T + B + 1;
    b->block_tables = p + 3 * T + 2 * B + 1;
    b->max_blocks_per_seq = (int)M;
    b->all_logits = (int)m->arg[3];
    return 0;
}

int tp_worker_loop(tp_group *g, const tp_worker_ops *ops, void *model, char *err, size_t errlen) {
    for (;;) {
        tp_msg m;
        model_batch b;
        if (tp_group_recv(g, &m, err, errlen)) return -1;
        switch (m.kind) {
        case TP_MSG_QUIT:
            return 0;
        case TP_MSG_STEP:
            if (tp_batch_unpack(g, &m, &b, err, errlen) || ops->forward(model, &b, err, errlen) ||
                ops->sync(model, err, errlen))
                return -1;
            break;
        case TP_MSG_COPY:
            if (ops->copy(model, (int)m.arg[0], (int)m.arg[1], err, errlen)) return -1;
            break;
        default:
            return errbuf_fail(err, errlen, "tensor-parallel rank %d: unknown message kind %d from rank 0",
                               tp_group_rank(g), m.kind);
        }
    }
}
