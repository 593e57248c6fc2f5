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
 *     mass(key' >= thr) >= target;
 *   token = the first argmax of kref_gumbel(z, seed, step, i) = z - log(-log u_i)
 *     over key >= thr (u_i = kref_uniform(seed, step, i): a row never depends on
 *     the rest of the batch).
 * exp and log are kernels_ref.h's own (fmaf and the __f*_rn intrinsics), so the
 * weights and the noise are the same bits on the GPU and in C, and the masses,
 * being integer sums, do not depend on the order of addition: kernel and
 * reference give the same token for every row, whatever the thread scheduling.
 *
 * How (radix select instead of the former 32-pass bisections per threshold):
 * a threshold is found in 3 rounds over the key's digits (11, 11, 10 bits).
 * Round r builds, in shared memory, a 2048-bin histogram of the count or the
 * fixed-point mass of the elements whose key matches the digits chosen so far
 * (integer atomics; each thread adds a run of equal digits at once), and the
 * block picks by a scan the largest digit whose suffix (plus what lies above)
 * still reaches the target.  The Gumbel maximum needs no pass of its own: round 1,
 * which reads the whole row anyway, takes it over the keys above round 0's bucket
 * (kept whatever the finer digits), and rounds 1 and 2 keep per bin the largest
 * (key(z + g), -i) of their bucket's elements (a 64-bit atomicMax: exact, order-
 * free), settled for the bins above each chosen digit.  So the noise (a hash and
 * two logs: the costliest arithmetic here) is computed only for kept tokens and
 * round 0's bucket, and its two logs are skipped when the token's u alone shows
 * that it cannot beat the best kept token found so far (noise_floor: a bound with
 * a wide margin, so the skip never changes the result).  Round 1 also copies its
 * bucket's elements (key, index) into shared memory when they fit (SAMPLE_CAP),
 * and round 2 then reads those instead of the row.  Passes over the 600 KB row (V = 151,936):
 *   top-p: max, round 0, round 1, and round 2 only when the bucket overflowed
 *          (3 or 4, from 35);  top-k: 2 or 3 (the max rides on round 0);
 *   both:  top-k's rounds, then top-p's (4 to 6);  neither: 1;  greedy: 1.
 * Loads are float4 when V % 4 == 0 and the row is 16-byte aligned.  Greedy is as
 * before (the first maximum).  Rows of NaN, or all -inf, give some token in range. */
#include "engine/common.cuh"
#include "engine/kernels_ref.h"
#include <cooperative_groups.h>

namespace cg = cooperative_groups;
typedef unsigned long long u64;

#define SAMPLE_THREADS 1024
#define SAMPLE_NB 2048                                 /* bins of a round (11 bits) */
#define SAMPLE_CAP 8192                                /* candidates in shared memory */
#define SAMPLE_SMEM (2 * SAMPLE_NB * 8 + SAMPLE_CAP * 8)

__constant__ int c_shift[3] = {21, 10, 0};
__constant__ int c_bits[3] = {11, 11, 10};

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

/* One round over a source (the row or the candidates): the state of a thread. */
struct rstate {
    float inv, zmax;                /* 1/T, max z */
    uint64_t seed, step;
    int mass, gum, collect;        /* weights (else counts), Gumbel bins, copy the matches */
    int gabove;                    /* Gumbel max of the keys above the prefix, into gmax */
    int hi, shift;                 /* match: hi >= 32 or key >> hi == prefix */
    uint32_t prefix, mask, lo;     /* tot sums the values of key >= lo */
    int cur;                       /* the run of equal digits being summed */
    u64 acc, gacc, tot, gmax;      /* gmax: this thread's best of the tokens certainly kept */
    u64 seen, *kbest;              /* the block's best of those (shared), as last read */
    float zb, uthr;                /* max z; u < uthr cannot beat `seen` (noise_floor) */
    float zloc;                    /* max z seen (round 0) */
    u64 *hist, *gbin;              /* (SAMPLE_NB,) each, shared */
    uint32_t *ckey;                /* (SAMPLE_CAP,) shared */
    int *cidx, *ncand;             /* (SAMPLE_CAP,) shared; count (may pass CAP) */
};

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

/* the Gumbel key of token i unless its u shows that it cannot beat the best kept
 * token seen so far (then 0).  Which tokens are skipped depends on the timing of
 * the other threads; the result does not. */
__device__ __forceinline__ u64 rs_noise(rstate &s, int i, float z) {
    u64 b = *(volatile u64 *)s.kbest;
    if (b > s.seen) { s.seen = b; s.uthr = noise_floor(s.zb, kref_unkey((uint32_t)(b >> 32))); }
    float u = kref_uniform(s.seed, s.step, (uint64_t)i);
    return u < s.uthr ? 0 : gpack(kref_gumbel_u(z, u), i);
}
/* g belongs to a token that is kept whatever the threshold: the block's best may rise */
__device__ __forceinline__ void rs_kept(rstate &s, u64 g) {
    if (g <= s.gmax) return;
    s.gmax = g;
    if (g > s.seen) atomicMax(s.kbest, g);
}

__device__ __forceinline__ void rs_flush(rstate &s) {
    if (s.cur < 0) return;
    if (s.acc) atomicAdd(&s.hist[s.cur], s.acc);
    if (s.gum) atomicMax(&s.gbin[s.cur], s.gacc);
}

__device__ __forceinline__ void rs_elem(rstate &s, int i, float z, uint32_t key) {
    if (s.hi < 32 && (key >> s.hi) != s.prefix) {
        if (s.gabove && (key >> s.hi) > s.prefix) rs_kept(s, rs_noise(s, i, z));   /* kept */
        return;
    }
    int d = (int)((key >> s.shift) & s.mask);
    u64 val = s.mass ? kref_wfix(__fsub_rn(z, s.zmax)) : 1;
    if (key >= s.lo) s.tot += val;
    u64 g = s.gum ? rs_noise(s, i, z) : 0;
    if (d != s.cur) {
        rs_flush(s);
        s.cur = d; s.acc = val; s.gacc = g;
    } else {
        s.acc += val;
        if (g > s.gacc) s.gacc = g;
    }
    if (s.collect) {                                   /* warp-aggregated append */
        cg::coalesced_group grp = cg::coalesced_threads();
        int base = 0;
        if (grp.thread_rank() == 0) base = atomicAdd(s.ncand, (int)grp.size());
        int pos = grp.shfl(base, 0) + (int)grp.thread_rank();
        if (pos < SAMPLE_CAP) { s.ckey[pos] = key; s.cidx[pos] = i; }
    }
}

__device__ __forceinline__ void rs_x(rstate &s, int i, float x) {
    float z = kref_scale(x, s.inv);
    s.zloc = fmaxf(s.zloc, z);
    rs_elem(s, i, z, kref_fkey(z));
}

/* every element of the row through rs_x (float4 loads when aligned) */
__device__ void rs_row(rstate &s, const float *row, int V) {
    int tid = threadIdx.x;
    if ((V & 3) == 0 && ((uintptr_t)row & 15) == 0) {
        const float4 *r4 = reinterpret_cast<const float4 *>(row);
        int n4 = V >> 2;
        for (int j = tid; j < n4; j += 2 * SAMPLE_THREADS) {
            int j2 = j + SAMPLE_THREADS;
            float4 a = __ldg(r4 + j), b = j2 < n4 ? __ldg(r4 + j2) : make_float4(0, 0, 0, 0);
            rs_x(s, 4 * j, a.x); rs_x(s, 4 * j + 1, a.y); rs_x(s, 4 * j + 2, a.z); rs_x(s, 4 * j + 3, a.w);
            if (j2 < n4) {
                rs_x(s, 4 * j2, b.x); rs_x(s, 4 * j2 + 1, b.y); rs_x(s, 4 * j2 + 2, b.z); rs_x(s, 4 * j2 + 3, b.w);
            }
        }
    } else {
        for (int i = tid; i < V; i += SAMPLE_THREADS) rs_x(s, i, __ldg(row + i));
    }
    rs_flush(s);
}

/* this thread's max of z over the row: a pure read, 4 float4 loads in flight per thread */
__device__ float row_max_z(const float *row, int V, float inv) {
    float m = -INFINITY;
    int tid = threadIdx.x;
    if ((V & 3) == 0 && ((uintptr_t)row & 15) == 0) {
        const float4 *r4 = reinterpret_cast<const float4 *>(row);
        int n4 = V >> 2;
        for (int j = tid; j < n4; j += 4 * SAMPLE_THREADS) {
            float4 q[4];
#pragma unroll
            for (int u = 0; u < 4; u++)
                q[u] = j + u * SAMPLE_THREADS < n4 ? __ldg(r4 + j + u * SAMPLE_THREADS)
                                                   : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
#pragma unroll
            for (int u = 0; u < 4; u++) m = fmaxf(m, fmaxf(fmaxf(q[u].x, q[u].y), fmaxf(q[u].z, q[u].w)));
        }
    } else {
        for (int i = tid; i < V; i += SAMPLE_THREADS) m = fmaxf(m, __ldg(row + i));
    }
    return kref_scale(m, inv);                         /* x -> x / T is monotone (T > 0) */
}

__device__ void rs_cand(rstate &s, int n) {
    for (int c = threadIdx.x; c < n; c += SAMPLE_THREADS) {
        uint32_t key = s.ckey[c];
        rs_elem(s, s.cidx[c], kref_unkey(key), key);
    }
    rs_flush(s);
}

/* The digit of this round: the largest d with above + sum(hist[d..]) >= target
 * (unique, since above < target <= above + sum(hist)); *above grows by sum(hist[d+1..]).
 * Then *best takes the max of gbin over the bins above d (from d on, when last). */
__device__ int pick(const u64 *hist, const u64 *gbin, int nb, u64 *above, u64 target, int gum,
                    int last, u64 *best) {
    __shared__ u64 wsum[32], s_above, s_total;
    __shared__ int s_digit;
    int tid = threadIdx.x, per = nb / SAMPLE_THREADS, b0 = tid * per;
    u64 own = 0;
    for (int b = 0; b < per; b++) own += hist[b0 + b];
    u64 inc = own;                                     /* inclusive scan by thread */
    int w = tid >> 5, l = tid & 31;
    for (int o = 1; o < 32; o <<= 1) {
        u64 x = __shfl_up_sync(0xffffffffu, inc, o);
        if (l >= o) inc += x;
    }
    if (tid == 0) { s_digit = 0; s_above = *above; }
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
    u64 sfx = s_total - inc;                           /* the bins of the threads after this one */
    for (int b = per - 1; b >= 0; b--) {
        u64 h = hist[b0 + b], hi = *above + sfx;       /* sum above bin b0 + b */
        if (h && hi < target && hi + h >= target) { s_digit = b0 + b; s_above = hi; }
        sfx += h;
    }
    __syncthreads();
    int d = s_digit;
    *above = s_above;
    if (gum) {
        u64 m = 0;
        for (int b = 0; b < per; b++) {
            int bin = b0 + b;
            if ((bin > d || (last && bin == d)) && gbin[bin] > m) m = gbin[bin];
        }
        m = block_u64(m, 1);
        if (m > *best) *best = m;
    }
    __syncthreads();
    return d;
}

/* The largest key with value(key' >= key) >= target (value: count, or mass when
 * top_p > 0 is given: the target is then top_p of the mass over key >= lo).
 * zmax_out: the row's max z, from round 0; best: the Gumbel max, when gum. */
__device__ uint32_t rselect(const float *row, int V, const k_sample_params &p, int mass, float zmax,
                            u64 target, float top_p, uint32_t lo, int gum, float *zmax_out, u64 *best,
                            u64 *dyn) {
    __shared__ int s_ncand;
    __shared__ u64 s_kbest;                            /* the best noise key of certainly kept tokens */
    u64 *hist = dyn, *gbin = dyn + SAMPLE_NB;
    uint32_t *ckey = reinterpret_cast<uint32_t *>(dyn + 2 * SAMPLE_NB);
    int *cidx = reinterpret_cast<int *>(ckey + SAMPLE_CAP);
    uint32_t prefix = 0;
    u64 above = 0;
    float zb = zmax_out ? INFINITY : zmax;             /* the noise filter's max z (none in round 0) */
    int ncand = -1;                                    /* candidates of round 1, when they fit */
    for (int r = 0; r < 3; r++) {
        for (int b = threadIdx.x; b < 2 * SAMPLE_NB; b += SAMPLE_THREADS) dyn[b] = 0;
        if (threadIdx.x == 0) { s_ncand = 0; s_kbest = *best; }
        __syncthreads();
        rstate s;
        s.inv = kref_inv_temp(p.temperature); s.zmax = zmax; s.seed = p.seed; s.step = p.step;
        s.mass = mass; s.gum = gum && r > 0; s.gabove = gum && r == 1; s.collect = r == 1;
        s.shift = c_shift[r]; s.hi = r == 0 ? 32 : c_shift[r] + c_bits[r];
        s.prefix = prefix; s.mask = (1u << c_bits[r]) - 1; s.lo = lo;
        s.cur = -1; s.acc = s.gacc = s.tot = 0; s.zloc = -INFINITY;
        s.gmax = *best; s.zb = zb;                     /* best so far: only certainly kept tokens */
        s.seen = 0; s.uthr = 0.0f; s.kbest = &s_kbest;
        s.hist = hist; s.gbin = gbin; s.ckey = ckey; s.cidx = cidx; s.ncand = &s_ncand;
        if (ncand >= 0) rs_cand(s, ncand);
        else rs_row(s, row, V);
        __syncthreads();
        if (r == 0) {
            if (zmax_out) *zmax_out = zb = block_max(s.zloc);
            if (mass) target = kref_topp_target(top_p, block_u64(s.tot, 0));
        }
        if (r == 1) {
            if (s_ncand <= SAMPLE_CAP) ncand = s_ncand;
            if (gum) { u64 g = block_u64(s.gmax, 1); if (g > *best) *best = g; }
        }
        int d = pick(hist, gbin, 1 << c_bits[r], &above, target, gum && r > 0, r == 2, best);
        prefix = (prefix << c_bits[r]) | (uint32_t)d;
    }
    return prefix;
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_kernel(int32_t *tokens, const float *logits, const k_sample_params *params, int V) {
    extern __shared__ u64 dyn[];                       /* SAMPLE_SMEM bytes: hist, gbin, candidates */
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
        float zmax = -INFINITY;
        uint32_t thr = 0;
        if (usek) thr = rselect(row, V, p, 0, 0.0f, (u64)p.top_k, 0.0f, 0, !usep, &zmax, &best, dyn);
        if (usep) {
            if (!usek) zmax = block_max(row_max_z(row, V, inv));
            rselect(row, V, p, 1, zmax, 0, p.top_p, thr, 1, NULL, &best, dyn);
        }
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
