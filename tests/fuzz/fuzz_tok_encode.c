/* tests/fuzz/fuzz_tok_encode.c — libFuzzer harness: tok_encode of arbitrary
 * bytes with a real tokenizer (FUZZ_TOKENIZER, default the Qwen3 one), and the
 * invariant that decoding gives back the input after the documented U+FFFD
 * repair and the tokenizer's normalizer (checked for byte-level models and
 * inputs without U+2581).  A mismatch aborts: a finding. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "text/tokenizer.h"

static tok_tokenizer *T;
static int NFC;   /* the tokenizer normalizes with NFC (Qwen3) */
static int CHECK; /* decode must round-trip (byte-level vocab) */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *p = getenv("FUZZ_TOKENIZER");
    if (!p) p = "data/tokenizers/qwen3/tokenizer.json";
    char err[512];
    T = tok_load(p, err, sizeof err);
    if (!T) { fprintf(stderr, "%s\n", err); exit(1); }
    NFC = strstr(p, "qwen") != NULL;
    CHECK = strstr(p, "gemma") == NULL;
    return 0;
}

/* Python's errors="replace" decoding, done with utf8proc (independent of the
 * tokenizer's own repair code). */
static size_t repair(const uint8_t *s, size_t n, uint8_t *out) {
    size_t o = 0, i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k > 0) { memcpy(out + o, s + i, (size_t)k); o += (size_t)k; i += (size_t)k; continue; }
        unsigned b = s[i]; size_t m = 1;
        int need = b >= 0xF0 && b <= 0xF4 ? 3 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xC2 && b <= 0xDF ? 1 : 0;
        for (int q = 1; q <= need && i + (size_t)q < n; q++) {
            unsigned c = s[i + q], lo = 0x80, hi = 0xBF;
            if (q == 1 && b == 0xE0) lo = 0xA0;
            if (q == 1 && b == 0xED) hi = 0x9F;
            if (q == 1 && b == 0xF0) lo = 0x90;
            if (q == 1 && b == 0xF4) hi = 0x8F;
            if (c < lo || c > hi) break;
            m++;
        }
        memcpy(out + o, "\xEF\xBF\xBD", 3); o += 3; i += m;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tok_ids ids = {0};
    if (tok_encode(T, (const char *)data, size, 0, &ids) < 0) abort();
    long n = tok_count(T, (const char *)data, size, 0);
    if (n != (long)ids.n) abort();
    for (size_t i = 0; i < ids.n; i++) if (ids.ids[i] < 0 || ids.ids[i] >= tok_vocab_size(T)) abort();
    uint8_t *fixed = malloc(size * 3 + 1);
    size_t fl = repair(data, size, fixed);
    size_t need = tok_decode(T, ids.ids, ids.n, 0, NULL, 0);
    char *dec = malloc(need + 1);
    tok_decode(T, ids.ids, ids.n, 0, dec, need + 1);
    /* utf8proc 2.8's NFC drops U+11A7 after a Hangul LV syllable; the
     * tokenizer works around it, this independent reference does not */
    if (CHECK && !(NFC && memmem(fixed, fl, "\xE1\x86\xA7", 3))) {
        utf8proc_uint8_t *want = NULL;
        utf8proc_ssize_t wl = utf8proc_map(fixed, (utf8proc_ssize_t)fl, &want, NFC ? UTF8PROC_STABLE | UTF8PROC_COMPOSE : 0);
        if (wl >= 0 && (need != (size_t)wl || memcmp(dec, want, need))) {
            fprintf(stderr, "round trip mismatch: %zu bytes in, %zu decoded, %zd expected\n", size, need, (ssize_t)wl);
            abort();
        }
        free(want);
    }
    free(dec); free(fixed); tok_ids_free(&ids);
    return 0;
}
