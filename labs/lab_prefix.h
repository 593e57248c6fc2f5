/* lab_prefix: the classroom lab on automatic prefix caching (labs/prefix):
 * one-shot and five-shot prompts that share their examples (the vLLM
 * paper's section 6.4), and the bias experiment's own template.  See
 * labs/README.md. */
#ifndef LAB_PREFIX_H
#define LAB_PREFIX_H
#include "labs/lab.h"

extern const lab_def lab_prefix;
#endif
