/* op_profile: operator-level step times (see op_profile.h).  Reads and writes
 * only the profile files it is given (opp_find lists one directory and its
 * subdirectories).
 *
 * The file (format "pagesim-op-profile", version 1):
 *   { "format": "pagesim-op-profile", "version": 1, "gpu": "NVIDIA H200",
 *     "model": "Qwen/Qwen2.5-7B", "tp": 1, "block_size": 16,
 *     "shape": { "hidden_size": 3584, "num_layers": 28, "num_heads": 28,
 *                "num_kv_heads": 4, "head_dim": 128, "intermediate_size": 18944,
 *                "vocab_size": 152064, "num_experts": 0, "experts_per_tok": 0,
 *                "moe_intermediate_size": 0 },
 *     "cpu": { "step_overhead_us": 410.0, "per_seq_us": 2.5, "gpu_floor_us": 900.0 },
 *     "ops": { "gemm_qkv": { "x": "tokens", "points": [[1, 14.2], [2, 14.3], ...] },
 *              ...,
 *              "attn_decode": { "x": "batch", "y": "context", "xs": [...], "ys": [...],
 *                               "us": [[...one row per x...], ...] } } }
 * Times are microseconds per call on one GPU. */
#include "sim/op_profile.h"
#include "base/file.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OPP_FORMAT "pagesim-op-profile"

/* ---- interpolation ----------------------------------------------------------- */
double opp_curve_at(const opp_curve *c, double x) {
    if (c->n <= 0) return 0;
    if (c->n == 1 || x <= c->x[0]) return c->us[0];
    int n = c->n;
    if (x >= c->x[n - 1]) {
        double slope = (c->us[n - 1] - c->us[n - 2]) / (c->x[n - 1] - c->x[n - 2]);
        return c->us[n - 1] + (slope > 0 ? slope : 0) * (x - c->x[n - 1]);
    }
    int i = 1;
    while (c->x[i] < x) i++;
    double f = (x - c->x[i - 1]) / (c->x[i] - c->x[i - 1]);
    return c->us[i - 1] + f * (c->us[i] - c->us[i - 1]);
}

/* Position of v among a (n,), ascending: index i and weight f of a[i+1];
 * *scale > 1 when v lies beyond the last point (proportional extrapolation). */
static void locate(const double *a, int n, double v, int *i, double *f, double *scale) {
    *scale = 1;
    if (n == 1 || v <= a[0]) { *i = 0; *f = 0; return; }
    if (v >= a[n - 1]) { *i = n - 2; *f = 1; *scale = v / a[n - 1]; return; }
    int k = 1;
    while (a[k] < v) k++;
    *i = k - 1;
    *f = (v - a[k - 1]) / (a[k] - a[k - 1]);
}

double opp_grid_at(const opp_grid *g, double x, double y) {
    if (g->nx <= 0 || g->ny <= 0) return 0;
    int i, j;
    double fx, fy, sx, sy;
    locate(g->x, g->nx, x, &i, &fx, &sx);
    locate(g->y, g->ny, y, &j, &fy, &sy);
    int i1 = g->nx > 1 ? i + 1 : i, j1 = g->ny > 1 ? j + 1 : j;
    double a = g->us[i][j] + fy * (g->us[i][j1] - g->us[i][j]);
    double b = g->us[i1][j] + fy * (g->us[i1][j1] - g->us[i1][j]);
    return (a + fx * (b - a)) * sx * sy;
}

int opp_curve_add(opp_curve *c, double x, double us) {
    int i = 0;
    while (i < c->n && c->x[i] < x) i++;
    if (i < c->n && c->x[i] == x) { c->us[i] = us; return 0; }
    if (c->n >= OPP_MAX_POINTS) return -1;
    memmove(c->x + i + 1, c->x + i, (size_t)(c->n - i) * sizeof *c->x);
    memmove(c->us + i + 1, c->us + i, (size_t)(c->n - i) * sizeof *c->us);
    c->x[i] = x;
    c->us[i] = us;
    c->n++;
    return 0;
}

/* ---- the step ------------------------------------------------------------------ */
double opp_step_time(const opp_profile *p, const cm_batch *b) {
    double rows = b->num_seqs > 0 ? b->num_seqs : 0;
    double cpu = p->step_overhead_us + p->per_seq_us * rows, us = 0;
    double T = (double)(b->prefill_tokens + b->decode_tokens), L = p->layers;
    if (T <= 0) return cpu * 1e-6;
    double layer = opp_curve_at(&p->elem_layer, T);
    for (int k = 0; k < OPP_NGEMM; k++) layer += opp_curve_at(&p->gemm[k], T);
    if (p->experts > 0) layer += opp_curve_at(&p->moe_layer, T);
    /* attention: decode sequences by their mean context, prefill as one fresh
     * sequence of the same (query, key) pairs */
    double dec = (double)b->decode_tokens, dctx = (double)(b->attn_ctx_tokens - b->prefill_tokens);
    if (dctx < dec) dctx = dec;
    if (dec > 0) layer += opp_grid_at(&p->attn_decode, dec, dctx / dec);
    double pairs = (double)b->attn_pairs - (dec > 0 ? dctx : 0);
    if (b->prefill_tokens > 0 && pairs > 0) layer += opp_curve_at(&p->attn_prefill, sqrt(2 * pairs));
    if (p->tp > 1) layer += 2 * opp_curve_at(&p->allreduce, T);
    us += L * layer + opp_curve_at(&p->elem_step, T) + opp_curve_at(&p->lm_head, rows) +
          opp_curve_at(p->sample_topp && p->sampling_topp.n > 0 ? &p->sampling_topp : &p->sampling, rows);
    if (p->decode_fit && b->prefill_tokens <= 0) {
        double t = p->decode_step_us + p->decode_per_seq_us * rows + us;
        return (t > 0.5 * us ? t : 0.5 * us) * 1e-6;
    }
    return (cpu + (us > p->gpu_floor_us ? us : p->gpu_floor_us)) * 1e-6;
}

double opp_post_time(const opp_profile *p, int num_seqs) {
    return (p->post_step_us + p->post_per_seq_us * (num_seqs > 0 ? num_seqs : 0)) * 1e-6;
}

bool opp_matches(const opp_profile *p, const mc_config *c, int tp) {
    return p->tp == tp && p->hidden == c->hidden_size && p->layers == c->num_layers && p->heads == c->num_heads &&
           p->kv_heads == c->num_kv_heads && p->head_dim == c->head_dim && p->vocab == c->vocab_size &&
           p->experts == c->num_experts && (c->num_experts > 0 ? p->moe_intermediate == c->moe_intermediate_size
                                                               : p->intermediate == c->intermediate_size);
}

/* ---- JSON ---------------------------------------------------------------------- */
static const struct { const char *name, *x; size_t off; } opp_curves[] = {
    { "gemm_qkv", "tokens", offsetof(opp_profile, gemm[OPP_QKV]) },
    { "gemm_o", "tokens", offsetof(opp_profile, gemm[OPP_O]) },
    { "gemm_gate_up", "tokens", offsetof(opp_profile, gemm[OPP_GATE_UP]) },
    { "gemm_down", "tokens", offsetof(opp_profile, gemm[OPP_DOWN]) },
    { "lm_head", "rows", offsetof(opp_profile, lm_head) },
    { "elem_layer", "tokens", offsetof(opp_profile, elem_layer) },
    { "elem_step", "tokens", offsetof(opp_profile, elem_step) },
    { "attn_prefill", "tokens", offsetof(opp_profile, attn_prefill) },
    { "moe_layer", "tokens", offsetof(opp_profile, moe_layer) },
    { "sampling", "rows", offsetof(opp_profile, sampling) },
    { "sampling_topp", "rows", offsetof(opp_profile, sampling_topp) },
    { "allreduce", "tokens", offsetof(opp_profile, allreduce) },
};
#define OPP_NCURVES (sizeof opp_curves / sizeof opp_curves[0])

static const struct { const char *key; size_t off; } opp_shape[] = {
    { "hidden_size", offsetof(opp_profile, hidden) }, { "num_layers", offsetof(opp_profile, layers) },
    { "num_heads", offsetof(opp_profile, heads) }, { "num_kv_heads", offsetof(opp_profile, kv_heads) },
    { "head_dim", offsetof(opp_profile, head_dim) }, { "intermediate_size", offsetof(opp_profile, intermediate) },
    { "vocab_size", offsetof(opp_profile, vocab) }, { "num_experts", offsetof(opp_profile, experts) },
    { "experts_per_tok", offsetof(opp_profile, experts_per_tok) },
    { "moe_intermediate_size", offsetof(opp_profile, moe_intermediate) },
};
#define OPP_NSHAPE (sizeof opp_shape / sizeof opp_shape[0])

static int bad(char *err, size_t errlen, const char *path, const char *what, const char *field) {
    snprintf(err, errlen, "%s: %s%s%s", path, field ? field : "", field ? ": " : "", what);
    return -1;
}

/* A number >= 0 at key of o; absent: dflt (when dflt >= 0) or an error. */
static int num(const cJSON *o, const char *key, double dflt, double *v, const char *path, char *err, size_t errlen) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it && dflt >= 0) { *v = dflt; return 0; }
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0) || !isfinite(it->valuedouble))
        return bad(err, errlen, path, it ? "must be a number >= 0" : "missing", key);
    *v = it->valuedouble;
    return 0;
}

/* "decode_step_us" (any finite number) and "decode_per_seq_us" (>= 0): both or neither */
static int read_decode_fit(const cJSON *cpu, opp_profile *p, const char *path, char *err, size_t errlen) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cpu, "decode_step_us");
    p->decode_fit = 0;
    p->decode_step_us = p->decode_per_seq_us = 0;
    if (!a && !cJSON_GetObjectItemCaseSensitive(cpu, "decode_per_seq_us")) return 0;
    if (!cJSON_IsNumber(a) || !isfinite(a->valuedouble))
        return bad(err, errlen, path, a ? "must be a number" : "missing (decode_per_seq_us is there)", "decode_step_us");
    if (num(cpu, "decode_per_seq_us", -1, &p->decode_per_seq_us, path, err, errlen)) return -1;
    p->decode_step_us = a->valuedouble;
    p->decode_fit = 1;
    return 0;
}

static int read_curve(const cJSON *ops, const char *name, opp_curve *c, const char *path, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(ops, name);
    if (!o) return 0;                             /* absent op: 0 us */
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(o, "points"), *pt;
    char field[96];
    snprintf(field, sizeof field, "ops.%s.points", name);
    if (!cJSON_IsArray(pts)) return bad(err, errlen, path, "missing (an array of [x, us])", field);
    if (cJSON_GetArraySize(pts) > OPP_MAX_POINTS) return bad(err, errlen, path, "too many points (48 at most)", field);
    int i = 0;
    cJSON_ArrayForEach(pt, pts) {
        snprintf(field, sizeof field, "ops.%s.points[%d]", name, i++);
        const cJSON *x = cJSON_GetArrayItem(pt, 0), *us = cJSON_GetArrayItem(pt, 1);
        if (cJSON_GetArraySize(pt) != 2 || !cJSON_IsNumber(x) || !cJSON_IsNumber(us) || !(x->valuedouble > 0) ||
            !(us->valuedouble >= 0) || !isfinite(x->valuedouble) || !isfinite(us->valuedouble))
            return bad(err, errlen, path, "want [x > 0, us >= 0]", field);
        if (c->n > 0 && !(x->valuedouble > c->x[c->n - 1])) return bad(err, errlen, path, "x not ascending", field);
        c->x[c->n] = x->valuedouble;
        c->us[c->n++] = us->valuedouble;
    }
    return 0;
}

static int read_axis(const cJSON *o, const char *key, double *a, int *n, const char *field, const char *path,
                     char *err, size_t errlen) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key), *it;
    char f[96];
    snprintf(f, sizeof f, "%s.%s", field, key);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1 || cJSON_GetArraySize(arr) > OPP_MAX_GRID)
        return bad(err, errlen, path, "want an array of 1..16 ascending numbers > 0", f);
    *n = 0;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble > 0) || (*n > 0 && !(it->valuedouble > a[*n - 1])))
            return bad(err, errlen, path, "want ascending numbers > 0", f);
        a[(*n)++] = it->valuedouble;
    }
    return 0;
}

static int read_grid(const cJSON *ops, const char *name, opp_grid *g, const char *path, char *err, size_t errlen) {
    memset(g, 0, sizeof *g);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(ops, name);
    if (!o) return 0;
    char field[64];
    snprintf(field, sizeof field, "ops.%s", name);
    if (read_axis(o, "xs", g->x, &g->nx, field, path, err, errlen) ||
        read_axis(o, "ys", g->y, &g->ny, field, path, err, errlen))
        return -1;
    const cJSON *us = cJSON_GetObjectItemCaseSensitive(o, "us");
    snprintf(field, sizeof field, "ops.%s.us", name);
    if (!cJSON_IsArray(us) || cJSON_GetArraySize(us) != g->nx) return bad(err, errlen, path, "want one row per xs", field);
    for (int i = 0; i < g->nx; i++) {
        const cJSON *row = cJSON_GetArrayItem(us, i);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != g->ny) return bad(err, errlen, path, "want ys values per row", field);
        for (int j = 0; j < g->ny; j++) {
            const cJSON *v = cJSON_GetArrayItem(row, j);
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || !isfinite(v->valuedouble))
                return bad(err, errlen, path, "times must be numbers >= 0", field);
            g->us[i][j] = v->valuedouble;
        }
    }
    return 0;
}

static int parse(opp_profile *p, const cJSON *root, const char *path, char *err, size_t errlen) {
    double v;
    if (num(root, "version", -1, &v, path, err, errlen)) return -1;
    if (v != 1) return bad(err, errlen, path, "unsupported version (this reader knows 1)", "version");
    const cJSON *gpu = cJSON_GetObjectItemCaseSensitive(root, "gpu"), *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    snprintf(p->gpu, sizeof p->gpu, "%s", cJSON_IsString(gpu) ? gpu->valuestring : "?");
    snprintf(p->model, sizeof p->model, "%s", cJSON_IsString(model) ? model->valuestring : "?");
    if (num(root, "tp", 1, &v, path, err, errlen)) return -1;
    p->tp = (int)v;
    if (num(root, "block_size", 16, &v, path, err, errlen)) return -1;
    p->block_size = (int)v;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(root, "shape");
    if (!cJSON_IsObject(shape)) return bad(err, errlen, path, "missing (the model's sizes)", "shape");
    for (size_t i = 0; i < OPP_NSHAPE; i++) {
        if (num(shape, opp_shape[i].key, i >= 7 ? 0 : -1, &v, path, err, errlen)) return -1;
        *(int *)((char *)p + opp_shape[i].off) = (int)v;
    }
    if (p->tp < 1 || p->layers < 1) return bad(err, errlen, path, "tp and num_layers must be >= 1", "shape");
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(root, "cpu");
    if (num(cpu, "step_overhead_us", 0, &p->step_overhead_us, path, err, errlen) ||
        num(cpu, "per_seq_us", 0, &p->per_seq_us, path, err, errlen) ||
        num(cpu, "gpu_floor_us", 0, &p->gpu_floor_us, path, err, errlen) ||
        num(cpu, "post_step_us", 0, &p->post_step_us, path, err, errlen) ||
        num(cpu, "post_per_seq_us", 0, &p->post_per_seq_us, path, err, errlen))
        return -1;
    if (read_decode_fit(cpu, p, path, err, errlen)) return -1;
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(root, "ops");
    if (!cJSON_IsObject(ops)) return bad(err, errlen, path, "missing (the operators' timings)", "ops");
    for (size_t i = 0; i < OPP_NCURVES; i++)
        if (read_curve(ops, opp_curves[i].name, (opp_curve *)((char *)p + opp_curves[i].off), path, err, errlen))
            return -1;
    return read_grid(ops, "attn_decode", &p->attn_decode, path, err, errlen);
}

/* *foreign: set when the file is JSON but not a profile (opp_find skips those). */
static int load(opp_profile *p, const char *path, int *foreign, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    *foreign = 0;
    char *text = file_read_all(path, 64u << 20, NULL, err, errlen);
    if (!text) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        int line = 1;
        for (const char *q = text; end && q < end && *q; q++) line += *q == '\n';
        snprintf(err, errlen, "%s:%d: not a JSON object", path, line);
    } else if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, OPP_FORMAT)) {
        bad(err, errlen, path, "not an operator profile (want \"format\": \"" OPP_FORMAT "\")", NULL);
        *foreign = 1;
    } else {
        rc = parse(p, root, path, err, errlen);
    }
    cJSON_Delete(root);
    free(text);
    if (rc < 0) memset(p, 0, sizeof *p);
    return rc;
}

int opp_load(opp_profile *p, const char *path, char *err, size_t errlen) {
    int foreign;
    return load(p, path, &foreign, err, errlen);
}

static void put_curve(FILE *f, const char *name, const char *x, const opp_curve *c, int *first) {
    if (c->n <= 0) return;
    fprintf(f, "%s\n    \"%s\": {\"x\": \"%s\", \"points\": [", *first ? "" : ",", name, x);
    for (int i = 0; i < c->n; i++) fprintf(f, "%s[%.10g, %.4f]", i ? ", " : "", c->x[i], c->us[i]);
    fputs("]}", f);
    *first = 0;
}

int opp_save(const opp_profile *p, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "w");
    if (!f) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    cJSON *s = cJSON_CreateString(p->gpu), *m = cJSON_CreateString(p->model);   /* escapes the names */
    char *gs = cJSON_PrintUnformatted(s), *ms = cJSON_PrintUnformatted(m);
    fprintf(f, "{\"format\": \"%s\", \"version\": 1, \"gpu\": %s, \"model\": %s, \"tp\": %d, \"block_size\": %d,\n"
            " \"shape\": {", OPP_FORMAT, gs ? gs : "\"?\"", ms ? ms : "\"?\"", p->tp, p->block_size);
    free(gs); free(ms); cJSON_Delete(s); cJSON_Delete(m);
    for (size_t i = 0; i < OPP_NSHAPE; i++)
        fprintf(f, "%s\"%s\": %d", i ? ", " : "", opp_shape[i].key, *(const int *)((const char *)p + opp_shape[i].off));
    fprintf(f, "},\n \"cpu\": {\"step_overhead_us\": %.3f, \"per_seq_us\": %.4f, \"gpu_floor_us\": %.3f, "
            "\"post_step_us\": %.3f, \"post_per_seq_us\": %.4f",
            p->step_overhead_us, p->per_seq_us, p->gpu_floor_us, p->post_step_us, p->post_per_seq_us);
    if (p->decode_fit)
        fprintf(f, ", \"decode_step_us\": %.3f, \"decode_per_seq_us\": %.4f", p->decode_step_us, p->decode_per_seq_us);
    fprintf(f, "},\n \"ops\": {");
    int first = 1;
    for (size_t i = 0; i < OPP_NCURVES; i++)
        put_curve(f, opp_curves[i].name, opp_curves[i].x, (const opp_curve *)((const char *)p + opp_curves[i].off), &first);
    const opp_grid *g = &p->attn_decode;
    if (g->nx > 0 && g->ny > 0) {
        fprintf(f, "%s\n    \"attn_decode\": {\"x\": \"batch\", \"y\": \"context\", \"xs\": [", first ? "" : ",");
        for (int i = 0; i < g->nx; i++) fprintf(f, "%s%.10g", i ? ", " : "", g->x[i]);
        fputs("], \"ys\": [", f);
        for (int j = 0; j < g->ny; j++) fprintf(f, "%s%.10g", j ? ", " : "", g->y[j]);
        fputs("], \"us\": [", f);
        for (int i = 0; i < g->nx; i++) {
            fprintf(f, "%s[", i ? ", " : "");
            for (int j = 0; j < g->ny; j++) fprintf(f, "%s%.4f", j ? ", " : "", g->us[i][j]);
            fputc(']', f);
        }
        fputs("]}", f);
    }
    fputs("\n }\n}\n", f);
    if (ferror(f) | (fclose(f) != 0)) { snprintf(err, errlen, "%s: write failed", path); return -1; }
    return 0;
}

/* ---- finding a profile ---------------------------------------------------------- */
/* "H100-SXM" -> "h100": the GPU's family, which the CUDA device name contains */
static void gpu_key(char *dst, size_t n, const char *name) {
    size_t j = 0;
    for (; *name && *name != '-' && *name != ' ' && *name != '(' && j + 1 < n; name++)
        dst[j++] = (char)tolower((unsigned char)*name);
    dst[j] = '\0';
}

static int lower_contains(const char *hay, const char *needle) {
    char h[128];
    size_t j = 0;
    for (; *hay && j + 1 < sizeof h; hay++) h[j++] = (char)tolower((unsigned char)*hay);
    h[j] = '\0';
    return *needle && strstr(h, needle) != NULL;
}

static int scan(opp_profile *p, const char *dir, const char *key, const mc_config *c, int tp, int depth,
                char *path_out, size_t path_len, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth == 0) found = scan(p, path, key, c, tp, 1, path_out, path_len, err, errlen);
            continue;
        }
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json")) continue;
        int foreign;
        if (load(p, path, &foreign, err, errlen) < 0) {
            if (foreign) continue;                /* some other JSON file */
            found = -1;
            break;
        }
        if (lower_contains(p->gpu, key) && opp_matches(p, c, tp)) {
            found = 1;
            if (path_out) snprintf(path_out, path_len, "%s", path);
        }
    }
    closedir(d);
    if (found <= 0) memset(p, 0, sizeof *p);
    return found;
}

int opp_find(opp_profile *p, const char *dir, const char *gpu, const mc_config *c, int tp,
             char *path_out, size_t path_len, char *err, size_t errlen) {
    char key[64];
    gpu_key(key, sizeof key, gpu ? gpu : "");
    memset(p, 0, sizeof *p);
    if (!*key) return 0;
    return scan(p, dir, key, c, tp, 0, path_out, path_len, err, errlen);
}

int opp_resolve(opp_profile *p, const char *spec, const char *dir, const char *gpu, const mc_config *c, int tp,
                char *path_out, size_t path_len, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    if (spec && !strcmp(spec, "none")) {
        if (path_out) snprintf(path_out, path_len, "roofline (--op-profile none)");
        return 0;
    }
    if (!spec || !strcmp(spec, "auto")) {
        int found = opp_find(p, dir, gpu, c, tp, path_out, path_len, err, errlen);
        if (found == 0 && path_out)
            snprintf(path_out, path_len, "roofline (no operator profile of %s for %s at TP %d in %s/)", gpu ? gpu : "?",
                     c->name, tp, dir);
        return found;
    }
    if (opp_load(p, spec, err, errlen) < 0) return -1;
    if (!opp_matches(p, c, tp)) {
        snprintf(err, errlen, "%s: measured for %s at TP %d, not %s's shape at TP %d", spec, p->model, p->tp, c->name, tp);
        memset(p, 0, sizeof *p);
        return -1;
    }
    if (path_out) snprintf(path_out, path_len, "%s", spec);
    return 1;
}
