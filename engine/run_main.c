/* engine/run: runs a model on token ids and prints the generated ids.
 *   engine/run --model DIR | --dummy-weights CONFIG.json [--prompt-ids 1,2,3]...
 *              [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
 *              [--dump-logits FILE] [memory and batching options]
 * Each --prompt-ids is one request; all requests run together, continuously
 * batched with chunked prefill, over a paged KV cache whose blocks are handed
 * out in a shuffled order (so the block tables really are exercised).  This
 * small loop stands in for the engine loop (eng_) until that lands. */
#include "engine/model.h"
#include "engine/weights.h"
#include "sim/model_config.h"
#include "engine/tokenizer.h"
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_REQ 256

typedef struct req {
    int32_t *tok;        /* (P + max_tokens,) prompt then generated */
    int P, n;            /* prompt length, tokens so far */
    int cached;          /* tokens whose K/V are in the cache */
    int32_t *blocks;     /* (max_blocks,) */
    float *logits;       /* (P + max_tokens - 1, V) when dumping */
} req;

static void usage(FILE *f) {
    fprintf(f,
        "usage: engine/run (--model DIR | --dummy-weights CONFIG.json) [options]\n"
        "  --prompt TEXT             one request's prompt as text (needs a tokenizer; repeat for a batch)\n"
        "  --prompt-ids 1,2,3        one request's prompt token ids (repeat for a batch; default 1,2,3,4)\n"
        "  --tokenizer FILE          tokenizer.json (default: DIR/tokenizer.json with --model DIR)\n"
        "  --output text|ids         what to print per request (default: text with a tokenizer, else ids)\n"
        "  --max-tokens N            tokens to generate per request (default 16)\n"
        "  --temperature T           0 = greedy (default 0)\n"
        "  --top-k K --top-p P       sampling filters (default off)\n"
        "  --seed S                  request r uses seed S + r (default 0)\n"
        "  --dump-logits FILE        write every position's logits (binary, see compare_hf.py)\n"
        "  --max-num-batched-tokens N  tokens per step (default 2048; smaller forces chunked prefill)\n"
        "  --max-num-seqs N          sequences per step (default 256)\n"
        "  --max-model-len N         tokens per sequence (default min(max_position, 4096))\n"
        "  --block-size N            KV block size (default 16)\n"
        "  --gpu-memory-utilization F  share of GPU memory to use (default 0.9)\n"
        "  --num-gpu-blocks N        KV blocks to allocate instead of what memory allows\n"
        "  --dummy-seed S            seed of --dummy-weights (default 0)\n");
}

static int parse_ids(const char *s, int32_t **out) {
    int n = 0, cap = 16;
    int32_t *v = malloc(sizeof *v * cap);
    while (*s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 0 || x > 0x7fffffff) { free(v); return -1; }
        if (n == cap) v = realloc(v, sizeof *v * (cap *= 2));
        v[n++] = (int32_t)x;
        s = end;
        if (*s == ',') s++;
        else if (*s) { free(v); return -1; }
    }
    *out = v;
    return n;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *dummy = NULL, *dump = NULL, *tok_path = NULL, *output = NULL;
    const char *texts[MAX_REQ];
    int ntext = 0, text_slot[MAX_REQ];
    int32_t *prompts[MAX_REQ];
    int plen[MAX_REQ], nreq = 0, max_tokens = 16, top_k = 0;
    float temperature = 0, top_p = 1;
    unsigned long long seed = 0, dummy_seed = 0;
    model_opts o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!v) { fprintf(stderr, "engine/run: %s needs a value\n", a); usage(stderr); return 2; }
        i++;
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "--dummy-weights")) dummy = v;
        else if (!strcmp(a, "--prompt-ids")) {
            if (nreq == MAX_REQ) { fprintf(stderr, "engine/run: at most %d prompts\n", MAX_REQ); return 2; }
            plen[nreq] = parse_ids(v, &prompts[nreq]);
            if (plen[nreq] <= 0) { fprintf(stderr, "engine/run: bad --prompt-ids '%s'\n", v); return 2; }
            nreq++;
        } else if (!strcmp(a, "--prompt")) {
            if (nreq == MAX_REQ) { fprintf(stderr, "engine/run: at most %d prompts\n", MAX_REQ); return 2; }
            texts[ntext] = v;
            text_slot[ntext++] = nreq;
            prompts[nreq] = NULL;
            plen[nreq++] = 0;
        } else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "--output")) output = v;
        else if (!strcmp(a, "--max-tokens")) max_tokens = atoi(v);
        else if (!strcmp(a, "--temperature")) temperature = (float)atof(v);
        else if (!strcmp(a, "--top-k")) top_k = atoi(v);
        else if (!strcmp(a, "--top-p")) top_p = (float)atof(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--dummy-seed")) dummy_seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--dump-logits")) dump = v;
        else if (!strcmp(a, "--max-num-batched-tokens")) o.max_num_batched_tokens = atoi(v);
        else if (!strcmp(a, "--max-num-seqs")) o.max_num_seqs = atoi(v);
        else if (!strcmp(a, "--max-model-len")) o.max_model_len = atoi(v);
        else if (!strcmp(a, "--block-size")) o.block_size = atoi(v);
        else if (!strcmp(a, "--gpu-memory-utilization")) o.gpu_memory_utilization = atof(v);
        else if (!strcmp(a, "--num-gpu-blocks")) o.num_gpu_blocks = atoi(v);
        else { fprintf(stderr, "engine/run: unknown option %s\n", a); usage(stderr); return 2; }
    }
    if (!model_dir == !dummy) { fprintf(stderr, "engine/run: give --model DIR or --dummy-weights CONFIG.json\n"); usage(stderr); return 2; }
    if (max_tokens < 1) { fprintf(stderr, "engine/run: --max-tokens must be >= 1\n"); return 2; }
    if (nreq == 0) { parse_ids("1,2,3,4", &prompts[0]); plen[0] = 4; nreq = 1; }

    char err[1024], cfg_path[1024], tok_default[1024];
    if (!tok_path && model_dir) {
        snprintf(tok_default, sizeof tok_default, "%s/tokenizer.json", model_dir);
        if (access(tok_default, R_OK) == 0) tok_path = tok_default;
    }
    tok_tokenizer *tok = NULL;
    if (tok_path && !(tok = tok_load(tok_path, err, sizeof err))) {
        fprintf(stderr, "engine/run: %s\n", err);
        return 1;
    }
    if (ntext && !tok) { fprintf(stderr, "engine/run: --prompt needs a tokenizer (--tokenizer FILE)\n"); return 2; }
    if (output && strcmp(output, "text") && strcmp(output, "ids")) {
        fprintf(stderr, "engine/run: --output is text or ids\n");
        return 2;
    }
    int as_text = output ? !strcmp(output, "text") : tok != NULL;
    if (as_text && !tok) { fprintf(stderr, "engine/run: --output text needs a tokenizer\n"); return 2; }
    for (int i = 0; i < ntext; i++) {             /* text prompts -> ids */
        tok_ids ti = {0};
        if (tok_encode(tok, texts[i], strlen(texts[i]), TOK_ADD_SPECIAL, &ti) || ti.n == 0) {
            fprintf(stderr, "engine/run: cannot encode --prompt '%.40s'\n", texts[i]);
            return 1;
        }
        int r = text_slot[i];
        prompts[r] = malloc(sizeof(int32_t) * ti.n);
        memcpy(prompts[r], ti.ids, sizeof(int32_t) * ti.n);
        plen[r] = (int)ti.n;
        tok_ids_free(&ti);
    }
    mc_config c;
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", model_dir ? model_dir : "");
    if (mc_load(&c, dummy ? dummy : cfg_path, err, sizeof err) || w_check_config(&c, err, sizeof err)) {
        fprintf(stderr, "engine/run: %s\n", err);
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w_weights w;
    if ((dummy ? w_dummy(&w, &c, dummy_seed, err, sizeof err) : w_load(&w, model_dir, &c, err, sizeof err))) {
        fprintf(stderr, "engine/run: %s\n", err);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "Loading weights took %.2f GiB and %.2f s (%s)\n", w.bytes / 1073741824.0,
            (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec), dummy ? "dummy" : model_dir);
    int total_prompt = 0, longest = 0;
    for (int r = 0; r < nreq; r++) {
        total_prompt += plen[r];
        if (plen[r] + max_tokens > longest) longest = plen[r] + max_tokens;
    }
    if (o.max_model_len <= 0 && longest > 4096) o.max_model_len = longest;
    if (dump) {                           /* every token of a step may need its logits */
        int T = o.max_num_batched_tokens > 0 ? o.max_num_batched_tokens : 2048;
        o.max_logit_rows = T;
    }
    model *m;
    model_mem mem;
    if (model_create(&m, &c, &w, &o, &mem, err, sizeof err)) {
        fprintf(stderr, "engine/run: %s\n", err);
        return 1;
    }
    const model_opts *mo = model_options(m);
    fprintf(stderr, "Memory: weights %.2f GiB, activation peak %.2f GiB, KV cache %.2f GiB (%zu bytes/token)\n",
            mem.weights / 1073741824.0, mem.activations / 1073741824.0, mem.kv_cache / 1073741824.0,
            mem.kv_bytes_per_token);
    fprintf(stderr, "GPU KV cache size: %ld tokens\n", mem.kv_tokens);
    fprintf(stderr, "Maximum concurrency for %d tokens per request: %.2fx\n", mo->max_model_len,
            mem.max_concurrency);
    int bs = mo->block_size, mb = (mo->max_model_len + bs - 1) / bs, V = c.vocab_size, rc = 1;
    if (longest > mo->max_model_len) {
        fprintf(stderr, "engine/run: a request needs %d tokens, max_model_len is %d\n", longest, mo->max_model_len);
        return 1;
    }
    /* hand out blocks in a shuffled order */
    int need = 0;
    for (int r = 0; r < nreq; r++) need += (plen[r] + max_tokens + bs - 1) / bs;
    if (need > mem.num_blocks) {
        fprintf(stderr, "engine/run: the requests need %d KV blocks, the cache has %d (this runner does not preempt)\n",
                need, mem.num_blocks);
        return 1;
    }
    int32_t *pool = malloc(sizeof(int32_t) * mem.num_blocks);
    for (int i = 0; i < mem.num_blocks; i++) pool[i] = i;
    uint64_t st = 0x9e3779b97f4a7c15ull;
    for (int i = mem.num_blocks - 1; i > 0; i--) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((st >> 33) % (uint64_t)(i + 1)), t = pool[i];
        pool[i] = pool[j]; pool[j] = t;
    }
    req *rq = calloc((size_t)nreq, sizeof *rq);
    int used = 0;
    for (int r = 0; r < nreq; r++) {
        rq[r].tok = malloc(sizeof(int32_t) * (size_t)(plen[r] + max_tokens));
        memcpy(rq[r].tok, prompts[r], sizeof(int32_t) * (size_t)plen[r]);
        rq[r].P = rq[r].n = plen[r];
        rq[r].blocks = calloc((size_t)mb, sizeof(int32_t));
        for (int i = 0; i < (plen[r] + max_tokens + bs - 1) / bs; i++) rq[r].blocks[i] = pool[used++];
        if (dump) rq[r].logits = malloc(sizeof(float) * (size_t)(plen[r] + max_tokens - 1) * V);
    }
    int Tmax = mo->max_num_batched_tokens, Bmax = nreq < mo->max_num_seqs ? nreq : mo->max_num_seqs;
    int32_t *ids = malloc(4 * (size_t)Tmax * 3), *pos = ids + Tmax, *slots = pos + Tmax;
    int32_t *qs = malloc(4 * (size_t)(Bmax + 1)), *ctx = malloc(4 * (size_t)Bmax);
    int32_t *bt = malloc(4 * (size_t)Bmax * mb), *which = malloc(4 * (size_t)Bmax), *tokens = malloc(4 * (size_t)Tmax);
    k_sample_params *sp = calloc((size_t)Tmax, sizeof *sp);
    float *hl = dump ? malloc(sizeof(float) * (size_t)Tmax * V) : NULL;
    long gen_tokens = 0;
    int steps = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        /* build the step: decodes first, then prefill chunks within the token budget */
        int T = 0, B = 0;
        qs[0] = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int r = 0; r < nreq && B < Bmax; r++) {
                req *q = &rq[r];
                if (q->n >= q->P + max_tokens) continue;         /* finished */
                if ((q->cached >= q->P) != (pass == 0)) continue; /* pass 0 decodes, pass 1 prefills */
                int todo = q->n - q->cached;                     /* tokens not yet in the cache */
                int take = todo < Tmax - T ? todo : Tmax - T;
                if (take <= 0) continue;
                for (int i = 0; i < take; i++) {
                    int j = q->cached + i;
                    ids[T + i] = q->tok[j];
                    pos[T + i] = j;
                    slots[T + i] = q->blocks[j / bs] * bs + j % bs;
                    sp[T + i] = (k_sample_params){temperature, top_k, top_p, seed + (uint64_t)r,
                                                  (uint64_t)(q->n - q->P)};
                }
                T += take;
                ctx[B] = q->cached + take;
                memcpy(bt + (size_t)B * mb, q->blocks, 4 * (size_t)mb);
                which[B] = r;
                qs[++B] = T;
            }
        if (B == 0) break;
        model_batch b = {T, B, ids, pos, slots, qs, ctx, bt, mb, dump != NULL};
        int R;
        if (model_forward(m, &b, &R, err, sizeof err)) { fprintf(stderr, "engine/run: step %d: %s\n", steps, err); goto out; }
        /* per-row sampling params: with all_logits every token row has its request's */
        k_sample_params *rp = sp;
        k_sample_params bp[MAX_REQ];
        if (!dump) { for (int s = 0; s < B; s++) bp[s] = sp[qs[s + 1] - 1]; rp = bp; }
        if (model_sample(m, R, rp, tokens, err, sizeof err) ||
            (dump && model_logits(m, R, hl, err, sizeof err))) {
            fprintf(stderr, "engine/run: step %d: %s\n", steps, err);
            goto out;
        }
        for (int s = 0; s < B; s++) {
            req *q = &rq[which[s]];
            int first = q->cached;
            q->cached = ctx[s];
            if (dump)
                for (int i = qs[s]; i < qs[s + 1]; i++) {
                    int p = first + (i - qs[s]);             /* logits of position p predict p + 1 */
                    if (p < q->P + max_tokens - 1)
                        memcpy(q->logits + (size_t)p * V, hl + (size_t)i * V, sizeof(float) * V);
                }
            if (q->cached == q->n && q->n < q->P + max_tokens) {   /* a new token */
                q->tok[q->n++] = tokens[dump ? qs[s + 1] - 1 : s];
                gen_tokens++;
            }
        }
        steps++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "%d requests, %d prompt + %ld generated tokens in %d steps, %.3f s (%.0f tokens/s)\n", nreq,
            total_prompt, gen_tokens, steps, sec, (total_prompt + gen_tokens) / (sec > 0 ? sec : 1));
    for (int r = 0; r < nreq; r++) {
        if (as_text) {                            /* one line per request, newlines escaped */
            size_t need = tok_decode(tok, rq[r].tok + rq[r].P, (size_t)(rq[r].n - rq[r].P), TOK_SKIP_SPECIAL, NULL, 0);
            char *txt = malloc(need + 1);
            tok_decode(tok, rq[r].tok + rq[r].P, (size_t)(rq[r].n - rq[r].P), TOK_SKIP_SPECIAL, txt, need + 1);
            for (char *c = txt; *c; c++) {
                if (*c == '\n') fputs("\\n", stdout);
                else if (*c == '\\') fputs("\\\\", stdout);
                else putchar(*c);
            }
            printf("\n");
            free(txt);
            continue;
        }
        for (int i = rq[r].P; i < rq[r].n; i++) printf(i > rq[r].P ? ",%d" : "%d", rq[r].tok[i]);
        printf("\n");
    }
    if (dump) {
        FILE *f = fopen(dump, "wb");
        if (!f) { fprintf(stderr, "engine/run: cannot write %s\n", dump); goto out; }
        int32_t hdr[3] = {0x474c5350 /* "PSLG" */, nreq, V};
        fwrite(hdr, 4, 3, f);
        for (int r = 0; r < nreq; r++) {
            int32_t pg[2] = {rq[r].P, rq[r].n - rq[r].P};
            fwrite(pg, 4, 2, f);
            fwrite(rq[r].tok, 4, (size_t)rq[r].n, f);
            fwrite(rq[r].logits, sizeof(float) * V, (size_t)rq[r].n - 1, f);
        }
        if (fclose(f)) { fprintf(stderr, "engine/run: write error on %s\n", dump); goto out; }
    }
    rc = 0;
out:
    for (int r = 0; r < nreq; r++) { free(rq[r].tok); free(rq[r].blocks); free(rq[r].logits); free(prompts[r]); }
    free(rq); free(pool); free(ids); free(qs); free(ctx); free(bt); free(which); free(tokens); free(sp); free(hl);
    model_free(m);
    tok_free(tok);
    return rc;
}
