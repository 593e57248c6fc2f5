/* moe: the buffers of a mixture-of-experts layer (k_moe in kernels.h): one
 * layer's routing and permutation, reused by every layer, and the cuBLAS
 * path's workspace.  k_moe_bytes is pure arithmetic (the memory plan uses it
 * without a GPU); k_moe_create and k_moe_free allocate and free device and
 * pinned host memory. */
#include "engine/kernels.h"
#include <stdlib.h>
#include <string.h>

/* GEMM row tiles: at least as many as the permutation can make with the
 * smallest tile (16 rows): one per 16 rows plus one partial tile per expert */
static int max_tiles(int E, int k, int max_T) { return (max_T * k + 15) / 16 + E; }

static size_t al256(size_t b) { return (b + 255) & ~(size_t)255; }

size_t k_moe_bytes(int E, int k, int max_T, int D, int Im, int impl) {
    size_t n = (size_t)max_T * k;
    size_t b = al256(n * 4) * 4                        /* topk_ids, topk_w, pair_row, row_token */
             + al256((size_t)E * 4) * 3 + al256((size_t)(E + 1) * 4)   /* counts, cursor, ntiles; offsets */
             + al256((size_t)2 * max_tiles(E, k, max_T) * 4);
    if (impl == K_MOE_GEMM_CUBLAS)
        b += al256((size_t)6 * E * sizeof(void *)) + al256(n * D * 2) + al256(n * 2 * Im * 2);
    return b;
}

#ifdef PAGESIM_HAVE_CUDA
static int dalloc(void *p, size_t bytes) {
    return cudaMalloc((void **)p, bytes ? bytes : 16) == cudaSuccess ? 0 : -1;
}

int k_moe_create(k_moe *m, int E, int k, int max_T, int D, int Im, int impl, void *cublas_handle) {
    memset(m, 0, sizeof *m);
    if (E <= 0 || E > K_MOE_MAX_EXPERTS || k <= 0 || k > K_MOE_MAX_TOPK || k > E || max_T <= 0 ||
        D <= 0 || D % 8 || Im <= 0 || Im % 8 || (impl != K_MOE_GEMM_GROUPED && impl != K_MOE_GEMM_CUBLAS) ||
        (size_t)max_T * k > (size_t)1 << 30)
        return -1;
    m->E = E; m->k = k; m->max_T = max_T; m->D = D; m->Im = Im; m->impl = impl; m->cublas = cublas_handle;
    m->max_tiles = max_tiles(E, k, max_T);
    size_t n = (size_t)max_T * k;
    if (dalloc(&m->topk_ids, n * 4) || dalloc(&m->topk_w, n * 4) || dalloc(&m->pair_row, n * 4) ||
        dalloc(&m->row_token, n * 4) || dalloc(&m->counts, (size_t)E * 4) || dalloc(&m->cursor, (size_t)E * 4) ||
        dalloc(&m->offsets, (size_t)(E + 1) * 4) || dalloc(&m->ntiles, 4) ||
        dalloc(&m->tiles, (size_t)2 * m->max_tiles * 4))
        goto fail;
    if (impl == K_MOE_GEMM_CUBLAS) {
        if (!cublas_handle || dalloc(&m->dev_ptrs, (size_t)6 * E * sizeof(void *)) || dalloc(&m->xp, n * D * 2) ||
            dalloc(&m->gu, n * 2 * Im * 2) ||
            cudaMallocHost((void **)&m->host_counts, (size_t)3 * E * 4) != cudaSuccess ||
            cudaMallocHost((void **)&m->host_ptrs, (size_t)6 * E * sizeof(void *)) != cudaSuccess)
            goto fail;
    }
    /* before the first permutation: no rows, no tiles */
    if (cudaMemset(m->ntiles, 0, 4) != cudaSuccess || cudaMemset(m->offsets, 0, (size_t)(E + 1) * 4) != cudaSuccess)
        goto fail;
    return 0;
fail:
    k_moe_free(m);
    return -1;
}

void k_moe_free(k_moe *m) {
    void *dev[] = {m->topk_ids, m->topk_w, m->pair_row, m->row_token, m->counts, m->cursor, m->offsets,
                   m->ntiles, m->tiles, m->dev_ptrs, m->xp, m->gu};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) if (dev[i]) cudaFree(dev[i]);
    if (m->host_counts) cudaFreeHost(m->host_counts);
    if (m->host_ptrs) cudaFreeHost(m->host_ptrs);
    memset(m, 0, sizeof *m);
}
#else
int k_moe_create(k_moe *m, int E, int k, int max_T, int D, int Im, int impl, void *cublas_handle) {
    (void)E; (void)k; (void)max_T; (void)D; (void)Im; (void)impl; (void)cublas_handle;
    memset(m, 0, sizeof *m);
    return -1;
}
void k_moe_free(k_moe *m) { memset(m, 0, sizeof *m); }
#endif
