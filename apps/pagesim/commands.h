/* commands: the subcommands of the `pagesim` front end, one file each.
 * Each takes the arguments after the subcommand name (argv[0] = its name),
 * prints its own --help, and returns the process exit status. */
#ifndef COMMANDS_H
#define COMMANDS_H
#include <stddef.h>
int pagesim_cmd_run(int argc, char **argv);        /* apps/pagesim/cmd_run.c: simulate a workload */
int pagesim_cmd_plan(int argc, char **argv);       /* apps/pagesim/cmd_plan.c: memory planner */
int pagesim_cmd_calibrate(int argc, char **argv);  /* apps/pagesim/cmd_calibrate.c: fit cost coefficients */
int pagesim_cmd_viz(int argc, char **argv);        /* apps/pagesim/cmd_viz.c: the block-pool scene */
/* argv[*i] as an option with a value ("--name value" or "--name=value"):
 * name (cap bytes) and *val set, *i past the value, 0; else prints
 * "cmd: ..." and returns 2 (apps/pagesim/cmd_args.c). */
int pagesim_cmd_option(const char *cmd, int argc, char **argv, int *i, char *name, size_t cap, char **val);
#endif
