/* workload: the requests a simulation serves: arrival time, prompt and output
 * lengths, parallel samples, beam width, and an optional shared prefix.
 * Synthetic (ShareGPT-like, Alpaca-like, fixed) with Poisson arrivals or all
 * at once, seeded; or read from a trace file (CSV or JSONL). */
#ifndef WORKLOAD_H
#define WORKLOAD_H
#include <stddef.h>
#include <stdint.h>

typedef struct wl_request {
    double arrival;          /* seconds from the start */
    int    prompt_len;       /* tokens */
    int    output_len;       /* tokens to generate (the true length) */
    int    n;                /* parallel samples (1) */
    int    beam;             /* beam width (0 = no beam search) */
    int    prefix_id;        /* requests with the same id >= 0 share ... */
    int    prefix_len;       /* ... their first prefix_len prompt tokens; -1/0 = none */
    const int *ids;          /* (prompt_len,) the prompt's real token ids (not owned; a lab's
                                tokenized prompts), or NULL: synthetic ids, shared by prefix_id */
    int    lora;             /* LoRA adapter (drv_request.lora, seq.lora), 0 = none */
} wl_request;

typedef enum { WL_SHAREGPT, WL_ALPACA, WL_FIXED, WL_TRACE } wl_kind;

typedef struct wl_spec {
    wl_kind  kind;
    int      num_requests;
    double   rate;           /* requests/s, Poisson; 0 = all arrive at t=0 */
    uint64_t seed;
    int      max_len;        /* clip prompt+output to this (max_model_len); 0 = no clip */
    int      fixed_prompt, fixed_output;   /* WL_FIXED */
    const char *path;        /* WL_TRACE */
} wl_spec;

/* Builds the requests.  *out is malloc'd (free with free()).  Returns 0, or -1
 * with err naming the file and line for a bad trace row. */
int  wl_generate(const wl_spec *spec, wl_request **out, int *n, char *err, size_t errlen);
/* Reads a trace: CSV with header arrival,prompt_len,output_len[,n,beam] or
 * JSONL objects with those keys.  Same contract as wl_generate. */
int  wl_load_trace(const char *path, wl_request **out, int *n, char *err, size_t errlen);
/* Token ids for request i (prompt_len of them): r->ids when given, else
 * deterministic synthetic ids where shared prefixes give equal ids, so the
 * prefix cache can hit.  ids: (prompt_len,). */
void wl_prompt_tokens(const wl_request *r, int i, uint64_t seed, int *ids);
/* "sharegpt"/"alpaca"/"fixed" -> kind; anything else is a trace path (-1 if neither). */
int  wl_kind_parse(const char *s);
/* Mean prompt and output length of a set (for reports). */
void wl_stats(const wl_request *r, int n, double *mean_prompt, double *mean_output);
#endif
