/* Tests of engine/tp_engine.h on a machine without a GPU (the GPU machine
 * runs tests/gpu/test_tp_engine.c): starting tensor parallelism where it
 * cannot run fails at once with a message that says why and names the rank,
 * leaves no process behind and does not hang, whether the build has no CUDA,
 * no NCCL, or the machine no GPU; and without a tp_engine (NULL) the calls
 * are the one-GPU engine's: no rank, size 1, the plain weight loaders. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/tp_engine.h"
#include "base/clock.h"

static int have_gpu(void) {
    int n = 0;
    char err[256];
    return tp_device_count(&n, err, sizeof err) == 0 && n > 0;
}

static void test_start_fails_cleanly(void **st) {
    (void)st;
    if (have_gpu()) { fprintf(stderr, "skip: this machine has a GPU (tests/gpu/test_tp_engine.c runs there)\n"); skip(); }
    for (int size = 1; size <= 4; size *= 2) {
        char err[1024] = "";
        tp_engine *t = (tp_engine *)1;
        tp_engine_args a = {size, {.max_num_batched_tokens = 512}, 5};
        double t0 = clock_now_s();
        assert_int_equal(tp_engine_start(&t, &a, err, sizeof err), -1);
        double dt = clock_now_s() - t0;
        fprintf(stderr, "  size %d: %.2f s: %s\n", size, dt, err);
        assert_null(t);
        assert_true(dt < 10);
        assert_true(strstr(err, "rank 0") || strstr(err, "this build has"));
        assert_true(strstr(err, "GPU") || strstr(err, "CUDA") || strstr(err, "NCCL"));
        errno = 0;                                    /* every worker reaped: no child left */
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
    }
    char err[256];
    tp_engine *t;
    tp_engine_args bad = {0, {0}, 0};
    assert_int_equal(tp_engine_start(&t, &bad, err, sizeof err), -1);
}

static void test_null_is_one_gpu(void **st) {
    (void)st;
    assert_null(tp_engine_rank(NULL));
    assert_int_equal(tp_engine_size(NULL), 1);
    assert_int_equal(tp_engine_stop(NULL), 0);
    /* tp_engine_load(NULL, ...) is w_load / w_dummy: the same answer */
    mc_config c;
    char err[512], e1[512], e2[512];
    TU_REQUIRE_FILE("data/models/qwen3-0.6b.json");
    if (mc_load(&c, "data/models/qwen3-0.6b.json", err, sizeof err)) fail_msg("%s", err);
    w_weights w;
    int a = tp_engine_load(NULL, &c, "/no/such/dir", 0, &w, e1, sizeof e1);
    int b = w_load(&w, "/no/such/dir", &c, e2, sizeof e2);
    assert_int_equal(a, b);
    assert_string_equal(e1, e2);
    if (!have_gpu()) {                                /* no GPU: both loaders fail the same way */
        a = tp_engine_load(NULL, &c, NULL, 7, &w, e1, sizeof e1);
        b = w_dummy(&w, &c, 7, e2, sizeof e2);
        assert_int_equal(a, -1);
        assert_int_equal(b, -1);
        assert_string_equal(e1, e2);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_fails_cleanly),
        cmocka_unit_test(test_null_is_one_gpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
