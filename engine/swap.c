/* swap: see swap.h.  A run of n blocks between the GPU cache and the pool is,
 * for each of the 2L planes, n x block_elems contiguous elements on both
 * sides (block ids rise together); the planes are equally spaced on each
 * side, so one cudaMemcpy2DAsync (width n blocks, height 2L, the two plane
 * pitches) moves the run, unless a pitch is above the device's limit
 * (cudaDevAttrMaxPitch: a plane of a large cache is), and then one
 * cudaMemcpyAsync per plane does. */
#include "engine/swap.h"
#include "base/errbuf.h"
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int swap_cpu_blocks(double gib, size_t block_bytes, int *out, char *err, size_t errlen) {
    *out = 0;
    if (!(gib >= 0) || !isfinite(gib)) return errbuf_fail(err, errlen, "swap space of %g GiB", gib);
    if (block_bytes == 0) return errbuf_fail(err, errlen, "swap space: KV blocks of 0 bytes");
    double n = floor(gib * 1073741824.0 / (double)block_bytes);
    if (n > INT_MAX) return errbuf_fail(err, errlen, "swap space of %g GiB is %.0f blocks (at most %d)", gib, n, INT_MAX);
    *out = (int)n;
    return 0;
}

#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>

struct swap_pool {
    swap_geom g;
    int       nb;                /* CPU blocks */
    k_bf16   *host;              /* (planes, nb, block_elems) pinned */
    size_t    max_pitch;         /* bytes: cudaDevAttrMaxPitch */
    int       planewise;         /* copy plane by plane always (tests) */
};

int swap_pool_create(swap_pool **out, const swap_geom *g, int num_cpu_blocks, char *err, size_t errlen) {
    *out = NULL;
    if (g->planes <= 0 || g->block_elems == 0 || g->num_gpu_blocks <= 0 || num_cpu_blocks < 0 ||
        g->plane_elems < (size_t)g->num_gpu_blocks * g->block_elems)
        return errbuf_fail(err, errlen, "swap pool: bad geometry (%d planes, %d blocks of %zu elements)", g->planes,
                           g->num_gpu_blocks, g->block_elems);
    swap_pool *p = calloc(1, sizeof *p);
    if (!p) return errbuf_fail(err, errlen, "out of memory");
    p->g = *g;
    p->nb = num_cpu_blocks;
    size_t bytes = swap_pool_bytes(p);
    int dev = 0, mp = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&mp, cudaDevAttrMaxPitch, dev) != cudaSuccess)
        mp = 0;                                          /* unknown: plane by plane */
    p->max_pitch = mp > 0 ? (size_t)mp : 0;
    if (bytes && cudaHostAlloc((void **)&p->host, bytes, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();
        free(p);
        return errbuf_fail(err, errlen, "swap space: cannot pin %.2f GiB of host memory (%d blocks; lower "
                           "--swap-space)", bytes / 1073741824.0, num_cpu_blocks);
    }
    *out = p;
    return 0;
}

int swap_pool_copy(swap_pool *p, k_bf16 *kv, const swap_run *r, cudaStream_t s, char *err, size_t errlen) {
    int out = r->kind == KV_SWAP_OUT;
    int gpu0 = out ? r->src : r->dst, cpu0 = out ? r->dst : r->src;
    if ((r->kind != KV_SWAP_OUT && r->kind != KV_SWAP_IN) || r->n < 1 || gpu0 < 0 || cpu0 < 0 ||
        gpu0 + r->n > p->g.num_gpu_blocks || cpu0 + r->n > p->nb)
        return errbuf_fail(err, errlen, "swap %s of blocks %d..%d: pools of %d GPU and %d CPU blocks",
                           out ? "out" : "in", r->src, r->src + r->n - 1, p->g.num_gpu_blocks, p->nb);
    size_t be = p->g.block_elems, w = (size_t)r->n * be * 2;     /* bytes of the run in one plane */
    size_t gpitch = p->g.plane_elems * 2, cpitch = (size_t)p->nb * be * 2;
    k_bf16 *gp = kv + (size_t)gpu0 * be, *cp = p->host + (size_t)cpu0 * be;
    enum cudaMemcpyKind k = out ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice;
    cudaError_t e = cudaSuccess;
    if (!p->planewise && p->max_pitch && gpitch <= p->max_pitch && cpitch <= p->max_pitch)
        e = out ? cudaMemcpy2DAsync(cp, cpitch, gp, gpitch, w, (size_t)p->g.planes, k, s)
                : cudaMemcpy2DAsync(gp, gpitch, cp, cpitch, w, (size_t)p->g.planes, k, s);
    else
        for (int l = 0; l < p->g.planes && e == cudaSuccess; l++) {
            k_bf16 *g1 = gp + (size_t)l * p->g.plane_elems, *c1 = cp + (size_t)l * p->nb * be;
            e = out ? cudaMemcpyAsync(c1, g1, w, k, s) : cudaMemcpyAsync(g1, c1, w, k, s);
        }
    if (e != cudaSuccess)
        return errbuf_fail(err, errlen, "swap %s of %d blocks: %s", out ? "out" : "in", r->n, cudaGetErrorString(e));
    return 0;
}

const k_bf16 *swap_pool_host(const swap_pool *p) { return p ? p->host : NULL; }

void swap_pool_free(swap_pool *p) {
    if (!p) return;
    if (p->host) cudaFreeHost(p->host);
    free(p);
}
#else
struct swap_pool { swap_geom g; int nb; int planewise; };
int swap_pool_create(swap_pool **out, const swap_geom *g, int num_cpu_blocks, char *err, size_t errlen) {
    (void)g; (void)num_cpu_blocks;
    *out = NULL;
    return errbuf_fail(err, errlen, "swap: built without CUDA (no nvcc)");
}
int swap_pool_copy(swap_pool *p, k_bf16 *kv, const swap_run *r, cudaStream_t s, char *err, size_t errlen) {
    (void)p; (void)kv; (void)r; (void)s;
    return errbuf_fail(err, errlen, "swap: built without CUDA (no nvcc)");
}
const k_bf16 *swap_pool_host(const swap_pool *p) { (void)p; return NULL; }
void swap_pool_free(swap_pool *p) { (void)p; }
#endif

int swap_pool_blocks(const swap_pool *p) { return p ? p->nb : 0; }
size_t swap_pool_bytes(const swap_pool *p) {
    return p ? (size_t)p->g.planes * p->nb * p->g.block_elems * 2 : 0;
}
int swap_pool_plane_copies(swap_pool *p, int on) {
    if (!p) return 0;
    int old = p->planewise;
    p->planewise = on;
    return old;
}
