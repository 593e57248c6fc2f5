/* lora_fixture: tiny base checkpoints and PEFT-style adapters written to a
 * temporary directory for the LoRA tests (tests/test_lora*.c), with the
 * values kept so that tests can recompute what the engine should do.  The
 * base is a Qwen2-shaped model (q/k/v biases) of hidden 64, 4 heads of 16
 * (2 KV heads), MLP 96, 2 layers, vocabulary 32; the adapters name their
 * tensors as PEFT saves them.  Static functions in a header: each test
 * binary is one translation unit.  Include after <cmocka.h>. */
#ifndef TESTS_LORA_FIXTURE_H
#define TESTS_LORA_FIXTURE_H
#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "engine/lora.h"
#include "engine/st_write.h"
#include "engine/kernels_ref.h"
#include "sim/model_config.h"

#define LF_L 2
static __attribute__((unused)) const char *lf_config =
    "{\"model_type\":\"qwen2\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":2,\"intermediate_size\":96,\"vocab_size\":32,\"max_position_embeddings\":256,"
    "\"rms_norm_eps\":1e-6,\"tie_word_embeddings\":false,\"torch_dtype\":\"bfloat16\"}";

static uint64_t lf_rng = 99;
static __attribute__((unused)) float lf_rand(void) {            /* uniform in [-1, 1) */
    lf_rng = lf_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((lf_rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static __attribute__((unused)) int lf_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb; (void)flag; (void)f;
    return remove(p);
}
static __attribute__((unused)) void lf_rmtree(const char *dir) { nftw(dir, lf_rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static __attribute__((unused)) void lf_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static __attribute__((unused)) void lf_config_of(mc_config *c) {
    char err[256];
    assert_int_equal(mc_parse(c, lf_config, "lora fixture", err, sizeof err), 0);
}

/* writes n tensors of floats vals[i] (numel of shape) in dtype dt[i] */
static __attribute__((unused)) void lf_write_st(const char *path, int n, const st_wtensor *t, float *const *vals) {
    st_writer w;
    char err[256];
    if (st_writer_open(&w, path, t, n, err, sizeof err)) fail_msg("%s", err);
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int k = 0; k < t[i].ndim; k++) numel *= t[i].shape[k];
        size_t bytes = (size_t)numel * st_dtype_size(t[i].dtype);
        void *buf = malloc(bytes + 1);
        assert_int_equal(st_from_f32(t[i].dtype, vals[i], numel, buf), 0);
        if (st_writer_put(&w, buf, bytes, err, sizeof err)) fail_msg("%s", err);
        free(buf);
    }
    if (st_writer_close(&w, err, sizeof err)) fail_msg("%s", err);
}

/* ---- an adapter -------------------------------------------------------------- */
typedef struct lf_adapter {
    int   r;
    float *A[LF_L][LORA_NMOD], *B[LF_L][LORA_NMOD];   /* the values written (after dtype rounding), or NULL */
} lf_adapter;

static __attribute__((unused)) void lf_adapter_free(lf_adapter *a) {
    for (int l = 0; l < LF_L; l++)
        for (int m = 0; m < LORA_NMOD; m++) { free(a->A[l][m]); free(a->B[l][m]); a->A[l][m] = a->B[l][m] = NULL; }
}

/* An adapter directory: config text as given, tensors for the modules in mask
 * (bit m) of every layer at rank r in dtype dt; what each tensor holds is kept
 * in *a (rounded to dt).  bad_in > 0 gives q_proj's lora_A that many extra
 * input columns (a shape mismatch). */
static __attribute__((unused)) void lf_write_adapter(const char *dir, const char *config, unsigned mask, int r, st_dtype dt, int bad_in,
                             lf_adapter *a) {
    mc_config c;
    lf_config_of(&c);
    char path[1024];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    lf_write_text(path, config);
    memset(a, 0, sizeof *a);
    a->r = r;
    st_wtensor t[2 * LF_L * LORA_NMOD];
    float *vals[2 * LF_L * LORA_NMOD];
    static char names[2 * LF_L * LORA_NMOD][128];
    int n = 0;
    for (int l = 0; l < LF_L; l++)
        for (int m = 0; m < LORA_NMOD; m++) {
            if (!((mask >> m) & 1)) continue;
            int64_t out, in;
            lora_module_shape(&c, m, &out, &in);
            int64_t ain = in + (m == LORA_Q ? bad_in : 0);
            for (int ab = 0; ab < 2; ab++) {
                int64_t d0 = ab ? out : r, d1 = ab ? r : ain;
                snprintf(names[n], sizeof names[n], "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", l,
                         m >= LORA_GATE ? "mlp" : "self_attn", lora_module_name(m), ab ? 'B' : 'A');
                t[n] = (st_wtensor){names[n], dt, 2, {d0, d1}};
                float *v = malloc(sizeof(float) * (size_t)(d0 * d1));
                for (int64_t i = 0; i < d0 * d1; i++) v[i] = (ab ? 0.3f : 0.25f) * lf_rand();
                vals[n++] = v;
            }
        }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    lf_write_st(path, n, t, vals);
    /* what the file holds (rounded to dt), read back */
    st_file f;
    char err[256];
    if (st_open(&f, path, err, sizeof err)) fail_msg("%s", err);
    for (int i = 0; i < n; i++) {
        int l, m, ab = strstr(names[i], "lora_B") != NULL;
        char mod[32];
        assert_int_equal(sscanf(names[i], "base_model.model.model.layers.%d.%*[a-z_].%31[a-z_]", &l, mod), 2);
        for (m = 0; strcmp(lora_module_name(m), mod); m++) {}
        assert_int_equal(st_to_f32(st_find(&f, names[i]), vals[i], err, sizeof err), 0);
        if (ab) a->B[l][m] = vals[i]; else a->A[l][m] = vals[i];
    }
    st_close(&f);
}

/* adapter_config.json as PEFT writes it: r, lora_alpha, target_modules
 * (JSON text), use_rslora, then extra fields, or (extra NULL) PEFT's harmless
 * defaults of the fields the engine refuses otherwise */
static __attribute__((unused)) const char *lf_cfg(int r, double alpha, const char *targets, int rslora, const char *extra) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k],
             "{\"peft_type\":\"LORA\",\"task_type\":\"CAUSAL_LM\",\"r\":%d,\"lora_alpha\":%g,\"lora_dropout\":0.05,"
             "\"target_modules\":%s,\"use_rslora\":%s,\"base_model_name_or_path\":\"tiny\",%s}",
             r, alpha, targets, rslora ? "true" : "false",
             extra ? extra : "\"bias\":\"none\",\"modules_to_save\":null,\"rank_pattern\":{},\"alpha_pattern\":{},"
                             "\"fan_in_fan_out\":false,\"use_dora\":false,\"layers_to_transform\":null");
    return buf[k];
}

/* ---- a base checkpoint: two shards and an index, bf16 but k_proj (fp16) and
 * v_proj (fp32), plus config.json, a tokenizer.json, generation_config.json
 * and a pytorch_model.bin that a merge must not carry over ------------------- */
static __attribute__((unused)) void lf_write_base(const char *dir) {
    char path[1024];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir); lf_write_text(path, lf_config);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir); lf_write_text(path, "{\"model\": {}}");
    snprintf(path, sizeof path, "%s/generation_config.json", dir); lf_write_text(path, "{\"eos_token_id\": 3}");
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir); lf_write_text(path, "not safetensors");
    static char names[64][96];
    st_wtensor t[64];
    float *vals[64];
    int n = 0, split = 0;
#define LF_T(dt, d0, d1, ...) do { snprintf(names[n], sizeof names[n], __VA_ARGS__); \
        t[n] = (st_wtensor){names[n], dt, (d1) ? 2 : 1, {d0, d1}}; \
        vals[n] = malloc(sizeof(float) * (size_t)(d0) * ((d1) ? (d1) : 1)); \
        for (int64_t i_ = 0; i_ < (int64_t)(d0) * ((d1) ? (d1) : 1); i_++) vals[n][i_] = 0.05f * lf_rand(); \
        n++; } while (0)
    LF_T(ST_BF16, 32, 64, "model.embed_tokens.weight");
    for (int l = 0; l < LF_L; l++) {
        LF_T(ST_BF16, 64, 0, "model.layers.%d.input_layernorm.weight", l);
        LF_T(ST_BF16, 64, 64, "model.layers.%d.self_attn.q_proj.weight", l);
        LF_T(ST_BF16, 64, 0, "model.layers.%d.self_attn.q_proj.bias", l);
        LF_T(ST_F16, 32, 64, "model.layers.%d.self_attn.k_proj.weight", l);
        LF_T(ST_BF16, 32, 0, "model.layers.%d.self_attn.k_proj.bias", l);
        LF_T(ST_F32, 32, 64, "model.layers.%d.self_attn.v_proj.weight", l);
        LF_T(ST_BF16, 32, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        LF_T(ST_BF16, 64, 64, "model.layers.%d.self_attn.o_proj.weight", l);
        LF_T(ST_BF16, 64, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        LF_T(ST_BF16, 96, 64, "model.layers.%d.mlp.gate_proj.weight", l);
        LF_T(ST_BF16, 96, 64, "model.layers.%d.mlp.up_proj.weight", l);
        LF_T(ST_BF16, 64, 96, "model.layers.%d.mlp.down_proj.weight", l);
        if (l == 0) split = n;
    }
    LF_T(ST_BF16, 64, 0, "model.norm.weight");
    LF_T(ST_BF16, 32, 64, "lm_head.weight");
#undef LF_T
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    lf_write_st(path, split, t, vals);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    lf_write_st(path, n - split, t + split, vals + split);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"metadata\": {}, \"weight_map\": {");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "", names[i], i < split ? 1 : 2);
    fprintf(f, "}}\n");
    assert_int_equal(fclose(f), 0);
    for (int i = 0; i < n; i++) free(vals[i]);
}

#define LF_QV ((1u << LORA_Q) | (1u << LORA_V))
#define LF_ALL ((1u << LORA_NMOD) - 1)
#endif
