/* lab_cli: the shared front end of the classroom labs (see lab_cli.h).
 * Prints to stdout/stderr; writes files only through labs/lab_write.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/clock.h"
#include "engine/engine.h"
#include "apps/common/front.h"
#include "base/file.h"
#include "base/opt.h"
#include "labs/lab.h"
#include "labs/lab_grade.h"
#include "labs/lab_real.h"
#include "labs/lab_write.h"
#include "apps/labs/lab_cli.h"

typedef struct cli_opts {
    unsigned long long seed;
    bool        seed_given, teacher, real, quiet;
    const char *out, *check;
} cli_opts;

/* text wrapped at width columns, the first line indented by first, the others by indent */
static void print_wrapped(FILE *f, const char *text, int width, int first, int indent) {
    fprintf(f, "%*s", first, "");
    int col = first;
    bool line_start = true;
    for (const char *p = text ? text : ""; *p;) {
        while (*p == ' ') p++;
        int n = 0;
        while (p[n] && p[n] != ' ') n++;
        if (n == 0) break;
        if (!line_start && col + 1 + n > width) { fprintf(f, "\n%*s", indent, ""); col = indent; line_start = true; }
        if (!line_start) { fputc(' ', f); col++; }
        fprintf(f, "%.*s", n, p);
        col += n;
        line_start = false;
        p += n;
    }
    fputc('\n', f);
}

/* a number as a person writes it: whole numbers plain, others with 3 digits */
static const char *num(double v, char *buf, size_t n) {
    if (v == (double)(long long)v && v < 1e15 && v > -1e15) snprintf(buf, n, "%lld", (long long)v);
    else snprintf(buf, n, "%.3g", v);
    return buf;
}

static void usage(const lab_def *d, FILE *f) {
    fprintf(f, "usage: labs/%s [--seed S] [--out DIR] [--teacher] [--real] [--quiet]\n"
               "       labs/%s --check ANSWERS.json [--seed S]\n\n", d->name, d->name);
    fprintf(f, "%s\n\n", d->title);
    print_wrapped(f, d->summary, 78, 0, 0);
    fputc('\n', f);
    fprintf(f, "Runs in seconds without a GPU or network; prints what the run shows and writes\n"
               "out/%s/: figures (PNG, SVG), data (CSV, JSON), the worksheet (worksheet.md,\n"
               "worksheet-a4.pdf, worksheet-letter.pdf) and answers.json to fill in.\n\n", d->name);
    fputs("  --seed S        your own variant of the lab (1, the default: the setup of the\n"
          "                  published numbers the lab compares with)\n"
          "  --out DIR       where the files go (out/<lab>)\n"
          "  --teacher       also write the answer key (answer-key.json, answer-key.md)\n"
          "  --check FILE    grade a filled-in answers.json against its seed's run: says which\n"
          "                  answers are off and where to look (exit 0: all right, 1: not all)\n"
          "  --real          repeat the central measurement on the GPU engine (needs a GPU build)\n"
          "  --quiet         print only the files written (or the marks)\n"
          "  --data-dir DIR  the project's data folder (else $PAGESIM_DATA, else the data/\n"
          "                  beside this program: the lab runs from any directory)\n"
          "  --version, -h, --help\n"
          "Exit status: 0 done (--check: all right), 1 the run failed (--check: answers\n"
          "wrong or missing), 2 bad usage or input.\n\n", f);
    char line[1024];
    if (d->seed_note) { snprintf(line, sizeof line, "What --seed changes: %s.", d->seed_note); print_wrapped(f, line, 78, 0, 2); }
    snprintf(line, sizeof line, "Time in class: about %d minutes.  Concepts: %s.", d->minutes, d->concepts ? d->concepts : "-");
    print_wrapped(f, line, 78, 0, 2);
    snprintf(line, sizeof line, "--real: %s.", d->real_note ? d->real_note : "no engine measurement for this lab");
    print_wrapped(f, line, 78, 0, 2);
}

/* 0, 1 for --help, 2 for bad usage (message printed). */
static int parse(const lab_def *d, int argc, char **argv, cli_opts *o) {
    static const opt_spec opts[] = {
        { "seed", 's', OPT_VALUE },   { "out", 'o', OPT_VALUE },   { "teacher", 't', OPT_FLAG },
        { "check", 'c', OPT_VALUE },  { "real", 'r', OPT_FLAG },   { "quiet", 'q', OPT_FLAG },
        { "help", 'h', OPT_FLAG },    FRONT_SPECS,                 { NULL, 0, 0 },
    };
    memset(o, 0, sizeof *o);
    o->seed = 1;
    opt_parser p;
    const char *v;
    char err[256];
    int c, rc = 0;
    if (opt_begin(&p, argc, argv, opts, err, sizeof err)) rc = 2;
    while (rc == 0 && (c = opt_next(&p, &v, err, sizeof err)) != OPT_END) {
        char prog[96];
        snprintf(prog, sizeof prog, "labs/%s", d->name);
        if (front_option(prog, c, v)) continue;
        switch (c) {
        case 's':
            if (opt_u64(opt_name(&p), v, &o->seed, err, sizeof err)) rc = 2;
            o->seed_given = true;
            break;
        case 'o': o->out = v; break;
        case 't': o->teacher = true; break;
        case 'c': o->check = v; break;
        case 'r': o->real = true; break;
        case 'q': o->quiet = true; break;
        case 'h': rc = 1; break;
        case OPT_ARG: snprintf(err, sizeof err, "unexpected argument '%s'", v); rc = 2; break;
        default: rc = 2; break;                        /* OPT_ERROR: err says what */
        }
    }
    opt_end(&p);
    if (rc == 2) fprintf(stderr, "labs/%s: %s (labs/%s --help)\n", d->name, err, d->name);
    return rc;
}

/* An error, with a hint when the data folder was not found. */
static void print_error(const lab_def *d, const char *what, const char *err) {
    fprintf(stderr, "labs/%s%s: %s\n", d->name, what, err);
    if (strstr(err, "data/") && !file_data_dir() && access("data/gpus.json", R_OK) != 0)
        fprintf(stderr, "labs/%s: the project's data folder was not found: give --data-dir DIR (or set "
                "PAGESIM_DATA)\n", d->name);
}

static int check(const lab_def *d, cli_opts *o) {
    char err[1024], name[64];
    uint64_t seed = 0;
    bool has_seed = false;
    if (lab_answers_peek(o->check, name, sizeof name, &seed, &has_seed, err, sizeof err) < 0) {
        fprintf(stderr, "labs/%s --check: %s\n", d->name, err);
        return 2;
    }
    if (!o->seed_given && has_seed) o->seed = seed;
    lab *L = lab_create(d, o->seed, err, sizeof err);
    lab_grades g = {0};
    if (!L || lab_run(L, 0, err, sizeof err) < 0 || lab_grade_file(L, o->check, &g, err, sizeof err) < 0) {
        print_error(d, " --check", err);
        lab_free(L);
        return 2;
    }
    printf("labs/%s, seed %llu: %s\n", d->name, o->seed, o->check);
    for (int i = 0; i < g.n; i++) {
        const lab_mark *m = &g.marks[i];
        const char *v = m->mark == LAB_MARK_RIGHT ? "right" : m->mark == LAB_MARK_WRONG ? "WRONG"
                      : m->mark == LAB_MARK_MISSING ? "missing" : "read by your teacher";
        if (o->quiet && m->mark == LAB_MARK_RIGHT) continue;
        printf("  %-4s %-8s", m->id, v);
        if (m->mark == LAB_MARK_RIGHT || m->mark == LAB_MARK_WRONG) printf(" %s", m->given);
        if (m->mark == LAB_MARK_WRONG) printf(": %s", m->why);
        if (m->prediction[0]) printf("   (you predicted %s)", m->prediction);
        putchar('\n');
    }
    printf("%d right, %d wrong, %d missing, %d for your teacher\n", g.right, g.wrong, g.missing, g.teacher);
    int rc = g.wrong || g.missing ? 1 : 0;
    lab_grades_free(&g);
    lab_free(L);
    return rc;
}

static void print_headlines(const lab *L) {
    int n = lab_num_headlines(L);
    if (n == 0) {
        printf("\n(The numbers to compare with the paper are those of --seed %d.)\n", LAB_PAPER_SEED);
        return;
    }
    printf("\nAgainst the published numbers:\n");
    for (int i = 0; i < n; i++) {
        const lab_headline *h = lab_headline_at(L, i);
        const char *u = h->unit ? h->unit : "";
        char a[32], b[32], m[32], paper[80];
        if (h->paper_lo == h->paper_hi) snprintf(paper, sizeof paper, "%s%s", num(h->paper_lo, a, sizeof a), u);
        else snprintf(paper, sizeof paper, "%s-%s%s", num(h->paper_lo, a, sizeof a), num(h->paper_hi, b, sizeof b), u);
        printf("  %-40s %8s%-2s paper %-10s %s (tolerance %s)\n", h->what, num(h->measured, m, sizeof m), u,
               paper, lab_headline_within(h) ? "within" : "OUTSIDE", num(h->tol, a, sizeof a));
        char line[1024];
        snprintf(line, sizeof line, "%s%s%s%s", h->source ? h->source : "", h->source && h->gap ? ".  " : "",
                 h->gap ? "Gap: " : "", h->gap ? h->gap : "");
        if (h->source || h->gap) print_wrapped(stdout, line, 78, 6, 6);
    }
}

int lab_cli_main(const lab_def *d, int argc, char **argv) {
    static char prog[96];
    snprintf(prog, sizeof prog, "labs/%s", d->name);
    front_init(prog);
    cli_opts o;
    int pr = parse(d, argc, argv, &o);
    if (pr == 1) { usage(d, stdout); return 0; }
    if (pr) return pr;
    if (o.check) return check(d, &o);
    if (o.real) {
#ifndef PAGESIM_HAVE_CUDA
        fprintf(stderr, "labs/%s --real: needs a GPU build: this one was built without nvcc (the "
                "CUDA toolkit).  Without --real the lab runs in simulation.\n", d->name);
        return 2;
#else
        if (!d->real) {
            fprintf(stderr, "labs/%s --real: not written for this lab yet%s%s.  Without --real the lab "
                    "runs in simulation.\n", d->name, d->real_note ? "; it will measure " : "",
                    d->real_note ? d->real_note : "");
            return 2;
        }
        char why[256];
        if (!eng_gpu_available(why, sizeof why)) {
            fprintf(stderr, "labs/%s --real: %s; --real measures on the CUDA engine and needs a GPU.  Nothing was "
                    "written.  Without --real the lab runs in simulation.\n", d->name, why);
            return 2;
        }
        if (!o.quiet) fprintf(stderr, "labs/%s --real: measuring on the GPU (%s)...\n", d->name, d->real_note);
#endif
    }
    char err[1024], dir[4096];
    snprintf(dir, sizeof dir, "%s", o.out ? o.out : "");
    if (!o.out) snprintf(dir, sizeof dir, "out/%s", d->name);
    double t0 = clock_now_s();
    lab *L = lab_create(d, o.seed, err, sizeof err);
    if (!L || lab_run(L, LAB_WITH_ALL | (o.real ? LAB_WITH_REAL : 0), err, sizeof err) < 0 ||
        lab_write(L, dir, o.teacher, err, sizeof err) < 0) {
        print_error(d, "", err);
        lab_free(L);
        return 1;
    }
    if (!o.quiet) {
        printf("%s (seed %llu)\n\n", d->title, o.seed);
        const char *p = lab_narrative(L);
        while (*p) {                     /* paragraph by paragraph, wrapped */
            const char *e = strstr(p, "\n\n");
            size_t len = e ? (size_t)(e - p) : strlen(p);
            char *para = strndup(p, len);
            if (para) { print_wrapped(stdout, para, 78, 0, 0); free(para); }
            p += len;
            if (*p) { p += 2; putchar('\n'); }
        }
        print_headlines(L);
        putchar('\n');
    }
    printf("wrote %d files to %s/ in %.1f s:", lab_num_files(L), dir, clock_now_s() - t0);
    for (int i = 0; i < lab_num_files(L); i++) printf(" %s", lab_file_at(L, i));
    printf("\nnext: answer the questions of %s/worksheet-a4.pdf (or -letter, or .md) in %s/answers.json,\n"
           "      then: labs/%s --check %s/answers.json\n", dir, dir, d->name, dir);
    lab_free(L);
    return 0;
}
