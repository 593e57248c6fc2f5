/* labs/sharing: the sharing lab (labs/lab_sharing.c). */
#include "apps/labs/lab_cli.h"
#include "labs/lab_sharing.h"

int main(int argc, char **argv) { return lab_cli_main(&lab_sharing, argc, argv); }
