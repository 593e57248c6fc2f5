/* cuda_graph: CUDA graphs of decode-only steps, one per batch-size bucket,
 * as vLLM captures them: buckets 1, 2, 4, 8, then multiples of 8 up to the
 * largest batch a graph may take (that batch itself the last bucket); a
 * batch of B sequences runs the graph of the smallest bucket P >= B, padded
 * to P rows.  A padding row is one token (id 0, position 0) whose KV is not
 * written (slot -1), attending to one key (context 1) of block 0, sampled
 * greedily: every kernel computes rows apart, so the B real rows are those an
 * eager step of the padded batch gives.  The graph reads its inputs from
 * device buffers fixed at capture, written with one copy before each launch
 * (engine/graph_runner.h runs a model's steps so).  This file holds the
 * bucket arithmetic and the padding (plain C, no GPU) and the graph objects
 * (capture, launch, free: the CUDA runtime).
 * Touches only the memory it is given. */
#ifndef ENGINE_CUDA_GRAPH_H
#define ENGINE_CUDA_GRAPH_H
#include <stddef.h>
#include <stdint.h>
#include "engine/kernels.h"
#include "engine/model.h"

#define CG_MAX_BUCKETS 4096

/* The buckets for batches of up to cap sequences: 1, 2, 4, 8, 16, 24, ...
 * (multiples of 8) up to cap, and cap itself; those below min left out and
 * min (at most cap) the first, so that every batch below it pads to it
 * (min 1: vLLM's buckets; min = cap: one bucket, every decode step the same
 * shape, so a row never depends on how many sequences run).  Writes them
 * ascending into sizes (room for n) and returns their number, 0 when cap < 1
 * or n is too small.  Can't fail otherwise. */
int  cg_buckets(int cap, int min, int *sizes, int n);
/* The index of the smallest bucket >= B, or -1 when B < 1 or above the last. */
int  cg_bucket(const int *sizes, int n, int B);
/* Why model options o leave graphs off, or NULL when they may be captured:
 * eager asked for (o->cuda_graphs < 0: --enforce-eager; 0, the default, and 1
 * are on, as vLLM's), tensor parallelism (NCCL
 * inside a capture is allowed, but unmeasured here), the per-step probes
 * (profile, dumps: they record events and copy between the kernels), or the
 * experts' cuBLAS GEMMs (their sizes go to the host each step). */
const char *cg_off_reason(const model_opts *o);

/* Host arrays of a padded batch (grown as needed). */
typedef struct cg_pad_buf {
    int32_t *ids, *pos, *slots;      /* (cap,) */
    int32_t *qs, *ctx;               /* (cap+1,), (cap,) */
    int32_t *tables;                 /* (cap, width) */
    int cap, width;
} cg_pad_buf;
/* b (a decode-only batch: T == B, or NULL for none) padded to P >= B rows,
 * its block tables written at width W >= b's (zeros past its own), into buf;
 * *out points there (all_logits as b's).  0, or -1 with a message (not a
 * decode-only batch, P or W too small, memory). */
int  cg_pad_batch(const model_batch *b, int P, int W, cg_pad_buf *buf, model_batch *out, char *err, size_t errlen);
void cg_pad_buf_free(cg_pad_buf *buf);
/* out (P,) = in (B,) then greedy rows (temperature 0, top_k 0, top_p 1);
 * in may be NULL (every row greedy). */
void cg_pad_params(const k_sample_params *in, int B, int P, k_sample_params *out);

/* The graphs: one executable graph per bucket, captured on demand. */
typedef struct cg_set cg_set;
/* Queues the GPU work of a decode step of P rows on stream s: what a graph
 * of bucket P records and replays.  0, or -1 with a message. */
typedef int (*cg_body_fn)(void *ctx, int P, cudaStream_t s, char *err, size_t errlen);
/* An empty set for the n buckets sizes (copied).  0, or -1 (memory). */
int  cg_create(cg_set **out, const int *sizes, int n, char *err, size_t errlen);
/* Captures bucket i: body once eagerly (its first launches set kernel
 * attributes and library state: nothing of that kind may happen inside a
 * capture), a wait, then body again inside a capture of s, instantiated.
 * The inputs the body reads must be in place for the eager run.  0, or -1
 * with a message (a capture that failed leaves the bucket empty). */
int  cg_capture(cg_set *g, int i, cudaStream_t s, cg_body_fn body, void *ctx, char *err, size_t errlen);
/* Every bucket of g: prep(ctx, P), then cg_capture.  *bytes: the device
 * memory the graphs took (free memory before and after).  0, or -1. */
typedef int (*cg_prepare_fn)(void *ctx, int P, char *err, size_t errlen);
int  cg_capture_all(cg_set *g, cudaStream_t s, cg_prepare_fn prep, cg_body_fn body, void *ctx, size_t *bytes,
                    char *err, size_t errlen);
/* Whether bucket i holds a graph. */
int  cg_ready(const cg_set *g, int i);
/* Launches bucket i's graph on s (asynchronous).  0, or -1 with a message. */
int  cg_launch(cg_set *g, int i, cudaStream_t s, char *err, size_t errlen);
/* The bucket sizes (*n of them). */
const int *cg_sizes(const cg_set *g, int *n);
/* Launches so far, of each bucket when i >= 0, of all when i < 0. */
long cg_launches(const cg_set *g, int i);
void cg_free(cg_set *g);
#endif
