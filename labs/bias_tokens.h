/* bias_tokens: token counts for the bias lab, behind one function.  With the
 * engine's tokenizer (text/tokenizer.h) and a tokenizer.json at hand (by
 * default data/tokenizers/qwen3/tokenizer.json), counts are exact; otherwise
 * an estimate of one token per four bytes.  Prompts are counted inside the
 * model's chat template (Qwen3 ChatML: a user turn, then the assistant's
 * opening), as the server sees them.  Reads only the tokenizer file. */
#ifndef BIAS_TOKENS_H
#define BIAS_TOKENS_H
#include <stddef.h>

/* Chooses the tokenizer file (NULL: the default; "none": the estimate);
 * loads it on first use. */
void bias_tokens_use(const char *tokenizer_json);
/* Tokens in text (a reply); never fails (falls back to the estimate). */
int  bias_count_tokens(const char *text);
/* Tokens of a prompt as the model receives it, chat template included. */
int  bias_count_prompt_tokens(const char *prompt);
/* Loads the chosen tokenizer now: 0, or -1 with err ("--tokenizer PATH: why")
 * when it cannot be read, so that a front end can refuse a tokenizer the user
 * named instead of falling back to the estimate. */
int  bias_tokens_check(char *err, size_t errlen);
/* "qwen3 tokenizer (data/...)" or "estimate (4 bytes a token)". */
const char *bias_tokens_source(void);
/* Releases the loaded tokenizer. */
void bias_tokens_free(void);
#endif
