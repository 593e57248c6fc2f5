/* sampling.cu: token sampling (greedy, temperature, top-k, top-p, per-request
 * seed) and log-probabilities of given tokens, one block per logits row.
 * Top-k and top-p thresholds are found by bisection over the ordered bit
 * patterns of the values (32 counting passes each), so no sort is needed and
 * the result is exact; sampling is Gumbel-max with noise from the counter
 * (seed, step, token), so a row never depends on the rest of the batch. */
#include "engine/common.cuh"
#include "engine/kernels_ref.h"

#define SAMPLE_THREADS 1024

/* monotone map float -> uint32 (a < b  <=>  key(a) < key(b)) */
__device__ __forceinline__ uint32_t fkey(float f) {
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* argmax over the block of (v, i), first index on ties */
__device__ void block_argmax(float &v, int &i) {
    __shared__ float sv[32];
    __shared__ int si[32];
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
    }
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (l == 0) { sv[w] = v; si[w] = i; }
    __syncthreads();
    v = l < nw ? sv[l] : -INFINITY;
    i = l < nw ? si[l] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
    }
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_kernel(int32_t *tokens, const float *logits, const k_sample_params *params, int V) {
    int r = blockIdx.x, tid = threadIdx.x;
    const float *row = logits + (size_t)r * V;
    k_sample_params p = params[r];
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    if (p.temperature <= 0) {
        for (int i = tid; i < V; i += SAMPLE_THREADS)
            if (row[i] > bv || bi == 0x7fffffff) { bv = row[i]; bi = i; }
        block_argmax(bv, bi);
        if (tid == 0) tokens[r] = bi;
        return;
    }
    float zmax = -INFINITY;
    for (int i = tid; i < V; i += SAMPLE_THREADS) zmax = fmaxf(zmax, row[i] / p.temperature);
    zmax = block_max(zmax);
    uint32_t thr = 0;
    if (p.top_k > 0 && p.top_k < V) {              /* largest key with count(>= key) >= k */
        for (int bit = 31; bit >= 0; bit--) {
            uint32_t cand = thr | (1u << bit);
            float c = 0;
            for (int i = tid; i < V; i += SAMPLE_THREADS) c += fkey(row[i] / p.temperature) >= cand;
            if (block_sum(c) >= (float)p.top_k) thr = cand;
        }
    }
    if (p.top_p < 1.0f) {                          /* largest key with mass(>= key) >= top_p */
        float tot = 0;
        for (int i = tid; i < V; i += SAMPLE_THREADS) {
            float z = row[i] / p.temperature;
            if (fkey(z) >= thr) tot += expf(z - zmax);
        }
        float target = p.top_p * block_sum(tot);
        uint32_t k = 0;
        for (int bit = 31; bit >= 0; bit--) {
            uint32_t cand = k | (1u << bit);
            uint32_t lim = cand > thr ? cand : thr;
            float m = 0;
            for (int i = tid; i < V; i += SAMPLE_THREADS) {
                float z = row[i] / p.temperature;
                if (fkey(z) >= lim) m += expf(z - zmax);
            }
            if (block_sum(m) >= target) k = cand;
        }
        if (k > thr) thr = k;
    }
    for (int i = tid; i < V; i += SAMPLE_THREADS) {
        float z = row[i] / p.temperature;
        if (fkey(z) < thr) continue;
        float v = z - logf(-logf(kref_uniform(p.seed, p.step, (uint64_t)i)));
        if (v > bv || bi == 0x7fffffff) { bv = v; bi = i; }
    }
    block_argmax(bv, bi);
    if (tid == 0) tokens[r] = bi;
}

extern "C" int k_sample(int32_t *tokens, const float *logits, const k_sample_params *params, int R,
                        int V, cudaStream_t s) {
    if (R < 0 || V <= 0) return -1;
    if (R == 0) return 0;
    sample_kernel<<<R, SAMPLE_THREADS, 0, s>>>(tokens, logits, params, V);
    return K_LAUNCH_OK();
}

__global__ void logprobs_kernel(float *out, const float *logits, const int32_t *ids, int V) {
    int r = blockIdx.x, id = ids[r];
    const float *row = logits + (size_t)r * V;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, row[i]);
    m = block_max(m);
    float s = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += expf(row[i] - m);
    s = block_sum(s);
    if (threadIdx.x == 0) out[r] = (id >= 0 && id < V) ? row[id] - m - logf(s) : -INFINITY;
}
extern "C" int k_logprobs(float *out, const float *logits, const int32_t *ids, int R, int V,
                          cudaStream_t s) {
    if (R < 0 || V <= 0) return -1;
    if (R == 0) return 0;
    logprobs_kernel<<<R, 1024, 0, s>>>(out, logits, ids, V);
    return K_LAUNCH_OK();
}
