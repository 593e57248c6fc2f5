/* kernels_ref_lora: see kernels_ref_lora.h.  Written for clarity: one row at
 * a time, sums in the order the kernels add them where it matters (fp32). */
#include "engine/kernels_ref_lora.h"
#include "engine/kernels_ref.h"

void kref_lora_shrink(float *v, const float *x, int x_stride, const float *A, int64_t slot_stride, int RA, int K,
                      int ntiles, const int32_t *tiles, const int32_t *perm) {
    for (int t = 0; t < ntiles; t++) {
        const float *As = A + (int64_t)tiles[3 * t] * slot_stride;
        for (int row = tiles[3 * t + 1]; row < tiles[3 * t + 1] + tiles[3 * t + 2]; row++) {
            const float *xr = x + (int64_t)perm[row] * x_stride;
            for (int c = 0; c < RA; c++) {
                double acc = 0;
                for (int k = 0; k < K; k++) acc += (double)xr[k] * As[(int64_t)c * K + k];
                v[(int64_t)row * RA + c] = (float)acc;
            }
        }
    }
}

void kref_lora_expand(float *y, int y_stride, const float *v, int RA, const float *B, int64_t slot_stride,
                      const float *scale, const k_lora_slices *sl, int ntiles, const int32_t *tiles,
                      const int32_t *perm) {
    int R = sl->R;
    for (int t = 0; t < ntiles; t++) {
        int slot = tiles[3 * t];
        const float *Bs = B + (int64_t)slot * slot_stride;
        for (int row = tiles[3 * t + 1]; row < tiles[3 * t + 1] + tiles[3 * t + 2]; row++) {
            float *yr = y + (int64_t)perm[row] * y_stride;
            for (int j = 0, n = 0; j < sl->S; j++)
                for (; n < sl->end[j]; n++) {
                    double acc = 0;
                    for (int k = 0; k < R; k++) acc += (double)v[(int64_t)row * RA + j * R + k] * Bs[(int64_t)n * R + k];
                    yr[n] = kref_round_bf(yr[n] + scale[slot] * (float)acc);
                }
        }
    }
}

void kref_lora_silu(float *act, const float *gu, int I, const float *v, int RA, const float *B, int64_t slot_stride,
                    const float *scale, int R, int ntiles_all, const int32_t *tiles, const int32_t *perm) {
    for (int t = 0; t < ntiles_all; t++) {
        int slot = tiles[3 * t];
        const float *Bs = slot >= 0 ? B + (int64_t)slot * slot_stride : NULL;
        for (int row = tiles[3 * t + 1]; row < tiles[3 * t + 1] + tiles[3 * t + 2]; row++) {
            int64_t tok = perm[row];
            for (int n = 0; n < I; n++) {
                float g = gu[tok * 2 * I + n], u = gu[tok * 2 * I + I + n];
                if (Bs) {
                    double dg = 0, du = 0;
                    for (int k = 0; k < R; k++) {
                        dg += (double)v[(int64_t)row * RA + k] * Bs[(int64_t)n * R + k];
                        du += (double)v[(int64_t)row * RA + R + k] * Bs[(int64_t)(I + n) * R + k];
                    }
                    g = kref_round_bf(g + scale[slot] * (float)dg);
                    u = kref_round_bf(u + scale[slot] * (float)du);
                }
                act[tok * I + n] = kref_round_bf(kref_round_bf(g / (1.0f + expf(-g))) * u);
            }
        }
    }
}
