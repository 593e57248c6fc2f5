/* GPU tests of the engine backend of engine/serve (serve/serve_engine.c)
 * through its srv_backend interface, as the HTTP server drives it: a chat
 * prompt with n = 2 and logprobs + top_logprobs on dummy weights of
 * data/models/qwen3-0.6b.json with the Qwen3 tokenizer; a choice asked to
 * stop ends alone, both asked end the request.  Needs PAGESIM_GPU=1 and
 * data/tokenizers/qwen3/tokenizer.json (skips without). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "serve/serve_engine.h"

#define CFG "data/models/qwen3-0.6b.json"
#define TOK "data/tokenizers/qwen3/tokenizer.json"

typedef struct {
    srv_sink sink;                /* first */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished, stop_after[2];
    srv_finish_info fin;
    srv_finish_reason reason[2];
    int n_ids[2], n_lp[2], bad_lp;
    char text[2][4096];
} coll;

static int on_tokens(srv_sink *sk, const srv_delta *d) {
    coll *c = (coll *)sk;
    pthread_mutex_lock(&c->mu);
    int k = d->index;
    if (k < 0 || k > 1) { c->bad_lp++; pthread_mutex_unlock(&c->mu); return 1; }
    strncat(c->text[k], d->text, d->len < sizeof c->text[k] - strlen(c->text[k]) - 1 ? d->len : 0);
    for (size_t i = 0; i < d->n; i++) {
        if (!d->lp) { c->bad_lp++; continue; }
        const srv_token_lp *l = &d->lp[i];
        if (l->tok.id != d->ids[i] || !(l->tok.logprob <= 1e-6f) || l->n_top != 3) c->bad_lp++;
        for (int j = 1; j < l->n_top; j++) if (l->top[j - 1].logprob < l->top[j].logprob) c->bad_lp++;
        c->n_lp[k]++;
    }
    c->n_ids[k] += (int)d->n;
    int stop = c->stop_after[k] > 0 && c->n_ids[k] >= c->stop_after[k];
    pthread_mutex_unlock(&c->mu);
    return stop;
}

static void on_finish(srv_sink *sk, const srv_finish_info *fi) {
    coll *c = (coll *)sk;
    pthread_mutex_lock(&c->mu);
    c->fin = *fi;
    for (int k = 0; k < 2; k++) c->reason[k] = fi->choice_reason ? fi->choice_reason[k] : fi->reason;
    c->finished = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void submit_and_wait(srv_backend *b, coll *c, int stop0, int stop1) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->sink.on_tokens = on_tokens;
    c->sink.on_finish = on_finish;
    c->stop_after[0] = stop0;
    c->stop_after[1] = stop1;
    srv_gen_params p = {0};
    p.prompt = "<|im_start|>user\nBuy or sell ACME?<|im_end|>\n<|im_start|>assistant\n";
    p.temperature = 0.7;
    p.top_p = 1;
    p.max_tokens = 16;
    p.seed = 3;
    p.has_seed = 1;
    p.n = 2;
    p.logprobs = 1;
    p.top_logprobs = 3;
    uint64_t id;
    char err[256];
    if (b->submit(b->self, &p, &c->sink, &id, err, sizeof err)) fail_msg("submit: %s", err);
    pthread_mutex_lock(&c->mu);
    while (!c->finished) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static srv_backend *open_backend(void) {
    srv_engine_opts o;
    srv_engine_opts_init(&o);
    o.dummy_config = CFG;
    o.tokenizer = TOK;
    o.model.max_model_len = 512;
    o.model.num_gpu_blocks = 512;
    char info[2048], err[512];
    srv_backend *b = srv_engine_create(&o, info, sizeof info, err, sizeof err);
    if (!b) fail_msg("srv_engine_create: %s", err);
    return b;
}

static void test_n2_logprobs(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG); TU_REQUIRE_FILE(TOK);
    srv_backend *b = open_backend();
    static coll c;
    submit_and_wait(b, &c, 0, 0);
    fprintf(stderr, "  choice 0: %d tokens (%s) \"%.60s\"\n  choice 1: %d tokens (%s) \"%.60s\"\n",
            c.n_ids[0], c.reason[0] == SRV_FINISH_LENGTH ? "length" : "stop", c.text[0],
            c.n_ids[1], c.reason[1] == SRV_FINISH_LENGTH ? "length" : "stop", c.text[1]);
    assert_int_equal(c.fin.reason, SRV_FINISH_STOP);
    assert_int_equal(c.bad_lp, 0);
    for (int k = 0; k < 2; k++) {
        assert_true(c.n_ids[k] >= 1 && c.n_ids[k] <= 16);
        assert_int_equal(c.n_lp[k], c.n_ids[k]);               /* one entry per token */
        assert_int_equal(c.reason[k], c.n_ids[k] == 16 ? SRV_FINISH_LENGTH : SRV_FINISH_STOP);
    }
    assert_int_equal(c.fin.completion_tokens, c.n_ids[0] + c.n_ids[1]);
    srv_backend_stats bs;
    b->stats(b->self, &bs);
    assert_true(bs.prefix_queries > 0);
    b->destroy(b);
}

/* A choice asked to stop gets no more tokens while the other goes on; both
 * asked: the request ends (ABORT, which the server reports as "stop"). */
static void test_stop_choices(void **st) {
    (void)st; TU_REQUIRE_GPU(); TU_REQUIRE_FILE(CFG); TU_REQUIRE_FILE(TOK);
    srv_backend *b = open_backend();
    static coll c;
    submit_and_wait(b, &c, 2, 0);
    assert_int_equal(c.n_ids[0], 2);
    assert_true(c.n_ids[1] >= 1);
    assert_int_not_equal(c.fin.reason, SRV_FINISH_ERROR);
    submit_and_wait(b, &c, 3, 3);
    assert_true(c.n_ids[0] <= 3 && c.n_ids[1] <= 3);
    if (c.n_ids[0] == 3 && c.n_ids[1] == 3) assert_int_equal(c.fin.reason, SRV_FINISH_ABORT);
    b->destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_n2_logprobs),
        cmocka_unit_test(test_stop_choices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
