/* cmd_args.c: what the pagesim subcommands share about their command lines
 * (see apps/pagesim/commands.h); the options themselves are read through
 * base/opt.h, one table per subcommand. */
#include "apps/pagesim/commands.h"
#include <stdio.h>

int pagesim_bad_usage(const char *cmd, const char *err) {
    fprintf(stderr, "%s: %s (see --help)\n", cmd, err);
    return 2;
}
