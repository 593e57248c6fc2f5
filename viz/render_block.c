/* render_block: one block of the pool (see viz/render.h): its body in the
 * owner's colour (cached free blocks hatched, plain free ones pale), then
 * either a fill bar (many blocks, no room) or every slot, the block id, the
 * owner label and the reference-count badge.  Draws only into the cairo
 * context it is given. */
#include <stdio.h>
#include "viz/paint.h"

/* The block's colours: its owner's (held), the cached grey, or the free one;
 * light for the body, dark for outlines and text. */
typedef struct block_ink { double col[3], light[3], dark[3]; bool held, striped; } block_ink;

static void ink_of(const viz_block *k, block_ink *in) {
    in->held = k->ref > 0 || k->reserved;
    in->striped = false;
    if (in->held) {
        viz_owner_rgb(k->owner, in->col, &in->striped);
        viz_mix(in->light, in->col, WHITE, 0.72);
        viz_mix(in->dark, in->col, INK, 0.45);
    } else if (k->cached) {
        viz_cached_rgb(in->col);
        viz_mix(in->light, in->col, WHITE, 0.55);
        viz_mix(in->dark, in->col, INK, 0.5);
    } else {
        viz_free_rgb(in->col);
        viz_mix(in->light, in->col, WHITE, 0.0);
        viz_mix(in->dark, in->col, INK, 0.25);
    }
}

/* A dark triangle in the top right corner, d wide: the block is shared. */
static void corner(cairo_t *cr, viz_rect br, double d) {
    viz_set_rgb(cr, INK);
    cairo_move_to(cr, br.x + br.w - d, br.y);
    cairo_line_to(cr, br.x + br.w, br.y);
    cairo_line_to(cr, br.x + br.w, br.y + d);
    cairo_close_path(cr);
    cairo_fill(cr);
}

/* Compact (no room for slots): the fill bar is the share of slots holding tokens. */
static void draw_compact(cairo_t *cr, const viz_pool *p, const viz_block *k, viz_rect br, const block_ink *in) {
    if (in->held && p->block_size > 0) {
        double fr = (double)k->tokens / p->block_size;
        viz_rect bar = { br.x, br.y, br.w * fr, br.h };
        viz_set_rgb(cr, in->col);
        cairo_rectangle(cr, bar.x, bar.y, bar.w, bar.h);
        cairo_fill(cr);
        if (in->striped) {   /* ids past the palette: two-tone (cheaper than stripes here) */
            viz_set_rgb(cr, in->dark);
            cairo_rectangle(cr, bar.x, bar.y + bar.h * 0.62, bar.w, bar.h * 0.38);
            cairo_fill(cr);
        }
        if (k->reserved && k->tokens < p->block_size) {
            viz_rect rest = { br.x + bar.w, br.y, br.w - bar.w, br.h };
            viz_hatch(cr, rest, 3, 0.8, in->col);
        }
    }
    if (k->ref > 1) corner(cr, br, br.w * 0.5 < br.h * 0.6 ? br.w * 0.5 : br.h * 0.6);
}

/* Every slot: filled where it holds a token, hatched where reserved. */
static void draw_slots(cairo_t *cr, const viz_grid *g, const viz_pool *p, int b, const viz_block *k,
                       const block_ink *in) {
    for (int s = 0; s < p->block_size; s++) {
        viz_rect sr = viz_layout_slot(g, b, s);
        viz_rect_path(cr, sr, sr.w * 0.15);
        if (in->held && s < k->tokens) {
            viz_set_rgb(cr, in->col);
            cairo_fill_preserve(cr);
            if (in->striped) { cairo_new_path(cr); viz_hatch(cr, sr, sr.w / 3, 1.2, in->dark); viz_rect_path(cr, sr, sr.w * 0.15); }
            viz_set_rgb(cr, in->dark);
            cairo_set_line_width(cr, 1);
            cairo_stroke(cr);
        } else {
            viz_set_rgb(cr, WHITE);
            cairo_fill_preserve(cr);
            viz_set_rgb(cr, in->held ? in->col : in->dark);
            cairo_set_line_width(cr, 1);
            cairo_stroke(cr);
            if (in->held && k->reserved) viz_hatch(cr, sr, sr.w / 3.5, 1, in->col);
        }
    }
}

/* The block id left, the owner (or "cached") right where it fits. */
static void draw_labels(cairo_t *cr, const viz_grid *g, int b, const viz_block *k, viz_rect br, double f,
                        const block_ink *in) {
    double band = g->cell_h - g->cell_w * (g->slot_rows * 0.88 / g->slot_cols + 0.16);
    double fs = band * 0.62;
    if (fs > f) fs = f;
    char t[32];
    viz_font(cr, fs, false);
    snprintf(t, sizeof t, "#%d", b);
    double y = br.y + band * 0.78;
    double left_end = br.x + br.w * 0.05 + viz_text(cr, br.x + br.w * 0.05, y, t, DIM);
    if (in->held && k->owner >= 0) {
        viz_font(cr, fs, true);
        snprintf(t, sizeof t, "s%d", k->owner);
    } else if (k->cached) {
        snprintf(t, sizeof t, "cached");
    } else t[0] = 0;
    double tw = viz_text_w(cr, t);
    double right = br.x + br.w - br.w * 0.05 - (k->ref > 1 ? viz_layout_badge(g, b).w : 0);
    if (t[0] && right - tw > left_end + fs * 0.4)   /* only where it does not touch the id */
        viz_text(cr, right - tw, y, t, in->held ? in->dark : DIM);
}

/* The reference count "xN" in a badge. */
static void draw_badge(cairo_t *cr, const viz_grid *g, int b, const viz_block *k) {
    viz_rect bd = viz_layout_badge(g, b);
    viz_rect_path(cr, bd, bd.h / 2);
    viz_set_rgb(cr, INK);
    cairo_fill_preserve(cr);
    viz_set_rgb(cr, WHITE);
    cairo_set_line_width(cr, 1.5);
    cairo_stroke(cr);
    char t[16];
    snprintf(t, sizeof t, "x%d", k->ref);
    viz_font(cr, bd.h * 0.62, true);
    viz_text_centered(cr, bd.x + bd.w / 2, bd.y + bd.h / 2, t, WHITE);
}

void viz_draw_block(cairo_t *cr, const viz_grid *g, const viz_pool *p, int b, double f) {
    const viz_block *k = &p->blocks[b];
    viz_rect br = viz_layout_block(g, b);
    block_ink in;
    ink_of(k, &in);
    double rad = g->slots ? br.w * 0.06 : 0;
    /* body */
    viz_rect_path(cr, br, rad);
    viz_set_rgb(cr, in.light);
    cairo_fill(cr);
    if (k->cached && !in.held && g->slots) viz_hatch(cr, br, br.w / 9, 1.2, in.col);
    else if (k->cached && !in.held) {   /* small: a solid mid grey, unlike plain free */
        viz_rect_path(cr, br, rad); viz_set_rgb(cr, in.col); cairo_fill(cr);
    }
    if (!g->slots) { draw_compact(cr, p, k, br, &in); return; }
    /* outline: dashed for cached prefix blocks, thick for shared ones */
    viz_rect_path(cr, br, rad);
    viz_set_rgb(cr, in.dark);
    cairo_set_line_width(cr, k->ref > 1 ? 2.5 : 1.0);
    if (k->cached && !in.held) { double d[2] = {4, 3}; cairo_set_dash(cr, d, 2, 0); cairo_set_line_width(cr, 1.5); }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    draw_slots(cr, g, p, b, k, &in);
    if (g->labels) draw_labels(cr, g, b, k, br, f, &in);
    if (k->ref > 1 && g->labels) draw_badge(cr, g, b, k);
    else if (k->ref > 1) corner(cr, br, br.w * 0.35);
}
