/* Placeholder until the visualisation lands (its owner replaces this file). */
#include <stdio.h>
#include "sim/commands.h"
int pagesim_cmd_viz(int argc, char **argv) {
    (void)argc; (void)argv;
    fputs("pagesim: the block-pool view is not built yet\n", stderr);
    return 2;
}
