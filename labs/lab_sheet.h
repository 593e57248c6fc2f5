/* lab_sheet: the worksheet of a lab run, the handout a student works from:
 * title and seed, what the lab shows, what to run, each figure with what to
 * look at, the data tables marked for the sheet, the questions with room for
 * the answers (a prediction line where one is asked first), and how to check
 * the answers.  The same content as Markdown (lab_sheet_md.c) and as a PDF
 * page flow drawn with cairo (lab_sheet_pdf.c), whose figures are the lab's
 * own drawings, scaled (vector, so they print sharp).  The teacher's key is
 * the Markdown sheet with the answers filled in.  Write only what they are
 * given; print nothing. */
#ifndef LAB_SHEET_H
#define LAB_SHEET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "labs/lab.h"

/* Page sizes in points. */
#define LAB_PAGE_A4_W     595.276
#define LAB_PAGE_A4_H     841.890
#define LAB_PAGE_LETTER_W 612.0
#define LAB_PAGE_LETTER_H 792.0

/* The worksheet (key: with answers, tolerances and model answers) as
 * Markdown into f; figures are linked as <name>.png beside it.  Returns 0,
 * or -1 when the stream fails. */
int lab_sheet_markdown(const lab *L, FILE *f, bool key);
/* The worksheet as a PDF of page_w x page_h points.  Returns 0, or -1 with
 * err naming the file. */
int lab_sheet_pdf(const lab *L, const char *path, double page_w, double page_h,
                  char *err, size_t errlen);
#endif
