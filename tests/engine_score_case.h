/* engine_score_case: one workload for the engine's score mode, shared by the
 * CPU test of its rows (tests/test_engine_batch.c, the real sim/ scheduler)
 * and the GPU test (tests/gpu/test_engine_score.c, the engine), so that the
 * schedule the GPU test runs is the one the CPU test checked: scoring
 * requests (one token; a 64-token prefix shared whole or in half) in 12-token
 * chunks while
 * two long generations grow in a pool of 15 blocks of 16.  The generations
 * preempt scoring requests mid-prefill (2 of them score after a restart),
 * and later scoring requests hit the prefix cache.  Scheduling depends on
 * lengths and prompt ids only, never on the sampled tokens, so it is the
 * same on both sides.  Static functions in a header: each test binary is one
 * translation unit. */
#ifndef TESTS_ENGINE_SCORE_CASE_H
#define TESTS_ENGINE_SCORE_CASE_H

enum {
    SCASE_BLOCKS = 15, SCASE_BLOCK_SIZE = 16, SCASE_BUDGET = 12, SCASE_SEQS = 4, SCASE_MAX_LEN = 192,
    SCASE_N = 12,                  /* requests: 0 and 3..11 score, 1 and 2 generate */
    SCASE_LEN = 96, SCASE_PREFIX = 64,
    SCASE_GEN_LEN = 40, SCASE_GEN_OUT = 150,
};

static int scase_is_score(int r) { return r == 0 || r > 2; }
static int scase_len(int r) { return scase_is_score(r) ? SCASE_LEN : SCASE_GEN_LEN; }
static int scase_max_tokens(int r) { return scase_is_score(r) ? 1 : SCASE_GEN_OUT; }
/* token i of request r's prompt: scoring requests share the prefix; odd ones from 3 on only its first half */
static int scase_token(int r, int i) {
    int shared = r % 2 == 0 || r < 3 ? SCASE_PREFIX : SCASE_PREFIX / 2;
    return scase_is_score(r) && i < shared ? 500 + i : (r * 31 + i * 17) % 400 + 1000;
}
#endif
