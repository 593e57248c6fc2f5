/* mem_plan: the arithmetic of the engine's KV-cache budget, apart from the
 * GPU so that it can be tested on the CPU against sim/planner.c:
 *   total  = the device's memory, or --max-gpu-memory when that is smaller
 *            (a 12 GB card's budget reproduced on a large GPU)
 *   budget = total x gpu_memory_utilization - what is in use after the
 *            profile step (weights, activation peak, CUDA context, others)
 *   blocks = floor(budget / (KV bytes per token x block size))
 * as vLLM plans it.  Pure. */
#ifndef ENGINE_MEM_PLAN_H
#define ENGINE_MEM_PLAN_H
#include <stddef.h>

typedef struct mplan_in {
    double device_total;      /* bytes of the device */
    double max_gpu_memory;    /* > 0: plan as if the device had only this many bytes */
    double util;              /* gpu_memory_utilization */
    double in_use;            /* bytes in use on the device after the profile step */
    double weights, activations, other;   /* the parts of in_use, for the message */
    size_t kv_bytes_per_token;
    int    block_size, max_model_len;
    long   num_gpu_blocks;    /* > 0: this many blocks, whatever the budget */
} mplan_in;

typedef struct mplan_out {
    double total;             /* the total planned with (device or cap) */
    double budget;            /* total x util - in_use (may be < 0) */
    long   blocks;            /* what fits, or num_gpu_blocks */
    long   needed;            /* blocks of one max_model_len sequence */
} mplan_out;

/* Fills out; returns out->blocks. */
long mplan_blocks(const mplan_in *in, mplan_out *out);
/* 0 when `blocks` (the plan's, or fewer: another tensor-parallel rank's when
 * other_rank) hold one sequence of max_model_len; else -1 and the message
 * with the numbers ("not enough GPU memory for the KV cache ..."). */
int  mplan_check(const mplan_in *in, const mplan_out *out, long blocks, int other_rank, char *err, size_t errlen);
#endif
