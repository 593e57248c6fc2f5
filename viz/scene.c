/* scene: building, copying and freeing viz_scene snapshots (see scene.h).
 * Touches only the scene's own memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "viz/scene.h"

int viz_pool_init(viz_pool *p, const char *policy, int num_blocks, int block_size) {
    memset(p, 0, sizeof *p);
    if (num_blocks <= 0 || block_size <= 0) return -1;
    p->blocks = calloc((size_t)num_blocks, sizeof *p->blocks);
    if (!p->blocks) return -1;
    p->num_blocks = num_blocks;
    p->block_size = block_size;
    snprintf(p->policy, sizeof p->policy, "%s", policy ? policy : "paged");
    for (int b = 0; b < num_blocks; b++) p->blocks[b].owner = -1;
    p->c.blocks_total = num_blocks;
    return 0;
}

void viz_pool_clear(viz_pool *p) {
    for (int i = 0; i < p->num_seqs; i++) free(p->seqs[i].table);
    p->num_seqs = 0;
    for (int q = 0; q < VIZ_Q_N; q++) p->queue_len[q] = 0;
    for (int b = 0; b < p->num_blocks; b++)
        p->blocks[b] = (viz_block){ .owner = -1 };
    memset(&p->c, 0, sizeof p->c);
    p->c.blocks_total = p->num_blocks;
}

void viz_pool_free(viz_pool *p) {
    if (!p) return;
    for (int i = 0; i < p->num_seqs; i++) free(p->seqs[i].table);
    free(p->seqs);
    for (int q = 0; q < VIZ_Q_N; q++) free(p->queue[q]);
    free(p->blocks);
    free(p->hist_held);
    free(p->hist_tokens);
    memset(p, 0, sizeof *p);
}

/* Grows an array of elements of size sz to hold n+1; 0 or -1. */
static int grow(void **arr, int *cap, int n, size_t sz) {
    if (n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 8;
    void *na = realloc(*arr, (size_t)nc * sz);
    if (!na) return -1;
    *arr = na;
    *cap = nc;
    return 0;
}

int viz_pool_add_seq(viz_pool *p, int id, int group, viz_queue q, int prompt_len,
                     int num_tokens, const int *table, int n) {
    if (grow((void **)&p->seqs, &p->seqs_cap, p->num_seqs, sizeof *p->seqs)) return -1;
    viz_seq *s = &p->seqs[p->num_seqs];
    memset(s, 0, sizeof *s);
    if (n > 0) {
        s->table = malloc((size_t)n * sizeof *s->table);
        if (!s->table) return -1;
        memcpy(s->table, table, (size_t)n * sizeof *s->table);
    }
    s->id = id; s->group = group; s->queue = q;
    s->prompt_len = prompt_len; s->num_tokens = num_tokens; s->num_blocks = n;
    return p->num_seqs++;
}

int viz_pool_enqueue(viz_pool *p, viz_queue q, int id) {
    if (q < 0 || q >= VIZ_Q_N) return -1;
    if (grow((void **)&p->queue[q], &p->queue_cap[q], p->queue_len[q], sizeof(int))) return -1;
    p->queue[q][p->queue_len[q]++] = id;
    return 0;
}

int viz_pool_push_history(viz_pool *p) {
    if (p->hist_n >= p->hist_cap) {
        int nc = p->hist_cap ? p->hist_cap * 2 : 64;
        float *a = realloc(p->hist_held, (size_t)nc * sizeof *a);
        if (a) p->hist_held = a;
        float *b = realloc(p->hist_tokens, (size_t)nc * sizeof *b);
        if (b) p->hist_tokens = b;
        if (!a || !b) return -1;
        p->hist_cap = nc;
    }
    double slots = (double)p->num_blocks * p->block_size;
    p->hist_held[p->hist_n] = slots > 0 ? (float)(p->c.blocks_used * (double)p->block_size / slots) : 0;
    p->hist_tokens[p->hist_n] = slots > 0 ? (float)(p->c.tokens_held / slots) : 0;
    p->hist_n++;
    return 0;
}

void viz_pool_count(viz_pool *p) {
    int used = 0, cached = 0;
    long tok = 0, held = 0;
    for (int b = 0; b < p->num_blocks; b++) {
        const viz_block *k = &p->blocks[b];
        if (k->ref > 0 || k->reserved) { used++; held += p->block_size; tok += k->tokens; }
        else if (k->cached) cached++;
    }
    p->c.blocks_used = used;
    p->c.blocks_cached = cached;
    p->c.blocks_total = p->num_blocks;
    p->c.tokens_held = tok;
    p->c.internal_frag = held - tok - p->c.reserved_slots;
    if (p->c.internal_frag < 0) p->c.internal_frag = 0;
    p->c.utilization = held ? (double)tok / (double)held : 0.0;
}

int viz_scene_init(viz_scene *s, int num_blocks, int block_size) {
    memset(s, 0, sizeof *s);
    s->time_s = -1;
    return viz_pool_init(&s->pool, "paged", num_blocks, block_size);
}

void viz_scene_free(viz_scene *s) {
    if (!s) return;
    viz_pool_free(&s->pool);
    viz_pool_free(&s->cmp);
    s->has_cmp = false;
}

static int pool_copy(viz_pool *d, const viz_pool *p) {
    if (viz_pool_init(d, p->policy, p->num_blocks, p->block_size)) return -1;
    memcpy(d->blocks, p->blocks, (size_t)p->num_blocks * sizeof *d->blocks);
    for (int i = 0; i < p->num_seqs; i++) {
        const viz_seq *s = &p->seqs[i];
        int k = viz_pool_add_seq(d, s->id, s->group, s->queue, s->prompt_len,
                                 s->num_tokens, s->table, s->num_blocks);
        if (k < 0) return -1;
        d->seqs[k].resv_start = s->resv_start;
        d->seqs[k].resv_len = s->resv_len;
    }
    for (int q = 0; q < VIZ_Q_N; q++)
        for (int i = 0; i < p->queue_len[q]; i++)
            if (viz_pool_enqueue(d, (viz_queue)q, p->queue[q][i])) return -1;
    d->c = p->c;
    for (int i = 0; i < p->hist_n; i++) {
        if (viz_pool_push_history(d)) return -1;
        d->hist_held[i] = p->hist_held[i];
        d->hist_tokens[i] = p->hist_tokens[i];
    }
    return 0;
}

int viz_scene_copy(viz_scene *dst, const viz_scene *src) {
    memset(dst, 0, sizeof *dst);
    dst->step = src->step;
    dst->time_s = src->time_s;
    memcpy(dst->title, src->title, sizeof dst->title);
    memcpy(dst->event, src->event, sizeof dst->event);
    if (pool_copy(&dst->pool, &src->pool)) goto fail;
    if (src->has_cmp) {
        if (pool_copy(&dst->cmp, &src->cmp)) goto fail;
        dst->has_cmp = true;
    }
    return 0;
fail:
    viz_scene_free(dst);
    return -1;
}

const char *viz_queue_name(viz_queue q) {
    switch (q) {
    case VIZ_Q_WAITING: return "waiting";
    case VIZ_Q_RUNNING: return "running";
    case VIZ_Q_SWAPPED: return "swapped";
    default: return "?";
    }
}
