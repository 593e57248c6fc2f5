/* window: the scene in an SDL2 window, drawn by the cairo renderer into an
 * SDL streaming texture (one renderer for every output).  Keys: space step,
 * p play/pause, +/- speed, r restart, s save a PNG, q/Esc quit; resizable;
 * hovering a block shows its owner, slots and ref count.  For tests (the front
 * end fills these from PAGESIM_SCREENSHOT, _STEP, _MOUSE and PAGESIM_KEYS):
 * opts.screenshot saves the window's first frame (read back from the SDL
 * renderer) as a PNG and quits, after screenshot_step steps, hovering at
 * (hover_x, hover_y) when hover; opts.keys replays key presses first.
 * Touches the display, and files only on `s` or the screenshot. */
#ifndef VIZ_WINDOW_H
#define VIZ_WINDOW_H
#include <stdbool.h>
#include <stddef.h>
#include "viz/player.h"

typedef struct viz_window_opts {
    int  width, height;      /* initial size (1280 x 800) */
    bool play;               /* start playing */
    int  delay_ms;           /* between steps when playing */
    const char *title;
    const char *screenshot;  /* non-NULL: save the first frame as this PNG and quit */
    int  screenshot_step;    /* steps before that frame */
    bool hover;              /* the pointer at (hover_x, hover_y) for that frame */
    int  hover_x, hover_y;
    const char *keys;        /* key presses to replay first: space p r s q + - */
} viz_window_opts;

/* True when a display is named (DISPLAY, WAYLAND_DISPLAY, or an explicit
 * SDL_VIDEODRIVER). */
bool viz_window_has_display(void);
/* Runs the window until quit.  Returns 0; 1 when no window could be opened
 * (err says why: the caller falls back to the terminal); -1 on a player or
 * drawing error (err filled). */
int  viz_window_run(const viz_player *p, const viz_window_opts *o, char *err, size_t errlen);
#endif
