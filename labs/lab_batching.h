/* lab_batching: the classroom lab on batching (labs/batching): static
 * batching, as a plain generate() loop does it, against continuous
 * batching, in simulation; the seed notebook's expected "2-5x faster than
 * Transformers" against the simulated ratio.  See labs/README.md. */
#ifndef LAB_BATCHING_H
#define LAB_BATCHING_H
#include "labs/lab.h"

extern const lab_def lab_batching;
#endif
