/* bias_metrics: the study's {model}_att_metrics.json (prompts, tokens, time,
 * latency, TTFT, json.dump indent 2).  Times come from the serving
 * simulation when there is one (simulated runs), else from what the source
 * measured (a real or server run: the wall time of the generation, the
 * replies' own latency and time to first token, the server's token usage).
 * Writes only that file. */
#ifndef BIAS_METRICS_H
#define BIAS_METRICS_H
#include "labs/bias_run.h"
#include "labs/bias_serving.h"

/* What a real run measured beyond the per-reply figures. */
typedef struct bias_measured {
    const char *source;          /* "engine (in process)", "server http://..." */
    double wall_s;               /* generation wall time of this invocation (resumed sets excluded) */
    long long usage_prompt_tokens, usage_completion_tokens;   /* as the server reported; < 0 unknown */
    const char *note;            /* e.g. dummy weights; NULL = none */
} bias_measured;

int bias_write_metrics(const bias_run_config *c, const bias_run_stats *st, const bias_serving_result *sr,
                       char *err, size_t errlen);
/* The same for a real run (m != NULL: times measured; sr ignored for times). */
int bias_write_metrics_measured(const bias_run_config *c, const bias_run_stats *st, const bias_serving_result *sr,
                                const bias_measured *m, char *err, size_t errlen);
#endif
