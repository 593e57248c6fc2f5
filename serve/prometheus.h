/* serve/prometheus.h — a tiny metrics registry rendered in the Prometheus
 * text exposition format (version 0.0.4), for engine/serve's /metrics.
 *
 * Counters, gauges and histograms with one set of constant labels per
 * registry (e.g. model_name="qwen"), named as vLLM names them
 * ("vllm:num_requests_running", "vllm:prompt_tokens_total", ...).
 * A counter's name is given with its "_total" suffix, as it is exposed.
 *
 * Thread safety: every function may be called from any thread; a registry
 * holds one mutex.  Metrics live as long as their registry; it owns them.
 */
#ifndef SERVE_PROMETHEUS_H
#define SERVE_PROMETHEUS_H
#include <stddef.h>

typedef struct prom_registry prom_registry;
typedef struct prom_metric prom_metric;

typedef enum { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM } prom_type;

/* Creates an empty registry.  labels: constant labels written on every
 * sample, already in exposition syntax without braces (`model_name="m"`), or
 * NULL/"" for none.  Returns NULL when out of memory. */
prom_registry *prom_create(const char *labels);
/* Frees the registry and its metrics.  NULL is fine. */
void prom_free(prom_registry *r);

/* Registers a metric.  name must match [a-zA-Z_:][a-zA-Z0-9_:]*; help is one
 * line.  Histograms take n ascending finite upper bounds (the +Inf bucket is
 * implicit).  Returns NULL (and registers nothing) on a bad name, a duplicate
 * name, bounds not strictly ascending, or out of memory. */
prom_metric *prom_add_metric(prom_registry *r, prom_type type, const char *name,
                             const char *help, const double *bounds, size_t n);

/* Counter or gauge: adds v (counters ignore v < 0).  Histogram: ignored. */
void prom_inc(prom_metric *m, double v);
/* Gauge: sets v.  Counter: sets v when v is not below the current value (for
 * mirroring a total kept elsewhere).  Histogram: ignored. */
void prom_set(prom_metric *m, double v);
/* Histogram: records one observation.  Others: ignored.  NaN is ignored. */
void prom_observe(prom_metric *m, double v);

/* Current value (counter, gauge) or observation count (histogram). */
double prom_value(const prom_metric *m);
/* Histogram: sum of the observations and the cumulative count of bucket i
 * (i == n: the +Inf bucket).  Returns 0 for others or i out of range. */
double prom_hist_sum(const prom_metric *m);
double prom_hist_bucket(const prom_metric *m, size_t i);

/* Renders every metric in registration order.  Returns a malloc'd,
 * NUL-terminated text (its length in *len when len is not NULL), or NULL
 * when out of memory. */
char *prom_render(prom_registry *r, size_t *len);

#endif
