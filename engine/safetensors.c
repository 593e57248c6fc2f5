/* safetensors: see safetensors.h.  Touches only the file it is given (read,
 * mapped read-only).  The JSON header is parsed with cJSON; every number in
 * it is checked to be a non-negative integer before it is used, sizes are
 * multiplied with overflow checks, and byte ranges must lie in the file. */
#include "engine/safetensors.h"
#include "engine/kernels_ref.h"
#include "base/errbuf.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *name; int size; } dtypes[ST_NDTYPES] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2},
    {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"I64", 8}, {"U64", 8}, {"F64", 8}};

const char *st_dtype_name(st_dtype d) { return (unsigned)d < ST_NDTYPES ? dtypes[d].name : "?"; }
int st_dtype_size(st_dtype d) { return (unsigned)d < ST_NDTYPES ? dtypes[d].size : 0; }

/* a JSON number that is an integer in [0, 2^53) -> *v */
static int json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(uint64_t)d) return -1;
    *v = (uint64_t)d;
    return 0;
}

/* fills one tensor from its header entry; data_len is the data section size */
static int parse_tensor(st_tensor *t, const cJSON *e, const unsigned char *data, uint64_t data_len,
                        const char *origin, char *err, size_t errlen) {
    const char *nm = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return errbuf_fail(err, errlen, "%s: tensor '%.200s': needs dtype, shape and data_offsets", origin, nm);
    t->dtype = ST_NDTYPES;
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(dt->valuestring, dtypes[i].name) == 0) t->dtype = (st_dtype)i;
    if (t->dtype == ST_NDTYPES)
        return errbuf_fail(err, errlen, "%s: tensor '%.200s': unknown dtype '%.40s'", origin, nm, dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return errbuf_fail(err, errlen, "%s: tensor '%.200s': %d dimensions (at most %d)", origin, nm, nd, ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        uint64_t d;
        if (json_uint(cJSON_GetArrayItem(sh, i), &d) || d > (1ull << 40))
            return errbuf_fail(err, errlen, "%s: tensor '%.200s': bad shape[%d]", origin, nm, i);
        t->shape[i] = (int64_t)d;
        if (d && numel > (UINT64_MAX >> 4) / d)
            return errbuf_fail(err, errlen, "%s: tensor '%.200s': shape too large", origin, nm);
        numel *= d;
    }
    uint64_t b, en;
    if (cJSON_GetArraySize(off) != 2 || json_uint(cJSON_GetArrayItem(off, 0), &b) ||
        json_uint(cJSON_GetArrayItem(off, 1), &en))
        return errbuf_fail(err, errlen, "%s: tensor '%.200s': data_offsets must be two integers", origin, nm);
    if (b > en || en > data_len)
        return errbuf_fail(err, errlen, "%s: tensor '%.200s': data_offsets [%llu, %llu) outside the %llu data bytes "
                    "(truncated file?)", origin, nm, (unsigned long long)b, (unsigned long long)en,
                    (unsigned long long)data_len);
    if (numel * (uint64_t)dtypes[t->dtype].size != en - b)
        return errbuf_fail(err, errlen, "%s: tensor '%.200s': %llu bytes for %llu %s elements", origin, nm,
                    (unsigned long long)(en - b), (unsigned long long)numel, dtypes[t->dtype].name);
    t->numel = (int64_t)numel;
    t->nbytes = en - b;
    t->data = data + b;
    t->name = strdup(nm);
    return t->name ? 0 : errbuf_fail(err, errlen, "%s: out of memory", origin);
}

int st_open_mem(st_file *f, const void *buf, size_t len, const char *origin, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", origin);
    f->base = buf;
    f->size = len;
    const unsigned char *p = buf;
    if (len < 8) return errbuf_fail(err, errlen, "%s: %zu bytes, too short for a safetensors header", origin, len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | p[i];
    if (hl > ST_MAX_HEADER || hl > len - 8)
        return errbuf_fail(err, errlen, "%s: header length %llu does not fit the %zu-byte file (truncated?)",
                    origin, (unsigned long long)hl, len);
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hl);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return errbuf_fail(err, errlen, "%s: header is not a JSON object", origin);
    }
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string ? e->string : "", "__metadata__") != 0) n++;
    f->t = calloc(n ? (size_t)n : 1, sizeof *f->t);
    if (!f->t) { cJSON_Delete(root); return errbuf_fail(err, errlen, "%s: out of memory", origin); }
    const unsigned char *data = p + 8 + hl;
    uint64_t data_len = len - 8 - hl;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) continue;
        if (strcmp(e->string, "__metadata__") == 0) continue;
        if (parse_tensor(&f->t[f->n], e, data, data_len, origin, err, errlen)) {
            cJSON_Delete(root);
            st_close(f);
            return -1;
        }
        f->n++;
    }
    cJSON_Delete(root);
    return 0;
}

int st_open(st_file *f, const char *path, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errbuf_fail(err, errlen, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return errbuf_fail(err, errlen, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    void *m = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED)
        return len ? errbuf_fail(err, errlen, "%s: mmap: %s", path, strerror(errno))
                   : errbuf_fail(err, errlen, "%s: empty file", path);
    if (st_open_mem(f, m, len, path, err, errlen)) {
        munmap(m, len);
        return -1;
    }
    f->mapped = 1;
    return 0;
}

void st_close(st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    if (f->mapped && f->base) munmap((void *)f->base, f->size);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

/* IEEE half bits -> float */
float st_half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0x1f) u = s | 0x7f800000u | (m << 13);
    else if (e) u = s | ((e + 112) << 23) | (m << 13);
    else if (!m) u = s;
    else {                                          /* subnormal: normalise */
        e = 113;
        while (!(m & 0x400)) { m <<= 1; e--; }
        u = s | (e << 23) | ((m & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int st_range_to_bf16(const st_tensor *t, int64_t first, int64_t n, uint16_t *out, char *err, size_t errlen) {
    if (first < 0 || n < 0 || first > t->numel || n > t->numel - first)
        return errbuf_fail(err, errlen, "tensor '%s': elements [%lld, %lld) outside its %lld", t->name,
                           (long long)first, (long long)(first + n), (long long)t->numel);
    const unsigned char *p = (const unsigned char *)t->data + (size_t)first * (size_t)st_dtype_size(t->dtype);
    switch (t->dtype) {
    case ST_BF16: memcpy(out, p, (size_t)n * 2); return 0;
    case ST_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = kref_f2bf(st_half_to_float(h));
        }
        return 0;
    case ST_F32:
        for (int64_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, p + 4 * i, 4);
            out[i] = kref_f2bf(v);
        }
        return 0;
    default:
        return errbuf_fail(err, errlen, "tensor '%s': dtype %s cannot be loaded as bf16", t->name,
                    st_dtype_name(t->dtype));
    }
}

int st_to_bf16(const st_tensor *t, uint16_t *out, char *err, size_t errlen) {
    return st_range_to_bf16(t, 0, t->numel, out, err, errlen);
}
