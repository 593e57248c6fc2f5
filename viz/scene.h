/* scene: a plain snapshot of the KV block pool (and optionally a baseline pool
 * for --compare) that every output draws: the cairo renderer (window, PNG, SVG,
 * PDF, frames) and the terminal view.  A scene is captured from the simulator
 * (viz/scenario.c) or built by hand (tests); it knows nothing of the scheduler
 * and owns only its own arrays.  The renderer lives in viz/render.c (layout.c, render_block.c, paint.c). */
#ifndef VIZ_SCENE_H
#define VIZ_SCENE_H
#include <stdbool.h>
#include <stddef.h>
#include <cairo.h>

/* One physical block as the picture shows it. */
typedef struct viz_block {
    int  owner;              /* sequence id, -1 when free (lowest id when shared) */
    int  ref;                /* reference count (0 free, >1 shared) */
    int  tokens;             /* slots holding a token state, 0..block_size */
    bool cached;             /* free but still holding a prefix-cache hash */
    bool reserved;           /* reservation policy: covered by a reservation */
} viz_block;

typedef enum { VIZ_Q_WAITING, VIZ_Q_RUNNING, VIZ_Q_SWAPPED, VIZ_Q_N } viz_queue;

/* One live sequence (running or swapped) and its block table. */
typedef struct viz_seq {
    int  id, group;
    viz_queue queue;
    int  prompt_len, num_tokens;
    int  num_blocks;         /* entries of table */
    int *table;              /* (num_blocks,) logical -> physical block id */
    long resv_start, resv_len;  /* reservation policies: slot range (len 0 = none) */
} viz_seq;

/* Counters shown beside a pool (slot counts unless said otherwise). */
typedef struct viz_counters {
    int    blocks_used, blocks_cached, blocks_total;
    long   tokens_held;      /* slots holding a token state */
    long   reserved_slots;   /* held for tokens still to come */
    long   internal_frag;    /* held but never to be used */
    long   external_frag;    /* free but unusable for the next request */
    double utilization;      /* tokens_held / slots held (the vLLM paper's share) */
    long   prefix_hit_tokens, cow_copies;
    int    preemptions, finished;
    double time_s;           /* this pool's simulated clock (< 0 unknown) */
} viz_counters;

/* One pool: blocks, live sequences, queues, counters. */
typedef struct viz_pool {
    char policy[24];         /* "paged", "contiguous", "orca-max", ... */
    int  num_blocks, block_size;
    viz_block *blocks;       /* (num_blocks,) */
    viz_seq   *seqs;         /* (num_seqs,) running and swapped sequences */
    int        num_seqs, seqs_cap;
    int       *queue[VIZ_Q_N];   /* (queue_len[q],) sequence ids, in order */
    int        queue_len[VIZ_Q_N], queue_cap[VIZ_Q_N];
    viz_counters c;
    /* history, one entry per step so far, for the small chart under the grid */
    float     *hist_held;    /* (hist_n,) share of slots in held blocks */
    float     *hist_tokens;  /* (hist_n,) share of slots holding tokens */
    int        hist_n, hist_cap;
} viz_pool;

typedef struct viz_scene {
    int      step;           /* scheduler step shown */
    double   time_s;         /* simulated time, < 0 when unknown */
    char     title[96];      /* "pagesim  16 blocks x 4 slots  seed 1" */
    char     event[160];     /* what this step did, one line */
    viz_pool pool;           /* the paged pool (or whatever policy runs) */
    bool     has_cmp;
    viz_pool cmp;            /* --compare: the same requests under a baseline */
} viz_scene;

/* Sets p to num_blocks free blocks of block_size slots.  Returns 0, or -1 when
 * a size is not positive or out of memory (p is then zeroed). */
int  viz_pool_init(viz_pool *p, const char *policy, int num_blocks, int block_size);
void viz_pool_free(viz_pool *p);
/* Appends a live sequence with a copy of table (n entries).  Returns its index
 * or -1 when out of memory. */
int  viz_pool_add_seq(viz_pool *p, int id, int group, viz_queue q, int prompt_len,
                      int num_tokens, const int *table, int n);
/* Appends id to queue q.  Returns 0 or -1 when out of memory. */
int  viz_pool_enqueue(viz_pool *p, viz_queue q, int id);
/* Forgets sequences and queues; keeps the blocks' size (all set free) and
 * the history. */
void viz_pool_clear(viz_pool *p);
/* Appends the current counters to the history (reset: p->hist_n = 0).
 * Returns 0 or -1 when out of memory. */
int  viz_pool_push_history(viz_pool *p);
/* Recomputes blocks_used, blocks_cached, tokens_held and utilization from the
 * blocks (for hand-built scenes; captured scenes take the simulator's). */
void viz_pool_count(viz_pool *p);
/* Zeroes s and gives it a pool.  Returns 0 or -1 (see viz_pool_init). */
int  viz_scene_init(viz_scene *s, int num_blocks, int block_size);
void viz_scene_free(viz_scene *s);
/* Deep copy (dst uninitialised).  Returns 0 or -1 when out of memory. */
int  viz_scene_copy(viz_scene *dst, const viz_scene *src);
const char *viz_queue_name(viz_queue q);
/* A seeded plausible state without the simulator (viz/synthetic.c): for the
 * benchmark and for layouts at any size.  Returns 0 or -1 (see viz_scene_init). */
int  viz_scene_synthetic(viz_scene *s, int num_blocks, int block_size, unsigned seed);
#endif
