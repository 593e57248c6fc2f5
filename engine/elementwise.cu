/* elementwise.cu: the engine's small per-token kernels and their launchers:
 * weight fills, embedding, fused residual-add RMSNorm, per-head RMSNorm,
 * RoPE, bias, SwiGLU, row gather.  Where transformers rounds an intermediate
 * to bf16 we do the same (rbf), so that logits match it closely. */
#include "engine/common.cuh"
#include "engine/kernels_ref.h"

__global__ void fill_random_kernel(k_bf16 *p, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        st(p, i, (2.0f * kref_uniform(seed, 0, (uint64_t)i) - 1.0f) * scale);
}
__global__ void fill_const_kernel(k_bf16 *p, int64_t n, float v) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        st(p, i, v);
}
static int grid_for(int64_t n) { int64_t g = (n + 255) / 256; return g > 65536 ? 65536 : (int)(g < 1 ? 1 : g); }

extern "C" int k_fill_random(k_bf16 *p, int64_t n, uint64_t seed, float scale, cudaStream_t s) {
    if (n < 0) return -1;
    if (n == 0) return 0;
    fill_random_kernel<<<grid_for(n), 256, 0, s>>>(p, n, seed, scale);
    return K_LAUNCH_OK();
}
extern "C" int k_fill_const(k_bf16 *p, int64_t n, float value, cudaStream_t s) {
    if (n < 0) return -1;
    if (n == 0) return 0;
    fill_const_kernel<<<grid_for(n), 256, 0, s>>>(p, n, value);
    return K_LAUNCH_OK();
}

/* ---- embedding: one block per token ---- */
__global__ void embedding_kernel(k_bf16 *out, const k_bf16 *table, const int32_t *ids, int D, int V) {
    int t = blockIdx.x, id = ids[t];
    bool ok = id >= 0 && id < V;
    for (int d = threadIdx.x; d < D; d += blockDim.x)
        out[(size_t)t * D + d] = ok ? table[(size_t)id * D + d] : (k_bf16)0;
}
extern "C" int k_embedding(k_bf16 *out, const k_bf16 *table, const int32_t *ids, int T, int D,
                           int V, cudaStream_t s) {
    if (T < 0 || D <= 0 || V <= 0) return -1;
    if (T == 0) return 0;
    embedding_kernel<<<T, 256, 0, s>>>(out, table, ids, D, V);
    return K_LAUNCH_OK();
}

/* ---- RMSNorm (+ residual), one block per row; rounding as transformers:
 *      r = bf16(x + res); y = bf16(w * bf16(r * rsqrt(mean(r^2) + eps))) ---- */
__global__ void add_rmsnorm_kernel(k_bf16 *x, k_bf16 *res, const k_bf16 *w, int D, float eps) {
    size_t base = (size_t)blockIdx.x * D;
    float ss = 0;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float r = ld(x, base + d);
        if (res) { r = rbf(r + ld(res, base + d)); st(res, base + d, r); }
        ss += r * r;
    }
    float inv = rsqrtf(block_sum(ss) / D + eps);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float r = res ? ld(res, base + d) : ld(x, base + d);
        st(x, base + d, ld(w, d) * rbf(r * inv));
    }
}
extern "C" int k_add_rmsnorm(k_bf16 *x, k_bf16 *residual, const k_bf16 *w, int T, int D, float eps,
                             cudaStream_t s) {
    if (T < 0 || D <= 0) return -1;
    if (T == 0) return 0;
    add_rmsnorm_kernel<<<T, D >= 1024 ? 1024 : 256, 0, s>>>(x, residual, w, D, eps);
    return K_LAUNCH_OK();
}

/* ---- per-head RMSNorm: one warp per (token, head) ---- */
__global__ void head_rmsnorm_kernel(k_bf16 *x, int rows, int nheads, int hd, int stride,
                                    const k_bf16 *w, float eps) {
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (r >= rows) return;
    size_t base = (size_t)(r / nheads) * stride + (size_t)(r % nheads) * hd;
    float ss = 0;
    for (int d = lane; d < hd; d += 32) { float v = ld(x, base + d); ss += v * v; }
    float inv = rsqrtf(warp_sum(ss) / hd + eps);
    for (int d = lane; d < hd; d += 32) st(x, base + d, ld(w, d) * rbf(ld(x, base + d) * inv));
}
extern "C" int k_head_rmsnorm(k_bf16 *x, int T, int nheads, int head_dim, int tok_stride,
                              const k_bf16 *w, float eps, cudaStream_t s) {
    if (T < 0 || nheads <= 0 || head_dim <= 0) return -1;
    int rows = T * nheads;
    if (rows == 0) return 0;
    head_rmsnorm_kernel<<<(rows + 7) / 8, 256, 0, s>>>(x, rows, nheads, head_dim, tok_stride, w, eps);
    return K_LAUNCH_OK();
}

/* ---- RoPE (neox): one block per token, a thread per (head, pair).  As
 *      transformers: cos/sin in fp32 rounded to bf16, each product rounded. ---- */
__global__ void rope_kernel(k_bf16 *qkv, const int32_t *pos, const float *inv_freq, int nheads,
                            int hd, int stride) {
    int t = blockIdx.x, half = hd / 2;
    float p = (float)pos[t];
    for (int i = threadIdx.x; i < nheads * half; i += blockDim.x) {
        int h = i / half, j = i % half;
        float a = p * inv_freq[j];
        float c = rbf(cosf(a)), sn = rbf(sinf(a));
        size_t b = (size_t)t * stride + (size_t)h * hd;
        float x0 = ld(qkv, b + j), x1 = ld(qkv, b + j + half);
        st(qkv, b + j, rbf(x0 * c) + rbf(-x1 * sn));
        st(qkv, b + j + half, rbf(x1 * c) + rbf(x0 * sn));
    }
}
extern "C" int k_rope(k_bf16 *qkv, const int32_t *positions, const float *inv_freq, int T, int nq,
                      int nkv, int head_dim, int tok_stride, cudaStream_t s) {
    if (T < 0 || nq <= 0 || nkv < 0 || head_dim <= 0 || (head_dim & 1)) return -1;
    if (T == 0) return 0;
    rope_kernel<<<T, 256, 0, s>>>(qkv, positions, inv_freq, nq + nkv, head_dim, tok_stride);
    return K_LAUNCH_OK();
}

/* row-wise kernels: block (x, row) covers columns x*256.. of row blockIdx.y,
 * with a grid-stride loop over the columns (no 64-bit division per element) */
static dim3 rows_grid(int T, int N) {
    int gx = (N + 255) / 256;
    return dim3(gx > 64 ? 64 : gx, T > 65535 ? 65535 : T);
}

__global__ void add_bias_kernel(k_bf16 *y, const k_bf16 *bias, int T, int N) {
    for (int t = blockIdx.y; t < T; t += gridDim.y)
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < N; c += gridDim.x * blockDim.x)
            st(y, (size_t)t * N + c, ld(y, (size_t)t * N + c) + ld(bias, c));
}
extern "C" int k_add_bias(k_bf16 *y, const k_bf16 *bias, int T, int N, cudaStream_t s) {
    if (T < 0 || N <= 0) return -1;
    if (T == 0) return 0;
    add_bias_kernel<<<rows_grid(T, N), 256, 0, s>>>(y, bias, T, N);
    return K_LAUNCH_OK();
}

/* ---- SwiGLU: out = bf16(bf16(silu(g)) * u) ---- */
__global__ void silu_mul_kernel(k_bf16 *out, const k_bf16 *gu, int T, int I) {
    for (int t = blockIdx.y; t < T; t += gridDim.y) {
        const k_bf16 *g = gu + (size_t)t * 2 * I, *u = g + I;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < I; c += gridDim.x * blockDim.x) {
            float x = ld(g, c);
            st(out, (size_t)t * I + c, rbf(x / (1.0f + expf(-x))) * ld(u, c));
        }
    }
}
extern "C" int k_silu_mul(k_bf16 *out, const k_bf16 *gu, int T, int I, cudaStream_t s) {
    if (T < 0 || I <= 0) return -1;
    if (T == 0) return 0;
    silu_mul_kernel<<<rows_grid(T, I), 256, 0, s>>>(out, gu, T, I);
    return K_LAUNCH_OK();
}

__global__ void gather_rows_kernel(k_bf16 *out, const k_bf16 *x, const int32_t *rows, int D) {
    int r = blockIdx.x;
    for (int d = threadIdx.x; d < D; d += blockDim.x)
        out[(size_t)r * D + d] = x[(size_t)rows[r] * D + d];
}
extern "C" int k_gather_rows(k_bf16 *out, const k_bf16 *x, const int32_t *rows, int R, int D,
                             cudaStream_t s) {
    if (R < 0 || D <= 0) return -1;
    if (R == 0) return 0;
    gather_rows_kernel<<<R, 256, 0, s>>>(out, x, rows, D);
    return K_LAUNCH_OK();
}
