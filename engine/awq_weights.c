/* awq_weights: see awq_weights.h.  The quantized linears of each layer, in
 * the order of AWQ_QKV .. AWQ_DOWN, each as three pieces (qw, scales, zeros)
 * 256-byte aligned, after the 16-bit part of the arena. */
#include "engine/awq_weights.h"
#include "engine/weights.h"
#include "base/errbuf.h"
#include "base/rng.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

/* the checkpoint's parts of linear i (modules under model.layers.L.) and their outputs */
typedef struct awq_part { const char *module; int N; } awq_part;
static int parts_of(const mc_config *c, int i, awq_part *p) {
    int qd = c->num_heads * c->head_dim, kvd = c->num_kv_heads * c->head_dim;
    switch (i) {
    case AWQ_QKV:
        p[0] = (awq_part){"self_attn.q_proj", qd};
        p[1] = (awq_part){"self_attn.k_proj", kvd};
        p[2] = (awq_part){"self_attn.v_proj", kvd};
        return 3;
    case AWQ_O: p[0] = (awq_part){"self_attn.o_proj", c->hidden_size}; return 1;
    case AWQ_GATE_UP:
        p[0] = (awq_part){"mlp.gate_proj", c->intermediate_size};
        p[1] = (awq_part){"mlp.up_proj", c->intermediate_size};
        return 2;
    default: p[0] = (awq_part){"mlp.down_proj", c->hidden_size}; return 1;
    }
}

void awq_linear_shape(const mc_config *c, int i, int *K, int *N) {
    awq_part p[3];
    int np = parts_of(c, i, p);
    *N = 0;
    for (int j = 0; j < np; j++) *N += p[j].N;
    *K = i == AWQ_O ? c->num_heads * c->head_dim : i == AWQ_DOWN ? c->intermediate_size : c->hidden_size;
}

int awq_check_config(const mc_config *c, char *err, size_t errlen) {
    if (strcasecmp(c->quant_method, "awq"))
        return errbuf_fail(err, errlen, "%s: quant_method '%s' is not supported by the engine (AutoAWQ's awq is)",
                           c->name, c->quant_method);
    if (c->quant_bits != 4)
        return errbuf_fail(err, errlen, "%s: AWQ with %d bits is not supported (4 bits is)", c->name, c->quant_bits);
    if (strcasecmp(c->quant_version, "gemm"))
        return errbuf_fail(err, errlen, "%s: AWQ version '%s' is not supported (AutoAWQ's \"gemm\" packing is; "
                           "\"gemv\", \"gemv_fast\", \"marlin\" and \"exllama\" pack otherwise)", c->name,
                           c->quant_version[0] ? c->quant_version : "(none)");
    if (!c->quant_zero_point)
        return errbuf_fail(err, errlen, "%s: AWQ without zero points (zero_point false) is not supported", c->name);
    if (c->quant_group_size != 64 && c->quant_group_size != 128)
        return errbuf_fail(err, errlen, "%s: AWQ group size %d is not supported (64 or 128)", c->name,
                           c->quant_group_size);
    if (c->quant_skip_modules)
        return errbuf_fail(err, errlen, "%s: AWQ with modules_to_not_convert is not supported (every linear of "
                           "the decoder must be quantized)", c->name);
    if (c->num_experts > 0)
        return errbuf_fail(err, errlen, "%s: AWQ mixture-of-experts models are not supported", c->name);
    for (int i = 0; i < AWQ_NLIN; i++) {
        int K, N;
        char why[256];
        awq_linear_shape(c, i, &K, &N);
        if (awq_check_shape(K, N, c->quant_group_size, why, sizeof why))
            return errbuf_fail(err, errlen, "%s: %s", c->name, why);
    }
    return 0;
}

static size_t up256(size_t b) { return (b + 255) & ~(size_t)255; }
static size_t linear_bytes(int K, int N, int G) {
    return up256(awq_qw_bytes(K, N)) + up256(awq_scales_bytes(K, N, G)) + up256(awq_zeros_bytes(K, N, G));
}

size_t awq_scratch_elems(const mc_config *c) {
    size_t most = 0;
    for (int i = 0; i < AWQ_NLIN; i++) {
        int K, N;
        awq_linear_shape(c, i, &K, &N);
        if ((size_t)K * N > most) most = (size_t)K * N;
    }
    return most;
}

size_t awq_arena_bytes(const mc_config *c) {
    size_t b = 0;
    for (int i = 0; i < AWQ_NLIN; i++) {
        int K, N;
        awq_linear_shape(c, i, &K, &N);
        b += linear_bytes(K, N, c->quant_group_size);
    }
    return b * (size_t)c->num_layers;
}

/* tensor model.layers.l.MODULE.what, checked: dtype and shape (d0, d1) */
static const st_tensor *piece(awq_find_fn find, void *ctx, const char *dir, int l, const char *module,
                              const char *what, st_dtype dt, int64_t d0, int64_t d1, char *err, size_t errlen) {
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.%s.%s", l, module, what);
    const st_tensor *t = find(ctx, name);
    if (!t) {
        errbuf_fail(err, errlen, "%s: tensor '%s' is missing (an AWQ checkpoint keeps qweight, qzeros and scales "
                    "for every quantized linear)", dir, name);
        return NULL;
    }
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1 || t->dtype != dt) {
        errbuf_fail(err, errlen, "%s: tensor '%s' is %s [%lld%s%lld], the config needs %s [%lld, %lld]", dir, name,
                    st_dtype_name(t->dtype), (long long)t->shape[0], t->ndim > 1 ? ", " : "",
                    (long long)(t->ndim > 1 ? t->shape[1] : 0), st_dtype_name(dt), (long long)d0, (long long)d1);
        return NULL;
    }
    return t;
}

/* the three tensors of part p of linear i of layer l */
static int part_tensors(awq_find_fn find, void *ctx, const mc_config *c, const char *dir, int l, int i,
                        const awq_part *p, const st_tensor **t, char *err, size_t errlen) {
    int K, N, G = c->quant_group_size;
    awq_linear_shape(c, i, &K, &N);
    if (!(t[0] = piece(find, ctx, dir, l, p->module, "qweight", ST_I32, K, p->N / 8, err, errlen)) ||
        !(t[1] = piece(find, ctx, dir, l, p->module, "qzeros", ST_I32, K / G, p->N / 8, err, errlen)) ||
        !(t[2] = piece(find, ctx, dir, l, p->module, "scales", ST_F16, K / G, p->N, err, errlen)))
        return -1;
    return 0;
}

int awq_check_tensors(awq_find_fn find, void *ctx, const mc_config *c, const char *dir, char *err, size_t errlen) {
    for (int l = 0; l < c->num_layers; l++)
        for (int i = 0; i < AWQ_NLIN; i++) {
            awq_part p[3];
            const st_tensor *t[3];
            int np = parts_of(c, i, p);
            for (int j = 0; j < np; j++)
                if (part_tensors(find, ctx, c, dir, l, i, &p[j], t, err, errlen)) return -1;
        }
    return 0;
}

/* a tensor's bytes into aligned host memory (the mapped data may sit at any offset) */
static void *copy_out(const st_tensor *t) {
    void *b = malloc(t->nbytes ? t->nbytes : 1);
    if (b) memcpy(b, t->data, t->nbytes);
    return b;
}

int awq_stage_linear(awq_find_fn find, void *ctx, const mc_config *c, int l, int i, uint32_t *qw,
                     uint16_t *scales, uint32_t *zeros, char *err, size_t errlen) {
    awq_part p[3];
    int np = parts_of(c, i, p), K, N, G = c->quant_group_size, n0 = 0;
    awq_linear_shape(c, i, &K, &N);
    for (int j = 0; j < np; j++) {
        const st_tensor *t[3];
        if (part_tensors(find, ctx, c, "checkpoint", l, i, &p[j], t, err, errlen)) return -1;
        void *qwt = copy_out(t[0]), *qz = copy_out(t[1]), *sc = copy_out(t[2]);
        if (qwt && qz && sc)
            awq_repack(qw + awq_qw_bytes(K, n0) / 4, scales + awq_scales_bytes(K, n0, G) / 2,
                       zeros + awq_zeros_bytes(K, n0, G) / 4, qwt, qz, sc, K, p[j].N, G);
        int ok = qwt && qz && sc;
        free(qwt); free(qz); free(sc);
        if (!ok) return errbuf_fail(err, errlen, "out of memory staging layer %d's %s", l, p[j].module);
        n0 += p[j].N;
    }
    return 0;
}

int awq_attach(w_weights *w, const mc_config *c, void *base, char *err, size_t errlen) {
    int G = c->quant_group_size;
    w->awq = calloc((size_t)c->num_layers * AWQ_NLIN, sizeof *w->awq);
    if (!w->awq) return errbuf_fail(err, errlen, "out of memory");
    unsigned char *b = base;
    for (int l = 0; l < c->num_layers; l++) {
        w->layers[l].awq = w->awq + (size_t)l * AWQ_NLIN;
        for (int i = 0; i < AWQ_NLIN; i++) {
            k_awq_linear *q = &w->layers[l].awq[i];
            awq_linear_shape(c, i, &q->K, &q->N);
            q->G = G;
            q->qw = (uint32_t *)b;
            b += up256(awq_qw_bytes(q->K, q->N));
            q->scales = (uint16_t *)b;
            b += up256(awq_scales_bytes(q->K, q->N, G));
            q->zeros = (uint32_t *)b;
            b += up256(awq_zeros_bytes(q->K, q->N, G));
        }
    }
    return 0;
}

#ifdef PAGESIM_HAVE_CUDA
/* one linear: each part's qweight repacked on the GPU (through staging), the
 * scales and zeros on the host */
static int load_linear(const k_awq_linear *q, awq_find_fn find, void *ctx, const mc_config *c, const char *dir,
                       int l, int i, void *staging, uint16_t *hs, uint32_t *hz, char *err, size_t errlen) {
    awq_part p[3];
    int np = parts_of(c, i, p), G = q->G, n0 = 0;
    for (int j = 0; j < np; j++) {
        const st_tensor *t[3];
        if (part_tensors(find, ctx, c, dir, l, i, &p[j], t, err, errlen)) return -1;
        void *qz = copy_out(t[1]), *sc = copy_out(t[2]);
        if (qz && sc)
            awq_repack_groups(hs + awq_scales_bytes(q->K, n0, G) / 2, hz + awq_zeros_bytes(q->K, n0, G) / 4, qz, sc,
                              q->K, p[j].N, G);
        free(qz); free(sc);
        if (!qz || !sc) return errbuf_fail(err, errlen, "out of memory");
        if (cudaMemcpy(staging, t[0]->data, t[0]->nbytes, cudaMemcpyHostToDevice) != cudaSuccess ||
            k_awq_repack(q->qw + awq_qw_bytes(q->K, n0) / 4, staging, q->K, p[j].N, 0) ||
            cudaDeviceSynchronize() != cudaSuccess)
            return errbuf_fail(err, errlen, "%s: repacking layer %d's %s.qweight on the GPU: %s", dir, l,
                               p[j].module, cudaGetErrorString(cudaGetLastError()));
        n0 += p[j].N;
    }
    if (cudaMemcpy(q->scales, hs, awq_scales_bytes(q->K, q->N, G), cudaMemcpyHostToDevice) != cudaSuccess ||
        cudaMemcpy(q->zeros, hz, awq_zeros_bytes(q->K, q->N, G), cudaMemcpyHostToDevice) != cudaSuccess)
        return errbuf_fail(err, errlen, "%s: copying layer %d's scales to the GPU", dir, l);
    return 0;
}

int awq_load(w_weights *w, awq_find_fn find, void *ctx, const mc_config *c, const char *dir, char *err,
             size_t errlen) {
    size_t most = 0, most_g = 0;
    for (int i = 0; i < AWQ_NLIN; i++) {
        int K, N;
        awq_linear_shape(c, i, &K, &N);
        if (awq_qw_bytes(K, N) > most) most = awq_qw_bytes(K, N);
        if (awq_scales_bytes(K, N, c->quant_group_size) > most_g) most_g = awq_scales_bytes(K, N, c->quant_group_size);
    }
    void *staging = NULL;
    uint16_t *hs = malloc(most_g);
    uint32_t *hz = malloc(most_g);
    int rc = -1;
    if (!hs || !hz || cudaMalloc(&staging, most) != cudaSuccess) {
        errbuf_fail(err, errlen, "%s: cannot allocate %.2f GiB to stage the AWQ weights", dir, most / 1073741824.0);
        goto out;
    }
    for (int l = 0; l < c->num_layers; l++)
        for (int i = 0; i < AWQ_NLIN; i++)
            if (load_linear(&w->layers[l].awq[i], find, ctx, c, dir, l, i, staging, hs, hz, err, errlen)) goto out;
    rc = 0;
out:
    if (staging) cudaFree(staging);
    free(hs); free(hz);
    return rc;
}

int awq_dummy(w_weights *w, const mc_config *c, uint64_t seed, char *err, size_t errlen) {
    for (int l = 0; l < c->num_layers; l++)
        for (int i = 0; i < AWQ_NLIN; i++)
            if (k_awq_fill(&w->layers[l].awq[i], rng_mix64(seed ^ rng_mix64((uint64_t)l * AWQ_NLIN + (uint64_t)i + 1)),
                           0.002f, 0.004f, 0))
                return errbuf_fail(err, errlen, "%s: filling dummy AWQ weights failed (%s)", c->name, k_last_error());
    return 0;
}
#else
int awq_load(w_weights *w, awq_find_fn find, void *ctx, const mc_config *c, const char *dir, char *err,
             size_t errlen) {
    (void)w; (void)find; (void)ctx; (void)c; (void)dir;
    return errbuf_fail(err, errlen, "engine built without CUDA (no nvcc)");
}
int awq_dummy(w_weights *w, const mc_config *c, uint64_t seed, char *err, size_t errlen) {
    (void)w; (void)c; (void)seed;
    return errbuf_fail(err, errlen, "engine built without CUDA (no nvcc)");
}
#endif
