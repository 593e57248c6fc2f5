/* labs/lora: the LoRA lab (labs/lab_lora.c). */
#include "apps/labs/lab_cli.h"
#include "labs/lab_lora.h"

int main(int argc, char **argv) { return lab_cli_main(&lab_lora, argc, argv); }
