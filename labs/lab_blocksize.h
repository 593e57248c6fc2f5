/* lab_blocksize: the classroom lab on the block size (labs/blocksize):
 * internal fragmentation against kernel work per block, and why vLLM picked
 * 16.  See labs/README.md. */
#ifndef LAB_BLOCKSIZE_H
#define LAB_BLOCKSIZE_H
#include "labs/lab.h"

extern const lab_def lab_blocksize;
#endif
