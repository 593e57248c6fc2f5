/* serve/serve_backend.h — the interface engine/serve drives: whatever
 * generates tokens (the CUDA engine, or the GPU-less mock of serve_mock.c).
 *
 * The model it follows is an engine loop: one thread owns the engine and
 * steps it; HTTP threads hand requests over through a locked queue (submit)
 * and the engine thread hands tokens back through each request's sink, whose
 * callbacks the server implements (append under a lock, wake the waiting
 * connection).  So:
 *
 *   HTTP thread                          engine thread
 *   submit(params, sink) -> id  ---->    queue -> waiting -> running
 *                                        step: sink->on_tokens(...) per request
 *   abort(id)               ---->        ... sink->on_finish(...) exactly once
 *
 * Rules a backend keeps:
 *  - submit copies what it needs from params; it never blocks on generation.
 *  - For every successful submit, on_finish is called exactly once, last,
 *    from the engine thread; after it the backend never touches the sink.
 *    Abort of a finished or unknown id is harmless; an aborted request still
 *    gets its on_finish (reason SRV_FINISH_ABORT).
 *  - A request with n > 1 runs n sequences (choices 0..n-1, forks of one
 *    prompt); each on_tokens names its choice.
 *  - on_tokens returning nonzero asks the backend to stop that choice (a
 *    stop string matched, the client went away); no more of its tokens are
 *    wanted.  Once every choice has asked, the backend ends the request and
 *    calls on_finish soon.  Callbacks must not call back into the backend.
 *  - Stop strings and stop token ids are the server's business (it holds
 *    back text that may start one); max_tokens and end-of-sequence are the
 *    backend's.  Log-probabilities are the backend's, when asked for.
 *
 * serve/serve_engine.c (the CUDA engine) and serve/serve_mock.c are the
 * two backends; apps/engine/serve_main.c has the single place that picks one.
 */
#ifndef SERVE_SERVE_BACKEND_H
#define SERVE_SERVE_BACKEND_H
#include <stddef.h>
#include <stdint.h>

#define SRV_MAX_N 128           /* choices per request, as OpenAI allows */
#define SRV_MAX_LOGPROBS 20     /* top_logprobs per token, as vLLM's default --max-logprobs */

typedef enum {
    SRV_FINISH_STOP = 0,     /* end of sequence (or a stop string, decided by the server) */
    SRV_FINISH_LENGTH,       /* max_tokens reached */
    SRV_FINISH_ABORT,        /* abort() or on_tokens asked to stop */
    SRV_FINISH_ERROR         /* the backend failed this request */
} srv_finish_reason;

/* What one request asks for.  Pointers are only valid during submit. */
typedef struct {
    const char *prompt;         /* rendered prompt text (NUL-terminated), or NULL */
    const int32_t *prompt_ids;  /* (n_prompt_ids,) token ids, used when prompt is NULL */
    size_t n_prompt_ids;
    double temperature;         /* >= 0; 0 = greedy */
    double top_p;               /* (0, 1] */
    int max_tokens;             /* >= 1 */
    uint64_t seed;              /* per-request sampling seed when has_seed */
    int has_seed;
    int n;                      /* choices (parallel samples), 1..SRV_MAX_N; 0 means 1 */
    int logprobs;               /* 1: report each generated token's log-probability */
    int top_logprobs;           /* with logprobs: also the k most likely tokens, 0..SRV_MAX_LOGPROBS */
    const char *const *stop;    /* (n_stop,) stop strings, for information: the
                                   server enforces them (see above) */
    int n_stop;
    int lora;                   /* the LoRA adapter the request's "model" names: 1..n_adapters
                                   of the backend, 0 = the base model */
} srv_gen_params;

/* The result a backend reports once per request. */
typedef struct {
    srv_finish_reason reason;   /* of the request: ERROR and ABORT concern every choice */
    int prompt_tokens;          /* tokens of the prompt as the backend counted them */
    int completion_tokens;      /* tokens it generated, every choice */
    const char *error;          /* reason == SRV_FINISH_ERROR: a message, else NULL */
    const srv_finish_reason *choice_reason;  /* (n,) each choice's end, or NULL: all `reason` */
} srv_finish_info;

/* One token with its log-probability (log of its probability under the
 * model's distribution at that position, before temperature and top-p). */
typedef struct srv_logprob {
    int32_t id;
    float logprob;
    const char *text;           /* (len,) its bytes (may be part of a UTF-8 character) */
    size_t len;
} srv_logprob;

/* A generated token's log-probabilities. */
typedef struct srv_token_lp {
    srv_logprob tok;            /* the token itself */
    const srv_logprob *top;     /* (n_top,) the most likely tokens, most likely first */
    int n_top;
} srv_token_lp;

/* New output of one choice. */
typedef struct srv_delta {
    int index;                  /* the choice, 0..n-1 */
    const int32_t *ids;         /* (n,) new token ids (n may be 0 when only text is known) */
    size_t n;
    const srv_token_lp *lp;     /* (n,) their log-probabilities, or NULL (not asked for) */
    const char *text;           /* (len,) the decoded text since the previous delta of this
                                   choice (may end inside a UTF-8 character; the next continues it) */
    size_t len;
} srv_delta;

/* A request's output channel, implemented by the server (embed it and
 * recover the container in the callbacks). */
typedef struct srv_sink srv_sink;
struct srv_sink {
    /* New tokens of one choice.  Return 0 to go on, nonzero to stop that choice. */
    int  (*on_tokens)(srv_sink *s, const srv_delta *d);
    void (*on_finish)(srv_sink *s, const srv_finish_info *info);
};

/* Load figures for /metrics, a snapshot. */
typedef struct {
    int running;                /* requests being generated */
    int waiting;                /* requests queued (including preempted ones) */
    double kv_usage;            /* fraction of the KV cache in use, 0..1 */
    long preemptions;           /* total since the backend started */
    long prefix_queries;        /* prompt tokens looked up in the prefix cache, total */
    long prefix_hits;           /* of those, tokens found there, total */
    long max_model_len;         /* context length, for /v1/models */
} srv_backend_stats;

/* A backend: an object and its operations.  All operations are thread-safe. */
typedef struct srv_backend srv_backend;
struct srv_backend {
    void *self;
    const char *model;          /* the name served by /v1/models */
    /* Queues a request.  Returns 0 and the request's id, or -1 with a message
     * (out of memory, shutting down, prompt too long...). */
    int  (*submit)(void *self, const srv_gen_params *p, srv_sink *sink,
                   uint64_t *id, char *err, size_t errcap);
    void (*abort)(void *self, uint64_t id);
    void (*stats)(void *self, srv_backend_stats *out);
    /* Stops the engine thread (aborting what is left, each with its
     * on_finish) and frees everything, the srv_backend included. */
    void (*destroy)(srv_backend *b);
    /* LoRA adapters served beside the base model (vLLM's --lora-modules):
     * a request's "model" may name one; /v1/models lists them */
    const char *const *adapters;    /* (n_adapters,) their names, or NULL */
    int n_adapters;
};

/* ---- the mock backend (serve/serve_mock.c): no GPU, deterministic -------- */

typedef struct {
    const char *model;          /* served name; default "mock" */
    int token_delay_us;         /* modelled time of one engine step (it sleeps that long;
                                   one token per running sequence); default 1000 */
    int max_num_seqs;           /* sequences running at once; default 256 */
    int max_num_batched_tokens; /* tokens per step (chunked prefill); default 8192 */
    int block_size;             /* KV block size in tokens; default 16 */
    int num_blocks;             /* KV blocks; default 8192.  When the running
                                   sequences need more, the newest is preempted */
    int prefix_caching;         /* automatic prefix caching; default 1 */
    long max_model_len;         /* prompt + output limit; default 32768; at most
                                   num_blocks * block_size (a lone sequence always fits) */
} srv_mock_opts;

/* Fills o with the defaults above. */
void srv_mock_opts_init(srv_mock_opts *o);
/* Starts a mock backend: an engine thread that runs the simulator's
 * scheduler and KV cache (sim/) over an executor that sleeps for the step
 * and emits each sequence's reply.  Returns NULL with a message on bad
 * options or when out of memory / a thread cannot start. */
srv_backend *srv_mock_create(const srv_mock_opts *o, char *err, size_t errcap);

/* ---- what the mock says (serve/serve_mock_reply.c) ----------------------- */

#define SRV_MOCK_VOCAB 151643   /* its token ids are below this; this one ends a reply */

/* The reply the mock generates for a prompt (text, or ids when text is NULL)
 * and a seed: a JSON decision like {"decision": "buy", "reason": "..."}.
 * With temperature 0 the seed is ignored.  Choice k of a request with seed s
 * is the reply for seed s + k.  Writes at most cap bytes (NUL-terminated);
 * returns the full length, like snprintf. */
size_t srv_mock_reply(const char *prompt, const int32_t *ids, size_t n_ids,
                      double temperature, uint64_t seed, char *out, size_t cap);
/* The mock's tokens: a word with its leading spaces, or one other
 * character.  Length of the token at s (n > 0 bytes left). */
size_t srv_mock_token_len(const char *s, size_t n);
/* Number of mock tokens in text.  A reply of k tokens is generated in k
 * steps: its last token carries the end-of-sequence id SRV_MOCK_VOCAB. */
int srv_mock_count_tokens(const char *text, size_t len);
/* The id of the token text (len bytes): a hash below SRV_MOCK_VOCAB. */
int32_t srv_mock_token_id(const char *text, size_t len);
/* Made-up but consistent log-probabilities of the token text (id): the
 * j-th most likely token has log(2^-(j+1)); the sampled one is the most
 * likely when greedy, else ranks 1st to 3rd by a hash of its text.  Fills
 * lp, and top (k <= SRV_MAX_LOGPROBS) with the k most likely (texts point
 * into text or static storage). */
void srv_mock_logprobs(const char *text, size_t len, int32_t id, int greedy, int k,
                       srv_token_lp *lp, srv_logprob *top);

#endif
