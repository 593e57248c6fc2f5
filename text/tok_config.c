/* tok_config.c: the pipeline's steps from tokenizer.json (see
 * text/tok_internal.h): normalizer, pre_tokenizer (regexes compiled by PCRE2,
 * widened to Unicode 15 where PCRE2's tables are older), post_processor and
 * decoder; anything unsupported is a load error naming the file.  Touches only
 * the tokenizer it fills. */
#include "text/tok_internal.h"
#include "base/errbuf.h"
#include <stdio.h>
#include <string.h>

static const char *GPT2_REGEX =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Letters and numbers that Unicode 15.0 added: PCRE2 10.42 knows Unicode 14
 * only, while HF `tokenizers` (Oniguruma) classifies them, so \p{L} and \p{N}
 * are widened with these ranges (where utf8proc 2.8, Unicode 15.0, and PCRE2
 * disagree; tests/data/tokenizer/regress_*.jsonl holds HF's ids for such
 * text).  Letters added in Unicode 15.1 and 16.0 remain a known difference
 * (tests/data/tokenizer/known_diff_*.jsonl). */
static const char *U15_L = "\\x{1123F}-\\x{11240}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}"
    "\\x{13441}-\\x{13446}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}"
    "\\x{2B739}\\x{31350}-\\x{323AF}";
static const char *U15_N = "\\x{11F50}-\\x{11F59}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}";

/* Rewrites \p{L} and \p{N} of pattern pat to include the Unicode 15 ranges
 * when PCRE2's tables are older.  Returns a malloc'd pattern or NULL. */
static char *widen_classes(const char *pat) {
    char ver[32] = "";
    pcre2_config(PCRE2_CONFIG_UNICODE_VERSION, ver);
    if (atoi(ver) >= 15) return NULL;
    size_t n = strlen(pat), cap = n * 8 + 64, o = 0;
    for (const char *q = pat; (q = strstr(q, "\\p{")); q++) cap += 400;
    char *out = malloc(cap);
    if (!out) return NULL;
    int in_class = 0;
    for (size_t i = 0; i < n;) {
        const char *extra = NULL;
        if (pat[i] == '\\' && i + 1 < n) {
            if (!strncmp(pat + i, "\\p{L}", 5)) extra = U15_L;
            else if (!strncmp(pat + i, "\\p{N}", 5)) extra = U15_N;
            if (!extra) { out[o++] = pat[i++]; out[o++] = pat[i++]; continue; }
            o += (size_t)snprintf(out + o, cap - o, in_class ? "%.5s%s" : "[%.5s%s]", pat + i, extra);
            i += 5;
            continue;
        }
        if (pat[i] == '[' && !in_class) in_class = 1;
        else if (pat[i] == ']' && in_class) in_class = 0;
        out[o++] = pat[i++];
    }
    out[o] = 0;
    return out;
}

static pcre2_code *compile_re(const char *pat, size_t plen, int literal, const char *path, char *err, size_t cap) {
    int ec; PCRE2_SIZE eo;
    uint32_t opt = literal ? PCRE2_LITERAL | PCRE2_UTF : PCRE2_UTF | PCRE2_UCP;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, plen, opt, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160]; pcre2_get_error_message(ec, msg, sizeof msg);
        errbuf_fail(err, cap, "%s: pre_tokenizer regex rejected by PCRE2 at offset %zu: %s", path, (size_t)eo, (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* falls back to the interpreter if it fails */
    return re;
}

/* The widened pattern costs ~10% on ASCII text, and the Unicode 15 ranges are
 * all 4-byte UTF-8, so it only runs on segments that contain such bytes. */
static int add_pre(tok_tokenizer *t, const char *pat, size_t plen, int literal, int behavior,
                   const char *path, char *err, size_t cap) {
    pcre2_code *re = compile_re(pat, plen, literal, path, err, cap), *wre = NULL;
    if (!re) return -1;
    char *wide = literal ? NULL : widen_classes(pat);
    if (wide && strcmp(wide, pat)) {
        wre = compile_re(wide, PCRE2_ZERO_TERMINATED, 0, path, err, cap);
        if (!wre) { free(wide); pcre2_code_free(re); return -1; }
    }
    free(wide);
    tok_pre_step *p = realloc(t->pre, (size_t)(t->n_pre + 1) * sizeof *p);
    if (!p) { pcre2_code_free(re); pcre2_code_free(wre); errbuf_fail(err, cap, "%s: out of memory", path); return -1; }
    t->pre = p; t->pre[t->n_pre++] = (tok_pre_step){re, wre, behavior};
    return 0;
}

static int add_norm(tok_tokenizer *t, tok_norm_step s, const char *path, char *err, size_t cap);

int tok_load_pre(tok_tokenizer *t, const cJSON *p, const char *path, char *err, size_t cap) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = tok_jstr(p, "type");
    if (!type) { errbuf_fail(err, cap, "%s: pre_tokenizer without a type", path); return -1; }
    if (!strcmp(type, "Sequence")) {
        const cJSON *it, *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(arr)) { errbuf_fail(err, cap, "%s: pre_tokenizer Sequence without pretokenizers", path); return -1; }
        cJSON_ArrayForEach(it, arr) if (tok_load_pre(t, it, path, err, cap) < 0) return -1;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        t->byte_level = 1;
        if (tok_jtrue(p, "add_prefix_space")) { errbuf_fail(err, cap, "%s: ByteLevel add_prefix_space=true is not supported", path); return -1; }
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        if (!ur || cJSON_IsTrue(ur)) return add_pre(t, GPT2_REGEX, PCRE2_ZERO_TERMINATED, 0, BEH_ISOLATED, path, err, cap);
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        /* = Replace ' ' -> U+2581, prepend U+2581, optionally split before each U+2581 */
        const char *rep = tok_jstr(p, "replacement"), *scheme = tok_jstr(p, "prepend_scheme");
        if (!rep) rep = "\xE2\x96\x81";
        if (t->n_pre) { errbuf_fail(err, cap, "%s: Metaspace after another pre_tokenizer is not supported", path); return -1; }
        if (!*rep || !tok_utf8_valid(rep, strlen(rep))) { errbuf_fail(err, cap, "%s: bad Metaspace replacement", path); return -1; }
        int kind = NORM_META_ALWAYS;
        if (scheme && !strcmp(scheme, "first")) kind = NORM_META_FIRST;
        else if (scheme && !strcmp(scheme, "never")) kind = 0;
        else if (!scheme && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space"))) kind = 0;
        else if (scheme && strcmp(scheme, "always")) { errbuf_fail(err, cap, "%s: Metaspace prepend_scheme '%s' is not supported", path, scheme); return -1; }
        if (add_norm(t, (tok_norm_step){NORM_REPLACE, strdup(" "), strdup(rep), 1, strlen(rep)}, path, err, cap) < 0) return -1;
        if (kind && add_norm(t, (tok_norm_step){kind, strdup(rep), 0, strlen(rep), 0}, path, err, cap) < 0) return -1;
        const cJSON *split = cJSON_GetObjectItemCaseSensitive(p, "split");
        if (!split || cJSON_IsTrue(split)) return add_pre(t, rep, PCRE2_ZERO_TERMINATED, 1, BEH_MERGED_NEXT, path, err, cap);
        return 0;
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *beh = tok_jstr(p, "behavior");
        int b = 0;
        if (beh && !strcmp(beh, "Isolated")) b = BEH_ISOLATED;
        else if (beh && !strcmp(beh, "Removed")) b = BEH_REMOVED;
        else if (beh && !strcmp(beh, "MergedWithPrevious")) b = BEH_MERGED_PREV;
        else if (beh && !strcmp(beh, "MergedWithNext")) b = BEH_MERGED_NEXT;
        if (!b) { errbuf_fail(err, cap, "%s: Split behavior '%s' is not supported", path, beh ? beh : "(none)"); return -1; }
        if (tok_jtrue(p, "invert")) { errbuf_fail(err, cap, "%s: Split invert=true is not supported", path); return -1; }
        const char *re = tok_jstr(pat, "Regex"), *lit = tok_jstr(pat, "String");
        if (re) return add_pre(t, re, PCRE2_ZERO_TERMINATED, 0, b, path, err, cap);
        if (lit && *lit) return add_pre(t, lit, PCRE2_ZERO_TERMINATED, 1, b, path, err, cap);
        errbuf_fail(err, cap, "%s: Split without a Regex or String pattern", path); return -1;
    }
    errbuf_fail(err, cap, "%s: pre_tokenizer type '%s' is not supported", path, type);
    return -1;
}

static int add_norm(tok_tokenizer *t, tok_norm_step s, const char *path, char *err, size_t cap) {
    tok_norm_step *p = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *p);
    if (!p) { free(s.a); free(s.b); errbuf_fail(err, cap, "%s: out of memory", path); return -1; }
    t->norm = p; t->norm[t->n_norm++] = s;
    return 0;
}

int tok_load_norm(tok_tokenizer *t, const cJSON *p, const char *path, char *err, size_t cap) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = tok_jstr(p, "type");
    if (!type) { errbuf_fail(err, cap, "%s: normalizer without a type", path); return -1; }
    if (!strcmp(type, "Sequence")) {
        const cJSON *it, *arr = cJSON_GetObjectItemCaseSensitive(p, "normalizers");
        if (!cJSON_IsArray(arr)) { errbuf_fail(err, cap, "%s: normalizer Sequence without normalizers", path); return -1; }
        cJSON_ArrayForEach(it, arr) if (tok_load_norm(t, it, path, err, cap) < 0) return -1;
        return 0;
    }
    if (!strcmp(type, "NFC")) return add_norm(t, (tok_norm_step){NORM_NFC, 0, 0, 0, 0}, path, err, cap);
    if (!strcmp(type, "NFKC")) return add_norm(t, (tok_norm_step){NORM_NFKC, 0, 0, 0, 0}, path, err, cap);
    if (!strcmp(type, "Replace")) {
        const char *a = tok_jstr(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "String");
        const char *b = tok_jstr(p, "content");
        if (!a || !*a || !b) { errbuf_fail(err, cap, "%s: Replace normalizer needs a String pattern and content", path); return -1; }
        if (!tok_utf8_valid(a, strlen(a)) || !tok_utf8_valid(b, strlen(b))) { errbuf_fail(err, cap, "%s: Replace normalizer strings are not valid UTF-8", path); return -1; }
        return add_norm(t, (tok_norm_step){NORM_REPLACE, strdup(a), strdup(b), strlen(a), strlen(b)}, path, err, cap);
    }
    if (!strcmp(type, "Prepend")) {
        const char *a = tok_jstr(p, "prepend");
        if (!a) { errbuf_fail(err, cap, "%s: Prepend normalizer without 'prepend'", path); return -1; }
        if (!tok_utf8_valid(a, strlen(a))) { errbuf_fail(err, cap, "%s: Prepend string is not valid UTF-8", path); return -1; }
        return add_norm(t, (tok_norm_step){NORM_PREPEND, strdup(a), 0, strlen(a), 0}, path, err, cap);
    }
    errbuf_fail(err, cap, "%s: normalizer type '%s' is not supported", path, type);
    return -1;
}

int tok_load_post(tok_tokenizer *t, const cJSON *p, const char *path, char *err, size_t cap) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = tok_jstr(p, "type");
    if (!type) { errbuf_fail(err, cap, "%s: post_processor without a type", path); return -1; }
    if (!strcmp(type, "ByteLevel")) return 0;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it, *arr = cJSON_GetObjectItemCaseSensitive(p, "processors");
        cJSON_ArrayForEach(it, arr) if (tok_load_post(t, it, path, err, cap) < 0) return -1;
        return 0;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *it, *single = cJSON_GetObjectItemCaseSensitive(p, "single");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        int after = 0;
        cJSON_ArrayForEach(it, single) {
            if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) { after = 1; continue; }
            const char *name = tok_jstr(cJSON_GetObjectItemCaseSensitive(it, "SpecialToken"), "id");
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, name ? name : ""), "ids");
            if (!name || !cJSON_IsArray(ids)) { errbuf_fail(err, cap, "%s: TemplateProcessing item not understood", path); return -1; }
            const cJSON *x;
            cJSON_ArrayForEach(x, ids) {
                int32_t *arr = after ? t->post_ids : t->pre_ids;
                int *n = after ? &t->n_post_ids : &t->n_pre_ids;
                if (*n >= 8 || !cJSON_IsNumber(x)) { errbuf_fail(err, cap, "%s: TemplateProcessing too long", path); return -1; }
                arr[(*n)++] = (int32_t)x->valuedouble;
            }
        }
        return 0;
    }
    errbuf_fail(err, cap, "%s: post_processor type '%s' is not supported", path, type);
    return -1;
}

int tok_load_decoder(tok_tokenizer *t, const cJSON *p, const char *path, char *err, size_t cap) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = tok_jstr(p, "type");
    if (!type) { errbuf_fail(err, cap, "%s: decoder without a type", path); return -1; }
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "decoders"))
            if (tok_load_decoder(t, it, path, err, cap) < 0) return -1;
        return 0;
    }
    if (!strcmp(type, "ByteLevel") || !strcmp(type, "ByteFallback") || !strcmp(type, "Fuse")) return 0;
    if (!strcmp(type, "Replace")) {
        const char *a = tok_jstr(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "String"), *b = tok_jstr(p, "content");
        if (!a || !b || strcmp(a, "\xE2\x96\x81") || strcmp(b, " ")) {
            errbuf_fail(err, cap, "%s: decoder Replace other than U+2581 -> space is not supported", path); return -1;
        }
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {   /* U+2581 -> space, and drop the prepended one */
        const char *scheme = tok_jstr(p, "prepend_scheme");
        const cJSON *aps = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
        t->dec_strip_start = (scheme && !strcmp(scheme, "never")) || (!scheme && cJSON_IsFalse(aps)) ? 0 : 1;
        return 0;
    }
    if (!strcmp(type, "Strip")) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "start");
        t->dec_strip_start = cJSON_IsNumber(s) ? s->valueint : 0;
        return 0;
    }
    errbuf_fail(err, cap, "%s: decoder type '%s' is not supported", path, type);
    return -1;
}
