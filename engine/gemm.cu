/* gemm.cu: the one GEMM of the engine, through cuBLAS: bf16 inputs, fp32
 * accumulation, bf16 or fp32 output, row-major shapes as the weights are
 * stored by transformers (out_features, in_features). */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include "engine/kernels.h"

static char last_error[256];
extern "C" const char *k_last_error(void) { return last_error; }

static cublasStatus_t gemm(cublasHandle_t h, void *y, int y_fp32, const k_bf16 *x, const k_bf16 *w,
                           int T, int N, int K, int ldc) {
    const float one = 1.0f, zero = 0.0f;
    /* row-major y (T,N) = x (T,K) @ w (N,K)^T is, column-major, y^T (N,T) = w^T' x^T':
     * w read as column-major (K,N) and transposed, x as column-major (K,T). */
    return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K,
                        &zero, y, y_fp32 ? CUDA_R_32F : CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
}

extern "C" int k_gemm(void *cublas_handle, void *y, int y_fp32, const k_bf16 *x, const k_bf16 *w,
                      int T, int N, int K, cudaStream_t s) {
    if (!cublas_handle || T < 0 || N <= 0 || K <= 0) return -1;
    if (T == 0) return 0;
    cublasHandle_t h = (cublasHandle_t)cublas_handle;
    if (cublasSetStream(h, s) != CUBLAS_STATUS_SUCCESS) return -1;
    cublasStatus_t st = gemm(h, y, y_fp32, x, w, T, N, K, N);
    /* a failure here is often a sticky error of an earlier kernel: say which */
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(last_error, sizeof last_error, "cublasGemmEx status %d (%s) for T=%d N=%d K=%d", (int)st,
                 cublasGetStatusString(st), T, N, K);
        return -1;
    }
    return 0;
}
