/* text/chat_template.h — chat prompt rendering for the model families the
 * engine serves, without a Jinja engine: the family is detected from the
 * chat_template text in tokenizer_config.json, and each family's template is
 * written out here in C.  An unrecognised template is an error; front ends
 * offer --chat-template NAME (chat_kind_parse) as the escape.
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

#endif
