/* lab_sharing: the classroom lab on sharing KV blocks (labs/sharing):
 * parallel sampling and beam search with copy-on-write, the memory saved
 * against no sharing as n and the beam width grow (the vLLM paper's
 * Figure 15).  See labs/README.md. */
#ifndef LAB_SHARING_H
#define LAB_SHARING_H
#include "labs/lab.h"

extern const lab_def lab_sharing;
#endif
