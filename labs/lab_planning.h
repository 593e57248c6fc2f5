/* lab_planning: the classroom lab on the memory planner (labs/planning):
 * a 12 GB card, Qwen2.5-14B-AWQ that does not fit and Qwen2.5-7B-AWQ that
 * does, max-model-len against gpu-memory-utilization.  See labs/README.md. */
#ifndef LAB_PLANNING_H
#define LAB_PLANNING_H
#include "labs/lab.h"

extern const lab_def lab_planning;
#endif
