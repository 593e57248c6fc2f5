/* attention.cu: host launchers of the paged KV cache and attention kernels
 * (kernels.h): k_kv_write, k_attention and its choice of technique.  Device
 * code: paged_kv.cuh (layout, kv_slot, KV write), decode_kernels.cuh,
 * prefill_kernels.cuh, flash.cuh. */
#include "engine/decode_kernels.cuh"
#include "engine/prefill_kernels.cuh"

#define DEC_MMA_NS 3              /* cp.async stages per warp (4: one block per SM, slower) */
#define DEC_MMA_PART 1024         /* keys per decode_mma partition by default: contexts up to 1k need no reduce */

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

/* the technique k_attention uses: K_ATTN_DEFAULT, K_ATTN_MMA or K_ATTN_SIMT */
static int attn_impl = K_ATTN_DEFAULT;
extern "C" int k_attention_impl(int impl) {
    int old = attn_impl;
    if (impl == K_ATTN_DEFAULT || impl == K_ATTN_MMA || impl == K_ATTN_SIMT || impl == K_ATTN_MMA_HEADS) attn_impl = impl;
    return old;
}

static int dec_mma_part = DEC_MMA_PART;
extern "C" int k_attention_partition(int keys) {
    int old = dec_mma_part;
    if (keys >= K_DECODE_PARTITION && keys % K_DECODE_PARTITION == 0 && keys <= 65536) dec_mma_part = keys;
    return old;
}

/* The workspace: the partitions' (O, m, l) from its start, decode_mma's
 * counts (B, nkv) int at its end (dec_counts): where no call of up to B
 * sequences puts partitions, so they stay 0 from one call to the next. */
extern "C" size_t k_attention_workspace_bytes(int B, int nq, int head_dim, int max_context) {
    size_t parts = (size_t)(max_context + K_DECODE_PARTITION - 1) / K_DECODE_PARTITION;   /* decode_simt's: the most */
    if (parts < 1) parts = 1;
    return (size_t)B * nq * parts * (head_dim + 2) * sizeof(float) + (size_t)B * nq * sizeof(int);
}
static int *dec_counts(float *ws, size_t ws_bytes, int B, int nkv) {
    return reinterpret_cast<int *>(ws) + ws_bytes / sizeof(int) - (size_t)B * nkv;
}
extern "C" int k_attention_workspace_init(float *workspace, size_t workspace_bytes, int B, int nq, cudaStream_t s) {
    size_t n = (size_t)B * nq * sizeof(int);
    if (B < 0 || nq <= 0 || n > workspace_bytes) return -1;
    return cudaMemsetAsync(reinterpret_cast<char *>(workspace) + workspace_bytes / sizeof(int) * sizeof(int) - n, 0, n,
                           s) == cudaSuccess ? 0 : -1;
}

template <int HD, int GM>
static int launch_decode_simt(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                              const k_attn_batch *b, int nq, int nkv, float scale, float *ws, int nparts,
                              cudaStream_t s) {
    static int attr_set = 0;
    int G = nq / nkv;
    size_t smem = sizeof(float) * ((size_t)G * HD + (size_t)G * DEC_SIMT_PART + 2 * G + (size_t)4 * G * HD);
    if (!attr_set) {
        size_t mx = sizeof(float) * ((size_t)GM * HD * 5 + (size_t)GM * (DEC_SIMT_PART + 2));
        if (cudaFuncSetAttribute(decode_simt_kernel<HD, GM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)mx) !=
            cudaSuccess)
            return -1;
        attr_set = 1;
    }
    float *ws_o = ws, *ws_m = ws_o + (size_t)b->B * nq * nparts * HD, *ws_l = ws_m + (size_t)b->B * nq * nparts;
    decode_simt_kernel<HD, GM><<<dim3(b->B, nkv, nparts), DEC_THREADS, smem, s>>>(out, ws_o, ws_m, ws_l, qkv,
        stride, kc, vc, b->query_start, b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv,
        scale, nparts);
    return 0;
}

template <int HD>
static int launch_decode_mma(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                             const k_attn_batch *b, int nq, int nkv, float scale, float *ws, size_t ws_bytes,
                             int nparts, cudaStream_t s) {
    static int attr_set = 0;
    typedef decode_mma_smem<HD, DEC_MMA_NS> L;
    if (!attr_set) {
        if (cudaFuncSetAttribute(decode_mma_kernel<HD, DEC_MMA_NS>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)L::bytes) != cudaSuccess)
            return -1;
        attr_set = 1;
    }
    float *ws_o = ws, *ws_m = ws_o + (size_t)b->B * nq * nparts * HD, *ws_l = ws_m + (size_t)b->B * nq * nparts;
    int hf = attn_impl == K_ATTN_MMA_HEADS;
    dim3 grid(hf ? nkv : b->B, hf ? b->B : nkv, nparts);
    decode_mma_kernel<HD, DEC_MMA_NS><<<grid, DEC_MMA_WARPS * 32, L::bytes, s>>>(out, ws_o,
        ws_m, ws_l, nparts > 1 ? dec_counts(ws, ws_bytes, b->B, nkv) : NULL, qkv, stride, kc, vc, b->query_start,
        b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv, scale, nparts, dec_mma_part, hf);
    return 0;
}

/* the sequences with several new tokens: prefill_mma for head_dim <= 128 unless
 * K_ATTN_SIMT asks for the older pair, else prefill_wmma */
template <int HD>
static int launch_prefill(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                          const k_attn_batch *b, int nq, int nkv, float scale, cudaStream_t s) {
    if constexpr (HD <= 128) {
        if (attn_impl != K_ATTN_SIMT) {
            static int attr = 0;
            if (!attr) {
                if (cudaFuncSetAttribute(prefill_mma_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)prefill_mma_smem<HD>::bytes) != cudaSuccess)
                    return -1;
                attr = 1;
            }
            dim3 grid((b->max_q_len + PF_MMA_BM - 1) / PF_MMA_BM, nq, b->B);
            prefill_mma_kernel<HD><<<grid, 128, prefill_mma_smem<HD>::bytes, s>>>(out, qkv, stride, kc, vc,
                b->query_start, b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv, scale);
            return 0;
        }
    }
    static int attr = 0;
    if (!attr) {
        if (cudaFuncSetAttribute(prefill_wmma_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)prefill_wmma_smem<HD>::bytes) != cudaSuccess)
            return -1;
        attr = 1;
    }
    dim3 grid((b->max_q_len + PF_WMMA_BM - 1) / PF_WMMA_BM, nq, b->B);
    prefill_wmma_kernel<HD><<<grid, 128, prefill_wmma_smem<HD>::bytes, s>>>(out, qkv, stride, kc, vc,
        b->query_start, b->context_lens, b->block_tables, b->max_blocks, b->block_size, nq, nkv, scale);
    return 0;
}

template <int HD>
static int launch_attention(k_bf16 *out, const k_bf16 *qkv, int stride, const k_bf16 *kc, const k_bf16 *vc,
                            const k_attn_batch *b, int nq, int nkv, float scale, float *ws, size_t ws_bytes,
                            cudaStream_t s) {
    if (b->max_q_len > 1 && launch_prefill<HD>(out, qkv, stride, kc, vc, b, nq, nkv, scale, s)) return -1;
    /* decode: decode_mma in partitions of DEC_MMA_PART keys (a multiple of
     * K_DECODE_PARTITION, so the workspace suffices), decode_simt in
     * partitions of DEC_SIMT_PART; the kernels skip sequences of several tokens */
    bool mma = b->block_size % 16 == 0 && attn_impl != K_ATTN_SIMT;
    int part = mma ? dec_mma_part : DEC_SIMT_PART, G = nq / nkv, rc;
    int nparts = (b->max_context + part - 1) / part;
    if (nparts < 1) nparts = 1;
    if (nparts > 1 && ws_bytes < k_attention_workspace_bytes(b->B, nq, HD, b->max_context)) return -1;
    if (mma) rc = launch_decode_mma<HD>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, ws_bytes, nparts, s);
    else if (G <= 2) rc = launch_decode_simt<HD, 2>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, s);
    else if (G <= 4) rc = launch_decode_simt<HD, 4>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, s);
    else if (G <= 8) rc = launch_decode_simt<HD, 8>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, s);
    else rc = launch_decode_simt<HD, 16>(out, qkv, stride, kc, vc, b, nq, nkv, scale, ws, nparts, s);
    if (rc) return rc;
    if (nparts > 1 && !mma) {               /* decode_mma merges in the last block of each sequence */
        float *ws_o = ws, *ws_m = ws_o + (size_t)b->B * nq * nparts * HD, *ws_l = ws_m + (size_t)b->B * nq * nparts;
        decode_reduce_kernel<<<dim3(b->B, nq), HD, 0, s>>>(out, ws_o, ws_m, ws_l, b->query_start,
                                                           b->context_lens, nq, HD, nparts, part);
    }
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
