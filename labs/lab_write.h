/* lab_write: a lab run's files, into one folder (created when missing):
 *   <figure>.png, <figure>.svg     each figure (viz/export.h)
 *   <table>.csv, data.json         the data: every table, the headlines, the questions
 *   worksheet.md                   the handout in Markdown (labs/lab_sheet.h)
 *   worksheet-a4.pdf, worksheet-letter.pdf   the same, printable
 *   answers.json                   the template students fill in (kept when it already
 *                                  holds answers: a rerun never loses a student's work)
 *   answer-key.json, answer-key.md with teacher only
 * Writes only inside dir; prints nothing. */
#ifndef LAB_WRITE_H
#define LAB_WRITE_H
#include <stdbool.h>
#include <stddef.h>
#include "labs/lab.h"

/* L must have run with its figures.  Returns 0, or -1 with err naming the file. */
int   lab_write(lab *L, const char *dir, bool teacher, char *err, size_t errlen);
/* The files the last lab_write wrote, relative to its dir. */
int   lab_num_files(const lab *L);
const char *lab_file_at(const lab *L, int i);
#endif
