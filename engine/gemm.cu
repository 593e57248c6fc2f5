/* gemm.cu: the one GEMM of the engine, through cuBLAS: bf16 inputs, fp32
 * accumulation, bf16 or fp32 output, row-major shapes as the weights are
 * stored by transformers (out_features, in_features). */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include "engine/kernels.h"

static char last_error[256];
extern "C" const char *k_last_error(void) { return last_error; }
extern "C" void k_set_last_error(const char *msg) { snprintf(last_error, sizeof last_error, "%s", msg); }

static cublasStatus_t gemm(cublasHandle_t h, void *y, int y_fp32, const k_bf16 *x, const k_bf16 *w,
                           int T, int N, int K, int ldc) {
    const float one = 1.0f, zero = 0.0f;
    /* row-major y (T,N) = x (T,K) @ w (N,K)^T is, column-major, y^T (N,T) = w^T' x^T':
     * w read as column-major (K,N) and transposed, x as column-major (K,T). */
    return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, w, CUDA_R_16BF, K, x, CUDA_R_16BF, K,
                        &zero, y, y_fp32 ? CUDA_R_32F : CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
}

/* Sets the handle's stream when it is another: cublasSetStream also resets
 * the handle's workspace to cuBLAS's pool, and a workspace given with
 * cublasSetWorkspace (CUDA graphs, engine/model.c) must stay. */
static int use_stream(cublasHandle_t h, cudaStream_t s) {
    cudaStream_t cur;
    if (cublasGetStream(h, &cur) == CUBLAS_STATUS_SUCCESS && cur == s) return 0;
    return cublasSetStream(h, s) == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}

extern "C" int k_gemm(void *cublas_handle, void *y, int y_fp32, const k_bf16 *x, const k_bf16 *w,
                      int T, int N, int K, cudaStream_t s) {
    if (!cublas_handle || T < 0 || N <= 0 || K <= 0) return -1;
    if (T == 0) return 0;
    cublasHandle_t h = (cublasHandle_t)cublas_handle;
    if (use_stream(h, s)) return -1;
    cublasStatus_t st = gemm(h, y, y_fp32, x, w, T, N, K, N);
    /* a failure here is often a sticky error of an earlier kernel: say which */
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(last_error, sizeof last_error, "cublasGemmEx status %d (%s) for T=%d N=%d K=%d", (int)st,
                 cublasGetStatusString(st), T, N, K);
        return -1;
    }
    return 0;
}

/* cuBLAS grouped GEMM: group g is y_g (m_g, N) = x_g (m_g, K) @ w_g (N, K)^T,
 * column-major y^T (N, m_g) = w_g^T' x_g^T' as in gemm() above.  The
 * problem sizes are host arrays (cuBLAS reads them at the call); the pointer
 * arrays must be device memory, copied here from the pinned host arrays. */
extern "C" int k_gemm_grouped(void *cublas_handle, int G, const int *m, void *const *x_ptrs, void *const *w_ptrs,
                              void *const *y_ptrs, void **dev_ptrs, int N, int K, cudaStream_t s) {
    enum { MAXG = 1024 };
    if (!cublas_handle || G < 0 || G > MAXG || N <= 0 || K <= 0) return -1;
    if (G == 0) return 0;
    static cublasOperation_t ta[MAXG], tb[MAXG];
    static int nn[MAXG], kk[MAXG], lda[MAXG], ldc[MAXG], gs[MAXG];
    static float alpha[MAXG], beta[MAXG];
    for (int g = 0; g < G; g++) {
        ta[g] = CUBLAS_OP_T; tb[g] = CUBLAS_OP_N;
        nn[g] = N; kk[g] = K; lda[g] = K; ldc[g] = N; gs[g] = 1;
        alpha[g] = 1.0f; beta[g] = 0.0f;
    }
    cublasHandle_t h = (cublasHandle_t)cublas_handle;
    if (use_stream(h, s)) return -1;
    /* device pointer arrays: w (A operand), x (B), y (C), G each */
    if (cudaMemcpyAsync(dev_ptrs, w_ptrs, sizeof(void *) * G, cudaMemcpyHostToDevice, s) != cudaSuccess ||
        cudaMemcpyAsync(dev_ptrs + G, x_ptrs, sizeof(void *) * G, cudaMemcpyHostToDevice, s) != cudaSuccess ||
        cudaMemcpyAsync(dev_ptrs + 2 * G, y_ptrs, sizeof(void *) * G, cudaMemcpyHostToDevice, s) != cudaSuccess)
        return -1;
    cublasStatus_t st = cublasGemmGroupedBatchedEx(h, ta, tb, nn, m, kk, alpha, (const void *const *)dev_ptrs,
                                                   CUDA_R_16BF, lda, (const void *const *)(dev_ptrs + G), CUDA_R_16BF,
                                                   lda, beta, (void *const *)(dev_ptrs + 2 * G), CUDA_R_16BF, ldc, G,
                                                   gs, CUBLAS_COMPUTE_32F);
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(last_error, sizeof last_error, "cublasGemmGroupedBatchedEx status %d (%s) for G=%d N=%d K=%d",
                 (int)st, cublasGetStatusString(st), G, N, K);
        return -1;
    }
    return 0;
}
