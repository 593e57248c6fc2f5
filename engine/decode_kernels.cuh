/* decode_kernels.cuh: paged attention for sequences with one new token
 * (decode), in partitions of the context merged by decode_mma's last block
 * of each sequence (decode_mma_last_merge) or by decode_reduce (decode_simt).  Two
 * techniques: decode_mma (tensor cores, cp.async, the softmax online in
 * registers: the default where block_size is a multiple of 16) and
 * decode_simt (16-byte loads on the CUDA cores: every other block size).
 * Device code; launchers in attention.cu; layout in paged_kv.cuh. */
#ifndef ENGINE_DECODE_KERNELS_CUH
#define ENGINE_DECODE_KERNELS_CUH
#include "engine/paged_kv.cuh"
#include "engine/flash.cuh"

#define DEC_THREADS 128
#define DEC_MAX_GROUP 16

/* The merge of the nparts partitions of one (sequence, head), whose (m, l) start at
 * ws_m/ws_l[base] and whose O rows at ws_o[base * hd], into out[o0 + d] for the dims
 * d = d0, d0 + dstep, ... below hd: out = sum_p O_p e^(m_p - M) / sum_p l_p e^(m_p - M),
 * M = max m_p, p in order.  Read through L2 (__ldcg): other blocks of the same
 * launch may have written them (decode_mma's last block). */
__device__ __forceinline__ void dec_merge(k_bf16 *out, const float *ws_o, const float *ws_m, const float *ws_l,
                                          size_t base, size_t o0, int nparts, int hd, int d0, int dstep) {
    float M = -INFINITY, L = 0;
    for (int p = 0; p < nparts; p++) M = fmaxf(M, __ldcg(ws_m + base + p));
    for (int p = 0; p < nparts; p++) L += __ldcg(ws_l + base + p) * __expf(__ldcg(ws_m + base + p) - M);
    for (int d = d0; d < hd; d += dstep) {
        float o = 0;
        for (int p = 0; p < nparts; p++) o += __ldcg(ws_o + (base + p) * hd + d) * __expf(__ldcg(ws_m + base + p) - M);
        st(out, o0 + d, o / L);
    }
}

/* decode_reduce (decode_simt's): combines the partitions of one (sequence, head): block (b, h), a thread per dim */
__global__ void decode_reduce_kernel(k_bf16 *out, const float *ws_o, const float *ws_m,
                                     const float *ws_l, const int32_t *qs, const int32_t *ctxl,
                                     int nq, int hd, int nparts_max, int part_len) {
    int b = blockIdx.x, h = blockIdx.y;
    int q0 = qs[b];
    if (qs[b + 1] - q0 != 1) return;
    int nparts = (ctxl[b] + part_len - 1) / part_len;
    if (nparts <= 1) return;
    dec_merge(out, ws_o, ws_m, ws_l, ((size_t)b * nq + h) * nparts_max, (size_t)q0 * nq * hd + (size_t)h * hd,
              nparts, hd, threadIdx.x, blockDim.x);
}

/* ---- decode_simt (block sizes that are not a multiple of 16): a block
 * (sequence, kv head, partition) on the CUDA cores, every load 16 bytes
 * (8 bf16) and many in flight.  Scores: a key per group of HD/8 lanes (each lane
 * 8 dims), U keys per group in flight; then softmax statistics per head; then
 * P x V with a thread per (key row, 8 dims), partial sums reduced over the
 * lanes of a warp and then over the warps in shared memory.  GM >= G sizes the
 * accumulators (the template keeps them in registers). ---- */
#define DEC_SIMT_PART K_DECODE_PARTITION
#define DEC_SIMT_U 4

/* decode_simt's scores: sc[g * P + j - j0] = q_g . k_j over keys j0 <= j < j1,
 * a key per group of HD/8 lanes, DEC_SIMT_U keys per group in flight; the
 * loop is uniform over the warp (shuffles need every lane) */
template <int HD, int GM>
__device__ __forceinline__ void decode_simt_scores(float *sc, const float *q_s, const k_bf16 *kc,
                                                   const int32_t *table, int bs, int nkv, int kvh, int G, int j0,
                                                   int j1, int warp, int sub, int li) {
    constexpr int P = DEC_SIMT_PART, TPK = HD / 8, KPW = 32 / TPK, NW = DEC_THREADS / 32, KPI = NW * KPW;
    for (int jw = j0 + warp * KPW; jw < j1; jw += KPI * DEC_SIMT_U) {
        uint4 kr[DEC_SIMT_U];
#pragma unroll
        for (int u = 0; u < DEC_SIMT_U; u++) {
            int j = jw + sub + u * KPI;
            kr[u] = make_uint4(0, 0, 0, 0);
            if (j < j1)
                kr[u] = *reinterpret_cast<const uint4 *>(kc + (kv_slot(table, j, bs) * nkv + kvh) * HD + li * 8);
        }
#pragma unroll
        for (int u = 0; u < DEC_SIMT_U; u++) {
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
}

/* decode_simt's P x V: acc (GM, 8) += p_g(j) v_j[li*8 ..] over this lane's key rows
 * j = j0 + warp*KPW + sub, + KPI, ... below j1, the probabilities in sc (G, P) */
template <int HD, int GM>
__device__ __forceinline__ void decode_simt_pv(float (&acc)[GM][8], const float *sc, const k_bf16 *vc,
                                               const int32_t *table, int bs, int nkv, int kvh, int G, int j0,
                                               int j1, int warp, int sub, int li) {
    constexpr int P = DEC_SIMT_PART, TPK = HD / 8, KPW = 32 / TPK, NW = DEC_THREADS / 32, KPI = NW * KPW;
    for (int jw = j0 + warp * KPW + sub; jw < j1; jw += KPI * DEC_SIMT_U) {
        uint4 vr[DEC_SIMT_U];
#pragma unroll
        for (int u = 0; u < DEC_SIMT_U; u++) {
            int j = jw + u * KPI;
            vr[u] = make_uint4(0, 0, 0, 0);
            if (j < j1)
                vr[u] = *reinterpret_cast<const uint4 *>(vc + (kv_slot(table, j, bs) * nkv + kvh) * HD + li * 8);
        }
#pragma unroll
        for (int u = 0; u < DEC_SIMT_U; u++) {
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
}

template <int HD, int GM>
__global__ void __launch_bounds__(DEC_THREADS)
decode_simt_kernel(k_bf16 *out, float *ws_o, float *ws_m, float *ws_l, const k_bf16 *qkv, int stride,
               const k_bf16 *kc, const k_bf16 *vc, const int32_t *qs, const int32_t *ctxl,
               const int32_t *bt, int max_blocks, int bs, int nq, int nkv, float scale, int nparts_max) {
    constexpr int P = DEC_SIMT_PART, TPK = HD / 8, NW = DEC_THREADS / 32;
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
    decode_simt_scores<HD, GM>(sc, q_s, kc, table, bs, nkv, kvh, G, j0, j1, warp, sub, li);
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
    /* P x V: lane li owns dims li*8.. of its key rows (decode_simt_pv) */
    float acc[GM][8];
#pragma unroll
    for (int g = 0; g < GM; g++)
#pragma unroll
        for (int e = 0; e < 8; e++) acc[g][e] = 0;
    decode_simt_pv<HD, GM>(acc, sc, vc, table, bs, nkv, kvh, G, j0, j1, warp, sub, li);
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

/* ---- decode_mma (the default where block_size is a multiple of 16): tensor
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
 * partitions the result is unnormalised in ws_* (m in natural-log units, as
 * decode_simt writes it), merged by the block that writes a sequence's last
 * partition (decode_mma_last_merge: no decode_reduce launch). ---- */
#define DEC_MMA_WARPS 4
template <int HD, int NS>
struct decode_mma_smem {
    static constexpr int LD = HD + 8;                                  /* bf16 per staged row */
    static constexpr size_t stage = (size_t)2 * 16 * LD * 2;           /* K (16, LD) | V (16, LD) bf16 */
    static constexpr size_t ring = stage * NS;                         /* one warp's */
    static constexpr size_t pipe = ring * DEC_MMA_WARPS;
    static constexpr size_t comb = (size_t)DEC_MMA_WARPS * 16 * (HD + 2) * 4;  /* O (W,16,HD) | m, l (W,16) f32 */
    static constexpr size_t bytes = pipe > comb ? pipe : comb;
};
/* Where a decode block's result goes, block (sequence b, kv head kvh, partition
 * part) of the query at row q0, its G query heads kvh*G ..: with one partition
 * normalised into out (T, nq, HD) bf16, else unnormalised into ws_o (B, nq,
 * nparts_max, HD) and its max and sum into ws_m, ws_l (B, nq, nparts_max) f32. */
struct dec_dst {
    k_bf16 *out;
    float *ws_o, *ws_m, *ws_l;
    int *cnt;                 /* (B, nkv) partitions written so far, 0 between launches */
    int b, kvh, part, nparts, q0, G, nq, nparts_max;
};

/* With several partitions: the block that writes the last of its (sequence, kv
 * head)'s partitions merges them (dec_merge: decode_reduce's arithmetic, the
 * partitions in order, whichever block comes last) and sets the count back to
 * 0.  Each thread's ws_* writes are fenced before thread 0 counts them. */
template <int HD>
__device__ __forceinline__ void decode_mma_last_merge(const dec_dst &D) {
    __shared__ int last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        int *c = D.cnt + (size_t)D.b * (D.nq / D.G) + D.kvh;
        last = atomicAdd(c, 1) == D.nparts - 1;
        if (last) *c = 0;                                  /* every partition has counted */
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (int i = threadIdx.x; i < D.G * HD; i += blockDim.x) {
        int g = i / HD, d = i % HD, h = D.kvh * D.G + g;
        dec_merge(D.out, D.ws_o, D.ws_m, D.ws_l, ((size_t)D.b * D.nq + h) * D.nparts_max,
                  (size_t)D.q0 * D.nq * HD + (size_t)h * HD, D.nparts, HD, d, HD);
    }
}
/* decode_mma's epilogue: the 4 warps' (m, l, O) through shared memory (O (W, 16, HD),
 * then m (W, 16), l (W, 16) f32), combined by a thread per (head, dim): normalised
 * into out, or unnormalised into ws_* with m in natural-log units, merged by the last block */
template <int HD, int NT>
__device__ __forceinline__ void decode_mma_combine(const dec_dst &D, unsigned char *smem, const float (&o)[NT][4],
                                                   float m0, float m1, float l0, float l1, int warp, int lane) {
    const int G = D.G, r0 = lane >> 2, r1 = r0 + 8, cq = (lane & 3) * 2;
    __syncthreads();
    float *Os = reinterpret_cast<float *>(smem), *ms = Os + DEC_MMA_WARPS * 16 * HD, *ls = ms + DEC_MMA_WARPS * 16;
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
    for (int i = threadIdx.x; i < G * HD; i += DEC_MMA_WARPS * 32) {
        int g = i / HD, d = i % HD, h = D.kvh * G + g;
        float M = -INFINITY;
#pragma unroll
        for (int w = 0; w < DEC_MMA_WARPS; w++) M = fmaxf(M, ms[w * 16 + g]);
        float acc = 0, Lsum = 0;
#pragma unroll
        for (int w = 0; w < DEC_MMA_WARPS; w++) {
            float f = ms[w * 16 + g] == -INFINITY ? 0.0f : exp2f(ms[w * 16 + g] - M);
            acc += Os[(w * 16 + g) * HD + d] * f;
            Lsum += ls[w * 16 + g] * f;
        }
        if (D.nparts == 1)
            st(D.out, (size_t)D.q0 * D.nq * HD + (size_t)h * HD + d, acc / Lsum);
        else {
            size_t wi = ((size_t)D.b * D.nq + h) * D.nparts_max + D.part;
            D.ws_o[wi * HD + d] = acc;
            if (d == 0) { D.ws_m[wi] = M * 0.6931471805599453f; D.ws_l[wi] = Lsum; }
        }
    }
    if (D.nparts > 1) decode_mma_last_merge<HD>(D);
}

template <int HD, int NS>
__global__ void __launch_bounds__(DEC_MMA_WARPS * 32)
decode_mma_kernel(k_bf16 *out, float *ws_o, float *ws_m, float *ws_l, int *counts, const k_bf16 *qkv, int stride,
               const k_bf16 *kc, const k_bf16 *vc, const int32_t *qs, const int32_t *ctxl,
               const int32_t *bt, int max_blocks, int bs, int nq, int nkv, float scale, int nparts_max,
               int P, int heads_first) {
    typedef decode_mma_smem<HD, NS> L;
    constexpr int CH = HD / 8, KS = HD / 16, NT = HD / 8;
    /* grid (B, nkv, parts), or (nkv, B, parts) with heads_first: a sequence's kv heads
     * then run side by side and read each slot's interleaved heads together */
    int b = heads_first ? blockIdx.y : blockIdx.x, kvh = heads_first ? blockIdx.x : blockIdx.y, part = blockIdx.z;
    int q0 = qs[b];
    if (qs[b + 1] - q0 != 1) return;
    int ctx = ctxl[b], nparts = (ctx + P - 1) / P;
    if (part >= nparts) return;
    /* the sequence's nparts partitions are of equal size (a multiple of 16, <= P),
     * not P and a remainder: the merge only needs their number */
    int psz = ((ctx + nparts - 1) / nparts + 15) & ~15;
    int j0 = part * psz, n = min(ctx, j0 + psz) - j0, nkb = (n + 15) / 16;
    int G = nq / nkv, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int r0 = lane >> 2, r1 = r0 + 8, cq = (lane & 3) * 2;  /* this lane's rows and column pair */
    const dec_dst D = { out, ws_o, ws_m, ws_l, counts, b, kvh, part, nparts, q0, G, nq, nparts_max };
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
    int cnt = warp < nkb ? (nkb - warp + DEC_MMA_WARPS - 1) / DEC_MMA_WARPS : 0;   /* this warp's tiles, <= 32 */
    /* lane i holds the physical block of the warp's tile i: no dependent load in the loop */
    int blk = lane < cnt ? table[(j0 + (warp + DEC_MMA_WARPS * lane) * 16) / bs] : 0;
    auto issue = [&](int i) {                              /* tile warp + 4i into stage i % NS */
        int kb = warp + DEC_MMA_WARPS * i;
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
        int kbase = (warp + DEC_MMA_WARPS * i) * 16;
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
    decode_mma_combine<HD, NT>(D, smem, o, m0, m1, l0, l1, warp, lane);
}
#endif
