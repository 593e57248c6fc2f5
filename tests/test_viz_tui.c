/* test_viz_tui: the terminal view's frame, built from a known scene: every
 * line fits 80 columns (escape codes aside), the slot rows say what each block
 * holds (owner letters, empty, free, cached, shared), the compact form at 1024
 * blocks has one row per 64 blocks, and queues and block tables are listed.
 * Also the non-terminal run: the final frame only. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "viz/scene.h"
#include "viz/tui.h"

static void known_scene(viz_scene *s) {
    assert_int_equal(viz_scene_init(s, 16, 4), 0);
    viz_pool *p = &s->pool;
    p->blocks[0] = (viz_block){ 0, 1, 4, false, false };
    p->blocks[1] = (viz_block){ 1, 1, 2, false, false };
    p->blocks[2] = (viz_block){ 0, 2, 3, false, false };
    p->blocks[3] = (viz_block){ -1, 0, 0, true, false };
    int t0[2] = { 0, 2 }, t1[1] = { 1 };
    viz_pool_add_seq(p, 0, 0, VIZ_Q_RUNNING, 5, 7, t0, 2);
    viz_pool_add_seq(p, 1, 1, VIZ_Q_RUNNING, 2, 2, t1, 1);
    viz_pool_enqueue(p, VIZ_Q_RUNNING, 0);
    viz_pool_enqueue(p, VIZ_Q_RUNNING, 1);
    viz_pool_enqueue(p, VIZ_Q_WAITING, 3);
    viz_pool_count(p);
    s->step = 12;
    snprintf(s->title, sizeof s->title, "tui test");
    snprintf(s->event, sizeof s->event, "s1 needs a new block: #1");
}

/* Visible width of a line (ANSI CSI sequences skipped). */
static int visible(const char *a, const char *b) {
    int n = 0;
    for (const char *p = a; p < b; p++) {
        if (*p == 0x1b && p + 1 < b && p[1] == '[') {
            p += 2;
            while (p < b && !(*p >= '@' && *p <= '~')) p++;
            continue;
        }
        n++;
    }
    return n;
}
static int max_width(const char *f, int *lines) {
    int m = 0, n = 0;
    for (const char *p = f; *p;) {
        const char *e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        int w = visible(p, e);
        if (w > m) m = w;
        n++;
        p = *e ? e + 1 : e;
    }
    if (lines) *lines = n;
    return m;
}
/* The line after the one that starts with prefix. */
static const char *line_after(const char *f, const char *prefix, char *out, size_t cap) {
    const char *p = strstr(f, prefix);
    if (!p) return NULL;
    p = strchr(p, '\n');
    if (!p) return NULL;
    p++;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
    return out;
}

static void test_frame_content(void **st) {
    (void)st;
    viz_scene s; known_scene(&s);
    char *f = viz_tui_frame(&s, 80, false);
    assert_non_null(f);
    assert_true(max_width(f, NULL) <= 80);
    /* the slot row under the label row "#0 ..." */
    char row[256], want[64];
    assert_non_null(line_after(f, " #0 ", row, sizeof row));
    char a = viz_tui_glyph(0), b = viz_tui_glyph(1);
    snprintf(want, sizeof want, "[%c%c%c%c] [%c%c__] {%c%c%c_} [~~~~] [....]", a, a, a, a, b, b, a, a, a);
    assert_non_null(strstr(row, want));
    /* the shared block's label carries its ref count */
    assert_non_null(strstr(f, "#2x2"));
    /* counters, queues, block tables, computed from the scene */
    char t[128];
    snprintf(t, sizeof t, "blocks %d/%d used, %d cached | tokens %ld", s.pool.c.blocks_used, 16,
             s.pool.c.blocks_cached, s.pool.c.tokens_held);
    assert_non_null(strstr(f, t));
    snprintf(t, sizeof t, "waiting  s3:%c", viz_tui_glyph(3));
    assert_non_null(strstr(f, t));
    snprintf(t, sizeof t, "s0:%c    7 tok 0>0 1>2", a);
    assert_non_null(strstr(f, t));
    assert_non_null(strstr(f, "step 12"));
    free(f);
    /* with colour: the same width once escapes are skipped, and escapes present */
    f = viz_tui_frame(&s, 80, true);
    assert_true(max_width(f, NULL) <= 80);
    assert_non_null(strstr(f, "\x1b[48;5;"));
    free(f);
    viz_scene_free(&s);
}

static void test_frame_sizes(void **st) {
    (void)st;
    int sizes[][2] = { {16, 4}, {64, 4}, {64, 16}, {1024, 16}, {200, 1} };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        viz_scene s;
        assert_int_equal(viz_scene_synthetic(&s, sizes[i][0], sizes[i][1], 5), 0);
        char *f = viz_tui_frame(&s, 80, true);
        int lines;
        assert_true(max_width(f, &lines) <= 80);
        assert_true(lines <= 45);
        free(f);
        viz_scene_free(&s);
    }
    /* 1024 blocks: one character per block, 64 a row: 16 rows "   N ..." */
    viz_scene s;
    viz_scene_synthetic(&s, 1024, 16, 5);
    char *f = viz_tui_frame(&s, 80, false);
    assert_non_null(strstr(f, "one character per block"));
    for (int r = 0; r < 16; r++) {
        char lab[32];
        snprintf(lab, sizeof lab, "\n %5d ", r * 64);
        const char *p = strstr(f, lab);
        assert_non_null(p);
        p += strlen(lab);
        for (int k = 0; k < 64; k++) {
            const viz_block *b = &s.pool.blocks[r * 64 + k];
            char want = b->ref > 0 ? (b->ref > 1 ? '*' : b->tokens > 0 ? viz_tui_glyph(b->owner) : '-')
                                   : b->cached ? '~' : '.';
            assert_int_equal(p[k], want);
        }
    }
    free(f);
    viz_scene_free(&s);
}

/* A player over a fixed list of steps. */
typedef struct fake { viz_scene s; int steps, max; } fake;
static int f_step(void *c, char *e, size_t n) {
    fake *f = c; (void)e; (void)n;
    if (f->steps >= f->max) return 0;
    f->steps++;
    f->s.step = f->steps;
    f->s.pool.blocks[f->steps].owner = 0;
    f->s.pool.blocks[f->steps].ref = 1;
    f->s.pool.blocks[f->steps].tokens = 4;
    return 1;
}
static int f_restart(void *c, char *e, size_t n) { (void)e; (void)n; ((fake *)c)->steps = 0; return 0; }
static const viz_scene *f_scene(void *c) { return &((fake *)c)->s; }

static void test_run_not_a_terminal(void **st) {
    (void)st;
    fake fk = { .max = 5 };
    known_scene(&fk.s);
    viz_player p = { &fk, f_step, f_restart, f_scene };
    mkdir("build", 0777); mkdir("build/tmp", 0777);
    FILE *out = fopen("build/tmp/test_viz_tui.txt", "w+");
    assert_non_null(out);
    viz_tui_opts o = { false, 10, true, 80 };
    char err[128];
    assert_int_equal(viz_tui_run(&p, &o, out, err, sizeof err), 0);
    assert_int_equal(fk.steps, 5);                /* ran to the end */
    rewind(out);
    char buf[8192] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, out);
    fclose(out);
    assert_true(n > 0);
    assert_null(strstr(buf, "\x1b["));            /* no escapes into a file */
    assert_non_null(strstr(buf, "step 5"));        /* the final frame, once */
    assert_null(strstr(buf, "step 4"));
    viz_scene_free(&fk.s);
}

/* Under `make asan`: fontconfig, cairo's font caches and SDL keep
 * process-lifetime allocations that LeakSanitizer reports; not ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\nleak:libcairo.so\nleak:libSDL2\nleak:libX11.so\nleak:libdbus\n";
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_frame_content),
        cmocka_unit_test(test_frame_sizes),
        cmocka_unit_test(test_run_not_a_terminal),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
