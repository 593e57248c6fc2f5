/* Tests of sim/planner: the seed study's memory mistake (Qwen2.5-14B-AWQ on a
 * 12 GB RTX 4070 leaves no KV cache; the 7B AWQ fits at 6144 tokens), the
 * KV-per-token arithmetic, tensor parallelism, the report's lines, and bad
 * options. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "sim/planner.h"

static char err[1024];

static void setup(mc_config *c, cm_gpu *g, const char *cfg, const char *gpu) {
    if (mc_load(c, cfg, err, sizeof err) != 0) fail_msg("%s", err);
    if (cm_gpu_find(g, gpu, err, sizeof err) != 0) fail_msg("%s", err);
}

/* The planner's own identities, recomputed from its parts. */
static void check_consistent(const plan_result *r) {
    double kv = r->budget_bytes - r->weight_bytes - r->activation_bytes - r->non_torch_bytes;
    assert_true(fabs(kv - r->kv_bytes) < 1.0);
    assert_true(fabs(r->budget_bytes - r->total_bytes * r->util) < 1.0);
    long blocks = kv > 0 ? (long)floor(kv / (double)r->block_bytes) : 0;
    assert_int_equal(r->num_blocks, blocks);
    assert_int_equal(r->block_bytes, r->kv_bytes_per_token * r->block_size);
    assert_int_equal(r->kv_tokens, r->num_blocks * r->block_size);
    assert_true(fabs(r->max_concurrency - (double)r->kv_tokens / r->max_model_len) < 1e-9);
    assert_int_equal(r->fits, r->num_blocks > 0 && r->kv_tokens >= r->max_model_len);
}

/* Qwen2.5-14B-Instruct-AWQ on an RTX 4070 with vLLM's defaults: the study saw
 * "# GPU blocks: 0". */
static void test_14b_awq_on_4070(void **state) {
    (void)state;
    mc_config c;
    cm_gpu g;
    setup(&c, &g, "data/models/qwen2.5-14b-instruct-awq.json", "RTX-4070");
    plan_opts o;
    plan_opts_default(&o);
    plan_result r;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    check_consistent(&r);
    assert_int_equal(r.wdtype, MC_DTYPE_AWQ4);
    assert_int_equal(r.max_model_len, 32768);
    assert_int_equal(r.num_blocks, 0);
    assert_int_equal(r.kv_tokens, 0);
    assert_false(r.fits);
    assert_true(r.kv_bytes < 0);
    /* the weights alone take most of the budget */
    assert_true(r.weight_bytes > 0.8 * r.budget_bytes && r.weight_bytes < r.budget_bytes);
    /* the same on a 12GB size, and at util 0.92 */
    setup(&c, &g, "data/models/qwen2.5-14b-instruct-awq.json", "12GB");
    o.util = 0.92;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    assert_int_equal(r.num_blocks, 0);
    /* shorter requests leave some blocks but not a 6144-token request */
    o.max_model_len = 6144;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    check_consistent(&r);
    assert_false(r.fits);
    /* on a 24 GB RTX 4090 it fits */
    setup(&c, &g, "data/models/qwen2.5-14b-instruct-awq.json", "RTX-4090");
    plan_opts_default(&o);
    o.max_model_len = 6144;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    assert_true(r.fits);
}

/* Qwen2.5-7B-Instruct-AWQ on the 4070 at --max-model-len 6144 --util 0.92. */
static void test_7b_awq_on_4070(void **state) {
    (void)state;
    mc_config c;
    cm_gpu g;
    setup(&c, &g, "data/models/qwen2.5-7b-instruct-awq.json", "RTX-4070");
    plan_opts o;
    plan_opts_default(&o);
    o.max_model_len = 6144;
    o.util = 0.92;
    plan_result r;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    check_consistent(&r);
    assert_true(r.fits);
    assert_int_equal(r.kv_bytes_per_token, 57344);      /* fp16 KV: 2 x 28 x 4 x 128 x 2 */
    assert_int_equal(r.block_bytes, 57344 * 16);
    assert_int_equal(r.batched_tokens, 6144);
    /* a few GiB of KV cache: thousands of blocks, over ten 6144-token requests */
    assert_true(r.num_blocks > 2000 && r.num_blocks < 8000);
    assert_true(r.max_concurrency > 5 && r.max_concurrency < 25);
    /* more utilisation, more blocks; a longer max-model-len, fewer */
    plan_result hi, longer;
    o.util = 0.95;
    assert_int_equal(plan_compute(&c, &g, &o, &hi, err, sizeof err), 0);
    assert_true(hi.num_blocks > r.num_blocks);
    o.util = 0.92;
    o.max_model_len = 32768;
    assert_int_equal(plan_compute(&c, &g, &o, &longer, err, sizeof err), 0);
    assert_true(longer.num_blocks < r.num_blocks);
    assert_true(longer.max_concurrency < r.max_concurrency);
}

/* Qwen2.5-7B in bf16: 57,344 KV bytes per token (not 2 x hidden x layers x 2). */
static void test_kv_per_token(void **state) {
    (void)state;
    mc_config c;
    const char *j = "{\"model_type\":\"qwen2\",\"hidden_size\":3584,\"num_hidden_layers\":28,"
        "\"num_attention_heads\":28,\"num_key_value_heads\":4,\"intermediate_size\":18944,"
        "\"vocab_size\":152064,\"max_position_embeddings\":32768,\"torch_dtype\":\"bfloat16\"}";
    assert_int_equal(mc_parse(&c, j, "qwen2.5-7b", err, sizeof err), 0);
    cm_gpu g;
    assert_int_equal(cm_gpu_find(&g, "H100", err, sizeof err), 0);
    plan_opts o;
    plan_opts_default(&o);
    plan_result r;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    check_consistent(&r);
    assert_int_equal(r.kvdtype, MC_DTYPE_BF16);
    assert_int_equal(r.kv_bytes_per_token, 57344);
    assert_true(r.kv_bytes_per_token < 2LL * 3584 * 28 * 2 / 6);  /* GQA: 7x less than naive */
    /* TP 2 halves the KV heads per GPU, TP 4 keeps one of the 4 per GPU */
    o.tp = 2;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    assert_int_equal(r.kv_bytes_per_token, 57344 / 2);
    o.tp = 4;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    assert_int_equal(r.kv_bytes_per_token, 57344 / 4);
    o.tp = 7;          /* 28 heads / 7, but 4 KV heads do not spread evenly over 7 (vLLM refuses too) */
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "KV heads"));
    o.tp = 8;                                           /* 28 heads do not split over 8 */
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--tensor-parallel-size 8"));
    /* weights split over GPUs; more GPUs, more blocks each */
    plan_result r1, r2;
    o.tp = 1;
    assert_int_equal(plan_compute(&c, &g, &o, &r1, err, sizeof err), 0);
    o.tp = 2;
    assert_int_equal(plan_compute(&c, &g, &o, &r2, err, sizeof err), 0);
    /* the weights split in two, but for the RMSNorms each GPU keeps whole (vLLM does the same) */
    assert_true(r2.weight_bytes * 2 - r1.weight_bytes == (2.0 * 28 * 3584 + 3584) * 2);
    assert_true(r2.num_blocks > r1.num_blocks);
    /* block size scales blocks inversely, tokens about the same */
    o.tp = 1;
    o.block_size = 32;
    plan_result r32;
    assert_int_equal(plan_compute(&c, &g, &o, &r32, err, sizeof err), 0);
    assert_true(labs(r32.kv_tokens - r1.kv_tokens) <= 32);
}

/* On one GPU the per-GPU weights are the whole model, for every shipped config
 * and dtype; more GPUs never hold less than their share. */
static void test_weights_per_gpu(void **state) {
    (void)state;
    mc_config c;
    const char *names[] = {"qwen2.5-0.5b", "qwen2.5-7b", "qwen3-0.6b", "qwen3-8b", "llama-3.1-8b",
                           "smollm2-135m", "opt-13b", "qwen2.5-7b-instruct-awq", "qwen2.5-14b-instruct-awq",
                           "qwen3-30b-a3b-instruct-2507", "llama-3.1-70b"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "data/models/%s.json", names[i]);
        assert_int_equal(mc_load(&c, path, err, sizeof err), 0);
        for (int d = MC_DTYPE_BF16; d <= MC_DTYPE_AWQ4; d++) {
            assert_int_equal(plan_weight_bytes(&c, (mc_dtype)d, 1), mc_weight_bytes(&c, (mc_dtype)d));
            for (int tp = 2; tp <= 8; tp *= 2)
                if (c.num_heads % tp == 0 && (c.num_kv_heads % tp == 0 || tp % c.num_kv_heads == 0) &&
                    (c.num_experts ? c.moe_intermediate_size : c.intermediate_size) % tp == 0)
                    assert_true(plan_weight_bytes(&c, (mc_dtype)d, tp) * tp >= mc_weight_bytes(&c, (mc_dtype)d));
        }
    }
    /* the study's model at TP 8: 4 KV heads, each on 2 GPUs */
    assert_int_equal(mc_load(&c, "data/models/qwen3-30b-a3b-instruct-2507.json", err, sizeof err), 0);
    assert_int_equal(plan_kv_bytes_per_token(&c, MC_DTYPE_BF16, 8), 2 * 48 * 1 * 128 * 2);
    assert_int_equal(plan_kv_bytes_per_token(&c, MC_DTYPE_BF16, 4), 2 * 48 * 1 * 128 * 2);
    assert_int_equal(plan_kv_bytes_per_token(&c, MC_DTYPE_BF16, 2), 2 * 48 * 2 * 128 * 2);
}

/* OPT-13B on an A100-40GB: the vLLM paper's setup, about 12 GB of KV cache. */
static void test_opt13b_a100(void **state) {
    (void)state;
    mc_config c;
    cm_gpu g;
    setup(&c, &g, "data/models/opt-13b.json", "A100-40GB");
    plan_opts o;
    plan_opts_default(&o);
    plan_result r;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    check_consistent(&r);
    assert_int_equal(r.kv_bytes_per_token, 819200);     /* 2 x 40 x 5120 x 2 */
    double kv_gb = (double)r.num_blocks * r.block_bytes / 1e9;
    assert_true(kv_gb > 10 && kv_gb < 14);
}

/* The profile run's size follows vLLM V0: the whole max-model-len up to 32K,
 * 2048 tokens (chunked prefill) above; activations grow with it. */
static void test_profile_tokens(void **state) {
    (void)state;
    mc_config c;
    cm_gpu g;
    setup(&c, &g, "data/models/qwen3-30b-a3b-instruct-2507.json", "H200");
    plan_opts o;
    plan_opts_default(&o);
    plan_result r_long, r_32k, r_8k;
    assert_int_equal(plan_compute(&c, &g, &o, &r_long, err, sizeof err), 0);
    assert_int_equal(r_long.max_model_len, 262144);
    assert_int_equal(r_long.batched_tokens, 2048);
    o.max_model_len = 32768;
    assert_int_equal(plan_compute(&c, &g, &o, &r_32k, err, sizeof err), 0);
    assert_int_equal(r_32k.batched_tokens, 32768);
    o.max_num_batched_tokens = 8192;
    assert_int_equal(plan_compute(&c, &g, &o, &r_8k, err, sizeof err), 0);
    assert_int_equal(r_8k.batched_tokens, 8192);
    assert_true(r_32k.activation_bytes > 2 * r_8k.activation_bytes);
    assert_true(r_8k.num_blocks > r_32k.num_blocks);
    check_consistent(&r_8k);
}

/* The report carries vLLM's lines and the verdict. */
static void test_report(void **state) {
    (void)state;
    mc_config c;
    cm_gpu g;
    setup(&c, &g, "data/models/qwen2.5-14b-instruct-awq.json", "RTX-4070");
    plan_opts o;
    plan_opts_default(&o);
    plan_result r;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    plan_write_text(f, &r);
    fclose(f);
    assert_non_null(strstr(buf, "# GPU blocks: 0,"));
    assert_non_null(strstr(buf, "GPU KV cache size: 0 tokens"));
    assert_non_null(strstr(buf, "Maximum concurrency for 32,768 tokens per request: 0.00x"));
    assert_non_null(strstr(buf, "verdict: does not fit"));
    free(buf);

    setup(&c, &g, "data/models/qwen2.5-7b-instruct-awq.json", "RTX-4070");
    o.max_model_len = 6144;
    o.util = 0.92;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), 0);
    f = open_memstream(&buf, &len);
    plan_write_text(f, &r);
    fclose(f);
    char want[128];
    snprintf(want, sizeof want, "# GPU blocks: %ld, # CPU blocks: %ld\n", r.num_blocks, r.num_cpu_blocks);
    assert_non_null(strstr(buf, want));
    snprintf(want, sizeof want, "Maximum concurrency for 6,144 tokens per request: %.2fx\n", r.max_concurrency);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "verdict: fits"));
    free(buf);

    f = open_memstream(&buf, &len);
    plan_write_json(f, &r);
    fclose(f);
    snprintf(want, sizeof want, "\"num_gpu_blocks\": %ld,", r.num_blocks);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "\"kv_bytes_per_token\": 57344,"));
    assert_non_null(strstr(buf, "\"fits\": true"));
    free(buf);
}

static void test_bad_options(void **state) {
    (void)state;
    mc_config c;
    cm_gpu g;
    setup(&c, &g, "data/models/qwen2.5-7b-instruct-awq.json", "RTX-4070");
    plan_result r;
    plan_opts o;
    plan_opts_default(&o); o.util = 0;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--gpu-memory-utilization"));
    plan_opts_default(&o); o.util = 1.5;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), -1);
    plan_opts_default(&o); o.block_size = 0;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--block-size"));
    plan_opts_default(&o); o.tp = 3;                   /* 28 heads */
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--tensor-parallel-size 3"));
    plan_opts_default(&o); o.max_model_len = -5;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), -1);
    plan_opts_default(&o); o.max_model_len = 1 << 20; /* beyond 32768 positions */
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--max-model-len"));
    plan_opts_default(&o); o.max_num_seqs = 0;
    assert_int_equal(plan_compute(&c, &g, &o, &r, err, sizeof err), -1);
    cm_gpu none = g;
    none.mem_bytes = 0;
    plan_opts_default(&o);
    assert_int_equal(plan_compute(&c, &none, &o, &r, err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_14b_awq_on_4070),
        cmocka_unit_test(test_7b_awq_on_4070),
        cmocka_unit_test(test_kv_per_token),
        cmocka_unit_test(test_opt13b_a100),
        cmocka_unit_test(test_weights_per_gpu),
        cmocka_unit_test(test_profile_tokens),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
