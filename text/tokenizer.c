/* text/tokenizer.c — Hugging Face tokenizer.json BPE tokenizer: the public
 * calls (see text/tokenizer.h).  The pipeline of one tok_encode (the order HF
 * `tokenizers` uses):
 *   raw bytes -> UTF-8 repair (U+FFFD, Python's "replace" policy; tok_utf8.c)
 *   -> split on added tokens (leftmost-longest; here) -> for each other segment
 *      (tok_pretok.c): normalizer (NFC ...; tok_normalize.c) -> pre_tokenizer
 *      (PCRE2 Split, ByteLevel) -> BPE per piece (vocab/merge hash maps,
 *      word cache, heap merge loop; tok_bpe.c, tok_map.c)
 *   -> post_processor ids (TemplateProcessing) when TOK_ADD_SPECIAL.
 * Byte-level models keep their vocab as raw bytes (the GPT-2 byte->char map
 * is undone at load, tok_load.c), so BPE starts from single bytes and decode
 * is a copy.  Touches only its own memory.
 */
#include "text/tok_internal.h"
#include <string.h>

int tok_encode(tok_tokenizer *t, const char *text, size_t len, int flags, tok_ids *out) {
    int rc = -1;
    tok_work w; memset(&w, 0, sizeof w);
    w.out = out; out->n = 0;
    char *fixed = NULL; size_t flen;
    if (tok_utf8_repair(text, len, &fixed, &flen) < 0) return -1;
    const char *s = fixed ? fixed : text;
    if (t->n_pre) {
        w.md = pcre2_match_data_create(8, NULL);
        if (!w.md) goto done;
    }
    if (flags & TOK_ADD_SPECIAL)
        for (int i = 0; i < t->n_pre_ids; i++) if (tok_push_id(out, t->pre_ids[i]) < 0) goto done;
    size_t segstart = 0;
    for (size_t i = 0; i < flen; i++) {
        if (!t->added_first[(unsigned char)s[i]]) continue;
        int hit = -1; size_t hl = 0;
        for (int k = 0; k < t->n_added_lens; k++) {
            size_t L = t->added_lens[k];
            if (i + L > flen) continue;
            int32_t a = tok_map_get(&t->added_map, s + i, L);
            if (a >= 0) { hit = a; hl = L; break; }
        }
        if (hit < 0) continue;
        if (tok_encode_segment(t, &w, s + segstart, i - segstart, segstart == 0) < 0) goto done;
        if (tok_push_id(out, t->added[hit].id) < 0) goto done;
        i += hl - 1; segstart = i + 1;
    }
    if (tok_encode_segment(t, &w, s + segstart, flen - segstart, segstart == 0) < 0) goto done;
    if (flags & TOK_ADD_SPECIAL)
        for (int i = 0; i < t->n_post_ids; i++) if (tok_push_id(out, t->post_ids[i]) < 0) goto done;
    rc = 0;
done:
    free(fixed); free(w.syms); free(w.heap); free(w.pl[0].v); free(w.pl[1].v); free(w.nbuf);
    if (w.md) pcre2_match_data_free(w.md);
    return rc;
}

long tok_count(tok_tokenizer *t, const char *text, size_t len, int flags) {
    tok_ids ids = {0};
    long n = tok_encode(t, text, len, flags, &ids) < 0 ? -1 : (long)ids.n;
    tok_ids_free(&ids);
    return n;
}

void tok_ids_free(tok_ids *ids) {
    if (!ids) return;
    free(ids->ids); ids->ids = NULL; ids->n = ids->cap = 0;
}

/* ---- decode and lookups ------------------------------------------------------ */

size_t tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n, int flags,
                  char *out, size_t cap) {
    size_t o = 0;
    int strip = t->dec_strip_start;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->tok_raw[id]) continue;
        if ((flags & TOK_SKIP_SPECIAL) && (t->tok_flags[id] & 2)) continue;
        const char *r = t->tok_raw[id]; size_t rl = t->tok_rawlen[id];
        while (strip > 0 && rl > 0 && *r == ' ') { r++; rl--; strip--; }
        if (rl) strip = 0;
        for (size_t k = 0; k < rl; k++, o++) if (o + 1 < cap) out[o] = r[k];
    }
    if (cap) out[o < cap ? o : cap - 1] = 0;
    return o;
}

int32_t tok_token_to_id(const tok_tokenizer *t, const char *token) {
    int32_t a = tok_special_id(t, token);
    if (a >= 0) return a;
    for (int32_t i = 0; i < t->n_ids; i++)   /* rare call: a scan is fine */
        if (t->tok_str[i] && strcmp(t->tok_str[i], token) == 0) return i;
    return -1;
}
const char *tok_id_to_token(const tok_tokenizer *t, int32_t id) {
    return (id >= 0 && id < t->n_ids) ? t->tok_str[id] : NULL;
}
int32_t tok_vocab_size(const tok_tokenizer *t) { return t->n_ids; }
int32_t tok_special_id(const tok_tokenizer *t, const char *content) {
    int32_t a = tok_map_get(&t->added_map, content, strlen(content));
    return a >= 0 ? t->added[a].id : -1;
}

/* ---- free ------------------------------------------------------------------ */

void tok_free(tok_tokenizer *t) {
    if (!t) return;
    tok_map_free(&t->vocab); tok_map_free(&t->added_map);
    free(t->merges.slots);
    if (t->tok_str) for (int32_t i = 0; i < t->n_ids; i++) { free(t->tok_str[i]); free(t->tok_raw[i]); }
    free(t->tok_str); free(t->tok_raw); free(t->tok_rawlen); free(t->tok_flags);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].s);
    free(t->added);
    for (int i = 0; i < t->n_norm; i++) { free(t->norm[i].a); free(t->norm[i].b); }
    free(t->norm);
    for (int i = 0; i < t->n_pre; i++) { pcre2_code_free(t->pre[i].re); pcre2_code_free(t->pre[i].re_wide); }
    free(t->pre);
    free(t->cache);
    pthread_mutex_destroy(&t->cache_mu);
    free(t);
}
