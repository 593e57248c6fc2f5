/* paged_kv.cuh: the paged KV cache, written once: its layout, the one
 * function that turns a token's position into its slot (kv_slot), and the
 * kernels that write new tokens' K and V into their slots.  Device code;
 * the launcher k_kv_write is in attention.cu.
 *
 * KV cache layout (one pair of arrays per layer):
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
#ifndef ENGINE_PAGED_KV_CUH
#define ENGINE_PAGED_KV_CUH
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
#endif
