/* text/jinja.h — the subset of Jinja2 that Hugging Face chat templates use,
 * rendered as transformers' apply_chat_template renders them: a sandboxed
 * environment with trim_blocks and lstrip_blocks, no autoescape, the globals
 * raise_exception, strftime_now and namespace, transformers' tojson (no HTML
 * escaping, ensure_ascii off), loop controls and {% generation %}.
 *
 * Covered: text, {{ }}, {# #}, whitespace control (- and +), raw; if / elif /
 * else, for (tuple targets, inline if, else, loop.*), set (names, tuples,
 * namespace attributes, blocks), break / continue; Python-like values (none,
 * bool, int, float, str, list, dict), operators, slices, filters, tests and the
 * str / dict methods the templates call.  Not covered: macros, call, include,
 * extends, blocks, filter blocks: such a template fails to compile with a
 * message naming the tag.
 *
 * Errors carry the template's line and column ("line 3, column 5: ...").
 * Library code: returns errors, prints nothing.  Files: jinja_lex.c (tokens),
 * jinja_parse.c (tree), jinja_eval.c (statements, expressions), jinja_value.c
 * (values, str(), tojson), jinja_builtins.c (filters, tests, methods). */
#ifndef TEXT_JINJA_H
#define TEXT_JINJA_H
#include <stddef.h>
#include <time.h>
#include <cJSON.h>

typedef struct jinja_template jinja_template;

/* Compiles template text src (len bytes, UTF-8).  Returns NULL with a message
 * naming the line and column in err on a syntax error or when out of memory. */
jinja_template *jinja_compile(const char *src, size_t len, char *err, size_t errcap);

/* Renders t with the variables of vars, a JSON object (messages,
 * add_generation_prompt, tools, bos_token, ...; NULL = none).  JSON numbers
 * without a fraction become ints.  now is the time strftime_now formats (local
 * time; 0 = the current time).  Returns the output, malloc'd and
 * NUL-terminated (its length in *len when len is not NULL), or NULL with a
 * message in err: raise_exception's message, or "line L, column C: ..." for a
 * failed operation.  t may be rendered from several threads at once. */
char *jinja_render(const jinja_template *t, const cJSON *vars, time_t now, size_t *len,
                   char *err, size_t errcap);

/* Frees t.  NULL is fine. */
void jinja_free(jinja_template *t);

#endif
