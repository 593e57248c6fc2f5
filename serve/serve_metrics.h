/* serve/serve_metrics.h — the server's Prometheus metrics, vLLM's names:
 * request counts and token totals, TTFT / time-per-output-token / latency
 * histograms, and the scheduler's gauges (running, waiting, KV usage,
 * preemptions, prefix cache) mirrored from the backend's stats at each scrape.
 * Thread-safe (serve/prometheus.h); touches only its registry. */
#ifndef SERVE_SERVE_METRICS_H
#define SERVE_SERVE_METRICS_H
#include <stddef.h>
#include "serve/prometheus.h"
#include "serve/serve_backend.h"

typedef struct srv_metrics {
    prom_registry *reg;
    prom_metric *running, *waiting, *kv, *preempt;      /* gauges / counter from the backend */
    prom_metric *pc_queries, *pc_hits;                  /* prefix cache, tokens (backend) */
    prom_metric *prompt, *gen, *success;                /* counters */
    prom_metric *ttft, *tpot, *e2e;                     /* histograms, seconds */
} srv_metrics;

/* Registers every metric, labelled model_name="<model>".  0, or -1 when out of memory. */
int  srv_metrics_init(srv_metrics *m, const char *model);
void srv_metrics_free(srv_metrics *m);
/* The exposition text with the backend's figures bs; malloc'd, NULL when out of memory. */
char *srv_metrics_render(srv_metrics *m, const srv_backend_stats *bs);

#endif
