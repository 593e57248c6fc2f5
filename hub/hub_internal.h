/* hub_internal.h: what the parts of the hub download share (private to
 * the hub/ files): paths, the HTTP calls (hub/hub_http.c), the resumable file
 * download (hub/hub_fetch.c) and its progress bar (hub/hub_progress.c). */
#ifndef HUB_HUB_INTERNAL_H
#define HUB_HUB_INTERNAL_H
#include "hub/hub.h"
#include <stddef.h>

/* snprintf for paths: 0, or -1 when the result does not fit in cap. */
__attribute__((format(printf, 3, 4)))
int  hub_pathf(char *out, size_t cap, const char *fmt, ...);
/* Size of the file at path (following links), or -1. */
long long hub_file_size(const char *path);

/* ---- HTTP (hub/hub_http.c) ------------------------------------------------- */
typedef struct hub_membuf { char *p; size_t n, cap; } hub_membuf;   /* p: (cap,) NUL-terminated */
/* GETs url (following redirects) into m (at most 64 MB); returns the HTTP
 * status, or -1 with err on a transport error. */
long hub_http_get(const hub_opts *o, const char *url, hub_membuf *m, char *err, size_t ecap);
/* What a HEAD of a resolve URL says about the file. */
typedef struct hub_head { char etag[128]; long long size; char commit[64]; } hub_head;
/* HEAD without following redirects (the hub's own headers name the blob);
 * returns the HTTP status, or -1 with err. */
long hub_http_head(const hub_opts *o, const char *url, hub_head *h, char *err, size_t ecap);
/* Applies o's endpoint-independent settings (timeouts, the token, redirects)
 * to a curl handle for url. */
void hub_http_setup(void *curl, const hub_opts *o, const char *url);

/* ---- the file download (hub/hub_fetch.c) ------------------------------------- */
/* Downloads url into path (appending to what is there with a Range request),
 * retrying after dropped connections; expect: the size, or -1 when unknown;
 * name: for the progress bar.  0, or -1 with err. */
int  hub_fetch_resume(const hub_opts *o, const char *url, const char *path, const char *name,
                      long long expect, char *err, size_t ecap);

/* ---- the progress bar (hub/hub_progress.c) ------------------------------------ */
typedef struct hub_progress {
    const char *name;        /* the file, as the bar shows it */
    long long total;         /* bytes expected, or <= 0 when unknown */
    double t0, last;         /* start, last redraw (clock_now_s) */
} hub_progress;
void hub_progress_start(hub_progress *p, const char *name, long long total);
/* Redraws the bar on stderr (at most every 0.1 s unless done; done ends the line). */
void hub_progress_draw(hub_progress *p, long long have, int done);
#endif
