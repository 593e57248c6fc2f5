/* player: what the interactive views (window, terminal) step through, as
 * function pointers, so that they depend on no simulator symbol: cmd_viz.c
 * wires a scenario (viz/scenario.h) into one; tests wire a fake. */
#ifndef VIZ_PLAYER_H
#define VIZ_PLAYER_H
#include <stddef.h>
#include "viz/scene.h"

typedef struct viz_player {
    void *ctx;
    /* Advances one step.  Returns 1 when a step ran, 0 at the end, -1 on an
     * error (err filled). */
    int  (*step)(void *ctx, char *err, size_t errlen);
    /* Back to step 0.  Returns 0 or -1 (err filled). */
    int  (*restart)(void *ctx, char *err, size_t errlen);
    /* The scene of the current step (valid until the next step/restart). */
    const viz_scene *(*scene)(void *ctx);
} viz_player;
#endif
