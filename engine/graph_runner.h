/* graph_runner: runs a model's decode-only steps through CUDA graphs (as
 * vLLM's CUDAGraphRunner): a graph per batch bucket (engine/cuda_graph.h),
 * each recording the model's forward over a padded batch of P rows, then
 * the sampling of every row and the copy of the tokens to pinned host
 * memory.  A step pads its batch, packs it and its rows' sampling
 * parameters into the model's staging buffers (the parameters at
 * gr_params_offset), copies them to the GPU in one copy and launches the
 * graph.  The model lends its buffers and three functions (gr_model); the
 * runner owns the graphs, the padded batch and the tokens' pinned buffer.
 * Uses the GPU; never prints. */
#ifndef ENGINE_GRAPH_RUNNER_H
#define ENGINE_GRAPH_RUNNER_H
#include <stddef.h>
#include <stdint.h>
#include "engine/cuda_graph.h"
#include "engine/model.h"

struct mprobe;                       /* engine/model_probe.h */

typedef struct gr_model {            /* what a model lends its graphs */
    void *ctx;
    cudaStream_t s;
    int32_t *dints, *hints;          /* device / pinned host staging: a packed batch, then its params */
    int32_t *dtokens;                /* (cap,) device: the sampled tokens */
    const float *logits;             /* (cap, V) device: what forward leaves */
    int V;
    int width;                       /* the block tables' width (max_blocks_per_seq) */
    struct mprobe *const *probe;     /* where the model keeps its probe (host-time marks, model_probe.h) */
    /* b checked as an eager step checks it: 0, or -1 with a message */
    int (*check)(void *ctx, const model_batch *b, char *err, size_t errlen);
    /* b packed into h (pinned) as the forward lays a batch out on the GPU: the ints written */
    size_t (*pack)(void *ctx, const model_batch *b, int32_t *h);
    /* queues the forward of the packed decode batch of P rows now on the GPU
     * (attention sized for any context up to max_model_len): logits (P, V) */
    int (*forward)(void *ctx, int P, char *err, size_t errlen);
    /* the pinned staging buffer: done 0 waits until the last copy from it
     * has run (before hints is rewritten), done 1 marks a new copy queued.
     * 0, or -1 (the stream failed) */
    int (*staging)(void *ctx, int done);
} gr_model;

typedef struct gr_runner gr_runner;

/* Bytes of a packed decode batch of P rows with tables W wide (T = B = R =
 * P: 6P + 1 + P W ints), rounded up to 64: where its parameters start. */
size_t gr_params_offset(int P, int W);
/* Ints of a model's staging buffers (device and pinned host) for batches of
 * up to T tokens, B sequences, tables W wide and R logits rows (an eager
 * step: 3T + 2B + 1 + B W + R) and graphs of up to cap rows (0: none; the
 * largest bucket's packed batch, then its parameters): the larger. */
size_t gr_staging_ints(int T, int B, int W, int R, int cap);
/* A runner for batches of up to cap sequences (buckets cg_buckets(cap,
 * min)), nothing captured yet.  0, or -1 with a message. */
int  gr_create(gr_runner **out, const gr_model *m, int cap, int min, char *err, size_t errlen);
/* What capturing every bucket will take on the GPU (bytes), measured on four
 * captures of the largest, for the memory plan: call it while the forward's
 * buffers are scratch ones (the graphs are dropped).  0, or -1. */
int  gr_estimate(gr_runner *r, size_t *bytes, char *err, size_t errlen);
/* Captures every bucket over the buffers now in place (their addresses are
 * recorded: they must not move); *bytes: what the graphs took.  0, or -1. */
int  gr_capture(gr_runner *r, size_t *bytes, char *err, size_t errlen);
/* The bucket that runs b (decode-only, at most cap sequences, graphs on), or -1. */
int  gr_bucket(const gr_runner *r, const model_batch *b);
/* A step of b through bucket i: params (B,) host or NULL (greedy); with
 * tokens (B,) host, waits and returns the sampled tokens there.  The logits
 * of b's rows are left in the model's logits buffer.  0, or -1. */
int  gr_step(gr_runner *r, int i, const model_batch *b, const k_sample_params *params, int32_t *tokens,
             char *err, size_t errlen);
/* Graphs on (1, once captured) or off (0: every step eager); the old setting. */
int  gr_use(gr_runner *r, int on);
const cg_set *gr_graphs(const gr_runner *r);
void gr_free(gr_runner *r);
#endif
