/* bias_metrics: the study's {model}_att_metrics.json (prompts, tokens, time,
 * latency, TTFT, json.dump indent 2).  Times come from the serving
 * simulation when there is one (simulated runs), else from what the source
 * measured.  Writes only that file. */
#ifndef BIAS_METRICS_H
#define BIAS_METRICS_H
#include "labs/bias_run.h"
#include "labs/bias_serving.h"

int bias_write_metrics(const bias_run_config *c, const bias_run_stats *st, const bias_serving_result *sr,
                       char *err, size_t errlen);
#endif
