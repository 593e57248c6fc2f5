/* pagesim: the front end.  Dispatches to one subcommand; with no subcommand
 * (or options only, as in `pagesim --blocks 16`) it shows the block pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apps/common/front.h"
#include "apps/pagesim/commands.h"

static void usage(FILE *f) {
    fputs("usage: pagesim [COMMAND] [OPTIONS]\n"
          "\n"
          "PagedAttention, simulated and shown.\n"
          "\n"
          "commands:\n"
          "  (none)      show the KV block pool filling, sharing and freeing\n"
          "              (pagesim --blocks 16; window, --png/--svg/--pdf, or --tui)\n"
          "  run         simulate a workload under an allocation policy, print metrics\n"
          "  plan        how many KV blocks a model gets on a GPU\n"
          "  calibrate   fit the cost model's coefficients from a measured run\n"
          "\n"
          "`pagesim COMMAND --help` tells more.  Every command takes --version and\n"
          "--data-dir DIR (the project's data folder; else $PAGESIM_DATA, else the data/\n"
          "beside this program, so that it runs from any directory).\n"
          "Exit status: 0 done, 1 the work failed (or a write error), 2 bad usage or input.\n"
          "\n"
          "The view's options (pagesim [OPTIONS], no command):\n\n", f);
    pagesim_viz_usage(f);
}

int main(int argc, char **argv) {
    front_init("pagesim");
    if (argc >= 2) {
        const char *c = argv[1];
        if (!strcmp(c, "-h") || !strcmp(c, "--help") || !strcmp(c, "help")) { usage(stdout); return 0; }
        if (!strcmp(c, "run"))       return pagesim_cmd_run(argc - 1, argv + 1);
        if (!strcmp(c, "plan"))      return pagesim_cmd_plan(argc - 1, argv + 1);
        if (!strcmp(c, "calibrate")) return pagesim_cmd_calibrate(argc - 1, argv + 1);
        if (c[0] != '-') {
            fprintf(stderr, "pagesim: unknown command '%s'\n\n", c);
            usage(stderr);
            return FRONT_USAGE;
        }
    }
    return pagesim_cmd_viz(argc, argv);
}
