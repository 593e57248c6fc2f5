/* labs/paging: the paging lab (labs/lab_paging.c). */
#include "apps/labs/lab_cli.h"
#include "labs/lab_paging.h"

int main(int argc, char **argv) { return lab_cli_main(&lab_paging, argc, argv); }
