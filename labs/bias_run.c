/* bias_run: sets, trials, batches, the durable progress journal and resume
 * (see bias_run.h).  Touches only {model}_att_* files in the output dir. */
#include "labs/bias_run.h"
#include "labs/bias_aggregate.h"
#include "labs/bias_output.h"
#include "labs/bias_prompt.h"
#include "labs/bias_reply.h"
#include "labs/bias_tokens.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void bias_run_stats_free(bias_run_stats *st) {
    free(st->prompt_tokens); free(st->output_tokens); free(st->latency_s); free(st->ttft_s);
    memset(st, 0, sizeof *st);
}

static char *read_all(const char *path, size_t *len) {
    bias_buf b = {0};
    if (bias_buf_read_file(&b, path)) return NULL;
    if (b.oom) { bias_buf_free(&b); return NULL; }
    if (!b.s) { b.s = calloc(1, 1); }
    *len = b.len;
    return b.s;
}

/* The manifest: settings that decide what a trial draws. */
static int check_manifest(const bias_run_config *c, size_t ntickers, char *err, size_t errlen) {
    char path[4096];
    bias_path(path, sizeof path, c->output_dir, c->model, "_att_run.json");
    bias_buf m = {0};
    bias_buf_printf(&m, "{\n  \"model_id\": ");
    bias_json_str(&m, c->model_id);
    bias_buf_printf(&m, ",\n  \"num_trials\": %d,\n  \"seed\": %llu,\n  \"temperature\": %g,\n"
                    "  \"top_p\": %g,\n  \"max_tokens\": %d,\n  \"tickers\": %zu,\n  \"inputs\": ",
                    c->num_trials, (unsigned long long)c->seed, c->temperature, c->top_p,
                    c->max_tokens, ntickers);
    bias_json_str(&m, c->inputs ? c->inputs : "");
    bias_buf_printf(&m, "\n}\n");
    if (m.oom) { bias_buf_free(&m); snprintf(err, errlen, "out of memory"); return -1; }
    size_t len = 0;
    char *old = read_all(path, &len);
    int rc = 0;
    if (old) {
        if (strcmp(old, m.s) != 0) {
            snprintf(err, errlen, "%s holds a run with other settings (seed, trials, inputs or model); "
                     "use another --output-dir or remove that run's %s_att_* files", path, c->model);
            rc = -1;
        }
        free(old);
    } else {
        rc = bias_write_atomic(path, m.s, m.len, err, errlen);
    }
    bias_buf_free(&m);
    return rc;
}

typedef struct set_state {
    size_t  n;          /* tickers x trials */
    char  **prompt;     /* (n) */
    bias_prompt_info *info; /* (n) */
    char  **output;     /* (n) reply text, NULL until answered */
    int    *otok;       /* (n) */
    double *lat, *ttft; /* (n) */
} set_state;

static void set_free(set_state *s) {
    for (size_t i = 0; i < s->n; i++) { if (s->prompt) free(s->prompt[i]); if (s->output) free(s->output[i]); }
    free(s->prompt); free(s->info); free(s->output); free(s->otok); free(s->lat); free(s->ttft);
    memset(s, 0, sizeof *s);
}

/* Reads the journal's complete lines; truncates a torn tail.  Returns the
 * number of trials recovered, or -1. */
static long read_journal(const char *path, set_state *s, char *err, size_t errlen) {
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text) return 0;                          /* no journal yet */
    size_t good = 0; long got = 0;
    for (size_t off = 0; off < len;) {
        char *nl = memchr(text + off, '\n', len - off);
        if (!nl) break;                           /* torn last line */
        *nl = 0;
        cJSON *j = cJSON_Parse(text + off);
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(j, "i"), *o = cJSON_GetObjectItemCaseSensitive(j, "o"),
                    *t = cJSON_GetObjectItemCaseSensitive(j, "t"), *l = cJSON_GetObjectItemCaseSensitive(j, "l"),
                    *f = cJSON_GetObjectItemCaseSensitive(j, "f");
        if (!j || !cJSON_IsNumber(i) || !cJSON_IsString(o) || !cJSON_IsNumber(t) ||
            i->valuedouble < 0 || i->valuedouble >= (double)s->n) { cJSON_Delete(j); break; }
        size_t k = (size_t)i->valuedouble;
        if (!s->output[k]) {
            if (!(s->output[k] = strdup(o->valuestring))) { cJSON_Delete(j); free(text); snprintf(err, errlen, "out of memory"); return -1; }
            s->otok[k] = t->valueint;
            s->lat[k] = cJSON_IsNumber(l) ? l->valuedouble : 0;
            s->ttft[k] = cJSON_IsNumber(f) ? f->valuedouble : 0;
            got++;
        }
        cJSON_Delete(j);
        off = (size_t)(nl - text) + 1;
        good = off;
    }
    free(text);
    if (good < len && truncate(path, (off_t)good) != 0) {
        snprintf(err, errlen, "%s: cannot drop its torn last line: %s", path, strerror(errno));
        return -1;
    }
    return got;
}

/* Appends the journal lines of trials idx[0..n-1], then fflush + fsync. */
static int append_batch(FILE *j, const set_state *s, const size_t *idx, size_t n, const char *path,
                        char *err, size_t errlen) {
    bias_buf b = {0};
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[k];
        bias_buf_printf(&b, "{\"i\":%zu,\"t\":%d,\"l\":%.6f,\"f\":%.6f,\"o\":", i, s->otok[i], s->lat[i], s->ttft[i]);
        bias_json_str(&b, s->output[i]);
        bias_buf_add(&b, "}\n", 2);
    }
    int rc = 0;
    if (b.oom) { snprintf(err, errlen, "out of memory"); rc = -1; }
    else if (fwrite(b.s, 1, b.len, j) != b.len || fflush(j) != 0 || fsync(fileno(j)) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno)); rc = -1;
    }
    bias_buf_free(&b);
    return rc;
}

static void fmt_cap(char *out, size_t n, double cap) {
    if (cap == floor(cap) && fabs(cap) < 9e15) snprintf(out, n, "%.0f", cap);
    else bias_fmt_double(out, n, cap);
}

/* P(buy) a reply carries ("p_buy": x, written by the logits decision), or NAN. */
static double reply_p_buy(const char *text) {
    const char *p = text ? strstr(text, "\"p_buy\":") : NULL;
    if (!p) return NAN;
    char *end;
    double x = strtod(p + 8, &end);
    return end == p + 8 ? NAN : x;
}

static int write_set_csv(const bias_run_config *c, const bias_universe *u, int set, const set_state *s,
                         const char *path, size_t *answered, char *err, size_t errlen) {
    bias_buf b = {0};
    int has_p = 0;
    for (size_t i = 0; i < s->n && !has_p; i++) has_p = !isnan(reply_p_buy(s->output[i]));
    const char *head[BIAS_NCOLS + 2];
    int nc = BIAS_NCOLS;
    for (int k = 0; k < BIAS_NCOLS; k++) head[k] = bias_columns[k];
    if (has_p) head[nc++] = "p_buy";
    if (c->row_note) head[nc++] = "note";
    bias_csv_row(&b, head, nc);
    for (size_t i = 0; i < s->n; i++) {
        const bias_stock *st = &u->stocks[i / (size_t)c->num_trials];
        char cap[64], trial[16], setno[16], nb[16], ns[16], ans[256], pb[32] = "";
        fmt_cap(cap, sizeof cap, st->marketcap);
        snprintf(trial, sizeof trial, "%d", (int)(i % (size_t)c->num_trials));
        snprintf(setno, sizeof setno, "%d", set);
        snprintf(nb, sizeof nb, "%d", s->info[i].n_buy);
        snprintf(ns, sizeof ns, "%d", s->info[i].n_sell);
        bias_reply_parse(s->output[i], ans, sizeof ans);
        if (bias_vote(ans)) (*answered)++;
        double p = reply_p_buy(s->output[i]);
        if (!isnan(p)) snprintf(pb, sizeof pb, "%.6f", p);
        const char *f[BIAS_NCOLS + 2] = { st->ticker, st->name, cap, st->sector, trial, setno, nb, ns,
                                          s->prompt[i], s->output[i], ans };
        int k = BIAS_NCOLS;
        if (has_p) f[k++] = pb;
        if (c->row_note) f[k++] = c->row_note;
        bias_csv_row(&b, f, nc);
    }
    int rc = b.oom ? -1 : bias_write_atomic(path, b.s, b.len, err, errlen);
    if (b.oom) snprintf(err, errlen, "out of memory");
    bias_buf_free(&b);
    return rc;
}

/* A set already on disk: take its replies (for the token figures). */
static int reuse_set(const char *path, set_state *s, size_t *answered, char *err, size_t errlen) {
    bias_csv t;
    if (bias_csv_load(&t, path, err, errlen)) return -1;
    int co = bias_csv_col(&t, "llm_output"), ca = bias_csv_col(&t, "llm_answer");
    int rc = -1;
    if (co < 0 || ca < 0 || t.nrows != s->n) {
        snprintf(err, errlen, "%s: %zu rows where this run has %zu prompts (or columns missing); "
                 "remove it to run the set again", path, t.nrows, s->n);
        goto out;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (!(s->output[i] = strdup(bias_csv_at(&t, i, co)))) { snprintf(err, errlen, "out of memory"); goto out; }
        s->otok[i] = bias_count_tokens(s->output[i]);
        if (bias_vote(bias_csv_at(&t, i, ca))) (*answered)++;
    }
    rc = 0;
out:
    bias_csv_free(&t);
    return rc;
}

/* Length of the valid UTF-8 character at s (n bytes left), or, negated, the
 * length of the maximal invalid subpart there (Python's "replace" unit). */
static int utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len; unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return -1;
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n || s[k] < (k == 1 ? lo : 0x80) || s[k] > (k == 1 ? hi : 0xBF)) return -k;
    }
    return len;
}

/* text with every invalid UTF-8 sequence replaced by U+FFFD (a model's
 * reply may end inside a character; the study's CSV readers want UTF-8).
 * Returns text itself when it is valid, else a new string (text freed);
 * NULL when out of memory. */
static char *utf8_clean(char *text) {
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), bad = 0;
    for (size_t i = 0; i < n;) { int k = utf8_char(s + i, n - i); if (k < 0) { bad++; k = -k; } i += (size_t)k; }
    if (!bad) return text;
    char *out = malloc(n + 2 * bad + 1), *o = out;
    if (!out) { free(text); return NULL; }
    for (size_t i = 0; i < n;) {
        int k = utf8_char(s + i, n - i);
        if (k > 0) { memcpy(o, s + i, (size_t)k); o += k; i += (size_t)k; }
        else { memcpy(o, "\xEF\xBF\xBD", 3); o += 3; i += (size_t)-k; }
    }
    *o = 0;
    free(text);
    return out;
}

/* Replies arriving from the source: kept, and journaled every max_workers. */
typedef struct stream_ctx {
    const bias_run_config *c;
    set_state    *s;
    FILE         *j;
    const char   *jpath;
    const size_t *todo;      /* (ntodo) trial index of each request */
    size_t       *pending;   /* (flush_every) trials not yet in the journal */
    size_t        npending, flush_every, done, got;
    int           set, failed;
    char         *err; size_t errlen;
} stream_ctx;

static void stream_flush(stream_ctx *x) {
    if (x->npending == 0 || x->failed) return;
    if (append_batch(x->j, x->s, x->pending, x->npending, x->jpath, x->err, x->errlen)) { x->failed = 1; return; }
    x->done += x->npending;
    x->npending = 0;
    if (x->c->progress) x->c->progress(x->c->progress_ctx, x->set, x->done, x->s->n, x->got);
}

static void on_reply(void *ctx, size_t k, bias_reply *r) {
    stream_ctx *x = ctx;
    size_t i = x->todo[k];
    if (x->failed || x->s->output[i]) return;
    x->s->output[i] = r->text ? utf8_clean(r->text) : strdup("API_ERROR: empty reply");
    r->text = NULL;
    if (!x->s->output[i]) { snprintf(x->err, x->errlen, "out of memory"); x->failed = 1; return; }
    x->s->otok[i] = r->output_tokens; x->s->lat[i] = r->latency_s; x->s->ttft[i] = r->ttft_s;
    x->pending[x->npending++] = i;
    if (x->npending >= x->flush_every) stream_flush(x);
}

static int run_one_set(const bias_run_config *c, const bias_universe *u, bias_source *src, int set,
                       bias_run_stats *st, size_t base, char *err, size_t errlen) {
    set_state s = {0};
    int rc = -1;
    FILE *j = NULL;
    bias_request *req = NULL;
    bias_reply *rep = NULL;
    size_t *todo = NULL, *pending = NULL;
    s.n = u->n * (size_t)c->num_trials;
    s.prompt = calloc(s.n, sizeof *s.prompt); s.info = calloc(s.n, sizeof *s.info);
    s.output = calloc(s.n, sizeof *s.output); s.otok = calloc(s.n, sizeof *s.otok);
    s.lat = calloc(s.n, sizeof *s.lat); s.ttft = calloc(s.n, sizeof *s.ttft);
    if (!s.prompt || !s.info || !s.output || !s.otok || !s.lat || !s.ttft) { snprintf(err, errlen, "out of memory"); goto out; }
    for (size_t i = 0; i < s.n; i++) {                       /* every prompt, deterministic */
        size_t k = i / (size_t)c->num_trials;
        int trial = (int)(i % (size_t)c->num_trials);
        bias_buf b = {0};
        if (bias_prompt_build(&u->stocks[k], k, set, trial, c->num_trials, c->seed, &b, &s.info[i]) || !b.s) {
            bias_buf_free(&b); snprintf(err, errlen, "out of memory"); goto out;
        }
        s.prompt[i] = b.s;
        st->prompt_tokens[base + i] = bias_count_prompt_tokens(b.s);
    }
    char setpath[4096], jpath[4096], suffix[64];
    snprintf(suffix, sizeof suffix, "_att_set_%d.csv", set);
    bias_path(setpath, sizeof setpath, c->output_dir, c->model, suffix);
    snprintf(suffix, sizeof suffix, "_att_set_%d.progress.jsonl", set);
    bias_path(jpath, sizeof jpath, c->output_dir, c->model, suffix);

    if (access(setpath, R_OK) == 0) {                        /* finished before */
        if (reuse_set(setpath, &s, &st->answered, err, errlen)) goto out;
        unlink(jpath);                                       /* killed between rename and unlink */
        st->resumed += s.n; st->sets_reused++;
        if (c->progress) c->progress(c->progress_ctx, set, s.n, s.n, s.n);
    } else {
        long got = read_journal(jpath, &s, err, errlen);
        if (got < 0) goto out;
        st->resumed += (size_t)got;
        if (!(j = fopen(jpath, "ab"))) { snprintf(err, errlen, "%s: %s", jpath, strerror(errno)); goto out; }
        size_t ntodo = 0;
        todo = malloc(s.n * sizeof *todo);
        req = calloc(s.n, sizeof *req); rep = calloc(s.n, sizeof *rep);
        pending = malloc((size_t)c->max_workers * sizeof *pending);
        if (!todo || !req || !rep || !pending) { snprintf(err, errlen, "out of memory"); goto out; }
        for (size_t i = 0; i < s.n; i++) {
            if (s.output[i]) continue;
            req[ntodo] = (bias_request){ .prompt = s.prompt[i], .stock = &u->stocks[i / (size_t)c->num_trials],
                .stock_index = i / (size_t)c->num_trials, .set = set,
                .trial = (int)(i % (size_t)c->num_trials), .num_trials = c->num_trials,
                .buy_first = s.info[i].buy_first, .prompt_tokens = st->prompt_tokens[base + i] };
            todo[ntodo++] = i;
        }
        stream_ctx x = { .c = c, .s = &s, .j = j, .jpath = jpath, .todo = todo, .pending = pending,
                         .flush_every = (size_t)c->max_workers, .done = (size_t)got, .got = (size_t)got,
                         .set = set, .err = err, .errlen = errlen };
        if (c->progress) c->progress(c->progress_ctx, set, x.done, s.n, x.got);
        /* the whole rest of the set in one call: the source keeps its own
         * requests in flight; replies are journaled every max_workers */
        int gen = ntodo ? src->generate(src->ctx, req, ntodo, rep, on_reply, &x, err, errlen) : 0;
        if (gen == 0)
            for (size_t k = 0; k < ntodo; k++)          /* a source that filled out[] without calling back */
                if (rep[k].text) on_reply(&x, k, &rep[k]);
        stream_flush(&x);                               /* what arrived is kept, even after a failure */
        for (size_t k = 0; k < ntodo; k++) free(rep[k].text);
        if (gen != 0 || x.failed) goto out;
        fclose(j); j = NULL;
        if (write_set_csv(c, u, set, &s, setpath, &st->answered, err, errlen)) goto out;
        unlink(jpath);                                       /* the set file is complete now */
    }
    for (size_t i = 0; i < s.n; i++) {
        st->output_tokens[base + i] = s.otok[i];
        st->latency_s[base + i] = s.lat[i]; st->ttft_s[base + i] = s.ttft[i];
    }
    rc = 0;
out:
    if (j) fclose(j);
    free(todo); free(req); free(rep); free(pending);
    set_free(&s);
    return rc;
}

int bias_run_sets(const bias_run_config *c, const bias_universe *u, bias_source *src,
                  bias_run_stats *st, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    if (c->num_sets < 1 || c->num_trials < 1 || u->n == 0) {
        snprintf(err, errlen, "nothing to run (%d sets, %d trials, %zu tickers)", c->num_sets, c->num_trials, u->n);
        return -1;
    }
    char dir[4096];                                   /* mkdir -p */
    snprintf(dir, sizeof dir, "%s", c->output_dir);
    for (char *p = dir + 1; ; p++) {
        if (*p && *p != '/') continue;
        char keep = *p;
        *p = 0;
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: %s", dir, strerror(errno)); return -1;
        }
        if (!(*p = keep)) break;
    }
    struct stat sb;
    if (stat(c->output_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s: exists and is not a directory", c->output_dir); return -1;
    }
    if (check_manifest(c, u->n, err, errlen)) return -1;
    bias_remove_stale_tmp(c->output_dir, c->model);  /* a killed run's half-written files */
    size_t per = u->n * (size_t)c->num_trials;
    st->n = per * (size_t)c->num_sets;
    st->prompt_tokens = calloc(st->n, sizeof *st->prompt_tokens);
    st->output_tokens = calloc(st->n, sizeof *st->output_tokens);
    st->latency_s = calloc(st->n, sizeof *st->latency_s);
    st->ttft_s = calloc(st->n, sizeof *st->ttft_s);
    if (!st->prompt_tokens || !st->output_tokens || !st->latency_s || !st->ttft_s) {
        bias_run_stats_free(st); snprintf(err, errlen, "out of memory"); return -1;
    }
    for (int set = 1; set <= c->num_sets; set++)
        if (run_one_set(c, u, src, set, st, per * (size_t)(set - 1), err, errlen)) return -1;
    return 0;
}
