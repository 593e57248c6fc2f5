/* scenario: the pictures driven by the real KV cache, scheduler, step loop and
 * simulator executor through the driver (sim/driver.h: arrivals, the idle
 * clock, stalls, kv_check after every step), one step at a time (see
 * scenario.h).  Each "lane" is one policy serving the requests; the scene is
 * captured from the lanes after each step through kv_block_views /
 * kv_usage_get / sched_live.  Touches no file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "viz/scenario.h"
#include "sim/driver.h"
#include "sim/sim_executor.h"

typedef struct req_track {       /* one request as the picture follows it */
    seq  *first;                 /* its first sequence while it lives, else NULL */
    bool  arrived, done;
} req_track;

typedef struct lane {            /* one policy serving the requests */
    kv_cache *kv;
    sched    *sc;
    loop      lp;
    simx      x;
    drv      *d;
    struct viz_scenario *v;      /* for the driver's hooks */
    req_track *rt;               /* (n,) by request index */
    int       next;              /* next arrival, index into order */
    int       finished;          /* requests done */
    bool      ended;
    long      prev_hits, prev_cow;
    int      *prev_live;         /* (n_prev,) ids of the live sequences before the step */
    int      *prev_nb;           /* (n_prev,) their block counts */
    int      *prev_sw;           /* (n_prev,) 1 when swapped out */
    int       n_prev, prev_cap;
    kv_block_view *views;        /* (num_blocks,) */
    int       ann_src[8], ann_dst[8], n_ann;  /* copies on write told at a fork,
                                                 executed with the next batch */
} lane;

struct viz_scenario {
    viz_scenario_config cfg;
    wl_request *reqs;            /* (n,) */
    int         n;
    int        *order;           /* (n,) request indices by arrival */
    int        *ids;             /* (max_prompt,) prompt token ids scratch */
    lane        a, b;
    bool        has_b;
    int         step;
    viz_scene   scene;
};

/* ---- the classroom requests ------------------------------------------------ */

viz_scenario_config viz_scenario_defaults(int num_blocks, int block_size, uint64_t seed) {
    viz_scenario_config c;
    memset(&c, 0, sizeof c);
    long S = (long)num_blocks * block_size;
    long M = S / 2;
    if (M > 16L * block_size) M = 16L * block_size;
    if (M < 2L * block_size + 4) M = 2L * block_size + 4;
    c.kv.policy = KV_PAGED;
    c.kv.num_blocks = num_blocks;
    c.kv.block_size = block_size;
    c.kv.max_model_len = (int)M;
    c.kv.orca_max_len = (int)M;
    c.kv.prefix_caching = true;
    c.kv.num_cpu_blocks = 0;
    c.sched = sched_config_default();
    c.sched.max_model_len = (int)M;
    c.compare = -1;
    c.seed = seed;
    return c;
}

int viz_scenario_classroom(int num_blocks, int block_size, int max_model_len, uint64_t seed,
                           wl_request **out, int *n, char *err, size_t errlen) {
    int bs = block_size, M = max_model_len;
    long S = (long)num_blocks * bs;
    if (num_blocks < 4 || bs < 1 || M < 2 * bs + 4) {
        snprintf(err, errlen, "the classroom scenario needs at least 4 blocks (got %d) and a max_model_len "
                 "of at least %d tokens (got %d); --workload can drive other pools", num_blocks, 2 * bs + 4, M);
        return -1;
    }
    /* fillers, each asking for about max_model_len slots, until the demand
     * exceeds the pool by a fifth: the pool must run out */
    int fillers = (int)((S * 6 / 5) / M) + 1;
    if (fillers < 2) fillers = 2;
    int cap = 4 + fillers;
    wl_request *r = calloc((size_t)cap, sizeof *r);
    if (!r) { snprintf(err, errlen, "out of memory"); return -1; }
    const double tick = 0.006;   /* about one step of the toy cost */
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    int k = 0;
#define CLIP(p, o) do { if ((p) + (o) > M) (o) = M - (p); if ((o) < 1) (o) = 1; } while (0)
    /* a request with a shared system prompt (two full blocks) */
    r[k] = (wl_request){ 0.0, 2 * bs + 2, 2 * bs + 1, 1, 0, 0, 2 * bs, NULL, 0 };
    CLIP(r[k].prompt_len, r[k].output_len); k++;
    /* parallel sampling n = 2: the two samples share the prompt's blocks; the
     * first write into the shared, partly filled last block copies it */
    r[k] = (wl_request){ 1 * tick, bs + 2, bs + 2, 2, 0, -1, 0, NULL, 0 };
    CLIP(r[k].prompt_len, r[k].output_len); k++;
    /* the same system prompt again: a prefix-cache hit on the first's blocks */
    r[k] = (wl_request){ 3 * tick, 2 * bs + 3, bs + 1, 1, 0, 0, 2 * bs, NULL, 0 };
    CLIP(r[k].prompt_len, r[k].output_len); k++;
    /* long requests: the pool runs out and the newest is preempted */
    for (int i = 0; i < fillers; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        int p = bs + 1 + (int)(s % (unsigned)bs);
        int o = M - p - (int)((s >> 20) % (unsigned)(bs > 1 ? bs : 2));
        r[k] = (wl_request){ (5 + i) * tick, p, o, 1, 0, -1, 0, NULL, 0 };
        CLIP(r[k].prompt_len, r[k].output_len); k++;
    }
    /* late: the system prompt once more, after the first request finished */
    r[k] = (wl_request){ (2 * bs + 8) * tick, 2 * bs + 1, bs, 1, 0, 0, 2 * bs, NULL, 0 };
    CLIP(r[k].prompt_len, r[k].output_len); k++;
#undef CLIP
    *out = r;
    *n = k;
    return 0;
}

/* ---- lanes ------------------------------------------------------------------ */

static void lane_free(lane *l) {
    drv_destroy(l->d);
    loop_free(&l->lp);
    sched_destroy(l->sc);
    kv_destroy(l->kv);
    free(l->rt);
    free(l->prev_live);
    free(l->prev_nb);
    free(l->prev_sw);
    free(l->views);
    memset(l, 0, sizeof *l);
}

/* The driver's source: the requests in order of arrival, prompt ids made on
 * arrival; and its arrival hook, which follows each request's first sequence. */
static int lane_next(void *ctx, double now, drv_request *r, double *next_at, char *err, size_t errlen) {
    (void)err; (void)errlen;
    lane *l = ctx;
    viz_scenario *v = l->v;
    if (l->next >= v->n) return DRV_SRC_END;
    int i = v->order[l->next];
    const wl_request *w = &v->reqs[i];
    if (w->arrival > now) { *next_at = w->arrival; return DRV_SRC_LATER; }
    wl_prompt_tokens(w, i, v->cfg.seed, v->ids);
    *r = (drv_request){ i, v->ids, w->prompt_len, w->output_len, w->n > 0 ? w->n : 1, w->beam, w->arrival, NULL, 0 };
    l->next++;
    return DRV_SRC_REQUEST;
}
static void lane_arrival(void *ctx, const drv_request *r, seq *first) {
    lane *l = ctx;
    l->rt[r->id].first = first;
    l->rt[r->id].arrived = true;
}

static int lane_init(lane *l, viz_scenario *v, kv_policy policy, char *err, size_t errlen) {
    memset(l, 0, sizeof *l);
    l->v = v;
    kv_config kc = v->cfg.kv;
    kc.policy = policy;
    if (policy != KV_PAGED) { kc.prefix_caching = false; kc.num_cpu_blocks = 0; }
    if (!(l->kv = kv_create(&kc, err, errlen))) goto fail;
    if (!(l->sc = sched_create(&v->cfg.sched, l->kv, err, errlen))) goto fail;
    simx_init(&l->x, v->cfg.model, v->cfg.seed);
    double t0 = v->n > 0 ? v->reqs[v->order[0]].arrival : 0;
    l->rt = calloc((size_t)(v->n > 0 ? v->n : 1), sizeof *l->rt);
    l->views = calloc((size_t)kc.num_blocks, sizeof *l->views);
    if (!l->rt || !l->views || loop_init(&l->lp, l->sc, simx_executor(&l->x), t0, -1)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    drv_config dc = drv_config_default();
    dc.source = (drv_source){ lane_next, l };
    dc.check = true;              /* the picture must show a valid state */
    dc.on_arrival = lane_arrival;
    dc.ctx = l;
    if (!(l->d = drv_create(&l->lp, l->kv, &dc, err, errlen))) goto fail;
    return 0;
fail:
    lane_free(l);
    return -1;
}

static bool in_list(const int *a, int n, int x) {
    for (int i = 0; i < n; i++) if (a[i] == x) return true;
    return false;
}

/* Up to 3 sequence ids (and a number each) and how many in all, for one
 * line of events ("s4, s30, s32 +5 need new blocks"). */
typedef struct idlist { int ids[3], extra[3], n; } idlist;
static void idl_add(idlist *l, int id, int extra) {
    if (l->n < 3) { l->ids[l->n] = id; l->extra[l->n] = extra; }
    l->n++;
}
static void ev_add(char *ev, size_t cap, const char *text);
static void idl_say(char *ev, size_t cap, const idlist *l, const char *verb, const char *unused) {
    (void)unused;
    if (l->n == 0) return;
    char t[128];
    int k = 0;
    for (int i = 0; i < l->n && i < 3; i++) k += snprintf(t + k, sizeof t - (size_t)k, "%ss%d", i ? ", " : "", l->ids[i]);
    if (l->n > 3) k += snprintf(t + k, sizeof t - (size_t)k, " +%d", l->n - 3);
    snprintf(t + k, sizeof t - (size_t)k, " %s", verb);
    ev_add(ev, cap, t);
}

/* Appends "; text" (or "text") to ev while it fits. */
static void ev_add(char *ev, size_t cap, const char *text) {
    size_t n = strlen(ev);
    if (n + strlen(text) + 3 >= cap) return;
    snprintf(ev + n, cap - n, "%s%s", n ? "; " : "", text);
}

/* Remembers the live sequences before a step (ids, block counts, swapped or
 * not), to tell admissions, forks, growth, swaps and preemptions after it.
 * 0, or -1 with err on out of memory. */
static int lane_remember(lane *l, char *err, size_t errlen) {
    seq *const *live; const seq *nw;
    int nl = sched_live(l->sc, &live, &nw);
    if (nl < 0) { snprintf(err, errlen, "out of memory"); return -1; }
    if (nl > l->prev_cap) {
        int *np = realloc(l->prev_live, (size_t)nl * sizeof *np);
        if (np) l->prev_live = np;
        int *nb = realloc(l->prev_nb, (size_t)nl * sizeof *nb);
        if (nb) l->prev_nb = nb;
        int *sw = realloc(l->prev_sw, (size_t)nl * sizeof *sw);
        if (sw) l->prev_sw = sw;
        if (!np || !nb || !sw) { snprintf(err, errlen, "out of memory"); return -1; }
        l->prev_cap = nl;
    }
    for (int i = 0; i < nl; i++) {
        l->prev_live[i] = live[i]->id;
        l->prev_nb[i] = live[i]->num_blocks;
        l->prev_sw[i] = live[i]->status == SEQ_SWAPPED;
    }
    l->n_prev = nl;
    return 0;
}

/* Finished requests: their tracks closed, the aborted ones told. */
static void tell_finished(lane *l, const viz_scenario *v, const loop_step_info *info, char *ev, size_t evcap) {
    char t[96];
    for (int i = 0; i < info->n_fin; i++)
        for (int r = 0; r < v->n; r++) if (l->rt[r].first == info->fin[i]) l->rt[r].first = NULL;
    for (int i = 0; i < info->n_done; i++) {
        int id = info->done[i].id;
        if (id >= 0 && id < v->n) { l->rt[id].done = true; l->rt[id].first = NULL; }
        l->finished++;
        if (info->done[i].aborted) {
            snprintf(t, sizeof t, "request %d aborted: %s", id,
                     info->done[i].why ? info->done[i].why : "aborted");
            ev_add(ev, evcap, t);
        }
    }
}

/* Sequences new since the step began: admitted requests, and forked samples
 * with the copy-on-write each announces (executed with the next batch: kept in
 * l->ann_* so that tell_copies does not tell it twice).  grow collects the
 * older sequences that crossed into a new block, told by tell_gone. */
static void tell_new(lane *l, seq *const *live, int nl, idlist *grow, char *ev, size_t evcap) {
    char t[96];
    idlist adm = {0}, frk = {0};
    for (int i = 0; i < nl; i++) {
        const seq *s = live[i];
        if (in_list(l->prev_live, l->n_prev, s->id)) {
            for (int j = 0; j < l->n_prev; j++)   /* crossed into a new block */
                if (l->prev_live[j] == s->id && s->num_blocks == l->prev_nb[j] + 1 && s->status == SEQ_RUNNING)
                    idl_add(grow, s->id, s->block_table[s->num_blocks - 1]);
            continue;
        }
        if (s->group != s->id) idl_add(&frk, s->id, s->group);
        else idl_add(&adm, s->id, s->prompt_len);
    }
    if (adm.n == 1) { snprintf(t, sizeof t, "s%d admitted (%d-token prompt)", adm.ids[0], adm.extra[0]); ev_add(ev, evcap, t); }
    else idl_say(ev, evcap, &adm, "admitted", NULL);
    l->n_ann = 0;
    for (int i = 0; i < frk.n && i < 3; i++) {
        /* the child shares its parent's blocks but at once takes a private
         * copy of the block its next token goes into (copy-on-write) */
        const seq *c = NULL, *par = NULL;
        for (int j = 0; j < nl; j++) {
            if (live[j]->id == frk.ids[i]) c = live[j];
            if (live[j]->id == frk.extra[i]) par = live[j];
        }
        int k = snprintf(t, sizeof t, "s%d forked from s%d: shares its blocks", frk.ids[i], frk.extra[i]);
        for (int j = 0; c && par && j < c->num_blocks && j < par->num_blocks; j++)
            if (c->block_table[j] != par->block_table[j] && par->block_table[j] >= 0) {
                snprintf(t + k, sizeof t - (size_t)k, "; copy-on-write #%d -> #%d", par->block_table[j],
                         c->block_table[j]);
                if (l->n_ann < 8) { l->ann_src[l->n_ann] = par->block_table[j]; l->ann_dst[l->n_ann++] = c->block_table[j]; }
                break;
            }
        ev_add(ev, evcap, t);
    }
}

/* The batch's copies on write, but for the prev_ann (src, dst) pairs already
 * told at their fork one step ago; at most two by name. */
static void tell_copies(const sched_batch *b, const int *psrc, const int *pdst, int prev_ann, char *ev,
                        size_t evcap) {
    char t[96];
    int ncow = 0;
    for (int i = 0; b && i < b->num_copies; i++) {
        const kv_copy *c = &b->copies[i];
        if (c->kind != KV_COPY_GPU) continue;
        bool told = false;   /* already shown at the fork, one step ago */
        for (int j = 0; j < prev_ann && !told; j++) told = psrc[j] == c->src && pdst[j] == c->dst;
        if (told) continue;
        if (ncow++ < 2) { snprintf(t, sizeof t, "copy-on-write #%d -> #%d", c->src, c->dst); ev_add(ev, evcap, t); }
    }
    if (ncow > 2) { snprintf(t, sizeof t, "+%d copies on write", ncow - 2); ev_add(ev, evcap, t); }
}

/* Swaps: a sequence whose place changed between the GPU and the CPU. */
static void tell_swaps(const lane *l, seq *const *live, int nl, char *ev, size_t evcap) {
    char t[96];
    for (int i = 0; i < nl; i++)
        for (int j = 0; j < l->n_prev; j++) {
            if (l->prev_live[j] != live[i]->id) continue;
            bool now_sw = live[i]->status == SEQ_SWAPPED;
            if (now_sw && !l->prev_sw[j])
                snprintf(t, sizeof t, "s%d swapped out: %d blocks to the CPU", live[i]->id, live[i]->num_blocks);
            else if (!now_sw && l->prev_sw[j])
                snprintf(t, sizeof t, "s%d swapped back in (%d blocks)", live[i]->id, live[i]->num_blocks);
            else continue;
            ev_add(ev, evcap, t);
        }
}

/* Sequences live before the step and gone now, preempted or finished; and
 * between them the growth that tell_new collected. */
static void tell_gone(const lane *l, seq *const *live, int nl, const loop_step_info *info, const idlist *grow,
                      char *ev, size_t evcap) {
    char t[96];
    idlist pre = {0}, fin = {0};
    for (int i = 0; i < l->n_prev; i++) {
        int id = l->prev_live[i];
        bool still = false, done = false;
        for (int j = 0; j < nl && !still; j++) still = live[j]->id == id;
        for (int j = 0; j < info->n_fin && !done; j++) done = info->fin[j]->id == id;
        if (done) idl_add(&fin, id, 0);
        else if (!still) idl_add(&pre, id, 0);
    }
    idl_say(ev, evcap, &pre, "preempted: the pool ran out (recompute later)", NULL);
    if (grow->n == 1) { snprintf(t, sizeof t, "s%d needs a new block: #%d", grow->ids[0], grow->extra[0]); ev_add(ev, evcap, t); }
    else idl_say(ev, evcap, grow, "need new blocks", NULL);
    idl_say(ev, evcap, &fin, "finished, blocks freed", NULL);
}

/* One step of a lane; fills ev with what happened.  1 stepped, 0 ended, -1 error. */
static int lane_step(lane *l, viz_scenario *v, char *ev, size_t evcap, char *err, size_t errlen) {
    ev[0] = 0;
    if (l->ended) return 0;
    /* the live ids before the step, to tell admissions, forks and preemptions */
    if (lane_remember(l, err, errlen)) return -1;
    loop_step_info info;
    int st = drv_step(l->d, &info, err, errlen);   /* arrivals, idle time, stalls, kv_check */
    if (st < 0) return -1;
    if (st == 0) { l->ended = true; return 0; }
    tell_finished(l, v, &info, ev, evcap);
    seq *const *live; const seq *nw;
    int nl = sched_live(l->sc, &live, &nw);
    if (nl < 0) { snprintf(err, errlen, "out of memory"); return -1; }
    kv_usage u;
    kv_usage_get(l->kv, live, nl, nw, &u);
    int prev_ann = l->n_ann, psrc[8], pdst[8];   /* the copies told at a fork one step ago */
    memcpy(psrc, l->ann_src, sizeof psrc);
    memcpy(pdst, l->ann_dst, sizeof pdst);
    idlist grow = {0};
    tell_new(l, live, nl, &grow, ev, evcap);
    char t[96];
    if (u.prefix_hit_tokens > l->prev_hits) {
        snprintf(t, sizeof t, "prefix-cache hit: %ld tokens reused", u.prefix_hit_tokens - l->prev_hits);
        ev_add(ev, evcap, t);
    }
    const sched_batch *b = info.batch;
    tell_copies(b, psrc, pdst, prev_ann, ev, evcap);
    tell_swaps(l, live, nl, ev, evcap);
    tell_gone(l, live, nl, &info, &grow, ev, evcap);
    if (!ev[0] && b) {
        long pre = b->counts.prefill_tokens, dec = b->counts.decode_tokens;
        if (pre > 0) snprintf(t, sizeof t, "prefill %ld tokens, decode %ld sequences", pre, dec);
        else snprintf(t, sizeof t, "decode: %ld sequence%s by one token", dec, dec == 1 ? " grows" : "s grow");
        ev_add(ev, evcap, t);
    }
    l->prev_hits = u.prefix_hit_tokens;
    l->prev_cow = u.cow_copies;
    return 1;
}

/* Captures a lane into a scene pool. */
static int capture(lane *l, viz_scenario *v, viz_pool *p) {
    viz_pool_clear(p);
    seq *const *live; const seq *nw;
    int nl = sched_live(l->sc, &live, &nw);
    if (nl < 0) return -1;
    kv_block_views(l->kv, live, nl, l->views);
    for (int b = 0; b < p->num_blocks; b++) {
        const kv_block_view *k = &l->views[b];
        p->blocks[b] = (viz_block){ k->owner, k->ref, k->tokens, k->cached, k->reserved };
    }
    for (int i = 0; i < nl; i++) {
        const seq *s = live[i];
        viz_queue q = s->status == SEQ_SWAPPED ? VIZ_Q_SWAPPED : VIZ_Q_RUNNING;
        int k = viz_pool_add_seq(p, s->id, s->group, q, s->prompt_len, s->num_tokens,
                                 s->block_table, s->num_blocks);
        if (k < 0 || viz_pool_enqueue(p, q, s->id)) return -1;
        p->seqs[k].resv_start = s->resv_start;
        p->seqs[k].resv_len = s->resv_len;
    }
    for (int j = 0; j < v->n; j++) {
        const req_track *r = &l->rt[v->order[j]];
        if (r->arrived && !r->done && r->first && r->first->status == SEQ_WAITING)
            if (viz_pool_enqueue(p, VIZ_Q_WAITING, r->first->id)) return -1;
    }
    kv_usage u;
    kv_usage_get(l->kv, live, nl, nw, &u);
    viz_counters *c = &p->c;
    c->blocks_used = u.blocks_used;
    c->blocks_cached = u.blocks_cached;
    c->blocks_total = u.blocks_total;
    c->tokens_held = u.token_slots;
    c->reserved_slots = u.reserved_slots;
    c->internal_frag = u.internal_frag;
    c->external_frag = u.external_frag;
    long held = u.token_slots + u.reserved_slots + u.internal_frag;
    c->utilization = held > 0 ? (double)u.token_slots / (double)held : 0;
    c->prefix_hit_tokens = u.prefix_hit_tokens;
    c->cow_copies = u.cow_copies;
    c->preemptions = (int)sched_get_stats(l->sc)->preemptions;
    c->finished = l->finished;
    c->time_s = l->lp.now;
    return 0;
}

static int capture_all(viz_scenario *v, char *err, size_t errlen) {
    v->scene.step = v->step;
    v->scene.time_s = v->a.lp.now;
    if (capture(&v->a, v, &v->scene.pool) || (v->has_b && capture(&v->b, v, &v->scene.cmp)) ||
        viz_pool_push_history(&v->scene.pool) || (v->has_b && viz_pool_push_history(&v->scene.cmp))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- the scenario ----------------------------------------------------------- */

static const wl_request *g_reqs;   /* qsort has no context argument */
static int by_arrival(const void *x, const void *y) {
    int i = *(const int *)x, j = *(const int *)y;
    if (g_reqs[i].arrival != g_reqs[j].arrival) return g_reqs[i].arrival < g_reqs[j].arrival ? -1 : 1;
    return (i > j) - (i < j);
}

static int start(viz_scenario *v, char *err, size_t errlen) {
    lane_free(&v->a);
    lane_free(&v->b);
    v->step = 0;
    v->scene.pool.hist_n = 0;
    v->scene.cmp.hist_n = 0;
    if (lane_init(&v->a, v, v->cfg.kv.policy, err, errlen)) return -1;
    if (v->has_b && lane_init(&v->b, v, (kv_policy)v->cfg.compare, err, errlen)) return -1;
    char t[160];
    if (drv_admit(v->a.d, err, errlen)) return -1;            /* step 0 shows them waiting */
    if (v->has_b && drv_admit(v->b.d, err, errlen)) return -1;
    snprintf(t, sizeof t, "%d requests to serve; space steps, p plays", v->n);
    snprintf(v->scene.event, sizeof v->scene.event, "%s", t);
    return capture_all(v, err, errlen);
}

viz_scenario *viz_scenario_create(const viz_scenario_config *cfg, char *err, size_t errlen) {
    viz_scenario *v = calloc(1, sizeof *v);
    if (!v) { snprintf(err, errlen, "out of memory"); return NULL; }
    v->cfg = *cfg;
    if (cfg->compare >= 0 && cfg->compare < KV_NUM_POLICIES) v->has_b = true;
    if (cfg->reqs) {
        v->n = cfg->num_reqs;
        v->reqs = malloc((size_t)(v->n > 0 ? v->n : 1) * sizeof *v->reqs);
        if (!v->reqs) { snprintf(err, errlen, "out of memory"); goto fail; }
        if (v->n > 0) memcpy(v->reqs, cfg->reqs, (size_t)v->n * sizeof *v->reqs);
    } else if (viz_scenario_classroom(cfg->kv.num_blocks, cfg->kv.block_size, cfg->kv.max_model_len,
                                      cfg->seed, &v->reqs, &v->n, err, errlen)) goto fail;
    v->cfg.reqs = NULL;
    int maxp = 1;
    for (int i = 0; i < v->n; i++) {
        if (v->reqs[i].prompt_len <= 0 || v->reqs[i].output_len <= 0) {
            snprintf(err, errlen, "request %d: prompt_len %d, output_len %d (must be positive)",
                     i, v->reqs[i].prompt_len, v->reqs[i].output_len);
            goto fail;
        }
        if (v->reqs[i].prompt_len > maxp) maxp = v->reqs[i].prompt_len;
    }
    v->order = malloc((size_t)(v->n > 0 ? v->n : 1) * sizeof *v->order);
    v->ids = malloc((size_t)maxp * sizeof *v->ids);
    if (!v->order || !v->ids) { snprintf(err, errlen, "out of memory"); goto fail; }
    for (int i = 0; i < v->n; i++) v->order[i] = i;
    g_reqs = v->reqs;
    qsort(v->order, (size_t)v->n, sizeof *v->order, by_arrival);
    if (viz_scene_init(&v->scene, cfg->kv.num_blocks, cfg->kv.block_size)) {
        snprintf(err, errlen, "bad pool size %d x %d", cfg->kv.num_blocks, cfg->kv.block_size);
        goto fail;
    }
    snprintf(v->scene.pool.policy, sizeof v->scene.pool.policy, "%s", kv_policy_name(cfg->kv.policy));
    if (v->has_b) {
        if (viz_pool_init(&v->scene.cmp, kv_policy_name((kv_policy)cfg->compare), cfg->kv.num_blocks,
                          cfg->kv.block_size)) { snprintf(err, errlen, "out of memory"); goto fail; }
        v->scene.has_cmp = true;
    }
    snprintf(v->scene.title, sizeof v->scene.title, "pagesim   %d blocks x %d slots   seed %llu%s%s",
             cfg->kv.num_blocks, cfg->kv.block_size, (unsigned long long)cfg->seed,
             v->has_b ? "   vs " : "", v->has_b ? kv_policy_name((kv_policy)cfg->compare) : "");
    if (start(v, err, errlen)) goto fail;
    return v;
fail:
    viz_scenario_destroy(v);
    return NULL;
}

void viz_scenario_destroy(viz_scenario *v) {
    if (!v) return;
    lane_free(&v->a);
    lane_free(&v->b);
    viz_scene_free(&v->scene);
    free(v->reqs);
    free(v->order);
    free(v->ids);
    free(v);
}

int viz_scenario_step(viz_scenario *v, char *err, size_t errlen) {
    if (v->cfg.max_steps > 0 && v->step >= v->cfg.max_steps) {
        int left = v->n - v->a.finished;
        if (left <= 0 && (!v->has_b || v->b.finished >= v->n)) return 0;
        snprintf(err, errlen, "stopped at the step limit (%ld steps) with %d requests unfinished",
                 v->cfg.max_steps, left);
        return -1;
    }
    char ea[160], eb[160];
    int ra = lane_step(&v->a, v, ea, sizeof ea, err, errlen);
    if (ra < 0) return -1;
    int rb = 0;
    eb[0] = 0;
    if (v->has_b && (rb = lane_step(&v->b, v, eb, sizeof eb, err, errlen)) < 0) return -1;
    if (ra == 0 && rb == 0) {
        snprintf(v->scene.event, sizeof v->scene.event, "all %d requests served", v->n);
        return 0;
    }
    v->step++;
    snprintf(v->scene.event, sizeof v->scene.event, "%s", ra ? ea : "paged: all served; the baseline is still at work");
    return capture_all(v, err, errlen) ? -1 : 1;
}

int viz_scenario_restart(viz_scenario *v, char *err, size_t errlen) { return start(v, err, errlen); }

const viz_scene *viz_scenario_scene(const viz_scenario *v) { return &v->scene; }

static int p_step(void *c, char *e, size_t n) { return viz_scenario_step(c, e, n); }
static int p_restart(void *c, char *e, size_t n) { return viz_scenario_restart(c, e, n); }
static const viz_scene *p_scene(void *c) { return viz_scenario_scene(c); }

viz_player viz_scenario_player(viz_scenario *v) {
    return (viz_player){ v, p_step, p_restart, p_scene };
}
