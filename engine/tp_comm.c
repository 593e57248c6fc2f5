/* tp_comm: see tp_comm.h.  One process per rank (engine/tp_group.c says why),
 * so ranks meet through ncclCommInitRankConfig with an id that rank 0 sends
 * over the group's sockets (ncclCommInitAll would need one process driving
 * every GPU).  The communicator is non-blocking: initialisation and each
 * call that returns ncclInProgress are polled with ncclCommGetAsyncError, so
 * no NCCL call waits forever on a rank that is gone.  Touches the GPU of its
 * rank, NCCL, and the NCCL_NVLS_ENABLE environment variable. */
#include "engine/tp_comm.h"
#include "base/errbuf.h"
#include "base/clock.h"
#include <errno.h>
#include <stdarg.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#if defined(PAGESIM_HAVE_CUDA) && defined(PAGESIM_HAVE_NCCL)
#include <nccl.h>
#endif

/* ---- counting GPUs without initialising CUDA here ---- */
int tp_device_count(int *n, char *err, size_t errlen) {
    *n = 0;
#ifndef PAGESIM_HAVE_CUDA
    return errbuf_fail(err, errlen, "the engine was built without CUDA (no nvcc)");
#else
    struct { int n; char msg[240]; } ans = {0, ""};
    int p[2];
    if (pipe(p)) return errbuf_fail(err, errlen, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { close(p[0]); close(p[1]); return errbuf_fail(err, errlen, "fork: %s", strerror(errno)); }
    if (pid == 0) {                          /* the probe: CUDA starts and ends in this child */
        close(p[0]);
        cudaError_t e = cudaGetDeviceCount(&ans.n);
        if (e != cudaSuccess) {
            ans.n = 0;
            snprintf(ans.msg, sizeof ans.msg, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        }
        _exit(write(p[1], &ans, sizeof ans) == (ssize_t)sizeof ans ? 0 : 1);
    }
    close(p[1]);
    ssize_t got;
    do got = read(p[0], &ans, sizeof ans); while (got < 0 && errno == EINTR);
    close(p[0]);
    waitpid(pid, NULL, 0);
    if (got != (ssize_t)sizeof ans) return errbuf_fail(err, errlen, "counting GPUs: the probe process failed");
    ans.msg[sizeof ans.msg - 1] = 0;
    *n = ans.n;
    if (ans.msg[0]) return errbuf_fail(err, errlen, "%s", ans.msg);
    return 0;
#endif
}

int tp_check_size(int n, char *err, size_t errlen) {
    char why[256] = "";
    int have = 0;
    if (n < 1) return errbuf_fail(err, errlen, "tensor-parallel size %d (at least 1)", n);
#ifndef PAGESIM_HAVE_CUDA
    return errbuf_fail(err, errlen, "tensor-parallel size %d needs the CUDA engine, and this build has none (no nvcc)", n);
#endif
    if (tp_device_count(&have, why, sizeof why) || have < n) {
        char shows[32];
        if (have) snprintf(shows, sizeof shows, "%d", have);
        return errbuf_fail(err, errlen, "tensor-parallel size %d needs %d GPU%s, but this machine shows %s%s%s%s", n,
                           n, n > 1 ? "s" : "", have ? shows : "none", why[0] ? " (" : "", why, why[0] ? ")" : "");
    }
#ifndef PAGESIM_HAVE_NCCL
    return errbuf_fail(err, errlen, "tensor-parallel size %d needs NCCL, and this build has none "
                       "(no nccl.h found: see the Makefile's NCCL_HOME)", n);
#endif
    return 0;
}

#if defined(PAGESIM_HAVE_CUDA) && defined(PAGESIM_HAVE_NCCL)
struct tp_comm {
    int rank, size;
    tp_group *g;
    ncclComm_t nccl;
    double timeout_s;
    int failed;
    int *dint;                   /* (1,) device scratch for tp_min_int */
    char why[768];
};

int tp_comm_rank(const tp_comm *c) { return c->rank; }
int tp_comm_size(const tp_comm *c) { return c->size; }

static int comm_fail(tp_comm *c, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int comm_fail(tp_comm *c, char *err, size_t errlen, const char *fmt, ...) {
    if (!c->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof c->why, fmt, ap);
        va_end(ap);
        c->failed = 1;
        if (c->nccl) ncclCommAbort(c->nccl);  /* ends the kernels still waiting for a peer */
        c->nccl = NULL;
    }
    return errbuf_fail(err, errlen, "%s", c->why);
}

/* A NCCL error on rank 0 is often a rank that just died (its sockets close a
 * moment before it can be reaped): give the group 200 ms to name it. */
static int nccl_error(tp_comm *c, char *err, size_t errlen, const char *what, ncclResult_t r) {
    char why[640];
    for (int i = 0; c->rank == 0 && c->g && i < 200; i++) {
        if (tp_group_check(c->g, why, sizeof why))
            return comm_fail(c, err, errlen, "%s (NCCL: %s)", why, ncclGetErrorString(r));
        usleep(1000);
    }
    return comm_fail(c, err, errlen, "tensor-parallel rank %d: %s: %s (%s)", c->rank, what, ncclGetErrorString(r),
                     c->nccl ? ncclGetLastError(c->nccl) : "");
}

/* rank 0: the other ranks' processes; any rank: NCCL's asynchronous error */
static int peers_ok(tp_comm *c, char *err, size_t errlen) {
    char why[640];
    ncclResult_t a = ncclSuccess;
    if (c->rank == 0 && c->g && tp_group_check(c->g, why, sizeof why))
        return comm_fail(c, err, errlen, "%s", why);
    if (c->nccl && ncclCommGetAsyncError(c->nccl, &a) == ncclSuccess && a != ncclSuccess && a != ncclInProgress)
        return nccl_error(c, err, errlen, "NCCL error", a);
    return 0;
}

/* after a NCCL call on the non-blocking communicator: its result, polled while in progress */
static int nccl_done(tp_comm *c, ncclResult_t r, const char *what, char *err, size_t errlen) {
    double t0 = clock_now_s();
    while (r == ncclInProgress) {
        if (ncclCommGetAsyncError(c->nccl, &r) != ncclSuccess) break;
        if (r != ncclInProgress) break;
        if (peers_ok(c, err, errlen)) return -1;
        double dt = clock_now_s() - t0;
        if (dt > c->timeout_s)
            return comm_fail(c, err, errlen, "tensor-parallel rank %d: %s did not complete within %.0f s", c->rank,
                             what, c->timeout_s);
        if (dt < 2e-3) sched_yield();        /* an enqueue that is nearly done: stay close (once per layer) */
        else usleep(100);
    }
    if (r != ncclSuccess) return nccl_error(c, err, errlen, what, r);
    return 0;
}

int tp_comm_init(tp_comm **out, tp_group *g, double timeout_s, char *err, size_t errlen) {
    *out = NULL;
    tp_comm *c = calloc(1, sizeof *c);
    if (!c) return errbuf_fail(err, errlen, "out of memory");
    c->g = g;
    c->rank = tp_group_rank(g);
    c->size = tp_group_size(g);
    c->timeout_s = timeout_s > 0 ? timeout_s : 300;
    /* NVLink multicast stays off on these shared machines, whatever the caller's environment says */
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    int ndev = 0;
    cudaError_t ce = cudaGetDeviceCount(&ndev);
    if (ce != cudaSuccess || ndev < c->size || cudaSetDevice(c->rank) != cudaSuccess ||
        cudaMalloc((void **)&c->dint, sizeof(int)) != cudaSuccess) {
        errbuf_fail(err, errlen, "tensor-parallel rank %d: cannot use GPU %d (%d GPUs: %s)", c->rank, c->rank, ndev,
                    cudaGetErrorString(ce != cudaSuccess ? ce : cudaGetLastError()));
        tp_comm_free(c);
        return -1;
    }
    ncclUniqueId id;
    tp_msg m;
    memset(&m, 0, sizeof m);
    _Static_assert(sizeof id <= sizeof m.text, "the NCCL id fits one message");
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) {
            errbuf_fail(err, errlen, "ncclGetUniqueId: %s", ncclGetErrorString(r));
            tp_comm_free(c);
            return -1;
        }
        m.kind = TP_MSG_NCCL_ID;
        memcpy(m.text, &id, sizeof id);
        if (tp_group_post(g, &m, err, errlen)) { tp_comm_free(c); return -1; }
    } else {
        if (tp_group_recv(g, &m, err, errlen)) { tp_comm_free(c); return -1; }
        if (m.kind != TP_MSG_NCCL_ID) {
            errbuf_fail(err, errlen, "tensor-parallel rank %d: expected the NCCL id, got message kind %d", c->rank, m.kind);
            tp_comm_free(c);
            return -1;
        }
        memcpy(&id, m.text, sizeof id);
    }
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&c->nccl, c->size, id, c->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) c->nccl = NULL;
    if (nccl_done(c, r, "ncclCommInitRankConfig", err, errlen)) { tp_comm_free(c); return -1; }
    *out = c;
    return 0;
}

int tp_allreduce(tp_comm *c, k_bf16 *x, size_t n, cudaStream_t s, char *err, size_t errlen) {
    if (c->failed) return errbuf_fail(err, errlen, "%s", c->why);
    if (n == 0) return 0;
    return nccl_done(c, ncclAllReduce(x, x, n, ncclBfloat16, ncclSum, c->nccl, s), "all-reduce", err, errlen);
}

int tp_gather_logits(tp_comm *c, float *out, const float *shard, float *staging, int R, int rows, int V,
                     cudaStream_t s, char *err, size_t errlen) {
    if (c->failed) return errbuf_fail(err, errlen, "%s", c->why);
    if (R <= 0) return 0;
    size_t n = (size_t)R * rows;
    if (c->rank != 0)
        return nccl_done(c, ncclSend(shard, n, ncclFloat32, 0, c->nccl, s), "logits send", err, errlen);
    if (c->size > 1) {
        ncclGroupStart();
        for (int r = 1; r < c->size; r++) ncclRecv(staging + (size_t)(r - 1) * n, n, ncclFloat32, r, c->nccl, s);
        if (nccl_done(c, ncclGroupEnd(), "logits gather", err, errlen)) return -1;
    }
    if (c->size == 1 && out == shard && rows == V) return 0;
    for (int r = 0; r < c->size; r++) {      /* (N, R, rows) -> (R, V): rank r's columns at r * rows */
        int w = V - r * rows < rows ? V - r * rows : rows;
        if (w <= 0) break;
        const float *src = r == 0 ? shard : staging + (size_t)(r - 1) * n;
        cudaError_t e = cudaMemcpy2DAsync(out + (size_t)r * rows, (size_t)V * 4, src, (size_t)rows * 4,
                                          (size_t)w * 4, (size_t)R, cudaMemcpyDeviceToDevice, s);
        if (e != cudaSuccess)
            return comm_fail(c, err, errlen, "tensor-parallel rank 0: logits copy: %s", cudaGetErrorString(e));
    }
    return 0;
}

int tp_sync(tp_comm *c, cudaStream_t s, char *err, size_t errlen) {
    if (c->failed) return errbuf_fail(err, errlen, "%s", c->why);
    double t0 = clock_now_s(), last = t0;
    for (;;) {
        cudaError_t e = cudaStreamQuery(s);
        if (e == cudaSuccess) return 0;
        if (e != cudaErrorNotReady)
            return comm_fail(c, err, errlen, "tensor-parallel rank %d (GPU %d): %s", c->rank, c->rank,
                             cudaGetErrorString(e));
        double t = clock_now_s();
        if (t - last > 1e-3) {               /* the other ranks and NCCL, once a millisecond */
            last = t;
            if (peers_ok(c, err, errlen)) return -1;
            if (t - t0 > c->timeout_s)
                return comm_fail(c, err, errlen, "tensor-parallel rank %d: the GPU work did not finish within %.0f s "
                                 "(a rank stopped taking part in the collectives?)", c->rank, c->timeout_s);
        }
        if (t - t0 < 2e-3) sched_yield();    /* short steps: stay close */
        else usleep(50);
    }
}

int tp_min_int(tp_comm *c, int v, int *out, cudaStream_t s, char *err, size_t errlen) {
    if (c->failed) return errbuf_fail(err, errlen, "%s", c->why);
    /* the copy back after tp_sync: a copy into pageable memory would wait, unpolled, behind the collective */
    if (cudaMemcpyAsync(c->dint, &v, sizeof v, cudaMemcpyHostToDevice, s) != cudaSuccess ||
        nccl_done(c, ncclAllReduce(c->dint, c->dint, 1, ncclInt32, ncclMin, c->nccl, s), "min", err, errlen) ||
        tp_sync(c, s, err, errlen) || cudaMemcpy(out, c->dint, sizeof *out, cudaMemcpyDeviceToHost) != cudaSuccess)
        return c->failed ? -1 : comm_fail(c, err, errlen, "tensor-parallel rank %d: %s", c->rank,
                                           cudaGetErrorString(cudaGetLastError()));
    return 0;
}

void tp_comm_free(tp_comm *c) {
    if (!c) return;
    /* Abort, not Finalize + Destroy: after the last wait nothing is in flight,
     * and abort tears down locally, so no rank's exit waits on another's
     * (rank 0 frees before it tells the workers to quit). */
    if (c->nccl) ncclCommAbort(c->nccl);     /* also ends a kernel still waiting for a dead peer */
    if (c->dint) cudaFree(c->dint);
    free(c);
}
#else  /* no NCCL (or no CUDA): tensor parallelism says so */
struct tp_comm { int rank; };
int tp_comm_rank(const tp_comm *c) { (void)c; return 0; }
int tp_comm_size(const tp_comm *c) { (void)c; return 1; }
int tp_comm_init(tp_comm **out, tp_group *g, double timeout_s, char *err, size_t errlen) {
    (void)g; (void)timeout_s;
    *out = NULL;
    return errbuf_fail(err, errlen, "tensor parallelism needs NCCL and CUDA, and this build has %s",
#ifdef PAGESIM_HAVE_CUDA
                       "no NCCL"
#else
                       "no CUDA"
#endif
                       );
}
int tp_allreduce(tp_comm *c, k_bf16 *x, size_t n, cudaStream_t s, char *err, size_t errlen) {
    (void)c; (void)x; (void)n; (void)s; return errbuf_fail(err, errlen, "no NCCL");
}
int tp_gather_logits(tp_comm *c, float *out, const float *shard, float *staging, int R, int rows, int V,
                     cudaStream_t s, char *err, size_t errlen) {
    (void)c; (void)out; (void)shard; (void)staging; (void)R; (void)rows; (void)V; (void)s;
    return errbuf_fail(err, errlen, "no NCCL");
}
int tp_min_int(tp_comm *c, int v, int *out, cudaStream_t s, char *err, size_t errlen) {
    (void)c; (void)s; *out = v; return errbuf_fail(err, errlen, "no NCCL");
}
int tp_sync(tp_comm *c, cudaStream_t s, char *err, size_t errlen) {
    (void)c; (void)s; return errbuf_fail(err, errlen, "no NCCL");
}
void tp_comm_free(tp_comm *c) { (void)c; }
#endif
