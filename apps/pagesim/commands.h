/* commands: the subcommands of the `pagesim` front end, one file each.
 * Each takes the arguments after the subcommand name (argv[0] = its name),
 * prints its own --help, and returns the process exit status. */
#ifndef COMMANDS_H
#define COMMANDS_H
#include <stddef.h>
#include <stdio.h>
int pagesim_cmd_run(int argc, char **argv);        /* apps/pagesim/cmd_run.c: simulate a workload */
int pagesim_cmd_plan(int argc, char **argv);       /* apps/pagesim/cmd_plan.c: memory planner */
int pagesim_cmd_calibrate(int argc, char **argv);  /* apps/pagesim/cmd_calibrate.c: fit cost coefficients */
int pagesim_cmd_viz(int argc, char **argv);        /* apps/pagesim/cmd_viz.c: the block-pool scene */
void pagesim_viz_usage(FILE *f);                   /* the view's --help (also in pagesim --help) */
/* Prints "cmd: err (see --help)" on stderr and returns 2, the exit status of
 * a bad command line (apps/pagesim/cmd_args.c). */
int pagesim_bad_usage(const char *cmd, const char *err);
#endif
