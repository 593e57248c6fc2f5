/* commands: the subcommands of the `pagesim` front end, one file each.
 * Each takes the arguments after the subcommand name (argv[0] = its name),
 * prints its own --help, and returns the process exit status. */
#ifndef COMMANDS_H
#define COMMANDS_H
int pagesim_cmd_run(int argc, char **argv);        /* sim/cmd_run.c: simulate a workload */
int pagesim_cmd_plan(int argc, char **argv);       /* sim/cmd_plan.c: memory planner */
int pagesim_cmd_calibrate(int argc, char **argv);  /* sim/cmd_calibrate.c: fit cost coefficients */
int pagesim_cmd_viz(int argc, char **argv);        /* viz/cmd_viz.c: the block-pool scene */
#endif
