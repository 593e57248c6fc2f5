/* lab_bias_sheet: the bias experiment in the classroom-lab form
 * (labs/bias-sheet): the simulated run's bias scores and serving
 * prediction, with a worksheet; then labs/bias --real on a GPU, and the
 * comparison.  See labs/README.md. */
#ifndef LAB_BIAS_SHEET_H
#define LAB_BIAS_SHEET_H
#include "labs/lab.h"

extern const lab_def lab_bias_sheet;
#endif
