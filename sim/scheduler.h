/* scheduler: which sequences run in the next step and which KV slots they need.
 * Continuous batching under max_num_seqs and a token budget
 * (max_num_batched_tokens), chunked prefill, FCFS, preemption of the newest
 * running sequences by recompute or swap, swap-in before new admissions,
 * sequence groups (parallel sampling n>1, beam search), and a static-batching
 * baseline.  It owns the sequences it is given and talks to the KV cache only
 * through sim/kv_cache.h; it never knows which executor (simulator or CUDA
 * engine) runs its batches.
 *
 * Order within a step (as vLLM v1): the running sequences first, oldest
 * first (decodes and unfinished prefill chunks alike, each within the budget);
 * then swapped sequences come back (oldest first) when nothing was preempted;
 * then waiting requests are admitted FCFS while nothing is swapped out.
 *
 * Token convention: a step that samples a token for s (its last prefill chunk,
 * or a decode) first secures the slot of that token (index s->num_tokens, via
 * kv_append_slot); postprocess then appends it.  A decode therefore computes
 * the KV of the last token (index num_tokens-1) into a slot that exists. */
#ifndef SCHEDULER_H
#define SCHEDULER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sim/sequence.h"
#include "sim/kv_cache.h"
#include "sim/cost_model.h"

typedef enum { SCHED_PREEMPT_RECOMPUTE, SCHED_PREEMPT_SWAP } sched_preempt_mode;

typedef struct sched_config {
    int  max_num_seqs;            /* sequences per step (256) */
    int  max_num_batched_tokens;  /* token budget per step (2048) */
    bool chunked_prefill;         /* split long prompts across steps (true); when
                                     false a prompt runs whole, alone if over budget */
    sched_preempt_mode preempt;   /* recompute (default) or swap (falls back to
                                     recompute when the CPU swap space is full) */
    bool static_batching;         /* admit a new batch (up to max_num_seqs that fit in
                                     memory, ignoring the token budget) only when the last
                                     has wholly finished; its prefill chunks still obey
                                     the budget */
    int  watermark_blocks;        /* kept free when admitting (0) */
    int  max_model_len;           /* prompt + output cap; 0 = the KV config's */
    int  max_loras;               /* > 0: at most this many different LoRA adapters (seq.lora
                                     > 0) among the running sequences, as vLLM's --max-loras
                                     (a sequence of another adapter waits: FCFS); 0: no limit */
    uint64_t seed;                /* beam-search choices */
} sched_config;

typedef enum { SCHED_PREFILL, SCHED_DECODE } sched_kind;

typedef struct sched_item {       /* one scheduled sequence */
    seq  *s;
    int   start;                  /* first token position computed (= s->num_computed) */
    int   num_new;                /* tokens computed this step */
    sched_kind kind;              /* prefill chunk, or decode (one token) */
    bool  samples;                /* a token is sampled for s after this step */
} sched_item;

typedef struct sched_batch {
    sched_item *items;            /* (num_items,) oldest first */
    int         num_items;
    kv_copy    *copies;           /* (num_copies,) block moves to do before the step,
                                     in this order (swap-outs, swap-ins, copy-on-write) */
    int         num_copies;
    cm_batch    counts;           /* the batch reduced for the cost model */
    int         preempted;        /* sequences preempted while building it */
    int         swapped_out, swapped_in, admitted;
} sched_batch;

typedef struct sched_done {       /* a request all of whose sequences finished */
    int    id;                    /* the request id given to sched_add */
    int    prompt_len, output_len;/* output_len: longest generated sequence */
    int    num_seqs;              /* n, or the beam width */
    double arrival, first_scheduled, first_token, finish_time;
    int    num_preemptions;
    bool   aborted;               /* refused (could never fit) or ended by sched_abort */
    bool   refused;               /* aborted without running to its end: could never fit */
    const char *why;              /* aborted: why, static text (SCHED_WHY_*); else NULL */
    void  *user;
} sched_done;

/* Why a request was aborted (sched_done.why; compare by pointer or text). */
extern const char SCHED_WHY_TOO_LONG[];    /* prompt >= max_model_len */
extern const char SCHED_WHY_NEVER_FITS[];  /* prompt + output beyond the whole KV pool */
extern const char SCHED_WHY_CALLER[];      /* sched_abort */

typedef struct sched_stats {      /* cumulative */
    long preemptions, recomputes, swap_outs, swap_ins, forks, beam_swaps, aborted;
    long refused;                 /* of the aborted: could never fit (the two SCHED_WHY_
                                     above), finished without running */
} sched_stats;

typedef struct sched sched;

/* Creates a scheduler over kv (not owned).  NULL and err on bad sizes / memory. */
sched *sched_create(const sched_config *cfg, kv_cache *kv, char *err, size_t errlen);
void   sched_destroy(sched *sc);
/* Adds an arrived request: prompt (prompt_len ids, copied), max_output tokens,
 * n parallel samples (>= 1) or beam width (> 1 = beam search, n ignored).
 * Returns the request's first sequence (owned by the scheduler) or NULL.  A
 * request that can never run to its end (prompt >= max_model_len, or prompt +
 * max_output beyond the whole pool: kv_can_ever_fit) is accepted and refused:
 * it finishes aborted, with its why, when it reaches the head of the queue. */
seq   *sched_add(sched *sc, int id, const int *prompt, int prompt_len, int max_output,
                 int n, int beam, double arrival, void *user);
/* Builds the next batch; *out stays valid until the next sched_schedule.
 * Returns the number of items (0: nothing to run now), or -1 with err when out
 * of memory: then nothing was scheduled or moved (*out is empty; copy-on-write
 * copies still pending lead the next batch) and the call may be repeated. */
int    sched_schedule(sched *sc, double now, const sched_batch **out, char *err, size_t errlen);
/* After the step: tokens (num_items,) sampled per item (read where samples),
 * now = the step's end time, eos_id < 0 = none.  Appends tokens, stops
 * sequences, forks groups; finished requests go to *done (n_done of them) and
 * finished sequences to *fin (n_fin), valid until the next sched_schedule.
 * Returns 0, or -1 with err when out of memory: before acting (nothing
 * changed; the call may be repeated with the same tokens), or while forking a
 * group or swapping a beam (the state is whole and *done / *fin are filled,
 * but a request runs fewer sequences than it asked for). */
int    sched_postprocess(sched *sc, const int *tokens, double now, int eos_id,
                         const sched_done **done, int *n_done,
                         seq *const **fin, int *n_fin, char *err, size_t errlen);
/* Ends request id at once, wherever its sequences are (waiting, running or
 * swapped): they release their KV and finish with SEQ_FINISH_ABORT.  Call
 * between steps (after sched_postprocess, before the next sched_schedule).
 * Fills *out (aborted = true, output_len = tokens generated so far) and, when
 * first is not NULL, *first = the request's first live sequence (its tokens
 * readable until the next sched_schedule).  Returns 1, or 0 when no live
 * request has that id (finished ones are not live). */
int    sched_abort(sched *sc, int id, double now, sched_done *out, const seq **first);
/* Queue sizes, and whether anything remains to run. */
void   sched_counts(const sched *sc, int *running, int *waiting, int *swapped);
bool   sched_has_work(const sched *sc);
/* The sequences holding KV (running then swapped) and the head of the waiting
 * queue (or NULL), for kv_usage_get / kv_check.  Valid until the next call.
 * Returns their number, or -1 (and *live = NULL) when out of memory. */
int    sched_live(sched *sc, seq *const **live, const seq **next_waiting);
const sched_stats *sched_get_stats(const sched *sc);
const sched_config *sched_get_config(const sched *sc);
sched_config sched_config_default(void);
#endif
