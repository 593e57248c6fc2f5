/* bench_bias: the full default bias experiment (all tickers of the project's
 * universe, 10 trials, 3 sets) timed by phase: inputs, prompts with token
 * counts, simulated replies and files, serving simulation, aggregation.
 * Target (issue 5): under 10 s on one core.  With ../shared present, also
 * predicts the study's own run (its inputs, 4 x H200, TP 4) beside the 152 s
 * it measured.  Writes under build/tmp/bench_bias.PID only (removed at the end). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "labs/bias_aggregate.h"
#include "labs/bias_data.h"
#include "labs/bias_evidence.h"
#include "labs/bias_metrics.h"
#include "labs/bias_profile.h"
#include "labs/bias_prompt.h"
#include "labs/bias_run.h"
#include "labs/bias_serving.h"
#include "labs/bias_tokens.h"

static double cpu(void) { return (double)clock() / CLOCKS_PER_SEC; }
static double wall(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static int experiment(const char *label, const char *dir, const char *tickers, const char *qual, const char *quant,
                      double *total_cpu) {
    char err[1024];
    double c0 = cpu(), w0 = wall(), c, w;
    bias_universe u;
    bias_profile p;
    bias_source src;
    bias_run_stats st = {0};
    bias_serving_result sr = {0};
    bias_result r;
    if (bias_universe_load_tickers(&u, tickers, err, sizeof err) ||
        (qual ? bias_universe_attach_evidence(&u, qual, quant, err, sizeof err) : bias_evidence_generate(&u, 1, err, sizeof err)) ||
        bias_profile_load(&p, "data/bias_profiles/qwen3-30b-a3b.json", err, sizeof err) ||
        bias_profile_source(&src, &p, &u, 42, 0.6, err, sizeof err)) { fprintf(stderr, "bench_bias: %s\n", err); return -1; }
    printf("%s: %zu tickers x 10 trials x 3 sets = %zu prompts; token counts: %s\n", label, u.n, u.n * 30, bias_tokens_source());
    c = cpu(); w = wall();
    printf("  inputs (load + evidence)       %6.2f s cpu  %6.2f s wall\n", c - c0, w - w0);

    /* tokenization alone, for the breakdown (the run below does it again) */
    double c1 = cpu(), w1 = wall();
    long long toks = 0;
    for (int set = 1; set <= 3; set++)
        for (size_t i = 0; i < u.n; i++)
            for (int t = 0; t < 10; t++) {
                bias_buf b = {0}; bias_prompt_info info;
                bias_prompt_build(&u.stocks[i], i, set, t, 10, 42, &b, &info);
                toks += bias_count_prompt_tokens(b.s);
                bias_buf_free(&b);
            }
    printf("  prompts + tokenization         %6.2f s cpu  %6.2f s wall  (%lld prompt tokens, %.0f a prompt)\n",
           cpu() - c1, wall() - w1, toks, (double)toks / (double)(u.n * 30));

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return -1;
    bias_run_config rc = { .model = "Qwen3-30B-A3B-Instruct-2507", .model_id = "Qwen/Qwen3-30B-A3B-Instruct-2507",
                           .temperature = 0.6, .top_p = 0.8, .max_tokens = 1024, .num_sets = 3, .num_trials = 10,
                           .max_workers = 200, .seed = 42, .output_dir = dir, .inputs = label };
    double c2 = cpu(), w2 = wall();
    if (bias_run_sets(&rc, &u, &src, &st, err, sizeof err)) { fprintf(stderr, "bench_bias: %s\n", err); return -1; }
    double c3 = cpu(), w3 = wall();
    printf("  run: prompts, tokens, simulated replies, set files  %6.2f s cpu  %6.2f s wall (%zu answered)\n",
           c3 - c2, w3 - w2, st.answered);
    bias_serving_config sc;
    bias_serving_defaults(&sc);
    sc.model_config = "data/models/qwen3-30b-a3b-instruct-2507.json";
    int served = bias_serving_run(&sc, st.prompt_tokens, st.output_tokens, st.n / 3, 3, &sr, err, sizeof err) == 0;
    double c4 = cpu(), w4 = wall();
    if (served) printf("  serving simulation (paged + contiguous)  %6.2f s cpu  %6.2f s wall\n", c4 - c3, w4 - w3);
    else printf("  serving simulation skipped: %s\n", err);
    if (bias_write_metrics(&rc, &st, served ? &sr : NULL, err, sizeof err) ||
        bias_combine_sets(dir, rc.model, 3, err, sizeof err) || bias_aggregate(dir, rc.model, 0, &r, err, sizeof err)) {
        fprintf(stderr, "bench_bias: %s\n", err); return -1;
    }
    double c5 = cpu(), w5 = wall();
    printf("  combine + analysis             %6.2f s cpu  %6.2f s wall  (bias index %d)\n", c5 - c4, w5 - w4, r.bias_index);
    double run_cpu = (c5 - c0) - (c2 - c1);      /* everything but the breakdown pass */
    printf("  TOTAL (as labs/bias runs it)   %6.2f s cpu  %6.2f s wall   target < 10 s on one core: %s\n",
           run_cpu, (w5 - w0) - (w2 - w1), run_cpu < 10 ? "MET" : "MISSED");
    if (served) bias_serving_print_check(&sr, stdout);
    *total_cpu = run_cpu;
    bias_serving_free(&sr);
    bias_run_stats_free(&st);
    bias_source_free(&src);
    bias_universe_free(&u);
    return 0;
}

int main(void) {
    double t = 0, t2 = 0;
    char d1[128], d2[128];
    snprintf(d1, sizeof d1, "build/tmp/bench_bias.%ld/default", (long)getpid());
    snprintf(d2, sizeof d2, "build/tmp/bench_bias.%ld/study", (long)getpid());
    if (experiment("default experiment (data/universe, generated evidence)", d1,
                   "data/universe/sp500.csv", NULL, NULL, &t)) return 1;
    const char *sh = getenv("PAGESIM_SHARED");
    char tk[512], q[512], n[512];
    snprintf(tk, sizeof tk, "%s/data/seed/sp500_final.csv", sh && *sh ? sh : "../shared");
    snprintf(q, sizeof q, "%s/data/seed/evidence_corpus_qual_mixed.csv", sh && *sh ? sh : "../shared");
    snprintf(n, sizeof n, "%s/data/seed/evidence_corpus_quant_mixed.csv", sh && *sh ? sh : "../shared");
    if (access(tk, R_OK) == 0 && access(q, R_OK) == 0 && access(n, R_OK) == 0) {
        printf("\n");
        if (experiment("the study's inputs (../shared/data/seed)", d2, tk, q, n, &t2)) return 1;
    } else {
        printf("(the study's inputs are absent: no prediction of its run)\n");
    }
    bias_tokens_free();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf build/tmp/bench_bias.%ld", (long)getpid());
    if (system(cmd) != 0) return 1;
    return t < 10 ? 0 : 1;
}
