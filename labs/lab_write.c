/* lab_write: every file of a lab run into one folder (see lab_write.h).
 * Writes only inside that folder; prints nothing. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "base/file.h"
#include "base/errbuf.h"
#include "labs/lab_grade.h"
#include "labs/lab_impl.h"
#include "labs/lab_sheet.h"
#include "labs/lab_write.h"

/* mkdir -p */
static int make_dir(const char *dir, char *err, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST)
                return errbuf_fail(err, n, "%s: cannot create the folder: %s", p, strerror(errno));
            *s = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return errbuf_fail(err, n, "%s: not a folder", dir);
    return 0;
}

static const char *path_in(const char *dir, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

static int note_file(lab *L, const char *name) {
    char *c = lab_own(L, name);
    if (!c) return -1;
    char **p = realloc(L->files, (size_t)(L->nfiles + 1) * sizeof *p);
    if (!p) return -1;
    L->files = p;
    L->files[L->nfiles++] = c;
    return 0;
}

static int write_text(lab *L, const char *dir, const char *name, const char *text, char *err, size_t n) {
    char path[4096];
    FILE *f = fopen(path_in(dir, name, path, sizeof path), "w");
    if (!f) return errbuf_fail(err, n, "%s: %s", path, strerror(errno));
    bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (fclose(f) != 0 || !ok) return errbuf_fail(err, n, "%s: write failed: %s", path, strerror(errno));
    return note_file(L, name) < 0 ? errbuf_fail(err, n, "out of memory") : 0;
}

/* A CSV cell: numbers with enough digits, keys quoted when they need it. */
static void csv_key(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) { if (*s == '"') fputc('"', f); fputc(*s, f); }
    fputc('"', f);
}

static int write_table(lab *L, const char *dir, const lab_table *t, char *err, size_t n) {
    char name[300], path[4096];
    snprintf(name, sizeof name, "%s.csv", t->name);
    FILE *f = fopen(path_in(dir, name, path, sizeof path), "w");
    if (!f) return errbuf_fail(err, n, "%s: %s", path, strerror(errno));
    for (int c = 0; c < t->ncols; c++) fprintf(f, "%s%s", c ? "," : "", t->cols[c]);
    fputc('\n', f);
    for (int r = 0; r < t->nrows; r++) {
        csv_key(f, t->keys[r]);
        for (int c = 1; c < t->ncols; c++) {
            double v = t->vals[(size_t)r * (size_t)(t->ncols - 1) + (size_t)(c - 1)];
            if (isfinite(v)) fprintf(f, ",%.10g", v); else fputc(',', f);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0) return errbuf_fail(err, n, "%s: write failed: %s", path, strerror(errno));
    return note_file(L, name) < 0 ? errbuf_fail(err, n, "out of memory") : 0;
}

/* data.json: the seed, every table, the headlines and the questions (no answers). */
static char *data_json(const lab *L) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "lab", L->def->name);
    cJSON_AddStringToObject(root, "title", L->def->title);
    cJSON_AddNumberToObject(root, "seed", (double)L->seed);
    cJSON *tabs = cJSON_AddObjectToObject(root, "tables");
    for (int i = 0; i < L->ntables; i++) {
        const lab_table *t = L->tables[i];
        cJSON *tj = cJSON_AddObjectToObject(tabs, t->name);
        cJSON_AddStringToObject(tj, "caption", t->caption);
        cJSON *rows = cJSON_AddArrayToObject(tj, "rows");
        for (int r = 0; r < t->nrows; r++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, t->cols[0], t->keys[r]);
            for (int c = 1; c < t->ncols; c++) {
                double v = t->vals[(size_t)r * (size_t)(t->ncols - 1) + (size_t)(c - 1)];
                if (isfinite(v)) cJSON_AddNumberToObject(row, t->cols[c], v);
                else cJSON_AddNullToObject(row, t->cols[c]);
            }
            cJSON_AddItemToArray(rows, row);
        }
    }
    cJSON *heads = cJSON_AddArrayToObject(root, "headlines");
    for (int i = 0; i < L->nheads; i++) {
        const lab_headline *h = &L->heads[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "what", h->what);
        cJSON_AddNumberToObject(o, "measured", h->measured);
        cJSON_AddNumberToObject(o, "paper_lo", h->paper_lo);
        cJSON_AddNumberToObject(o, "paper_hi", h->paper_hi);
        cJSON_AddNumberToObject(o, "tolerance", h->tol);
        cJSON_AddBoolToObject(o, "within", lab_headline_within(h));
        if (h->unit) cJSON_AddStringToObject(o, "unit", h->unit);
        if (h->source) cJSON_AddStringToObject(o, "source", h->source);
        if (h->gap) cJSON_AddStringToObject(o, "gap", h->gap);
        cJSON_AddItemToArray(heads, o);
    }
    cJSON *qs = cJSON_AddArrayToObject(root, "questions");
    for (int i = 0; i < L->nqs; i++) {
        char id[8];
        lab_qid(i, id, sizeof id);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "text", L->qs[i].text);
        if (L->qs[i].predict) cJSON_AddStringToObject(o, "predict", L->qs[i].predict);
        if (L->qs[i].unit) cJSON_AddStringToObject(o, "unit", L->qs[i].unit);
        cJSON_AddItemToArray(qs, o);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

/* Does dir/answers.json already hold a student's answer (any non-null)? */
static bool has_answers(const char *dir) {
    char path[4096], e[8];
    char *buf = file_read_all(path_in(dir, "answers.json", path, sizeof path), 16u << 20, NULL, e, sizeof e);
    if (!buf) return false;
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(root, "answers"), *it;
    bool any = !root || !ans;                /* not ours: never overwrite it */
    cJSON_ArrayForEach(it, ans) if (!cJSON_IsNull(it)) any = true;
    cJSON_Delete(root);
    return any;
}

static int write_markdown(lab *L, const char *dir, const char *name, bool key, char *err, size_t n) {
    char path[4096];
    FILE *f = fopen(path_in(dir, name, path, sizeof path), "w");
    if (!f) return errbuf_fail(err, n, "%s: %s", path, strerror(errno));
    int rc = lab_sheet_markdown(L, f, key);
    if (fclose(f) != 0 || rc < 0) return errbuf_fail(err, n, "%s: write failed: %s", path, strerror(errno));
    return note_file(L, name) < 0 ? errbuf_fail(err, n, "out of memory") : 0;
}

int lab_write(lab *L, const char *dir, bool teacher, char *err, size_t errlen) {
    char path[4096], name[300];
    L->nfiles = 0;
    if (make_dir(dir, err, errlen) < 0) return -1;
    for (int i = 0; i < L->nfigs; i++) {
        const lab_figure_spec *g = &L->figs[i];
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "%s.%s", g->name, k ? "svg" : "png");
            if (viz_export_draw(path_in(dir, name, path, sizeof path), VIZ_FMT_UNKNOWN, g->width,
                                g->height, g->draw, g->ctx, err, errlen) < 0) return -1;
            if (note_file(L, name) < 0) return errbuf_fail(err, errlen, "out of memory");
        }
    }
    for (int i = 0; i < L->ntables; i++)
        if (write_table(L, dir, L->tables[i], err, errlen) < 0) return -1;
    char *s = data_json(L);
    if (!s) return errbuf_fail(err, errlen, "out of memory");
    int rc = write_text(L, dir, "data.json", s, err, errlen);
    free(s);
    if (rc < 0 || write_markdown(L, dir, "worksheet.md", false, err, errlen) < 0) return -1;
    static const struct { const char *name; double w, h; } pages[2] = {
        { "worksheet-a4.pdf", LAB_PAGE_A4_W, LAB_PAGE_A4_H },
        { "worksheet-letter.pdf", LAB_PAGE_LETTER_W, LAB_PAGE_LETTER_H },
    };
    for (int k = 0; k < 2; k++) {
        if (lab_sheet_pdf(L, path_in(dir, pages[k].name, path, sizeof path), pages[k].w, pages[k].h,
                          err, errlen) < 0) return -1;
        if (note_file(L, pages[k].name) < 0) return errbuf_fail(err, errlen, "out of memory");
    }
    if (!has_answers(dir)) {
        s = lab_answers_json(L, false);
        if (!s) return errbuf_fail(err, errlen, "out of memory");
        rc = write_text(L, dir, "answers.json", s, err, errlen);
        free(s);
        if (rc < 0) return -1;
    }
    if (!teacher) return 0;
    s = lab_answers_json(L, true);
    if (!s) return errbuf_fail(err, errlen, "out of memory");
    rc = write_text(L, dir, "answer-key.json", s, err, errlen);
    free(s);
    if (rc < 0) return -1;
    return write_markdown(L, dir, "answer-key.md", true, err, errlen);
}

int lab_num_files(const lab *L) { return L->nfiles; }
const char *lab_file_at(const lab *L, int i) { return i >= 0 && i < L->nfiles ? L->files[i] : NULL; }
