/* tp_group: see tp_group.h.  Processes, not threads: a rank that dies (out
 * of memory, a bad shard, a NCCL error, or SIGKILL from outside) must stop
 * the engine with a message that names it, and a thread cannot be killed or
 * die alone.  Touches: fork, its own sockets and children, one shared
 * mapping.  Never prints. */
#include "engine/tp_group.h"
#include "base/errbuf.h"
#include "base/clock.h"
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tp_group {
    int     size, rank;
    int    *fd;                  /* rank 0: (size,) socket to worker r; worker: fd[0] its socket to rank 0 */
    pid_t  *pid;                 /* rank 0: (size,) */
    int    *alive;               /* rank 0: (size,) 1 until reaped */
    void   *mailbox;             /* shared, mbytes */
    size_t  mbytes;
    int64_t seq;
    int     failed;              /* rank 0: a worker died or reported an error (sticky) */
    char    why[TP_MSG_TEXT + 128];
};

int tp_group_rank(const tp_group *g) { return g->rank; }
int tp_group_size(const tp_group *g) { return g->size; }
long tp_group_pid(const tp_group *g, int rank) {
    return g->rank == 0 && rank > 0 && rank < g->size ? (long)g->pid[rank] : 0;
}
void *tp_group_mailbox(tp_group *g, size_t *n) { if (n) *n = g->mbytes; return g->mailbox; }

static void group_free(tp_group *g) {
    if (!g) return;
    for (int r = 0; g->fd && r < g->size; r++) if (g->fd[r] >= 0) close(g->fd[r]);
    if (g->mailbox) munmap(g->mailbox, g->mbytes);
    free(g->fd); free(g->pid); free(g->alive);
    free(g);
}

/* in the child: never returns */
static void worker_main(tp_group *g, int (*sv)[2], int r, pid_t parent, tp_worker_fn fn, void *ctx) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);        /* rank 0 gone: so are we, even inside a collective */
    if (getppid() != parent) _exit(3);       /* it went before prctl took effect */
    for (int k = 1; k < g->size; k++) {      /* keep only our own end of our own socket */
        if (g->fd[k] >= 0) close(g->fd[k]);  /* rank 0's ends towards the workers forked before us */
        g->fd[k] = -1;
        if (k > r) { close(sv[k][0]); close(sv[k][1]); }
    }
    close(sv[r][0]);
    g->fd[0] = sv[r][1];
    g->rank = r;
    char err[TP_MSG_TEXT] = "";
    int rc = fn(g, ctx, err, sizeof err);
    if (rc) {
        tp_msg m;
        memset(&m, 0, sizeof m);
        m.kind = TP_MSG_ERROR;
        snprintf(m.text, sizeof m.text, "%s", err[0] ? err : "failed without a message");
        tp_group_reply(g, &m);
    }
    _exit(rc ? 1 : 0);
}

int tp_group_start(tp_group **out, int size, size_t mailbox_bytes, tp_worker_fn fn, void *ctx,
                   char *err, size_t errlen) {
    *out = NULL;
    if (size < 1 || size > 1024) return errbuf_fail(err, errlen, "tensor-parallel size %d (1 to 1024)", size);
    tp_group *g = calloc(1, sizeof *g);
    int (*sv)[2] = calloc((size_t)size, sizeof *sv);
    if (!g || !sv) { free(g); free(sv); return errbuf_fail(err, errlen, "out of memory"); }
    g->size = size;
    g->fd = malloc(sizeof *g->fd * (size_t)size);
    g->pid = calloc((size_t)size, sizeof *g->pid);
    g->alive = calloc((size_t)size, sizeof *g->alive);
    g->mbytes = mailbox_bytes ? mailbox_bytes : 4096;
    g->mailbox = mmap(NULL, g->mbytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g->mailbox == MAP_FAILED) g->mailbox = NULL;
    int rc = 0;
    if (!g->fd || !g->pid || !g->alive || !g->mailbox) rc = errbuf_fail(err, errlen, "out of memory (mailbox of %zu bytes)", g->mbytes);
    for (int r = 0; g->fd && r < size; r++) { g->fd[r] = -1; sv[r][0] = sv[r][1] = -1; }
    for (int r = 1; r < size && !rc; r++)
        if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv[r]))
            rc = errbuf_fail(err, errlen, "tensor parallelism: socketpair: %s", strerror(errno));
    fflush(NULL);                            /* the children must not write our buffered output again */
    pid_t parent = getpid();
    for (int r = 1; r < size && !rc; r++) {
        pid_t p = fork();
        if (p < 0) { rc = errbuf_fail(err, errlen, "tensor parallelism: fork of rank %d: %s", r, strerror(errno)); break; }
        if (p == 0) worker_main(g, sv, r, parent, fn, ctx);
        g->pid[r] = p;
        g->alive[r] = 1;
        close(sv[r][1]);
        g->fd[r] = sv[r][0];
        sv[r][0] = sv[r][1] = -1;
    }
    for (int r = 1; r < size; r++) {
        if (sv[r][0] >= 0) close(sv[r][0]);
        if (sv[r][1] >= 0) close(sv[r][1]);
    }
    free(sv);
    if (rc) {
        g->failed = 1;
        tp_group_stop(g, 0);
        return -1;
    }
    *out = g;
    return 0;
}

/* a dead worker's last words: the first TP_MSG_ERROR left on its socket */
static void last_words(tp_group *g, int r, char *text, size_t n) {
    tp_msg m;
    text[0] = 0;
    while (recv(g->fd[r], &m, sizeof m, MSG_DONTWAIT) == (ssize_t)sizeof m)
        if (m.kind == TP_MSG_ERROR) {
            m.text[TP_MSG_TEXT - 1] = 0;
            snprintf(text, n, ": %s", m.text);
            return;
        }
}

static int fail_sticky(tp_group *g, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_sticky(tp_group *g, char *err, size_t errlen, const char *fmt, ...) {
    if (!g->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->why, sizeof g->why, fmt, ap);
        va_end(ap);
        g->failed = 1;
    }
    return errbuf_fail(err, errlen, "%s", g->why);
}

int tp_group_check(tp_group *g, char *err, size_t errlen) {
    if (g->failed) return errbuf_fail(err, errlen, "%s", g->why);
    for (int r = 1; r < g->size; r++) {
        if (!g->alive[r]) continue;
        int st = 0;
        if (waitpid(g->pid[r], &st, WNOHANG) != g->pid[r]) continue;
        g->alive[r] = 0;
        char words[TP_MSG_TEXT + 4];
        last_words(g, r, words, sizeof words);
        if (WIFSIGNALED(st))
            return fail_sticky(g, err, errlen, "tensor-parallel rank %d (pid %d) was killed by signal %d (%s)%s", r,
                               (int)g->pid[r], WTERMSIG(st), strsignal(WTERMSIG(st)), words);
        return fail_sticky(g, err, errlen, "tensor-parallel rank %d (pid %d) exited with status %d%s", r,
                           (int)g->pid[r], WEXITSTATUS(st), words[0] ? words : " without a message");
    }
    return 0;
}

/* sends m to worker r without ever blocking for long on a worker that stopped reading */
static int send_to(tp_group *g, int r, const tp_msg *m, char *err, size_t errlen) {
    for (;;) {
        ssize_t n = send(g->fd[r], m, sizeof *m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t)sizeof *m) return 0;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {g->fd[r], POLLOUT, 0};
            poll(&p, 1, 10);
            if (tp_group_check(g, err, errlen)) return -1;
            continue;
        }
        if (tp_group_check(g, err, errlen)) return -1;
        /* the socket broke but the process has not been reaped yet: give it a moment */
        for (int i = 0; i < 100; i++) {
            usleep(10000);
            if (tp_group_check(g, err, errlen)) return -1;
        }
        return fail_sticky(g, err, errlen, "tensor-parallel rank %d (pid %d): cannot send: %s", r, (int)g->pid[r],
                           strerror(errno));
    }
}

int tp_group_post(tp_group *g, tp_msg *m, char *err, size_t errlen) {
    if (g->rank != 0) return errbuf_fail(err, errlen, "tp_group_post on rank %d", g->rank);
    if (tp_group_check(g, err, errlen)) return -1;
    m->rank = 0;
    m->seq = g->seq++;
    for (int r = 1; r < g->size; r++)
        if (send_to(g, r, m, err, errlen)) return -1;
    return 0;
}

int tp_group_recv(tp_group *g, tp_msg *m, char *err, size_t errlen) {
    for (;;) {
        ssize_t n = recv(g->fd[0], m, sizeof *m, 0);
        if (n == (ssize_t)sizeof *m) { m->text[TP_MSG_TEXT - 1] = 0; return 0; }
        if (n < 0 && errno == EINTR) continue;
        return errbuf_fail(err, errlen, "tensor-parallel rank %d: rank 0 went away (%s)", g->rank,
                           n == 0 ? "connection closed" : strerror(errno));
    }
}

int tp_group_reply(tp_group *g, tp_msg *m) {
    m->rank = g->rank;
    for (;;) {
        ssize_t n = send(g->fd[0], m, sizeof *m, MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof *m) return 0;
        if (n < 0 && errno == EINTR) continue;
        return -1;
    }
}

int tp_group_gather(tp_group *g, int kind, int64_t *vals, double timeout_s, char *err, size_t errlen) {
    if (g->rank != 0) return errbuf_fail(err, errlen, "tp_group_gather on rank %d", g->rank);
    int left = g->size - 1;
    char *got = calloc((size_t)g->size, 1);
    struct pollfd *p = calloc((size_t)g->size, sizeof *p);
    if (!got || !p) { free(got); free(p); return errbuf_fail(err, errlen, "out of memory"); }
    double deadline = clock_now_s() + timeout_s;
    int rc = 0;
    while (left > 0 && !rc) {
        int np = 0;
        for (int r = 1; r < g->size; r++)
            if (!got[r]) p[np++] = (struct pollfd){g->fd[r], POLLIN, 0};
        poll(p, (nfds_t)np, 20);
        for (int r = 1; r < g->size && !rc; r++) {
            tp_msg m;
            if (got[r]) continue;
            ssize_t n = recv(g->fd[r], &m, sizeof m, MSG_DONTWAIT);
            if (n != (ssize_t)sizeof m) continue;            /* nothing yet, or EOF: tp_group_check says */
            m.text[TP_MSG_TEXT - 1] = 0;
            if (m.kind == TP_MSG_ERROR)
                rc = fail_sticky(g, err, errlen, "tensor-parallel rank %d (pid %d): %s", r, (int)g->pid[r], m.text);
            else if (m.kind != kind)
                rc = fail_sticky(g, err, errlen, "tensor-parallel rank %d sent message kind %d, expected %d", r,
                                 m.kind, kind);
            else {
                if (vals) vals[r] = m.arg[0];
                got[r] = 1;
                left--;
            }
        }
        if (!rc && tp_group_check(g, err, errlen)) rc = -1;
        if (!rc && left > 0 && clock_now_s() > deadline) {
            int r = 1;
            while (got[r]) r++;
            rc = fail_sticky(g, err, errlen, "tensor-parallel rank %d (pid %d) did not answer within %.0f s", r,
                             (int)g->pid[r], timeout_s);
        }
    }
    free(got);
    free(p);
    return rc;
}

int tp_group_stop(tp_group *g, double grace_s) {
    if (!g) return 0;
    int rc = 0;
    if (g->rank == 0) {
        if (!g->failed) {
            tp_msg m;
            memset(&m, 0, sizeof m);
            m.kind = TP_MSG_QUIT;
            char err[64];
            if (tp_group_post(g, &m, err, sizeof err)) rc = -1;
        }
        double deadline = clock_now_s() + (g->failed ? 0 : grace_s);
        for (;;) {
            int left = 0;
            for (int r = 1; r < g->size; r++) {
                int st = 0;
                if (g->alive[r] && waitpid(g->pid[r], &st, WNOHANG) == g->pid[r]) {
                    g->alive[r] = 0;
                    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = -1;
                }
                left += g->alive[r];
            }
            if (!left || clock_now_s() >= deadline) break;
            usleep(2000);
        }
        for (int r = 1; r < g->size; r++)
            if (g->alive[r]) {                /* our own children, stuck (in a collective with a dead peer) */
                kill(g->pid[r], SIGKILL);
                waitpid(g->pid[r], NULL, 0);
                g->alive[r] = 0;
                rc = -1;
            }
        if (g->failed) rc = -1;
    }
    group_free(g);
    return rc;
}
