/* profile_ops: times the engine's own operators on the GPU and writes an
 * operator profile (sim/op_profile.h) for `engine/bench --profile-ops`, pops_.
 * pops_measure_ops times the kernels alone on buffers of the model's shape
 * (at 1/tp of it): the layer's GEMMs (cuBLAS, as model.c calls them), the
 * per-token kernels, paged attention (decode by batch x context, prefill of
 * one fresh sequence), the LM head, sampling, and the MoE layer of MoE
 * shapes.  pops_measure_cpu (engine/profile_cpu.c) runs real engine steps
 * and takes what the ops do not explain as the CPU side of a step
 * (opp_profile's step_overhead_us, per_seq_us, gpu_floor_us).  Uses the GPU
 * and its own buffers; prints progress to log when given.  Without CUDA
 * pops_measure_ops and pops_run return -1 ("built without CUDA"). */
#ifndef ENGINE_PROFILE_OPS_H
#define ENGINE_PROFILE_OPS_H
#include <stddef.h>
#include <stdio.h>
#include "engine/engine.h"
#include "sim/model_config.h"
#include "sim/op_profile.h"

typedef struct pops_opts {
    int max_tokens;           /* largest token count of a step (max_num_batched_tokens) */
    int max_seqs;             /* largest batch of sequences (max_num_seqs) */
    int max_context;          /* longest context (max_model_len) */
    int block_size;           /* KV block size of the attention timings */
    int tp;                   /* tensor-parallel degree: the ops run at 1/tp of the model */
    int moe_gemm;             /* the expert GEMMs' path, as model_opts.moe_gemm (K_MOE_GEMM_*) */
} pops_opts;

/* Fills p's shape, GPU name and op timings (all but the CPU side).  0, or -1
 * with err (no GPU, no memory). */
int pops_measure_ops(const mc_config *c, const pops_opts *o, opp_profile *p, FILE *log, char *err, size_t errlen);
/* Runs batches of 1 .. max_seqs sequences (64-token prompts, 32 tokens out)
 * through e and fits p's step_overhead_us, per_seq_us and gpu_floor_us to
 * the steps' wall times less the ops p predicts, and post_step_us and
 * post_per_seq_us to the host's time between steps.  e must be idle; it is idle
 * again after.  0, or -1 with err. */
int pops_measure_cpu(eng *e, const mc_config *c, int max_seqs, opp_profile *p, FILE *log, char *err, size_t errlen);
/* engine/bench --profile-ops: the ops at cfg's limits (max_model_len 0:
 * contexts up to 8192), then an engine on the model's weights (model_dir, or
 * dummy weights from dummy_seed when NULL) for the CPU side; writes out_path.
 * 0, or -1 with err. */
int pops_run(const mc_config *c, const char *model_dir, unsigned long long dummy_seed, const eng_config *cfg,
             const char *out_path, FILE *log, char *err, size_t errlen);
#endif
