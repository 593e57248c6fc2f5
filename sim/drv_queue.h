/* drv_queue: a request source (sim/driver.h) that the caller pushes into.
 * Requests wait here, earliest arrival first, until the driver's clock
 * reaches them; the driver releases them into the scheduler (drv_admit).  For
 * callers that learn of their requests as they go instead of holding a sorted
 * array (drv_source_array): the engine's eng_add_request, a trace replayed in
 * real time, a server's clients.  It copies each prompt.  Until closed it never
 * ends: empty, it says "later, at no known time" (a real-time driver then
 * waits for a push; a caller that steps only while it has work never asks).
 * Touches only its own memory. */
#ifndef SIM_DRV_QUEUE_H
#define SIM_DRV_QUEUE_H
#include "sim/driver.h"

typedef struct drv_queue drv_queue;

/* An empty queue; NULL when out of memory. */
drv_queue *drv_queue_create(void);
void       drv_queue_destroy(drv_queue *q);
/* Queues r (its prompt copied) for release at r->arrival; requests of equal
 * arrival keep the order they were pushed in.  0, or -1 when out of memory,
 * when r has no prompt, or after drv_queue_close. */
int        drv_queue_push(drv_queue *q, const drv_request *r);
/* Takes request id out before its release: 1 with *out filled (out->prompt
 * NULL: the copy is freed), 0 when no queued request has that id. */
int        drv_queue_remove(drv_queue *q, int id, drv_request *out);
/* Requests queued and not yet released. */
int        drv_queue_len(const drv_queue *q);
/* No more pushes: once empty, the source ends (drv_run can finish). */
void       drv_queue_close(drv_queue *q);
/* The source over q, which must outlive the driver. */
drv_source drv_source_queue(drv_queue *q);
#endif
