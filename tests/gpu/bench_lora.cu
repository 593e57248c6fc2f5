/* bench_lora: the segmented LoRA kernels (engine/lora.cu, lora_shrink.cu) beside
 * the ones they replaced, timed in one binary with CUDA events at the bias
 * benchmark's Qwen2.5-7B shapes (hidden 3584, intermediate 18944, 28/4 heads
 * of 128, rank 16 on every linear): q|k|v (K 3584, RA 48, N 4608 in three
 * slices), o (3584 -> 3584), gate|up fused into SwiGLU (K 3584, RA 32, I
 * 18944), down (18944 -> 3584); a prefill step (T = 16384: 32 sequences of
 * 512) and decode steps (T = 256 and 839 sequences of one token); 1 and 8
 * adapters (sequence i takes slot i % adapters).  Prints us per call, GB/s of
 * the ideal bytes (shrink: x read once, v written; expand: y read and
 * written; SwiGLU: gate|up read, act written) and the time those bytes take
 * at 4.8 TB/s, then checks the new kernels against the C references
 * (kernels_ref_lora.c) on a sample of rows (rel L2).  The old kernels live
 * here only (old_*, verbatim from engine/lora.cu before the rewrite).
 *   build: scripts/gpu/lora_bench.sh (nvcc against build/gpu/obj/lib{engine,engcu,base}.a)
 *   run:   build/gpu/bench_lora [iterations] */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <mma.h>
#include "engine/common.cuh"
#include "engine/kernels_lora.h"
#include "engine/kernels_ref.h"
extern "C" {                      /* plain-C headers without their own guards */
#include "engine/kernels_ref_lora.h"
#include "engine/lora_slots.h"
}

using namespace nvcuda;

/* ---- the former kernels, verbatim but for the names ---------------------------------- */
#define OLT 16
#define OSW 4                /* warps of a shrink block */
#define OSKC 64              /* K chunk a warp stages at once */
#define OSNC 64              /* columns of A x per shrink block */
#define OSLD (OSKC + 8)       /* staged row pitch (bf16): 144 bytes */

__global__ __launch_bounds__(128) void old_shrink_kernel(float *v,                 // (rows, RA)
                                                          const k_bf16 *x,          // (T, x_stride)
                                                          int x_stride,
                                                          const k_bf16 *A,          // (nslots, slot_stride) -> (RA, K)
                                                          int64_t slot_stride, int RA, int K,
                                                          const int32_t *perm,      // (rows,)
                                                          const int32_t *tiles) {   // (ntiles, 3)
    __shared__ __align__(32) bf16 xs[OSW][OLT * OSLD];
    __shared__ __align__(32) float red[OSW][OLT * OSNC];
    int tile = blockIdx.x, c0 = blockIdx.y * OSNC;
    int slot = tiles[3 * tile], row0 = tiles[3 * tile + 1], nrow = tiles[3 * tile + 2];
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const bf16 *As = reinterpret_cast<const bf16 *>(A) + (int64_t)slot * slot_stride;
    int nfrag = (RA - c0) / 16 < 4 ? (RA - c0) / 16 : 4;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4];
#pragma unroll
    for (int f = 0; f < 4; f++) wmma::fill_fragment(acc[f], 0.0f);
    int r = lane >> 1, cv = (lane & 1) * 4;       /* this lane stages row r, 16-byte columns cv .. cv + 3 */
    const uint4 *xrow = r < nrow ? reinterpret_cast<const uint4 *>(x + (int64_t)perm[row0 + r] * x_stride) : nullptr;
    for (int k0 = w * OSKC; k0 < K; k0 += OSW * OSKC) {
        int kc = K - k0 < OSKC ? K - k0 : OSKC;     /* a multiple of 16 */
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int col = (cv + i) * 8;
            uint4 q = make_uint4(0, 0, 0, 0);
            if (xrow && col < kc) q = __ldg(xrow + (k0 + col) / 8);
            *reinterpret_cast<uint4 *>(&xs[w][r * OSLD + col]) = q;
        }
        __syncwarp();
        for (int kk = 0; kk < kc; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
            wmma::load_matrix_sync(fa, &xs[w][kk], OSLD);
#pragma unroll
            for (int f = 0; f < 4; f++) {
                if (f >= nfrag) break;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
                wmma::load_matrix_sync(fb, As + (int64_t)(c0 + 16 * f) * K + k0 + kk, K);
                wmma::mma_sync(acc[f], fa, fb, acc[f]);
            }
        }
        __syncwarp();
    }
#pragma unroll
    for (int f = 0; f < 4; f++) wmma::store_matrix_sync(&red[w][16 * f], acc[f], OSNC, wmma::mem_row_major);
    __syncthreads();
    for (int e = threadIdx.x; e < OLT * OSNC; e += blockDim.x) {
        int rr = e / OSNC, cc = e % OSNC;
        if (rr < nrow && c0 + cc < RA)
            v[(int64_t)(row0 + rr) * RA + c0 + cc] = ((red[0][e] + red[1][e]) + red[2][e]) + red[3][e];
    }
}

/* acc[i][c] (rows rg + 4 i of the tile, columns n0 + c) = v[row, voff + k] . B[n0 + c, k] over k < R */
__device__ __forceinline__ void old_expand_dot(float acc[4][8], const float *v, int RA, int voff, const bf16 *Bn, int R,
                                           int row0, int nrow, int rg) {
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int c = 0; c < 8; c++) acc[i][c] = 0.0f;
    for (int k0 = 0; k0 < R; k0 += 8) {
        float b[8][8];
#pragma unroll
        for (int c = 0; c < 8; c++) unpack8(__ldg(reinterpret_cast<const uint4 *>(Bn + (int64_t)c * R + k0)), b[c]);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int rr = rg + 4 * i;
            if (rr >= nrow) break;
            const float4 *vr = reinterpret_cast<const float4 *>(v + (int64_t)(row0 + rr) * RA + voff + k0);
            float4 a = __ldg(vr), b4 = __ldg(vr + 1);
            float vv[8] = {a.x, a.y, a.z, a.w, b4.x, b4.y, b4.z, b4.w};
#pragma unroll
            for (int c = 0; c < 8; c++)
#pragma unroll
                for (int k = 0; k < 8; k++) acc[i][c] = fmaf(vv[k], b[c][k], acc[i][c]);
        }
    }
}

__device__ __forceinline__ uint4 old_pack8(const float o[8]) {
    uint4 q;
    uint32_t *w = reinterpret_cast<uint32_t *>(&q);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        __nv_bfloat162 h = __floats2bfloat162_rn(o[2 * k], o[2 * k + 1]);
        w[k] = *reinterpret_cast<uint32_t *>(&h);
    }
    return q;
}

__global__ __launch_bounds__(128) void old_expand_kernel(k_bf16 *y,                // (T, y_stride)
                                                          int y_stride,
                                                          const float *v,           // (rows, RA)
                                                          int RA,
                                                          const k_bf16 *B,          // (nslots, slot_stride) -> (N, R)
                                                          int64_t slot_stride,
                                                          const float *scale,       // (nslots,)
                                                          k_lora_slices sl,
                                                          const int32_t *perm, const int32_t *tiles) {
    int N = sl.end[sl.S - 1], n0 = blockIdx.y * 256 + (threadIdx.x & 31) * 8, rg = threadIdx.x >> 5;
    if (n0 >= N) return;
    int tile = blockIdx.x, slot = tiles[3 * tile], row0 = tiles[3 * tile + 1], nrow = tiles[3 * tile + 2];
    int j = 0;
    while (j < sl.S - 1 && n0 >= sl.end[j]) j++;
    const bf16 *Bn = reinterpret_cast<const bf16 *>(B) + (int64_t)slot * slot_stride + (int64_t)n0 * sl.R;
    float acc[4][8], s = scale[slot];
    old_expand_dot(acc, v, RA, j * sl.R, Bn, sl.R, row0, nrow, rg);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int rr = rg + 4 * i;
        if (rr >= nrow) break;
        uint4 *yp = reinterpret_cast<uint4 *>(y + (int64_t)perm[row0 + rr] * y_stride + n0);
        float o[8];
        unpack8(*yp, o);
#pragma unroll
        for (int c = 0; c < 8; c++) o[c] += s * acc[i][c];
        *yp = old_pack8(o);
    }
}

__global__ __launch_bounds__(128) void old_silu_kernel(k_bf16 *act,               // (T, I)
                                                        const k_bf16 *gu,          // (T, 2I) gate | up
                                                        int I,
                                                        const float *v,            // (rows, RA): gate's A x | up's
                                                        int RA,
                                                        const k_bf16 *B,           // (nslots, slot_stride) -> (2I, R)
                                                        int64_t slot_stride, const float *scale, int R,
                                                        const int32_t *perm, const int32_t *tiles) {
    int n0 = blockIdx.y * 256 + (threadIdx.x & 31) * 8, rg = threadIdx.x >> 5;
    if (n0 >= I) return;
    int tile = blockIdx.x, slot = tiles[3 * tile], row0 = tiles[3 * tile + 1], nrow = tiles[3 * tile + 2];
    float dg[4][8], du[4][8], s = slot >= 0 ? scale[slot] : 0.0f;
    if (slot >= 0) {
        const bf16 *Bs = reinterpret_cast<const bf16 *>(B) + (int64_t)slot * slot_stride;
        old_expand_dot(dg, v, RA, 0, Bs + (int64_t)n0 * R, R, row0, nrow, rg);
        old_expand_dot(du, v, RA, R, Bs + (int64_t)(I + n0) * R, R, row0, nrow, rg);
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int rr = rg + 4 * i;
        if (rr >= nrow) break;
        int64_t t = perm[row0 + rr];
        float g[8], u[8], o[8];
        unpack8(__ldg(reinterpret_cast<const uint4 *>(gu + t * 2 * I + n0)), g);
        unpack8(__ldg(reinterpret_cast<const uint4 *>(gu + t * 2 * I + I + n0)), u);
#pragma unroll
        for (int c = 0; c < 8; c++) {
            if (slot >= 0) { g[c] = rbf(g[c] + s * dg[i][c]); u[c] = rbf(u[c] + s * du[i][c]); }
            o[c] = rbf(g[c] / (1.0f + expf(-g[c]))) * u[c];
        }
        *reinterpret_cast<uint4 *>(act + t * I + n0) = old_pack8(o);
    }
}


/* the old launchers (engine/lora.cu before), checks dropped */
static int old_shrink(float *v, const k_bf16 *x, int xs, const k_bf16 *A, int64_t ss, int RA, int K,
                      const k_lora_batch *b, cudaStream_t s) {
    dim3 grid(b->ntiles, (RA + OSNC - 1) / OSNC);
    old_shrink_kernel<<<grid, 128, 0, s>>>(v, x, xs, A, ss, RA, K, b->perm, b->tiles);
    return cudaPeekAtLastError() == cudaSuccess ? 0 : -1;
}
static int old_expand(k_bf16 *y, int ys, const float *v, int RA, const k_bf16 *B, int64_t ss, const float *scale,
                      const k_lora_slices *sl, const k_lora_batch *b, cudaStream_t s) {
    dim3 grid(b->ntiles, (sl->end[sl->S - 1] + 255) / 256);
    old_expand_kernel<<<grid, 128, 0, s>>>(y, ys, v, RA, B, ss, scale, *sl, b->perm, b->tiles);
    return cudaPeekAtLastError() == cudaSuccess ? 0 : -1;
}
static int old_silu(k_bf16 *act, const k_bf16 *gu, int I, const float *v, int RA, const k_bf16 *B, int64_t ss,
                    const float *scale, int R, const k_lora_batch *b, cudaStream_t s) {
    dim3 grid(b->ntiles_all, (I + 255) / 256);
    old_silu_kernel<<<grid, 128, 0, s>>>(act, gu, I, v, RA, B, ss, scale, R, b->perm, b->tiles);
    return cudaPeekAtLastError() == cudaSuccess ? 0 : -1;
}

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)

/* a reproducible bf16 value for element i of buffer seed, the same on host and device */
__host__ __device__ static inline float hval(uint64_t seed, uint64_t i, float scale) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + i + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return kref_round_bf(((float)(z >> 48) / 32768.0f - 1.0f) * scale);
}
__global__ void fill_kernel(k_bf16 *p, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        reinterpret_cast<uint16_t *>(p)[i] = kref_f2bf(hval(seed, (uint64_t)i, scale));
}
static void fill(k_bf16 *p, int64_t n, uint64_t seed, float scale) {
    fill_kernel<<<2048, 256>>>(p, n, seed, scale);
    CK(cudaGetLastError());
}
static float *host_vals(int64_t n, uint64_t seed, float scale) {
    float *h = (float *)malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) h[i] = hval(seed, (uint64_t)i, scale);
    return h;
}

typedef struct linear { const char *name; int K, RA, silu; k_lora_slices sl; } linear;
enum { NSLOTS = 8, TMAX = 16384, KMAX = 18944, IMAX = 18944, NMAX = 4608, RAMAX = 48, NSEL = 40 };

typedef struct bufs {
    k_bf16 *x, *y, *gu, *act, *A, *B;
    float *v, *scale, *work;
    int64_t nwork;
    int32_t *perm, *tiles;                  /* device copies of the batch */
} bufs;

/* the batch: nseq sequences of len tokens, sequence i in slot i % nad; every token has an adapter */
typedef struct step { int T, nad, rows, nt, nall; int32_t *perm, *tiles, *row_slot; k_lora_batch kb; } step;
static void step_make(step *st, bufs *bf, int nseq, int len, int nad) {
    int32_t *qs = (int32_t *)malloc(4 * (size_t)(nseq + 1)), *so = (int32_t *)malloc(4 * (size_t)nseq);
    for (int i = 0; i <= nseq; i++) qs[i] = i * len;
    for (int i = 0; i < nseq; i++) so[i] = i % nad;
    st->T = nseq * len;
    st->nad = nad;
    st->perm = (int32_t *)malloc(4 * (size_t)st->T);
    st->tiles = (int32_t *)malloc(4 * 3 * (size_t)(st->T / 16 + NSLOTS + 2));
    st->rows = lora_group_tokens(so, qs, nseq, NSLOTS, st->perm, st->tiles, &st->nt, &st->nall);
    st->row_slot = (int32_t *)malloc(4 * (size_t)st->T);
    for (int t = 0; t < st->nall; t++)
        for (int r = 0; r < st->tiles[3 * t + 2]; r++) st->row_slot[st->tiles[3 * t + 1] + r] = st->tiles[3 * t];
    CK(cudaMemcpy(bf->perm, st->perm, 4 * (size_t)st->T, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(bf->tiles, st->tiles, 4 * 3 * (size_t)st->nall, cudaMemcpyHostToDevice));
    st->kb = (k_lora_batch){st->rows, st->nt, st->nall, bf->perm, bf->tiles, bf->work, bf->nwork};
    free(qs); free(so);
}
static void step_free(step *st) { free(st->perm); free(st->tiles); free(st->row_slot); }

/* us per call of f (a closure over the step and linear through a switch) */
enum { K_OLD_SHRINK, K_NEW_SHRINK, K_OLD_EXPAND, K_NEW_EXPAND, K_OLD_SILU, K_NEW_SILU };
static int launch(int which, bufs *bf, const linear *L, const step *st) {
    int64_t sa = (int64_t)L->RA * L->K, sb = (int64_t)(L->silu ? 2 * IMAX : L->sl.end[L->sl.S - 1]) * 16;
    int N = L->sl.end[L->sl.S - 1];
    switch (which) {
    case K_OLD_SHRINK: return old_shrink(bf->v, bf->x, L->K, bf->A, sa, L->RA, L->K, &st->kb, 0);
    case K_NEW_SHRINK: return k_lora_shrink(bf->v, bf->x, L->K, bf->A, sa, L->RA, L->K, &st->kb, 0);
    case K_OLD_EXPAND: return old_expand(bf->y, N, bf->v, L->RA, bf->B, sb, bf->scale, &L->sl, &st->kb, 0);
    case K_NEW_EXPAND: return k_lora_expand(bf->y, N, bf->v, L->RA, bf->B, sb, bf->scale, &L->sl, &st->kb, 0);
    case K_OLD_SILU: return old_silu(bf->act, bf->gu, IMAX, bf->v, L->RA, bf->B, sb, bf->scale, 16, &st->kb, 0);
    default: return k_lora_silu(bf->act, bf->gu, IMAX, bf->v, L->RA, bf->B, sb, bf->scale, 16, &st->kb, 0);
    }
}
static double time_us(int which, bufs *bf, const linear *L, const step *st, int iters) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    for (int i = 0; i < 2; i++) if (launch(which, bf, L, st)) { fprintf(stderr, "launch %d failed\n", which); exit(1); }
    CK(cudaEventRecord(a, 0));
    for (int i = 0; i < iters; i++) launch(which, bf, L, st);
    CK(cudaEventRecord(b, 0));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    CK(cudaGetLastError());
    cudaEventDestroy(a); cudaEventDestroy(b);
    return ms * 1e3 / iters;
}

static double rel_l2(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) return INFINITY;
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
static float *rows_down(const k_bf16 *d, const int32_t *toks, int n, int64_t width) {   /* (n, width) */
    uint16_t *h = (uint16_t *)malloc(2 * (size_t)width);
    float *o = (float *)malloc(sizeof(float) * (size_t)n * width);
    for (int j = 0; j < n; j++) {
        CK(cudaMemcpy(h, d + (size_t)toks[j] * width, 2 * (size_t)width, cudaMemcpyDeviceToHost));
        for (int64_t k = 0; k < width; k++) o[(size_t)j * width + k] = kref_bf2f(h[k]);
    }
    free(h);
    return o;
}

enum { SEED_X = 1, SEED_A = 2, SEED_B = 3, SEED_Y = 4, SEED_GU = 5 };
/* The new kernels once on fresh inputs against the references on nsel sampled rows:
 * err[0] shrink (v), err[1] expand (y) or SwiGLU (act). */
static void check(double err[2], bufs *bf, const linear *L, const step *st, const float *hA, const float *hB,
                  const float *hscale) {
    int nsel = st->rows < NSEL ? st->rows : NSEL, N = L->silu ? IMAX : L->sl.end[L->sl.S - 1];
    int64_t sa = (int64_t)L->RA * L->K, sb = (int64_t)(L->silu ? 2 * IMAX : N) * 16, W = L->silu ? 2 * IMAX : N;
    int32_t tiles[3 * NSEL], perm[NSEL], toks[NSEL];
    float *x = (float *)malloc(sizeof(float) * (size_t)nsel * L->K), *vr = (float *)malloc(sizeof(float) * NSEL * RAMAX);
    float *vg = (float *)malloc(sizeof(float) * (size_t)st->rows * L->RA), *vs = (float *)malloc(sizeof(float) * NSEL * RAMAX);
    for (int j = 0; j < nsel; j++) {
        int row = (int)((int64_t)j * st->rows / nsel);
        toks[j] = st->perm[row];
        tiles[3 * j] = st->row_slot[row]; tiles[3 * j + 1] = j; tiles[3 * j + 2] = 1;
        perm[j] = j;
        for (int k = 0; k < L->K; k++) x[(size_t)j * L->K + k] = hval(SEED_X, (uint64_t)toks[j] * L->K + k, 1.0f);
    }
    if (launch(K_NEW_SHRINK, bf, L, st)) { fprintf(stderr, "shrink launch failed\n"); exit(1); }
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(vg, bf->v, sizeof(float) * (size_t)st->rows * L->RA, cudaMemcpyDeviceToHost));
    kref_lora_shrink(vr, x, L->K, hA, sa, L->RA, L->K, nsel, tiles, perm);
    for (int j = 0; j < nsel; j++)
        memcpy(vs + (size_t)j * L->RA, vg + (size_t)((int64_t)j * st->rows / nsel) * L->RA, sizeof(float) * L->RA);
    err[0] = rel_l2(vs, vr, (size_t)nsel * L->RA);
    float *in = (float *)malloc(sizeof(float) * (size_t)nsel * W), *ref = (float *)malloc(sizeof(float) * (size_t)nsel * N);
    for (int j = 0; j < nsel; j++)
        for (int64_t n = 0; n < W; n++)
            in[(size_t)j * W + n] = hval(L->silu ? SEED_GU : SEED_Y, (uint64_t)toks[j] * W + n, L->silu ? 4.0f : 1.0f);
    float *got;
    if (L->silu) {
        if (launch(K_NEW_SILU, bf, L, st)) { fprintf(stderr, "silu launch failed\n"); exit(1); }
        got = rows_down(bf->act, toks, nsel, N);
        kref_lora_silu(ref, in, IMAX, vs, L->RA, hB, sb, hscale, 16, nsel, tiles, perm);
    } else {
        fill(bf->y, (int64_t)st->T * N, SEED_Y, 1.0f);
        if (launch(K_NEW_EXPAND, bf, L, st)) { fprintf(stderr, "expand launch failed\n"); exit(1); }
        got = rows_down(bf->y, toks, nsel, N);
        memcpy(ref, in, sizeof(float) * (size_t)nsel * N);
        kref_lora_expand(ref, N, vs, L->RA, hB, sb, hscale, &L->sl, nsel, tiles, perm);
    }
    err[1] = rel_l2(got, ref, (size_t)nsel * N);
    free(x); free(vr); free(vg); free(vs); free(in); free(ref); free(got);
}

static void *dalloc(size_t bytes) {
    void *p = NULL;
    CK(cudaMalloc(&p, bytes));
    return p;
}

int main(int argc, char **argv) {
    int iters = argc > 1 ? atoi(argv[1]) : 20;
    if (iters < 1) iters = 1;
    const linear lin[] = {{"q|k|v", 3584, 48, 0, {3, 16, {3584, 4096, 4608}}},
                          {"o", 3584, 16, 0, {1, 16, {3584, 0, 0}}},
                          {"gate|up", 3584, 32, 1, {2, 16, {IMAX, 2 * IMAX, 0}}},
                          {"down", 18944, 16, 0, {1, 16, {3584, 0, 0}}}};
    const int steps[][3] = {{32, 512, 1}, {32, 512, 8}, {256, 1, 1}, {256, 1, 8}, {839, 1, 1}, {839, 1, 8}};
    bufs bf;
    bf.x = (k_bf16 *)dalloc(2 * (size_t)TMAX * KMAX);
    bf.y = (k_bf16 *)dalloc(2 * (size_t)TMAX * NMAX);
    bf.gu = (k_bf16 *)dalloc(2 * (size_t)TMAX * 2 * IMAX);
    bf.act = (k_bf16 *)dalloc(2 * (size_t)TMAX * IMAX);
    bf.A = (k_bf16 *)dalloc(2 * (size_t)NSLOTS * 16 * KMAX);
    bf.B = (k_bf16 *)dalloc(2 * (size_t)NSLOTS * 2 * IMAX * 16);
    bf.v = (float *)dalloc(4 * (size_t)TMAX * RAMAX);
    bf.nwork = 0;
    for (int l = 0; l < 4; l++) {
        int64_t w = k_lora_shrink_work(lin[l].RA, lin[l].K, K_LORA_SPLIT_ROWS);
        if (w > bf.nwork) bf.nwork = w;
    }
    bf.work = (float *)dalloc(4 * (size_t)bf.nwork);
    bf.perm = (int32_t *)dalloc(4 * (size_t)TMAX);
    bf.tiles = (int32_t *)dalloc(4 * 3 * (size_t)(TMAX / 16 + NSLOTS + 2));
    float hscale[NSLOTS];
    for (int k = 0; k < NSLOTS; k++) hscale[k] = 2.0f;             /* alpha 32 / r 16 */
    bf.scale = (float *)dalloc(sizeof hscale);
    CK(cudaMemcpy(bf.scale, hscale, sizeof hscale, cudaMemcpyHostToDevice));
    printf("LoRA kernels, old vs new: Qwen2.5-7B shapes, rank 16, %d iterations per figure; ideal = bytes at 4.8 TB/s\n",
           iters);
    printf("%-7s %5s %2s %-8s %-7s | %9s %7s | %9s %7s | %7s | %9s | %s\n", "step", "T", "ad", "linear", "kernel",
           "old us", "GB/s", "new us", "GB/s", "speedup", "ideal us", "new vs reference (rel L2)");
    int bad = 0;
    for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
        step st;
        step_make(&st, &bf, steps[si][0], steps[si][1], steps[si][2]);
        double lay_old = 0, lay_new = 0, part_new[3] = {0, 0, 0};   /* new: shrinks, expands, SwiGLU */
        for (int l = 0; l < 4; l++) {
            const linear *L = &lin[l];
            int N = L->silu ? IMAX : L->sl.end[L->sl.S - 1];
            int64_t sa = (int64_t)L->RA * L->K, sb = (int64_t)(L->silu ? 2 * IMAX : N) * 16;
            fill(bf.x, (int64_t)st.T * L->K, SEED_X, 1.0f);
            fill(bf.A, NSLOTS * sa, SEED_A + 16 * l, 0.0625f);
            fill(bf.B, NSLOTS * sb, SEED_B + 16 * l, 0.125f);
            if (L->silu) fill(bf.gu, (int64_t)st.T * 2 * IMAX, SEED_GU, 4.0f);
            float *hA = host_vals(NSLOTS * sa, SEED_A + 16 * l, 0.0625f), *hB = host_vals(NSLOTS * sb, SEED_B + 16 * l, 0.125f);
            double err[2];
            check(err, &bf, L, &st, hA, hB, hscale);
            free(hA); free(hB);
            double tol[2] = {1e-5, L->silu ? 5e-3 : 2e-3};
            double by[2] = {(double)st.T * L->K * 2 + (double)st.rows * L->RA * 4,
                            L->silu ? (double)st.T * 3 * IMAX * 2 : (double)st.rows * N * 4};
            int ko[2] = {K_OLD_SHRINK, L->silu ? K_OLD_SILU : K_OLD_EXPAND};
            for (int k = 0; k < 2; k++) {
                double to = time_us(ko[k], &bf, L, &st, iters), tn = time_us(ko[k] + 1, &bf, L, &st, iters);
                lay_old += to;
                lay_new += tn;
                part_new[k ? (L->silu ? 2 : 1) : 0] += tn;
                int ok = err[k] < tol[k];
                bad += !ok;
                printf("%-7s %5d %2d %-8s %-7s | %9.1f %7.0f | %9.1f %7.0f | %6.1fx | %9.1f | %.1e %s\n",
                       steps[si][1] > 1 ? "prefill" : "decode", st.T, st.nad, L->name,
                       k ? (L->silu ? "silu" : "expand") : "shrink", to, by[k] / to / 1e3, tn, by[k] / tn / 1e3, to / tn,
                       by[k] / 4.8e6, err[k], ok ? "ok" : "FAIL");
                fflush(stdout);
            }
        }
        printf("%-7s %5d %2d one layer's LoRA kernels (SwiGLU included): old %.1f us, new %.1f us; x 28 layers: "
               "old %.2f ms, new %.2f ms\n", steps[si][1] > 1 ? "prefill" : "decode", st.T, st.nad, lay_old, lay_new,
               lay_old * 28 / 1e3, lay_new * 28 / 1e3);
        printf("%-7s %5d %2d   new, by kind: shrinks %.1f us, expands %.1f us, SwiGLU %.1f us\n",
               steps[si][1] > 1 ? "prefill" : "decode", st.T, st.nad, part_new[0], part_new[1], part_new[2]);
        step_free(&st);
    }
    printf("%s\n", bad ? "FAILED: new kernels differ from the references" : "all checks ok");
    return bad ? 1 : 0;
}
