/* labs/preemption: the preemption lab (labs/lab_preemption.c). */
#include "apps/labs/lab_cli.h"
#include "labs/lab_preemption.h"

int main(int argc, char **argv) { return lab_cli_main(&lab_preemption, argc, argv); }
