/* test_lab_framework: the classroom-lab framework on a toy lab whose answers
 * the test knows: malformed questions refused, grading (tolerances, numbers
 * written as text, choices written loosely, predictions echoed, missing and
 * blank answers, the wrong lab or seed refused, bad JSON named by line),
 * lab_write's files and its care for a filled-in answers.json, the sheets'
 * content, headlines and lab_pick. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/test_util.h"
#include "tests/test_lab_util.h"
#include "labs/lab_sheet.h"
#include "viz/chartkit.h"

typedef struct toy_result { double value; } toy_result;

static int toy_run(lab *L, char *err, size_t n) {
    toy_result *t = malloc(sizeof *t);
    if (!t) return -1;
    t->value = 10.0 + (double)lab_seed(L);          /* the "measurement" */
    lab_set_result(L, t);
    lab_table *tab = lab_table_add(L, "toy", "Table 1. Toy", "name,value,twice", true);
    double v[2] = { t->value, 2 * t->value };
    return tab && lab_table_row(tab, "a, \"quoted\" key", v) == 0 ? 0 : -1;
}

static void toy_draw(cairo_t *cr, const void *ctx, double w, double h) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    viz_ck_font(cr, 14, true, false);
    viz_ck_ink(cr);
    viz_ck_text(cr, w / 2, h / 2, "toy", 0.5);
    (void)ctx;
}

static int toy_figures(lab *L, char *err, size_t n) {
    return lab_figure(L, &(lab_figure_spec){ "toyfig", "Figure 1. Toy", "the word", 300, 200, toy_draw,
                                            lab_result(L) });
}

static int toy_questions(lab *L, char *err, size_t n) {
    const toy_result *t = lab_result(L);
    int rc = 0;
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER, .text = "The value?", .where = "Table 1",
                                      .unit = "%", .answer = t->value, .tol = 0.5 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_CHOICE, .text = "Which?", .where = "Figure 1",
                                      .choices = "paged|orca-max", .correct = "orca-max" });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER, .text = "Twice the value?", .where = "Table 1",
                                      .predict = "guess twice the value", .answer = 2 * t->value, .tol = 0 });
    rc |= lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN, .text = "Why?", .key = "Because." });
    rc |= lab_headline_add(L, &(lab_headline){ .what = "value", .measured = t->value, .paper_lo = 10,
                                               .paper_hi = 12, .tol = 0.5 });
    return rc ? -1 : 0;
}

static int toy_narrative(lab *L, char *err, size_t n) {
    return lab_say(L, "one") | lab_say(L, "two %d", 2) | lab_todo(L, "pagesim --blocks 16", "look");
}

static const lab_def toy_def = {
    .name = "toy", .title = "Toy lab", .summary = "A toy.", .concepts = "none", .minutes = 5,
    .run = toy_run, .figures = toy_figures, .questions = toy_questions, .narrative = toy_narrative,
    .free_result = free,
};

static lab *toy(uint64_t seed) { return tl_run(&toy_def, seed); }

static lab_grades grade(const lab *L, const char *answers) {
    char text[2048];
    snprintf(text, sizeof text, "{\"lab\": \"toy\", \"seed\": %llu, \"answers\": {%s}}",
             (unsigned long long)lab_seed(L), answers);
    lab_grades g;
    if (lab_grade_text(L, text, "answers", &g, tl_err, sizeof tl_err) < 0) fail_msg("%s", tl_err);
    return g;
}

static void test_malformed_questions(void **state) {
    (void)state;
    lab *L = lab_create(&toy_def, 1, tl_err, sizeof tl_err);
    assert_non_null(L);
    assert_int_equal(lab_ask(L, &(lab_question){ .kind = LAB_Q_CHOICE, .text = "x", .choices = "a|b",
                                                 .correct = "c" }), -1);
    assert_int_equal(lab_ask(L, &(lab_question){ .kind = LAB_Q_EXPLAIN, .text = "x" }), -1);
    assert_int_equal(lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER, .text = "x", .answer = 1, .tol = -1 }), -1);
    assert_int_equal(lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER, .text = "", .answer = 1 }), -1);
    assert_int_equal(lab_ask(L, &(lab_question){ .kind = LAB_Q_NUMBER, .text = "x", .answer = NAN }), -1);
    assert_int_equal(lab_headline_add(L, &(lab_headline){ .what = "h", .paper_lo = 2, .paper_hi = 1 }), -1);
    lab_free(L);
    /* a def without run is refused */
    lab_def bad = toy_def;
    bad.run = NULL;
    assert_null(lab_create(&bad, 1, tl_err, sizeof tl_err));
}

static void test_grading(void **state) {
    (void)state;
    lab *L = toy(3);                                  /* value 13, twice 26 */
    lab_grades g = grade(L, "\"q1\": 13.4, \"q2\": \"Orca (Max)\", \"q3_prediction\": 20, \"q3\": \"26 tokens\", "
                            "\"q4\": \"since\"");
    assert_int_equal(g.right, 3);
    assert_int_equal(g.teacher, 1);
    assert_string_equal(g.marks[2].prediction, "20");
    lab_grades_free(&g);
    g = grade(L, "\"q1\": \"12.4 %\", \"q2\": \"paged\", \"q3\": 26.5, \"q4\": \"  \"");
    assert_int_equal(g.wrong, 3);
    assert_int_equal(g.missing, 1);                   /* a blank answer is no answer */
    assert_non_null(strstr(g.marks[0].why, "too low"));
    assert_non_null(strstr(g.marks[0].why, "Table 1"));
    assert_non_null(strstr(g.marks[1].why, "Figure 1"));
    assert_non_null(strstr(g.marks[2].why, "too high"));
    lab_grades_free(&g);
    g = grade(L, "\"q1\": \"a lot\", \"q2\": null");
    assert_int_equal(g.wrong, 1);
    assert_non_null(strstr(g.marks[0].why, "not a number"));
    assert_int_equal(g.missing, 3);
    lab_grades_free(&g);
    /* the wrong lab, the wrong seed, bad JSON, no answers object */
    assert_int_equal(lab_grade_text(L, "{\"lab\": \"paging\", \"answers\": {}}", "f", &g, tl_err, sizeof tl_err), -1);
    assert_non_null(strstr(tl_err, "paging"));
    assert_int_equal(lab_grade_text(L, "{\"seed\": 4, \"answers\": {}}", "f", &g, tl_err, sizeof tl_err), -1);
    assert_non_null(strstr(tl_err, "--seed 4"));
    assert_int_equal(lab_grade_text(L, "{\n\"answers\": {\n\"q1\": 1,,}}", "f.json", &g, tl_err, sizeof tl_err), -1);
    assert_non_null(strstr(tl_err, "f.json:3"));
    assert_int_equal(lab_grade_text(L, "[1, 2]", "f", &g, tl_err, sizeof tl_err), -1);
    /* no seed in the file: graded against the run's */
    assert_int_equal(lab_grade_text(L, "{\"answers\": {\"q1\": 13}}", "f", &g, tl_err, sizeof tl_err), 0);
    assert_int_equal(g.right, 1);
    lab_grades_free(&g);
    lab_free(L);
}

static void test_key_and_one_wrong(void **state) {
    (void)state;
    lab *L = toy(5);
    assert_int_equal(tl_check_key(L), 4);
    lab_free(L);
}

static void test_files_and_answers_kept(void **state) {
    (void)state;
    lab *L = toy(1);
    system("rm -rf build/tmp/lab_toy_files");
    tl_check_files(L, "_files");
    /* a student's filled-in answers.json survives a rerun; an empty template is rewritten */
    const char *path = "build/tmp/lab_toy_files/answers.json";
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"lab\": \"toy\", \"seed\": 1, \"answers\": {\"q1\": 11}}\n", f);
    fclose(f);
    assert_int_equal(lab_write(L, "build/tmp/lab_toy_files", false, tl_err, sizeof tl_err), 0);
    char *s = tu_slurp(path);
    assert_non_null(strstr(s, "\"q1\": 11"));
    free(s);
    for (int i = 0; i < lab_num_files(L); i++) assert_string_not_equal(lab_file_at(L, i), "answers.json");
    /* the CSV quotes a key with a comma and doubles its quotes */
    s = tu_slurp("build/tmp/lab_toy_files/toy.csv");
    assert_non_null(s);
    assert_non_null(strstr(s, "name,value,twice\n\"a, \"\"quoted\"\" key\",11,22\n"));
    free(s);
    lab_free(L);
}

static void test_sheets(void **state) {
    (void)state;
    lab *L = toy(2);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(lab_sheet_markdown(L, f, false), 0);
    fclose(f);
    assert_non_null(strstr(buf, "# Toy lab"));
    assert_non_null(strstr(buf, "seed 2"));
    assert_non_null(strstr(buf, "![Figure 1. Toy](toyfig.png)"));
    assert_non_null(strstr(buf, "*Before you run:* guess twice the value"));
    assert_non_null(strstr(buf, "`pagesim --blocks 16`"));
    assert_non_null(strstr(buf, "labs/toy --seed 2 --check"));
    assert_null(strstr(buf, "Because."));            /* the student's sheet has no model answer */
    assert_null(strstr(buf, "Key:"));
    free(buf);
    f = open_memstream(&buf, &len);
    assert_int_equal(lab_sheet_markdown(L, f, true), 0);
    fclose(f);
    assert_non_null(strstr(buf, "Because."));
    assert_non_null(strstr(buf, "**Key:** 12"));
    assert_non_null(strstr(buf, "**Key:** `orca-max`"));
    free(buf);
    assert_string_equal(lab_narrative(L), "one\n\ntwo 2");
    lab_free(L);
}

static void test_headlines_and_pick(void **state) {
    (void)state;
    lab_headline h = { .what = "x", .measured = 2.5, .paper_lo = 1.7, .paper_hi = 2.7, .tol = 0 };
    assert_true(lab_headline_within(&h));
    h.measured = 1.5;
    assert_false(lab_headline_within(&h));
    h.tol = 0.2;
    assert_true(lab_headline_within(&h));
    h.measured = NAN;
    assert_false(lab_headline_within(&h));
    lab *L = toy(2);                                 /* value 12: within 10-12 */
    assert_int_equal(tl_check_headlines(L), 1);
    lab_free(L);
    /* seed 1 is the paper's setup; other seeds spread over the variants */
    int seen[5] = {0};
    for (uint64_t s = 1; s <= 60; s++) {
        lab *V = lab_create(&toy_def, s, tl_err, sizeof tl_err);
        int v = lab_pick(V, 7, 5);
        assert_true(v >= 0 && v < 5);
        if (s == 1) assert_int_equal(v, 0);
        seen[v]++;
        assert_int_equal(lab_pick(V, 7, 5), v);        /* deterministic */
        lab_free(V);
    }
    for (int v = 0; v < 5; v++) assert_true(seen[v] >= 3);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_malformed_questions),
        cmocka_unit_test(test_grading),
        cmocka_unit_test(test_key_and_one_wrong),
        cmocka_unit_test(test_files_and_answers_kept),
        cmocka_unit_test(test_sheets),
        cmocka_unit_test(test_headlines_and_pick),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
