/* op_profile: a step's time from the engine's own operator timings, opp_ (the
 * idea of Vidur, Agrawal et al., MLSys 2024: profile each operator once per
 * GPU and model shape, then predict any batch by interpolation).  A profile
 * is a JSON file written by `engine/bench --profile-ops` on the GPU: the
 * GEMMs of a layer by token count, the LM head and sampling by rows, the
 * per-token kernels, decode attention by (batch, context), prefill attention
 * by tokens, the MoE layer by tokens, the all-reduce by tokens (TP > 1), and
 * the CPU side of a step (scheduling, input copies, sampling's host work).
 * The cost model (sim/cost_model.h) uses it when a model has one; the
 * roofline remains the fallback.  Reads and writes only the file it is
 * given; interpolation is deterministic (no state). */
#ifndef OP_PROFILE_H
#define OP_PROFILE_H
#include <stdbool.h>
#include <stddef.h>
#include "sim/cost_model.h"

#define OPP_MAX_POINTS 48
#define OPP_MAX_GRID   16

/* us (n,) at x (n,), x strictly ascending.  Below x[0]: us[0] (a launch has a
 * floor); between points: linear; beyond x[n-1]: the last segment's slope
 * (never negative).  n == 0: the op is absent (0 us). */
typedef struct opp_curve { int n; double x[OPP_MAX_POINTS], us[OPP_MAX_POINTS]; } opp_curve;
/* us[i][j] at (x[i], y[j]), both ascending: bilinear inside; beyond the
 * largest x or y, proportional to it (decode attention reads B x C KV rows);
 * below the smallest, clamped. */
typedef struct opp_grid {
    int nx, ny;
    double x[OPP_MAX_GRID], y[OPP_MAX_GRID], us[OPP_MAX_GRID][OPP_MAX_GRID];
} opp_grid;

enum { OPP_QKV, OPP_O, OPP_GATE_UP, OPP_DOWN, OPP_NGEMM };

typedef struct opp_profile {
    char gpu[64];                 /* the device's name, as cudaGetDeviceProperties says */
    char model[128];              /* the config's name */
    int  tp, block_size;
    /* the shape measured (the whole model's; the ops ran at 1/tp of it) */
    int  hidden, layers, heads, kv_heads, head_dim, intermediate, vocab;
    int  experts, experts_per_tok, moe_intermediate;
    opp_curve gemm[OPP_NGEMM];    /* one layer's call, by tokens (MoE models: no gate_up/down) */
    opp_curve lm_head;            /* the vocabulary GEMM, by rows */
    opp_curve elem_layer;         /* one layer's per-token kernels (norms, bias, RoPE, KV write, SwiGLU) */
    opp_curve elem_step;          /* once per step: embedding, final norm, row gather, by tokens */
    opp_curve attn_prefill;       /* one layer, one fresh sequence of x tokens (x(x+1)/2 pairs) */
    opp_grid  attn_decode;        /* one layer, x sequences of y context each, one query each */
    opp_curve moe_layer;          /* one MoE layer (router + experts), by tokens */
    opp_curve sampling;           /* by rows, greedy (engine/bench's default) */
    opp_curve sampling_topp;      /* by rows, at temperature 0.6 and top-p 0.8 (the study's): the
                                     engine's top-p bisects over the row, 34 passes where greedy
                                     makes one (n = 0: not measured) */
    opp_curve allreduce;          /* one all-reduce of tokens x hidden bf16 values (n = 0: none measured) */
    /* the CPU side, from the profiler's own engine steps:
     *   step = step_overhead + per_seq x sequences + max(the ops above, gpu_floor)
     * (gpu_floor: launching a forward's kernels takes at least this long, which
     * hides short kernels of small batches) */
    double step_overhead_us;
    double per_seq_us;
    double gpu_floor_us;
    /* the host's time between steps, which a step's own measured seconds leave
     * out (sched_postprocess: tokens appended, stops, blocks freed; the
     * driver's metrics; the engine's results), from the profiler's engine
     * steps: between = post_step + post_per_seq x sequences of the step
     * (0 in profiles measured before it was: none added) */
    double post_step_us;
    double post_per_seq_us;
    /* decode-only steps, from the profiler's engine steps of that kind (which
     * replay CUDA graphs where the engine does): step = decode_step_us +
     * decode_per_seq_us x sequences + the ops, decode_step_us possibly < 0
     * (the launch gaps that the ops' back-to-back timing includes and a graph
     * replay does not); the step is never put below half its ops' time.
     * decode_fit 0 (profiles measured before it was): the terms above. */
    int    decode_fit;
    double decode_step_us;
    double decode_per_seq_us;
    /* not in the file: the caller's requests sample with temperature and top-p,
     * so steps take sampling_topp's times (sampling's when it was not measured) */
    int    sample_topp;
} opp_profile;

/* Reads a profile.  0, or -1 with err naming the file and the field (a JSON
 * syntax error: its line). */
int    opp_load(opp_profile *p, const char *path, char *err, size_t errlen);
/* Writes p as JSON.  0, or -1 with err. */
int    opp_save(const opp_profile *p, const char *path, char *err, size_t errlen);
/* Does p describe this model shape at this tensor-parallel degree? */
bool   opp_matches(const opp_profile *p, const mc_config *c, int tp);
/* Looks in dir for a profile of this GPU (cm_gpu_find's name matching),
 * shape and tp.  1 and *p filled when found, 0 when none, -1 with err on an
 * unreadable or malformed profile there. */
int    opp_find(opp_profile *p, const char *dir, const char *gpu, const mc_config *c, int tp,
                char *path_out, size_t path_len, char *err, size_t errlen);
/* The step times a command asked for: spec "auto" (or NULL: a profile of this
 * GPU, shape and tp in dir, as opp_find), "none" (the roofline) or a profile
 * file, which must match the shape and tp.  1 with *p and path_out filled
 * when a profile is to be used, 0 for the roofline (path_out then says why in
 * words), -1 with err (an unreadable or mismatched file). */
int    opp_resolve(opp_profile *p, const char *spec, const char *dir, const char *gpu, const mc_config *c, int tp,
                   char *path_out, size_t path_len, char *err, size_t errlen);
/* Seconds a step of batch b takes by the profile.  Attention splits the
 * counts as the scheduler makes them: decode context = attn_ctx_tokens -
 * prefill_tokens (exact when every prefill chunk starts a prompt), prefill
 * pairs = attn_pairs - decode context, priced as one fresh sequence of the
 * same pairs.  The all-reduce adds 2 x layers calls when tp > 1 and it was
 * measured; sampling is sampling_topp's when p->sample_topp asks and it was
 * measured.  Can't fail. */
double opp_step_time(const opp_profile *p, const cm_batch *b);
/* Seconds the host spends after a step of num_seqs sequences before the next
 * starts (post_step_us + post_per_seq_us x num_seqs): the simulator's
 * executor adds it to the clock, opp_step_time leaves it out (a measured
 * step's seconds do too).  Can't fail. */
double opp_post_time(const opp_profile *p, int num_seqs);
/* The interpolations (exposed for tests and reports). */
double opp_curve_at(const opp_curve *c, double x);
double opp_grid_at(const opp_grid *g, double x, double y);
/* Adds point (x, us) to c keeping x ascending (a repeated x replaces).  -1 when full. */
int    opp_curve_add(opp_curve *c, double x, double us);
#endif
