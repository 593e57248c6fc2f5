/* sequence: the state of one request's sequence as the scheduler, the KV cache
 * and both executors (simulator, engine) see it.  Pure data plus a few helpers;
 * it owns its token and block-table arrays and nothing else. */
#ifndef SEQUENCE_H
#define SEQUENCE_H
#include <stdbool.h>
#include <stddef.h>

typedef enum { SEQ_WAITING, SEQ_RUNNING, SEQ_SWAPPED, SEQ_FINISHED } seq_status;
typedef enum { SEQ_FINISH_NONE, SEQ_FINISH_LENGTH, SEQ_FINISH_STOP, SEQ_FINISH_ABORT } seq_finish;

typedef struct seq {
    int     id;              /* unique, >= 0 */
    int     group;           /* sequence group (parallel sampling n>1, beam search): the
                                id of the group's first sequence; = id when alone */
    int     sample;          /* its place in the group: 0 = the first sequence, 1.. = the
                                forks in order (the choice index of an n>1 request) */
    int     prompt_len;      /* tokens of the prompt */
    int     max_output;      /* tokens to generate: sim = true output length,
                                engine = max_tokens (EOS may end it earlier) */
    int     num_tokens;      /* prompt_len + generated so far */
    int     num_computed;    /* tokens whose KV is in the cache (prefill progress;
                                prefix-cache hits count as computed) */
    int    *tokens;          /* (cap,) token ids: the prompt, then the generated ones */
    int     cap;
    int    *block_table;     /* (table_cap,) logical block -> physical block id (paged) */
    int     num_blocks;      /* entries of block_table in use */
    int     table_cap;
    long    resv_start;      /* reservation policies: first slot of the contiguous range */
    long    resv_len;        /* its length in slots; 0 = nothing reserved */
    seq_status status;
    seq_finish finish_reason;
    double  arrival;         /* seconds; the times below are < 0 until they happen */
    double  first_scheduled;
    double  first_token;
    double  finish_time;
    int     num_preemptions;
    void   *user;            /* executor's per-request state (the engine's sampler...) */
    int     lora;            /* the request's LoRA adapter (the executor's id, > 0), 0 = none:
                                the scheduler runs at most max_loras different ones at once,
                                and the prefix cache keeps each adapter's blocks apart */
} seq;

/* Initialises s with a copy of prompt (prompt_len ids).  Returns 0, or -1 when
 * out of memory or a length is not positive (s is then zeroed). */
int  seq_init(seq *s, int id, int group, const int *prompt, int prompt_len,
              int max_output, double arrival);
/* Frees the arrays; s may be reused with seq_init.  Can't fail. */
void seq_free(seq *s);
/* Appends one generated token.  Returns 0, or -1 when out of memory. */
int  seq_append_token(seq *s, int token);
/* Makes child a copy of parent (tokens, block table, progress) with a new id in
 * the same group.  Block reference counts are the KV cache's business
 * (kv_fork).  Returns 0 or -1 when out of memory. */
int  seq_fork(seq *child, const seq *parent, int child_id);
/* Generated tokens so far. */
static inline int seq_num_generated(const seq *s) { return s->num_tokens - s->prompt_len; }
/* True once max_output tokens have been generated. */
static inline bool seq_reached_length(const seq *s) { return seq_num_generated(s) >= s->max_output; }
/* Logical blocks needed to hold n tokens. */
static inline int seq_blocks_for(int n_tokens, int block_size) { return (n_tokens + block_size - 1) / block_size; }
/* Puts s back to the waiting state after preemption by recompute: keeps the
 * tokens (prompt + generated become the new prompt to recompute), clears the
 * progress and block table.  Can't fail. */
void seq_reset_for_recompute(seq *s);
/* "waiting", "running", ... */
const char *seq_status_name(seq_status st);
#endif
