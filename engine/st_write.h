/* st_write: writing safetensors files (the format engine/safetensors.h
 * reads), and float conversions of their tensors both ways.  A writer lays
 * out the header from every tensor's name, dtype and shape first (offsets in
 * the order given, the header padded with spaces to 8 bytes, as the Rust
 * writer does), then takes the tensors' bytes one after the other.  Writes
 * only the file it is given; never prints. */
#ifndef ENGINE_ST_WRITE_H
#define ENGINE_ST_WRITE_H
#include <stdint.h>
#include <stdio.h>
#include "engine/safetensors.h"

typedef struct st_wtensor {       /* one tensor to write */
    const char *name;
    st_dtype    dtype;
    int         ndim;
    int64_t     shape[ST_MAX_DIMS];
} st_wtensor;

typedef struct st_writer {
    FILE     *f;
    char      path[512];
    int       n, next;            /* tensors, and the next one put expects */
    uint64_t *nbytes;             /* (n,) each tensor's bytes */
} st_writer;

/* Creates path and writes the header of the n tensors t (copied), with
 * __metadata__ {"format": "pt"} (transformers wants it).  -1 and a message. */
int  st_writer_open(st_writer *w, const char *path, const st_wtensor *t, int n, char *err, size_t errlen);
/* Appends tensor w->next's data (exactly its bytes).  -1 on a write error. */
int  st_writer_put(st_writer *w, const void *data, uint64_t nbytes, char *err, size_t errlen);
/* Checks every tensor was put, closes.  -1 and a message (the file is then incomplete). */
int  st_writer_close(st_writer *w, char *err, size_t errlen);
/* Abandons a writer (after an error) and removes its file. */
void st_writer_abort(st_writer *w);
/* Tensor t (BF16, F16 or F32) as floats: out (numel,).  -1 for other dtypes. */
int  st_to_f32(const st_tensor *t, float *out, char *err, size_t errlen);
/* n floats to dtype d (BF16, F16 or F32; rounded to nearest even) into out
 * (n * size of d bytes).  -1 for other dtypes. */
int  st_from_f32(st_dtype d, const float *x, int64_t n, void *out);
#endif
