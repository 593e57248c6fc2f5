/* render: draws a viz_scene with cairo (see render.h): the header, the pool
 * (and a comparison pool), the queues, block tables and legend.  The layout
 * is viz/layout.c, one block viz/render_block.c, the palette and helpers
 * viz/paint.c.  Scales from 16 blocks (every slot, block ids, owners, badges)
 * to 1024 (blocks as fill bars, no per-block text).  Touches only the cairo
 * context. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "viz/paint.h"

/* ---- panels --------------------------------------------------------------- */

/* A small area chart: share of the pool held (light) and holding tokens
 * (dark), one column per step so far. */
static void history(cairo_t *cr, const viz_pool *p, viz_rect r, double f) {
    char t[64];
    viz_font(cr, f * 0.85, true);
    double lx = r.x + viz_text(cr, r.x, r.y + f * 0.9, "the pool over the steps", INK) + f * 1.2;
    viz_font(cr, f * 0.8, false);
    double held_c[3], tok_c[3];
    viz_owner_rgb(4, tok_c, NULL);
    viz_mix(held_c, tok_c, WHITE, 0.65);
    cairo_rectangle(cr, lx, r.y + f * 0.15, f, f * 0.8); viz_set_rgb(cr, held_c); cairo_fill(cr);
    lx += f * 1.3 + viz_text(cr, lx + f * 1.3, r.y + f * 0.9, "blocks held", DIM);
    lx += f * 1.0;
    cairo_rectangle(cr, lx, r.y + f * 0.15, f, f * 0.8); viz_set_rgb(cr, tok_c); cairo_fill(cr);
    viz_text(cr, lx + f * 1.3, r.y + f * 0.9, "slots holding tokens", DIM);
    viz_rect a = { r.x + f * 2.8, r.y + f * 1.6, r.w - f * 2.8, r.h - f * 2.6 };
    if (a.w < 20 || a.h < 10) return;
    cairo_rectangle(cr, a.x, a.y, a.w, a.h);
    cairo_set_source_rgb(cr, 0.97, 0.97, 0.98);
    cairo_fill_preserve(cr);
    viz_set_rgb(cr, DIM);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    int n = p->hist_n;
    double dx = a.w / (n > 1 ? n - 1 : 1);
    for (int k = 0; k < 2; k++) {
        const float *v = k == 0 ? p->hist_held : p->hist_tokens;
        cairo_move_to(cr, a.x, a.y + a.h);
        for (int i = 0; i < n; i++) {
            double y = v[i] < 0 ? 0 : v[i] > 1 ? 1 : v[i];
            cairo_line_to(cr, a.x + i * dx, a.y + a.h - y * a.h);
        }
        cairo_line_to(cr, a.x + (n - 1) * dx, a.y + a.h);
        cairo_close_path(cr);
        viz_set_rgb(cr, k == 0 ? held_c : tok_c);
        cairo_fill(cr);
    }
    viz_font(cr, f * 0.75, false);
    viz_text(cr, r.x, a.y + f * 0.6, "100%", DIM);
    viz_text(cr, r.x + f * 1.2, a.y + a.h, "0", DIM);
    snprintf(t, sizeof t, "step %d", n - 1);
    viz_text(cr, a.x + a.w - viz_text_w(cr, t), a.y + a.h + f * 0.95, t, DIM);
}

static void draw_pool(cairo_t *cr, const viz_grid *g, const viz_pool *p, double f, bool main) {
    char t[160];
    viz_font(cr, f * 1.1, true);
    double x = g->panel.x, y = g->panel.y + f * 1.15;
    snprintf(t, sizeof t, "%s", p->policy);
    x += viz_text(cr, x, y, t, INK);
    viz_font(cr, f * 0.9, false);
    int k = snprintf(t, sizeof t, "   %d blocks x %d slots   running %d  waiting %d", p->num_blocks,
                     p->block_size, p->queue_len[VIZ_Q_RUNNING], p->queue_len[VIZ_Q_WAITING]);
    if (!main && p->c.time_s > 0)   /* the baseline keeps its own clock */
        snprintf(t + k, sizeof t - (size_t)k, "   t = %.3f s", p->c.time_s);
    /* a narrow panel (two pools side by side): a smaller font, never over the neighbour */
    for (double sz = f * 0.9; viz_text_w(cr, t) > g->panel.x + g->panel.w - x && sz > f * 0.55; sz *= 0.93)
        viz_font(cr, sz, false);
    viz_text(cr, x, y, t, DIM);
    /* small blocks: no antialiasing (pixel-aligned fills take pixman's fast path) */
    if (!g->slots) cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    for (int b = 0; b < p->num_blocks; b++) viz_draw_block(cr, g, p, b, f);
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_DEFAULT);
    /* counters under the grid */
    const viz_counters *c = &p->c;
    double cy = g->grid.y + g->grid.h + f * 1.5;
    double max_cy = g->panel.y + g->panel.h - f * 1.7;
    if (cy > max_cy) cy = max_cy;
    viz_font(cr, f * 0.95, false);
    snprintf(t, sizeof t, "blocks used %d/%d   cached %d   tokens held %ld",
             c->blocks_used, c->blocks_total, c->blocks_cached, c->tokens_held);
    viz_text(cr, g->panel.x, cy, t, INK);
    if (c->reserved_slots > 0)
        snprintf(t, sizeof t, "utilization %.1f%%   reserved %ld   internal frag %ld slots",
                 c->utilization * 100, c->reserved_slots, c->internal_frag);
    else
        snprintf(t, sizeof t, "utilization %.1f%%   internal frag %ld slots   ext %ld",
                 c->utilization * 100, c->internal_frag, c->external_frag);
    viz_text(cr, g->panel.x, cy + f * 1.35, t, INK);
    /* the pool over time, where there is room under the counters */
    double top = cy + f * 2.6, room = g->panel.y + g->panel.h - top;
    if (room >= f * 7 && p->hist_n >= 2) history(cr, p, (viz_rect){ g->panel.x, top, g->panel.w * 0.9,
                                                                      room > f * 12 ? f * 12 : room }, f);
}

/* Chips of a queue on one or more lines; returns the y after them. */
static double draw_queue(cairo_t *cr, const viz_pool *p, viz_queue q, double x, double y,
                         double w, double f, int max_lines) {
    char t[48];
    viz_font(cr, f * 0.95, true);
    snprintf(t, sizeof t, "%s (%d)", viz_queue_name(q), p->queue_len[q]);
    viz_text(cr, x, y, t, INK);
    y += f * 1.45;
    viz_font(cr, f * 0.85, false);
    double cx = x + f * 0.5;
    int lines = 1;
    if (p->queue_len[q] == 0) { viz_text(cr, cx, y, "-", DIM); return y + f * 1.5; }
    for (int i = 0; i < p->queue_len[q]; i++) {
        snprintf(t, sizeof t, "s%d", p->queue[q][i]);
        double cw = viz_text_w(cr, t) + f * 1.1;
        double more_w = lines == max_lines && i < p->queue_len[q] - 1 ? viz_text_w(cr, "+9999 more") : 0;
        if (cx + cw + more_w > x + w) {
            if (lines == max_lines) {
                snprintf(t, sizeof t, "+%d more", p->queue_len[q] - i);
                viz_text(cr, cx, y, t, DIM);
                break;
            }
            lines++; cx = x + f * 0.5; y += f * 1.5;
        }
        cx += viz_chip(cr, cx, y, f * 0.85, p->queue[q][i], NULL) + f * 0.3;
    }
    return y + f * 1.6;
}

/* Block tables of the live sequences: "s3  9 tok  [5][2][7]". */
static double draw_tables(cairo_t *cr, const viz_pool *p, double x, double y, double w,
                          double ymax, double f) {
    char t[64];
    viz_font(cr, f * 0.95, true);
    bool resv = strcmp(p->policy, "paged") != 0;
    viz_text(cr, x, y, resv ? "reservations (slot ranges)" : "block tables (logical -> physical)", INK);
    y += f * 1.5;
    double rh = f * 1.45;
    int shown = 0;
    for (int i = 0; i < p->num_seqs; i++) {
        const viz_seq *s = &p->seqs[i];
        if (y + rh > ymax) {
            viz_font(cr, f * 0.85, false);
            snprintf(t, sizeof t, "+%d more sequences", p->num_seqs - shown);
            viz_text(cr, x, y, t, DIM);
            return y + rh;
        }
        viz_font(cr, f * 0.85, false);
        double cx = x + viz_chip(cr, x, y, f * 0.85, s->id, s->queue == VIZ_Q_SWAPPED ? " (cpu)" : NULL) + f * 0.4;
        snprintf(t, sizeof t, "%d tok", s->num_tokens);
        cx += viz_text(cr, cx, y, t, DIM) + f * 0.5;
        if (resv) {
            if (s->resv_len > 0)
                snprintf(t, sizeof t, "slots %ld-%ld", s->resv_start, s->resv_start + s->resv_len - 1);
            else snprintf(t, sizeof t, "-");
            viz_text(cr, cx, y, t, INK);
        } else {
            viz_font(cr, f * 0.78, false);
            for (int j = 0; j < s->num_blocks; j++) {
                if (s->table[j] >= 0) snprintf(t, sizeof t, "%d", s->table[j]);
                else snprintf(t, sizeof t, "c%d", -s->table[j] - 1);   /* swapped: a CPU block */
                double bw = viz_text_w(cr, t) + f * 0.5;
                if (bw < f * 1.4) bw = f * 1.4;
                if (cx + bw > x + w - f * 1.2 && j < s->num_blocks - 1) {
                    viz_text(cr, cx, y, "...", DIM);
                    break;
                }
                viz_rect r = { cx, y - f * 0.95, bw, f * 1.25 };
                int blk = s->table[j];
                bool shared = blk >= 0 && blk < p->num_blocks && p->blocks[blk].ref > 1;
                cairo_rectangle(cr, r.x, r.y, r.w, r.h);
                viz_set_rgb(cr, WHITE);
                cairo_fill_preserve(cr);
                viz_set_rgb(cr, shared ? INK : DIM);
                cairo_set_line_width(cr, shared ? 2 : 1);
                cairo_stroke(cr);
                viz_text_centered(cr, r.x + r.w / 2, r.y + r.h / 2, t, INK);
                cx += bw + f * 0.15;
            }
        }
        y += rh;
        shown++;
    }
    if (p->num_seqs == 0) { viz_font(cr, f * 0.85, false); viz_text(cr, x, y, "-", DIM); y += rh; }
    return y;
}

/* Legend swatch + text on one line. */
static void legend_row(cairo_t *cr, double x, double y, double f, int kind, const char *label) {
    viz_rect r = { x, y - f * 0.9, f * 1.6, f * 1.1 };
    double c[3], d[3];
    switch (kind) {
    case 0: viz_owner_rgb(0, c, NULL); viz_mix(d, c, INK, 0.45);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); viz_set_rgb(cr, c); cairo_fill_preserve(cr);
            viz_set_rgb(cr, d); cairo_set_line_width(cr, 1); cairo_stroke(cr); break;
    case 1: viz_owner_rgb(0, c, NULL);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); viz_set_rgb(cr, WHITE); cairo_fill_preserve(cr);
            viz_set_rgb(cr, c); cairo_set_line_width(cr, 1); cairo_stroke(cr); break;
    case 2: viz_free_rgb(c); viz_mix(d, c, INK, 0.25);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); viz_set_rgb(cr, c); cairo_fill_preserve(cr);
            viz_set_rgb(cr, d); cairo_set_line_width(cr, 1); cairo_stroke(cr); break;
    case 3: { viz_cached_rgb(c); viz_mix(d, c, WHITE, 0.55);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); viz_set_rgb(cr, d); cairo_fill(cr);
            viz_hatch(cr, r, 4, 1.2, c);
            double dash[2] = {3, 2}; cairo_set_dash(cr, dash, 2, 0);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); viz_mix(d, c, INK, 0.5); viz_set_rgb(cr, d);
            cairo_stroke(cr); cairo_set_dash(cr, NULL, 0, 0); break; }
    case 4: viz_rect_path(cr, r, r.h / 2); viz_set_rgb(cr, INK); cairo_fill(cr);
            viz_font(cr, f * 0.7, true); viz_text_centered(cr, r.x + r.w / 2, r.y + r.h / 2, "x2", WHITE); break;
    case 5: viz_owner_rgb(0, c, NULL);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); viz_set_rgb(cr, WHITE); cairo_fill(cr);
            viz_hatch(cr, r, 3.5, 1, c);
            cairo_rectangle(cr, r.x, r.y, r.w, r.h); viz_set_rgb(cr, c); cairo_stroke(cr); break;
    }
    viz_font(cr, f * 0.85, false);
    viz_text(cr, x + f * 2.1, y, label, INK);
}

static void draw_side(cairo_t *cr, const viz_layout *L, const viz_scene *s) {
    double f = L->font, x = L->side.x, w = L->side.w;
    const viz_pool *p = &s->pool;
    bool resv = s->has_cmp || strcmp(p->policy, "paged") != 0;
    int legend_n = resv ? 6 : 5;
    double legend_h = f * 1.5 + legend_n * f * 1.45;
    double y = L->side.y + f * 0.9;
    /* a light background panel */
    cairo_rectangle(cr, L->side.x - f * 0.5, L->side.y - f * 0.2, L->side.w + f * 0.5, L->side.h + f * 0.2);
    cairo_set_source_rgb(cr, 0.965, 0.965, 0.975);
    cairo_fill(cr);
    for (int q = 0; q < VIZ_Q_N; q++) y = draw_queue(cr, p, (viz_queue)q, x, y, w - f * 0.5, f, 2);
    y += f * 0.3;
    double ymax = L->side.y + L->side.h - legend_h - f * 0.5;
    draw_tables(cr, p, x, y, w - f * 0.2, ymax, f);
    /* legend at the bottom */
    double ly = L->side.y + L->side.h - legend_h + f * 0.9;
    viz_font(cr, f * 0.95, true);
    viz_text(cr, x, ly, "legend", INK);
    ly += f * 1.5;
    bool compact = !L->pool.slots;
    legend_row(cr, x, ly, f, 0, compact ? "bar: share of a block's slots with tokens"
                                        : "slot holding a token (colour, label = seq)"); ly += f * 1.45;
    legend_row(cr, x, ly, f, 1, "empty slot of a held block"); ly += f * 1.45;
    legend_row(cr, x, ly, f, 2, "free block"); ly += f * 1.45;
    legend_row(cr, x, ly, f, 3, "free, prefix still cached"); ly += f * 1.45;
    legend_row(cr, x, ly, f, 4, compact ? "shared block (dark corner when small)" : "shared block: ref count"); ly += f * 1.45;
    if (resv) legend_row(cr, x, ly, f, 5, "reserved, not yet used (waste)");
}

static void draw_header(cairo_t *cr, const viz_layout *L, const viz_scene *s) {
    double f = L->font;
    char t[96];
    viz_font(cr, f * 1.35, true);
    double y = L->header.y + f * 1.35;
    viz_text(cr, L->header.x, y, s->title[0] ? s->title : "pagesim", INK);
    if (s->time_s >= 0) snprintf(t, sizeof t, "step %d   t = %.3f s", s->step, s->time_s);
    else snprintf(t, sizeof t, "step %d", s->step);
    viz_font(cr, f * 1.35, true);
    viz_text(cr, L->header.x + L->header.w - viz_text_w(cr, t), y, t, INK);
    viz_font(cr, f * 1.0, false);
    /* the event line, cut to the width */
    char ev[sizeof s->event];
    snprintf(ev, sizeof ev, "%s", s->event);
    size_t n = strlen(ev);
    while (n > 3 && viz_text_w(cr, ev) > L->header.w) { n--; ev[n] = 0; ev[n - 1] = ev[n - 2] = '.'; }
    viz_text(cr, L->header.x, y + f * 1.55, ev, DIM);
}

void viz_render(cairo_t *cr, const viz_scene *s, double W, double H) {
    viz_layout L;
    viz_layout_make(&L, s, W, H);
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    draw_header(cr, &L, s);
    draw_pool(cr, &L.pool, &s->pool, L.font, true);
    if (s->has_cmp) {
        /* a thin divider between the two pools */
        double x = L.cmp.panel.x - L.font * 0.6;
        cairo_move_to(cr, x, L.cmp.panel.y);
        cairo_line_to(cr, x, L.cmp.panel.y + L.cmp.panel.h);
        cairo_set_source_rgb(cr, 0.8, 0.8, 0.82);
        cairo_set_line_width(cr, 1);
        cairo_stroke(cr);
        draw_pool(cr, &L.cmp, &s->cmp, L.font, false);
    }
    draw_side(cr, &L, s);
    cairo_restore(cr);
}

