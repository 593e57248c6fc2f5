/* bias_serving: the experiment's prompts through the serving simulator
 * (sim/simulate.h): every set's (prompt tokens, reply tokens) on a chosen GPU,
 * model config and tensor parallelism, with the study's client keeping
 * max_workers requests in flight, once with paged KV allocation and once with
 * a contiguous (static, max_model_len per request) cache.  Predicts wall
 * time, tokens/s, TTFT, latency, KV utilization and fragmentation, and keeps
 * the utilization over time of set 1 for the figure.  Reads data/gpus.json
 * and the model config (and an operator profile of data/profiles/ when
 * there is one for the GPU and model: its step times, else the roofline's);
 * writes only {model}_att_memory.json. */
#ifndef BIAS_SERVING_H
#define BIAS_SERVING_H
#include <stdio.h>
#include <stddef.h>

typedef struct bias_serving_config {
    const char *gpu;             /* "H200" */
    const char *model_config;    /* a Hugging Face config.json */
    int tp;                      /* tensor parallelism (4) */
    int max_workers;             /* requests in flight (the study's thread pool) */
    int max_tokens;              /* the request's max_tokens */
    int max_model_len;           /* contiguous reservation per request (4096) */
    int block_size;              /* 16 */
    int max_num_batched_tokens;  /* scheduler token budget per step (8192: vLLM V1's API-server
                                    default on GPUs of 70 GiB or more, as the study's H200s) */
    double gpu_util;             /* gpu_memory_utilization (0.9) */
    const char *op_profile;      /* step times: "auto" or NULL (an operator profile of this GPU and
                                    model in data/profiles/ when there is one, else the roofline),
                                    "none" (the roofline) or a profile file (sim/op_profile.h) */
    int sample_topp;             /* the requests sample with temperature and top-p (the study's 0.6 and
                                    0.8): the profile's top-p sampling times when it has them */
} bias_serving_config;

enum { BIAS_PAGED = 0, BIAS_CONTIGUOUS = 1, BIAS_NPOL = 2 };

typedef struct bias_serving_policy {
    double wall_s;               /* all sets, one after another */
    double total_tok_per_s, out_tok_per_s, req_per_s;
    double ttft_mean_s, ttft_p50_s, ttft_p99_s;   /* from the request's admission (client view) */
    double latency_mean_s;
    double kv_util_mean;         /* held slots / pool, time-averaged */
    double token_share_of_used;  /* token states / held slots (vLLM Fig. 2) */
    double share_internal, share_external;
    double mean_running;
    int    max_running;
    long   preemptions;
    /* set 1 over time (downsampled): (npts) each */
    double *t, *util, *token_share;
    int     npts;
} bias_serving_policy;

typedef struct bias_serving_result {
    char   gpu[64], model[128];
    int    tp, block_size, max_model_len, max_num_seqs, num_sets;
    long   num_blocks, kv_tokens;
    size_t prompts;
    long   prompt_tokens, output_tokens;
    bias_serving_policy pol[BIAS_NPOL];
    char   step_times[1200];     /* "operator profile FILE" or "roofline (why)" */
    char   summary_line[512];
} bias_serving_result;

void bias_serving_defaults(bias_serving_config *c);
/* Whether bias_serving_run can run c (the GPU known, the config readable,
 * the model fitting with room for KV): 0, or -1 with err.  Before the run, so
 * that a GPU or config the user named that cannot serve stops it at once. */
int  bias_serving_check(const bias_serving_config *c, char *err, size_t errlen);
/* Runs both policies over num_sets sets of per_set prompts; prompt_tokens and
 * output_tokens are (num_sets * per_set,).  -1 with err (unknown GPU, bad
 * config, a model that does not fit). */
int  bias_serving_run(const bias_serving_config *c, const int *prompt_tokens, const int *output_tokens,
                      size_t per_set, int num_sets, bias_serving_result *r, char *err, size_t errlen);
/* Writes {dir}/{model}_att_memory.json. */
int  bias_serving_write(const bias_serving_result *r, const char *dir, const char *model,
                        char *err, size_t errlen);
/* The prediction beside the study's measured run (152 s, 12,810 prompts, 4 x H200, TP 4). */
void bias_serving_print_check(const bias_serving_result *r, FILE *f);
void bias_serving_free(bias_serving_result *r);
#endif
