/* bias_trace: what a real run measured, for comparing it with the simulation
 * (labs/bias_compare.h).  A real run (the engine in process, or a server)
 * records every request's lengths and times, and, from the engine, every
 * step (what the cost model counts: prefill and decode tokens, sequences,
 * attention context; and its measured seconds) and the KV pool over time
 * (blocks in use, token slots, fragmentation, read from the engine's block
 * tables).  The trace is written to {model}_att_trace.json (and the steps to
 * {model}_att_steps.csv, the input of `pagesim calibrate`), so the comparison
 * can be redone later anywhere.  Implemented in labs/bias_trace.c. */
#ifndef BIAS_TRACE_H
#define BIAS_TRACE_H
#include <stddef.h>

/* One request as it was served.  Times in seconds from the start of its
 * set's generation (wall clock of the client, or of the engine loop). */
typedef struct bias_trace_req {
    int    set;                  /* 1-based */
    int    prompt_tokens, output_tokens;
    int    shared_prefix;        /* leading prompt tokens equal to the set's first prompt's */
    double submit_s, first_token_s, finish_s;
} bias_trace_req;

/* One engine step. */
typedef struct bias_trace_step {
    int    set;
    double t_s;                  /* end of the step, from the start of the set */
    double seconds;              /* the step's measured duration (executor) */
    int    num_seqs;
    long   prefill_tokens, decode_tokens, attn_ctx_tokens, attn_pairs;
} bias_trace_step;

/* The KV pool sampled after a step (engine block tables, through eng_usage). */
typedef struct bias_trace_kv {
    int    set;
    double t_s;
    int    blocks_used, blocks_total;
    long   slots_total, token_slots, reserved_slots, internal_frag;
} bias_trace_kv;

typedef struct bias_trace {
    char   source[16];           /* "engine" or "server" */
    char   kv_policy[16];        /* "paged" or "contiguous" */
    char   model_config[512];    /* the config.json the model was built from ("" unknown) */
    char   gpu[64];              /* as the GPU table names it ("" unknown) */
    int    dummy_weights;        /* decisions carry no meaning */
    /* engine limits (0 = unknown, e.g. a server) */
    int    num_blocks, block_size, max_num_seqs, max_num_batched_tokens, max_model_len;
    int    prefix_caching;
    int    max_workers;          /* requests the client kept in flight */
    double temperature, top_p;   /* the requests' sampling (0: unknown, an older trace) */
    long   prefix_hit_tokens;    /* cumulative, from the engine's pool */
    int    nsets;
    double *set_wall_s;          /* (nsets) measured wall time of each set's generation (0: not run here) */
    bias_trace_req  *req;  size_t nreq,  capreq;
    bias_trace_step *step; size_t nstep, capstep;
    bias_trace_kv   *kv;   size_t nkv,   capkv;
} bias_trace;

/* init/free pair; the push functions return 0 or -1 (out of memory). */
void bias_trace_init(bias_trace *t, const char *source);
void bias_trace_free(bias_trace *t);
int  bias_trace_add_req(bias_trace *t, const bias_trace_req *r);
int  bias_trace_add_step(bias_trace *t, const bias_trace_step *s);
int  bias_trace_add_kv(bias_trace *t, const bias_trace_kv *k);
/* Adds seconds to set's wall time (grows set_wall_s). */
int  bias_trace_add_wall(bias_trace *t, int set, double seconds);
/* {dir}/{model}_att_trace.json (+ _att_steps.csv when there are steps). */
int  bias_trace_write(const bias_trace *t, const char *dir, const char *model, char *err, size_t errlen);
/* Reads a trace JSON written by bias_trace_write; -1 with err naming the file. */
int  bias_trace_load(bias_trace *t, const char *path, char *err, size_t errlen);
#endif
