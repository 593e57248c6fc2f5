/* lora_rt: see lora_rt.h.  Host side of runtime LoRA: the packed images,
 * the slot table, the step's token grouping, and the launches of
 * engine/lora.cu.  Touches its own device buffers and the activations it is
 * handed; the copies into slots and the grouping go on the model's stream,
 * so a slot is overwritten only after the kernels of earlier steps read it. */
#include "engine/lora_rt.h"
#include "engine/kernels_lora.h"
#include "engine/lora_pack.h"
#include "engine/lora_slots.h"
#include "base/errbuf.h"
#include <stdlib.h>
#include <string.h>

/* the widest A x of any fused linear (rows of v) */
static int widest_ra(const lora_layout *lo) {
    int ra = 0;
    for (int i = 0; i < lo->L * LORA_NGROUP; i++) if (lo->g[i].RA > ra) ra = lo->g[i].RA;
    return ra;
}
static size_t max_tiles(int max_T, int nslots) { return (size_t)max_T / 16 + (size_t)nslots + 2; }
/* floats of the shrink's split-K work buffer: the most any fused linear needs
 * at the largest batch that splits (kernels_lora.h) */
static size_t work_elems(const lora_layout *lo, int max_T) {
    int rows = max_T < K_LORA_SPLIT_ROWS ? max_T : K_LORA_SPLIT_ROWS;
    int64_t w = 0;
    for (int i = 0; i < lo->L * LORA_NGROUP; i++) {
        int64_t e = lo->g[i].S ? k_lora_shrink_work(lo->g[i].RA, lo->g[i].K, rows) : 0;
        if (e > w) w = e;
    }
    return (size_t)w;
}

size_t lora_rt_bytes(const lora_set *set, const mc_config *c, const tp_plan *tp, int max_T) {
    lora_layout lo;
    char err[256];
    if (!set || lora_slot_layout(&lo, c, set->max_rank, tp, err, sizeof err)) return 0;
    size_t b = (size_t)set->max_loras * lo.elems * 2 + (size_t)set->max_loras * 4 +
               (size_t)max_T * widest_ra(&lo) * 4 + work_elems(&lo, max_T) * 4 +
               ((size_t)max_T + 3 * max_tiles(max_T, set->max_loras)) * 4;
    lora_layout_free(&lo);
    return b;
}

#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>

struct lora_rt {
    const lora_set *set;
    lora_layout lo;
    uint16_t  **img;              /* (n,) each adapter's slot image, host */
    lora_slots  slots;
    k_bf16     *arena;            /* (max_loras, lo.elems) the slots */
    float      *scale;            /* (max_loras,) each slot's adapter's scale */
    float      *v;                /* (max_T, widest RA) A x of the current linear */
    float      *work;             /* (nwork,) the shrink's split-K partials (kernels_lora.h) */
    size_t      nwork;
    int32_t    *dints, *hints;    /* device / pinned host: perm (max_T,), tiles (max_tiles, 3) */
    int32_t    *slot_of;          /* (max_num_seqs grows) host: each sequence's slot */
    int         cap_seqs, max_T;
    size_t      held;
    k_lora_batch b;               /* the prepared step */
};

int lora_rt_create(lora_rt **out, const lora_set *set, const mc_config *c, const tp_plan *tp, int max_T, char *err,
                   size_t errlen) {
    *out = NULL;
    lora_rt *r = calloc(1, sizeof *r);
    if (!r) return errbuf_fail(err, errlen, "out of memory");
    r->set = set;
    r->max_T = max_T;
    if (lora_slot_layout(&r->lo, c, set->max_rank, tp, err, errlen)) { free(r); return -1; }
    r->img = calloc((size_t)set->n + 1, sizeof *r->img);
    if (!r->img || lora_slots_init(&r->slots, set->max_loras)) { lora_rt_free(r); return errbuf_fail(err, errlen, "out of memory"); }
    for (int i = 0; i < set->n; i++) {                    /* every adapter checked and packed now */
        if (!(r->img[i] = malloc(r->lo.elems * sizeof **r->img))) {
            lora_rt_free(r);
            return errbuf_fail(err, errlen, "out of memory for LoRA adapter '%s' (%.1f MB)", set->a[i].name,
                               r->lo.elems * 2 / 1e6);
        }
        if (lora_pack(&set->a[i], c, &r->lo, tp, r->img[i], err, errlen)) { lora_rt_free(r); return -1; }
    }
    size_t nt = max_tiles(max_T, set->max_loras), nints = (size_t)max_T + 3 * nt;
    size_t slots = (size_t)set->max_loras * r->lo.elems * 2, vb = (size_t)max_T * widest_ra(&r->lo) * 4;
    r->nwork = work_elems(&r->lo, max_T);
    if (cudaMalloc((void **)&r->arena, slots) != cudaSuccess ||
        cudaMalloc((void **)&r->work, r->nwork ? r->nwork * 4 : 16) != cudaSuccess ||
        cudaMalloc((void **)&r->scale, (size_t)set->max_loras * 4) != cudaSuccess ||
        cudaMalloc((void **)&r->v, vb ? vb : 16) != cudaSuccess ||
        cudaMalloc((void **)&r->dints, nints * 4) != cudaSuccess ||
        cudaMallocHost((void **)&r->hints, nints * 4) != cudaSuccess) {
        lora_rt_free(r);
        return errbuf_fail(err, errlen, "cannot allocate %d LoRA slots of rank %d (%.2f GiB; lower --max-loras or "
                           "--max-lora-rank)", set->max_loras, set->max_rank, slots / 1073741824.0);
    }
    r->held = slots + (size_t)set->max_loras * 4 + vb + r->nwork * 4 + nints * 4;
    *out = r;
    return 0;
}

size_t lora_rt_held(const lora_rt *r) { return r ? r->held : 0; }
int lora_rt_active(const lora_rt *r) { return r && r->b.rows > 0; }

/* Copies adapter id's image and scale into slot k (on s, after earlier steps' kernels). */
static int load_slot(lora_rt *r, int k, int id, cudaStream_t s, char *err, size_t errlen) {
    const lora_adapter *a = &r->set->a[id - 1];
    float sc = (float)a->cfg.scale;
    if (cudaMemcpyAsync(r->arena + (size_t)k * r->lo.elems, r->img[id - 1], r->lo.elems * 2, cudaMemcpyHostToDevice,
                        s) != cudaSuccess ||
        cudaMemcpyAsync(r->scale + k, &sc, 4, cudaMemcpyHostToDevice, s) != cudaSuccess ||
        cudaStreamSynchronize(s) != cudaSuccess)      /* sc lives on this stack frame */
        return errbuf_fail(err, errlen, "LoRA adapter '%s' into slot %d: %s", a->name, k,
                           cudaGetErrorString(cudaGetLastError()));
    return 0;
}

int lora_rt_prepare(lora_rt *r, const int32_t *adapters, const int32_t *query_start, int B, int T, cudaStream_t s,
                    char *err, size_t errlen) {
    memset(&r->b, 0, sizeof r->b);
    if (!adapters) return 0;
    if (T > r->max_T) return errbuf_fail(err, errlen, "LoRA: %d tokens in a step (at most %d)", T, r->max_T);
    if (B > r->cap_seqs) {
        int32_t *so = realloc(r->slot_of, sizeof *so * (size_t)B);
        if (!so) return errbuf_fail(err, errlen, "out of memory");
        r->slot_of = so;
        r->cap_seqs = B;
    }
    int rc = 0, i;
    for (i = 0; i < B && !rc; i++) {                   /* pin each sequence's adapter in a slot */
        int id = adapters[i], load;
        r->slot_of[i] = -1;
        if (id == 0) continue;
        if (id < 0 || id > r->set->n) { rc = errbuf_fail(err, errlen, "LoRA adapter id %d (%d loaded)", id, r->set->n); break; }
        int k = lora_slots_acquire(&r->slots, id, &load);
        if (k < 0) {
            rc = errbuf_fail(err, errlen, "a step names more LoRA adapters than --max-loras %d slots", r->set->max_loras);
            break;
        }
        r->slot_of[i] = k;
        if (load) rc = load_slot(r, k, id, s, err, errlen);
    }
    for (int j = 0; j < i; j++) lora_slots_release(&r->slots, r->slot_of[j]);
    if (rc) return -1;
    int32_t *perm = r->hints, *tiles = r->hints + r->max_T;
    int rows = lora_group_tokens(r->slot_of, query_start, B, r->set->max_loras, perm, tiles, &r->b.ntiles,
                                 &r->b.ntiles_all);
    if (rows == 0) { memset(&r->b, 0, sizeof r->b); return 0; }
    size_t nints = (size_t)r->max_T + 3 * (size_t)r->b.ntiles_all;
    if (cudaMemcpyAsync(r->dints, r->hints, nints * 4, cudaMemcpyHostToDevice, s) != cudaSuccess)
        return errbuf_fail(err, errlen, "LoRA: %s", cudaGetErrorString(cudaGetLastError()));
    r->b.rows = rows;
    r->b.perm = r->dints;
    r->b.tiles = r->dints + r->max_T;
    r->b.work = r->work;
    r->b.work_elems = (int64_t)r->nwork;
    return 0;
}

int lora_rt_linear(lora_rt *r, int group, int l, k_bf16 *y, int y_stride, const k_bf16 *x, int x_stride,
                   cudaStream_t s) {
    const lora_group_layout *g = &r->lo.g[(size_t)l * LORA_NGROUP + group];
    if (!r->b.rows || !g->S) return 0;
    k_lora_slices sl = {g->S, r->lo.R, {g->slice_end[0], g->slice_end[1], g->slice_end[2]}};
    int64_t stride = (int64_t)r->lo.elems;
    if (k_lora_shrink(r->v, x, x_stride, r->arena + g->a_off, stride, g->RA, g->K, &r->b, s)) return -1;
    return k_lora_expand(y, y_stride, r->v, g->RA, r->arena + g->b_off, stride, r->scale, &sl, &r->b, s);
}

int lora_rt_silu(lora_rt *r, int l, k_bf16 *act, const k_bf16 *gu, int I, const k_bf16 *x, int x_stride, int T,
                 cudaStream_t s) {
    const lora_group_layout *g = &r->lo.g[(size_t)l * LORA_NGROUP + LORA_G_GATE_UP];
    if (!r->b.rows || !g->S) return k_silu_mul(act, gu, T, I, s);
    int64_t stride = (int64_t)r->lo.elems;
    if (k_lora_shrink(r->v, x, x_stride, r->arena + g->a_off, stride, g->RA, g->K, &r->b, s)) return -1;
    return k_lora_silu(act, gu, I, r->v, g->RA, r->arena + g->b_off, stride, r->scale, r->lo.R, &r->b, s);
}

void lora_rt_free(lora_rt *r) {
    if (!r) return;
    if (r->img) for (int i = 0; i < r->set->n; i++) free(r->img[i]);
    free(r->img);
    if (r->arena) cudaFree(r->arena);
    if (r->scale) cudaFree(r->scale);
    if (r->v) cudaFree(r->v);
    if (r->work) cudaFree(r->work);
    if (r->dints) cudaFree(r->dints);
    if (r->hints) cudaFreeHost(r->hints);
    free(r->slot_of);
    lora_slots_free(&r->slots);
    lora_layout_free(&r->lo);
    free(r);
}
#else  /* built without CUDA */
int lora_rt_create(lora_rt **out, const lora_set *set, const mc_config *c, const tp_plan *tp, int max_T, char *err,
                   size_t errlen) {
    (void)set; (void)c; (void)tp; (void)max_T;
    *out = NULL;
    return errbuf_fail(err, errlen, "engine built without CUDA (no nvcc)");
}
int lora_rt_prepare(lora_rt *r, const int32_t *adapters, const int32_t *query_start, int B, int T, cudaStream_t s,
                    char *err, size_t errlen) {
    (void)r; (void)adapters; (void)query_start; (void)B; (void)T; (void)s;
    return errbuf_fail(err, errlen, "no CUDA");
}
int lora_rt_active(const lora_rt *r) { (void)r; return 0; }
int lora_rt_linear(lora_rt *r, int group, int l, k_bf16 *y, int y_stride, const k_bf16 *x, int x_stride,
                   cudaStream_t s) {
    (void)r; (void)group; (void)l; (void)y; (void)y_stride; (void)x; (void)x_stride; (void)s;
    return -1;
}
int lora_rt_silu(lora_rt *r, int l, k_bf16 *act, const k_bf16 *gu, int I, const k_bf16 *x, int x_stride, int T,
                 cudaStream_t s) {
    (void)r; (void)l; (void)act; (void)gu; (void)I; (void)x; (void)x_stride; (void)T; (void)s;
    return -1;
}
size_t lora_rt_held(const lora_rt *r) { (void)r; return 0; }
void lora_rt_free(lora_rt *r) { (void)r; }
#endif
