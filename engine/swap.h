/* swap: preemption by swap in the engine.  The pinned host pool that holds
 * swapped-out KV blocks, and the copies between it and the GPU's KV cache
 * that the scheduler's KV_SWAP_OUT / KV_SWAP_IN decisions ask for
 * (sim/kv_cache.h: kv_copy; the block manager chooses the blocks).  A run of
 * consecutive copies (blocks src.., dst.. rising together) is one copy per
 * KV plane, or one 2D copy for all of them where the pitches allow; the
 * copies are queued on the model's stream before the step's forward pass,
 * in the scheduler's order, so a block freed by a swap-out and reused in the
 * same step is read before it is written.  The pool mirrors the cache's
 * layout: (planes, num_cpu_blocks, block_elems) against the GPU's (planes,
 * num_gpu_blocks, block_elems), planes = 2 x layers (k, v of each layer).
 * The arithmetic (runs, the pool's size) needs no GPU; the pool does.
 * Touches the memory it allocates and the cache it is given. */
#ifndef ENGINE_SWAP_H
#define ENGINE_SWAP_H
#include <stddef.h>
#include <stdint.h>
#include "engine/kernels.h"
#include "sim/kv_cache.h"
#include "sim/kv_runs.h"

/* A run of copies, as the cost model counts them (sim/kv_runs.h: kvr_next
 * finds them; the engine and the simulator's CM_SWAP_RUNS price share it). */
typedef kv_run swap_run;
/* The CPU blocks of gib GiB (2^30 bytes) of swap space, block_bytes each, as
 * vLLM and `pagesim plan` count them: floor(gib * 2^30 / block_bytes).  0,
 * or -1 with a message when gib is negative or not a number, block_bytes is
 * 0, or the count does not fit an int. */
int  swap_cpu_blocks(double gib, size_t block_bytes, int *out, char *err, size_t errlen);

typedef struct swap_geom {       /* the GPU cache's layout */
    int    planes;               /* 2 x layers */
    size_t plane_elems;          /* elements from one plane to the next: num_gpu_blocks x block_elems */
    size_t block_elems;          /* block_size x kv heads x head_dim */
    int    num_gpu_blocks;
} swap_geom;

typedef struct swap_pool swap_pool;
/* A pool of num_cpu_blocks blocks of geometry g in pinned host memory.  0, or
 * -1 with a message (the host memory cannot be pinned). */
int  swap_pool_create(swap_pool **out, const swap_geom *g, int num_cpu_blocks, char *err, size_t errlen);
/* Queues run r (KV_SWAP_OUT or KV_SWAP_IN) between the pool and kv, the GPU
 * cache (planes, num_gpu_blocks, block_elems) bf16, on stream s.  0, or -1
 * with a message naming a block out of range or the failed copy. */
int  swap_pool_copy(swap_pool *p, k_bf16 *kv, const swap_run *r, cudaStream_t s, char *err, size_t errlen);
int  swap_pool_blocks(const swap_pool *p);
size_t swap_pool_bytes(const swap_pool *p);
/* The pool's host memory (planes, num_cpu_blocks, block_elems), for tests. */
const k_bf16 *swap_pool_host(const swap_pool *p);
/* 1: copy plane by plane even where a 2D copy would do (tests both paths);
 * returns the old setting. */
int  swap_pool_plane_copies(swap_pool *p, int on);
void swap_pool_free(swap_pool *p);
#endif
