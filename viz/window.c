/* window: SDL2 front of the cairo renderer (see window.h).  Each frame: lock
 * the streaming texture, wrap its pixels in a cairo image surface, viz_render
 * into it, draw the hover tooltip, unlock, copy, present. */
#include <SDL.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cairo.h>
#include "viz/window.h"
#include "viz/render.h"
#include "viz/export.h"

bool viz_window_has_display(void) {
    const char *v[] = { "DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER" };
    for (int i = 0; i < 3; i++) { const char *s = getenv(v[i]); if (s && *s) return true; }
    return false;
}

typedef struct win {
    SDL_Window   *w;
    SDL_Renderer *r;
    SDL_Texture  *tex;
    int tw, th;              /* texture size = renderer output size */
    int mx, my;              /* mouse, in window coordinates */
    bool hover;
    char status[320];        /* a transient message ("saved ...") */
    Uint32 status_until;
} win;

static void tooltip(cairo_t *cr, const viz_scene *s, const viz_layout *L, double x, double y) {
    int which = 0;
    int b = viz_layout_hit(L, s, x, y, &which);
    if (b < 0) return;
    const viz_pool *p = which ? &s->cmp : &s->pool;
    const viz_block *k = &p->blocks[b];
    char t[256], who[96] = "";
    if (k->ref > 1) {   /* the sequences whose block tables hold it */
        int n = 0, len = 0;
        for (int i = 0; i < p->num_seqs; i++)
            for (int j = 0; j < p->seqs[i].num_blocks; j++)
                if (p->seqs[i].table[j] == b && len < (int)sizeof who - 16) {
                    len += snprintf(who + len, sizeof who - (size_t)len, "%ss%d", n++ ? ", " : ": ", p->seqs[i].id);
                    break;
                }
    }
    if (k->ref > 0 || k->reserved)
        snprintf(t, sizeof t, "block #%d (%s): owner s%d, %d/%d slots hold tokens, ref %d%s%s",
                 b, p->policy, k->owner, k->tokens, p->block_size, k->ref,
                 k->reserved ? " (reservation)" : k->ref > 1 ? " shared" : "", who);
    else
        snprintf(t, sizeof t, "block #%d (%s): free%s, 0/%d slots", b, p->policy,
                 k->cached ? ", prefix still cached" : "", p->block_size);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, L->font);
    cairo_text_extents_t e;
    cairo_text_extents(cr, t, &e);
    double w = e.x_advance + L->font, h = L->font * 1.8;
    double tx = x + 14, ty = y + 18;
    if (tx + w > L->width) tx = L->width - w - 2;
    if (ty + h > L->height) ty = y - h - 6;
    cairo_rectangle(cr, tx, ty, w, h);
    cairo_set_source_rgba(cr, 0.1, 0.1, 0.12, 0.92);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_move_to(cr, tx + L->font / 2, ty + h * 0.68);
    cairo_show_text(cr, t);
}

static void status_line(cairo_t *cr, double W, double H, const char *t) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, 13);
    cairo_text_extents_t e;
    cairo_text_extents(cr, t, &e);
    cairo_rectangle(cr, (W - e.x_advance) / 2 - 10, H - 30, e.x_advance + 20, 24);
    cairo_set_source_rgba(cr, 0.1, 0.1, 0.12, 0.9);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_move_to(cr, (W - e.x_advance) / 2, H - 13);
    cairo_show_text(cr, t);
}

/* Draws one frame into the texture and presents it. */
static int frame(win *g, const viz_scene *s, char *err, size_t errlen) {
    int ow, oh, ww, wh;
    SDL_GetRendererOutputSize(g->r, &ow, &oh);
    SDL_GetWindowSize(g->w, &ww, &wh);
    if (!g->tex || ow != g->tw || oh != g->th) {
        if (g->tex) SDL_DestroyTexture(g->tex);
        g->tex = SDL_CreateTexture(g->r, SDL_PIXELFORMAT_ARGB8888, SDL_TEXTUREACCESS_STREAMING, ow, oh);
        if (!g->tex) { snprintf(err, errlen, "SDL_CreateTexture: %s", SDL_GetError()); return -1; }
        g->tw = ow; g->th = oh;
    }
    void *pix; int pitch;
    if (SDL_LockTexture(g->tex, NULL, &pix, &pitch) != 0) {
        snprintf(err, errlen, "SDL_LockTexture: %s", SDL_GetError());
        return -1;
    }
    /* ARGB8888 little-endian is cairo's native ARGB32 */
    cairo_surface_t *sf = cairo_image_surface_create_for_data(pix, CAIRO_FORMAT_ARGB32, ow, oh, pitch);
    cairo_t *cr = cairo_create(sf);
    double sx = ww > 0 ? (double)ow / ww : 1, sy = wh > 0 ? (double)oh / wh : 1;
    cairo_scale(cr, sx, sy);   /* draw in window units on HiDPI */
    viz_render(cr, s, ww, wh);
    if (g->hover) {
        viz_layout L;
        viz_layout_make(&L, s, ww, wh);
        tooltip(cr, s, &L, g->mx, g->my);
    }
    if (g->status[0] && SDL_GetTicks() < g->status_until) status_line(cr, ww, wh, g->status);
    cairo_destroy(cr);
    cairo_surface_flush(sf);
    cairo_surface_destroy(sf);
    SDL_UnlockTexture(g->tex);
    SDL_RenderClear(g->r);
    SDL_RenderCopy(g->r, g->tex, NULL, NULL);
    return 0;
}

/* Reads back what the renderer holds and writes it as a PNG. */
static int screenshot(win *g, const char *path, char *err, size_t errlen) {
    int w = g->tw, h = g->th;
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS) { snprintf(err, errlen, "out of memory"); return -1; }
    cairo_surface_flush(sf);
    int rc = SDL_RenderReadPixels(g->r, NULL, SDL_PIXELFORMAT_ARGB8888,
                                  cairo_image_surface_get_data(sf), cairo_image_surface_get_stride(sf));
    cairo_surface_mark_dirty(sf);
    if (rc != 0) { snprintf(err, errlen, "SDL_RenderReadPixels: %s", SDL_GetError()); cairo_surface_destroy(sf); return -1; }
    cairo_status_t st = cairo_surface_write_to_png(sf, path);
    cairo_surface_destroy(sf);
    if (st != CAIRO_STATUS_SUCCESS) { snprintf(err, errlen, "%s: cannot write PNG", path); return -1; }
    return 0;
}

/* SDL, the window and its renderer.  0, or 1 with err when there is none
 * (the caller falls back to the terminal). */
static int open_window(win *g, const viz_window_opts *o, char *err, size_t errlen) {
    /* an X display named and no Wayland one: X11 only (no noisy Wayland probe) */
    const char *x = getenv("DISPLAY"), *wl = getenv("WAYLAND_DISPLAY"), *vd = getenv("SDL_VIDEODRIVER");
    if (x && *x && !(wl && *wl) && !(vd && *vd)) SDL_SetHint(SDL_HINT_VIDEODRIVER, "x11");
    if (SDL_Init(SDL_INIT_VIDEO) != 0) {
        snprintf(err, errlen, "no window: %s", SDL_GetError());
        return 1;
    }
    /* SDL falls back to its offscreen driver when no display answers: a
     * window nobody sees.  Only a driver asked for by name may be headless. */
    const char *drv = SDL_GetCurrentVideoDriver();
    if (drv && (!strcmp(drv, "offscreen") || !strcmp(drv, "dummy")) && !(vd && *vd)) {
        snprintf(err, errlen, "no display answers (SDL chose its '%s' driver)", drv);
        return 1;
    }
    int W = o->width > 0 ? o->width : 1280, H = o->height > 0 ? o->height : 800;
    SDL_DisplayMode dm;
    if (SDL_GetDesktopDisplayMode(0, &dm) == 0 && dm.w > 200 && dm.h > 200) {
        if (W > dm.w - 40) W = dm.w - 40;
        if (H > dm.h - 80) H = dm.h - 80;
    }
    g->w = SDL_CreateWindow(o->title ? o->title : "pagesim", SDL_WINDOWPOS_CENTERED,
                            SDL_WINDOWPOS_CENTERED, W, H, SDL_WINDOW_RESIZABLE | SDL_WINDOW_ALLOW_HIGHDPI);
    if (!g->w) { snprintf(err, errlen, "no window: %s", SDL_GetError()); return 1; }
    g->r = SDL_CreateRenderer(g->w, -1, SDL_RENDERER_ACCELERATED);
    if (!g->r) g->r = SDL_CreateRenderer(g->w, -1, SDL_RENDERER_SOFTWARE);
    if (!g->r) { snprintf(err, errlen, "no renderer: %s", SDL_GetError()); return 1; }
    return 0;
}

/* The screenshot: o->screenshot_step steps, one frame, saved.  0 or -1. */
static int screenshot_run(win *g, const viz_player *p, const viz_window_opts *o, char *err, size_t errlen) {
    for (int i = 0; i < o->screenshot_step; i++) {
        int rc = p->step(p->ctx, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) break;
    }
    if (o->hover) { g->mx = o->hover_x; g->my = o->hover_y; g->hover = true; }
    SDL_Event ev;
    while (SDL_PollEvent(&ev)) {}   /* let the window map and settle */
    if (frame(g, p->scene(p->ctx), err, errlen) || screenshot(g, o->screenshot, err, errlen)) return -1;
    SDL_RenderPresent(g->r);
    return 0;
}

/* Queues key presses (space p r s q + -) as if typed. */
static void push_keys(const char *keys) {
    for (const char *k = keys; k && *k; k++) {
        SDL_Keycode sym = *k == ' ' ? SDLK_SPACE : *k == '+' ? SDLK_PLUS : *k == '-' ? SDLK_MINUS
                        : (*k >= 'a' && *k <= 'z') ? (SDL_Keycode)*k : 0;
        if (!sym) continue;
        SDL_Event ke;
        memset(&ke, 0, sizeof ke);
        ke.type = SDL_KEYDOWN;
        ke.key.state = SDL_PRESSED;
        ke.key.keysym.sym = sym;
        SDL_PushEvent(&ke);
    }
}

/* The window loop's state between events. */
typedef struct loop { bool play, quit, dirty, ended, step; int delay; Uint32 next; } loop;

/* Shows text at the bottom for ms milliseconds. */
static void status(win *g, Uint32 ms, const char *text) {
    snprintf(g->status, sizeof g->status, "%s", text);
    g->status_until = SDL_GetTicks() + ms;
}

/* `s`: the scene at the window's size as pagesim-stepNNNN.png. */
static void save_png(win *g, const viz_player *p) {
    const viz_scene *s = p->scene(p->ctx);
    char path[64], e2[256];
    snprintf(path, sizeof path, "pagesim-step%04d.png", s->step);
    int ww, wh;
    SDL_GetWindowSize(g->w, &ww, &wh);
    char msg[320];
    if (viz_export_scene(s, path, ww, wh, e2, sizeof e2) == 0) snprintf(msg, sizeof msg, "saved %s", path);
    else snprintf(msg, sizeof msg, "%s", e2);
    status(g, 2500, msg);
}

/* One key.  0, or -1 with err (a restart that failed). */
static int on_key(win *g, const viz_player *p, loop *l, SDL_Keycode sym, char *err, size_t errlen) {
    switch (sym) {
    case SDLK_q: case SDLK_ESCAPE: l->quit = true; break;
    case SDLK_SPACE: case SDLK_RIGHT: case SDLK_RETURN: l->step = true; break;
    case SDLK_p: l->play = !l->play; l->next = SDL_GetTicks(); break;
    case SDLK_PLUS: case SDLK_EQUALS: case SDLK_KP_PLUS: l->delay = l->delay / 2 > 16 ? l->delay / 2 : 16; break;
    case SDLK_MINUS: case SDLK_KP_MINUS: l->delay = l->delay * 2 < 5000 ? l->delay * 2 : 5000; break;
    case SDLK_r:
        if (p->restart(p->ctx, err, errlen)) return -1;
        l->ended = false;
        break;
    case SDLK_s: save_png(g, p); break;
    default: break;
    }
    if (sym != SDLK_s) {
        char msg[64];
        snprintf(msg, sizeof msg, "%s   step every %d ms", l->play ? "playing" : "paused", l->delay);
        status(g, 1200, msg);
    }
    l->dirty = true;
    return 0;
}

/* Handles the events waiting (a step first, then the next key).  0 or -1. */
static int events(win *g, const viz_player *p, loop *l, char *err, size_t errlen) {
    int timeout = 100;
    if (l->play && !l->ended) { Uint32 now = SDL_GetTicks(); timeout = now >= l->next ? 0 : (int)(l->next - now); }
    SDL_Event ev;
    if (!SDL_WaitEventTimeout(&ev, timeout)) return 0;
    do {
        switch (ev.type) {
        case SDL_QUIT: l->quit = true; break;
        case SDL_WINDOWEVENT: l->dirty = true; if (ev.window.event == SDL_WINDOWEVENT_LEAVE) g->hover = false; break;
        case SDL_MOUSEMOTION: g->mx = ev.motion.x; g->my = ev.motion.y; g->hover = true; l->dirty = true; break;
        case SDL_KEYDOWN: if (on_key(g, p, l, ev.key.keysym.sym, err, errlen)) return -1; break;
        default: break;
        }
    } while (!l->step && !l->quit && SDL_PollEvent(&ev));
    return 0;
}

int viz_window_run(const viz_player *p, const viz_window_opts *o, char *err, size_t errlen) {
    win g = {0};
    int ret = open_window(&g, o, err, errlen);
    if (ret) goto out;
    ret = -1;
    if (o->screenshot && *o->screenshot) { ret = screenshot_run(&g, p, o, err, errlen); goto out; }
    push_keys(o->keys);
    loop l = { .play = o->play, .dirty = true, .delay = o->delay_ms > 0 ? o->delay_ms : 500 };
    l.next = SDL_GetTicks() + (Uint32)l.delay;
    while (!l.quit) {
        if (l.dirty) {
            if (frame(&g, p->scene(p->ctx), err, errlen)) goto out;
            SDL_RenderPresent(g.r);
            l.dirty = false;
        }
        l.step = false;
        if (events(&g, p, &l, err, errlen)) goto out;
        if (l.play && !l.ended && SDL_GetTicks() >= l.next) { l.step = true; l.next = SDL_GetTicks() + (Uint32)l.delay; }
        if (l.step && !l.ended) {
            int rc = p->step(p->ctx, err, errlen);
            if (rc < 0) goto out;
            if (rc == 0) {
                l.ended = true;
                status(&g, 4000, "end of the run: r restarts, q quits");
            }
            l.dirty = true;
        }
        if (g.status[0] && g.status_until && SDL_GetTicks() >= g.status_until) { g.status_until = 0; l.dirty = true; }
    }
    ret = 0;
out:
    if (g.tex) SDL_DestroyTexture(g.tex);
    if (g.r) SDL_DestroyRenderer(g.r);
    if (g.w) SDL_DestroyWindow(g.w);
    SDL_Quit();
    return ret;
}
