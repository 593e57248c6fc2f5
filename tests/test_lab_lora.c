/* test_lab_lora: labs/lora at its default seed: its files, its answer key,
 * its headlines (Punica's +2 ms per token; S-LoRA's loss of a few tens of
 * percent at most), and the data's own sense: adapter slots come out of the
 * KV cache byte for byte (the planner), runtime LoRA is slower than the
 * merged model and more adapters slower still, the LoRA kernels cost about
 * the same milliseconds at every batch size, a 9th adapter over 8 slots
 * stalls the strictly FCFS queue while a slot for each adapter does not, and
 * N merged models hold N copies of the weights.  A cost model without the
 * LoRA term, or a scheduler without max_loras, fails here. */
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
#include "labs/lab_lora.h"
#include "sim/planner.h"

/* Column col (1 = the key) of the row whose key is key. */
static double cell(const char *csv, const char *key, int col) {
    char k[64];
    snprintf(k, sizeof k, "\n%s,", key);
    const char *p = strstr(csv, k);
    if (!p) fail_msg("no row %s", key);
    p += strlen(k);
    for (int c = 2; c < col; c++) p = strchr(p, ',') + 1;
    return strtod(p, NULL);
}

static char *slurp(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "build/tmp/lab_lora/%s", name);
    char *s = tu_slurp(path);
    assert_non_null(s);
    return s;
}

/* max_loras,blocks_r8,blocks_r16,blocks_r32,blocks_r64,at_once_r8..r64 */
static void check_memory(void) {
    char *csv = slurp("memory.csv");
    static const char *rows[8] = { "off", "1", "2", "4", "8", "16", "32", "64" };
    for (int r = 1; r < 8; r++)
        for (int k = 2; k <= 5; k++) {
            assert_true(cell(csv, rows[r], k) < cell(csv, rows[r - 1], k) || r == 1);
            assert_true(cell(csv, rows[r], k) <= cell(csv, "off", k));
            if (k > 2) assert_true(cell(csv, rows[r], k) <= cell(csv, rows[r], k - 1));   /* higher rank, fewer */
        }
    /* 64 slots of rank 64 on Qwen2.5-7B: the planner's bytes, in blocks of 16 x 57,344 B */
    mc_config c;
    char err[256];
    if (mc_load(&c, "data/models/qwen2.5-7b.json", err, sizeof err) < 0) fail_msg("%s", err);
    double lost = (cell(csv, "off", 5) - cell(csv, "64", 5)) * 16.0 * 57344.0;
    double slots = (double)plan_lora_bytes(&c, MC_DTYPE_BF16, 1, 64, 64);
    assert_true(fabs(lost - slots) <= 16.0 * 57344.0);
    free(csv);
}

/* serving,adapters,max_loras,tok_s,seconds,running,tpot_ms,kv_blocks,vs_merged */
static void check_speed(void) {
    char *csv = slurp("speed.csv");
    double merged = cell(csv, "merged", 4), one = cell(csv, "\"runtime, 1 adapter\"", 4);
    double eight = cell(csv, "\"runtime, 8 adapters\"", 4), over = cell(csv, "\"runtime, 16 adapters, 8 slots\"", 4);
    assert_true(one < 0.99 * merged && one > 0.8 * merged);
    assert_true(eight < one);
    assert_true(over < 0.95 * eight && over > 0.5 * eight);     /* 16 adapters over 8 slots: fewer run, the */
                                                                /* rest pass the waiting ones (no stall)   */
    free(csv);
    csv = slurp("step.csv");                                    /* batch,merged,runtime_1,runtime_8,added_1,added_8 */
    static const char *b[6] = { "1", "8", "16", "32", "64", "128" };
    for (int i = 0; i < 6; i++) {
        assert_true(cell(csv, b[i], 5) > 1.2 && cell(csv, b[i], 5) < 2.5);   /* the kernel floor, about constant */
        assert_true(cell(csv, b[i], 6) >= cell(csv, b[i], 5));
        if (i) assert_true(cell(csv, b[i], 2) >= cell(csv, b[i - 1], 2));
    }
    free(csv);
}

/* adapters,tok_s_8_slots,tok_s_a_slots,running_8_slots,running_a_slots,wait_s_8,wait_s_a */
static void check_adapters(void) {
    char *csv = slurp("adapters.csv");
    double eight = cell(csv, "8", 2);
    assert_true(cell(csv, "1", 2) > eight && cell(csv, "1", 2) < 1.05 * eight);
    assert_true(cell(csv, "9", 2) < 0.95 * eight);              /* the 9th adapter waits for a slot, */
    assert_true(cell(csv, "9", 4) < 0.9 * cell(csv, "8", 4));   /* fewer sequences run, */
    assert_true(cell(csv, "9", 4) > 0.5 * cell(csv, "8", 4));   /* but the queue behind it does not stall */
    assert_true(cell(csv, "32", 2) < cell(csv, "9", 2));        /* more adapters over 8 slots, more lost */
    assert_true(cell(csv, "32", 3) > 0.9 * eight);              /* a slot for each: no stall */
    assert_true(cell(csv, "8", 3) == eight);
    free(csv);
    csv = slurp("deploy.csv");                                  /* fine_tunes,merged_gib,runtime_gib,merged_gpus */
    double w = cell(csv, "1", 2);
    assert_true(w > 14 && w < 14.5);                            /* Qwen2.5-7B in bf16: 14.2 GiB */
    assert_true(fabs(cell(csv, "16", 2) - 16 * w) < 1e-6 * w);
    assert_true(cell(csv, "16", 3) < 1.2 * w);
    assert_true(cell(csv, "16", 4) >= 4);
    free(csv);
}

static void test_default_seed(void **state) {
    (void)state;
    lab *L = tl_run(&lab_lora, LAB_PAPER_SEED);
    tl_check_files(L, "");
    assert_int_equal(tl_check_key(L), 8);
    assert_int_equal(tl_check_headlines(L), 2);
    check_memory();
    check_speed();
    check_adapters();
    lab_free(L);
}

static void test_other_seed(void **state) {
    (void)state;
    lab *L = tl_run(&lab_lora, 6);
    assert_int_equal(lab_num_headlines(L), 0);
    assert_int_equal(tl_check_key(L), 8);
    lab_free(L);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_default_seed),
        cmocka_unit_test(test_other_seed),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
