/* bias_source_real: the bias lab's replies from the CUDA engine in this
 * process (see bias_sources.h).  Every trial goes through eng_ (the sim/
 * scheduler, KV cache, step loop and driver running the GPU): the source keeps
 * max_workers requests in flight, as the study's client does, hands each
 * reply to the run as it finishes and sends the next (eng_run's hooks); it
 * records every request, every step and the KV pool (eng_usage) into the
 * trace.  Free generation samples the reply; --decision logits sends the
 * prompt with the forced reply prefix {"decision": " in the engine's score
 * mode, which returns the log-probabilities of the "buy" and "sell" tokens
 * there (so it gets chunked prefill, prefix caching and preemption as free
 * generation does).  Uses the GPU (through engine/), the tokenizer and the
 * model files. */
#include "labs/bias_sources.h"
#include "text/chat_template.h"
#include "engine/engine.h"
#include "hub/hub.h"
#include "engine/model.h"
#include "text/tokenizer.h"
#include "engine/weights.h"
#include "engine/tp_engine.h"
#include "sim/cost_model.h"
#include "sim/model_config.h"
#include "base/errbuf.h"
#include "base/clock.h"
#include "base/rng.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#define FORCED_PREFIX "{\"decision\": \""
#define DEFAULT_TOKENIZER "data/tokenizers/qwen3/tokenizer.json"


/* The GPU table's name for device 0 ("" when unknown). */
static void gpu_name(char *out, size_t n) {
    out[0] = 0;
#ifdef PAGESIM_HAVE_CUDA
    struct cudaDeviceProp p;
    cm_gpu g;
    char err[512];
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess &&
        cm_gpu_for_device(&g, p.name, (double)p.totalGlobalMem, err, sizeof err) == 0)
        snprintf(out, n, "%s", g.name);
#endif
}

/* A checkpoint directory, or ORG/NAME from the hub cache (downloaded when online). */
static int resolve_model(const char *m, char *dir, size_t cap, char *err, size_t errlen) {
    struct stat sb;
    if (stat(m, &sb) == 0 && S_ISDIR(sb.st_mode)) { snprintf(dir, cap, "%s", m); return 0; }
    char folder[512];
    if (m[0] == '.' || m[0] == '/' || hub_repo_folder(m, folder, sizeof folder) != 0)
        return errbuf_fail(err, errlen, "--model %s: no such directory (and not an ORG/NAME Hugging Face id)", m);
    hub_opts o;
    char cache[1024], e1[1024];
    hub_opts_from_env(&o, cache, sizeof cache);
    static const char *const inc[] = { "*.json", "*.safetensors", "tokenizer*" };
    o.include = inc; o.n_include = 3;
    o.progress = isatty(2);
    int online = !o.offline;
    o.offline = 1;                                   /* the cache first */
    if (hub_download(&o, m, dir, cap, e1, sizeof e1) == 0) return 0;
    if (!online) return errbuf_fail(err, errlen, "--model %s: not in the Hugging Face cache %s and HF_HUB_OFFLINE is set: %s", m, cache, e1);
    o.offline = 0;
    if (hub_download(&o, m, dir, cap, err, errlen) == 0) return 0;
    return -1;
}

/* ---- the source -------------------------------------------------------------------------- */

typedef struct real_src {
    bias_real_opts o;
    bias_trace    *trace;
    tok_tokenizer *tok;
    chat_tpl      *chat;        /* the model's chat_template, or a named family */
    eng           *e;
    int            next_id;
    /* logits: the forced prefix and the two answers' first tokens */
    int32_t       *forced; int nforced;
    int32_t        cand_buy, cand_sell;
    int            num_blocks, block_size, max_model_len, max_num_seqs, batched;
} real_src;

/* Encodes the prompt as the model sees it (chat template, no thinking). */
static int encode_prompt(real_src *s, const char *prompt, tok_ids *ids, char *err, size_t errlen) {
    chat_msg msg = { "user", prompt };
    size_t need;
    char *text = chat_tpl_apply(s->chat, &msg, 1, 1, 0, &need, err, errlen);
    if (!text) return -1;
    int rc = tok_encode(s->tok, text, need, 0, ids);
    free(text);
    return rc ? errbuf_fail(err, errlen, "out of memory") : 0;
}

static char *decode(real_src *s, const int32_t *ids, int n) {
    size_t need = tok_decode(s->tok, ids, (size_t)n, TOK_SKIP_SPECIAL, NULL, 0);
    char *t = malloc(need + 1);
    if (t) tok_decode(s->tok, ids, (size_t)n, TOK_SKIP_SPECIAL, t, need + 1);
    return t;
}

static int lcp(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return (int)i;
}

/* ---- the replies through eng_ ------------------------------------------------------------- */

/* P(buy) with the two candidates' log-probabilities; the decision at temperature T. */
static void decide(double lb, double ls, double T, uint64_t seed, double *p_buy, int *buy) {
    *p_buy = 1.0 / (1.0 + exp(ls - lb));
    if (!(T > 0)) { *buy = lb >= ls; return; }
    double pt = 1.0 / (1.0 + exp((ls - lb) / T));
    uint64_t z = rng_mix64(seed);
    *buy = (double)(z >> 11) * (1.0 / 9007199254740992.0) < pt;
}

/* One batch of trials through the engine, as the study's client sends them:
 * max_workers in flight, the next sent as one finishes (eng_run's hooks). */
typedef struct batch_run {
    real_src *s;
    const bias_request *req;
    bias_reply *out;
    size_t n, next, done;
    bias_reply_cb cb;
    void *cb_ctx;
    tok_ids *ids;               /* (n) prompt ids (+ the forced prefix with --decision logits) */
    int *mt;                    /* (n) max_tokens */
    bias_trace_req *tr;         /* (n) engine-clock times */
    char *live;                 /* (n) */
    int set, base, workers, inflight;
    long steps;
    double t0, arrival0;
} batch_run;

static void sample_kv(real_src *s, int set, double t) {
    kv_usage u;
    eng_usage(s->e, &u);
    bias_trace_kv k = { set, t, u.blocks_used, u.blocks_total, u.slots_total, u.token_slots, u.reserved_slots,
                        u.internal_frag };
    bias_trace_add_kv(s->trace, &k);
    s->trace->prefix_hit_tokens = u.prefix_hit_tokens;
}

static int reply_error(batch_run *b, size_t i, const char *why, char *err, size_t errlen) {
    size_t k = strlen(why) + 16;
    if (!(b->out[i].text = malloc(k))) return errbuf_fail(err, errlen, "out of memory");
    snprintf(b->out[i].text, k, "API_ERROR: %s", why);
    b->done++;
    if (b->cb) b->cb(b->cb_ctx, i, &b->out[i]);
    return 0;
}

/* Sends trials while a worker is free; a trial the engine refuses gets an API_ERROR reply. */
static int send_more(batch_run *b, char *err, size_t errlen) {
    real_src *s = b->s;
    while (b->inflight < b->workers && b->next < b->n) {
        size_t i = b->next++;
        const bias_request *rq = &b->req[i];
        eng_params p = { .max_tokens = b->mt[i], .temperature = (float)s->o.s.temperature, .top_p = (float)s->o.s.top_p,
                         .seed = bias_trial_seed(s->o.s.seed, rq->set, rq->stock_index, rq->trial) };
        int32_t cand[2] = { s->cand_buy, s->cand_sell };
        if (s->o.decision_logits) { p.score = true; p.score_ids = cand; p.num_score = 2; }
        char why[512];
        if (b->mt[i] < 1) {
            if (s->o.decision_logits) snprintf(why, sizeof why, "the prompt is longer than max_model_len");
            else snprintf(why, sizeof why, "the prompt has %zu tokens, max_model_len is %d", b->ids[i].n, s->max_model_len);
            if (reply_error(b, i, why, err, errlen)) return -1;
            continue;
        }
        if (eng_add_request(s->e, b->base + (int)i, b->ids[i].ids, (int)b->ids[i].n, &p, why, sizeof why)) {
            if (reply_error(b, i, why, err, errlen)) return -1;
            continue;
        }
        b->live[i] = 1;
        b->inflight++;
    }
    return 0;
}

static int on_step(void *ctx, const eng_step_info *si, char *err, size_t errlen) {
    (void)err; (void)errlen;
    batch_run *b = ctx;
    real_src *s = b->s;
    if (!s->trace) return 0;
    double clock = clock_now_s() - b->t0;
    if (si->num_seqs > 0) {
        bias_trace_step st = { b->set, clock, si->seconds, si->num_seqs, si->prefill_tokens, si->decode_tokens,
                               si->attn_ctx_tokens, si->attn_pairs };
        bias_trace_add_step(s->trace, &st);
    }
    /* eng_usage walks the pool: every step for a small pool, every few for a large one */
    int every = s->o.usage_every > 0 ? s->o.usage_every : 1 + s->num_blocks / 32768;
    if (b->steps++ % every == 0) sample_kv(s, b->set, clock);
    return 0;
}

/* The reply of a finished trial: the generated text, or the decision from the
 * two scores; an API_ERROR when the engine ended it (its KV never fits the pool). */
static char *reply_text(batch_run *b, size_t i, const eng_result *q) {
    real_src *s = b->s;
    if (q->aborted) return strdup("API_ERROR: the engine aborted the request (its KV cannot fit in the pool)");
    if (!s->o.decision_logits) return decode(s, q->tokens, q->num_tokens);
    double p_buy;
    int buy;
    const bias_request *rq = &b->req[i];
    decide(q->scores[0], q->scores[1], s->o.s.temperature,
           bias_trial_seed(s->o.s.seed, rq->set, rq->stock_index, rq->trial) ^ 0xDEC1DE, &p_buy, &buy);
    char text[256];
    snprintf(text, sizeof text, "{\"decision\": \"%s\", \"p_buy\": %.6f, \"reason\": \"decided by the log-probabilities "
             "of buy and sell after the forced prefix\"}", buy ? "buy" : "sell", p_buy);
    return strdup(text);
}

static int on_result(void *ctx, const eng_result *q, char *err, size_t errlen) {
    batch_run *b = ctx;
    long i = (long)q->id - b->base;
    if (i < 0 || (size_t)i >= b->n || !b->live[i]) return 0;
    b->live[i] = 0;
    b->inflight--;
    b->done++;
    if (b->arrival0 < 0 || q->arrival < b->arrival0) b->arrival0 = q->arrival;
    bias_reply *o = &b->out[i];
    if (!(o->text = reply_text(b, (size_t)i, q))) return errbuf_fail(err, errlen, "out of memory");
    o->output_tokens = q->num_tokens;
    o->latency_s = q->finish - q->arrival;
    o->ttft_s = q->first_token - q->arrival;
    const tok_ids *ids = b->ids;
    b->tr[i] = (bias_trace_req){ b->set, (int)ids[i].n, q->num_tokens, lcp(ids[i].ids, ids[i].n, ids[0].ids, ids[0].n),
                                 q->arrival, q->first_token, q->finish };
    if (b->cb) b->cb(b->cb_ctx, (size_t)i, o);
    return send_more(b, err, errlen);
}

/* The trials' prompt ids: the chat-templated prompt, and with --decision
 * logits the forced reply prefix after it. */
static int encode_trials(batch_run *b, char *err, size_t errlen) {
    real_src *s = b->s;
    for (size_t i = 0; i < b->n; i++) {
        tok_ids *t = &b->ids[i];
        if (encode_prompt(s, b->req[i].prompt, t, err, errlen)) return -1;
        for (int k = 0; s->o.decision_logits && k < s->nforced; k++) {
            if (t->n == t->cap) {
                size_t c = t->cap ? 2 * t->cap : 64;
                int32_t *v = realloc(t->ids, c * sizeof *v);
                if (!v) return errbuf_fail(err, errlen, "out of memory");
                t->ids = v; t->cap = c;
            }
            t->ids[t->n++] = s->forced[k];
        }
        int room = s->max_model_len - (int)t->n;
        if (b->mt[i] > room) b->mt[i] = room;
    }
    return 0;
}

static int gen_replies(real_src *s, const bias_request *req, size_t n, bias_reply *out, bias_reply_cb cb, void *cb_ctx,
                       char *err, size_t errlen) {
    batch_run b = { .s = s, .req = req, .out = out, .n = n, .cb = cb, .cb_ctx = cb_ctx, .set = req[0].set,
                    .base = s->next_id, .workers = s->o.max_workers > 0 ? s->o.max_workers : 200, .arrival0 = -1 };
    int rc = -1;
    b.mt = calloc(n, sizeof *b.mt);
    b.ids = calloc(n, sizeof *b.ids);
    b.tr = calloc(n, sizeof *b.tr);
    b.live = calloc(n, 1);
    if (!b.mt || !b.ids || !b.tr || !b.live) { errbuf_fail(err, errlen, "out of memory"); goto out; }
    if (s->o.decision_logits) for (size_t i = 0; i < n; i++) b.mt[i] = 1;   /* one scored position */
    else if (bias_sampling_lengths(&s->o.s, req, n, b.mt, err, errlen)) goto out;
    if (encode_trials(&b, err, errlen)) goto out;
    s->next_id += (int)n;
    b.t0 = clock_now_s();
    eng_hooks hooks = { .on_step = on_step, .on_result = on_result, .ctx = &b };
    if (send_more(&b, err, errlen) || eng_run(s->e, &hooks, err, errlen)) goto out;
    if (b.done < n) { errbuf_fail(err, errlen, "the engine stopped with %d requests in flight", b.inflight); goto out; }
    if (s->trace) {
        sample_kv(s, b.set, clock_now_s() - b.t0);
        bias_trace_add_wall(s->trace, b.set, clock_now_s() - b.t0);
        for (size_t i = 0; i < n; i++) {
            bias_trace_req *t = &b.tr[i];
            if (t->set == 0) continue;                       /* refused before reaching the engine */
            t->submit_s -= b.arrival0; t->first_token_s -= b.arrival0; t->finish_s -= b.arrival0;
            bias_trace_add_req(s->trace, t);
        }
    }
    rc = 0;
out:
    for (size_t i = 0; b.ids && i < n; i++) tok_ids_free(&b.ids[i]);
    free(b.mt); free(b.ids); free(b.tr); free(b.live);
    return rc;
}

static int real_generate(void *ctx, const bias_request *req, size_t n, bias_reply *out,
                         bias_reply_cb cb, void *cb_ctx, char *err, size_t errlen) {
    if (n == 0) return 0;
    return gen_replies(ctx, req, n, out, cb, cb_ctx, err, errlen);
}

static void real_free(void *ctx) {
    real_src *s = ctx;
    if (!s) return;
    if (s->e) eng_free(s->e);
    tok_free(s->tok);
    chat_tpl_free(s->chat);
    free(s->forced);
    free(s);
}

/* The forced prefix's ids and each answer's first token after it. */
static int logits_setup(real_src *s, char *err, size_t errlen) {
    tok_ids a = {0}, b = {0}, c = {0};
    int rc = -1;
    if (tok_encode(s->tok, FORCED_PREFIX, strlen(FORCED_PREFIX), 0, &a) ||
        tok_encode(s->tok, FORCED_PREFIX "buy", strlen(FORCED_PREFIX "buy"), 0, &b) ||
        tok_encode(s->tok, FORCED_PREFIX "sell", strlen(FORCED_PREFIX "sell"), 0, &c)) { errbuf_fail(err, errlen, "out of memory"); goto out; }
    int lb = lcp(a.ids, a.n, b.ids, b.n), ls = lcp(a.ids, a.n, c.ids, c.n), l = lb < ls ? lb : ls;
    if ((size_t)l >= b.n || (size_t)l >= c.n) { errbuf_fail(err, errlen, "the tokenizer gives no token for buy/sell after the prefix"); goto out; }
    s->nforced = l;                                  /* where the three split (all of the prefix, usually) */
    s->forced = malloc(sizeof(int32_t) * (size_t)(l ? l : 1));
    if (!s->forced) { errbuf_fail(err, errlen, "out of memory"); goto out; }
    memcpy(s->forced, a.ids, sizeof(int32_t) * (size_t)l);
    s->cand_buy = b.ids[l]; s->cand_sell = c.ids[l];
    if (s->cand_buy == s->cand_sell) { errbuf_fail(err, errlen, "buy and sell start with the same token after the prefix"); goto out; }
    rc = 0;
out:
    tok_ids_free(&a); tok_ids_free(&b); tok_ids_free(&c);
    return rc;
}

int bias_real_source(bias_source *src, const bias_real_opts *o, bias_trace *trace, char *info, size_t infolen,
                     char *err, size_t errlen) {
    memset(src, 0, sizeof *src);
    if (info && infolen) info[0] = 0;
    char why[512];
    if (!eng_gpu_available(why, sizeof why))
        return errbuf_fail(err, errlen, "--real needs the CUDA engine and a GPU: %s.  The simulation runs anywhere: "
                    "drop --real (and --model/--dummy-weights) to simulate the run", why);
    if (!o->model == !o->dummy_config) return errbuf_fail(err, errlen, "--real needs --model PATH|ORG/NAME or --dummy-weights CONFIG");
    real_src *s = calloc(1, sizeof *s);
    if (!s) return errbuf_fail(err, errlen, "out of memory");
    s->o = *o;
    s->trace = trace;
    char dir[4096] = "", cfgpath[4200], tokpath[4200];
    mc_config c;
    w_weights w;
    int have_w = 0;
    if (o->model && resolve_model(o->model, dir, sizeof dir, err, errlen)) goto fail;
    if (o->model) snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
    else snprintf(cfgpath, sizeof cfgpath, "%s", o->dummy_config);
    if (mc_load(&c, cfgpath, err, errlen) || w_check_config(&c, err, errlen)) goto fail;
    /* tokenizer and chat template */
    if (o->tokenizer) snprintf(tokpath, sizeof tokpath, "%s", o->tokenizer);
    else if (o->model) snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", dir);
    else snprintf(tokpath, sizeof tokpath, "%s", DEFAULT_TOKENIZER);
    if (!(s->tok = tok_load(tokpath, err, errlen))) goto fail;
    if (tok_vocab_size(s->tok) > c.vocab_size) {
        errbuf_fail(err, errlen, "%s has %d tokens, more than the model's vocabulary (%d): give the model's own with --tokenizer",
             tokpath, tok_vocab_size(s->tok), c.vocab_size);
        goto fail;
    }
    if (!(s->chat = chat_tpl_for(o->chat_template, tokpath, CHAT_QWEN3, err, errlen))) goto fail;
    const char *eos_tok = chat_tpl_stop(s->chat) ? chat_tpl_stop(s->chat) : "<|im_end|>";
    int eos = tok_special_id(s->tok, eos_tok);
    /* weights and memory */
    double t0 = clock_now_s();
    if (tp_engine_load(o->tp, &c, o->dummy_config ? NULL : dir, o->dummy_seed, &w, err, errlen)) goto fail;   /* a shard with tp */
    have_w = 1;
    double t_load = clock_now_s() - t0;
    size_t wbytes = w.bytes;
    model_opts mo = { .max_num_batched_tokens = o->max_num_batched_tokens > 0 ? o->max_num_batched_tokens : 8192,
                      .max_num_seqs = o->max_num_seqs > 0 ? o->max_num_seqs : 256,
                      .max_model_len = o->max_model_len > 0 ? o->max_model_len : c.max_position > 0 && c.max_position < 4096 ? c.max_position : 4096,
                      .block_size = o->block_size,
                      .gpu_memory_utilization = o->gpu_memory_utilization, .num_gpu_blocks = o->num_gpu_blocks,
                      .tp = tp_engine_rank(o->tp) };
    model_mem mem;
    int contiguous = o->kv_policy && !strcmp(o->kv_policy, "contiguous");
    eng_config ec;
    memset(&ec, 0, sizeof ec);
    ec.model = mo;
    ec.kv_policy = contiguous ? KV_CONTIGUOUS : KV_PAGED;
    ec.prefix_caching = o->prefix_caching != 0;
    ec.eos_id = eos;
    have_w = 0;                                          /* eng_create owns w from here */
    if (!(s->e = eng_create(&c, &w, &ec, &mem, err, errlen))) goto fail;
    if (o->decision_logits && logits_setup(s, err, errlen)) goto fail;
    const model_opts *eo = model_options(eng_model(s->e));
    s->num_blocks = mem.num_blocks; s->block_size = mem.block_size;
    s->max_model_len = eo->max_model_len;
    s->max_num_seqs = eo->max_num_seqs; s->batched = eo->max_num_batched_tokens;
    if (trace) {
        snprintf(trace->kv_policy, sizeof trace->kv_policy, "%s", contiguous ? "contiguous" : "paged");
        snprintf(trace->model_config, sizeof trace->model_config, "%.500s", cfgpath);
        gpu_name(trace->gpu, sizeof trace->gpu);
        trace->dummy_weights = o->dummy_config != NULL;
        trace->num_blocks = s->num_blocks; trace->block_size = s->block_size;
        trace->max_num_seqs = s->max_num_seqs; trace->max_num_batched_tokens = s->batched;
        trace->max_model_len = s->max_model_len;
        trace->prefix_caching = o->prefix_caching;
        trace->max_workers = o->max_workers;
        trace->temperature = o->s.temperature; trace->top_p = o->s.top_p;
    }
    if (info)
        snprintf(info, infolen,
                 "Loading weights took %.2f GiB and %.2f s (%s)\n"
                 "Memory: weights %.2f GiB, activation peak %.2f GiB, KV cache %.2f GiB (%zu bytes/token)\n"
                 "GPU KV cache size: %ld tokens\nMaximum concurrency for %d tokens per request: %.2fx\n"
                 "Tokenizer %s, chat template %s, stop token %s (%d)%s%s",
                 wbytes / 1073741824.0, t_load, o->dummy_config ? "dummy weights" : dir, mem.weights / 1073741824.0,
                 mem.activations / 1073741824.0, mem.kv_cache / 1073741824.0, mem.kv_bytes_per_token, mem.kv_tokens,
                 s->max_model_len, mem.max_concurrency, tokpath, chat_tpl_name(s->chat), eos_tok, eos,
                 o->decision_logits ? "\nDecision: log-probabilities after the forced prefix " FORCED_PREFIX : "",
                 contiguous ? "\nKV cache: contiguous (max_model_len slots reserved per sequence)" : "");
    *src = (bias_source){ .name = "engine", .ctx = s, .generate = real_generate, .free = real_free };
    return 0;
fail:
    if (have_w) w_free(&w);
    real_free(s);
    return -1;
}
