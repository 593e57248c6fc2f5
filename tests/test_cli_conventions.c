/* What every command promises a user (issue 20, items 3, 6 and 7), tried on
 * the built commands as a user runs them: --version; vLLM's option names and
 * --name=value, with the older names as aliases; the same exit status for
 * the same kind of error (0 done, 1 failed, 2 bad usage or input); a write
 * error on stdout is an error; output paths checked before any work; running
 * from any directory (the data folder found beside the executable, or named
 * by PAGESIM_DATA / --data-dir).  Writes under build/tmp/cli/ and a fresh
 * directory under /tmp (removed). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define TMP "build/tmp/cli"
static char g_bin[PATH_MAX];          /* the commands' folder, absolute */
static char g_root[PATH_MAX];         /* the repository root (where tests run) */
static char g_out[1 << 17];           /* the last command's stdout and stderr */

/* Runs a shell command line (cd'ing nowhere), its stdout and stderr into
 * g_out unless the line redirects them itself; returns the exit status. */
static int sh(const char *fmt, ...) {
    char line[8192], cmd[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "( %s ) 2>&1", line);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int setup(void **st) {
    (void)st;
    if (!realpath(tu_bindir(), g_bin) || !getcwd(g_root, sizeof g_root)) return -1;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    return 0;
}

static const char *const k_cmds[] = {
    "pagesim", "pagesim run", "pagesim plan", "pagesim calibrate", "engine/run", "engine/bench",
    "engine/serve", "engine/hub", "engine/hub encode", "engine/merge", "labs/bias", "labs/bias analyze",
    "labs/bias compare",
    "labs/paging", "labs/blocksize", "labs/planning", "labs/sharing", "labs/prefix", "labs/preemption",
    "labs/batching", "labs/bias-sheet",
};
enum { N_CMDS = sizeof k_cmds / sizeof *k_cmds };

/* --version on every command (and its subcommands): status 0, one line naming it */
static void test_version_everywhere(void **st) {
    (void)st;
    for (int i = 0; i < N_CMDS; i++) {
        int rc = sh("%s/%s --version", g_bin, k_cmds[i]);
        if (rc != 0 || !strstr(g_out, "(pagesim) ")) fail_msg("%s --version: status %d\n%s", k_cmds[i], rc, g_out);
    }
}

/* an unknown option is bad usage: status 2, the option named, on every command */
static void test_bad_usage_is_2_everywhere(void **st) {
    (void)st;
    for (int i = 0; i < N_CMDS; i++) {
        int rc = sh("%s/%s --no-such-option", g_bin, k_cmds[i]);
        if (rc != 2 || !strstr(g_out, "--no-such-option"))
            fail_msg("%s --no-such-option: status %d\n%s", k_cmds[i], rc, g_out);
    }
}

/* an input file that is not there is bad input: status 2, the file named */
static void test_missing_input_is_2(void **st) {
    (void)st;
    static const char *const lines[] = {
        "pagesim plan --model " TMP "/nope.json --gpu A100-40GB",
        "pagesim run --model " TMP "/nope.json --gpu A100-40GB",
        "pagesim run --model data/models/opt-13b.json --gpu A100-40GB --workload " TMP "/nope.json",
        "pagesim --workload " TMP "/nope.json",
        "pagesim --model " TMP "/nope.json --gpu H200",
        "pagesim calibrate --measured " TMP "/nope.json --model data/models/opt-13b.json --gpu H200",
        "engine/run --dummy-weights " TMP "/nope.json",
        "engine/bench --dummy-weights " TMP "/nope.json",
        "engine/hub encode --tokenizer " TMP "/nope.json hello",
        "labs/bias --tickers " TMP "/nope.json --output-dir " TMP "/bias-nope",
        "labs/bias --profile " TMP "/nope.json --output-dir " TMP "/bias-nope",
        "labs/paging --check " TMP "/nope.json",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        int rc = sh("%s/%s", g_bin, lines[i]);
        if (rc != 2 || !strstr(g_out, "nope.json")) fail_msg("%s: status %d\n%s", lines[i], rc, g_out);
    }
}

/* item 3: an option given explicitly that cannot be honoured stops the run
 * before anything is written (no fallback to an estimate, no skipped part) */
static void test_bias_explicit_options_must_work(void **st) {
    (void)st;
    static const char *const bad[] = {
        "--tokenizer /nonexistent.json", "--model-config /nonexistent.json", "--gpu BOGUS",
        "--gpu 8GB",                            /* a GPU the model does not fit on */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sh("rm -rf " TMP "/bias3");
        int rc = sh("%s/labs/bias --num-sets 1 --num-trials 1 --output-dir " TMP "/bias3 %s", g_bin, bad[i]);
        if (rc != 2) fail_msg("labs/bias %s: status %d\n%s", bad[i], rc, g_out);
        assert_non_null(strstr(g_out, bad[i] + 2 + strcspn(bad[i] + 2, " ") + 1));   /* the value named */
        assert_int_not_equal(access(TMP "/bias3/Qwen3-30B-A3B-Instruct-2507_att_set_1.csv", F_OK), 0);
    }
}

/* item 6: a write error on stdout is an error, for every command that prints a result */
static void test_stdout_write_error(void **st) {
    (void)st;
    if (access("/dev/full", W_OK) != 0) { skip(); return; }
    sh("rm -rf " TMP "/full && %s/labs/bias --num-sets 1 --num-trials 1 --no-serving --quiet --output-dir "
       TMP "/full > /dev/null", g_bin);
    char tok[512];
    snprintf(tok, sizeof tok, "data/tokenizers/qwen3/tokenizer.json");
    const char *const lines[] = {
        "pagesim plan --model data/models/opt-13b.json --gpu A100-40GB",
        "pagesim run --model data/models/opt-13b.json --gpu A100-40GB --num-prompts 20 --quiet",
        "pagesim --blocks 8 --tui",
        "labs/bias analyze --model-id Qwen/Qwen3-30B-A3B-Instruct-2507 --output-dir " TMP "/full",
        access(tok, R_OK) == 0 ? "engine/hub encode --tokenizer data/tokenizers/qwen3/tokenizer.json Hello" : NULL,
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        if (!lines[i]) continue;
        int rc = sh("%s/%s > /dev/full", g_bin, lines[i]);
        if (rc != 1 || !strstr(g_out, "No space left on device")) fail_msg("%s > /dev/full: status %d\n%s", lines[i], rc, g_out);
        assert_int_equal(sh("%s/%s > /dev/null", g_bin, lines[i]), 0);      /* and it works otherwise */
    }
}

/* item 6: output paths and formats are checked before the simulation runs */
static void test_outputs_checked_first(void **st) {
    (void)st;
    const char *m = "--model data/models/opt-13b.json --gpu A100-40GB --num-prompts 20000";
    assert_int_equal(sh("%s/pagesim run %s --plot " TMP "/x.bmp", g_bin, m), 2);
    assert_non_null(strstr(g_out, "x.bmp"));
    assert_null(strstr(g_out, "requests finished"));
    assert_int_equal(sh("%s/pagesim run %s --json " TMP "/no/dir/x.json", g_bin, m), 2);
    assert_null(strstr(g_out, "requests finished"));
    assert_int_equal(sh("%s/pagesim run --fig2 --plot " TMP "/fig.gif", g_bin), 2);
    assert_null(strstr(g_out, "Figure 2"));
    assert_int_equal(sh("%s/pagesim --png " TMP "/no/dir/a.png", g_bin), 2);
    assert_int_equal(sh("%s/labs/bias --dump-prompts " TMP "/no/dir/p.jsonl", g_bin), 2);
}

/* item 6: --json is written whole or not at all: a write that fails half way
 * (a file size limit) leaves the earlier file as it was */
static void test_json_written_atomically(void **st) {
    (void)st;
    sh("rm -f " TMP "/run.json*");
    FILE *f = fopen(TMP "/run.json", "w");
    assert_non_null(f);
    fputs("{\"earlier\": true}\n", f);
    fclose(f);
    int rc = sh("trap '' XFSZ; ulimit -f 4; %s/pagesim run --model data/models/opt-13b.json --gpu A100-40GB --num-prompts 300 "
                "--quiet --json " TMP "/run.json > /dev/null", g_bin);
    assert_int_equal(rc, 1);
    char *s = tu_slurp(TMP "/run.json");
    assert_non_null(s);
    assert_string_equal(s, "{\"earlier\": true}\n");
    free(s);
    assert_int_equal(sh("ls " TMP " | grep -c 'run.json.tmp' || true"), 0);
    assert_int_equal(atoi(g_out), 0);
    /* and without the limit, the whole file */
    assert_int_equal(sh("%s/pagesim run --model data/models/opt-13b.json --gpu A100-40GB --num-prompts 300 "
                        "--quiet --json " TMP "/run.json > /dev/null", g_bin), 0);
    s = tu_slurp(TMP "/run.json");
    assert_non_null(s);
    assert_non_null(strstr(s, "\"summary\""));
    free(s);
}

/* item 6: a killed labs/bias leaves no *.tmp.PID, and a resume removes those a
 * kill -9 (which nothing can catch) left behind */
static void test_bias_no_stale_temporaries(void **st) {
    (void)st;
    const char *dir = TMP "/biaskill", *model = "Qwen3-30B-A3B-Instruct-2507";
    sh("rm -rf %s", dir);
    assert_int_equal(sh("%s/labs/bias --num-sets 1 --num-trials 1 --no-serving --quiet --output-dir %s > /dev/null",
                        g_bin, dir), 0);
    pid_t kid = fork();                          /* a pid that no longer exists */
    assert_true(kid >= 0);
    if (kid == 0) _exit(0);
    waitpid(kid, NULL, 0);
    char stale[512];
    snprintf(stale, sizeof stale, "%s/%s_att_set_1.csv.tmp.%ld", dir, model, (long)kid);
    FILE *f = fopen(stale, "w");
    assert_non_null(f);
    fputs("half a set file", f);
    fclose(f);
    assert_int_equal(sh("%s/labs/bias --num-sets 1 --num-trials 1 --no-serving --quiet --output-dir %s > /dev/null",
                        g_bin, dir), 0);
    if (access(stale, F_OK) == 0) fail_msg("the resume left %s", stale);
    /* SIGTERM in the middle of a run: nothing half-written stays */
    sh("rm -rf %s", dir);
    sh("%s/labs/bias --num-sets 2 --num-trials 4 --max-workers 50 --batch-delay-ms 30 --no-serving --quiet "
       "--output-dir %s > /dev/null & p=$!; sleep 0.5; kill -TERM $p; wait $p", g_bin, dir);
    assert_int_equal(sh("ls %s | grep -c '\\.tmp\\.' || true", dir), 0);
    assert_int_equal(atoi(g_out), 0);
}

/* item 7: vLLM's names, --name=value, and the old names as aliases give the same run */
static void test_vllm_names_and_aliases(void **st) {
    (void)st;
    const char *m = "--model=data/models/opt-13b.json --gpu=A100-40GB";
    char first[4096];
    /* pagesim plan: -tp, --tensor-parallel-size=, --tp the same plan */
    assert_int_equal(sh("%s/pagesim plan %s --tensor-parallel-size=2 --gpu-memory-utilization=0.85 "
                        "--swap-space=2 --max-model-len=2048 --max-num-seqs=128 --max-num-batched-tokens=4096", g_bin, m), 0);
    snprintf(first, sizeof first, "%.4000s", g_out);
    assert_non_null(strstr(first, "x 2"));
    assert_int_equal(sh("%s/pagesim plan %s -tp 2 --util 0.85 --swap-gb 2 --max-model-len 2048 --max-num-seqs 128 "
                        "--max-batched-tokens 4096", g_bin, m), 0);
    assert_string_equal(g_out, first);
    /* pagesim run: --num-gpu-blocks and --num-prompts, or their old names */
    assert_int_equal(sh("%s/pagesim run %s --num-gpu-blocks=300 --num-prompts=40 --quiet --no-enable-prefix-caching "
                        "--swap-space=1 --preempt swap", g_bin, m), 0);
    assert_non_null(strstr(g_out, "300 blocks"));
    assert_non_null(strstr(g_out, "40 requests"));
    assert_non_null(strstr(g_out, "prefix caching off"));
    snprintf(first, sizeof first, "%.4000s", strstr(g_out, "requests finished"));
    char *w = strstr(first, "wall time");
    if (w) *w = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sh("%s/pagesim run %s %s 300 %s 40 --quiet --no-prefix-caching --swap-gb 1 --preempt swap", g_bin,
                            m, i ? "--num-blocks" : "--num-gpu-blocks", i ? "--requests" : "--num-requests"), 0);
        assert_non_null(strstr(g_out, first));
    }
    /* one default for prefix caching: on (as vLLM), off only for the paper's reproductions */
    assert_int_equal(sh("%s/pagesim run %s --num-prompts 10 --quiet", g_bin, m), 0);
    assert_non_null(strstr(g_out, "prefix caching on"));
    /* the view: --blocks (the design's name) or --num-gpu-blocks, --max-model-len, ... */
    assert_int_equal(sh("%s/pagesim --blocks=12 --tui --max-model-len=24 --num-prompts=3 --max-num-batched-tokens=64 "
                        "--max-num-seqs=4 --no-enable-prefix-caching --swap-blocks 4", g_bin), 0);
    snprintf(first, sizeof first, "%.4000s", g_out);
    assert_int_equal(sh("%s/pagesim --num-gpu-blocks 12 --tui --max-len 24 --requests 3 --max-batched-tokens 64 "
                        "--max-num-seqs 4 --no-prefix-caching --swap-blocks 4", g_bin), 0);
    assert_string_equal(g_out, first);
    assert_int_equal(sh("%s/pagesim --blocks 12 --tui --model data/models/opt-13b.json --gpu H200 -tp 1 --swap-space 0.01",
                        g_bin), 0);
    /* labs/bias and the engine's commands take the same names (the engine stops later, at its input) */
    assert_int_equal(sh("%s/labs/bias --dump-prompts " TMP "/p.jsonl --num-sets 1 --num-trials 1 --tensor-parallel-size=4 "
                        "--enable-prefix-caching --gpu-memory-utilization=0.9 --num-gpu-blocks=100 --max-model-len=4096",
                        g_bin), 0);
    static const char *const eng[] = { "engine/run", "engine/bench", "engine/serve" };
    for (int i = 0; i < 3; i++) {
        int rc = sh("%s/%s --dummy-weights " TMP "/nope.json --tensor-parallel-size=1 --no-enable-prefix-caching "
                    "--gpu-memory-utilization=0.8 --num-gpu-blocks=64 --max-model-len=512 --max-num-seqs=8 "
                    "--max-num-batched-tokens=512 --block-size=16", g_bin, eng[i]);
        if (strstr(g_out, "unknown option") || strstr(g_out, "needs a value")) fail_msg("%s: %s", eng[i], g_out);
        (void)rc;
    }
    assert_int_equal(sh("%s/engine/bench --dummy-weights " TMP "/nope.json --num-prompts=8", g_bin), 2);
    assert_non_null(strstr(g_out, "nope.json"));
}

/* item 7: every command runs from any directory, as the README's examples are
 * typed (data/... paths included); PAGESIM_DATA and --data-dir name the folder */
static void test_any_directory(void **st) {
    (void)st;
    char dir[] = "/tmp/pagesim-cwd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *const lines[] = {
        "pagesim run --fig2 --num-prompts 200",
        "pagesim run --rate-sweep --setting opt-13b --workload sharegpt --sweep-seconds 60 --quiet",
        "pagesim plan --model data/models/qwen2.5-7b-instruct-awq.json --gpu RTX-4070 --max-model-len 6144 "
            "--gpu-memory-utilization 0.92",
        "pagesim run --workload sharegpt --num-prompts 100 --rate 2 --model data/models/opt-13b.json --gpu A100-40GB "
            "--json run.json --quiet",
        "pagesim --blocks 16 --compare contiguous --step 12 --png pool.png",
        "labs/planning --quiet",
        "labs/bias --num-sets 1 --num-trials 1 --quiet",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        int rc = sh("cd %s && %s/%s", dir, g_bin, lines[i]);
        if (rc != 0) fail_msg("from %s: %s: status %d\n%s", dir, lines[i], rc, g_out);
    }
    assert_int_equal(sh("cd %s && test -s run.json && test -s pool.png && test -d out/planning && test -d result", dir), 0);
    /* a wrong file name: named, status 2 */
    assert_int_equal(sh("cd %s && %s/pagesim plan --model data/models/nope.json --gpu H200", dir, g_bin), 2);
    assert_non_null(strstr(g_out, "data/models/nope.json"));
    /* the data folder named: PAGESIM_DATA, --data-dir; one that is not there is an error */
    assert_int_equal(sh("cd %s && PAGESIM_DATA=%s/data %s/pagesim plan --model data/models/opt-13b.json --gpu H200",
                        dir, g_root, g_bin), 0);
    assert_int_equal(sh("cd %s && PAGESIM_DATA=%s/none %s/pagesim plan --model data/models/opt-13b.json --gpu H200",
                        dir, dir, g_bin), 2);
    assert_non_null(strstr(g_out, "PAGESIM_DATA"));
    assert_int_equal(sh("cd %s && %s/pagesim plan --data-dir %s/none --model data/models/opt-13b.json --gpu H200",
                        dir, g_bin, dir), 2);
    assert_non_null(strstr(g_out, "--data-dir"));
    assert_int_equal(sh("cd %s && %s/labs/paging --data-dir=%s/data --check nope.json", dir, g_bin, g_root), 2);
    assert_int_equal(sh("rm -rf %s", dir), 0);
}

/* the smaller items: pagesim --help lists the view's options; the bias lab
 * says what its KV numbers are */
static void test_help_and_labels(void **st) {
    (void)st;
    assert_int_equal(sh("%s/pagesim --help", g_bin), 0);
    assert_non_null(strstr(g_out, "run "));
    assert_non_null(strstr(g_out, "--blocks N"));
    assert_non_null(strstr(g_out, "--compare"));
    assert_non_null(strstr(g_out, "--png"));
    sh("rm -rf " TMP "/label");
    assert_int_equal(sh("%s/labs/bias --num-sets 1 --num-trials 1 --quiet --output-dir " TMP "/label", g_bin), 0);
    assert_null(strstr(g_out, "KV util"));
    assert_non_null(strstr(g_out, "of the KV pool"));
    assert_non_null(strstr(g_out, "token states"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_everywhere),
        cmocka_unit_test(test_bad_usage_is_2_everywhere),
        cmocka_unit_test(test_missing_input_is_2),
        cmocka_unit_test(test_bias_explicit_options_must_work),
        cmocka_unit_test(test_stdout_write_error),
        cmocka_unit_test(test_outputs_checked_first),
        cmocka_unit_test(test_json_written_atomically),
        cmocka_unit_test(test_bias_no_stale_temporaries),
        cmocka_unit_test(test_vllm_names_and_aliases),
        cmocka_unit_test(test_any_directory),
        cmocka_unit_test(test_help_and_labels),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
