/* labs/planning: the memory-planner lab (labs/lab_planning.c). */
#include "apps/labs/lab_cli.h"
#include "labs/lab_planning.h"

int main(int argc, char **argv) { return lab_cli_main(&lab_planning, argc, argv); }
