/* lora_pack: see lora_pack.h.  Where each module's A and B go in a slot
 * (lora_slot_layout) and filling a slot's image from an adapter (lora_pack),
 * on one GPU or as a tensor-parallel rank's shard.  Host memory only. */
#include "engine/lora_pack.h"
#include "engine/kernels_ref.h"
#include "base/errbuf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int k_group_mods[LORA_NGROUP][LORA_MAX_SLICES + 1] = {
    {LORA_Q, LORA_K, LORA_V, -1}, {LORA_O, -1}, {LORA_GATE, LORA_UP, -1}, {LORA_DOWN, -1}};

static size_t align128(size_t n) { return (n + 127) / 128 * 128; }

/* The rows (or columns) of module m's base weight this rank holds: [*lo, *lo + *n)
 * along its output (column-parallel: *row 1) or its input (row-parallel: *row 0). */
static int module_split(const tp_plan *tp, const mc_config *c, int l, int m, int64_t *lo, int64_t *n, int *row,
                        char *err, size_t errlen) {
    int64_t out, in;
    lora_module_shape(c, m, &out, &in);
    *row = m != LORA_O && m != LORA_DOWN;
    *lo = 0;
    *n = *row ? out : in;
    if (!tp) return 0;
    char name[128];
    snprintf(name, sizeof name, "model.layers.%d.%s.%s.weight", l, m >= LORA_GATE ? "mlp" : "self_attn",
             lora_module_name(m));
    int64_t shape[2] = {out, in};
    tp_slice s;
    if (tp_shard_tensor(tp, name, 2, shape, &s, err, errlen)) return -1;
    if (*row) { *lo = s.r0; *n = s.nr; }
    else { *lo = s.c0; *n = s.nc; }
    return 0;
}

int lora_slot_layout(lora_layout *lo, const mc_config *c, int R, const tp_plan *tp, char *err, size_t errlen) {
    memset(lo, 0, sizeof *lo);
    if (R < 1 || R > LORA_MAX_RANK) return errbuf_fail(err, errlen, "LoRA rank %d (1..%d)", R, LORA_MAX_RANK);
    lo->L = c->num_layers;
    lo->R = R;
    lo->g = calloc((size_t)lo->L * LORA_NGROUP, sizeof *lo->g);
    if (!lo->g) return errbuf_fail(err, errlen, "out of memory");
    size_t off = 0;
    for (int l = 0; l < lo->L; l++)
        for (int gi = 0; gi < LORA_NGROUP; gi++) {
            lora_group_layout *g = &lo->g[(size_t)l * LORA_NGROUP + gi];
            if (gi >= LORA_G_GATE_UP && mc_layer_is_moe(c, l)) continue;     /* experts take no adapter */
            int64_t K = 0, N = 0;
            for (int j = 0; k_group_mods[gi][j] >= 0; j++) {
                int m = k_group_mods[gi][j], row;
                int64_t s0, n, out, in;
                if (module_split(tp, c, l, m, &s0, &n, &row, err, errlen)) { lora_layout_free(lo); return -1; }
                lora_module_shape(c, m, &out, &in);
                K = row ? in : n;
                N += row ? n : out;
                g->mod[j] = m;
                g->slice_end[j] = (int)N;
                g->S = j + 1;
            }
            g->K = (int)K;
            g->N = (int)N;
            g->RA = (g->S * R + 15) / 16 * 16;
            for (int j = 0; j < g->S; j++)
                if (g->slice_end[j] % 8) {
                    lora_layout_free(lo);
                    return errbuf_fail(err, errlen, "%s: %s's output width is not a multiple of 8 (LoRA kernels)",
                                       c->name, lora_module_name(g->mod[j]));
                }
            if (K % 16) {
                lora_layout_free(lo);
                return errbuf_fail(err, errlen, "%s: %s's input width %lld is not a multiple of 16 (LoRA kernels)",
                                   c->name, lora_module_name(g->mod[0]), (long long)K);
            }
            g->a_off = off;
            off += align128((size_t)g->RA * g->K);
            g->b_off = off;
            off += align128((size_t)g->N * R);
        }
    lo->elems = off;
    return 0;
}

void lora_layout_free(lora_layout *lo) {
    free(lo->g);
    memset(lo, 0, sizeof *lo);
}

/* Module j of group g (layer l): its A into rows [j R, j R + r) of the group's A,
 * its B into the group's B rows of the module, columns [0, r). */
static int pack_module(const lora_adapter *a, const mc_config *c, const lora_layout *lo, const tp_plan *tp, int l,
                       const lora_group_layout *g, int j, float *A, float *B, uint16_t *img, char *err, size_t errlen) {
    int m = g->mod[j], r = a->cfg.r, R = lo->R, row;
    int64_t out, in, s0, n;
    lora_module_shape(c, m, &out, &in);
    int rc = lora_adapter_module(a, c, l, m, A, B, err, errlen);
    if (rc) return rc < 0 ? -1 : 0;                                  /* 1: left alone (zeros) */
    if (module_split(tp, c, l, m, &s0, &n, &row, err, errlen)) return -1;
    uint16_t *ga = img + g->a_off, *gb = img + g->b_off;
    for (int k = 0; k < r; k++)                                      /* A (r, in): this rank's columns when row-parallel */
        for (int i = 0; i < g->K; i++)
            ga[(size_t)(j * R + k) * g->K + i] = kref_f2bf(A[(size_t)k * in + (row ? i : s0 + i)]);
    int first = j ? g->slice_end[j - 1] : 0;
    for (int o = 0; o < g->slice_end[j] - first; o++)               /* B (out, r): this rank's rows when column-parallel */
        for (int k = 0; k < r; k++)
            gb[(size_t)(first + o) * R + k] = kref_f2bf(B[(size_t)(row ? s0 + o : o) * r + k]);
    return 0;
}

int lora_pack(const lora_adapter *a, const mc_config *c, const lora_layout *lo, const tp_plan *tp, uint16_t *img,
              char *err, size_t errlen) {
    if (a->cfg.r > lo->R)
        return errbuf_fail(err, errlen, "adapter '%s': rank %d is above the slots' rank %d (--max-lora-rank)",
                           a->name, a->cfg.r, lo->R);
    memset(img, 0, lo->elems * sizeof *img);
    int64_t most = 0, out, in;
    for (int m = 0; m < LORA_NMOD; m++) {
        lora_module_shape(c, m, &out, &in);
        if (out > most) most = out;
        if (in > most) most = in;
    }
    float *A = malloc(sizeof(float) * (size_t)a->cfg.r * most), *B = malloc(sizeof(float) * (size_t)a->cfg.r * most);
    int rc = A && B ? 0 : errbuf_fail(err, errlen, "out of memory");
    for (int l = 0; l < lo->L && !rc; l++)
        for (int gi = 0; gi < LORA_NGROUP && !rc; gi++) {
            const lora_group_layout *g = &lo->g[(size_t)l * LORA_NGROUP + gi];
            for (int j = 0; j < g->S && !rc; j++) rc = pack_module(a, c, lo, tp, l, g, j, A, B, img, err, errlen);
        }
    free(A);
    free(B);
    return rc;
}
