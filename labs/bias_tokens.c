/* bias_tokens: exact counts through text/tokenizer.h when the tokenizer
 * file is present, else bytes/4 (see bias_tokens.h).
 * Module state: one lazily loaded tokenizer (single-threaded use). */
#include "labs/bias_tokens.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TOKENIZER "data/tokenizers/qwen3/tokenizer.json"
/* Qwen3's chat template for one user message, generation prompt added. */
#define CHAT_OPEN  "<|im_start|>user\n"
#define CHAT_CLOSE "<|im_end|>\n<|im_start|>assistant\n"

static char tok_path[1024] = DEFAULT_TOKENIZER;
static int  tried;
static char source_desc[1200] = "estimate (4 bytes a token)";
static tok_tokenizer *tok;
static int template_tokens = -1;   /* tokens CHAT_OPEN + CHAT_CLOSE add */
static chat_tpl *chat;                /* the chat_template of tokenizer_config.json beside the tokenizer */

void bias_tokens_use(const char *path) {
    bias_tokens_free();
    snprintf(tok_path, sizeof tok_path, "%s", path ? path : DEFAULT_TOKENIZER);
}

static char load_err[1024];          /* why the tokenizer did not load */

static void load(void) {
    if (tried) return;
    tried = 1;
    char err[512];
    if (!strcmp(tok_path, "none")) return;         /* asked for the estimate */
    tok = tok_load(tok_path, load_err, sizeof load_err);
    if (!tok) return;
    /* the template's own tokens, counted once: special tokens and the role
     * lines never merge with the message, so the total is additive */
    long a = tok_count(tok, CHAT_OPEN, strlen(CHAT_OPEN), 0);
    long b = tok_count(tok, CHAT_CLOSE, strlen(CHAT_CLOSE), 0);
    template_tokens = (a >= 0 && b >= 0) ? (int)(a + b) : 0;
    snprintf(source_desc, sizeof source_desc, "tokenizer %s", tok_path);
    chat = chat_tpl_for(NULL, tok_path, CHAT_UNKNOWN, err, sizeof err);
    if (chat)
        snprintf(source_desc, sizeof source_desc, "tokenizer %s, chat template %s", tok_path, chat_tpl_name(chat));
}

static int estimate(const char *text) { return (int)((strlen(text) + 3) / 4); }

int bias_count_tokens(const char *text) {
    if (!text) return 0;
    load();
    if (tok) {
        long n = tok_count(tok, text, strlen(text), 0);
        if (n >= 0) return (int)n;
    }
    return estimate(text);
}

int bias_count_prompt_tokens(const char *prompt) {
    if (!prompt) return 0;
    load();
    if (tok && chat) {
        chat_msg m = { "user", prompt };
        char err[256];
        size_t need;
        char *render = chat_tpl_apply(chat, &m, 1, 1, 0, &need, err, sizeof err);
        long n = render ? tok_count(tok, render, need, 0) : -1;
        free(render);
        if (n >= 0) return (int)n;
    }
    if (tok) return bias_count_tokens(prompt) + template_tokens;
    return estimate(prompt) + (int)((strlen(CHAT_OPEN) + strlen(CHAT_CLOSE)) / 4);
}

const char *bias_tokens_source(void) { load(); return source_desc; }

int bias_tokens_check(char *err, size_t errlen) {
    load();
    if (tok || !strcmp(tok_path, "none")) return 0;
    snprintf(err, errlen, "--tokenizer: %s", load_err);
    return -1;
}

void bias_tokens_free(void) {
    if (tok) tok_free(tok);
    tok = NULL;
    template_tokens = -1;
    chat_tpl_free(chat);
    chat = NULL;
    tried = 0;
    snprintf(source_desc, sizeof source_desc, "estimate (4 bytes a token)");
}
