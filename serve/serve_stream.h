/* serve/serve_stream.h — one generation request's output as the server
 * holds it between the backend (engine thread, through the srv_sink it
 * implements) and the HTTP connection (libmicrohttpd's thread): per choice
 * the text so far, cut at a stop string, and what was already sent; the
 * SSE bytes waiting to go out; the finish.  The stream suspends its
 * connection when it has nothing to send and resumes it when the backend
 * brings something.
 *
 * Reference counted: the connection, the SSE response and the backend
 * (until on_finish) each hold one.  Locking: st->mu guards every field but
 * prev/next (the server's list, under the server's lock).  Touches its own
 * buffers, its connection (suspend/resume) and the metrics it is given. */
#ifndef SERVE_SERVE_STREAM_H
#define SERVE_SERVE_STREAM_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "serve/serve_backend.h"
#include "serve/serve_json.h"
#include "serve/serve_metrics.h"
#include "serve/serve_request.h"

struct MHD_Connection;

typedef struct srv_choice {
    char *text;                  /* (cap,) generated text kept (cut at a stop string) */
    size_t len, cap;
    size_t emitted;              /* bytes of text already sent as SSE */
    int n_tokens;                /* tokens accepted (up to a stop string or stop token) */
    int stop_hit;                /* a stop string or stop token ended it */
    int stop_str;                /* the stop string's index, or -1 */
    long stop_id;                /* the stop token id, or -1 */
    double t_last;               /* when its last tokens came */
    cJSON *lp;                   /* its "logprobs" not yet sent (all of them for a reply) */
    size_t lp_off;               /* completions' text_offset so far */
} srv_choice;

typedef struct srv_stream srv_stream;
struct srv_stream {
    srv_sink sink;               /* first: the backend calls back through it */
    pthread_mutex_t mu;
    int refs;
    struct MHD_Connection *conn;
    int suspended;               /* we suspended conn and nobody resumed it yet */
    int is_stream, include_usage;
    char id[48];
    srv_head head;               /* id, model, created, chat */
    char **stop;                 /* (n_stop,) stop strings, owned */
    int n_stop;
    size_t max_stop;             /* longest stop string, bytes */
    int32_t *stop_ids;           /* (n_stop_ids,) stop token ids, owned */
    int n_stop_ids;
    int logprobs;                /* the request asked for log-probabilities */
    srv_choice *ch;              /* (n_choices,) */
    int n_choices;
    int finished, cut;           /* cut: broken off by srv_stop, no clean end */
    srv_finish_info fin;
    srv_finish_reason *reason;   /* (n_choices,) each choice's end, once finished */
    char errmsg[256];
    uint64_t be_id;
    char *out;                   /* (out_cap,) SSE bytes ready; out_off already sent */
    size_t out_len, out_off, out_cap;
    int sent_role, sent_final;
    double t_submit, t_first;
    srv_metrics *metrics;        /* not owned */
    /* called from on_finish (engine thread) after the connection is woken,
     * before the backend's reference is dropped: the server unlists st */
    void (*on_done)(void *ctx, srv_stream *st);
    void *done_ctx;
    srv_stream *prev, *next;     /* the server's list of unfinished streams */
};

/* A stream for request r (its stop strings and ids are taken over), answering on
 * connection c, with two references (the connection's and the backend's).
 * NULL when out of memory. */
srv_stream *srv_stream_new(srv_req *r, const char *model, const char *id,
                           struct MHD_Connection *c, srv_metrics *m);
void srv_stream_ref(srv_stream *st);
void srv_stream_unref(srv_stream *st);
/* The whole JSON reply of a finished request (st->mu held; once: the
 * log-probabilities move into it); malloc'd. */
char *srv_stream_reply(srv_stream *st);
/* libmicrohttpd's content reader and its free for the SSE response (which
 * holds a reference): sends what is ready, suspends when nothing is. */
ssize_t srv_stream_read(void *cls, uint64_t pos, char *buf, size_t max);
void srv_stream_read_free(void *cls);

#endif
