/* tui: the block pool as an ANSI terminal view that fits 80 columns, for
 * machines without a display (`pagesim --tui`, or no DISPLAY).  One letter per
 * sequence, one character per slot; colours are an extra, never the only cue.
 * Reads the keyboard in raw mode (termios) only inside viz_tui_run. */
#ifndef VIZ_TUI_H
#define VIZ_TUI_H
#include <stdbool.h>
#include <stdio.h>
#include "viz/scene.h"
#include "viz/player.h"

/* The letter of a sequence id: A..Z, a..z, then 0..9, repeating. */
char  viz_tui_glyph(int owner);
/* The frame of a scene as text, every line at most cols (>= 40) columns wide
 * (escape sequences not counted) when colour is on.  Returns a malloc'd
 * string (free with free()), NULL when out of memory. */
char *viz_tui_frame(const viz_scene *s, int cols, bool color);

typedef struct viz_tui_opts {
    bool play;               /* advance by itself every delay_ms */
    int  delay_ms;
    bool color;              /* ANSI colours */
    int  cols;               /* width (80) */
} viz_tui_opts;

/* Runs the view: keys Enter/space step, p play/pause, +/- speed, r restart,
 * q quit.  When out is not a terminal, runs to the end and prints the final
 * frame only.  Returns 0, or -1 with err (a player error). */
int   viz_tui_run(const viz_player *p, const viz_tui_opts *o, FILE *out, char *err, size_t errlen);
#endif
