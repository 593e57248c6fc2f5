/* test_viz_scenario: the classroom scenario, driven by the real scheduler and
 * KV cache, shows what it promises (arrivals, growth, a fork with a shared
 * block, copy-on-write, a prefix-cache hit, preemption, everything finished
 * and freed), every captured scene agrees with its own blocks, runs are
 * seeded, --compare shows the baseline's reservation waste; and the pagesim
 * command writes files, prints the terminal view and rejects bad options. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include "tests/test_util.h"
#include "viz/scenario.h"
#include "viz/export.h"

typedef struct seen {
    bool shared_in_group, shared_across, preempted_event, cow_event, hit_event;
    int  max_used, steps;
} seen;

/* Checks a scene's counters against its blocks; notes what it shows. */
static void check_scene(const viz_scene *s, seen *z) {
    const viz_pool *p = &s->pool;
    int used = 0; long tok = 0;
    for (int b = 0; b < p->num_blocks; b++) {
        const viz_block *k = &p->blocks[b];
        assert_true(k->tokens >= 0 && k->tokens <= p->block_size);
        if (k->ref > 0) { used++; tok += k->tokens; assert_true(k->owner >= 0); }
        else { assert_int_equal(k->owner, -1); if (!k->cached) assert_int_equal(k->tokens, 0); }
        if (k->ref > 1) {
            /* who shares it: the sequences whose tables hold b */
            int holders = 0, g = -2; bool same = true;
            for (int i = 0; i < p->num_seqs; i++)
                for (int j = 0; j < p->seqs[i].num_blocks; j++)
                    if (p->seqs[i].table[j] == b) {
                        holders++;
                        if (g == -2) g = p->seqs[i].group; else if (g != p->seqs[i].group) same = false;
                    }
            assert_int_equal(holders, k->ref);
            if (same) z->shared_in_group = true; else z->shared_across = true;
        }
    }
    assert_int_equal(p->c.blocks_used, used);
    assert_int_equal(p->c.tokens_held, tok);
    /* each running sequence's table covers its tokens */
    for (int i = 0; i < p->num_seqs; i++) {
        const viz_seq *q = &p->seqs[i];
        if (q->queue != VIZ_Q_RUNNING) continue;
        assert_true(q->num_blocks * p->block_size >= q->num_tokens - 1);
        for (int j = 0; j < q->num_blocks; j++) {
            assert_true(q->table[j] >= 0 && q->table[j] < p->num_blocks);
            assert_true(p->blocks[q->table[j]].ref > 0);
        }
    }
    if (used > z->max_used) z->max_used = used;
    if (strstr(s->event, "preempted")) z->preempted_event = true;
    if (strstr(s->event, "copy-on-write")) z->cow_event = true;
    if (strstr(s->event, "prefix-cache hit")) z->hit_event = true;
}

static bool in_queue(const viz_pool *p, viz_queue q, int id) {
    for (int i = 0; i < p->queue_len[q]; i++) if (p->queue[q][i] == id) return true;
    return false;
}

static void run_classroom(int blocks, int bs, seen *z, char *events, size_t cap) {
    char err[256];
    viz_scenario_config c = viz_scenario_defaults(blocks, bs, 1);
    viz_scenario *v = viz_scenario_create(&c, err, sizeof err);
    if (!v) fail_msg("%s", err);
    memset(z, 0, sizeof *z);
    if (events) events[0] = 0;
    int rc;
    while ((rc = viz_scenario_step(v, err, sizeof err)) == 1) {
        const viz_scene *s = viz_scenario_scene(v);
        check_scene(s, z);
        z->steps = s->step;
        /* the history holds one entry per step, the last one now */
        assert_int_equal(s->pool.hist_n, s->step + 1);
        assert_float_equal(s->pool.hist_tokens[s->pool.hist_n - 1],
                           (double)s->pool.c.tokens_held / (blocks * bs), 1e-6);
        if (events) { strncat(events, s->event, cap - strlen(events) - 2); strncat(events, "\n", cap - strlen(events) - 1); }
    }
    if (rc < 0) fail_msg("%s", err);
    const viz_scene *s = viz_scenario_scene(v);
    /* everything finished and freed */
    assert_int_equal(s->pool.c.blocks_used, 0);
    assert_int_equal(s->pool.num_seqs, 0);
    for (int q = 0; q < VIZ_Q_N; q++) assert_int_equal(s->pool.queue_len[q], 0);
    assert_true(s->pool.c.cow_copies > 0);
    assert_true(s->pool.c.prefix_hit_tokens > 0);
    assert_true(s->pool.c.preemptions > 0);
    assert_true(s->pool.c.blocks_cached > 0);   /* freed prefixes stay cached */
    viz_scenario_destroy(v);
}

static void test_classroom_16(void **st) {
    (void)st;
    seen z;
    static char ev1[65536], ev2[65536];
    run_classroom(16, 4, &z, ev1, sizeof ev1);
    assert_true(z.shared_in_group);      /* parallel sampling: the fork shares */
    assert_true(z.shared_across);        /* prefix-cache hit while the first lives */
    assert_true(z.cow_event && z.hit_event && z.preempted_event);
    assert_int_equal(z.max_used, 16);    /* the pool ran out */
    /* seeded: the same events again */
    run_classroom(16, 4, &z, ev2, sizeof ev2);
    assert_string_equal(ev1, ev2);
}

static void test_classroom_sizes(void **st) {
    (void)st;
    seen z;
    run_classroom(64, 4, &z, NULL, 0);
    assert_true(z.preempted_event);
    run_classroom(32, 16, &z, NULL, 0);
    assert_true(z.shared_in_group && z.preempted_event);
}

static void test_compare(void **st) {
    (void)st;
    char err[256];
    viz_scenario_config c = viz_scenario_defaults(16, 4, 1);
    c.compare = KV_CONTIGUOUS;
    viz_scenario *v = viz_scenario_create(&c, err, sizeof err);
    if (!v) fail_msg("%s", err);
    bool resv_seen = false, worse = false;
    int rc;
    while ((rc = viz_scenario_step(v, err, sizeof err)) == 1) {
        const viz_scene *s = viz_scenario_scene(v);
        assert_true(s->has_cmp);
        assert_string_equal(s->cmp.policy, "contiguous");
        long resv = 0;
        for (int b = 0; b < s->cmp.num_blocks; b++)
            if (s->cmp.blocks[b].reserved) resv += s->cmp.block_size - s->cmp.blocks[b].tokens;
        if (resv > 0) resv_seen = true;
        if (s->cmp.c.blocks_used > 0 && s->pool.c.blocks_used > 0 &&
            s->cmp.c.utilization + 0.1 < s->pool.c.utilization) worse = true;
    }
    if (rc < 0) fail_msg("%s", err);
    assert_true(resv_seen);
    assert_true(worse);      /* the reservation wastes what paging does not */
    viz_scenario_destroy(v);
}

static void test_swap(void **st) {
    (void)st;
    char err[256];
    viz_scenario_config c = viz_scenario_defaults(16, 4, 1);
    c.kv.num_cpu_blocks = 16;
    c.sched.preempt = SCHED_PREEMPT_SWAP;
    viz_scenario *v = viz_scenario_create(&c, err, sizeof err);
    if (!v) fail_msg("%s", err);
    int swapped_seen = 0, rc;
    seen z;
    memset(&z, 0, sizeof z);
    while ((rc = viz_scenario_step(v, err, sizeof err)) == 1) {
        const viz_scene *s = viz_scenario_scene(v);
        check_scene(s, &z);
        for (int i = 0; i < s->pool.num_seqs; i++) {
            const viz_seq *q = &s->pool.seqs[i];
            if (q->queue != VIZ_Q_SWAPPED) continue;
            swapped_seen++;
            assert_true(in_queue(&s->pool, VIZ_Q_SWAPPED, q->id));
            for (int j = 0; j < q->num_blocks; j++) assert_true(q->table[j] < 0);   /* on the CPU */
        }
        if (strstr(s->event, "swapped out: ")) z.preempted_event = true;
    }
    if (rc < 0) fail_msg("%s", err);
    assert_true(swapped_seen > 0);
    assert_true(z.preempted_event);
    viz_scenario_destroy(v);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) if (strstr(e->d_name, ".png")) n++;
    closedir(d);
    return n;
}

/* system(), again when the command could not be executed (126/127): another
 * make may be relinking pagesim at that moment. */
static int run_cmd(const char *cmd) {
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        rc = system(cmd);
        if (!WIFEXITED(rc) || (WEXITSTATUS(rc) != 126 && WEXITSTATUS(rc) != 127)) break;
        sleep(2);
    }
    return rc;
}

static void test_command(void **st) {
    (void)st;
    char bin[1024], cmd[4096];
    snprintf(bin, sizeof bin, "%s/pagesim", tu_bindir());
    TU_REQUIRE_FILE(bin);
    mkdir("build", 0777); mkdir("build/tmp", 0777);
    system("rm -rf build/tmp/test_viz_frames");
    /* files */
    snprintf(cmd, sizeof cmd, "%s --blocks 16 --png build/tmp/test_viz_cmd.png --size 640x400 >/dev/null", bin);
    assert_int_equal(run_cmd(cmd), 0);
    cairo_surface_t *sf = cairo_image_surface_create_from_png("build/tmp/test_viz_cmd.png");
    assert_int_equal(cairo_surface_status(sf), CAIRO_STATUS_SUCCESS);
    assert_int_equal(cairo_image_surface_get_width(sf), 640);
    cairo_surface_destroy(sf);
    snprintf(cmd, sizeof cmd, "%s --blocks 16 --compare orca-pow2 --svg build/tmp/test_viz_cmd.svg --step 3 >/dev/null", bin);
    assert_int_equal(run_cmd(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s --blocks 16 --pdf build/tmp/test_viz_cmd.pdf >/dev/null", bin);
    assert_int_equal(run_cmd(cmd), 0);
    /* one frame per step: count them against the steps the scenario takes */
    seen z;
    run_classroom(16, 4, &z, NULL, 0);
    snprintf(cmd, sizeof cmd, "%s --blocks 16 --frames build/tmp/test_viz_frames --size 320x200 >/dev/null", bin);
    assert_int_equal(run_cmd(cmd), 0);
    assert_int_equal(count_files("build/tmp/test_viz_frames"), z.steps + 1);
    /* no display, stdout not a terminal: the final frame, exit 0 */
    snprintf(cmd, sizeof cmd, "env -u DISPLAY -u WAYLAND_DISPLAY -u SDL_VIDEODRIVER %s --blocks 16 "
             "</dev/null >build/tmp/test_viz_cmd.txt 2>&1", bin);
    assert_int_equal(run_cmd(cmd), 0);
    FILE *f = fopen("build/tmp/test_viz_cmd.txt", "r");
    assert_non_null(f);
    char buf[8192] = {0};
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    char want[32];
    snprintf(want, sizeof want, "step %d", z.steps);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "paged pool: 16 blocks x 4 slots"));
    const char *tt = strstr(buf, "t=");
    assert_non_null(tt);
    double t_toy = atof(tt + 2);
    /* a display is named but nobody answers: the terminal view, exit 0 */
    snprintf(cmd, sizeof cmd, "env -u WAYLAND_DISPLAY -u SDL_VIDEODRIVER DISPLAY=:4999 timeout 60 %s --blocks 16 "
             "</dev/null >build/tmp/test_viz_cmd2.txt 2>&1", bin);
    assert_int_equal(run_cmd(cmd), 0);
    f = fopen("build/tmp/test_viz_cmd2.txt", "r");
    assert_non_null(f);
    memset(buf, 0, sizeof buf);
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "using the terminal view"));
    /* a workload instead of the classroom */
    snprintf(cmd, sizeof cmd, "%s --blocks 64 --workload fixed --requests 6 --prompt-len 9 --output-len 12 --tui "
             "</dev/null >/dev/null", bin);
    assert_int_equal(run_cmd(cmd), 0);
    /* step times from the cost model of a 7B model on an H100, not the toy
     * cost: the same steps take another time */
    if (access("data/models/qwen2.5-7b.json", R_OK) == 0) {
        snprintf(cmd, sizeof cmd, "%s --blocks 16 --tui --model data/models/qwen2.5-7b.json --gpu H100-SXM "
                 "</dev/null >build/tmp/test_viz_cmd3.txt 2>&1", bin);
        assert_int_equal(run_cmd(cmd), 0);
        f = fopen("build/tmp/test_viz_cmd3.txt", "r");
        assert_non_null(f);
        memset(buf, 0, sizeof buf);
        assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
        fclose(f);
        const char *tp = strstr(buf, "t=");
        assert_non_null(tp);
        double t = atof(tp + 2);
        assert_true(t > 0);
        assert_true(fabs(t - t_toy) > 0.1 * t_toy);
    }
    /* bad input: exit 2 with a message */
    const char *bad[] = { "--blocks 0", "--blocks x", "--compare nope", "--png a.svg", "--frobnicate",
                          "--step 3", "--workload /nonexistent.csv", "--gpu H100",
                          "--model /nonexistent.json --gpu H100", "--policy nope" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", bin, bad[i]);
        int rc = run_cmd(cmd);
        assert_true(WIFEXITED(rc));
        if (WEXITSTATUS(rc) != 2) fail_msg("pagesim %s: exit %d, want 2", bad[i], WEXITSTATUS(rc));
    }
    snprintf(cmd, sizeof cmd, "%s --tui --help | grep -q -- --compare", bin);
    assert_int_equal(run_cmd(cmd), 0);
}

/* Under `make asan`: fontconfig, cairo's font caches and SDL keep
 * process-lifetime allocations that LeakSanitizer reports; not ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\nleak:libcairo.so\nleak:libSDL2\nleak:libX11.so\nleak:libdbus\n";
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_classroom_16),
        cmocka_unit_test(test_classroom_sizes),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_swap),
        cmocka_unit_test(test_command),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
