/* Placeholder until the plan subcommand lands (its owner replaces this file). */
#include <stdio.h>
#include "sim/commands.h"
int pagesim_cmd_plan(int argc, char **argv) {
    (void)argc; (void)argv;
    fputs("pagesim plan: not built yet\n", stderr);
    return 2;
}
