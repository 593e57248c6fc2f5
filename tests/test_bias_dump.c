/* Tests of labs/bias --dump-prompts: the prompts it writes are the ones a
 * run sends (the prompt column of a simulated run's set files, same order,
 * same sets and trials), each line's "text" is the prompt in the Qwen3 chat
 * template without thinking and its "ids" are that text's encoding (as the
 * real source and engine/serve encode it; decoded back, the same text), and
 * the "evidence" sides name where each numbered evidence item came from.
 * Needs data/tokenizers/qwen3 (scripts/fetch-tokenizers.sh); skips without it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <cjson/cJSON.h>
#include <sys/wait.h>
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "labs/bias_data.h"
#include "labs/bias_evidence.h"

#define TOKJ "data/tokenizers/qwen3/tokenizer.json"
#define TRIALS 4
#define SETS 2

static char T[128];
static const char *tp(const char *rel) { return tu_join(T, rel); }   /* "T/rel" */

static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state) {
    (void)state;
    return sh("mkdir -p %s && awk 'NR == 1 || NR %% 97 == 5' data/universe/sp500.csv > %s/tickers.csv", T, T) ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    sh("rm -rf %s", T);
    return 0;
}

/* The 1-based numbered items of a prompt's evidence block, as pointers into a copy. */
static int evidence_items(char *p, char **item, int max) {
    char *s = strstr(p, "--- Evidence ---\n"), *end = strstr(p, "\n---\n");
    assert_non_null(s); assert_non_null(end);
    s += strlen("--- Evidence ---\n");
    *end = 0;
    int n = 0;
    while (s && *s && n < max) {
        char want[8];
        snprintf(want, sizeof want, "%d. ", n + 1);
        assert_memory_equal(s, want, strlen(want));
        item[n++] = s + strlen(want);
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        s = nl ? nl + 1 : NULL;
    }
    return n;
}

static void test_dump_equals_run(void **state) {
    (void)state;
    TU_REQUIRE_FILE(TOKJ);
    const char *bin = tu_bindir();
    assert_int_equal(sh("%s/labs/bias --tickers %s --num-trials %d --num-sets %d --seed 7 --no-serving --quiet "
                        "--model-id org/M --output-dir %s > /dev/null", bin, tp("tickers.csv"), TRIALS, SETS, tp("run")), 0);
    assert_int_equal(sh("%s/labs/bias --tickers %s --num-trials %d --num-sets %d --seed 7 --dump-prompts %s > /dev/null",
                        bin, tp("tickers.csv"), TRIALS, SETS, tp("d.jsonl")), 0);
    char err[512];
    bias_universe u;
    assert_int_equal(bias_universe_load_tickers(&u, tp("tickers.csv"), err, sizeof err), 0);
    assert_int_equal(bias_evidence_generate(&u, 1, err, sizeof err), 0);       /* the run's default evidence */
    assert_true(u.n >= 4);
    tok_tokenizer *tok = tok_load(TOKJ, err, sizeof err);
    assert_non_null(tok);
    char *all = tu_slurp(tp("d.jsonl"));
    assert_non_null(all);
    bias_csv sets[SETS];
    for (int s = 0; s < SETS; s++) {
        char path[512];
        snprintf(path, sizeof path, "%s/M_att_set_%d.csv", tp("run"), s + 1);
        assert_int_equal(bias_csv_load(&sets[s], path, err, sizeof err), 0);
        assert_int_equal(sets[s].nrows, u.n * TRIALS);
    }
    size_t n = 0, buys_first = 0;
    tok_ids want = {0};
    for (char *line = all, *nl; *line; line = nl + 1, n++) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = 0;
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        size_t per = u.n * TRIALS, k = (n % per) / TRIALS;
        int set = (int)(n / per) + 1, trial = (int)(n % TRIALS);
        assert_true(set <= SETS);
        assert_int_equal(cJSON_GetObjectItem(j, "set")->valueint, set);
        assert_int_equal(cJSON_GetObjectItem(j, "stock_index")->valueint, (int)k);
        assert_int_equal(cJSON_GetObjectItem(j, "trial")->valueint, trial);
        assert_string_equal(cJSON_GetObjectItem(j, "ticker")->valuestring, u.stocks[k].ticker);
        /* the prompt the run sent for that set, ticker and trial */
        const bias_csv *t = &sets[set - 1];
        size_t row = k * TRIALS + (size_t)trial;
        const char *prompt = cJSON_GetObjectItem(j, "prompt")->valuestring;
        assert_string_equal(bias_csv_at(t, row, bias_csv_col(t, "ticker")), u.stocks[k].ticker);
        assert_string_equal(prompt, bias_csv_at(t, row, bias_csv_col(t, "prompt")));
        assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(j, "buy_first")), strstr(prompt, "[buy | sell]") != NULL);
        /* text: the chat template around it; ids: its encoding, and back */
        const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
        chat_msg m = { "user", prompt };
        size_t need = chat_render(CHAT_QWEN3, &m, 1, 1, 0, NULL, 0);
        char *r = malloc(need + 1);
        chat_render(CHAT_QWEN3, &m, 1, 1, 0, r, need + 1);
        assert_string_equal(text, r);
        const char *tail = "<|im_start|>assistant\n<think>\n\n</think>\n\n";
        assert_string_equal(text + strlen(text) - strlen(tail), tail);
        assert_int_equal(tok_encode(tok, r, need, 0, &want), 0);
        const cJSON *ids = cJSON_GetObjectItem(j, "ids");
        assert_int_equal((size_t)cJSON_GetArraySize(ids), want.n);
        int32_t *got = malloc(want.n * sizeof *got);
        for (size_t i = 0; i < want.n; i++) {
            got[i] = cJSON_GetArrayItem(ids, (int)i)->valueint;
            assert_int_equal(got[i], want.ids[i]);
        }
        size_t dl = tok_decode(tok, got, want.n, 0, NULL, 0);
        char *back = malloc(dl + 1);
        tok_decode(tok, got, want.n, 0, back, dl + 1);
        assert_string_equal(back, text);
        /* evidence sides: each numbered item is one of that side's sentences */
        char *copy = strdup(prompt), *item[8];
        const cJSON *ev = cJSON_GetObjectItem(j, "evidence");
        int ni = evidence_items(copy, item, 8);
        assert_int_equal(ni, cJSON_GetArraySize(ev));
        assert_int_equal(ni, 4);
        int nb = 0;
        for (int i = 0; i < ni; i++) {
            int buy = !strcmp(cJSON_GetArrayItem(ev, i)->valuestring, "buy");
            nb += buy;
            char *const *side = buy ? u.stocks[k].buy : u.stocks[k].sell;
            int nside = buy ? u.stocks[k].nbuy : u.stocks[k].nsell, found = 0;
            for (int e = 0; e < nside; e++) found |= !strcmp(side[e], item[i]);
            assert_true(found);
        }
        assert_int_equal(nb, 2);
        buys_first += !strcmp(cJSON_GetArrayItem(ev, 0)->valuestring, "buy");
        free(copy); free(back); free(got); free(r);
        cJSON_Delete(j);
    }
    assert_int_equal(n, (size_t)SETS * u.n * TRIALS);
    assert_true(buys_first > 0 && buys_first < n);             /* the first item's side varies */
    for (int s = 0; s < SETS; s++) bias_csv_free(&sets[s]);
    tok_ids_free(&want);
    tok_free(tok);
    free(all);
    bias_universe_free(&u);
}

static void test_dump_errors(void **state) {
    (void)state;
    const char *bin = tu_bindir();
    /* no tokenizer: bad input (2), and no file */
    assert_int_equal(sh("%s/labs/bias --tickers %s --dump-prompts %s --tokenizer %s 2> %s", bin, tp("tickers.csv"),
                        tp("x.jsonl"), tp("none.json"), tp("err.txt")), 2);
    assert_int_not_equal(access(tp("x.jsonl"), F_OK), 0);
    char *e = tu_slurp(tp("err.txt"));
    assert_non_null(e);
    assert_non_null(strstr(e, "none.json"));
    free(e);
    /* it runs nothing: --real and --server are refused */
    assert_int_equal(sh("%s/labs/bias --dump-prompts %s --real --dummy-weights x 2> /dev/null", bin, tp("x.jsonl")), 2);
    assert_int_equal(sh("%s/labs/bias --dump-prompts %s --server http://127.0.0.1:1 2> /dev/null", bin, tp("x.jsonl")), 2);
    /* an unknown chat template is an error */
    if (access(TOKJ, R_OK) == 0)
        assert_int_equal(sh("%s/labs/bias --tickers %s --dump-prompts %s --chat-template nope 2> /dev/null", bin,
                            tp("tickers.csv"), tp("x.jsonl")), 1);
    assert_int_not_equal(access(tp("x.jsonl"), F_OK), 0);
}

int main(void) {
    snprintf(T, sizeof T, "build/tmp/bias_dump.%ld", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_equals_run),
        cmocka_unit_test(test_dump_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
