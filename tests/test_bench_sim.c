/* Tests of engine/bench --simulate's prediction (engine/bench_sim.h), no
 * GPU: for a trace of 256 requests on Qwen3-0.6B's shape with a pool that
 * forces preemption, the prediction engine/bench sets beside its run is
 * what `pagesim run --swap-copies runs` says for the same pool (--num-blocks, --swap-gb; prefix caching off as in cfg), the
 * same scheduler limits and the same operator profile: the simulated time,
 * preemptions, swap-outs and swap-ins agree exactly, by swap and by
 * recompute (so the engine's comparison is with the simulator a user runs);
 * and bsim_add / bsim_finish average latencies, the preempted apart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <math.h>
#include <cjson/cJSON.h>
#include "tests/test_util.h"
#include "engine/bench_sim.h"
#include "engine/swap.h"
#include "sim/workload.h"

#define CFG "data/models/qwen3-0.6b.json"
#define PROF "data/profiles/H200/qwen3-0.6b.json"
#define TRACE "build/tmp/test_bench_sim.csv"
#define JSON "build/tmp/test_bench_sim.json"
enum { NREQ = 256, BLOCKS = 8000 };

static void write_trace(int *pl, int *ol) {
    mkdir("build", 0755); mkdir("build/tmp", 0755);
    FILE *f = fopen(TRACE, "w");
    assert_non_null(f);
    fprintf(f, "arrival,prompt_len,output_len\n");
    uint64_t s = 12345;
    for (int i = 0; i < NREQ; i++) {
        s = (s * 1103515245 + 12345) % 2147483648u; pl[i] = 100 + (int)(s * 925 / 2147483648u);
        s = (s * 1103515245 + 12345) % 2147483648u; ol[i] = 100 + (int)(s * 925 / 2147483648u);
        fprintf(f, "0,%d,%d\n", pl[i], ol[i]);
    }
    assert_int_equal(fclose(f), 0);
}

/* pagesim run's summary for the trace, by swap or recompute */
static cJSON *pagesim(int swap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/pagesim run --workload %s --model %s --gpu H200 --num-blocks %d --swap-gb 4 "
             "--preempt %s --swap-copies runs --max-num-seqs 256 --max-num-batched-tokens 8192 --max-model-len 4096 "
             "--no-enable-prefix-caching --op-profile %s "
             "--quiet --no-steps --json %s > /dev/null 2>&1", tu_bindir(), TRACE, CFG, BLOCKS,
             swap ? "swap" : "recompute", PROF, JSON);
    assert_int_equal(system(cmd), 0);
    char *txt = tu_slurp(JSON);
    assert_non_null(txt);
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    assert_non_null(j);
    return j;
}

static void test_prediction_is_pagesim_run(void **st) {
    (void)st;
    char path[512], err[1024];
    snprintf(path, sizeof path, "%s/pagesim", tu_bindir());
    TU_REQUIRE_FILE(path);
    TU_REQUIRE_FILE(CFG);
    TU_REQUIRE_FILE(PROF);
    static int pl[NREQ], ol[NREQ];
    write_trace(pl, ol);
    mc_config c;
    cm_gpu g;
    assert_int_equal(mc_load(&c, CFG, err, sizeof err), 0);
    assert_int_equal(cm_gpu_find(&g, "H200", err, sizeof err), 0);
    for (int swap = 0; swap <= 1; swap++) {
        eng_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.preempt = swap ? SCHED_PREEMPT_SWAP : SCHED_PREEMPT_RECOMPUTE;
        model_opts mo = { .max_num_batched_tokens = 8192, .max_num_seqs = 256, .max_model_len = 4096 };
        model_resolve_opts(&c, &mo);
        model_mem mem;
        memset(&mem, 0, sizeof mem);
        mem.num_blocks = BLOCKS;
        int ncpu;
        size_t block = (size_t)2 * c.num_layers * c.num_kv_heads * c.head_dim * 2 * 16;
        assert_int_equal(swap_cpu_blocks(4, block, &ncpu, err, sizeof err), 0);
        mem.num_cpu_blocks = ncpu;
        bsim_figures p;
        if (bsim_predict(&c, &cfg, &mo, &mem, pl, ol, NULL, NREQ, PROF, &g, &p, err, sizeof err)) fail_msg("%s", err);
        cJSON *j = pagesim(swap), *s = cJSON_GetObjectItem(j, "summary");
        double t = cJSON_GetObjectItem(s, "sim_time")->valuedouble;
        long pre = (long)cJSON_GetObjectItem(s, "preemptions")->valuedouble;
        long so = (long)cJSON_GetObjectItem(s, "swap_outs")->valuedouble;
        long si = (long)cJSON_GetObjectItem(s, "swap_ins")->valuedouble;
        fprintf(stderr, "  %s: engine/bench --simulate %.3f s, %ld preemptions (%ld out, %ld in); pagesim run %.3f s, "
                "%ld (%ld, %ld); %d preempted requests, their mean latency %.2f s of %.2f s\n",
                swap ? "swap" : "recompute", p.seconds, p.preemptions, p.swap_outs, p.swap_ins, t, pre, so, si,
                p.preempted, p.preempted_latency, p.mean_latency);
        assert_true(fabs(p.seconds - t) <= 1e-9 * t);
        assert_int_equal(p.preemptions, pre);
        assert_int_equal(p.swap_outs, so);
        assert_int_equal(p.swap_ins, si);
        assert_int_equal(p.requests, NREQ);
        assert_true(pre > 0 && p.preempted > 0 && p.preempted_latency > 0);
        if (swap) assert_true(so > 0);
        cJSON_Delete(j);
    }
}

static void test_latency_sums(void **st) {
    (void)st;
    bsim_figures f;
    memset(&f, 0, sizeof f);
    bsim_add(&f, 1.0, 0);
    bsim_add(&f, 3.0, 2);
    bsim_add(&f, 5.0, 1);
    bsim_finish(&f);
    assert_int_equal(f.requests, 3);
    assert_int_equal(f.preempted, 2);
    assert_true(fabs(f.mean_latency - 3.0) < 1e-12);
    assert_true(fabs(f.preempted_latency - 4.0) < 1e-12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prediction_is_pagesim_run),
        cmocka_unit_test(test_latency_sums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
