/* tok_internal.h: the tokenizer's state and the steps of its pipeline, shared
 * by text/tok_*.c and text/tokenizer.c (private: nothing outside text/
 * includes it).  One tok_encode call runs, in this order:
 *   tok_utf8_repair (tok_utf8.c) -> split on added tokens (tokenizer.c)
 *   -> per segment tok_encode_segment (tok_pretok.c): tok_normalize
 *      (tok_normalize.c), the pre-tokenizer's splits, tok_bpe_word (tok_bpe.c)
 * and tok_load_mem (tok_load.c) builds the state, the pipeline's steps from
 * the JSON through tok_load_norm/pre/post/decoder (tok_config.c). */
#ifndef TEXT_TOK_INTERNAL_H
#define TEXT_TOK_INTERNAL_H
#include "text/tokenizer.h"
#include "text/tok_map.h"
#include "text/tok_utf8.h"
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- the loaded tokenizer ------------------------------------------------------ */
enum { NORM_NFC = 1, NORM_NFKC, NORM_REPLACE, NORM_PREPEND, NORM_META_ALWAYS, NORM_META_FIRST };
typedef struct { int kind; char *a, *b; size_t alen, blen; } tok_norm_step;

enum { BEH_ISOLATED = 1, BEH_REMOVED, BEH_MERGED_PREV, BEH_MERGED_NEXT };
typedef struct { pcre2_code *re, *re_wide; int behavior; } tok_pre_step;   /* re_wide: for text with 4-byte UTF-8 */

typedef struct { char *s; size_t len; int32_t id; int special; } tok_added;

typedef struct {           /* one direct-mapped word-cache entry */
    uint64_t h;
    uint8_t klen, nids;
    char key[46];
    int32_t ids[12];
} tok_cache_ent;
#define CACHE_SLOTS 16384
#define CACHE_KEY_MAX 46
#define CACHE_IDS_MAX 12

struct tok_tokenizer {
    int byte_level;          /* vocab stored as raw bytes; BPE starts from bytes */
    int ignore_merges, byte_fallback, fuse_unk;
    int32_t unk_id;
    int32_t n_ids;           /* largest id + 1 */
    tok_strmap vocab;        /* raw bytes -> id (model vocab only) */
    tok_mergemap merges;
    int32_t byte_id[256];    /* byte-level: id of the single-byte token */
    int32_t bf_id[256];      /* byte_fallback: id of <0xNN> */
    char **tok_str;          /* (n_ids,) token as written in the JSON, or NULL */
    char **tok_raw;          /* (n_ids,) decoded bytes of each token */
    uint32_t *tok_rawlen;    /* (n_ids,) */
    unsigned char *tok_flags;/* (n_ids,) 1 = added, 2 = special */
    tok_added *added;        /* (n_added,) */
    int n_added;
    tok_strmap added_map;    /* content -> index into added[] */
    size_t added_lens[64];   /* distinct lengths, longest first */
    int n_added_lens;
    uint8_t added_first[256];/* 1 when some added token starts with that byte */
    tok_norm_step *norm; int n_norm;
    tok_pre_step *pre; int n_pre;
    int32_t pre_ids[8], post_ids[8]; int n_pre_ids, n_post_ids;
    int dec_strip_start;     /* decoder Strip: leading spaces to drop */
    tok_cache_ent *cache;    /* (CACHE_SLOTS,) */
    pthread_mutex_t cache_mu;
};

/* ---- per-call scratch of tok_encode -------------------------------------------- */
typedef struct { int32_t id, prev, next, len; } tok_sym;
typedef struct { int32_t rank, pos, id; } tok_cand;

typedef struct { size_t *v; size_t n, cap; } tok_piecelist;   /* v: (cap,) start,len pairs */

typedef struct {           /* per-call scratch */
    tok_sym *syms; size_t syms_cap;
    tok_cand *heap; size_t heap_n, heap_cap;
    tok_piecelist pl[2];   /* pre-tokenizer pieces, ping-pong */
    char *nbuf; size_t nbuf_cap;                 /* normalized segment */
    pcre2_match_data *md;
    tok_ids *out;
} tok_work;

/* Appends id to o (doubling); -1 when out of memory.  Inline: BPE's inner loop. */
static inline int tok_push_id(tok_ids *o, int32_t id) {
    if (o->n == o->cap) {
        size_t c = o->cap ? o->cap * 2 : 256;
        int32_t *p = realloc(o->ids, c * sizeof *p);
        if (!p) return -1;
        o->ids = p; o->cap = c;
    }
    o->ids[o->n++] = id;
    return 0;
}
/* Makes *p hold at least need elements of elsz bytes (doubling); -1 when out of memory. */
int tok_grow(void **p, size_t *cap, size_t need, size_t elsz);

/* ---- the encode pipeline --------------------------------------------------------- */
/* BPE on one pre-tokenized piece (word cache first); appends its ids to w->out. */
int tok_bpe_word(tok_tokenizer *t, tok_work *w, const char *s, size_t len);
/* Runs the normalizer steps on seg (first: it starts the input); *outp is seg
 * itself or w->nbuf.  -1 when out of memory. */
int tok_normalize(const tok_tokenizer *t, tok_work *w, const char *seg, size_t len, int first,
                  const char **outp, size_t *outlen);
/* Normalizes, pre-tokenizes and BPE-encodes one segment between added tokens. */
int tok_encode_segment(tok_tokenizer *t, tok_work *w, const char *seg, size_t len, int first);

/* ---- loading: the pipeline's steps from tokenizer.json (tok_config.c) ------------- */
/* Each adds its steps to t; -1 with err naming path. */
int tok_load_norm(tok_tokenizer *t, const cJSON *p, const char *path, char *err, size_t cap);
int tok_load_pre(tok_tokenizer *t, const cJSON *p, const char *path, char *err, size_t cap);
int tok_load_post(tok_tokenizer *t, const cJSON *p, const char *path, char *err, size_t cap);
int tok_load_decoder(tok_tokenizer *t, const cJSON *p, const char *path, char *err, size_t cap);
/* o[k] as a string, or NULL; 1 when o[k] is true. */
static inline const char *tok_jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static inline int tok_jtrue(const cJSON *o, const char *k) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k)); }

#endif
