/* mem_plan: see mem_plan.h. */
#include "engine/mem_plan.h"
#include "base/errbuf.h"
#include <math.h>

#define GIB 1073741824.0

long mplan_blocks(const mplan_in *in, mplan_out *out) {
    out->total = in->max_gpu_memory > 0 && in->max_gpu_memory < in->device_total ? in->max_gpu_memory
                                                                                  : in->device_total;
    out->budget = in->util * out->total - in->in_use;
    double block = (double)in->kv_bytes_per_token * in->block_size;
    out->blocks = out->budget > 0 && block > 0 ? (long)floor(out->budget / block) : 0;
    if (in->num_gpu_blocks > 0) out->blocks = in->num_gpu_blocks;
    out->needed = in->block_size > 0 ? (in->max_model_len + in->block_size - 1) / in->block_size : 0;
    return out->blocks;
}

int mplan_check(const mplan_in *in, const mplan_out *out, long blocks, int other_rank, char *err, size_t errlen) {
    if (blocks >= out->needed && blocks > 0) return 0;
    return errbuf_fail(err, errlen, "not enough GPU memory for the KV cache%s: %.2f GiB%s x utilization %.2f = "
             "%.2f GiB; in use %.2f GiB (weights %.2f GiB, activation peak %.2f GiB, other %.2f GiB) leaves %.2f GiB "
             "= %ld tokens at %zu bytes/token (# GPU blocks: %ld), but one sequence of max_model_len %d needs %ld "
             "tokens", other_rank ? " on another tensor-parallel rank" : "", out->total / GIB,
             out->total < in->device_total ? " (--max-gpu-memory)" : "", in->util, in->util * out->total / GIB,
             in->in_use / GIB, in->weights / GIB, in->activations / GIB, in->other / GIB, out->budget / GIB,
             blocks * in->block_size, in->kv_bytes_per_token, blocks, in->max_model_len,
             out->needed * in->block_size);
}
