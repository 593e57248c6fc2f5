/* scenario: what the pictures show, driven by the real core.  A KV cache
 * (sim/kv_cache.h), the scheduler (sim/scheduler.h), the shared step loop and
 * the simulator's executor serve a list of requests one step at a time, and
 * each step is captured into a viz_scene.  With a comparison policy, a second
 * cache and scheduler serve the same requests in lockstep.  The default list
 * is the classroom scenario: arrivals, growth, finishing; a parallel-sampling
 * request that forks and copies on write; a prefix-cache hit; the pool running
 * out and the newest request preempted.  Touches no file. */
#ifndef VIZ_SCENARIO_H
#define VIZ_SCENARIO_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sim/kv_cache.h"
#include "sim/scheduler.h"
#include "sim/cost_model.h"
#include "sim/workload.h"
#include "viz/scene.h"
#include "viz/player.h"

typedef struct viz_scenario_config {
    kv_config    kv;             /* the pool shown (paged, prefix caching on) */
    sched_config sched;
    int          compare;        /* a kv_policy for --compare, or -1 for none */
    uint64_t     seed;
    const wl_request *reqs;      /* (num_reqs,) NULL = the classroom scenario */
    int          num_reqs;
    const cm_model *model;       /* step times; NULL = the simulator's toy cost */
    long         max_steps;      /* 0 = no limit (the step loop fails rather than
                                    spin); else reaching it with requests left is
                                    an error */
} viz_scenario_config;

typedef struct viz_scenario viz_scenario;

/* Defaults for a pool of num_blocks x block_size: paged with prefix caching,
 * max_model_len half the pool (so that a contiguous reservation shows),
 * a small batch limit. */
viz_scenario_config viz_scenario_defaults(int num_blocks, int block_size, uint64_t seed);
/* The classroom requests for a pool (seeded), malloc'd into *out (free()). */
int  viz_scenario_classroom(int num_blocks, int block_size, int max_model_len, uint64_t seed,
                            wl_request **out, int *n, char *err, size_t errlen);
/* Creates the scenario at step 0 (copies the requests).  NULL and err on bad
 * sizes or memory. */
viz_scenario *viz_scenario_create(const viz_scenario_config *cfg, char *err, size_t errlen);
void viz_scenario_destroy(viz_scenario *v);
/* One step of both pools.  Returns 1 when a step ran, 0 when everything has
 * finished (or max_steps), -1 with err (a failed kv_check names the step). */
int  viz_scenario_step(viz_scenario *v, char *err, size_t errlen);
/* Back to step 0.  Returns 0 or -1 with err. */
int  viz_scenario_restart(viz_scenario *v, char *err, size_t errlen);
/* The scene of the current step (valid until the next step or restart). */
const viz_scene *viz_scenario_scene(const viz_scenario *v);
/* A player over v, for the window and the terminal view. */
viz_player viz_scenario_player(viz_scenario *v);
#endif
