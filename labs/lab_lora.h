/* lab_lora: the classroom lab on serving LoRA fine-tunes (labs/lora): a
 * merged model (the adapter folded into the weights) against runtime LoRA
 * (one base model, adapters in GPU slots), in simulation: the KV memory the
 * slots take (the planner), throughput and step time (the cost model's LoRA
 * term, sim/cost_lora.h), the scheduler's max_loras limit, and the memory of
 * N merged copies.  See labs/README.md. */
#ifndef LAB_LORA_H
#define LAB_LORA_H
#include "labs/lab.h"

extern const lab_def lab_lora;
#endif
