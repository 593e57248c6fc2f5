/* lab_paging: the classroom lab on paging against reservation (labs/paging):
 * the vLLM paper's Figure 2, requests at once, sustainable rate.  See
 * labs/README.md. */
#ifndef LAB_PAGING_H
#define LAB_PAGING_H
#include "labs/lab.h"

extern const lab_def lab_paging;
#endif
