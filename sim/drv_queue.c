/* drv_queue: see drv_queue.h.  The queued requests sit in one array, sorted
 * by arrival (a push walks back from the end: in-order pushes, the common
 * case, cost O(1)); released ones leave from the front.  The prompt of the
 * request released last stays allocated until the next release, as the driver
 * reads it after next() returns.  Touches only its own memory. */
#include "sim/drv_queue.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct drv_queue {
    drv_request *e;               /* (cap,) entries [head, head + n) sorted by arrival */
    int          head, n, cap;
    int         *held;            /* the prompt released last */
    bool         closed;
};

drv_queue *drv_queue_create(void) { return calloc(1, sizeof(drv_queue)); }

void drv_queue_destroy(drv_queue *q) {
    if (!q) return;
    for (int i = 0; i < q->n; i++) free((int *)q->e[q->head + i].prompt);
    free(q->held);
    free(q->e);
    free(q);
}

/* Room for one more entry at the end of the array. */
static int make_room(drv_queue *q) {
    if (q->head + q->n < q->cap) return 0;
    if (q->head > 0 && q->n < q->cap / 2 + 1) {         /* reuse the released front */
        memmove(q->e, q->e + q->head, sizeof *q->e * (size_t)q->n);
        q->head = 0;
        if (q->n < q->cap) return 0;
    }
    int cap = q->cap ? 2 * q->cap : 64;
    drv_request *e = realloc(q->e, sizeof *e * (size_t)cap);
    if (!e) return -1;
    q->e = e; q->cap = cap;
    return 0;
}

int drv_queue_push(drv_queue *q, const drv_request *r) {
    if (q->closed || !r->prompt || r->prompt_len <= 0 || isnan(r->arrival)) return -1;
    int *copy = malloc(sizeof *copy * (size_t)r->prompt_len);
    if (!copy || make_room(q)) { free(copy); return -1; }
    memcpy(copy, r->prompt, sizeof *copy * (size_t)r->prompt_len);
    int k = q->head + q->n;                             /* after every arrival <= r's */
    while (k > q->head && q->e[k - 1].arrival > r->arrival) k--;
    memmove(q->e + k + 1, q->e + k, sizeof *q->e * (size_t)(q->head + q->n - k));
    q->e[k] = *r;
    q->e[k].prompt = copy;
    q->n++;
    return 0;
}

int drv_queue_remove(drv_queue *q, int id, drv_request *out) {
    for (int k = q->head; k < q->head + q->n; k++) {
        if (q->e[k].id != id) continue;
        *out = q->e[k];
        free((int *)out->prompt);
        out->prompt = NULL;
        memmove(q->e + k, q->e + k + 1, sizeof *q->e * (size_t)(q->head + q->n - k - 1));
        q->n--;
        return 1;
    }
    return 0;
}

int  drv_queue_len(const drv_queue *q) { return q->n; }
void drv_queue_close(drv_queue *q) { q->closed = true; }

static int queue_next(void *ctx, double now, drv_request *r, double *next_at, char *err, size_t errlen) {
    (void)err; (void)errlen;
    drv_queue *q = ctx;
    free(q->held);
    q->held = NULL;
    if (q->n == 0) {
        if (q->closed) return DRV_SRC_END;
        *next_at = INFINITY;
        return DRV_SRC_LATER;
    }
    const drv_request *h = &q->e[q->head];
    if (h->arrival > now) { *next_at = h->arrival; return DRV_SRC_LATER; }
    *r = *h;
    q->held = (int *)h->prompt;
    q->head++;
    q->n--;
    if (q->n == 0) q->head = 0;
    return DRV_SRC_REQUEST;
}

drv_source drv_source_queue(drv_queue *q) { return (drv_source){ queue_next, q }; }
