/* elementwise.cu: the engine's small per-token kernels and their launchers:
 * weight fills, embedding, fused residual-add RMSNorm, per-head RMSNorm,
 * RoPE, bias, SwiGLU, row gather.  Where transformers rounds an intermediate
 * to bf16 we do the same (rbf), so that logits match it closely.
 *
 * These kernels are memory bound.  SwiGLU, RMSNorm, RoPE and bias move 16
 * bytes (8 bf16) per access where the widths are multiples of 8 and the
 * pointers 16-byte aligned, and fall back to the first, scalar kernels
 * otherwise.  The vector kernels do the same arithmetic per element as the
 * scalar ones, so their results are bit-identical, except RMSNorm's sum of
 * squares, which is added in another order (fp32).  k_elementwise_impl(K_ELEM_SCALAR)
 * runs the scalar kernels always, to measure against. */
#include "engine/common.cuh"
#include "engine/kernels_ref.h"

/* ---- 16-byte access helpers (unpack8 is in common.cuh) ---- */
__device__ __forceinline__ uint32_t ew_bits(float v) {     /* as st(): round to nearest even */
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(v));
}
__device__ __forceinline__ uint4 ew_pack(const float f[8]) {
    uint4 q;
    q.x = ew_bits(f[0]) | ew_bits(f[1]) << 16;
    q.y = ew_bits(f[2]) | ew_bits(f[3]) << 16;
    q.z = ew_bits(f[4]) | ew_bits(f[5]) << 16;
    q.w = ew_bits(f[6]) | ew_bits(f[7]) << 16;
    return q;
}
__device__ __forceinline__ uint4 ew_ld8(const k_bf16 *p, size_t i) {      /* i % 8 == 0 */
    return *reinterpret_cast<const uint4 *>(p + i);
}
__device__ __forceinline__ uint4 ew_ldg8(const k_bf16 *p, size_t i) {     /* read-only data */
    return __ldg(reinterpret_cast<const uint4 *>(p + i));
}
__device__ __forceinline__ void ew_st8(k_bf16 *p, size_t i, uint4 q) {
    *reinterpret_cast<uint4 *>(p + i) = q;
}
static bool al16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* K_ELEM_VECTOR: vector kernels where they apply; K_ELEM_SCALAR: the scalar kernels always */
static int ew_impl = K_ELEM_VECTOR;
extern "C" int k_elementwise_impl(int impl) {
    int old = ew_impl;
    if (impl == K_ELEM_VECTOR || impl == K_ELEM_SCALAR) ew_impl = impl;
    return old;
}

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
 *      r = bf16(x + res); y = bf16(w * bf16(r * rsqrt(mean(r^2) + eps))).
 *      The scalar kernel reads x/res twice (a pass for the sum, one to write). ---- */
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
/* The same with 16-byte accesses, one block per row: thread i holds the
 * vectors i, i + blockDim, ... (VPT of them, D / 8 in all) in registers from
 * the sum of squares to the write, so x and res are read once.  Each thread
 * sums its own 8*VPT squares before the block sum: another order of the fp32
 * additions than the scalar kernel, so inv may differ in its last bit. */
template <int VPT>
__global__ void add_rmsnorm_vec_kernel(k_bf16 *x,         // (T, D), D % 8 == 0
                                       k_bf16 *res,       // (T, D) or NULL
                                       const k_bf16 *w,   // (D,)
                                       int D, float eps) {
    size_t base = (size_t)blockIdx.x * D;
    int nv = D >> 3;
    float r[VPT][8];
    float ss = 0;
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        int v = threadIdx.x + k * blockDim.x;
        if (v >= nv) continue;
        unpack8(ew_ld8(x, base + 8 * (size_t)v), r[k]);
        if (res) {
            float q[8];
            unpack8(ew_ld8(res, base + 8 * (size_t)v), q);
#pragma unroll
            for (int e = 0; e < 8; e++) r[k][e] = rbf(r[k][e] + q[e]);
            ew_st8(res, base + 8 * (size_t)v, ew_pack(r[k]));
        }
#pragma unroll
        for (int e = 0; e < 8; e++) ss += r[k][e] * r[k][e];
    }
    float inv = rsqrtf(block_sum(ss) / D + eps);
#pragma unroll
    for (int k = 0; k < VPT; k++) {
        int v = threadIdx.x + k * blockDim.x;
        if (v >= nv) continue;
        float wf[8], o[8];
        unpack8(ew_ldg8(w, 8 * (size_t)v), wf);
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = wf[e] * rbf(r[k][e] * inv);
        ew_st8(x, base + 8 * (size_t)v, ew_pack(o));
    }
}
#define RMS_VEC_MAX_D (8 * 4 * 1024)      /* VPT 4 at 1024 threads */

extern "C" int k_add_rmsnorm(k_bf16 *x, k_bf16 *residual, const k_bf16 *w, int T, int D, float eps,
                             cudaStream_t s) {
    if (T < 0 || D <= 0) return -1;
    if (T == 0) return 0;
    if (ew_impl == K_ELEM_VECTOR && D % 8 == 0 && D <= RMS_VEC_MAX_D && al16(x) && al16(w) &&
        (!residual || al16(residual))) {
        int nv = D / 8, vpt = nv <= 256 ? 1 : nv <= 512 ? 2 : 4;
        int threads = ((nv + vpt - 1) / vpt + 31) / 32 * 32;   /* block_sum wants whole warps */
        if (vpt == 1) add_rmsnorm_vec_kernel<1><<<T, threads, 0, s>>>(x, residual, w, D, eps);
        else if (vpt == 2) add_rmsnorm_vec_kernel<2><<<T, threads, 0, s>>>(x, residual, w, D, eps);
        else add_rmsnorm_vec_kernel<4><<<T, threads, 0, s>>>(x, residual, w, D, eps);
        return K_LAUNCH_OK();
    }
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

/* ---- RoPE (neox).  As transformers: cos/sin in fp32 rounded to bf16, each
 *      product rounded.  The first kernel (PAGESIM_ELEM=v1, head_dim > 4096):
 *      one block per token, a thread per (head, pair), cos/sin per head. ---- */
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
/* The same with cos/sin computed once per (token, pair) into shared memory
 * and applied to every head; a thread takes V consecutive pairs of one head
 * (V = 8: two 16-byte loads and stores, x[j..j+8) and x[j+half..j+half+8)). */
template <int V>
__global__ void rope_shared_kernel(k_bf16 *qkv,             // (T, stride)
                                   const int32_t *pos,       // (T,)
                                   const float *inv_freq,    // (hd/2,)
                                   int nheads, int hd, int stride) {
    extern __shared__ float cs[];                            /* (2, half): cos, then sin */
    int t = blockIdx.x, half = hd / 2, nc = half / V;
    float p = (float)pos[t];
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float a = p * inv_freq[j];
        cs[j] = rbf(cosf(a));
        cs[half + j] = rbf(sinf(a));
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nheads * nc; i += blockDim.x) {
        int h = i / nc, j = (i - h * nc) * V;
        size_t b = (size_t)t * stride + (size_t)h * hd + j;
        if (V == 8) {
            float x0[8], x1[8], y0[8], y1[8];
            unpack8(ew_ld8(qkv, b), x0);
            unpack8(ew_ld8(qkv, b + half), x1);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                float c = cs[j + e], sn = cs[half + j + e];
                y0[e] = rbf(x0[e] * c) + rbf(-x1[e] * sn);
                y1[e] = rbf(x1[e] * c) + rbf(x0[e] * sn);
            }
            ew_st8(qkv, b, ew_pack(y0));
            ew_st8(qkv, b + half, ew_pack(y1));
        } else {
            float c = cs[j], sn = cs[half + j];
            float x0 = ld(qkv, b), x1 = ld(qkv, b + half);
            st(qkv, b, rbf(x0 * c) + rbf(-x1 * sn));
            st(qkv, b + half, rbf(x1 * c) + rbf(x0 * sn));
        }
    }
}
#define ROPE_SHARED_MAX_HD 4096           /* 16 KB of cos/sin */

extern "C" int k_rope(k_bf16 *qkv, const int32_t *positions, const float *inv_freq, int T, int nq,
                      int nkv, int head_dim, int tok_stride, cudaStream_t s) {
    if (T < 0 || nq <= 0 || nkv < 0 || head_dim <= 0 || (head_dim & 1)) return -1;
    if (T == 0) return 0;
    int nh = nq + nkv, half = head_dim / 2;
    if (ew_impl == K_ELEM_VECTOR && head_dim <= ROPE_SHARED_MAX_HD) {
        bool vec = half % 8 == 0 && tok_stride % 8 == 0 && al16(qkv);
        int items = nh * (vec ? half / 8 : half);
        int threads = items >= 256 ? 256 : (items + 31) / 32 * 32;
        size_t sh = sizeof(float) * 2 * half;
        if (vec) rope_shared_kernel<8><<<T, threads, sh, s>>>(qkv, positions, inv_freq, nh, head_dim, tok_stride);
        else rope_shared_kernel<1><<<T, threads, sh, s>>>(qkv, positions, inv_freq, nh, head_dim, tok_stride);
        return K_LAUNCH_OK();
    }
    rope_kernel<<<T, 256, 0, s>>>(qkv, positions, inv_freq, nh, head_dim, tok_stride);
    return K_LAUNCH_OK();
}

/* scalar row-wise kernels (widths not a multiple of 8, or unaligned; v1):
 * block (x, row) covers columns x*256.. of row blockIdx.y,
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
/* 16-byte row-wise kernels (widths a multiple of 8): block (x, row) covers
 * the vectors x*256.. of row blockIdx.y, one vector per thread; the grid has
 * every vector of up to 65535 rows, and loops over further rows */
static dim3 rows_grid_vec(int T, int nv) {
    return dim3((nv + 255) / 256, T > 65535 ? 65535 : T);
}

__global__ void add_bias_vec_kernel(k_bf16 *y,            // (T, N), N % 8 == 0
                                    const k_bf16 *bias,   // (N,)
                                    int T, int N) {
    int nv = N >> 3, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= nv) return;
    float b[8];
    unpack8(ew_ldg8(bias, 8 * (size_t)c), b);
    for (int t = blockIdx.y; t < T; t += gridDim.y) {
        size_t i = (size_t)t * N + 8 * (size_t)c;
        float v[8];
        unpack8(ew_ld8(y, i), v);
#pragma unroll
        for (int e = 0; e < 8; e++) v[e] += b[e];
        ew_st8(y, i, ew_pack(v));
    }
}
extern "C" int k_add_bias(k_bf16 *y, const k_bf16 *bias, int T, int N, cudaStream_t s) {
    if (T < 0 || N <= 0) return -1;
    if (T == 0) return 0;
    if (ew_impl == K_ELEM_VECTOR && N % 8 == 0 && al16(y) && al16(bias)) {
        add_bias_vec_kernel<<<rows_grid_vec(T, N / 8), 256, 0, s>>>(y, bias, T, N);
        return K_LAUNCH_OK();
    }
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
__global__ void silu_mul_vec_kernel(k_bf16 *out,          // (T, I), I % 8 == 0
                                    const k_bf16 *gu,     // (T, 2I): gate | up
                                    int T, int I) {
    int nv = I >> 3, c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= nv) return;
    for (int t = blockIdx.y; t < T; t += gridDim.y) {
        size_t gi = (size_t)t * 2 * I + 8 * (size_t)c;
        float g[8], u[8], o[8];
        unpack8(ew_ldg8(gu, gi), g);
        unpack8(ew_ldg8(gu, gi + I), u);
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = rbf(g[e] / (1.0f + expf(-g[e]))) * u[e];
        ew_st8(out, (size_t)t * I + 8 * (size_t)c, ew_pack(o));
    }
}
extern "C" int k_silu_mul(k_bf16 *out, const k_bf16 *gu, int T, int I, cudaStream_t s) {
    if (T < 0 || I <= 0) return -1;
    if (T == 0) return 0;
    if (ew_impl == K_ELEM_VECTOR && I % 8 == 0 && al16(out) && al16(gu)) {
        silu_mul_vec_kernel<<<rows_grid_vec(T, I / 8), 256, 0, s>>>(out, gu, T, I);
        return K_LAUNCH_OK();
    }
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
