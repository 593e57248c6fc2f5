/* Tests of the bias run: a run killed with SIGKILL in the middle resumes and
 * its final files hold every trial exactly once, byte-identical to an
 * unbroken run (also after a torn journal line); a planted sector and size
 * bias is recovered by the analysis; a null profile is not significant at
 * more than the nominal rate. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include "labs/bias_analysis.h"
#include "labs/bias_data.h"
#include "labs/bias_profile.h"
#include "labs/bias_reply.h"
#include "labs/bias_tokens.h"
#include "labs/bias_fit.h"
#include "labs/bias_run.h"
#include <cjson/cJSON.h>

/* Per-process scratch directory: other engineers may run these tests at the same time. */
static char T[128];
static const char *tp(const char *rel) { return tu_join(T, rel); }   /* "T/rel" */
#define MODEL "M"


static void sleep_ms(int ms) {
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

/* Starts labs/bias on the small universe; returns its pid. */
static pid_t start(const char *dir, int delay_ms) {
    char bin[512], delay[16];
    snprintf(bin, sizeof bin, "%s/labs/bias", tu_bindir());
    snprintf(delay, sizeof delay, "%d", delay_ms);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(126);
        execl(bin, bin, "--model-id", "org/" MODEL, "--tickers", tp("tickers.csv"), "--num-sets", "2",
              "--num-trials", "10", "--max-workers", "4", "--seed", "7", "--output-dir", dir, "--quiet",
              "--no-serving", "--tokenizer", "none", "--batch-delay-ms", delay, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int finish(pid_t pid) {
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static void check_once(const char *dir, int set, size_t ntickers) {
    char path[512];
    snprintf(path, sizeof path, "%s/" MODEL "_att_set_%d.csv", dir, set);
    bias_csv t;
    char err[512];
    assert_int_equal(bias_csv_load(&t, path, err, sizeof err), 0);
    assert_int_equal(t.nrows, ntickers * 10);
    int ct = bias_csv_col(&t, "ticker"), cr = bias_csv_col(&t, "trial");
    assert_true(ct >= 0 && cr >= 0);
    for (size_t i = 0; i < t.nrows; i++)           /* every (ticker, trial) exactly once */
        for (size_t j = i + 1; j < t.nrows; j++)
            assert_false(strcmp(bias_csv_at(&t, i, ct), bias_csv_at(&t, j, ct)) == 0 &&
                         strcmp(bias_csv_at(&t, i, cr), bias_csv_at(&t, j, cr)) == 0);
    bias_csv_free(&t);
}

static void same_file(const char *a_dir, const char *b_dir, const char *name) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/%s", a_dir, name);
    snprintf(b, sizeof b, "%s/%s", b_dir, name);
    char *x = tu_slurp(a), *y = tu_slurp(b);
    assert_non_null(x); assert_non_null(y);
    assert_true(strcmp(x, y) == 0);
    free(x); free(y);
}

static void test_resume_after_sigkill(void **state) {
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && rm -rf %s/ref %s/killed && "
             "awk 'NR == 1 || NR %% 16 == 0' data/universe/sp500.csv > %s/tickers.csv", T, T, T, T);
    assert_int_equal(system(cmd), 0);
    /* the reference: one unbroken run */
    assert_int_equal(finish(start(tp("ref"), 0)), 0);
    /* the victim: killed once a set's journal holds some replies (set 1
     * normally; set 2 if this process was slow to look) */
    pid_t pid = start(tp("killed"), 20);
    char journal[512], setfile[512];
    struct stat sb;
    int waited = 0, set = 0;
    while (!set && waited < 20000) {
        for (int k = 1; k <= 2 && !set; k++) {
            snprintf(journal, sizeof journal, "%s/killed/" MODEL "_att_set_%d.progress.jsonl", T, k);
            if (stat(journal, &sb) == 0 && sb.st_size >= 2000) set = k;
        }
        if (!set) { sleep_ms(5); waited += 5; }
    }
    assert_true(set > 0);
    kill(pid, SIGKILL);
    int st = finish(pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);          /* it really died mid-run */
    snprintf(setfile, sizeof setfile, "%s/killed/" MODEL "_att_set_%d.csv", T, set);
    assert_int_equal(access(setfile, F_OK), -1);                      /* nothing looks complete */
    assert_int_equal(access(tp("killed/" MODEL "_att_result.json"), F_OK), -1);
    /* a torn last line, as a kill inside write() would leave */
    FILE *f = fopen(journal, "ab");
    assert_non_null(f);
    fputs("{\"i\":3,\"t\":5,\"o\":\"{\\\"decision\\\": \\\"bu", f);
    fclose(f);
    /* the rerun resumes and completes */
    assert_int_equal(finish(start(tp("killed"), 0)), 0);
    assert_int_equal(access(journal, F_OK), -1);
    check_once(tp("killed"), 1, 31);
    check_once(tp("killed"), 2, 31);
    same_file(tp("ref"), tp("killed"), MODEL "_att_set_1.csv");
    same_file(tp("ref"), tp("killed"), MODEL "_att_set_2.csv");
    same_file(tp("ref"), tp("killed"), MODEL "_att_combined.csv");
    same_file(tp("ref"), tp("killed"), MODEL "_att_result.json");
    /* another seed in the same directory is refused, not mixed in */
    snprintf(cmd, sizeof cmd, "%s/labs/bias --model-id org/" MODEL " --tickers %s/tickers.csv --seed 8 "
             "--output-dir %s/killed --quiet --no-serving --tokenizer none > /dev/null 2>&1", tu_bindir(), T, T);
    assert_true(system(cmd) != 0);
}

/* A source that dies after `left` replies (a server going away). */
typedef struct flaky { bias_source inner; size_t left; } flaky;
static int flaky_generate(void *ctx, const bias_request *req, size_t n, bias_reply *out,
                          bias_reply_cb cb, void *cb_ctx, char *err, size_t errlen) {
    flaky *f = ctx;
    size_t m = n < f->left ? n : f->left;
    if (f->inner.generate(f->inner.ctx, req, m, out, cb, cb_ctx, err, errlen)) return -1;
    f->left -= m;
    if (m < n) { snprintf(err, errlen, "server went away"); return -1; }
    return 0;
}

static void test_source_failure_keeps_replies(void **state) {
    (void)state;
    bias_tokens_use("/nonexistent");
    char err[512], cmd[512];
    bias_universe u;
    assert_int_equal(bias_universe_load_tickers(&u, "data/universe/sp500.csv", err, sizeof err), 0);
    size_t all = u.n;
    u.n = 20;                                        /* the first twenty are enough */
    bias_profile p;
    assert_int_equal(bias_profile_load(&p, "data/bias_profiles/qwen3-30b-a3b.json", err, sizeof err), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s/flaky %s/clean", T, T);
    assert_int_equal(system(cmd), 0);
    bias_run_config c = { .model = MODEL, .model_id = MODEL, .temperature = 0.6, .top_p = 0.8, .max_tokens = 1024,
                          .num_sets = 2, .num_trials = 10, .max_workers = 16, .seed = 3, .inputs = "test" };
    bias_run_stats st;
    flaky f = { .left = 237 };                       /* dies inside set 2 */
    assert_int_equal(bias_profile_source(&f.inner, &p, &u, 3, 0.6, err, sizeof err), 0);
    bias_source src = { .name = "flaky", .ctx = &f, .generate = flaky_generate };
    c.output_dir = tp("flaky");
    assert_int_equal(bias_run_sets(&c, &u, &src, &st, err, sizeof err), -1);
    assert_non_null(strstr(err, "server went away"));
    bias_run_stats_free(&st);
    /* the rerun takes set 1 from its file and the 37 replies of set 2 from the journal */
    f.left = (size_t)-1;
    assert_int_equal(bias_run_sets(&c, &u, &src, &st, err, sizeof err), 0);
    assert_int_equal(st.sets_reused, 1);
    assert_int_equal(st.resumed, 200 + 37);
    bias_run_stats_free(&st);
    /* and the files equal a run that never failed */
    c.output_dir = tp("clean");
    assert_int_equal(bias_run_sets(&c, &u, &f.inner, &st, err, sizeof err), 0);
    bias_run_stats_free(&st);
    same_file(tp("flaky"), tp("clean"), MODEL "_att_set_1.csv");
    same_file(tp("flaky"), tp("clean"), MODEL "_att_set_2.csv");
    bias_source_free(&f.inner);
    u.n = all;
    bias_universe_free(&u);
    bias_tokens_free();
}

/* ---- planted and null bias, through the simulated source and the parser ---- */

typedef struct scored { bias_result r; double p_fixed; } scored;

/* Runs the simulated model over u for sets x 10 trials and analyses it. */
static void simulate(const bias_universe *u, const bias_profile *p, uint64_t seed, int sets, scored *out,
                     const char *fixed_a, const char *fixed_b) {
    bias_source src;
    char err[512];
    assert_int_equal(bias_profile_source(&src, p, u, seed, 0.6, err, sizeof err), 0);
    size_t n = u->n * 10 * (size_t)sets;
    bias_obs *obs = calloc(n, sizeof *obs);
    bias_request *req = calloc(u->n * 10, sizeof *req);
    bias_reply *rep = calloc(u->n * 10, sizeof *rep);
    assert_non_null(obs); assert_non_null(req); assert_non_null(rep);
    size_t k = 0;
    for (int set = 1; set <= sets; set++) {
        size_t m = 0;
        for (size_t i = 0; i < u->n; i++)
            for (int t = 0; t < 10; t++)
                req[m++] = (bias_request){ .stock = &u->stocks[i], .stock_index = i, .set = set, .trial = t,
                                           .num_trials = 10, .buy_first = t < 5 };
        assert_int_equal(src.generate(src.ctx, req, m, rep, NULL, NULL, err, sizeof err), 0);
        for (size_t j = 0; j < m; j++) {
            char a[32];
            bias_reply_parse(rep[j].text, a, sizeof a);
            const bias_stock *s = req[j].stock;
            obs[k++] = (bias_obs){ .set = set, .ticker = s->ticker, .name = s->name, .sector = s->sector,
                                   .marketcap = s->marketcap, .vote = bias_vote(a) };
            free(rep[j].text);
        }
    }
    assert_int_equal(bias_analyze(obs, k, &out->r, err, sizeof err), 0);
    /* a t-test between two groups named in advance (no selection) */
    double *xa = calloc(u->n * (size_t)sets, sizeof *xa), *xb = calloc(u->n * (size_t)sets, sizeof *xb);
    size_t na = 0, nb = 0;
    for (size_t j = 0; j < k; j += 10) {            /* obs come in blocks of 10 trials of one ticker */
        int buys = 0, sells = 0;
        for (int t = 0; t < 10; t++) { buys += obs[j + t].vote > 0; sells += obs[j + t].vote < 0; }
        if (buys + sells == 0) continue;
        double sc = 100.0 * (buys - sells) / (buys + sells);
        if (!strcmp(obs[j].sector, fixed_a)) xa[na++] = sc;
        if (!strcmp(obs[j].sector, fixed_b)) xb[nb++] = sc;
    }
    double t, pv; int df;
    assert_int_equal(bias_student_t(xa, na, xb, nb, &t, &pv, &df), 0);
    out->p_fixed = pv;
    free(xa); free(xb); free(obs); free(req); free(rep);
    bias_source_free(&src);
}

static void test_planted_bias_recovered(void **state) {
    (void)state;
    bias_tokens_use("/nonexistent");                  /* estimates: fast */
    char err[512];
    bias_universe u;
    assert_int_equal(bias_universe_load_tickers(&u, "data/universe/sp500.csv", err, sizeof err), 0);
    bias_profile p;
    bias_profile_null(&p);
    p.nsector = 2;
    snprintf(p.sector_name[0], 64, "Technology"); p.sector[0] = 25;
    snprintf(p.sector_name[1], 64, "Energy"); p.sector[1] = -25;
    p.size[0] = 20; p.size[3] = -20;
    p.base = 10; p.ticker_noise = 15; p.order_effect = 5;
    p.hold_rate = 0.01; p.malformed_rate = 0.01; p.case_rate = 0.05;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        scored s;
        simulate(&u, &p, seed, 3, &s, "Healthcare", "Industrials");
        assert_string_equal(s.r.t_sector.high, "Technology");
        assert_string_equal(s.r.t_sector.low, "Energy");
        assert_string_equal(s.r.t_size.high, "Q1");
        assert_string_equal(s.r.t_size.low, "Q4");
        assert_true(s.r.t_sector.p < 0.01);
        assert_true(s.r.t_size.p < 0.01);
        assert_true(fabs(s.r.t_sector.mean_diff - 50) < 15);     /* the planted gap, give or take noise */
        assert_true(fabs(s.r.t_size.mean_diff - 40) < 15);
    }
    bias_universe_free(&u);
    bias_tokens_free();
}

static void test_null_profile_nominal_rate(void **state) {
    (void)state;
    bias_tokens_use("/nonexistent");
    char err[512];
    bias_universe u;
    assert_int_equal(bias_universe_load_tickers(&u, "data/universe/sp500.csv", err, sizeof err), 0);
    bias_profile p;
    bias_profile_null(&p);
    int fixed = 0, selected_sector = 0, selected_size = 0, runs = 50, small_index = 0;
    for (uint64_t seed = 1; seed <= (uint64_t)runs; seed++) {
        scored s;
        simulate(&u, &p, 1000 + seed, 2, &s, "Healthcare", "Industrials");
        fixed += s.p_fixed < 0.05;
        selected_sector += s.r.t_sector.p < 0.05;
        selected_size += s.r.t_size.p < 0.05;
        small_index += s.r.bias_index < 20;
    }
    print_message("null profile, %d runs: p < 0.05 for a pre-named pair in %d; for the study's "
                  "highest-vs-lowest test: sector %d, size %d; bias index < 20 in %d\n",
                  runs, fixed, selected_sector, selected_size, small_index);
    /* a pre-named pair: about 5% (P(X >= 9) < 0.003 under Binomial(50, 0.05)) */
    assert_true(fixed <= 8);
    /* highest-vs-lowest picks the extremes, so its p-values run small even
     * with no bias at all; still, it must not flag every run */
    assert_true(selected_size < runs);
    assert_true(small_index >= runs / 2);
    bias_universe_free(&u);
    bias_tokens_free();
}

/* The whole command with the serving simulation: the study's files, the
 * memory JSON and the figure. */
static void test_outputs_and_serving(void **state) {
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && rm -rf %s/full && awk 'NR == 1 || NR %% 12 == 0' data/universe/sp500.csv "
             "> %s/t40.csv", T, T, T);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/labs/bias --model-id org/" MODEL " --tickers %s/t40.csv --num-sets 2 "
             "--output-dir %s/full --quiet --gpu H100 --tp 1 --model-config data/models/qwen3-8b.json "
             "--max-model-len 2048 > %s/full.txt 2>&1", tu_bindir(), T, T, T);
    assert_int_equal(system(cmd), 0);
    const char *files[] = { "_att_set_1.csv", "_att_set_2.csv", "_att_combined.csv", "_att_result.json",
                            "_att_metrics.json", "_att_memory.json", "_att_figure.png", "_att_figure.svg" };
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/full/" MODEL "%s", T, files[i]);
        assert_int_equal(access(path, R_OK), 0);
    }
    /* the metrics file: the study's keys, in its order */
    char *m = tu_slurp(tp("full/" MODEL "_att_metrics.json"));
    assert_non_null(m);
    cJSON *j = cJSON_Parse(m);
    assert_non_null(j);
    const char *keys[] = { "model", "total_sets", "total_prompts", "total_cost_usd", "total_input_tokens",
                           "total_output_tokens", "total_tokens", "total_time_seconds",
                           "average_time_per_set_seconds", "average_latency_seconds", "average_ttft_seconds" };
    const cJSON *it = j->child;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++, it = it->next) {
        assert_non_null(it);
        assert_string_equal(it->string, keys[i]);
    }
    assert_int_equal(cJSON_GetObjectItem(j, "total_prompts")->valueint, 820);
    double in = cJSON_GetObjectItem(j, "total_input_tokens")->valuedouble;
    double out = cJSON_GetObjectItem(j, "total_output_tokens")->valuedouble;
    assert_true(in / 820 > 150 && in / 820 < 1500);       /* a prompt of a few hundred tokens */
    assert_true(out / 820 > 60 && out / 820 < 130);       /* the profile's ~94-token replies */
    assert_true(cJSON_GetObjectItem(j, "total_time_seconds")->valuedouble > 0);
    cJSON_Delete(j); free(m);
    /* the memory file: both policies; contiguous holds more of the pool than paged */
    m = tu_slurp(tp("full/" MODEL "_att_memory.json"));
    assert_non_null(m);
    j = cJSON_Parse(m);
    assert_non_null(j);
    const cJSON *pol = cJSON_GetObjectItem(j, "policies");
    const cJSON *pg = cJSON_GetObjectItem(pol, "paged"), *ct = cJSON_GetObjectItem(pol, "contiguous");
    assert_non_null(pg); assert_non_null(ct);
    double up = cJSON_GetObjectItem(pg, "kv_utilization_mean")->valuedouble;
    double uc = cJSON_GetObjectItem(ct, "kv_utilization_mean")->valuedouble;
    assert_true(up > 0 && uc > up);
    assert_true(cJSON_GetObjectItem(pg, "token_share_of_used")->valuedouble >
                cJSON_GetObjectItem(ct, "token_share_of_used")->valuedouble);
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(pg, "set1_kv_utilization")) > 10);
    cJSON_Delete(j); free(m);
    /* analyze from the set files alone rebuilds the same result */
    char *r1 = tu_slurp(tp("full/" MODEL "_att_result.json"));
    snprintf(cmd, sizeof cmd, "rm %s/full/" MODEL "_att_combined.csv %s/full/" MODEL "_att_result.json && "
             "%s/labs/bias analyze --model-id org/" MODEL " --output-dir %s/full > /dev/null", T, T, tu_bindir(), T);
    assert_int_equal(system(cmd), 0);
    char *r2 = tu_slurp(tp("full/" MODEL "_att_result.json"));
    assert_non_null(r1); assert_non_null(r2);
    assert_string_equal(r1, r2);
    free(r1); free(r2);
}

/* The committed Qwen3 profile is what fit-profile makes of the study's result. */
static void test_fit_reproduces_profile(void **state) {
    (void)state;
    char res[512], tick[512], err[512];
    tu_shared_path(res, sizeof res, "data/seed/Qwen3-30B-A3B-Instruct-2507_att_result.json");
    TU_REQUIRE_FILE(res);
    tu_shared_path(tick, sizeof tick, "data/seed/sp500_final.csv");
    TU_REQUIRE_FILE(tick);
    bias_universe u;
    bias_profile fit, stored;
    bias_buf note = {0};
    assert_int_equal(bias_universe_load_tickers(&u, tick, err, sizeof err), 0);
    bias_profile_null(&fit);
    assert_int_equal(bias_fit_profile(res, &u, 3, 10, &fit, &note, err, sizeof err), 0);
    assert_int_equal(bias_profile_load(&stored, "data/bias_profiles/qwen3-30b-a3b.json", err, sizeof err), 0);
    assert_true(fabs(fit.base - stored.base) < 0.011);
    assert_true(fabs(fit.ticker_noise - stored.ticker_noise) < 0.11);
    assert_int_equal(fit.nsector, stored.nsector);
    for (int i = 0; i < fit.nsector; i++)
        assert_true(fabs(fit.sector[i] - bias_profile_sector(&stored, fit.sector_name[i])) < 0.011);
    for (int k = 0; k < 4; k++) assert_true(fabs(fit.size[k] - stored.size[k]) < 0.011);
    /* its expected group means are the published ones, shrunk a little toward
     * the mean (the binomial noise of a run spreads them out again) */
    double es[BIAS_PROFILE_SECTORS], ez[4];
    bias_profile_expected(&fit, &u, es, ez);
    assert_string_equal(fit.sector_name[0], "Utilities");          /* the study's order */
    for (int i = 1; i < fit.nsector; i++) assert_true(es[i] <= es[i - 1] + 1e-9);
    assert_true(fabs(es[0] - 26) < 2.5);
    assert_true(fabs(es[fit.nsector - 1] - 4) < 2.5);              /* Financial Services */
    assert_true(fabs(ez[0] - 30) < 2.5);                           /* Q1 */
    bias_buf_free(&note);
    bias_universe_free(&u);
}

static int cleanup(void **state) {
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", T);
    return system(cmd) == 0 ? 0 : 0;
}

int main(void) {
    snprintf(T, sizeof T, "build/tmp/bias_run.%ld", (long)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_after_sigkill),
        cmocka_unit_test(test_source_failure_keeps_replies),
        cmocka_unit_test(test_planted_bias_recovered),
        cmocka_unit_test(test_null_profile_nominal_rate),
        cmocka_unit_test(test_outputs_and_serving),
        cmocka_unit_test(test_fit_reproduces_profile),
    };
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
