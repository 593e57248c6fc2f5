/* tp_worker: what rank 0 tells the other tensor-parallel ranks, and the loop
 * those ranks run.  First what to load (the model's config and checkpoint,
 * or dummy weights: each rank loads its own shard) and the model's options
 * (each rank builds its model, with the same memory-profile step, and
 * answers READY with its KV blocks).  Then rank 0 alone schedules (sim/'s
 * scheduler and block manager); before each forward it posts the step's
 * batch (model_batch: token ids, positions, KV slots, block tables, packed
 * into the group's shared mailbox), and before a copy-on-write the block
 * copy, so that every rank runs the same step over its shard of the KV cache
 * under the same block tables (and swaps them to its host pool and back).
 * The model's calls come as function pointers
 * (tp_worker_ops), so this file knows the protocol but not how the model
 * runs.  No GPU here. */
#ifndef ENGINE_TP_WORKER_H
#define ENGINE_TP_WORKER_H
#include <stddef.h>
#include "engine/model.h"
#include "engine/tp_group.h"

enum { TP_MSG_STEP = TP_MSG_USER, TP_MSG_COPY, TP_MSG_LOAD, TP_MSG_CREATE };

typedef struct tp_load {         /* what every rank loads (its own shard of it) */
    mc_config c;                 /* the whole model's config */
    char      dir[4096];         /* the checkpoint directory; "" = dummy weights */
    uint64_t  dummy_seed;
} tp_load;

/* Mailbox bytes for batches of up to T tokens, B sequences and block tables
 * of max_blocks entries (two slots: rank 0 writes one while a slow worker
 * may still be reading the other). */
size_t tp_mailbox_bytes(int T, int B, int max_blocks);
/* Rank 0: packs b into the mailbox and posts TP_MSG_STEP.  -1 and a message
 * when the batch does not fit or a worker is gone. */
int  tp_post_batch(tp_group *g, const model_batch *b, char *err, size_t errlen);
/* Rank 0: posts a copy of n KV blocks src.. to dst.. (every layer): kind
 * KV_COPY_GPU (copy-on-write) or a swap to / from the host pool
 * (KV_SWAP_OUT, KV_SWAP_IN: sim/kv_cache.h), each rank its own shard. */
int  tp_post_copy(tp_group *g, int kind, int src, int dst, int n, char *err, size_t errlen);
/* Rank 0: posts what to load (through the mailbox's first slot: call it
 * before the first batch). */
int  tp_post_load(tp_group *g, const tp_load *l, char *err, size_t errlen);
/* Rank 0: posts the model's options (resolved, as rank 0's model_create
 * uses them; pointers are not sent: no probes on the workers). */
int  tp_post_create(tp_group *g, const model_opts *o, char *err, size_t errlen);
/* Rank 0: waits for every worker's READY (its model built) and checks that
 * each has num_blocks KV blocks as rank 0 has.  -1 and a message naming the
 * rank on a failure, a difference or silence for timeout_s. */
int  tp_wait_ready(tp_group *g, int num_blocks, double timeout_s, char *err, size_t errlen);
/* Worker: the batch of a TP_MSG_STEP message, its arrays pointing into the
 * mailbox (valid until the next message).  -1 when the message lies. */
int  tp_batch_unpack(tp_group *g, const tp_msg *m, model_batch *b, char *err, size_t errlen);

typedef struct tp_worker_ops {   /* what a worker does with its model */
    /* loads this rank's shard of l (once, before create) */
    int (*load)(void *model, const tp_load *l, char *err, size_t errlen);
    /* builds the model with rank 0's options (its collectives included): *num_blocks its KV blocks */
    int (*create)(void *model, const model_opts *o, int *num_blocks, char *err, size_t errlen);
    /* the step on this rank's shards, its part of every collective included */
    int (*forward)(void *model, const model_batch *b, char *err, size_t errlen);
    /* n blocks src.. to dst.. of kind (tp_post_copy) */
    int (*copy)(void *model, int kind, int src, int dst, int n, char *err, size_t errlen);
    /* waits for the step (tp_sync: an error or a timeout ends the worker) */
    int (*sync)(void *model, char *err, size_t errlen);
} tp_worker_ops;
/* Worker: runs rank 0's messages (load, create and READY, then steps and
 * copies) until TP_MSG_QUIT (0) or a failure (-1 and a message, which
 * tp_group passes to rank 0); a message out of order is a failure. */
int  tp_worker_loop(tp_group *g, const tp_worker_ops *ops, void *model, char *err, size_t errlen);
#endif
