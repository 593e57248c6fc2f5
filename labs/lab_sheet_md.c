/* lab_sheet_md: the worksheet (and the teacher's key) as Markdown (see
 * lab_sheet.h).  Writes only to the stream it is given. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "labs/lab_impl.h"
#include "labs/lab_sheet.h"

static void table_md(FILE *f, const lab_table *t) {
    fprintf(f, "**%s** (`%s.csv`)\n\n|", t->caption, t->name);
    for (int c = 0; c < t->ncols; c++) fprintf(f, " %s |", t->cols[c]);
    fputs("\n|", f);
    for (int c = 0; c < t->ncols; c++) fputs(c ? " ---: |" : " --- |", f);
    fputc('\n', f);
    for (int r = 0; r < t->nrows; r++) {
        fprintf(f, "| %s |", t->keys[r]);
        for (int c = 1; c < t->ncols; c++) {
            char b[48];
            lab_table_cell(t, r, c, b, sizeof b);
            fprintf(f, " %s |", b);
        }
        fputc('\n', f);
    }
    fputc('\n', f);
}

static void question_md(FILE *f, const lab_question *q, int i, bool key) {
    if (q->predict)
        fprintf(f, "**%d.** *Before you run:* %s\n\n- Prediction (q%d_prediction): ______________\n\n"
                "Then: %s\n\n", i + 1, q->predict, i + 1, q->text);
    else
        fprintf(f, "**%d.** %s\n\n", i + 1, q->text);
    if (q->kind == LAB_Q_NUMBER)
        fprintf(f, "- Answer (q%d): ______________ %s\n", i + 1, q->unit ? q->unit : "");
    else if (q->kind == LAB_Q_CHOICE) {
        fprintf(f, "- Answer (q%d), one of:", i + 1);
        for (const char *p = q->choices; p && *p;) {
            const char *bar = strchr(p, '|');
            int len = bar ? (int)(bar - p) : (int)strlen(p);
            fprintf(f, " `%.*s`", len, p);
            p = bar ? bar + 1 : NULL;
        }
        fputc('\n', f);
    } else {
        fprintf(f, "- Answer (q%d), a few sentences:\n\n  &nbsp;\n\n  &nbsp;\n", i + 1);
    }
    if (key) {
        if (q->kind == LAB_Q_NUMBER)
            fprintf(f, "- **Key:** %.6g %s (accepted within %.3g)\n", q->answer, q->unit ? q->unit : "", q->tol);
        else if (q->kind == LAB_Q_CHOICE)
            fprintf(f, "- **Key:** `%s`\n", q->correct);
        if (q->key) fprintf(f, "- **Model answer:** %s\n", q->key);
        if (q->where) fprintf(f, "- *Where:* %s\n", q->where);
    }
    fputc('\n', f);
}

int lab_sheet_markdown(const lab *L, FILE *f, bool key) {
    const lab_def *d = L->def;
    unsigned long long seed = (unsigned long long)L->seed;
    fprintf(f, "# %s%s\n\n", d->title, key ? " (answer key)" : "");
    fprintf(f, "Lab `%s`, seed %llu; about %d minutes.  Name: ______________________\n\n",
            d->name, seed, d->minutes);
    fprintf(f, "%s\n\n", d->summary ? d->summary : "");
    fputs("## What to run\n\n", f);
    fprintf(f, "1. `labs/%s --seed %llu` writes the figures, the data and this worksheet to "
            "`out/%s/`.\n", d->name, seed, d->name);
    for (int i = 0; i < L->ntodos; i++)
        fprintf(f, "%d. `%s`%s%s\n", i + 2, L->todos[i].command, L->todos[i].why[0] ? ": " : "",
                L->todos[i].why);
    fputc('\n', f);
    if (L->nfigs > 0) fputs("## Figures\n\n", f);
    for (int i = 0; i < L->nfigs; i++) {
        const lab_figure_spec *g = &L->figs[i];
        fprintf(f, "### %s\n\n![%s](%s.png)\n\n", g->caption, g->caption, g->name);
        if (g->look_at) fprintf(f, "*Look at:* %s\n\n", g->look_at);
    }
    bool any = false;
    for (int i = 0; i < L->ntables; i++) any |= L->tables[i]->on_sheet;
    if (any) fputs("## Data\n\n", f);
    for (int i = 0; i < L->ntables; i++) if (L->tables[i]->on_sheet) table_md(f, L->tables[i]);
    fputs("## Questions\n\n", f);
    for (int i = 0; i < L->nqs; i++) question_md(f, &L->qs[i], i, key);
    fputs("## Checking your answers\n\n", f);
    fprintf(f, "Write your answers into `out/%s/answers.json` (q1, q2, ...; a number or text; "
            "your predictions too), then run\n`labs/%s --seed %llu --check out/%s/answers.json`: "
            "it reruns your seed and says which answers are off and where to look.  The "
            "\"explain why\" answers are read by your teacher.\n", d->name, d->name, seed, d->name);
    return ferror(f) ? -1 : 0;
}
