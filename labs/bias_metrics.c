/* bias_metrics: {model}_att_metrics.json in the study's keys (see bias_metrics.h). */
#include "labs/bias_metrics.h"
#include "labs/bias_aggregate.h"
#include "labs/bias_output.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void num(bias_buf *b, double x, int nd) {
    char t[64];
    bias_fmt_double(t, sizeof t, bias_round_nd(x, nd));
    bias_buf_add(b, t, strlen(t));
}

int bias_write_metrics_measured(const bias_run_config *c, const bias_run_stats *st, const bias_serving_result *sr,
                                const bias_measured *m, char *err, size_t errlen) {
    long long in = 0, out = 0;
    double lat = 0, ttft = 0;
    for (size_t i = 0; i < st->n; i++) {
        in += st->prompt_tokens[i]; out += st->output_tokens[i];
        lat += st->latency_s[i]; ttft += st->ttft_s[i];
    }
    double total = 0, avg_lat = st->n ? lat / (double)st->n : 0, avg_ttft = st->n ? ttft / (double)st->n : 0;
    if (m) total = m->wall_s;
    else if (sr) {
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
                    "  \"average_latency_seconds\": %s,\n  \"average_ttft_seconds\": %s,\n  \"source\": ",
                    c->num_sets, st->n, in, out, in + out, t1, t2, t3, t4);
    if (m) {
        bias_json_str(&b, m->source ? m->source : "real");
        /* measured extras: throughput over this invocation, percentiles of the replies' own figures */
        double *v = malloc((st->n ? st->n : 1) * sizeof *v);      /* (n) */
        long long tin = 0, tout = 0;
        if (v) {
            size_t k = 0;
            for (size_t i = 0; i < st->n; i++) if (st->latency_s[i] > 0) { v[k++] = st->ttft_s[i]; tin += st->prompt_tokens[i]; tout += st->output_tokens[i]; }
            qsort(v, k, sizeof *v, cmp_d);
            bias_buf_printf(&b, ",\n  \"measured_prompts\": %zu,\n  \"measured_tokens_per_second\": ", k);
            num(&b, m->wall_s > 0 ? (double)(tin + tout) / m->wall_s : 0, 1);
            bias_buf_printf(&b, ",\n  \"measured_output_tokens_per_second\": ");
            num(&b, m->wall_s > 0 ? (double)tout / m->wall_s : 0, 1);
            bias_buf_printf(&b, ",\n  \"ttft_p50_seconds\": ");
            num(&b, k ? v[(k - 1) / 2] : 0, 4);
            bias_buf_printf(&b, ",\n  \"ttft_p99_seconds\": ");
            num(&b, k ? v[(size_t)(0.99 * (double)(k - 1))] : 0, 4);
            free(v);
        }
        if (m->usage_prompt_tokens >= 0)
            bias_buf_printf(&b, ",\n  \"server_usage_prompt_tokens\": %lld,\n  \"server_usage_completion_tokens\": %lld",
                            m->usage_prompt_tokens, m->usage_completion_tokens);
        if (st->resumed)
            bias_buf_printf(&b, ",\n  \"resumed_prompts\": %zu", st->resumed);
        if (m->note) { bias_buf_printf(&b, ",\n  \"note\": "); bias_json_str(&b, m->note); }
    } else {
        bias_buf_printf(&b, "\"%s\"", sr ? "simulated (times predicted by the serving simulator)"
                                         : "simulated (no serving simulation)");
    }
    bias_buf_printf(&b, "\n}");
    char path[4096];
    bias_path(path, sizeof path, c->output_dir, c->model, "_att_metrics.json");
    int rc = b.oom ? -1 : bias_write_atomic(path, b.s, b.len, err, errlen);
    if (b.oom) snprintf(err, errlen, "out of memory");
    bias_buf_free(&b);
    return rc;
}

int bias_write_metrics(const bias_run_config *c, const bias_run_stats *st, const bias_serving_result *sr,
                       char *err, size_t errlen) {
    return bias_write_metrics_measured(c, st, sr, NULL, err, errlen);
}
