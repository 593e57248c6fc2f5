/* tp_ckpt: a small random Hugging Face checkpoint on disk for the
 * tensor-parallel GPU tests (config.json + model.safetensors in bf16), its
 * tensors the engine's own list of a config (tp_tensors: dense
 * llama/qwen2/qwen3 or qwen3_moe), MoE experts per expert or packed as
 * transformers 5 stores them (experts.gate_up_proj (E, 2I, D),
 * experts.down_proj (E, D, I)) with the same values.  Each value is a hash of
 * the tensor's name and the element's index, scaled so that activations stay
 * of order one and the logits are far from flat (greedy tokens that do not
 * flip on bf16 noise).  Header-only: each test binary is one file. */
#ifndef TESTS_GPU_TP_CKPT_H
#define TESTS_GPU_TP_CKPT_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "engine/kernels_ref.h"
#include "engine/tp_shard.h"
#include "sim/model_config.h"

typedef struct tck {
    FILE    *data;              /* the tensors' bytes, in order (a temporary file) */
    char     hdr[1 << 17];
    size_t   hl, dl;
    int      packed;            /* MoE experts as transformers 5 packs them */
    const mc_config *c;
} tck;

static uint64_t tck_hash(const char *name) {
    uint64_t h = 1469598103934665603ull;
    for (; *name; name++) h = (h ^ (unsigned char)*name) * 1099511628211ull;
    return h;
}
/* element i of tensor `name` (rows of `in` inputs) */
static uint16_t tck_value(const char *name, int64_t i, int64_t in) {
    uint64_t z = tck_hash(name) ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    float u = (float)(z >> 40) / 8388608.0f - 1.0f;                  /* [-1, 1) */
    float v;
    if (strstr(name, "norm")) v = 1.0f + 0.5f * u;
    else if (strstr(name, "bias")) v = 0.3f * u;
    else if (strstr(name, "embed_tokens")) v = u;
    else if (strstr(name, "lm_head")) v = 3.0f * u / sqrtf((float)in);      /* logits of std ~2 */
    else if (strstr(name, "mlp.gate.")) v = 4.0f * u / sqrtf((float)in);    /* a router that decides */
    else v = 1.7f * u / sqrtf((float)in);
    return kref_f2bf(v);
}

static void tck_put(tck *k, const char *name, int ndim, const int64_t *shape, int64_t n, int64_t in,
                    const char *const *srcs, int64_t split) {
    /* srcs NULL: the values of `name`; else packed: row j of block e comes from srcs[e * 2 + (j >= split)] */
    uint16_t buf[4096];
    int64_t inner = ndim == 3 ? shape[1] * shape[2] : 0;
    for (int64_t i = 0; i < n; i += 4096) {
        int64_t m = n - i < 4096 ? n - i : 4096;
        for (int64_t j = 0; j < m; j++) {
            int64_t x = i + j;
            if (!srcs) { buf[j] = tck_value(name, x, in); continue; }
            int64_t e = x / inner, r = (x % inner) / shape[2], col = x % shape[2];
            if (split) {                                   /* gate_up: rows [0, I) gate, [I, 2I) up */
                int up = r >= split;
                buf[j] = tck_value(srcs[e * 2 + up], (r - (up ? split : 0)) * shape[2] + col, in);
            } else {
                buf[j] = tck_value(srcs[e], r * shape[2] + col, in);
            }
        }
        fwrite(buf, 2, (size_t)m, k->data);
    }
    char sh[96];
    if (ndim == 1) snprintf(sh, sizeof sh, "[%lld]", (long long)shape[0]);
    else if (ndim == 2) snprintf(sh, sizeof sh, "[%lld,%lld]", (long long)shape[0], (long long)shape[1]);
    else snprintf(sh, sizeof sh, "[%lld,%lld,%lld]", (long long)shape[0], (long long)shape[1], (long long)shape[2]);
    k->hl += (size_t)snprintf(k->hdr + k->hl, sizeof k->hdr - k->hl, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":%s,"
                              "\"data_offsets\":[%zu,%zu]}", k->hl > 1 ? "," : "", name, sh, k->dl,
                              k->dl + (size_t)n * 2);
    k->dl += (size_t)n * 2;
}

static int tck_one(void *ctx, const char *name, int ndim, const int64_t *shape) {
    tck *k = ctx;
    int64_t n = shape[0] * (ndim > 1 ? shape[1] : 1), in = ndim > 1 ? shape[1] : 1;
    const char *ex = strstr(name, "mlp.experts.");
    if (!k->packed || !ex) { tck_put(k, name, ndim, shape, n, in, NULL, 0); return 0; }
    /* packed: written once, at expert 0's gate_proj, from every expert's tensors' values */
    if (!strstr(name, "experts.0.gate_proj")) return 0;
    int L = atoi(name + strlen("model.layers.")), E = k->c->num_experts;
    int64_t I = k->c->moe_intermediate_size, D = k->c->hidden_size;
    char **names = calloc((size_t)E * 2, sizeof *names), nm[160];
    for (int e = 0; e < E; e++)
        for (int t = 0; t < 2; t++) {
            snprintf(nm, sizeof nm, "model.layers.%d.mlp.experts.%d.%s_proj.weight", L, e, t ? "up" : "gate");
            names[e * 2 + t] = strdup(nm);
        }
    int64_t gu[3] = {E, 2 * I, D};
    snprintf(nm, sizeof nm, "model.layers.%d.mlp.experts.gate_up_proj", L);
    tck_put(k, nm, 3, gu, E * 2 * I * D, D, (const char *const *)names, I);
    for (int e = 0; e < E; e++) {
        free(names[e * 2]); free(names[e * 2 + 1]);
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.experts.%d.down_proj.weight", L, e);
        names[e] = strdup(nm);
    }
    int64_t dn[3] = {E, D, I};
    snprintf(nm, sizeof nm, "model.layers.%d.mlp.experts.down_proj", L);
    tck_put(k, nm, 3, dn, E * D * I, I, (const char *const *)names, 0);
    for (int e = 0; e < E; e++) free(names[e]);
    free(names);
    return 0;
}

/* Writes dir/config.json (config_json) and dir/model.safetensors; *c the
 * config as the engine reads it.  0, or -1 with a message in err. */
static int tck_write(const char *dir, const char *config_json, int packed, mc_config *c, char *err, size_t errlen) {
    char path[1024];
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return snprintf(err, errlen, "cannot write %.400s", path), -1;
    fputs(config_json, f);
    fclose(f);
    if (mc_load(c, path, err, errlen)) return -1;
    static tck k;
    memset(&k, 0, sizeof k);
    k.packed = packed;
    k.c = c;
    k.data = tmpfile();
    k.hl = (size_t)snprintf(k.hdr, sizeof k.hdr, "{");
    if (!k.data || tp_tensors(c, c->attn_bias, tck_one, &k, err, errlen)) return -1;
    k.hl += (size_t)snprintf(k.hdr + k.hl, sizeof k.hdr - k.hl, "}");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!(f = fopen(path, "wb"))) return snprintf(err, errlen, "cannot write %.400s", path), -1;
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)k.hl >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(k.hdr, 1, k.hl, f);
    rewind(k.data);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, k.data)) > 0) fwrite(buf, 1, n, f);
    fclose(k.data);
    return fclose(f) ? (snprintf(err, errlen, "write error on %.400s", path), -1) : 0;
}
#endif
