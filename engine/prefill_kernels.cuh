/* prefill_kernels.cuh: paged attention for sequences with several new
 * tokens (prefill, chunked prefill), causal, through the block tables.  Two
 * techniques: prefill_mma (flash attention on mma.sync, K/V double-buffered
 * by cp.async: the default for head_dim <= 128) and prefill_wmma (WMMA, O in
 * shared memory: head_dim 256).  Device code; launchers in attention.cu. */
#ifndef ENGINE_PREFILL_KERNELS_CUH
#define ENGINE_PREFILL_KERNELS_CUH
#include "engine/paged_kv.cuh"
#include "engine/flash.cuh"
#include <mma.h>

/* ---- prefill_wmma (head_dim 256): tensor cores through WMMA (bf16 in,
 * fp32 accumulate).  Block (query tile of 64, q head, sequence), 4 warps of 16
 * queries; K/V tiles of 64 keys read through the block table into shared
 * memory; S = Q K^T per warp, online softmax in fp32 (P rounded to bf16 for
 * the P x V product, as flash attention does), O kept in shared memory in
 * fp32 and rescaled there. ---- */
#define PF_WMMA_BM 64
#define PF_WMMA_BN 64
template <int HD>
struct prefill_wmma_smem {                       /* byte offsets; every region 32-byte aligned */
    static constexpr int QLD = HD + 8, SLD = PF_WMMA_BN + 4, PLD = PF_WMMA_BN + 8, OLD = HD + 4;
    static constexpr size_t q = 0;
    static constexpr size_t k = q + (size_t)PF_WMMA_BM * QLD * 2;
    static constexpr size_t v = k + (size_t)PF_WMMA_BN * QLD * 2;
    static constexpr size_t s = v + (size_t)PF_WMMA_BN * QLD * 2;
    static constexpr size_t p = s + (size_t)4 * 16 * SLD * 4;
    static constexpr size_t o = p + (size_t)4 * 16 * PLD * 2;
    static constexpr size_t bytes = o + (size_t)4 * 16 * OLD * 4;
};

/* prefill_wmma's S (16, BN) = Q_w (16, HD) K^T: Qw the warp's 16 rows of Qs (rows of QLD),
 * Ks (BN, QLD), S (16, SLD) f32 */
template <int HD>
__device__ __forceinline__ void prefill_wmma_qk(float *S, const bf16 *Qw, const bf16 *Ks) {
    using namespace nvcuda;
    typedef prefill_wmma_smem<HD> L;
#pragma unroll
    for (int nt = 0; nt < PF_WMMA_BN / 16; nt++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
        wmma::fill_fragment(c, 0.0f);
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> kb;
            wmma::load_matrix_sync(a, Qw + kk * 16, L::QLD);
            wmma::load_matrix_sync(kb, Ks + nt * 16 * L::QLD + kk * 16, L::QLD);
            wmma::mma_sync(c, a, kb, c);
        }
        wmma::store_matrix_sync(S + nt * 16, c, L::SLD, wmma::mem_row_major);
    }
}

/* prefill_wmma's O (16, HD) += P (16, BN) V (BN, HD): O (16, OLD) f32, P (16, PLD) bf16,
 * Vs (BN, QLD) */
template <int HD>
__device__ __forceinline__ void prefill_wmma_pv(float *O, const bf16 *Pb, const bf16 *Vs) {
    using namespace nvcuda;
    typedef prefill_wmma_smem<HD> L;
#pragma unroll
    for (int dt = 0; dt < HD / 16; dt++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
        wmma::load_matrix_sync(c, O + dt * 16, L::OLD, wmma::mem_row_major);
#pragma unroll
        for (int kk = 0; kk < PF_WMMA_BN / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> vb;
            wmma::load_matrix_sync(a, Pb + kk * 16, L::PLD);
            wmma::load_matrix_sync(vb, Vs + kk * 16 * L::QLD + dt * 16, L::QLD);
            wmma::mma_sync(c, a, vb, c);
        }
        wmma::store_matrix_sync(O + dt * 16, c, L::OLD, wmma::mem_row_major);
    }
}

template <int HD>
__global__ void __launch_bounds__(128)
prefill_wmma_kernel(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                const int32_t *qs, const int32_t *ctxl, const int32_t *bt, int max_blocks, int bs,
                int nq, int nkv, float scale) {
    typedef prefill_wmma_smem<HD> L;
    constexpr int CH = HD / 8;                          /* 16-byte chunks per row */
    int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int q0 = qs[b], qn = qs[b + 1] - q0, i0 = tile * PF_WMMA_BM;
    if (qn <= 1 || i0 >= qn) return;
    int ctx = ctxl[b], kvh = h / (nq / nkv);
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    int rows = min(PF_WMMA_BM, qn - i0);
    int first_pos = ctx - qn + i0, last_pos = first_pos + rows - 1;
    const int32_t *table = bt + (size_t)b * max_blocks;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem + L::q);          /* (BM, QLD) */
    bf16 *Ks = reinterpret_cast<bf16 *>(smem + L::k);          /* (BN, QLD) */
    bf16 *Vs = reinterpret_cast<bf16 *>(smem + L::v);          /* (BN, QLD) */
    float *S = reinterpret_cast<float *>(smem + L::s) + warp * 16 * L::SLD;   /* (16, SLD) this warp's */
    bf16 *Pb = reinterpret_cast<bf16 *>(smem + L::p) + warp * 16 * L::PLD;    /* (16, PLD) */
    float *O = reinterpret_cast<float *>(smem + L::o) + warp * 16 * L::OLD;   /* (16, OLD) */
    for (int i = tid; i < PF_WMMA_BM * CH; i += 128) {
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
    for (int kt = 0; kt <= last_pos; kt += PF_WMMA_BN) {
        __syncthreads();
        for (int i = tid; i < PF_WMMA_BN * CH; i += 128) {
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
        prefill_wmma_qk<HD>(S, Qs + warp * 16 * L::QLD, Ks);
        __syncwarp();
        /* online softmax of row r over this tile (two lanes per row) */
        float sv[PF_WMMA_BN / 2], mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < PF_WMMA_BN / 2; c++) {
            int col = half * (PF_WMMA_BN / 2) + c;
            float x = S[r * L::SLD + col] * scale;
            sv[c] = valid && kt + col <= pos ? x : -INFINITY;
            mx = fmaxf(mx, sv[c]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        float mn = fmaxf(m, mx), sum = 0;
        float alpha = mn == -INFINITY ? 1.0f : __expf(m - mn);
#pragma unroll
        for (int c = 0; c < PF_WMMA_BN / 2; c++) {
            float p = mn == -INFINITY ? 0.0f : __expf(sv[c] - mn);
            bf16 pb = __float2bfloat16_rn(p);
            sum += __bfloat162float(pb);
            Pb[r * L::PLD + half * (PF_WMMA_BN / 2) + c] = pb;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * alpha + sum;
        m = mn;
        for (int d = half * (HD / 2); d < (half + 1) * (HD / 2); d++) O[r * L::OLD + d] *= alpha;
        __syncwarp();
        prefill_wmma_pv<HD>(O, Pb, Vs);
        __syncwarp();
    }
    if (!valid) return;
    float inv = 1.0f / l;
    for (int d = half * (HD / 2); d < (half + 1) * (HD / 2); d++)
        st(out, (size_t)(q0 + i0 + wrow) * nq * HD + (size_t)h * HD + d, O[r * L::OLD + d] * inv);
}

/* ---- prefill_mma (the default, head_dim <= 128): flash attention on mma.sync.  Block (query
 * tile of 64, q head, sequence), 4 warps of 16 queries; key tiles of 64 read
 * through the block table with cp.async into a double buffer shared by the
 * warps (the next tile loads while this one is used); per warp
 *   S (16, 64) = Q (16, HD) K^T      Q fragments in registers, K by ldmatrix
 *   online softmax in registers       rows lane/4 and lane/4 + 8, causal mask on the diagonal
 *   O (16, HD) += bf16(P) V           V by ldmatrix.trans
 * Keys past the last query's position are zero filled and masked. ---- */
#define PF_MMA_BM 64
#define PF_MMA_BN 64
template <int HD>
struct prefill_mma_smem {
    static constexpr int LD = HD + 8;                                   /* bf16 per staged row */
    static constexpr size_t stage = (size_t)2 * PF_MMA_BN * LD * 2;        /* K (BN, LD) | V (BN, LD) bf16 */
    static constexpr size_t bytes = 2 * stage;
};
template <int HD>
__global__ void __launch_bounds__(128, 3)           /* 3 blocks an SM: 141 TFLOP/s at 64 x 512 (2: 130) */
prefill_mma_kernel(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                const int32_t *qs, const int32_t *ctxl, const int32_t *bt, int max_blocks, int bs,
                int nq, int nkv, float scale) {
    typedef prefill_mma_smem<HD> L;
    constexpr int CH = HD / 8, KS = HD / 16, NT = HD / 8;
    int tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int q0 = qs[b], qn = qs[b + 1] - q0, i0 = tile * PF_MMA_BM;
    if (qn <= 1 || i0 >= qn) return;
    int ctx = ctxl[b], kvh = h / (nq / nkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, tid = threadIdx.x;
    int r0 = lane >> 2, cq = (lane & 3) * 2;
    int rows = min(PF_MMA_BM, qn - i0);
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
    int ntiles = last_pos / PF_MMA_BN + 1;
    const int bsh = (bs & (bs - 1)) == 0 ? __ffs(bs) - 1 : -1;    /* log2(block_size), or -1 */
    auto load = [&](int it) {                                    /* key tile it into stage it & 1 */
        bf16 *ks_ = buf + (size_t)(it & 1) * 2 * PF_MMA_BN * L::LD, *vs_ = ks_ + PF_MMA_BN * L::LD;
#pragma unroll
        for (int c = tid; c < PF_MMA_BN * CH; c += 128) {
            int r = c / CH, col = (c % CH) * 8, j = it * PF_MMA_BN + r;
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
        int kt = it * PF_MMA_BN;
        if (wact && kt <= wlast) {
            const bf16 *ks_ = buf + (size_t)(it & 1) * 2 * PF_MMA_BN * L::LD, *vs_ = ks_ + PF_MMA_BN * L::LD;
            float sc[PF_MMA_BN / 8][4];
            flash_qk<KS, PF_MMA_BN / 8, L::LD>(sc, qa, ks_, lane);
            bool diag = kt + PF_MMA_BN - 1 > wfirst;                /* some key of the tile is after some query */
#pragma unroll
            for (int t = 0; t < PF_MMA_BN / 8; t++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    int j = kt + t * 8 + cq + e;
                    sc[t][e] = !diag || j <= pos0 ? sc[t][e] * sl2 : -INFINITY;
                    sc[t][2 + e] = !diag || j <= pos1 ? sc[t][2 + e] * sl2 : -INFINITY;
                }
            uint32_t pa[PF_MMA_BN / 16][4];
            flash_softmax<PF_MMA_BN / 8, NT>(sc, m0, m1, l0, l1, o, pa);
            flash_pv<PF_MMA_BN / 16, NT, L::LD>(o, pa, vs_, lane);
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
#endif
