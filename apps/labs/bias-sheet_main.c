/* labs/bias-sheet: the bias experiment as a classroom lab (labs/lab_bias_sheet.c). */
#include "apps/labs/lab_cli.h"
#include "labs/lab_bias_sheet.h"

int main(int argc, char **argv) { return lab_cli_main(&lab_bias_sheet, argc, argv); }
