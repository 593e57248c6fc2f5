/* driver: the one loop around loop_step that every caller uses (the
 * simulation, the view, the engine's commands, the server's backends, the
 * labs).  It owns what each of them used to write by hand:
 *   arrivals     requests come from a source, each with its arrival time, and
 *                enter the scheduler (sched_add) once the clock reaches it;
 *   idle clock   with nothing to run, simulated time jumps to the next
 *                arrival; real time (a drv_clock) waits for it instead;
 *   stalls       no progress is an error, never a spin: idle with work left
 *                and nothing to come, or no token sampled and no request
 *                finished for stall_steps steps;
 *   results      every finished or aborted request, and every step with the
 *                KV pool in the vLLM paper's categories (sampled through the
 *                loop's observe hook), go to a sim/metrics collector.
 * The caller builds the KV cache, the scheduler and the loop (with its
 * executor); the driver runs them and touches nothing else.  Callers that
 * watch each step (the view, a server) call drv_step; the others drv_run. */
#ifndef SIM_DRIVER_H
#define SIM_DRIVER_H
#include <stdbool.h>
#include <stddef.h>
#include "sim/step_loop.h"
#include "sim/metrics.h"

typedef struct drv_request {      /* one request as a source hands it over */
    int         id;               /* the caller's id (sched_done.id) */
    const int  *prompt;           /* (prompt_len,) token ids, read during the call only */
    int         prompt_len, max_output;
    int         n, beam;          /* parallel samples (1), beam width (0: none) */
    double      arrival;          /* seconds, on the driver's clock */
    void       *user;             /* the executor's per-request state (seq.user, sched_done.user) */
    int         lora;             /* LoRA adapter (seq.lora), 0 = none */
} drv_request;

typedef enum { DRV_SRC_REQUEST, DRV_SRC_LATER, DRV_SRC_END } drv_src_status;

/* Where requests come from.  next() is asked for the next request whose
 * arrival is <= now: it fills *r and says DRV_SRC_REQUEST; or DRV_SRC_LATER
 * with *next_at = the next arrival it knows of (INFINITY: none known yet, as
 * a server that waits for clients, or a lab that sends only while fewer than
 * its workers are in flight); or DRV_SRC_END when no request will ever come.
 * -1 with err stops the run. */
typedef struct drv_source {
    int  (*next)(void *ctx, double now, drv_request *r, double *next_at, char *err, size_t errlen);
    void  *ctx;
} drv_source;

/* Real time.  now() reads the clock (seconds); wait() blocks until `until`
 * (INFINITY: until the source may have something, e.g. a client's request)
 * and returns 0, or -1 with err.  All NULL: simulated time (the loop's clock,
 * advanced by the executor's step times). */
typedef struct drv_clock {
    double (*now)(void *ctx);
    int    (*wait)(void *ctx, double until, char *err, size_t errlen);
    void   *ctx;
} drv_clock;

typedef struct drv_config {
    drv_source source;
    drv_clock  clock;             /* zeroed: simulated time */
    bool  keep_steps;             /* keep every step record in the metrics */
    bool  keep_requests;          /* keep every finished request's record (percentiles,
                                     the summary's request figures); a long-running
                                     server leaves it off */
    int   usage_every;            /* sample the KV pool every k-th step, held in between
                                     (kv_usage_get walks the live tables); 0 = auto:
                                     max(1, num_blocks / 2048) */
    long  max_steps;              /* drv_run stops after this many steps (0: never) */
    long  stall_steps;            /* steps without a sampled token or a finished request
                                     that make a stall; 0 = auto, from the longest
                                     request and the token budget (a healthy scheduler
                                     samples for its oldest sequence within
                                     ceil(longest / budget) steps) */
    bool  check;                  /* kv_check after every step (tests; slow) */
    /* hooks (NULL = none), with ctx: a request entered the scheduler (first =
     * its first sequence, which lives until it finishes: a finished sequence
     * is freed at the next step, so is a beam that beam search dropped); a
     * step ended (info->done, info->fin readable until the next step) */
    void (*on_arrival)(void *ctx, const drv_request *r, seq *first);
    void (*on_step)(void *ctx, const loop_step_info *info);
    void  *ctx;
} drv_config;

typedef struct drv drv;

drv_config drv_config_default(void);
/* A driver over lp (its scheduler and executor) and the KV cache its
 * scheduler uses (none owned; they must outlive the driver).  It installs
 * lp->observe and calls an observe already set there after its own.  NULL and
 * err on bad config or memory. */
drv  *drv_create(loop *lp, kv_cache *kv, const drv_config *cfg, char *err, size_t errlen);
/* Frees the driver, restoring lp->observe. */
void  drv_destroy(drv *d);
/* Admits the requests that have arrived by now without running a step (a view
 * shows them waiting before the first step).  0, or -1 with err. */
int   drv_admit(drv *d, char *err, size_t errlen);
/* Admits what has arrived and runs one step, waiting (real time) or jumping
 * (simulated time) over idle stretches.  Returns 1 after a step (info filled,
 * valid until the next call), 0 when the source has ended and every request
 * is finished, -1 with err (source, clock or loop error, a failed kv_check, a
 * stall).  What finished is recorded even when it returns -1. */
int   drv_step(drv *d, loop_step_info *info, char *err, size_t errlen);
/* drv_step until the end: 0 when all is served, 1 when max_steps stopped it
 * with work left, -1 with err. */
int   drv_run(drv *d, char *err, size_t errlen);
/* Ends live request id at once (sched_abort) and records it.  Call between
 * steps.  Returns 1 and fills *out (and *first, see sched_abort), or 0 when
 * no live request has that id. */
int   drv_abort(drv *d, int id, sched_done *out, const seq **first);
/* The collector: every step and finished request so far. */
const met_collector *drv_metrics(const drv *d);
/* The summary so far, with the scheduler's and the pool's counters
 * (preemptions, swaps, forks, copies on write, prefix-cache hits).  wall_time
 * is the caller's.  Returns 0, or -1 when out of memory. */
int   drv_summary(const drv *d, met_summary *out);
/* A source over an array of requests sorted by arrival (a request out of
 * order is an error): fill reqs and n, set next to 0; a must outlive the run. */
typedef struct drv_array { const drv_request *reqs; int n, next; } drv_array;
drv_source drv_source_array(drv_array *a);
/* The monotonic clock, waiting by sleeping (engine/run, engine/bench). */
drv_clock drv_wall_clock(void);
#endif
