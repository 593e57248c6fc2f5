/* layout: where the block-pool scene's parts go (see viz/render.h): pure
 * arithmetic shared by the renderer, hit testing and the tests.  Touches
 * nothing but the layout it fills. */
#include <math.h>
#include <string.h>
#include "viz/render.h"

static void slot_shape(int bs, int *sc, int *sr) {
    *sc = bs <= 8 ? bs : 8;
    *sr = (bs + *sc - 1) / *sc;
}

/* Fits n blocks in area a; decides what detail fits. */
static void grid_fit(viz_grid *g, viz_rect a, int n, int bs, double font) {
    slot_shape(bs, &g->slot_cols, &g->slot_rows);
    double ar = (double)g->slot_rows / g->slot_cols;  /* slot area height / width */
    double band = font * 1.35;                          /* label band above slots */
    double best = 0, best_score = 0; int bc = 1;
    bool best_lab = false;
    for (int cols = 1; cols <= n; cols++) {
        int rows = (n + cols - 1) / cols;
        double cw = a.w / cols;
        for (int lab = 1; lab >= 0; lab--) {
            double b = lab ? band : 0;
            /* cell height = (cw * 0.88) * ar + b + margins (0.12 cw) */
            double ch_max = a.h / rows;
            double cwh = (ch_max - b) / (ar * 0.88 + 0.16);
            double c = cw < cwh ? cw : cwh;
            if (c > font * 13) c = font * 13;            /* a block never grows huge */
            if (lab && c < font * 3.6) continue;          /* no room for "#12 s3" */
            /* labels are worth a smaller block (they make colour optional);
             * ties (both capped): the wider grid */
            double score = lab ? c : c * 0.6;
            if (score > best_score + 1e-9 || (score > best_score - 1e-9 && c >= font * 13 - 1e-9)) {
                best_score = score; best = c; bc = cols; best_lab = lab;
            }
        }
    }
    g->cols = bc;
    g->rows = (n + bc - 1) / bc;
    g->labels = best_lab;
    g->cell_w = best;
    g->cell_h = best * (ar * 0.88 + 0.16) + (best_lab ? band : 0);
    g->pad = best * 0.08 > 1 ? best * 0.08 : 1;
    if (g->pad > 8) g->pad = 8;
    if (best < 10) g->pad = best >= 4 ? 1 : 0;
    g->slots = (best * 0.8) / g->slot_cols >= 4.0;
    /* centre the grid horizontally in its area */
    double gw = g->cols * g->cell_w, gh = g->rows * g->cell_h;
    g->grid = (viz_rect){ a.x + (a.w - gw) / 2, a.y, gw, gh };
}

void viz_layout_make(viz_layout *L, const viz_scene *s, double W, double H) {
    memset(L, 0, sizeof *L);
    L->width = W; L->height = H;
    double m = W < H ? W : H;
    L->font = m / 52;
    if (L->font < 10) L->font = 10;
    if (L->font > 15) L->font = 15;
    double f = L->font, M = f * 0.9;
    L->header = (viz_rect){ M, M * 0.6, W - 2 * M, f * 3.2 };
    double top = L->header.y + L->header.h + f * 0.4;
    double side_w = W * 0.27;
    if (side_w < f * 17) side_w = f * 17;
    if (side_w > f * 26) side_w = f * 26;
    if (side_w > W * 0.45) side_w = W * 0.45;
    L->side = (viz_rect){ W - M - side_w, top, side_w, H - top - M };
    double main_w = L->side.x - M - f * 0.8;
    int npanels = s->has_cmp ? 2 : 1;
    double gap = f * 1.2;
    double pw = (main_w - (npanels - 1) * gap) / npanels;
    for (int i = 0; i < npanels; i++) {
        viz_grid *g = i == 0 ? &L->pool : &L->cmp;
        const viz_pool *p = i == 0 ? &s->pool : &s->cmp;
        g->panel = (viz_rect){ M + i * (pw + gap), top, pw, H - top - M };
        viz_rect a = { g->panel.x, g->panel.y + f * 1.8, g->panel.w, g->panel.h - f * 1.8 - f * 3.4 };
        grid_fit(g, a, p->num_blocks > 0 ? p->num_blocks : 1, p->block_size > 0 ? p->block_size : 1, f);
    }
}

viz_rect viz_layout_block(const viz_grid *g, int b) {
    int r = b / g->cols, c = b % g->cols;
    double h = g->pad / 2;
    return (viz_rect){ g->grid.x + c * g->cell_w + h, g->grid.y + r * g->cell_h + h,
                       g->cell_w - g->pad, g->cell_h - g->pad };
}

/* The slot area inside a block rectangle. */
static viz_rect slot_area(const viz_grid *g, viz_rect br) {
    double band = g->labels ? (g->cell_h - g->cell_w * (g->slot_rows * 0.88 / g->slot_cols + 0.16)) : 0;
    double in = br.w * 0.05;
    return (viz_rect){ br.x + in, br.y + band + in, br.w - 2 * in, br.h - band - 2 * in };
}

viz_rect viz_layout_slot(const viz_grid *g, int b, int k) {
    viz_rect a = slot_area(g, viz_layout_block(g, b));
    double sw = a.w / g->slot_cols, sh = a.h / g->slot_rows;
    double gp = sw * 0.12;
    int r = k / g->slot_cols, c = k % g->slot_cols;
    return (viz_rect){ a.x + c * sw + gp / 2, a.y + r * sh + gp / 2, sw - gp, sh - gp };
}

viz_rect viz_layout_badge(const viz_grid *g, int b) {
    viz_rect br = viz_layout_block(g, b);
    double d = g->labels ? g->cell_h - g->cell_w * (g->slot_rows * 0.88 / g->slot_cols + 0.16) : br.w * 0.4;
    if (d > br.w * 0.45) d = br.w * 0.45;
    return (viz_rect){ br.x + br.w - d * 1.05, br.y - d * 0.35, d * 1.3, d };
}

int viz_layout_hit(const viz_layout *L, const viz_scene *s, double x, double y, int *which) {
    for (int i = 0; i < (s->has_cmp ? 2 : 1); i++) {
        const viz_grid *g = i == 0 ? &L->pool : &L->cmp;
        const viz_pool *p = i == 0 ? &s->pool : &s->cmp;
        if (x < g->grid.x || y < g->grid.y || g->cell_w <= 0) continue;
        int c = (int)((x - g->grid.x) / g->cell_w), r = (int)((y - g->grid.y) / g->cell_h);
        if (c >= g->cols || r >= g->rows) continue;
        int b = r * g->cols + c;
        if (b >= p->num_blocks) continue;
        if (which) *which = i;
        return b;
    }
    return -1;
}
