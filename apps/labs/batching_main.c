/* labs/batching: the batching lab (labs/lab_batching.c). */
#include "apps/labs/lab_cli.h"
#include "labs/lab_batching.h"

int main(int argc, char **argv) { return lab_cli_main(&lab_batching, argc, argv); }
