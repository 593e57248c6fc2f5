/* Tests of sim/cost_model: GPU lookup, roofline regimes (prefill bounded by
 * FLOPs, decode by bytes), monotonicity, tensor parallelism, MoE, and the
 * coefficient files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "sim/cost_model.h"

static char err[1024];

static void model(cm_model *m, const char *cfg_path, const char *gpu, int tp, int dtype) {
    mc_config c;
    cm_gpu g;
    if (mc_load(&c, cfg_path, err, sizeof err) != 0) fail_msg("%s", err);
    if (cm_gpu_find(&g, gpu, err, sizeof err) != 0) fail_msg("%s", err);
    if (cm_model_init(m, &c, &g, tp, dtype < 0 ? c.dtype : (mc_dtype)dtype, err, sizeof err) != 0)
        fail_msg("%s", err);
}

#define OPT13B "data/models/opt-13b.json"
#define QWEN7B_AWQ "data/models/qwen2.5-7b-instruct-awq.json"
#define QWEN3_MOE "data/models/qwen3-30b-a3b-instruct-2507.json"

/* n prompts of len tokens each, computed in one step */
static cm_batch prefill(int n, long len) {
    cm_batch b = { .num_seqs = n, .prefill_tokens = n * len,
                   .attn_ctx_tokens = n * len, .attn_pairs = n * len * (len + 1) / 2 };
    return b;
}

/* n sequences decoding one token each with ctx tokens of context */
static cm_batch decode(int n, long ctx) {
    cm_batch b = { .num_seqs = n, .decode_tokens = n, .attn_ctx_tokens = n * ctx,
                   .attn_pairs = n * ctx };
    return b;
}

static double t_flops(const cm_model *m, const cm_batch *b) {
    return cm_step_flops(m, b) / (m->gpu.flops_16 * m->k.flops_eff);
}
static double t_bytes(const cm_model *m, const cm_batch *b) {
    return cm_step_bytes(m, b) / (m->gpu.mem_bw * m->k.bw_eff);
}

static void test_gpu_find(void **state) {
    (void)state;
    cm_gpu g;
    assert_int_equal(cm_gpu_find(&g, "h100", err, sizeof err), 0);
    assert_string_equal(g.name, "H100-SXM");
    assert_true(fabs(g.mem_bw - 3.35e12) < 1e9);
    assert_true(fabs(g.flops_16 - 989.4e12) < 1e12);
    assert_int_equal(cm_gpu_find(&g, "a100 40gb", err, sizeof err), 0);
    assert_string_equal(g.name, "A100-40GB");
    assert_true(fabs(g.mem_bw - 1.555e12) < 1e9);
    assert_int_equal(cm_gpu_find(&g, "RTX_4070", err, sizeof err), 0);
    assert_true(g.mem_bytes > 11.5 * 1073741824.0 && g.mem_bytes < 12.1 * 1073741824.0);
    const char *all[] = { "H100-SXM", "H200", "A100-40GB", "A100-80GB", "L4", "RTX-4070", "RTX-4090" };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (cm_gpu_find(&g, all[i], err, sizeof err) != 0) fail_msg("%s", err);
        assert_true(g.mem_bytes > 0 && g.mem_bw > 0 && g.flops_16 > 0 && g.link_bw > 0);
    }
    /* sizes: a generic GPU of that memory */
    assert_int_equal(cm_gpu_find(&g, "24GB", err, sizeof err), 0);
    assert_true(fabs(g.mem_bytes - 24.0 * 1073741824.0) < 1);
    assert_int_equal(cm_gpu_find(&g, "12GiB", err, sizeof err), 0);
    assert_true(fabs(g.mem_bytes - 12.0 * 1073741824.0) < 1);
    assert_true(g.mem_bw > 0 && g.flops_16 > 0);
    /* unknown names list the known ones; bad sizes say so */
    assert_int_equal(cm_gpu_find(&g, "TPU-v9", err, sizeof err), -1);
    assert_non_null(strstr(err, "TPU-v9"));
    assert_non_null(strstr(err, "H100-SXM"));
    assert_int_equal(cm_gpu_find(&g, "0GB", err, sizeof err), -1);
    assert_non_null(strstr(err, "positive"));
    assert_int_equal(cm_gpu_find(&g, "-8GB", err, sizeof err), -1);
    assert_int_equal(cm_gpu_find(&g, "", err, sizeof err), -1);
    assert_int_equal(cm_gpu_find(&g, NULL, err, sizeof err), -1);
}

static void test_gpu_table_errors(void **state) {
    (void)state;
    mkdir("build", 0777);
    mkdir("build/tmp", 0777);
    cm_gpu g;
    FILE *f = fopen("build/tmp/gpus_bad.json", "w");
    assert_non_null(f);
    fputs("{\"gpus\": [{\"name\": \"X1\", \"mem_mib\": 1024, \"mem_bw_gbs\": -5, "
          "\"tflops_16\": 1, \"link_gbs\": 1}]}", f);
    fclose(f);
    cm_gpu_table_path("build/tmp/gpus_bad.json");
    assert_int_equal(cm_gpu_find(&g, "X1", err, sizeof err), -1);
    assert_non_null(strstr(err, "gpus_bad.json"));
    assert_non_null(strstr(err, "mem_bw_gbs"));
    cm_gpu_table_path("build/tmp/absent_gpus.json");
    assert_int_equal(cm_gpu_find(&g, "H100", err, sizeof err), -1);
    assert_non_null(strstr(err, "absent_gpus.json"));
    cm_gpu_table_path(NULL);
    assert_int_equal(cm_gpu_find(&g, "H100", err, sizeof err), 0);
}

/* Prefill of long prompts is compute-bound; decode of a small batch is
 * bandwidth-bound. */
static void test_regimes(void **state) {
    (void)state;
    cm_model m;
    model(&m, OPT13B, "A100-40GB", 1, -1);
    cm_batch p = prefill(4, 512), d = decode(8, 512);
    assert_true(t_flops(&m, &p) > 2 * t_bytes(&m, &p));
    assert_true(t_bytes(&m, &d) > 5 * t_flops(&m, &d));
    /* the step time is the larger bound plus the overheads */
    double t = cm_step_time(&m, &p);
    double want = t_flops(&m, &p) + m.k.step_overhead_s + m.k.per_seq_s * 4;
    assert_true(fabs(t - want) < 1e-12);
    /* decode reads all the weights once: at least weights / bandwidth */
    double w = (double)mc_weight_bytes(&m.cfg, m.wdtype);
    assert_true(cm_step_bytes(&m, &d) > w);
    assert_true(cm_step_time(&m, &d) > w / m.gpu.mem_bw);
    /* OPT-13B decode on an A100 is ~10-40 ms per step: a sanity range */
    assert_true(cm_step_time(&m, &d) > 0.010 && cm_step_time(&m, &d) < 0.040);
    /* prefill FLOPs ~ 2 x params x tokens */
    double f = cm_step_flops(&m, &p);
    double dense = 2.0 * (double)mc_num_params(&m.cfg) * 2048;
    assert_true(f > 0.9 * dense && f < 1.3 * dense);
}

static void test_monotone(void **state) {
    (void)state;
    cm_model m;
    model(&m, QWEN7B_AWQ, "H100", 1, -1);
    double prev = 0;
    for (long len = 1; len <= 8192; len *= 2) {
        cm_batch b = prefill(1, len);
        double t = cm_step_time(&m, &b);
        assert_true(t > prev);
        prev = t;
    }
    prev = 0;
    for (int n = 1; n <= 512; n *= 2) {
        cm_batch b = decode(n, 1000);
        double t = cm_step_time(&m, &b);
        assert_true(t > prev);
        prev = t;
    }
    prev = 0;
    for (long ctx = 16; ctx <= 32768; ctx *= 2) {
        cm_batch b = decode(64, ctx);
        double t = cm_step_time(&m, &b);
        assert_true(t > prev);
        prev = t;
    }
    /* no work: the fixed overhead only */
    cm_batch none = { 0 };
    assert_true(fabs(cm_step_time(&m, &none) - m.k.step_overhead_s) < 1e-15);
    assert_true(cm_step_flops(&m, &none) == 0 && cm_step_bytes(&m, &none) == 0);
    /* AWQ reads fewer weight bytes than bf16 at decode */
    cm_model bf;
    model(&bf, QWEN7B_AWQ, "H100", 1, MC_DTYPE_BF16);
    cm_batch d = decode(1, 100);
    assert_true(cm_step_bytes(&m, &d) < 0.5 * cm_step_bytes(&bf, &d));
    assert_true(cm_step_time(&m, &d) < cm_step_time(&bf, &d));
}

/* Swapped KV blocks cost one copy call per block, layer and K/V plus their
 * bytes over PCIe: small blocks make many small copies (the vLLM paper's
 * Fig. 19a), and a step pays for its swaps. */
static void test_swap_time(void **state) {
    (void)state;
    cm_model m;
    model(&m, OPT13B, "A100-40GB", 1, -1);
    double bytes = 256.0 * 2 * 40 * 5120 * 2;                 /* 256 OPT-13B tokens */
    double t1 = cm_swap_time(&m, 256, 256), t256 = cm_swap_time(&m, 1, 256);
    assert_true(fabs(t256 - (80 * m.k.copy_call_s + bytes / m.k.host_bw)) < 1e-12);
    assert_true(fabs(t1 - (256 * 80 * m.k.copy_call_s + bytes / m.k.host_bw)) < 1e-12);
    assert_true(t1 > 5 * t256);
    assert_true(cm_swap_time(&m, 0, 0) == 0);
    cm_batch d = decode(8, 500), ds = d;
    ds.swap_blocks = 16; ds.swap_tokens = 256;
    assert_true(fabs(cm_step_time(&m, &ds) - cm_step_time(&m, &d) - cm_swap_time(&m, 16, 256)) < 1e-12);
}

static void test_tensor_parallel(void **state) {
    (void)state;
    cm_model m1, m2, m4;
    model(&m1, OPT13B, "H100", 1, -1);
    model(&m2, OPT13B, "H100", 2, -1);
    model(&m4, OPT13B, "H100", 4, -1);
    cm_batch p = prefill(8, 1024), d = decode(32, 1024);
    /* per-GPU work splits */
    assert_true(fabs(cm_step_flops(&m2, &p) * 2 - cm_step_flops(&m1, &p)) < 1e3);
    assert_true(fabs(cm_step_bytes(&m4, &d) * 4 - cm_step_bytes(&m1, &d)) < 1e3);
    /* faster with more GPUs, but less than linearly: the all-reduces cost */
    for (int i = 0; i < 2; i++) {
        cm_batch *b = i ? &d : &p;
        double t1 = cm_step_time(&m1, b), t2 = cm_step_time(&m2, b), t4 = cm_step_time(&m4, b);
        assert_true(t2 < t1 && t4 < t2);
        assert_true(t2 > t1 / 2 && t4 > t1 / 4);
    }
    /* the all-reduce term: 2 per layer of tokens x hidden x 2 bytes */
    double ar = t_flops(&m2, &p) > t_bytes(&m2, &p) ? t_flops(&m2, &p) : t_bytes(&m2, &p);
    double rest = cm_step_time(&m2, &p) - ar - m2.k.step_overhead_s - m2.k.per_seq_s * 8;
    double bytes = 8.0 * 1024 * 5120 * 2;
    double want = 2.0 * 40 * (m2.k.allreduce_lat_s + bytes / m2.gpu.link_bw);   /* ring: 2(tp-1)/tp = 1 */
    assert_true(fabs(rest - want) < 1e-9);
    /* TP that does not split the heads is refused */
    mc_config c;
    cm_gpu g;
    assert_int_equal(mc_load(&c, OPT13B, err, sizeof err), 0);
    assert_int_equal(cm_gpu_find(&g, "H100", err, sizeof err), 0);
    cm_model bad;
    assert_int_equal(cm_model_init(&bad, &c, &g, 3, MC_DTYPE_FP16, err, sizeof err), -1);
    assert_int_equal(cm_model_init(&bad, &c, &g, 0, MC_DTYPE_FP16, err, sizeof err), -1);
}

/* MoE: FLOPs follow the active experts; a single decode token reads only
 * its experts, a large batch nearly all of them. */
static void test_moe(void **state) {
    (void)state;
    cm_model m;
    model(&m, QWEN3_MOE, "H200", 1, -1);
    cm_batch p = prefill(1, 4096);
    double active = (double)mc_active_params(&m.cfg), total = (double)mc_num_params(&m.cfg);
    assert_true(cm_step_flops(&m, &p) < 2.0 * active * 4096 * 1.2);
    assert_true(cm_step_flops(&m, &p) < 0.2 * 2.0 * total * 4096);
    cm_batch one = decode(1, 100), many = decode(256, 100);
    double w = (double)mc_weight_bytes(&m.cfg, m.wdtype);
    assert_true(cm_step_bytes(&m, &one) < 0.25 * w);
    assert_true(cm_step_bytes(&m, &many) > 0.95 * w);
}

static void test_coeffs_files(void **state) {
    (void)state;
    mkdir("build", 0777);
    mkdir("build/tmp", 0777);
    cm_coeffs k = cm_coeffs_default(), r;
    assert_true(k.flops_eff > 0 && k.flops_eff <= 1 && k.bw_eff > 0 && k.bw_eff <= 1);
    assert_true(k.step_overhead_s > 0);
    k.flops_eff = 0.42;
    k.step_overhead_s = 0.0031;
    k.per_seq_s = 1.5e-5;
    assert_int_equal(cm_coeffs_save(&k, "build/tmp/coeffs.json", err, sizeof err), 0);
    assert_int_equal(cm_coeffs_load(&r, "build/tmp/coeffs.json", err, sizeof err), 0);
    assert_true(fabs(r.flops_eff - 0.42) < 1e-12 && fabs(r.step_overhead_s - 0.0031) < 1e-12);
    assert_true(fabs(r.per_seq_s - 1.5e-5) < 1e-15 && fabs(r.bw_eff - k.bw_eff) < 1e-12);
    FILE *f = fopen("build/tmp/coeffs_bad.json", "w");
    assert_non_null(f);
    fputs("{\"flops_eff\": 1.7}", f);
    fclose(f);
    assert_int_equal(cm_coeffs_load(&r, "build/tmp/coeffs_bad.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "coeffs_bad.json"));
    assert_non_null(strstr(err, "flops_eff"));
    f = fopen("build/tmp/coeffs_bad.json", "w");
    fputs("{\n\"bw_eff\": 0.5,\n oops}", f);
    fclose(f);
    assert_int_equal(cm_coeffs_load(&r, "build/tmp/coeffs_bad.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "coeffs_bad.json:3"));
    assert_int_equal(cm_coeffs_load(&r, "build/tmp/none.json", err, sizeof err), -1);
    assert_int_equal(cm_coeffs_save(&k, "build/tmp/no/such/dir.json", err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpu_find),
        cmocka_unit_test(test_gpu_table_errors),
        cmocka_unit_test(test_regimes),
        cmocka_unit_test(test_monotone),
        cmocka_unit_test(test_swap_time),
        cmocka_unit_test(test_tensor_parallel),
        cmocka_unit_test(test_moe),
        cmocka_unit_test(test_coeffs_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
