/* bias_source_real: the bias lab's replies from the CUDA engine in this
 * process (see bias_sources.h).  Free generation goes through eng_ (the sim/
 * scheduler, paged KV cache and step loop driving the GPU): the source keeps
 * max_workers requests in flight, as the study's client does, steps the
 * engine and hands each reply to the run as it finishes; it records every
 * request, every step and the KV pool (eng_usage) into the trace.
 * --decision logits needs no generation: one prefill per trial through
 * engine/model.h over the paged cache, then the log-probabilities of the
 * "buy" and "sell" tokens after the forced reply prefix {"decision": ".
 * Uses the GPU (through engine/), the tokenizer and the model files. */
#include "labs/bias_sources.h"
#include "text/chat_template.h"
#include "engine/engine.h"
#include "hub/hub.h"
#include "engine/model.h"
#include "text/tokenizer.h"
#include "engine/weights.h"
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

int bias_real_available(char *why, size_t n) {
#ifdef PAGESIM_HAVE_CUDA
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess || count == 0) {
        snprintf(why, n, "no CUDA GPU is visible here (%s)", rc != cudaSuccess ? cudaGetErrorString(rc) : "0 devices");
        return 0;
    }
    return 1;
#else
    snprintf(why, n, "this build has no CUDA engine (nvcc was not found when it was built)");
    return 0;
#endif
}

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
    eng           *e;           /* free generation */
    model         *m;           /* --decision logits */
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

/* ---- free generation through eng_ --------------------------------------------------------- */

static void sample_kv(real_src *s, int set, double t) {
    kv_usage u;
    eng_usage(s->e, &u);
    bias_trace_kv k = { set, t, u.blocks_used, u.blocks_total, u.slots_total, u.token_slots, u.reserved_slots,
                        u.internal_frag };
    bias_trace_add_kv(s->trace, &k);
    s->trace->prefix_hit_tokens = u.prefix_hit_tokens;
}

static int gen_free(real_src *s, const bias_request *req, size_t n, bias_reply *out, bias_reply_cb cb, void *cb_ctx,
                    char *err, size_t errlen) {
    int rc = -1, *mt = calloc(n, sizeof *mt);                  /* (n) max_tokens */
    tok_ids *ids = calloc(n, sizeof *ids);                     /* (n) prompt ids */
    bias_trace_req *tr = calloc(n, sizeof *tr);                /* (n) engine-clock times */
    char *live = calloc(n, 1);
    if (!mt || !ids || !tr || !live) { errbuf_fail(err, errlen, "out of memory"); goto out; }
    if (bias_sampling_lengths(&s->o.s, req, n, mt, err, errlen)) goto out;
    for (size_t i = 0; i < n; i++) {
        if (encode_prompt(s, req[i].prompt, &ids[i], err, errlen)) goto out;
        int room = s->max_model_len - (int)ids[i].n;
        if (mt[i] > room) mt[i] = room;
    }
    int set = req[0].set, base = s->next_id, workers = s->o.max_workers > 0 ? s->o.max_workers : 200;
    s->next_id += (int)n;
    size_t next = 0, done = 0;
    int inflight = 0, idle = 0;
    long steps = 0;
    double t0 = clock_now_s(), clock = 0, arrival0 = -1;
    while (done < n) {
        while (inflight < workers && next < n) {                /* a worker is free: send the next */
            size_t i = next++;
            eng_params p = { mt[i], (float)s->o.s.temperature, 0, (float)s->o.s.top_p,
                             bias_trial_seed(s->o.s.seed, req[i].set, req[i].stock_index, req[i].trial) };
            char why[512];
            if (mt[i] < 1 || eng_add_request(s->e, base + (int)i, ids[i].ids, (int)ids[i].n, &p, why, sizeof why)) {
                if (mt[i] < 1) snprintf(why, sizeof why, "the prompt has %zu tokens, max_model_len is %d", ids[i].n, s->max_model_len);
                size_t k = strlen(why) + 16;
                if (!(out[i].text = malloc(k))) { errbuf_fail(err, errlen, "out of memory"); goto out; }
                snprintf(out[i].text, k, "API_ERROR: %s", why);
                done++;
                if (cb) cb(cb_ctx, i, &out[i]);
                continue;
            }
            live[i] = 1;
            inflight++;
        }
        if (done >= n) break;
        const eng_result *res;
        int nd = 0, r = eng_step(s->e, &res, &nd, err, errlen);
        if (r < 0) goto out;
        if (r == 0 && nd == 0) {
            if (++idle > 3) { errbuf_fail(err, errlen, "the engine stopped with %d requests in flight", inflight); goto out; }
            continue;
        }
        idle = 0;
        eng_step_info si;
        eng_last_step(s->e, &si);
        clock = clock_now_s() - t0;
        if (s->trace && si.num_seqs > 0) {
            bias_trace_step st = { set, clock, si.seconds, si.num_seqs, si.prefill_tokens, si.decode_tokens,
                                   si.attn_ctx_tokens, si.attn_pairs };
            bias_trace_add_step(s->trace, &st);
        }
        /* eng_usage walks the pool: every step for a small pool, every few for a large one */
        int every = s->o.usage_every > 0 ? s->o.usage_every : 1 + s->num_blocks / 32768;
        if (s->trace && steps++ % every == 0) sample_kv(s, set, clock);
        for (int k = 0; k < nd; k++) {
            const eng_result *q = &res[k];
            long i = (long)q->id - base;
            if (i < 0 || (size_t)i >= n || !live[i]) continue;
            live[i] = 0;
            inflight--;
            done++;
            if (arrival0 < 0 || q->arrival < arrival0) arrival0 = q->arrival;
            out[i].text = decode(s, q->tokens, q->num_tokens);
            if (!out[i].text) { errbuf_fail(err, errlen, "out of memory"); goto out; }
            out[i].output_tokens = q->num_tokens;
            out[i].latency_s = q->finish - q->arrival;
            out[i].ttft_s = q->first_token - q->arrival;
            tr[i] = (bias_trace_req){ set, (int)ids[i].n, q->num_tokens, lcp(ids[i].ids, ids[i].n, ids[0].ids, ids[0].n),
                                      q->arrival, q->first_token, q->finish };
            if (cb) cb(cb_ctx, (size_t)i, &out[i]);
        }
    }
    if (s->trace) {
        sample_kv(s, set, clock_now_s() - t0);
        bias_trace_add_wall(s->trace, set, clock_now_s() - t0);
        for (size_t i = 0; i < n; i++) {
            if (tr[i].set == 0) continue;                     /* refused before reaching the engine */
            tr[i].submit_s -= arrival0; tr[i].first_token_s -= arrival0; tr[i].finish_s -= arrival0;
            bias_trace_add_req(s->trace, &tr[i]);
        }
    }
    rc = 0;
out:
    for (size_t i = 0; ids && i < n; i++) tok_ids_free(&ids[i]);
    free(mt); free(ids); free(tr); free(live);
    return rc;
}

/* ---- --decision logits through engine/model.h ---------------------------------------------- */

typedef struct lseq {
    size_t   idx;
    tok_ids  ids;               /* prompt + forced prefix */
    int      done;              /* tokens whose K/V are in the cache */
    int32_t *blocks;            /* (max_blocks) */
    int      nblk;
    double   t0;
} lseq;

/* P(buy) with the two candidates' log-probabilities; the decision at temperature T. */
static void decide(double lb, double ls, double T, uint64_t seed, double *p_buy, int *buy) {
    *p_buy = 1.0 / (1.0 + exp(ls - lb));
    if (!(T > 0)) { *buy = lb >= ls; return; }
    double pt = 1.0 / (1.0 + exp((ls - lb) / T));
    uint64_t z = rng_mix64(seed);
    *buy = (double)(z >> 11) * (1.0 / 9007199254740992.0) < pt;
}

static int gen_logits(real_src *s, const bias_request *req, size_t n, bias_reply *out, bias_reply_cb cb, void *cb_ctx,
                      char *err, size_t errlen) {
    const int bs = s->block_size, mbk = (s->max_model_len + bs - 1) / bs;
    const int B = s->max_num_seqs, T = s->batched;
    lseq *q = calloc(n, sizeof *q);                                   /* (n) */
    int32_t *freeb = malloc(sizeof(int32_t) * (size_t)s->num_blocks); /* (num_blocks) free list */
    int32_t *tids = malloc(sizeof(int32_t) * 3 * (size_t)T), *pos = tids + T, *slot = pos + T;   /* (T) each */
    int32_t *qs = malloc(sizeof(int32_t) * (2 * (size_t)B + 1)), *ctx = qs + B + 1;               /* (B+1), (B) */
    int32_t *tab = calloc((size_t)B * mbk, sizeof(int32_t));         /* (B, mbk) */
    int32_t *cb_ = malloc(sizeof(int32_t) * (size_t)B), *cs = malloc(sizeof(int32_t) * (size_t)B);
    float *lpb = malloc(sizeof(float) * (size_t)B), *lps = malloc(sizeof(float) * (size_t)B);
    size_t *act = malloc(sizeof(size_t) * (size_t)B), *inb = malloc(sizeof(size_t) * (size_t)B);
    int rc = -1, nfree = s->num_blocks, nact = 0;
    if (!q || !freeb || !tids || !qs || !tab || !cb_ || !cs || !lpb || !lps || !act || !inb) { errbuf_fail(err, errlen, "out of memory"); goto out; }
    for (int i = 0; i < s->num_blocks; i++) freeb[i] = s->num_blocks - 1 - i;
    for (int r = 0; r < B; r++) { cb_[r] = s->cand_buy; cs[r] = s->cand_sell; }
    for (size_t i = 0; i < n; i++) {
        q[i].idx = i;
        if (encode_prompt(s, req[i].prompt, &q[i].ids, err, errlen)) goto out;
        for (int k = 0; k < s->nforced; k++) {                       /* the forced reply prefix */
            tok_ids *t = &q[i].ids;
            if (t->n == t->cap) {
                size_t c = t->cap ? 2 * t->cap : 64;
                int32_t *v = realloc(t->ids, c * sizeof *v);
                if (!v) { errbuf_fail(err, errlen, "out of memory"); goto out; }
                t->ids = v; t->cap = c;
            }
            t->ids[t->n++] = s->forced[k];
        }
    }
    int set = req[0].set;
    size_t next = 0, done = 0;
    double t0 = clock_now_s(), clock = 0;
    while (done < n) {
        /* admit while sequences and blocks allow */
        while (nact < B && next < n) {
            lseq *x = &q[next];
            int need = ((int)x->ids.n + bs - 1) / bs;
            if ((int)x->ids.n > s->max_model_len) {
                const char *m = "API_ERROR: the prompt is longer than max_model_len";
                out[next].text = strdup(m);
                if (!out[next].text) { errbuf_fail(err, errlen, "out of memory"); goto out; }
                done++; next++;
                if (cb) cb(cb_ctx, x->idx, &out[x->idx]);
                continue;
            }
            if (need > nfree) break;
            x->blocks = malloc(sizeof(int32_t) * (size_t)mbk);
            if (!x->blocks) { errbuf_fail(err, errlen, "out of memory"); goto out; }
            for (int k = 0; k < need; k++) x->blocks[k] = freeb[--nfree];
            for (int k = need; k < mbk; k++) x->blocks[k] = 0;
            x->nblk = need;
            x->t0 = clock_now_s();
            act[nact++] = next++;
        }
        if (nact == 0) { errbuf_fail(err, errlen, "a prompt needs more KV blocks than the cache has (%d)", s->num_blocks); goto out; }
        /* the step: prefill chunks within the token budget */
        int t = 0, b = 0;
        long attn_ctx = 0, pairs = 0;
        qs[0] = 0;
        for (int a = 0; a < nact && t < T; a++) {
            lseq *x = &q[act[a]];
            int take = (int)x->ids.n - x->done;
            if (take > T - t) take = T - t;
            for (int j = 0; j < take; j++, t++) {
                int p = x->done + j;
                tids[t] = x->ids.ids[p]; pos[t] = p; slot[t] = x->blocks[p / bs] * bs + p % bs;
                pairs += p + 1;
            }
            ctx[b] = x->done + take;
            attn_ctx += ctx[b];
            memcpy(tab + (size_t)b * mbk, x->blocks, sizeof(int32_t) * (size_t)mbk);
            inb[b] = act[a];
            qs[++b] = t;
        }
        model_batch mb = { t, b, tids, pos, slot, qs, ctx, tab, mbk, 0 };
        double ts = clock_now_s();
        int rows = 0;
        if (model_forward(s->m, &mb, &rows, err, errlen) ||
            model_logprobs(s->m, b, cb_, lpb, err, errlen) || model_logprobs(s->m, b, cs, lps, err, errlen)) goto out;
        double sec = clock_now_s() - ts;
        clock += sec;
        if (s->trace) {
            bias_trace_step st = { set, clock, sec, b, t, 0, attn_ctx, pairs };
            bias_trace_add_step(s->trace, &st);
        }
        /* finished prompts: decide, reply, free their blocks */
        for (int r = 0; r < b; r++) {
            lseq *x = &q[inb[r]];
            x->done = ctx[r];
            if (x->done < (int)x->ids.n) continue;
            double p_buy;
            int buy;
            const bias_request *rq = &req[x->idx];
            decide(lpb[r], lps[r], s->o.s.temperature, bias_trial_seed(s->o.s.seed, rq->set, rq->stock_index, rq->trial) ^ 0xDEC1DE,
                   &p_buy, &buy);
            char text[256];
            snprintf(text, sizeof text, "{\"decision\": \"%s\", \"p_buy\": %.6f, \"reason\": \"decided by the log-probabilities "
                     "of buy and sell after the forced prefix\"}", buy ? "buy" : "sell", p_buy);
            bias_reply *o = &out[x->idx];
            if (!(o->text = strdup(text))) { errbuf_fail(err, errlen, "out of memory"); goto out; }
            o->output_tokens = 1;
            o->latency_s = o->ttft_s = clock_now_s() - x->t0;
            if (s->trace) {
                bias_trace_req tr = { set, (int)x->ids.n, 1, lcp(x->ids.ids, x->ids.n, q[0].ids.ids, q[0].ids.n),
                                      x->t0 - t0, clock_now_s() - t0, clock_now_s() - t0 };
                bias_trace_add_req(s->trace, &tr);
            }
            for (int k = 0; k < x->nblk; k++) freeb[nfree++] = x->blocks[k];
            free(x->blocks); x->blocks = NULL; x->nblk = 0;
            done++;
            if (cb) cb(cb_ctx, x->idx, o);
        }
        int j = 0;                                                     /* drop the finished */
        for (int a = 0; a < nact; a++) if (q[act[a]].blocks) act[j++] = act[a];
        nact = j;
    }
    if (s->trace) bias_trace_add_wall(s->trace, set, clock_now_s() - t0);
    rc = 0;
out:
    for (size_t i = 0; q && i < n; i++) { tok_ids_free(&q[i].ids); free(q[i].blocks); }
    free(q); free(freeb); free(tids); free(qs); free(tab); free(cb_); free(cs); free(lpb); free(lps); free(act); free(inb);
    return rc;
}

static int real_generate(void *ctx, const bias_request *req, size_t n, bias_reply *out,
                         bias_reply_cb cb, void *cb_ctx, char *err, size_t errlen) {
    real_src *s = ctx;
    if (n == 0) return 0;
    return s->m ? gen_logits(s, req, n, out, cb, cb_ctx, err, errlen) : gen_free(s, req, n, out, cb, cb_ctx, err, errlen);
}

static void real_free(void *ctx) {
    real_src *s = ctx;
    if (!s) return;
    if (s->e) eng_free(s->e);
    if (s->m) model_free(s->m);
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
    if (!bias_real_available(why, sizeof why))
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
    if ((o->dummy_config ? w_dummy(&w, &c, o->dummy_seed, err, errlen) : w_load(&w, dir, &c, err, errlen))) goto fail;
    have_w = 1;
    double t_load = clock_now_s() - t0;
    size_t wbytes = w.bytes;
    model_opts mo = { .max_num_batched_tokens = o->max_num_batched_tokens > 0 ? o->max_num_batched_tokens : 8192,
                      .max_num_seqs = o->max_num_seqs > 0 ? o->max_num_seqs : 256,
                      .max_model_len = o->max_model_len > 0 ? o->max_model_len : c.max_position > 0 && c.max_position < 4096 ? c.max_position : 4096,
                      .block_size = o->block_size,
                      .gpu_memory_utilization = o->gpu_memory_utilization, .num_gpu_blocks = o->num_gpu_blocks };
    model_mem mem;
    int contiguous = o->kv_policy && !strcmp(o->kv_policy, "contiguous");
    if (contiguous && o->decision_logits) {
        errbuf_fail(err, errlen, "--kv-policy contiguous is for free generation (--decision logits keeps no KV between steps)");
        goto fail;
    }
    if (o->decision_logits) {
        if (model_create(&s->m, &c, &w, &mo, &mem, err, errlen)) { have_w = 0; goto fail; }
        have_w = 0;
        if (logits_setup(s, err, errlen)) goto fail;
        const model_opts *eo = model_options(s->m);
        s->num_blocks = model_num_blocks(s->m); s->block_size = eo->block_size; s->max_model_len = eo->max_model_len;
        s->max_num_seqs = eo->max_num_seqs; s->batched = eo->max_num_batched_tokens;
    } else {
        eng_config ec;
        memset(&ec, 0, sizeof ec);
        ec.model = mo;
        ec.kv_policy = contiguous ? KV_CONTIGUOUS : KV_PAGED;
        ec.prefix_caching = o->prefix_caching != 0;
        ec.eos_id = eos;
        have_w = 0;                                          /* eng_create owns w from here */
        if (!(s->e = eng_create(&c, &w, &ec, &mem, err, errlen))) goto fail;
        s->num_blocks = mem.num_blocks; s->block_size = mem.block_size;
        s->max_model_len = mo.max_model_len;
        s->max_num_seqs = mo.max_num_seqs; s->batched = mo.max_num_batched_tokens;
    }
    if (trace) {
        snprintf(trace->kv_policy, sizeof trace->kv_policy, "%s", contiguous ? "contiguous" : "paged");
        snprintf(trace->model_config, sizeof trace->model_config, "%.500s", cfgpath);
        gpu_name(trace->gpu, sizeof trace->gpu);
        trace->dummy_weights = o->dummy_config != NULL;
        trace->num_blocks = s->num_blocks; trace->block_size = s->block_size;
        trace->max_num_seqs = s->max_num_seqs; trace->max_num_batched_tokens = s->batched;
        trace->max_model_len = s->max_model_len;
        trace->prefix_caching = !o->decision_logits && o->prefix_caching;
        trace->max_workers = o->max_workers;
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
