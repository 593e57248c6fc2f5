/* lab_kit: what the sharing, prefix, preemption and batching labs share on
 * top of the sim/ core: the served model and GPU as the cost model sees
 * them, a KV cache size turned into blocks, the blocks a batch would hold
 * without sharing (through sim_config.on_step), and the search for the
 * highest sustainable request rate.  Every number comes from sim_run: the
 * shared scheduler, KV cache and cost-model executor.  Reads the model
 * config and data/gpus.json; writes nothing; prints nothing. */
#ifndef LAB_KIT_H
#define LAB_KIT_H
#include <stdbool.h>
#include <stddef.h>
#include "sim/simulate.h"

#define LAB_KIT_GIB (1024.0 * 1024.0 * 1024.0)

/* m = the model of config (a path under data/models/) on gpu (a name of
 * data/gpus.json), one GPU, the config's dtype.  Returns 0, or -1 with err. */
int lab_kit_model(cm_model *m, const char *config, const char *gpu, char *err, size_t errlen);
/* Blocks of block_size tokens that kv_gib GiB of KV cache holds for m. */
int lab_kit_blocks(const cm_model *m, double kv_gib, int block_size);

/* Blocks held with and without sharing, step by step: an on_step hook that
 * counts, over the sequences of each batch, the GPU block-table entries
 * (what the sequences would hold if no block were shared) and the distinct
 * physical blocks among them (what they hold), weighted by the step time.
 * Saved = 1 - held / unshared: the vLLM paper's "blocks saved by sharing
 * divided by the total blocks without sharing" (sec. 6.3). */
typedef struct lab_kit_share {
    int    *stamp;                   /* (num_blocks,) last step that saw each block */
    int     num_blocks, step;
    double  w, held, unshared;       /* sums of dt, dt x held, dt x unshared */
    bool    keep;                    /* keep the per-step series below */
    double *t, *s_held, *s_unshared; /* (n,) step end time and the two counts */
    int     n, cap;
    bool    oom;
} lab_kit_share;
/* Sets sh up for a pool of num_blocks (keep: store the series) and points
 * c's on_step hook at it.  Returns 0, or -1 when out of memory. */
int    lab_kit_share_init(lab_kit_share *sh, sim_config *c, int num_blocks, bool keep);
void   lab_kit_share_free(lab_kit_share *sh);
/* The time-weighted share saved, 0..1 (0 before any step). */
double lab_kit_share_saved(const lab_kit_share *sh);

/* The highest sustainable rate: the largest request rate whose mean
 * normalized latency (end-to-end / output tokens) stays under max_latency,
 * bracketed by doubling from start_rate and bisected to 3%.  make builds the
 * requests of one run at a rate (malloc'd, freed here). */
typedef int (*lab_kit_requests_fn)(void *ctx, double rate, wl_request **out, int *n,
                                   char *err, size_t errlen);
enum { LAB_KIT_MAXPTS = 32 };
typedef struct lab_kit_sweep {
    double rate[LAB_KIT_MAXPTS], latency[LAB_KIT_MAXPTS];   /* the runs, by rate */
    int    n;
    double sustainable;              /* requests/s */
} lab_kit_sweep;
int lab_kit_sustainable(const sim_config *c, lab_kit_requests_fn make, void *ctx, double start_rate,
                        double max_latency, lab_kit_sweep *out, char *err, size_t errlen);
#endif
