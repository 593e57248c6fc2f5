/* bench/bench_serve.c — the server under load from the lab's own client:
 * N streaming chat requests with W in flight (default 2048 and 512) against
 * engine/serve with the mock backend in-process on loopback, or against any
 * OpenAI-compatible server with --url.  Prints requests/s, tokens/s, TTFT
 * and latency percentiles, and fails when a reply is lost, duplicated or
 * wrong (the mock's replies are known for each prompt's seed).
 *
 *   build/bench/bench_serve [--requests N] [--workers W] [--token-delay-ms X]
 *                           [--restart-at-ms T] [--url URL --model NAME [--api-key KEY]]
 *
 * --restart-at-ms T stops the in-process server T ms into the run and starts
 * it again on the same port 200 ms later: the client must still report every
 * request exactly once (the cut ones retried after the study's 2 s wait).
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "serve/serve.h"
#include "labs/bias_client.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    int *seen, *ok, *ctoks, *tries;
    double *ttft, *lat;
    char **text;
} acc;

static void on_result(void *ctx, const bias_client_result *r) {
    acc *a = ctx;
    a->seen[r->index]++;
    a->ok[r->index] = r->ok;
    a->ctoks[r->index] = r->completion_tokens;
    a->tries[r->index] = r->tries;
    a->ttft[r->index] = r->ttft_s;
    a->lat[r->index] = r->latency_s;
    free(a->text[r->index]);
    a->text[r->index] = strdup(r->text);
    if (!r->ok) fprintf(stderr, "request %zu failed after %d tries: %s\n", r->index, r->tries, r->error);
}

static int cmp_d(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double pct(double *v, size_t n, double p) {
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

typedef struct {
    srv_server **srv;
    srv_backend *be;
    srv_opts so;
    long at_ms;
    int ok;
} restarter;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *restart_thread(void *arg) {
    restarter *r = arg;
    char err[256];
    sleep_ms(r->at_ms);
    srv_stop(*r->srv);
    *r->srv = NULL;
    sleep_ms(200);
    *r->srv = srv_start(&r->so, r->be, err, sizeof err);
    r->ok = *r->srv != NULL;
    if (!r->ok) fprintf(stderr, "bench_serve: restart failed: %s\n", err);
    return NULL;
}

/* One run: n requests, `workers` in flight, against url; with restart_ms >= 0
 * the in-process server *srv (backend be, options so) is restarted then.
 * Prints the figures; returns 0 when nothing was lost, duplicated, failed or
 * malformed. */
static int bench_run(const char *url, const char *model, const char *key, int n, int workers,
                     srv_backend *be, srv_server **srv, const srv_opts *so, long restart_ms) {
    char err[256];
    restarter rs = {srv, be, {0}, restart_ms, 1};
    if (so) rs.so = *so;
    pthread_t rt;
    bias_client_opts co;
    bias_client_opts_init(&co);
    co.base_url = url;
    co.model = model;
    co.api_key = key;
    co.max_workers = workers;
    co.timeout_s = 120;
    bias_client *c = bias_client_create(&co, err, sizeof err);
    if (!c) { fprintf(stderr, "bench_serve: %s\n", err); return 1; }
    char (*prompts)[96] = calloc((size_t)n, sizeof *prompts);
    bias_client_req *q = calloc((size_t)n, sizeof *q);
    acc a = {calloc((size_t)n, sizeof(int)), calloc((size_t)n, sizeof(int)), calloc((size_t)n, sizeof(int)),
             calloc((size_t)n, sizeof(int)), calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(char *))};
    for (int i = 0; i < n; i++) {
        snprintf(prompts[i], sizeof prompts[i], "Stock T%d: buy or sell? Answer in JSON.", i);
        q[i] = (bias_client_req){NULL, prompts[i], 0.6, 0.8, 1024, 7 + i, 1};
    }
    double t0 = now_s();
    if (restart_ms >= 0) pthread_create(&rt, NULL, restart_thread, &rs);
    int rc = bias_client_run(c, q, (size_t)n, on_result, &a, err, sizeof err);
    double dt = now_s() - t0;
    if (restart_ms >= 0) pthread_join(rt, NULL);
    bias_client_free(c);
    if (rc < 0) fprintf(stderr, "bench_serve: %s\n", err);
    int lost = 0, dup = 0, failed = 0, wrong = 0;
    long toks = 0;
    for (int i = 0; i < n; i++) {
        if (a.seen[i] == 0) lost++;
        if (a.seen[i] > 1) dup++;
        if (a.seen[i] && !a.ok[i]) failed++;
        if (a.ok[i]) {
            toks += a.ctoks[i] > 0 ? a.ctoks[i] : 0;
            cJSON *j = cJSON_Parse(a.text[i]);
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "decision"))) wrong++;
            cJSON_Delete(j);
        }
    }
    int tries_total = 0, retried = 0;
    for (int i = 0; i < n; i++) { tries_total += a.tries[i]; retried += a.tries[i] > 1; }
    printf("bench_serve: %d streaming chat requests, %d in flight, against %s%s\n", n, workers, url,
           be ? " (engine/serve, mock backend, in-process)" : "");
    if (restart_ms >= 0)
        printf("  server restarted at %ld ms: %d requests retried (%d tries in all)\n", restart_ms, retried, tries_total);
    printf("  wall %.2f s: %.0f requests/s, %.0f output tokens/s\n", dt, n / dt, toks / dt);
    printf("  TTFT p50 %.1f ms, p99 %.1f ms; latency p50 %.1f ms, p99 %.1f ms\n",
           1e3 * pct(a.ttft, (size_t)n, 50), 1e3 * pct(a.ttft, (size_t)n, 99),
           1e3 * pct(a.lat, (size_t)n, 50), 1e3 * pct(a.lat, (size_t)n, 99));
    printf("  lost %d, duplicated %d, failed %d, not a decision %d   (target: all 0)\n", lost, dup, failed, wrong);
    for (int i = 0; i < n; i++) free(a.text[i]);
    free(a.seen); free(a.ok); free(a.ctoks); free(a.tries); free(a.ttft); free(a.lat); free(a.text);
    free(q); free(prompts);
    return rc < 0 || lost || dup || failed || wrong || !rs.ok ? 1 : 0;
}

int main(int argc, char **argv) {
    int n = 2048, workers = 512;
    double delay_ms = 2;
    long restart_ms = -1;
    const char *url = NULL, *model = "mock", *key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: bench_serve [--requests N] [--workers W] [--token-delay-ms X] "
                   "[--restart-at-ms T] [--url URL --model NAME [--api-key KEY]]\n");
            return 0;
        }
        if (!v) { fprintf(stderr, "bench_serve: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--requests")) n = atoi(v);
        else if (!strcmp(a, "--workers")) workers = atoi(v);
        else if (!strcmp(a, "--token-delay-ms")) delay_ms = atof(v);
        else if (!strcmp(a, "--restart-at-ms")) restart_ms = atol(v);
        else if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--api-key")) key = v;
        else { fprintf(stderr, "bench_serve: unknown option %s\n", a); return 2; }
        i++;
    }
    if (restart_ms >= 0 && url) { fprintf(stderr, "bench_serve: --restart-at-ms needs the in-process server\n"); return 2; }
    if (n < 1 || workers < 1) { fprintf(stderr, "bench_serve: --requests and --workers must be >= 1\n"); return 2; }
    /* two descriptors per connection (client and server side) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char err[256], base[128];
    srv_backend *be = NULL;
    srv_server *srv = NULL;
    srv_opts so;
    srv_opts_init(&so);
    if (!url) {
        srv_mock_opts mo;
        srv_mock_opts_init(&mo);
        mo.token_delay_us = (int)(delay_ms * 1000);
        mo.max_num_seqs = workers;
        if (!(be = srv_mock_create(&mo, err, sizeof err))) { fprintf(stderr, "bench_serve: %s\n", err); return 1; }
        so.port = 0;
        so.conn_limit = (unsigned)workers + 64;
        if (!(srv = srv_start(&so, be, err, sizeof err))) { fprintf(stderr, "bench_serve: %s\n", err); return 1; }
        snprintf(base, sizeof base, "http://127.0.0.1:%d", srv_port(srv));
        url = base;
        so.port = srv_port(srv);             /* a restart comes back on the same port */
    }
    int rc = bench_run(url, model, key, n, workers, be, &srv, &so, restart_ms);
    if (!rc && be && restart_ms < 0) {       /* the default: a second run, restarted mid-way */
        printf("and again, with the server restarted 300 ms into the run:\n");
        rc = bench_run(url, model, key, n, workers, be, &srv, &so, 300);
    }
    srv_stop(srv);
    if (be) be->destroy(be);
    return rc;
}
