/* Checks every classroom lab's test shares (tests/test_lab_<name>.c): run a
 * lab at a seed, write its files and check them (figures as PNG and SVG,
 * data, the worksheet in Markdown and as A4 and Letter PDFs), grade its own
 * answer key (all right) and the key with one number and one choice changed
 * (exactly that one wrong), and hold its headline numbers to their stated
 * tolerances.  Include after <cmocka.h> and tests/test_util.h. */
#ifndef TEST_LAB_UTIL_H
#define TEST_LAB_UTIL_H
#include <math.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "labs/lab.h"
#include "labs/lab_content.h"
#include "labs/lab_grade.h"
#include "labs/lab_write.h"

/* Under `make asan`: fontconfig and cairo's font caches keep process-lifetime
 * allocations that LeakSanitizer reports; not ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\nleak:libcairo.so\nleak:libpixman\nleak:libfreetype\n";
}

static char tl_err[1024];

/* The lab run at seed with every part (figures, narrative). */
static inline lab *tl_run(const lab_def *d, uint64_t seed) {
    lab *L = lab_create(d, seed, tl_err, sizeof tl_err);
    if (!L) fail_msg("%s", tl_err);
    if (lab_run(L, LAB_WITH_ALL, tl_err, sizeof tl_err) < 0) fail_msg("%s", tl_err);
    return L;
}

static inline long tl_file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The file starts with magic (n bytes). */
static inline int tl_starts_with(const char *path, const char *magic, size_t n) {
    char buf[16] = "";
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t k = fread(buf, 1, n < sizeof buf ? n : sizeof buf, f);
    fclose(f);
    return k == n && memcmp(buf, magic, n) == 0;
}

/* Does the (binary) file hold needle? */
static inline int tl_file_contains(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

/* Writes L into build/tmp/lab_<name><tag> and checks every file it must hold. */
static inline void tl_check_files(lab *L, const char *tag) {
    char dir[512], path[1024];
    const lab_def *d = lab_get_def(L);
    snprintf(dir, sizeof dir, "build/tmp/lab_%s%s", d->name, tag);
    if (lab_write(L, dir, true, tl_err, sizeof tl_err) < 0) fail_msg("%s", tl_err);
    int pngs = 0, svgs = 0, csvs = 0;
    for (int i = 0; i < lab_num_files(L); i++) {
        const char *f = lab_file_at(L, i);
        snprintf(path, sizeof path, "%s/%s", dir, f);
        if (tl_file_size(path) <= 0) fail_msg("%s is missing or empty", path);
        size_t n = strlen(f);
        if (n > 4 && !strcmp(f + n - 4, ".png")) { pngs++; assert_true(tl_starts_with(path, "\x89PNG", 4)); }
        if (n > 4 && !strcmp(f + n - 4, ".svg")) { svgs++; assert_true(tl_starts_with(path, "<?xml", 5)); }
        if (n > 4 && !strcmp(f + n - 4, ".csv")) csvs++;
    }
    assert_true(pngs >= 1);
    assert_int_equal(pngs, svgs);
    assert_true(csvs >= 1);
    static const char *must[] = { "worksheet.md", "worksheet-a4.pdf", "worksheet-letter.pdf", "data.json",
                                  "answers.json", "answer-key.json", "answer-key.md" };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, must[i]);
        if (tl_file_size(path) <= 0) fail_msg("%s is missing or empty", path);
    }
    /* the PDFs are PDFs, of the right page size */
    static const struct { const char *f, *box; } pdf[2] = {
        { "worksheet-a4.pdf", "MediaBox [ 0 0 595.2" }, { "worksheet-letter.pdf", "MediaBox [ 0 0 612 792 ]" } };
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, pdf[k].f);
        assert_true(tl_starts_with(path, "%PDF", 4));
        if (!tl_file_contains(path, pdf[k].box)) fail_msg("%s: no %s", path, pdf[k].box);
    }
    /* the Markdown sheet holds every figure and question number */
    snprintf(path, sizeof path, "%s/worksheet.md", dir);
    char *md = tu_slurp(path);
    assert_non_null(md);
    for (int i = 0; i < lab_num_files(L); i++) {
        const char *f = lab_file_at(L, i);
        size_t n = strlen(f);
        if (n > 4 && !strcmp(f + n - 4, ".png") && !strstr(md, f)) fail_msg("worksheet.md does not show %s", f);
    }
    free(md);
}

/* The key passes its own check; one changed number and one changed choice
 * each fail exactly that question.  Returns the number of questions. */
static inline int tl_check_key(const lab *L) {
    char *key = lab_answers_json(L, true);
    assert_non_null(key);
    lab_grades g;
    if (lab_grade_text(L, key, "key", &g, tl_err, sizeof tl_err) < 0) fail_msg("%s", tl_err);
    assert_int_equal(g.wrong, 0);
    assert_int_equal(g.missing, 0);
    assert_int_equal(g.right + g.teacher, g.n);
    assert_true(g.n >= 4 && g.n <= 8);
    assert_true(g.right >= 3);
    assert_true(g.teacher >= 1);           /* at least one "explain why" */
    int nq = g.n;
    lab_grades_free(&g);
    cJSON *root = cJSON_Parse(key), *ans = cJSON_GetObjectItem(root, "answers"), *tol = cJSON_GetObjectItem(root, "tolerance");
    assert_non_null(ans);
    int changed_num = 0, changed_choice = 0;
    for (int pass = 0; pass < 2; pass++) {
        cJSON *doc = cJSON_Duplicate(root, 1), *a = cJSON_GetObjectItem(doc, "answers"), *it;
        char changed[16] = "";
        cJSON_ArrayForEach(it, a) {
            const char *id = it->string;
            if (strstr(id, "_prediction")) continue;
            if (pass == 0 && cJSON_IsNumber(it)) {
                double t = cJSON_GetNumberValue(cJSON_GetObjectItem(tol, id));
                cJSON_SetNumberValue(it, it->valuedouble + 2 * t + 1 + 0.1 * fabs(it->valuedouble));
                snprintf(changed, sizeof changed, "%s", id);
                break;
            }
            if (pass == 1 && cJSON_IsString(it) && !cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "model_answers"), id)) {
                cJSON_SetValuestring(it, "certainly-not-a-choice");
                snprintf(changed, sizeof changed, "%s", id);
                break;
            }
        }
        if (changed[0]) {
            char *text = cJSON_Print(doc);
            if (lab_grade_text(L, text, "one wrong", &g, tl_err, sizeof tl_err) < 0) fail_msg("%s", tl_err);
            assert_int_equal(g.wrong, 1);
            for (int i = 0; i < g.n; i++)
                if (g.marks[i].mark == LAB_MARK_WRONG) {
                    assert_string_equal(g.marks[i].id, changed);
                    assert_non_null(strstr(g.marks[i].why, "look at"));
                }
            lab_grades_free(&g);
            free(text);
            if (pass == 0) changed_num = 1; else changed_choice = 1;
        }
        cJSON_Delete(doc);
    }
    assert_true(changed_num);                /* every lab has a number question */
    (void)changed_choice;                    /* a choice question is optional */
    cJSON_Delete(root);
    free(key);
    return nq;
}

/* Every headline within its stated tolerance of the paper; returns how many. */
static inline int tl_check_headlines(const lab *L) {
    int n = lab_num_headlines(L);
    for (int i = 0; i < n; i++) {
        const lab_headline *h = lab_headline_at(L, i);
        if (!lab_headline_within(h))
            fail_msg("%s: %g, the paper %g-%g, tolerance %g", h->what, h->measured, h->paper_lo,
                     h->paper_hi, h->tol);
    }
    return n;
}
#endif
