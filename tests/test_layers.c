/* Tests of the layer rule (issue 12): every #include "dir/..." in a library or
 * front-end folder points at its own folder or at a layer below it, as the
 * matrix k_layers says (the Makefile links the libraries in the same order).
 * Each violation is reported as file:line.  Reads the source tree from the
 * repository root (where tests run); writes nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tests/test_util.h"
#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>

/* Each layer and the folders it may include besides its own ("*": any). */
typedef struct layer { const char *dir, *may; } layer;
static const layer k_layers[] = {
    { "base",   "" },
    { "sim",    "base" },
    { "viz",    "sim base" },
    { "text",   "base" },
    { "engine", "sim text base" },
    { "serve",  "engine sim text base" },
    { "hub",    "base" },
    { "labs",   "serve engine hub text viz sim base" },
    { "apps",   "*" },
};
enum { N_LAYERS = sizeof k_layers / sizeof *k_layers };
/* Top-level folders that are not layers (tests and benchmarks may include anything). */
static const char *const k_not_layers[] = { "tests", "bench", "scripts", "docs", "data", "shared" };

static int word_in(const char *w, size_t n, const char *list) {
    for (const char *p = list; *p;) {
        while (*p == ' ') p++;
        size_t k = strcspn(p, " ");
        if (k == n && strncmp(p, w, n) == 0) return 1;
        p += k;
    }
    return 0;
}

/* One source line of a file in layer `dir`: 1 (with why filled) when it is an
 * #include "..." that the matrix forbids, else 0. */
static int forbidden_include(const char *dir, const char *line, char *why, size_t n) {
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p++ != '#') return 0;
    while (*p == ' ' || *p == '\t') p++;
    if (strncmp(p, "include", 7) != 0) return 0;
    p += 7;
    while (*p == ' ' || *p == '\t') p++;
    if (*p != '"') return 0;                               /* <system> headers are free */
    const char *path = ++p, *end = strchr(path, '"');
    if (!end) { snprintf(why, n, "unterminated #include"); return 1; }
    const char *slash = memchr(path, '/', (size_t)(end - path));
    if (!slash) {
        snprintf(why, n, "#include \"%.*s\": write the path from the repository root", (int)(end - path), path);
        return 1;
    }
    size_t k = (size_t)(slash - path);
    const char *may = NULL;
    for (int i = 0; i < N_LAYERS; i++)
        if (strcmp(k_layers[i].dir, dir) == 0) may = k_layers[i].may;
    if (!may) { snprintf(why, n, "%s/ is not a layer", dir); return 1; }
    if ((strlen(dir) == k && strncmp(dir, path, k) == 0) || strcmp(may, "*") == 0 || word_in(path, k, may)) return 0;
    snprintf(why, n, "#include \"%.*s\": %s/ may include %s%s", (int)(end - path), path, dir,
             *may ? may : "nothing of the project", *may ? " (and itself)" : "");
    return 1;
}

static int is_source(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcmp(dot, ".c") || !strcmp(dot, ".h") || !strcmp(dot, ".cu") || !strcmp(dot, ".cuh"));
}

static int g_quiet;   /* set while scanning the planted file */

/* Violations in one file, each printed as file:line: why. */
static int scan_file(const char *path, const char *dir) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "%s: cannot read\n", path); return 1; }
    char line[1024], why[256];
    int bad = 0, ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        if (forbidden_include(dir, line, why, sizeof why)) {
            if (!g_quiet) fprintf(stderr, "%s:%d: %s\n", path, ln, why);
            bad++;
        }
    }
    fclose(f);
    return bad;
}

/* Violations under folder path (recursively) for layer dir; *files counts the sources read. */
static int scan_dir(const char *path, const char *dir, int *files) {
    DIR *d = opendir(path);
    if (!d) return 0;
    int bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        struct stat st;
        if (stat(sub, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) bad += scan_dir(sub, dir, files);
        else if (is_source(e->d_name)) { bad += scan_file(sub, dir); (*files)++; }
    }
    closedir(d);
    return bad;
}

static void test_checker_flags_what_the_matrix_forbids(void **st) {
    (void)st;
    char why[256];
    /* upward arrows */
    assert_true(forbidden_include("sim", "#include \"viz/render.h\"\n", why, sizeof why));
    assert_non_null(strstr(why, "viz/render.h"));
    assert_true(forbidden_include("sim", "  #  include \"engine/engine.h\"", why, sizeof why));
    assert_true(forbidden_include("engine", "#include \"serve/serve.h\"", why, sizeof why));
    assert_true(forbidden_include("text", "#include \"engine/kernels.h\"", why, sizeof why));
    assert_true(forbidden_include("labs", "#include \"apps/engine/cli.h\"", why, sizeof why));
    assert_true(forbidden_include("base", "#include \"sim/sequence.h\"", why, sizeof why));
    /* sideways: hub and text are both above base only */
    assert_true(forbidden_include("hub", "#include \"text/tokenizer.h\"", why, sizeof why));
    /* a folder that is no layer, a path without folder, a prefix that is not the folder */
    assert_true(forbidden_include("sim", "#include \"tests/test_util.h\"", why, sizeof why));
    assert_true(forbidden_include("sim", "#include \"sequence.h\"", why, sizeof why));
    assert_true(forbidden_include("sim", "#include \"bas/errbuf.h\"", why, sizeof why));
    assert_true(forbidden_include("viz", "#include \"simx/a.h\"", why, sizeof why));
    /* allowed: own folder, below, system headers, anything from apps/, non-includes */
    assert_false(forbidden_include("sim", "#include \"sim/kv_cache.h\"", why, sizeof why));
    assert_false(forbidden_include("sim", "#include \"base/rng.h\"", why, sizeof why));
    assert_false(forbidden_include("viz", "#include \"sim/metrics.h\"", why, sizeof why));
    assert_false(forbidden_include("serve", "#include \"engine/engine.h\"", why, sizeof why));
    assert_false(forbidden_include("labs", "#include \"viz/export.h\"", why, sizeof why));
    assert_false(forbidden_include("apps", "#include \"labs/bias_run.h\"", why, sizeof why));
    assert_false(forbidden_include("sim", "#include <cairo.h>", why, sizeof why));
    assert_false(forbidden_include("sim", "/* #include \"viz/render.h\" in a comment */", why, sizeof why));
}

/* Reads a planted file through the same scan: the violation is counted. */
static void test_scan_reports_a_planted_violation(void **st) {
    (void)st;
    if (system("mkdir -p build/tmp/layers/sim") != 0) fail();
    FILE *f = fopen("build/tmp/layers/sim/planted.c", "w");
    assert_non_null(f);
    fputs("#include \"sim/sequence.h\"\n#include \"base/rng.h\"\n#include \"viz/render.h\"\n", f);
    fclose(f);
    int files = 0;
    g_quiet = 1;
    int bad = scan_dir("build/tmp/layers/sim", "sim", &files);
    g_quiet = 0;
    assert_int_equal(bad, 1);
    assert_int_equal(files, 1);
    remove("build/tmp/layers/sim/planted.c");
}

/* One case per layer: its folder exists, holds sources, and breaks no arrow. */
static void test_layer(void **st) {
    const layer *l = *st;
    int files = 0, bad = scan_dir(l->dir, l->dir, &files);
    if (files == 0) fprintf(stderr, "%s/: no source files (run from the repository root)\n", l->dir);
    assert_true(files > 0);
    assert_int_equal(bad, 0);
}

/* A new top-level folder of sources must get a row in k_layers (and its place in MODULES). */
static void test_every_source_folder_is_a_layer(void **st) {
    (void)st;
    DIR *d = opendir(".");
    assert_non_null(d);
    int unknown = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        struct stat s;
        if (n[0] == '.' || strncmp(n, "build", 5) == 0 || stat(n, &s) != 0 || !S_ISDIR(s.st_mode)) continue;
        int known = 0;
        for (int i = 0; i < N_LAYERS; i++) known |= !strcmp(n, k_layers[i].dir);
        for (size_t i = 0; i < sizeof k_not_layers / sizeof *k_not_layers; i++) known |= !strcmp(n, k_not_layers[i]);
        if (known) continue;
        DIR *sd = opendir(n);
        struct dirent *f;
        int sources = 0;
        while (sd && (f = readdir(sd))) sources += is_source(f->d_name);
        if (sd) closedir(sd);
        if (sources) { fprintf(stderr, "%s/: sources in a folder that is not a layer (add it to k_layers)\n", n); unknown++; }
    }
    closedir(d);
    assert_int_equal(unknown, 0);
}

int main(void) {
    struct CMUnitTest tests[2 + N_LAYERS + 1] = {
        cmocka_unit_test(test_checker_flags_what_the_matrix_forbids),
        cmocka_unit_test(test_scan_reports_a_planted_violation),
    };
    static char names[N_LAYERS][64];
    for (int i = 0; i < N_LAYERS; i++) {
        snprintf(names[i], sizeof names[i], "test_layer_%s", k_layers[i].dir);
        tests[2 + i] = (struct CMUnitTest)cmocka_unit_test_prestate(test_layer, (void *)&k_layers[i]);
        tests[2 + i].name = names[i];
    }
    tests[2 + N_LAYERS] = (struct CMUnitTest)cmocka_unit_test(test_every_source_folder_is_a_layer);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
