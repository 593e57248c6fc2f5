/* bench_awq: engine/bench --awq-gemm: the 4-bit AWQ linears of a config
 * alone (its qkv, o, gate_up and down shapes), at given token counts, against
 * the cuBLAS bf16 GEMM of the same shape: microseconds per call, the bytes of
 * weights read per second against the device's copy bandwidth, and the
 * speedup; one layer's four linears summed.  A front end: prints. */
#ifndef APPS_ENGINE_BENCH_AWQ_H
#define APPS_ENGINE_BENCH_AWQ_H
#include <stdio.h>
#include "sim/model_config.h"

/* spec: token counts "1,8,32,2048".  Returns 0, or 1 after printing an error. */
int bench_awq_gemm(const mc_config *c, const char *spec, FILE *js);
#ifdef PAGESIM_HAVE_CUDA
/* Bytes read + written per second of a 1 GiB device-to-device copy (GB/s, 0 when it
 * cannot run): the achievable bandwidth every engine/bench ceiling is read against. */
double bench_copy_gbps(void);
#endif
#endif
