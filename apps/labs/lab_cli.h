/* lab_cli: the command line every classroom lab shares (labs/<name>): parses
 * the options, runs the lab, prints its narrative and headline numbers,
 * writes out/<name>/, and grades answers with --check.  Front-end code: it
 * prints and returns the exit status (0 done / all answers right, 1 failed /
 * some answers wrong or missing, 2 bad usage). */
#ifndef LAB_CLI_H
#define LAB_CLI_H
#include "labs/lab.h"

int lab_cli_main(const lab_def *def, int argc, char **argv);
#endif
