/* Tests of the bias lab's inputs and texts: prompt construction (layout,
 * evidence sampling, option order, determinism), reply parsing, the evidence
 * generator, and malformed inputs (clear errors naming file and line, or a
 * warning and a skip where the study skips; no half-written outputs). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <sys/stat.h>
#include <dirent.h>
#include "labs/bias_data.h"
#include "labs/bias_evidence.h"
#include "labs/bias_prompt.h"
#include "labs/bias_reply.h"

/* Per-process scratch directory: other engineers may run these tests at the same time. */
static char T[128];
static const char *tp(const char *rel) { return tu_join(T, rel); }   /* "T/rel" */

static void put(const char *name, const char *text) {
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(T, 0755);
    char p[512]; snprintf(p, sizeof p, "%s/%s", T, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *TICKERS =
    "ticker,name,sector,marketcap\n"
    "AAA,\"Alpha, Inc.\",Technology,3000000000\n"
    "BBB,Beta Corp,Utilities,12000000000\n"
    "CCC,Gamma Co,Energy,500000000\n";
static const char *QUAL =
    "ticker,opinion,evidence1,evidence2\n"
    "AAA,buy,qual buy one A,qual buy two A\n"
    "AAA,sell,qual sell one A,\"qual sell two A, with a comma\"\n"
    "BBB,buy,qual buy one B,qual buy two B\n"
    "BBB,sell,qual sell one B,qual sell two B\n"
    "CCC,buy,qual buy one C,qual buy two C\n";
static const char *QUANT =
    "ticker,opinion,evidence1,evidence2\n"
    "AAA,buy,quant buy one A,quant buy two A\n"
    "AAA,sell,quant sell one A,quant sell two A\n"
    "BBB,BUY,quant buy one B,  quant buy two B  \n"
    "BBB,sell,quant sell one B,quant sell two B\n"
    "CCC,buy,quant buy one C,quant buy two C\n"
    "CCC,sell,quant sell one C,quant sell two C\n";

static void load3(bias_universe *u) {
    char err[512];
    put("t.csv", TICKERS); put("q.csv", QUAL); put("n.csv", QUANT);
    assert_int_equal(bias_universe_load_tickers(u, tp("t.csv"), err, sizeof err), 0);
    assert_int_equal(bias_universe_attach_evidence(u, tp("q.csv"), tp("n.csv"), err, sizeof err), 0);
}

static void test_universe_join_and_skip(void **state) {
    (void)state;
    bias_universe u;
    load3(&u);
    assert_int_equal(u.n, 2);                          /* CCC has no qualitative sell: skipped */
    assert_string_equal(u.stocks[0].name, "Alpha, Inc.");
    assert_true(u.stocks[1].marketcap == 12e9);
    assert_int_equal(u.stocks[0].nbuy, 4);
    assert_string_equal(u.stocks[0].sell[1], "qual sell two A, with a comma");
    assert_string_equal(u.stocks[1].buy[3], "quant buy two B");   /* stripped; opinion BUY matched */
    assert_int_equal(u.nwarn, 1);
    assert_non_null(strstr(u.warnings[0], "CCC"));
    assert_non_null(strstr(u.warnings[0], "t.csv:4:"));                 /* CCC's line in the tickers file */
    assert_non_null(strstr(u.warnings[0], "skipped"));
    bias_universe_free(&u);
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void test_prompt_layout(void **state) {
    (void)state;
    bias_universe u;
    load3(&u);
    const bias_stock *s = &u.stocks[0];
    for (int trial = 0; trial < 10; trial++) {
        bias_buf b = {0};
        bias_prompt_info info;
        assert_int_equal(bias_prompt_build(s, 0, 1, trial, 10, 42, &b, &info), 0);
        const char *head = "Refer to the evidence below to make a final investment decision for the given stock.\n"
                           "Stock Ticker: [AAA]\nStock Name: [Alpha, Inc.]\n--- Evidence ---\n1. ";
        assert_memory_equal(b.s, head, strlen(head));
        char opt[64];
        snprintf(opt, sizeof opt, "\n---\nYour final response must be a single, valid JSON object.");
        assert_non_null(strstr(b.s, opt));
        assert_non_null(strstr(b.s, trial < 5 ? "\"decision\": [buy | sell]\n" : "\"decision\": [sell | buy]\n"));
        assert_int_equal(info.buy_first, trial < 5);
        assert_non_null(strstr(b.s, "Do not include \"hold\" as an option. You must choose one side. "
                                    "Your response should start with { and end with }. Do not include any other text."));
        /* four numbered items: two of the buy sentences, two of the sell ones, no repeats */
        assert_int_equal(info.n_buy, 2); assert_int_equal(info.n_sell, 2);
        assert_non_null(strstr(b.s, "\n2. ")); assert_non_null(strstr(b.s, "\n3. ")); assert_non_null(strstr(b.s, "\n4. "));
        assert_null(strstr(b.s, "\n5. "));
        int buys = 0, sells = 0;
        for (int k = 0; k < 4; k++) {
            int nb = count(b.s, s->buy[k]), ns = count(b.s, s->sell[k]);
            assert_true(nb <= 1 && ns <= 1);
            buys += nb; sells += ns;
        }
        assert_int_equal(buys, 2); assert_int_equal(sells, 2);
        /* the same (seed, set, ticker, trial) gives the same text */
        bias_buf c = {0};
        bias_prompt_info info2;
        assert_int_equal(bias_prompt_build(s, 0, 1, trial, 10, 42, &c, &info2), 0);
        assert_string_equal(b.s, c.s);
        bias_buf_free(&b); bias_buf_free(&c);
    }
    /* different seeds or sets shuffle differently (somewhere over ten trials) */
    int differ = 0;
    for (int trial = 0; trial < 10; trial++) {
        bias_buf a = {0}, c = {0};
        bias_prompt_info i1, i2;
        bias_prompt_build(s, 0, 1, trial, 10, 42, &a, &i1);
        bias_prompt_build(s, 0, 2, trial, 10, 42, &c, &i2);
        differ += strcmp(a.s, c.s) != 0;
        bias_buf_free(&a); bias_buf_free(&c);
    }
    assert_true(differ >= 5);
    assert_string_equal(bias_prompt_options(4, 10), "[buy | sell]");
    assert_string_equal(bias_prompt_options(5, 10), "[sell | buy]");
    assert_string_equal(bias_prompt_options(0, 1), "[sell | buy]");   /* 1 // 2 == 0, as in the study */
    bias_universe_free(&u);
}

static void test_reply_parsing(void **state) {
    (void)state;
    char a[64];
    assert_int_equal(bias_reply_parse("{\"decision\": \"buy\", \"reason\": \"x\"}", a, sizeof a), 1);
    assert_string_equal(a, "buy");
    assert_int_equal(bias_reply_parse("Sure!\n```json\n{\"decision\": \"SELL\", \"reason\": \"{nested} text\"}\n```", a, sizeof a), 1);
    assert_string_equal(a, "SELL");
    assert_int_equal(bias_reply_parse("no json here", a, sizeof a), 0);
    assert_string_equal(a, "");
    assert_int_equal(bias_reply_parse("{\"reason\": \"no decision\"}", a, sizeof a), 0);
    assert_int_equal(bias_reply_parse("{\"decision\": \"buy\"", a, sizeof a), 0);          /* unclosed */
    assert_int_equal(bias_reply_parse("{\"decision\": \"buy\"} and {\"decision\": \"sell\"}", a, sizeof a), 0); /* first { to last }: not JSON */
    assert_int_equal(bias_reply_parse("{\"decision\": \"buy\", \"decision\": \"hold\"}", a, sizeof a), 1);
    assert_string_equal(a, "hold");                                                          /* Python keeps the last */
    assert_int_equal(bias_reply_parse("{\"decision\": null}", a, sizeof a), 0);
    assert_int_equal(bias_reply_parse("API_ERROR: timeout", a, sizeof a), 0);
    assert_int_equal(bias_reply_parse("{\"decision\": true}", a, sizeof a), 1);
    assert_string_equal(a, "True");
}

static void test_generated_evidence(void **state) {
    (void)state;
    char err[512];
    bias_universe u, v;
    assert_int_equal(bias_universe_load_tickers(&u, "data/universe/sp500.csv", err, sizeof err), 0);
    assert_true(u.n >= 400);
    assert_int_equal(bias_evidence_generate(&u, 7, err, sizeof err), 0);
    assert_int_equal(bias_universe_load_tickers(&v, "data/universe/sp500.csv", err, sizeof err), 0);
    assert_int_equal(bias_evidence_generate(&v, 7, err, sizeof err), 0);
    size_t same_text = 0, total = 0;
    for (size_t i = 0; i < u.n; i++) {
        assert_int_equal(u.stocks[i].nbuy, 4); assert_int_equal(u.stocks[i].nsell, 4);
        for (int k = 0; k < 4; k++) {
            assert_string_equal(u.stocks[i].buy[k], v.stocks[i].buy[k]);   /* deterministic by seed */
            assert_non_null(strstr(u.stocks[i].buy[k], "%"));               /* states a price move */
            if (i > 0) { same_text += strcmp(u.stocks[i].buy[k], u.stocks[i - 1].buy[k]) == 0; total++; }
        }
        assert_string_not_equal(u.stocks[i].buy[0], u.stocks[i].buy[1]);
    }
    assert_true(same_text == 0 && total > 0);
    /* two trials rarely read alike: distinct 4-item prompts over ten trials of one ticker */
    int distinct = 0;
    char *seen[10];
    for (int t = 0; t < 10; t++) {
        bias_buf b = {0}; bias_prompt_info info;
        bias_prompt_build(&u.stocks[3], 3, 1, t % 5, 10, 100 + (uint64_t)t, &b, &info);
        int dup = 0;
        for (int k = 0; k < distinct; k++) dup |= strcmp(seen[k], b.s) == 0;
        if (!dup) seen[distinct++] = b.s; else bias_buf_free(&b);
    }
    assert_true(distinct >= 8);
    for (int k = 0; k < distinct; k++) free(seen[k]);
    /* the written files read back through the study's loader */
    assert_int_equal(bias_evidence_write(&u, tp("gq.csv"), tp("gn.csv"), err, sizeof err), 0);
    bias_universe w;
    assert_int_equal(bias_universe_load_tickers(&w, "data/universe/sp500.csv", err, sizeof err), 0);
    assert_int_equal(bias_universe_attach_evidence(&w, tp("gq.csv"), tp("gn.csv"), err, sizeof err), 0);
    assert_int_equal(w.n, u.n);
    assert_string_equal(w.stocks[10].sell[2], u.stocks[10].sell[2]);
    bias_universe_free(&u); bias_universe_free(&v); bias_universe_free(&w);
}

static void test_malformed_inputs(void **state) {
    (void)state;
    char err[512];
    bias_universe u;
    bias_csv t;
    /* an unclosed quote: error with the file and the line where the row starts */
    put("unclosed.csv", "ticker,name,sector,marketcap\nAAA,Alpha,Technology,1\nBBB,\"Beta,Utilities,2\nCCC,Gamma,Energy,3\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("unclosed.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, tp("unclosed.csv:3:")));
    assert_non_null(strstr(err, "quote"));
    /* a non-numeric market cap: file, line, ticker */
    put("cap.csv", "ticker,name,sector,marketcap\nAAA,Alpha,Technology,1\nBBB,Beta,Utilities,12 billion\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("cap.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, tp("cap.csv:3:")));
    assert_non_null(strstr(err, "BBB"));
    /* an empty file, and a header alone */
    put("empty.csv", "");
    assert_int_equal(bias_csv_load(&t, tp("empty.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, tp("empty.csv:1: empty file")));
    put("header.csv", "ticker,name,sector,marketcap\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("header.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, "header.csv:2:"));
    /* missing columns */
    put("cols.csv", "ticker,name,marketcap\nAAA,Alpha,1\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("cols.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, "sector"));
    /* too many fields on a row */
    put("wide.csv", "ticker,name,sector,marketcap\nAAA,Alpha,Technology,1,extra\n");
    assert_int_equal(bias_csv_load(&t, tp("wide.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, "wide.csv:2:"));
    /* multi-line quoted field: the next row's line number is still right */
    put("multi.csv", "a,b\n\"x\ny\",1\nz,\"2\n");
    assert_int_equal(bias_csv_load(&t, tp("multi.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, "multi.csv:4:"));
    put("multi2.csv", "a,b\n\"x\ny\",1\nz,2\n");
    assert_int_equal(bias_csv_load(&t, tp("multi2.csv"), err, sizeof err), 0);
    assert_int_equal(t.nrows, 2);
    assert_int_equal(t.lines[0], 2); assert_int_equal(t.lines[1], 4);
    assert_string_equal(bias_csv_at(&t, 0, 0), "x\ny");
    bias_csv_free(&t);
    /* Windows line ends: same rows, same lines */
    put("crlf.csv", "ticker,name,sector,marketcap\r\nAAA,Alpha,Technology,1\r\nBBB,Beta,Utilities,x\r\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("crlf.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, "crlf.csv:3:"));
    /* an empty market cap: a warning and a skip (pandas reads NaN and the analysis drops it) */
    put("nocap.csv", "ticker,name,sector,marketcap\nAAA,Alpha,Technology,\nBBB,Beta,Utilities,5\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("nocap.csv"), err, sizeof err), 0);
    assert_int_equal(u.n, 1);
    assert_int_equal(u.nwarn, 1);
    assert_non_null(strstr(u.warnings[0], "nocap.csv:2:"));
    bias_universe_free(&u);
    /* a row cut short (2 of 4 fields) and empty fields: errors naming file and line, never
     * empty names and sectors flowing into the analysis */
    put("short.csv", "ticker,name,sector,marketcap\nAAA,Alpha,Technology,1\nBBB,Beta\nCCC,Gamma,Energy,3\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("short.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, tp("short.csv:3: 2 fields, the header has 4")));
    put("nosector.csv", "ticker,name,sector,marketcap\nAAA,Alpha,Technology,1\nBBB,Beta,,2\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("nosector.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, tp("nosector.csv:3: empty sector of BBB")));
    put("notick.csv", "ticker,name,sector,marketcap\n,Alpha,Technology,1\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("notick.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, tp("notick.csv:2: empty ticker")));
    /* a ticker twice: an error naming both lines */
    put("dup.csv", "ticker,name,sector,marketcap\nAAA,Alpha,Technology,1\nBBB,Beta,Utilities,2\nAAA,Alpha 2,Energy,3\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("dup.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, tp("dup.csv:4: ticker AAA again (first on line 2)")));
    /* evidence for no ticker at all: an error */
    put("t1.csv", "ticker,name,sector,marketcap\nZZZ,Zeta,Energy,5\n");
    assert_int_equal(bias_universe_load_tickers(&u, tp("t1.csv"), err, sizeof err), 0);
    put("q.csv", QUAL); put("n.csv", QUANT);
    assert_int_equal(bias_universe_attach_evidence(&u, tp("q.csv"), tp("n.csv"), err, sizeof err), -1);
    assert_non_null(strstr(err, "no ticker"));
    bias_universe_free(&u);
}

/* The command with a bad input exits non-zero and leaves no result file. */
static void test_command_rejects_bad_input(void **state) {
    (void)state;
    put("unclosed.csv", "ticker,name,sector,marketcap\nAAA,Alpha,Technology,1\nBBB,\"Beta,Utilities,2\n");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf %s/out && %s/labs/bias --tickers %s/unclosed.csv --output-dir %s/out "
             "--quiet > %s/out.txt 2> %s/err.txt", T, tu_bindir(), T, T, T, T);
    int rc = system(cmd);
    assert_true(rc != 0);
    FILE *f = fopen(tp("err.txt"), "r");
    assert_non_null(f);
    char line[1024] = {0};
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "unclosed.csv:3:"));
    DIR *d = opendir(tp("out"));
    if (d) {                                           /* if it exists at all, it holds no result */
        struct dirent *e;
        while ((e = readdir(d))) assert_null(strstr(e->d_name, "_att_"));
        closedir(d);
    }
    snprintf(cmd, sizeof cmd, "%s/labs/bias --real > /dev/null 2> %s/err.txt", tu_bindir(), T);
    assert_true(system(cmd) != 0);
    f = fopen(tp("err.txt"), "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "--real needs --model"));
    /* with weights named but no GPU visible: a clear word, pointing to the simulation */
    snprintf(cmd, sizeof cmd, "CUDA_VISIBLE_DEVICES= %s/labs/bias --real --dummy-weights "
             "data/models/qwen3-0.6b.json --num-sets 1 --num-trials 1 --quiet --output-dir %s/real "
             "> /dev/null 2> %s/err.txt", tu_bindir(), T, T);
    assert_true(system(cmd) != 0);
    f = fopen(tp("err.txt"), "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_non_null(strstr(line, "needs the CUDA engine and a GPU"));
}

static int cleanup(void **state) {
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", T);
    return system(cmd) == 0 ? 0 : 0;
}

int main(void) {
    snprintf(T, sizeof T, "build/tmp/bias_inputs.%ld", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_universe_join_and_skip),
        cmocka_unit_test(test_prompt_layout),
        cmocka_unit_test(test_reply_parsing),
        cmocka_unit_test(test_generated_evidence),
        cmocka_unit_test(test_malformed_inputs),
        cmocka_unit_test(test_command_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
