/* serve/serve_json.h — the JSON and SSE the server writes, in the OpenAI
 * API's shapes as vLLM writes them: error objects, whole replies
 * ("chat.completion", "text_completion"), stream chunks
 * ("chat.completion.chunk") and "data: ...\n\n" events.  Plain data in,
 * cJSON or text out; knows nothing of connections or backends.
 * Text that is not valid UTF-8 is written with U+FFFD in its place, so the
 * JSON is always valid. */
#ifndef SERVE_SERVE_JSON_H
#define SERVE_SERVE_JSON_H
#include <cjson/cJSON.h>
#include <stddef.h>
#include "serve/serve_backend.h"

/* What every reply and chunk of one request starts with. */
typedef struct srv_head {
    const char *id;             /* "chatcmpl-..." / "cmpl-..." */
    const char *model;
    long created;               /* Unix seconds */
    int chat;                   /* 1: chat completion, 0: text completion */
} srv_head;

/* One choice of a reply, or of a chunk. */
typedef struct srv_choice_out {
    int index;
    const char *text;           /* (len,) bytes, or NULL (a chunk without content) */
    size_t len;
    int role;                   /* chunk: carries "role": "assistant" */
    const char *finish;         /* "stop", "length", "abort", or NULL */
    const char *stop_str;       /* with finish: the stop string that ended it, or NULL */
    long stop_id;               /* with finish: the stop token id that ended it, or -1 */
    cJSON *logprobs;            /* the choice's "logprobs" object (consumed), or NULL */
} srv_choice_out;

/* {"error": {"message", "type", "param": null, "code"}}, malloc'd, or NULL
 * when out of memory.  code may be NULL. */
char *srv_json_error(const char *type, const char *msg, const char *code);
/* A whole reply: n choices and the usage.  malloc'd text, NULL when out of memory. */
char *srv_json_reply(const srv_head *h, const srv_choice_out *c, int n, int prompt_tokens,
                     int completion_tokens);
/* One stream chunk with one choice; with c NULL, the closing usage chunk
 * (an empty choices array).  NULL when out of memory. */
cJSON *srv_json_chunk(const srv_head *h, const srv_choice_out *c, int prompt_tokens,
                      int completion_tokens);
/* Adds one generated token's log-probabilities to *acc, the "logprobs"
 * object of a choice (created at the first call): chat's {"content":
 * [{token, logprob, bytes, top_logprobs}]}, or completions' {"text_offset",
 * "token_logprobs", "tokens", "top_logprobs"} (the offsets counted from
 * *text_off, which advances by the token's length).  -1 when out of memory. */
int srv_json_logprob_add(cJSON **acc, int chat, const srv_token_lp *lp, size_t *text_off);
/* Appends "data: <json>\n\n" (root consumed; NULL appends nothing) to the
 * buffer (*buf, *len, *cap).  Returns -1 when out of memory. */
int srv_sse_event(char **buf, size_t *len, size_t *cap, cJSON *root);
/* A NUL-terminated copy of n bytes with invalid UTF-8 (and NULs) replaced
 * by U+FFFD.  NULL when out of memory. */
char *srv_utf8_clean(const char *p, size_t n);
/* -1 when the n bytes are valid UTF-8 without NUL, else the offset of the
 * first byte that is not. */
long srv_utf8_check(const char *p, size_t n);

#endif
