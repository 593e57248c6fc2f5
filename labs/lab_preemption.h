/* lab_preemption: the classroom lab on running out of KV blocks
 * (labs/preemption): preemption by recompute against swap as the block size
 * and the swap space change (the vLLM paper's Figure 19), and what
 * preemption costs the requests it hits.  See labs/README.md. */
#ifndef LAB_PREEMPTION_H
#define LAB_PREEMPTION_H
#include "labs/lab.h"

extern const lab_def lab_preemption;
#endif
