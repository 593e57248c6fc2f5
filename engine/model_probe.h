/* model_probe: what watches a forward pass, behind the one hook that
 * model_forward calls after each step: the GPU time of each class of step
 * (CUDA events between steps, summed over steps with prefill tokens and over
 * decode-only steps), the experts' loads (MoE), the layer-0 intermediates of
 * one forward (compared with transformers' by tests/gpu/compare_hf.py
 * --diag-layer0) and the experts chosen at every MoE layer of every forward
 * (compare_hf.py's routing check); and, apart from the GPU, the host's time
 * in each phase of an engine step (marks from engine.c and model.c).  Copies
 * from the GPU and writes the files it is given; never prints. */
#ifndef ENGINE_MODEL_PROBE_H
#define ENGINE_MODEL_PROBE_H
#include <stddef.h>
#include <stdint.h>
#include "engine/kernels.h"

typedef enum {                       /* the steps of a forward, as the probe sees them */
    MP_EMBED, MP_NORM, MP_QKV, MP_ROPE_KV /* bias, q/k norm, RoPE, KV write: k_qkv_prep */, MP_ATTN, MP_O,
    MP_GATE_UP, MP_SILU, MP_DOWN,                                    /* dense MLP */
    MP_ROUTER, MP_ROUTE, MP_PERMUTE, MP_EXPERTS_GATE_UP, MP_EXPERTS_DOWN, MP_COMBINE,   /* mixture of experts */
    MP_ALLREDUCE,                                                    /* tensor parallelism */
    MP_LORA,                                                         /* LoRA adapters (lora_rt.h) */
    MP_HEAD, MP_NSTEPS
} mprobe_point;

typedef struct mprobe_view {         /* the forward's buffers (device) and sizes, as of the step */
    const k_bf16 *x, *res;           /* (T, D) */
    const k_bf16 *qkv;               /* (T, QKV) */
    const k_bf16 *attn;              /* (T, AO) */
    const k_moe  *moe;               /* routing of the current MoE layer, or NULL */
    int T, D, QKV, AO;
    int prefill;                     /* the step has prefill tokens */
    cudaStream_t s;
} mprobe_view;

typedef enum {                       /* the host's phases of one engine step, in order */
    MH_OUTSIDE,                      /* between steps: the caller (its hooks, new requests) */
    MH_SCHEDULE,                     /* the driver and the scheduler (arrivals, sched_schedule) */
    MH_COPIES,                       /* block copies and swaps queued */
    MH_BUILD,                        /* the flattened batch (eng_build_batch) */
    MH_UPLOAD,                       /* the batch checked, packed (padded) and copied to the GPU */
    MH_LAUNCH,                       /* the forward's kernels queued, or its graph launched */
    MH_SAMPLE,                       /* sampling queued */
    MH_WAIT,                         /* waiting for the GPU, and the sampled tokens' copy back */
    MH_RECORD,                       /* tokens, log-probabilities, scores recorded */
    MH_POST,                         /* postprocess: appends, stops, forks, metrics */
    MH_NPHASES
} mprobe_phase;

typedef struct mprobe_opts {
    int         profile;             /* time the steps (model_profile_text) */
    int         host;                /* time the host's phases (mprobe_host_text) */
    const char *dump_layer0;         /* file for the next forward's layer 0, or NULL */
    const char *dump_experts;        /* file for every forward's chosen experts, or NULL */
} mprobe_opts;

typedef struct mprobe mprobe;

/* NULL with *err empty when o asks for nothing; NULL and a message on error.
 * L layers, up to max_T tokens a step, E experts and k per token (0: dense). */
mprobe *mprobe_create(const mprobe_opts *o, int L, int max_T, int E, int k, char *err, size_t errlen);
/* After step `step` of layer `layer` (-1 outside the layers) has been queued. */
void mprobe_step(mprobe *p, mprobe_point step, int layer, const mprobe_view *v);
/* At the end of a forward: waits for its events and copies, sums, writes. */
void mprobe_forward_end(mprobe *p, const mprobe_view *v);
/* The profile as text (GPU time per class of step, expert loads); -1 when not profiling. */
int  mprobe_text(const mprobe *p, char *buf, size_t n);
/* The host's clock: the time since the last mark goes to phase ph of the
 * current step (nothing without the host option; p may be NULL). */
void mprobe_mark(mprobe *p, mprobe_phase ph);
/* Ends the current step: its phases go to the decode-only (1) or the prefill
 * sums (0); < 0: a step that ran nothing (dropped). */
void mprobe_host_step(mprobe *p, int decode_only);
/* Microseconds per step of each phase, decode-only steps and steps with
 * prefill, as text; -1 without the host option. */
int  mprobe_host_text(const mprobe *p, char *buf, size_t n);
void mprobe_free(mprobe *p);
#endif
