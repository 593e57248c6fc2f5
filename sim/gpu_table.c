/* gpu_table: the GPU table, data/gpus.json (see sim/gpu_table.h).  Reads
 * only that file (or the one cm_gpu_table_path names). */
#include "sim/gpu_table.h"
#include "base/file.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* lower-case, without '-', '_' and ' ': "RTX 4070" == "rtx-4070" == "RTX4070" */
static void norm_name(char *dst, size_t n, const char *src) {
    size_t j = 0;
    for (; *src && j + 1 < n; src++)
        if (*src != '-' && *src != '_' && *src != ' ') dst[j++] = (char)tolower((unsigned char)*src);
    dst[j] = '\0';
}

#define MAX_GPU_BYTES (16.0 * 1024 * 1024 * 1024 * 1024)   /* 16 TiB: past any GPU, within int64 arithmetic */

/* "24GB", "12GiB", "12 G", "16000MiB" -> bytes (GPU "GB" are binary); 0 when
 * not a size, -INFINITY when a size beyond MAX_GPU_BYTES ("1e30GB") */
static double parse_size(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v)) return 0;
    while (*end == ' ') end++;
    char u[8];
    norm_name(u, sizeof u, end);
    double mul = 0;
    if (!strcmp(u, "gb") || !strcmp(u, "gib") || !strcmp(u, "g")) mul = 1024.0 * 1024 * 1024;
    else if (!strcmp(u, "mb") || !strcmp(u, "mib") || !strcmp(u, "m")) mul = 1024.0 * 1024;
    else if (!strcmp(u, "tb") || !strcmp(u, "tib")) mul = 1024.0 * 1024 * 1024 * 1024;
    if (mul > 0 && !(v <= MAX_GPU_BYTES / mul)) return -INFINITY;
    return mul * v;   /* <= 0 for a negative or zero size: the caller rejects it */
}

/* Reads the whole file (at most 16 MiB); NULL when it cannot. */
static char *slurp(const char *path) {
    char e[8];
    return file_read_all(path, 16u << 20, NULL, e, sizeof e);
}

static char table_path[4096];           /* cm_gpu_table_path's; "" = the default search */

void cm_gpu_table_path(const char *path) {
    snprintf(table_path, sizeof table_path, "%s", path ? path : "");
}

/* The table's text (path in path): cm_gpu_table_path's file, else
 * data/gpus.json (from the current directory or the data folder). */
static char *gpus_text(char *path, size_t n) {
    snprintf(path, n, "%s", *table_path ? table_path : "data/gpus.json");
    return slurp(path);
}

/* The table parsed, its "gpus" list in *list; NULL with err. */
static cJSON *load_table(const cJSON **list, char *path, size_t n, char *err, size_t errlen) {
    char *text = gpus_text(path, n);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read the GPU table (set PAGESIM_GPUS, or PAGESIM_DATA / "
                 "--data-dir to the project's data folder)", path);
        return NULL;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    *list = cJSON_GetObjectItemCaseSensitive(root, "gpus");
    if (!root || !cJSON_IsArray(*list)) {
        snprintf(err, errlen, "%s: not a GPU table (want {\"gpus\": [...]})", path);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static int num_field(const cJSON *g, const char *key, double *v, const char *path, int idx,
                     char *err, size_t errlen) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(g, key);
    if (!cJSON_IsNumber(it) || !(it->valuedouble > 0) || !isfinite(it->valuedouble)) {
        snprintf(err, errlen, "%s: gpus[%d]: field '%s' must be a positive number", path, idx, key);
        return -1;
    }
    *v = it->valuedouble;
    return 0;
}

static int gpu_from_json(cm_gpu *g, const cJSON *j, const char *path, int idx, char *err, size_t errlen) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    double mib, bw, tf, link;
    if (!cJSON_IsString(name)) {
        snprintf(err, errlen, "%s: gpus[%d]: missing field 'name'", path, idx);
        return -1;
    }
    if (num_field(j, "mem_mib", &mib, path, idx, err, errlen) ||
        num_field(j, "mem_bw_gbs", &bw, path, idx, err, errlen) ||
        num_field(j, "tflops_16", &tf, path, idx, err, errlen) ||
        num_field(j, "link_gbs", &link, path, idx, err, errlen))
        return -1;
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name->valuestring);
    g->mem_bytes = mib * 1024 * 1024;
    g->mem_bw = bw * 1e9;
    g->flops_16 = tf * 1e12;
    g->link_bw = link * 1e9;
    return 0;
}

static int name_matches(const cJSON *j, const char *want) {
    char a[64];
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (cJSON_IsString(name)) {
        norm_name(a, sizeof a, name->valuestring);
        if (!strcmp(a, want)) return 1;
    }
    const cJSON *al, *aliases = cJSON_GetObjectItemCaseSensitive(j, "aliases");
    cJSON_ArrayForEach(al, aliases) {
        if (!cJSON_IsString(al)) continue;
        norm_name(a, sizeof a, al->valuestring);
        if (!strcmp(a, want)) return 1;
    }
    return 0;
}

int cm_gpu_find(cm_gpu *g, const char *name_or_size, char *err, size_t errlen) {
    char path[4200], want[64];
    int rc = -1;
    cJSON *root = NULL;
    memset(g, 0, sizeof *g);
    if (!name_or_size || !*name_or_size) {
        snprintf(err, errlen, "no GPU given (a name from data/gpus.json or a size like 24GB)");
        return -1;
    }
    const cJSON *list;
    if (!(root = load_table(&list, path, sizeof path, err, errlen))) goto out;
    norm_name(want, sizeof want, name_or_size);
    const cJSON *j;
    int idx = 0;
    cJSON_ArrayForEach(j, list) {
        if (name_matches(j, want)) { rc = gpu_from_json(g, j, path, idx, err, errlen); goto out; }
        idx++;
    }
    /* a size: the known GPU of nearest memory lends its bandwidth and FLOP/s */
    double bytes = parse_size(name_or_size);
    if (isinf(bytes) && bytes < 0) {
        snprintf(err, errlen, "GPU size '%s' is too large (at most 16 TiB)", name_or_size);
        goto out;
    }
    if (bytes > 0) {
        double best = INFINITY;
        cm_gpu cand;
        idx = 0;
        cJSON_ArrayForEach(j, list) {
            if (gpu_from_json(&cand, j, path, idx++, err, errlen) < 0) goto out;
            if (fabs(cand.mem_bytes - bytes) < best) { best = fabs(cand.mem_bytes - bytes); *g = cand; }
        }
        if (isinf(best)) {
            snprintf(err, errlen, "%s: the GPU table is empty", path);
            goto out;
        }
        char like[64];
        snprintf(like, sizeof like, "%s", g->name);
        snprintf(g->name, sizeof g->name, "%.20s(like %.30s)", name_or_size, like);
        g->mem_bytes = bytes;
        rc = 0;
        goto out;
    }
    {   /* unknown: list the names we know */
        size_t off = (size_t)snprintf(err, errlen, "unknown GPU '%s' (not in %s, not a size like "
                                      "24GB); known:", name_or_size, path);
        cJSON_ArrayForEach(j, list) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "name");
            if (cJSON_IsString(n) && off < errlen)
                off += (size_t)snprintf(err + off, errlen - off, " %s", n->valuestring);
        }
        const char *s0 = name_or_size;
        if (isdigit((unsigned char)*s0) || *s0 == '-' || *s0 == '+' || *s0 == '.')
            snprintf(err, errlen, "GPU size '%s' must be a positive size like 24GB or 12GiB", s0);
    }
out:
    cJSON_Delete(root);
    if (rc < 0) memset(g, 0, sizeof *g);
    return rc;
}

/* ---- by CUDA's device name ------------------------------------------------------ */

/* Splits s into lower-case alphanumeric words (at most max of up to 31 chars). */
static int words(const char *s, char w[][32], int max) {
    int n = 0;
    while (*s && n < max) {
        while (*s && !isalnum((unsigned char)*s)) s++;
        int k = 0;
        while (isalnum((unsigned char)*s)) { if (k < 31) w[n][k++] = (char)tolower((unsigned char)*s); s++; }
        if (k) w[n++][k] = 0;
    }
    return n;
}

/* Words of name when every one of them is among the device's words, else 0. */
static int all_words_in(const char *name, char dev[][32], int ndev) {
    char w[8][32];
    int n = words(name, w, 8);
    for (int i = 0; i < n; i++) {
        int hit = 0;
        for (int j = 0; j < ndev && !hit; j++) hit = !strcmp(w[i], dev[j]);
        if (!hit) return 0;
    }
    return n;
}

int cm_gpu_for_device(cm_gpu *g, const char *device_name, double mem_bytes, char *err, size_t errlen) {
    char path[4200], dev[16][32];
    const cJSON *list, *j;
    memset(g, 0, sizeof *g);
    int ndev = words(device_name ? device_name : "", dev, 16);
    cJSON *root = load_table(&list, path, sizeof path, err, errlen);
    if (!root) return -1;
    int best = 0, idx = 0, rc = 0;
    double gap = INFINITY;
    cJSON_ArrayForEach(j, list) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name"), *al;
        int score = cJSON_IsString(nm) ? all_words_in(nm->valuestring, dev, ndev) : 0;
        cJSON_ArrayForEach(al, cJSON_GetObjectItemCaseSensitive(j, "aliases"))
            if (cJSON_IsString(al)) { int s = all_words_in(al->valuestring, dev, ndev); if (s > score) score = s; }
        cm_gpu cand;
        if (score > 0) {
            if (gpu_from_json(&cand, j, path, idx, err, errlen) < 0) { rc = -1; break; }
            double d = fabs(cand.mem_bytes - mem_bytes);
            if (score > best || (score == best && d < gap)) { best = score; gap = d; *g = cand; }
        }
        idx++;
    }
    if (rc == 0 && best == 0) {
        snprintf(err, errlen, "%s: no GPU for the device '%s'", path, device_name ? device_name : "");
        rc = -1;
    }
    if (rc < 0) memset(g, 0, sizeof *g);
    cJSON_Delete(root);
    return rc;
}
