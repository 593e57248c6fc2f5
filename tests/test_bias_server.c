/* Tests of labs/bias --server against engine/serve's mock backend, served
 * in this process on an ephemeral loopback port: every reply in the set
 * files is the one the mock gives for that prompt (as the server templates
 * it) and that trial's seed, and its decision is parsed; every output file
 * is there (trace and comparison too); a run killed with SIGKILL resumes and
 * ends byte-identical to an unbroken one; a server that is not there, and
 * --real on a machine without a GPU, are clear errors; replies that are not
 * valid UTF-8 reach the set files as Python's "replace" decoding would. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/engine.h"
#include <cjson/cJSON.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include "text/chat_template.h"
#include "serve/serve.h"
#include "labs/bias_aggregate.h"
#include "labs/bias_data.h"
#include "labs/bias_reply.h"
#include "labs/bias_run.h"
#include "labs/bias_sources.h"

static char T[128];
static const char *tp(const char *rel) { return tu_join(T, rel); }   /* "T/rel" */
#define MODEL "M"
#define SEED 7

static srv_backend *be;
static srv_server *srv;
static char url[64];

static int setup(void **state) {
    (void)state;
    char err[256], cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && awk 'NR == 1 || NR %% 40 == 0' data/universe/sp500.csv > %s/tickers.csv", T, T);
    if (system(cmd) != 0) return -1;
    srv_mock_opts mo;
    srv_mock_opts_init(&mo);
    mo.token_delay_us = 100;
    if (!(be = srv_mock_create(&mo, err, sizeof err))) { fprintf(stderr, "%s\n", err); return -1; }
    srv_opts o;
    srv_opts_init(&o);
    o.port = 0;
    if (!(srv = srv_start(&o, be, err, sizeof err))) { fprintf(stderr, "%s\n", err); return -1; }
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv_port(srv));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    srv_stop(srv);
    be->destroy(be);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", T);
    return system(cmd) == 0 ? 0 : 0;
}

static void sleep_ms(int ms) {
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}


/* Starts labs/bias --server on the small universe; returns its pid. */
static pid_t start(const char *dir, int delay_ms, const char *server_url) {
    char bin[512], delay[16];
    snprintf(bin, sizeof bin, "%s/labs/bias", tu_bindir());
    snprintf(delay, sizeof delay, "%d", delay_ms);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(126);
        if (!freopen(tp("stderr.txt"), "w", stderr)) _exit(126);
        execl(bin, bin, "--server", server_url, "--model-id", "org/" MODEL, "--tickers", tp("tickers.csv"),
              "--num-sets", "2", "--num-trials", "10", "--max-workers", "4", "--seed", "7", "--output-dir", dir,
              "--quiet", "--tokenizer", "none", "--batch-delay-ms", delay, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int finish(pid_t pid) {
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

/* Every row: the mock's reply for the templated prompt and the trial's seed. */
static void check_replies(const char *dir, int set, const bias_universe *u) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/" MODEL "_att_set_%d.csv", dir, set);
    bias_csv t;
    assert_int_equal(bias_csv_load(&t, path, err, sizeof err), 0);
    assert_int_equal(t.nrows, u->n * 10);
    int ct = bias_csv_col(&t, "ticker"), cr = bias_csv_col(&t, "trial"), cp = bias_csv_col(&t, "prompt"),
        co = bias_csv_col(&t, "llm_output"), ca = bias_csv_col(&t, "llm_answer");
    assert_true(ct >= 0 && cr >= 0 && cp >= 0 && co >= 0 && ca >= 0);
    int buys = 0;
    for (size_t i = 0; i < t.nrows; i++) {
        size_t k = 0;
        while (k < u->n && strcmp(u->stocks[k].ticker, bias_csv_at(&t, i, ct)) != 0) k++;
        assert_true(k < u->n);
        int trial = atoi(bias_csv_at(&t, i, cr));
        assert_int_equal(i, k * 10 + (size_t)trial);                  /* each (ticker, trial) once, in order */
        chat_msg m = { "user", bias_csv_at(&t, i, cp) };
        size_t need = chat_render(CHAT_QWEN3, &m, 1, 1, 0, NULL, 0);
        char *prompt = malloc(need + 1), want[1024], ans[64];
        chat_render(CHAT_QWEN3, &m, 1, 1, 0, prompt, need + 1);
        srv_mock_reply(prompt, NULL, 0, 0.6, bias_trial_seed(SEED, set, k, trial), want, sizeof want);
        free(prompt);
        assert_string_equal(bias_csv_at(&t, i, co), want);
        assert_int_equal(bias_reply_parse(want, ans, sizeof ans), 1);
        assert_string_equal(bias_csv_at(&t, i, ca), ans);
        buys += !strcmp(ans, "buy");
    }
    assert_true(buys > 0 && buys < (int)t.nrows);                     /* the seeds vary the decisions */
    bias_csv_free(&t);
}

static void test_server_run_outputs(void **state) {
    (void)state;
    char err[512];
    bias_universe u;
    assert_int_equal(bias_universe_load_tickers(&u, tp("tickers.csv"), err, sizeof err), 0);
    assert_int_equal(finish(start(tp("ref"), 0, url)), 0);
    check_replies(tp("ref"), 1, &u);
    check_replies(tp("ref"), 2, &u);
    static const char *files[] = { "_att_combined.csv", "_att_result.json", "_att_metrics.json", "_att_memory.json",
                                   "_att_trace.json", "_att_compare.json", "_att_compare.png", "_att_run.json" };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/ref/" MODEL "%s", T, files[i]);
        assert_int_equal(access(p, R_OK), 0);
    }
    /* metrics: measured, with the server's usage */
    char *m = tu_slurp(tp("ref/" MODEL "_att_metrics.json"));
    cJSON *j = cJSON_Parse(m);
    assert_non_null(j);
    assert_int_equal((int)cJSON_GetObjectItem(j, "total_prompts")->valuedouble, (int)u.n * 20);
    assert_true(strstr(cJSON_GetObjectItem(j, "source")->valuestring, "server") != NULL);
    assert_true(cJSON_GetObjectItem(j, "server_usage_completion_tokens")->valuedouble > 0);
    assert_true(cJSON_GetObjectItem(j, "total_time_seconds")->valuedouble > 0);
    cJSON_Delete(j);
    free(m);
    /* the trace holds every request with its times in order */
    bias_trace tr;
    assert_int_equal(bias_trace_load(&tr, tp("ref/" MODEL "_att_trace.json"), err, sizeof err), 0);
    assert_int_equal(tr.nreq, u.n * 20);
    assert_int_equal(tr.nsets, 2);
    for (size_t i = 0; i < tr.nreq; i++) {
        assert_true(tr.req[i].set == 1 || tr.req[i].set == 2);
        assert_true(tr.req[i].output_tokens > 0);
        assert_true(tr.req[i].submit_s <= tr.req[i].first_token_s + 1e-6);
        assert_true(tr.req[i].first_token_s <= tr.req[i].finish_s + 1e-6);
    }
    bias_trace_free(&tr);
    bias_universe_free(&u);
}

static void test_server_resume_after_sigkill(void **state) {
    (void)state;
    pid_t pid = start(tp("killed"), 30, url);
    char journal[512];
    struct stat sb;
    int waited = 0, set = 0;
    while (!set && waited < 30000) {
        for (int k = 1; k <= 2 && !set; k++) {
            snprintf(journal, sizeof journal, "%s/killed/" MODEL "_att_set_%d.progress.jsonl", T, k);
            if (stat(journal, &sb) == 0 && sb.st_size >= 1500) set = k;
        }
        if (!set) { sleep_ms(5); waited += 5; }
    }
    assert_true(set > 0);
    kill(pid, SIGKILL);
    int st = finish(pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    char setfile[512];
    snprintf(setfile, sizeof setfile, "%s/killed/" MODEL "_att_set_%d.csv", T, set);
    assert_int_equal(access(setfile, F_OK), -1);                   /* nothing half-done looks complete */
    assert_int_equal(finish(start(tp("killed"), 0, url)), 0);      /* the rerun resumes */
    assert_int_equal(access(journal, F_OK), -1);
    static const char *same[] = { "_att_set_1.csv", "_att_set_2.csv", "_att_combined.csv", "_att_result.json" };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        char a[512], b[512];
        snprintf(a, sizeof a, "%s/ref/" MODEL "%s", T, same[i]);
        snprintf(b, sizeof b, "%s/killed/" MODEL "%s", T, same[i]);
        char *x = tu_slurp(a), *y = tu_slurp(b);
        assert_non_null(x); assert_non_null(y);
        assert_string_equal(x, y);
        free(x); free(y);
    }
}

static void test_server_absent_is_clear(void **state) {
    (void)state;
    int st = finish(start(tp("absent"), 0, "http://127.0.0.1:1"));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char *e = tu_slurp(tp("stderr.txt"));
    assert_non_null(e);
    assert_non_null(strstr(e, "cannot reach the server"));
    free(e);
    assert_int_equal(access(tp("absent/" MODEL "_att_set_1.csv"), F_OK), -1);
}

static void test_real_without_gpu_is_clear(void **state) {
    (void)state;
    char why[256], cmd[1024];
    if (eng_gpu_available(why, sizeof why)) { skip(); return; }   /* a GPU machine runs it for real */
    snprintf(cmd, sizeof cmd, "%s/labs/bias --real --dummy-weights data/models/qwen2.5-7b.json --output-dir %s "
             "--quiet > /dev/null 2> %s", tu_bindir(), tp("nogpu"), tp("nogpu.txt"));
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char *e = tu_slurp(tp("nogpu.txt"));
    assert_non_null(e);
    assert_non_null(strstr(e, "--real needs the CUDA engine and a GPU"));
    assert_non_null(strstr(e, "simulation"));
    free(e);
}

/* A source whose replies end inside a character or hold stray bytes, as
 * tokens decoded one by one can. */
static int bytes_generate(void *ctx, const bias_request *req, size_t n, bias_reply *out,
                          bias_reply_cb cb, void *cb_ctx, char *err, size_t errlen) {
    (void)ctx; (void)req; (void)err; (void)errlen;
    for (size_t i = 0; i < n; i++) {
        out[i].text = strdup(i % 2 ? "{\"decision\": \"buy\"} caf\xc3" : "\xff{\"decision\": \"sell\"} \xed\xa0\x80!");
        out[i].output_tokens = 5;
        if (cb) cb(cb_ctx, i, &out[i]);
    }
    return 0;
}

static void test_replies_become_utf8(void **state) {
    (void)state;
    char err[512];
    bias_universe u;
    assert_int_equal(bias_universe_load_tickers(&u, tp("tickers.csv"), err, sizeof err), 0);
    bias_source src = { "bytes", NULL, bytes_generate, NULL };
    bias_run_config c = { .model = "U", .model_id = "U", .temperature = 0.6, .top_p = 0.8, .max_tokens = 64,
                          .num_sets = 1, .num_trials = 2, .max_workers = 3, .seed = 1, .output_dir = tp("utf8"),
                          .inputs = "utf8 test", .row_note = "a note" };
    bias_run_stats st;
    assert_int_equal(bias_run_sets(&c, &u, &src, &st, err, sizeof err), 0);
    bias_csv t;
    assert_int_equal(bias_csv_load(&t, tp("utf8/U_att_set_1.csv"), err, sizeof err), 0);
    int co = bias_csv_col(&t, "llm_output"), ca = bias_csv_col(&t, "llm_answer"), cn = bias_csv_col(&t, "note");
    assert_true(co >= 0 && ca >= 0 && cn >= 0);
    assert_int_equal(t.nrows, u.n * 2);
    /* Python's bytes.decode("utf-8", "replace"): one U+FFFD per maximal invalid subpart */
    assert_string_equal(bias_csv_at(&t, 0, co), "\xef\xbf\xbd{\"decision\": \"sell\"} \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!");
    assert_string_equal(bias_csv_at(&t, 1, co), "{\"decision\": \"buy\"} caf\xef\xbf\xbd");
    assert_string_equal(bias_csv_at(&t, 0, ca), "sell");
    assert_string_equal(bias_csv_at(&t, 1, ca), "buy");
    assert_string_equal(bias_csv_at(&t, 1, cn), "a note");
    bias_csv_free(&t);
    bias_run_stats_free(&st);
    bias_universe_free(&u);
}

static void test_trial_seeds(void **state) {
    (void)state;
    uint64_t a = bias_trial_seed(42, 1, 3, 4);
    assert_true(a == bias_trial_seed(42, 1, 3, 4));
    assert_true(a < (1ull << 53));
    assert_true(a != bias_trial_seed(42, 2, 3, 4) && a != bias_trial_seed(42, 1, 4, 4) &&
                a != bias_trial_seed(42, 1, 3, 5) && a != bias_trial_seed(43, 1, 3, 4));
}

int main(void) {
    snprintf(T, sizeof T, "build/tmp/bias_server.%ld", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trial_seeds),
        cmocka_unit_test(test_replies_become_utf8),
        cmocka_unit_test(test_server_run_outputs),
        cmocka_unit_test(test_server_resume_after_sigkill),
        cmocka_unit_test(test_server_absent_is_clear),
        cmocka_unit_test(test_real_without_gpu_is_clear),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
