/* awq_ckpt: a small AutoAWQ checkpoint on disk for the AWQ tests (CPU and
 * GPU): config.json with quantization_config and model.safetensors whose
 * quantized linears are packed here, independently of the engine, as
 * AutoAWQ's WQLinear_GEMM.from_linear packs them: qweight (K, N/8) I32 and
 * qzeros (K/G, N/8) I32 with column 8 w + AWQ_ORDER[i] in nibble i of word w,
 * AWQ_ORDER = {0, 2, 4, 6, 1, 3, 5, 7}; scales (K/G, N) F16.  Every value is
 * a hash of the tensor's name and the element's place (awq_ck_q, _z, _s),
 * so a test checks what the engine read without keeping a copy; the 16-bit
 * tensors (embeddings, norms, biases, lm_head) are bf16.  Header-only. */
#ifndef TESTS_AWQ_CKPT_H
#define TESTS_AWQ_CKPT_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "engine/kernels_ref.h"

static const int awq_ck_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

static uint64_t awq_ck_hash(const char *name, uint64_t i) {
    uint64_t h = 1469598103934665603ull;
    for (; *name; name++) h = (h ^ (unsigned char)*name) * 1099511628211ull;
    return rng_mix64(h ^ rng_mix64(i));
}
/* the 4-bit weight, zero and fp16 scale of linear `mod` (e.g. "model.layers.0.mlp.up_proj") */
static int awq_ck_q(const char *mod, int N, int k, int n) { return (int)(awq_ck_hash(mod, (uint64_t)k * N + n) & 15); }
static int awq_ck_z(const char *mod, int N, int g, int n) {
    return 4 + (int)(awq_ck_hash(mod, 0x100000000ull + (uint64_t)g * N + n) % 8);     /* 4..11, as AWQ's are near 8 */
}
/* fp16 bits of a scale in [0.002, 0.004) (weights of std ~0.02): 2^-9 (1 + m / 1024) */
static uint16_t awq_ck_s(const char *mod, int N, int g, int n) {
    int m = (int)(awq_ck_hash(mod, 0x200000000ull + (uint64_t)g * N + n) % 1024);
    return (uint16_t)(((15 - 9) << 10) | m);
}
/* a 16-bit tensor's element */
static uint16_t awq_ck_bf16(const char *name, int64_t i, int64_t in) {
    float u = (float)(awq_ck_hash(name, (uint64_t)i) >> 40) / 8388608.0f - 1.0f;
    float v = strstr(name, "norm") ? 1.0f + 0.3f * u : strstr(name, "bias") ? 0.2f * u
            : strstr(name, "embed") ? u : 2.0f * u / sqrtf((float)in);
    return kref_f2bf(v);
}

typedef struct awq_ck {
    FILE  *data;               /* the tensors' bytes in order (a temporary file) */
    char   hdr[1 << 17];
    size_t hl, dl;
} awq_ck;

static void awq_ck_entry(awq_ck *k, const char *name, const char *dt, int64_t d0, int64_t d1, size_t bytes) {
    char sh[64];
    if (d1) snprintf(sh, sizeof sh, "[%lld,%lld]", (long long)d0, (long long)d1);
    else snprintf(sh, sizeof sh, "[%lld]", (long long)d0);
    k->hl += (size_t)snprintf(k->hdr + k->hl, sizeof k->hdr - k->hl, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,"
                              "\"data_offsets\":[%zu,%zu]}", k->hl > 1 ? "," : "", name, dt, sh, k->dl, k->dl + bytes);
    k->dl += bytes;
}

static void awq_ck_bf16_tensor(awq_ck *k, const char *name, int64_t d0, int64_t d1) {
    int64_t n = d0 * (d1 ? d1 : 1);
    for (int64_t i = 0; i < n; i++) {
        uint16_t v = awq_ck_bf16(name, i, d1 ? d1 : 1);
        fwrite(&v, 2, 1, k->data);
    }
    awq_ck_entry(k, name, "BF16", d0, d1, (size_t)n * 2);
}

/* AutoAWQ's packing of 8 consecutive columns into one int32 */
static int32_t awq_ck_pack8(const int v[8]) {
    uint32_t w = 0;
    for (int i = 0; i < 8; i++) w |= (uint32_t)(v[awq_ck_order[i] ] & 15) << (4 * i);
    return (int32_t)w;
}

/* linear `mod` of K inputs, N outputs, group G: qweight, qzeros, scales; bad
 * >= 0 makes one tensor wrong: 1 qweight shape, 2 qzeros dtype F16, 3 scales missing */
static void awq_ck_linear(awq_ck *k, const char *mod, int K, int N, int G, int bad) {
    char name[200];
    int v[8];
    for (int r = 0; r < K; r++)
        for (int w = 0; w < N / 8; w++) {
            for (int j = 0; j < 8; j++) v[j] = awq_ck_q(mod, N, r, 8 * w + j);
            int32_t p = awq_ck_pack8(v);
            fwrite(&p, 4, 1, k->data);
        }
    snprintf(name, sizeof name, "%.160s.qweight", mod);
    if (bad == 1) fseek(k->data, -(long)K * 4, SEEK_CUR);     /* one column short, bytes and shape alike */
    awq_ck_entry(k, name, "I32", K, bad == 1 ? N / 8 - 1 : N / 8, (size_t)K * (bad == 1 ? N / 8 - 1 : N / 8) * 4);
    for (int g = 0; g < K / G; g++)
        for (int w = 0; w < N / 8; w++) {
            for (int j = 0; j < 8; j++) v[j] = awq_ck_z(mod, N, g, 8 * w + j);
            int32_t p = awq_ck_pack8(v);
            fwrite(&p, 4, 1, k->data);
        }
    snprintf(name, sizeof name, "%.160s.qzeros", mod);
    awq_ck_entry(k, name, bad == 2 ? "F16" : "I32", K / G, bad == 2 ? N / 4 : N / 8, (size_t)(K / G) * N / 2);
    if (bad == 3) return;
    for (int g = 0; g < K / G; g++)
        for (int n = 0; n < N; n++) {
            uint16_t s = awq_ck_s(mod, N, g, n);
            fwrite(&s, 2, 1, k->data);
        }
    snprintf(name, sizeof name, "%.160s.scales", mod);
    awq_ck_entry(k, name, "F16", K / G, N, (size_t)(K / G) * N * 2);
}

/* A tiny qwen2 (biases) or llama AWQ model in dir: hidden D, heads nq / nkv of
 * 64, intermediate I, vocab V, L layers, group G; bad as awq_ck_linear for
 * layer 0's v_proj.  Returns 0, -1 when a file cannot be written. */
static int awq_ck_write(const char *dir, const char *type, int D, int nq, int nkv, int I, int V, int L, int G,
                        int bad) {
    char path[512], name[160];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\"model_type\":\"%s\",\"hidden_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":%d,"
            "\"num_key_value_heads\":%d,\"head_dim\":64,\"intermediate_size\":%d,\"vocab_size\":%d,"
            "\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-6,\"rope_theta\":1000000.0,"
            "\"tie_word_embeddings\":false,\"torch_dtype\":\"float16\",\"quantization_config\":{\"bits\":4,"
            "\"group_size\":%d,\"modules_to_not_convert\":null,\"quant_method\":\"awq\",\"version\":\"gemm\","
            "\"zero_point\":true}}\n", type, D, L, nq, nkv, I, V, G);
    if (fclose(f)) return -1;
    static awq_ck k;
    memset(&k, 0, sizeof k);
    k.data = tmpfile();
    if (!k.data) return -1;
    k.hl = (size_t)snprintf(k.hdr, sizeof k.hdr, "{");
    int bias = !strcmp(type, "qwen2");
    awq_ck_bf16_tensor(&k, "model.embed_tokens.weight", V, D);
    for (int l = 0; l < L; l++) {
        const char *proj[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                               "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        int Ks[7] = {D, D, D, nq * 64, D, D, I}, Ns[7] = {nq * 64, nkv * 64, nkv * 64, D, I, I, D};
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        awq_ck_bf16_tensor(&k, name, D, 0);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        awq_ck_bf16_tensor(&k, name, D, 0);
        for (int p = 0; p < 7; p++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", l, proj[p]);
            awq_ck_linear(&k, name, Ks[p], Ns[p], G, l == 0 && p == 2 ? bad : -1);
            if (bias && p < 3) {
                snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, proj[p]);
                awq_ck_bf16_tensor(&k, name, Ns[p], 0);
            }
        }
    }
    awq_ck_bf16_tensor(&k, "model.norm.weight", D, 0);
    awq_ck_bf16_tensor(&k, "lm_head.weight", V, D);
    k.hl += (size_t)snprintf(k.hdr + k.hl, sizeof k.hdr - k.hl, "}");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    if (!f) { fclose(k.data); return -1; }
    unsigned char b8[8];
    for (int i = 0; i < 8; i++) b8[i] = (unsigned char)((uint64_t)k.hl >> (8 * i));
    fwrite(b8, 1, 8, f);
    fwrite(k.hdr, 1, k.hl, f);
    rewind(k.data);
    char buf[1 << 16];
    size_t got, total = 0;
    while (total < k.dl && (got = fread(buf, 1, sizeof buf, k.data)) > 0) {
        size_t w = got < k.dl - total ? got : k.dl - total;
        fwrite(buf, 1, w, f);
        total += w;
    }
    fclose(k.data);
    return fclose(f) || total != k.dl ? -1 : 0;
}
#endif
