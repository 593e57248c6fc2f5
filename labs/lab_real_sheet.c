/* lab_real_sheet: --real's table and figure of measured beside simulated
 * numbers (see lab_real_sheet.h).  Draws with viz/barchart; touches no file. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "base/errbuf.h"
#include "labs/lab_real_sheet.h"
#include "viz/barchart.h"

void lab_real_view_init(lab_real_view *v) {
    memset(v, 0, sizeof *v);
    for (int p = 0; p < LAB_RV_PANELS; p++)
        for (int c = 0; c < LAB_RV_CATS; c++) v->ref[p][c] = v->sim[p][c] = v->gpu[p][c] = NAN;
}

static void draw_view(cairo_t *cr, const void *ctx, double w, double h) {
    const lab_real_view *v = ctx;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double pw = w / v->npanel;
    for (int p = 0; p < v->npanel; p++) {
        viz_bar_chart c = { .title = v->panel[p], .y_label = v->unit[p], .categories = v->cat, .ncats = v->ncat,
                            .series = v->series, .nseries = 2, .values = v->bars[p],
                            .refs = v->has_ref[p] ? v->ref[p] : NULL, .ref_label = v->ref_label,
                            .value_format = v->fmt[p] ? v->fmt[p] : "%.3g", .y_max = v->ymax[p] };
        viz_bar_draw(cr, &c, p * pw + 8, 8, pw - 16, h - 16);
    }
}

/* The table's columns: key, then per panel sim, gpu (and lab where it has refs). */
static int view_table(lab *L, const lab_real_view *v, const char *name, const char *caption) {
    char cols[1200];
    int k = snprintf(cols, sizeof cols, "run");
    for (int p = 0; p < v->npanel && k < (int)sizeof cols; p++)
        k += snprintf(cols + k, sizeof cols - (size_t)k, ",%s_sim,%s_gpu%s%s%s", v->col[p], v->col[p],
                      v->has_ref[p] ? "," : "", v->has_ref[p] ? v->col[p] : "", v->has_ref[p] ? "_lab" : "");
    if (k >= (int)sizeof cols) return -1;
    lab_table *t = lab_table_add(L, name, caption, cols, true);
    if (!t) return -1;
    for (int c = 0; c < v->ncat; c++) {
        double row[3 * LAB_RV_PANELS];
        int n = 0;
        for (int p = 0; p < v->npanel; p++) {
            row[n++] = v->sim[p][c];
            row[n++] = v->gpu[p][c];
            if (v->has_ref[p]) row[n++] = v->ref[p][c];
        }
        if (lab_table_row(t, v->key[c] ? v->key[c] : v->cat[c], row) < 0) return -1;
    }
    return 0;
}

/* The figure's bars and which panels have refs, from sim, gpu and ref. */
static int prepare(lab_real_view *v, const char *name, char *err, size_t errlen) {
    if (v->ncat < 1 || v->ncat > LAB_RV_CATS || v->npanel < 1 || v->npanel > LAB_RV_PANELS)
        return errbuf_fail(err, errlen, "%s: %d runs and %d panels (1-%d, 1-%d)", name, v->ncat, v->npanel,
                           LAB_RV_CATS, LAB_RV_PANELS);
    v->series[0] = "simulated (the same requests)";
    v->series[1] = "measured on the GPU";
    for (int p = 0; p < v->npanel; p++) {
        v->has_ref[p] = false;
        for (int c = 0; c < v->ncat; c++) {
            v->bars[p][2 * c] = v->sim[p][c];
            v->bars[p][2 * c + 1] = v->gpu[p][c];
            if (isfinite(v->ref[p][c])) v->has_ref[p] = true;
        }
    }
    return 0;
}

int lab_real_view_table(lab *L, lab_real_view *v, const char *name, const char *caption, char *err, size_t errlen) {
    if (prepare(v, name, err, errlen) < 0) return -1;
    return view_table(L, v, name, caption) < 0 ? errbuf_fail(err, errlen, "out of memory") : 0;
}

int lab_real_view_figure(lab *L, lab_real_view *v, const char *name, const char *caption, const char *look_at,
                         char *err, size_t errlen) {
    if (prepare(v, name, err, errlen) < 0) return -1;
    lab_figure_spec f = { name, caption, look_at, 900, 420, draw_view, v };
    return lab_figure(L, &f) < 0 ? errbuf_fail(err, errlen, "out of memory") : 0;
}

int lab_real_runs_table(lab *L, const char *name, int n, const char *const *keys, const lab_real_meas *gpu,
                        const lab_real_meas *sim, char *err, size_t errlen) {
    lab_table *t = lab_table_add(L, name, "Every run on the GPU (gpu) and simulated (sim): the same requests "
        "and settings", "run,seconds,output_tok_s,at_once,mean_running,max_running,mean_blocks,max_blocks,"
        "token_pct,reserved_pct,internal_pct,external_pct,preemptions,preempted_requests,norm_latency_ms,"
        "norm_latency_preempted_ms,norm_latency_others_ms,ttft_ms,tpot_ms,prefix_hit_pct,cow_copies,num_blocks,"
        "block_size,requests,output_tokens,steps", false);
    if (!t) return errbuf_fail(err, errlen, "out of memory");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            const lab_real_meas *m = k ? &sim[i] : &gpu[i];
            double v[25] = { m->seconds, m->out_tok_s, m->at_once, m->mean_running, m->max_running, m->mean_blocks,
                             m->max_blocks, 100 * m->token, 100 * m->reserved, 100 * m->internal, 100 * m->external,
                             (double)m->preemptions, m->preempted_requests, 1e3 * m->norm_latency,
                             1e3 * m->norm_latency_preempted, 1e3 * m->norm_latency_others, 1e3 * m->ttft_mean,
                             1e3 * m->tpot_mean, m->hit_pct, (double)m->cow_copies, m->num_blocks, m->block_size,
                             m->requests, (double)m->output_tokens, (double)m->steps };
            if (lab_table_row(t, lab_fmt(L, "%s %s", keys[i], k ? "sim" : "gpu"), v) < 0)
                return errbuf_fail(err, errlen, "out of memory");
        }
    return 0;
}

const char *lab_real_where(lab *L, const lab_real_meas *gpu) {
    return lab_fmt(L, "%s; Qwen3-0.6B's shape, random weights", gpu->where);
}
