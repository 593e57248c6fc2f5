/* bias_trace: what a real run measured (see bias_trace.h): growable
 * arrays, and the trace file {model}_att_trace.json (rows as arrays under a
 * field list, so 10,000 requests stay small) with its steps also as
 * {model}_att_steps.csv for `pagesim calibrate`.  Touches only those files. */
#include "labs/bias_trace.h"
#include "labs/bias_output.h"
#include "labs/bias_aggregate.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bias_trace_init(bias_trace *t, const char *source) {
    memset(t, 0, sizeof *t);
    snprintf(t->source, sizeof t->source, "%s", source ? source : "");
    snprintf(t->kv_policy, sizeof t->kv_policy, "paged");
    t->prefix_caching = 1;
}

void bias_trace_free(bias_trace *t) {
    free(t->set_wall_s); free(t->req); free(t->step); free(t->kv);
    memset(t, 0, sizeof *t);
}

static int grow(void **v, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t c = *cap ? 2 * *cap : 256;
    void *nv = realloc(*v, c * elem);
    if (!nv) return -1;
    *v = nv; *cap = c;
    return 0;
}

int bias_trace_add_req(bias_trace *t, const bias_trace_req *r) {
    if (grow((void **)&t->req, &t->capreq, t->nreq, sizeof *r)) return -1;
    t->req[t->nreq++] = *r;
    return 0;
}

int bias_trace_add_step(bias_trace *t, const bias_trace_step *s) {
    if (grow((void **)&t->step, &t->capstep, t->nstep, sizeof *s)) return -1;
    t->step[t->nstep++] = *s;
    return 0;
}

int bias_trace_add_kv(bias_trace *t, const bias_trace_kv *k) {
    if (grow((void **)&t->kv, &t->capkv, t->nkv, sizeof *k)) return -1;
    t->kv[t->nkv++] = *k;
    return 0;
}

int bias_trace_add_wall(bias_trace *t, int set, double seconds) {
    if (set < 1) return -1;
    if (set > t->nsets) {
        double *w = realloc(t->set_wall_s, (size_t)set * sizeof *w);
        if (!w) return -1;
        for (int i = t->nsets; i < set; i++) w[i] = 0;
        t->set_wall_s = w; t->nsets = set;
    }
    t->set_wall_s[set - 1] += seconds;
    return 0;
}

/* ---- writing ------------------------------------------------------------------------ */

static const char *req_fields = "\"set\", \"prompt_tokens\", \"output_tokens\", \"shared_prefix\", "
                                "\"submit_s\", \"first_token_s\", \"finish_s\"";
static const char *step_fields = "\"set\", \"t_s\", \"seconds\", \"num_seqs\", \"prefill_tokens\", "
                                 "\"decode_tokens\", \"attn_ctx_tokens\", \"attn_pairs\"";
static const char *kv_fields = "\"set\", \"t_s\", \"blocks_used\", \"blocks_total\", \"slots_total\", "
                               "\"token_slots\", \"reserved_slots\", \"internal_frag\"";

int bias_trace_write(const bias_trace *t, const char *dir, const char *model, char *err, size_t errlen) {
    bias_buf b = {0};
    bias_buf_printf(&b, "{\n  \"source\": ");
    bias_json_str(&b, t->source);
    bias_buf_printf(&b, ",\n  \"kv_policy\": ");
    bias_json_str(&b, t->kv_policy);
    bias_buf_printf(&b, ",\n  \"model_config\": ");
    bias_json_str(&b, t->model_config);
    bias_buf_printf(&b, ",\n  \"gpu\": ");
    bias_json_str(&b, t->gpu);
    bias_buf_printf(&b, ",\n  \"dummy_weights\": %s,\n", t->dummy_weights ? "true" : "false");
    if (t->dummy_weights)
        bias_buf_printf(&b, "  \"note\": \"dummy weights: the replies and decisions carry no meaning; times and memory are real\",\n");
    bias_buf_printf(&b, "  \"num_blocks\": %d,\n  \"block_size\": %d,\n  \"max_num_seqs\": %d,\n"
                    "  \"max_num_batched_tokens\": %d,\n  \"max_model_len\": %d,\n  \"prefix_caching\": %s,\n"
                    "  \"max_workers\": %d,\n  \"temperature\": %.9g,\n  \"top_p\": %.9g,\n"
                    "  \"prefix_hit_tokens\": %ld,\n  \"set_wall_s\": [",
                    t->num_blocks, t->block_size, t->max_num_seqs, t->max_num_batched_tokens, t->max_model_len,
                    t->prefix_caching ? "true" : "false", t->max_workers, t->temperature, t->top_p, t->prefix_hit_tokens);
    for (int i = 0; i < t->nsets; i++) bias_buf_printf(&b, "%s%.6f", i ? ", " : "", t->set_wall_s[i]);
    bias_buf_printf(&b, "],\n  \"request_fields\": [%s],\n  \"requests\": [", req_fields);
    for (size_t i = 0; i < t->nreq; i++) {
        const bias_trace_req *r = &t->req[i];
        bias_buf_printf(&b, "%s\n    [%d, %d, %d, %d, %.6f, %.6f, %.6f]", i ? "," : "", r->set, r->prompt_tokens,
                        r->output_tokens, r->shared_prefix, r->submit_s, r->first_token_s, r->finish_s);
    }
    bias_buf_printf(&b, "\n  ],\n  \"step_fields\": [%s],\n  \"steps\": [", step_fields);
    for (size_t i = 0; i < t->nstep; i++) {
        const bias_trace_step *s = &t->step[i];
        bias_buf_printf(&b, "%s\n    [%d, %.6f, %.7f, %d, %ld, %ld, %ld, %ld]", i ? "," : "", s->set, s->t_s, s->seconds,
                        s->num_seqs, s->prefill_tokens, s->decode_tokens, s->attn_ctx_tokens, s->attn_pairs);
    }
    bias_buf_printf(&b, "\n  ],\n  \"kv_fields\": [%s],\n  \"kv\": [", kv_fields);
    for (size_t i = 0; i < t->nkv; i++) {
        const bias_trace_kv *k = &t->kv[i];
        bias_buf_printf(&b, "%s\n    [%d, %.6f, %d, %d, %ld, %ld, %ld, %ld]", i ? "," : "", k->set, k->t_s, k->blocks_used,
                        k->blocks_total, k->slots_total, k->token_slots, k->reserved_slots, k->internal_frag);
    }
    bias_buf_printf(&b, "\n  ]\n}\n");
    char path[4096];
    int rc = -1;
    if (b.oom) { snprintf(err, errlen, "out of memory"); goto out; }
    bias_path(path, sizeof path, dir, model, "_att_trace.json");
    if (bias_write_atomic(path, b.s, b.len, err, errlen)) goto out;
    if (t->nstep) {                          /* the input of `pagesim calibrate --measured` */
        bias_buf_free(&b);
        bias_buf_printf(&b, "prefill_tokens,decode_tokens,num_seqs,attn_ctx_tokens,attn_pairs,seconds,set,t_s\n");
        for (size_t i = 0; i < t->nstep; i++) {
            const bias_trace_step *s = &t->step[i];
            bias_buf_printf(&b, "%ld,%ld,%d,%ld,%ld,%.7f,%d,%.6f\n", s->prefill_tokens, s->decode_tokens, s->num_seqs,
                            s->attn_ctx_tokens, s->attn_pairs, s->seconds, s->set, s->t_s);
        }
        if (b.oom) { snprintf(err, errlen, "out of memory"); goto out; }
        bias_path(path, sizeof path, dir, model, "_att_steps.csv");
        if (bias_write_atomic(path, b.s, b.len, err, errlen)) goto out;
    }
    rc = 0;
out:
    bias_buf_free(&b);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------- */

static int get_int(const cJSON *j, const char *k, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (cJSON_IsNumber(v)) *out = (int)v->valuedouble;
    else if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
    return 0;
}

static void get_str(const cJSON *j, const char *k, char *out, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (cJSON_IsString(v)) snprintf(out, n, "%s", v->valuestring);
}

/* Row i of array `name` into d (want numbers); -1 with err on a bad row. */
static int rows(const cJSON *j, const char *name, int want, const char *path,
                int (*put)(bias_trace *, const double *), bias_trace *t, char *err, size_t errlen) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, name), *row;
    if (!a) return 0;
    if (!cJSON_IsArray(a)) { snprintf(err, errlen, "%s: \"%s\" is not an array", path, name); return -1; }
    int i = 0;
    cJSON_ArrayForEach(row, a) {
        double d[16];
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != want) {
            snprintf(err, errlen, "%s: %s[%d] is not an array of %d numbers", path, name, i, want); return -1;
        }
        for (int k = 0; k < want; k++) {
            const cJSON *v = cJSON_GetArrayItem(row, k);
            if (!cJSON_IsNumber(v)) { snprintf(err, errlen, "%s: %s[%d][%d] is not a number", path, name, i, k); return -1; }
            d[k] = v->valuedouble;
        }
        if (put(t, d)) { snprintf(err, errlen, "out of memory"); return -1; }
        i++;
    }
    return 0;
}

static int put_req(bias_trace *t, const double *d) {
    bias_trace_req r = { (int)d[0], (int)d[1], (int)d[2], (int)d[3], d[4], d[5], d[6] };
    return bias_trace_add_req(t, &r);
}
static int put_step(bias_trace *t, const double *d) {
    bias_trace_step s = { (int)d[0], d[1], d[2], (int)d[3], (long)d[4], (long)d[5], (long)d[6], (long)d[7] };
    return bias_trace_add_step(t, &s);
}
static int put_kv(bias_trace *t, const double *d) {
    bias_trace_kv k = { (int)d[0], d[1], (int)d[2], (int)d[3], (long)d[4], (long)d[5], (long)d[6], (long)d[7] };
    return bias_trace_add_kv(t, &k);
}

int bias_trace_load(bias_trace *t, const char *path, char *err, size_t errlen) {
    bias_trace_init(t, "");
    bias_buf b = {0};
    if (bias_buf_read_file(&b, path)) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    if (b.oom || !b.s) { bias_buf_free(&b); snprintf(err, errlen, "%s: empty or unreadable", path); return -1; }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(b.s, &end, 0);
    int rc = -1;
    if (!j || !cJSON_IsObject(j)) {
        long line = 1;
        for (const char *p = b.s; end && p < end; p++) line += *p == '\n';
        snprintf(err, errlen, "%s:%ld: not a JSON object (a trace written by labs/bias --real or --server)", path, line);
        goto out;
    }
    get_str(j, "source", t->source, sizeof t->source);
    get_str(j, "kv_policy", t->kv_policy, sizeof t->kv_policy);
    get_str(j, "model_config", t->model_config, sizeof t->model_config);
    get_str(j, "gpu", t->gpu, sizeof t->gpu);
    get_int(j, "dummy_weights", &t->dummy_weights);
    get_int(j, "num_blocks", &t->num_blocks);
    get_int(j, "block_size", &t->block_size);
    get_int(j, "max_num_seqs", &t->max_num_seqs);
    get_int(j, "max_num_batched_tokens", &t->max_num_batched_tokens);
    get_int(j, "max_model_len", &t->max_model_len);
    get_int(j, "prefix_caching", &t->prefix_caching);
    get_int(j, "max_workers", &t->max_workers);
    const cJSON *tt = cJSON_GetObjectItemCaseSensitive(j, "temperature"), *pp = cJSON_GetObjectItemCaseSensitive(j, "top_p");
    if (cJSON_IsNumber(tt) && tt->valuedouble >= 0) t->temperature = tt->valuedouble;
    if (cJSON_IsNumber(pp) && pp->valuedouble >= 0 && pp->valuedouble <= 1) t->top_p = pp->valuedouble;
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(j, "prefix_hit_tokens");
    if (cJSON_IsNumber(ph)) t->prefix_hit_tokens = (long)ph->valuedouble;
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "set_wall_s"), *x;
    int s = 1;
    cJSON_ArrayForEach(x, w) {
        if (!cJSON_IsNumber(x) || bias_trace_add_wall(t, s++, x->valuedouble)) {
            snprintf(err, errlen, "%s: set_wall_s holds a non-number", path); goto out;
        }
    }
    if (rows(j, "requests", 7, path, put_req, t, err, errlen) || rows(j, "steps", 8, path, put_step, t, err, errlen) ||
        rows(j, "kv", 8, path, put_kv, t, err, errlen)) goto out;
    if (t->nreq == 0) { snprintf(err, errlen, "%s: no requests in the trace", path); goto out; }
    rc = 0;
out:
    cJSON_Delete(j);
    bias_buf_free(&b);
    if (rc) bias_trace_free(t);
    return rc;
}
