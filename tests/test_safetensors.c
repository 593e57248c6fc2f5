/* Tests of the safetensors reader (engine/safetensors.c) and of the checkpoint
 * checks of the weight loader (engine/weights.c, CPU part): valid files,
 * conversions to bf16, and files that lie (truncated, bad header length,
 * offsets outside the data, sizes that disagree with shapes, bad JSON), plus
 * missing tensors, wrong shapes, bad shard indexes and absurd configs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/safetensors.h"
#include "engine/weights.h"
#include "engine/kernels_ref.h"
#include "sim/model_config.h"

#define TMP "build/tmp/st"

/* writes [8-byte length][header][data] to path; header_len_override >= 0 lies */
static void write_raw(const char *path, const char *header, const void *data, size_t dlen,
                      long long header_len_override) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = header_len_override >= 0 ? (uint64_t)header_len_override : strlen(header);
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
    fwrite(b, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (dlen) fwrite(data, 1, dlen, f);
    fclose(f);
}

static int open_err(const char *header, size_t dlen, long long hl, char *err, size_t n) {
    static unsigned char zeros[4096];
    write_raw(TMP "/t.safetensors", header, zeros, dlen, hl);
    st_file f;
    int rc = st_open(&f, TMP "/t.safetensors", err, n);
    if (rc == 0) st_close(&f);
    return rc;
}

static int setup(void **st) {
    (void)st;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    return 0;
}

static void test_valid_and_convert(void **st) {
    (void)st;
    unsigned char data[6 * 2 + 4 * 4 + 2 * 2];
    uint16_t bf[6];
    float f32[4] = {1.0f, -2.5f, 3.14159f, 1e-3f};
    uint16_t f16[2] = {0x3c00, 0xc500};                  /* 1.0, -5.0 */
    for (int i = 0; i < 6; i++) bf[i] = kref_f2bf((float)i - 2.5f);
    memcpy(data, bf, 12); memcpy(data + 12, f32, 16); memcpy(data + 28, f16, 4);
    write_raw(TMP "/ok.safetensors",
              "{\"__metadata__\":{\"format\":\"pt\"},"
              "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[12,28]},"
              "\"c\":{\"dtype\":\"F16\",\"shape\":[1,2],\"data_offsets\":[28,32]}}", data, sizeof data, -1);
    st_file f;
    char err[256];
    assert_int_equal(st_open(&f, TMP "/ok.safetensors", err, sizeof err), 0);
    assert_int_equal(f.n, 3);
    const st_tensor *a = st_find(&f, "a"), *b = st_find(&f, "b"), *c = st_find(&f, "c");
    assert_non_null(a); assert_non_null(b); assert_non_null(c);
    assert_null(st_find(&f, "__metadata__"));
    assert_int_equal(a->ndim, 2); assert_int_equal(a->shape[1], 3); assert_int_equal(a->numel, 6);
    uint16_t out[6];
    assert_int_equal(st_to_bf16(a, out, err, sizeof err), 0);
    assert_memory_equal(out, bf, 12);
    assert_int_equal(st_to_bf16(b, out, err, sizeof err), 0);
    for (int i = 0; i < 4; i++) assert_true(fabsf(kref_bf2f(out[i]) - f32[i]) <= fabsf(f32[i]) / 128);
    assert_int_equal(st_to_bf16(c, out, err, sizeof err), 0);
    assert_true(kref_bf2f(out[0]) == 1.0f && kref_bf2f(out[1]) == -5.0f);
    st_close(&f);
}

static void expect_error(const char *header, size_t dlen, long long hl, const char *needle) {
    char err[512] = "";
    assert_int_equal(open_err(header, dlen, hl, err, sizeof err), -1);
    if (!strstr(err, needle)) fprintf(stderr, "error '%s' lacks '%s'\n", err, needle);
    assert_non_null(strstr(err, needle));
    assert_non_null(strstr(err, TMP "/t.safetensors"));      /* names the file */
}

static void test_lies(void **st) {
    (void)st;
    const char *ok = "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}";
    char err[256];
    assert_int_equal(open_err(ok, 12, -1, err, sizeof err), 0);
    expect_error(ok, 6, -1, "outside");                                 /* truncated data */
    expect_error(ok, 12, 100000, "does not fit");                       /* header length lies */
    expect_error(ok, 12, (long long)1 << 40, "does not fit");
    expect_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,14]}}", 14, -1, "bytes for");
    expect_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[12,0]}}", 12, -1, "outside");
    expect_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,-3],\"data_offsets\":[0,12]}}", 12, -1, "bad shape");
    expect_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2.5],\"data_offsets\":[0,12]}}", 12, -1, "bad shape");
    expect_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,12]}}",
                 12, -1, "too large");
    expect_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0]}}", 12, -1, "two integers");
    expect_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,1e300]}}", 12, -1, "two integers");
    expect_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", 12, -1, "unknown dtype");
    expect_error("{\"a\":{\"shape\":[2,3],\"data_offsets\":[0,12]}}", 12, -1, "needs dtype");
    expect_error("{\"a\":{\"dtype\":\"BF16\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,2]}}", 12, -1, "dimensions");
    expect_error("[1,2,3]", 0, -1, "not a JSON object");
    expect_error("{\"a\":", 0, -1, "not a JSON object");
    /* a file shorter than the length prefix, and an empty one */
    FILE *f = fopen(TMP "/t.safetensors", "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    st_file sf;
    assert_int_equal(st_open(&sf, TMP "/t.safetensors", err, sizeof err), -1);
    assert_non_null(strstr(err, "too short"));
    f = fopen(TMP "/t.safetensors", "wb");
    fclose(f);
    assert_int_equal(st_open(&sf, TMP "/t.safetensors", err, sizeof err), -1);
    assert_int_equal(st_open(&sf, TMP "/absent.safetensors", err, sizeof err), -1);
    assert_non_null(strstr(err, "absent.safetensors"));
    /* an integer dtype cannot become bf16 */
    unsigned char z[8] = {0};
    write_raw(TMP "/i.safetensors", "{\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", z, 8, -1);
    assert_int_equal(st_open(&sf, TMP "/i.safetensors", err, sizeof err), 0);
    uint16_t o[4];
    assert_int_equal(st_to_bf16(st_find(&sf, "i"), o, err, sizeof err), -1);
    assert_non_null(strstr(err, "I64"));
    st_close(&sf);
}

/* ---- a tiny llama checkpoint: D 64, 1 head of 64, I 32, V 16, 1 layer ---- */
static const char *tiny_cfg =
    "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":1,"
    "\"num_key_value_heads\":1,\"intermediate_size\":32,\"vocab_size\":16,\"max_position_embeddings\":128,"
    "\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":false}";
typedef struct { const char *name; const char *dtype; int d0, d1; } spec;
static const spec tiny[] = {
    {"model.embed_tokens.weight", "BF16", 16, 64},
    {"model.layers.0.input_layernorm.weight", "BF16", 64, 0},
    {"model.layers.0.self_attn.q_proj.weight", "BF16", 64, 64},
    {"model.layers.0.self_attn.k_proj.weight", "F16", 64, 64},
    {"model.layers.0.self_attn.v_proj.weight", "F32", 64, 64},
    {"model.layers.0.self_attn.o_proj.weight", "BF16", 64, 64},
    {"model.layers.0.post_attention_layernorm.weight", "BF16", 64, 0},
    {"model.layers.0.mlp.gate_proj.weight", "BF16", 32, 64},
    {"model.layers.0.mlp.up_proj.weight", "BF16", 32, 64},
    {"model.layers.0.mlp.down_proj.weight", "BF16", 64, 32},
    {"model.norm.weight", "BF16", 64, 0},
    {"lm_head.weight", "BF16", 16, 64},
};
#define NTINY (int)(sizeof tiny / sizeof tiny[0])

/* writes tensors [from, to) of tiny[] to path; `skip` is left out, `bad` gets a wrong shape */
static void write_tiny(const char *path, int from, int to, int skip, int bad, const char *bad_dtype) {
    char hdr[8192];
    size_t off = 0, n = 0;
    n += (size_t)snprintf(hdr + n, sizeof hdr - n, "{");
    for (int i = from; i < to; i++) {
        if (i == skip) continue;
        const char *dt = i == bad && bad_dtype ? bad_dtype : tiny[i].dtype;
        int es = !strcmp(dt, "F32") || !strcmp(dt, "I32") ? 4 : !strcmp(dt, "I64") ? 8 : 2;
        int d0 = tiny[i].d0 + (i == bad && !bad_dtype), d1 = tiny[i].d1;
        size_t bytes = (size_t)d0 * (d1 ? d1 : 1) * es;
        if (d1) n += (size_t)snprintf(hdr + n, sizeof hdr - n, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                                      n > 1 ? "," : "", tiny[i].name, dt, d0, d1, off, off + bytes);
        else n += (size_t)snprintf(hdr + n, sizeof hdr - n, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                                   n > 1 ? "," : "", tiny[i].name, dt, d0, off, off + bytes);
        off += bytes;
    }
    snprintf(hdr + n, sizeof hdr - n, "}");
    void *z = calloc(1, off + 1);
    write_raw(path, hdr, z, off, -1);
    free(z);
}

static void test_checkpoint_checks(void **st) {
    (void)st;
    mc_config c;
    char err[512];
    assert_int_equal(mc_parse(&c, tiny_cfg, "tiny", err, sizeof err), 0);
    int has_bias = -1;
    mkdir(TMP "/ck", 0755);
    remove(TMP "/ck/model.safetensors.index.json");
    write_tiny(TMP "/ck/model.safetensors", 0, NTINY, -1, -1, NULL);
    assert_int_equal(w_check_dir(TMP "/ck", &c, &has_bias, err, sizeof err), 0);
    assert_int_equal(has_bias, 0);
    assert_true(w_bytes(&c, 0) >= (size_t)2 * (16 * 64 * 2 + 64 * 64 * 4 + 32 * 64 * 3 + 64 * 3));
    write_tiny(TMP "/ck/model.safetensors", 0, NTINY, 8, -1, NULL);           /* up_proj missing */
    assert_int_equal(w_check_dir(TMP "/ck", &c, &has_bias, err, sizeof err), -1);
    assert_non_null(strstr(err, "model.layers.0.mlp.up_proj.weight"));
    assert_non_null(strstr(err, "missing"));
    write_tiny(TMP "/ck/model.safetensors", 0, NTINY, -1, 3, NULL);           /* k_proj shape */
    assert_int_equal(w_check_dir(TMP "/ck", &c, &has_bias, err, sizeof err), -1);
    assert_non_null(strstr(err, "k_proj.weight' has shape [65, 64]"));
    write_tiny(TMP "/ck/model.safetensors", 0, NTINY, -1, 5, "I32");          /* o_proj dtype */
    assert_int_equal(w_check_dir(TMP "/ck", &c, &has_bias, err, sizeof err), -1);
    assert_non_null(strstr(err, "I32"));
    /* tied embeddings need no lm_head */
    mc_config ct = c;
    ct.tie_embeddings = 1;
    write_tiny(TMP "/ck/model.safetensors", 0, NTINY - 1, -1, -1, NULL);
    assert_int_equal(w_check_dir(TMP "/ck", &ct, &has_bias, err, sizeof err), 0);
    assert_int_equal(w_check_dir(TMP "/ck", &c, &has_bias, err, sizeof err), -1);
    assert_non_null(strstr(err, "lm_head.weight"));
    /* two shards through an index */
    mkdir(TMP "/sh", 0755);
    write_tiny(TMP "/sh/model-00001-of-00002.safetensors", 0, 6, -1, -1, NULL);
    write_tiny(TMP "/sh/model-00002-of-00002.safetensors", 6, NTINY, -1, -1, NULL);
    FILE *f = fopen(TMP "/sh/model.safetensors.index.json", "w");
    fprintf(f, "{\"metadata\":{},\"weight_map\":{");
    for (int i = 0; i < NTINY; i++)
        fprintf(f, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", tiny[i].name, i < 6 ? 1 : 2);
    fprintf(f, "}}");
    fclose(f);
    assert_int_equal(w_check_dir(TMP "/sh", &c, &has_bias, err, sizeof err), 0);
    f = fopen(TMP "/sh/model.safetensors.index.json", "w");
    fprintf(f, "{\"weight_map\":{\"x\":\"../../etc/passwd\"}}");
    fclose(f);
    assert_int_equal(w_check_dir(TMP "/sh", &c, &has_bias, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a file name"));
    f = fopen(TMP "/sh/model.safetensors.index.json", "w");
    fprintf(f, "{\"weight_map\":{\"x\":\"model-00003-of-00002.safetensors\"}}");   /* absent shard */
    fclose(f);
    assert_int_equal(w_check_dir(TMP "/sh", &c, &has_bias, err, sizeof err), -1);
    assert_non_null(strstr(err, "model-00003-of-00002.safetensors"));
}

static void test_absurd_configs(void **st) {
    (void)st;
    mc_config c;
    char err[512];
    const char *bad[] = {
        /* head_dim 96: no attention kernel */
        "{\"model_type\":\"llama\",\"hidden_size\":96,\"num_hidden_layers\":1,\"num_attention_heads\":1,"
        "\"intermediate_size\":32,\"vocab_size\":16}",
        /* heads not a multiple of kv heads */
        "{\"model_type\":\"llama\",\"hidden_size\":192,\"num_hidden_layers\":1,\"num_attention_heads\":3,"
        "\"num_key_value_heads\":2,\"intermediate_size\":32,\"vocab_size\":16}",
        /* an unsupported family */
        "{\"model_type\":\"opt\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":1,"
        "\"ffn_dim\":32,\"vocab_size\":16}",
        /* absurd sizes */
        "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":100000,\"num_attention_heads\":1,"
        "\"intermediate_size\":32,\"vocab_size\":16}",
        "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":1,\"num_attention_heads\":1,"
        "\"intermediate_size\":32,\"vocab_size\":1000000000}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        int rc = mc_parse(&c, bad[i], "absurd", err, sizeof err);
        if (rc == 0) rc = w_check_config(&c, err, sizeof err);
        assert_int_equal(rc, -1);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(mc_parse(&c, tiny_cfg, "tiny", err, sizeof err), 0);
    assert_int_equal(w_check_config(&c, err, sizeof err), 0);
}

/* the shipped configs parse and the engine accepts them, at their known sizes */
static void test_shipped_configs(void **st) {
    (void)st;
    const char *names[] = {"qwen2.5-0.5b", "qwen2.5-7b", "qwen3-0.6b", "qwen3-8b", "llama-3.1-8b", "smollm2-135m"};
    const double params_b[] = {0.494, 7.62, 0.596, 8.19, 8.03, 0.135};      /* published counts */
    for (int i = 0; i < 6; i++) {
        char path[256], err[512];
        mc_config c;
        snprintf(path, sizeof path, "data/models/%s.json", names[i]);
        assert_int_equal(mc_load(&c, path, err, sizeof err), 0);
        assert_int_equal(w_check_config(&c, err, sizeof err), 0);
        double p = (double)w_bytes(&c, c.attn_bias) / 2e9;
        fprintf(stderr, "  %-14s %.3f B parameters in the arena (published %.3f B)\n", names[i], p, params_b[i]);
        assert_true(fabs(p - params_b[i]) / params_b[i] < 0.02);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_convert),
        cmocka_unit_test(test_lies),
        cmocka_unit_test(test_checkpoint_checks),
        cmocka_unit_test(test_absurd_configs),
        cmocka_unit_test(test_shipped_configs),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
