/* Tests of the tensor-parallel process group (engine/tp_group.h), no GPU:
 * workers get rank 0's messages and the shared mailbox and answer; a worker
 * that fails at start is reported with its own message; a worker killed by
 * SIGKILL (issue 14's test) is named, with its signal, within a second, and
 * nothing hangs; workers die with rank 0; stop reaps every worker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <signal.h>
#include <errno.h>
#include <time.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/tp_group.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

enum { SUM = TP_MSG_USER };

/* a worker: READY with its pid, then for each SUM the sum of the mailbox's
 * arg[0] ints times its rank, until QUIT */
static int echo_worker(tp_group *g, void *ctx, char *err, size_t errlen) {
    (void)ctx;
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = TP_MSG_READY;
    m.arg[0] = getpid();
    if (tp_group_reply(g, &m)) return -1;
    for (;;) {
        if (tp_group_recv(g, &m, err, errlen)) return -1;
        if (m.kind == TP_MSG_QUIT) return 0;
        const int32_t *x = tp_group_mailbox(g, NULL);
        int64_t s = 0;
        for (int64_t i = 0; i < m.arg[0]; i++) s += x[i];
        m.kind = SUM;
        m.arg[0] = s * tp_group_rank(g);
        if (tp_group_reply(g, &m)) return -1;
    }
}

static void test_messages_and_mailbox(void **st) {
    (void)st;
    char err[512];
    tp_group *g;
    assert_int_equal(tp_group_start(&g, 4, 1 << 16, echo_worker, NULL, err, sizeof err), 0);
    assert_int_equal(tp_group_rank(g), 0);
    assert_int_equal(tp_group_size(g), 4);
    int64_t pids[4] = {0}, sums[4] = {0};
    assert_int_equal(tp_group_gather(g, TP_MSG_READY, pids, 10, err, sizeof err), 0);
    for (int r = 1; r < 4; r++) assert_true(pids[r] > 0 && pids[r] != getpid());
    size_t n;
    int32_t *x = tp_group_mailbox(g, &n);
    assert_true(n >= 1 << 16);
    for (int step = 1; step <= 50; step++) {
        for (int i = 0; i < 1000; i++) x[i] = i * step;
        tp_msg m;
        memset(&m, 0, sizeof m);
        m.kind = SUM;
        m.arg[0] = 1000;
        assert_int_equal(tp_group_post(g, &m, err, sizeof err), 0);
        assert_int_equal(tp_group_gather(g, SUM, sums, 10, err, sizeof err), 0);
        for (int r = 1; r < 4; r++) assert_int_equal(sums[r], (int64_t)499500 * step * r);
    }
    assert_int_equal(tp_group_check(g, err, sizeof err), 0);
    assert_int_equal(tp_group_stop(g, 5), 0);                 /* every worker quit with status 0 */
    for (int r = 1; r < 4; r++) assert_int_equal(kill((pid_t)pids[r], 0), -1);   /* and was reaped */
}

static int failing_worker(tp_group *g, void *ctx, char *err, size_t errlen) {
    (void)ctx;
    if (tp_group_rank(g) == 2)
        return snprintf(err, errlen, "cannot read shard model-00003-of-00004.safetensors"), -1;
    return echo_worker(g, ctx, err, errlen);
}

static void test_worker_error_is_reported(void **st) {
    (void)st;
    char err[512];
    tp_group *g;
    assert_int_equal(tp_group_start(&g, 3, 0, failing_worker, NULL, err, sizeof err), 0);
    assert_int_equal(tp_group_gather(g, TP_MSG_READY, NULL, 10, err, sizeof err), -1);
    assert_non_null(strstr(err, "tensor-parallel rank 2"));
    assert_non_null(strstr(err, "model-00003-of-00004"));
    tp_msg m;
    memset(&m, 0, sizeof m);
    m.kind = SUM;
    assert_int_equal(tp_group_post(g, &m, err, sizeof err), -1);   /* the failure sticks */
    assert_non_null(strstr(err, "rank 2"));
    assert_int_equal(tp_group_stop(g, 5), -1);
}

/* issue 14, item 5: SIGKILL to one worker while rank 0 waits on it */
static void test_killed_worker(void **st) {
    (void)st;
    char err[512];
    tp_group *g;
    assert_int_equal(tp_group_start(&g, 3, 4096, echo_worker, NULL, err, sizeof err), 0);
    int64_t pids[3] = {0};
    assert_int_equal(tp_group_gather(g, TP_MSG_READY, pids, 10, err, sizeof err), 0);
    assert_int_equal(kill((pid_t)pids[1], SIGKILL), 0);
    double t0 = now_s();
    int rc = 0;
    while (!(rc = tp_group_check(g, err, sizeof err)) && now_s() - t0 < 5) usleep(1000);
    assert_int_equal(rc, -1);
    assert_true(now_s() - t0 < 1.0);
    assert_non_null(strstr(err, "tensor-parallel rank 1"));
    assert_non_null(strstr(err, "killed by signal 9"));
    char pid[32];
    snprintf(pid, sizeof pid, "pid %lld", (long long)pids[1]);
    assert_non_null(strstr(err, pid));
    /* waiting for an answer from the dead rank ends at once, naming it */
    t0 = now_s();
    assert_int_equal(tp_group_gather(g, SUM, NULL, 30, err, sizeof err), -1);
    assert_true(now_s() - t0 < 1.0);
    assert_non_null(strstr(err, "rank 1"));
    assert_int_equal(tp_group_stop(g, 5), -1);
    assert_int_equal(kill((pid_t)pids[2], 0), -1);             /* the live one was stopped too */
}

/* rank 0 killed: its workers go with it (PR_SET_PDEATHSIG), none is left behind */
static void test_workers_die_with_rank0(void **st) {
    (void)st;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t r0 = fork();
    assert_true(r0 >= 0);
    if (r0 == 0) {                          /* plays rank 0: starts 2 workers, reports their pids, dies */
        char err[256];
        tp_group *g;
        int64_t pids[3] = {0};
        if (tp_group_start(&g, 3, 0, echo_worker, NULL, err, sizeof err) ||
            tp_group_gather(g, TP_MSG_READY, pids, 10, err, sizeof err))
            _exit(1);
        if (write(pfd[1], pids + 1, 2 * sizeof pids[0]) != 2 * sizeof pids[0]) _exit(1);
        pause();
        _exit(0);
    }
    close(pfd[1]);
    int64_t pids[2] = {0};
    assert_int_equal(read(pfd[0], pids, sizeof pids), (ssize_t)sizeof pids);
    close(pfd[0]);
    assert_int_equal(kill((pid_t)pids[0], 0), 0);
    assert_int_equal(kill(r0, SIGKILL), 0);
    waitpid(r0, NULL, 0);
    double t0 = now_s();
    int gone = 0;
    while (now_s() - t0 < 5 && !gone) {
        /* orphans are reaped by init; a zombie still answers kill(0), so look at /proc */
        char path[64], state = 'R';
        gone = 1;
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pids[i]);
            FILE *f = fopen(path, "r");
            if (f) {
                if (fscanf(f, "%*d %*s %c", &state) == 1 && state != 'Z') gone = 0;
                fclose(f);
            }
        }
        if (!gone) usleep(10000);
    }
    assert_true(gone);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_and_mailbox),
        cmocka_unit_test(test_worker_error_is_reported),
        cmocka_unit_test(test_killed_worker),
        cmocka_unit_test(test_workers_die_with_rank0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
