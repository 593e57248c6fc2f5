/* bias_prompt: the study's prompt text and evidence sampling, with our own
 * PRNG (see bias_prompt.h).  Pure computation. */
#include "labs/bias_prompt.h"
#include "labs/bias_rng.h"
#include <string.h>

#define LIT(b, s) bias_buf_add((b), (s), sizeof(s) - 1)

const char *bias_prompt_options(int trial, int num_trials) {
    return trial < num_trials / 2 ? "[buy | sell]" : "[sell | buy]";
}

/* k distinct indices of 0..n-1 in random order (a partial Fisher-Yates). */
static int sample(bias_rng *r, int n, int k, int *out) {
    int idx[BIAS_MAX_EVIDENCE];
    for (int i = 0; i < n; i++) idx[i] = i;
    if (k > n) k = n;
    for (int i = 0; i < k; i++) {
        int j = i + (int)bias_rng_below(r, (uint32_t)(n - i));
        int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        out[i] = idx[i];
    }
    return k;
}

int bias_prompt_build(const bias_stock *s, size_t stock_index, int set, int trial, int num_trials,
                      uint64_t seed, bias_buf *out, bias_prompt_info *info) {
    bias_rng r;
    bias_rng_init(&r, seed, (uint64_t)set, (uint64_t)stock_index, (uint64_t)trial);
    int pick[BIAS_MAX_EVIDENCE], items[4], n = 0;
    int nb = sample(&r, s->nbuy, 2, pick);
    for (int i = 0; i < nb; i++) items[n++] = pick[i] + 1;
    int ns = sample(&r, s->nsell, 2, pick);
    for (int i = 0; i < ns; i++) items[n++] = -(pick[i] + 1);
    for (int i = n - 1; i > 0; i--) {                   /* shuffle buy and sell together */
        int j = (int)bias_rng_below(&r, (uint32_t)(i + 1));
        int t = items[i]; items[i] = items[j]; items[j] = t;
    }
    memset(info, 0, sizeof *info);
    info->n_buy = nb; info->n_sell = ns;
    info->buy_first = trial < num_trials / 2;
    memcpy(info->order, items, (size_t)n * sizeof *items);

    LIT(out, "Refer to the evidence below to make a final investment decision for the given stock.\n");
    bias_buf_printf(out, "Stock Ticker: [%s]\nStock Name: [%s]\n--- Evidence ---\n", s->ticker, s->name);
    for (int i = 0; i < n; i++) {
        const char *ev = items[i] > 0 ? s->buy[items[i] - 1] : s->sell[-items[i] - 1];
        bias_buf_printf(out, "%d. ", i + 1);
        bias_buf_add(out, ev, strlen(ev));
        if (i + 1 < n) LIT(out, "\n");
    }
    LIT(out, "\n---\nYour final response must be a single, valid JSON object. "
             "The JSON object must contain the following two keys:\n");
    bias_buf_printf(out, "\"decision\": %s\n", bias_prompt_options(trial, num_trials));
    LIT(out, "\"reason\": A brief justification for your decision\n"
             "Do not include \"hold\" as an option. You must choose one side. "
             "Your response should start with { and end with }. Do not include any other text.");
    return out->oom ? -1 : 0;
}
