/* test_lab_real: the labs' --real without a GPU.  Everything but the engine
 * call runs: lab_real_from_metrics on records made by hand; the simulated
 * twin (lab_real_simulate) on the engine's own KV and scheduler settings
 * (eng_kv_config, eng_sched_config: paged against contiguous, static
 * batching, prefix caching, preemption, requests the engine refuses); and
 * each lab's --real with a fake measurement (the twin, 25% slower, standing
 * in for the GPU): the workloads it builds, its table of measured beside
 * simulated numbers, its figure, the worksheet's extra question and the
 * narrative.  The front end without a GPU says so and exits 2, writing
 * nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "tests/test_util.h"
#include "tests/test_lab_util.h"
#include "engine/engine.h"
#include "labs/lab_batching.h"
#include "labs/lab_blocksize.h"
#include "labs/lab_paging.h"
#include "labs/lab_preemption.h"
#include "labs/lab_prefix.h"
#include "labs/lab_real.h"
#include "labs/lab_sharing.h"

#define SLOWER 1.25

typedef struct fake_ctx { int calls; lab_real_setup last; } fake_ctx;

/* The GPU's stand-in: the twin on the H200's profile, every time 25% longer. */
static int fake(void *ctx, const lab_real_setup *s, const wl_request *r, int n, lab_real_meas *out, char *err,
                size_t errlen) {
    fake_ctx *f = ctx;
    f->calls++;
    f->last = *s;
    if (lab_real_simulate(s, "H200", r, n, out, err, errlen) < 0) return -1;
    snprintf(out->where, sizeof out->where, "a fake GPU (the simulator, 25%% slower)");
    out->seconds *= SLOWER;
    out->out_tok_s /= SLOWER;
    out->total_tok_s /= SLOWER;
    out->norm_latency *= SLOWER;
    out->norm_latency_preempted *= SLOWER;
    out->norm_latency_others *= SLOWER;
    return 0;
}

static lab_real_meas twin(const lab_real_setup *s, const wl_request *r, int n) {
    lab_real_meas m;
    char err[512];
    if (lab_real_simulate(s, "H200", r, n, &m, err, sizeof err) < 0) fail_msg("%s", err);
    return m;
}

static wl_request *requests(wl_kind kind, int n, uint64_t seed) {
    wl_spec sp = { .kind = kind, .num_requests = n, .rate = 0, .seed = seed, .max_len = 2048 };
    wl_request *r = NULL;
    int nr = 0;
    char err[256];
    if (wl_generate(&sp, &r, &nr, err, sizeof err) < 0) fail_msg("%s", err);
    assert_int_equal(nr, n);
    return r;
}

/* ---- the numbers -------------------------------------------------------------- */

static void test_from_metrics(void **state) {
    (void)state;
    met_summary s;
    memset(&s, 0, sizeof s);
    s.num_requests = 3; s.num_finished = 3; s.prompt_tokens = 300; s.prefix_hit_tokens = 75;
    s.sim_time = 2; s.out_tok_per_s = 50;
    s.share_token = 0.4; s.share_reserved = 0.1; s.share_internal = 0.1; s.share_external = 0.1;
    s.share_free_waiting = 0.3; s.share_free = 0.3;
    s.preemptions = 4;
    met_step st[3] = { { .dt = 1, .running = 4, .waiting = 2 }, { .dt = 3, .running = 8, .waiting = 1 },
                       { .dt = 5, .running = 2, .waiting = 0 } };
    met_request rq[4] = { { .num_preemptions = 2, .norm_latency = 0.3 }, { .num_preemptions = 0, .norm_latency = 0.1 },
                          { .num_preemptions = 1, .norm_latency = 0.5 }, { .aborted = true, .norm_latency = 9 } };
    lab_real_meas m;
    memset(&m, 0, sizeof m);
    snprintf(m.where, sizeof m.where, "here");
    m.num_blocks = 7;
    lab_real_from_metrics(&s, st, 3, rq, 4, &m);
    assert_string_equal(m.where, "here");                 /* kept */
    assert_int_equal(m.num_blocks, 7);
    assert_true(fabs(m.at_once - (4 * 1 + 8 * 3) / 4.0) < 1e-12);   /* the steps with a queue only */
    assert_true(fabs(m.token - 0.4) < 1e-12);              /* of token + reserved + internal + external + free waiting */
    assert_true(fabs(m.external - 0.4) < 1e-12);
    assert_true(fabs(m.token + m.reserved + m.internal + m.external - 1) < 1e-12);
    assert_int_equal(m.preempted_requests, 2);
    assert_true(fabs(m.norm_latency_preempted - 0.4) < 1e-12);
    assert_true(fabs(m.norm_latency_others - 0.1) < 1e-12);
    assert_true(fabs(m.hit_pct - 25) < 1e-12);
    assert_int_equal(m.preemptions, 4);
    lab_real_from_metrics(&s, NULL, 0, NULL, 0, &m);       /* nothing waited, no requests */
    assert_true(isnan(m.at_once) && isnan(m.norm_latency_preempted) && isnan(m.norm_latency_others));
}

static void test_sched_config(void **state) {
    (void)state;
    model_opts o = { .max_num_batched_tokens = 1024, .max_num_seqs = 32, .max_model_len = 1000, .block_size = 16 };
    sched_config c = eng_sched_config(&o, true, SCHED_PREEMPT_RECOMPUTE);
    assert_int_equal(c.max_num_seqs, 32);
    assert_int_equal(c.max_num_batched_tokens, 1024);
    assert_int_equal(c.max_model_len, 1000);
    assert_int_equal(c.preempt, SCHED_PREEMPT_RECOMPUTE);
    assert_true(c.static_batching);
    assert_false(eng_sched_config(&o, false, SCHED_PREEMPT_RECOMPUTE).static_batching);
    assert_true(eng_sched_config(&o, false, SCHED_PREEMPT_RECOMPUTE).chunked_prefill);
    kv_config k = eng_kv_config(&o, 100, KV_CONTIGUOUS, true);
    assert_int_equal(k.max_model_len, 1008);              /* a reservation of whole blocks */
    assert_false(k.prefix_caching);                       /* paged only */
}

/* ---- the twin ------------------------------------------------------------------ */

static void test_twin_paged_contiguous(void **state) {
    (void)state;
    wl_request *r = requests(WL_SHAREGPT, 60, 3);
    lab_real_setup s = { .policy = KV_PAGED, .num_blocks = 983, .max_model_len = 2048, .seed = 3 };
    lab_real_meas p = twin(&s, r, 60);
    s.policy = KV_CONTIGUOUS;
    lab_real_meas c = twin(&s, r, 60);
    assert_int_equal(p.finished, 60);
    assert_int_equal(c.finished, 60);
    assert_int_equal(p.output_tokens, c.output_tokens);   /* no stop token: the same work */
    assert_int_equal(c.max_running, 983 / 128);           /* 2,048 slots reserved each */
    assert_true(c.at_once <= 983 / 128 + 1e-9);
    assert_true(p.at_once > 2.5 * c.at_once);
    assert_true(p.token > 0.9 && c.token < 0.35);
    assert_true(p.out_tok_s > 1.5 * c.out_tok_s);
    assert_non_null(strstr(p.where, "H200, simulated (operator profile)"));
    assert_int_equal(p.num_blocks, 983);
    assert_int_equal(p.block_size, 16);
    /* a KV budget instead of blocks: Qwen3-0.6B holds 114,688 bytes a token */
    lab_real_setup g = { .policy = KV_PAGED, .kv_gib = 1.75, .seed = 3 };
    mc_config mc;
    char err[512];
    if (mc_load(&mc, LAB_REAL_MODEL, err, sizeof err) < 0) fail_msg("%s", err);
    assert_int_equal(lab_real_blocks(&g, &mc), (int)(1.75 * 1073741824.0 / (114688.0 * 16)));
    free(r);
}

static void test_twin_modes(void **state) {
    (void)state;
    wl_request *r = requests(WL_ALPACA, 100, 5);
    /* static batching: never more than the batch, and slower than continuous */
    lab_real_setup s = { .policy = KV_PAGED, .num_blocks = 4096, .max_num_seqs = 16, .static_batching = true, .seed = 5 };
    lab_real_meas st = twin(&s, r, 100);
    s.static_batching = false;
    lab_real_meas co = twin(&s, r, 100);
    assert_true(st.max_running <= 16);
    assert_true(st.mean_running < co.mean_running);
    assert_true(co.out_tok_s > st.out_tok_s);
    /* n samples share the prompt: fewer blocks than n separate requests, n - 1 copies each at most */
    wl_request a[20], b[60];
    for (int i = 0; i < 20; i++) { a[i] = r[i]; a[i].n = 3; }
    for (int i = 0; i < 60; i++) { b[i] = r[i / 3]; b[i].n = 1; }
    lab_real_setup sh = { .policy = KV_PAGED, .num_blocks = 4096, .seed = 5 };
    lab_real_meas ms = twin(&sh, a, 20), mu = twin(&sh, b, 60);
    assert_int_equal(ms.output_tokens, mu.output_tokens);
    assert_true(ms.max_blocks < mu.max_blocks);
    assert_true(ms.cow_copies <= 2 * 20 && mu.cow_copies == 0);
    /* a shared prefix hits the cache only with prefix caching */
    for (int i = 0; i < 60; i++) { b[i].prefix_id = 0; b[i].prefix_len = 64; b[i].prompt_len += 64; }
    lab_real_meas off = twin(&sh, b, 60);
    sh.prefix_caching = true;
    lab_real_meas on = twin(&sh, b, 60);
    assert_int_equal(off.prefix_hit_tokens, 0);
    /* four whole blocks, for each request admitted after the first's prefix was computed */
    assert_true(on.prefix_hit_tokens > 0 && on.prefix_hit_tokens <= 59 * 64 && on.prefix_hit_tokens % 64 == 0);
    /* a small pool preempts, and the preempted requests are counted */
    lab_real_setup sm = { .policy = KV_PAGED, .num_blocks = 200, .seed = 5 };
    wl_request *g = requests(WL_SHAREGPT, 40, 5);
    lab_real_meas pm = twin(&sm, g, 40);
    assert_true(pm.preemptions > 0);
    assert_true(pm.preempted_requests > 0 && pm.preempted_requests < 40);
    assert_true(pm.norm_latency_preempted > 0 && pm.norm_latency_others > 0);
    free(g);
    free(r);
}

static void test_refused(void **state) {
    (void)state;
    char err[512];
    lab_real_meas m;
    wl_request r = { .prompt_len = 100, .output_len = 2000, .n = 1, .prefix_id = -1 };
    lab_real_setup s = { .policy = KV_PAGED, .num_blocks = 500, .seed = 1 };
    assert_int_equal(lab_real_simulate(&s, NULL, &r, 1, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_model_len 2048"));
    r.output_len = 10;
    s.num_blocks = 0;
    assert_int_equal(lab_real_simulate(&s, NULL, &r, 1, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "no KV pool"));
    s.num_blocks = 100;                                     /* 1,600 slots: not one sequence of 2,048 */
    assert_int_equal(lab_real_simulate(&s, NULL, &r, 1, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "less than one sequence"));
    s.num_blocks = 500;
    s.policy = KV_ORCA_MAX;
    assert_int_equal(lab_real_simulate(&s, NULL, &r, 1, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "paged and contiguous"));
    char why[256];
    if (!eng_gpu_available(why, sizeof why)) {             /* the engine says why it cannot run */
        s.policy = KV_PAGED;
        assert_int_equal(lab_real_engine(&s, &r, 1, &m, err, sizeof err), -1);
        assert_non_null(strstr(err, "cannot run"));
        assert_non_null(strstr(err, why));
    }
}

/* ---- each lab's --real with the fake GPU ----------------------------------------- */

/* Column col (0 = the key) of the row whose key is key, in CSV text. */
static double cell(const char *csv, const char *key, int col) {
    char k[96];
    snprintf(k, sizeof k, "\n%s,", key);
    const char *p = strstr(csv, k);
    if (!p) fail_msg("no row %s", key);
    p += strlen(k);
    for (int c = 1; c < col; c++) p = strchr(p, ',') + 1;
    return strtod(p, NULL);
}

/* The lab at seed 1 with --real through the fake; its files, its extra
 * question, its narrative.  Returns the lab (free it) with *calls runs. */
static lab *real_lab(const lab_def *d, int nq, int *calls, char **csv) {
    static fake_ctx f;
    memset(&f, 0, sizeof f);
    static const lab_real_measurer m = { fake, &f };
    lab *L = lab_create(d, LAB_PAPER_SEED, tl_err, sizeof tl_err);
    assert_non_null(L);
    lab_real_use(L, &m);
    if (lab_run(L, LAB_WITH_ALL | LAB_WITH_REAL, tl_err, sizeof tl_err) < 0) fail_msg("%s", tl_err);
    tl_check_files(L, "-real");
    assert_int_equal(tl_check_key(L), nq);                /* the sheet's questions and one about the gap */
    char path[512];
    snprintf(path, sizeof path, "build/tmp/lab_%s-real/worksheet.md", d->name);
    char *md = tu_slurp(path);
    assert_non_null(md);
    assert_non_null(strstr(md, "gpu.png"));
    assert_non_null(strcasestr(md, "measured on the GPU"));
    assert_non_null(strstr(md, "a fake GPU (the simulator, 25% slower)"));
    free(md);
    assert_non_null(strstr(lab_narrative(L), "On the GPU (a fake GPU"));
    snprintf(path, sizeof path, "build/tmp/lab_%s-real/gpu_runs.csv", d->name);
    char *runs = tu_slurp(path);
    assert_non_null(runs);
    free(runs);
    snprintf(path, sizeof path, "build/tmp/lab_%s-real/gpu.csv", d->name);
    *csv = tu_slurp(path);
    assert_non_null(*csv);
    *calls = f.calls;
    return L;
}

static void test_paging(void **state) {
    (void)state;
    int calls;
    char *csv;
    lab *L = real_lab(&lab_paging, 8, &calls, &csv);
    assert_int_equal(calls, 2);
    /* run,at_once_sim,at_once_gpu,at_once_lab,token_pct_sim,token_pct_gpu,tok_s_sim,tok_s_gpu */
    assert_non_null(strstr(csv, "run,at_once_sim,at_once_gpu,at_once_lab,token_pct_sim,token_pct_gpu,tok_s_sim,tok_s_gpu\n"));
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "contiguous" : "paged";
        assert_true(fabs(cell(csv, key, 1) - cell(csv, key, 2)) < 1e-6 * cell(csv, key, 1));   /* time scales alike */
        assert_true(fabs(cell(csv, key, 6) / cell(csv, key, 7) - SLOWER) < 1e-3);
        assert_true(fabs(cell(csv, key, 4) - cell(csv, key, 5)) < 1e-6);
    }
    assert_true(cell(csv, "contiguous", 1) <= 983 / 128 + 1e-9);    /* 7 reservations of 2,048 in 983 blocks */
    assert_true(fabs(cell(csv, "contiguous", 3) - 7) < 1e-6);        /* Figure 3's Orca (Max) */
    assert_true(cell(csv, "paged", 1) > 3 * cell(csv, "contiguous", 1));
    free(csv);
    lab_free(L);
}

static void test_sharing(void **state) {
    (void)state;
    int calls;
    char *csv;
    lab *L = real_lab(&lab_sharing, 8, &calls, &csv);
    assert_int_equal(calls, 6);
    /* run,saved_pct_sim,saved_pct_gpu,saved_pct_lab,peak_saved_pct_sim,peak_saved_pct_gpu,cow_per_request_sim,_gpu */
    static const char *key[3] = { "n2", "n4", "n6" };
    for (int k = 0; k < 3; k++) {
        double saved = cell(csv, key[k], 1), peak = cell(csv, key[k], 4), cow = cell(csv, key[k], 6);
        assert_true(saved > 5 && saved < 50);
        assert_true(fabs(saved - cell(csv, key[k], 3)) < 8);        /* near Figure 2's ShareGPT bar */
        assert_true(peak > 5 && peak < 60);
        assert_true(cow <= 2 * k + 1 + 1e-9);                       /* at most n - 1 copies a request */
        assert_true(fabs(cow - cell(csv, key[k], 7)) < 1e-9);
        if (k) assert_true(saved > cell(csv, key[k - 1], 1));       /* more samples, more saved */
    }
    free(csv);
    lab_free(L);
}

static void test_prefix(void **state) {
    (void)state;
    int calls;
    char *csv;
    lab *L = real_lab(&lab_prefix, 8, &calls, &csv);
    assert_int_equal(calls, 4);
    /* run,hit_pct_sim,hit_pct_gpu,hit_pct_lab,at_once_sim,at_once_gpu,tok_s_sim,tok_s_gpu */
    assert_true(cell(csv, "one-shot off", 1) == 0 && cell(csv, "five-shot off", 2) == 0);
    for (int k = 0; k < 2; k++) {
        const char *on = k ? "five-shot on" : "one-shot on", *off = k ? "five-shot off" : "one-shot off";
        assert_true(cell(csv, on, 1) > (k ? 80 : 60));
        assert_true(fabs(cell(csv, on, 1) - cell(csv, on, 3)) < 4);  /* Table 1's (the first admitted miss) */
        assert_true(cell(csv, on, 4) > 1.5 * cell(csv, off, 4));
        assert_true(cell(csv, on, 7) > cell(csv, off, 7));
    }
    free(csv);
    lab_free(L);
}

static void test_preemption(void **state) {
    (void)state;
    int calls;
    char *csv;
    lab *L = real_lab(&lab_preemption, 8, &calls, &csv);
    assert_int_equal(calls, 1);
    /* run,ms_per_token_sim,ms_per_token_gpu,requests_sim,requests_gpu */
    assert_true(cell(csv, "preempted", 3) > 0 && cell(csv, "never", 3) > 0);
    assert_true(fabs(cell(csv, "preempted", 3) + cell(csv, "never", 3) - 160) < 1e-9);
    assert_true(cell(csv, "preempted", 1) > cell(csv, "never", 1));
    assert_true(fabs(cell(csv, "preempted", 2) / cell(csv, "preempted", 1) - SLOWER) < 1e-6);
    assert_non_null(strstr(lab_narrative(L), "measures recompute only"));   /* and says where swap runs */
    assert_non_null(strstr(lab_narrative(L), "--preemption-mode swap"));
    free(csv);
    lab_free(L);
}

static void test_batching(void **state) {
    (void)state;
    int calls;
    char *csv;
    lab *L = real_lab(&lab_batching, 7, &calls, &csv);
    assert_int_equal(calls, 3);
    /* run,tok_s_sim,tok_s_gpu,running_sim,running_gpu */
    assert_true(cell(csv, "static 32", 3) <= 32 && cell(csv, "static 64", 3) <= 64);
    assert_true(cell(csv, "continuous", 1) > cell(csv, "static 64", 1));
    assert_true(cell(csv, "static 64", 1) > cell(csv, "static 32", 1));
    free(csv);
    lab_free(L);
}

static void test_blocksize(void **state) {
    (void)state;
    int calls;
    char *csv;
    lab *L = real_lab(&lab_blocksize, 8, &calls, &csv);
    assert_int_equal(calls, 6);
    /* run,at_once_sim,at_once_gpu,at_once_lab,unused_pct_sim,unused_pct_gpu,tput_vs_16_sim,_gpu,_lab */
    assert_true(fabs(cell(csv, "ShareGPT 16", 6) - 1) < 1e-12 && fabs(cell(csv, "Alpaca 16", 7) - 1) < 1e-12);
    assert_true(cell(csv, "Alpaca 64", 4) > cell(csv, "Alpaca 16", 4));   /* bigger blocks, bigger tails */
    assert_true(cell(csv, "ShareGPT 64", 1) <= cell(csv, "ShareGPT 16", 1) + 1e-9);
    free(csv);
    lab_free(L);
}

/* ---- the front end without a GPU ------------------------------------------------- */

static void test_cli_without_gpu(void **state) {
    (void)state;
    char why[256];
    if (eng_gpu_available(why, sizeof why)) skip();        /* a GPU here: the run would measure */
    static const char *labs[] = { "paging", "sharing", "prefix", "preemption", "batching", "blocksize", "lora" };
    for (size_t i = 0; i < sizeof labs / sizeof labs[0]; i++) {
        char cmd[1024];
        assert_int_equal(system("rm -rf build/tmp/lab_cli_real"), 0);
        snprintf(cmd, sizeof cmd, "%s/labs/%s --real --out build/tmp/lab_cli_real 2>&1", tu_bindir(), labs[i]);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char out[4096];
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = 0;
        int st = pclose(p);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 2);
#ifdef PAGESIM_HAVE_CUDA
        assert_non_null(strstr(out, "no CUDA GPU is visible here"));
        assert_non_null(strstr(out, "Nothing was written"));
#else
        assert_non_null(strstr(out, "needs a GPU build"));
#endif
        assert_int_equal(tl_file_size("build/tmp/lab_cli_real"), -1);      /* no half results */
    }
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_from_metrics),
        cmocka_unit_test(test_sched_config),
        cmocka_unit_test(test_twin_paged_contiguous),
        cmocka_unit_test(test_twin_modes),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_sharing),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_preemption),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_blocksize),
        cmocka_unit_test(test_cli_without_gpu),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
