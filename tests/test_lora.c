/* Tests of LoRA adapters on the CPU: PEFT's scaling (alpha / r, rank-
 * stabilised alpha / sqrt(r)); adapter_config.json parsing and its clear
 * errors; adapters opened against the base model (bf16, fp16, fp32 on disk;
 * a rank above --max-lora-rank, a module the model lacks, a shape that is
 * not the base's, config and tensors that disagree); the adapter set; the
 * GPU slot allocator (LRU, pins, a full table) under random operations; the
 * batch's tokens grouped by slot; and the safetensors writer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "tests/lora_fixture.h"
#include "engine/lora_set.h"
#include "engine/lora_slots.h"
#include "engine/safetensors.h"
#include <math.h>
#include <unistd.h>

static char tmp[64];

static int setup(void **st) {
    (void)st;
    snprintf(tmp, sizeof tmp, "/tmp/pagesim-lora-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}
static int teardown(void **st) { (void)st; lf_rmtree(tmp); return 0; }

static void test_scaling(void **st) {
    (void)st;
    assert_true(fabs(lora_scaling(16, 32, 0) - 2.0) < 1e-12);     /* alpha / r */
    assert_true(fabs(lora_scaling(8, 16, 0) - 2.0) < 1e-12);
    assert_true(fabs(lora_scaling(16, 32, 1) - 8.0) < 1e-12);     /* rsLoRA: alpha / sqrt(r) */
    assert_true(fabs(lora_scaling(64, 16, 1) - 2.0) < 1e-12);
    assert_true(fabs(lora_scaling(64, 16, 0) - 0.25) < 1e-12);
    lora_peft_config c;
    char err[512];
    const char *j = lf_cfg(64, 16, "[\"q_proj\"]", 1, NULL);
    assert_int_equal(lora_config_parse(j, strlen(j), "c", &c, err, sizeof err), 0);
    assert_true(c.use_rslora);
    assert_true(fabs(c.scale - 2.0) < 1e-12);
    j = lf_cfg(64, 16, "[\"q_proj\"]", 0, NULL);
    assert_int_equal(lora_config_parse(j, strlen(j), "c", &c, err, sizeof err), 0);
    assert_false(c.use_rslora);
    assert_true(fabs(c.scale - 0.25) < 1e-12);
}

static void parse_ok(const char *j, lora_peft_config *c) {
    char err[512];
    if (lora_config_parse(j, strlen(j), "cfg", c, err, sizeof err)) fail_msg("%s", err);
}
static void parse_bad(const char *j, const char *want) {
    lora_peft_config c;
    char err[512];
    assert_int_equal(lora_config_parse(j, strlen(j), "cfg.json", &c, err, sizeof err), -1);
    if (!strstr(err, want)) fail_msg("error '%s' does not mention '%s'", err, want);
    assert_non_null(strstr(err, "cfg.json"));
}

static void test_config(void **st) {
    (void)st;
    lora_peft_config c;
    parse_ok(lf_cfg(8, 16, "[\"q_proj\", \"v_proj\"]", 0, "\"layers_to_transform\": [1]"), &c);
    assert_int_equal(c.r, 8);
    assert_true(c.alpha == 16);
    assert_int_equal(c.targets, LF_QV);
    assert_int_equal(c.nlayers, 1);
    assert_int_equal(c.layers[0], 1);
    parse_ok(lf_cfg(16, 32, "\"all-linear\"", 0, NULL), &c);
    assert_int_equal(c.targets, LF_ALL);
    parse_ok(lf_cfg(16, 32, "[\"self_attn.o_proj\", \"down_proj\"]", 0, NULL), &c);   /* PEFT's suffix match */
    assert_int_equal(c.targets, (1u << LORA_O) | (1u << LORA_DOWN));
    parse_ok(lf_cfg(16, 32, "\".*\\\\.(q_proj|k_proj)\"", 0, NULL), &c);                /* a pattern */
    assert_int_equal(c.targets, 0u);
    assert_string_equal(c.regex, ".*\\.(q_proj|k_proj)");
    parse_ok("{\"r\": 4, \"target_modules\": [\"up_proj\"]}", &c);                  /* PEFT's default alpha: 8 */
    assert_true(fabs(c.scale - 2.0) < 1e-12);
    /* what the engine cannot apply, each named */
    parse_bad("{\"target_modules\": [\"q_proj\"]}", "'r'");
    parse_bad(lf_cfg(0, 16, "[\"q_proj\"]", 0, NULL), "'r'");
    parse_bad(lf_cfg(8, 16, "[\"c_attn\"]", 0, NULL), "c_attn");
    parse_bad(lf_cfg(8, 16, "[\"q_proj\", \"lm_head\"]", 0, NULL), "lm_head");
    parse_bad(lf_cfg(8, 16, "[\"embed_tokens\"]", 0, NULL), "embed_tokens");
    parse_bad(lf_cfg(8, 16, "[]", 0, NULL), "target_modules");
    parse_bad(lf_cfg(8, 16, "[\"q_proj\"]", 0, "\"modules_to_save\": [\"lm_head\"]"), "modules_to_save");
    parse_bad(lf_cfg(8, 16, "[\"q_proj\"]", 0, "\"use_dora\": true"), "DoRA");
    parse_bad(lf_cfg(8, 16, "[\"q_proj\"]", 0, "\"bias\": \"lora_only\""), "biases");
    parse_bad(lf_cfg(8, 16, "[\"q_proj\"]", 0, "\"rank_pattern\": {\"q_proj\": 4}"), "rank_pattern");
    parse_bad(lf_cfg(8, 16, "[\"q_proj\"]", 0, "\"alpha_pattern\": {\"q_proj\": 4}"), "alpha_pattern");
    parse_bad(lf_cfg(8, 16, "\"(q_proj\"", 0, NULL), "regular expression");
    parse_bad("{\"peft_type\": \"PREFIX_TUNING\", \"r\": 8, \"target_modules\": [\"q_proj\"]}", "PREFIX_TUNING");
    parse_bad("{\"r\": 8,", "malformed");
    parse_bad("[1, 2]", "not a JSON object");
}

static void open_bad(const char *dir, int max_rank, const char *want) {
    mc_config c;
    lf_config_of(&c);
    lora_adapter a;
    char err[1024];
    assert_int_equal(lora_adapter_open(&a, "x", dir, &c, max_rank, err, sizeof err), -1);
    if (!strstr(err, want)) fail_msg("error '%s' does not mention '%s'", err, want);
}

static void test_adapter_open(void **st) {
    (void)st;
    mc_config c;
    lf_config_of(&c);
    char dir[256], err[1024];
    lf_adapter fa;
    lora_adapter a;
    static const st_dtype dts[] = {ST_BF16, ST_F16, ST_F32};
    for (int d = 0; d < 3; d++) {                         /* every dtype PEFT saves */
        snprintf(dir, sizeof dir, "%s/ok%d", tmp, d);
        lf_write_adapter(dir, lf_cfg(8, 16, "[\"q_proj\", \"v_proj\"]", 0, NULL), LF_QV, 8, dts[d], 0, &fa);
        if (lora_adapter_open(&a, "ok", dir, &c, 16, err, sizeof err)) fail_msg("%s", err);
        assert_int_equal(a.cfg.r, 8);
        assert_non_null(a.A[0 * LORA_NMOD + LORA_Q]);
        assert_non_null(a.B[1 * LORA_NMOD + LORA_V]);
        assert_null(a.A[0 * LORA_NMOD + LORA_K]);
        float A[8 * 64], B[64 * 8];
        assert_int_equal(lora_adapter_module(&a, &c, 1, LORA_V, A, B, err, sizeof err), 0);
        for (int i = 0; i < 8 * 64; i++) assert_true(A[i] == fa.A[1][LORA_V][i]);
        for (int i = 0; i < 32 * 8; i++) assert_true(B[i] == fa.B[1][LORA_V][i]);
        assert_int_equal(lora_adapter_module(&a, &c, 1, LORA_K, A, B, err, sizeof err), 1);   /* left alone */
        lora_adapter_close(&a);
        lf_adapter_free(&fa);
    }
    /* all-linear at rank 64 and a pattern */
    snprintf(dir, sizeof dir, "%s/all", tmp);
    lf_write_adapter(dir, lf_cfg(64, 16, "\"all-linear\"", 1, NULL), LF_ALL, 64, ST_BF16, 0, &fa);
    if (lora_adapter_open(&a, "all", dir, &c, 64, err, sizeof err)) fail_msg("%s", err);
    assert_true(fabs(a.cfg.scale - 2.0) < 1e-12);
    lora_adapter_close(&a);
    open_bad(dir, 16, "rank 64 is above --max-lora-rank 16");
    lf_adapter_free(&fa);
    snprintf(dir, sizeof dir, "%s/re", tmp);
    lf_write_adapter(dir, lf_cfg(8, 8, "\".*layers\\\\.[0-9]+\\\\.self_attn\\\\.(q|v)_proj\"", 0, NULL), LF_QV, 8, ST_BF16, 0, &fa);
    if (lora_adapter_open(&a, "re", dir, &c, 0, err, sizeof err)) fail_msg("%s", err);
    lora_adapter_close(&a);
    lf_adapter_free(&fa);
    /* the pattern names k_proj too, the file has none for it */
    lf_write_adapter(dir, lf_cfg(8, 8, "\".*\\\\.(q|k|v)_proj\"", 0, NULL), LF_QV, 8, ST_BF16, 0, &fa);
    open_bad(dir, 0, "targets k_proj");
    lf_adapter_free(&fa);
    /* a shape that is not the base's (trained on another model) */
    snprintf(dir, sizeof dir, "%s/shape", tmp);
    lf_write_adapter(dir, lf_cfg(8, 16, "[\"q_proj\", \"v_proj\"]", 0, NULL), LF_QV, 8, ST_BF16, 3, &fa);
    open_bad(dir, 0, "has shape [8, 67]");
    open_bad(dir, 0, "another base model");
    lf_adapter_free(&fa);
    /* the config targets k_proj, the file has none; tensors for a module the config does not name */
    snprintf(dir, sizeof dir, "%s/cover", tmp);
    lf_write_adapter(dir, lf_cfg(8, 16, "[\"q_proj\", \"k_proj\", \"v_proj\"]", 0, NULL), LF_QV, 8, ST_BF16, 0, &fa);
    open_bad(dir, 0, "targets k_proj");
    lf_adapter_free(&fa);
    lf_write_adapter(dir, lf_cfg(8, 16, "[\"q_proj\"]", 0, NULL), LF_QV, 8, ST_BF16, 0, &fa);
    open_bad(dir, 0, "does not target it");
    lf_adapter_free(&fa);
    /* the rank in the config is not the tensors' */
    lf_write_adapter(dir, lf_cfg(4, 16, "[\"q_proj\", \"v_proj\"]", 0, NULL), LF_QV, 8, ST_BF16, 0, &fa);
    open_bad(dir, 0, "at rank 4");
    lf_adapter_free(&fa);
    /* modules the model lacks: a layer past the last, lm_head, an MLP named otherwise */
    static const struct { const char *name; const char *want; } lacks[] = {
        {"base_model.model.model.layers.5.self_attn.q_proj.lora_A.weight", "layer 5, but"},
        {"base_model.model.lm_head.lora_A.weight", "not a LoRA weight of a linear layer this model has"},
        {"base_model.model.model.layers.0.mlp.fc1.lora_A.weight", "not a LoRA weight"},
        {"base_model.model.model.layers.0.mlp.q_proj.lora_A.weight", "not a LoRA weight"},
    };
    for (size_t i = 0; i < sizeof lacks / sizeof lacks[0]; i++) {
        snprintf(dir, sizeof dir, "%s/lacks%zu", tmp, i);
        mkdir(dir, 0755);
        char path[512];
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        lf_write_text(path, lf_cfg(8, 16, "[\"q_proj\"]", 0, NULL));
        float z[8 * 64] = {0};
        float *v[1] = {z};
        st_wtensor t = {lacks[i].name, ST_BF16, 2, {8, 64}};
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        lf_write_st(path, 1, &t, v);
        open_bad(dir, 0, lacks[i].want);
    }
    /* half an adapter; no adapter_config.json */
    snprintf(dir, sizeof dir, "%s/half", tmp);
    mkdir(dir, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    lf_write_text(path, lf_cfg(8, 16, "[\"q_proj\"]", 0, NULL));
    float z[8 * 64] = {0};
    float *v[1] = {z};
    st_wtensor t = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", ST_F32, 2, {8, 64}};
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    lf_write_st(path, 1, &t, v);
    open_bad(dir, 0, "lora_A but no lora_B");
    snprintf(dir, sizeof dir, "%s/none", tmp);
    open_bad(dir, 0, "adapter_config.json");
}

static void test_set(void **st) {
    (void)st;
    mc_config c;
    lf_config_of(&c);
    char dir[256], err[1024];
    lf_adapter fa;
    lora_set s;
    assert_int_equal(lora_set_init(&s, 0, 16, err, sizeof err), -1);
    assert_non_null(strstr(err, "--max-loras"));
    assert_int_equal(lora_set_init(&s, 2, 1000, err, sizeof err), -1);
    assert_non_null(strstr(err, "--max-lora-rank"));
    assert_int_equal(lora_set_init(&s, 2, 16, err, sizeof err), 0);
    snprintf(dir, sizeof dir, "%s/set", tmp);
    lf_write_adapter(dir, lf_cfg(8, 16, "[\"q_proj\", \"v_proj\"]", 0, NULL), LF_QV, 8, ST_BF16, 0, &fa);
    assert_int_equal(lora_set_add(&s, "sql", dir, &c, err, sizeof err), 1);
    assert_int_equal(lora_set_add(&s, "sql", dir, &c, err, sizeof err), -1);            /* a name twice */
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(lora_set_add_dummy(&s, "rand", &c, 7, err, sizeof err), 2);
    assert_int_equal(lora_set_find(&s, "rand"), 2);
    assert_int_equal(lora_set_find(&s, "sql"), 1);
    assert_int_equal(lora_set_find(&s, "base"), 0);
    assert_int_equal(s.a[1].cfg.r, 16);
    lora_set_free(&s);
    lf_adapter_free(&fa);
}

static void test_slots(void **st) {
    (void)st;
    lora_slots s;
    char err[256];
    int load;
    assert_int_equal(lora_slots_init(&s, 0), -1);
    assert_int_equal(lora_slots_init(&s, 2), 0);
    assert_int_equal(lora_slots_acquire(&s, 0, &load), -1);            /* the base model takes no slot */
    int a = lora_slots_acquire(&s, 7, &load);
    assert_true(a >= 0 && load == 1);
    assert_int_equal(lora_slots_acquire(&s, 7, &load), a);             /* resident: no copy */
    assert_int_equal(load, 0);
    int b = lora_slots_acquire(&s, 9, &load);
    assert_true(b >= 0 && b != a && load == 1);
    assert_int_equal(lora_slots_acquire(&s, 11, &load), -1);           /* both pinned */
    lora_slots_release(&s, a);
    assert_int_equal(lora_slots_acquire(&s, 11, &load), -1);           /* 7 still pinned once more */
    lora_slots_release(&s, a);
    int c = lora_slots_acquire(&s, 11, &load);                          /* evicts 7 */
    assert_int_equal(c, a);
    assert_int_equal(load, 1);
    assert_int_equal(lora_slots_find(&s, 7), -1);
    lora_slots_release(&s, b);
    lora_slots_release(&s, c);
    lora_slots_acquire(&s, 11, &load);                                  /* 11 used last: 9 is the LRU */
    lora_slots_release(&s, c);
    assert_int_equal(lora_slots_acquire(&s, 7, &load), b);
    lora_slots_release(&s, b);
    assert_int_equal(lora_slots_check(&s, err, sizeof err), 0);
    lora_slots_free(&s);
    /* random pins and releases against a model of the table */
    assert_int_equal(lora_slots_init(&s, 4), 0);
    int held[64], nh = 0;
    uint64_t r = 5;
    for (int op = 0; op < 20000; op++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        int id = 1 + (int)((r >> 33) % 9);
        if (nh > 0 && ((r >> 20) & 1)) {
            int i = (int)((r >> 40) % (uint64_t)nh);
            lora_slots_release(&s, held[i]);
            held[i] = held[--nh];
        } else if (nh < 64) {
            int pinned_others = 0;
            for (int k = 0; k < s.n; k++) pinned_others += s.pins[k] > 0 && s.adapter[k] != id;
            int k = lora_slots_acquire(&s, id, &load);
            if (k < 0) assert_int_equal(pinned_others, s.n);           /* refused only when full */
            else { assert_int_equal(s.adapter[k], id); held[nh++] = k; }
        }
        if (lora_slots_check(&s, err, sizeof err)) fail_msg("op %d: %s", op, err);
    }
    lora_slots_free(&s);
}

static void test_group_tokens(void **st) {
    (void)st;
    enum { B = 40, NS = 3 };
    int32_t slot_of[B], qs[B + 1], perm[2000], tiles[3 * (2000 / LORA_TILE + NS + 1)];
    uint64_t r = 11;
    for (int round = 0; round < 200; round++) {
        qs[0] = 0;
        for (int i = 0; i < B; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            slot_of[i] = (int)((r >> 33) % (NS + 1)) - 1;            /* -1: no adapter */
            qs[i + 1] = qs[i] + 1 + ((r >> 45) % 3 == 0 ? (int)((r >> 50) % 40) : 0);
        }
        int T = qs[B], nt, nall;
        int rows = lora_group_tokens(slot_of, qs, B, NS, perm, tiles, &nt, &nall);
        assert_true(nall <= T / LORA_TILE + NS + 1);
        char seen[2000] = {0};
        int want_rows = 0;
        for (int i = 0; i < B; i++) if (slot_of[i] >= 0) want_rows += qs[i + 1] - qs[i];
        assert_int_equal(rows, want_rows);
        int covered = 0;
        for (int t = 0; t < nall; t++) {
            int k = tiles[3 * t], r0 = tiles[3 * t + 1], n = tiles[3 * t + 2];
            assert_true(n >= 1 && n <= LORA_TILE);
            assert_int_equal(r0, covered);                          /* tiles run over the rows in order */
            assert_true(t < nt ? (k >= 0 && r0 + n <= rows) : (k == -1 && r0 >= rows));
            for (int row = r0; row < r0 + n; row++) {
                int tok = perm[row], seq = 0;
                while (qs[seq + 1] <= tok) seq++;
                assert_int_equal(slot_of[seq], k);                  /* the token's own slot */
                assert_false(seen[tok]);
                seen[tok] = 1;
                if (row > r0) assert_true(perm[row - 1] < tok);      /* token order within a slot */
            }
            covered += n;
        }
        assert_int_equal(covered, T);                                /* every token once */
    }
    /* no adapters at all (NULL): every token in base tiles */
    int nt, nall;
    qs[0] = 0; qs[1] = 20;
    assert_int_equal(lora_group_tokens(NULL, qs, 1, NS, perm, tiles, &nt, &nall), 0);
    assert_int_equal(nt, 0);
    assert_int_equal(nall, 2);
}

static void test_st_write(void **st) {
    (void)st;
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/w.safetensors", tmp);
    float a[6] = {1.0f, -2.5f, 65504.0f, 1e-7f, 3.14159f, -0.0f}, b[3] = {0.1f, 1e30f, -7.0f}, c[2] = {1.5f, 2.25f};
    float *vals[3] = {a, b, c};
    st_wtensor t[3] = {{"half", ST_F16, 2, {2, 3}}, {"bf", ST_BF16, 1, {3}}, {"f", ST_F32, 1, {2}}};
    lf_write_st(path, 3, t, vals);
    st_file f;
    if (st_open(&f, path, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(f.n, 3);
    float o[6];
    assert_int_equal(st_to_f32(st_find(&f, "half"), o, err, sizeof err), 0);
    assert_true(o[0] == 1.0f && o[1] == -2.5f && o[2] == 65504.0f && o[5] == 0.0f && signbit(o[5]));
    assert_true(fabsf(o[3] - 1e-7f) < 6e-8f && o[3] > 0);            /* an fp16 subnormal */
    assert_true(fabsf(o[4] - 3.14159f) < 2e-3f);
    assert_int_equal(st_to_f32(st_find(&f, "bf"), o, err, sizeof err), 0);
    assert_true(o[0] == kref_round_bf(0.1f) && o[1] == kref_round_bf(1e30f) && o[2] == -7.0f);
    assert_int_equal(st_to_f32(st_find(&f, "f"), o, err, sizeof err), 0);
    assert_true(o[0] == 1.5f && o[1] == 2.25f);
    st_close(&f);
    /* fp16: ties to even, overflow to inf */
    uint16_t h[4];
    float x[4] = {2049.0f, 2051.0f, 70000.0f, 65519.0f};
    assert_int_equal(st_from_f32(ST_F16, x, 4, h), 0);
    assert_int_equal(h[0], 0x6800);                                  /* 2049 -> 2048 (even) */
    assert_int_equal(h[1], 0x6802);                                  /* 2051 -> 2052 (even) */
    assert_int_equal(h[2], 0x7c00);
    assert_int_equal(h[3], 0x7bff);                                  /* 65519 -> 65504 */
    assert_int_equal(st_from_f32(ST_I32, x, 1, h), -1);
    /* a tensor given the wrong number of bytes; a name twice */
    st_writer w;
    assert_int_equal(st_writer_open(&w, path, t, 3, err, sizeof err), 0);
    assert_int_equal(st_writer_put(&w, a, 5, err, sizeof err), -1);
    st_writer_abort(&w);
    assert_int_equal(access(path, F_OK), -1);                        /* an abandoned file is removed */
    st_wtensor twice[2] = {{"x", ST_F32, 1, {1}}, {"x", ST_F32, 1, {1}}};
    assert_int_equal(st_writer_open(&w, path, twice, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "twice"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scaling),     cmocka_unit_test(test_config),
        cmocka_unit_test(test_adapter_open), cmocka_unit_test(test_set),
        cmocka_unit_test(test_slots),       cmocka_unit_test(test_group_tokens),
        cmocka_unit_test(test_st_write),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
