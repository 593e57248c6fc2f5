/* sequence: one request's token list and progress (see sim/sequence.h).
 * Owns s->tokens and s->block_table; block ids inside the table belong to the
 * KV cache (sim/kv_cache.c), which alone may change them. */
#include "sim/sequence.h"
#include <stdlib.h>
#include <string.h>

int seq_init(seq *s, int id, int group, const int *prompt, int prompt_len,
             int max_output, double arrival) {
    memset(s, 0, sizeof *s);
    if (id < 0 || prompt_len <= 0 || max_output <= 0) return -1;
    /* room for the whole life of the request, so that decoding never reallocates */
    int cap = prompt_len + max_output;
    if (cap < prompt_len) return -1; /* overflow */
    s->tokens = malloc((size_t)cap * sizeof *s->tokens);
    if (!s->tokens) return -1;
    if (prompt) memcpy(s->tokens, prompt, (size_t)prompt_len * sizeof *prompt);
    else memset(s->tokens, 0, (size_t)prompt_len * sizeof *s->tokens);
    s->cap = cap;
    s->id = id;
    s->group = group < 0 ? id : group;
    s->prompt_len = prompt_len;
    s->max_output = max_output;
    s->num_tokens = prompt_len;
    s->status = SEQ_WAITING;
    s->finish_reason = SEQ_FINISH_NONE;
    s->arrival = arrival;
    s->first_scheduled = s->first_token = s->finish_time = -1.0;
    return 0;
}

void seq_free(seq *s) {
    if (!s) return;
    free(s->tokens);
    free(s->block_table);
    memset(s, 0, sizeof *s);
}

int seq_append_token(seq *s, int token) {
    if (s->num_tokens == s->cap) {
        int ncap = s->cap ? s->cap * 2 : 16;
        if (ncap <= s->cap) return -1;
        int *t = realloc(s->tokens, (size_t)ncap * sizeof *t);
        if (!t) return -1;
        s->tokens = t;
        s->cap = ncap;
    }
    s->tokens[s->num_tokens++] = token;
    return 0;
}

int seq_fork(seq *child, const seq *parent, int child_id) {
    seq c = *parent;
    c.id = child_id;
    c.group = parent->group;
    c.tokens = NULL;
    c.block_table = NULL;
    c.resv_start = 0;
    c.resv_len = 0;           /* a reservation is never shared: kv_fork gives one */
    c.num_preemptions = 0;
    c.user = NULL;
    c.tokens = malloc((size_t)(parent->cap > 0 ? parent->cap : 1) * sizeof *c.tokens);
    if (!c.tokens) goto fail;
    memcpy(c.tokens, parent->tokens, (size_t)parent->num_tokens * sizeof *c.tokens);
    if (parent->table_cap > 0) {
        c.block_table = malloc((size_t)parent->table_cap * sizeof *c.block_table);
        if (!c.block_table) goto fail;
        memcpy(c.block_table, parent->block_table, (size_t)parent->num_blocks * sizeof *c.block_table);
    }
    *child = c;
    return 0;
fail:
    free(c.tokens);
    free(c.block_table);
    memset(child, 0, sizeof *child);
    return -1;
}

void seq_reset_for_recompute(seq *s) {
    s->num_computed = 0;
    s->num_blocks = 0;
    s->resv_start = 0;
    s->resv_len = 0;
    s->status = SEQ_WAITING;
    s->num_preemptions++;
}

const char *seq_status_name(seq_status st) {
    switch (st) {
    case SEQ_WAITING: return "waiting";
    case SEQ_RUNNING: return "running";
    case SEQ_SWAPPED: return "swapped";
    case SEQ_FINISHED: return "finished";
    }
    return "unknown";
}
