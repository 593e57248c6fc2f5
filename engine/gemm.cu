/* gemm.cu: the one GEMM of the engine, through cuBLAS: bf16 inputs, fp32
 * accumulation, bf16 or fp32 output, row-major shapes as the weights are
 * stored by transformers (out_features, in_features). */
#include <cublas_v2.h>
#include "engine/kernels.h"

extern "C" int k_gemm(void *cublas_handle, void *y, int y_fp32, const k_bf16 *x, const k_bf16 *w,
                      int T, int N, int K, cudaStream_t s) {
    if (!cublas_handle || T < 0 || N <= 0 || K <= 0) return -1;
    if (T == 0) return 0;
    cublasHandle_t h = (cublasHandle_t)cublas_handle;
    if (cublasSetStream(h, s) != CUBLAS_STATUS_SUCCESS) return -1;
    const float one = 1.0f, zero = 0.0f;
    /* row-major y (T,N) = x (T,K) @ w(N,K)^T  is column-major  y^T (N,T) = w^T' ... :
     * w read as column-major (K,N) and transposed, x as column-major (K,T). */
    cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, w, CUDA_R_16BF, K,
                                     x, CUDA_R_16BF, K, &zero, y, y_fp32 ? CUDA_R_32F : CUDA_R_16BF, N,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}
