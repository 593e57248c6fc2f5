/* tp_comm: NCCL between the tensor-parallel ranks of a tp_group, one GPU per
 * rank (rank r drives device r), and the collectives the forward pass needs:
 * the bf16 all-reduce after the row-parallel o_proj and down_proj (and after
 * the vocabulary-parallel embedding), the gather of the vocabulary shards of
 * the logits to rank 0 (which samples), and a minimum over ranks (the KV
 * blocks every GPU has room for).  Every wait polls the stream, NCCL's
 * asynchronous error, the other ranks' processes (rank 0) and a timeout, so a
 * rank that fails or is killed stops the engine with a message naming it
 * instead of a hang; on such a failure the communicator is aborted.  NVLink
 * multicast (NVLS) is kept off: NCCL_NVLS_ENABLE=0 is set before NCCL starts
 * (on the shared GPU machines a program using it can take the host's GPUs
 * out of service).  Built without NCCL, every call says so. */
#ifndef ENGINE_TP_COMM_H
#define ENGINE_TP_COMM_H
#include <stddef.h>
#include "engine/kernels.h"
#include "engine/tp_group.h"

typedef struct tp_comm tp_comm;

/* GPUs this machine shows (CUDA_VISIBLE_DEVICES applies), counted in a
 * short-lived child process so that this one does not initialise CUDA
 * before tp_group_start forks.  -1 and a message when none can be counted. */
int  tp_device_count(int *n, char *err, size_t errlen);
/* 0 when tensor-parallel size n can run here: n GPUs and NCCL (size 1 too:
 * a communicator of one);
 * else -1 and a message such as "tensor-parallel size 2 needs 2 GPUs, but
 * this machine shows none (cudaGetDeviceCount: no CUDA-capable device ...)". */
int  tp_check_size(int n, char *err, size_t errlen);
/* Every rank of g, after tp_group_start: binds GPU `rank`, and joins the
 * communicator (rank 0 makes the NCCL id and sends it to the workers;
 * non-blocking initialisation, polled up to timeout_s, also the limit of
 * every later wait).  g stays the caller's. */
int  tp_comm_init(tp_comm **out, tp_group *g, double timeout_s, char *err, size_t errlen);
int  tp_comm_rank(const tp_comm *c);
int  tp_comm_size(const tp_comm *c);
/* x (n,) bf16 on this rank's GPU becomes the sum over the ranks, in place;
 * enqueued on s (the layer's stream), does not wait. */
int  tp_allreduce(tp_comm *c, k_bf16 *x, size_t n, cudaStream_t s, char *err, size_t errlen);
/* The logits of the vocabulary shards: shard (R, rows) fp32 on every rank
 * (rank r holds columns [r*rows, (r+1)*rows) of the padded vocabulary).
 * Rank 0 receives the others' into staging ((N-1) * R * rows floats) and
 * writes out (R, V): the columns side by side, padding dropped, exactly the
 * logits of one GPU's lm_head, so sampling and log-probabilities are one
 * GPU's.  The other ranks only send (out, staging unused).  N = 1 with
 * out == shard and rows == V copies nothing.  Enqueued on s. */
int  tp_gather_logits(tp_comm *c, float *out, const float *shard, float *staging, int R, int rows, int V,
                      cudaStream_t s, char *err, size_t errlen);
/* *out = the smallest v over the ranks, on every rank (waits). */
int  tp_min_int(tp_comm *c, int v, int *out, cudaStream_t s, char *err, size_t errlen);
/* Waits until s is done, polling (see above); -1 and a message naming the
 * failing rank, and the communicator aborted, on failure or timeout. */
int  tp_sync(tp_comm *c, cudaStream_t s, char *err, size_t errlen);
/* Ends this rank's part of the communicator (ncclCommAbort: a local
 * teardown, so ranks may end in any order); call after the last tp_sync. */
void tp_comm_free(tp_comm *c);
#endif
