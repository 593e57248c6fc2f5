/* qkv_prep.cu: the step between the q/k/v GEMM and attention in one kernel
 * (kernels.h: k_qkv_prep): for every token, the optional q/k/v bias (Qwen2),
 * the optional per-head RMSNorm of q and of k (Qwen3), RoPE of q and k, and
 * the write of k and v into the paged KV cache.  It replaces five launches
 * (k_add_bias or k_head_rmsnorm x2, k_rope, k_kv_write) per layer and step.
 *
 * Bit for bit the unfused sequence: every element goes through the same
 * float operations and bf16 roundings (bias: bf16(x + b); norm: each lane
 * sums the squares of dims lane, lane + 32, ... in that order, then the
 * warp's butterfly sum, as head_rmsnorm_kernel; RoPE: cos/sin rounded to
 * bf16, each product rounded, as rope_shared_kernel).  One block per token:
 * the token's row is staged in shared memory (16-byte loads), normalised
 * there a warp per head, then rotated and written with 16-byte stores to qkv
 * and to the cache.  Shapes it does not take (head_dim not a multiple of 16,
 * unaligned rows, rows over 48 KB, K_ELEM_SCALAR) run the unfused kernels.
 * Device code and its launcher; touches only the buffers it is given. */
#include "engine/common.cuh"

#define QP_THREADS 256
#define QP_MAX_SMEM (48 * 1024)

struct qp_args {
    k_bf16 *qkv;              /* (T, stride): q heads (nq*hd) | k heads (nkv*hd) | v heads (nkv*hd) */
    k_bf16 *kc, *vc;          /* (num_slots, nkv, hd) this layer's cache */
    const k_bf16 *bias;       /* ((nq + 2 nkv) hd,) or NULL */
    const k_bf16 *q_norm;     /* (hd,) or NULL */
    const k_bf16 *k_norm;     /* (hd,) or NULL */
    const int32_t *pos;       /* (T,) */
    const float *inv_freq;    /* (hd/2,) */
    const int32_t *slots;     /* (T,) slot of each token, < 0: no write */
    float eps;
    int nq, nkv, hd, stride;
};

__device__ __forceinline__ uint32_t qp_bits(float v) { return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(v)); }
__device__ __forceinline__ uint4 qp_pack(const float f[8]) {
    uint4 q;
    q.x = qp_bits(f[0]) | qp_bits(f[1]) << 16;
    q.y = qp_bits(f[2]) | qp_bits(f[3]) << 16;
    q.z = qp_bits(f[4]) | qp_bits(f[5]) << 16;
    q.w = qp_bits(f[6]) | qp_bits(f[7]) << 16;
    return q;
}

/* row (QKV,) bf16 in shared = the token's q|k|v (+ bias, rounded as k_add_bias);
 * cs (2, hd/2) = bf16(cos), bf16(sin) of pos * inv_freq, as rope_shared_kernel */
__device__ __forceinline__ void qp_load(const qp_args &a, int t, k_bf16 *row, float *cs) {
    int n8 = (a.nq + 2 * a.nkv) * a.hd / 8, half = a.hd / 2;
    const uint4 *src = reinterpret_cast<const uint4 *>(a.qkv + (size_t)t * a.stride);
    uint4 *dst = reinterpret_cast<uint4 *>(row);
    for (int i = threadIdx.x; i < n8; i += blockDim.x) {
        uint4 q = src[i];
        if (a.bias) {
            float v[8], b[8];
            unpack8(q, v);
            unpack8(__ldg(reinterpret_cast<const uint4 *>(a.bias) + i), b);
#pragma unroll
            for (int e = 0; e < 8; e++) v[e] += b[e];
            q = qp_pack(v);
        }
        dst[i] = q;
    }
    float p = (float)a.pos[t];
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float ang = p * a.inv_freq[j];
        cs[j] = rbf(cosf(ang));
        cs[half + j] = rbf(sinf(ang));
    }
}

/* per-head RMSNorm in shared memory, a warp per q or k head (head_rmsnorm_kernel's order) */
__device__ __forceinline__ void qp_norm(const qp_args &a, k_bf16 *row) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5, hd = a.hd;
    for (int h = warp; h < a.nq + a.nkv; h += nw) {
        const k_bf16 *w = h < a.nq ? a.q_norm : a.k_norm;
        if (!w) continue;                                  /* warp-uniform */
        k_bf16 *x = row + (size_t)h * hd;
        float ss = 0;
        for (int d = lane; d < hd; d += 32) { float v = ld(x, d); ss += v * v; }
        float inv = rsqrtf(warp_sum(ss) / hd + a.eps);
        for (int d = lane; d < hd; d += 32) st(x, d, ld(w, d) * rbf(ld(x, d) * inv));
    }
}

/* RoPE of the q and k heads, 8 pairs a thread, written to qkv and (k) the cache;
 * the v heads to the cache (and back to qkv when a bias changed them) */
__device__ __forceinline__ void qp_store(const qp_args &a, int t, const k_bf16 *row, const float *cs) {
    int hd = a.hd, half = hd / 2, nc = half / 8, nrot = (a.nq + a.nkv) * nc, nv = a.nkv * hd / 8;
    int slot = a.slots[t];
    size_t kvrow = (size_t)a.nkv * hd;
    k_bf16 *out = a.qkv + (size_t)t * a.stride;
    for (int i = threadIdx.x; i < nrot + nv; i += blockDim.x) {
        if (i >= nrot) {                                   /* a v chunk */
            int c = (i - nrot) * 8;
            uint4 q = *reinterpret_cast<const uint4 *>(row + (size_t)(a.nq + a.nkv) * hd + c);
            if (a.bias) *reinterpret_cast<uint4 *>(out + (size_t)(a.nq + a.nkv) * hd + c) = q;
            if (slot >= 0) *reinterpret_cast<uint4 *>(a.vc + (size_t)slot * kvrow + c) = q;
            continue;
        }
        int h = i / nc, j = (i - h * nc) * 8;
        size_t b = (size_t)h * hd + j;
        float x0[8], x1[8], y0[8], y1[8];
        unpack8(*reinterpret_cast<const uint4 *>(row + b), x0);
        unpack8(*reinterpret_cast<const uint4 *>(row + b + half), x1);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            float c = cs[j + e], sn = cs[half + j + e];
            y0[e] = rbf(x0[e] * c) + rbf(-x1[e] * sn);
            y1[e] = rbf(x1[e] * c) + rbf(x0[e] * sn);
        }
        uint4 q0 = qp_pack(y0), q1 = qp_pack(y1);
        *reinterpret_cast<uint4 *>(out + b) = q0;
        *reinterpret_cast<uint4 *>(out + b + half) = q1;
        if (h >= a.nq && slot >= 0) {
            k_bf16 *k = a.kc + (size_t)slot * kvrow + (size_t)(h - a.nq) * hd + j;
            *reinterpret_cast<uint4 *>(k) = q0;
            *reinterpret_cast<uint4 *>(k + half) = q1;
        }
    }
}

__global__ void __launch_bounds__(QP_THREADS) qkv_prep_kernel(qp_args a) {
    extern __shared__ __align__(16) unsigned char qp_smem[];
    k_bf16 *row = reinterpret_cast<k_bf16 *>(qp_smem);                       /* ((nq + 2 nkv) hd,) */
    float *cs = reinterpret_cast<float *>(row + (size_t)(a.nq + 2 * a.nkv) * a.hd);   /* (2, hd/2) */
    int t = blockIdx.x;
    qp_load(a, t, row, cs);
    __syncthreads();
    if (a.q_norm || a.k_norm) {
        qp_norm(a, row);
        __syncthreads();
    }
    qp_store(a, t, row, cs);
}

static bool qp_al16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* the unfused sequence, in model.c's former order */
static int qp_unfused(const qp_args &a, int T, cudaStream_t s) {
    if (a.bias && k_add_bias(a.qkv, a.bias, T, a.stride, s)) return -1;
    if (a.q_norm && k_head_rmsnorm(a.qkv, T, a.nq, a.hd, a.stride, a.q_norm, a.eps, s)) return -1;
    if (a.k_norm && k_head_rmsnorm(a.qkv + (size_t)a.nq * a.hd, T, a.nkv, a.hd, a.stride, a.k_norm, a.eps, s))
        return -1;
    if (k_rope(a.qkv, a.pos, a.inv_freq, T, a.nq, a.nkv, a.hd, a.stride, s)) return -1;
    return k_kv_write(a.kc, a.vc, a.qkv, a.slots, T, a.nq, a.nkv, a.hd, a.stride, s);
}

extern "C" int k_qkv_prep(k_bf16 *qkv, k_bf16 *k_cache, k_bf16 *v_cache, const k_qkv_w *w,
                          const int32_t *positions, const float *inv_freq, const int32_t *slot_mapping, int T,
                          int nq, int nkv, int head_dim, int tok_stride, cudaStream_t s) {
    if (T < 0 || nq <= 0 || nkv <= 0 || head_dim <= 0 || (head_dim & 1) || !w) return -1;
    int QKV = (nq + 2 * nkv) * head_dim;
    if (tok_stride < QKV || (w->bias && tok_stride != QKV)) return -1;   /* k_add_bias: rows of QKV */
    if (T == 0) return 0;
    qp_args a = {qkv, k_cache, v_cache, w->bias, w->q_norm, w->k_norm, positions, inv_freq, slot_mapping, w->eps,
                 nq, nkv, head_dim, tok_stride};
    size_t smem = (size_t)QKV * 2 + (size_t)head_dim * 4;
    bool ok = k_elementwise_impl(-1) == K_ELEM_VECTOR && head_dim % 16 == 0 && tok_stride % 8 == 0 &&
              smem <= QP_MAX_SMEM && qp_al16(qkv) && qp_al16(k_cache) && qp_al16(v_cache) &&
              (!w->bias || qp_al16(w->bias));
    if (!ok) return qp_unfused(a, T, s);
    qkv_prep_kernel<<<T, QP_THREADS, smem, s>>>(a);
    return K_LAUNCH_OK();
}
