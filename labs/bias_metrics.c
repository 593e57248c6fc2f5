/* bias_metrics: {model}_att_metrics.json in the study's keys (see bias_metrics.h). */
#include "labs/bias_metrics.h"
#include "labs/bias_aggregate.h"
#include "labs/bias_output.h"
#include <stdio.h>
#include <string.h>

int bias_write_metrics(const bias_run_config *c, const bias_run_stats *st, const bias_serving_result *sr,
                       char *err, size_t errlen) {
    long long in = 0, out = 0;
    double lat = 0, ttft = 0;
    for (size_t i = 0; i < st->n; i++) {
        in += st->prompt_tokens[i]; out += st->output_tokens[i];
        lat += st->latency_s[i]; ttft += st->ttft_s[i];
    }
    double total = 0, avg_lat = st->n ? lat / (double)st->n : 0, avg_ttft = st->n ? ttft / (double)st->n : 0;
    if (sr) {
        total = sr->pol[BIAS_PAGED].wall_s;
        avg_lat = sr->pol[BIAS_PAGED].latency_mean_s;
        avg_ttft = sr->pol[BIAS_PAGED].ttft_mean_s;
    }
    char t1[64], t2[64], t3[64], t4[64];
    bias_fmt_double(t1, sizeof t1, bias_round_nd(total, 2));
    bias_fmt_double(t2, sizeof t2, bias_round_nd(total / c->num_sets, 2));
    bias_fmt_double(t3, sizeof t3, bias_round_nd(avg_lat, 2));
    bias_fmt_double(t4, sizeof t4, bias_round_nd(avg_ttft, 2));
    bias_buf b = {0};
    bias_buf_printf(&b, "{\n  \"model\": ");
    bias_json_str(&b, c->model);
    bias_buf_printf(&b, ",\n  \"total_sets\": %d,\n  \"total_prompts\": %zu,\n  \"total_cost_usd\": 0.0,\n"
                    "  \"total_input_tokens\": %lld,\n  \"total_output_tokens\": %lld,\n  \"total_tokens\": %lld,\n"
                    "  \"total_time_seconds\": %s,\n  \"average_time_per_set_seconds\": %s,\n"
                    "  \"average_latency_seconds\": %s,\n  \"average_ttft_seconds\": %s,\n  \"source\": \"%s\"\n}",
                    c->num_sets, st->n, in, out, in + out, t1, t2, t3, t4,
                    sr ? "simulated (times predicted by the serving simulator)" : "simulated (no serving simulation)");
    char path[4096];
    bias_path(path, sizeof path, c->output_dir, c->model, "_att_metrics.json");
    int rc = b.oom ? -1 : bias_write_atomic(path, b.s, b.len, err, errlen);
    if (b.oom) snprintf(err, errlen, "out of memory");
    bias_buf_free(&b);
    return rc;
}
