/* gpu_table: the GPUs the cost model and the planner know (cm_gpu_), read
 * from data/gpus.json: by name or alias ("H100", "A100-40GB"), by a memory
 * size ("24GB": the nearest known GPU lends its bandwidth and FLOP/s), or by
 * the name CUDA gives a device ("NVIDIA H100 80GB HBM3"), so the engine's
 * benchmarks and the lab's traces name a GPU the way the simulator does.
 * The one reader of the table; reads only that file. */
#ifndef GPU_TABLE_H
#define GPU_TABLE_H
#include <stddef.h>

typedef struct cm_gpu {
    char   name[64];         /* "H100-SXM", "H200", "A100-40GB", "RTX-4070", ... */
    double mem_bytes;        /* device memory */
    double mem_bw;           /* HBM/GDDR bandwidth, bytes/s */
    double flops_16;         /* dense bf16/fp16 tensor FLOP/s */
    double link_bw;          /* per-GPU all-reduce bandwidth (NVLink/PCIe), bytes/s */
} cm_gpu;

/* Finds a GPU by name (case-insensitive, '-'/' ' ignored: "h100", "A100-40GB")
 * in the table, or builds a generic one from a size like "24GB" / "12GiB".
 * Returns 0, or -1 with the known names in err. */
int  cm_gpu_find(cm_gpu *g, const char *name_or_size, char *err, size_t errlen);
/* The table's GPU for a CUDA device name (cudaDeviceProp.name) of mem_bytes
 * memory: the entry one of whose names (or aliases) has every word among the
 * device name's words, the most words winning, then the nearest memory
 * ("NVIDIA A100-SXM4-80GB" -> A100-80GB, "NVIDIA GeForce RTX 3090" -> none).
 * Returns 0, or -1 with err when the table has no such GPU. */
int  cm_gpu_for_device(cm_gpu *g, const char *device_name, double mem_bytes, char *err, size_t errlen);
/* Reads the table from path from now on (front ends pass $PAGESIM_GPUS);
 * NULL or "" restores the default: data/gpus.json, from the current
 * directory or the data folder (base/file.h: file_set_data_dir).
 * Process-wide; call it before the first lookup. */
void cm_gpu_table_path(const char *path);
#endif
