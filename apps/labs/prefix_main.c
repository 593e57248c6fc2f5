/* labs/prefix: the prefix-caching lab (labs/lab_prefix.c). */
#include "apps/labs/lab_cli.h"
#include "labs/lab_prefix.h"

int main(int argc, char **argv) { return lab_cli_main(&lab_prefix, argc, argv); }
