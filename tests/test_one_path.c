/* Tests of the one-path rule (issue 12): every caller schedules through sim/'s
 * scheduler, block manager and driver.  A scan of the source tree (outside
 * tests/) fails on code that would bring a second path back:
 *   - the step loop's internals (loop_step, sched_schedule, sched_postprocess)
 *     called outside sim/: a driver loop of one's own (use sim/driver.h, or
 *     the engine's eng_step / eng_run);
 *   - sched_add outside sim/ and engine/: arrivals of one's own (push into a
 *     sim/drv_queue.h that is the driver's source, as the engine and the
 *     server's mock do);
 *   - the model's forward pass (model_forward, model_sample, model_logprobs,
 *     model_logits) called outside engine/: a request that skips the engine's
 *     scheduler (add a request mode to the engine instead);
 *   - KV slot arithmetic (an offset in a block, "% block_size", or a block
 *     table indexed by position, "[p / block_size]") outside sim/ (kv_slot,
 *     kv_block_table) and the attention kernels that read the cache through
 *     block tables (engine/ *.cu, *.cuh and their C references).
 * Comments and string literals are not code.  Each finding is printed as
 * file:line.  Reads the source tree from the repository root (where tests
 * run); writes only a planted file under build/tmp. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <dirent.h>
#include <fnmatch.h>
#include <regex.h>
#include <sys/stat.h>

typedef struct rule {
    const char *what;             /* what a finding means */
    const char *re;               /* POSIX ERE on a line of code */
    const char *allowed;          /* space-separated fnmatch patterns of the paths that may */
} rule;

#define ID "([^[:alnum:]_]|^)"    /* an identifier starts here */
#define BS "([[:alnum:]_]+(->|\\.))*(bs|block_size|BLOCK_SIZE)([^[:alnum:]_]|$)"
static const rule k_rules[] = {
    { "the step loop's internals outside sim/ (a driver loop of its own: use sim/driver.h or eng_run)",
      ID "(loop_step|sched_schedule|sched_postprocess)[[:space:]]*\\(", "sim/*" },
    { "requests handed to the scheduler outside sim/ and engine/ (arrivals are the driver's: push into a "
      "sim/drv_queue.h that is its source, as the engine does)",
      ID "sched_add[[:space:]]*\\(", "sim/* engine/*" },
    { "the model's forward pass outside engine/ (a path around the engine's scheduler: add a request mode)",
      ID "(model_forward|model_sample|model_logprobs|model_logits)[[:space:]]*\\(", "engine/*" },
    { "a KV slot's offset in its block outside sim/ (use kv_slot)",
      "%[[:space:]]*\\(?[[:space:]]*" BS,
      "sim/* engine/*.cu engine/*.cuh engine/kernels_ref*.c" },
    { "a block table indexed by position outside sim/ (use kv_slot / kv_block_table)",
      "\\[[^][]*/[[:space:]]*\\(?[[:space:]]*" BS,
      "sim/* engine/*.cu engine/*.cuh engine/kernels_ref*.c" },
};
enum { N_RULES = sizeof k_rules / sizeof *k_rules };
/* The folders scanned: every layer and front end, and the benchmarks (tests may do anything). */
static const char *const k_dirs[] = { "base", "sim", "viz", "text", "engine", "serve", "hub", "labs", "apps", "bench" };
enum { N_DIRS = sizeof k_dirs / sizeof *k_dirs };

static regex_t g_re[N_RULES];
static int g_quiet;                /* set while scanning planted code */

static int allowed(const char *path, const char *list) {
    char pat[128];
    for (const char *p = list; *p;) {
        while (*p == ' ') p++;
        size_t k = strcspn(p, " ");
        if (k == 0) break;
        snprintf(pat, sizeof pat, "%.*s", (int)k, p);
        if (fnmatch(pat, path, 0) == 0) return 1;
        p += k;
    }
    return 0;
}

/* Blanks out comments and string and character literals of one line, in
 * place; *in_comment carries a block comment over lines. */
static void code_only(char *s, int *in_comment) {
    for (char *p = s; *p; p++) {
        if (*in_comment) {
            if (p[0] == '*' && p[1] == '/') { p[0] = p[1] = ' '; p++; *in_comment = 0; }
            else if (*p != '\n') *p = ' ';
        } else if (p[0] == '/' && p[1] == '*') {
            p[0] = p[1] = ' '; p++; *in_comment = 1;
        } else if (p[0] == '/' && p[1] == '/') {
            for (; *p && *p != '\n'; p++) *p = ' ';
            p--;
        } else if (*p == '"' || *p == '\'') {
            char q = *p;
            for (p++; *p && *p != q && *p != '\n'; p++) {
                if (*p == '\\' && p[1]) *p++ = ' ';
                *p = ' ';
            }
            if (!*p) p--;
        }
    }
}

/* Findings in one line of code of file path: 0, or how many rules it breaks. */
static int check_line(const char *path, int ln, const char *code) {
    int bad = 0;
    for (int i = 0; i < N_RULES; i++) {
        if (allowed(path, k_rules[i].allowed) || regexec(&g_re[i], code, 0, NULL, 0) != 0) continue;
        if (!g_quiet) fprintf(stderr, "%s:%d: %s\n", path, ln, k_rules[i].what);
        bad++;
    }
    return bad;
}

/* Findings in the text of a file (as if at path). */
static int scan_text(const char *path, FILE *f) {
    char line[4096];
    int bad = 0, ln = 0, in_comment = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        code_only(line, &in_comment);
        bad += check_line(path, ln, line);
    }
    return bad;
}

static int is_source(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcmp(dot, ".c") || !strcmp(dot, ".h") || !strcmp(dot, ".cu") || !strcmp(dot, ".cuh"));
}

/* Findings under folder dir (recursively); *files counts the sources read. */
static int scan_dir(const char *dir, int *files) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(sub, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) { bad += scan_dir(sub, files); continue; }
        if (!is_source(e->d_name)) continue;
        FILE *f = fopen(sub, "r");
        if (!f) { fprintf(stderr, "%s: cannot read\n", sub); bad++; continue; }
        bad += scan_text(sub, f);
        fclose(f);
        (*files)++;
    }
    closedir(d);
    return bad;
}

/* The findings of one planted line in a file at path. */
static int planted(const char *path, const char *text) {
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(f);
    g_quiet = 1;
    int bad = scan_text(path, f);
    g_quiet = 0;
    fclose(f);
    return bad;
}

static void test_rules_flag_the_drift(void **st) {
    (void)st;
    /* what labs/bias_source_real.c did before the engine had a score mode */
    assert_int_equal(planted("labs/x.c", "slot[t] = x->blocks[p / bs] * bs + p % bs;\n"), 2);
    assert_int_equal(planted("labs/x.c", "if (model_forward(s->m, &mb, &rows, err, errlen) ||\n"), 1);
    assert_int_equal(planted("labs/x.c", "    model_logprobs (s->m, b, cb_, lpb, err, errlen);\n"), 1);
    assert_int_equal(planted("apps/x/y_main.c", "int rc = loop_step(&l, &info, err, sizeof err);\n"), 1);
    assert_int_equal(planted("serve/x.c", "n = sched_schedule(sc, now, &b, NULL, 0);\n"), 1);
    assert_int_equal(planted("serve/x.c", "sched_postprocess(sc, t, now, -1, &d, &nd, 0, 0, e, n);\n"), 1);
    assert_int_equal(planted("serve/serve_mock.c", "if (!sched_add(m->sc, r->id, r->prompt, r->prompt_len, 8, 1, 0, 0, r)) {\n"), 1);
    assert_int_equal(planted("sim/driver.c", "seq *s = sched_add(d->sc, r.id, r.prompt, r.prompt_len, 8, 1, 0, 0, r.user);\n"), 0);
    assert_int_equal(planted("viz/x.c", "int off = pos % kv->block_size, b = tab[(j0 + 16) / cfg.block_size];\n"), 2);
    assert_int_equal(planted("engine/engine.c", "o = p % ( bs);\n"), 1);      /* engine/ outside the kernels */
    /* allowed where the rule says */
    assert_int_equal(planted("sim/kv_cache.c", "return (long)s->block_table[pos / bs] * bs + pos % bs;\n"), 0);
    assert_int_equal(planted("sim/driver.c", "int rc = loop_step(d->lp, info, err, errlen);\n"), 0);
    assert_int_equal(planted("engine/engine.c", "if (model_forward(e->m, &mb, &R, err, errlen)) return -1;\n"), 0);
    assert_int_equal(planted("engine/paged_kv.cuh", "return (size_t)block_table[j / block_size] * block_size + j % block_size;\n"), 0);
    assert_int_equal(planted("engine/kernels_ref.c", "size_t slot = (size_t)t[j / block_size] * block_size + j % block_size;\n"), 0);
    /* not the drift: block counts, other names, comments, strings */
    assert_int_equal(planted("engine/engine.c", "int ctx = it->start + it->num_new, nb = (ctx + bs - 1) / bs;\n"), 0);
    assert_int_equal(planted("labs/x.c", "int n = x % bsz + y % block_sizes + z[q / nbs];\n"), 0);
    assert_int_equal(planted("labs/x.c", "my_loop_step(x); model_forward_flops(m); sched_schedule_hint = 1;\n"), 0);
    assert_int_equal(planted("labs/x.c", "/* slot = blocks[p / bs] * bs + p % bs, as loop_step( does */\n"), 0);
    assert_int_equal(planted("labs/x.c", "x = 1; // model_forward(m) and p % bs\n"), 0);
    assert_int_equal(planted("labs/x.c", "puts(\"p % bs\"); c = '%'; puts(\"loop_step(\\\" too\");\n"), 0);
    assert_int_equal(planted("labs/x.c", "/* a comment over\n lines: p % bs\n and loop_step( */ int a = b % c;\n"), 0);
}

/* A planted file in a scanned folder is found by the same walk. */
static void test_scan_finds_a_planted_file(void **st) {
    (void)st;
    if (system("mkdir -p build/tmp/onepath/labs") != 0) fail();
    FILE *f = fopen("build/tmp/onepath/labs/planted.c", "w");
    assert_non_null(f);
    fputs("static int f(int p, int bs) {\n    return p % bs;    /* an offset */\n}\n", f);
    fclose(f);
    int files = 0;
    g_quiet = 1;
    int bad = scan_dir("build/tmp/onepath/labs", &files);
    g_quiet = 0;
    assert_int_equal(files, 1);
    assert_int_equal(bad, 1);
    remove("build/tmp/onepath/labs/planted.c");
}

/* One case per folder: it holds sources, and none brings a second path back. */
static void test_folder(void **st) {
    const char *dir = *st;
    int files = 0, bad = scan_dir(dir, &files);
    if (files == 0) fprintf(stderr, "%s/: no source files (run from the repository root)\n", dir);
    assert_true(files > 0);
    assert_int_equal(bad, 0);
}

static int compile_rules(void **st) {
    (void)st;
    for (int i = 0; i < N_RULES; i++)
        if (regcomp(&g_re[i], k_rules[i].re, REG_EXTENDED | REG_NOSUB) != 0) {
            fprintf(stderr, "rule %d: bad expression %s\n", i, k_rules[i].re);
            return -1;
        }
    return 0;
}
static int free_rules(void **st) {
    (void)st;
    for (int i = 0; i < N_RULES; i++) regfree(&g_re[i]);
    return 0;
}

int main(void) {
    struct CMUnitTest tests[2 + N_DIRS] = {
        cmocka_unit_test(test_rules_flag_the_drift),
        cmocka_unit_test(test_scan_finds_a_planted_file),
    };
    static char names[N_DIRS][64];
    for (int i = 0; i < N_DIRS; i++) {
        snprintf(names[i], sizeof names[i], "test_one_path_%s", k_dirs[i]);
        tests[2 + i] = (struct CMUnitTest)cmocka_unit_test_prestate(test_folder, (void *)k_dirs[i]);
        tests[2 + i].name = names[i];
    }
    return cmocka_run_group_tests(tests, compile_rules, free_rules);
}
