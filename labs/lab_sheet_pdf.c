/* lab_sheet_pdf: the worksheet as a printable PDF drawn with cairo (see
 * lab_sheet.h).  A simple page flow: a cursor moves down the page; a block
 * that does not fit (a figure, a question with its answer lines, a table)
 * starts a new page.  Laid out twice: once on a recording surface to count
 * the pages ("page 2 of 4"), then into the PDF.  Writes only the PDF file. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <cairo-pdf.h>
#include "base/errbuf.h"
#include "labs/lab_impl.h"
#include "labs/lab_sheet.h"
#include "viz/chartkit.h"

typedef struct flow {
    cairo_t *cr;
    const lab *L;
    double W, H, M;                  /* page size, margin */
    double x, y, w;                  /* cursor: left edge, top of the next line, width */
    int    page, pages;              /* 1-based page; total (0 on the counting pass) */
} flow;

static double bottom(const flow *F) { return F->H - F->M - 18; }

static void footer(flow *F) {
    char t[256];
    if (F->pages > 0)
        snprintf(t, sizeof t, "pagesim lab %s, seed %llu  -  page %d of %d", F->L->def->name,
                 (unsigned long long)F->L->seed, F->page, F->pages);
    else
        snprintf(t, sizeof t, "pagesim lab %s", F->L->def->name);
    viz_ck_font(F->cr, 8, false, false);
    cairo_set_source_rgb(F->cr, 0.4, 0.4, 0.44);
    viz_ck_text(F->cr, F->W / 2, F->H - F->M + 6, t, 0.5);
}

static void new_page(flow *F) {
    footer(F);
    cairo_show_page(F->cr);
    F->page++;
    F->y = F->M;
}

/* Room for h more points on this page?  If not, a new page. */
static void need(flow *F, double h) {
    if (F->y + h > bottom(F) && F->y > F->M + 1) new_page(F);
}

enum { MAXLINES = 96, LINELEN = 512 };

/* Wraps text (hard breaks at '\n') into lines of width w at the current
 * font; returns their number (at most MAXLINES). */
static int wrap(cairo_t *cr, const char *text, double w, char (*out)[LINELEN]) {
    char word[LINELEN];
    int n = 0;
    out[0][0] = 0;
    const char *p = text ? text : "";
    while (*p && n < MAXLINES) {
        size_t k = 0;
        bool brk = false;
        while (*p == ' ') p++;
        while (*p && *p != ' ' && *p != '\n' && k + 1 < sizeof word) word[k++] = *p++;
        word[k] = 0;
        if (*p == '\n') { brk = true; p++; }
        if (k > 0) {
            char trial[2 * LINELEN + 2];
            snprintf(trial, sizeof trial, "%s%s%s", out[n], out[n][0] ? " " : "", word);
            if ((out[n][0] && viz_ck_text_w(cr, trial) > w) || strlen(trial) >= LINELEN) {
                if (++n == MAXLINES) break;
                memcpy(out[n], word, k + 1);
            } else {
                memcpy(out[n], trial, strlen(trial) + 1);
            }
        }
        if ((brk || !*p) && (out[n][0] || brk)) {
            if (++n == MAXLINES) break;
            out[n][0] = 0;
        }
    }
    return n;
}

/* Text styles of the sheet: body ink, or dim for asides; bold; mono for commands. */
enum { ST_BOLD = 1, ST_MONO = 2, ST_DIM = 4 };

static void style_colour(cairo_t *cr, int st) {
    if (st & ST_DIM) cairo_set_source_rgb(cr, 0.30, 0.30, 0.34);
    else viz_ck_ink(cr);
}

/* A paragraph at x + indent; breaks pages between lines. */
static void para(flow *F, const char *text, double size, int st, double indent, double after) {
    static char lines[MAXLINES][LINELEN];
    viz_ck_font(F->cr, size, st & ST_BOLD, st & ST_MONO);
    double lh = size * 1.35;
    int n = wrap(F->cr, text, F->w - indent, lines);
    for (int i = 0; i < n; i++) {
        need(F, lh);
        viz_ck_font(F->cr, size, st & ST_BOLD, st & ST_MONO);
        style_colour(F->cr, st);
        viz_ck_text(F->cr, F->x + indent, F->y + size, lines[i], 0);
        F->y += lh;
    }
    viz_ck_ink(F->cr);
    F->y += after;
}

static double para_height(flow *F, const char *text, double size, int st, double indent) {
    static char lines[MAXLINES][LINELEN];
    viz_ck_font(F->cr, size, st & ST_BOLD, st & ST_MONO);
    return wrap(F->cr, text, F->w - indent, lines) * size * 1.35;
}

/* A section heading, on the same page as the first next_h points after it. */
static void heading(flow *F, const char *t, double next_h) {
    need(F, 30 + (next_h < bottom(F) - F->M - 30 ? next_h : 30));
    F->y += 6;
    para(F, t, 12.5, ST_BOLD, 0, 3);
}

static void rule(flow *F, double x0, double x1, double y) {
    cairo_set_source_rgb(F->cr, 0.55, 0.55, 0.58);
    cairo_set_line_width(F->cr, 0.6);
    cairo_move_to(F->cr, x0, y); cairo_line_to(F->cr, x1, y);
    cairo_stroke(F->cr);
}

static void figure(flow *F, const lab_figure_spec *g) {
    double cap_h = para_height(F, g->caption, 10.5, ST_BOLD, 0);
    double look_h = g->look_at ? para_height(F, g->look_at, 9.5, 0, 0) + 4 : 0;
    double s = F->w / g->width, fh = g->height * s;
    double room = bottom(F) - F->M - cap_h - look_h - 12;
    if (fh > room) { s = room / g->height; fh = room; }
    need(F, cap_h + fh + look_h + 10);
    para(F, g->caption, 10.5, ST_BOLD, 0, 2);
    cairo_save(F->cr);
    double fx = F->x + (F->w - g->width * s) / 2;
    cairo_rectangle(F->cr, fx, F->y, g->width * s, fh);
    cairo_clip(F->cr);
    cairo_translate(F->cr, fx, F->y);
    cairo_scale(F->cr, s, s);
    g->draw(F->cr, g->ctx, g->width, g->height);
    cairo_restore(F->cr);
    cairo_set_source_rgb(F->cr, 0.7, 0.7, 0.72);
    cairo_set_line_width(F->cr, 0.5);
    cairo_rectangle(F->cr, fx, F->y, g->width * s, fh);
    cairo_stroke(F->cr);
    F->y += fh + 4;
    if (g->look_at) {
        char t[1200];
        snprintf(t, sizeof t, "Look at: %s", g->look_at);
        para(F, t, 9.5, ST_DIM, 0, 0);
    }
    F->y += 10;
}

static void table(flow *F, const lab_table *t) {
    double size = 9, colw[16] = {0};
    int nc = t->ncols < 16 ? t->ncols : 16;
    char b[64];
    for (;;) {                       /* widest cell per column; shrink the font to fit */
        double total = 0;
        for (int c = 0; c < nc; c++) {
            viz_ck_font(F->cr, size, true, false);
            colw[c] = viz_ck_text_w(F->cr, t->cols[c]);
            viz_ck_font(F->cr, size, false, false);
            for (int r = 0; r < t->nrows; r++) {
                if (c == 0) snprintf(b, sizeof b, "%s", t->keys[r]);
                else lab_table_cell(t, r, c, b, sizeof b);
                double wv = viz_ck_text_w(F->cr, b);
                if (wv > colw[c]) colw[c] = wv;
            }
            colw[c] += size * 1.4;
            total += colw[c];
        }
        if (total <= F->w || size < 6) break;
        size *= 0.92;
    }
    double lh = size * 1.5, cap_h = para_height(F, t->caption, 10, ST_BOLD, 0);
    need(F, cap_h + lh * (t->nrows + 1) + 8);
    para(F, t->caption, 10, ST_BOLD, 0, 2);
    double y = F->y;
    for (int r = -1; r < t->nrows; r++) {
        double x = F->x;
        for (int c = 0; c < nc; c++) {
            if (r < 0) snprintf(b, sizeof b, "%s", t->cols[c]);
            else if (c == 0) snprintf(b, sizeof b, "%s", t->keys[r]);
            else lab_table_cell(t, r, c, b, sizeof b);
            viz_ck_font(F->cr, size, r < 0, false);
            viz_ck_ink(F->cr);
            if (c == 0) viz_ck_text(F->cr, x, y + size, b, 0);
            else viz_ck_text(F->cr, x + colw[c] - size * 0.4, y + size, b, 1);
            x += colw[c];
        }
        rule(F, F->x, x, y + lh - size * 0.25);
        y += lh;
    }
    F->y = y + 10;
}

/* One question: the prediction asked first (when there is one), then the
 * question and its answer line(s); kept on one page. */
static void question(flow *F, const lab_question *q, int i) {
    char t[2400], pred[1200] = "";
    snprintf(t, sizeof t, "%s%s", q->predict ? "Then: " : "", q->text);
    double ind = 16, h = para_height(F, t, 10, 0, ind) + 30;
    if (q->predict) {
        snprintf(pred, sizeof pred, "%d.  Before you run: %s", i + 1, q->predict);
        h += para_height(F, pred, 10, 0, 0) + 22;
    }
    h += q->kind == LAB_Q_EXPLAIN ? 4 * 20 : q->kind == LAB_Q_CHOICE ? 30 : 8;
    need(F, h);
    if (q->predict) {
        para(F, pred, 10, 0, 0, 4);
        viz_ck_font(F->cr, 10, false, false);
        viz_ck_ink(F->cr);
        viz_ck_text(F->cr, F->x + ind, F->y + 10, "Prediction:", 0);
        rule(F, F->x + ind + 62, F->x + ind + 230, F->y + 12);
        F->y += 22;
        para(F, t, 10, 0, ind, 4);
    } else {
        snprintf(t, sizeof t, "%d.  %s", i + 1, q->text);
        para(F, t, 10, 0, 0, 4);
    }
    viz_ck_font(F->cr, 10, false, false);
    viz_ck_ink(F->cr);
    char lab[32];
    snprintf(lab, sizeof lab, "q%d:", i + 1);
    if (q->kind == LAB_Q_NUMBER) {
        viz_ck_text(F->cr, F->x + ind, F->y + 10, lab, 0);
        rule(F, F->x + ind + 30, F->x + ind + 200, F->y + 12);
        viz_ck_ink(F->cr);
        if (q->unit) viz_ck_text(F->cr, F->x + ind + 206, F->y + 10, q->unit, 0);
        F->y += 22;
    } else if (q->kind == LAB_Q_CHOICE) {
        viz_ck_text(F->cr, F->x + ind, F->y + 10, lab, 0);
        double x = F->x + ind + 30;
        viz_ck_font(F->cr, 9.5, false, true);
        for (const char *p = q->choices; p && *p;) {
            const char *bar = strchr(p, '|');
            char c[64];
            snprintf(c, sizeof c, "%.*s", bar ? (int)(bar - p) : (int)strlen(p), p);
            double cw = viz_ck_text_w(F->cr, c);
            if (x + cw + 26 > F->x + F->w) { x = F->x + ind + 30; F->y += 16; }
            cairo_rectangle(F->cr, x, F->y + 2.5, 9, 9);
            cairo_set_line_width(F->cr, 0.8);
            cairo_stroke(F->cr);
            viz_ck_text(F->cr, x + 13, F->y + 10, c, 0);
            x += cw + 30;
            p = bar ? bar + 1 : NULL;
        }
        F->y += 24;
    } else {
        viz_ck_text(F->cr, F->x + ind, F->y + 10, lab, 0);
        for (int k = 0; k < 4; k++) rule(F, F->x + ind + (k ? 0 : 30), F->x + F->w, F->y + 12 + 20 * k);
        F->y += 84;
    }
    F->y += 8;
}

static void layout(flow *F) {
    const lab *L = F->L;
    const lab_def *d = L->def;
    char t[2048];
    unsigned long long seed = (unsigned long long)L->seed;
    F->page = 1;
    F->y = F->M;
    para(F, d->title, 17, ST_BOLD, 0, 2);
    snprintf(t, sizeof t, "pagesim lab \"%s\", seed %llu, about %d minutes", d->name, seed, d->minutes);
    para(F, t, 9.5, ST_DIM, 0, 6);
    viz_ck_font(F->cr, 10, false, false);
    viz_ck_ink(F->cr);
    viz_ck_text(F->cr, F->x, F->y + 10, "Name:", 0);
    rule(F, F->x + 36, F->x + 260, F->y + 12);
    F->y += 26;
    para(F, d->summary, 10, 0, 0, 4);
    heading(F, "What to run", 60);
    snprintf(t, sizeof t, "labs/%s --seed %llu", d->name, seed);
    para(F, t, 9, ST_MONO, 10, 0);
    snprintf(t, sizeof t, "writes the figures, the data and this worksheet to out/%s/", d->name);
    para(F, t, 9.5, ST_DIM, 22, 3);
    for (int i = 0; i < L->ntodos; i++) {
        para(F, L->todos[i].command, 9, ST_MONO, 10, 0);
        if (L->todos[i].why[0]) para(F, L->todos[i].why, 9.5, ST_DIM, 22, 3);
    }
    if (L->nfigs > 0) heading(F, "Figures", 40 + L->figs[0].height * F->w / L->figs[0].width);
    for (int i = 0; i < L->nfigs; i++) figure(F, &L->figs[i]);
    bool any = false;
    for (int i = 0; i < L->ntables; i++) any |= L->tables[i]->on_sheet;
    for (int i = 0; any && i < L->ntables; i++)
        if (L->tables[i]->on_sheet) { heading(F, "Data", 30 + (L->tables[i]->nrows + 1) * 9 * 1.5); break; }
    for (int i = 0; i < L->ntables; i++) if (L->tables[i]->on_sheet) table(F, L->tables[i]);
    heading(F, "Questions", 80);
    for (int i = 0; i < L->nqs; i++) question(F, &L->qs[i], i);
    heading(F, "Checking your answers", 60);
    snprintf(t, sizeof t, "Write your answers into out/%s/answers.json (q1, q2, ...: a number or "
             "text; your predictions too), then run the command below.  It reruns your seed and says "
             "which answers are off and where to look.  Your teacher reads the \"explain why\" answers.",
             d->name);
    para(F, t, 10, 0, 0, 4);
    snprintf(t, sizeof t, "labs/%s --seed %llu --check out/%s/answers.json", d->name, seed, d->name);
    para(F, t, 9, ST_MONO, 10, 0);
    footer(F);
    cairo_show_page(F->cr);
}

int lab_sheet_pdf(const lab *L, const char *path, double page_w, double page_h,
                  char *err, size_t errlen) {
    flow F = { .L = L, .W = page_w, .H = page_h, .M = 50 };
    F.x = F.M;
    F.w = page_w - 2 * F.M;
    /* pass 1: count the pages */
    cairo_surface_t *rec = cairo_recording_surface_create(CAIRO_CONTENT_COLOR_ALPHA, NULL);
    F.cr = cairo_create(rec);
    layout(&F);
    int pages = F.page;
    cairo_destroy(F.cr);
    cairo_surface_destroy(rec);
    /* pass 2: the PDF */
    cairo_surface_t *sf = cairo_pdf_surface_create(path, page_w, page_h);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(sf);
        return errbuf_fail(err, errlen, "%s: cannot create the PDF", path);
    }
    char title[256];
    snprintf(title, sizeof title, "%s (seed %llu)", L->def->title, (unsigned long long)L->seed);
    cairo_pdf_surface_set_metadata(sf, CAIRO_PDF_METADATA_TITLE, title);
    cairo_pdf_surface_set_metadata(sf, CAIRO_PDF_METADATA_CREATOR, "pagesim labs");
    F.cr = cairo_create(sf);
    F.pages = pages;
    layout(&F);
    cairo_status_t st = cairo_status(F.cr);
    cairo_destroy(F.cr);
    cairo_surface_finish(sf);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    if (st != CAIRO_STATUS_SUCCESS)
        return errbuf_fail(err, errlen, "%s: %s", path, cairo_status_to_string(st));
    return 0;
}
