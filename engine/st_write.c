/* st_write: see st_write.h.  The header is built with cJSON; offsets run in
 * the order the tensors are given.  Touches only the file it writes. */
#include "engine/st_write.h"
#include "engine/kernels_ref.h"
#include "base/errbuf.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* float -> fp16 bits, round to nearest even; overflow gives inf, NaN stays NaN
 * (subnormals through the FPU's own rounding: add a magic number) */
static uint16_t float_to_half(float f) {
    uint32_t x, sign;
    memcpy(&x, &f, 4);
    sign = x & 0x80000000u;
    x ^= sign;
    uint16_t o;
    if (x >= 0x47800000u) o = x > 0x7f800000u ? 0x7e00 : 0x7c00;
    else if (x < 0x38800000u) {
        uint32_t dm = (uint32_t)((127 - 15) + (23 - 10) + 1) << 23, r;
        float magic, v;
        memcpy(&magic, &dm, 4);
        memcpy(&v, &x, 4);
        v += magic;
        memcpy(&r, &v, 4);
        o = (uint16_t)(r - dm);
    } else {
        uint32_t odd = (x >> 13) & 1u;
        x += ((uint32_t)(15 - 127) << 23) + 0xfffu + odd;
        o = (uint16_t)(x >> 13);
    }
    return (uint16_t)(o | (sign >> 16));
}

int st_to_f32(const st_tensor *t, float *out, char *err, size_t errlen) {
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        uint16_t h;
        switch (t->dtype) {
        case ST_BF16: memcpy(&h, p + 2 * i, 2); out[i] = kref_bf2f(h); break;
        case ST_F16: memcpy(&h, p + 2 * i, 2); out[i] = st_half_to_float(h); break;
        case ST_F32: memcpy(&out[i], p + 4 * i, 4); break;
        default:
            return errbuf_fail(err, errlen, "tensor '%s': dtype %s is not a float type (bf16, fp16, fp32)", t->name,
                               st_dtype_name(t->dtype));
        }
    }
    return 0;
}

int st_from_f32(st_dtype d, const float *x, int64_t n, void *out) {
    unsigned char *p = out;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        switch (d) {
        case ST_BF16: h = kref_f2bf(x[i]); memcpy(p + 2 * i, &h, 2); break;
        case ST_F16: h = float_to_half(x[i]); memcpy(p + 2 * i, &h, 2); break;
        case ST_F32: memcpy(p + 4 * i, &x[i], 4); break;
        default: return -1;
        }
    }
    return 0;
}

/* the header JSON of the n tensors, data offsets in order; bytes of each in nbytes */
static char *header_json(const st_wtensor *t, int n, uint64_t *nbytes, char *err, size_t errlen) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS || st_dtype_size(t[i].dtype) <= 0 || !t[i].name ||
            cJSON_GetObjectItemCaseSensitive(root, t[i].name)) {
            cJSON_Delete(root);
            errbuf_fail(err, errlen, "tensor %d ('%.200s'): bad dtype, shape or a name given twice", i,
                        t[i].name ? t[i].name : "?");
            return NULL;
        }
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name), *sh = cJSON_AddArrayToObject(e, "shape");
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(t[i].dtype));
        uint64_t b = (uint64_t)st_dtype_size(t[i].dtype);
        for (int k = 0; k < t[i].ndim; k++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[k]));
            b *= (uint64_t)t[i].shape[k];
        }
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + b)));
        nbytes[i] = b;
        off += b;
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!txt) errbuf_fail(err, errlen, "out of memory");
    return txt;
}

int st_writer_open(st_writer *w, const char *path, const st_wtensor *t, int n, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    snprintf(w->path, sizeof w->path, "%s", path);
    w->nbytes = calloc((size_t)n + 1, sizeof *w->nbytes);
    if (!w->nbytes) return errbuf_fail(err, errlen, "out of memory");
    char *h = header_json(t, n, w->nbytes, err, errlen);
    if (!h) { free(w->nbytes); w->nbytes = NULL; return -1; }
    size_t len = strlen(h), padded = (len + 7) / 8 * 8;
    uint64_t hl = padded;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(hl >> (8 * i));
    w->f = fopen(path, "wb");
    int ok = w->f && fwrite(le, 1, 8, w->f) == 8 && fwrite(h, 1, len, w->f) == len;
    for (size_t i = len; ok && i < padded; i++) ok = fputc(' ', w->f) != EOF;
    free(h);
    if (!ok) {
        st_writer_abort(w);
        return errbuf_fail(err, errlen, "%s: cannot write the header", path);
    }
    w->n = n;
    return 0;
}

int st_writer_put(st_writer *w, const void *data, uint64_t nbytes, char *err, size_t errlen) {
    if (w->next >= w->n || nbytes != w->nbytes[w->next])
        return errbuf_fail(err, errlen, "%s: tensor %d given %llu bytes, its header says %llu", w->path, w->next,
                           (unsigned long long)nbytes, w->next < w->n ? (unsigned long long)w->nbytes[w->next] : 0ull);
    if (nbytes && fwrite(data, 1, nbytes, w->f) != nbytes)
        return errbuf_fail(err, errlen, "%s: write error (disk full?)", w->path);
    w->next++;
    return 0;
}

int st_writer_close(st_writer *w, char *err, size_t errlen) {
    int rc = 0;
    if (w->next != w->n) rc = errbuf_fail(err, errlen, "%s: %d of %d tensors written", w->path, w->next, w->n);
    if (w->f && fclose(w->f) && !rc) rc = errbuf_fail(err, errlen, "%s: write error on close", w->path);
    w->f = NULL;
    free(w->nbytes);
    w->nbytes = NULL;
    if (rc) unlink(w->path);
    return rc;
}

void st_writer_abort(st_writer *w) {
    if (w->f) {                                     /* only a file this writer created */
        fclose(w->f);
        unlink(w->path);
    }
    w->f = NULL;
    free(w->nbytes);
    w->nbytes = NULL;
}
