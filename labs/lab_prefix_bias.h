/* lab_prefix_bias: the prefix lab's second workload, the bias experiment's
 * own prompts (labs/bias_prompt.c: the study's template, the project's
 * generated evidence), tokenized inside the served model's chat template,
 * through the prefix cache of the sim/ core: how many prompt tokens the
 * cache serves, with the study's prompt order and with the fixed
 * instructions moved in front of the evidence.  Reads the tickers, the bias
 * profile, the tokenizer (data/tokenizers/qwen3; without it, a stated
 * estimate) and the model config; writes nothing. */
#ifndef LAB_PREFIX_BIAS_H
#define LAB_PREFIX_BIAS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { LPB_STUDY, LPB_FIRST, LPB_NORDER };          /* the study's order; instructions first */

typedef struct lab_prefix_bias_run {
    double hit_pct;                  /* prompt tokens served by the prefix cache, % */
    double prefill_per_prompt;       /* prompt tokens computed per prompt */
    double blocks_saved;             /* blocks the cache served, per prompt */
    double seconds;                  /* simulated time of the set */
} lab_prefix_bias_run;

typedef struct lab_prefix_bias {
    int    prompts, tickers, trials;
    double mean_prompt;              /* tokens, chat template included */
    int    shared_all[LPB_NORDER];   /* tokens every prompt starts with */
    double shared_ticker[LPB_NORDER];/* tokens a ticker's prompts start with (mean) */
    bool   exact;                    /* tokenized with the real tokenizer */
    char   tokens_source[160];
    int    block_size;
    lab_prefix_bias_run r[LPB_NORDER][2];   /* [order][caching off, on] */
} lab_prefix_bias;

/* One set of the study (num_trials prompts per ticker, evidence from the
 * project's generator at seed) on one H200 serving Qwen3-30B-A3B, every
 * prompt sent at once.  Returns 0, or -1 with err. */
int lab_prefix_bias_measure(uint64_t seed, int num_trials, lab_prefix_bias *out, char *err, size_t errlen);
#endif
