/* bias_source: where replies come from.  One interface (a struct of function
 * pointers) for the simulated model now and the real engine or an
 * OpenAI-compatible server later; bias_run only talks to this. */
#ifndef BIAS_SOURCE_H
#define BIAS_SOURCE_H
#include <stddef.h>
#include <stdint.h>
#include "labs/bias_data.h"

/* One prompt to answer. */
typedef struct bias_request {
    const char       *prompt;       /* the study's prompt text */
    const bias_stock *stock;        /* whom it is about (the simulator reads its sector, size) */
    size_t            stock_index;  /* in the universe: names the random stream */
    int               set, trial, num_trials;
    int               buy_first;    /* options listed [buy | sell] */
    int               prompt_tokens;/* under the model's tokenizer and chat template */
} bias_request;

/* What came back.  text is malloc'd and owned by the caller (free it). */
typedef struct bias_reply {
    char  *text;                    /* the reply, or "API_ERROR: ..." as the study writes it */
    int    output_tokens;
    double latency_s, ttft_s;       /* measured (real) or 0 (simulated: see bias_serving) */
} bias_reply;

/* Called once per request as soon as its reply is final (in any order, on
 * the thread that called generate); it may take out[i].text (leaving NULL). */
typedef void (*bias_reply_cb)(void *cb_ctx, size_t i, bias_reply *reply);

typedef struct bias_source {
    const char *name;               /* "simulated", "engine", "server" */
    void *ctx;
    /* Answers n requests (a whole set: a real source keeps its own number in
     * flight, as the study's thread pool does), filling out[0..n-1] and
     * calling on_reply (when not NULL) for each as it completes, so that the
     * run can journal replies while the others are still being generated.
     * Returns 0, or -1 with err when the source itself failed (not one reply);
     * replies already reported stay valid. */
    int  (*generate)(void *ctx, const bias_request *req, size_t n, bias_reply *out,
                     bias_reply_cb on_reply, void *cb_ctx, char *err, size_t errlen);
    void (*free)(void *ctx);
} bias_source;

static inline void bias_source_free(bias_source *s) {
    if (s && s->free) s->free(s->ctx);
    if (s) { s->ctx = NULL; s->free = NULL; }
}
#endif
