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
extern "C" int k_kv_write(k_bf16 *k_cache, k_bf16 *v_cache, const k_bf16 *qkv,
                          const int32_t *slot_mapping, int T, int nq, int nkv, int head_dim,
                          int tok_stride, cudaStream_t s) {
    if (T < 0 || nq <= 0 || nkv <= 0 || head_dim <= 0) return -1;
    if (T == 0) return 0;
    kv_write_kernel<<<T, 256, 0, s>>>(k_cache, v_cache, qkv, slot_mapping, nq, nkv, head_dim, tok_stride);
    return K_LAUNCH_OK();
}

/* ---- decode: one query per sequence.  Block (b, kv head, partition) scores
 * the G = nq/nkv query heads of its group against K_DECODE_PARTITION context
 * tokens; with one partition it writes the output, otherwise partial results
 * that decode_reduce combines. ---- */
#define DEC_THREADS 128
#define DEC_MAX_GROUP 16
template <int HD>
__global__ void __launch_bounds__(DEC_THREADS)
decode_kernel(k_bf16 *out, float *ws_o, float *ws_m, float *ws_l, const k_bf16 *qkv, int stride,
              const k_bf16 *kc, const k_bf16 *vc, const int32_t *qs, const int32_t *ctxl,
              const int32_t *bt, int max_blocks, int bs, int nq, int nkv, float scale, int nparts_max) {
    constexpr int P = K_DECODE_PARTITION, E = HD / 32;
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
                                     int nq, int hd, int nparts_max) {
    int b = blockIdx.x, h = blockIdx.y;
    int q0 = qs[b];
    if (qs[b + 1] - q0 != 1) return;
    int nparts = (ctxl[b] + K_DECODE_PARTITION - 1) / K_DECODE_PARTITION;
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

extern "C" size_t k_attention_workspace_bytes(int B, int nq, int head_dim, int max_context) {
    size_t parts = (size_t)(max_context + K_DECODE_PARTITION - 1) / K_DECODE_PARTITION;
    if (parts < 1) parts = 1;
    return (size_t)B * nq * parts * (head_dim + 2) * sizeof(float);
}

template <int HD>
static int launch_attention(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc,
                            const k_bf16 *vc, const k_attn_batch *b, int nq, int nkv, float scale,
                            float *ws, size_t ws_bytes, cudaStream_t s) {
    static int attr_set = 0;
    int G = nq / nkv;
    constexpr int LPR = HD < DEC_THREADS ? HD : DEC_THREADS, JS = DEC_THREADS / LPR;
    size_t dec_smem = sizeof(float) * ((size_t)G * HD + (size_t)G * K_DECODE_PARTITION + 2 * G +
                                       (size_t)JS * G * HD);
    size_t pf_smem = sizeof(float) * ((size_t)PF_BM * HD + (size_t)PF_BN * (HD + 1) + (size_t)PF_BN * HD);
    if (!attr_set) {
        size_t dec_max = sizeof(float) * ((size_t)DEC_MAX_GROUP * HD * (1 + JS) +
                                          (size_t)DEC_MAX_GROUP * (K_DECODE_PARTITION + 2));
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
    int nparts = (b->max_context + K_DECODE_PARTITION - 1) / K_DECODE_PARTITION;
    if (nparts < 1) nparts = 1;
    float *ws_o = ws, *ws_m = ws_o + (size_t)b->B * nq * nparts * HD, *ws_l = ws_m + (size_t)b->B * nq * nparts;
    if (nparts > 1 && ws_bytes < k_attention_workspace_bytes(b->B, nq, HD, b->max_context)) return -1;
    dim3 dgrid(b->B, nkv, nparts);
    decode_kernel<HD><<<dgrid, DEC_THREADS, dec_smem, s>>>(out, ws_o, ws_m, ws_l, qkv, stride, kc, vc,
        b->query_start, b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv, scale, nparts);
    if (nparts > 1)
        decode_reduce_kernel<<<dim3(b->B, nq), HD, 0, s>>>(out, ws_o, ws_m, ws_l, b->query_start,
                                                           b->context_lens, nq, HD, nparts);
    return K_LAUNCH_OK();
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
