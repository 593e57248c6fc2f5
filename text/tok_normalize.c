/* tok_normalize.c: the normalizer steps of tokenizer.json (NFC, NFKC through
 * utf8proc; Replace; Prepend; Metaspace's prepend) on one segment (see
 * text/tok_internal.h).  Touches only the call's scratch. */
#include "text/tok_internal.h"
#include <string.h>
#include <sys/types.h>
#include <utf8proc.h>

/* utf8proc_map, except that U+11A7 is kept: utf8proc 2.8 composes a Hangul LV
 * syllable + U+11A7 by dropping the U+11A7 (found by the device differential
 * test).  U+11A7 is a starter that composes with nothing, so normalizing the
 * text between occurrences separately is exact.  Returns the length, -1 for
 * bad UTF-8, -2 when out of memory; *out is malloc'd. */
static ssize_t nfc_map(const char *s, size_t n, int opt, char **out) {
    static const char J[] = "\xE1\x86\xA7";
    *out = NULL;
    if (!memmem(s, n, J, 3)) {
        utf8proc_uint8_t *res = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res, opt);
        *out = (char *)res;
        return r;
    }
    size_t cap = n * 4 + 16, o = 0;
    char *buf = malloc(cap);
    if (!buf) return -2;
    for (size_t i = 0; i <= n;) {
        const char *hit = i < n ? memmem(s + i, n - i, J, 3) : NULL;
        size_t end = hit ? (size_t)(hit - s) : n;
        if (end > i) {
            utf8proc_uint8_t *res = NULL;
            utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(end - i), &res, opt);
            if (r < 0) { free(res); free(buf); return -1; }
            if (o + (size_t)r + 3 > cap) {
                cap = (o + (size_t)r + 3) * 2;
                char *nb = realloc(buf, cap);
                if (!nb) { free(res); free(buf); return -2; }
                buf = nb;
            }
            memcpy(buf + o, res, (size_t)r); o += (size_t)r;
            free(res);
        }
        if (!hit) break;
        memcpy(buf + o, J, 3); o += 3;
        i = end + 3;
    }
    *out = buf;
    return (ssize_t)o;
}

int tok_normalize(const tok_tokenizer *t, tok_work *w, const char *seg, size_t len, int first,
                     const char **outp, size_t *outlen) {
    const char *cur = seg; size_t n = len;
    for (int si = 0; si < t->n_norm; si++) {
        const tok_norm_step *st = &t->norm[si];
        if (st->kind == NORM_NFC || st->kind == NORM_NFKC) {
            /* characters below U+0300 are stable under NFC/NFKC except for
             * compatibility mappings, so only run utf8proc when needed */
            int need = 0;
            for (size_t i = 0; i < n && !need; i++) {
                unsigned char c = (unsigned char)cur[i];
                if (c >= 0xCC) need = 1;                       /* >= U+0300 */
                else if (st->kind == NORM_NFKC && c >= 0xC2) need = 1;
            }
            if (!need) continue;
            int opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (st->kind == NORM_NFKC ? UTF8PROC_COMPAT : 0);
            char *res = NULL;
            ssize_t r = nfc_map(cur, n, opt, &res);
            if (r < 0) { free(res); if (r == -2) return -1; continue; }   /* input is valid UTF-8 */
            if (tok_grow((void **)&w->nbuf, &w->nbuf_cap, (size_t)r + 1, 1) < 0) { free(res); return -1; }
            memmove(w->nbuf, res, (size_t)r);
            free(res);
            cur = w->nbuf; n = (size_t)r;
        } else if (st->kind == NORM_REPLACE) {
            size_t cnt = 0;
            for (size_t i = 0; i + st->alen <= n;) {
                if (memcmp(cur + i, st->a, st->alen) == 0) { cnt++; i += st->alen; } else i++;
            }
            if (!cnt) continue;
            size_t nn = n + cnt * st->blen;   /* upper bound */
            char *tmp = malloc(nn + 1);
            if (!tmp) return -1;
            size_t o = 0;
            for (size_t i = 0; i < n;) {
                if (i + st->alen <= n && memcmp(cur + i, st->a, st->alen) == 0) {
                    memcpy(tmp + o, st->b, st->blen); o += st->blen; i += st->alen;
                } else tmp[o++] = cur[i++];
            }
            if (tok_grow((void **)&w->nbuf, &w->nbuf_cap, o + 1, 1) < 0) { free(tmp); return -1; }
            memcpy(w->nbuf, tmp, o); free(tmp);
            cur = w->nbuf; n = o;
        } else if (st->kind == NORM_PREPEND || st->kind == NORM_META_ALWAYS || st->kind == NORM_META_FIRST) {
            if (n == 0) continue;
            /* Metaspace: not twice, and with "first" only at the start of the input */
            if (st->kind != NORM_PREPEND && (n >= st->alen && !memcmp(cur, st->a, st->alen))) continue;
            if (st->kind == NORM_META_FIRST && !first) continue;
            char *tmp = malloc(n + st->alen + 1);
            if (!tmp) return -1;
            memcpy(tmp, st->a, st->alen); memcpy(tmp + st->alen, cur, n);
            if (tok_grow((void **)&w->nbuf, &w->nbuf_cap, n + st->alen + 1, 1) < 0) { free(tmp); return -1; }
            memcpy(w->nbuf, tmp, n + st->alen); free(tmp);
            cur = w->nbuf; n += st->alen;
        }
    }
    *outp = cur; *outlen = n;
    return 0;
}

