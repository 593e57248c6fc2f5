/* lab_lora_impl: the lora lab's result, shared by its simulation
 * (labs/lab_lora_run.c) and its worksheet (labs/lab_lora.c).  Internal to
 * those two files. */
#ifndef LAB_LORA_IMPL_H
#define LAB_LORA_IMPL_H
#include <stdbool.h>
#include "labs/lab.h"
#include "sim/planner.h"
#include "sim/simulate.h"
#include "viz/barchart.h"
#include "viz/xychart.h"

#define LORA_MODEL "data/models/qwen2.5-7b.json"
#define LORA_MAX_LEN 4096
enum {
    LORA_NSLOTS = 7,                 /* max_loras 1 .. 64 */
    LORA_NRANKS = 4,                 /* ranks 8, 16, 32, 64 */
    LORA_NCASES = 4,                 /* merged, runtime 1 adapter, 8 mixed, 16 over 8 slots */
    LORA_NBATCH = 6,                 /* decode batch sizes 1 .. 128 */
    LORA_NADAPT = 8,                 /* adapters in the workload 1 .. 32 */
    LORA_NFT = 5,                    /* fine-tunes to serve 1 .. 16 */
    LORA_REQUESTS = 1000,
    LORA_SLOTS8 = 3, LORA_B32 = 3, LORA_A8 = 3, LORA_A9 = 4
};
enum { LORA_MERGED, LORA_RT1, LORA_RT8, LORA_RT16 };
extern const int LORA_SLOTS[LORA_NSLOTS], LORA_RANKS[LORA_NRANKS], LORA_BATCH[LORA_NBATCH],
                 LORA_ADAPT[LORA_NADAPT], LORA_FT[LORA_NFT];

typedef struct lora_case { double tok_s, seconds, running, wait_s, tpot_ms; long blocks; } lora_case;

typedef struct lora_lab {
    const char *gpu;                 /* data/gpus.json name */
    int    rank;                     /* this seed's adapter rank */
    double mean_prompt, mean_output;
    cm_model model;                  /* the base on the GPU, bf16 */
    plan_result off;                 /* LoRA off (= a merged model) */
    plan_result mem[LORA_NRANKS][LORA_NSLOTS];
    double weights_gib, slot_gib;    /* one model's weights; one adapter slot of this rank */
    lora_case cs[LORA_NCASES];       /* the speed section */
    double step_ms[3][LORA_NBATCH];  /* decode step: merged, runtime 1 adapter, 8 adapters */
    lora_case ad[2][LORA_NADAPT];    /* adapters in the workload: max_loras 8, max_loras = adapters */
    double wait9[2];                 /* 9 adapters over 8 slots: mean wait of the 9th's requests, others' */
    /* figure data */
    double x_slots[LORA_NSLOTS], y_blocks[LORA_NRANKS][LORA_NSLOTS];
    double x_batch[LORA_NBATCH], x_adapt[LORA_NADAPT], y_adapt[2][LORA_NADAPT];
    double x_ft[LORA_NFT], y_ft[2][LORA_NFT];
    double bars[LORA_NCASES], bars_tpot[LORA_NCASES];
    viz_xy_series s_mem[LORA_NRANKS], s_step[3], s_adapt[2], s_ft[2];
    viz_xy_mark m_mem[1], m_adapt[1], m_ft[1];
    const char *cats[LORA_NCASES], *ser[1];
} lora_lab;

/* The simulation: memory, speed, adapters, deployment (labs/lab_lora_run.c). */
int lora_run(lab *L, char *err, size_t n);
void lora_free(void *p);
#endif
