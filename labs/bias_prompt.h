/* bias_prompt: one trial's prompt, built as the study builds it: 2 of the
 * ticker's buy sentences and 2 of its sell sentences, shuffled together and
 * numbered, with the options listed [buy | sell] in the first half of the
 * trials and [sell | buy] in the second.  Pure computation. */
#ifndef BIAS_PROMPT_H
#define BIAS_PROMPT_H
#include <stdint.h>
#include "labs/bias_data.h"
#include "labs/bias_output.h"

typedef struct bias_prompt_info {
    int n_buy, n_sell;      /* evidence sentences used */
    int buy_first;          /* 1: "[buy | sell]" */
    int order[4];           /* (n_buy + n_sell) items: +k = buy[k-1], -k = sell[k-1] */
} bias_prompt_info;

/* Appends the prompt of `trial` (0-based, of num_trials) for stock s, drawing
 * its evidence from the stream (seed, set, stock_index, trial).  -1 on OOM. */
int  bias_prompt_build(const bias_stock *s, size_t stock_index, int set, int trial, int num_trials,
                       uint64_t seed, bias_buf *out, bias_prompt_info *info);
/* The options string for a trial: "[buy | sell]" or "[sell | buy]". */
const char *bias_prompt_options(int trial, int num_trials);
#endif
