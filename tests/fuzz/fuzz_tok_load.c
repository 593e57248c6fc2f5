/* tests/fuzz/fuzz_tok_load.c — libFuzzer harness: tok_load_mem on arbitrary
 * bytes (malformed JSON, odd types, strange regexes, broken merges), then, if
 * it loaded, an encode/decode of a fixed mixed-script text.  Any crash, leak
 * or sanitizer report is a finding.  Built by tests/fuzz/run_tok_fuzz.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    tok_tokenizer *t = tok_load_mem((const char *)data, size, "fuzz.json", err, sizeof err);
    if (!t) {
        if (!strstr(err, "fuzz.json")) abort();   /* every error names the file */
        return 0;
    }
    static const char text[] = "Hello  world!\n\tIt's 12345 <|im_start|>caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x99\x82 \xFF\xC3 a";
    tok_ids ids = {0};
    if (tok_encode(t, text, sizeof text - 1, TOK_ADD_SPECIAL, &ids) == 0) {
        char out[1024];
        tok_decode(t, ids.ids, ids.n, 0, out, sizeof out);
        for (size_t i = 0; i < ids.n; i++) (void)tok_id_to_token(t, ids.ids[i]);
    }
    tok_ids_free(&ids);
    tok_free(t);
    return 0;
}
