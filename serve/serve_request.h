/* serve/serve_request.h — an OpenAI request body (POST /v1/chat/completions
 * or /v1/completions) parsed and checked into what a backend runs
 * (srv_gen_params) and what the response needs (stream, usage...).  Chat
 * messages become the prompt through text/chat_template.h (the model's own
 * template or a family's; what it refuses with raise_exception is a 400).  Fields and
 * error messages follow vLLM's OpenAI server.  Touches nothing but the
 * request it fills. */
#ifndef SERVE_SERVE_REQUEST_H
#define SERVE_SERVE_REQUEST_H
#include <stddef.h>
#include <stdint.h>
#include "text/chat_template.h"
#include "serve/serve_backend.h"

typedef enum { SRV_CHAT, SRV_COMPLETION } srv_kind;

/* What the server allows. */
typedef struct srv_req_limits {
    const char *model;          /* the served name: another "model" is a 404 */
    int max_tokens_limit;       /* largest max_tokens; also the default */
    const chat_tpl *chat_template;  /* renders chat messages (text/chat_template.h) */
    const char *const *adapters;    /* (n_adapters,) LoRA adapters a "model" may name instead */
    int n_adapters;
} srv_req_limits;

typedef struct srv_req {
    srv_kind kind;
    srv_gen_params gp;          /* for the backend; its pointers point into this request */
    int stream, include_usage;
    int enable_thinking;        /* chat_template_kwargs.enable_thinking; -1: not given */
    char **stop;                /* (n_stop,) stop strings, owned */
    int n_stop;
    int32_t *stop_ids;          /* (n_stop_ids,) stop token ids ("stop_token_ids"), owned */
    int n_stop_ids;
    char *prompt;               /* owned: the rendered chat or the completion prompt */
    int32_t *ids;               /* (gp.n_prompt_ids,) owned: a prompt given as token ids */
} srv_req;

/* Parses body (len bytes) for an endpoint of kind.  The body must be UTF-8.  Returns 0, or the HTTP
 * status to answer (400 bad request, 404 unknown model) with a message in
 * msg and an OpenAI error code in *code (or NULL).  r is always to be freed
 * with srv_req_free. */
int  srv_req_parse(srv_req *r, srv_kind kind, const char *body, size_t len,
                   const srv_req_limits *lim, char *msg, size_t cap, const char **code);
void srv_req_free(srv_req *r);

#endif
