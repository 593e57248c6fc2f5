/* cost_lora: what runtime LoRA adds to a step's time in the cost model.
 * With runtime LoRA every adapted linear of a step runs two small extra
 * kernels over the tokens of the sequences that carry an adapter (Punica's
 * and vLLM's shrink and expand: v = A x, then y += scale * B v):
 *   FLOPs  2 r (in + out) per adapted linear and LoRA token;
 *   bytes  r (in + out) weights per adapted linear for every distinct adapter
 *          in the step (each adapter's GPU slot is read once per step);
 *   launch a fixed floor per kernel (kernel_s), two kernels per adapted
 *          linear and layer, paid whenever the step has a LoRA token.
 * The adapted linears are vLLM's (plan_lora_bytes, sim/planner.h): q, k, v,
 * o and the dense MLP's gate, up, down; a mixture-of-experts layer's
 * attention only.  A merged model (the adapter folded into the weights) costs
 * exactly the base model: nothing here.  Pure arithmetic; no state. */
#ifndef COST_LORA_H
#define COST_LORA_H
#include <stdint.h>

typedef struct cm_lora {
    int    rank;             /* the slots' rank (--max-lora-rank); 0 = LoRA off: no cost */
    double kernel_s;         /* fixed time of one shrink or expand kernel (cm_lora_default) */
} cm_lora;

struct cm_model;             /* sim/cost_model.h */
struct cm_batch;
struct mc_config;

/* rank r with the default kernel floor (4 us). */
cm_lora cm_lora_default(int rank);
/* Sum over the adapted linears of every layer of (in + out), one GPU of tp:
 * an adapter's parameters per unit of rank.  0 for a bad tp. */
int64_t cm_lora_width(const struct mc_config *c, int tp);
/* Adapted linears of the whole model (kernels = 2 x this). */
int     cm_lora_linears(const struct mc_config *c);
/* The step's LoRA FLOPs and bytes on one GPU (0 when m->lora.rank is 0 or
 * the step has no LoRA token). */
double  cm_lora_flops(const struct cm_model *m, const struct cm_batch *b);
double  cm_lora_bytes(const struct cm_model *m, const struct cm_batch *b);
/* Seconds runtime LoRA adds to the step: the kernel floor plus the larger of
 * its FLOPs and bytes at the model's efficiencies.  0 without LoRA tokens.
 * Can't fail. */
double  cm_lora_time(const struct cm_model *m, const struct cm_batch *b);
#endif
