/* eng_gpu: whether this build and this machine can run the CUDA engine
 * (engine.h, eng_gpu_available): compiled in every build, so that a front end
 * or a lab says why --real cannot run on a machine without CUDA. */
#include "engine/engine.h"
#include <stdio.h>
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

int eng_gpu_available(char *why, size_t n) {
#ifdef PAGESIM_HAVE_CUDA
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess || count == 0) {
        snprintf(why, n, "no CUDA GPU is visible here (%s)", rc != cudaSuccess ? cudaGetErrorString(rc) : "0 devices");
        return 0;
    }
    return 1;
#else
    snprintf(why, n, "this build has no CUDA engine (nvcc was not found when it was built)");
    return 0;
#endif
}
