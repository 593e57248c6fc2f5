/* Tests of base/opt.c: the option table (--name value, --name=value, -k,
 * flags, aliases, positional arguments in order, "--"), its errors (unknown,
 * ambiguous, missing value, value on a flag), a second parse in one process,
 * and the value helpers' ranges.  Nothing printed, nothing exits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include "base/opt.h"

enum { O_BLOCKS = 256, O_MAX_LEN, O_MAX_SEQS, O_QUIET, O_RATE };
static const opt_spec specs[] = {
    { "num-gpu-blocks", O_BLOCKS, OPT_VALUE },
    { "num-blocks", O_BLOCKS, OPT_VALUE },        /* an old name, same key */
    { "max-model-len", O_MAX_LEN, OPT_VALUE },
    { "max-num-seqs", O_MAX_SEQS, OPT_VALUE },
    { "quiet", O_QUIET, OPT_FLAG },
    { "rate", O_RATE, OPT_VALUE },
    { "help", 'h', OPT_FLAG },
    { "output", 'o', OPT_VALUE },
    { NULL, 0, 0 },
};

/* Parses the words of line; writes "key=value" / "arg=value" / "error: msg" lines into out. */
static void parse(const char *line, char *out, size_t cap) {
    char buf[512], *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "cmd %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    opt_parser p;
    char err[256];
    out[0] = 0;
    assert_int_equal(opt_begin(&p, argc, argv, specs, err, sizeof err), 0);
    const char *v;
    int k;
    while ((k = opt_next(&p, &v, err, sizeof err)) != OPT_END) {
        size_t n = strlen(out);
        if (k == OPT_ERROR) { snprintf(out + n, cap - n, "error: %s;", err); break; }
        if (k == OPT_ARG) snprintf(out + n, cap - n, "arg=%s;", v);
        else snprintf(out + n, cap - n, "%d:%s=%s;", k, opt_name(&p), v ? v : "(flag)");
    }
    opt_end(&p);
}

static void expect(const char *line, const char *want) {
    char out[1024];
    parse(line, out, sizeof out);
    if (strcmp(out, want)) fail_msg("'%s':\n  got  %s\n  want %s", line, out, want);
}

static void test_forms_and_order(void **st) {
    (void)st;
    expect("--num-gpu-blocks 16 --max-model-len=2048 --quiet pos1 -o x.png pos2",
           "256:--num-gpu-blocks=16;257:--max-model-len=2048;259:--quiet=(flag);arg=pos1;111:-o=x.png;arg=pos2;");
    expect("--num-blocks 8", "256:--num-blocks=8;");            /* the alias: same key, its own name */
    expect("--rate -1.5", "260:--rate=-1.5;");                   /* a value may start with '-' */
    expect("--max-model 9", "257:--max-model-len=9;");          /* a unique prefix */
    expect("-h", "104:-h=(flag);");
    expect("--quiet -- --rate x", "259:--quiet=(flag);arg=--rate;arg=x;");
    expect("", "");
}

static void test_errors(void **st) {
    (void)st;
    expect("--frobnicate 1", "error: unknown option '--frobnicate';");
    expect("--quiet --frob=1", "259:--quiet=(flag);error: unknown option '--frob';");
    expect("--max 9", "error: ambiguous option '--max' (--max-model-len, --max-num-seqs);");
    expect("--rate", "error: --rate needs a value;");
    expect("--quiet=yes", "error: --quiet takes no value;");
    expect("-z", "error: unknown option '-z';");
    /* a bad table is refused */
    static const opt_spec bad[] = { { "x", 0, OPT_FLAG }, { NULL, 0, 0 } };
    char *argv[] = { "cmd", NULL }, err[128] = "";
    opt_parser p;
    assert_int_equal(opt_begin(&p, 1, argv, bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad row 0"));
}

/* vLLM's "-tp": a single-dash row; the table then reads "-name" for every option too. */
static void test_single_dash(void **st) {
    (void)st;
    enum { O_TP = 300, O_Q };
    static const opt_spec tp[] = {
        { "tensor-parallel-size", O_TP, OPT_VALUE }, { "-tp", O_TP, OPT_VALUE },
        { "quiet", O_Q, OPT_FLAG }, { "help", 'h', OPT_FLAG }, { NULL, 0, 0 },
    };
    char *argv[] = { "cmd", "-tp", "4", "--tensor-parallel-size=2", "-tp=8", "-quiet", "-h", "x", NULL }, err[256];
    opt_parser p;
    assert_int_equal(opt_begin(&p, 8, argv, tp, err, sizeof err), 0);
    const char *v;
    const char *want[][2] = { { "-tp", "4" }, { "--tensor-parallel-size", "2" }, { "-tp", "8" } };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(opt_next(&p, &v, err, sizeof err), O_TP);
        assert_string_equal(opt_name(&p), want[i][0]);
        assert_string_equal(v, want[i][1]);
    }
    assert_int_equal(opt_next(&p, &v, err, sizeof err), O_Q);
    assert_int_equal(opt_next(&p, &v, err, sizeof err), 'h');
    assert_int_equal(opt_next(&p, &v, err, sizeof err), OPT_ARG);
    assert_string_equal(v, "x");
    assert_int_equal(opt_next(&p, &v, err, sizeof err), OPT_END);
    char *bad[] = { "cmd", "-tq", "1", NULL };
    assert_int_equal(opt_begin(&p, 3, bad, tp, err, sizeof err), 0);
    assert_int_equal(opt_next(&p, &v, err, sizeof err), OPT_ERROR);
    assert_non_null(strstr(err, "unknown option '-tq'"));
}

static void test_values(void **st) {
    (void)st;
    char err[256];
    int i = 0; long l = 0; double d = 0; unsigned long long u = 0;
    assert_int_equal(opt_int("--n", "42", 1, 100, &i, err, sizeof err), 0);
    assert_int_equal(i, 42);
    assert_int_equal(opt_int("--n", "0", 1, 100, &i, err, sizeof err), -1);
    assert_string_equal(err, "--n wants an integer in [1, 100], got '0'");
    assert_int_equal(opt_int("--n", "12abc", 1, 100, &i, err, sizeof err), -1);
    assert_int_equal(opt_int("--n", "", 1, 100, &i, err, sizeof err), -1);
    assert_int_equal(opt_int("--n", NULL, 1, 100, &i, err, sizeof err), -1);
    assert_int_equal(opt_int("--n", "99999999999", 1, 1L << 40, &i, err, sizeof err), -1);   /* beyond int */
    assert_int_equal(opt_long("--n", "-5", -10, 10, &l, err, sizeof err), 0);
    assert_int_equal(l, -5);
    assert_int_equal(opt_num("--u", "0.92", 0.01, 1, &d, err, sizeof err), 0);
    assert_true(d == 0.92);
    assert_int_equal(opt_num("--u", "nan", 0, 1, &d, err, sizeof err), -1);
    assert_int_equal(opt_num("--u", "1e400", 0, 1e308, &d, err, sizeof err), -1);
    assert_int_equal(opt_num("--u", "2", 0, 1, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "--u wants a number in [0, 1], got '2'"));
    assert_int_equal(opt_u64("--seed", "18446744073709551615", &u, err, sizeof err), 0);
    assert_true(u == 18446744073709551615ULL);
    assert_int_equal(opt_u64("--seed", "-1", &u, err, sizeof err), -1);
    assert_int_equal(opt_u64("--seed", "18446744073709551616", &u, err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms_and_order),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_single_dash),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
