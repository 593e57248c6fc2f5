/* Placeholder until the run subcommand lands (its owner replaces this file). */
#include <stdio.h>
#include "sim/commands.h"
int pagesim_cmd_run(int argc, char **argv) {
    (void)argc; (void)argv;
    fputs("pagesim run: not built yet\n", stderr);
    return 2;
}
