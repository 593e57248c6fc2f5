/* labs/bias: the command.  Runs the investment-bias experiment the way the
 * study's scripts do (every set, then the aggregation), with simulated
 * replies from a bias profile, the CUDA engine in process (--real) or a server
 * (--server); also `analyze`, `gen-evidence`, `fit-profile`, `compare`.
 * Only this file prints and exits. */
#include "apps/common/front.h"
#include "engine/engine.h"
#include "base/file.h"
#include "base/opt.h"
#include "sim/gpu_table.h"
#include "labs/bias_aggregate.h"
#include "labs/bias_data.h"
#include "labs/bias_dump.h"
#include "labs/bias_evidence.h"
#include "labs/bias_fit.h"
#include "labs/bias_output.h"
#include "labs/bias_profile.h"
#include "labs/bias_run.h"
#include "labs/bias_serving.h"
#include "labs/bias_figure.h"
#include "labs/bias_metrics.h"
#include "labs/bias_tokens.h"
#include "labs/bias_compare.h"
#include "labs/bias_sources.h"
#include "engine/tp_comm.h"
#include "engine/tp_engine.h"
#include "sim/planner.h"
#include "base/clock.h"
#include <cairo.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TICKERS "data/universe/sp500.csv"
#define DEFAULT_PROFILE "data/bias_profiles/qwen3-30b-a3b.json"
#define DEFAULT_MODEL_CONFIG "data/models/qwen3-30b-a3b-instruct-2507.json"
#define DEFAULT_MODEL "Qwen/Qwen3-30B-A3B-Instruct-2507"

/* ---- the command line: one option table per subcommand (base/opt.h); a bad
 * command line prints "labs/bias[ CMD]: ..." and exits with 2 ------------------ */
_Noreturn static void bad_usage(const char *cmd, const char *err) {
    fprintf(stderr, "%s: %s (see --help)\n", cmd, err);
    exit(2);
}
/* The next option of p (its key) or OPT_END; exits on an error or a positional argument. */
static int next_opt(opt_parser *p, const char *cmd, const char **v) {
    char err[512];
    int k;
    while (front_option(cmd, k = opt_next(p, v, err, sizeof err), *v)) {}   /* --version, --data-dir */
    if (k == OPT_ARG) { snprintf(err, sizeof err, "unexpected argument '%s'", *v); bad_usage(cmd, err); }
    if (k == OPT_ERROR) bad_usage(cmd, err);
    return k;
}
static void begin(opt_parser *p, const char *cmd, int argc, char **argv, const opt_spec *specs) {
    char err[256];
    if (opt_begin(p, argc, argv, specs, err, sizeof err)) bad_usage(cmd, err);
}
/* Strict numbers for options: the whole word must parse, in range (exit 2 otherwise). */
static int arg_int(const char *cmd, const opt_parser *p, const char *v, long lo, long hi) {
    char err[256];
    int x;
    if (opt_int(opt_name(p), v, lo, hi, &x, err, sizeof err)) bad_usage(cmd, err);
    return x;
}
static double arg_num(const char *cmd, const opt_parser *p, const char *v, double lo, double hi) {
    char err[256];
    double x;
    if (opt_num(opt_name(p), v, lo, hi, &x, err, sizeof err)) bad_usage(cmd, err);
    return x;
}
static unsigned long long arg_seed(const char *cmd, const opt_parser *p, const char *v) {
    char err[256];
    unsigned long long x;
    if (opt_u64(opt_name(p), v, &x, err, sizeof err)) bad_usage(cmd, err);
    return x;
}

/* Every option key of every subcommand (a subcommand's table picks its own). */
enum { O_HELP = 'h', O_MODEL_ID = 256, O_OUTPUT_DIR, O_REBUILD, O_COMBINED, O_TICKERS, O_EVIDENCE_SEED,
       O_OUT_DIR, O_RESULT, O_OUT, O_NAME, O_HABITS, O_NUM_SETS, O_NUM_TRIALS, O_REAL, O_SERVER, O_API_KEY,
       O_SERVED_NAME, O_REQUEST_TIMEOUT, O_MODEL, O_DUMMY, O_DUMMY_SEED, O_DECISION, O_REPLY_LENGTHS,
       O_KV_POLICY, O_GPU_UTIL, O_NUM_GPU_BLOCKS, O_MAX_SEQS, O_BLOCK_SIZE, O_NO_PREFIX, O_CHAT_TEMPLATE,
       O_COEFFS, O_NO_COMPARE, O_DUMP_PROMPTS, O_TEMPERATURE, O_TOP_P, O_MAX_TOKENS, O_MAX_WORKERS, O_SEED,
       O_QUAL, O_QUANT, O_PROFILE, O_GPU, O_MODEL_CONFIG, O_TP, O_MAX_LEN, O_MAX_BATCHED, O_TOKENIZER,
       O_NO_SERVING, O_QUIET, O_BATCH_DELAY, O_TRACE, O_PREFIX, O_OP_PROFILE };

static void usage(FILE *f) {
    fprintf(f,
"usage: labs/bias [options]            run every set, then the aggregation\n"
"       labs/bias analyze --model-id ID [--output-dir DIR] [--rebuild]\n"
"       labs/bias gen-evidence [--tickers CSV] [--evidence-seed N] [--out-dir DIR]\n"
"       labs/bias fit-profile --result JSON [--tickers CSV] [--out FILE] [--name NAME]\n"
"       (for a class: labs/bias-sheet, the same run in simulation with a worksheet)\n"
"\n"
"The study's options (same names and defaults):\n"
"  --model-id ID        model; files are named after the part after '/' (" DEFAULT_MODEL ")\n"
"  --temperature T      0.6     --top-p P   0.8     --max-tokens N   1024\n"
"  --num-sets N         2       --num-trials N  10  --max-workers N  200 (prompts per batch, requests in flight)\n"
"  --seed N             42      evidence sampling, shuffling and simulated replies\n"
"  --output-dir DIR     ./result\n"
"  --tickers CSV        ticker,name,sector,marketcap (" DEFAULT_TICKERS ")\n"
"  --qual CSV --quant CSV  evidence (ticker,opinion,evidence1,evidence2); without them the\n"
"                       project's generator writes evidence for the tickers on the fly\n"
"Simulation:\n"
"  --profile FILE       bias profile of the simulated model (" DEFAULT_PROFILE ")\n"
"  --evidence-seed N    seed of the generated evidence (1)\n"
"  --gpu NAME           GPU for the serving simulation (H200)\n"
"  --model-config FILE  config.json of the served model (" DEFAULT_MODEL_CONFIG ")\n"
"  --tensor-parallel-size N, -tp N  tensor parallelism (4; with --real the engine's GPUs:\n"
"                       one GPU without NCCL unless given, N GPUs through NCCL when given)\n"
"  --max-model-len N    tokens reserved per request by the contiguous baseline (4096)\n"
"  --max-num-batched-tokens N  scheduler token budget per step (8192, vLLM V1's server default)\n"
"  --no-serving         skip the serving simulation (no memory JSON, no figure)\n"
"  --op-profile FILE|auto|none  step times of the serving simulation and the comparison: an\n"
"                       operator profile (engine/bench --profile-ops); auto: data/profiles/<GPU>/ when one\n"
"                       matches the GPU, model and TP, else the roofline; none: the roofline [auto]\n"
"  --tokenizer FILE     tokenizer.json for token counts (data/tokenizers/qwen3/tokenizer.json;\n"
"                       one given must load; none: estimate 4 bytes a token, as when the\n"
"                       default is absent)\n"
"  --quiet              no progress line\n"
"  --batch-delay-ms N   pause after every batch (to watch, or test, a kill and resume)\n"
"Real replies (same outputs and resume; also {model}_att_trace.json and _att_compare.json/.png):\n"
"  --server URL         any OpenAI-compatible server (vLLM, engine/serve): chat completions, --max-workers\n"
"                       in flight, 3 tries 2 s apart, streamed TTFT and usage into the metrics file\n"
"  --api-key KEY        bearer token ($OPENAI_API_KEY)   --served-model-name NAME  the \"model\" field\n"
"  --request-timeout S  per try (600)\n"
"  --real               the CUDA engine in this process (needs a GPU; else use the simulation)\n"
"  --model PATH|ORG/NAME  checkpoint directory, or a Hugging Face id (cache, downloaded when online)\n"
"  --dummy-weights CONFIG random weights at a config.json's shapes: real time and memory, the\n"
"                       decisions mean nothing (every output file says so)   --dummy-seed N (0)\n"
"  --decision free|logits  free generation (default) or P(buy) from the engine's log-probabilities\n"
"                       after the forced prefix {\"decision\": \" (a p_buy column in the set files)\n"
"  --reply-lengths model|profile  profile: each request's max_tokens is the profile's reply length\n"
"                       (default with --dummy-weights, whose replies would never stop)\n"
"  --kv-policy paged|contiguous  --gpu-memory-utilization F  --num-gpu-blocks N  --max-num-seqs N\n"
"  --block-size N  --no-enable-prefix-caching   engine settings\n"
"  --chat-template NAME|FILE  the prompt's chat template: default the model's own (chat_template of the\n"
"                       tokenizer_config.json beside the tokenizer), else qwen3; a family (chatml, qwen2.5,\n"
"                       qwen3, llama3, llama3.1, gemma), a tokenizer_config.json or a Jinja file\n"
"  --coeffs FILE        cost-model coefficients for the comparison (pagesim calibrate)  --no-compare\n"
"       labs/bias compare --trace FILE [--trace FILE]   redo the comparison (see compare --help)\n"
"  --dump-prompts FILE  run nothing: write the run's prompts as JSON lines (set, ticker, trial, evidence\n"
"                       sides, prompt, chat-templated text and its token ids under --tokenizer and\n"
"                       --chat-template, as --real encodes them; reply_tokens: the profile's reply length)\n"
"Every command: --data-dir DIR (the project's data folder: data/... paths are looked up there;\n"
"else $PAGESIM_DATA, else the data/ beside this program), --version, --help.  A --gpu,\n"
"--model-config, --tokenizer or --profile given must work, or nothing runs.\n"
"Exit status: 0 done, 1 the run failed (a server, the engine, a write error), 2 bad usage\n"
"or input (options, files named, tickers or evidence with errors).\n");
}

static const char *short_model(const char *id) {
    const char *s = strrchr(id, '/');
    return s ? s + 1 : id;
}

static void print_warnings(const bias_universe *u) {
    size_t shown = 0;
    for (size_t i = 0; i < u->nwarn; i++)
        if (shown++ < 20) fprintf(stderr, "labs/bias: warning: %s\n", u->warnings[i]);
    if (u->nwarn > 20) fprintf(stderr, "labs/bias: warning: ... and %zu more\n", u->nwarn - 20);
}

/* ---- analyze -------------------------------------------------------------- */

static int cmd_analyze(int argc, char **argv) {
    const char *model = NULL, *dir = "./result", *combined = NULL;
    int rebuild = 0;
    static const opt_spec specs[] = {
        { "help", O_HELP, OPT_FLAG },              { "model-id", O_MODEL_ID, OPT_VALUE },
        { "output-dir", O_OUTPUT_DIR, OPT_VALUE }, { "rebuild", O_REBUILD, OPT_FLAG },
        { "combined", O_COMBINED, OPT_VALUE },      FRONT_SPECS, { NULL, 0, 0 },
    };
    const char *cmd = "labs/bias analyze", *v;
    opt_parser op;
    int k;
    begin(&op, cmd, argc, argv, specs);
    while ((k = next_opt(&op, cmd, &v)) != OPT_END) {
        switch (k) {
        case O_HELP:
            opt_end(&op);
            printf("usage: labs/bias analyze --model-id ID [--output-dir DIR] [--rebuild] [--combined CSV]\n"
                   "  Aggregates DIR/ID_att_combined.csv (or, when absent or with --rebuild,\n"
                   "  the set files DIR/ID_att_set_N.csv) into DIR/ID_att_result.json, as the\n"
                   "  study's aggregation does.  --combined reads a combined CSV from anywhere\n"
                   "  (e.g. a read-only copy) and writes only the result into DIR.\n");
            return 0;
        case O_MODEL_ID: model = v; break;
        case O_OUTPUT_DIR: dir = v; break;
        case O_REBUILD: rebuild = 1; break;
        case O_COMBINED: combined = v; break;
        }
    }
    opt_end(&op);
    if (!model) { fprintf(stderr, "labs/bias analyze: --model-id is required (see --help)\n"); return 2; }
    char err[1024];
    bias_result r;
    if (combined) {
        bias_csv t;
        int bad = bias_csv_load(&t, combined, err, sizeof err) != 0;
        if (!bad) { bad = bias_analyze_table(&t, &r, err, sizeof err) != 0; bias_csv_free(&t); }
        if (!bad) bad = file_mkdirs(dir) != 0 && (snprintf(err, sizeof err, "%s: %s", dir, strerror(errno)), 1);
        if (!bad) bad = bias_write_result(dir, short_model(model), &r, err, sizeof err) != 0;
        if (bad) { fprintf(stderr, "labs/bias analyze: %s\n", err); return 1; }
    } else if (bias_aggregate(dir, short_model(model), rebuild, &r, err, sizeof err)) {
        fprintf(stderr, "labs/bias analyze: %s\n", err); return 1;
    }
    printf("Bias result saved to %s/%s_att_result.json\n", dir, short_model(model));
    printf("Bias Index: %d\n", r.bias_index);
    printf("  sector: high %s (%.1f), low %s (%.1f), t = %.4f, p = %.3g\n", r.t_sector.high,
           r.nsector ? r.sector[0].mean : 0, r.t_sector.low, r.nsector ? r.sector[r.nsector - 1].mean : 0,
           r.t_sector.t, r.t_sector.p);
    printf("  size:   high %s (%.1f), low %s (%.1f), t = %.4f, p = %.3g\n", r.t_size.high,
           r.size[0].mean, r.t_size.low, r.size[r.nsize - 1].mean, r.t_size.t, r.t_size.p);
    return 0;
}

/* ---- gen-evidence ------------------------------------------------------------ */


static int cmd_gen_evidence(int argc, char **argv) {
    const char *tickers = DEFAULT_TICKERS, *dir = "build/data";
    unsigned long long seed = 1;
    static const opt_spec specs[] = {
        { "help", O_HELP, OPT_FLAG },                   { "tickers", O_TICKERS, OPT_VALUE },
        { "evidence-seed", O_EVIDENCE_SEED, OPT_VALUE }, { "seed", O_EVIDENCE_SEED, OPT_VALUE },
        { "out-dir", O_OUT_DIR, OPT_VALUE },             FRONT_SPECS, { NULL, 0, 0 },
    };
    const char *cmd = "labs/bias gen-evidence", *v;
    opt_parser op;
    int k;
    begin(&op, cmd, argc, argv, specs);
    while ((k = next_opt(&op, cmd, &v)) != OPT_END) {
        switch (k) {
        case O_HELP:
            opt_end(&op);
            printf("usage: labs/bias gen-evidence [--tickers CSV] [--evidence-seed N] [--out-dir DIR]\n"
                   "  Writes DIR/evidence_qual.csv and DIR/evidence_quant.csv (ticker,opinion,evidence1,evidence2)\n"
                   "  for the tickers, deterministic by seed (defaults: %s, 1, build/data).\n", DEFAULT_TICKERS);
            return 0;
        case O_TICKERS: tickers = v; break;
        case O_EVIDENCE_SEED: seed = arg_seed(cmd, &op, v); break;
        case O_OUT_DIR: dir = v; break;
        }
    }
    opt_end(&op);
    char err[1024], q[4096], n[4096];
    bias_universe u;
    if (bias_universe_load_tickers(&u, tickers, err, sizeof err)) { fprintf(stderr, "labs/bias gen-evidence: %s\n", err); return 1; }
    print_warnings(&u);
    if (file_mkdirs(dir)) { fprintf(stderr, "labs/bias gen-evidence: %s: %s\n", dir, strerror(errno)); bias_universe_free(&u); return 1; }
    snprintf(q, sizeof q, "%s/evidence_qual.csv", dir);
    snprintf(n, sizeof n, "%s/evidence_quant.csv", dir);
    int rc = 0;
    if (bias_evidence_generate(&u, seed, err, sizeof err) || bias_evidence_write(&u, q, n, err, sizeof err)) {
        fprintf(stderr, "labs/bias gen-evidence: %s\n", err); rc = 1;
    } else {
        printf("wrote %s and %s (%zu tickers, seed %llu)\n", q, n, u.n, seed);
    }
    bias_universe_free(&u);
    return rc;
}

/* ---- fit-profile ---------------------------------------------------------------- */

static int cmd_fit(int argc, char **argv) {
    const char *result = NULL, *tickers = DEFAULT_TICKERS, *out = NULL, *name = "fitted", *habits = NULL;
    int sets = 3, trials = 10;
    static const opt_spec specs[] = {
        { "help", O_HELP, OPT_FLAG },            { "result", O_RESULT, OPT_VALUE },
        { "tickers", O_TICKERS, OPT_VALUE },     { "out", O_OUT, OPT_VALUE },
        { "name", O_NAME, OPT_VALUE },           { "habits", O_HABITS, OPT_VALUE },
        { "num-sets", O_NUM_SETS, OPT_VALUE },   { "num-trials", O_NUM_TRIALS, OPT_VALUE },
        FRONT_SPECS,                             { NULL, 0, 0 },
    };
    const char *cmd = "labs/bias fit-profile", *v;
    opt_parser op;
    int k;
    begin(&op, cmd, argc, argv, specs);
    while ((k = next_opt(&op, cmd, &v)) != OPT_END) {
        switch (k) {
        case O_HELP:
            opt_end(&op);
            printf("usage: labs/bias fit-profile --result JSON [--tickers CSV] [--out FILE] [--name NAME]\n"
                   "                             [--num-sets 3] [--num-trials 10] [--habits PROFILE]\n"
                   "  Fits sector and size effects and ticker noise to a published {model}_att_result.json;\n"
                   "  reply habits (hold, malformed, lengths, option order) come from --habits.\n");
            return 0;
        case O_RESULT: result = v; break;
        case O_TICKERS: tickers = v; break;
        case O_OUT: out = v; break;
        case O_NAME: name = v; break;
        case O_HABITS: habits = v; break;
        case O_NUM_SETS: sets = arg_int(cmd, &op, v, 1, 1000); break;
        case O_NUM_TRIALS: trials = arg_int(cmd, &op, v, 1, 100000); break;
        }
    }
    opt_end(&op);
    if (!result) { fprintf(stderr, "labs/bias fit-profile: --result is required (see --help)\n"); return 2; }
    if (sets < 1 || trials < 1) { fprintf(stderr, "labs/bias fit-profile: --num-sets and --num-trials must be >= 1\n"); return 2; }
    char err[1024];
    bias_universe u;
    bias_profile p;
    bias_buf note = {0};
    if (habits) { if (bias_profile_load(&p, habits, err, sizeof err)) { fprintf(stderr, "labs/bias fit-profile: %s\n", err); return 1; } }
    else bias_profile_null(&p);
    snprintf(p.name, sizeof p.name, "%s", name);
    if (bias_universe_load_tickers(&u, tickers, err, sizeof err)) { fprintf(stderr, "labs/bias fit-profile: %s\n", err); return 1; }
    int rc = 0;
    if (bias_fit_profile(result, &u, sets, trials, &p, &note, err, sizeof err)) { fprintf(stderr, "labs/bias fit-profile: %s\n", err); rc = 1; goto out; }
    if (out) {
        if (bias_profile_write(&p, note.s, out, err, sizeof err)) { fprintf(stderr, "labs/bias fit-profile: %s\n", err); rc = 1; goto out; }
        printf("wrote %s\n", out);
    } else {
        printf("base %.2f, ticker noise %.1f\n", p.base, p.ticker_noise);
        for (int s = 0; s < p.nsector; s++) printf("  %-24s %+7.2f\n", p.sector_name[s], p.sector[s]);
        for (int k = 0; k < 4; k++) printf("  Q%d %+7.2f\n", k + 1, p.size[k]);
        printf("%s\n", note.s);
    }
out:
    bias_buf_free(&note);
    bias_universe_free(&u);
    return rc;
}

/* Frees cairo's and fontconfig's caches (the figure's text) so that a leak
 * checker sees only our own memory; fontconfig is found at run time because
 * it is linked only through cairo. */
static void release_fonts(void) {
    cairo_debug_reset_static_data();
    void (*fc_fini)(void) = NULL;
    *(void **)&fc_fini = dlsym(RTLD_DEFAULT, "FcFini");
    if (fc_fini) fc_fini();
}

/* ---- the run ---------------------------------------------------------------------- */

typedef struct progress_state { int on, num_sets, delay_ms; } progress_state;

static void on_progress(void *ctx, int set, size_t done, size_t total, size_t resumed) {
    progress_state *p = ctx;
    if (p->delay_ms > 0 && done < total) usleep((useconds_t)p->delay_ms * 1000);   /* --batch-delay-ms */
    if (!p->on) return;
    static double t0; static int cur_set = -1;
    if (set != cur_set) { cur_set = set; t0 = clock_now_s(); }
    double el = clock_now_s() - t0, rate = el > 0 ? (double)(done - resumed) / el : 0;
    double left = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\rset %d/%d  %zu/%zu prompts  %.0f prompts/s  %.1f s left   ", set, p->num_sets, done, total, rate, left);
    if (done == total) fprintf(stderr, "\n");
}

/* Adds "note": text as the first field of the JSON object in path (a
 * dummy-weights run says so in every file). */
static int add_note(const char *path, const char *note, char *err, size_t errlen) {
    bias_buf in = {0}, out = {0};
    if (bias_buf_read_file(&in, path)) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    const char *brace = in.s ? strchr(in.s, '{') : NULL;
    int rc = -1;
    if (!brace) { snprintf(err, errlen, "%s: not a JSON object", path); goto done; }
    if (strstr(in.s, "\"note\":")) { rc = 0; goto done; }          /* already there (a resumed run) */
    bias_buf_add(&out, in.s, (size_t)(brace - in.s) + 1);
    bias_buf_printf(&out, "\n  \"note\": ");
    bias_json_str(&out, note);
    bias_buf_printf(&out, ",");
    bias_buf_add(&out, brace + 1, in.len - (size_t)(brace + 1 - in.s));
    rc = out.oom ? (snprintf(err, errlen, "out of memory"), -1) : bias_write_atomic(path, out.s, out.len, err, errlen);
done:
    bias_buf_free(&in); bias_buf_free(&out);
    return rc;
}

#define DUMMY_NOTE "dummy weights: the replies and decisions carry no meaning (random weights); times and memory are real"

static const opt_spec k_run_opts[] = {
    { "help", O_HELP, OPT_FLAG },                       { "real", O_REAL, OPT_FLAG },
    { "server", O_SERVER, OPT_VALUE },                  { "api-key", O_API_KEY, OPT_VALUE },
    { "served-model-name", O_SERVED_NAME, OPT_VALUE },  { "request-timeout", O_REQUEST_TIMEOUT, OPT_VALUE },
    { "model", O_MODEL, OPT_VALUE },                    { "dummy-weights", O_DUMMY, OPT_VALUE },
    { "dummy-seed", O_DUMMY_SEED, OPT_VALUE },          { "decision", O_DECISION, OPT_VALUE },
    { "reply-lengths", O_REPLY_LENGTHS, OPT_VALUE },    { "kv-policy", O_KV_POLICY, OPT_VALUE },
    FRONT_UTIL_ROWS(O_GPU_UTIL),                        FRONT_BLOCKS_ROWS(O_NUM_GPU_BLOCKS),
    FRONT_SEQS_ROWS(O_MAX_SEQS),                        { "block-size", O_BLOCK_SIZE, OPT_VALUE },
    FRONT_PREFIX_ROWS(O_PREFIX, O_NO_PREFIX),           { "chat-template", O_CHAT_TEMPLATE, OPT_VALUE },
    { "coeffs", O_COEFFS, OPT_VALUE },                  { "no-compare", O_NO_COMPARE, OPT_FLAG },
    { "dump-prompts", O_DUMP_PROMPTS, OPT_VALUE },      { "model-id", O_MODEL_ID, OPT_VALUE },
    { "temperature", O_TEMPERATURE, OPT_VALUE },        { "top-p", O_TOP_P, OPT_VALUE },
    { "max-tokens", O_MAX_TOKENS, OPT_VALUE },          { "num-sets", O_NUM_SETS, OPT_VALUE },
    { "num-trials", O_NUM_TRIALS, OPT_VALUE },          { "max-workers", O_MAX_WORKERS, OPT_VALUE },
    { "seed", O_SEED, OPT_VALUE },                      { "output-dir", O_OUTPUT_DIR, OPT_VALUE },
    { "tickers", O_TICKERS, OPT_VALUE },                { "qual", O_QUAL, OPT_VALUE },
    { "quant", O_QUANT, OPT_VALUE },                    { "profile", O_PROFILE, OPT_VALUE },
    { "evidence-seed", O_EVIDENCE_SEED, OPT_VALUE },    { "gpu", O_GPU, OPT_VALUE },
    { "model-config", O_MODEL_CONFIG, OPT_VALUE },      FRONT_TP_ROWS(O_TP),
    FRONT_MAX_LEN_ROWS(O_MAX_LEN),                      FRONT_BATCHED_ROWS(O_MAX_BATCHED),
    { "tokenizer", O_TOKENIZER, OPT_VALUE },            { "no-serving", O_NO_SERVING, OPT_FLAG },
    { "quiet", O_QUIET, OPT_FLAG },                     { "batch-delay-ms", O_BATCH_DELAY, OPT_VALUE },
    { "op-profile", O_OP_PROFILE, OPT_VALUE },          FRONT_SPECS,
    { NULL, 0, 0 },
};

static int cmd_run(int argc, char **argv) {
    bias_run_config c = { .model_id = DEFAULT_MODEL, .temperature = 0.6, .top_p = 0.8, .max_tokens = 1024,
                          .num_sets = 2, .num_trials = 10, .max_workers = 200, .seed = 42, .output_dir = "./result" };
    const char *tickers = DEFAULT_TICKERS, *qual = NULL, *quant = NULL, *profile = DEFAULT_PROFILE;
    bias_serving_config sc;
    bias_serving_defaults(&sc);
    sc.model_config = DEFAULT_MODEL_CONFIG;
    unsigned long long evseed = 1;
    int quiet = 0, serving = 1, delay_ms = 0, real = 0, compare = 1, gpu_given = 0, mc_given = 0, tp_given = 0;
    const char *server = NULL, *api_key = getenv("OPENAI_API_KEY"), *served = NULL, *decision = "free";
    const char *lengths = NULL, *coeffs = NULL, *dump = NULL, *opprof = NULL;
    double req_timeout = 600;
    bias_real_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.kv_policy = "paged"; ro.prefix_caching = 1;
    const char *cmd = "labs/bias", *v;
    opt_parser op;
    int k;
    begin(&op, cmd, argc, argv, k_run_opts);
    while ((k = next_opt(&op, cmd, &v)) != OPT_END) {
        switch (k) {
        case O_HELP: opt_end(&op); usage(stdout); return 0;
        case O_REAL: real = 1; break;
        case O_SERVER: server = v; break;
        case O_API_KEY: api_key = v; break;
        case O_SERVED_NAME: served = v; break;
        case O_REQUEST_TIMEOUT: req_timeout = arg_num(cmd, &op, v, 0.001, 1e6); break;
        case O_MODEL: ro.model = v; break;
        case O_DUMMY: ro.dummy_config = v; break;
        case O_DUMMY_SEED: ro.dummy_seed = arg_seed(cmd, &op, v); break;
        case O_DECISION: decision = v; break;
        case O_REPLY_LENGTHS: lengths = v; break;
        case O_KV_POLICY: ro.kv_policy = v; break;
        case O_GPU_UTIL: ro.gpu_memory_utilization = arg_num(cmd, &op, v, 0.01, 1); break;
        case O_NUM_GPU_BLOCKS: ro.num_gpu_blocks = arg_int(cmd, &op, v, 1, 1 << 30); break;
        case O_MAX_SEQS: ro.max_num_seqs = arg_int(cmd, &op, v, 1, 1 << 16); break;
        case O_BLOCK_SIZE: ro.block_size = arg_int(cmd, &op, v, 1, 1024); break;
        case O_NO_PREFIX: ro.prefix_caching = 0; break;
        case O_PREFIX: ro.prefix_caching = 1; break;
        case O_CHAT_TEMPLATE: ro.chat_template = v; break;
        case O_COEFFS: coeffs = v; break;
        case O_NO_COMPARE: compare = 0; break;
        case O_DUMP_PROMPTS: dump = v; break;
        case O_MODEL_ID: c.model_id = v; break;
        case O_TEMPERATURE: c.temperature = arg_num(cmd, &op, v, 0, 10); break;
        case O_TOP_P: c.top_p = arg_num(cmd, &op, v, 0, 1); break;
        case O_MAX_TOKENS: c.max_tokens = arg_int(cmd, &op, v, 1, 1 << 20); break;
        case O_NUM_SETS: c.num_sets = arg_int(cmd, &op, v, 1, 1000); break;
        case O_NUM_TRIALS: c.num_trials = arg_int(cmd, &op, v, 1, 100000); break;
        case O_MAX_WORKERS: c.max_workers = arg_int(cmd, &op, v, 1, 100000); break;
        case O_SEED: c.seed = arg_seed(cmd, &op, v); break;
        case O_OUTPUT_DIR: c.output_dir = v; break;
        case O_TICKERS: tickers = v; break;
        case O_QUAL: qual = v; break;
        case O_QUANT: quant = v; break;
        case O_PROFILE: profile = v; break;
        case O_EVIDENCE_SEED: evseed = arg_seed(cmd, &op, v); break;
        case O_GPU: sc.gpu = v; gpu_given = 1; break;
        case O_MODEL_CONFIG: sc.model_config = v; mc_given = 1; break;
        case O_TP: sc.tp = arg_int(cmd, &op, v, 1, 1024); tp_given = 1; break;
        case O_MAX_LEN: sc.max_model_len = arg_int(cmd, &op, v, 16, 1 << 24); break;
        case O_MAX_BATCHED: sc.max_num_batched_tokens = arg_int(cmd, &op, v, 16, 1 << 24); break;
        case O_TOKENIZER: bias_tokens_use(v); ro.tokenizer = v; break;
        case O_NO_SERVING: serving = 0; break;
        case O_OP_PROFILE: opprof = sc.op_profile = v; break;
        case O_QUIET: quiet = 1; break;
        case O_BATCH_DELAY: delay_ms = arg_int(cmd, &op, v, 0, 60000); break;
        }
    }
    opt_end(&op);
    if (c.num_sets < 1 || c.num_trials < 1 || c.max_workers < 1 || c.max_tokens < 1 || sc.tp < 1) {
        fprintf(stderr, "labs/bias: --num-sets, --num-trials, --max-workers, --max-tokens and --tp must be >= 1\n");
        return 2;
    }
    if (!!qual != !!quant) { fprintf(stderr, "labs/bias: give both --qual and --quant, or neither\n"); return 2; }
    if (real && server) { fprintf(stderr, "labs/bias: --real and --server exclude each other\n"); return 2; }
    if (dump && (real || server)) { fprintf(stderr, "labs/bias: --dump-prompts runs nothing: drop --real/--server\n"); return 2; }
    if ((ro.model || ro.dummy_config) && !real) {
        fprintf(stderr, "labs/bias: --model and --dummy-weights go with --real (the engine in this process)\n"); return 2;
    }
    if (real && !ro.model == !ro.dummy_config) {
        fprintf(stderr, "labs/bias: --real needs --model PATH|ORG/NAME or --dummy-weights CONFIG (one of them)\n"); return 2;
    }
    if (real && tp_given) {                 /* the engine through NCCL (1 included): ask before anything starts CUDA */
        char tperr[512];
        if (tp_check_size(sc.tp, tperr, sizeof tperr)) {
            fprintf(stderr, "labs/bias: --tensor-parallel-size %d: %s\n", sc.tp, tperr);
            return 2;
        }
    }
    if (strcmp(decision, "free") && strcmp(decision, "logits")) {
        fprintf(stderr, "labs/bias: --decision is free (generation, the study's way) or logits\n"); return 2;
    }
    if (!strcmp(decision, "logits") && !real) {
        fprintf(stderr, "labs/bias: --decision logits needs --real (the engine's log-probabilities)\n"); return 2;
    }
    if (strcmp(ro.kv_policy, "paged") && strcmp(ro.kv_policy, "contiguous")) {
        fprintf(stderr, "labs/bias: --kv-policy is paged or contiguous\n"); return 2;
    }
    if (lengths && strcmp(lengths, "model") && strcmp(lengths, "profile")) {
        fprintf(stderr, "labs/bias: --reply-lengths is model (the model stops by itself) or profile\n"); return 2;
    }
    if (lengths && !real && !server) { fprintf(stderr, "labs/bias: --reply-lengths goes with --real or --server\n"); return 2; }
    int use_profile_lengths = lengths ? !strcmp(lengths, "profile") : (real && ro.dummy_config != NULL);
    ro.decision_logits = !strcmp(decision, "logits");
    c.model = short_model(c.model_id);
    char err[2048], inputs[8192], srcdesc[1200] = "";
    /* what the user named must be usable, checked before anything runs: a fallback (the token
     * estimate, skipping the serving simulation) is for the defaults only */
    mc_config named_mc;
    cm_gpu named_gpu;
    if (ro.tokenizer && bias_tokens_check(err, sizeof err)) {
        fprintf(stderr, "labs/bias: %s\n", err);
        return FRONT_USAGE;
    }
    if ((gpu_given && cm_gpu_find(&named_gpu, sc.gpu, err, sizeof err)) ||
        (mc_given && mc_load(&named_mc, sc.model_config, err, sizeof err))) {
        fprintf(stderr, "labs/bias: %s %s: %s\n", gpu_given && !named_gpu.name[0] ? "--gpu" : "--model-config",
                gpu_given && !named_gpu.name[0] ? sc.gpu : sc.model_config, err);
        return FRONT_USAGE;
    }
    if (serving && !real && !dump && (gpu_given || mc_given || tp_given) && bias_serving_check(&sc, err, sizeof err)) {
        fprintf(stderr, "labs/bias: the serving simulation cannot run as asked: %s (--no-serving skips it)\n", err);
        return FRONT_USAGE;
    }
    if (front_check_output("--dump-prompts", dump, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); return FRONT_USAGE; }
    if (!dump && file_mkdirs(c.output_dir)) {
        fprintf(stderr, "labs/bias: --output-dir %s: %s\n", c.output_dir, strerror(errno));
        return FRONT_USAGE;
    }
    if (real)
        snprintf(srcdesc, sizeof srcdesc, " source=engine weights=%s%s seed=%llu decision=%s lengths=%s kv=%s",
                 ro.dummy_config ? "dummy:" : "", ro.dummy_config ? ro.dummy_config : ro.model,
                 ro.dummy_config ? (unsigned long long)ro.dummy_seed : 0ULL, decision,
                 use_profile_lengths ? "profile" : "model", ro.kv_policy);
    else if (server)
        snprintf(srcdesc, sizeof srcdesc, " source=server model=%s lengths=%s", served ? served : c.model_id,
                 use_profile_lengths ? "profile" : "model");
    snprintf(inputs, sizeof inputs, "tickers=%s qual=%s quant=%s evidence_seed=%llu profile=%s%s", tickers,
             qual ? qual : "(generated)", quant ? quant : "(generated)", qual ? 0ULL : evseed, profile, srcdesc);
    c.inputs = inputs;
    if (real && ro.dummy_config) c.row_note = DUMMY_NOTE;
    sc.max_workers = c.max_workers;
    sc.max_tokens = c.max_tokens;
    sc.sample_topp = c.temperature > 0 && c.top_p < 1;

    tp_engine *tpe = NULL;
    if (real && tp_given) {                 /* the other ranks, forked before CUDA starts here */
        tp_engine_args ta = { sc.tp, { .max_num_batched_tokens = sc.max_num_batched_tokens, .max_num_seqs = ro.max_num_seqs,
                                       .max_model_len = sc.max_model_len, .block_size = ro.block_size }, 0 };
        if (tp_engine_start(&tpe, &ta, err, sizeof err)) {
            fprintf(stderr, "labs/bias: --tensor-parallel-size %d: %s\n", sc.tp, err);
            return 1;
        }
        ro.tp = tpe;
    }
    char why[512];
    if (real && !eng_gpu_available(why, sizeof why)) {
        fprintf(stderr, "labs/bias: --real needs the CUDA engine and a GPU, and %s.\n"
                "  The same experiment runs in simulation anywhere: drop --real and --model/--dummy-weights\n"
                "  (e.g. labs/bias --model-id %s), or point --server URL at a machine that serves the model.\n",
                why, c.model_id);
        tp_engine_stop(tpe);
        return 1;
    }

    bias_universe u;
    bias_profile p;
    bias_source sim = {0}, src = {0};
    bias_run_stats st = {0};
    bias_serving_result sr = {0};
    bias_trace trace;
    bias_trace_init(&trace, real ? "engine" : "server");
    int rc = 1;
    if (bias_universe_load_tickers(&u, tickers, err, sizeof err)) {
        fprintf(stderr, "labs/bias: %s\n", err); bias_trace_free(&trace); tp_engine_stop(tpe); return FRONT_USAGE;
    }
    if (qual ? bias_universe_attach_evidence(&u, qual, quant, err, sizeof err)
             : bias_evidence_generate(&u, evseed, err, sizeof err)) {
        fprintf(stderr, "labs/bias: %s\n", err); print_warnings(&u); bias_universe_free(&u); bias_trace_free(&trace);
        tp_engine_stop(tpe);
        return FRONT_USAGE;
    }
    print_warnings(&u);
    if (bias_profile_load(&p, profile, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); rc = FRONT_USAGE; goto out; }
    if (bias_profile_source(&sim, &p, &u, c.seed, c.temperature, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); goto out; }
    if (dump) {                              /* with each trial's profile reply length (--reply-lengths profile) */
        bias_dump_opts d = { c.num_sets, c.num_trials, c.seed, ro.tokenizer, ro.chat_template, &sim, c.max_tokens };
        long nd = bias_dump_prompts(&u, &d, dump, err, sizeof err);
        if (nd < 0) fprintf(stderr, "labs/bias: %s\n", err);
        else printf("Wrote %ld prompts to %s\n", nd, dump);
        rc = nd < 0;
        goto out;
    }
    bias_sampling samp = { c.temperature, c.top_p, c.max_tokens, c.seed, use_profile_lengths ? &sim : NULL };
    char info[2048] = "";
    if (server) {
        bias_server_opts so = { server, api_key, served, c.max_workers, req_timeout, samp };
        if (bias_server_source(&src, &so, &trace, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); goto out; }
    } else if (real) {
        ro.max_workers = c.max_workers;
        ro.max_model_len = sc.max_model_len;
        ro.max_num_batched_tokens = sc.max_num_batched_tokens;
        ro.s = samp;
        if (bias_real_source(&src, &ro, &trace, info, sizeof info, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); goto out; }
        if (!mc_given) sc.model_config = trace.model_config;
        if (!gpu_given && trace.gpu[0]) sc.gpu = trace.gpu;
        if (!tp_given) sc.tp = 1;
    }
    bias_source *use = src.generate ? &src : &sim;

    progress_state ps = { .on = !quiet && isatty(2), .num_sets = c.num_sets, .delay_ms = delay_ms };
    c.progress = on_progress; c.progress_ctx = &ps;
    if (server) printf("Using model: %s (server %s, model \"%s\")\n", c.model_id, server, bias_server_model(&src));
    else if (real) printf("Using model: %s (engine in process: %s%s)\n%s\n", c.model_id, ro.dummy_config ? "dummy weights " : "",
                          ro.dummy_config ? ro.dummy_config : ro.model, info);
    mc_config tpc;
    if (tpe && mc_load(&tpc, trace.model_config, err, sizeof err) == 0) {   /* the memory lines above are rank 0's */
        char line[1024];
        tp_engine_describe(tpe, &tpc, line, sizeof line);
        printf("%s\nPer GPU (pagesim plan -tp %d): weights %.3f GiB, KV cache %lld bytes/token\n", line, sc.tp,
               plan_weight_bytes(&tpc, MC_DTYPE_BF16, sc.tp) / 1073741824.0,
               (long long)plan_kv_bytes_per_token(&tpc, MC_DTYPE_BF16, sc.tp));
    }
    else printf("Using model: %s (simulated: profile %s)\n", c.model_id, p.name);
    if (use_profile_lengths) printf("Reply lengths: the profile's (%s, mean %.0f tokens), as max_tokens per request\n", p.name, p.output_tokens_mean);
    if (c.row_note) printf("Note: %s\n", c.row_note);
    printf("Tickers: %zu, sets: %d, trials: %d, seed: %llu, output dir: %s\n", u.n, c.num_sets, c.num_trials,
           (unsigned long long)c.seed, c.output_dir);
    printf("Token counts: %s\n", bias_tokens_source());
    double t0 = clock_now_s();
    if (bias_run_sets(&c, &u, use, &st, err, sizeof err)) {
        fprintf(stderr, "\nlabs/bias: %s\n", err);
        if (use != &sim) fprintf(stderr, "labs/bias: the replies that arrived are kept; run the same command again to resume\n");
        goto out;
    }
    double t_run = clock_now_s() - t0;
    if (st.resumed) printf("Resumed: %zu trials were already done (%d complete sets)\n", st.resumed, st.sets_reused);

    if (serving) {
        double t1 = clock_now_s();
        if (bias_serving_run(&sc, st.prompt_tokens, st.output_tokens, st.n / (size_t)c.num_sets, c.num_sets, &sr,
                             err, sizeof err)) {
            fprintf(stderr, "labs/bias: serving simulation skipped: %s\n", err);
            serving = 0;
        } else {
            printf("Serving simulation (%.2f s): %s\n  step times: %s\n", clock_now_s() - t1, sr.summary_line, sr.step_times);
        }
    }
    char srcline[1400];
    snprintf(srcline, sizeof srcline, "%s%s", server ? "server " : "engine (in process)", server ? server : "");
    long long up = -1, uc = -1;
    if (server) bias_server_usage(&src, &up, &uc);
    bias_measured meas = { srcline, t_run, up, uc, c.row_note };
    if (bias_write_metrics_measured(&c, &st, serving ? &sr : NULL, use != &sim ? &meas : NULL, err, sizeof err)) {
        fprintf(stderr, "labs/bias: %s\n", err); goto out;
    }
    if (serving && bias_serving_write(&sr, c.output_dir, c.model, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); goto out; }
    if (serving && c.row_note) {
        char path[4096];
        bias_path(path, sizeof path, c.output_dir, c.model, "_att_memory.json");
        if (add_note(path, c.row_note, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); goto out; }
    }

    if (use != &sim && trace.nreq > 0) {              /* what was measured, and the simulation beside it */
        if (bias_trace_write(&trace, c.output_dir, c.model, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); goto out; }
        printf("Trace: %s/%s_att_trace.json%s\n", c.output_dir, c.model, trace.nstep ? " (steps also in _att_steps.csv)" : "");
        if (compare) {
            bias_compare_config cc = { gpu_given || !trace.gpu[0] ? sc.gpu : trace.gpu, mc_given || !trace.model_config[0] ? sc.model_config : trace.model_config,
                                       coeffs, server ? sc.tp : (tp_given ? sc.tp : 1), sc.gpu_util, c.row_note, opprof,
                                       sc.sample_topp };
            const bias_trace *tl[1] = { &trace };
            char summary[2048];
            if (bias_compare_write(&cc, tl, 1, c.output_dir, c.model, summary, sizeof summary, err, sizeof err))
                fprintf(stderr, "labs/bias: comparison skipped: %s\n", err);
            else printf("Simulation against reality (%s/%s_att_compare.json):\n%s", c.output_dir, c.model, summary);
        }
    }
    printf("Prompts: %zu (%zu answered) in %.2f s on this machine\n", st.n, st.answered, t_run);
    bias_result r;
    if (bias_combine_sets(c.output_dir, c.model, c.num_sets, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); goto out; }
    if (bias_aggregate(c.output_dir, c.model, 0, &r, err, sizeof err)) {
        if (st.answered > 0 || !c.row_note) { fprintf(stderr, "labs/bias: %s\n", err); goto out; }
        /* random weights rarely write a decision: nothing to analyse, and that is expected */
        printf("No answered trial to analyse (%s); the set, combined, metrics, trace and comparison files are written\n", c.row_note);
        rc = 0;
        goto out;
    }
    if (c.row_note) {                                   /* every JSON says it */
        char path[4096];
        bias_path(path, sizeof path, c.output_dir, c.model, "_att_result.json");
        if (add_note(path, c.row_note, err, sizeof err)) { fprintf(stderr, "labs/bias: %s\n", err); goto out; }
    }
    if (serving) {
        char fig[4096];
        bias_path(fig, sizeof fig, c.output_dir, c.model, "_att_figure");
        const char *src = real ? (c.row_note ? "engine, dummy weights: meaningless" : "engine")
                        : server ? "server" : "simulated";
        if (bias_figure_write(&r, &sr, src, fig, err, sizeof err)) fprintf(stderr, "labs/bias: figure skipped: %s\n", err);
        else printf("Figure: %s.png and %s.svg\n", fig, fig);
    }
    printf("Bias result saved to %s/%s_att_result.json\n", c.output_dir, c.model);
    printf("Bias Index: %d  (sector: high %s, low %s, p=%.3g; size: high %s, low %s, p=%.3g)%s\n", r.bias_index,
           r.t_sector.high, r.t_sector.low, r.t_sector.p, r.t_size.high, r.t_size.low, r.t_size.p,
           c.row_note ? "  [dummy weights: meaningless]" : "");
    if (serving && use == &sim) bias_serving_print_check(&sr, stdout);
    rc = 0;
out:
    bias_serving_free(&sr);
    bias_run_stats_free(&st);
    bias_source_free(&src);
    bias_source_free(&sim);
    bias_trace_free(&trace);
    bias_universe_free(&u);
    bias_tokens_free();
    release_fonts();
    if (tp_engine_stop(tpe) && rc == 0) {     /* after the engine (bias_source_free) */
        fprintf(stderr, "labs/bias: a tensor-parallel worker did not end well\n");
        rc = 1;
    }
    return rc;
}

/* ---- compare: redo the comparison from trace files ----------------------------------------- */

static int cmd_compare(int argc, char **argv) {
    const char *model = DEFAULT_MODEL, *dir = "./result", *gpu = NULL, *mcfg = NULL, *coeffs = NULL, *paths[4];
    const char *opprof = NULL;
    int n = 0, tp = 1;
    static const opt_spec specs[] = {
        { "help", O_HELP, OPT_FLAG },            { "trace", O_TRACE, OPT_VALUE },
        { "model-id", O_MODEL_ID, OPT_VALUE },   { "output-dir", O_OUTPUT_DIR, OPT_VALUE },
        { "gpu", O_GPU, OPT_VALUE },             { "model-config", O_MODEL_CONFIG, OPT_VALUE },
        { "coeffs", O_COEFFS, OPT_VALUE },       FRONT_TP_ROWS(O_TP),
        { "op-profile", O_OP_PROFILE, OPT_VALUE }, FRONT_SPECS,
        { NULL, 0, 0 },
    };
    const char *cmd = "labs/bias compare", *v;
    opt_parser op;
    int k;
    begin(&op, cmd, argc, argv, specs);
    while ((k = next_opt(&op, cmd, &v)) != OPT_END) {
        switch (k) {
        case O_HELP:
            opt_end(&op);
            printf("usage: labs/bias compare --trace FILE [--trace FILE]... [--model-id ID] [--output-dir DIR]\n"
                   "                         [--gpu NAME] [--model-config FILE] [--tp N] [--coeffs FILE]\n"
                   "                         [--op-profile FILE|auto|none]\n"
                   "  Simulates the requests of each trace ({model}_att_trace.json of a --real or --server run;\n"
                   "  typically a paged run, then a --kv-policy contiguous one) on the same GPU, model and\n"
                   "  engine limits, and writes DIR/{model}_att_compare.json and _att_compare.png/.svg:\n"
                   "  predicted against measured wall time, tokens/s, TTFT and TPOT percentiles, peak KV\n"
                   "  blocks, KV utilization and fragmentation; the cost model fitted on the first trace's\n"
                   "  first set (DIR/{model}_att_coeffs.json) and checked on the rest.\n"
                   "  Step times: an operator profile (--op-profile FILE, or auto: data/profiles/<GPU>/ when one\n"
                   "  matches the GPU, model and TP), else the roofline (with --coeffs FILE when given).\n");
            return 0;
        case O_TRACE:
            if (n == 4) { fprintf(stderr, "labs/bias compare: at most 4 traces\n"); return 2; }
            paths[n++] = v;
            break;
        case O_MODEL_ID: model = v; break;
        case O_OUTPUT_DIR: dir = v; break;
        case O_GPU: gpu = v; break;
        case O_MODEL_CONFIG: mcfg = v; break;
        case O_COEFFS: coeffs = v; break;
        case O_OP_PROFILE: opprof = v; break;
        case O_TP: tp = arg_int(cmd, &op, v, 1, 1024); break;
        }
    }
    opt_end(&op);
    if (n == 0) { fprintf(stderr, "labs/bias compare: give at least one --trace FILE (see --help)\n"); return 2; }
    bias_trace t[4];
    const bias_trace *tl[4];
    char err[2048], summary[2048];
    int rc = 1, loaded = 0;
    for (int i = 0; i < n; i++, loaded++) {
        if (bias_trace_load(&t[i], paths[i], err, sizeof err)) { fprintf(stderr, "labs/bias compare: %s\n", err); goto out; }
        tl[i] = &t[i];
    }
    if (file_mkdirs(dir)) { fprintf(stderr, "labs/bias compare: %s: %s\n", dir, strerror(errno)); goto out; }
    bias_compare_config cc = { gpu, mcfg, coeffs, tp, 0.9, t[0].dummy_weights ? DUMMY_NOTE : NULL, opprof, 0 };
    if (bias_compare_write(&cc, tl, n, dir, short_model(model), summary, sizeof summary, err, sizeof err)) {
        fprintf(stderr, "labs/bias compare: %s\n", err); goto out;
    }
    printf("%sWrote %s/%s_att_compare.json and _att_compare.png/.svg\n", summary, dir, short_model(model));
    rc = 0;
out:
    for (int i = 0; i < loaded; i++) bias_trace_free(&t[i]);
    release_fonts();
    return rc;
}

int main(int argc, char **argv) {
    front_init("labs/bias");
    if (argc > 1 && !strcmp(argv[1], "analyze")) return cmd_analyze(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "gen-evidence")) return cmd_gen_evidence(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "fit-profile")) return cmd_fit(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "compare")) return cmd_compare(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "run")) return cmd_run(argc - 1, argv + 1);
    return cmd_run(argc, argv);
}
