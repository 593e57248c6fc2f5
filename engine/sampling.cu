/* sampling.cu: token sampling (greedy, temperature, top-k, top-p, per-request
 * seed) and log-probabilities of given tokens, one block of 1024 threads per
 * logits row.  May touch only its own rows of logits (read) and tokens/out.
 *
 * The definition (kref_sample_row computes the same, by sorting):
 *   z = logits * (1/T) (kref_scale, IEEE), key = kref_fkey(z) (the float order, -0 < +0);
 *   top-k (0 < k < V): thr = the largest key with count(key' >= thr) >= k;
 *   top-p (< 1): w = kref_wfix(z - zmax) = floor(2^32 exp(z - zmax)), an integer,
 *     total = sum of w over key >= thr, target = kref_topp_target(top_p, total)
 *     = max(1, ceil(top_p * total in double)); thr = the largest key with
 *     mass(key' >= thr) >= target (unchanged when total is 0);
 *   token = the first argmax of kref_gumbel(z, seed, step, i) = z - log(-log u_i)
 *     over key >= thr (u_i = kref_uniform(seed, step, i): a row never depends on
 *     the rest of the batch).
 * exp and log are kernels_ref.h's own (fmaf and the __f*_rn intrinsics), so the
 * weights and the noise are the same bits on the GPU and in C, and the masses,
 * being integer sums, do not depend on the order of addition: kernel and
 * reference give the same token for every row, whatever the thread scheduling.
 *
 * How: a threshold is found by a select over a 2048-bin histogram (integer
 * shared-memory atomics, 32-bit: a 64-bit mass is added as two halves, the low
 * half's wrap carried into the high one by the thread that wrapped it, so the sum
 * is exact).  Round 0 bins a token by its distance below the row's max,
 * dig0 = 2047 - floor((zmax - z) * s), s = 2047 / min(zmax - zmin, 32): monotone
 * in the key, so each bin is a run of keys, and spread over the row's actual range
 * (binning the key's top bits instead put a near-uniform row, whose values share
 * their exponent, into a handful of bins: thousands of threads serialised on the
 * same shared addresses).  The bin reaching the target is kept; one more read of
 * the row takes the Gumbel maximum of the tokens of the bins above it (certainly
 * kept) and copies the bin's tokens (key, index) into shared memory when they fit
 * (SAMPLE_CAP; else the later rounds read the row again).  The exact key is then
 * selected among those by the offset key - min key of the bin, 11/11/10 bits,
 * skipping the leading rounds that the bin's key span leaves 0, and the Gumbel
 * maximum is completed over the bin's tokens at or above it.  The noise (a hash
 * and two logs: the costliest arithmetic here) is thus computed only for kept
 * tokens, and its two logs are skipped when the token's u alone shows that it
 * cannot beat the best kept token found so far (noise_floor: a bound with a wide
 * margin, so the skip never changes the result).  Passes over the 600 KB row
 * (V = 151,936): top-p or top-k: the max and min, round 0, the Gumbel/copy pass
 * (3; up to 4 more when the bin overflows); both: 5;  neither: 1;  greedy: 1.
 * Loads are float4 when V % 4 == 0 and the row is 16-byte aligned.  Greedy is as
 * before (the first maximum).  Rows of NaN, or all -inf, give some token in range. */
#include "engine/common.cuh"
#include "engine/kernels_ref.h"
#include <cooperative_groups.h>

namespace cg = cooperative_groups;
typedef unsigned long long u64;

#define SAMPLE_THREADS 1024
#define SAMPLE_NB 2048                                 /* bins of a round (11 bits) */
#define SAMPLE_CAP 16384                               /* candidates in shared memory */
#define SAMPLE_SMEM ((2 * SAMPLE_NB + 2 * SAMPLE_CAP) * 4)

__constant__ int c_shift[3] = {21, 10, 0};
__constant__ int c_bits[3] = {11, 11, 10};

/* sum (op 0) or max (op 1) of a u64 over the block; every thread gets it */
__device__ u64 block_u64(u64 v, int op) {
    __shared__ u64 sh[32];
    for (int o = 16; o > 0; o >>= 1) {
        u64 x = __shfl_xor_sync(0xffffffffu, v, o);
        v = op ? (x > v ? x : v) : v + x;
    }
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < (SAMPLE_THREADS >> 5) ? sh[l] : 0;
    for (int o = 16; o > 0; o >>= 1) {
        u64 x = __shfl_xor_sync(0xffffffffu, v, o);
        v = op ? (x > v ? x : v) : v + x;
    }
    return v;
}

/* (key of the noisy value, first index on ties) as one integer: max = Gumbel argmax */
__device__ __forceinline__ u64 gpack(float v, int i) {
    return ((u64)kref_fkey(v) << 32) | (u64)(0xffffffffu - (uint32_t)i);
}

/* f(i, x) for every element of the row, this thread's share (float4 loads when aligned) */
template <class F> __device__ __forceinline__ void for_row(const float *row, int V, F f) {
    int tid = threadIdx.x;
    if ((V & 3) == 0 && ((uintptr_t)row & 15) == 0) {
        const float4 *r4 = reinterpret_cast<const float4 *>(row);
        int n4 = V >> 2;
        for (int j = tid; j < n4; j += 2 * SAMPLE_THREADS) {
            int j2 = j + SAMPLE_THREADS;
            float4 a = __ldg(r4 + j), b = j2 < n4 ? __ldg(r4 + j2) : make_float4(0, 0, 0, 0);
            f(4 * j, a.x); f(4 * j + 1, a.y); f(4 * j + 2, a.z); f(4 * j + 3, a.w);
            if (j2 < n4) { f(4 * j2, b.x); f(4 * j2 + 1, b.y); f(4 * j2 + 2, b.z); f(4 * j2 + 3, b.w); }
        }
    } else {
        for (int i = tid; i < V; i += SAMPLE_THREADS) f(i, __ldg(row + i));
    }
}

/* this thread's max and min of x over the row: a pure read, 4 float4 loads in flight */
__device__ void row_range(const float *row, int V, float *mx, float *mn) {
    float a = -INFINITY, b = INFINITY;
    int tid = threadIdx.x;
    if ((V & 3) == 0 && ((uintptr_t)row & 15) == 0) {
        const float4 *r4 = reinterpret_cast<const float4 *>(row);
        int n4 = V >> 2;
        for (int j = tid; j < n4; j += 4 * SAMPLE_THREADS) {
            float4 q[4];
#pragma unroll
            for (int u = 0; u < 4; u++)
                q[u] = j + u * SAMPLE_THREADS < n4 ? __ldg(r4 + j + u * SAMPLE_THREADS) : __ldg(r4 + j);
#pragma unroll
            for (int u = 0; u < 4; u++) {
                a = fmaxf(a, fmaxf(fmaxf(q[u].x, q[u].y), fmaxf(q[u].z, q[u].w)));
                b = fminf(b, fminf(fminf(q[u].x, q[u].y), fminf(q[u].z, q[u].w)));
            }
        }
    } else {
        for (int i = tid; i < V; i += SAMPLE_THREADS) { float x = __ldg(row + i); a = fmaxf(a, x); b = fminf(b, x); }
    }
    *mx = a; *mn = b;
}

/* A row being sampled: what every pass needs. */
struct srow {
    const float *row;
    int V;
    float inv, zmax, s;                                /* 1/T, max z, round 0's bins per unit of z */
    uint64_t seed, step;
};

/* round 0's digit: 2047 for z within 1/s of zmax, down to 0 (also the far tail,
 * NaN and the rows of no finite max); non-decreasing in the key */
__device__ __forceinline__ int dig0(const srow &q, float z) {
    float t = __fmul_rn(__fsub_rn(q.zmax, z), q.s);
    return t < 2047.0f ? 2047 - (int)t : 0;
}
__device__ __forceinline__ u64 zval(const srow &q, int mass, float z) {
    return mass ? kref_wfix(__fsub_rn(z, q.zmax)) : 1;
}

/* The histogram: (SAMPLE_NB,) low and high 32-bit halves in shared memory.  A
 * thread adds a run of equal digits at once (ties, all-equal rows). */
struct hist {
    uint32_t *lo, *hi;
    int cur;
    u64 acc;
};
__device__ __forceinline__ void hist_add(hist &h, int b, u64 v) {
    uint32_t l = (uint32_t)v, c = (uint32_t)(v >> 32);
    if (l) { uint32_t o = atomicAdd(h.lo + b, l); c += (uint32_t)(o + l < o); }   /* the wrap, once */
    if (c) atomicAdd(h.hi + b, c);
}
__device__ __forceinline__ void hist_put(hist &h, int d, u64 v) {
    if (d == h.cur) { h.acc += v; return; }
    if (h.cur >= 0 && h.acc) hist_add(h, h.cur, h.acc);
    h.cur = d; h.acc = v;
}
__device__ __forceinline__ void hist_flush(hist &h) {
    if (h.cur >= 0 && h.acc) hist_add(h, h.cur, h.acc);
    h.cur = -1; h.acc = 0;
}
/* zero the bins (the block; the caller syncs) */
__device__ __forceinline__ void hist_zero(hist &h) {
    for (int b = threadIdx.x; b < SAMPLE_NB; b += SAMPLE_THREADS) { h.lo[b] = 0; h.hi[b] = 0; }
    h.cur = -1; h.acc = 0;
}

/* A u below which z - log(-log u) < L for every z <= zb: exp(-exp(zb - L)), lowered
 * by a margin far above the roundings of kref_log and of this double arithmetic, so
 * that skipping the logs of such a token never drops the argmax (the result does
 * not depend on the filter; it only saves the two logs for most tokens: the
 * running best of a thread's kept tokens rises like log n). */
__device__ __noinline__ float noise_floor(float zb, float L) {
    double dz = (double)zb - (double)L + 1e-4 * (fabs((double)zb) + fabs((double)L)) + 1e-3;
    double u = exp(-exp(dz)) * (1.0 - 1e-6);
    return u == u ? (float)u : 0.0f;
}

/* The Gumbel maximum over tokens that are certainly kept, as a thread sees it. */
struct gumbel {
    u64 gmax;                                          /* this thread's best (key(z + g), -i) */
    uint32_t seen, *kb;                                /* the block's best key (shared), as last read */
    float zb, uthr;                                    /* max z; u < uthr cannot beat `seen` */
    uint64_t seed, step;
};
__device__ __forceinline__ gumbel gumbel_of(const srow &q, u64 best, uint32_t *kb) {
    gumbel g;
    g.gmax = best; g.seen = 0; g.kb = kb; g.zb = q.zmax; g.uthr = 0.0f; g.seed = q.seed; g.step = q.step;
    return g;
}
/* token i (value z) is kept: its noise, unless its u shows that it cannot beat the
 * best kept token seen so far.  Which tokens are skipped depends on the timing of
 * the other threads; the result does not. */
__device__ __forceinline__ void gumbel_put(gumbel &g, int i, float z) {
    uint32_t b = *(volatile uint32_t *)g.kb;
    if (b > g.seen) { g.seen = b; g.uthr = noise_floor(g.zb, kref_unkey(b)); }
    float u = kref_uniform(g.seed, g.step, (uint64_t)i);
    if (u < g.uthr) return;
    u64 v = gpack(kref_gumbel_u(z, u), i);
    if (v <= g.gmax) return;
    g.gmax = v;
    if ((uint32_t)(v >> 32) > g.seen) atomicMax(g.kb, (uint32_t)(v >> 32));
}

/* The digit of a round: the largest d with above + sum(hist[d..]) >= target, unique
 * when above < target <= above + sum(hist); *above grows by sum(hist[d+1..]).  With
 * topp, *target is first set to kref_topp_target(top_p, the histogram's sum).
 * -1 when there is none (target 0: a row of no mass). */
__device__ int pick(const hist &hs, u64 *above, u64 *target, int topp, float top_p) {
    __shared__ u64 wsum[32], s_above, s_total;
    __shared__ int s_digit;
    const int per = SAMPLE_NB / SAMPLE_THREADS;
    int tid = threadIdx.x, b0 = tid * per, w = tid >> 5, l = tid & 31;
    u64 own = 0;
    for (int b = 0; b < per; b++) own += ((u64)hs.hi[b0 + b] << 32) + hs.lo[b0 + b];
    u64 inc = own;                                     /* inclusive scan by thread */
    for (int o = 1; o < 32; o <<= 1) {
        u64 x = __shfl_up_sync(0xffffffffu, inc, o);
        if (l >= o) inc += x;
    }
    if (tid == 0) { s_digit = -1; s_above = *above; }
    if (l == 31) wsum[w] = inc;
    __syncthreads();
    if (w == 0) {
        u64 x = l < (SAMPLE_THREADS >> 5) ? wsum[l] : 0, y = x;
        for (int o = 1; o < 32; o <<= 1) {
            u64 t = __shfl_up_sync(0xffffffffu, y, o);
            if (l >= o) y += t;
        }
        wsum[l] = y - x;                               /* exclusive: the warps before */
        if (l == 31) s_total = y;
    }
    __syncthreads();
    inc += wsum[w];
    u64 tg = topp ? kref_topp_target(top_p, s_total) : *target;
    u64 sfx = s_total - inc;                           /* the bins of the threads after this one */
    for (int b = per - 1; b >= 0; b--) {
        u64 h = ((u64)hs.hi[b0 + b] << 32) + hs.lo[b0 + b], hi = *above + sfx;   /* sum above bin b0 + b */
        if (h && hi < tg && hi + h >= tg) { s_digit = b0 + b; s_above = hi; }
        sfx += h;
    }
    __syncthreads();
    int d = s_digit;
    *above = s_above;
    *target = tg;
    __syncthreads();                                   /* all have read the bins and s_digit */
    return d;
}

/* The candidates: round 0's chosen bin, (SAMPLE_CAP,) keys and indices in shared
 * memory (n may pass the capacity: then the row is read again). */
struct cands {
    uint32_t *key;
    int *idx;
    int *n;
};
__device__ __forceinline__ void cand_push(const cands &c, uint32_t key, int i) {
    cg::coalesced_group grp = cg::coalesced_threads();        /* warp-aggregated append */
    int base = 0;
    if (grp.thread_rank() == 0) base = atomicAdd(c.n, (int)grp.size());
    int pos = grp.shfl(base, 0) + (int)grp.thread_rank();
    if (pos < SAMPLE_CAP) { c.key[pos] = key; c.idx[pos] = i; }
}

/* The key within round 0's bin d0 (keys kmin..kmin + span, n of them): rounds over
 * the offset key - kmin (21/10/0, 11/11/10 bits), from the candidates or the row. */
__device__ uint32_t refine(const srow &q, int mass, uint32_t lo, int d0, const cands &c, int n, uint32_t kmin,
                           uint32_t span, hist &hs, u64 above, u64 target) {
    uint32_t prefix = 0;
    for (int r = 0; r < 3; r++) {
        int sh = c_shift[r], bits = c_bits[r], hi = sh + bits;
        if ((span >> sh) == 0) continue;               /* a leading digit that is 0 for all */
        hist_zero(hs);
        __syncthreads();
        uint32_t mask = (1u << bits) - 1;
        auto put = [&](uint32_t key, float z) {
            uint32_t o = key - kmin;
            if (hi < 32 && (o >> hi) != prefix) return;
            hist_put(hs, (int)((o >> sh) & mask), zval(q, mass, z));
        };
        if (n <= SAMPLE_CAP) {
            for (int j = threadIdx.x; j < n; j += SAMPLE_THREADS) { uint32_t key = c.key[j]; put(key, kref_unkey(key)); }
        } else {
            for_row(q.row, q.V, [&](int i, float x) {
                float z = kref_scale(x, q.inv);
                uint32_t key = kref_fkey(z);
                if (key >= lo && dig0(q, z) == d0) put(key, z);
            });
        }
        hist_flush(hs);
        __syncthreads();
        int d = pick(hs, &above, &target, 0, 0.0f);
        prefix = (prefix << bits) | (uint32_t)(d < 0 ? 0 : d);
    }
    return kmin + prefix;
}

/* The largest key K >= lo with value(key' >= K) >= target, value: the count (mass 0,
 * target k) or the top-p mass (mass 1: target = top_p of the mass over key >= lo;
 * K = lo when that mass is 0).  gum: *best takes the Gumbel maximum over key >= K.
 * dyn: SAMPLE_SMEM bytes of shared memory. */
__device__ uint32_t tselect(const srow &q, int mass, u64 target, float top_p, uint32_t lo, int gum, u64 *best,
                           uint32_t *dyn) {
    __shared__ int s_n;
    __shared__ uint32_t s_kb;                          /* the best noise key of certainly kept tokens */
    hist hs;
    hs.lo = dyn; hs.hi = dyn + SAMPLE_NB;
    cands c;
    c.key = dyn + 2 * SAMPLE_NB; c.idx = reinterpret_cast<int *>(c.key + SAMPLE_CAP); c.n = &s_n;
    hist_zero(hs);
    __syncthreads();
    for_row(q.row, q.V, [&](int i, float x) {         /* round 0 */
        float z = kref_scale(x, q.inv);
        if (kref_fkey(z) >= lo) hist_put(hs, dig0(q, z), zval(q, mass, z));
    });
    hist_flush(hs);
    if (threadIdx.x == 0) { s_n = 0; s_kb = (uint32_t)(*best >> 32); }
    __syncthreads();
    u64 above = 0;
    int d0 = pick(hs, &above, &target, mass, top_p);
    gumbel g = gumbel_of(q, *best, &s_kb);
    uint32_t kmin = 0xffffffffu, kmax = 0;
    for_row(q.row, q.V, [&](int i, float x) {         /* the bins above d0; d0's tokens */
        float z = kref_scale(x, q.inv);
        uint32_t key = kref_fkey(z);
        if (key < lo) return;
        int d = dig0(q, z);
        if (d > d0) {
            if (gum) gumbel_put(g, i, z);
        } else if (d == d0) {
            kmin = min(kmin, key); kmax = max(kmax, key);
            cand_push(c, key, i);
        }
    });
    if (gum) *best = block_u64(g.gmax, 1);
    kmin = ~(uint32_t)block_u64((u64)~kmin, 1);
    kmax = (uint32_t)block_u64((u64)kmax, 1);
    int n = s_n;                                       /* block_u64 synced after the appends */
    if (d0 < 0) {                                      /* no mass: all of key >= lo kept */
        __syncthreads();
        return lo;
    }
    uint32_t K = refine(q, mass, lo, d0, c, n, kmin, kmax - kmin, hs, above, target);
    if (gum) {
        if (threadIdx.x == 0) s_kb = (uint32_t)(*best >> 32);
        __syncthreads();
        g = gumbel_of(q, *best, &s_kb);
        if (n <= SAMPLE_CAP) {
            for (int j = threadIdx.x; j < n; j += SAMPLE_THREADS)
                if (c.key[j] >= K) gumbel_put(g, c.idx[j], kref_unkey(c.key[j]));
        } else {
            for_row(q.row, q.V, [&](int i, float x) {
                float z = kref_scale(x, q.inv);
                uint32_t key = kref_fkey(z);
                if (key >= K && key >= lo && dig0(q, z) == d0) gumbel_put(g, i, z);
            });
        }
        *best = block_u64(g.gmax, 1);
    }
    __syncthreads();                                   /* the candidates are read before a next select */
    return K;
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_kernel(int32_t *tokens, const float *logits, const k_sample_params *params, int V) {
    extern __shared__ uint32_t dyn[];                  /* SAMPLE_SMEM bytes: histogram, candidates */
    int r = blockIdx.x, tid = threadIdx.x;
    const float *row = logits + (size_t)r * V;
    k_sample_params p = params[r];
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    if (p.temperature <= 0) {                          /* greedy: the first maximum */
        for (int i = tid; i < V; i += SAMPLE_THREADS)
            if (row[i] > bv || bi == 0x7fffffff) { bv = row[i]; bi = i; }
        block_argmax(bv, bi);
        if (tid == 0) tokens[r] = bi;
        return;
    }
    int usek = p.top_k > 0 && p.top_k < V, usep = p.top_p < 1.0f;
    u64 best = 0;
    float inv = kref_inv_temp(p.temperature);
    if (!usek && !usep) {                              /* plain temperature: one pass */
        for (int i = tid; i < V; i += SAMPLE_THREADS) {
            u64 g = gpack(kref_gumbel(kref_scale(row[i], inv), p.seed, p.step, (uint64_t)i), i);
            if (g > best) best = g;
        }
        best = block_u64(best, 1);
    } else {
        float mx, mn;
        row_range(row, V, &mx, &mn);
        srow q;
        q.row = row; q.V = V; q.inv = inv; q.seed = p.seed; q.step = p.step;
        q.zmax = kref_scale(block_max(mx), inv);       /* x -> x / T is monotone (T > 0) */
        float zmin = kref_scale(-block_max(-mn), inv);
        float rg = fminf(__fsub_rn(q.zmax, zmin), 32.0f);                /* NaN, inf -> 32 */
        q.s = rg > 0.0f ? fminf(__fdiv_rn(2047.0f, rg), 0x1p40f) : 64.0f;
        uint32_t thr = 0;
        if (usek) thr = tselect(q, 0, (u64)p.top_k, 0.0f, 0, !usep, &best, dyn);
        if (usep) tselect(q, 1, 0, p.top_p, thr, 1, &best, dyn);
    }
    if (tid == 0) tokens[r] = best ? (int)(0xffffffffu - (uint32_t)best) : 0;
}

extern "C" int k_sample(int32_t *tokens, const float *logits, const k_sample_params *params, int R,
                        int V, cudaStream_t s) {
    if (R < 0 || V <= 0) return -1;
    if (R == 0) return 0;
    static unsigned char attr_set[64];                 /* per device: above 48 KB of shared memory */
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return -1;
    if (dev < 0 || dev >= 64 || !attr_set[dev]) {
        if (cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SAMPLE_SMEM) !=
            cudaSuccess)
            return -1;
        if (dev >= 0 && dev < 64) attr_set[dev] = 1;
    }
    sample_kernel<<<R, SAMPLE_THREADS, SAMPLE_SMEM, s>>>(tokens, logits, params, V);
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
