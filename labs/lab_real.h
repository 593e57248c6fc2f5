/* lab_real: a classroom lab's workload on the CUDA engine (--real), and the
 * same workload on the simulator, counted the same way.
 *   lab_real_engine    the requests (sim/workload.h's wl_request: prompt and
 *                      output lengths, n samples, a shared prefix) through
 *                      eng_add_request_out and eng_run, on a model of random
 *                      weights (w_dummy: time and memory are real, the tokens
 *                      mean nothing) with the lab's settings; nothing is
 *                      scheduled here: the engine's sim/ scheduler does it;
 *                      runtime LoRA with random adapters when the setup asks
 *                      (lab_real_lora_set), each request naming its adapter
 *   lab_real_simulate  the same requests through sim_run, with the engine's
 *                      own KV and scheduler configuration (eng_kv_config,
 *                      eng_sched_config) and the GPU's operator profile
 *                      (data/profiles/<GPU>/), so simulated and measured
 *                      differ only in who executes the steps
 * Both turn the records of one metrics collector (sim/metrics.h: eng_summary
 * and eng_metrics on the engine, sim_run's result on the simulator) into a
 * lab_real_meas (lab_real_from_metrics).  Every request stops at its output
 * length (no stop token), so both do the same token work.
 * lab_real_measure runs a lab's measurement on the engine, or through the
 * measurer a test gave the lab (lab_real_use): only the engine call itself
 * needs a GPU.  Library code: errors in err, nothing printed; reads the model
 * config, data/gpus.json and data/profiles; uses the GPU in lab_real_engine. */
#ifndef LAB_REAL_H
#define LAB_REAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "labs/lab.h"
#include "sim/kv_cache.h"
#include "sim/metrics.h"
#include "sim/model_config.h"
#include "sim/workload.h"

struct lora_set;                     /* engine/lora_set.h */

/* The model every lab measures with: Qwen3-0.6B's shape (28 layers, 8 KV
 * heads of 128: 112 KiB of KV per token) with random weights.  It loads in a
 * second, a run of a few hundred requests takes seconds on an H200, its KV is
 * large for its weights (so the pool, not the weights, is what a lab varies),
 * and data/profiles/H200 holds its measured operator timings, so that the
 * simulated twin of each run is the engine's own cost model. */
#define LAB_REAL_MODEL "data/models/qwen3-0.6b.json"
#define LAB_REAL_GPU   "H200"        /* the twin's GPU when the device is not known */

typedef struct lab_real_setup {
    const char *model_config;        /* NULL: LAB_REAL_MODEL */
    kv_policy policy;                /* KV_PAGED or KV_CONTIGUOUS (max_model_len reserved) */
    int    block_size;               /* 0: 16 */
    int    num_blocks;               /* the KV pool in blocks, or 0: ... */
    double kv_gib;                   /* ... from a KV budget in GiB (one of the two > 0) */
    bool   prefix_caching;           /* paged only */
    int    max_num_seqs;             /* 0: 256 */
    int    max_num_batched_tokens;   /* 0: 4096 */
    int    max_model_len;            /* 0: 2048 */
    bool   static_batching;          /* a generate() loop: a new batch when the last has finished */
    /* the pool from memory: with num_blocks and kv_gib 0, the KV cache gets what
     * gpu_memory_utilization of the GPU leaves after the weights, activations and
     * LoRA slots (the engine's memory plan; the twin's is sim/planner.h's) */
    double gpu_memory_utilization;
    /* runtime LoRA (--enable-lora): max_loras 0 is off, the base model (what a
     * merged checkpoint runs: the base model's shapes and kernels) */
    int    max_loras;                /* GPU adapter slots (the scheduler's max_loras) */
    int    max_lora_rank;            /* their rank (0: 16) */
    int    lora_adapters;            /* random all-linear adapters of rank max_lora_rank loaded,
                                        ids 1..lora_adapters: a request names one in
                                        wl_request.lora (0: the base model) */
    uint64_t seed;                   /* prompt ids (wl_prompt_tokens), sampling, the weights */
} lab_real_setup;

typedef struct lab_real_meas {
    char   where[96];                /* "NVIDIA H200, CUDA engine" or "H200, simulated (...)" */
    char   gpu[64];                  /* the GPU table's name of the device ("" unknown) */
    int    requests, finished, num_blocks, block_size;
    long   prompt_tokens, output_tokens, steps;
    double seconds;                  /* first arrival to last finish */
    double out_tok_s, total_tok_s;
    double at_once;                  /* sequences running, time-averaged over the steps while
                                        requests wait (the paging lab's measure); NAN: none waited */
    double mean_running;             /* over the whole run */
    int    max_running;
    double mean_blocks;              /* blocks held, time-averaged */
    int    max_blocks;
    /* KV memory held or lost, in the vLLM paper's Figure 2 categories (0..1,
     * summing to 1; free slots while requests wait count as external) */
    double token, reserved, internal, external;
    long   preemptions;
    int    preempted_requests;       /* finished requests preempted at least once */
    double norm_latency;             /* mean end-to-end / output tokens, s/token */
    double norm_latency_preempted, norm_latency_others;   /* NAN when there is no such request */
    double ttft_mean, tpot_mean;     /* s */
    long   prefix_hit_tokens;
    double hit_pct;                  /* prompt tokens served by the prefix cache, % */
    long   cow_copies, forks;
} lab_real_meas;

/* The summary, steps (NULL with nst 0: at_once from the summary's means)
 * and finished requests of one run into *out (where and gpu left as they
 * are).  Can't fail. */
void lab_real_from_metrics(const met_summary *s, const met_step *st, int nst, const met_request *rq, int nrq,
                           lab_real_meas *out);
/* The pool of s in blocks for config c (num_blocks, or kv_gib at c's KV bytes
 * per token).  0 when neither is given. */
int  lab_real_blocks(const lab_real_setup *s, const mc_config *c);
/* The LoRA set the engine gets for s (engine/lora_set.h): max_loras slots
 * of max_lora_rank, and with adapters, s->lora_adapters random adapters
 * (lora_set_add_dummy, "adapter1".., seeds from s->seed); the twin takes it
 * without adapters (the scheduler's max_loras).  0 and an empty set when
 * LoRA is off (set->max_loras 0), 1 with a set (lora_set_free it), -1 with
 * err. */
int  lab_real_lora_set(const lab_real_setup *s, const mc_config *c, bool adapters, struct lora_set *set,
                       char *err, size_t errlen);

/* The requests r (n) on the CUDA engine with setup s; fills *out.  0, or -1
 * with err (no GPU, a bad setup, an engine error). */
int  lab_real_engine(const lab_real_setup *s, const wl_request *r, int n, lab_real_meas *out, char *err,
                     size_t errlen);
/* The same requests simulated: gpu names a GPU of data/gpus.json (NULL:
 * LAB_REAL_GPU); its operator profile of the model is used when
 * data/profiles has one, else the roofline (out->where says which).  0, or
 * -1 with err. */
int  lab_real_simulate(const lab_real_setup *s, const char *gpu, const wl_request *r, int n,
                       lab_real_meas *out, char *err, size_t errlen);

/* What measures a lab's runs: lab_real_engine unless a test gave another. */
typedef int (*lab_real_fn)(void *ctx, const lab_real_setup *s, const wl_request *r, int n, lab_real_meas *out,
                           char *err, size_t errlen);
typedef struct lab_real_measurer { lab_real_fn fn; void *ctx; } lab_real_measurer;
/* Measures L's runs with m (kept by pointer; NULL: the engine again). */
void lab_real_use(lab *L, const lab_real_measurer *m);
/* One run of L's --real: measured (the engine, or L's measurer), then the
 * simulated twin on the GPU the measurement names.  0, or -1 with err. */
int  lab_real_measure(lab *L, const lab_real_setup *s, const wl_request *r, int n, lab_real_meas *gpu,
                      lab_real_meas *sim, char *err, size_t errlen);
#endif
