/* merge: see merge.h.  Shard by shard: each base tensor is copied from the
 * mapped file or, for an adapted linear, converted to fp32, merged and
 * converted back.  Reads base_dir and lora_dir; writes out_dir. */
#include "engine/merge.h"
#include "engine/lora.h"
#include "engine/st_write.h"
#include "base/errbuf.h"
#include "base/file.h"
#include "sim/model_config.h"
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void merge_delta(float *w, const float *A, const float *B, int64_t out, int64_t in, int r, float scale) {
    float *d = malloc(sizeof(float) * (size_t)(in > 0 ? in : 1));
    if (!d) return;
    for (int64_t o = 0; o < out; o++) {
        for (int64_t i = 0; i < in; i++) d[i] = 0;
        for (int k = 0; k < r; k++) {
            float b = B[o * r + k];
            const float *a = A + (int64_t)k * in;
            for (int64_t i = 0; i < in; i++) d[i] += b * a[i];
        }
        float *row = w + o * in;
        for (int64_t i = 0; i < in; i++) row[i] += scale * d[i];
    }
    free(d);
}

/* "model.layers.L.{self_attn,mlp}.MODULE.weight" -> layer and module; -1 otherwise */
static int linear_of(const char *name, int *layer, int *mod) {
    int l, n = 0;
    char part[16], m[16];
    if (sscanf(name, "model.layers.%d.%15[a-z_].%15[a-z_].weight%n", &l, part, m, &n) != 3 || name[n]) return -1;
    for (int k = 0; k < LORA_NMOD; k++)
        if (!strcmp(m, lora_module_name(k)) && !strcmp(part, k >= LORA_GATE ? "mlp" : "self_attn")) {
            *layer = l;
            *mod = k;
            return 0;
        }
    return -1;
}

typedef struct merge_ctx {
    const mc_config *c;
    const lora_adapter *a;
    char *done;                  /* (L, LORA_NMOD) modules merged */
    merge_progress_fn progress;
    void *pctx;
    int total, written;
    merge_stats *st;
} merge_ctx;

/* tensor t merged with its module's adapter into out (t's bytes) */
static int merge_tensor(merge_ctx *mc, const st_tensor *t, int l, int m, void *out, char *err, size_t errlen) {
    int64_t O, I;
    lora_module_shape(mc->c, m, &O, &I);
    int r = mc->a->cfg.r;
    if (t->ndim != 2 || t->shape[0] != O || t->shape[1] != I)
        return errbuf_fail(err, errlen, "base tensor '%s' is not (%lld, %lld)", t->name, (long long)O, (long long)I);
    float *w = malloc(sizeof(float) * (size_t)(O * I)), *A = malloc(sizeof(float) * (size_t)(r * I));
    float *B = malloc(sizeof(float) * (size_t)(O * r)), *w0 = malloc(sizeof(float) * (size_t)(O * I));
    int rc = w && A && B && w0 ? 0 : errbuf_fail(err, errlen, "out of memory merging '%s'", t->name);
    if (!rc) rc = st_to_f32(t, w, err, errlen);
    if (!rc) rc = lora_adapter_module(mc->a, mc->c, l, m, A, B, err, errlen) < 0 ? -1 : 0;
    if (!rc) {
        memcpy(w0, w, sizeof(float) * (size_t)(O * I));
        merge_delta(w, A, B, O, I, r, (float)mc->a->cfg.scale);
        for (int64_t i = 0; i < O * I; i++) {
            double d = fabs((double)w[i] - w0[i]);
            if (d > mc->st->max_delta) mc->st->max_delta = d;
        }
        if (st_from_f32(t->dtype, w, O * I, out)) rc = errbuf_fail(err, errlen, "'%s': dtype %s", t->name, st_dtype_name(t->dtype));
    }
    free(w); free(A); free(B); free(w0);
    return rc;
}

/* one shard: its tensors in header order, the adapted linears merged */
static int merge_shard(merge_ctx *mc, const char *in_path, const char *out_path, char *err, size_t errlen) {
    st_file f;
    if (st_open(&f, in_path, err, errlen)) return -1;
    st_wtensor *wt = calloc((size_t)f.n + 1, sizeof *wt);
    int rc = wt ? 0 : errbuf_fail(err, errlen, "out of memory");
    for (int i = 0; i < f.n && !rc; i++) {
        wt[i].name = f.t[i].name;
        wt[i].dtype = f.t[i].dtype;
        wt[i].ndim = f.t[i].ndim;
        memcpy(wt[i].shape, f.t[i].shape, sizeof wt[i].shape);
    }
    st_writer w;
    if (!rc) rc = st_writer_open(&w, out_path, wt, f.n, err, errlen);
    for (int i = 0; i < f.n && !rc; i++) {
        const st_tensor *t = &f.t[i];
        int l, m;
        int adapted = !linear_of(t->name, &l, &m) && l < mc->c->num_layers && mc->a->A[(size_t)l * LORA_NMOD + m];
        if (!adapted) rc = st_writer_put(&w, t->data, t->nbytes, err, errlen);
        else {
            void *buf = malloc(t->nbytes);
            rc = buf ? merge_tensor(mc, t, l, m, buf, err, errlen) : errbuf_fail(err, errlen, "out of memory");
            if (!rc) rc = st_writer_put(&w, buf, t->nbytes, err, errlen);
            free(buf);
            mc->done[(size_t)l * LORA_NMOD + m] = 1;
            mc->st->merged++;
        }
        mc->st->tensors++;
        if (mc->progress) mc->progress(mc->pctx, t->name, ++mc->written, mc->total);
    }
    if (!rc) rc = st_writer_close(&w, err, errlen);
    else if (wt) st_writer_abort(&w);
    free(wt);
    st_close(&f);
    mc->st->shards += !rc;
    return rc;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen) {
    size_t len;
    char *buf = file_read_all(from, 0, &len, err, errlen);
    if (!buf) return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f)) ok = 0;
    free(buf);
    return ok ? 0 : errbuf_fail(err, errlen, "%s: cannot write", to);
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* weights in other formats would carry the unmerged values: not copied */
static int other_weights(const char *name) {
    static const char *const sfx[] = {".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".gguf", "bin.index.json"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) if (ends_with(name, sfx[i])) return 1;
    return 0;
}

/* the base's safetensors shards (sorted) and every other plain file, copied or merged */
static int merge_files(merge_ctx *mc, const char *base_dir, const char *out_dir, char *err, size_t errlen) {
    struct dirent **ents;
    int n = scandir(base_dir, &ents, NULL, alphasort), rc = 0, shards = 0;
    if (n < 0) return errbuf_fail(err, errlen, "%s: %s", base_dir, strerror(errno));
    for (int pass = 0; pass < 2 && !rc; pass++)              /* count the tensors first, for progress */
        for (int i = 0; i < n && !rc; i++) {
            const char *nm = ents[i]->d_name;
            char in[PATH_MAX], out[PATH_MAX];
            struct stat sb;
            snprintf(in, sizeof in, "%s/%s", base_dir, nm);
            snprintf(out, sizeof out, "%s/%s", out_dir, nm);
            if (nm[0] == '.' || stat(in, &sb) || !S_ISREG(sb.st_mode) || other_weights(nm)) continue;
            if (!ends_with(nm, ".safetensors")) {
                if (pass == 1) { rc = copy_file(in, out, err, errlen); mc->st->files_copied += !rc; }
                continue;
            }
            if (pass == 0) {
                st_file f;
                if (!(rc = st_open(&f, in, err, errlen))) { mc->total += f.n; st_close(&f); }
                shards++;
            } else rc = merge_shard(mc, in, out, err, errlen);
        }
    for (int i = 0; i < n; i++) free(ents[i]);
    free(ents);
    if (!rc && !shards) rc = errbuf_fail(err, errlen, "%s: no .safetensors weights (the merge reads safetensors)", base_dir);
    return rc;
}

int merge_lora(const char *base_dir, const char *lora_dir, const char *out_dir, merge_progress_fn progress, void *ctx,
               merge_stats *st, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    char path[PATH_MAX], rb[PATH_MAX], ro[PATH_MAX];
    mc_config c;
    snprintf(path, sizeof path, "%s/config.json", base_dir);
    if (mc_load(&c, path, err, errlen)) return -1;
    if (file_mkdirs(out_dir)) return errbuf_fail(err, errlen, "%s: cannot create (%s)", out_dir, strerror(errno));
    if (realpath(base_dir, rb) && realpath(out_dir, ro) && !strcmp(rb, ro))
        return errbuf_fail(err, errlen, "--out %s is the base model's directory: give a new one", out_dir);
    lora_adapter a;
    if (lora_adapter_open(&a, "merge", lora_dir, &c, 0, err, errlen)) return -1;
    merge_ctx mc = {&c, &a, calloc((size_t)c.num_layers * LORA_NMOD, 1), progress, ctx, 0, 0, st};
    int rc = mc.done ? merge_files(&mc, base_dir, out_dir, err, errlen) : errbuf_fail(err, errlen, "out of memory");
    for (int l = 0; l < c.num_layers && !rc; l++)
        for (int m = 0; m < LORA_NMOD && !rc; m++)
            if (a.A[(size_t)l * LORA_NMOD + m] && !mc.done[(size_t)l * LORA_NMOD + m])
                rc = errbuf_fail(err, errlen, "%s: no tensor model.layers.%d.%s.%s.weight for the adapter's module",
                                 base_dir, l, m >= LORA_GATE ? "mlp" : "self_attn", lora_module_name(m));
    free(mc.done);
    lora_adapter_close(&a);
    return rc;
}
