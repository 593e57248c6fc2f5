/* Tests of sim/model_config: every family (dense, MoE, AWQ, OPT), parameter
 * counts against the totals the model cards publish, and bad files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "sim/model_config.h"

static char err[1024];

/* |got / want - 1| <= tol */
static void assert_close(double got, double want, double tol) {
    if (fabs(got / want - 1) > tol) fail_msg("got %.6g, want %.6g (tol %.3g)", got, want, tol);
}

static void load_ok(mc_config *c, const char *path) {
    if (mc_load(c, path, err, sizeof err) != 0) fail_msg("%s", err);
}

static void write_file(const char *path, const char *text) {
    mkdir("build", 0777);
    mkdir("build/tmp", 0777);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Llama-3.1-8B: 8.03 B parameters (model card). */
static const char *LLAMA31_8B =
    "{\"model_type\":\"llama\",\"hidden_size\":4096,\"num_hidden_layers\":32,"
    "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"intermediate_size\":14336,"
    "\"vocab_size\":128256,\"max_position_embeddings\":131072,\"rope_theta\":500000.0,"
    "\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
    "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},"
    "\"rms_norm_eps\":1e-05,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\"}";

static void test_llama(void **state) {
    (void)state;
    mc_config c;
    assert_int_equal(mc_parse(&c, LLAMA31_8B, "llama.json", err, sizeof err), 0);
    assert_int_equal(c.arch, MC_ARCH_LLAMA);
    assert_int_equal(c.head_dim, 128);                    /* default hidden / heads */
    assert_int_equal(c.num_kv_heads, 8);
    assert_int_equal(c.rope_kind, MC_ROPE_LLAMA3);
    assert_true(fabs(c.rope_factor - 8.0) < 1e-12);
    assert_int_equal(c.rope_orig_max_pos, 8192);
    assert_int_equal(c.attn_bias, 0);
    assert_int_equal(c.dtype, MC_DTYPE_BF16);
    assert_close((double)mc_num_params(&c), 8.03e9, 0.005);
    assert_int_equal(mc_num_params(&c), mc_active_params(&c));
    /* 2 x 32 layers x 8 kv heads x 128 x 2 bytes */
    assert_int_equal(mc_kv_bytes_per_token(&c, MC_DTYPE_BF16), 131072);
    assert_int_equal(mc_weight_bytes(&c, MC_DTYPE_BF16), 2 * mc_num_params(&c));
    assert_int_equal(mc_weight_bytes(&c, MC_DTYPE_FP32), 4 * mc_num_params(&c));
}

/* Mistral-7B-v0.1: 7.24 B. */
static void test_mistral(void **state) {
    (void)state;
    mc_config c;
    const char *j = "{\"model_type\":\"mistral\",\"hidden_size\":4096,\"num_hidden_layers\":32,"
        "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"intermediate_size\":14336,"
        "\"vocab_size\":32000,\"max_position_embeddings\":32768,\"sliding_window\":4096,"
        "\"torch_dtype\":\"bfloat16\"}";
    assert_int_equal(mc_parse(&c, j, "mistral.json", err, sizeof err), 0);
    assert_int_equal(c.arch, MC_ARCH_MISTRAL);
    assert_int_equal(c.sliding_window, 4096);
    assert_close((double)mc_num_params(&c), 7.24e9, 0.005);
}

/* Qwen2.5-7B: 7.61 B; attention bias on q,k,v; 57,344 KV bytes per token. */
static void test_qwen2(void **state) {
    (void)state;
    mc_config c;
    const char *j = "{\"model_type\":\"qwen2\",\"hidden_size\":3584,\"num_hidden_layers\":28,"
        "\"num_attention_heads\":28,\"num_key_value_heads\":4,\"intermediate_size\":18944,"
        "\"vocab_size\":152064,\"max_position_embeddings\":131072,\"sliding_window\":131072,"
        "\"use_sliding_window\":false,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\"}";
    assert_int_equal(mc_parse(&c, j, "qwen2.json", err, sizeof err), 0);
    assert_int_equal(c.arch, MC_ARCH_QWEN2);
    assert_int_equal(c.attn_bias, 1);
    assert_int_equal(c.sliding_window, 0);                /* use_sliding_window false */
    assert_close((double)mc_num_params(&c), 7.62e9, 0.005);
    assert_int_equal(mc_kv_bytes_per_token(&c, MC_DTYPE_BF16), 57344);
    assert_int_equal(2LL * c.num_layers * c.num_kv_heads * c.head_dim * 2, 57344);
}

/* Qwen3-8B: 8.19 B; explicit head_dim; per-head q/k norms. */
static void test_qwen3(void **state) {
    (void)state;
    mc_config c;
    const char *j = "{\"model_type\":\"qwen3\",\"hidden_size\":4096,\"num_hidden_layers\":36,"
        "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"head_dim\":128,"
        "\"intermediate_size\":12288,\"vocab_size\":151936,\"max_position_embeddings\":40960,"
        "\"attention_bias\":false,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\"}";
    assert_int_equal(mc_parse(&c, j, "qwen3.json", err, sizeof err), 0);
    assert_int_equal(c.arch, MC_ARCH_QWEN3);
    assert_int_equal(c.qk_norm, 1);
    assert_int_equal(c.attn_bias, 0);
    assert_close((double)mc_num_params(&c), 8.19e9, 0.005);
}

/* Mixtral-8x7B: 46.7 B total, 12.9 B active (2 of 8 experts). */
static void test_mixtral(void **state) {
    (void)state;
    mc_config c;
    const char *j = "{\"model_type\":\"mixtral\",\"hidden_size\":4096,\"num_hidden_layers\":32,"
        "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"intermediate_size\":14336,"
        "\"num_local_experts\":8,\"num_experts_per_tok\":2,\"vocab_size\":32000,"
        "\"max_position_embeddings\":32768,\"torch_dtype\":\"bfloat16\"}";
    assert_int_equal(mc_parse(&c, j, "mixtral.json", err, sizeof err), 0);
    assert_int_equal(c.arch, MC_ARCH_MIXTRAL);
    assert_int_equal(c.num_experts, 8);
    assert_int_equal(c.experts_per_tok, 2);
    assert_int_equal(c.moe_intermediate_size, 14336);
    assert_close((double)mc_num_params(&c), 46.7e9, 0.005);
    assert_close((double)mc_active_params(&c), 12.9e9, 0.01);
}

/* Qwen3-30B-A3B: 30.5 B total, 3.3 B active (8 of 128 experts). */
static void test_qwen3_moe_file(void **state) {
    (void)state;
    mc_config c;
    load_ok(&c, "data/models/qwen3-30b-a3b-instruct-2507.json");
    assert_int_equal(c.arch, MC_ARCH_QWEN3_MOE);
    assert_int_equal(c.num_layers, 48);
    assert_int_equal(c.hidden_size, 2048);
    assert_int_equal(c.num_heads, 32);
    assert_int_equal(c.num_kv_heads, 4);
    assert_int_equal(c.head_dim, 128);                    /* not hidden / heads (64) */
    assert_int_equal(c.num_experts, 128);
    assert_int_equal(c.experts_per_tok, 8);
    assert_int_equal(c.moe_intermediate_size, 768);
    assert_int_equal(c.vocab_size, 151936);
    assert_close((double)mc_num_params(&c), 30.5e9, 0.01);
    assert_close((double)mc_active_params(&c), 3.3e9, 0.03);
    assert_true(mc_active_params(&c) < mc_num_params(&c) / 5);
    assert_int_equal(mc_kv_bytes_per_token(&c, MC_DTYPE_BF16), 2 * 48 * 4 * 128 * 2);
    assert_int_equal(c.norm_topk_prob, 1);
    assert_int_equal(c.decoder_sparse_step, 1);
    for (int l = 0; l < 48; l++) assert_int_equal(mc_layer_is_moe(&c, l), 1);
}

/* Which layers are sparse: decoder_sparse_step, mlp_only_layers; the dense
 * layers count intermediate_size, the sparse ones the experts. */
static void test_moe_layers(void **state) {
    (void)state;
    mc_config c, all;
    const char *base = "{\"model_type\":\"qwen3_moe\",\"hidden_size\":64,\"num_hidden_layers\":4,"
        "\"num_attention_heads\":2,\"vocab_size\":100,\"num_experts\":16,\"num_experts_per_tok\":4,"
        "\"moe_intermediate_size\":32,\"intermediate_size\":96";
    char j[512];
    snprintf(j, sizeof j, "%s}", base);
    assert_int_equal(mc_parse(&all, j, "all.json", err, sizeof err), 0);
    assert_int_equal(all.norm_topk_prob, 0);                 /* transformers' default */
    for (int l = 0; l < 4; l++) assert_int_equal(mc_layer_is_moe(&all, l), 1);
    snprintf(j, sizeof j, "%s,\"mlp_only_layers\":[0,2],\"norm_topk_prob\":true}", base);
    assert_int_equal(mc_parse(&c, j, "mlp_only.json", err, sizeof err), 0);
    assert_int_equal(c.norm_topk_prob, 1);
    assert_int_equal(mc_layer_is_moe(&c, 0), 0);
    assert_int_equal(mc_layer_is_moe(&c, 1), 1);
    assert_int_equal(mc_layer_is_moe(&c, 2), 0);
    assert_int_equal(mc_layer_is_moe(&c, 3), 1);
    /* two layers trade 16 experts (3 x 64 x 32 each) and a router (16 x 64) for a dense MLP (3 x 64 x 96) */
    int64_t d = 2 * (16 * 3 * 64 * 32 + 16 * 64 - 3 * 64 * 96);
    assert_true(mc_num_params(&all) - mc_num_params(&c) == d);
    assert_true(mc_active_params(&all) - mc_active_params(&c) == 2 * (4 * 3 * 64 * 32 + 16 * 64 - 3 * 64 * 96));
    snprintf(j, sizeof j, "%s,\"decoder_sparse_step\":2}", base);
    assert_int_equal(mc_parse(&c, j, "step2.json", err, sizeof err), 0);
    assert_int_equal(mc_layer_is_moe(&c, 0), 0);
    assert_int_equal(mc_layer_is_moe(&c, 1), 1);
    assert_int_equal(mc_layer_is_moe(&c, 2), 0);
    assert_int_equal(mc_layer_is_moe(&c, 3), 1);
    /* bad values name the field */
    snprintf(j, sizeof j, "%s,\"mlp_only_layers\":[4]}", base);
    assert_int_equal(mc_parse(&c, j, "bad.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "mlp_only_layers"));
    snprintf(j, sizeof j, "%s,\"mlp_only_layers\":3}", base);
    assert_int_equal(mc_parse(&c, j, "bad.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "mlp_only_layers"));
    snprintf(j, sizeof j, "%s,\"decoder_sparse_step\":0}", base);
    assert_int_equal(mc_parse(&c, j, "bad.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "decoder_sparse_step"));
    assert_int_equal(mc_parse(&c, "{\"model_type\":\"qwen3_moe\",\"hidden_size\":64,\"num_hidden_layers\":2,"
        "\"num_attention_heads\":2,\"vocab_size\":10,\"num_experts\":4,\"num_experts_per_tok\":5,"
        "\"moe_intermediate_size\":8}", "k.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "num_experts_per_tok"));
    /* a dense layer needs intermediate_size */
    assert_int_equal(mc_parse(&c, "{\"model_type\":\"qwen3_moe\",\"hidden_size\":64,\"num_hidden_layers\":2,"
        "\"num_attention_heads\":2,\"vocab_size\":10,\"num_experts\":4,\"num_experts_per_tok\":2,"
        "\"moe_intermediate_size\":8,\"mlp_only_layers\":[1]}", "d.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "intermediate_size"));
}

/* OPT-13B: 12.85 B (learned positions, biases, LayerNorms, tied head). */
static void test_opt_file(void **state) {
    (void)state;
    mc_config c;
    load_ok(&c, "data/models/opt-13b.json");
    assert_int_equal(c.arch, MC_ARCH_OPT);
    assert_int_equal(c.hidden_size, 5120);
    assert_int_equal(c.num_layers, 40);
    assert_int_equal(c.intermediate_size, 20480);
    assert_int_equal(c.vocab_size, 50272);
    assert_int_equal(c.max_position, 2048);
    assert_int_equal(c.num_kv_heads, 40);
    assert_int_equal(c.tie_embeddings, 1);
    assert_int_equal(c.dtype, MC_DTYPE_FP16);
    assert_close((double)mc_num_params(&c), 12.85e9, 0.005);
    assert_int_equal(mc_kv_bytes_per_token(&c, MC_DTYPE_FP16), 2 * 40 * 5120 * 2);
}

/* AWQ configs: dtype AWQ4, weights about a quarter of fp16 for the linears. */
static void test_awq_files(void **state) {
    (void)state;
    mc_config c7, c14;
    load_ok(&c7, "data/models/qwen2.5-7b-instruct-awq.json");
    load_ok(&c14, "data/models/qwen2.5-14b-instruct-awq.json");
    assert_int_equal(c7.dtype, MC_DTYPE_AWQ4);
    assert_int_equal(c14.dtype, MC_DTYPE_AWQ4);
    assert_string_equal(c7.name, "Qwen/Qwen2.5-7B-Instruct-AWQ");
    assert_close((double)mc_num_params(&c7), 7.62e9, 0.005);
    assert_close((double)mc_num_params(&c14), 14.7e9, 0.01);
    /* embeddings and lm_head stay fp16: 2 x vocab x hidden x 2 bytes */
    double outer = 2.0 * c7.vocab_size * c7.hidden_size * 2;
    double w = (double)mc_weight_bytes(&c7, MC_DTYPE_AWQ4);
    double fp16 = (double)mc_weight_bytes(&c7, MC_DTYPE_FP16);
    assert_true(w > outer && w < fp16 / 2.5);
    /* linear part at 4.25 bits per weight (4 + scale/zero per 128) */
    double linear = (fp16 - outer) / 2;
    assert_close(w - outer, linear * (0.5 + 2.5 / 128), 0.01);
    /* the published AWQ checkpoints: 5.6 GB and 10.0 GB of safetensors */
    assert_close(w, 5.58e9, 0.03);
    assert_close((double)mc_weight_bytes(&c14, MC_DTYPE_AWQ4), 9.98e9, 0.03);
    assert_int_equal(mc_dtype_bytes(MC_DTYPE_AWQ4), 2);
    /* what the engine's AWQ loader checks */
    assert_string_equal(c7.quant_method, "awq");
    assert_string_equal(c7.quant_version, "gemm");
    assert_int_equal(c7.quant_bits, 4);
    assert_int_equal(c7.quant_group_size, 128);
    assert_int_equal(c7.quant_zero_point, 1);
    assert_int_equal(c7.quant_skip_modules, 0);
    assert_int_equal(mc_quant_group(&c7), 128);
}

/* quantization_config's other fields: group 64 counts more scales; -1 (one
 * group per column) parses and counts as 128; bad group sizes are errors. */
static void test_awq_fields(void **state) {
    (void)state;
    char err[256], j[1024];
    const char *base = "{\"model_type\":\"qwen2\",\"hidden_size\":256,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":2,\"intermediate_size\":512,\"vocab_size\":1000,"
                       "\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":4,%s}}";
    mc_config c64, c128, cm1, cg;
    snprintf(j, sizeof j, base, "\"group_size\":64,\"zero_point\":false,\"version\":\"GEMV\","
             "\"modules_to_not_convert\":[\"visual\"]");
    assert_int_equal(mc_parse(&c64, j, "g64.json", err, sizeof err), 0);
    assert_int_equal(c64.quant_group_size, 64);
    assert_int_equal(c64.quant_zero_point, 0);
    assert_string_equal(c64.quant_version, "GEMV");
    assert_int_equal(c64.quant_skip_modules, 1);
    snprintf(j, sizeof j, base, "\"group_size\":128");
    assert_int_equal(mc_parse(&c128, j, "g128.json", err, sizeof err), 0);
    assert_int_equal(c128.quant_zero_point, 1);
    assert_string_equal(c128.quant_version, "");
    /* linear weights 2 x (256 x 768 + 256 x 256 + 3 x 256 x 512): 64 adds 2.5/128 byte per weight */
    double lin = 2.0 * (256 * 768 + 256 * 256 + 3 * 256 * 512);
    assert_true(fabs((double)(mc_weight_bytes(&c64, MC_DTYPE_AWQ4) - mc_weight_bytes(&c128, MC_DTYPE_AWQ4)) -
                     lin * 2.5 / 128) < 1);
    snprintf(j, sizeof j, base, "\"group_size\":-1");
    assert_int_equal(mc_parse(&cm1, j, "gm1.json", err, sizeof err), 0);
    assert_int_equal(cm1.quant_group_size, -1);
    assert_int_equal(mc_quant_group(&cm1), 128);
    snprintf(j, sizeof j, base, "\"group_size\":0");
    assert_int_equal(mc_parse(&cg, j, "g0.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "group_size"));
    snprintf(j, sizeof j, base, "\"group_size\":\"64\"");
    assert_int_equal(mc_parse(&cg, j, "gs.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "group_size"));
}

static void test_dtype_names(void **state) {
    (void)state;
    for (int d = MC_DTYPE_BF16; d <= MC_DTYPE_AWQ4; d++)
        assert_int_equal(mc_dtype_parse(mc_dtype_name((mc_dtype)d)), d);
    assert_int_equal(mc_dtype_parse("int3"), -1);
    assert_int_equal(mc_dtype_parse(NULL), -1);
}

/* Each bad file gives -1, a message naming the file (and field), zeroed *c. */
static void expect_error(const char *text, const char *want1, const char *want2) {
    const char *path = "build/tmp/test_mc_bad.json";
    write_file(path, text);
    mc_config c;
    memset(&c, 0x5a, sizeof c);
    err[0] = '\0';
    assert_int_equal(mc_load(&c, path, err, sizeof err), -1);
    if (!strstr(err, path)) fail_msg("error does not name the file: %s", err);
    if (want1 && !strstr(err, want1)) fail_msg("error lacks '%s': %s", want1, err);
    if (want2 && !strstr(err, want2)) fail_msg("error lacks '%s': %s", want2, err);
    assert_int_equal(c.hidden_size, 0);
    assert_int_equal(c.num_layers, 0);
}

static void test_bad_files(void **state) {
    (void)state;
    expect_error("{\n \"model_type\": \"llama\",\n \"hidden_size\": 4096,,\n}", "json:3", "JSON");
    expect_error("", "JSON", NULL);
    expect_error("[1, 2]", "not a JSON object", NULL);
    expect_error("{\"hidden_size\": 64}", "model_type", NULL);
    expect_error("{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"num_attention_heads\":2,"
                 "\"intermediate_size\":8,\"vocab_size\":10}", "hidden_size", "missing");
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":-64,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":10}",
                 "hidden_size", NULL);
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":\"64\",\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":10}",
                 "hidden_size", "integer");
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":0,"
                 "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":10}",
                 "num_hidden_layers", "positive");
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":4,\"num_key_value_heads\":3,\"intermediate_size\":8,"
                 "\"vocab_size\":10}", "num_key_value_heads", NULL);
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":2,\"vocab_size\":10}", "intermediate_size", NULL);
    expect_error("{\"model_type\":\"qwen3_moe\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":2,\"vocab_size\":10,\"num_experts\":4,"
                 "\"moe_intermediate_size\":8}", "num_experts_per_tok", NULL);
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":10,"
                 "\"quantization_config\":{\"quant_method\":\"bitsandbytes\",\"bits\":8}}",
                 "quantization_config", "bitsandbytes");
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":10,"
                 "\"torch_dtype\":\"int4\"}", "torch_dtype", NULL);
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":10,"
                 "\"rope_scaling\":{\"rope_type\":\"weird\"}}", "rope_scaling", NULL);
    /* 0 KV heads or a 0 head size given: no KV cache, an error (null still means the default) */
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":4,\"num_key_value_heads\":0,\"intermediate_size\":8,"
                 "\"vocab_size\":10}", "num_key_value_heads", "positive");
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
                 "\"num_attention_heads\":4,\"head_dim\":0,\"intermediate_size\":8,"
                 "\"vocab_size\":10}", "head_dim", "positive");
    /* 10^12 layers: too large, not "not a non-negative integer"; past the model bound: named */
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1000000000000,"
                 "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":10}",
                 "num_hidden_layers", "1e+12: implausibly large");
    expect_error("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":20000,"
                 "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":10}",
                 "num_hidden_layers 20000", "at most 10000");
    /* absent file, directory */
    mc_config c;
    assert_int_equal(mc_load(&c, "build/tmp/no-such-config.json", err, sizeof err), -1);
    assert_non_null(strstr(err, "no-such-config.json"));
    assert_int_equal(mc_load(&c, "data", err, sizeof err), -1);
    assert_non_null(strstr(err, "data"));
    /* a tiny valid model: name from the file name */
    write_file("build/tmp/tiny.json", "{\"model_type\":\"llama\",\"hidden_size\":64,"
               "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"intermediate_size\":8,"
               "\"vocab_size\":10}");
    load_ok(&c, "build/tmp/tiny.json");
    assert_string_equal(c.name, "tiny");
    assert_int_equal(c.head_dim, 32);
    assert_int_equal(c.num_kv_heads, 2);
    write_file("build/tmp/tiny_null.json", "{\"model_type\":\"llama\",\"hidden_size\":64,"
               "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"intermediate_size\":8,"
               "\"vocab_size\":10,\"head_dim\":null,\"num_key_value_heads\":null}");
    load_ok(&c, "build/tmp/tiny_null.json");
    assert_int_equal(c.head_dim, 32);
    assert_int_equal(c.num_kv_heads, 2);
}

/* transformers >= 5 writes rope_theta and the scaling into "rope_parameters". */
static void test_rope_parameters(void **state) {
    (void)state;
    mc_config c;
    const char *v5 =
        "{\"model_type\":\"llama\",\"hidden_size\":256,\"num_hidden_layers\":2,"
        "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":512,"
        "\"vocab_size\":1000,\"max_position_embeddings\":4096,"
        "\"rope_parameters\":{\"rope_theta\":500000.0,\"rope_type\":\"llama3\",\"factor\":8.0,"
        "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
        "\"original_max_position_embeddings\":8192}}";
    assert_int_equal(mc_parse(&c, v5, "v5.json", err, sizeof err), 0);
    assert_true(fabs(c.rope_theta - 500000.0) < 1e-9);
    assert_int_equal(c.rope_kind, MC_ROPE_LLAMA3);
    assert_true(fabs(c.rope_factor - 8.0) < 1e-12);
    assert_int_equal(c.rope_orig_max_pos, 8192);
    const char *v5_default =
        "{\"model_type\":\"qwen2\",\"hidden_size\":256,\"num_hidden_layers\":2,"
        "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"intermediate_size\":512,"
        "\"vocab_size\":1000,\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"}}";
    assert_int_equal(mc_parse(&c, v5_default, "v5d.json", err, sizeof err), 0);
    assert_true(fabs(c.rope_theta - 1e6) < 1e-6);
    assert_int_equal(c.rope_kind, MC_ROPE_NONE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama),
        cmocka_unit_test(test_rope_parameters),
        cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_qwen3),
        cmocka_unit_test(test_mixtral),
        cmocka_unit_test(test_qwen3_moe_file),
        cmocka_unit_test(test_moe_layers),
        cmocka_unit_test(test_opt_file),
        cmocka_unit_test(test_awq_files),
        cmocka_unit_test(test_awq_fields),
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
