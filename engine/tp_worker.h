/* tp_worker: what rank 0 tells the other tensor-parallel ranks, and the loop
 * those ranks run.  Rank 0 alone schedules (sim/'s scheduler and block
 * manager); before each forward it posts the step's batch (model_batch:
 * token ids, positions, KV slots, block tables, packed into the group's
 * shared mailbox), and before a copy-on-write the block copy, so that every
 * rank runs the same step over its shard of the KV cache under the same block
 * tables.  The model's calls come as function pointers (tp_worker_ops), so
 * this file knows the batch but not how the model runs.  No GPU here. */
#ifndef ENGINE_TP_WORKER_H
#define ENGINE_TP_WORKER_H
#include <stddef.h>
#include "engine/model.h"
#include "engine/tp_group.h"

enum { TP_MSG_STEP = TP_MSG_USER, TP_MSG_COPY };

/* Mailbox bytes for batches of up to T tokens, B sequences and block tables
 * of max_blocks entries (two slots: rank 0 writes one while a slow worker
 * may still be reading the other). */
size_t tp_mailbox_bytes(int T, int B, int max_blocks);
/* Rank 0: packs b into the mailbox and posts TP_MSG_STEP.  -1 and a message
 * when the batch does not fit or a worker is gone. */
int  tp_post_batch(tp_group *g, const model_batch *b, char *err, size_t errlen);
/* Rank 0: posts a copy of KV block src to dst (every layer). */
int  tp_post_copy(tp_group *g, int src, int dst, char *err, size_t errlen);
/* Worker: the batch of a TP_MSG_STEP message, its arrays pointing into the
 * mailbox (valid until the next message).  -1 when the message lies. */
int  tp_batch_unpack(tp_group *g, const tp_msg *m, model_batch *b, char *err, size_t errlen);

typedef struct tp_worker_ops {   /* what a worker does with its model */
    /* the step on this rank's shards, its part of every collective included */
    int (*forward)(void *model, const model_batch *b, char *err, size_t errlen);
    int (*copy)(void *model, int src, int dst, char *err, size_t errlen);
    /* waits for the step (tp_sync: an error or a timeout ends the worker) */
    int (*sync)(void *model, char *err, size_t errlen);
} tp_worker_ops;
/* Worker: runs rank 0's messages until TP_MSG_QUIT (0) or a failure (-1 and
 * a message, which tp_group passes to rank 0). */
int  tp_worker_loop(tp_group *g, const tp_worker_ops *ops, void *model, char *err, size_t errlen);
#endif
