/* Placeholder until the calibrate subcommand lands (its owner replaces this file). */
#include <stdio.h>
#include "sim/commands.h"
int pagesim_cmd_calibrate(int argc, char **argv) {
    (void)argc; (void)argv;
    fputs("pagesim calibrate: not built yet\n", stderr);
    return 2;
}
