/* bias_figure: the lab's figure, drawn with cairo into PNG and SVG: bias by
 * sector and by size (mean over sets, error bars one std across sets), and
 * KV utilization over time of set 1, paged against contiguous.  Writes only
 * {base}.png and {base}.svg. */
#ifndef BIAS_FIGURE_H
#define BIAS_FIGURE_H
#include <stddef.h>
#include "labs/bias_analysis.h"
#include "labs/bias_serving.h"

/* source names where the decisions came from, for the title ("simulated",
 * "engine", "server", ...).  sr may be NULL (the KV panel then says so); the
 * KV panel is always the simulator's prediction. */
int bias_figure_write(const bias_result *r, const bias_serving_result *sr, const char *source,
                      const char *base, char *err, size_t errlen);
#endif
