/* bias_dump: the prompts of a run as JSON lines (see bias_dump.h).  The chat
 * template and the encoding follow labs/bias_source_real.c (encode_prompt):
 * the template detected beside the tokenizer (qwen3 when unknown), one user
 * message, the generation prompt, no thinking, no special tokens added.
 * Reads the tokenizer files; writes path.tmp, then renames it to path. */
#include "labs/bias_dump.h"
#include "labs/bias_output.h"
#include "labs/bias_prompt.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TOKENIZER "data/tokenizers/qwen3/tokenizer.json"

/* The chat template: named, else detected from tokenizer_config.json beside
 * the tokenizer, else Qwen3's (as the real source decides). */
static chat_kind pick_template(const char *tokpath, const char *name, char *err, size_t errlen) {
    if (name) {
        chat_kind k = chat_kind_parse(name);
        if (k == CHAT_UNKNOWN) snprintf(err, errlen, "--chat-template %s: not one of chatml, qwen2.5, qwen3, llama3, llama3.1, gemma", name);
        return k;
    }
    char cfg[4200], e2[512];
    snprintf(cfg, sizeof cfg, "%s", tokpath);
    char *sl = strrchr(cfg, '/');
    snprintf(sl ? sl + 1 : cfg, sizeof cfg - (size_t)(sl ? sl + 1 - cfg : 0), "tokenizer_config.json");
    chat_kind k = CHAT_UNKNOWN;
    if (chat_detect(cfg, &k, e2, sizeof e2) != 0 || k == CHAT_UNKNOWN) k = CHAT_QWEN3;
    return k;
}

/* One trial's line into b. */
static int one_line(bias_buf *b, tok_tokenizer *tok, chat_kind chat, const bias_stock *s, size_t k, int set,
                    int trial, const bias_dump_opts *o, bias_buf *prompt, tok_ids *ids, char **render, size_t *cap) {
    bias_prompt_info info;
    prompt->len = 0;
    if (bias_prompt_build(s, k, set, trial, o->num_trials, o->seed, prompt, &info) || !prompt->s) return -1;
    chat_msg m = { "user", prompt->s };
    size_t need = chat_render(chat, &m, 1, 1, 0, NULL, 0);
    if (need == (size_t)-1) return -1;
    if (need + 1 > *cap) {
        char *r = realloc(*render, need + 1);
        if (!r) return -1;
        *render = r; *cap = need + 1;
    }
    chat_render(chat, &m, 1, 1, 0, *render, *cap);
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
    bias_buf_printf(b, "]}\n");
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
    size_t cap = 0;
    chat_kind chat = pick_template(tokpath, o->chat_template, err, errlen);
    if (chat == CHAT_UNKNOWN) goto out;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "wb"))) { snprintf(err, errlen, "%s: %s", tmp, strerror(errno)); goto out; }
    long lines = 0;
    for (int set = 1; set <= o->num_sets; set++)            /* the run's order: sets are 1-based */
        for (size_t k = 0; k < u->n; k++)
            for (int trial = 0; trial < o->num_trials; trial++) {
                line.len = 0;
                if (one_line(&line, tok, chat, &u->stocks[k], k, set, trial, o, &prompt, &ids, &render, &cap)) {
                    snprintf(err, errlen, "out of memory (or a chat template that cannot render)"); goto out;
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
    tok_ids_free(&ids);
    bias_buf_free(&line); bias_buf_free(&prompt);
    tok_free(tok);
    return n;
}
