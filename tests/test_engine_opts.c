/* Tests of the engine's runtime options on engine/run and engine/bench, on
 * any machine (apps/engine/cli.h: CLI_ENGINE_SPECS): --help lists
 * --cuda-graphs (the default, as vLLM's), --enforce-eager, --preemption-mode
 * and --swap-space; --cuda-graphs with --enforce-eager, an unknown
 * preemption mode, a negative swap space, and swap with the contiguous KV
 * policy stop at once with status 2 and a message naming what is wrong;
 * good values get past the command line (whatever the machine then says
 * about its GPU, it is not a usage error). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "tests/test_util.h"

/* runs "timeout 120 BIN ARGS 2>&1"; its output (malloc'd) and exit status */
static char *run(const char *bin, const char *args, int *status) {
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/%s", tu_bindir(), bin);
    snprintf(cmd, sizeof cmd, "timeout 120 %s %s 2>&1", path, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0, k;
    char *out = malloc(cap);
    while ((k = fread(out + len, 1, cap - 1 - len, p)) > 0) len += k;
    out[len] = 0;
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    fprintf(stderr, "  %s %s -> %d: %.200s%s", bin, args, *status, out, len && out[len - 1] == '\n' ? "" : "\n");
    return out;
}

static void expect(const char *bin, const char *args, int status, const char *text) {
    int st;
    char *out = run(bin, args, &st);
    assert_int_equal(st, status);
    if (text && !strstr(out, text)) fail_msg("'%s' lacks '%s'", out, text);
    free(out);
}

static void check(const char *bin, const char *base) {
    char args[1024], path[512];
    snprintf(path, sizeof path, "%s/%s", tu_bindir(), bin);
    TU_REQUIRE_FILE(path);
    int st;
    char *help = run(bin, "--help", &st);
    assert_int_equal(st, 0);
    assert_non_null(strstr(help, "--cuda-graphs"));
    assert_non_null(strstr(help, "the default, as vLLM's"));
    assert_non_null(strstr(help, "--enforce-eager"));
    assert_non_null(strstr(help, "--preemption-mode"));
    assert_non_null(strstr(help, "--swap-space GiB"));
    free(help);
    snprintf(args, sizeof args, "%s --cuda-graphs --enforce-eager", base);
    expect(bin, args, 2, "--cuda-graphs and --enforce-eager contradict");
    snprintf(args, sizeof args, "%s --enforce-eager --cuda-graphs", base);
    expect(bin, args, 2, "contradict");
    snprintf(args, sizeof args, "%s --preemption-mode lru", base);
    expect(bin, args, 2, "--preemption-mode is recompute or swap, got 'lru'");
    snprintf(args, sizeof args, "%s --preemption-mode=swap --swap-space -1", base);
    expect(bin, args, 2, "--swap-space");
    snprintf(args, sizeof args, "%s --swap-space lots", base);
    expect(bin, args, 2, "--swap-space");
    snprintf(args, sizeof args, "%s --preemption-mode swap --kv-policy contiguous", base);
    expect(bin, args, 2, "preemption by swap needs the paged KV policy");
    /* good values: past the command line (a GPU run, or an error about the GPU: not status 2) */
    snprintf(args, sizeof args, "%s --cuda-graphs --preemption-mode swap --swap-space 0.25 --max-model-len 64 "
             "--max-num-seqs 4 --max-num-batched-tokens 64", base);
    char *out = run(bin, args, &st);
    assert_int_not_equal(st, 2);
    assert_null(strstr(out, "see --help"));
    free(out);
    snprintf(args, sizeof args, "%s --enforce-eager --preemption-mode recompute --max-model-len 64 "
             "--max-num-seqs 4 --max-num-batched-tokens 64", base);
    out = run(bin, args, &st);
    assert_int_not_equal(st, 2);
    free(out);
}

static void test_engine_run(void **st) {
    (void)st;
    check("engine/run", "--dummy-weights data/models/smollm2-135m.json --prompt-ids 1,2,3 --max-tokens 2");
}
static void test_engine_bench(void **st) {
    (void)st;
    check("engine/bench", "--dummy-weights data/models/smollm2-135m.json --num-requests 2 --prompt-len 8 --output-len 2");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_run),
        cmocka_unit_test(test_engine_bench),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
