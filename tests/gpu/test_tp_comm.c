/* GPU tests of the tensor-parallel collectives across processes
 * (engine/tp_group.h, engine/tp_comm.h) on 2 or more GPUs (up to 4; with
 * fewer than 2 each case skips, saying so): the bf16 all-reduce sums, the
 * logits gather puts every rank's vocabulary columns in place on rank 0,
 * the minimum agrees; a worker killed by SIGKILL in the middle of a loop of
 * all-reduces is named by rank 0 within seconds and nothing hangs (issue 14,
 * item 5, at the level of the collectives); a worker that fails before
 * joining NCCL is reported with its own message.  And the engine itself
 * (engine/tp_engine.h) over 2 or 4 GPUs: on a checkpoint (dense, and MoE with
 * packed experts and a dense layer) its logits and greedy tokens match one
 * GPU's within bf16 noise; a worker killed in the middle of a run stops the
 * engine with a message naming the rank within seconds, and nothing hangs;
 * a worker killed while loading is named by model_create.  Every case runs
 * in a child process, since a process that has initialised CUDA cannot fork
 * ranks that use it.  Needs PAGESIM_GPU=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <signal.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/kernels_ref.h"
#include "engine/tp_comm.h"
#include "engine/tp_engine.h"
#include "engine/engine.h"
#include "tests/gpu/tp_ckpt.h"
#include "base/clock.h"
#include <cuda_runtime_api.h>

static int ngpu(void) {
    int n = 0;
    char err[256];
    if (tp_device_count(&n, err, sizeof err)) return 0;
    return n > 4 ? 4 : n;
}
#define REQUIRE_GPUS(n) do { if (ngpu() < (n)) { fprintf(stderr, "skip: needs %d GPUs, %d here\n", n, ngpu()); \
    skip(); return; } } while (0)

/* runs fn in a child (which may start ranks and use CUDA); its exit status 0 is a pass */
static void in_child(int (*fn)(char *msg, size_t n), const char *what) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        alarm(120);                          /* a hang fails, it does not block the suite */
        char msg[1024] = "";
        int rc = fn(msg, sizeof msg);
        if (write(p[1], msg, strlen(msg)) < 0) rc = 1;
        _exit(rc ? 1 : 0);
    }
    close(p[1]);
    char msg[1024] = "";
    ssize_t n = read(p[0], msg, sizeof msg - 1);
    msg[n > 0 ? n : 0] = 0;
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    fprintf(stderr, "  %s: %s\n", what, msg);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("%s failed (%s %d): %s", what, WIFSIGNALED(st) ? "signal" : "status",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), msg);
}

/* ---- every rank: all-reduce, gather, min, checked on every rank ---- */
enum { N_ELEM = 1 << 20, R = 5, V = 1111 };   /* V over N ranks of ROWS: the last shard is part padding */

static int collectives(tp_comm *c, char *err, size_t errlen) {
    int rank = tp_comm_rank(c), N = tp_comm_size(c);
    cudaStream_t s;
    if (cudaStreamCreate(&s) != cudaSuccess) return snprintf(err, errlen, "stream"), -1;
    uint16_t *h = malloc(N_ELEM * 2);
    for (int i = 0; i < N_ELEM; i++) h[i] = kref_f2bf((float)((i % 7) * (rank + 1)));   /* small ints: exact */
    k_bf16 *x;
    cudaMalloc((void **)&x, N_ELEM * 2);
    cudaMemcpy(x, h, N_ELEM * 2, cudaMemcpyHostToDevice);
    if (tp_allreduce(c, x, N_ELEM, s, err, errlen) || tp_sync(c, s, err, errlen)) return -1;
    cudaMemcpy(h, x, N_ELEM * 2, cudaMemcpyDeviceToHost);
    for (int i = 0; i < N_ELEM; i++)
        if (kref_bf2f(h[i]) != (float)((i % 7) * N * (N + 1) / 2))
            return snprintf(err, errlen, "rank %d: all-reduce element %d = %g", rank, i, kref_bf2f(h[i])), -1;
    /* logits: rank r's shard holds columns [r*ROWS, (r+1)*ROWS) of a (R, ROWS*N) padded vocabulary */
    const int ROWS = (V + N - 1) / N + 5;
    float *shard, *out = NULL, *staging = NULL, *hs = malloc(sizeof(float) * R * ROWS);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < ROWS; j++) hs[i * ROWS + j] = (float)(i * 100000 + rank * ROWS + j);
    cudaMalloc((void **)&shard, sizeof(float) * R * ROWS);
    cudaMemcpy(shard, hs, sizeof(float) * R * ROWS, cudaMemcpyHostToDevice);
    if (rank == 0) {
        cudaMalloc((void **)&out, sizeof(float) * R * V);
        cudaMalloc((void **)&staging, sizeof(float) * R * ROWS * (N - 1));
    }
    if (tp_gather_logits(c, out, shard, staging, R, ROWS, V, s, err, errlen) || tp_sync(c, s, err, errlen)) return -1;
    if (rank == 0) {
        float *ho = malloc(sizeof(float) * R * V);
        cudaMemcpy(ho, out, sizeof(float) * R * V, cudaMemcpyDeviceToHost);
        for (int i = 0; i < R; i++)
            for (int j = 0; j < V; j++)
                if (ho[i * V + j] != (float)(i * 100000 + j))
                    return snprintf(err, errlen, "gathered logits (%d, %d) = %g", i, j, ho[i * V + j]), -1;
        free(ho);
    }
    int mn = -1;
    if (tp_min_int(c, 1000 - 7 * rank, &mn, s, err, errlen)) return -1;
    if (mn != 1000 - 7 * (N - 1)) return snprintf(err, errlen, "rank %d: min %d", rank, mn), -1;
    free(h); free(hs);
    cudaFree(x); cudaFree(shard); cudaFree(out); cudaFree(staging);
    cudaStreamDestroy(s);
    return 0;
}

static int worker_collectives(tp_group *g, void *ctx, char *err, size_t errlen) {
    (void)ctx;
    tp_comm *c;
    if (tp_comm_init(&c, g, 60, err, errlen)) return -1;
    int rc = collectives(c, err, errlen);
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = TP_MSG_READY;
    if (!rc) tp_group_reply(g, &m);
    tp_msg q;
    if (!rc) rc = tp_group_recv(g, &q, err, errlen);      /* QUIT */
    tp_comm_free(c);
    return rc;
}

static int case_collectives(char *msg, size_t n) {
    tp_group *g;
    tp_comm *c;
    int N = ngpu();
    if (tp_group_start(&g, N, 0, worker_collectives, NULL, msg, n) || tp_comm_init(&c, g, 60, msg, n)) return -1;
    double t0 = clock_now_s();
    if (collectives(c, msg, n) || tp_group_gather(g, TP_MSG_READY, NULL, 60, msg, n)) return -1;
    tp_comm_free(c);
    if (tp_group_stop(g, 10)) return snprintf(msg, n, "a worker did not end with status 0"), -1;
    snprintf(msg, n, "%d ranks: all-reduce of %d bf16, logits gather (%d x %d), min: correct on every rank (%.2f s)",
             N, N_ELEM, R, V, clock_now_s() - t0);
    return 0;
}

static void test_collectives(void **st) {
    (void)st; TU_REQUIRE_GPU(); REQUIRE_GPUS(2);
    in_child(case_collectives, "collectives");
}

/* ---- SIGKILL to a worker while the ranks all-reduce in a loop ---- */
static int worker_loop(tp_group *g, void *ctx, char *err, size_t errlen) {
    (void)ctx;
    tp_comm *c;
    if (tp_comm_init(&c, g, 60, err, errlen)) return -1;
    k_bf16 *x;
    cudaStream_t s;
    cudaStreamCreate(&s);
    cudaMalloc((void **)&x, 1 << 22);
    cudaMemset(x, 0, 1 << 22);
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = TP_MSG_READY;
    m.arg[0] = getpid();
    tp_group_reply(g, &m);
    for (;;)                                  /* until killed, or the collectives fail */
        if (tp_allreduce(c, x, 1 << 21, s, err, errlen) || tp_sync(c, s, err, errlen)) return -1;
}

static int case_kill(char *msg, size_t n) {
    tp_group *g;
    tp_comm *c;
    int N = ngpu();
    int64_t pids[8] = {0};
    if (tp_group_start(&g, N, 0, worker_loop, NULL, msg, n) || tp_comm_init(&c, g, 60, msg, n) ||
        tp_group_gather(g, TP_MSG_READY, pids, 60, msg, n))
        return -1;
    k_bf16 *x;
    cudaStream_t s;
    cudaStreamCreate(&s);
    cudaMalloc((void **)&x, 1 << 22);
    cudaMemset(x, 0, 1 << 22);
    char err[512];
    double t_kill = 0;
    int i, victim = N - 1;
    for (i = 0; i < 100000; i++) {
        if (i == 50) { kill((pid_t)pids[victim], SIGKILL); t_kill = clock_now_s(); }
        if (tp_allreduce(c, x, 1 << 21, s, err, sizeof err) || tp_sync(c, s, err, sizeof err)) break;
    }
    double dt = clock_now_s() - t_kill;
    if (i < 50) return snprintf(msg, n, "failed before the kill: %s", err), -1;
    if (i == 100000) return snprintf(msg, n, "still all-reducing after the kill"), -1;
    char want[64];
    snprintf(want, sizeof want, "tensor-parallel rank %d (pid %lld) was killed by signal 9", victim, (long long)pids[victim]);
    if (!strstr(err, want)) return snprintf(msg, n, "message '%s' lacks '%s'", err, want), -1;
    if (dt > 10) return snprintf(msg, n, "noticed after %.1f s", dt), -1;
    tp_comm_free(c);                          /* aborts: the kernels waiting for the dead peer end */
    tp_group_stop(g, 1);                      /* the live workers are stuck in a collective: killed */
    snprintf(msg, n, "killed rank %d after 50 all-reduces; rank 0 stopped %.3f s later with: %s", victim, dt, err);
    return 0;
}

static void test_killed_worker(void **st) {
    (void)st; TU_REQUIRE_GPU(); REQUIRE_GPUS(2);
    in_child(case_kill, "SIGKILL to a worker");
}

/* ---- a worker that fails before it joins NCCL (a bad shard, say) ---- */
static int worker_fails(tp_group *g, void *ctx, char *err, size_t errlen) {
    (void)ctx;
    if (tp_group_rank(g) == 1) return snprintf(err, errlen, "tensor 'lm_head.weight' is missing"), -1;
    return worker_collectives(g, ctx, err, errlen);
}

static int case_worker_fails(char *msg, size_t n) {
    tp_group *g;
    tp_comm *c = NULL;
    char err[512];
    if (tp_group_start(&g, ngpu(), 0, worker_fails, NULL, msg, n)) return -1;
    double t0 = clock_now_s();
    int rc = tp_comm_init(&c, g, 60, err, sizeof err);
    if (rc == 0) rc = collectives(c, err, sizeof err);
    tp_comm_free(c);
    tp_group_stop(g, 1);
    if (rc == 0) return snprintf(msg, n, "rank 0 did not notice"), -1;
    if (!strstr(err, "rank 1") || !strstr(err, "lm_head.weight"))
        return snprintf(msg, n, "message '%s' does not name rank 1 and its error", err), -1;
    snprintf(msg, n, "reported after %.2f s: %s", clock_now_s() - t0, err);
    return 0;
}

static void test_worker_fails(void **st) {
    (void)st; TU_REQUIRE_GPU(); REQUIRE_GPUS(2);
    in_child(case_worker_fails, "a worker's start-up error");
}

/* ---- the engine over the GPUs ---- */
static int engine_ranks(void) { return ngpu() >= 4 ? 4 : 2; }
enum { NPR = 8, NTOK = 16 };

typedef struct first_rec { float *row[NPR]; int plen[NPR]; int V; } first_rec;
static void on_first(void *ctx, int id, int pos, const float *row, int V) {   /* each prompt's last position */
    first_rec *g = ctx;
    if (id < 0 || id >= NPR || pos != g->plen[id] - 1) return;
    if (!g->row[id]) g->row[id] = malloc(sizeof(float) * (size_t)V);
    memcpy(g->row[id], row, sizeof(float) * (size_t)V);
    g->V = V;
}

/* NPR greedy requests through an engine on the checkpoint in dir, with t or on one GPU */
static int run_engine(const mc_config *c, const char *dir, tp_engine *t, int32_t tok[][NTOK], first_rec *g,
                      char *err, size_t n) {
    eng_config cfg = {0};
    cfg.model.max_num_batched_tokens = 128;
    cfg.model.max_num_seqs = 8;
    cfg.model.max_model_len = 256;
    cfg.model.num_gpu_blocks = 128;
    cfg.eos_id = -1;
    cfg.on_logits = on_first;
    cfg.logits_ctx = g;
    w_weights w;
    model_mem mem;
    if (tp_engine_load(t, c, dir, 0, &w, err, n)) return -1;
    cfg.model.tp = tp_engine_rank(t);
    eng *e = eng_create(c, &w, &cfg, &mem, err, n);
    if (!e) return -1;
    for (int r = 0; r < NPR; r++) {
        int p[200];
        g->plen[r] = 3 + 23 * r;
        for (int i = 0; i < g->plen[r]; i++) p[i] = (r * 7919 + i * 131 + 17) % c->vocab_size;
        eng_params ep = {.max_tokens = NTOK, .top_p = 1};
        if (eng_add_request(e, r, p, g->plen[r], &ep, err, n)) return -1;
    }
    /* n = 2 greedy: the samples share the prompt's blocks and copy its last one on their first write
     * (copy-on-write, which rank 0 posts to every rank): both give one sequence's tokens */
    int q[37];
    for (int i = 0; i < 37; i++) q[i] = (i * 53 + 5) % c->vocab_size;
    eng_params ep = {.max_tokens = NTOK, .top_p = 1};
    eng_output_opts oo = {.n = 2};
    if (eng_add_request_out(e, NPR, q, 37, &ep, &oo, err, n)) return -1;
    while (eng_has_work(e)) {
        const eng_result *d;
        int nd;
        if (eng_step(e, &d, &nd, err, n) < 0) return -1;
        for (int i = 0; i < nd; i++) {
            if (d[i].id < NPR) { memcpy(tok[d[i].id], d[i].tokens, sizeof tok[0]); continue; }
            if (d[i].num_samples != 2) return snprintf(err, n, "n = 2 gave %d samples", d[i].num_samples), -1;
            memcpy(tok[NPR], d[i].samples[0].tokens, sizeof tok[0]);
            memcpy(tok[NPR + 1], d[i].samples[1].tokens, sizeof tok[0]);
        }
    }
    eng_free(e);
    return 0;
}

static int engine_vs_one(const char *json, int packed, const char *dir, char *msg, size_t n) {
    mc_config c;
    int N = engine_ranks();
    if (tck_write(dir, json, packed, &c, msg, n)) return -1;
    static int32_t ta[NPR + 2][NTOK], tb[NPR + 2][NTOK];
    first_rec ga = {0}, gb = {0};
    tp_engine *t;
    tp_engine_args a = {N, {.max_num_batched_tokens = 128, .max_num_seqs = 8, .max_model_len = 256}, 120};
    double t0 = clock_now_s();
    if (tp_engine_start(&t, &a, msg, n) || run_engine(&c, dir, t, ta, &ga, msg, n)) return -1;
    if (tp_engine_stop(t)) return snprintf(msg, n, "a worker did not end with status 0"), -1;
    double t_tp = clock_now_s() - t0;
    if (run_engine(&c, dir, NULL, tb, &gb, msg, n)) return -1;      /* one GPU, no NCCL (CUDA is up here now) */
    int same = 0, first = 0;
    double worst = 0;
    for (int r = 0; r < NPR; r++) {
        double num = 0, den = 0;
        for (int v = 0; v < ga.V; v++) {
            double d = ga.row[r][v] - gb.row[r][v];
            num += d * d;
            den += (double)gb.row[r][v] * gb.row[r][v];
        }
        double e = sqrt(num / den);
        if (e > worst) worst = e;
        first += ta[r][0] == tb[r][0];
        for (int i = 0; i < NTOK; i++) same += ta[r][i] == tb[r][i];
        free(ga.row[r]); free(gb.row[r]);
    }
    int forked = !memcmp(ta[NPR], ta[NPR + 1], sizeof ta[0]), forked_same = 0;
    for (int i = 0; i < NTOK; i++) forked_same += ta[NPR][i] == tb[NPR][i];
    snprintf(msg, n, "%s at tensor-parallel size %d (%.1f s) vs one GPU: prefill logits rel L2 <= %.2e, first tokens "
             "%d/%d, tokens %d/%d equal; n = 2 (copy-on-write): samples %s, %d/%d tokens as one GPU's", c.name, N,
             t_tp, worst, first, NPR, same, NPR * NTOK, forked ? "identical" : "DIFFER", forked_same, NTOK);
    return worst < 2e-2 && first == NPR && same >= NPR * NTOK * 3 / 4 && forked && forked_same >= NTOK * 3 / 4 ? 0 : -1;
}

static int case_engine_dense(char *msg, size_t n) {
    return engine_vs_one("{\"model_type\":\"qwen2\",\"hidden_size\":256,\"num_hidden_layers\":3,"
                         "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"head_dim\":64,\"intermediate_size\":512,"
                         "\"vocab_size\":1000,\"max_position_embeddings\":4096,\"tie_word_embeddings\":false}", 0,
                         "build/tmp/tp_comm_dense", msg, n);
}
static int case_engine_moe(char *msg, size_t n) {
    return engine_vs_one("{\"model_type\":\"qwen3_moe\",\"hidden_size\":256,\"num_hidden_layers\":3,"
                         "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"head_dim\":128,\"intermediate_size\":512,"
                         "\"moe_intermediate_size\":128,\"num_experts\":8,\"num_experts_per_tok\":2,"
                         "\"norm_topk_prob\":true,\"mlp_only_layers\":[1],\"vocab_size\":1000,"
                         "\"max_position_embeddings\":4096,\"tie_word_embeddings\":false}", 1,
                         "build/tmp/tp_comm_moe", msg, n);
}
static void test_engine_dense(void **st) {
    (void)st; TU_REQUIRE_GPU(); REQUIRE_GPUS(2);
    in_child(case_engine_dense, "engine, dense checkpoint");
}
static void test_engine_moe(void **st) {
    (void)st; TU_REQUIRE_GPU(); REQUIRE_GPUS(2);
    in_child(case_engine_moe, "engine, MoE checkpoint");
}

/* a worker SIGKILLed while the engine runs: eng_step fails naming it, within seconds; nothing hangs */
static int case_engine_kill(char *msg, size_t n) {
    int N = engine_ranks();
    mc_config c;
    char err[1024];
    if (mc_load(&c, "data/models/qwen3-0.6b.json", msg, n)) return -1;
    eng_config cfg = {0};
    cfg.model.max_num_batched_tokens = 2048;
    cfg.model.max_num_seqs = 64;
    cfg.model.max_model_len = 1024;
    cfg.model.num_gpu_blocks = 4096;
    cfg.eos_id = -1;
    tp_engine *t;
    tp_engine_args a = {N, cfg.model, 120};
    w_weights w;
    model_mem mem;
    if (tp_engine_start(&t, &a, msg, n) || tp_engine_load(t, &c, NULL, 1, &w, msg, n)) return -1;
    cfg.model.tp = tp_engine_rank(t);
    eng *e = eng_create(&c, &w, &cfg, &mem, msg, n);
    if (!e) return -1;
    for (int r = 0; r < 64; r++) {
        int p[100];
        for (int i = 0; i < 100; i++) p[i] = (r * 31 + i) % 1000;
        eng_params ep = {.max_tokens = 800, .top_p = 1};
        if (eng_add_request(e, r, p, 100, &ep, msg, n)) return -1;
    }
    long victim = tp_group_pid(tp_engine_rank(t)->group, N - 1);
    double t_kill = 0;
    int steps = 0, rc = 0;
    for (; steps < 100000 && rc >= 0; steps++) {
        if (steps == 20) { kill((pid_t)victim, SIGKILL); t_kill = clock_now_s(); }
        const eng_result *d;
        int nd;
        rc = eng_step(e, &d, &nd, err, sizeof err);
        if (rc == 0 && !eng_has_work(e)) break;
    }
    double dt = clock_now_s() - t_kill;
    char want[96];
    snprintf(want, sizeof want, "tensor-parallel rank %d (pid %ld) was killed by signal 9", N - 1, victim);
    if (rc >= 0) return snprintf(msg, n, "the engine ran on after the kill (%d steps)", steps), -1;
    if (steps <= 20) return snprintf(msg, n, "failed before the kill: %s", err), -1;
    if (!strstr(err, want)) return snprintf(msg, n, "message '%s' lacks '%s'", err, want), -1;
    if (dt > 10) return snprintf(msg, n, "noticed after %.1f s", dt), -1;
    double t1 = clock_now_s();
    eng_free(e);
    int stop = tp_engine_stop(t);
    snprintf(msg, n, "%d ranks, rank %d killed at step 20: eng_step failed %.3f s later with: %s; engine and ranks "
             "stopped in %.2f s (stop %d)", N, N - 1, dt, err, clock_now_s() - t1, stop);
    return stop != 0 ? 0 : (snprintf(msg, n, "tp_engine_stop said every worker ended well"), -1);
}
static void test_engine_killed_worker(void **st) {
    (void)st; TU_REQUIRE_GPU(); REQUIRE_GPUS(2); TU_REQUIRE_FILE("data/models/qwen3-0.6b.json");
    in_child(case_engine_kill, "engine, SIGKILL to a worker mid-run");
}

/* a worker killed while the ranks load: rank 0's model_create names it */
static int case_engine_kill_at_load(char *msg, size_t n) {
    int N = engine_ranks();
    mc_config c;
    char err[1024];
    if (mc_load(&c, "data/models/qwen3-0.6b.json", msg, n)) return -1;
    eng_config cfg = {0};
    cfg.model.max_model_len = 1024;
    tp_engine *t;
    tp_engine_args a = {N, cfg.model, 120};
    w_weights w;
    model_mem mem;
    if (tp_engine_start(&t, &a, msg, n)) return -1;
    long victim = tp_group_pid(tp_engine_rank(t)->group, 1);
    kill((pid_t)victim, SIGKILL);
    double t0 = clock_now_s();
    eng *e = NULL;
    if (tp_engine_load(t, &c, NULL, 1, &w, err, sizeof err) == 0) {
        cfg.model.tp = tp_engine_rank(t);
        e = eng_create(&c, &w, &cfg, &mem, err, sizeof err);
    }
    double dt = clock_now_s() - t0;
    eng_free(e);
    tp_engine_stop(t);
    if (e) return snprintf(msg, n, "the engine started without rank 1"), -1;
    if (!strstr(err, "tensor-parallel rank 1") || !strstr(err, "killed by signal 9"))
        return snprintf(msg, n, "message '%s' does not name rank 1 and its signal", err), -1;
    snprintf(msg, n, "failed after %.2f s with: %s", dt, err);
    return dt < 20 ? 0 : -1;
}
static void test_engine_worker_killed_at_load(void **st) {
    (void)st; TU_REQUIRE_GPU(); REQUIRE_GPUS(2); TU_REQUIRE_FILE("data/models/qwen3-0.6b.json");
    in_child(case_engine_kill_at_load, "engine, SIGKILL to a worker while loading");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collectives),
        cmocka_unit_test(test_killed_worker),
        cmocka_unit_test(test_worker_fails),
        cmocka_unit_test(test_engine_dense),
        cmocka_unit_test(test_engine_moe),
        cmocka_unit_test(test_engine_killed_worker),
        cmocka_unit_test(test_engine_worker_killed_at_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
