/* serve/serve.h — an OpenAI-compatible HTTP server (libmicrohttpd) over a
 * srv_backend (serve/serve_backend.h): the CUDA engine or the mock.
 *
 * Endpoints
 *   POST /v1/chat/completions   JSON, or SSE chunks with "stream": true
 *   POST /v1/completions        JSON, or SSE chunks with "stream": true
 *   GET  /v1/models             the one served model
 *   GET  /health                200 while serving, 503 while stopping (HEAD too,
 *                               as for every GET route)
 *   GET  /metrics               Prometheus text, vLLM's metric names
 * Errors are OpenAI-style objects {"error": {"message", "type", "param",
 * "code"}}: 400 malformed JSON or a bad field (max_tokens above the limit),
 * 401 missing/wrong "Authorization: Bearer KEY" on the /v1 routes when an API key is
 * set, 404 unknown route or model, 405 wrong method, 413 body too large,
 * 503 while stopping.
 *
 * Threads: one libmicrohttpd thread (epoll) serves every connection; a
 * connection waiting for tokens is suspended and the backend's engine thread
 * resumes it.  Loopback (127.0.0.1) unless told otherwise.
 */
#ifndef SERVE_SERVE_H
#define SERVE_SERVE_H
#include <stddef.h>
#include "text/chat_template.h"
#include "serve/serve_backend.h"

typedef struct srv_server srv_server;

typedef struct {
    const char *host;           /* address to bind, numeric or a name; default "127.0.0.1" */
    int port;                   /* 0 = an ephemeral port (read it with srv_port); default 8000 */
    const char *api_key;        /* NULL = no authentication; "" is refused by srv_start */
    size_t max_body;            /* request body limit in bytes; default 1 MiB */
    int max_tokens_limit;       /* largest max_tokens accepted; default 32768.  Also
                                   the max_tokens of a request that gives none */
    unsigned conn_limit;        /* concurrent connections; default 1024 */
    unsigned keep_alive_s;      /* a connection that sends nothing for this long while no
                                   request is in progress (before its request head is
                                   complete, or between requests) is closed: uvicorn's and
                                   vLLM's --timeout-keep-alive; default 5 */
    unsigned io_timeout_s;      /* the same while a request body is read or a reply
                                   written (waiting for tokens does not count); default 60 */
    const chat_tpl *chat_template;  /* how chat messages become a prompt (not owned; rendered from
                                   several threads); NULL: qwen3's, written out in C. Either way
                                   chat_template_kwargs.enable_thinking reaches the template */
    /* Optional access log / warnings, one line each (no newline). */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
} srv_opts;

/* Fills o with the defaults above. */
void srv_opts_init(srv_opts *o);

/* Starts serving backend b (not owned: the caller destroys it after
 * srv_stop).  Returns NULL with a message naming host and port when the
 * address cannot be bound, on bad options, or when out of memory. */
srv_server *srv_start(const srv_opts *o, srv_backend *b, char *err, size_t errcap);
/* The bound TCP port (the ephemeral one when started with port 0). */
int srv_port(const srv_server *s);
/* Stops: refuses new requests (503), aborts the ones in flight (their
 * streams are cut, so clients see an error and may retry), waits until the
 * backend has finished each of them, closes every connection and frees s.
 * The backend is left running and may be served again.  NULL is fine. */
void srv_stop(srv_server *s);
/* Drains (SIGTERM, as vLLM's --shutdown-timeout): refuses new requests
 * (503, /health too, with "Connection: close"), lets the ones in flight
 * finish for up to grace_s seconds, then ends what is left cleanly: a
 * stream gets each choice's finish chunk ("abort") and [DONE], a plain
 * request a 503.  Returns once the last bytes went out (a few seconds more
 * at most, for clients that stop reading); srv_stop then closes.  */
void srv_drain(srv_server *s, double grace_s);
/* From another thread during srv_drain: end the grace period now. */
void srv_drain_now(srv_server *s);

/* Requests answered so far by status class: [0] 2xx, [1] 4xx, [2] 5xx. */
void srv_counts(const srv_server *s, long out[3]);

#endif
