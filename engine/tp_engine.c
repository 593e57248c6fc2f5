/* tp_engine: see tp_engine.h.  Rank 0 is the calling process; each worker
 * is a forked copy that joins NCCL and then follows rank 0's messages
 * (tp_worker_loop) with its own shard and model: load, create, steps.
 * Processes, not threads (engine/tp_group.c says why).  Touches: fork, the
 * GPUs, NCCL, the checkpoint files. */
#include "engine/tp_engine.h"
#include "engine/tp_worker.h"
#include "base/errbuf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tp_engine {
    tp_rank    r;                /* group, communicator and plan of this rank */
    double     timeout_s;
    int        loaded;           /* rank 0: tp_engine_load done */
    /* a worker's own state (in its copy of this struct) */
    mc_config  c;
    w_weights  w;
    int        have_w;           /* w is ours until model_create takes it */
    model     *m;
};

/* ---- the worker: its model behind tp_worker_ops ---- */
static int op_load(void *ctx, const tp_load *l, char *err, size_t errlen) {
    tp_engine *t = ctx;
    t->c = l->c;
    if (tp_plan_init(&t->r.plan, &l->c, tp_group_size(t->r.group), tp_group_rank(t->r.group), err, errlen)) return -1;
    if (l->dir[0] ? w_load_shard(&t->w, l->dir, &l->c, &t->r.plan, err, errlen)
                  : w_dummy_shard(&t->w, &l->c, &t->r.plan, l->dummy_seed, err, errlen))
        return -1;
    t->have_w = 1;
    return 0;
}
static int op_create(void *ctx, const model_opts *o, int *num_blocks, char *err, size_t errlen) {
    tp_engine *t = ctx;
    model_opts mo = *o;
    model_mem mem;
    mo.tp = &t->r;
    t->have_w = 0;                           /* model_create owns the weights, failing or not */
    if (model_create(&t->m, &t->c, &t->w, &mo, &mem, err, errlen)) return -1;
    *num_blocks = model_num_blocks(t->m);
    return 0;
}
static int op_forward(void *ctx, const model_batch *b, char *err, size_t errlen) {
    return model_forward(((tp_engine *)ctx)->m, b, NULL, err, errlen);
}
static int op_copy(void *ctx, int kind, int src, int dst, int n, char *err, size_t errlen) {
    return model_swap(((tp_engine *)ctx)->m, kind, src, dst, n, err, errlen);
}
static int op_sync(void *ctx, char *err, size_t errlen) { return model_sync(((tp_engine *)ctx)->m, err, errlen); }

static int worker_main(tp_group *g, void *ctx, char *err, size_t errlen) {
    tp_engine *t = ctx;                      /* the fork's own copy */
    static const tp_worker_ops ops = {op_load, op_create, op_forward, op_copy, op_sync};
    t->r.group = g;
    t->r.comm = NULL;
    if (tp_comm_init(&t->r.comm, g, t->timeout_s, err, errlen)) return -1;
    int rc = tp_worker_loop(g, &ops, t, err, errlen);
    if (rc) return rc;                       /* exit at once: a collective may still hold the GPU */
    model_free(t->m);
    if (t->have_w) w_free(&t->w);
    tp_comm_free(t->r.comm);
    return 0;
}

/* ---- rank 0 ---- */
int tp_engine_start(tp_engine **out, const tp_engine_args *a, char *err, size_t errlen) {
    *out = NULL;
#if !defined(PAGESIM_HAVE_CUDA) || !defined(PAGESIM_HAVE_NCCL)
    (void)a;
    (void)worker_main;
    return errbuf_fail(err, errlen, "tensor parallelism needs NCCL and CUDA, and this build has %s",
#ifdef PAGESIM_HAVE_CUDA
                       "no NCCL (no nccl.h found: see the Makefile's NCCL_HOME)"
#else
                       "no CUDA (no nvcc)"
#endif
                       );
#else
    if (a->size < 1 || a->size > 1024) return errbuf_fail(err, errlen, "tensor-parallel size %d (1 to 1024)", a->size);
    tp_engine *t = calloc(1, sizeof *t);
    if (!t) return errbuf_fail(err, errlen, "out of memory");
    t->timeout_s = a->timeout_s > 0 ? a->timeout_s : 600;
    /* the mailbox holds the largest batch the options allow (model_resolve_opts' defaults:
     * the default max_model_len is at most 4096) */
    const model_opts *o = &a->model;
    int T = o->max_num_batched_tokens > 0 ? o->max_num_batched_tokens : 2048;
    int B = o->max_num_seqs > 0 ? o->max_num_seqs : 256;
    int len = o->max_model_len > 0 ? o->max_model_len : 4096, bs = o->block_size > 0 ? o->block_size : 16;
    size_t box = tp_mailbox_bytes(T, B, (len + bs - 1) / bs);
    if (tp_group_start(&t->r.group, a->size, box, worker_main, t, err, errlen)) { free(t); return -1; }
    if (tp_comm_init(&t->r.comm, t->r.group, t->timeout_s, err, errlen)) {
        tp_group_stop(t->r.group, 1);
        free(t);
        return -1;
    }
    *out = t;
    return 0;
#endif
}

int tp_engine_size(const tp_engine *t) { return t ? tp_group_size(t->r.group) : 1; }
const tp_rank *tp_engine_rank(const tp_engine *t) { return t ? &t->r : NULL; }

int tp_engine_load(tp_engine *t, const mc_config *c, const char *dir, uint64_t dummy_seed, w_weights *w,
                   char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    if (!t) return dir ? w_load(w, dir, c, err, errlen) : w_dummy(w, c, dummy_seed, err, errlen);
    if (t->loaded) return errbuf_fail(err, errlen, "tensor parallelism: the ranks have loaded a model already");
    /* every rank would refuse the same split: say it once, before anything is sent */
    if (w_check_config(c, err, errlen) || tp_plan_init(&t->r.plan, c, tp_group_size(t->r.group), 0, err, errlen))
        return -1;
    tp_load *l = calloc(1, sizeof *l);
    if (!l) return errbuf_fail(err, errlen, "out of memory");
    l->c = *c;
    l->dummy_seed = dummy_seed;
    int rc = 0;
    if (dir && strlen(dir) >= sizeof l->dir) rc = errbuf_fail(err, errlen, "checkpoint path too long: %.80s...", dir);
    if (!rc && dir) snprintf(l->dir, sizeof l->dir, "%s", dir);
    if (!rc) rc = tp_post_load(t->r.group, l, err, errlen);
    free(l);
    if (rc) return -1;
    t->loaded = 1;                           /* the workers load theirs meanwhile */
    if (dir ? w_load_shard(w, dir, c, &t->r.plan, err, errlen) : w_dummy_shard(w, c, &t->r.plan, dummy_seed, err, errlen)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", err);
        return errbuf_fail(err, errlen, "tensor-parallel rank 0: %s", msg);
    }
    return 0;
}

void tp_engine_describe(const tp_engine *t, const mc_config *c, char *buf, size_t n) {
    const tp_plan *p = &t->r.plan;
    int N = tp_group_size(t->r.group), off = 0;
    off += snprintf(buf + off, n, "Tensor parallel size %d (NCCL, one process per GPU): rank 0 holds q heads [%d, %d) "
                    "of %d, KV heads [%d, %d) of %d", N, p->q0, p->q0 + p->nq, p->nq_total, p->kv0, p->kv0 + p->nkv,
                    p->nkv_total);
    if (p->kv_replicas > 1 && off < (int)n) off += snprintf(buf + off, n - off, " (each on %d ranks)", p->kv_replicas);
    if (c->num_experts > 0 && off < (int)n)
        off += snprintf(buf + off, n - off, ", %d experts of width %d of %d, router whole", c->num_experts,
                        p->moe_inter, c->moe_intermediate_size);
    else if (off < (int)n)
        off += snprintf(buf + off, n - off, ", MLP width %d of %d", p->inter, c->intermediate_size);
    if (off < (int)n)
        snprintf(buf + off, n - off, ", vocabulary rows [%d, %d) of %d (padded to %d)", p->vocab0,
                 p->vocab0 + p->vocab_rows, p->vocab, p->vocab_padded);
}

int tp_engine_stop(tp_engine *t) {
    if (!t) return 0;
    tp_comm_free(t->r.comm);                 /* a local teardown: no rank waits on another */
    int rc = tp_group_stop(t->r.group, 10);
    free(t);
    return rc;
}
