/* text/tokenizer.h — Hugging Face tokenizer.json (BPE) in C: load, encode,
 * decode, count.
 *
 * Supported (everything else is a clear load error naming the file):
 *   model       BPE, merges as "a b" strings or ["a","b"] pairs, ignore_merges,
 *               byte_fallback (<0xNN> tokens), unk_token + fuse_unk
 *   normalizer  NFC, NFKC, Replace (string pattern), Prepend, Sequence, null
 *   pre_tokenizer Split (regex via PCRE2 UTF+UCP, or string; behaviours
 *               Isolated, Removed, MergedWithPrevious, MergedWithNext),
 *               ByteLevel (use_regex true/false), Metaspace (Mistral style:
 *               prepend_scheme always/first/never, split), Sequence, null
 *   post_processor ByteLevel, TemplateProcessing ("single"), Sequence, null
 *   decoder     ByteLevel, Metaspace; Replace/ByteFallback/Fuse/Strip sequences
 *   added_tokens matched leftmost-longest on the raw text before everything
 *               else (lstrip/rstrip/single_word are not applied).
 *
 * Invalid UTF-8 input: every maximal invalid subsequence is replaced by U+FFFD
 * before encoding, exactly as Python's bytes.decode("utf-8", "replace") does,
 * so tok_encode(bytes) == HF encode(bytes.decode("utf-8", "replace")).
 *
 * Thread safety: a loaded tokenizer may be shared by threads; tok_encode only
 * touches a word cache under a mutex (skipped when contended).
 */
#ifndef TEXT_TOKENIZER_H
#define TEXT_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

typedef struct tok_tokenizer tok_tokenizer;

/* A growable list of token ids owned by the caller; zero-initialise it,
 * reuse it across calls, release it with tok_ids_free. */
typedef struct {
    int32_t *ids;   /* (cap,) the first n are valid */
    size_t n, cap;
} tok_ids;

#define TOK_ADD_SPECIAL  1   /* encode: apply the post_processor (e.g. <bos>) */
#define TOK_SKIP_SPECIAL 2   /* decode: drop special added tokens */

/* Loads a tokenizer.json.  On error returns NULL and writes a message that
 * names the file (and the line for JSON syntax errors) into err. */
tok_tokenizer *tok_load(const char *path, char *err, size_t errcap);
/* The same from a tokenizer.json already in memory (len bytes); name is
 * used in error messages. */
tok_tokenizer *tok_load_mem(const char *json, size_t len, const char *name, char *err, size_t errcap);
void tok_free(tok_tokenizer *t);

/* Encodes len bytes of text, appending ids to out (out->n is reset to 0 first).
 * flags: TOK_ADD_SPECIAL.  Returns 0, or -1 when out of memory. */
int tok_encode(tok_tokenizer *t, const char *text, size_t len, int flags, tok_ids *out);
/* Number of tokens tok_encode would produce; -1 when out of memory. */
long tok_count(tok_tokenizer *t, const char *text, size_t len, int flags);
void tok_ids_free(tok_ids *ids);

/* Decodes ids into out (cap bytes, always NUL-terminated when cap > 0).
 * The bytes are raw: a token that ends inside a UTF-8 character yields the
 * partial bytes (useful when streaming).  Unknown ids are skipped.
 * Returns the full length needed (excluding the NUL), like snprintf.
 * flags: TOK_SKIP_SPECIAL. */
size_t tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int flags,
                  char *out, size_t cap);

/* Id of a token given as written in tokenizer.json (added tokens first, then
 * the vocab), or -1. */
int32_t tok_token_to_id(const tok_tokenizer *t, const char *token);
/* The token string as written in tokenizer.json (e.g. "Ġthe"), or NULL. */
const char *tok_id_to_token(const tok_tokenizer *t, int32_t id);
/* Largest id + 1 over the vocab and the added tokens. */
int32_t tok_vocab_size(const tok_tokenizer *t);
/* Id of an added token by content ("<|im_end|>"), or -1 if it is not one. */
int32_t tok_special_id(const tok_tokenizer *t, const char *content);

#endif
