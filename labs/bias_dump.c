/* bias_dump: the prompts of a run as JSON lines (see bias_dump.h).  The chat
 * template and the encoding follow labs/bias_source_real.c (encode_prompt):
 * the model's chat_template beside the tokenizer (qwen3's when there is
 * none), one user message, the generation prompt, no thinking, no special
 * tokens added.
 * Reads the tokenizer files; writes path.tmp, then renames it to path. */
#include "labs/bias_dump.h"
#include "labs/bias_output.h"
#include "labs/bias_prompt.h"
#include "labs/bias_sources.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TOKENIZER "data/tokenizers/qwen3/tokenizer.json"

/* One trial's line into b. */
static int one_line(bias_buf *b, tok_tokenizer *tok, const chat_tpl *chat, const bias_stock *s, size_t k, int set,
                    int trial, const bias_dump_opts *o, bias_buf *prompt, tok_ids *ids, char **render, char *err,
                    size_t errlen) {
    bias_prompt_info info;
    prompt->len = 0;
    if (bias_prompt_build(s, k, set, trial, o->num_trials, o->seed, prompt, &info) || !prompt->s) return -1;
    chat_msg m = { "user", prompt->s };
    size_t need;
    free(*render);
    if (!(*render = chat_tpl_apply(chat, &m, 1, 1, 0, &need, err, errlen))) return -1;
    if (tok_encode(tok, *render, need, 0, ids)) return -1;
    bias_buf_printf(b, "{\"set\": %d, \"stock_index\": %zu, \"ticker\": ", set, k);
    bias_json_str(b, s->ticker);
    bias_buf_printf(b, ", \"trial\": %d, \"buy_first\": %s, \"evidence\": [", trial, info.buy_first ? "true" : "false");
    for (int i = 0; i < info.n_buy + info.n_sell; i++)
        bias_buf_printf(b, "%s\"%s\"", i ? ", " : "", info.order[i] > 0 ? "buy" : "sell");
    bias_buf_printf(b, "], \"prompt\": ");
    bias_json_str(b, prompt->s);
    bias_buf_printf(b, ", \"text\": ");
    bias_json_str(b, *render);
    bias_buf_printf(b, ", \"ids\": [");
    for (size_t i = 0; i < ids->n; i++) bias_buf_printf(b, "%s%d", i ? ", " : "", (int)ids->ids[i]);
    bias_buf_printf(b, "]");
    if (o->lengths) {                              /* as the real sources ask: bias_sampling_lengths */
        bias_request rq = { prompt->s, s, k, set, trial, o->num_trials, info.buy_first, (int)ids->n };
        bias_sampling smp = { 0, 1, o->max_tokens, o->seed, o->lengths };
        int mt;
        if (bias_sampling_lengths(&smp, &rq, 1, &mt, err, errlen)) return -1;
        bias_buf_printf(b, ", \"reply_tokens\": %d", mt);
    }
    bias_buf_printf(b, "}\n");
    return b->oom ? -1 : 0;
}

long bias_dump_prompts(const bias_universe *u, const bias_dump_opts *o, const char *path, char *err, size_t errlen) {
    const char *tokpath = o->tokenizer ? o->tokenizer : DEFAULT_TOKENIZER;
    char tmp[4200];
    tok_tokenizer *tok = tok_load(tokpath, err, errlen);
    if (!tok) return -1;
    long n = -1;
    FILE *f = NULL;
    bias_buf line = {0}, prompt = {0};
    tok_ids ids = {0};
    char *render = NULL;
    chat_tpl *chat = chat_tpl_for(o->chat_template, tokpath, CHAT_QWEN3, err, errlen);
    if (!chat) goto out;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "wb"))) { snprintf(err, errlen, "%s: %s", tmp, strerror(errno)); goto out; }
    long lines = 0;
    for (int set = 1; set <= o->num_sets; set++)            /* the run's order: sets are 1-based */
        for (size_t k = 0; k < u->n; k++)
            for (int trial = 0; trial < o->num_trials; trial++) {
                line.len = 0;
                err[0] = 0;
                if (one_line(&line, tok, chat, &u->stocks[k], k, set, trial, o, &prompt, &ids, &render, err, errlen)) {
                    if (!err[0]) snprintf(err, errlen, "out of memory");
                    goto out;
                }
                if (fwrite(line.s, 1, line.len, f) != line.len) { snprintf(err, errlen, "%s: %s", tmp, strerror(errno)); goto out; }
                lines++;
            }
    if (fclose(f) != 0) { f = NULL; snprintf(err, errlen, "%s: %s", tmp, strerror(errno)); goto out; }
    f = NULL;
    if (rename(tmp, path) != 0) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); goto out; }
    n = lines;
out:
    if (f) { fclose(f); remove(tmp); }
    free(render);
    chat_tpl_free(chat);
    tok_ids_free(&ids);
    bias_buf_free(&line); bias_buf_free(&prompt);
    tok_free(tok);
    return n;
}
