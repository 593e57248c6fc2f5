/* text/chat_template.h — chat prompt rendering.  A chat_tpl renders the
 * model's own chat_template (tokenizer_config.json's Jinja text, through
 * text/jinja.h, as transformers' apply_chat_template does), or, as the
 * fallback when a model ships none, one of the families written out here in C
 * (chat_render: the family detected from the template text, or named with
 * --chat-template NAME).
 *
 * Render the result and encode it with tok_encode(..., 0) (no TOK_ADD_SPECIAL);
 * the rendered text already starts with <|begin_of_text|> / <bos> where the
 * family's template puts one.
 */
#ifndef TEXT_CHAT_TEMPLATE_H
#define TEXT_CHAT_TEMPLATE_H
#include <stddef.h>

typedef enum {
    CHAT_UNKNOWN = 0,
    CHAT_CHATML,   /* <|im_start|>role\n...<|im_end|>\n (Qwen3-2507 and other ChatML) */
    CHAT_QWEN25,   /* ChatML plus Qwen2.5's default system prompt */
    CHAT_QWEN3,    /* ChatML with <think> handling and enable_thinking (Qwen3 hybrid) */
    CHAT_LLAMA3,   /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    CHAT_LLAMA31,  /* Llama 3.1+: Llama-3 plus the "Cutting Knowledge Date" system header */
    CHAT_GEMMA,    /* <start_of_turn>user\n...<end_of_turn>\n, assistant -> model */
} chat_kind;

typedef struct {
    const char *role;      /* "system", "user" or "assistant" */
    const char *content;   /* UTF-8, NUL-terminated */
} chat_msg;

/* Reads tokenizer_config.json and detects the family of its chat_template.
 * Returns 0 and sets *kind, or -1 with a message naming the file in err. */
int chat_detect(const char *config_path, chat_kind *kind, char *err, size_t errcap);
/* Detects the family from template text; CHAT_UNKNOWN when not recognised. */
chat_kind chat_detect_text(const char *template_text);
/* "chatml", "qwen2.5", "qwen3", "llama3", "llama3.1", "gemma" -> kind, or CHAT_UNKNOWN. */
chat_kind chat_kind_parse(const char *name);
const char *chat_kind_name(chat_kind kind);

/* Renders n messages into out (cap bytes, NUL-terminated when cap > 0).
 * add_generation_prompt opens the assistant turn; enable_thinking = 0 gives
 * Qwen3's non-thinking form ("<think>\n\n</think>\n\n" after the turn opens).
 * Returns the full length needed (like snprintf), or (size_t)-1 for a bad
 * kind or a message without role/content. */
size_t chat_render(chat_kind kind, const chat_msg *msgs, int n, int add_generation_prompt,
                   int enable_thinking, char *out, size_t cap);

/* ---- a template ready to render: the model's own, or a named family ---------------- */
typedef struct chat_tpl chat_tpl;

/* spec NULL: the chat_template of the tokenizer_config.json at config_path,
 * with its special tokens (bos_token, eos_token, ...).  spec a family name
 * (chat_kind_parse): that hand-written family.  spec a file: a
 * tokenizer_config.json (its chat_template) or a Jinja template (special
 * tokens then from config_path when it is readable).  Returns NULL with a
 * message naming the file (and the template's line and column) in err. */
chat_tpl *chat_tpl_open(const char *spec, const char *config_path, char *err, size_t errcap);
/* The template for a tokenizer.json at tokenizer_path (or a directory holding
 * it): spec when given (as chat_tpl_open, special tokens from the
 * tokenizer_config.json beside it), else that config's chat_template, else
 * (no config, or one without a template) the named fallback; NULL with a
 * message when that is CHAT_UNKNOWN, or when the model's template is bad. */
chat_tpl *chat_tpl_for(const char *spec, const char *tokenizer_path, chat_kind fallback, char *err, size_t errcap);
/* The hand-written template of kind (not CHAT_UNKNOWN); NULL when out of memory. */
chat_tpl *chat_tpl_named(chat_kind kind);
/* Renders n messages (tools none) into a malloc'd string (length in *len when
 * len is not NULL).  enable_thinking < 0 leaves it undefined, as a request
 * without chat_template_kwargs does.  NULL with a message in err when the
 * template fails (raise_exception's own message, e.g. roles that do not
 * alternate) or a message has no role / content. */
char *chat_tpl_apply(const chat_tpl *t, const chat_msg *msgs, int n, int add_generation_prompt,
                     int enable_thinking, size_t *len, char *err, size_t errcap);
/* The family the template is or resembles (its end of turn); CHAT_UNKNOWN for
 * a model's template of no known family. */
chat_kind chat_tpl_kind(const chat_tpl *t);
/* The token that ends an assistant turn: the family's, else the config's eos_token (NULL if none). */
const char *chat_tpl_stop(const chat_tpl *t);
/* What renders: "qwen3" for a named family, "PATH (chat_template)" for a model's own. */
const char *chat_tpl_name(const chat_tpl *t);
void chat_tpl_free(chat_tpl *t);

#endif
