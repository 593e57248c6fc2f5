/* safetensors: a reader for the safetensors format (8-byte little-endian
 * header length, a JSON header naming each tensor's dtype, shape and byte
 * range, then the raw data).  Files are mapped read-only; every offset and
 * size in the header is checked against the file before a tensor is exposed,
 * so a truncated or lying file is an error, never an out-of-bounds read. */
#ifndef ENGINE_SAFETENSORS_H
#define ENGINE_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

typedef enum { ST_BOOL, ST_U8, ST_I8, ST_F8_E4M3, ST_F8_E5M2, ST_I16, ST_U16, ST_F16, ST_BF16,
               ST_I32, ST_U32, ST_F32, ST_I64, ST_U64, ST_F64, ST_NDTYPES } st_dtype;

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u << 20)     /* the format's own limit on the JSON header */

typedef struct st_tensor {
    char     *name;
    st_dtype  dtype;
    int       ndim;
    int64_t   shape[ST_MAX_DIMS];
    int64_t   numel;
    uint64_t  nbytes;
    const void *data;                  /* inside the mapped file, nbytes long */
} st_tensor;

typedef struct st_file {
    char       path[512];
    const unsigned char *base;         /* whole file image */
    size_t     size;
    int        mapped;                 /* base came from mmap (st_open) */
    int        n;                      /* tensors */
    st_tensor *t;                      /* (n,) in header order */
} st_file;

/* Opens and maps `path`, parses and checks the header.  -1 and a message
 * naming the file and the tensor on error (*f is then empty). */
int  st_open(st_file *f, const char *path, char *err, size_t errlen);
/* Same over a file image in memory (borrowed, must outlive *f); `origin` names it. */
int  st_open_mem(st_file *f, const void *buf, size_t len, const char *origin, char *err, size_t errlen);
void st_close(st_file *f);
/* The tensor called `name`, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_dtype_name(st_dtype d);
int  st_dtype_size(st_dtype d);
/* IEEE half bits -> float (exact; subnormals, infinities and NaNs kept). */
float st_half_to_float(uint16_t h);
/* Converts a BF16, F16 or F32 tensor to bf16 bits into out (numel,);
 * -1 with a message for other dtypes. */
int  st_to_bf16(const st_tensor *t, uint16_t *out, char *err, size_t errlen);
/* The same for the n elements from element `first` (row-major order) into
 * out (n,): a slice reads only its own bytes of the mapped file (tensor
 * parallelism loads each rank's shard this way, engine/tp_shard.h). */
int  st_range_to_bf16(const st_tensor *t, int64_t first, int64_t n, uint16_t *out, char *err, size_t errlen);
#endif
