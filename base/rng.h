/* rng.h: splitmix64, the one seeded 64-bit generator every layer uses (workload
 * draws, scheduler tie-breaks, mock replies, sampling seeds, lab streams), and
 * its finaliser as a stateless mix.  Header only; callable from CUDA device
 * code too (the sampling kernels' counter-based uniforms).  Cannot fail. */
#ifndef BASE_RNG_H
#define BASE_RNG_H
#include <stdint.h>

#ifdef __CUDACC__
#define RNG_HD __host__ __device__ __forceinline__
#else
#define RNG_HD static inline
#endif

/* splitmix64's finaliser of z + the golden ratio: a strong stateless 64-bit mix. */
RNG_HD uint64_t rng_mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* The next splitmix64 output of the stream *state (advances *state). */
RNG_HD uint64_t rng_splitmix64(uint64_t *state) {
    uint64_t z = *state;
    *state += 0x9e3779b97f4a7c15ull;
    return rng_mix64(z);
}
#endif
