/* Tests of the 4-bit AWQ side of the engine without a GPU: AutoAWQ's packing
 * read back (engine/awq_layout.c), the tile layout (engine/awq_tile.h) and
 * its repacking, an emulation of the decode kernel's warp (the fragments of
 * engine/mma.cuh filled as awq_kernels.cuh fills them) and of the dequantize
 * kernel against the references, the config and checkpoint checks, the
 * staging of fused linears from a checkpoint packed here (tests/awq_ckpt.h),
 * and the arena's bytes against the planner's. */
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
#include "tests/test_util.h"
#include "tests/awq_ckpt.h"
#include "engine/awq.h"
#include "engine/awq_tile.h"
#include "engine/awq_weights.h"
#include "engine/kernels_ref.h"
#include "engine/safetensors.h"
#include "engine/weights.h"
#include "sim/model_config.h"
#include "sim/planner.h"

#define TMP "build/tmp/awq"

static int setup(void **st) {
    (void)st;
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(TMP, 0755);
    return 0;
}

/* A linear packed as AutoAWQ packs it (awq_ckpt.h), repacked into the tile
 * layout: host arrays. */
typedef struct lin {
    int K, N, G;
    int32_t *qweight, *qzeros;   /* (K, N/8), (K/G, N/8) */
    uint16_t *ck_scales;         /* (K/G, N) */
    uint32_t *qw, *zeros;        /* tile layout */
    uint16_t *scales;
} lin;

static void lin_make(lin *l, const char *mod, int K, int N, int G) {
    l->K = K; l->N = N; l->G = G;
    l->qweight = malloc((size_t)K * N / 2);
    l->qzeros = malloc((size_t)(K / G) * N / 2);
    l->ck_scales = malloc((size_t)(K / G) * N * 2);
    l->qw = malloc(awq_qw_bytes(K, N));
    l->zeros = malloc(awq_zeros_bytes(K, N, G));
    l->scales = malloc(awq_scales_bytes(K, N, G));
    int v[8];
    for (int k = 0; k < K; k++)
        for (int w = 0; w < N / 8; w++) {
            for (int j = 0; j < 8; j++) v[j] = awq_ck_q(mod, N, k, 8 * w + j);
            l->qweight[(size_t)k * (N / 8) + w] = awq_ck_pack8(v);
        }
    for (int g = 0; g < K / G; g++)
        for (int w = 0; w < N / 8; w++) {
            for (int j = 0; j < 8; j++) v[j] = awq_ck_z(mod, N, g, 8 * w + j);
            l->qzeros[(size_t)g * (N / 8) + w] = awq_ck_pack8(v);
        }
    for (int g = 0; g < K / G; g++)
        for (int n = 0; n < N; n++) l->ck_scales[(size_t)g * N + n] = awq_ck_s(mod, N, g, n);
    awq_repack(l->qw, l->scales, l->zeros, l->qweight, l->qzeros, l->ck_scales, K, N, G);
}

static void lin_free(lin *l) {
    free(l->qweight); free(l->qzeros); free(l->ck_scales); free(l->qw); free(l->zeros); free(l->scales);
}

/* AutoAWQ's order: nibble i holds column {0, 2, 4, 6, 1, 3, 5, 7}[i] */
static void test_ckpt_order(void **st) {
    (void)st;
    int32_t w = 0x76543210;                        /* nibble i = i */
    const int want[8] = {0, 4, 1, 5, 2, 6, 3, 7};  /* column j sits in nibble want[j] */
    for (int n = 0; n < 8; n++) assert_int_equal(awq_ckpt_q(&w, 8, 0, n), want[n]);
    int32_t z = (int32_t)0xfedcba98u;
    for (int n = 0; n < 8; n++) assert_int_equal(awq_ckpt_z(&z, 8, 128, 5, n), 8 + want[n]);
    /* a packed row of 32 columns reads back */
    int32_t row[4];
    int v[8];
    for (int b = 0; b < 4; b++) {
        for (int j = 0; j < 8; j++) v[j] = (3 * (8 * b + j) + 1) % 16;
        row[b] = awq_ck_pack8(v);
    }
    for (int n = 0; n < 32; n++) assert_int_equal(awq_ckpt_q(row, 32, 0, n), (3 * n + 1) % 16);
}

/* the tile layout: a worked example, and a bijection between (n, k) and (word, nibble) */
static void test_tile_index(void **st) {
    (void)st;
    int sh;
    /* n 9 = tile 0 row 9 (gq 1, the +8 half), k 70 = chunk 1 input 6: tq 0, step 1, e 2 -> a3, low half */
    assert_int_equal((int)awq_tile_word(128, 9, 70, &sh), ((0 * 2 + 1) * 32 + 4) * 4 + 1);
    assert_int_equal(sh, 4 * 3);
    /* n 2, k 0: lane 8, word 0, a0 low: nibble 0 */
    assert_int_equal((int)awq_tile_word(64, 2, 0, &sh), 8 * 4);
    assert_int_equal(sh, 0);
    /* n 2, k 1: a0 high: nibble 4 */
    awq_tile_word(64, 2, 1, &sh);
    assert_int_equal(sh, 16);
    enum { K = 192, N = 48 };
    static unsigned char seen[K * N / 2 * 2];
    memset(seen, 0, sizeof seen);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            size_t i = awq_tile_word(K, n, k, &sh);
            assert_true(i < (size_t)K * N / 8);
            size_t slot = i * 8 + (size_t)sh / 4;
            assert_int_equal(seen[slot], 0);
            seen[slot] = 1;
            int n2, k2;
            awq_tile_coords(K, i, sh / 4, &n2, &k2);
            assert_int_equal(n2, n);
            assert_int_equal(k2, k);
        }
    /* scales and zeros: every (group, column) once */
    for (int G = 64; G <= 128; G *= 2) {
        enum { K2 = 256 };
        static unsigned char sseen[K2 / 64 * N], zseen[K2 / 64 * N];
        memset(sseen, 0, sizeof sseen);
        memset(zseen, 0, sizeof zseen);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K2; k += G) {
                size_t si = awq_scale_index(K2, G, n, k), zi = awq_zero_word(K2, G, n, k, &sh);
                assert_true(si < (size_t)(K2 / G) * N && zi < (size_t)(K2 / G) * N / 8);
                assert_int_equal(sseen[si]++, 0);
                assert_int_equal(zseen[zi * 8 + (size_t)sh / 4]++, 0);
            }
    }
}

static void test_repack(void **st) {
    (void)st;
    for (int G = 64; G <= 128; G *= 2) {
        lin l;
        lin_make(&l, "model.layers.3.mlp.up_proj", 256, 80, G);
        for (int k = 0; k < l.K; k++)
            for (int n = 0; n < l.N; n++) {
                assert_int_equal(awq_tile_q(l.qw, l.K, k, n), awq_ck_q("model.layers.3.mlp.up_proj", l.N, k, n));
                assert_int_equal(awq_tile_z(l.zeros, l.K, G, k, n), awq_ck_z("model.layers.3.mlp.up_proj", l.N, k / G, n));
                assert_int_equal(awq_tile_s(l.scales, l.K, G, k, n), awq_ck_s("model.layers.3.mlp.up_proj", l.N, k / G, n));
            }
        /* fused: a part of 48 columns after one of 32 lands in the tiles from 2 on */
        lin a, b;
        lin_make(&a, "a", 128, 32, G);
        lin_make(&b, "b", 128, 48, G);
        uint32_t *qw = malloc(awq_qw_bytes(128, 80)), *z = malloc(awq_zeros_bytes(128, 80, G));
        uint16_t *s = malloc(awq_scales_bytes(128, 80, G));
        awq_repack(qw, s, z, a.qweight, a.qzeros, a.ck_scales, 128, 32, G);
        awq_repack(qw + awq_qw_bytes(128, 32) / 4, s + awq_scales_bytes(128, 32, G) / 2, z + awq_zeros_bytes(128, 32, G) / 4,
                   b.qweight, b.qzeros, b.ck_scales, 128, 48, G);
        for (int k = 0; k < 128; k++)
            for (int n = 0; n < 80; n++) {
                const char *m = n < 32 ? "a" : "b";
                int N = n < 32 ? 32 : 48, c = n < 32 ? n : n - 32;
                assert_int_equal(awq_tile_q(qw, 128, k, n), awq_ck_q(m, N, k, c));
                assert_int_equal(awq_tile_z(z, 128, G, k, n), awq_ck_z(m, N, k / G, c));
                assert_int_equal(awq_tile_s(s, 128, G, k, n), awq_ck_s(m, N, k / G, c));
            }
        free(qw); free(z); free(s);
        lin_free(&a); lin_free(&b); lin_free(&l);
    }
}

/* ---- the decode kernel's warp, emulated ------------------------------------
 * What awq_decode_mma computes for one tile and one token tile, chunk by
 * chunk: each lane's registers filled as the kernel fills them (its word of
 * the tile, awq_frag_biased minus awq_zero_biased; 16 consecutive inputs of
 * its token row), put where mma.sync m16n8k16 takes them (engine/mma.cuh):
 *   A: a_j -> row gq + 8 (j & 1), columns 2 tq + 8 (j >> 1) + {0, 1}
 *   B: b0 -> rows 2 tq + {0, 1}, b1 -> rows 2 tq + 8 + {0, 1}, column gq
 *   C: c_r -> row gq + 8 (r >> 1), column 2 tq + (r & 1)
 * then each chunk's sums scaled per row, and C read back where the kernel
 * writes it. */
static void emulate_decode(float *y, const float *x, const lin *l, int T) {
    int KC = l->K / 64, KG = l->K / l->G;
    for (int nt = 0; nt < l->N / 16; nt++)
        for (int tt = 0; tt < (T + 7) / 8; tt++) {
            float lane_c[32][4] = {{0}};
            for (int c = 0; c < KC; c++) {
                int gi = c * 64 / l->G;
                float P[16][8] = {{0}};
                for (int s = 0; s < 4; s++) {
                    float A[16][16], B[16][8];
                    for (int ln = 0; ln < 32; ln++) {
                        int gq = ln >> 2, tq = ln & 3, tok = tt * 8 + gq;
                        uint32_t w = l->qw[(((size_t)nt * KC + c) * 32 + ln) * 4 + s];
                        size_t zb = ((size_t)nt * KG + gi) * 2;
                        uint32_t zlo = awq_zero_biased((l->zeros[zb] >> (4 * gq)) & 15u);
                        uint32_t zhi = awq_zero_biased((l->zeros[zb + 1] >> (4 * gq)) & 15u);
                        for (int j = 0; j < 4; j++) {
                            uint32_t a = awq_frag_biased(w, j), zz = (j & 1) ? zhi : zlo;
                            int row = gq + 8 * (j & 1), col = 2 * tq + 8 * (j >> 1);
                            A[row][col] = kref_bf2f((uint16_t)a) - kref_bf2f((uint16_t)zz);
                            A[row][col + 1] = kref_bf2f((uint16_t)(a >> 16)) - kref_bf2f((uint16_t)(zz >> 16));
                        }
                        const float *xr = x + (size_t)tok * l->K + c * 64 + 16 * tq + 4 * s;
                        int live = tok < T;
                        B[2 * tq][gq] = live ? xr[0] : 0;
                        B[2 * tq + 1][gq] = live ? xr[1] : 0;
                        B[2 * tq + 8][gq] = live ? xr[2] : 0;
                        B[2 * tq + 9][gq] = live ? xr[3] : 0;
                    }
                    for (int m = 0; m < 16; m++)
                        for (int n = 0; n < 8; n++)
                            for (int k = 0; k < 16; k++) P[m][n] += A[m][k] * B[k][n];
                }
                for (int ln = 0; ln < 32; ln++) {
                    int gq = ln >> 2, tq = ln & 3;
                    size_t sb = ((size_t)nt * KG + gi) * 16;
                    float slo = awq_h2f(l->scales[sb + gq]), shi = awq_h2f(l->scales[sb + gq + 8]);
                    for (int r = 0; r < 4; r++)
                        lane_c[ln][r] += (r < 2 ? slo : shi) * P[gq + 8 * (r >> 1)][2 * tq + (r & 1)];
                }
            }
            for (int ln = 0; ln < 32; ln++)
                for (int r = 0; r < 4; r++) {
                    int n = nt * 16 + (ln >> 2) + 8 * (r >> 1), tok = tt * 8 + 2 * (ln & 3) + (r & 1);
                    if (tok < T) y[(size_t)tok * l->N + n] = kref_round_bf(lane_c[ln][r]);
                }
        }
}

/* awq_dequant_tiles, emulated: lane (gq, tq) of tile (nt, kc), row r, inputs 16 tq + kk */
static void emulate_dequant(float *w, const lin *l) {
    int KC = l->K / 64, KG = l->K / l->G;
    for (int nt = 0; nt < l->N / 16; nt++)
        for (int kc = 0; kc < KC; kc++)
            for (int ln = 0; ln < 32; ln++) {
                int gq = ln >> 2, tq = ln & 3, gi = kc * 64 / l->G;
                for (int h = 0; h < 2; h++) {
                    int r = gq + 8 * h;
                    size_t b = (size_t)nt * KG + gi;
                    float sc = awq_h2f(l->scales[b * 16 + r]);
                    int z = (int)((l->zeros[b * 2 + h] >> (4 * gq)) & 15u);
                    for (int kk = 0; kk < 16; kk++) {
                        uint32_t word = l->qw[(((size_t)nt * KC + kc) * 32 + ln) * 4 + (kk >> 2)];
                        int q = (int)((word >> (4 * awq_nibble(r, kk & 3))) & 15u);
                        w[(size_t)(nt * 16 + r) * l->K + kc * 64 + 16 * tq + kk] = kref_round_bf((float)(q - z) * sc);
                    }
                }
            }
}

static void test_kernel_emulation(void **st) {
    (void)st;
    const int Ts[] = {1, 5, 8, 19, 32};
    for (int G = 64; G <= 128; G *= 2) {
        lin l;
        lin_make(&l, "emu", 256, 48, G);
        float *x = malloc(sizeof(float) * 32 * 256), *ye = malloc(sizeof(float) * 32 * 48);
        float *yr = malloc(sizeof(float) * 32 * 48);
        for (int i = 0; i < 32 * 256; i++) x[i] = kref_round_bf((float)((awq_ck_hash("x", (uint64_t)i) >> 40) / 8388608.0 - 1.0));
        for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t++) {
            int T = Ts[t];
            emulate_decode(ye, x, &l, T);
            kref_awq_gemm(yr, x, l.qw, l.scales, l.zeros, T, l.K, l.N, G);
            double worst = 0, norm = 0;
            for (int i = 0; i < T * l.N; i++) {
                norm = fmax(norm, fabs(yr[i]));
                worst = fmax(worst, fabs(ye[i] - yr[i]));
            }
            if (worst > norm * 1e-2 || norm < 1e-3) fail_msg("G %d T %d: max diff %g of max %g", G, T, worst, norm);
        }
        /* the dequantize kernel: bit for bit the reference's */
        float *we = malloc(sizeof(float) * 256 * 48), *wr = malloc(sizeof(float) * 256 * 48);
        emulate_dequant(we, &l);
        kref_awq_dequant(wr, l.qw, l.scales, l.zeros, l.K, l.N, G);
        assert_memory_equal(we, wr, sizeof(float) * 256 * 48);
        /* and the weight is what AutoAWQ's dequantize gives: (q - z) s */
        for (int n = 0; n < 48; n++)
            for (int k = 0; k < 256; k += 37) {
                float want = kref_round_bf((float)(awq_ck_q("emu", 48, k, n) - awq_ck_z("emu", 48, k / G, n)) *
                                           awq_h2f(awq_ck_s("emu", 48, k / G, n)));
                assert_true(wr[(size_t)n * 256 + k] == want);
            }
        free(we); free(wr); free(x); free(ye); free(yr);
        lin_free(&l);
    }
}

static void test_fp16(void **st) {
    (void)st;
    assert_true(awq_h2f(0x3c00) == 1.0f);
    assert_true(awq_h2f(0xc000) == -2.0f);
    assert_true(awq_h2f(0x0001) == ldexpf(1.0f, -24));
    assert_true(awq_h2f(0x7bff) == 65504.0f);
    assert_true(awq_h2f((uint16_t)((6 << 10) | 512)) == ldexpf(1.5f, -9));
}

static void cfg(mc_config *c, const char *quant, const char *type) {
    char j[1024], err[256];
    snprintf(j, sizeof j, "{\"model_type\":\"%s\",\"hidden_size\":128,\"num_hidden_layers\":2,"
             "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":64,\"intermediate_size\":256,"
             "\"vocab_size\":64,\"tie_word_embeddings\":false,\"quantization_config\":{%s}}", type, quant);
    if (mc_parse(c, j, "awq-tiny", err, sizeof err)) fail_msg("%s", err);
}

static void expect_bad(const char *quant, const char *want) {
    mc_config c;
    char err[512];
    cfg(&c, quant, "qwen2");
    assert_int_equal(w_check_config(&c, err, sizeof err), -1);
    if (!strstr(err, want)) fail_msg("'%s': got '%s'", quant, err);
}

static void test_config_checks(void **st) {
    (void)st;
    mc_config c;
    char err[512];
    cfg(&c, "\"quant_method\":\"awq\",\"bits\":4,\"group_size\":128,\"version\":\"gemm\",\"zero_point\":true", "qwen2");
    if (w_check_config(&c, err, sizeof err)) fail_msg("%s", err);
    cfg(&c, "\"quant_method\":\"awq\",\"bits\":4,\"group_size\":64,\"version\":\"GEMM\"", "llama");
    if (w_check_config(&c, err, sizeof err)) fail_msg("%s", err);
    expect_bad("\"quant_method\":\"awq\",\"bits\":4,\"group_size\":32,\"version\":\"gemm\"", "group size 32");
    expect_bad("\"quant_method\":\"awq\",\"bits\":4,\"group_size\":-1,\"version\":\"gemm\"", "group size -1");
    expect_bad("\"quant_method\":\"awq\",\"bits\":4,\"group_size\":128,\"version\":\"gemv\"", "version 'gemv'");
    expect_bad("\"quant_method\":\"awq\",\"bits\":4,\"group_size\":128", "version '(none)'");
    expect_bad("\"quant_method\":\"awq\",\"bits\":4,\"group_size\":128,\"version\":\"gemm\",\"zero_point\":false",
               "zero_point");
    expect_bad("\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":128", "quant_method 'gptq'");
    expect_bad("\"quant_method\":\"awq\",\"bits\":4,\"group_size\":128,\"version\":\"gemm\","
               "\"modules_to_not_convert\":[\"mlp.down_proj\"]", "modules_to_not_convert");
    /* 3-bit is refused by the config reader already */
    char j[512];
    snprintf(j, sizeof j, "{\"model_type\":\"qwen2\",\"hidden_size\":128,\"num_hidden_layers\":2,"
             "\"num_attention_heads\":2,\"intermediate_size\":256,\"vocab_size\":64,"
             "\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":3}}");
    assert_int_equal(mc_parse(&c, j, "awq3", err, sizeof err), -1);
    assert_non_null(strstr(err, "3-bit"));
    /* a width the kernels cannot tile: intermediate 200 (not a multiple of 64) */
    snprintf(j, sizeof j, "{\"model_type\":\"qwen2\",\"hidden_size\":128,\"num_hidden_layers\":2,"
             "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":64,\"intermediate_size\":200,"
             "\"vocab_size\":64,\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":64,"
             "\"version\":\"gemm\"}}");
    assert_int_equal(mc_parse(&c, j, "odd", err, sizeof err), 0);
    assert_int_equal(w_check_config(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "200"));
    /* the shapes alone */
    assert_int_equal(awq_check_shape(256, 48, 64, err, sizeof err), 0);
    assert_int_equal(awq_check_shape(256, 40, 64, err, sizeof err), -1);
    assert_int_equal(awq_check_shape(96, 48, 32, err, sizeof err), -1);
    assert_non_null(strstr(err, "group size 32"));
    assert_int_equal(awq_check_shape(192, 48, 128, err, sizeof err), -1);
}

static const st_tensor *st_lookup(void *f, const char *name) { return st_find(f, name); }

static void test_checkpoint(void **st) {
    (void)st;
    mc_config c;
    char err[512];
    int hb;
    for (int G = 64; G <= 128; G *= 2) {
        assert_int_equal(awq_ck_write(TMP "/ok", "qwen2", 128, 2, 1, 256, 64, 2, G, -1), 0);
        assert_int_equal(mc_load(&c, TMP "/ok/config.json", err, sizeof err), 0);
        if (w_check_dir(TMP "/ok", &c, &hb, err, sizeof err)) fail_msg("G %d: %s", G, err);
        assert_int_equal(hb, 1);
        /* every linear of layer 1 staged as the loader stages it, fused */
        st_file f;
        if (st_open(&f, TMP "/ok/model.safetensors", err, sizeof err)) fail_msg("%s", err);
        const char *mods[AWQ_NLIN][3] = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
                                         {"self_attn.o_proj"}, {"mlp.gate_proj", "mlp.up_proj"}, {"mlp.down_proj"}};
        for (int i = 0; i < AWQ_NLIN; i++) {
            int K, N;
            awq_linear_shape(&c, i, &K, &N);
            uint32_t *qw = malloc(awq_qw_bytes(K, N)), *z = malloc(awq_zeros_bytes(K, N, G));
            uint16_t *s = malloc(awq_scales_bytes(K, N, G));
            if (awq_stage_linear(st_lookup, &f, &c, 1, i, qw, s, z, err, sizeof err)) fail_msg("%s", err);
            const int parts[AWQ_NLIN][3] = {{128, 64, 64}, {128}, {256, 256}, {128}};
            for (int p = 0, n0 = 0; n0 < N; n0 += parts[i][p], p++) {
                char m[96];
                snprintf(m, sizeof m, "model.layers.1.%s", mods[i][p]);
                for (int n = n0; n < n0 + parts[i][p]; n++)
                    for (int k = 0; k < K; k += 7) {
                        assert_int_equal(awq_tile_q(qw, K, k, n), awq_ck_q(m, parts[i][p], k, n - n0));
                        assert_int_equal(awq_tile_z(z, K, G, k, n), awq_ck_z(m, parts[i][p], k / G, n - n0));
                        assert_int_equal(awq_tile_s(s, K, G, k, n), awq_ck_s(m, parts[i][p], k / G, n - n0));
                    }
            }
            free(qw); free(z); free(s);
        }
        st_close(&f);
    }
    /* broken checkpoints name the tensor */
    assert_int_equal(awq_ck_write(TMP "/bad1", "llama", 128, 2, 1, 256, 64, 2, 64, 1), 0);
    assert_int_equal(mc_load(&c, TMP "/bad1/config.json", err, sizeof err), 0);
    assert_int_equal(w_check_dir(TMP "/bad1", &c, &hb, err, sizeof err), -1);
    if (!strstr(err, "'model.layers.0.self_attn.v_proj.qweight' is I32 [128, 7], the config needs I32 [128, 8]"))
        fail_msg("%s", err);
    assert_int_equal(awq_ck_write(TMP "/bad2", "llama", 128, 2, 1, 256, 64, 2, 64, 2), 0);
    assert_int_equal(w_check_dir(TMP "/bad2", &c, &hb, err, sizeof err), -1);
    if (!strstr(err, "'model.layers.0.self_attn.v_proj.qzeros' is F16")) fail_msg("%s", err);
    assert_int_equal(awq_ck_write(TMP "/bad3", "llama", 128, 2, 1, 256, 64, 2, 64, 3), 0);
    assert_int_equal(w_check_dir(TMP "/bad3", &c, &hb, err, sizeof err), -1);
    if (!strstr(err, "'model.layers.0.self_attn.v_proj.scales' is missing")) fail_msg("%s", err);
}

/* the arena holds what the planner counts as weights, plus alignment */
static void test_bytes(void **st) {
    (void)st;
    const char *files[] = {"data/models/qwen2.5-7b-instruct-awq.json", "data/models/qwen2.5-14b-instruct-awq.json"};
    for (int f = 0; f < 2; f++) {
        mc_config c;
        char err[512];
        assert_int_equal(mc_load(&c, files[f], err, sizeof err), 0);
        if (w_check_config(&c, err, sizeof err)) fail_msg("%s", err);
        for (int G = 128; G >= 64; G /= 2) {
            c.quant_group_size = G;
            double plan = (double)plan_weight_bytes(&c, MC_DTYPE_AWQ4, 1), arena = (double)w_bytes(&c, 1);
            double slack = 256.0 * (c.num_layers * (AWQ_NLIN * 3 + 8) + 8);
            if (!(arena >= plan && arena <= plan + slack))
                fail_msg("%s G %d: arena %.0f, plan %.0f (slack %.0f)", c.name, G, arena, plan, slack);
            assert_true(fabs(plan - (double)mc_weight_bytes(&c, MC_DTYPE_AWQ4)) < 1);
        }
    }
}

/* tests/gpu/awq_pack.py (torch, AutoAWQ's packing written in Python) against
 * the C side: every linear staged from its AWQ checkpoint and dequantized
 * equals the bf16 checkpoint it wrote beside, bit for bit, and the 16-bit
 * tensors agree.  Skips where python3 has no torch. */
static const char *python_with_torch(void) {
    static const char *const cands[] = {"python3", "/usr/bin/python3"};
    char cmd[256];
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' > /dev/null 2>&1", cands[i]);
        if (system(cmd) == 0) return cands[i];
    }
    return NULL;
}

static void check_py(const char *py, const char *family, int G) {
    char cmd[512], dir[256], err[512];
    snprintf(dir, sizeof dir, TMP "/py-%s-%d", family, G);
    snprintf(cmd, sizeof cmd, "%s tests/gpu/awq_pack.py --out %s --family %s --group %d --layers 2 --hidden 256 "
             "--intermediate 640 --vocab 300 > /dev/null", py, dir, family, G);
    assert_int_equal(system(cmd), 0);
    mc_config ca, cb;
    int hb;
    assert_int_equal(mc_load(&ca, tu_join(dir, "awq/config.json"), err, sizeof err), 0);
    assert_int_equal(mc_load(&cb, tu_join(dir, "bf16/config.json"), err, sizeof err), 0);
    assert_int_equal(ca.dtype, MC_DTYPE_AWQ4);
    if (w_check_dir(tu_join(dir, "awq"), &ca, &hb, err, sizeof err)) fail_msg("awq: %s", err);
    if (w_check_dir(tu_join(dir, "bf16"), &cb, &hb, err, sizeof err)) fail_msg("bf16: %s", err);
    st_file fa, fb;
    if (st_open(&fa, tu_join(dir, "awq/model.safetensors"), err, sizeof err) ||
        st_open(&fb, tu_join(dir, "bf16/model.safetensors"), err, sizeof err)) fail_msg("%s", err);
    const char *mods[AWQ_NLIN][3] = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
                                     {"self_attn.o_proj"}, {"mlp.gate_proj", "mlp.up_proj"}, {"mlp.down_proj"}};
    long checked = 0;
    for (int l = 0; l < ca.num_layers; l++)
        for (int i = 0; i < AWQ_NLIN; i++) {
            int K, N;
            awq_linear_shape(&ca, i, &K, &N);
            uint32_t *qw = malloc(awq_qw_bytes(K, N)), *z = malloc(awq_zeros_bytes(K, N, G));
            uint16_t *sc = malloc(awq_scales_bytes(K, N, G));
            float *w = malloc(sizeof(float) * K * N);
            if (awq_stage_linear(st_lookup, &fa, &ca, l, i, qw, sc, z, err, sizeof err)) fail_msg("%s", err);
            kref_awq_dequant(w, qw, sc, z, K, N, G);
            int row = 0;
            for (int p = 0; p < 3 && row < N; p++) {
                char name[128];
                snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, mods[i][p]);
                const st_tensor *t = st_find(&fb, name);
                assert_non_null(t);
                uint16_t *b = malloc(t->nbytes);
                if (st_to_bf16(t, b, err, sizeof err)) fail_msg("%s", err);
                for (int64_t r = 0; r < t->shape[0]; r++)
                    for (int k = 0; k < K; k++)
                        if (kref_f2bf(w[(size_t)(row + r) * K + k]) != b[r * K + k])
                            fail_msg("%s [%lld][%d]: ours %g, awq_pack.py's %g", name, (long long)r, k,
                                     w[(size_t)(row + r) * K + k], kref_bf2f(b[r * K + k]));
                row += (int)t->shape[0];
                checked += t->shape[0] * K;
                free(b);
            }
            assert_int_equal(row, N);
            free(qw); free(z); free(sc); free(w);
        }
    /* the 16-bit tensors: fp16 in the AWQ checkpoint, the same values in bf16 */
    const char *plain[] = {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
                           "model.layers.1.input_layernorm.weight"};
    for (int i = 0; i < 4; i++) {
        const st_tensor *ta = st_find(&fa, plain[i]), *tb = st_find(&fb, plain[i]);
        assert_non_null(ta); assert_non_null(tb);
        assert_int_equal(ta->dtype, ST_F16);
        uint16_t *a = malloc(ta->numel * 2), *b = malloc(tb->numel * 2);
        assert_int_equal(st_to_bf16(ta, a, err, sizeof err), 0);
        assert_int_equal(st_to_bf16(tb, b, err, sizeof err), 0);
        assert_memory_equal(a, b, ta->numel * 2);
        free(a); free(b);
    }
    fprintf(stderr, "  awq_pack.py %s G %d: %ld dequantized weights = its bf16 checkpoint\n", family, G, checked);
    st_close(&fa); st_close(&fb);
}

static void test_python_packer(void **st) {
    (void)st;
    const char *py = python_with_torch();
    if (!py) { fprintf(stderr, "skip: no python3 with torch\n"); skip(); return; }
    check_py(py, "qwen2", 64);
    check_py(py, "llama", 128);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ckpt_order),
        cmocka_unit_test(test_tile_index),
        cmocka_unit_test(test_repack),
        cmocka_unit_test(test_kernel_emulation),
        cmocka_unit_test(test_fp16),
        cmocka_unit_test(test_config_checks),
        cmocka_unit_test(test_checkpoint),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_python_packer),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
