/* cost_model: how long one scheduler step takes on a GPU, for the simulator's
 * executor.  A roofline: prefill is bounded by FLOPs, decode by the bytes of
 * weights and KV read, plus a tensor-parallel all-reduce term and fixed
 * per-step overheads; every efficiency is a coefficient that `pagesim
 * calibrate` can fit from real measurements.  GPU specs come from the GPU
 * table (sim/gpu_table.h, included here).  Reads files only in cm_coeffs_load. */
#ifndef COST_MODEL_H
#define COST_MODEL_H
#include <stddef.h>
#include "sim/model_config.h"
#include "sim/gpu_table.h"
#include "sim/cost_lora.h"

typedef struct cm_coeffs {   /* fitted; defaults from public measurements */
    double flops_eff;        /* achieved / peak FLOP/s for GEMMs */
    double bw_eff;           /* achieved / peak bandwidth */
    double step_overhead_s;  /* fixed CPU+launch time per step */
    double per_seq_s;        /* per running sequence per step (sampling, bookkeeping) */
    double allreduce_lat_s;  /* latency of one all-reduce (TP > 1), twice per layer */
    double host_bw;          /* achieved GPU<->CPU copy bandwidth for swapped KV blocks, bytes/s */
    double copy_call_s;      /* fixed cost of one swap copy call (cudaMemcpyAsync) */
} cm_coeffs;

struct opp_profile;           /* sim/op_profile.h */

/* How a step's swap copies are issued (the call count the cost model prices):
 * CM_SWAP_PER_BLOCK as vLLM's swap_blocks (one cudaMemcpyAsync per block,
 * layer and K/V: what the labs teach), CM_SWAP_RUNS as our engine
 * (engine/swap.c: one cudaMemcpy2DAsync per run of consecutive blocks,
 * sim/kv_runs.h, for all layers at once). */
typedef enum { CM_SWAP_PER_BLOCK = 0, CM_SWAP_RUNS = 1 } cm_swap_copies;

typedef struct cm_model {
    mc_config cfg;           /* shape */
    cm_gpu    gpu;
    int       tp;            /* tensor-parallel degree (GPUs) */
    mc_dtype  wdtype;        /* weights dtype (AWQ4 reads 4-bit weights) */
    mc_dtype  kvdtype;       /* KV cache dtype */
    cm_coeffs k;
    const struct opp_profile *prof;  /* operator timings (sim/op_profile.h), owned by the caller;
                                        NULL: the roofline */
    cm_swap_copies swap_copies;  /* CM_SWAP_PER_BLOCK (cm_model_init's) or CM_SWAP_RUNS */
    cm_lora   lora;          /* runtime LoRA's slots (sim/cost_lora.h); rank 0 (cm_model_init):
                                none, a step costs what it did before LoRA existed */
} cm_model;

/* What one step does; the scheduler's batch reduced to counts. */
typedef struct cm_batch {
    int  num_seqs;           /* sequences in the step */
    long prefill_tokens;     /* new prompt tokens computed */
    long decode_tokens;      /* new generated-token positions computed (1 per decoding seq) */
    long attn_ctx_tokens;    /* sum over new tokens' sequences of context length read (KV) */
    long attn_pairs;         /* sum over new tokens of the context they attend to (FLOPs) */
    long swap_blocks;        /* KV blocks copied between GPU and CPU before the step (out + in) */
    long swap_tokens;        /* their token slots (blocks x block size) */
    long lora_tokens;        /* of the new tokens, those of sequences with a LoRA adapter */
    int  lora_adapters;      /* distinct LoRA adapters among the step's sequences */
    long swap_runs;          /* the swap copies' runs of consecutive blocks (sim/kv_runs.h) */
} cm_batch;

/* Sets m from a config, a GPU and a TP degree, with default coefficients. */
int    cm_model_init(cm_model *m, const mc_config *cfg, const cm_gpu *gpu, int tp,
                     mc_dtype wdtype, char *err, size_t errlen);
/* Seconds the step takes, its swap copies included: by m->prof when set (plus
 * the roofline's all-reduce when tp > 1 and the profile measured none), else
 * the roofline; plus runtime LoRA's kernels (cm_lora_time) when m->lora.rank
 * > 0 and the step has LoRA tokens.  Can't fail (0 work = overhead only). */
double cm_step_time(const cm_model *m, const cm_batch *b);
/* Seconds to copy `blocks` KV blocks holding `tokens` token slots between GPU
 * and CPU memory, one way: one copy call per block, layer and K/V (as vLLM's
 * swap_blocks issues them) plus the bytes over the host link.  Can't fail. */
double cm_swap_time(const cm_model *m, long blocks, long tokens);
/* Seconds of b's swap copies as m->swap_copies issues them: per block,
 * cm_swap_time; by runs, one copy call per run (b->swap_runs) plus the same
 * bytes over the host link.  Can't fail. */
double cm_swap_batch_time(const cm_model *m, const cm_batch *b);
/* "per-block" / "runs" and back: 0, or -1 for an unknown name. */
const char *cm_swap_copies_name(cm_swap_copies c);
int    cm_swap_copies_parse(const char *name, cm_swap_copies *out);
/* FLOPs and bytes of a step, for roofline reports. */
double cm_step_flops(const cm_model *m, const cm_batch *b);
double cm_step_bytes(const cm_model *m, const cm_batch *b);
/* Coefficients to/from a small JSON file (pagesim calibrate writes it). */
int    cm_coeffs_load(cm_coeffs *k, const char *path, char *err, size_t errlen);
int    cm_coeffs_save(const cm_coeffs *k, const char *path, char *err, size_t errlen);
cm_coeffs cm_coeffs_default(void);
#endif
