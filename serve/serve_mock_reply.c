/* serve/serve_mock_reply.c — what the mock backend says: a deterministic
 * JSON decision ({"decision": "buy", "reason": "..."}) derived from the
 * prompt and a seed, the word-level "tokenizer" it streams and counts with,
 * and its token ids.  Pure functions; touches nothing. */
#include "serve/serve_backend.h"
#include "base/rng.h"

#include <stdio.h>
#include <string.h>

static uint64_t fnv1a(const void *p, size_t n, uint64_t h) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 0x100000001B3ull; }
    return h;
}

static const char *const k_openers[] = {
    "The evidence on balance favours this position",
    "Revenue momentum outweighs the stated risks",
    "Margins and cash flow point the same way",
    "The valuation already prices in the good news",
    "Competitive pressure weighs on the outlook",
    "Guidance and recent results support the call",
    "The balance sheet looks stronger than the concerns suggest",
    "Execution risk dominates the upside case",
};
static const char *const k_details[] = {
    "given the growth in earnings per share",
    "while debt levels remain manageable",
    "although regulatory exposure is a concern",
    "as free cash flow keeps improving",
    "despite a softer quarter for the sector",
    "with analysts revising estimates upward",
    "because the dividend looks sustainable",
    "since input costs are still rising",
    "and the market share trend is stable",
    "yet the order backlog continues to shrink",
};

size_t srv_mock_reply(const char *prompt, const int32_t *ids, size_t n_ids,
                      double temperature, uint64_t seed, char *out, size_t cap) {
    uint64_t h = 0xCBF29CE484222325ull;
    if (prompt) h = fnv1a(prompt, strlen(prompt), h);
    else if (ids) h = fnv1a(ids, n_ids * sizeof *ids, h);
    uint64_t st = h ^ (temperature > 0 ? seed * 0xD1B54A32D192ED03ull : 0);
    uint64_t r = rng_splitmix64(&st);
    const char *decision = (r & 1) ? "buy" : "sell";
    char reason[512];
    int k = snprintf(reason, sizeof reason, "%s",
                     k_openers[rng_splitmix64(&st) % (sizeof k_openers / sizeof *k_openers)]);
    int n_details = (int)(rng_splitmix64(&st) % 3);
    for (int i = 0; i < n_details && k > 0 && (size_t)k < sizeof reason; i++)
        k += snprintf(reason + k, sizeof reason - (size_t)k, ", %s",
                      k_details[rng_splitmix64(&st) % (sizeof k_details / sizeof *k_details)]);
    return (size_t)snprintf(out, cap, "{\"decision\": \"%s\", \"reason\": \"%s.\"}", decision, reason);
}

size_t srv_mock_token_len(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && s[i] == ' ') i++;
    size_t w = i;
    while (w < n && ((s[w] >= 'a' && s[w] <= 'z') || (s[w] >= 'A' && s[w] <= 'Z') ||
                     (s[w] >= '0' && s[w] <= '9') || (unsigned char)s[w] >= 0x80)) w++;
    if (w > i) return w;
    return i < n ? i + 1 : i;
}

int srv_mock_count_tokens(const char *text, size_t len) {
    int n = 0;
    for (size_t i = 0; i < len; n++) i += srv_mock_token_len(text + i, len - i);
    return n;
}

int32_t srv_mock_token_id(const char *text, size_t len) {
    return (int32_t)(fnv1a(text, len, 0xCBF29CE484222325ull) % SRV_MOCK_VOCAB);
}

void srv_mock_logprobs(const char *text, size_t len, int32_t id, int greedy, int k,
                       srv_token_lp *lp, srv_logprob *top) {
    static const char *const alts[] = {" buy", " sell", " hold", " the", ",", ".", " and", " risk",
                                       " growth", " cash", " debt", " margin", " outlook", " value",
                                       " price", " market", " sector", " share", " strong", " weak",
                                       " stable"};
    enum { NALT = sizeof alts / sizeof *alts };
    uint64_t h = fnv1a(text, len, 0xCBF29CE484222325ull);
    int rank = greedy ? 0 : (int)(h % 3);        /* the sampled token's place among the likely */
    const double ln2 = 0.69314718055994531;
    lp->tok = (srv_logprob){id, (float)(-(rank + 1) * ln2), text, len};
    lp->top = top;
    lp->n_top = k;
    int a = (int)((h >> 8) % NALT);
    for (int j = 0; j < k; j++) {
        if (j == rank) { top[j] = lp->tok; continue; }
        const char *t = alts[a];
        a = (a + 1) % NALT;
        if (strlen(t) == len && !memcmp(t, text, len)) { t = alts[a]; a = (a + 1) % NALT; }
        top[j] = (srv_logprob){srv_mock_token_id(t, strlen(t)), (float)(-(j + 1) * ln2), t, strlen(t)};
    }
}
