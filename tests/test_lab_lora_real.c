/* test_lab_lora_real: labs/lora --real without a GPU.  The engine's LoRA
 * settings (lab_real_lora_set: the slots, their rank, the random adapters
 * the engine loads; none for a merged model); the simulated twin with
 * runtime LoRA (slower than the base model, the slots' bytes out of the
 * planner's KV pool, requests naming adapters that are not loaded refused);
 * and the lab's --real through a fake measurement: the four setups it hands
 * the measurer (slots, rank, adapters, the pool from memory) and the
 * adapters its requests name, its table built from the measurer's numbers
 * beside the twin's, its figure, its paragraph, and the worksheet's "explain" question asked
 * with the measured numbers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/test_util.h"
#include "tests/test_lab_util.h"
#include "engine/lora_set.h"
#include "labs/lab_lora.h"
#include "labs/lab_real.h"
#include "sim/planner.h"

#define SLOWER 1.25
#define FEWER 1000                   /* the fake's pool: the twin's less FEWER + 10 x call blocks */
enum { MAXCALLS = 8 };

typedef struct fake_ctx {
    int calls;
    lab_real_setup set[MAXCALLS];
    int distinct[MAXCALLS], maxid[MAXCALLS];    /* adapters the requests name, the largest id */
} fake_ctx;

static int fake(void *ctx, const lab_real_setup *s, const wl_request *r, int n, lab_real_meas *out, char *err,
                size_t errlen) {
    fake_ctx *f = ctx;
    if (f->calls == MAXCALLS) fail_msg("more than %d runs", MAXCALLS);
    int k = f->calls++, seen[1024] = { 0 };
    f->set[k] = *s;
    for (int i = 0; i < n; i++) {
        if (r[i].lora < 0 || r[i].lora >= 1024) fail_msg("adapter %d", r[i].lora);
        if (r[i].lora && !seen[r[i].lora]++) f->distinct[k]++;
        if (r[i].lora > f->maxid[k]) f->maxid[k] = r[i].lora;
    }
    if (lab_real_simulate(s, "H200", r, n, out, err, errlen) < 0) return -1;
    snprintf(out->where, sizeof out->where, "a fake GPU (the simulator, 25%% slower)");
    out->out_tok_s /= SLOWER;
    out->tpot_mean *= SLOWER;
    out->num_blocks -= FEWER + 10 * k;
    return 0;
}

static wl_request *requests(int n, int adapters) {
    wl_spec sp = { .kind = WL_SHAREGPT, .num_requests = n, .rate = 0, .seed = 7, .max_len = 2048 };
    wl_request *r = NULL;
    int nr = 0;
    char err[256];
    if (wl_generate(&sp, &r, &nr, err, sizeof err) < 0) fail_msg("%s", err);
    assert_int_equal(nr, n);
    for (int i = 0; i < n; i++) r[i].lora = adapters ? 1 + i % adapters : 0;
    return r;
}

static void test_lora_set(void **state) {
    (void)state;
    mc_config c;
    char err[512];
    if (mc_load(&c, LAB_REAL_MODEL, err, sizeof err) < 0) fail_msg("%s", err);
    lora_set set;
    lab_real_setup s = { .policy = KV_PAGED, .num_blocks = 4096, .seed = 3 };
    assert_int_equal(lab_real_lora_set(&s, &c, true, &set, err, sizeof err), 0);   /* merged: no LoRA */
    assert_int_equal(set.max_loras, 0);
    assert_int_equal(set.n, 0);
    s.max_loras = 8; s.max_lora_rank = 32; s.lora_adapters = 16;
    assert_int_equal(lab_real_lora_set(&s, &c, true, &set, err, sizeof err), 1);
    assert_int_equal(set.max_loras, 8);
    assert_int_equal(set.max_rank, 32);
    assert_int_equal(set.n, 16);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(set.a[i].cfg.r, 32);
        assert_true(set.a[i].dummy_seed != 0);
        if (i) assert_true(set.a[i].dummy_seed != set.a[i - 1].dummy_seed);
    }
    assert_int_equal(lora_set_find(&set, "adapter16"), 16);
    lora_set_free(&set);
    assert_int_equal(lab_real_lora_set(&s, &c, false, &set, err, sizeof err), 1);   /* the twin's: slots only */
    assert_int_equal(set.n, 0);
    assert_int_equal(set.max_loras, 8);
    lora_set_free(&set);
    s.max_lora_rank = 0;                                    /* vLLM's default rank */
    assert_int_equal(lab_real_lora_set(&s, &c, false, &set, err, sizeof err), 1);
    assert_int_equal(set.max_rank, 16);
    lora_set_free(&set);
}

static void test_twin(void **state) {
    (void)state;
    char err[512];
    wl_request *r = requests(64, 0);
    lab_real_setup s = { .policy = KV_PAGED, .gpu_memory_utilization = 0.9, .seed = 7 };
    lab_real_meas base, one, eight;
    if (lab_real_simulate(&s, "H200", r, 64, &base, err, sizeof err) < 0) fail_msg("%s", err);
    s.max_loras = 1; s.max_lora_rank = 16; s.lora_adapters = 1;
    for (int i = 0; i < 64; i++) r[i].lora = 1;
    if (lab_real_simulate(&s, "H200", r, 64, &one, err, sizeof err) < 0) fail_msg("%s", err);
    s.max_loras = 8; s.lora_adapters = 8;
    for (int i = 0; i < 64; i++) r[i].lora = 1 + i % 8;
    if (lab_real_simulate(&s, "H200", r, 64, &eight, err, sizeof err) < 0) fail_msg("%s", err);
    assert_int_equal(base.output_tokens, one.output_tokens);
    assert_true(one.out_tok_s < 0.99 * base.out_tok_s);    /* the LoRA kernels every step */
    assert_true(eight.out_tok_s <= one.out_tok_s);
    assert_true(one.tpot_mean > base.tpot_mean);
    /* the pool: the planner's, the slots' bytes out of it */
    mc_config c;
    cm_gpu g;
    if (mc_load(&c, LAB_REAL_MODEL, err, sizeof err) < 0 || cm_gpu_find(&g, "H200", err, sizeof err) < 0)
        fail_msg("%s", err);
    double block = 16.0 * (double)mc_kv_bytes_per_token(&c, c.dtype);
    double slots8 = (double)plan_lora_bytes(&c, MC_DTYPE_BF16, 1, 8, 16);
    assert_true(base.num_blocks > 50000);                   /* most of an H200 for a 0.6B model */
    assert_true(fabs((base.num_blocks - eight.num_blocks) - slots8 / block) <= 1);
    assert_true(one.num_blocks > eight.num_blocks && one.num_blocks < base.num_blocks);
    /* a request naming an adapter that is not loaded; adapters without slots */
    r[0].lora = 9;
    assert_int_equal(lab_real_simulate(&s, "H200", r, 64, &one, err, sizeof err), -1);
    assert_non_null(strstr(err, "LoRA adapter 9, but 8 are loaded"));
    r[0].lora = 1;
    s.max_loras = 0;
    assert_int_equal(lab_real_simulate(&s, "H200", r, 64, &one, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_loras"));
    free(r);
}

/* Column col (1 = the first after the key) of the row whose key is key. */
static double cell(const char *csv, const char *key, int col) {
    char k[96];
    snprintf(k, sizeof k, "\n%s,", key);
    const char *p = strstr(csv, k);
    if (!p) fail_msg("no row %s", key);
    p += strlen(k);
    for (int c = 1; c < col; c++) p = strchr(p, ',') + 1;
    return strtod(p, NULL);
}

static void check_setups(const fake_ctx *f) {
    static const int slots[4] = { 0, 1, 8, 8 }, adapters[4] = { 0, 1, 8, 16 };
    assert_int_equal(f->calls, 4);
    int rank = f->set[1].max_lora_rank;
    assert_true(rank == 8 || rank == 16 || rank == 32 || rank == 64);
    for (int k = 0; k < 4; k++) {
        const lab_real_setup *s = &f->set[k];
        assert_int_equal(s->max_loras, slots[k]);
        assert_int_equal(s->lora_adapters, adapters[k]);
        if (k) assert_int_equal(s->max_lora_rank, rank);
        assert_int_equal(f->distinct[k], adapters[k]);    /* every adapter loaded is named by a request */
        assert_int_equal(f->maxid[k], adapters[k]);
        assert_int_equal(s->num_blocks, 0);                /* the pool from memory, the slots out of it */
        assert_true(s->kv_gib == 0 && fabs(s->gpu_memory_utilization - 0.9) < 1e-12);
        assert_int_equal(s->policy, KV_PAGED);
    }
}

/* run,tok_s_sim,tok_s_gpu,kv_blocks_sim,kv_blocks_gpu,tpot_ms_sim,tpot_ms_gpu */
static void check_table(const char *csv) {
    assert_non_null(strstr(csv, "run,tok_s_sim,tok_s_gpu,kv_blocks_sim,kv_blocks_gpu,tpot_ms_sim,tpot_ms_gpu\n"));
    static const char *key[4] = { "merged", "\"runtime, 1 adapter\"", "\"runtime, 8 adapters\"",
                                  "\"runtime, 16 adapters, 8 slots\"" };
    for (int k = 0; k < 4; k++) {                          /* the measurer's numbers beside the twin's */
        assert_true(fabs(cell(csv, key[k], 1) / cell(csv, key[k], 2) - SLOWER) < 1e-3);
        assert_true(fabs(cell(csv, key[k], 3) - cell(csv, key[k], 4) - (FEWER + 10 * k)) < 1e-9);
        assert_true(fabs(cell(csv, key[k], 6) / cell(csv, key[k], 5) - SLOWER) < 1e-3);
    }
    assert_true(cell(csv, key[1], 1) < cell(csv, key[0], 1));      /* runtime LoRA is slower */
    assert_true(cell(csv, key[2], 1) < cell(csv, key[1], 1));
    assert_true(cell(csv, key[3], 1) < cell(csv, key[2], 1));
    assert_true(cell(csv, key[2], 3) < cell(csv, key[1], 3));      /* 8 slots take more blocks than 1 */
    assert_true(cell(csv, key[1], 3) < cell(csv, key[0], 3));
    assert_true(cell(csv, key[3], 3) == cell(csv, key[2], 3));     /* the same 8 slots */
}

static void test_lab(void **state) {
    (void)state;
    static fake_ctx f;
    memset(&f, 0, sizeof f);
    static const lab_real_measurer m = { fake, &f };
    lab *L = lab_create(&lab_lora, LAB_PAPER_SEED, tl_err, sizeof tl_err);
    assert_non_null(L);
    lab_real_use(L, &m);
    if (lab_run(L, LAB_WITH_ALL | LAB_WITH_REAL, tl_err, sizeof tl_err) < 0) fail_msg("%s", tl_err);
    check_setups(&f);
    tl_check_files(L, "-real");
    assert_int_equal(tl_check_key(L), 8);                  /* the last, "explain", now with the GPU's numbers */
    char *csv = tu_slurp("build/tmp/lab_lora-real/gpu.csv");
    assert_non_null(csv);
    check_table(csv);
    free(csv);
    char *runs = tu_slurp("build/tmp/lab_lora-real/gpu_runs.csv");
    assert_non_null(runs);
    assert_non_null(strstr(runs, "\"runtime, 16 adapters, 8 slots gpu\""));
    free(runs);
    char *md = tu_slurp("build/tmp/lab_lora-real/worksheet.md");
    assert_non_null(md);
    assert_non_null(strstr(md, "gpu.png"));
    assert_non_null(strcasestr(md, "measured on the GPU"));
    assert_non_null(strstr(md, "a fake GPU (the simulator, 25% slower)"));
    assert_non_null(strstr(md, "On the GPU, runtime LoRA served"));   /* the explain question, measured */
    assert_null(strstr(md, "Why does runtime LoRA cost time even with one adapter, and why less"));
    free(md);
    const char *say = strstr(lab_narrative(L), "On the GPU (a fake GPU");
    assert_non_null(say);
    assert_non_null(strstr(say, "16 adapters over 8 slots"));
    lab_free(L);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_lora_set),
        cmocka_unit_test(test_twin),
        cmocka_unit_test(test_lab),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
