/* apps/engine/serve_main.c — the `engine/serve` command: parse options, pick a
 * backend (open_backend: the CUDA engine of serve/serve_engine.c for
 * --model/--dummy-weights, or the mock), serve until SIGINT/SIGTERM. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps/engine/cli.h"
#include "apps/engine/cli_lora.h"
#include "serve/serve.h"
#include "serve/serve_engine.h"

#define PROG "engine/serve"

static void usage(FILE *f) {
    fprintf(f,
        "usage: engine/serve (--model PATH | --dummy-weights CONFIG | --mock) [options]\n"
        "An OpenAI-compatible server: /v1/chat/completions, /v1/completions, /v1/models,\n"
        "/health, /metrics (Prometheus, vLLM's metric names).\n"
        "\n"
        "  --model PATH              a Hugging Face checkpoint directory (CUDA engine)\n"
        "  --dummy-weights CONFIG    random weights at the shapes of a config.json (CUDA engine)\n"
        "  --mock                    no GPU: deterministic JSON decisions, one token per step\n"
        "  --host ADDR               address to bind (default 127.0.0.1: loopback only)\n"
        "  --port N                  TCP port (default 8000; 0 = any free port)\n"
        "  --api-key KEY             require \"Authorization: Bearer KEY\" on /v1/*\n"
        "                            (default: $PAGESIM_API_KEY when set; never empty)\n"
        "  --timeout-keep-alive S    close a connection idle S seconds with no request in\n"
        "                            progress, before its request head or between requests\n"
        "                            (default 5, as vLLM/uvicorn)\n"
        "  --shutdown-timeout S      on SIGTERM/SIGINT, refuse new requests (503) and let\n"
        "                            those in flight finish for up to S seconds, then end\n"
        "                            each stream cleanly (finish chunk, [DONE]); a second\n"
        "                            signal ends them at once (default 30; 0: at once)\n"
        "  --max-body BYTES          request body limit (default 1048576)\n"
        "  --max-tokens-limit N      largest max_tokens accepted (default 32768)\n"
        "  --served-model-name NAME  the model name clients send (default: mock / the path)\n"
        "  --chat-template NAME|FILE the chat template: default the model's own (chat_template of\n"
        "                            the tokenizer_config.json beside the tokenizer); a family\n"
        "                            (chatml, qwen2.5, qwen3, llama3, llama3.1, gemma), a\n"
        "                            tokenizer_config.json or a Jinja file; qwen3 when none\n"
        "  --max-connections N       concurrent connections (default 1024)\n"
        "  --token-delay-ms X        mock: time of one engine step (default 10)\n"
        "  --max-num-seqs N          sequences running at once (default 256)\n"
        "  --max-num-batched-tokens N  tokens per step (default 8192)\n"
        "  --max-model-len N         tokens per sequence (engine: default min(max_position,\n"
        "                            4096); mock: 32768)\n"
        "  --num-gpu-blocks N        KV blocks (engine: instead of what memory allows;\n"
        "                            mock: default 8192)\n"
        CLI_MAX_GPU_MEM_HELP
        "  --block-size N            KV block size (default 16)\n"
        "  --no-enable-prefix-caching  turn automatic prefix caching off (on by default)\n"
        "Engine (--model / --dummy-weights):\n"
        "  --tokenizer FILE          tokenizer.json (default: PATH/tokenizer.json, or\n"
        "                            data/tokenizers/qwen3/tokenizer.json with --dummy-weights)\n"
        "  --dummy-seed N            seed of the random weights (default 0)\n"
        "  --kv-policy paged|contiguous  paged blocks (default) or max_model_len reserved per sequence\n"
        "  --gpu-memory-utilization F  share of GPU memory to use (default 0.9)\n"
        "  --enforce-eager           every step eager: no CUDA graphs of decode-only steps (by default\n"
        "                            one per batch bucket, as vLLM's; off with -tp, LoRA: the log says why)\n"
        "  --tensor-parallel-size N, -tp N  GPUs to shard the model over, one process each, through\n"
        "                            NCCL (default: one GPU without NCCL; 1: one GPU through NCCL)\n"
        "  --enable-lora             runtime LoRA adapters (vLLM's options): a request's \"model\"\n"
        "                            names an adapter (or the base model); /v1/models lists them\n"
        "  --lora-modules NAME=PATH ...  PEFT adapters to serve (repeatable)\n"
        "  --max-loras N             adapters in GPU memory at once (default 1)\n"
        "  --max-lora-rank R         rank of the GPU slots (default 16)\n"
        "  --verbose                 one log line per request on stderr\n"
        "  --data-dir DIR            the project's data folder (data/... paths)\n"
        "  --version, --help\n"
        "Exit status: 0 stopped by a signal after draining, 1 the server failed (the GPU, the port),\n"
        "2 bad usage or input (options, the model's files, the tokenizer, the chat template).\n");
}

static void log_line(void *ctx, const char *line) { (void)ctx; fprintf(stderr, "serve: %s\n", line); }

typedef struct {
    const char *model_path, *dummy_cfg, *served_name;
    int mock;
    double token_delay_ms;
    int max_num_seqs;
    srv_engine_opts eng;         /* --model / --dummy-weights */
    cli_lora lora;               /* --enable-lora ... */
} backend_choice;

enum { O_HELP = 'h', O_MOCK = 256, O_VERBOSE, O_MODEL, O_DUMMY, O_HOST, O_PORT, O_API_KEY, O_MAX_BODY,
       O_MAX_TOKENS_LIMIT, O_MAX_CONNECTIONS, O_SERVED_NAME, O_CHAT_TEMPLATE, O_TOKENIZER, O_DUMMY_SEED,
       O_NO_PREFIX, O_TOKEN_DELAY, O_KEEP_ALIVE, O_SHUTDOWN_TIMEOUT, O_ENABLE_PREFIX, O_ENFORCE_EAGER };
static const opt_spec k_opts[] = {
    { "help", O_HELP, OPT_FLAG },                 { "mock", O_MOCK, OPT_FLAG },
    { "verbose", O_VERBOSE, OPT_FLAG },           { "model", O_MODEL, OPT_VALUE },
    { "dummy-weights", O_DUMMY, OPT_VALUE },      { "host", O_HOST, OPT_VALUE },
    { "port", O_PORT, OPT_VALUE },                { "api-key", O_API_KEY, OPT_VALUE },
    { "max-body", O_MAX_BODY, OPT_VALUE },        { "max-tokens-limit", O_MAX_TOKENS_LIMIT, OPT_VALUE },
    { "max-connections", O_MAX_CONNECTIONS, OPT_VALUE },
    { "served-model-name", O_SERVED_NAME, OPT_VALUE },
    { "chat-template", O_CHAT_TEMPLATE, OPT_VALUE },
    { "tokenizer", O_TOKENIZER, OPT_VALUE },      { "dummy-seed", O_DUMMY_SEED, OPT_VALUE },
    FRONT_PREFIX_ROWS(O_ENABLE_PREFIX, O_NO_PREFIX),  FRONT_SPECS,
    { "token-delay-ms", O_TOKEN_DELAY, OPT_VALUE },  { "enforce-eager", O_ENFORCE_EAGER, OPT_FLAG },
    { "timeout-keep-alive", O_KEEP_ALIVE, OPT_VALUE }, { "shutdown-timeout", O_SHUTDOWN_TIMEOUT, OPT_VALUE },
    CLI_MODEL_SPECS,
    CLI_TP_SPECS,
    CLI_LORA_SPECS,
    { NULL, 0, 0 },
};

/* The single place that picks a backend: the CUDA engine for --model /
 * --dummy-weights (its memory plan is logged), or the mock. */
static srv_backend *open_backend(backend_choice *bc, char *err, size_t cap) {
    if (bc->mock) {
        srv_mock_opts mo;
        srv_mock_opts_init(&mo);
        const model_opts *m = &bc->eng.model;
        if (bc->served_name) mo.model = bc->served_name;
        mo.token_delay_us = (int)(bc->token_delay_ms * 1000);
        mo.max_num_seqs = bc->max_num_seqs;
        if (m->max_num_batched_tokens > 0) mo.max_num_batched_tokens = m->max_num_batched_tokens;
        if (m->num_gpu_blocks > 0) mo.num_blocks = m->num_gpu_blocks;
        if (m->block_size > 0) mo.block_size = m->block_size;
        long slots = (long)mo.num_blocks * mo.block_size;
        if (m->max_model_len > 0) mo.max_model_len = m->max_model_len;   /* given: checked by the mock */
        else if (mo.max_model_len > slots) mo.max_model_len = slots;     /* the default fits the pool */
        mo.prefix_caching = bc->eng.prefix_caching;
        return srv_mock_create(&mo, err, cap);
    }
    bc->eng.model_dir = bc->model_path;
    bc->eng.dummy_config = bc->dummy_cfg;
    bc->eng.served_name = bc->served_name;
    bc->eng.model.max_num_seqs = bc->max_num_seqs;
    mc_config c;
    char path[4200];
    snprintf(path, sizeof path, "%s%s", bc->model_path ? bc->model_path : bc->dummy_cfg, bc->model_path ? "/config.json" : "");
    if (bc->lora.enabled || bc->lora.n) {   /* the adapters, checked against the model before it loads */
        if (mc_load(&c, path, err, cap)) return NULL;
        bc->eng.model.lora = cli_lora_load(PROG, &bc->lora, &c, stderr);
    }
    char info[2048];
    srv_backend *b = srv_engine_create(&bc->eng, info, sizeof info, err, cap);
    if (b) fprintf(stderr, "%s\n", info);
    if (b && bc->eng.tp && mc_load(&c, path, err, cap) == 0)    /* the memory lines above are rank 0's */
        cli_tp_report(stderr, bc->eng.tp, &c, NULL);
    return b;
}

/* A second SIGINT/SIGTERM while draining ends the grace period. */
typedef struct { pthread_mutex_t mu; srv_server *s; sigset_t set; } hurry_args;
static void *hurry_thread(void *arg) {
    hurry_args *h = arg;
    int sig = 0;
    if (sigwait(&h->set, &sig) != 0) return NULL;
    pthread_mutex_lock(&h->mu);
    if (h->s) srv_drain_now(h->s);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int main(int argc, char **argv) {
    srv_opts o;
    srv_opts_init(&o);
    backend_choice bc = {0};
    int tp = 0;                             /* --tensor-parallel-size (0: not given, one GPU without NCCL) */
    srv_engine_opts_init(&bc.eng);
    cli_lora_init(&bc.lora);
    bc.token_delay_ms = 10;
    bc.max_num_seqs = 256;
    const char *template_spec = NULL;
    double shutdown_timeout = 30;
    const char *env_key = getenv("PAGESIM_API_KEY");
    if (env_key) o.api_key = env_key;
    opt_parser op;
    const char *v;
    char perr[256];
    int k;
    front_init(PROG);
    cli_engine_env(PROG, &bc.eng.model);
    if (opt_begin(&op, argc, argv, k_opts, perr, sizeof perr)) cli_usage_error(PROG, perr);
    while ((k = opt_next(&op, &v, perr, sizeof perr)) != OPT_END) {
        const char *a = opt_name(&op);
        switch (k) {
        case O_HELP: usage(stdout); return 0;
        case O_MOCK: bc.mock = 1; break;
        case O_VERBOSE: o.log = log_line; break;
        case O_MODEL: bc.model_path = v; break;
        case O_DUMMY: bc.dummy_cfg = v; break;
        case O_HOST: o.host = v; break;
        case O_PORT: o.port = cli_int(PROG, a, v, 0, 65535); break;
        case O_API_KEY: o.api_key = v; break;
        case O_KEEP_ALIVE: o.keep_alive_s = (unsigned)cli_int(PROG, a, v, 1, 86400); break;
        case O_SHUTDOWN_TIMEOUT: shutdown_timeout = cli_int(PROG, a, v, 0, 86400); break;
        case O_MAX_BODY: { long x; if (opt_long(a, v, 1, LONG_MAX, &x, perr, sizeof perr)) cli_usage_error(PROG, perr);
                           o.max_body = (size_t)x; break; }
        case O_MAX_TOKENS_LIMIT: o.max_tokens_limit = cli_int(PROG, a, v, 1, INT_MAX); break;
        case O_MAX_CONNECTIONS: o.conn_limit = (unsigned)cli_int(PROG, a, v, 1, 1000000); break;
        case O_SERVED_NAME: bc.served_name = v; break;
        case O_CHAT_TEMPLATE:
            if (chat_kind_parse(v) == CHAT_UNKNOWN && access(v, R_OK) != 0) {
                fprintf(stderr, "engine/serve: --chat-template '%s' is neither a family (chatml, qwen2.5, qwen3, "
                        "llama3, llama3.1, gemma) nor a readable file\n", v);
                return 2;
            }
            template_spec = v;
            break;
        case CLI_MAX_SEQS: bc.max_num_seqs = cli_int(PROG, a, v, 1, 1 << 20); break;   /* both backends */
        case O_TOKENIZER: bc.eng.tokenizer = v; break;
        case O_DUMMY_SEED: bc.eng.dummy_seed = (uint64_t)cli_u64(PROG, a, v); break;
        case O_NO_PREFIX: bc.eng.prefix_caching = 0; break;
        case O_ENFORCE_EAGER: bc.eng.model.cuda_graphs = -1; break;
        case O_ENABLE_PREFIX: bc.eng.prefix_caching = 1; break;
        case O_TOKEN_DELAY: bc.token_delay_ms = cli_num(PROG, a, v, 0, 60000); break;
        case CLI_TP: tp = cli_int(PROG, a, v, 1, 1024); break;
        case OPT_ARG:
            if (cli_lora_positional(PROG, v, &bc.lora)) break;
            snprintf(perr, sizeof perr, "unexpected argument '%s'", v);
            cli_usage_error(PROG, perr);
        case OPT_ERROR: cli_usage_error(PROG, perr);
        default:
            if (!front_option(PROG, k, v) && !cli_lora_option(PROG, k, a, v, &bc.lora))
                cli_model_option(PROG, k, a, v, &bc.eng.model, &bc.eng.kv_policy);
            break;
        }
    }
    opt_end(&op);
    if (o.api_key && !*o.api_key) {
        fprintf(stderr, "engine/serve: the API key is empty (%s): it would let every client in; "
                "give a key, or none to serve without one\n", env_key && o.api_key == env_key ? "PAGESIM_API_KEY" : "--api-key");
        return 2;
    }
    if (bc.mock && (bc.lora.enabled || bc.lora.n)) cli_usage_error(PROG, "--enable-lora needs the engine (--model or --dummy-weights)");
    if (bc.mock + !!bc.model_path + !!bc.dummy_cfg != 1) {
        fprintf(stderr, "engine/serve: give exactly one of --model PATH, --dummy-weights CONFIG, --mock\n");
        usage(stderr);
        return 2;
    }
    if (!bc.mock) cli_tp_check(PROG, tp);   /* before anything starts CUDA or a thread */
    if (!bc.mock) {                         /* the other ranks, forked before any thread (the backend's defaults) */
        model_opts lim = bc.eng.model;
        lim.max_num_seqs = bc.max_num_seqs;
        if (lim.max_num_batched_tokens <= 0) lim.max_num_batched_tokens = 8192;
        bc.eng.tp = cli_tp_start(PROG, tp, &lim);
    }
    /* block the stop signals in every thread; main waits for them below */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    srv_backend *be = open_backend(&bc, err, sizeof err);
    if (!be) { fprintf(stderr, "engine/serve: %s\n", err); tp_engine_stop(bc.eng.tp); return 1; }
    /* the chat template: the checkpoint's own (beside its tokenizer), else --chat-template, else qwen3's */
    const char *tokat = bc.eng.tokenizer ? bc.eng.tokenizer : bc.model_path;
    chat_tpl *tpl = NULL;
    if (template_spec || tokat) {
        tpl = chat_tpl_for(template_spec, tokat ? tokat : ".", bc.model_path && !template_spec ? CHAT_UNKNOWN : CHAT_QWEN3,
                           err, sizeof err);
        if (!tpl) {
            fprintf(stderr, "engine/serve: %s; choose one with --chat-template NAME|FILE\n", err);
            be->destroy(be);
            return FRONT_USAGE;
        }
        o.chat_template = tpl;
        fprintf(stderr, "engine/serve: chat template %s\n", chat_tpl_name(tpl));
    }
    srv_server *s = srv_start(&o, be, err, sizeof err);
    if (!s) { fprintf(stderr, "engine/serve: %s\n", err); be->destroy(be); chat_tpl_free(tpl); return 1; }
    const char *h = o.host;
    int v6 = strchr(h, ':') != NULL;
    fprintf(stderr, "engine/serve: serving '%s' on http://%s%s%s:%d%s (SIGTERM or Ctrl-C drains)\n", be->model,
            v6 ? "[" : "", h, v6 ? "]" : "", srv_port(s), o.api_key ? ", API key required" : "");
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "engine/serve: %s, draining: new requests get 503, those in flight have %.0f s "
            "(signal again to end them now)\n", sig == SIGINT ? "SIGINT" : "SIGTERM", shutdown_timeout);
    pthread_t watcher;
    static hurry_args ha = {PTHREAD_MUTEX_INITIALIZER, NULL, {{0}}};
    ha.s = s;
    ha.set = set;
    if (pthread_create(&watcher, NULL, hurry_thread, &ha) == 0) pthread_detach(watcher);
    srv_drain(s, shutdown_timeout);
    pthread_mutex_lock(&ha.mu);
    ha.s = NULL;
    pthread_mutex_unlock(&ha.mu);
    srv_stop(s);
    be->destroy(be);
    chat_tpl_free(tpl);
    cli_lora_free(&bc.lora);
    int stop = tp_engine_stop(bc.eng.tp);
    fprintf(stderr, "engine/serve: stopped\n");
    return stop ? 1 : 0;
}
