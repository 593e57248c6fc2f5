/* lab_grade: a student's answers against the run of their seed.  The answers
 * file is the template lab_write leaves in out/<name>/answers.json, filled in:
 *   {"lab": "paging", "seed": 7,
 *    "answers": {"q1": 38.5, "q2_prediction": 10, "q2": "12 requests", "q3": "orca-max",
 *                "q7": "because ..."}}
 * Numbers may be JSON numbers or text that starts with one ("31.2 %", "2.2x");
 * choices are compared ignoring case, spaces, '-', '_' and parentheses
 * ("Orca (Max)" = "orca-max"); "explain why" answers are left to the teacher;
 * predictions are echoed, never graded.  The teacher's key (lab_answers_json
 * with key) has the same shape, so it passes its own check.  Reads only the
 * file it is given; prints nothing. */
#ifndef LAB_GRADE_H
#define LAB_GRADE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "labs/lab.h"

typedef enum { LAB_MARK_RIGHT, LAB_MARK_WRONG, LAB_MARK_MISSING, LAB_MARK_TEACHER } lab_mark_kind;

typedef struct lab_mark {
    char          id[8];             /* "q3" */
    lab_mark_kind mark;
    char          given[96];         /* the answer as read ("" when missing) */
    char          why[384];          /* WRONG: "too high; look at Figure 2, ..." */
    char          prediction[96];    /* the student's prediction, "" when none */
} lab_mark;

typedef struct lab_grades {
    lab_mark *marks;                 /* (n,) one per question, in order */
    int       n, right, wrong, missing, teacher;
} lab_grades;

/* The lab name and seed an answers file is for (has_seed false when it names
 * none), so that --check can run that seed.  -1 with err (file:line) on a
 * file that is not an answers object. */
int   lab_answers_peek(const char *path, char *name, size_t name_len, uint64_t *seed,
                       bool *has_seed, char *err, size_t errlen);
/* Grades the answers in path (or in text; origin names it in errors) against
 * L's questions (L run at least through its questions).  -1 with err when the
 * file is unreadable, not JSON, or for another lab or seed. */
int   lab_grade_file(const lab *L, const char *path, lab_grades *out, char *err, size_t errlen);
int   lab_grade_text(const lab *L, const char *text, const char *origin, lab_grades *out,
                     char *err, size_t errlen);
void  lab_grades_free(lab_grades *g);
/* The answers object as JSON text (malloc'd; NULL on memory): with key, the
 * answers filled in from the run plus each question's tolerance, where to
 * look and model answer; without, the empty template. */
char *lab_answers_json(const lab *L, bool key);
#endif
