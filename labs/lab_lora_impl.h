/* lab_lora_impl: the lora lab's result, shared by its simulation
 * (labs/lab_lora_run.c) and its worksheet (labs/lab_lora.c).  Internal to
 * those two files. */
#ifndef LAB_LORA_IMPL_H
#define LAB_LORA_IMPL_H
#include <stdbool.h>
#include "labs/lab.h"
#include "labs/lab_real_sheet.h"
#include "sim/planner.h"
#include "sim/simulate.h"
#include "viz/barchart.h"
#include "viz/xychart.h"

#define LAB_LORA_MODEL "data/models/qwen2.5-7b.json"
#define LAB_LORA_MAX_LEN 4096
enum {
    LAB_LORA_NSLOTS = 7,                 /* max_loras 1 .. 64 */
    LAB_LORA_NRANKS = 4,                 /* ranks 8, 16, 32, 64 */
    LAB_LORA_NCASES = 4,                 /* merged, runtime 1 adapter, 8 mixed, 16 over 8 slots */
    LAB_LORA_NBATCH = 6,                 /* decode batch sizes 1 .. 128 */
    LAB_LORA_NADAPT = 8,                 /* adapters in the workload 1 .. 32 */
    LAB_LORA_NFT = 5,                    /* fine-tunes to serve 1 .. 16 */
    LAB_LORA_REQUESTS = 1000,
    LAB_LORA_SLOTS8 = 3, LAB_LORA_B32 = 3,   /* indices: max_loras 8, batch 32, */
    LAB_LORA_A8 = 3, LAB_LORA_A9 = 4         /* 8 and 9 adapters */
};
enum { LAB_LORA_MERGED, LAB_LORA_RT1, LAB_LORA_RT8, LAB_LORA_RT16 };   /* the speed cases */
extern const int LAB_LORA_SLOTS[LAB_LORA_NSLOTS], LAB_LORA_RANKS[LAB_LORA_NRANKS], LAB_LORA_BATCH[LAB_LORA_NBATCH],
                 LAB_LORA_ADAPT[LAB_LORA_NADAPT], LAB_LORA_FT[LAB_LORA_NFT];

typedef struct lab_lora_case { double tok_s, seconds, running, wait_s, tpot_ms; long blocks; } lab_lora_case;

typedef struct lab_lora_res {
    const char *gpu;                 /* data/gpus.json name */
    int    rank;                     /* this seed's adapter rank */
    double mean_prompt, mean_output;
    cm_model model;                  /* the base on the GPU, bf16 */
    plan_result off;                 /* LoRA off (= a merged model) */
    plan_result mem[LAB_LORA_NRANKS][LAB_LORA_NSLOTS];
    double weights_gib, slot_gib;    /* one model's weights; one adapter slot of this rank */
    lab_lora_case cs[LAB_LORA_NCASES];       /* the speed section */
    double step_ms[3][LAB_LORA_NBATCH];  /* decode step: merged, runtime 1 adapter, 8 adapters */
    lab_lora_case ad[2][LAB_LORA_NADAPT];    /* adapters in the workload: max_loras 8, max_loras = adapters */
    double wait9[2];                 /* 9 adapters over 8 slots: mean wait of the 9th's requests, others' */
    /* figure data */
    double x_slots[LAB_LORA_NSLOTS], y_blocks[LAB_LORA_NRANKS][LAB_LORA_NSLOTS];
    double x_batch[LAB_LORA_NBATCH], x_adapt[LAB_LORA_NADAPT], y_adapt[2][LAB_LORA_NADAPT];
    double x_ft[LAB_LORA_NFT], y_ft[2][LAB_LORA_NFT];
    double bars[LAB_LORA_NCASES], bars_tpot[LAB_LORA_NCASES];
    viz_xy_series s_mem[LAB_LORA_NRANKS], s_step[3], s_adapt[2], s_ft[2];
    viz_xy_mark m_mem[1], m_adapt[1], m_ft[1];
    const char *cats[LAB_LORA_NCASES], *ser[1];
    /* --real: the four speed cases on the CUDA engine (labs/lab_lora_real.c) */
    bool   has_real;
    int    real_requests;
    lab_real_meas rgpu[LAB_LORA_NCASES], rsim[LAB_LORA_NCASES];   /* measured, simulated */
    lab_real_view view;
} lab_lora_res;

/* The simulation: memory, speed, adapters, deployment (labs/lab_lora_run.c). */
int lab_lora_simulate(lab *L, char *err, size_t n);
void lab_lora_free(void *p);
/* Request i's adapter (wl_request.lora): one of 1..adapters drawn uniformly
 * for the seed, 0 (the base model) when adapters is 0. */
void lab_lora_assign(wl_request *r, int nr, int adapters, uint64_t seed);
/* --real (labs/lab_lora_real.c): the speed cases on the engine, their table;
 * then the figure, the paragraph, and the worksheet's "explain" question
 * asked with the measured numbers (in place of the simulated one: 8
 * questions at most); each 0 without --real.  0, or -1 with err. */
int lab_lora_real(lab *L, char *err, size_t n);
int lab_lora_real_figure(lab *L, char *err, size_t n);
int lab_lora_real_question(lab *L);
int lab_lora_real_say(lab *L);
#endif
