/* Tests of LoRA at the front ends, without a GPU: engine/run's and
 * engine/serve's option errors (--lora-modules without --enable-lora, a
 * --lora that names no adapter, a bad NAME=PATH, an adapter above
 * --max-lora-rank or for another model, each with its exit status), the
 * adapters described at start (vLLM's several values after one
 * --lora-modules); an OpenAI request's "model" naming an adapter, the base
 * model, or neither (404); and engine/merge's command line and checkpoint. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "tests/lora_fixture.h"
#include "serve/serve_request.h"
#include <sys/wait.h>
#include <unistd.h>

static char tmp[64];
/* a model the engine can run (head_dim 64) for the adapters of these tests */
static const char *runnable =
    "{\"model_type\":\"qwen2\",\"hidden_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"intermediate_size\":256,\"vocab_size\":64,\"max_position_embeddings\":256,"
    "\"rms_norm_eps\":1e-6,\"tie_word_embeddings\":true}";

static int setup(void **st) {
    (void)st;
    snprintf(tmp, sizeof tmp, "/tmp/pagesim-lorac-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}
static int teardown(void **st) { (void)st; lf_rmtree(tmp); return 0; }

/* runs "BIN args" (stderr too); its output in out, returns the exit status */
static int run(const char *bin, const char *args, char *out, size_t n) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/%s %s 2>&1", tu_bindir(), bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t k = fread(out, 1, n - 1, p);
    out[k] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
#define EXPECT(rc_, want_rc, out_, text) do { if ((rc_) != (want_rc) || !strstr(out_, text)) \
    fail_msg("exit %d (want %d), output lacks '%s':\n%s", rc_, want_rc, text, out_); } while (0)

static void test_run_options(void **st) {
    (void)st;
    char cfg[256], a8[256], a32[256], args[4096], out[16384];
    lf_config = runnable;
    snprintf(cfg, sizeof cfg, "%s/config.json", tmp);
    lf_write_text(cfg, runnable);
    snprintf(a8, sizeof a8, "%s/a8", tmp);
    snprintf(a32, sizeof a32, "%s/a32", tmp);
    lf_adapter fa, fb;
    lf_write_adapter(a8, lf_cfg(8, 16, "[\"q_proj\", \"v_proj\"]", 0, NULL), LF_QV, 8, ST_BF16, 0, &fa);
    lf_write_adapter(a32, lf_cfg(32, 32, "\"all-linear\"", 1, NULL), LF_ALL, 32, ST_F32, 0, &fb);
    int rc;
    snprintf(args, sizeof args, "--dummy-weights %s --lora-modules a=%s --prompt-ids 1,2", cfg, a8);
    rc = run("engine/run", args, out, sizeof out);
    EXPECT(rc, 2, out, "--lora-modules needs --enable-lora");
    snprintf(args, sizeof args, "--dummy-weights %s --enable-lora --lora-modules a=%s --lora b --prompt-ids 1,2", cfg, a8);
    rc = run("engine/run", args, out, sizeof out);
    EXPECT(rc, 2, out, "--lora b: no such adapter");
    snprintf(args, sizeof args, "--dummy-weights %s --lora a --prompt-ids 1,2", cfg);
    rc = run("engine/run", args, out, sizeof out);
    EXPECT(rc, 2, out, "give --enable-lora");
    snprintf(args, sizeof args, "--dummy-weights %s --enable-lora --lora-modules %s", cfg, a8);
    rc = run("engine/run", args, out, sizeof out);
    EXPECT(rc, 2, out, "NAME=PATH");
    snprintf(args, sizeof args, "--dummy-weights %s --enable-lora --lora-modules big=%s --max-lora-rank 16", cfg, a32);
    rc = run("engine/run", args, out, sizeof out);
    EXPECT(rc, 1, out, "rank 32 is above --max-lora-rank 16");
    snprintf(args, sizeof args, "--dummy-weights data/models/qwen3-0.6b.json --enable-lora --lora-modules a=%s", a8);
    rc = run("engine/run", args, out, sizeof out);                 /* trained for another model */
    EXPECT(rc, 1, out, "another base model");
    /* several adapters after one --lora-modules, and the JSON form: described, then the engine
     * starts (no GPU here: it stops there; with one it runs) */
    snprintf(args, sizeof args, "--dummy-weights %s --enable-lora --max-lora-rank 32 --max-loras 2 --lora-modules "
             "a=%s b=%s --lora-modules '{\"name\": \"c\", \"path\": \"%s\"}' --lora b --prompt-ids 1,2", cfg, a8, a32, a8);
    rc = run("engine/run", args, out, sizeof out);
    assert_true(rc == 0 || rc == 1);
    EXPECT(rc, rc, out, "LoRA adapter 1 'a': rank 8, alpha 16, scale 2");
    EXPECT(rc, rc, out, "modules: q_proj v_proj");
    EXPECT(rc, rc, out, "LoRA adapter 2 'b': rank 32, alpha 32, scale 5.65685 (rsLoRA)");
    EXPECT(rc, rc, out, "LoRA adapter 3 'c'");
    EXPECT(rc, rc, out, "LoRA: 3 adapters, 2 GPU slots of rank 32");
    /* engine/serve: the same checks before anything starts */
    snprintf(args, sizeof args, "--dummy-weights %s --enable-lora --lora-modules big=%s --port 0", cfg, a32);
    rc = run("engine/serve", args, out, sizeof out);
    EXPECT(rc, 1, out, "rank 32 is above --max-lora-rank 16");
    snprintf(args, sizeof args, "--mock --enable-lora --lora-modules a=%s --port 0", a8);
    rc = run("engine/serve", args, out, sizeof out);
    EXPECT(rc, 2, out, "needs the engine");
    lf_adapter_free(&fa);
    lf_adapter_free(&fb);
}

static void test_request_names_adapter(void **st) {
    (void)st;
    static const char *const names[] = {"sql", "chat"};
    srv_req_limits lim = {"base-model", 100, NULL, names, 2};
    char msg[512];
    const char *code;
    srv_req r;
    static const struct { const char *body; int status, lora; } cases[] = {
        {"{\"model\": \"sql\", \"prompt\": \"hi\"}", 0, 1},
        {"{\"model\": \"chat\", \"prompt\": \"hi\"}", 0, 2},
        {"{\"model\": \"base-model\", \"prompt\": \"hi\"}", 0, 0},
        {"{\"prompt\": \"hi\"}", 0, 0},
        {"{\"model\": \"other\", \"prompt\": \"hi\"}", 404, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status = srv_req_parse(&r, SRV_COMPLETION, cases[i].body, strlen(cases[i].body), &lim, msg, sizeof msg, &code);
        assert_int_equal(status, cases[i].status);
        if (!status) assert_int_equal(r.gp.lora, cases[i].lora);
        else {
            assert_non_null(strstr(msg, "LoRA adapters"));
            assert_string_equal(code, "model_not_found");
        }
        srv_req_free(&r);
    }
    srv_req_limits none = {"base-model", 100, NULL, NULL, 0};    /* a server without adapters */
    assert_int_equal(srv_req_parse(&r, SRV_COMPLETION, cases[0].body, strlen(cases[0].body), &none, msg, sizeof msg, &code), 404);
    assert_null(strstr(msg, "LoRA"));
    srv_req_free(&r);
}

static void test_merge_command(void **st) {
    (void)st;
    char base[256], ad[256], outd[256], args[2048], out[8192];
    lf_config = runnable;
    snprintf(base, sizeof base, "%s/base", tmp);
    snprintf(ad, sizeof ad, "%s/mad", tmp);
    snprintf(outd, sizeof outd, "%s/merged", tmp);
    mkdir(base, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", base);
    lf_write_text(path, runnable);
    /* a base of the runnable shape: just the linears of layer 0 and 1 (the rest is not the merge's business) */
    mc_config c;
    lf_config_of(&c);
    st_wtensor t[2 * LORA_NMOD];
    float *vals[2 * LORA_NMOD];
    static char names[2 * LORA_NMOD][96];
    int n = 0;
    for (int l = 0; l < 2; l++)
        for (int m = 0; m < LORA_NMOD; m++, n++) {
            int64_t o, i;
            lora_module_shape(&c, m, &o, &i);
            snprintf(names[n], sizeof names[n], "model.layers.%d.%s.%s.weight", l, m >= LORA_GATE ? "mlp" : "self_attn",
                     lora_module_name(m));
            t[n] = (st_wtensor){names[n], ST_BF16, 2, {o, i}};
            vals[n] = calloc((size_t)(o * i), sizeof(float));
        }
    snprintf(path, sizeof path, "%s/model.safetensors", base);
    lf_write_st(path, n, t, vals);
    for (int i = 0; i < n; i++) free(vals[i]);
    lf_adapter fa;
    lf_write_adapter(ad, lf_cfg(8, 16, "\"all-linear\"", 0, NULL), LF_ALL, 8, ST_BF16, 0, &fa);
    assert_int_equal(run("engine/merge", "--model x", out, sizeof out), 2);
    assert_non_null(strstr(out, "--lora and --out"));
    snprintf(args, sizeof args, "--model %s --lora %s --out %s", base, tmp, outd);   /* not an adapter */
    assert_int_equal(run("engine/merge", args, out, sizeof out), 1);
    assert_non_null(strstr(out, "adapter_config.json"));
    snprintf(args, sizeof args, "--model %s --lora %s --out %s", base, ad, outd);
    int rc = run("engine/merge", args, out, sizeof out);
    EXPECT(rc, 0, out, "14 linears merged");
    EXPECT(rc, 0, out, "1 shard");
    snprintf(path, sizeof path, "%s/model.safetensors", outd);
    assert_int_equal(access(path, R_OK), 0);
    snprintf(path, sizeof path, "%s/config.json", outd);
    assert_int_equal(access(path, R_OK), 0);
    lf_adapter_free(&fa);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_options), cmocka_unit_test(test_request_names_adapter),
        cmocka_unit_test(test_merge_command),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
