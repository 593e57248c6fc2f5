/* tp_engine: tensor parallelism for the engine's front ends, put together.
 * tp_engine_start forks one worker process per extra GPU (engine/tp_group.h)
 * and joins NCCL (engine/tp_comm.h); tp_engine_load has every rank load its
 * own shard of the checkpoint (or of dummy weights) at once; rank 0 then
 * puts tp_engine_rank() in model_opts.tp, and its model_create has the
 * workers build their models with the same options, and its model_forward
 * posts each step to them (engine/tp_worker.h), so that the engine loop and
 * every other caller of the model run sharded without a change.  A worker
 * that fails (out of memory, a bad shard, a NCCL error, a kill) stops rank 0
 * with a message naming it; tp_engine_stop ends the workers in every case.
 * Size 1 is a communicator of one and no worker: the NCCL path of one GPU,
 * bit-identical to the engine without it.  Touches: fork, the GPUs, NCCL and
 * the checkpoint files.  Never prints. */
#ifndef ENGINE_TP_ENGINE_H
#define ENGINE_TP_ENGINE_H
#include <stddef.h>
#include <stdint.h>
#include "engine/model.h"
#include "engine/tp_comm.h"
#include "engine/tp_group.h"
#include "engine/tp_shard.h"
#include "engine/weights.h"

struct tp_rank {                 /* what a model needs of tensor parallelism on its rank (model_opts.tp) */
    tp_group *group;             /* the processes: rank 0 posts each step to the others */
    tp_comm  *comm;              /* NCCL */
    tp_plan   plan;              /* this rank's shard */
};

typedef struct tp_engine_args {
    int        size;             /* ranks = GPUs (GPU r for rank r) */
    model_opts model;            /* the batching limits (0: the model's defaults) that size the
                                  * step mailbox; model_create refuses larger ones later */
    double     timeout_s;        /* the longest wait for another rank (0: 600 s; it covers the
                                  * workers' loading while rank 0 waits in the first collective) */
} tp_engine_args;

typedef struct tp_engine tp_engine;

/* Forks the workers and joins NCCL as rank 0.  Call it before anything in
 * this process initialises CUDA or starts a thread.  -1 and a message (the
 * group's or NCCL's, naming the rank) on failure, nothing left running. */
int  tp_engine_start(tp_engine **out, const tp_engine_args *a, char *err, size_t errlen);
int  tp_engine_size(const tp_engine *t);    /* 1 for t NULL */
/* Every rank loads its shard of c: the checkpoint in dir, or dummy weights
 * from dummy_seed when dir is NULL; rank 0's lands in *w (w_load_shard /
 * w_dummy_shard), the workers' stay with them.  -1 when c does not split
 * over the ranks or rank 0's load fails (a worker's failure comes at the
 * first collective, model_create's).  t NULL: one GPU, w_load / w_dummy. */
int  tp_engine_load(tp_engine *t, const mc_config *c, const char *dir, uint64_t dummy_seed, w_weights *w,
                    char *err, size_t errlen);
/* What model_opts.tp takes on rank 0 (after tp_engine_load); NULL for t NULL. */
const tp_rank *tp_engine_rank(const tp_engine *t);
/* One line on how rank 0's shard splits c (heads, KV heads, MLP or expert
 * width, vocabulary rows), for the front ends' memory log. */
void tp_engine_describe(const tp_engine *t, const mc_config *c, char *buf, size_t n);
/* After the model is freed (eng_free, model_free): tells the workers to
 * quit, kills those that do not (stuck in a collective with a failed rank),
 * ends NCCL and frees t.  0 when every worker ended well.  NULL is fine. */
int  tp_engine_stop(tp_engine *t);
#endif
