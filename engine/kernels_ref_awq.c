/* kernels_ref_awq: plain-C references of the 4-bit AWQ launchers
 * (engine/awq.h), read through the tile layout's accessors (awq_layout.c),
 * not through the kernels' fragment arithmetic.  Host memory only. */
#include "engine/kernels_ref.h"
#include "engine/awq.h"
#include <stdlib.h>

void kref_awq_dequant(float *w, const uint32_t *qw, const uint16_t *scales, const uint32_t *zeros, int K, int N,
                      int G) {
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int q = awq_tile_q(qw, K, k, n), z = awq_tile_z(zeros, K, G, k, n);
            float s = awq_h2f(awq_tile_s(scales, K, G, k, n));
            w[(size_t)n * K + k] = kref_round_bf((float)(q - z) * s);
        }
}

void kref_awq_gemm(float *y, const float *x, const uint32_t *qw, const uint16_t *scales, const uint32_t *zeros,
                   int T, int K, int N, int G) {
    double *acc = malloc(sizeof(double) * (size_t)T);
    if (!acc) return;
    for (int n = 0; n < N; n++) {
        for (int t = 0; t < T; t++) acc[t] = 0;
        for (int k0 = 0; k0 < K; k0 += G) {
            double s = awq_h2f(awq_tile_s(scales, K, G, k0, n));
            int z = awq_tile_z(zeros, K, G, k0, n);
            for (int t = 0; t < T; t++) {
                double g = 0;                     /* the group's exact integer-weight sum, then its scale */
                for (int k = k0; k < k0 + G; k++) g += (double)x[(size_t)t * K + k] * (awq_tile_q(qw, K, k, n) - z);
                acc[t] += s * g;
            }
        }
        for (int t = 0; t < T; t++) y[(size_t)t * N + n] = kref_round_bf((float)acc[t]);
    }
    free(acc);
}
