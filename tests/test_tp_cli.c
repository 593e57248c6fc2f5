/* Tests of --tensor-parallel-size / -tp in the engine's front ends, on any
 * machine: asked for more GPUs than the machine shows (on a machine with no
 * GPU, 2), engine/run, engine/bench, engine/serve and labs/bias --real stop
 * at once with status 2 and a message that names the option, the size and
 * what is missing, and nothing hangs; so does an explicit size 1 (NCCL with
 * a communicator of one) where there is no GPU or no NCCL; a bad value is
 * refused; and the library's check says the same (engine/tp_comm.h:
 * tp_check_size). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "engine/tp_comm.h"

/* runs "timeout 60 CMD 2>&1"; its output (malloc'd) and exit status */
static char *run(const char *cmd, int *status) {
    char full[2048];
    snprintf(full, sizeof full, "timeout 60 %s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0, k;
    char *out = malloc(cap);
    while ((k = fread(out + len, 1, cap - 1 - len, p)) > 0) len += k;
    out[len] = 0;
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

/* more GPUs than are here: 2 on a machine without one, else one more than it shows */
static int too_many(void) {
    int n = 0;
    char err[256];
    tp_device_count(&n, err, sizeof err);
    return n + 1 < 2 ? 2 : n + 1;
}

static void test_library_check(void **st) {
    (void)st;
    char err[512];
    assert_int_equal(tp_check_size(0, err, sizeof err), -1);
    assert_int_equal(tp_check_size(too_many(), err, sizeof err), -1);
    char want[64];
    snprintf(want, sizeof want, "tensor-parallel size %d needs", too_many());
    if (!strstr(err, want)) fail_msg("'%s' lacks '%s'", err, want);
    assert_true(strstr(err, "GPU") || strstr(err, "CUDA"));
    fprintf(stderr, "  tp_check_size(%d): %s\n", too_many(), err);
}

static void check_front_end(const char *bin, const char *args, const char *opt) {
    char path[512], cmd[2048], want[128];
    snprintf(path, sizeof path, "%s/%s", tu_bindir(), bin);
    TU_REQUIRE_FILE(path);
    int n = too_many(), status;
    snprintf(cmd, sizeof cmd, "%s %s %s %d", path, args, opt, n);
    char *out = run(cmd, &status);
    fprintf(stderr, "  %s -> %d: %s", cmd, status, out);
    assert_int_equal(status, 2);
    snprintf(want, sizeof want, "--tensor-parallel-size %d: tensor-parallel size %d needs", n, n);
    if (!strstr(out, want)) fail_msg("'%s' lacks '%s'", out, want);
    free(out);
    int ngpu = 0;
    char e[256];
    if (tp_device_count(&ngpu, e, sizeof e) || ngpu == 0) {                /* size 1 needs a GPU and NCCL too */
        snprintf(cmd, sizeof cmd, "%s %s %s 1", path, args, opt);
        out = run(cmd, &status);
        fprintf(stderr, "  %s -> %d: %s", cmd, status, out);
        assert_int_equal(status, 2);
        assert_non_null(strstr(out, "--tensor-parallel-size 1: tensor-parallel size 1 needs"));
        free(out);
    }
    snprintf(cmd, sizeof cmd, "%s %s %s 0", path, args, opt);               /* a bad value */
    out = run(cmd, &status);
    assert_int_equal(status, 2);
    assert_non_null(strstr(out, opt));
    free(out);
}

static void test_engine_run(void **st) {
    (void)st;
    check_front_end("engine/run", "--dummy-weights data/models/qwen2.5-0.5b.json --prompt-ids 1,2,3", "--tensor-parallel-size");
    check_front_end("engine/run", "--dummy-weights data/models/qwen2.5-0.5b.json", "-tp");
}
static void test_engine_bench(void **st) {
    (void)st;
    check_front_end("engine/bench", "--dummy-weights data/models/qwen2.5-0.5b.json --num-requests 4", "-tp");
}
static void test_engine_serve(void **st) {
    (void)st;
    check_front_end("engine/serve", "--dummy-weights data/models/qwen2.5-0.5b.json --port 0", "--tensor-parallel-size");
}
static void test_bias_real(void **st) {
    (void)st;
    check_front_end("labs/bias", "--real --dummy-weights data/models/qwen3-0.6b.json --num-sets 1 --output-dir build/tmp/tp_cli",
                    "--tensor-parallel-size");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_check),
        cmocka_unit_test(test_engine_run),
        cmocka_unit_test(test_engine_bench),
        cmocka_unit_test(test_engine_serve),
        cmocka_unit_test(test_bias_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
