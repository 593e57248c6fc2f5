/* labs/bias_client.h — the bias lab's client for any OpenAI-compatible server
 * (vLLM, as in the study, or engine/serve): chat completions through
 * libcurl's multi interface with up to max_workers requests in flight.
 *
 * As the study does: three tries per request with a 2 s wait between them,
 * a timeout per try; temperature, top_p, max_tokens, seed and
 * chat_template_kwargs {"enable_thinking": false} are sent.  With stream
 * (the default) the reply comes as SSE chunks, so time to first token is
 * measured, and usage is asked for with stream_options.include_usage.
 *
 * A server restart mid-run costs nothing but time: a try that fails
 * (connection refused or cut, a 5xx, a stream without its [DONE]) is retried;
 * a request is reported exactly once, through the callback, when it
 * succeeded or ran out of tries; a reported request is never sent again.
 *
 * Threads: bias_client_run runs its loop, and calls the callback, on the
 * calling thread; bias_client_stop may be called from any thread.
 */
#ifndef LABS_BIAS_CLIENT_H
#define LABS_BIAS_CLIENT_H
#include <stddef.h>

typedef struct bias_client bias_client;

typedef struct {
    const char *base_url;       /* "http://127.0.0.1:8000" (a trailing "/v1" is fine) */
    const char *api_key;        /* sent as "Authorization: Bearer KEY"; NULL = none */
    const char *model;          /* the "model" field */
    int max_workers;            /* requests in flight, counting those waiting to be
                                   retried (as the study's worker threads do); default 200 */
    int tries;                  /* tries per request; default 3 */
    double retry_wait_s;        /* wait before a retry; default 2.0 */
    double timeout_s;           /* per try, whole request; default 600 */
    double connect_timeout_s;   /* default 10 */
    int stream;                 /* 1 (default): SSE, TTFT measured; 0: one JSON reply */
    int enable_thinking;        /* chat_template_kwargs.enable_thinking; default 0 */
} bias_client_opts;

/* One chat completion to make.  Pointers must stay valid during the run. */
typedef struct {
    const char *system;         /* a system message, or NULL */
    const char *user;           /* the user message */
    double temperature, top_p;
    int max_tokens;             /* <= 0: not sent */
    long long seed;
    int has_seed;               /* 0: no "seed" field */
} bias_client_req;

/* What one request gave.  Strings are valid only during the callback. */
typedef struct {
    size_t index;               /* into the request array */
    int ok;                     /* 1: a complete reply; 0: every try failed */
    const char *text;           /* the reply's content ("" when !ok) */
    const char *finish_reason;  /* "stop", "length"... or "" when not given */
    const char *error;          /* !ok: the last try's failure; else NULL */
    int prompt_tokens;          /* from the server's usage; -1 when absent */
    int completion_tokens;
    double ttft_s;              /* streamed: first content since the try began; else -1 */
    double latency_s;           /* the successful (or last) try, start to end */
    int tries;                  /* tries made, 1.. */
    long http_status;           /* of the last try; 0 when no response */
} bias_client_result;

typedef void (*bias_client_cb)(void *ctx, const bias_client_result *r);

/* Fills o with the defaults above (base_url "http://127.0.0.1:8000"). */
void bias_client_opts_init(bias_client_opts *o);
/* Checks the options and copies them.  Returns NULL with a message on a bad
 * option or when libcurl cannot start. */
bias_client *bias_client_create(const bias_client_opts *o, char *err, size_t errcap);
/* Makes the n requests, reporting each exactly once through cb as it ends
 * (in completion order).  Returns 0 when all n were reported, 1 when
 * bias_client_stop ended the run early (the unreported ones were not
 * completed), -1 with a message when the run could not proceed (out of
 * memory, libcurl failure). */
int bias_client_run(bias_client *c, const bias_client_req *reqs, size_t n,
                    bias_client_cb cb, void *ctx, char *err, size_t errcap);
/* Asks a running bias_client_run to return soon.  Thread-safe. */
void bias_client_stop(bias_client *c);
void bias_client_free(bias_client *c);

#endif
