/* cuda_graph: see cuda_graph.h.  The bucket arithmetic and the padding are
 * plain C (tests/test_cuda_graph.c runs them without a GPU); the graph
 * objects use the CUDA runtime's stream capture (cudaStreamBeginCapture,
 * cudaGraphInstantiate, cudaGraphLaunch), and without CUDA every entry point
 * of those says so. */
#include "engine/cuda_graph.h"
#include "base/errbuf.h"
#include <stdlib.h>
#include <string.h>

int cg_buckets(int cap, int min, int *sizes, int n) {
    int k = 0;
    if (cap < 1) return 0;
    if (min < 1) min = 1;
    if (min > cap) min = cap;
    if (n < 1) return 0;
    sizes[k++] = min;                                    /* the first: every smaller batch pads to it */
    for (int b = 1; b < cap; b = b < 8 ? 2 * b : b + 8) {   /* 1, 2, 4, then 8, 16, ... below cap */
        if (b <= min) continue;
        if (k == n) return 0;
        sizes[k++] = b;
    }
    if (cap > min) {
        if (k == n) return 0;
        sizes[k++] = cap;                                /* and cap: every batch up to it has a graph */
    }
    return k;
}

int cg_bucket(const int *sizes, int n, int B) {
    if (B < 1 || n < 1 || B > sizes[n - 1]) return -1;
    int lo = 0, hi = n - 1;                              /* the first size >= B */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sizes[mid] >= B) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

const char *cg_off_reason(const model_opts *o) {
    if (o->cuda_graphs < 0) return "--enforce-eager";
    if (o->tp) return "tensor parallelism (not measured with graphs)";
    if (o->profile || o->dump_layer0 || o->dump_experts) return "per-step probes (profile, dumps)";
    if (o->moe_gemm == K_MOE_GEMM_CUBLAS) return "the experts' cuBLAS GEMMs (sizes read on the host)";
    if (o->lora) return "LoRA adapters (a step's slots are chosen on the host)";
    return NULL;
}

void cg_pad_buf_free(cg_pad_buf *buf) {
    free(buf->ids); free(buf->qs); free(buf->tables);
    memset(buf, 0, sizeof *buf);
}

static int pad_grow(cg_pad_buf *buf, int P, int W) {
    if (P <= buf->cap && W == buf->width) return 0;
    int cap = P > buf->cap ? P : buf->cap;
    cg_pad_buf_free(buf);
    buf->ids = malloc(sizeof(int32_t) * 3 * (size_t)cap);
    buf->qs = malloc(sizeof(int32_t) * (2 * (size_t)cap + 1));
    buf->tables = malloc(sizeof(int32_t) * (size_t)cap * W);
    if (!buf->ids || !buf->qs || !buf->tables) { cg_pad_buf_free(buf); return -1; }
    buf->pos = buf->ids + cap; buf->slots = buf->pos + cap;
    buf->ctx = buf->qs + cap + 1;
    buf->cap = cap; buf->width = W;
    return 0;
}

int cg_pad_batch(const model_batch *b, int P, int W, cg_pad_buf *buf, model_batch *out, char *err, size_t errlen) {
    int B = b ? b->B : 0, bw = b ? b->max_blocks_per_seq : 0;
    if (b && (b->T != b->B || b->query_start[0] != 0 || b->query_start[B] != B))
        return errbuf_fail(err, errlen, "graph: a batch of %d tokens in %d sequences is not decode-only", b->T, B);
    if (P < B || P < 1 || W < 1 || W < bw)
        return errbuf_fail(err, errlen, "graph: %d sequences padded to %d rows, tables %d wide to %d", B, P, bw, W);
    if (pad_grow(buf, P, W)) return errbuf_fail(err, errlen, "out of memory");
    if (B > 0) {
        memcpy(buf->ids, b->input_ids, sizeof(int32_t) * (size_t)B);
        memcpy(buf->pos, b->positions, sizeof(int32_t) * (size_t)B);
        memcpy(buf->slots, b->slot_mapping, sizeof(int32_t) * (size_t)B);
        memcpy(buf->ctx, b->context_lens, sizeof(int32_t) * (size_t)B);
    }
    for (int i = B; i < P; i++) { buf->ids[i] = 0; buf->pos[i] = 0; buf->slots[i] = -1; buf->ctx[i] = 1; }
    for (int i = 0; i <= P; i++) buf->qs[i] = i;
    memset(buf->tables, 0, sizeof(int32_t) * (size_t)P * W);
    for (int i = 0; i < B; i++)
        memcpy(buf->tables + (size_t)i * W, b->block_tables + (size_t)i * bw, sizeof(int32_t) * (size_t)bw);
    *out = (model_batch){P, P, buf->ids, buf->pos, buf->slots, buf->qs, buf->ctx, buf->tables, W,
                         b ? b->all_logits : 0, NULL};   /* graphs run without LoRA (cg_off_reason) */
    return 0;
}

void cg_pad_params(const k_sample_params *in, int B, int P, k_sample_params *out) {
    for (int i = 0; i < P; i++)
        out[i] = in && i < B ? in[i] : (k_sample_params){0.0f, 0, 1.0f, 0, 0};
}

#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>

struct cg_set {
    int n;
    int *sizes;                      /* (n,) */
    cudaGraphExec_t *exec;           /* (n,) NULL until captured */
    long *launches;                  /* (n,) */
};

int cg_create(cg_set **out, const int *sizes, int n, char *err, size_t errlen) {
    *out = NULL;
    cg_set *g = calloc(1, sizeof *g);
    if (!g || n < 1 || !(g->sizes = malloc(sizeof *g->sizes * (size_t)n)) ||
        !(g->exec = calloc((size_t)n, sizeof *g->exec)) || !(g->launches = calloc((size_t)n, sizeof *g->launches))) {
        cg_free(g);
        return errbuf_fail(err, errlen, n < 1 ? "graph: no bucket" : "out of memory");
    }
    memcpy(g->sizes, sizes, sizeof *g->sizes * (size_t)n);
    g->n = n;
    *out = g;
    return 0;
}

static int cuda_fail(const char *what, int P, cudaError_t e, char *err, size_t errlen) {
    return errbuf_fail(err, errlen, "graph of %d rows: %s: %s", P, what, cudaGetErrorString(e));
}

int cg_capture(cg_set *g, int i, cudaStream_t s, cg_body_fn body, void *ctx, char *err, size_t errlen) {
    if (i < 0 || i >= g->n) return errbuf_fail(err, errlen, "graph: bucket %d of %d", i, g->n);
    int P = g->sizes[i];
    cudaGraph_t graph = NULL;
    cudaError_t e;
    if (g->exec[i]) { cudaGraphExecDestroy(g->exec[i]); g->exec[i] = NULL; }
    /* eagerly first: kernel attributes, library handles and workspaces are set up outside the capture */
    if (body(ctx, P, s, err, errlen)) return -1;
    if ((e = cudaStreamSynchronize(s)) != cudaSuccess) return cuda_fail("warm-up step", P, e, err, errlen);
    if ((e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal)) != cudaSuccess)
        return cuda_fail("begin capture", P, e, err, errlen);
    int rc = body(ctx, P, s, err, errlen);
    e = cudaStreamEndCapture(s, &graph);                 /* ends the capture in every case */
    if (rc) { if (graph) cudaGraphDestroy(graph); cudaGetLastError(); return -1; }
    if (e != cudaSuccess) { cudaGetLastError(); return cuda_fail("capture", P, e, err, errlen); }
    e = cudaGraphInstantiate(&g->exec[i], graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) { g->exec[i] = NULL; return cuda_fail("instantiate", P, e, err, errlen); }
    if ((e = cudaGraphUpload(g->exec[i], s)) != cudaSuccess) return cuda_fail("upload", P, e, err, errlen);
    return 0;
}

static size_t free_bytes(cudaStream_t s) {
    size_t f = 0, total = 0;
    cudaStreamSynchronize(s);
    cudaMemGetInfo(&f, &total);
    return f;
}

int cg_capture_all(cg_set *g, cudaStream_t s, cg_prepare_fn prep, cg_body_fn body, void *ctx, size_t *bytes,
                   char *err, size_t errlen) {
    size_t f0 = free_bytes(s);
    for (int i = 0; i < g->n; i++)
        if (prep(ctx, g->sizes[i], err, errlen) || cg_capture(g, i, s, body, ctx, err, errlen)) return -1;
    size_t f1 = free_bytes(s);
    *bytes = f0 > f1 ? f0 - f1 : 0;
    return 0;
}

int cg_ready(const cg_set *g, int i) { return g && i >= 0 && i < g->n && g->exec[i] != NULL; }

int cg_launch(cg_set *g, int i, cudaStream_t s, char *err, size_t errlen) {
    if (!cg_ready(g, i)) return errbuf_fail(err, errlen, "graph: bucket %d not captured", i);
    cudaError_t e = cudaGraphLaunch(g->exec[i], s);
    if (e != cudaSuccess) return cuda_fail("launch", g->sizes[i], e, err, errlen);
    g->launches[i]++;
    return 0;
}

void cg_free(cg_set *g) {
    if (!g) return;
    for (int i = 0; g->exec && i < g->n; i++) if (g->exec[i]) cudaGraphExecDestroy(g->exec[i]);
    free(g->exec); free(g->sizes); free(g->launches);
    free(g);
}
#else
struct cg_set { int n; int *sizes; long *launches; };
int cg_create(cg_set **out, const int *sizes, int n, char *err, size_t errlen) {
    (void)sizes; (void)n;
    *out = NULL;
    return errbuf_fail(err, errlen, "CUDA graphs: built without CUDA (no nvcc)");
}
int cg_capture(cg_set *g, int i, cudaStream_t s, cg_body_fn body, void *ctx, char *err, size_t errlen) {
    (void)g; (void)i; (void)s; (void)body; (void)ctx;
    return errbuf_fail(err, errlen, "CUDA graphs: built without CUDA (no nvcc)");
}
int cg_capture_all(cg_set *g, cudaStream_t s, cg_prepare_fn prep, cg_body_fn body, void *ctx, size_t *bytes,
                   char *err, size_t errlen) {
    (void)g; (void)s; (void)prep; (void)body; (void)ctx; *bytes = 0;
    return errbuf_fail(err, errlen, "CUDA graphs: built without CUDA (no nvcc)");
}
int cg_ready(const cg_set *g, int i) { (void)g; (void)i; return 0; }
int cg_launch(cg_set *g, int i, cudaStream_t s, char *err, size_t errlen) {
    (void)g; (void)i; (void)s;
    return errbuf_fail(err, errlen, "CUDA graphs: built without CUDA (no nvcc)");
}
void cg_free(cg_set *g) { (void)g; }
#endif

const int *cg_sizes(const cg_set *g, int *n) {
    *n = g ? g->n : 0;
    return g ? g->sizes : NULL;
}

long cg_launches(const cg_set *g, int i) {
    long s = 0;
    if (!g) return 0;
    if (i >= 0) return i < g->n ? g->launches[i] : 0;
    for (int k = 0; k < g->n; k++) s += g->launches[k];
    return s;
}
