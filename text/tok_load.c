/* tok_load.c: building a tokenizer from tokenizer.json (see text/tokenizer.h):
 * the model's header checks, the pipeline's steps (tok_config.c), the ids of
 * the vocab and the added tokens, the vocab map (byte-level vocabs stored as
 * raw bytes: the GPT-2 byte -> char map undone), the merge map and the added
 * tokens' matcher.  Every error names the file.  Reads the file given to
 * tok_load; touches only the tokenizer it builds. */
#include "text/tok_internal.h"
#include "base/errbuf.h"
#include "base/file.h"
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_ID 16000000

/* GPT-2 byte <-> unicode map: printable bytes map to themselves, the others
 * to U+0100 + n in byte order. */
static int bl_char_to_byte(uint32_t cp) {
    if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255)) return (int)cp;
    if (cp < 256 || cp > 323) return -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) continue;
        if ((uint32_t)(256 + n) == cp) return b;
        n++;
    }
    return -1;
}

/* Writes the raw bytes a vocab string stands for into out (cap >= len). */
static size_t bl_decode_str(const int16_t *rev, const char *s, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) { out[o++] = s[i++]; continue; }
        if (cp >= 0 && cp < 324 && rev[cp] >= 0) out[o++] = (char)rev[cp];
        else { memcpy(out + o, s + i, (size_t)k); o += (size_t)k; }
        i += (size_t)k;
    }
    return o;
}

/* Records id's strings; for byte-level vocab entries raw is the byte form. */
static int set_token(tok_tokenizer *t, int32_t id, const char *s, const char *raw, size_t rawlen, int flags) {
    if (t->tok_str[id]) { free(t->tok_str[id]); free(t->tok_raw[id]); }
    t->tok_str[id] = strdup(s);
    t->tok_raw[id] = malloc(rawlen + 1);
    if (!t->tok_str[id] || !t->tok_raw[id]) return -1;
    memcpy(t->tok_raw[id], raw, rawlen); t->tok_raw[id][rawlen] = 0;
    t->tok_rawlen[id] = (uint32_t)rawlen;
    t->tok_flags[id] = (unsigned char)flags;
    return 0;
}

/* What the decoder turns token string k into: byte-level chars to bytes,
 * <0xNN> to one byte, U+2581 to a space.  Writes into out (>= kl bytes). */
static size_t token_raw(const tok_tokenizer *t, const int16_t *rev, const char *k, size_t kl, char *out) {
    if (t->byte_level) return bl_decode_str(rev, k, kl, out);
    if (kl == 6 && k[0] == '<' && k[1] == '0' && k[2] == 'x' && k[5] == '>') {
        char hx[3] = {k[3], k[4], 0}, *e;
        unsigned v = (unsigned)strtoul(hx, &e, 16);
        if (*e == 0 && t->byte_fallback) { out[0] = (char)v; return 1; }
    }
    size_t o = 0;
    for (size_t i = 0; i < kl;) {
        if (i + 3 <= kl && !memcmp(k + i, "\xE2\x96\x81", 3)) { out[o++] = ' '; i += 3; }
        else out[o++] = k[i++];
    }
    return o;
}

/* What one load carries between its steps. */
typedef struct loader {
    tok_tokenizer *t;
    const char *path;
    char *err; size_t cap;
    int16_t rev[324];        /* GPT-2 char -> byte, -1 where none */
    char *tmp; size_t tmpcap;/* (tmpcap,) byte forms of token strings */
} loader;

/* Makes ld->tmp hold need bytes; -1 (err set) when out of memory. */
static int tmp_fit(loader *ld, size_t need) {
    if (need <= ld->tmpcap && ld->tmp) return 0;
    free(ld->tmp);
    ld->tmpcap = need * 2;
    ld->tmp = malloc(ld->tmpcap);
    if (ld->tmp) return 0;
    ld->tmpcap = 0;
    return errbuf_fail(ld->err, ld->cap, "%s: out of memory", ld->path);
}

/* The parsed JSON, or NULL with err (the line of a syntax error). */
static cJSON *parse(const char *buf, size_t len, const char *path, char *err, size_t cap) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        size_t off = end ? (size_t)(end - buf) : 0, line = 1;
        if (off > len) off = len;
        for (size_t i = 0; i < off; i++) line += buf[i] == '\n';
        errbuf_fail(err, cap, "%s:%zu: malformed JSON (byte %zu of %zu)", path, line, off, len);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        errbuf_fail(err, cap, "%s: top level is not a JSON object", path);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* The "model" object if it is a BPE model we support, else NULL with err. */
static const cJSON *check_model(const cJSON *root, const char *path, char *err, size_t cap) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) { errbuf_fail(err, cap, "%s: no \"model\" object", path); return NULL; }
    const char *mtype = tok_jstr(model, "type");
    if (mtype && strcmp(mtype, "BPE")) { errbuf_fail(err, cap, "%s: model type '%s' is not supported (BPE only)", path, mtype); return NULL; }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(model, "vocab"))) { errbuf_fail(err, cap, "%s: model has no vocab object", path); return NULL; }
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(model, "merges"))) { errbuf_fail(err, cap, "%s: BPE model has no merges list", path); return NULL; }
    const char *csp = tok_jstr(model, "continuing_subword_prefix"), *eow = tok_jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow)) { errbuf_fail(err, cap, "%s: continuing_subword_prefix/end_of_word_suffix are not supported", path); return NULL; }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0) { errbuf_fail(err, cap, "%s: BPE dropout is not supported", path); return NULL; }
    return model;
}

/* Sets t->n_ids (largest id + 1 over the vocab and the added tokens, checked)
 * and *nv (vocab entries), and allocates the per-id arrays. */
static int size_ids(loader *ld, const cJSON *vocab, const cJSON *added, int *nv) {
    tok_tokenizer *t = ld->t;
    const char *path = ld->path;
    char *err = ld->err; size_t cap = ld->cap;
    int32_t maxid = -1;
    const cJSON *it;
    *nv = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= MAX_ID)
            return errbuf_fail(err, cap, "%s: vocab entry \"%.40s\" has no valid id", path, it->string ? it->string : "");
        if ((int32_t)it->valuedouble > maxid) maxid = (int32_t)it->valuedouble;
        (*nv)++;
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *c = tok_jstr(it, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= MAX_ID || !c || !*c)
            return errbuf_fail(err, cap, "%s: added_tokens entry without a valid id and content", path);
        /* matched inside the text: invalid UTF-8 could split a character */
        if (!tok_utf8_valid(c, strlen(c))) return errbuf_fail(err, cap, "%s: added token \"%.40s\" is not valid UTF-8", path, c);
        if ((int32_t)id->valuedouble > maxid) maxid = (int32_t)id->valuedouble;
    }
    if (maxid < 0) return errbuf_fail(err, cap, "%s: empty vocab", path);
    t->n_ids = maxid + 1;
    for (int i = 0; i < t->n_pre_ids + t->n_post_ids; i++) {
        int32_t id = i < t->n_pre_ids ? t->pre_ids[i] : t->post_ids[i - t->n_pre_ids];
        if (id < 0 || id >= t->n_ids) return errbuf_fail(err, cap, "%s: post_processor id %d is not in the vocab", path, id);
    }
    t->tok_str = calloc((size_t)t->n_ids, sizeof *t->tok_str);
    t->tok_raw = calloc((size_t)t->n_ids, sizeof *t->tok_raw);
    t->tok_rawlen = calloc((size_t)t->n_ids, sizeof *t->tok_rawlen);
    t->tok_flags = calloc((size_t)t->n_ids, 1);
    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    if (!t->tok_str || !t->tok_raw || !t->tok_rawlen || !t->tok_flags || !t->cache ||
        tok_map_init(&t->vocab, (size_t)*nv) < 0 || tok_map_init(&t->added_map, 64) < 0)
        return errbuf_fail(err, cap, "%s: out of memory", path);
    return 0;
}

/* The vocab map, each id's strings, the byte and byte-fallback ids, unk. */
static int load_vocab(loader *ld, const cJSON *model) {
    tok_tokenizer *t = ld->t;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(model, "vocab")) {
        const char *k = it->string ? it->string : "";
        size_t kl = strlen(k);
        if (tmp_fit(ld, kl + 1)) return -1;
        size_t rl = token_raw(t, ld->rev, k, kl, ld->tmp);
        int32_t id = (int32_t)it->valuedouble;
        if (set_token(t, id, k, ld->tmp, rl, 0) < 0) return errbuf_fail(ld->err, ld->cap, "%s: out of memory", ld->path);
        const char *key = t->byte_level ? ld->tmp : k;
        size_t keyl = t->byte_level ? rl : kl;
        if (tok_map_put(&t->vocab, key, keyl, id) < 0) return errbuf_fail(ld->err, ld->cap, "%s: out of memory", ld->path);
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b, hx[8];
        t->byte_id[b] = tok_map_get(&t->vocab, &c, 1);
        snprintf(hx, sizeof hx, "<0x%02X>", b);
        t->bf_id[b] = t->byte_level ? -1 : tok_map_get(&t->vocab, hx, strlen(hx));
    }
    const char *unk = tok_jstr(model, "unk_token");
    if (unk) t->unk_id = tok_map_get(&t->vocab, unk, strlen(unk));
    return 0;
}

/* Merge i as its two strings ("a b" or ["a", "b"]); 0, or -1 when malformed. */
static int merge_pair(const cJSON *it, const char **a, size_t *al, const char **b, size_t *bl) {
    if (cJSON_IsString(it)) {
        const char *s = it->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) return -1;
        *a = s; *al = (size_t)(sp - s); *b = sp + 1; *bl = strlen(*b);
        return 0;
    }
    if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
        cJSON_IsString(it->child) && cJSON_IsString(it->child->next)) {
        *a = it->child->valuestring; *al = strlen(*a);
        *b = it->child->next->valuestring; *bl = strlen(*b);
        return 0;
    }
    return -1;
}

/* The merge map: (left id, right id) -> (rank, merged id); the first of
 * duplicate pairs wins. */
static int load_merges(loader *ld, const cJSON *merges) {
    tok_tokenizer *t = ld->t;
    const char *path = ld->path;
    size_t nm = (size_t)cJSON_GetArraySize(merges), mcap = 16;
    while (mcap < nm * 2 + 2) mcap <<= 1;
    t->merges.slots = malloc(mcap * sizeof *t->merges.slots);
    if (!t->merges.slots) return errbuf_fail(ld->err, ld->cap, "%s: out of memory", path);
    for (size_t i = 0; i < mcap; i++) t->merges.slots[i].key = TOK_MM_EMPTY;
    t->merges.mask = mcap - 1;
    int32_t rank = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, merges) {
        const char *a = NULL, *b = NULL; size_t al = 0, bl = 0;
        if (merge_pair(it, &a, &al, &b, &bl))
            return errbuf_fail(ld->err, ld->cap, "%s: merge %d is not \"a b\" or [\"a\", \"b\"]", path, rank);
        if (tmp_fit(ld, al + bl + 1)) return -1;
        char *tmp = ld->tmp;
        int32_t ia, ib, in;
        if (t->byte_level) {
            size_t ral = bl_decode_str(ld->rev, a, al, tmp); ia = tok_map_get(&t->vocab, tmp, ral);
            size_t rbl = bl_decode_str(ld->rev, b, bl, tmp + ral); ib = tok_map_get(&t->vocab, tmp + ral, rbl);
            in = tok_map_get(&t->vocab, tmp, ral + rbl);
        } else {
            memcpy(tmp, a, al); memcpy(tmp + al, b, bl);
            ia = tok_map_get(&t->vocab, a, al); ib = tok_map_get(&t->vocab, b, bl);
            in = tok_map_get(&t->vocab, tmp, al + bl);
        }
        if (ia < 0 || ib < 0 || in < 0)
            return errbuf_fail(ld->err, ld->cap, "%s: merge %d (\"%.*s\" \"%.*s\") uses a token missing from the vocab",
                               path, rank, (int)(al > 40 ? 40 : al), a, (int)(bl > 40 ? 40 : bl), b);
        uint64_t k = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
        size_t j = tok_mm_hash(k) & t->merges.mask;
        while (t->merges.slots[j].key != TOK_MM_EMPTY && t->merges.slots[j].key != k) j = (j + 1) & t->merges.mask;
        if (t->merges.slots[j].key == TOK_MM_EMPTY) t->merges.slots[j] = (tok_mm_slot){k, rank, in};
        rank++;
    }
    return 0;
}

/* Records length cl among the added tokens' distinct lengths (longest first). */
static int add_length(loader *ld, size_t cl) {
    tok_tokenizer *t = ld->t;
    int k = 0;
    while (k < t->n_added_lens && t->added_lens[k] > cl) k++;
    if (k < t->n_added_lens && t->added_lens[k] == cl) return 0;
    if (t->n_added_lens >= 64) return errbuf_fail(ld->err, ld->cap, "%s: added tokens of more than 64 distinct lengths", ld->path);
    memmove(t->added_lens + k + 1, t->added_lens + k, (size_t)(t->n_added_lens - k) * sizeof(size_t));
    t->added_lens[k] = cl; t->n_added_lens++;
    return 0;
}

/* The added tokens: their strings, the content -> index map, and what the
 * leftmost-longest matcher needs (first bytes, distinct lengths). */
static int load_added(loader *ld, const cJSON *added) {
    tok_tokenizer *t = ld->t;
    int na = cJSON_GetArraySize(added);
    t->added = calloc((size_t)(na > 0 ? na : 1), sizeof *t->added);
    if (!t->added) return errbuf_fail(ld->err, ld->cap, "%s: out of memory", ld->path);
    const cJSON *it;
    cJSON_ArrayForEach(it, added) {
        const char *c = tok_jstr(it, "content");
        int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        int special = tok_jtrue(it, "special");
        size_t cl = strlen(c);
        if (tmp_fit(ld, cl + 1)) return -1;
        size_t rl = token_raw(t, ld->rev, c, cl, ld->tmp);
        tok_added *a = &t->added[t->n_added];
        a->s = strdup(c); a->len = cl; a->id = id; a->special = special;
        if (!a->s || set_token(t, id, c, ld->tmp, rl, 1 | (special ? 2 : 0)) < 0 ||
            tok_map_put(&t->added_map, c, cl, t->n_added) < 0) return errbuf_fail(ld->err, ld->cap, "%s: out of memory", ld->path);
        t->n_added++;
        t->added_first[(unsigned char)c[0]] = 1;
        if (add_length(ld, cl)) return -1;
    }
    return 0;
}

/* The normalizer, pre_tokenizer, post_processor and decoder steps. */
static int load_steps(tok_tokenizer *t, const cJSON *root, const char *path, char *err, size_t cap) {
    if (tok_load_norm(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), path, err, cap) < 0) return -1;
    if (tok_load_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), path, err, cap) < 0) return -1;
    if (tok_load_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), path, err, cap) < 0) return -1;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (tok_load_decoder(t, dec, path, err, cap) < 0) return -1;
    if (cJSON_IsObject(dec) && tok_jstr(dec, "type") && !strcmp(tok_jstr(dec, "type"), "ByteLevel")) t->byte_level = 1;
    return 0;
}

tok_tokenizer *tok_load(const char *path, char *err, size_t cap) {
    size_t len = 0;
    char *buf = file_read_all(path, 0, &len, err, cap);
    if (!buf) return NULL;
    tok_tokenizer *t = tok_load_mem(buf, len, path, err, cap);
    free(buf);
    return t;
}

tok_tokenizer *tok_load_mem(const char *buf, size_t len, const char *path, char *err, size_t cap) {
    if (err && cap) err[0] = 0;
    if (!path) path = "(memory)";
    loader ld = { .path = path, .err = err, .cap = cap };
    const cJSON *model;
    cJSON *root = parse(buf, len, path, err, cap);
    if (!root || !(model = check_model(root, path, err, cap))) goto fail;
    tok_tokenizer *t = ld.t = calloc(1, sizeof *t);
    if (!t) { errbuf_fail(err, cap, "%s: out of memory", path); goto fail; }
    pthread_mutex_init(&t->cache_mu, NULL);
    t->unk_id = -1;
    t->ignore_merges = tok_jtrue(model, "ignore_merges");
    t->byte_fallback = tok_jtrue(model, "byte_fallback");
    t->fuse_unk = tok_jtrue(model, "fuse_unk");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    int nv;
    if (load_steps(t, root, path, err, cap) || size_ids(&ld, cJSON_GetObjectItemCaseSensitive(model, "vocab"), added, &nv))
        goto fail;
    for (int i = 0; i < 324; i++) ld.rev[i] = (int16_t)bl_char_to_byte((uint32_t)i);
    if (tmp_fit(&ld, 256) || load_vocab(&ld, model) ||
        load_merges(&ld, cJSON_GetObjectItemCaseSensitive(model, "merges")) || load_added(&ld, added)) goto fail;
    free(ld.tmp);
    cJSON_Delete(root);
    return t;
fail:
    free(ld.tmp);
    cJSON_Delete(root);
    tok_free(ld.t);
    return NULL;
}
