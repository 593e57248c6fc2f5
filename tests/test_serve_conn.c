/* tests/test_serve_conn.c — engine/serve's connections (issue 20 item 10):
 * an empty API key is refused, HEAD /health, half-open connections do not
 * lock the server out (the keep-alive timeout) while slow generations are
 * not cut, and draining (SIGTERM) finishes or cleanly ends every stream.
 * Over the mock backend, in-process on ephemeral loopback ports. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/test_util.h"
#include "tests/serve_client.h"
#include "serve/serve.h"

typedef struct {
    srv_backend *be;
    srv_server *srv;
    int port;
} fx;

/* A mock (delay_us per step) served with o (port 0), or with defaults. */
static fx *fx_new(int delay_us, const srv_opts *o) {
    fx *f = calloc(1, sizeof *f);
    char err[256];
    srv_mock_opts mo;
    srv_mock_opts_init(&mo);
    mo.token_delay_us = delay_us;
    f->be = srv_mock_create(&mo, err, sizeof err);
    assert_non_null(f->be);
    srv_opts d;
    if (!o) { srv_opts_init(&d); o = &d; }
    srv_opts oo = *o;
    oo.port = 0;
    f->srv = srv_start(&oo, f->be, err, sizeof err);
    if (!f->srv) fprintf(stderr, "%s\n", err);
    assert_non_null(f->srv);
    f->port = srv_port(f->srv);
    return f;
}

static void fx_free(fx *f) {
    srv_stop(f->srv);
    f->be->destroy(f->be);
    free(f);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A TCP connection to the port that sends `hello` (may be "") and then nothing. */
static int half_open(int port, const char *hello) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (*hello) assert_true(write(fd, hello, strlen(hello)) == (ssize_t)strlen(hello));
    return fd;
}

typedef struct { int port; const char *path, *body; long timeout_ms; resp r; } bg_req;
static void *bg_http(void *arg) {
    bg_req *b = arg;
    b->r = http(b->port, NULL, b->path, b->body, NULL, b->timeout_ms);
    return NULL;
}

/* ---- tests ---------------------------------------------------------------------- */

/* --api-key "" used to print "API key required" and let everyone in. */
static void test_empty_api_key(void **state) {
    (void)state;
    char err[256] = "";
    srv_mock_opts mo;
    srv_mock_opts_init(&mo);
    srv_backend *be = srv_mock_create(&mo, err, sizeof err);
    assert_non_null(be);
    srv_opts o;
    srv_opts_init(&o);
    o.port = 0;
    o.api_key = "";
    assert_null(srv_start(&o, be, err, sizeof err));
    assert_non_null(strstr(err, "empty"));
    be->destroy(be);
    char bin[512], cmd[700];
    snprintf(bin, sizeof bin, "%s/engine/serve", tu_bindir());
    TU_REQUIRE_FILE(bin);
    snprintf(cmd, sizeof cmd, "%s --mock --port 0 --api-key '' 2>/dev/null", bin);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    snprintf(cmd, sizeof cmd, "PAGESIM_API_KEY= %s --mock --port 0 2>/dev/null", bin);
    st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

static void test_head_health(void **state) {
    (void)state;
    fx *f = fx_new(200, NULL);
    resp r = http(f->port, "HEAD", "/health", NULL, NULL, 0);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    free(r.body);
    r = http(f->port, "HEAD", "/v1/models", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = http(f->port, "HEAD", "/v1/completions", NULL, NULL, 0);    /* a POST route */
    assert_int_equal(r.status, 405);
    free(r.body);
    fx_free(f);
}

/* As many silent connections as the server takes: /health is locked out
 * only until the keep-alive timeout closes them (it was 600 s). */
static void test_half_open_connections(void **state) {
    (void)state;
    srv_opts o;
    srv_opts_init(&o);
    o.conn_limit = 8;
    o.keep_alive_s = 2;                           /* room for a loaded machine before it expires */
    fx *f = fx_new(200, &o);
    int fds[8];
    for (int i = 0; i < 8; i++) fds[i] = half_open(f->port, i % 2 ? "GET /hea" : "");
    sleep_ms(100);
    resp r = http(f->port, NULL, "/health", NULL, NULL, 300);
    assert_true(r.rc != CURLE_OK);                /* locked out for now */
    free(r.body);
    double t0 = now_s();
    long status = 0;
    while (status != 200 && now_s() - t0 < 8) {
        r = http(f->port, NULL, "/health", NULL, NULL, 500);
        status = r.rc == CURLE_OK ? r.status : 0;
        free(r.body);
        if (status != 200) sleep_ms(100);
    }
    assert_int_equal(status, 200);
    assert_true(now_s() - t0 < 6);               /* about the 2 s keep-alive */
    for (int i = 0; i < 8; i++) {                 /* and the server closed them */
        char b[8];
        ssize_t k = recv(fds[i], b, sizeof b, MSG_DONTWAIT);
        assert_true(k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK));
        close(fds[i]);
    }
    fx_free(f);
}

/* Waiting for tokens is not idleness: a reply slower than the keep-alive
 * timeout is not cut, streamed or not. */
static void test_slow_generation_not_cut(void **state) {
    (void)state;
    srv_opts o;
    srv_opts_init(&o);
    o.keep_alive_s = 1;
    o.io_timeout_s = 1;
    fx *f = fx_new(150000, &o);                   /* 150 ms a step: 12 tokens take ~1.8 s */
    resp r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"max_tokens\": 12}", NULL, 10000);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"length\""));
    free(r.body);
    r = http(f->port, NULL, "/v1/completions", "{\"prompt\": \"p\", \"max_tokens\": 12, \"stream\": true}", NULL, 10000);
    assert_int_equal(r.rc, CURLE_OK);
    assert_non_null(strstr(r.body, "data: [DONE]"));
    free(r.body);
    fx_free(f);
}

/* Draining with time enough: what is in flight finishes as usual, new
 * requests and /health get 503. */
static void test_drain_finishes(void **state) {
    (void)state;
    fx *f = fx_new(20000, NULL);                  /* 20 ms a step: ~30 tokens in ~0.6 s */
    bg_req b[2] = {{f->port, "/v1/completions", "{\"prompt\": \"a\", \"stream\": true}", 10000, {0}},
                   {f->port, "/v1/completions", "{\"prompt\": \"b\"}", 10000, {0}}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, bg_http, &b[i]);
    sleep_ms(150);
    bg_req late[2] = {{f->port, "/health", NULL, 5000, {0}}, {f->port, "/v1/completions", "{\"prompt\": \"c\"}", 5000, {0}}};
    pthread_t tl[2];
    double t0 = now_s();
    for (int i = 0; i < 2; i++) pthread_create(&tl[i], NULL, bg_http, &late[i]);
    srv_drain(f->srv, 10.0);
    double dt = now_s() - t0;
    for (int i = 0; i < 2; i++) { pthread_join(t[i], NULL); pthread_join(tl[i], NULL); }
    assert_true(dt < 5);
    assert_int_equal(b[0].r.rc, CURLE_OK);
    assert_non_null(strstr(b[0].r.body, "\"finish_reason\":\"stop\""));
    assert_non_null(strstr(b[0].r.body, "data: [DONE]"));
    assert_int_equal(b[1].r.status, 200);
    assert_non_null(strstr(b[1].r.body, "\"finish_reason\":\"stop\""));
    for (int i = 0; i < 2; i++) {                  /* sent while draining: refused */
        assert_true(late[i].r.rc != CURLE_OK || late[i].r.status == 503);
        free(late[i].r.body);
        free(b[i].r.body);
    }
    fx_free(f);
}

/* Draining past its grace period: a stream still ends cleanly, with its
 * finish chunk ("abort") and [DONE]; a plain request gets a 503. */
static void test_drain_grace_expires(void **state) {
    (void)state;
    fx *f = fx_new(100000, NULL);                 /* 100 ms a step: a reply takes seconds */
    bg_req b[2] = {{f->port, "/v1/chat/completions",
                    "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true, \"n\": 2}", 10000, {0}},
                   {f->port, "/v1/completions", "{\"prompt\": \"b\"}", 10000, {0}}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, bg_http, &b[i]);
    sleep_ms(350);
    double t0 = now_s();
    srv_drain(f->srv, 0.2);
    double dt = now_s() - t0;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    assert_true(dt < 2);
    assert_int_equal(b[0].r.rc, CURLE_OK);
    const char *p = b[0].r.body;
    int aborts = 0;
    while ((p = strstr(p, "\"finish_reason\":\"abort\""))) { aborts++; p++; }
    assert_int_equal(aborts, 2);                  /* both choices */
    assert_non_null(strstr(b[0].r.body, "data: [DONE]\n\n"));
    assert_int_equal(b[1].r.rc, CURLE_OK);
    assert_int_equal(b[1].r.status, 503);
    free(b[0].r.body); free(b[1].r.body);
    fx_free(f);
}

/* The command drains on SIGTERM: a stream in flight gets its [DONE]. */
static void test_command_sigterm(void **state) {
    (void)state;
    char bin[512];
    snprintf(bin, sizeof bin, "%s/engine/serve", tu_bindir());
    TU_REQUIRE_FILE(bin);
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        execl(bin, bin, "--mock", "--port", "0", "--token-delay-ms", "20", "--timeout-keep-alive", "2",
              (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, f));
    const char *colon = strstr(line, "127.0.0.1:");
    assert_non_null(colon);
    bg_req b = {atoi(colon + 10), "/v1/completions", "{\"prompt\": \"hi\", \"stream\": true}", 10000, {0}};
    pthread_t t;
    pthread_create(&t, NULL, bg_http, &b);
    sleep_ms(150);
    kill(pid, SIGTERM);
    pthread_join(t, NULL);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(b.r.rc, CURLE_OK);
    assert_non_null(strstr(b.r.body, "\"finish_reason\":\"stop\""));
    assert_non_null(strstr(b.r.body, "data: [DONE]"));
    free(b.r.body);
    fclose(f);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_api_key),
        cmocka_unit_test(test_head_health),
        cmocka_unit_test(test_half_open_connections),
        cmocka_unit_test(test_slow_generation_not_cut),
        cmocka_unit_test(test_drain_finishes),
        cmocka_unit_test(test_drain_grace_expires),
        cmocka_unit_test(test_command_sigterm),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
