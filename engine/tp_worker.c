/* tp_worker: see tp_worker.h.  Mailbox layout: 64 bytes of rank 0's own
 * bookkeeping (the next slot), then two slots of int32 arrays
 *   ids (T) | positions (T) | slots (T) | query_start (B+1) | context_lens (B) | block_tables (B, M)
 * The message says T, B, M, all_logits and the slot's offset.  A load's
 * tp_load sits at the first slot (before any batch); the model's options
 * travel in the message's text.  Touches only the group's mailbox and
 * sockets. */
#include "engine/tp_worker.h"
#include "base/errbuf.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEAD 64

static size_t slot_bytes(int T, int B, int M) {
    size_t n = 4 * (3 * (size_t)T + 2 * (size_t)B + 1 + (size_t)B * (size_t)M);
    return (n + 63) & ~(size_t)63;
}

size_t tp_mailbox_bytes(int T, int B, int M) {
    size_t n = HEAD + 2 * slot_bytes(T, B, M);
    return n < HEAD + sizeof(tp_load) ? HEAD + sizeof(tp_load) : n;
}

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

int tp_post_copy(tp_group *g, int kind, int src, int dst, int n, char *err, size_t errlen) {
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = TP_MSG_COPY;
    m.arg[0] = src;
    m.arg[1] = dst;
    m.arg[2] = n;
    m.arg[3] = kind;
    return tp_group_post(g, &m, err, errlen);
}

int tp_post_load(tp_group *g, const tp_load *l, char *err, size_t errlen) {
    size_t n;
    unsigned char *box = tp_group_mailbox(g, &n);
    if (n < HEAD + sizeof *l) return errbuf_fail(err, errlen, "tensor parallelism: a mailbox of %zu bytes", n);
    memcpy(box + HEAD, l, sizeof *l);
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = TP_MSG_LOAD;
    return tp_group_post(g, &m, err, errlen);
}

int tp_post_create(tp_group *g, const model_opts *o, char *err, size_t errlen) {
    _Static_assert(sizeof *o <= TP_MSG_TEXT, "the model options fit one message");
    model_opts s = *o;
    s.dump_layer0 = s.dump_experts = NULL;   /* probes stay on rank 0 */
    s.profile = s.host_probe = 0;
    s.tp = NULL;
    s.lora = NULL;                           /* model_create refuses LoRA with tensor parallelism */
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = TP_MSG_CREATE;
    memcpy(m.text, &s, sizeof s);
    return tp_group_post(g, &m, err, errlen);
}

int tp_wait_ready(tp_group *g, int num_blocks, double timeout_s, char *err, size_t errlen) {
    int n = tp_group_size(g);
    int64_t *v = calloc((size_t)n, sizeof *v);
    if (!v) return errbuf_fail(err, errlen, "out of memory");
    int rc = tp_group_gather(g, TP_MSG_READY, v, timeout_s, err, errlen);
    for (int r = 1; r < n && !rc; r++)
        if (v[r] != num_blocks)
            rc = errbuf_fail(err, errlen, "tensor-parallel rank %d has %lld KV blocks, rank 0 has %d", r,
                             (long long)v[r], num_blocks);
    free(v);
    return rc;
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

/* a worker's order of things: loaded, then created, then steps */
enum { W_START, W_LOADED, W_CREATED };

static int out_of_order(tp_group *g, int kind, int state, char *err, size_t errlen) {
    static const char *const st[] = {"before loading", "before its model was built", "after its model was built"};
    return errbuf_fail(err, errlen, "tensor-parallel rank %d: message kind %d from rank 0 %s", tp_group_rank(g),
                       kind, st[state]);
}

int tp_worker_loop(tp_group *g, const tp_worker_ops *ops, void *model, char *err, size_t errlen) {
    int state = W_START;
    for (;;) {
        tp_msg m;
        model_batch b;
        model_opts o;
        int nb = 0;
        if (tp_group_recv(g, &m, err, errlen)) return -1;
        switch (m.kind) {
        case TP_MSG_QUIT:
            return 0;
        case TP_MSG_LOAD: {
            size_t n;
            const unsigned char *box = tp_group_mailbox(g, &n);
            if (state != W_START) return out_of_order(g, m.kind, state, err, errlen);
            if (n < HEAD + sizeof(tp_load)) return errbuf_fail(err, errlen, "tensor parallelism: mailbox too small");
            tp_load l;
            memcpy(&l, box + HEAD, sizeof l);
            l.dir[sizeof l.dir - 1] = 0;
            if (ops->load(model, &l, err, errlen)) return -1;
            state = W_LOADED;
            break;
        }
        case TP_MSG_CREATE: {
            if (state != W_LOADED) return out_of_order(g, m.kind, state, err, errlen);
            memcpy(&o, m.text, sizeof o);
            if (ops->create(model, &o, &nb, err, errlen)) return -1;
            tp_msg r;
            memset(&r, 0, sizeof r);
            r.kind = TP_MSG_READY;
            r.arg[0] = nb;
            if (tp_group_reply(g, &r)) return errbuf_fail(err, errlen, "tensor-parallel rank %d: rank 0 went away",
                                                          tp_group_rank(g));
            state = W_CREATED;
            break;
        }
        case TP_MSG_STEP:
            if (state != W_CREATED) return out_of_order(g, m.kind, state, err, errlen);
            if (tp_batch_unpack(g, &m, &b, err, errlen) || ops->forward(model, &b, err, errlen) ||
                ops->sync(model, err, errlen))
                return -1;
            break;
        case TP_MSG_COPY:
            if (state != W_CREATED) return out_of_order(g, m.kind, state, err, errlen);
            if (ops->copy(model, (int)m.arg[3], (int)m.arg[0], (int)m.arg[1], (int)m.arg[2], err, errlen)) return -1;
            break;
        default:
            return errbuf_fail(err, errlen, "tensor-parallel rank %d: unknown message kind %d from rank 0",
                               tp_group_rank(g), m.kind);
        }
    }
}
