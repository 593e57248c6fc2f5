/* engine/run: runs a model on prompts (text or token ids) through the engine
 * loop (engine/engine.h: the sim/ scheduler and KV cache) and prints each
 * request's generated text or ids, one line per request, in request order.
 *   engine/run --model DIR | --dummy-weights CONFIG.json [--prompt TEXT | --prompt-ids 1,2,3]...
 *              [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
 *              [--kv-policy paged|contiguous] [--dump-logits FILE] [memory and batching options]
 * On stderr: the memory plan (vLLM's log lines), each request's TTFT, TPOT,
 * token counts and preemptions, and the KV block statistics of the run (the
 * simulator's categories, sampled after every step). */
#include "apps/engine/cli.h"
#include "apps/engine/cli_lora.h"
#include "base/file.h"
#include "engine/engine.h"
#include "engine/weights.h"
#include "text/tokenizer.h"
#include "text/chat_template.h"
#include "sim/model_config.h"
#include <cjson/cJSON.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "engine/run"

#define MAX_REQ 4096

static void usage(FILE *f) {
    fprintf(f,
        "usage: engine/run (--model DIR | --dummy-weights CONFIG.json) [options]\n"
        "  --prompt TEXT             one request's prompt as text (needs a tokenizer; repeat for a batch)\n"
        "  --prompt-ids 1,2,3        one request's prompt token ids (repeat for a batch; default 1,2,3,4)\n"
        "  --tokenizer FILE          tokenizer.json (default: DIR/tokenizer.json with --model DIR)\n"
        "  --chat                    wrap each --prompt as a user turn with the chat template of\n"
        "                            tokenizer_config.json beside the tokenizer\n"
        "  --output text|ids         what to print per request (default: text with a tokenizer, else ids)\n"
        "  --max-tokens N            tokens to generate per request (default 16)\n"
        "  --temperature T           0 = greedy (default 0)\n"
        "  --top-k K --top-p P       sampling filters (default off)\n"
        "  --seed S                  request r uses seed S + r (default 0)\n"
        "  --eos-id N                stop token (default: the chat template's end of turn with --chat,\n"
        "                            else eos_token_id of DIR/config.json; none with --dummy-weights)\n"
        "  --ignore-eos              generate exactly --max-tokens tokens\n"
        "  --kv-policy paged|contiguous  paged KV blocks (default), or max_model_len slots reserved\n"
        "                            per sequence up front (a static KV cache), same kernels\n"
        "  --no-enable-prefix-caching  turn automatic prefix caching off (paged; on by default,\n"
        "                            --enable-prefix-caching)\n"
        "  --dump-logits FILE        write every position's logits (binary, see tests/gpu/compare_hf.py)\n"
        "  --dump-experts FILE       write every step's chosen experts (MoE; engine/model_probe.c)\n"
        "  --max-num-batched-tokens N  tokens per step (default 2048; smaller forces chunked prefill)\n"
        "  --max-num-seqs N          sequences per step (default 256)\n"
        "  --max-model-len N         tokens per sequence (default min(max_position, 4096))\n"
        "  --block-size N            KV block size (default 16)\n"
        "  --gpu-memory-utilization F  share of GPU memory to use (default 0.9)\n"
        "  --num-gpu-blocks N        KV blocks to allocate instead of what memory allows\n"
        CLI_MAX_GPU_MEM_HELP
        "  --tensor-parallel-size N, -tp N  GPUs to shard the model over, one process each, through\n"
        "                            NCCL (default: one GPU without NCCL; 1: one GPU through NCCL)\n"
        "  --dummy-seed S            seed of --dummy-weights (default 0)\n"
        CLI_ENGINE_HELP
        "  --enable-lora             runtime LoRA adapters (vLLM's options):\n"
        "  --lora-modules NAME=PATH ...  PEFT adapters the prompts may name (repeatable)\n"
        "  --max-loras N             adapters in GPU memory at once (default 1)\n"
        "  --max-lora-rank R         rank of the GPU slots (default 16)\n"
        "  --lora NAME               the adapter of the prompts that follow (none: the base model);\n"
        "                            given only after the prompts, it applies to all of them\n"
        "  --quiet                   no per-request lines on stderr\n"
        "  --data-dir DIR            the project's data folder (data/... paths)   --version\n"
        "Exit status: 0 done, 1 the run failed (the GPU, the weights, a write error), 2 bad usage\n"
        "or input (options, the config, the tokenizer).\n");
}

/* What eng_run hands over: each request's result by id, the steps, the tokens. */
typedef struct collected { eng_result *res; int *got; int nreq; long steps, gen_tokens; } collected;

static int count_step(void *ctx, const eng_step_info *si, char *err, size_t errlen) {
    (void)si; (void)err; (void)errlen;
    ((collected *)ctx)->steps++;
    return 0;
}

static int collect(void *ctx, const eng_result *d, char *err, size_t errlen) {
    (void)err; (void)errlen;
    collected *c = ctx;
    if (d->id < 0 || d->id >= c->nreq) return 0;
    c->res[d->id] = *d;
    c->got[d->id] = 1;
    c->gen_tokens += d->num_tokens;
    return 0;
}

static int parse_ids(const char *s, int32_t **out) {
    int n = 0, cap = 16;
    int32_t *v = malloc(sizeof *v * cap);
    while (v && *s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 0 || x > 0x7fffffff) break;
        if (n == cap) {
            int32_t *nv = realloc(v, sizeof *v * (cap *= 2));
            if (!nv) break;
            v = nv;
        }
        v[n++] = (int32_t)x;
        s = end;
        if (*s == ',') s++;
        else if (*s) break;
    }
    if (!v || *s) { free(v); return -1; }
    *out = v;
    return n;
}


/* eos_token_id of a config.json (a number or the first of a list), or -1 */
static int config_eos(const char *path) {
    char why[8], *buf = file_read_all(path, 64u << 20, NULL, why, sizeof why);
    if (!buf) return -1;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
    if (cJSON_IsArray(e)) e = cJSON_GetArrayItem(e, 0);
    int id = cJSON_IsNumber(e) ? e->valueint : -1;
    cJSON_Delete(j);
    return id;
}

/* ---- logits dump (--dump-logits): every computed position of every request */
typedef struct dump_ctx {
    float **rows;        /* (nreq,) each (P + max_tokens - 1, V) */
    int    *len;         /* (nreq,) rows of each */
    int     nreq, V;
} dump_ctx;

static void on_logits(void *ctx, int id, int pos, const float *row, int V) {
    dump_ctx *d = ctx;
    if (id < 0 || id >= d->nreq || pos < 0 || pos >= d->len[id] || V != d->V) return;
    memcpy(d->rows[id] + (size_t)pos * V, row, sizeof(float) * (size_t)V);
}

static void print_text(const tok_tokenizer *tok, const int32_t *ids, int n) {
    size_t need = tok_decode(tok, ids, (size_t)n, TOK_SKIP_SPECIAL, NULL, 0);
    char *txt = malloc(need + 1);
    if (!txt) { printf("\n"); return; }
    tok_decode(tok, ids, (size_t)n, TOK_SKIP_SPECIAL, txt, need + 1);
    for (char *c = txt; *c; c++) {                /* one line per request, newlines escaped */
        if (*c == '\n') fputs("\\n", stdout);
        else if (*c == '\\') fputs("\\\\", stdout);
        else putchar(*c);
    }
    printf("\n");
    free(txt);
}

enum { O_HELP = 'h', O_CHAT = 256, O_QUIET, O_IGNORE_EOS, O_NO_PREFIX, O_MODEL, O_DUMMY, O_PROMPT,
       O_PROMPT_IDS, O_TOKENIZER, O_OUTPUT, O_MAX_TOKENS, O_TEMPERATURE, O_TOP_K, O_TOP_P, O_SEED,
       O_DUMMY_SEED, O_EOS_ID, O_DUMP, O_DUMP_EXPERTS, O_ENABLE_PREFIX, O_LORA };
static const opt_spec k_opts[] = {
    { "help", O_HELP, OPT_FLAG },               { "chat", O_CHAT, OPT_FLAG },
    { "quiet", O_QUIET, OPT_FLAG },             { "ignore-eos", O_IGNORE_EOS, OPT_FLAG },
    FRONT_PREFIX_ROWS(O_ENABLE_PREFIX, O_NO_PREFIX),   FRONT_SPECS,
    { "model", O_MODEL, OPT_VALUE },            { "dummy-weights", O_DUMMY, OPT_VALUE },
    { "prompt", O_PROMPT, OPT_VALUE },          { "prompt-ids", O_PROMPT_IDS, OPT_VALUE },
    { "tokenizer", O_TOKENIZER, OPT_VALUE },    { "output", O_OUTPUT, OPT_VALUE },
    { "max-tokens", O_MAX_TOKENS, OPT_VALUE },  { "temperature", O_TEMPERATURE, OPT_VALUE },
    { "top-k", O_TOP_K, OPT_VALUE },            { "top-p", O_TOP_P, OPT_VALUE },
    { "seed", O_SEED, OPT_VALUE },              { "dummy-seed", O_DUMMY_SEED, OPT_VALUE },
    { "eos-id", O_EOS_ID, OPT_VALUE },          { "dump-logits", O_DUMP, OPT_VALUE },
    { "dump-experts", O_DUMP_EXPERTS, OPT_VALUE }, { "lora", O_LORA, OPT_VALUE },
    CLI_MODEL_SPECS,
    CLI_LORA_SPECS,
    CLI_TP_SPECS,
    CLI_ENGINE_SPECS,
    { NULL, 0, 0 },
};

int main(int argc, char **argv) {
    const char *model_dir = NULL, *dummy = NULL, *dump = NULL, *tok_path = NULL, *output = NULL;
    static const char *texts[MAX_REQ];
    static int text_slot[MAX_REQ], plen[MAX_REQ];
    static const char *lora_of[MAX_REQ];    /* each prompt's --lora, or NULL */
    const char *lora_now = NULL;
    static cli_lora lora;
    cli_lora_init(&lora);
    static int32_t *prompts[MAX_REQ];
    int ntext = 0, nreq = 0, max_tokens = 16, top_k = 0, eos_id = -2, chat = 0, quiet = 0, ignore_eos = 0;
    float temperature = 0, top_p = 1;
    unsigned long long seed = 0, dummy_seed = 0;
    int tp = 0;                             /* --tensor-parallel-size (0: not given, one GPU without NCCL) */
    eng_config cfg = {0};
    cfg.prefix_caching = true;
    opt_parser op;
    const char *v;
    char perr[256];
    int k;
    front_init(PROG);
    cli_engine_env(PROG, &cfg.model);
    if (opt_begin(&op, argc, argv, k_opts, perr, sizeof perr)) cli_usage_error(PROG, perr);
    while ((k = opt_next(&op, &v, perr, sizeof perr)) != OPT_END) {
        const char *a = opt_name(&op);
        switch (k) {
        case O_HELP: usage(stdout); return 0;
        case O_CHAT: chat = 1; break;
        case O_QUIET: quiet = 1; break;
        case O_IGNORE_EOS: ignore_eos = 1; break;
        case O_NO_PREFIX: cfg.prefix_caching = false; break;
        case O_ENABLE_PREFIX: cfg.prefix_caching = true; break;
        case O_MODEL: model_dir = v; break;
        case O_DUMMY: dummy = v; break;
        case O_PROMPT: case O_PROMPT_IDS:
            if (nreq == MAX_REQ) { fprintf(stderr, "engine/run: at most %d prompts\n", MAX_REQ); return 2; }
            lora_of[nreq] = lora_now;
            if (k == O_PROMPT) {
                texts[ntext] = v;
                text_slot[ntext++] = nreq;
                prompts[nreq] = NULL;
                plen[nreq++] = 0;
                break;
            }
            plen[nreq] = parse_ids(v, &prompts[nreq]);
            if (plen[nreq] <= 0) { fprintf(stderr, "engine/run: bad --prompt-ids '%.60s'\n", v); return 2; }
            nreq++;
            break;
        case O_TOKENIZER: tok_path = v; break;
        case O_OUTPUT: output = v; break;
        case O_MAX_TOKENS: max_tokens = cli_int(PROG, a, v, 1, 1 << 20); break;
        case O_TEMPERATURE: temperature = (float)cli_num(PROG, a, v, 0, 100); break;
        case O_TOP_K: top_k = cli_int(PROG, a, v, 0, 1 << 24); break;
        case O_TOP_P: top_p = (float)cli_num(PROG, a, v, 0, 1); break;
        case O_SEED: seed = cli_u64(PROG, a, v); break;
        case O_DUMMY_SEED: dummy_seed = cli_u64(PROG, a, v); break;
        case O_EOS_ID: eos_id = cli_int(PROG, a, v, -1, 0x7fffffff); break;
        case O_DUMP: dump = v; break;
        case O_DUMP_EXPERTS: cfg.model.dump_experts = v; break;
        case CLI_TP: tp = cli_int(PROG, a, v, 1, 1024); break;
        case O_LORA: lora_now = v; break;
        case OPT_ARG:
            if (cli_lora_positional(PROG, v, &lora)) break;
            snprintf(perr, sizeof perr, "unexpected argument '%s'", v);
            cli_usage_error(PROG, perr);
        case OPT_ERROR: cli_usage_error(PROG, perr);
        default:
            cli_shared_option(PROG, k, a, v, &cfg, &lora);
            break;
        }
    }
    opt_end(&op);
    if (!model_dir == !dummy) { fprintf(stderr, "engine/run: give --model DIR or --dummy-weights CONFIG.json\n"); usage(stderr); return 2; }
    cli_tp_check(PROG, tp);                 /* before anything starts CUDA (tp_engine forks) */
    {                                       /* the KV policy and the preemption mode agree */
        char cerr[256];
        if (eng_check_config(&cfg, cerr, sizeof cerr)) cli_usage_error(PROG, cerr);
    }
    if (nreq == 0) { parse_ids("1,2,3,4", &prompts[0]); plen[0] = 4; nreq = 1; }
    int any_lora = 0;                       /* a --lora only after the prompts names them all */
    for (int r = 0; r < nreq; r++) any_lora |= lora_of[r] != NULL;
    for (int r = 0; r < nreq && !any_lora; r++) lora_of[r] = lora_now;

    char err[1024], path[1024], tok_default[1024];
    if (!tok_path && model_dir) {
        snprintf(tok_default, sizeof tok_default, "%s/tokenizer.json", model_dir);
        if (access(tok_default, R_OK) == 0) tok_path = tok_default;
    }
    tok_tokenizer *tok = NULL;
    if (tok_path && !(tok = tok_load(tok_path, err, sizeof err))) {
        fprintf(stderr, "engine/run: %s\n", err);
        return FRONT_USAGE;
    }
    if (front_check_output("--dump-logits", dump, err, sizeof err) ||
        front_check_output("--dump-experts", cfg.model.dump_experts, err, sizeof err)) cli_usage_error(PROG, err);
    if (ntext && !tok) { fprintf(stderr, "engine/run: --prompt needs a tokenizer (--tokenizer FILE)\n"); return 2; }
    if (output && strcmp(output, "text") && strcmp(output, "ids")) {
        fprintf(stderr, "engine/run: --output is text or ids\n");
        return 2;
    }
    int as_text = output ? !strcmp(output, "text") : tok != NULL;
    if (as_text && !tok) { fprintf(stderr, "engine/run: --output text needs a tokenizer\n"); return 2; }
    chat_tpl *ct = NULL;
    if (chat) {                                   /* the model's own template, beside the tokenizer */
        if (!tok || !(ct = chat_tpl_for(NULL, tok_path, CHAT_UNKNOWN, err, sizeof err))) {
            fprintf(stderr, "engine/run: --chat: %s\n", tok ? err : "needs a tokenizer");
            return 2;
        }
        const char *end = chat_tpl_stop(ct);
        if (eos_id == -2 && end) eos_id = tok_special_id(tok, end);
    }
    for (int i = 0; i < ntext; i++) {             /* text prompts -> ids */
        tok_ids ti = {0};
        const char *txt = texts[i];
        char *rendered = NULL;
        if (chat) {
            chat_msg msg = {"user", texts[i]};
            if (!(rendered = chat_tpl_apply(ct, &msg, 1, 1, 0, NULL, err, sizeof err))) {
                fprintf(stderr, "engine/run: chat template: %s\n", err);
                return 1;
            }
            txt = rendered;
        }
        if (tok_encode(tok, txt, strlen(txt), chat ? 0 : TOK_ADD_SPECIAL, &ti) || ti.n == 0) {
            fprintf(stderr, "engine/run: cannot encode --prompt '%.40s'\n", texts[i]);
            return 1;
        }
        free(rendered);
        int r = text_slot[i];
        prompts[r] = malloc(sizeof(int32_t) * ti.n);
        memcpy(prompts[r], ti.ids, sizeof(int32_t) * ti.n);
        plen[r] = (int)ti.n;
        tok_ids_free(&ti);
    }
    mc_config c;
    snprintf(path, sizeof path, "%s/config.json", model_dir ? model_dir : "");
    if (mc_load(&c, dummy ? dummy : path, err, sizeof err) || w_check_config(&c, err, sizeof err)) {
        fprintf(stderr, "engine/run: %s\n", err);
        return FRONT_USAGE;
    }
    if (eos_id == -2) eos_id = model_dir ? config_eos(path) : -1;
    cfg.model.lora = cli_lora_load(PROG, &lora, &c, stderr);      /* each adapter checked against c */
    static int lora_id[MAX_REQ];
    for (int r = 0; r < nreq; r++) {
        if (!lora_of[r] || !strcmp(lora_of[r], "none")) continue;
        if (!cfg.model.lora || !(lora_id[r] = lora_set_find(cfg.model.lora, lora_of[r]))) {
            fprintf(stderr, "engine/run: --lora %s: no such adapter (%s)\n", lora_of[r],
                    cfg.model.lora ? "see --lora-modules" : "give --enable-lora --lora-modules NAME=PATH");
            return 2;
        }
    }
    if (ignore_eos) eos_id = -1;
    cfg.eos_id = eos_id;
    int longest = 0;
    for (int r = 0; r < nreq; r++)
        if (plen[r] + max_tokens > longest) longest = plen[r] + max_tokens;
    if (cfg.model.max_model_len <= 0 && longest > 4096) cfg.model.max_model_len = longest;
    tp_engine *tpe = cli_tp_start(PROG, tp, &cfg.model);   /* the other ranks, each loading its shard below */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w_weights w;
    if (tp_engine_load(tpe, &c, model_dir, dummy_seed, &w, err, sizeof err)) {
        fprintf(stderr, "engine/run: %s\n", err);
        tp_engine_stop(tpe);
        return 1;
    }
    cfg.model.tp = tp_engine_rank(tpe);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "Loading weights took %.2f GiB and %.2f s (%s%s)\n", w.bytes / 1073741824.0,
            (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec), dummy ? "dummy" : model_dir,
            tpe ? ", rank 0's shard" : "");
    dump_ctx dc = {0};
    if (dump) {
        dc.nreq = nreq; dc.V = c.vocab_size;
        dc.rows = calloc((size_t)nreq, sizeof *dc.rows);
        dc.len = calloc((size_t)nreq, sizeof *dc.len);
        for (int r = 0; r < nreq; r++) {
            dc.len[r] = plen[r] + max_tokens - 1;
            dc.rows[r] = calloc((size_t)dc.len[r] * c.vocab_size, sizeof(float));
            if (!dc.rows[r]) { fprintf(stderr, "engine/run: out of memory for --dump-logits\n"); return 1; }
        }
        cfg.on_logits = on_logits;
        cfg.logits_ctx = &dc;
    }
    model_mem mem;
    eng *e = eng_create(&c, &w, &cfg, &mem, err, sizeof err);
    if (!e) {
        fprintf(stderr, "engine/run: %s\n", err);
        model_opts ro = cfg.model;
        model_resolve_opts(&c, &ro);
        cli_plan_report(stderr, &c, &ro, NULL);
        tp_engine_stop(tpe);
        return 1;
    }
    const model_opts *mo = model_options(eng_model(e));
    cli_tp_report(stderr, tpe, &c, &mem);
    fprintf(stderr, "Memory%s: weights %.2f GiB, activation peak %.2f GiB, KV cache %.2f GiB (%zu bytes/token)\n",
            tpe ? " per GPU (rank 0)" : "", mem.weights / 1073741824.0, mem.activations / 1073741824.0, mem.kv_cache / 1073741824.0,
            mem.kv_bytes_per_token);
    cli_lora_report(stderr, &lora, &c, mem.lora);
    fprintf(stderr, "GPU KV cache size: %ld tokens\n", mem.kv_tokens);
    fprintf(stderr, "Maximum concurrency for %d tokens per request: %.2fx\n", mo->max_model_len,
            mem.max_concurrency);
    fprintf(stderr, "KV policy: %s, %d blocks of %d, prefix caching %s\n", kv_policy_name(cfg.kv_policy),
            mem.num_blocks, mem.block_size, cfg.prefix_caching && cfg.kv_policy == KV_PAGED ? "on" : "off");
    if (mo->max_gpu_memory > 0) {
        fprintf(stderr, "# GPU blocks: %d (%.2f GiB x %.2f, --max-gpu-memory)\n", mem.num_blocks,
                mem.total / 1073741824.0, mo->gpu_memory_utilization);
        cli_plan_report(stderr, &c, mo, &mem);
    }
    cli_engine_report(stderr, e, &cfg, &mem);
    int rc = 1;
    collected col = { calloc((size_t)nreq, sizeof *col.res), calloc((size_t)nreq, sizeof *col.got), nreq, 0, 0 };
    eng_result *res = col.res;
    int *got = col.got;
    long prompt_tokens = 0;
    if (!res || !got) { fprintf(stderr, "engine/run: out of memory\n"); goto out; }
    for (int r = 0; r < nreq; r++) {
        eng_params p = { .max_tokens = max_tokens, .temperature = temperature, .top_k = top_k, .top_p = top_p,
                         .seed = seed + (uint64_t)r, .lora = lora_id[r] };
        if (eng_add_request(e, r, prompts[r], plen[r], &p, err, sizeof err)) {
            fprintf(stderr, "engine/run: %s\n", err);
            goto out;
        }
        prompt_tokens += plen[r];
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    eng_hooks hooks = { .on_step = count_step, .on_result = collect, .ctx = &col };
    if (eng_run(e, &hooks, err, sizeof err)) { fprintf(stderr, "engine/run: step %ld: %s\n", col.steps, err); goto out; }
    int steps = (int)col.steps;
    long gen_tokens = col.gen_tokens;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    const sched_stats *ss = eng_sched_stats(e);
    fprintf(stderr, "%d requests, %ld prompt + %ld generated tokens in %d steps, %.3f s (%.0f tokens/s), "
            "%ld preemptions (recompute)\n", nreq, prompt_tokens, gen_tokens, steps, sec,
            (prompt_tokens + gen_tokens) / (sec > 0 ? sec : 1), ss->preemptions);
    /* the KV pool as the simulator reports it: the same metrics collector */
    met_summary ms;
    if (eng_summary(e, &ms) == 0 && ms.steps > 0) {
        double held = ms.share_token + ms.share_reserved + ms.share_internal + ms.share_external;
        fprintf(stderr, "KV blocks: peak %d of %d used, mean %.1f; token states: mean %.1f%% of held slots; "
                "internal fragmentation: mean %.1f%% of held slots (time-averaged); prefix-cache hits %ld "
                "tokens\n", ms.max_blocks_used, mem.num_blocks, ms.mean_blocks_used,
                100.0 * ms.token_share_of_used, held > 0 ? 100.0 * ms.share_internal / held : 0.0,
                ms.prefix_hit_tokens);
    }
    for (int r = 0; r < nreq; r++) {
        if (!got[r]) { fprintf(stderr, "engine/run: request %d never finished\n", r); goto out; }
        const eng_result *x = &res[r];
        if (!quiet) {
            double ttft = x->first_token >= 0 ? x->first_token - x->arrival : -1;
            double tpot = x->num_tokens > 1 ? (x->finish - x->first_token) / (x->num_tokens - 1) : 0;
            fprintf(stderr, "request %d: prompt %d, output %d tokens, TTFT %.1f ms, TPOT %.2f ms, "
                    "latency %.1f ms, preemptions %d%s\n", r, x->prompt_len, x->num_tokens, 1e3 * ttft,
                    1e3 * tpot, 1e3 * (x->finish - x->arrival), x->num_preemptions, x->aborted ? ", aborted" : "");
        }
        if (as_text) { print_text(tok, x->tokens, x->num_tokens); continue; }
        for (int i = 0; i < x->num_tokens; i++) printf(i ? ",%d" : "%d", x->tokens[i]);
        printf("\n");
    }
    if (dump) {
        FILE *f = fopen(dump, "wb");
        if (!f) { fprintf(stderr, "engine/run: cannot write %s\n", dump); goto out; }
        int32_t hdr[3] = {0x474c5350 /* "PSLG" */, nreq, c.vocab_size};
        fwrite(hdr, 4, 3, f);
        for (int r = 0; r < nreq; r++) {
            const eng_result *x = &res[r];
            int32_t pg[2] = {plen[r], x->num_tokens};
            fwrite(pg, 4, 2, f);
            fwrite(prompts[r], 4, (size_t)plen[r], f);
            fwrite(x->tokens, 4, (size_t)x->num_tokens, f);
            fwrite(dc.rows[r], sizeof(float) * c.vocab_size, (size_t)(plen[r] + x->num_tokens - 1), f);
        }
        if (fclose(f)) { fprintf(stderr, "engine/run: write error on %s\n", dump); goto out; }
    }
    rc = 0;
out:
    eng_free(e);
    if (tp_engine_stop(tpe) && rc == 0) {
        fprintf(stderr, "engine/run: a tensor-parallel worker did not end well\n");
        rc = 1;
    }
    for (int r = 0; r < nreq; r++) free(prompts[r]);
    if (dump) { for (int r = 0; r < nreq; r++) free(dc.rows[r]); free(dc.rows); free(dc.len); }
    free(res); free(got);
    chat_tpl_free(ct);
    tok_free(tok);
    cli_lora_free(&lora);
    return rc;
}
