/* serve/serve_metrics.c — vLLM's metric set for the server (see
 * serve_metrics.h).  Touches only its registry. */
#include "serve/serve_metrics.h"

#include <stdio.h>
#include <string.h>

int srv_metrics_init(srv_metrics *m, const char *model) {
    static const double ttft_b[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                                    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
    static const double tpot_b[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
                                    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
    static const double e2e_b[] = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                                   50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
    memset(m, 0, sizeof *m);
    char labels[300], esc[260];
    size_t j = 0;
    for (const char *p = model ? model : ""; *p && j + 2 < sizeof esc; p++) {
        if (*p == '"' || *p == '\\') esc[j++] = '\\';
        esc[j++] = *p == '\n' ? ' ' : *p;
    }
    esc[j] = 0;
    snprintf(labels, sizeof labels, "model_name=\"%s\"", esc);
    prom_registry *r = m->reg = prom_create(labels);
    if (!r) return -1;
    m->running = prom_add_metric(r, PROM_GAUGE, "vllm:num_requests_running", "Number of requests in model execution batches.", NULL, 0);
    m->waiting = prom_add_metric(r, PROM_GAUGE, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", NULL, 0);
    m->kv = prom_add_metric(r, PROM_GAUGE, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", NULL, 0);
    m->preempt = prom_add_metric(r, PROM_COUNTER, "vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.", NULL, 0);
    m->pc_queries = prom_add_metric(r, PROM_COUNTER, "vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.", NULL, 0);
    m->pc_hits = prom_add_metric(r, PROM_COUNTER, "vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.", NULL, 0);
    m->prompt = prom_add_metric(r, PROM_COUNTER, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", NULL, 0);
    m->gen = prom_add_metric(r, PROM_COUNTER, "vllm:generation_tokens_total", "Number of generation tokens processed.", NULL, 0);
    m->success = prom_add_metric(r, PROM_COUNTER, "vllm:request_success_total", "Count of successfully processed requests.", NULL, 0);
    m->ttft = prom_add_metric(r, PROM_HISTOGRAM, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              ttft_b, sizeof ttft_b / sizeof *ttft_b);
    m->tpot = prom_add_metric(r, PROM_HISTOGRAM, "vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.",
                              tpot_b, sizeof tpot_b / sizeof *tpot_b);
    m->e2e = prom_add_metric(r, PROM_HISTOGRAM, "vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
                             e2e_b, sizeof e2e_b / sizeof *e2e_b);
    if (m->running && m->waiting && m->kv && m->preempt && m->pc_queries && m->pc_hits && m->prompt && m->gen && m->success &&
        m->ttft && m->tpot && m->e2e) return 0;
    srv_metrics_free(m);
    return -1;
}

void srv_metrics_free(srv_metrics *m) {
    prom_free(m->reg);
    memset(m, 0, sizeof *m);
}

char *srv_metrics_render(srv_metrics *m, const srv_backend_stats *bs) {
    prom_set(m->running, bs->running);
    prom_set(m->waiting, bs->waiting);
    prom_set(m->kv, bs->kv_usage);
    prom_set(m->preempt, (double)bs->preemptions);
    prom_set(m->pc_queries, (double)bs->prefix_queries);
    prom_set(m->pc_hits, (double)bs->prefix_hits);
    return prom_render(m->reg, NULL);
}
