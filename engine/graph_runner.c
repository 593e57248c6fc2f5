/* graph_runner: see graph_runner.h.  Bucket P's graph reads the padded batch
 * at the start of the model's staging buffer, laid out as any batch of
 * T = B = R = P, and the rows' sampling parameters at gr_params_offset(P):
 * one copy writes both, and the offsets are the same at every replay, so
 * the addresses the graph recorded stay right.  Touches the model's staging
 * buffers and the memory it allocates. */
#include "engine/graph_runner.h"
#include "engine/model_probe.h"
#include "base/errbuf.h"
#include <stdlib.h>
#include <string.h>

size_t gr_params_offset(int P, int W) { return (((size_t)P * (6 + (size_t)W) + 1) * 4 + 63) / 64 * 64; }

size_t gr_staging_ints(int T, int B, int W, int R, int cap) {
    size_t eager = 3 * (size_t)T + 2 * (size_t)B + 1 + (size_t)B * W + (size_t)R;
    size_t graph = cap > 0 ? (gr_params_offset(cap, W) + sizeof(k_sample_params) * (size_t)cap + 3) / 4 : 0;
    return eager > graph ? eager : graph;
}

#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>

struct gr_runner {
    gr_model m;
    int cap, min;                    /* cg_buckets(cap, min) */
    cg_set *graphs;                  /* NULL until gr_capture */
    int on;
    cg_pad_buf pad;
    int32_t *htok;                   /* (cap,) pinned: the tokens a graph sampled */
};

int gr_create(gr_runner **out, const gr_model *m, int cap, int min, char *err, size_t errlen) {
    *out = NULL;
    gr_runner *r = calloc(1, sizeof *r);
    if (!r) return errbuf_fail(err, errlen, "out of memory");
    r->m = *m;
    r->cap = cap;
    r->min = min;
    if (cap < 1 || cudaMallocHost((void **)&r->htok, 4 * (size_t)cap) != cudaSuccess) {
        free(r);
        return errbuf_fail(err, errlen, "CUDA graphs: %s", cap < 1 ? "no batch size to capture" : "no pinned memory");
    }
    *out = r;
    return 0;
}

/* b (NULL: none) padded to P rows and its rows' parameters (NULL: greedy), to the GPU */
static int upload(gr_runner *r, const model_batch *b, int P, const k_sample_params *params, char *err,
                  size_t errlen) {
    model_batch pb;
    if (cg_pad_batch(b, P, r->m.width, &r->pad, &pb, err, errlen)) return -1;
    if (r->m.staging(r->m.ctx, 0))                   /* the last copy from hints has run */
        return errbuf_fail(err, errlen, "graph of %d rows: the previous step: %s", P,
                           cudaGetErrorString(cudaGetLastError()));
    r->m.pack(r->m.ctx, &pb, r->m.hints);
    size_t off = gr_params_offset(P, r->m.width);
    cg_pad_params(params, b ? b->B : 0, P, (k_sample_params *)((char *)r->m.hints + off));
    cudaError_t e = cudaMemcpyAsync(r->m.dints, r->m.hints, off + sizeof(k_sample_params) * (size_t)P,
                                    cudaMemcpyHostToDevice, r->m.s);
    if (e != cudaSuccess || r->m.staging(r->m.ctx, 1))
        return errbuf_fail(err, errlen, "graph of %d rows: upload: %s", P,
                           cudaGetErrorString(e != cudaSuccess ? e : cudaGetLastError()));
    return 0;
}
static int prepare(void *ctx, int P, char *err, size_t errlen) { return upload(ctx, NULL, P, NULL, err, errlen); }

/* what bucket P's graph records: the forward, the sampling of every row, the tokens' copy back */
static int body(void *ctx, int P, cudaStream_t s, char *err, size_t errlen) {
    gr_runner *r = ctx;
    const k_sample_params *dp =
        (const k_sample_params *)((const char *)r->m.dints + gr_params_offset(P, r->m.width));
    if (r->m.forward(r->m.ctx, P, err, errlen)) return -1;
    if (k_sample(r->m.dtokens, r->m.logits, dp, P, r->m.V, s) ||
        cudaMemcpyAsync(r->htok, r->m.dtokens, 4 * (size_t)P, cudaMemcpyDeviceToHost, s) != cudaSuccess)
        return errbuf_fail(err, errlen, "graph of %d rows: sampling: %s", P, cudaGetErrorString(cudaGetLastError()));
    return 0;
}

int gr_estimate(gr_runner *r, size_t *bytes, char *err, size_t errlen) {
    int four[4] = {r->cap, r->cap, r->cap, r->cap}, sizes[CG_MAX_BUCKETS];
    size_t took = 0;
    cg_set *g = NULL;
    *bytes = 0;
    if (cg_create(&g, four, 4, err, errlen)) return -1;
    int rc = cg_capture_all(g, r->m.s, prepare, body, r, &took, err, errlen);
    cg_free(g);
    *bytes = took / 4 * (size_t)cg_buckets(r->cap, r->min, sizes, CG_MAX_BUCKETS);
    return rc;
}

int gr_capture(gr_runner *r, size_t *bytes, char *err, size_t errlen) {
    int sizes[CG_MAX_BUCKETS], n = cg_buckets(r->cap, r->min, sizes, CG_MAX_BUCKETS);
    cg_free(r->graphs);
    r->graphs = NULL;
    r->on = 0;
    if (cg_create(&r->graphs, sizes, n, err, errlen) ||
        cg_capture_all(r->graphs, r->m.s, prepare, body, r, bytes, err, errlen))
        return -1;
    r->on = 1;
    return 0;
}

int gr_bucket(const gr_runner *r, const model_batch *b) {
    int n;
    if (!r || !r->on || b->T != b->B || b->max_blocks_per_seq > r->m.width) return -1;
    const int *sizes = cg_sizes(r->graphs, &n);
    return cg_bucket(sizes, n, b->B);
}

int gr_step(gr_runner *r, int i, const model_batch *b, const k_sample_params *params, int32_t *tokens, char *err,
            size_t errlen) {
    int n;
    const int *sizes = cg_sizes(r->graphs, &n);
    if (i < 0 || i >= n) return errbuf_fail(err, errlen, "graph: bucket %d of %d", i, n);
    if (r->m.check(r->m.ctx, b, err, errlen) || upload(r, b, sizes[i], params, err, errlen)) return -1;
    mprobe_mark(*r->m.probe, MH_UPLOAD);
    if (cg_launch(r->graphs, i, r->m.s, err, errlen)) return -1;
    mprobe_mark(*r->m.probe, MH_LAUNCH);
    if (!tokens) return 0;
    cudaError_t e = cudaStreamSynchronize(r->m.s);
    if (e != cudaSuccess) return errbuf_fail(err, errlen, "graph of %d rows: %s", sizes[i], cudaGetErrorString(e));
    memcpy(tokens, r->htok, 4 * (size_t)b->B);
    mprobe_mark(*r->m.probe, MH_WAIT);
    return 0;
}

int gr_use(gr_runner *r, int on) {
    if (!r) return 0;
    int old = r->on;
    r->on = on && r->graphs;
    return old;
}

const cg_set *gr_graphs(const gr_runner *r) { return r ? r->graphs : NULL; }

void gr_free(gr_runner *r) {
    if (!r) return;
    cg_free(r->graphs);
    cg_pad_buf_free(&r->pad);
    if (r->htok) cudaFreeHost(r->htok);
    free(r);
}
#else
int gr_create(gr_runner **out, const gr_model *m, int cap, int min, char *err, size_t errlen) {
    (void)m; (void)cap; (void)min;
    *out = NULL;
    return errbuf_fail(err, errlen, "CUDA graphs: built without CUDA (no nvcc)");
}
int gr_estimate(gr_runner *r, size_t *bytes, char *err, size_t errlen) {
    (void)r; *bytes = 0; return errbuf_fail(err, errlen, "CUDA graphs: built without CUDA (no nvcc)");
}
int gr_capture(gr_runner *r, size_t *bytes, char *err, size_t errlen) {
    (void)r; *bytes = 0; return errbuf_fail(err, errlen, "CUDA graphs: built without CUDA (no nvcc)");
}
int gr_bucket(const gr_runner *r, const model_batch *b) { (void)r; (void)b; return -1; }
int gr_step(gr_runner *r, int i, const model_batch *b, const k_sample_params *params, int32_t *tokens, char *err,
            size_t errlen) {
    (void)r; (void)i; (void)b; (void)params; (void)tokens;
    return errbuf_fail(err, errlen, "CUDA graphs: built without CUDA (no nvcc)");
}
int gr_use(gr_runner *r, int on) { (void)r; (void)on; return 0; }
const cg_set *gr_graphs(const gr_runner *r) { (void)r; return NULL; }
void gr_free(gr_runner *r) { (void)r; }
#endif
