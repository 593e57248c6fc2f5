/* Tests of the mixture-of-experts side of the weight loader (engine/weights.c),
 * without a GPU: a tiny Qwen3-MoE checkpoint with per-expert tensors, the same
 * packed as transformers 5 keeps them, a dense layer (mlp_only_layers), and the
 * errors that name a missing or misshapen expert tensor; the 30B config's
 * arena against the planner's weight bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "engine/weights.h"
#include "sim/model_config.h"
#include "sim/planner.h"
#include "engine/model.h"

#define TMP "build/tmp/wmoe"
enum { D = 64, HD = 64, V = 16, E = 4, IM = 16, ID = 32, L = 2 };

typedef struct { char name[96]; int nd, d[3]; } tspec;
static tspec ts[256];
static int nts;

static void put(int nd, int d0, int d1, int d2, const char *fmt, int a, int b) {
    tspec *t = &ts[nts++];
    snprintf(t->name, sizeof t->name, fmt, a, b);
    t->nd = nd; t->d[0] = d0; t->d[1] = d1; t->d[2] = d2;
}

/* the tensors of a 2-layer model; layer 0 dense when dense0; experts packed
 * when packed; `bad` >= 0: that expert's up_proj gets a wrong shape */
static void build_specs(int dense0, int packed, int bad) {
    nts = 0;
    put(2, V, D, 0, "model.embed_tokens.weight", 0, 0);
    for (int l = 0; l < L; l++) {
        put(1, D, 0, 0, "model.layers.%d.input_layernorm.weight", l, 0);
        put(2, HD, D, 0, "model.layers.%d.self_attn.q_proj.weight", l, 0);
        put(2, HD, D, 0, "model.layers.%d.self_attn.k_proj.weight", l, 0);
        put(2, HD, D, 0, "model.layers.%d.self_attn.v_proj.weight", l, 0);
        put(1, HD, 0, 0, "model.layers.%d.self_attn.q_norm.weight", l, 0);
        put(1, HD, 0, 0, "model.layers.%d.self_attn.k_norm.weight", l, 0);
        put(2, D, HD, 0, "model.layers.%d.self_attn.o_proj.weight", l, 0);
        put(1, D, 0, 0, "model.layers.%d.post_attention_layernorm.weight", l, 0);
        if (l == 0 && dense0) {
            put(2, ID, D, 0, "model.layers.%d.mlp.gate_proj.weight", l, 0);
            put(2, ID, D, 0, "model.layers.%d.mlp.up_proj.weight", l, 0);
            put(2, D, ID, 0, "model.layers.%d.mlp.down_proj.weight", l, 0);
            continue;
        }
        put(2, E, D, 0, "model.layers.%d.mlp.gate.weight", l, 0);
        if (packed) {
            put(3, E, 2 * IM, D, "model.layers.%d.mlp.experts.gate_up_proj", l, 0);
            put(3, E, D, IM, "model.layers.%d.mlp.experts.down_proj", l, 0);
            continue;
        }
        for (int e = 0; e < E; e++) {
            put(2, IM, D, 0, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, e);
            put(2, IM + (e == bad), D, 0, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, e);
            put(2, D, IM, 0, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, e);
        }
    }
    put(1, D, 0, 0, "model.norm.weight", 0, 0);
    put(2, V, D, 0, "lm_head.weight", 0, 0);
}

/* writes ts[] (except index skip) as one bf16 safetensors file of zeros */
static void write_ckpt(const char *path, int skip) {
    static char hdr[1 << 16];
    size_t n = 0, off = 0;
    n += (size_t)snprintf(hdr + n, sizeof hdr - n, "{");
    for (int i = 0; i < nts; i++) {
        if (i == skip) continue;
        size_t numel = 1;
        char shape[64];
        int m = snprintf(shape, sizeof shape, "[");
        for (int k = 0; k < ts[i].nd; k++) {
            numel *= (size_t)ts[i].d[k];
            m += snprintf(shape + m, sizeof shape - (size_t)m, "%s%d", k ? "," : "", ts[i].d[k]);
        }
        snprintf(shape + m, sizeof shape - (size_t)m, "]");
        n += (size_t)snprintf(hdr + n, sizeof hdr - n, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":%s,"
                              "\"data_offsets\":[%zu,%zu]}", n > 1 ? "," : "", ts[i].name, shape, off, off + 2 * numel);
        off += 2 * numel;
    }
    n += (size_t)snprintf(hdr + n, sizeof hdr - n, "}");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    fwrite(b, 1, 8, f);
    fwrite(hdr, 1, n, f);
    void *z = calloc(1, off + 1);
    fwrite(z, 1, off, f);
    free(z);
    fclose(f);
}

static void cfg(mc_config *c, const char *extra) {
    char j[1024], err[512];
    snprintf(j, sizeof j, "{\"model_type\":\"qwen3_moe\",\"hidden_size\":%d,\"num_hidden_layers\":%d,"
             "\"num_attention_heads\":1,\"num_key_value_heads\":1,\"head_dim\":%d,\"vocab_size\":%d,"
             "\"num_experts\":%d,\"num_experts_per_tok\":2,\"moe_intermediate_size\":%d,"
             "\"intermediate_size\":%d,\"tie_word_embeddings\":false%s}", D, L, HD, V, E, IM, ID, extra);
    if (mc_parse(c, j, "tiny-moe", err, sizeof err)) fail_msg("%s", err);
}

static int find(const char *name) {
    for (int i = 0; i < nts; i++) if (!strcmp(ts[i].name, name)) return i;
    fail_msg("no spec %s", name);
    return -1;
}

static int setup(void **st) {
    (void)st;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    return 0;
}

static void test_per_expert(void **st) {
    (void)st;
    mc_config c;
    char err[512];
    int hb;
    cfg(&c, "");
    assert_int_equal(w_check_config(&c, err, sizeof err), 0);
    build_specs(0, 0, -1);
    write_ckpt(TMP "/model.safetensors", -1);
    if (w_check_dir(TMP, &c, &hb, err, sizeof err)) fail_msg("%s", err);
    /* the arena holds every tensor: the packed experts are E x (3 Im D) per layer */
    size_t want = 0;
    for (int i = 0; i < nts; i++) {
        size_t numel = 1;
        for (int k = 0; k < ts[i].nd; k++) numel *= (size_t)ts[i].d[k];
        want += numel * 2;
    }
    size_t got = w_bytes(&c, 0);
    assert_true(got >= want && got < want + (size_t)nts * 256);
    /* a missing expert tensor and a misshapen one are named */
    write_ckpt(TMP "/model.safetensors", find("model.layers.1.mlp.experts.3.down_proj.weight"));
    assert_int_equal(w_check_dir(TMP, &c, &hb, err, sizeof err), -1);
    assert_non_null(strstr(err, "'model.layers.1.mlp.experts.3.down_proj.weight' is missing"));
    write_ckpt(TMP "/model.safetensors", find("model.layers.0.mlp.gate.weight"));
    assert_int_equal(w_check_dir(TMP, &c, &hb, err, sizeof err), -1);
    assert_non_null(strstr(err, "'model.layers.0.mlp.gate.weight' is missing"));
    build_specs(0, 0, 2);
    write_ckpt(TMP "/model.safetensors", -1);
    assert_int_equal(w_check_dir(TMP, &c, &hb, err, sizeof err), -1);
    assert_non_null(strstr(err, "'model.layers.0.mlp.experts.2.up_proj.weight' has shape [17, 64], the config needs [16, 64]"));
    /* a dense checkpoint for an MoE config: the router is missing */
    build_specs(1, 0, -1);
    write_ckpt(TMP "/model.safetensors", -1);
    assert_int_equal(w_check_dir(TMP, &c, &hb, err, sizeof err), -1);
    assert_non_null(strstr(err, "model.layers.0.mlp.gate.weight"));
}

static void test_packed_and_dense_layer(void **st) {
    (void)st;
    mc_config c;
    char err[512];
    int hb;
    cfg(&c, "");
    build_specs(0, 1, -1);                    /* transformers 5's packed experts */
    write_ckpt(TMP "/model.safetensors", -1);
    if (w_check_dir(TMP, &c, &hb, err, sizeof err)) fail_msg("%s", err);
    ts[find("model.layers.1.mlp.experts.down_proj")].d[2] = IM + 1;
    write_ckpt(TMP "/model.safetensors", -1);
    assert_int_equal(w_check_dir(TMP, &c, &hb, err, sizeof err), -1);
    assert_non_null(strstr(err, "'model.layers.1.mlp.experts.down_proj' has shape [4, 64, 17], the config needs [4, 64, 16]"));
    cfg(&c, ",\"mlp_only_layers\":[0]");    /* layer 0 dense */
    build_specs(1, 0, -1);
    write_ckpt(TMP "/model.safetensors", -1);
    if (w_check_dir(TMP, &c, &hb, err, sizeof err)) fail_msg("%s", err);
    build_specs(1, 1, -1);
    write_ckpt(TMP "/model.safetensors", -1);
    if (w_check_dir(TMP, &c, &hb, err, sizeof err)) fail_msg("%s", err);
}

static void test_bad_moe_configs(void **st) {
    (void)st;
    mc_config c;
    char err[512];
    cfg(&c, "");
    c.experts_per_tok = 5;                    /* more than the 4 experts */
    assert_int_equal(w_check_config(&c, err, sizeof err), -1);
    assert_true(strstr(err, "num_experts_per_tok") || strstr(err, "per token"));
    cfg(&c, "");
    c.num_experts = K_MOE_MAX_EXPERTS + 1;
    assert_int_equal(w_check_config(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "experts"));
    cfg(&c, "");
    c.shared_expert_intermediate_size = 64;   /* Qwen2-MoE's shared expert */
    assert_int_equal(w_check_config(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "shared"));
}

/* the 30B-A3B config: the engine's arena is what the planner counts as weights */
static void test_30b_arena(void **st) {
    (void)st;
    mc_config c;
    char err[512];
    assert_int_equal(mc_load(&c, "data/models/qwen3-30b-a3b-instruct-2507.json", err, sizeof err), 0);
    assert_int_equal(w_check_config(&c, err, sizeof err), 0);
    double arena = (double)w_bytes(&c, 0), plan = (double)mc_weight_bytes(&c, MC_DTYPE_BF16);
    fprintf(stderr, "  Qwen3-30B-A3B: arena %.3f GiB, planner %.3f GiB\n", arena / 1073741824.0, plan / 1073741824.0);
    assert_true(arena >= plan && (arena - plan) / plan < 1e-3);
}

/* the engine's activation buffers for the 30B model at vLLM's profile size
 * (8192 tokens, 256 sequences) against the planner's estimate of vLLM's peak:
 * the engine measured 0.76 GiB on the H200 (docs/engine-notes.md), the
 * planner says 0.66 GiB; keep the two within 25% of each other */
static void test_30b_activations(void **st) {
    (void)st;
    mc_config c;
    char err[512];
    assert_int_equal(mc_load(&c, "data/models/qwen3-30b-a3b-instruct-2507.json", err, sizeof err), 0);
    model_opts o = {.max_num_batched_tokens = 8192, .max_num_seqs = 256, .max_model_len = 4096};
    double eng = (double)model_activation_bytes(&c, &o);
    double plan = plan_activation_bytes(&c, MC_DTYPE_BF16, 1, 8192, 256);
    fprintf(stderr, "  Qwen3-30B-A3B at 8192 tokens: engine buffers %.3f GiB, planner %.3f GiB\n", eng / 1073741824.0,
            plan / 1073741824.0);
    assert_true(eng > 0.75 * plan && eng < 1.25 * plan);
    o.moe_gemm = K_MOE_GEMM_CUBLAS;              /* + gathered rows and gate|up (T k (D + 2 Im) bf16) */
    double cub = (double)model_activation_bytes(&c, &o);
    assert_true(cub - eng >= 8192.0 * 8 * (2048 + 2 * 768) * 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_expert),
        cmocka_unit_test(test_packed_and_dense_layer),
        cmocka_unit_test(test_bad_moe_configs),
        cmocka_unit_test(test_30b_arena),
        cmocka_unit_test(test_30b_activations),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
