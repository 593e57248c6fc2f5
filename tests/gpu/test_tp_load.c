/* GPU tests of the weight loader's tensor-parallel shards (engine/weights.h:
 * w_load_shard) of checkpoints written to disk here (tests/gpu/tp_ckpt.h):
 * dense with q/k/v biases, Qwen3-MoE with its experts per expert and a dense
 * layer (mlp_only_layers), and the same MoE with its experts packed as
 * transformers 5 stores them.  Every piece of every rank's arena at N = 1, 2
 * and 4 (embedding and lm_head rows with the vocabulary's padding, norms,
 * q|k|v and their biases fused, o_proj columns, gate|up rows, down columns,
 * the router whole, each expert's gate|up and down at the rank's width) is
 * exactly the checkpoint's slices read on the host; the arena has the size
 * the rank's config plans; packed experts give the same pieces.  Each
 * case needs PAGESIM_GPU=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "tests/gpu/tp_ckpt.h"
#include "engine/tp_shard.h"
#include "engine/weights.h"
#include <cuda_runtime_api.h>

static const char *const DENSE_JSON =
    "{\"model_type\":\"qwen2\",\"hidden_size\":256,\"num_hidden_layers\":2,\"num_attention_heads\":8,"
    "\"num_key_value_heads\":2,\"head_dim\":64,\"intermediate_size\":512,\"vocab_size\":1000,"
    "\"max_position_embeddings\":4096,\"rms_norm_eps\":1e-6,\"rope_theta\":1000000,\"tie_word_embeddings\":false}";
static const char *const MOE_JSON =
    "{\"model_type\":\"qwen3_moe\",\"hidden_size\":256,\"num_hidden_layers\":2,\"num_attention_heads\":8,"
    "\"num_key_value_heads\":2,\"head_dim\":128,\"intermediate_size\":512,\"moe_intermediate_size\":128,"
    "\"num_experts\":8,\"num_experts_per_tok\":2,\"norm_topk_prob\":true,\"mlp_only_layers\":[1],"
    "\"vocab_size\":1000,\"max_position_embeddings\":4096,\"tie_word_embeddings\":false}";

/* the slices of names[0..n) of the file, one after another, at dst; elements written */
static size_t expect(const st_file *f, const tp_plan *p, uint16_t *dst, int n, const char *const *names) {
    size_t off = 0;
    char err[256];
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_find(f, names[i]);
        tp_slice s;
        if (!t) fail_msg("no tensor %s", names[i]);
        if (tp_shard_tensor(p, names[i], t->ndim, t->shape, &s, err, sizeof err) ||
            tp_slice_read(t, &s, dst + off, err, sizeof err))
            fail_msg("%s", err);
        off += (size_t)(s.outer * s.nr * s.nc);
    }
    return off;
}
static void same_piece(const k_bf16 *d, const uint16_t *want, size_t n, const char *what, int N, int r) {
    uint16_t *got = malloc(n * 2);
    assert_int_equal(cudaMemcpy(got, d, n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    if (memcmp(got, want, n * 2)) fail_msg("N=%d rank %d: %s differs from the checkpoint's slices", N, r, what);
    free(got);
}

/* every piece of rank r's arena against the slices of the checkpoint tensors (fused as weights.c fuses them) */
static void check_arena(const w_weights *w, const st_file *f, const mc_config *c, const tp_plan *p, int N, int r) {
    size_t big = (size_t)c->vocab_size * c->hidden_size + (size_t)c->num_experts * 3 * c->moe_intermediate_size *
                 c->hidden_size + (size_t)4 * c->intermediate_size * c->hidden_size + 65536;
    uint16_t *h = malloc(big * 2);
    char nm[4][160], what[64];
    const char *names[64];
    for (int i = 0; i < 4; i++) names[i] = nm[i];
#define ONE(piece, ...) do { snprintf(nm[0], sizeof nm[0], __VA_ARGS__);     same_piece(piece, h, expect(f, p, h, 1, names), nm[0], N, r); } while (0)
    ONE(w->embed, "model.embed_tokens.weight");
    ONE(w->lm_head, "lm_head.weight");
    ONE(w->final_norm, "model.norm.weight");
    for (int l = 0; l < c->num_layers; l++) {
        const w_layer *wl = &w->layers[l];
        ONE(wl->attn_norm, "model.layers.%d.input_layernorm.weight", l);
        ONE(wl->mlp_norm, "model.layers.%d.post_attention_layernorm.weight", l);
        ONE(wl->wo, "model.layers.%d.self_attn.o_proj.weight", l);
        for (int b = 0; b <= (wl->bqkv != NULL); b++) {
            const char *x = b ? "bias" : "weight";
            snprintf(nm[0], sizeof nm[0], "model.layers.%d.self_attn.q_proj.%s", l, x);
            snprintf(nm[1], sizeof nm[1], "model.layers.%d.self_attn.k_proj.%s", l, x);
            snprintf(nm[2], sizeof nm[2], "model.layers.%d.self_attn.v_proj.%s", l, x);
            snprintf(what, sizeof what, "layer %d q|k|v %s", l, x);
            same_piece(b ? wl->bqkv : wl->wqkv, h, expect(f, p, h, 3, names), what, N, r);
        }
        if (wl->q_norm) ONE(wl->q_norm, "model.layers.%d.self_attn.q_norm.weight", l);
        if (wl->k_norm) ONE(wl->k_norm, "model.layers.%d.self_attn.k_norm.weight", l);
        if (!wl->router) {
            snprintf(nm[0], sizeof nm[0], "model.layers.%d.mlp.gate_proj.weight", l);
            snprintf(nm[1], sizeof nm[1], "model.layers.%d.mlp.up_proj.weight", l);
            snprintf(what, sizeof what, "layer %d gate|up", l);
            same_piece(wl->w_gate_up, h, expect(f, p, h, 2, names), what, N, r);
            ONE(wl->w_down, "model.layers.%d.mlp.down_proj.weight", l);
            continue;
        }
        ONE(wl->router, "model.layers.%d.mlp.gate.weight", l);
        size_t n = 0;
        for (int e = 0; e < c->num_experts; e++) {            /* (E, 2 I/N, D): each expert's gate|up slices */
            snprintf(nm[0], sizeof nm[0], "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, e);
            snprintf(nm[1], sizeof nm[1], "model.layers.%d.mlp.experts.%d.up_proj.weight", l, e);
            n += expect(f, p, h + n, 2, names);
        }
        snprintf(what, sizeof what, "layer %d experts gate|up", l);
        same_piece(wl->w_gate_up, h, n, what, N, r);
        n = 0;
        for (int e = 0; e < c->num_experts; e++) {
            snprintf(nm[0], sizeof nm[0], "model.layers.%d.mlp.experts.%d.down_proj.weight", l, e);
            n += expect(f, p, h + n, 1, names);
        }
        snprintf(what, sizeof what, "layer %d experts down", l);
        same_piece(wl->w_down, h, n, what, N, r);
    }
#undef ONE
    free(h);
}

static void test_load_shard(void **st) {
    (void)st; TU_REQUIRE_GPU();
    char err[512], path[256];
    mc_config c;
    const char *const dirs[3] = {"build/tmp/tp_ckpt_dense", "build/tmp/tp_ckpt_moe", "build/tmp/tp_ckpt_moe_packed"};
    for (int k = 0; k < 3; k++)
        if (tck_write(dirs[k], k ? MOE_JSON : DENSE_JSON, k == 2, &c, err, sizeof err)) fail_msg("%s", err);
    for (int k = 0; k < 2; k++) {
        st_file f;
        snprintf(path, sizeof path, "%s/model.safetensors", dirs[k]);
        char cfgpath[256];
        snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dirs[k]);
        if (mc_load(&c, cfgpath, err, sizeof err) || st_open(&f, path, err, sizeof err)) fail_msg("%s", err);
        for (int N = 1; N <= 4; N *= 2)
            for (int r = 0; r < N; r++) {
                tp_plan p;
                mc_config rc;
                w_weights w, wp;
                assert_int_equal(tp_plan_init(&p, &c, N, r, err, sizeof err), 0);
                if (w_load_shard(&w, dirs[k], &c, &p, err, sizeof err)) fail_msg("%s", err);
                tp_rank_config(&p, &c, &rc);
                assert_int_equal(w.bytes, w_bytes(&rc, c.attn_bias));
                check_arena(&w, &f, &c, &p, N, r);
                if (k == 1) {            /* packed experts: every piece as the per-expert tensors' slices */
                    if (w_load_shard(&wp, dirs[2], &c, &p, err, sizeof err)) fail_msg("%s", err);
                    assert_int_equal(wp.bytes, w.bytes);
                    check_arena(&wp, &f, &c, &p, N, r);
                    w_free(&wp);
                }
                w_free(&w);
            }
        fprintf(stderr, "  w_load_shard %s: ranks of N = 1, 2, 4 hold exactly their slices%s\n", c.name,
                k ? "; packed experts give the same pieces" : "");
        st_close(&f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_shard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
