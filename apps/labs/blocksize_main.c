/* labs/blocksize: the block-size lab (labs/lab_blocksize.c). */
#include "apps/labs/lab_cli.h"
#include "labs/lab_blocksize.h"

int main(int argc, char **argv) { return lab_cli_main(&lab_blocksize, argc, argv); }
