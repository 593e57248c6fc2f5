/* lab_grade: answers files read, graded and written (see lab_grade.h).
 * Reads only the answers file it is given; prints nothing. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "base/errbuf.h"
#include "base/file.h"
#include "labs/lab_grade.h"
#include "labs/lab_impl.h"

/* Parses text into an answers object; -1 with "origin:line: ..." otherwise. */
static cJSON *parse_answers(const char *text, const char *origin, char *err, size_t errlen) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    if (!root) {
        int line = 1;
        for (const char *p = text; end && p < end && *p; p++) line += *p == '\n';
        errbuf_fail(err, errlen, "%s:%d: not valid JSON", origin, line);
        return NULL;
    }
    if (!cJSON_IsObject(root) || !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "answers"))) {
        cJSON_Delete(root);
        errbuf_fail(err, errlen, "%s: want an object with \"answers\": {\"q1\": ..., ...} "
                    "(the answers.json the lab writes)", origin);
        return NULL;
    }
    return root;
}

static int read_seed(const cJSON *root, const char *origin, uint64_t *seed, bool *has, char *err, size_t n) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "seed");
    *has = s && !cJSON_IsNull(s);
    if (!*has) return 0;
    if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble != floor(s->valuedouble))
        return errbuf_fail(err, n, "%s: \"seed\" must be a whole number >= 0", origin);
    *seed = (uint64_t)s->valuedouble;
    return 0;
}

int lab_answers_peek(const char *path, char *name, size_t name_len, uint64_t *seed,
                     bool *has_seed, char *err, size_t errlen) {
    char *text = file_read_all(path, 16u << 20, NULL, err, errlen);
    if (!text) return -1;
    cJSON *root = parse_answers(text, path, err, errlen);
    free(text);
    if (!root) return -1;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, "lab");
    snprintf(name, name_len, "%s", cJSON_IsString(l) ? l->valuestring : "");
    int rc = read_seed(root, path, seed, has_seed, err, errlen);
    cJSON_Delete(root);
    return rc;
}

/* Lower-case, without spaces, '-', '_', '(' and ')'. */
static void squash(const char *s, char *out, size_t n) {
    size_t k = 0;
    for (; s && *s && k + 1 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (isspace(c) || c == '-' || c == '_' || c == '(' || c == ')') continue;
        out[k++] = (char)tolower(c);
    }
    out[k] = 0;
}

/* The answer item as text for echoing; returns false when absent or null. */
static bool as_text(const cJSON *it, char *buf, size_t n) {
    if (!it || cJSON_IsNull(it)) return false;
    if (cJSON_IsNumber(it)) snprintf(buf, n, "%.10g", it->valuedouble);
    else if (cJSON_IsString(it)) snprintf(buf, n, "%s", it->valuestring);
    else if (cJSON_IsBool(it)) snprintf(buf, n, "%s", cJSON_IsTrue(it) ? "true" : "false");
    else snprintf(buf, n, "(not a number or text)");
    if (cJSON_IsString(it)) {            /* an empty or blank string is no answer */
        const char *p = buf;
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) return false;
    }
    return true;
}

static bool as_number(const cJSON *it, double *v) {
    if (cJSON_IsNumber(it)) { *v = it->valuedouble; return isfinite(*v); }
    if (!cJSON_IsString(it)) return false;
    char buf[96], *end;
    size_t k = 0;
    for (const char *p = it->valuestring; *p && k + 1 < sizeof buf; p++)
        if (*p != ',' && *p != '_') buf[k++] = *p;   /* "86,192" reads as 86192 */
    buf[k] = 0;
    errno = 0;
    *v = strtod(buf, &end);
    return end != buf && errno == 0 && isfinite(*v);
}

static void grade_one(const lab_question *q, const cJSON *it, lab_mark *m) {
    if (!as_text(it, m->given, sizeof m->given)) { m->mark = LAB_MARK_MISSING; return; }
    const char *where = q->where ? q->where : "the figures";
    if (q->kind == LAB_Q_EXPLAIN) { m->mark = LAB_MARK_TEACHER; return; }
    if (q->kind == LAB_Q_CHOICE) {
        char a[96], b[96];
        squash(m->given, a, sizeof a);
        squash(q->correct, b, sizeof b);
        m->mark = strcmp(a, b) == 0 ? LAB_MARK_RIGHT : LAB_MARK_WRONG;
        if (m->mark == LAB_MARK_WRONG)
            snprintf(m->why, sizeof m->why, "not this one (choices: %s); look at %s", q->choices, where);
        return;
    }
    double v;
    if (!as_number(it, &v)) {
        m->mark = LAB_MARK_WRONG;
        snprintf(m->why, sizeof m->why, "not a number; look at %s", where);
        return;
    }
    if (fabs(v - q->answer) <= q->tol + 1e-9 * fabs(q->answer)) { m->mark = LAB_MARK_RIGHT; return; }
    m->mark = LAB_MARK_WRONG;
    snprintf(m->why, sizeof m->why, "too %s; look at %s", v > q->answer ? "high" : "low", where);
}

int lab_grade_text(const lab *L, const char *text, const char *origin, lab_grades *out,
                   char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    cJSON *root = parse_answers(text, origin, err, errlen);
    if (!root) return -1;
    int rc = -1;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "lab");
    uint64_t seed = 0;
    bool has_seed;
    if (cJSON_IsString(name) && strcmp(name->valuestring, L->def->name) != 0) {
        errbuf_fail(err, errlen, "%s: these answers are for the lab '%s', not '%s'", origin,
                    name->valuestring, L->def->name);
        goto out;
    }
    if (read_seed(root, origin, &seed, &has_seed, err, errlen) < 0) goto out;
    if (has_seed && seed != L->seed) {
        errbuf_fail(err, errlen, "%s: these answers are for seed %llu, but the run is seed %llu "
                    "(use --seed %llu)", origin, (unsigned long long)seed,
                    (unsigned long long)L->seed, (unsigned long long)seed);
        goto out;
    }
    out->marks = calloc((size_t)(L->nqs > 0 ? L->nqs : 1), sizeof *out->marks);
    if (!out->marks) { errbuf_fail(err, errlen, "out of memory"); goto out; }
    out->n = L->nqs;
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(root, "answers");
    for (int i = 0; i < L->nqs; i++) {
        lab_mark *m = &out->marks[i];
        char pid[24];
        lab_qid(i, m->id, sizeof m->id);
        snprintf(pid, sizeof pid, "%s_prediction", m->id);
        as_text(cJSON_GetObjectItemCaseSensitive(ans, pid), m->prediction, sizeof m->prediction);
        grade_one(&L->qs[i], cJSON_GetObjectItemCaseSensitive(ans, m->id), m);
        out->right += m->mark == LAB_MARK_RIGHT;
        out->wrong += m->mark == LAB_MARK_WRONG;
        out->missing += m->mark == LAB_MARK_MISSING;
        out->teacher += m->mark == LAB_MARK_TEACHER;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc < 0) lab_grades_free(out);
    return rc;
}

int lab_grade_file(const lab *L, const char *path, lab_grades *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    char *text = file_read_all(path, 16u << 20, NULL, err, errlen);
    if (!text) return -1;
    int rc = lab_grade_text(L, text, path, out, err, errlen);
    free(text);
    return rc;
}

void lab_grades_free(lab_grades *g) {
    free(g->marks);
    memset(g, 0, sizeof *g);
}

char *lab_answers_json(const lab *L, bool key) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "lab", L->def->name);
    cJSON_AddNumberToObject(root, "seed", (double)L->seed);
    if (!key) {
        char how[512];
        snprintf(how, sizeof how, "Write each answer in place of its null (a number, or text in "
                 "quotes), then run: labs/%s --check THIS-FILE.  qN_prediction: what you predicted "
                 "before running (not graded).", L->def->name);
        cJSON_AddStringToObject(root, "how", how);
    }
    cJSON *ans = cJSON_AddObjectToObject(root, "answers");
    cJSON *tol = key ? cJSON_AddObjectToObject(root, "tolerance") : NULL;
    cJSON *where = key ? cJSON_AddObjectToObject(root, "where") : NULL;
    cJSON *model = key ? cJSON_AddObjectToObject(root, "model_answers") : NULL;
    for (int i = 0; i < L->nqs; i++) {
        const lab_question *q = &L->qs[i];
        char id[8], pid[24];
        lab_qid(i, id, sizeof id);
        snprintf(pid, sizeof pid, "%s_prediction", id);
        if (q->predict) cJSON_AddNullToObject(ans, pid);
        if (!key) { cJSON_AddNullToObject(ans, id); continue; }
        if (q->kind == LAB_Q_NUMBER) {
            cJSON_AddNumberToObject(ans, id, q->answer);
            cJSON_AddNumberToObject(tol, id, q->tol);
        } else if (q->kind == LAB_Q_CHOICE) {
            cJSON_AddStringToObject(ans, id, q->correct);
        } else {
            cJSON_AddStringToObject(ans, id, q->key);
        }
        if (q->where) cJSON_AddStringToObject(where, id, q->where);
        if (q->key) cJSON_AddStringToObject(model, id, q->key);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}
