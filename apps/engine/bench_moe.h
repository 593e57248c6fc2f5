/* bench_moe: engine/bench --moe-layer: a mixture-of-experts layer of a config
 * alone (router, routing, permutation, the experts' grouped GEMMs, combine)
 * at given token counts, each GEMM path (grouped mma.sync kernels, cuBLAS
 * grouped GEMM), with tokens routed uniformly and through a dummy router;
 * the routing can be saved for tests/gpu/bench_moe_torch.py, which times
 * torch._grouped_mm on the same shapes and routing.  A front end: prints. */
#ifndef APPS_ENGINE_BENCH_MOE_H
#define APPS_ENGINE_BENCH_MOE_H
#include <stdio.h>
#include "sim/model_config.h"

/* spec: token counts "8192,256,64".  Returns 0, or 1 after printing an error. */
int bench_moe_layer(const mc_config *c, const char *spec, double peak_tflops, double peak_gbps,
                    const char *save_routing, FILE *js);
#endif
