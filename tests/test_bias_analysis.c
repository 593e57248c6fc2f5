/* Tests of the bias analysis: labs/bias analyze on the study's case D equals
 * the study's own result JSON; the number formats and helpers match Python. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <sys/stat.h>
#include "labs/bias_analysis.h"
#include "labs/bias_output.h"
#include "labs/bias_aggregate.h"


static int copy_file(const char *from, const char *to) {
    char *s = tu_slurp(from);
    if (!s) return -1;
    FILE *f = fopen(to, "wb");
    if (!f) { free(s); return -1; }
    size_t n = strlen(s);
    int ok = fwrite(s, 1, n, f) == n;
    fclose(f); free(s);
    return ok ? 0 : -1;
}

/* Same keys in the same order; numbers: keys t_statistic/mean_diff to 4
 * decimals, p_value to relative 1e-9, everything else exactly. */
static void same_json(const cJSON *a, const cJSON *b, const char *where) {
    if (cJSON_IsObject(b)) {
        assert_true(cJSON_IsObject(a));
        const cJSON *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next) {
            if (strcmp(x->string, y->string) != 0)
                fail_msg("%s: key %s where the study has %s", where, x->string, y->string);
            same_json(x, y, y->string);
        }
        if (x || y) fail_msg("%s: %s keys than the study", where, x ? "more" : "fewer");
    } else if (cJSON_IsNumber(b)) {
        assert_true(cJSON_IsNumber(a));
        double u = a->valuedouble, v = b->valuedouble;
        if (!strcmp(where, "p_value")) {
            if (fabs(u - v) > 1e-9 * fabs(v)) fail_msg("p_value %.17g, study %.17g", u, v);
        } else if (!strcmp(where, "t_statistic") || !strcmp(where, "mean_diff")) {
            if (fabs(u - v) > 0.5e-4) fail_msg("%s %.6f, study %.6f", where, u, v);
        } else if (u != v) fail_msg("%s %.17g, study %.17g", where, u, v);
    } else if (cJSON_IsString(b)) {
        assert_true(cJSON_IsString(a));
        assert_string_equal(a->valuestring, b->valuestring);
    } else fail_msg("%s: unexpected JSON type", where);
}

static void test_caseD_equals_study(void **state) {
    (void)state;
    char csv[1024], json[1024];
    tu_shared_path(json, sizeof json, "data/analysis-case/caseD_att_result.json");
    TU_REQUIRE_FILE(json);
    tu_shared_path(csv, sizeof csv, "data/analysis-case/caseD_att_combined.csv");
    TU_REQUIRE_FILE(csv);
    char dir[128], out[256], cmd[2048];               /* per process: others may run the tests too */
    snprintf(dir, sizeof dir, "build/tmp/bias_caseD.%ld", (long)getpid());
    mkdir("build", 0755); mkdir("build/tmp", 0755); mkdir(dir, 0755);
    snprintf(out, sizeof out, "%s/caseD_att_combined.csv", dir);
    assert_int_equal(copy_file(csv, out), 0);
    snprintf(cmd, sizeof cmd, "%s/labs/bias analyze --model-id caseD --output-dir %s > /dev/null", tu_bindir(), dir);
    assert_int_equal(system(cmd), 0);
    snprintf(out, sizeof out, "%s/caseD_att_result.json", dir);
    char *mine = tu_slurp(out), *study = tu_slurp(json);
    assert_non_null(mine); assert_non_null(study);
    cJSON *a = cJSON_Parse(mine), *b = cJSON_Parse(study);
    assert_non_null(a); assert_non_null(b);
    same_json(a, b, "result");
    /* the text itself: group values print as Python floats ("56.0") */
    assert_non_null(strstr(mine, "\"bias_mean\": 56.0,"));
    cJSON_Delete(a); free(mine);
    /* --combined reads the study's file where it lies (read-only) */
    snprintf(cmd, sizeof cmd, "rm %s/caseD_att_result.json && %s/labs/bias analyze --model-id caseD --combined %s "
             "--output-dir %s > /dev/null", dir, tu_bindir(), csv, dir);
    assert_int_equal(system(cmd), 0);
    mine = tu_slurp(out);
    assert_non_null(mine);
    a = cJSON_Parse(mine);
    assert_non_null(a);
    same_json(a, b, "result");
    cJSON_Delete(a); cJSON_Delete(b); free(mine); free(study);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_python_float_repr(void **state) {
    (void)state;
    char b[64];
    struct { double x; const char *s; } c[] = {
        { 56.0, "56.0" }, { -4.0, "-4.0" }, { 0.0, "0.0" }, { 75.501, "75.501" },
        { 2.5927524908205676e-40, "2.5927524908205676e-40" }, { 0.00025468098854971574, "0.00025468098854971574" },
        { 1e-05, "1e-05" }, { 1e16, "1e+16" }, { 1234567.0, "1234567.0" }, { 0.1, "0.1" }, { 1.5e300, "1.5e+300" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        bias_fmt_double(b, sizeof b, c[i].x);
        assert_string_equal(b, c[i].s);
    }
    assert_true(bias_round_nd(20.07655, 4) == 20.0766 || bias_round_nd(20.07655, 4) == 20.0765);
    assert_true(bias_round_nd(0.03125, 4) == 0.0312);          /* exact tie: to even */
}

static void test_rounding_and_quantiles(void **state) {
    (void)state;
    assert_true(bias_round_even(2.5) == 2.0);
    assert_true(bias_round_even(3.5) == 4.0);
    assert_true(bias_round_even(-0.5) == 0.0);
    assert_true(bias_round_even(-1.5) == -2.0);
    assert_true(bias_round_even(2.4999) == 2.0);
    double x[5] = { 1, 2, 3, 4, 10 };
    assert_true(bias_quantile(x, 5, 0.25) == 2.0);
    assert_true(fabs(bias_quantile(x, 5, 0.9) - 7.6) < 1e-12);
    assert_true(bias_quantile(x, 4, 0.5) == 2.5);
    assert_int_equal(bias_vote("BUY"), 1);
    assert_int_equal(bias_vote("Sell"), -1);
    assert_int_equal(bias_vote("hold"), 0);
    assert_int_equal(bias_vote(""), 0);
}

static void test_student_t_known(void **state) {
    (void)state;
    /* two small samples: t and p worked by hand (pooled variance 2.5, df 8) */
    double a[5] = { 1, 2, 3, 4, 5 }, b[5] = { 3, 4, 5, 6, 7 }, t, p;
    int df;
    assert_int_equal(bias_student_t(a, 5, b, 5, &t, &p, &df), 0);
    assert_int_equal(df, 8);
    assert_true(fabs(t - (-2.0)) < 1e-12);
    assert_true(fabs(p - 0.08051623795726) < 1e-10);
}

/* Combining set files keeps the columns real runs add (p_buy, note) after
 * the study's, and fills them with "" for a set that lacks them. */
static void test_combine_keeps_extra_columns(void **state) {
    (void)state;
    const char *dir = "build/tmp/test_bias_combine";
    mkdir("build", 0777); mkdir("build/tmp", 0777); mkdir(dir, 0777);
    char path[256], head[1024] = "";
    for (int c = 0; c < BIAS_NCOLS; c++) {
        strcat(head, bias_columns[c]);
        strcat(head, c + 1 < BIAS_NCOLS ? "," : "");
    }
    const char *row = "AAA,A Co,100,Technology,0,1,2,2,prompt,reply,buy";
    for (int set = 1; set <= 2; set++) {
        snprintf(path, sizeof path, "%s/M_att_set_%d.csv", dir, set);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        if (set == 1) fprintf(f, "%s,p_buy,note\n%s,0.75,dummy\n", head, row);
        else fprintf(f, "%s\n%s\n", head, row);
        fclose(f);
    }
    char err[256];
    assert_int_equal(bias_combine_sets(dir, "M", 2, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/M_att_combined.csv", dir);
    char *got = tu_slurp(path);
    assert_non_null(got);
    char want[2048];
    snprintf(want, sizeof want, "%s,p_buy,note\n%s,0.75,dummy\n", head, row);
    assert_int_equal(strncmp(got, want, strlen(want)), 0);
    assert_non_null(strstr(got, "reply,buy,,\n"));                /* set 2: empty extras */
    free(got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caseD_equals_study),
        cmocka_unit_test(test_python_float_repr),
        cmocka_unit_test(test_rounding_and_quantiles),
        cmocka_unit_test(test_student_t_known),
        cmocka_unit_test(test_combine_keeps_extra_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
