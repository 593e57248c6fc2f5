/* tui: the terminal view of a scene (see tui.h).  Frame building is pure
 * string work; viz_tui_run is the only place that touches the terminal
 * (termios raw mode, restored on every exit path and on SIGINT/SIGTERM). */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include "viz/tui.h"

/* ---- a growable string ---------------------------------------------------- */
typedef struct sbuf { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_put(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 1024) + (size_t)k;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = true; return; }
        b->p = np; b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* ---- colours: 256-colour approximations of the renderer's palette --------- */
static const int ANSI256[7] = { 214, 117, 36, 175, 25, 166, 227 };

char viz_tui_glyph(int owner) {
    static const char G[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    if (owner < 0) return '?';
    return G[owner % (int)(sizeof G - 1)];
}

static void colour_on(sbuf *b, bool color, int owner, bool fill) {
    if (!color || owner < 0) return;
    int c = ANSI256[owner % 7];
    if (fill) sb_put(b, "\x1b[48;5;%dm\x1b[38;5;16m", c);
    else sb_put(b, "\x1b[38;5;%dm", c);
}
static void colour_off(sbuf *b, bool color) { if (color) sb_put(b, "\x1b[0m"); }
static void dim_on(sbuf *b, bool color) { if (color) sb_put(b, "\x1b[2m"); }

/* One slot's character. */
static char slot_char(const viz_block *k, int slot) {
    bool held = k->ref > 0 || k->reserved;
    if (held && slot < k->tokens) return viz_tui_glyph(k->owner);
    if (held && k->reserved) return '-';
    if (held) return '_';
    return k->cached ? '~' : '.';
}

/* Detailed pool: a label row ("#5x2") over a row of "[AAA_]" cells. */
static void pool_detailed(sbuf *b, const viz_pool *p, int cols, bool color) {
    int cw = p->block_size + 3;                /* "[" slots "]" and a space */
    int per = (cols - 1) / cw;
    if (per < 1) per = 1;
    for (int r0 = 0; r0 < p->num_blocks; r0 += per) {
        int r1 = r0 + per < p->num_blocks ? r0 + per : p->num_blocks;
        sb_put(b, " ");
        for (int k = r0; k < r1; k++) {
            char lab[32];
            if (p->blocks[k].ref > 1) snprintf(lab, sizeof lab, "#%dx%d", k, p->blocks[k].ref);
            else snprintf(lab, sizeof lab, "#%d", k);
            sb_put(b, "%-*.*s", cw, cw - 1, lab);
        }
        sb_put(b, "\n ");
        for (int k = r0; k < r1; k++) {
            const viz_block *blk = &p->blocks[k];
            bool held = blk->ref > 0 || blk->reserved;
            sb_put(b, "%c", blk->ref > 1 ? '{' : '[');
            for (int s = 0; s < p->block_size; s++) {
                char c = slot_char(blk, s);
                if (held) colour_on(b, color, blk->owner, s < blk->tokens);
                else if (color) dim_on(b, color);
                sb_put(b, "%c", c);
                colour_off(b, color);
            }
            sb_put(b, "%c ", blk->ref > 1 ? '}' : ']');
        }
        sb_put(b, "\n");
    }
}

/* Compact pool: one character per block (owner letter when it holds tokens). */
static void pool_compact(sbuf *b, const viz_pool *p, int cols, bool color) {
    int per = cols - 8 >= 64 ? 64 : ((cols - 8) / 8) * 8;
    if (per < 8) per = 8;
    for (int r0 = 0; r0 < p->num_blocks; r0 += per) {
        sb_put(b, " %5d ", r0);
        for (int k = r0; k < r0 + per && k < p->num_blocks; k++) {
            const viz_block *blk = &p->blocks[k];
            bool held = blk->ref > 0 || blk->reserved;
            char c = held ? (blk->tokens > 0 ? viz_tui_glyph(blk->owner) : '-') : blk->cached ? '~' : '.';
            if (held && blk->ref > 1 && !color) c = '*';
            if (held) colour_on(b, color, blk->owner, blk->tokens > 0);
            else if (color) dim_on(b, color);
            if (color && held && blk->ref > 1) sb_put(b, "\x1b[4m");   /* shared: underlined */
            sb_put(b, "%c", c);
            colour_off(b, color);
        }
        sb_put(b, "\n");
    }
}

static void counters(sbuf *b, const viz_pool *p) {
    const viz_counters *c = &p->c;
    sb_put(b, " blocks %d/%d used, %d cached | tokens %ld | util %.1f%%\n",
           c->blocks_used, c->blocks_total, c->blocks_cached, c->tokens_held, c->utilization * 100);
    sb_put(b, " internal frag %ld slots | reserved %ld | ext frag %ld | preempted %d\n",
           c->internal_frag, c->reserved_slots, c->external_frag, c->preemptions);
}

static bool detailed_fits(const viz_pool *p, int cols) {
    int per = (cols - 1) / (p->block_size + 3);
    if (per < 1) return false;
    int rows = (p->num_blocks + per - 1) / per;
    return rows <= 8;
}

static void pool_section(sbuf *b, const viz_pool *p, int cols, bool color) {
    bool det = detailed_fits(p, cols);
    char clock[48] = "";
    if (p->c.time_s > 0) snprintf(clock, sizeof clock, "  t=%.3fs", p->c.time_s);
    sb_put(b, "%s pool: %d blocks x %d slots%s%s\n", p->policy, p->num_blocks, p->block_size,
           clock, det ? "" : "  (one character per block)");
    if (det) pool_detailed(b, p, cols, color);
    else pool_compact(b, p, cols, color);
    counters(b, p);
}

/* Queue and block-table lines, each cut to cols. */
static void queues(sbuf *b, const viz_pool *p, int cols) {
    for (int q = 0; q < VIZ_Q_N; q++) {
        char line[512];
        int n = snprintf(line, sizeof line, " %-8s", viz_queue_name((viz_queue)q));
        for (int i = 0; i < p->queue_len[q] && n < (int)sizeof line - 32; i++) {
            int id = p->queue[q][i];
            char item[32];
            snprintf(item, sizeof item, " s%d:%c", id, viz_tui_glyph(id));
            if (n + (int)strlen(item) > cols - 10) {
                n += snprintf(line + n, sizeof line - (size_t)n, " +%d", p->queue_len[q] - i);
                break;
            }
            n += snprintf(line + n, sizeof line - (size_t)n, "%s", item);
        }
        if (p->queue_len[q] == 0) snprintf(line + n, sizeof line - (size_t)n, " -");
        sb_put(b, "%s\n", line);
    }
}

static void tables(sbuf *b, const viz_pool *p, int cols, int max_lines) {
    int shown = 0;
    for (int i = 0; i < p->num_seqs; i++) {
        const viz_seq *s = &p->seqs[i];
        if (shown == max_lines) { sb_put(b, " +%d more sequences\n", p->num_seqs - shown); return; }
        char line[512];
        int n = snprintf(line, sizeof line, " s%d:%c %4d tok%s", s->id, viz_tui_glyph(s->id),
                         s->num_tokens, s->queue == VIZ_Q_SWAPPED ? " (cpu)" : "");
        if (strcmp(p->policy, "paged") != 0) {
            if (s->resv_len > 0)
                snprintf(line + n, sizeof line - (size_t)n, "  slots %ld-%ld", s->resv_start,
                         s->resv_start + s->resv_len - 1);
        } else {
            for (int j = 0; j < s->num_blocks; j++) {
                char item[32];
                if (s->table[j] >= 0) snprintf(item, sizeof item, " %d>%d", j, s->table[j]);
                else snprintf(item, sizeof item, " %d>c%d", j, -s->table[j] - 1);   /* CPU block */
                if (n + (int)strlen(item) > cols - 5) { n += snprintf(line + n, sizeof line - (size_t)n, " ..."); break; }
                n += snprintf(line + n, sizeof line - (size_t)n, "%s", item);
            }
        }
        sb_put(b, "%s\n", line);
        shown++;
    }
}

char *viz_tui_frame(const viz_scene *s, int cols, bool color) {
    sbuf b = {0};
    if (cols < 40) cols = 40;
    char right[64];
    if (s->time_s >= 0) snprintf(right, sizeof right, "step %d  t=%.3fs", s->step, s->time_s);
    else snprintf(right, sizeof right, "step %d", s->step);
    int lw = cols - (int)strlen(right) - 1;
    sb_put(&b, "%-*.*s %s\n", lw, lw, s->title[0] ? s->title : "pagesim", right);
    /* the event, wrapped at a separator onto at most two lines */
    const char *e = s->event;
    int el = (int)strlen(e);
    if (el <= cols) sb_put(&b, "%s\n", e);
    else {
        int cut = cols;
        while (cut > cols / 2 && e[cut] != ' ') cut--;
        if (cut <= cols / 2) cut = cols;
        sb_put(&b, "%.*s\n", cut, e);
        while (e[cut] == ' ') cut++;
        sb_put(&b, "  %.*s\n", cols - 2, e + cut);
    }
    pool_section(&b, &s->pool, cols, color);
    if (s->has_cmp) pool_section(&b, &s->cmp, cols, color);
    queues(&b, &s->pool, cols);
    tables(&b, &s->pool, cols, s->has_cmp ? 3 : 5);
    sb_put(&b, "%.*s\n", cols, " A-Z tokens of a sequence  _ empty slot  . free  ~ cached prefix"
                                "  {} xN shared");
    if (b.oom) { free(b.p); return NULL; }
    return b.p;
}

/* ---- the interactive loop ----------------------------------------------- */
static struct termios saved_tio;
static int raw_on;

static void raw_off(void) {
    if (raw_on) { tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio); raw_on = 0; }
    fputs("\x1b[?25h", stdout);   /* cursor back */
    fflush(stdout);
}
static void on_signal(int sig) {
    raw_off();
    signal(sig, SIG_DFL);
    raise(sig);
}
static int raw_enable(void) {
    if (tcgetattr(STDIN_FILENO, &saved_tio) != 0) return -1;
    struct termios t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 1; t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0) return -1;
    raw_on = 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    return 0;
}

/* A key within timeout_ms (-1 = wait), or 0 when none came. */
static int read_key(int timeout_ms) {
    struct pollfd pf = { .fd = STDIN_FILENO, .events = POLLIN };
    if (poll(&pf, 1, timeout_ms) <= 0) return 0;
    unsigned char c;
    if (read(STDIN_FILENO, &c, 1) != 1) return 'q';   /* EOF: leave */
    return c;
}

static int draw(const viz_player *p, const viz_tui_opts *o, FILE *out, bool clear, const char *status) {
    char *f = viz_tui_frame(p->scene(p->ctx), o->cols, o->color);
    if (!f) return -1;
    if (clear) fputs("\x1b[H\x1b[2J", out);
    fputs(f, out);
    if (status) fprintf(out, "%s\n", status);
    fflush(out);
    free(f);
    return 0;
}

int viz_tui_run(const viz_player *p, const viz_tui_opts *o, FILE *out, char *err, size_t errlen) {
    int rc;
    if (!isatty(fileno(out))) {
        /* not a terminal: run to the end, print the final frame */
        while ((rc = p->step(p->ctx, err, errlen)) == 1) {}
        if (rc < 0) return -1;
        viz_tui_opts plain = *o;
        plain.color = false;
        if (draw(p, &plain, out, false, NULL)) { snprintf(err, errlen, "out of memory"); return -1; }
        return 0;
    }
    bool keys = isatty(STDIN_FILENO) && raw_enable() == 0;
    bool play = o->play || !keys;
    int delay = o->delay_ms > 0 ? o->delay_ms : 500;
    bool ended = false;
    int ret = 0;
    fputs("\x1b[?25l", out);
    for (;;) {
        char status[128];
        snprintf(status, sizeof status, "%s  [space/enter] step  [p] %s  [+/-] speed (%d ms)  [r] restart  [q] quit",
                 ended ? "END." : "", play ? "pause" : "play", delay);
        if (draw(p, o, out, true, keys ? status : NULL)) { snprintf(err, errlen, "out of memory"); ret = -1; break; }
        if (!keys && ended) break;
        int k = keys ? read_key(play && !ended ? delay : -1) : (usleep((useconds_t)delay * 1000), 0);
        if (k == 'q' || k == 27 || k == 4) break;
        if (k == 'p') { play = !play; continue; }
        if (k == '+' || k == '=') { delay = delay / 2 > 20 ? delay / 2 : 20; continue; }
        if (k == '-') { delay = delay * 2 < 5000 ? delay * 2 : 5000; continue; }
        if (k == 'r') {
            if (p->restart(p->ctx, err, errlen)) { ret = -1; break; }
            ended = false;
            continue;
        }
        bool step = (k == ' ' || k == '\n' || k == '\r') || (k == 0 && play);
        if (step && !ended) {
            rc = p->step(p->ctx, err, errlen);
            if (rc < 0) { ret = -1; break; }
            if (rc == 0) ended = true;
        }
    }
    raw_off();
    return ret;
}
