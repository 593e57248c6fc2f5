/* attention.cu: the paged KV cache — writing new K/V into their slots, and
 * the two attention kernels that read it through block tables.
 *
 * KV cache layout (one pair of arrays per layer, written once here):
 *   k_cache, v_cache: (num_blocks, block_size, num_kv_heads, head_dim) bf16
 *   token j of sequence b sits in slot
 *       block_tables[b][j / block_size] * block_size + j % block_size
 *   (kv_slot below: the only place that knows about paging).
 * Batch (flattened varlen, as the scheduler produces it):
 *   qkv (T, tok_stride) bf16: q heads (nq*hd) | k heads (nkv*hd) | v heads (nkv*hd)
 *   query_start (B+1,), context_lens (B,) (tokens in cache after this step),
 *   block_tables (B, max_blocks) int32.  Query i of sequence b (0-based within
 *   its qn queries) has position context_len - qn + i and sees keys 0..pos.
 * Grouped-query heads: q head h reads kv head h / (nq / nkv). */
#include "engine/common.cuh"
#include <mma.h>
#include <stdlib.h>
#include <string.h>

/* The paged address of token j of a sequence: its physical slot. */
__device__ __forceinline__ size_t kv_slot(const int32_t *block_table, int j, int block_size) {
    return (size_t)block_table[j / block_size] * block_size + j % block_size;
}

/* ---- write new K/V: one block per token ---- */
__global__ void kv_write_kernel(k_bf16 *kc, k_bf16 *vc, const k_bf16 *qkv, const int32_t *slots,
                                int nq, int nkv, int hd, int stride) {
    int t = blockIdx.x, slot = slots[t];
    if (slot < 0) return;
    int row = nkv * hd;
    const k_bf16 *k = qkv + (size_t)t * stride + (size_t)nq * hd;
    for (int i = threadIdx.x; i < row; i += blockDim.x) {
        kc[(size_t)slot * row + i] = k[i];
        vc[(size_t)slot * row + i] = k[row + i];
    }
}
/* the same with 16-byte copies (rows and stride multiples of 8 bf16): 4 tokens a block */
__global__ void kv_write8_kernel(uint4 *kc, uint4 *vc, const k_bf16 *qkv, const int32_t *slots, int T,
                                 int nq, int nkv, int hd, int stride) {
    int t = blockIdx.x * 4 + (threadIdx.x >> 6);
    if (t >= T) return;
    int slot = slots[t];
    if (slot < 0) return;
    int row8 = nkv * hd / 8;
    const uint4 *k = reinterpret_cast<const uint4 *>(qkv + (size_t)t * stride + (size_t)nq * hd);
    for (int i = threadIdx.x & 63; i < row8; i += 64) {
        kc[(size_t)slot * row8 + i] = k[i];
        vc[(size_t)slot * row8 + i] = k[row8 + i];
    }
}
extern "C" int k_kv_write(k_bf16 *k_cache, k_bf16 *v_cache, const k_bf16 *qkv,
                          const int32_t *slot_mapping, int T, int nq, int nkv, int head_dim,
                          int tok_stride, cudaStream_t s) {
    if (T < 0 || nq <= 0 || nkv <= 0 || head_dim <= 0) return -1;
    if (T == 0) return 0;
    bool vec = head_dim % 8 == 0 && tok_stride % 8 == 0 && ((uintptr_t)qkv | (uintptr_t)k_cache | (uintptr_t)v_cache) % 16 == 0;
    if (vec)
        kv_write8_kernel<<<(T + 3) / 4, 256, 0, s>>>(reinterpret_cast<uint4 *>(k_cache), reinterpret_cast<uint4 *>(v_cache),
                                                      qkv, slot_mapping, T, nq, nkv, head_dim, tok_stride);
    else
        kv_write_kernel<<<T, 256, 0, s>>>(k_cache, v_cache, qkv, slot_mapping, nq, nkv, head_dim, tok_stride);
    return K_LAUNCH_OK();
}

/* ---- decode (v1, the scalar kernel kept for comparison: PAGESIM_ATTN=v1):
 * one query per sequence.  Block (b, kv head, partition) scores the G =
 * nq/nkv query heads of its group against DEC1_PART context tokens; with one
 * partition it writes the output, otherwise partial results that
 * decode_reduce combines. ---- */
#define DEC1_PART 512
#define DEC_THREADS 128
#define DEC_MAX_GROUP 16
template <int HD>
__global__ void __launch_bounds__(DEC_THREADS)
decode_kernel(k_bf16 *out, float *ws_o, float *ws_m, float *ws_l, const k_bf16 *qkv, int stride,
              const k_bf16 *kc, const k_bf16 *vc, const int32_t *qs, const int32_t *ctxl,
              const int32_t *bt, int max_blocks, int bs, int nq, int nkv, float scale, int nparts_max) {
    constexpr int P = DEC1_PART, E = HD / 32;
    constexpr int LPR = HD < DEC_THREADS ? HD : DEC_THREADS;    /* threads per output row */
    constexpr int DPT = HD / LPR, JS = DEC_THREADS / LPR;       /* dims per thread, j splits */
    int b = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    int q0 = qs[b];
    if (qs[b + 1] - q0 != 1) return;
    int ctx = ctxl[b], nparts = (ctx + P - 1) / P;
    if (part >= nparts) return;
    int j0 = part * P, j1 = min(ctx, j0 + P), n = j1 - j0;
    int G = nq / nkv, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int32_t *table = bt + (size_t)b * max_blocks;
    extern __shared__ float sm[];
    float *q_s = sm;                       /* (G, HD) */
    float *sc = q_s + G * HD;              /* (G, P) scores, then probabilities */
    float *ml = sc + G * P;                /* (G, 2) max, sum */
    float *red = ml + 2 * G;               /* (JS, G, HD) partial outputs */
    for (int i = tid; i < G * HD; i += DEC_THREADS)
        q_s[i] = ld(qkv, (size_t)q0 * stride + (size_t)(kvh * G) * HD + i);
    __syncthreads();
    /* scores: a warp per key, each lane a contiguous slice of E dims */
    for (int j = j0 + warp; j < j1; j += DEC_THREADS / 32) {
        const k_bf16 *kp = kc + (kv_slot(table, j, bs) * nkv + kvh) * HD + lane * E;
        float k[E];
#pragma unroll
        for (int e = 0; e < E; e++) k[e] = ld(kp, e);
        for (int g = 0; g < G; g++) {
            float d = 0;
#pragma unroll
            for (int e = 0; e < E; e++) d += q_s[g * HD + lane * E + e] * k[e];
            d = warp_sum(d);
            if (lane == 0) sc[g * P + (j - j0)] = d * scale;
        }
    }
    __syncthreads();
    /* softmax statistics per head: a warp per head */
    for (int g = warp; g < G; g += DEC_THREADS / 32) {
        float m = -INFINITY, l = 0;
        for (int j = lane; j < n; j += 32) m = fmaxf(m, sc[g * P + j]);
        m = warp_max(m);
        for (int j = lane; j < n; j += 32) { float p = __expf(sc[g * P + j] - m); sc[g * P + j] = p; l += p; }
        l = warp_sum(l);
        if (lane == 0) { ml[2 * g] = m; ml[2 * g + 1] = l; }
    }
    __syncthreads();
    /* weighted sum of V */
    int js = tid / LPR, d0 = tid % LPR;
    float acc[DEC_MAX_GROUP][DPT];
#pragma unroll
    for (int g = 0; g < DEC_MAX_GROUP; g++)
#pragma unroll
        for (int k = 0; k < DPT; k++) acc[g][k] = 0;
    for (int j = j0 + js; j < j1; j += JS) {
        const k_bf16 *vp = vc + (kv_slot(table, j, bs) * nkv + kvh) * HD;
        float v[DPT];
#pragma unroll
        for (int k = 0; k < DPT; k++) v[k] = ld(vp, d0 + k * LPR);
#pragma unroll
        for (int g = 0; g < DEC_MAX_GROUP; g++) {
            if (g >= G) break;
            float p = sc[g * P + (j - j0)];
#pragma unroll
            for (int k = 0; k < DPT; k++) acc[g][k] += p * v[k];
        }
    }
    if (JS > 1) {
#pragma unroll
        for (int g = 0; g < DEC_MAX_GROUP; g++) {
            if (g >= G) break;
#pragma unroll
            for (int k = 0; k < DPT; k++) red[(js * G + g) * HD + d0 + k * LPR] = acc[g][k];
        }
        __syncthreads();
        if (js != 0) return;
#pragma unroll
        for (int g = 0; g < DEC_MAX_GROUP; g++) {
            if (g >= G) break;
#pragma unroll
            for (int k = 0; k < DPT; k++)
                for (int s2 = 1; s2 < JS; s2++) acc[g][k] += red[(s2 * G + g) * HD + d0 + k * LPR];
        }
    }
#pragma unroll
    for (int g = 0; g < DEC_MAX_GROUP; g++) {
        if (g >= G) break;
        int h = kvh * G + g;
#pragma unroll
        for (int k = 0; k < DPT; k++) {
            int d = d0 + k * LPR;
            if (nparts == 1)
                st(out, (size_t)q0 * nq * HD + (size_t)h * HD + d, acc[g][k] / ml[2 * g + 1]);
            else
                ws_o[(((size_t)b * nq + h) * nparts_max + part) * HD + d] = acc[g][k];
        }
        if (nparts > 1 && tid == 0) {
            ws_m[((size_t)b * nq + h) * nparts_max + part] = ml[2 * g];
            ws_l[((size_t)b * nq + h) * nparts_max + part] = ml[2 * g + 1];
        }
    }
}

/* combines the partitions of one (sequence, head): block (b, h), a thread per dim */
__global__ void decode_reduce_kernel(k_bf16 *out, const float *ws_o, const float *ws_m,
                                     const float *ws_l, const int32_t *qs, const int32_t *ctxl,
                                     int nq, int hd, int nparts_max, int part_len) {
    int b = blockIdx.x, h = blockIdx.y;
    int q0 = qs[b];
    if (qs[b + 1] - q0 != 1) return;
    int nparts = (ctxl[b] + part_len - 1) / part_len;
    if (nparts <= 1) return;
    size_t base = ((size_t)b * nq + h) * nparts_max;
    float M = -INFINITY, L = 0;
    for (int p = 0; p < nparts; p++) M = fmaxf(M, ws_m[base + p]);
    for (int p = 0; p < nparts; p++) L += ws_l[base + p] * __expf(ws_m[base + p] - M);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0;
        for (int p = 0; p < nparts; p++) o += ws_o[(base + p) * hd + d] * __expf(ws_m[base + p] - M);
        st(out, (size_t)q0 * nq * hd + (size_t)h * hd + d, o / L);
    }
}

/* ---- prefill: block (query tile, q head, sequence); BM queries, keys in
 * tiles of BN read through the block table into shared memory; a warp owns
 * BM/4 queries and keeps their outputs in registers (online softmax). ---- */
#define PF_BM 32
#define PF_BN 32
#define PF_THREADS 128
template <int HD>
__global__ void __launch_bounds__(PF_THREADS)
prefill_kernel(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
               const int32_t *qs, const int32_t *ctxl, const int32_t *bt, int max_blocks, int bs,
               int nq, int nkv, float scale) {
    constexpr int E = HD / 32, QPW = PF_BM / (PF_THREADS / 32);
    int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int q0 = qs[b], qn = qs[b + 1] - q0, i0 = tile * PF_BM;
    if (qn <= 1 || i0 >= qn) return;
    int ctx = ctxl[b], kvh = h / (nq / nkv);
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    int rows = min(PF_BM, qn - i0);
    int last_pos = ctx - qn + i0 + rows - 1;      /* the tile's last query sees keys 0..last_pos */
    const int32_t *table = bt + (size_t)b * max_blocks;
    extern __shared__ float sm[];
    float *Qs = sm;                          /* (BM, HD), pre-scaled */
    float *Ks = Qs + PF_BM * HD;             /* (BN, HD + 1) */
    float *Vs = Ks + PF_BN * (HD + 1);       /* (BN, HD) */
    for (int i = tid; i < PF_BM * HD; i += PF_THREADS) {
        int r = i / HD, d = i % HD;
        Qs[i] = r < rows ? ld(qkv, (size_t)(q0 + i0 + r) * stride + (size_t)h * HD + d) * scale : 0.0f;
    }
    float o[QPW][E], m[QPW], l[QPW];
#pragma unroll
    for (int qi = 0; qi < QPW; qi++) {
        m[qi] = -INFINITY; l[qi] = 0;
#pragma unroll
        for (int e = 0; e < E; e++) o[qi][e] = 0;
    }
    for (int kt = 0; kt <= last_pos; kt += PF_BN) {
        __syncthreads();
        for (int i = tid; i < PF_BN * HD; i += PF_THREADS) {
            int jj = i / HD, d = i % HD, j = kt + jj;
            float kv = 0, vv = 0;
            if (j <= last_pos) {
                size_t a = (kv_slot(table, j, bs) * nkv + kvh) * HD + d;
                kv = ld(kc, a); vv = ld(vc, a);
            }
            Ks[jj * (HD + 1) + d] = kv;
            Vs[jj * HD + d] = vv;
        }
        __syncthreads();
#pragma unroll
        for (int qi = 0; qi < QPW; qi++) {
            int r = warp * QPW + qi;
            if (r >= rows) break;
            int pos = ctx - qn + i0 + r, j = kt + lane;
            if (kt > pos) continue;
            float s = 0;
#pragma unroll 16
            for (int d = 0; d < HD; d++) s += Qs[r * HD + d] * Ks[lane * (HD + 1) + d];
            s = j <= pos ? s : -INFINITY;
            float mn = fmaxf(m[qi], warp_max(s));
            float p = __expf(s - mn), alpha = __expf(m[qi] - mn);
            l[qi] = l[qi] * alpha + warp_sum(p);
#pragma unroll
            for (int e = 0; e < E; e++) o[qi][e] *= alpha;
#pragma unroll 8
            for (int jj = 0; jj < PF_BN; jj++) {
                float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                for (int e = 0; e < E; e++) o[qi][e] += pj * Vs[jj * HD + lane + 32 * e];
            }
            m[qi] = mn;
        }
    }
#pragma unroll
    for (int qi = 0; qi < QPW; qi++) {
        int r = warp * QPW + qi;
        if (r >= rows) break;
#pragma unroll
        for (int e = 0; e < E; e++)
            st(out, (size_t)(q0 + i0 + r) * nq * HD + (size_t)h * HD + lane + 32 * e, o[qi][e] / l[qi]);
    }
}

/* ---- decode (v2, the default): as v1, but every load is 16 bytes (8 bf16)
 * and many are in flight.  Scores: a key per group of HD/8 lanes (each lane
 * 8 dims), U keys per group in flight; then softmax statistics per head; then
 * P x V with a thread per (key row, 8 dims), partial sums reduced over the
 * lanes of a warp and then over the warps in shared memory.  GM >= G sizes the
 * accumulators (the template keeps them in registers). ---- */
#define DEC2_PART K_DECODE_PARTITION
#define DEC2_U 4
template <int HD, int GM>
__global__ void __launch_bounds__(DEC_THREADS)
decode2_kernel(k_bf16 *out, float *ws_o, float *ws_m, float *ws_l, const k_bf16 *qkv, int stride,
               const k_bf16 *kc, const k_bf16 *vc, const int32_t *qs, const int32_t *ctxl,
               const int32_t *bt, int max_blocks, int bs, int nq, int nkv, float scale, int nparts_max) {
    constexpr int P = DEC2_PART, TPK = HD / 8, KPW = 32 / TPK, NW = DEC_THREADS / 32, KPI = NW * KPW;
    int b = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    int q0 = qs[b];
    if (qs[b + 1] - q0 != 1) return;
    int ctx = ctxl[b], nparts = (ctx + P - 1) / P;
    if (part >= nparts) return;
    int j0 = part * P, j1 = min(ctx, j0 + P), n = j1 - j0;
    int G = nq / nkv, tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    int sub = lane / TPK, li = lane % TPK;           /* key slot in the warp, 8-dim chunk */
    const int32_t *table = bt + (size_t)b * max_blocks;
    extern __shared__ float sm[];
    float *q_s = sm;                       /* (G, HD) pre-scaled */
    float *sc = q_s + G * HD;              /* (G, P) scores, then probabilities */
    float *ml = sc + G * P;                /* (G, 2) max, sum */
    float *red = ml + 2 * G;               /* (NW, G, HD) per-warp partial outputs */
    for (int i = tid; i < G * HD; i += DEC_THREADS)
        q_s[i] = ld(qkv, (size_t)q0 * stride + (size_t)(kvh * G) * HD + i) * scale;
    __syncthreads();
    /* scores: the loop is uniform over the warp (shuffles need every lane) */
    for (int jw = j0 + warp * KPW; jw < j1; jw += KPI * DEC2_U) {
        uint4 kr[DEC2_U];
#pragma unroll
        for (int u = 0; u < DEC2_U; u++) {
            int j = jw + sub + u * KPI;
            kr[u] = make_uint4(0, 0, 0, 0);
            if (j < j1)
                kr[u] = *reinterpret_cast<const uint4 *>(kc + (kv_slot(table, j, bs) * nkv + kvh) * HD + li * 8);
        }
#pragma unroll
        for (int u = 0; u < DEC2_U; u++) {
            int j = jw + sub + u * KPI;
            float k8[8];
            unpack8(kr[u], k8);
#pragma unroll
            for (int g = 0; g < GM; g++) {
                if (g >= G) break;
                const float *qg = q_s + g * HD + li * 8;
                float d = 0;
#pragma unroll
                for (int e = 0; e < 8; e++) d += qg[e] * k8[e];
#pragma unroll
                for (int o = TPK / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
                if (li == 0 && j < j1) sc[g * P + (j - j0)] = d;
            }
        }
    }
    __syncthreads();
    /* softmax statistics per head: a warp per head */
    for (int g = warp; g < G; g += NW) {
        float m = -INFINITY, l = 0;
        for (int j = lane; j < n; j += 32) m = fmaxf(m, sc[g * P + j]);
        m = warp_max(m);
        for (int j = lane; j < n; j += 32) { float p = __expf(sc[g * P + j] - m); sc[g * P + j] = p; l += p; }
        l = warp_sum(l);
        if (lane == 0) { ml[2 * g] = m; ml[2 * g + 1] = l; }
    }
    __syncthreads();
    /* P x V: key rows sub, sub + KPI, ... of this warp; lane li owns dims li*8.. */
    float acc[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] = 0;
    for (int jw = j0 + warp * KPW + sub; jw < j1; jw += KPI * DEC2_U) {
        uint4 vr[DEC2_U];
#pragma unroll
        for (int u = 0; u < DEC2_U; u++) {
            int j = jw + u * KPI;
            vr[u] = make_uint4(0, 0, 0, 0);
            if (j < j1)
                vr[u] = *reinterpret_cast<const uint4 *>(vc + (kv_slot(table, j, bs) * nkv + kvh) * HD + li * 8);
        }
#pragma unroll
        for (int u = 0; u < DEC2_U; u++) {
            int j = jw + u * KPI;
            if (j >= j1) break;
            float v8[8];
            unpack8(vr[u], v8);
#pragma unroll
            for (int g = 0; g < GM; g++) {
                if (g >= G) break;
                float p = sc[g * P + (j - j0)];
#pragma unroll
                for (int e = 0; e < 8; e++) acc[g][e] += p * v8[e];
            }
        }
    }
    /* reduce over the key slots of the warp (lanes li, li + TPK, ...) */
#pragma unroll
    for (int o = TPK; o < 32; o <<= 1)
#pragma unroll
        for (int g = 0; g < GM; g++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[g][e] += __shfl_xor_sync(0xffffffffu, acc[g][e], o);
    if (sub == 0)
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (g >= G) break;
#pragma unroll
            for (int e = 0; e < 8; e++) red[(warp * G + g) * HD + li * 8 + e] = acc[g][e];
        }
    __syncthreads();
    /* then over the warps: a thread per (head, dim) */
    for (int i = tid; i < G * HD; i += DEC_THREADS) {
        int g = i / HD, d = i % HD, h = kvh * G + g;
        float o = 0;
#pragma unroll
        for (int w = 0; w < NW; w++) o += red[(w * G + g) * HD + d];
        if (nparts == 1)
            st(out, (size_t)q0 * nq * HD + (size_t)h * HD + d, o / ml[2 * g + 1]);
        else
            ws_o[(((size_t)b * nq + h) * nparts_max + part) * HD + d] = o;
    }
    if (nparts > 1 && tid < G) {
        int h = kvh * G + tid;
        ws_m[((size_t)b * nq + h) * nparts_max + part] = ml[2 * tid];
        ws_l[((size_t)b * nq + h) * nparts_max + part] = ml[2 * tid + 1];
    }
}

/* ---- prefill (v2, the default): tensor cores (WMMA, bf16 in, fp32
 * accumulate).  Block (query tile of 64, q head, sequence), 4 warps of 16
 * queries; K/V tiles of 64 keys read through the block table into shared
 * memory; S = Q K^T per warp, online softmax in fp32 (P rounded to bf16 for
 * the P x V product, as flash attention does), O kept in shared memory in
 * fp32 and rescaled there. ---- */
#define PF2_BM 64
#define PF2_BN 64
template <int HD>
struct pf2_smem {                       /* byte offsets; every region 32-byte aligned */
    static constexpr int QLD = HD + 8, SLD = PF2_BN + 4, PLD = PF2_BN + 8, OLD = HD + 4;
    static constexpr size_t q = 0;
    static constexpr size_t k = q + (size_t)PF2_BM * QLD * 2;
    static constexpr size_t v = k + (size_t)PF2_BN * QLD * 2;
    static constexpr size_t s = v + (size_t)PF2_BN * QLD * 2;
    static constexpr size_t p = s + (size_t)4 * 16 * SLD * 4;
    static constexpr size_t o = p + (size_t)4 * 16 * PLD * 2;
    static constexpr size_t bytes = o + (size_t)4 * 16 * OLD * 4;
};
template <int HD>
__global__ void __launch_bounds__(128)
prefill2_kernel(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                const int32_t *qs, const int32_t *ctxl, const int32_t *bt, int max_blocks, int bs,
                int nq, int nkv, float scale) {
    using namespace nvcuda;
    typedef pf2_smem<HD> L;
    constexpr int CH = HD / 8;                          /* 16-byte chunks per row */
    int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int q0 = qs[b], qn = qs[b + 1] - q0, i0 = tile * PF2_BM;
    if (qn <= 1 || i0 >= qn) return;
    int ctx = ctxl[b], kvh = h / (nq / nkv);
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    int rows = min(PF2_BM, qn - i0);
    int first_pos = ctx - qn + i0, last_pos = first_pos + rows - 1;
    const int32_t *table = bt + (size_t)b * max_blocks;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem + L::q);          /* (BM, QLD) */
    bf16 *Ks = reinterpret_cast<bf16 *>(smem + L::k);          /* (BN, QLD) */
    bf16 *Vs = reinterpret_cast<bf16 *>(smem + L::v);          /* (BN, QLD) */
    float *S = reinterpret_cast<float *>(smem + L::s) + warp * 16 * L::SLD;   /* (16, SLD) this warp's */
    bf16 *Pb = reinterpret_cast<bf16 *>(smem + L::p) + warp * 16 * L::PLD;    /* (16, PLD) */
    float *O = reinterpret_cast<float *>(smem + L::o) + warp * 16 * L::OLD;   /* (16, OLD) */
    for (int i = tid; i < PF2_BM * CH; i += 128) {
        int r = i / CH, c = i % CH;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r < rows) v = *reinterpret_cast<const uint4 *>(qkv + (size_t)(q0 + i0 + r) * stride + (size_t)h * HD + c * 8);
        *reinterpret_cast<uint4 *>(Qs + r * L::QLD + c * 8) = v;
    }
    for (int i = lane; i < 16 * L::OLD; i += 32) O[i] = 0;
    /* lane owns half of row r: columns (or dims) from half * width/2 */
    int r = lane >> 1, half = lane & 1;
    int wrow = warp * 16 + r, pos = first_pos + wrow;
    bool valid = wrow < rows;
    int wlast = first_pos + min(warp * 16 + 15, rows - 1);    /* the warp's last query position */
    float m = -INFINITY, l = 0;
    for (int kt = 0; kt <= last_pos; kt += PF2_BN) {
        __syncthreads();
        for (int i = tid; i < PF2_BN * CH; i += 128) {
            int jj = i / CH, c = i % CH, j = kt + jj;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (j <= last_pos) {
                size_t a = (kv_slot(table, j, bs) * nkv + kvh) * HD + c * 8;
                kv = *reinterpret_cast<const uint4 *>(kc + a);
                vv = *reinterpret_cast<const uint4 *>(vc + a);
            }
            *reinterpret_cast<uint4 *>(Ks + jj * L::QLD + c * 8) = kv;
            *reinterpret_cast<uint4 *>(Vs + jj * L::QLD + c * 8) = vv;
        }
        __syncthreads();
        if (warp * 16 >= rows || wlast < kt) continue;        /* no query of this warp sees the tile */
        /* S (16, BN) = Q_w (16, HD) K^T */
#pragma unroll
        for (int nt = 0; nt < PF2_BN / 16; nt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
            wmma::fill_fragment(c, 0.0f);
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> kb;
                wmma::load_matrix_sync(a, Qs + warp * 16 * L::QLD + kk * 16, L::QLD);
                wmma::load_matrix_sync(kb, Ks + nt * 16 * L::QLD + kk * 16, L::QLD);
                wmma::mma_sync(c, a, kb, c);
            }
            wmma::store_matrix_sync(S + nt * 16, c, L::SLD, wmma::mem_row_major);
        }
        __syncwarp();
        /* online softmax of row r over this tile (two lanes per row) */
        float sv[PF2_BN / 2], mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < PF2_BN / 2; c++) {
            int col = half * (PF2_BN / 2) + c;
            float x = S[r * L::SLD + col] * scale;
            sv[c] = valid && kt + col <= pos ? x : -INFINITY;
            mx = fmaxf(mx, sv[c]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        float mn = fmaxf(m, mx), sum = 0;
        float alpha = mn == -INFINITY ? 1.0f : __expf(m - mn);
#pragma unroll
        for (int c = 0; c < PF2_BN / 2; c++) {
            float p = mn == -INFINITY ? 0.0f : __expf(sv[c] - mn);
            bf16 pb = __float2bfloat16_rn(p);
            sum += __bfloat162float(pb);
            Pb[r * L::PLD + half * (PF2_BN / 2) + c] = pb;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * alpha + sum;
        m = mn;
        for (int d = half * (HD / 2); d < (half + 1) * (HD / 2); d++) O[r * L::OLD + d] *= alpha;
        __syncwarp();
        /* O (16, HD) += P (16, BN) V (BN, HD) */
#pragma unroll
        for (int dt = 0; dt < HD / 16; dt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
            wmma::load_matrix_sync(c, O + dt * 16, L::OLD, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < PF2_BN / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> vb;
                wmma::load_matrix_sync(a, Pb + kk * 16, L::PLD);
                wmma::load_matrix_sync(vb, Vs + kk * 16 * L::QLD + dt * 16, L::QLD);
                wmma::mma_sync(c, a, vb, c);
            }
            wmma::store_matrix_sync(O + dt * 16, c, L::OLD, wmma::mem_row_major);
        }
        __syncwarp();
    }
    if (!valid) return;
    float inv = 1.0f / l;
    for (int d = half * (HD / 2); d < (half + 1) * (HD / 2); d++)
        st(out, (size_t)(q0 + i0 + wrow) * nq * HD + (size_t)h * HD + d, O[r * L::OLD + d] * inv);
}

/* ---- decode (v5, the default where block_size is a multiple of 16): tensor
 * cores through mma.sync, K/V streamed through a cp.async pipeline, softmax
 * online in registers (flash-decoding).  Block (sequence, kv head, partition
 * of K_DECODE_PARTITION keys), 4 warps; warp w takes the 16-key tiles w, w+4,
 * ... of the partition, each tile being 16 consecutive slots of one paged
 * block, copied (K and V, zero filled past the context) into the warp's own
 * ring of NS stages while it computes on an earlier one.  The G query heads of
 * the kv group are the rows of the 16-row A operand (zero padded):
 *   S (16, 16) = Q (16, HD) K^T      mma m16n8k16, K fragments by ldmatrix
 *   m, l, O rescaled per tile         rows: lane/4 and lane/4 + 8, a quad per row
 *   O (16, HD) += bf16(P) V           P straight from S's registers, V by ldmatrix.trans
 * Then the 4 warps' (m, l, O) are combined in shared memory; with several
 * partitions the result is unnormalised in ws_* for decode_reduce (m in
 * natural-log units, as v1/v2 write it). ---- */
#define DEC5_WARPS 4
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int src_bytes) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, const void *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
/* c (16x8 f32) += a (16x16 bf16, row) b (16x8 bf16, col) */
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}
/* The steps v5 decode and prefill share.  A lane owns rows lane/4 and
 * lane/4 + 8 of a 16-row tile and, in each 8-column tile, the column pair
 * (lane % 4) * 2, (lane % 4) * 2 + 1 (mma.sync m16n8k16's layout). */
/* qa: q rows 0..15 (row stride rs elements) as A fragments over HD = 16 KS
 * dims; a row that is not valid (v0: lane/4, v1: lane/4 + 8) reads as zero */
template <int KS>
__device__ __forceinline__ void flash_load_q(uint32_t (&qa)[KS][4], const bf16 *q, size_t rs, bool v0, bool v1,
                                             int lane) {
    const bf16 *q0 = q + (size_t)(lane >> 2) * rs + (lane & 3) * 2, *q1 = q0 + 8 * rs;
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
        qa[ks][0] = v0 ? *reinterpret_cast<const uint32_t *>(q0 + ks * 16) : 0u;
        qa[ks][1] = v1 ? *reinterpret_cast<const uint32_t *>(q1 + ks * 16) : 0u;
        qa[ks][2] = v0 ? *reinterpret_cast<const uint32_t *>(q0 + ks * 16 + 8) : 0u;
        qa[ks][3] = v1 ? *reinterpret_cast<const uint32_t *>(q1 + ks * 16 + 8) : 0u;
    }
}
/* s (16, 8 NTL) = q K^T for the NTL * 8 keys staged in ks (rows of LD bf16) */
template <int KS, int NTL, int LD>
__device__ __forceinline__ void flash_qk(float (&s)[NTL][4], const uint32_t (&qa)[KS][4], const bf16 *ks, int lane) {
#pragma unroll
    for (int t = 0; t < NTL; t++) s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.0f;
#pragma unroll
    for (int k = 0; k < KS; k += 2)
#pragma unroll
        for (int t = 0; t < NTL; t++) {
            uint32_t kf[4];
            ldsm_x4(kf, ks + (t * 8 + (lane & 7)) * LD + k * 16 + (lane >> 3) * 8);
            mma16816(s[t], qa[k], kf[0], kf[1]);
            mma16816(s[t], qa[k + 1], kf[2], kf[3]);
        }
}
/* online softmax over one tile of scores s (log2 units, -inf where masked):
 * the rows' running max m and sum l, o rescaled, pa = bf16(P) as A fragments
 * (the sum counts P as rounded, as the product uses it) */
template <int NTL, int NT>
__device__ __forceinline__ void flash_softmax(float (&s)[NTL][4], float &m0, float &m1, float &l0, float &l1,
                                              float (&o)[NT][4], uint32_t (&pa)[NTL / 2][4]) {
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int t = 0; t < NTL; t++) {
        mx0 = fmaxf(mx0, fmaxf(s[t][0], s[t][1]));
        mx1 = fmaxf(mx1, fmaxf(s[t][2], s[t][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    /* a row that has seen no key yet stays at -inf without NaNs */
    float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    float a0 = mn0 == -INFINITY ? 1.0f : exp2f(m0 - mn0), a1 = mn1 == -INFINITY ? 1.0f : exp2f(m1 - mn1);
    float b0 = mn0 == -INFINITY ? 0.0f : mn0, b1 = mn1 == -INFINITY ? 0.0f : mn1;
    m0 = mn0; m1 = mn1;
    float ps0 = 0, ps1 = 0;
#pragma unroll
    for (int t = 0; t < NTL; t++) {
        float p0 = rbf(exp2f(s[t][0] - b0)), p1 = rbf(exp2f(s[t][1] - b0));
        float p2 = rbf(exp2f(s[t][2] - b1)), p3 = rbf(exp2f(s[t][3] - b1));
        ps0 += p0 + p1; ps1 += p2 + p3;
        pa[t / 2][(t & 1) * 2] = pack_bf16(p0, p1);        /* row lane/4, keys t*8 + (lane%4)*2.. */
        pa[t / 2][(t & 1) * 2 + 1] = pack_bf16(p2, p3);    /* row lane/4 + 8 */
    }
    l0 = l0 * a0 + ps0; l1 = l1 * a1 + ps1;
#pragma unroll
    for (int t = 0; t < NT; t++) { o[t][0] *= a0; o[t][1] *= a0; o[t][2] *= a1; o[t][3] *= a1; }
}
/* o (16, 8 NT) += P V for the 16 NKK keys staged in vs (rows of LD bf16) */
template <int NKK, int NT, int LD>
__device__ __forceinline__ void flash_pv(float (&o)[NT][4], const uint32_t (&pa)[NKK][4], const bf16 *vs, int lane) {
#pragma unroll
    for (int kk = 0; kk < NKK; kk++)
#pragma unroll
        for (int t = 0; t < NT; t += 2) {
            uint32_t vf[4];
            ldsm_x4_t(vf, vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + t * 8 + (lane >> 4) * 8);
            mma16816(o[t], pa[kk], vf[0], vf[1]);
            mma16816(o[t + 1], pa[kk], vf[2], vf[3]);
        }
}
__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
template <int HD, int NS>
struct dec5_smem {
    static constexpr int LD = HD + 8;                                  /* bf16 per staged row */
    static constexpr size_t stage = (size_t)2 * 16 * LD * 2;           /* K (16, LD) | V (16, LD) bf16 */
    static constexpr size_t ring = stage * NS;                         /* one warp's */
    static constexpr size_t pipe = ring * DEC5_WARPS;
    static constexpr size_t comb = (size_t)DEC5_WARPS * 16 * (HD + 2) * 4;  /* O (W,16,HD) | m, l (W,16) f32 */
    static constexpr size_t bytes = pipe > comb ? pipe : comb;
};
template <int HD, int NS>
__global__ void __launch_bounds__(DEC5_WARPS * 32)
decode5_kernel(k_bf16 *out, float *ws_o, float *ws_m, float *ws_l, const k_bf16 *qkv, int stride,
               const k_bf16 *kc, const k_bf16 *vc, const int32_t *qs, const int32_t *ctxl,
               const int32_t *bt, int max_blocks, int bs, int nq, int nkv, float scale, int nparts_max,
               int P) {
    typedef dec5_smem<HD, NS> L;
    constexpr int CH = HD / 8, KS = HD / 16, NT = HD / 8;
    int b = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    int q0 = qs[b];
    if (qs[b + 1] - q0 != 1) return;
    int ctx = ctxl[b], nparts = (ctx + P - 1) / P;
    if (part >= nparts) return;
    /* the sequence's nparts partitions are of equal size (a multiple of 16, <= P),
     * not P and a remainder: decode_reduce only needs their number */
    int psz = ((ctx + nparts - 1) / nparts + 15) & ~15;
    int j0 = part * psz, n = min(ctx, j0 + psz) - j0, nkb = (n + 15) / 16;
    int G = nq / nkv, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int r0 = lane >> 2, r1 = r0 + 8, cq = (lane & 3) * 2;  /* this lane's rows and column pair */
    const int32_t *table = bt + (size_t)b * max_blocks;
    const size_t ld = (size_t)nkv * HD;                    /* elements from one slot to the next */
    const bf16 *Kg = reinterpret_cast<const bf16 *>(kc) + (size_t)kvh * HD;
    const bf16 *Vg = reinterpret_cast<const bf16 *>(vc) + (size_t)kvh * HD;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *ring = reinterpret_cast<bf16 *>(smem + L::ring * warp);  /* (NS, 2, 16, LD) this warp's */
    const float sl2 = scale * 1.4426950408889634f;         /* scores in log2 units */

    /* Q (16, HD) as A fragments, rows >= G zero */
    uint32_t qa[KS][4];
    const bf16 *qg = reinterpret_cast<const bf16 *>(qkv) + (size_t)q0 * stride + (size_t)kvh * G * HD;
    flash_load_q<KS>(qa, qg, HD, r0 < G, r1 < G, lane);
    int cnt = warp < nkb ? (nkb - warp + DEC5_WARPS - 1) / DEC5_WARPS : 0;   /* this warp's tiles, <= 32 */
    /* lane i holds the physical block of the warp's tile i: no dependent load in the loop */
    int blk = lane < cnt ? table[(j0 + (warp + DEC5_WARPS * lane) * 16) / bs] : 0;
    auto issue = [&](int i) {                              /* tile warp + 4i into stage i % NS */
        int kb = warp + DEC5_WARPS * i;
        size_t slot0 = (size_t)__shfl_sync(0xffffffffu, blk, i) * bs + (j0 + kb * 16) % bs;  /* 16 slots of one block */
        bf16 *ks_ = ring + (size_t)(i % NS) * 2 * 16 * L::LD, *vs_ = ks_ + 16 * L::LD;
#pragma unroll
        for (int c = lane; c < 16 * CH; c += 32) {
            int r = c / CH, col = (c % CH) * 8;
            int nb = kb * 16 + r < n ? 16 : 0;
            size_t a = (slot0 + r) * ld + col;
            cp_async16(ks_ + r * L::LD + col, Kg + a, nb);
            cp_async16(vs_ + r * L::LD + col, Vg + a, nb);
        }
    };
#pragma unroll
    for (int i = 0; i < NS - 1; i++) {
        if (i < cnt) issue(i);
        cp_async_commit();
    }
    float o[NT][4];
#pragma unroll
    for (int t = 0; t < NT; t++) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    for (int i = 0; i < cnt; i++) {
        if (i + NS - 1 < cnt) issue(i + NS - 1);
        cp_async_commit();
        cp_async_wait<NS - 1>();
        __syncwarp();
        const bf16 *ks_ = ring + (size_t)(i % NS) * 2 * 16 * L::LD, *vs_ = ks_ + 16 * L::LD;
        /* S = Q K^T: n-tile t holds keys t*8..t*8+7; scaled, masked past the partition */
        float sc[2][4];
        flash_qk<KS, 2, L::LD>(sc, qa, ks_, lane);
        int kbase = (warp + DEC5_WARPS * i) * 16;
#pragma unroll
        for (int t = 0; t < 2; t++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                bool ok = kbase + t * 8 + cq + e < n;
                sc[t][e] = ok ? sc[t][e] * sl2 : -INFINITY;
                sc[t][2 + e] = ok ? sc[t][2 + e] * sl2 : -INFINITY;
            }
        uint32_t pa[1][4];
        flash_softmax<2, NT>(sc, m0, m1, l0, l1, o, pa);
        flash_pv<1, NT, L::LD>(o, pa, vs_, lane);
        __syncwarp();
    }
    cp_async_wait<0>();
    l0 = quad_sum(l0); l1 = quad_sum(l1);
    /* combine the warps: O (W, 16, HD), then m (W, 16), l (W, 16) */
    __syncthreads();
    float *Os = reinterpret_cast<float *>(smem), *ms = Os + DEC5_WARPS * 16 * HD, *ls = ms + DEC5_WARPS * 16;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        int d = t * 8 + cq;
        if (r0 < G) { Os[(warp * 16 + r0) * HD + d] = o[t][0]; Os[(warp * 16 + r0) * HD + d + 1] = o[t][1]; }
        if (r1 < G) { Os[(warp * 16 + r1) * HD + d] = o[t][2]; Os[(warp * 16 + r1) * HD + d + 1] = o[t][3]; }
    }
    if ((lane & 3) == 0) {
        ms[warp * 16 + r0] = m0; ls[warp * 16 + r0] = l0;
        ms[warp * 16 + r1] = m1; ls[warp * 16 + r1] = l1;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * HD; i += DEC5_WARPS * 32) {
        int g = i / HD, d = i % HD, h = kvh * G + g;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < DEC5_WARPS; w++) M = fmaxf(M, ms[w * 16 + g]);
        float acc = 0, Lsum = 0;
#pragma unroll
        for (int w = 0; w < DEC5_WARPS; w++) {
            float f = ms[w * 16 + g] == -INFINITY ? 0.0f : exp2f(ms[w * 16 + g] - M);
            acc += Os[(w * 16 + g) * HD + d] * f;
            Lsum += ls[w * 16 + g] * f;
        }
        if (nparts == 1)
            st(out, (size_t)q0 * nq * HD + (size_t)h * HD + d, acc / Lsum);
        else {
            size_t wi = ((size_t)b * nq + h) * nparts_max + part;
            ws_o[wi * HD + d] = acc;
            if (d == 0) { ws_m[wi] = M * 0.6931471805599453f; ws_l[wi] = Lsum; }
        }
    }
}

/* ---- prefill (v5, the default): flash attention on mma.sync.  Block (query
 * tile of 64, q head, sequence), 4 warps of 16 queries; key tiles of 64 read
 * through the block table with cp.async into a double buffer shared by the
 * warps (the next tile loads while this one is used); per warp
 *   S (16, 64) = Q (16, HD) K^T      Q fragments in registers, K by ldmatrix
 *   online softmax in registers       rows lane/4 and lane/4 + 8, causal mask on the diagonal
 *   O (16, HD) += bf16(P) V           V by ldmatrix.trans
 * Keys past the last query's position are zero filled and masked. ---- */
#define PF5_BM 64
#define PF5_BN 64
template <int HD>
struct pf5_smem {
    static constexpr int LD = HD + 8;                                   /* bf16 per staged row */
    static constexpr size_t stage = (size_t)2 * PF5_BN * LD * 2;        /* K (BN, LD) | V (BN, LD) bf16 */
    static constexpr size_t bytes = 2 * stage;
};
template <int HD>
__global__ void __launch_bounds__(128, 3)           /* 3 blocks an SM: 141 TFLOP/s at 64 x 512 (2: 130) */
prefill5_kernel(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                const int32_t *qs, const int32_t *ctxl, const int32_t *bt, int max_blocks, int bs,
                int nq, int nkv, float scale) {
    typedef pf5_smem<HD> L;
    constexpr int CH = HD / 8, KS = HD / 16, NT = HD / 8;
    int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int q0 = qs[b], qn = qs[b + 1] - q0, i0 = tile * PF5_BM;
    if (qn <= 1 || i0 >= qn) return;
    int ctx = ctxl[b], kvh = h / (nq / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, tid = threadIdx.x;
    int r0 = lane >> 2, cq = (lane & 3) * 2;
    int rows = min(PF5_BM, qn - i0);
    int first_pos = ctx - qn + i0, last_pos = first_pos + rows - 1;
    int wr0 = warp * 16 + r0, wr1 = wr0 + 8;                     /* this lane's two query rows */
    int pos0 = first_pos + wr0, pos1 = first_pos + wr1;
    int wfirst = first_pos + warp * 16, wlast = first_pos + min(warp * 16 + 15, rows - 1);
    bool wact = warp * 16 < rows;
    const int32_t *table = bt + (size_t)b * max_blocks;
    const size_t ld = (size_t)nkv * HD;
    const bf16 *Kg = reinterpret_cast<const bf16 *>(kc) + (size_t)kvh * HD;
    const bf16 *Vg = reinterpret_cast<const bf16 *>(vc) + (size_t)kvh * HD;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *buf = reinterpret_cast<bf16 *>(smem);                  /* (2 stages, 2, BN, LD) */
    const float sl2 = scale * 1.4426950408889634f;
    uint32_t qa[KS][4];
    const bf16 *qg = reinterpret_cast<const bf16 *>(qkv) + (size_t)(q0 + i0 + warp * 16) * stride + (size_t)h * HD;
    flash_load_q<KS>(qa, qg, stride, wr0 < rows, wr1 < rows, lane);
    int ntiles = last_pos / PF5_BN + 1;
    const int bsh = (bs & (bs - 1)) == 0 ? __ffs(bs) - 1 : -1;    /* log2(block_size), or -1 */
    auto load = [&](int it) {                                    /* key tile it into stage it & 1 */
        bf16 *ks_ = buf + (size_t)(it & 1) * 2 * PF5_BN * L::LD, *vs_ = ks_ + PF5_BN * L::LD;
#pragma unroll
        for (int c = tid; c < PF5_BN * CH; c += 128) {
            int r = c / CH, col = (c % CH) * 8, j = it * PF5_BN + r;
            bool ok = j <= last_pos;
            size_t slot = !ok ? (size_t)table[0] * bs
                        : bsh >= 0 ? ((size_t)table[j >> bsh] << bsh) + (j & (bs - 1)) : kv_slot(table, j, bs);
            size_t a = slot * ld + col;
            cp_async16(ks_ + r * L::LD + col, Kg + a, ok ? 16 : 0);
            cp_async16(vs_ + r * L::LD + col, Vg + a, ok ? 16 : 0);
        }
    };
    load(0);
    cp_async_commit();
    float o[NT][4];
#pragma unroll
    for (int t = 0; t < NT; t++) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    for (int it = 0; it < ntiles; it++) {
        if (it + 1 < ntiles) load(it + 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        int kt = it * PF5_BN;
        if (wact && kt <= wlast) {
            const bf16 *ks_ = buf + (size_t)(it & 1) * 2 * PF5_BN * L::LD, *vs_ = ks_ + PF5_BN * L::LD;
            float sc[PF5_BN / 8][4];
            flash_qk<KS, PF5_BN / 8, L::LD>(sc, qa, ks_, lane);
            bool diag = kt + PF5_BN - 1 > wfirst;                /* some key of the tile is after some query */
#pragma unroll
            for (int t = 0; t < PF5_BN / 8; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    int j = kt + t * 8 + cq + e;
                    sc[t][e] = !diag || j <= pos0 ? sc[t][e] * sl2 : -INFINITY;
                    sc[t][2 + e] = !diag || j <= pos1 ? sc[t][2 + e] * sl2 : -INFINITY;
                }
            uint32_t pa[PF5_BN / 16][4];
            flash_softmax<PF5_BN / 8, NT>(sc, m0, m1, l0, l1, o, pa);
            flash_pv<PF5_BN / 16, NT, L::LD>(o, pa, vs_, lane);
        }
        __syncthreads();
    }
    cp_async_wait<0>();
    l0 = quad_sum(l0); l1 = quad_sum(l1);
    bf16 *og = reinterpret_cast<bf16 *>(out) + (size_t)(q0 + i0) * nq * HD + (size_t)h * HD;
    float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        int d = t * 8 + cq;
        if (wr0 < rows)
            *reinterpret_cast<__nv_bfloat162 *>(og + (size_t)wr0 * nq * HD + d) = __floats2bfloat162_rn(o[t][0] * inv0, o[t][1] * inv0);
        if (wr1 < rows)
            *reinterpret_cast<__nv_bfloat162 *>(og + (size_t)wr1 * nq * HD + d) = __floats2bfloat162_rn(o[t][2] * inv1, o[t][3] * inv1);
    }
}

/* which kernels k_attention launches: 0 = the default (v5 decode when
 * block_size is a multiple of 16, else v2; v5 prefill for head_dim <= 128,
 * else v2), 1 = v1 (scalar), 2 = v2 (SIMT decode, WMMA prefill), 5 = v5 (as
 * the default).  The first call reads PAGESIM_ATTN (v1, v2, v5) unless
 * k_attention_impl chose. */
static int attn_impl = -1;
extern "C" int k_attention_impl(int impl) {
    int old = attn_impl < 0 ? 0 : attn_impl;
    if (impl >= 0) attn_impl = impl <= 2 || impl == 5 ? impl : 0;
    return old;
}

extern "C" size_t k_attention_workspace_bytes(int B, int nq, int head_dim, int max_context) {
    size_t parts = (size_t)(max_context + K_DECODE_PARTITION - 1) / K_DECODE_PARTITION;   /* v2's, the smaller */
    if (parts < 1) parts = 1;
    return (size_t)B * nq * parts * (head_dim + 2) * sizeof(float);
}

template <int HD>
static int launch_v1(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                     const k_attn_batch *b, int nq, int nkv, float scale, float *ws, size_t ws_bytes,
                     cudaStream_t s) {
    static int attr_set = 0;
    int G = nq / nkv;
    constexpr int LPR = HD < DEC_THREADS ? HD : DEC_THREADS, JS = DEC_THREADS / LPR;
    size_t dec_smem = sizeof(float) * ((size_t)G * HD + (size_t)G * DEC1_PART + 2 * G + (size_t)JS * G * HD);
    size_t pf_smem = sizeof(float) * ((size_t)PF_BM * HD + (size_t)PF_BN * (HD + 1) + (size_t)PF_BN * HD);
    if (!attr_set) {
        size_t dec_max = sizeof(float) * ((size_t)DEC_MAX_GROUP * HD * (1 + JS) +
                                          (size_t)DEC_MAX_GROUP * (DEC1_PART + 2));
        if (cudaFuncSetAttribute(decode_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)dec_max) != cudaSuccess ||
            cudaFuncSetAttribute(prefill_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)pf_smem) != cudaSuccess)
            return -1;
        attr_set = 1;
    }
    if (b->max_q_len > 1) {
        dim3 grid((b->max_q_len + PF_BM - 1) / PF_BM, nq, b->B);
        prefill_kernel<HD><<<grid, PF_THREADS, pf_smem, s>>>(out, qkv, stride, kc, vc, b->query_start,
            b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv, scale);
    }
    int nparts = (b->max_context + DEC1_PART - 1) / DEC1_PART;
    if (nparts < 1) nparts = 1;
    float *ws_o = ws, *ws_m = ws_o + (size_t)b->B * nq * nparts * HD, *ws_l = ws_m + (size_t)b->B * nq * nparts;
    if (nparts > 1 && ws_bytes < k_attention_workspace_bytes(b->B, nq, HD, b->max_context)) return -1;
    dim3 dgrid(b->B, nkv, nparts);
    decode_kernel<HD><<<dgrid, DEC_THREADS, dec_smem, s>>>(out, ws_o, ws_m, ws_l, qkv, stride, kc, vc,
        b->query_start, b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv, scale, nparts);
    if (nparts > 1)
        decode_reduce_kernel<<<dim3(b->B, nq), HD, 0, s>>>(out, ws_o, ws_m, ws_l, b->query_start,
                                                           b->context_lens, nq, HD, nparts, DEC1_PART);
    return K_LAUNCH_OK();
}

template <int HD, int GM>
static int launch_decode2(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                          const k_attn_batch *b, int nq, int nkv, float scale, float *ws, int nparts,
                          cudaStream_t s) {
    static int attr_set = 0;
    int G = nq / nkv;
    size_t smem = sizeof(float) * ((size_t)G * HD + (size_t)G * DEC2_PART + 2 * G + (size_t)4 * G * HD);
    if (!attr_set) {
        size_t mx = sizeof(float) * ((size_t)GM * HD * 5 + (size_t)GM * (DEC2_PART + 2));
        if (cudaFuncSetAttribute(decode2_kernel<HD, GM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)mx) !=
            cudaSuccess)
            return -1;
        attr_set = 1;
    }
    float *ws_o = ws, *ws_m = ws_o + (size_t)b->B * nq * nparts * HD, *ws_l = ws_m + (size_t)b->B * nq * nparts;
    decode2_kernel<HD, GM><<<dim3(b->B, nkv, nparts), DEC_THREADS, smem, s>>>(out, ws_o, ws_m, ws_l, qkv, stride,
        kc, vc, b->query_start, b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv, scale,
        nparts);
    return 0;
}

template <int HD, int NS>
static int launch_decode5(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                          const k_attn_batch *b, int nq, int nkv, float scale, float *ws, int nparts, int part,
                          cudaStream_t s) {
    static int attr_set = 0;
    typedef dec5_smem<HD, NS> L;
    if (!attr_set) {
        if (cudaFuncSetAttribute(decode5_kernel<HD, NS>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)L::bytes) != cudaSuccess)
            return -1;
        attr_set = 1;
    }
    float *ws_o = ws, *ws_m = ws_o + (size_t)b->B * nq * nparts * HD, *ws_l = ws_m + (size_t)b->B * nq * nparts;
    decode5_kernel<HD, NS><<<dim3(b->B, nkv, nparts), DEC5_WARPS * 32, L::bytes, s>>>(out, ws_o, ws_m, ws_l, qkv,
        stride, kc, vc, b->query_start, b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv,
        scale, nparts, part);
    return 0;
}

template <int HD>
static int launch_v2(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                     const k_attn_batch *b, int nq, int nkv, float scale, float *ws, size_t ws_bytes,
                     cudaStream_t s) {
    static int attr_set = 0;
    if (!attr_set) {
        if (cudaFuncSetAttribute(prefill2_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)pf2_smem<HD>::bytes) != cudaSuccess)
            return -1;
        attr_set = 1;
    }
    bool pf5 = false;
    if constexpr (HD <= 128) pf5 = attn_impl == 0 || attn_impl == 5;
    if (b->max_q_len > 1) {
        if constexpr (HD <= 128) if (pf5) {
            static int attr5 = 0;
            if (!attr5) {
                if (cudaFuncSetAttribute(prefill5_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)pf5_smem<HD>::bytes) != cudaSuccess)
                    return -1;
                attr5 = 1;
            }
            dim3 grid((b->max_q_len + PF5_BM - 1) / PF5_BM, nq, b->B);
            prefill5_kernel<HD><<<grid, 128, pf5_smem<HD>::bytes, s>>>(out, qkv, stride, kc, vc, b->query_start,
                b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv, scale);
        }
        if (!pf5) {
            dim3 grid((b->max_q_len + PF2_BM - 1) / PF2_BM, nq, b->B);
            prefill2_kernel<HD><<<grid, 128, pf2_smem<HD>::bytes, s>>>(out, qkv, stride, kc, vc, b->query_start,
                b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv, scale);
        }
    }
    /* decode: v5 in partitions of dec5_part keys (a multiple of
     * K_DECODE_PARTITION, so the workspace suffices; at most 2048 so that a
     * warp has <= 32 tiles), v2 in partitions of DEC2_PART */
    static int ns = 0, dec5_part = 0;
    if (!ns) {
        const char *e = getenv("PAGESIM_DEC5_NS"), *p = getenv("PAGESIM_DEC5_PART");
        ns = e && atoi(e) == 2 ? 2 : 3;
        int v = p ? atoi(p) : 0;
        dec5_part = v >= K_DECODE_PARTITION && v <= 2048 && v % K_DECODE_PARTITION == 0 ? v : 1024;
    }
    bool v5 = b->block_size % 16 == 0 && (attn_impl == 5 || attn_impl == 0);
    int part = v5 ? dec5_part : DEC2_PART, G = nq / nkv, rc;
    int nparts = (b->max_context + part - 1) / part;
    if (nparts < 1) nparts = 1;
    if (nparts > 1 && ws_bytes < k_attention_workspace_bytes(b->B, nq, HD, b->max_context)) return -1;
    if (v5) rc = ns == 2 ? launch_decode5<HD, 2>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, part, s)
                         : launch_decode5<HD, 3>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, part, s);
    else if (G <= 2) rc = launch_decode2<HD, 2>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, s);
    else if (G <= 4) rc = launch_decode2<HD, 4>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, s);
    else if (G <= 8) rc = launch_decode2<HD, 8>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, s);
    else rc = launch_decode2<HD, 16>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, s);
    if (rc) return rc;
    if (nparts > 1) {
        float *ws_o = ws, *ws_m = ws_o + (size_t)b->B * nq * nparts * HD, *ws_l = ws_m + (size_t)b->B * nq * nparts;
        decode_reduce_kernel<<<dim3(b->B, nq), HD, 0, s>>>(out, ws_o, ws_m, ws_l, b->query_start,
                                                           b->context_lens, nq, HD, nparts, part);
    }
    return K_LAUNCH_OK();
}

template <int HD>
static int launch_attention(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc,
                            const k_bf16 *vc, const k_attn_batch *b, int nq, int nkv, float scale,
                            float *ws, size_t ws_bytes, cudaStream_t s) {
    if (attn_impl < 0) {
        const char *e = getenv("PAGESIM_ATTN");
        attn_impl = !e ? 0 : !strcmp(e, "v1") ? 1 : !strcmp(e, "v2") ? 2 : !strcmp(e, "v5") ? 5 : 0;
    }
    return attn_impl == 1 ? launch_v1<HD>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, ws_bytes, s)
                          : launch_v2<HD>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, ws_bytes, s);
}

extern "C" int k_attention(k_bf16 *out, const k_bf16 *qkv, int tok_stride, const k_bf16 *k_cache,
                           const k_bf16 *v_cache, const k_attn_batch *b, int nq, int nkv, int head_dim,
                           float scale, float *workspace, size_t workspace_bytes, cudaStream_t s) {
    if (!b || b->B < 0 || nq <= 0 || nkv <= 0 || nq % nkv || nq / nkv > DEC_MAX_GROUP ||
        b->block_size <= 0 || b->max_blocks <= 0)
        return -1;
    if (b->B == 0 || b->T == 0) return 0;
    switch (head_dim) {
    case 64:  return launch_attention<64>(out, qkv, tok_stride, k_cache, v_cache, b, nq, nkv, scale, workspace, workspace_bytes, s);
    case 128: return launch_attention<128>(out, qkv, tok_stride, k_cache, v_cache, b, nq, nkv, scale, workspace, workspace_bytes, s);
    case 256: return launch_attention<256>(out, qkv, tok_stride, k_cache, v_cache, b, nq, nkv, scale, workspace, workspace_bytes, s);
    default:  return -1;
    }
}
