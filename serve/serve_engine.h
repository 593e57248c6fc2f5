/* serve/serve_engine.h — the real backend of engine/serve: the CUDA engine
 * (engine/engine.h) behind the srv_backend interface (serve_backend.h).
 * One engine thread owns the engine and steps it; HTTP threads tokenize and
 * hand requests over through a locked queue; the engine thread adds them
 * between steps, steps, and hands each request's text back through its
 * sink.  Tokens stream as they are generated (eng_tokens after each step).
 * Uses the GPU (through engine/), the tokenizer and the model files. */
#ifndef SERVE_SERVE_ENGINE_H
#define SERVE_SERVE_ENGINE_H
#include <stddef.h>
#include <stdint.h>
#include "engine/model.h"
#include "engine/tp_engine.h"
#include "serve/serve_backend.h"
#include "sim/kv_cache.h"

typedef struct {
    const char *model_dir;       /* a checkpoint directory, or NULL with ... */
    const char *dummy_config;    /* ... random weights at this config.json's shapes */
    uint64_t    dummy_seed;
    const char *tokenizer;       /* tokenizer.json; NULL: model_dir's, or data/tokenizers/qwen3 */
    const char *served_name;     /* for /v1/models; NULL: the directory or config path */
    model_opts  model;           /* batching limits and memory (0 = the engine's defaults;
                                    max_num_batched_tokens defaults to 8192 here) */
    kv_policy   kv_policy;       /* KV_PAGED (default) or KV_CONTIGUOUS */
    int         prefix_caching;  /* 1 (default) */
    tp_engine  *tp;              /* tensor parallelism (started before any thread; the caller's), or NULL */
} srv_engine_opts;

/* Fills o with the defaults above. */
void srv_engine_opts_init(srv_engine_opts *o);
/* Loads the model onto the GPU, plans memory, starts the engine thread.
 * info (infolen) receives vLLM's memory lines ("GPU KV cache size: N
 * tokens", ...).  NULL with a message on a bad model, no GPU, too little
 * memory. */
srv_backend *srv_engine_create(const srv_engine_opts *o, char *info, size_t infolen, char *err, size_t errcap);
#endif
