/* cmd_args.c: the "--name value" / "--name=value" options of the pagesim
 * subcommands (see apps/pagesim/commands.h). */
#include "apps/pagesim/commands.h"
#include <stdio.h>
#include <string.h>

int pagesim_cmd_option(const char *cmd, int argc, char **argv, int *i, char *name, size_t cap, char **val) {
    char *a = argv[*i];
    if (strncmp(a, "--", 2) != 0) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", cmd, a);
        return 2;
    }
    char *eq = strchr(a, '=');
    snprintf(name, cap, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
    if (eq) *val = eq + 1;
    else if (*i + 1 < argc) *val = argv[++*i];
    else {
        fprintf(stderr, "%s: %s needs a value (see --help)\n", cmd, name);
        return 2;
    }
    return 0;
}
