/* bench_steps: the step file and the profile's per-step predictions of
 * engine/bench (see bench_steps.h).  Touches only the CSV it opens. */
#include "engine/bench_steps.h"
#include "base/errbuf.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int bstep_open(bstep_log *l, const char *csv_path, const char *prof_path, const mc_config *c, char *err, size_t errlen) {
    memset(l, 0, sizeof *l);
    if (prof_path) {
        if (opp_load(&l->prof, prof_path, err, errlen)) return -1;
        if (!opp_matches(&l->prof, c, 1))
            return errbuf_fail(err, errlen, "%s: measured for %s (tp %d), not %s", prof_path, l->prof.model,
                               l->prof.tp, c->name);
        l->have_prof = 1;
        snprintf(l->prof_path, sizeof l->prof_path, "%s", prof_path);
    }
    if (csv_path) {
        if (!(l->csv = fopen(csv_path, "w"))) return errbuf_fail(err, errlen, "cannot write %s", csv_path);
        fputs("prefill_tokens,decode_tokens,num_seqs,attn_ctx_tokens,attn_pairs,seconds\n", l->csv);
    }
    return 0;
}

int bstep_add(bstep_log *l, const eng_step_info *si) {
    if (si->num_seqs <= 0) return 0;                 /* an idle step ran nothing */
    if (l->csv && fprintf(l->csv, "%d,%d,%d,%ld,%ld,%.9f\n", si->prefill_tokens, si->decode_tokens, si->num_seqs,
                          si->attn_ctx_tokens, si->attn_pairs, si->seconds) < 0)
        return -1;
    if (!l->have_prof || !(si->seconds > 0)) return 0;
    cm_batch b = { si->num_seqs, si->prefill_tokens, si->decode_tokens, si->attn_ctx_tokens, si->attn_pairs,
                   0, 0, 0, 0, 0 };                        /* the engine preempts by recompute: no swaps */
    double p = opp_step_time(&l->prof, &b);
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 1024;
        double *r = realloc(l->rel, sizeof *r * (size_t)cap);
        if (!r) return -1;
        l->rel = r;
        l->cap = cap;
    }
    l->rel[l->n++] = p / si->seconds - 1;
    l->predicted_s += p;
    l->measured_s += si->seconds;
    return 0;
}

static int cmp_abs(const void *a, const void *b) {
    double x = fabs(*(const double *)a), y = fabs(*(const double *)b);
    return (x > y) - (x < y);
}

void bstep_report(bstep_log *l, FILE *out, char *json, size_t n) {
    if (json && n) json[0] = 0;
    if (!l->have_prof || l->n == 0) return;
    qsort(l->rel, (size_t)l->n, sizeof *l->rel, cmp_abs);    /* by |error| */
    double med = fabs(l->rel[l->n / 2]), p90 = fabs(l->rel[(int)(0.9 * (l->n - 1) + 0.5)]);
    double sum_err = l->predicted_s / l->measured_s - 1;
    fprintf(out, "  operator profile %s: steps %.3f s measured, %.3f s predicted (%+.1f%%); per step |error| "
            "median %.1f%%, p90 %.1f%% (%d steps)\n", l->prof_path, l->measured_s, l->predicted_s, 100 * sum_err,
            100 * med, 100 * p90, l->n);
    if (json && n)
        snprintf(json, n, ", \"op_profile\": \"%s\", \"steps_measured_s\": %.4f, \"steps_predicted_s\": %.4f, "
                 "\"steps_sum_err\": %.4f, \"step_err_median\": %.4f, \"step_err_p90\": %.4f", l->prof_path,
                 l->measured_s, l->predicted_s, sum_err, med, p90);
}

int bstep_close(bstep_log *l) {
    int rc = 0;
    if (l->csv && (ferror(l->csv) | (fclose(l->csv) != 0))) rc = -1;
    l->csv = NULL;
    free(l->rel);
    l->rel = NULL;
    return rc;
}
