/* apps/engine/hub_main.c — the `engine/hub` command: model download from a Hugging
 * Face hub into the standard cache, and small tokenizer / chat-template tools
 * (encode, decode, count, chat) over text/tokenizer.c and
 * text/chat_template.c (text/jinja for a model's own template).  The only
 * file of this module that prints and exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text/chat_template.h"
#include "hub/hub.h"
#include "base/file.h"
#include "apps/common/front.h"
#include "base/opt.h"
#include "text/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: engine/hub COMMAND ...\n"
        "\n"
        "  download ORG/NAME [--revision R] [--include GLOB]... [--cache-dir DIR] [--quiet]\n"
        "      fetch a model repository into the Hugging Face cache layout\n"
        "      (models--ORG--NAME/{blobs,snapshots,refs}) and print the snapshot path.\n"
        "      Environment: HF_TOKEN (bearer token, never printed), HF_ENDPOINT (host),\n"
        "      HF_HOME / HF_HUB_CACHE (cache), HF_HUB_OFFLINE=1 (cache only).\n"
        "  encode --tokenizer FILE [--add-special] [TEXT | -]   print token ids (stdin with -)\n"
        "  count  --tokenizer FILE [--add-special] [TEXT | -]   print the number of tokens\n"
        "  decode --tokenizer FILE [--skip-special] ID...        print the text of ids\n"
        "  chat   --config tokenizer_config.json [--chat-template NAME|FILE]\n"
        "         [--system TEXT] --user TEXT [--no-thinking] [--tokenizer FILE]\n"
        "      render a chat prompt with the config's chat_template (and its ids with --tokenizer);\n"
        "      --chat-template: a family (chatml, qwen2.5, qwen3, llama3, llama3.1, gemma), a\n"
        "      tokenizer_config.json or a Jinja file instead\n"
        "  --version, --help; every command also takes --data-dir DIR (the project's data folder)\n"
        "Exit status: 0 done, 1 failed (network, disk, a write error), 2 bad usage or input.\n");
}

static tok_tokenizer *load_tok(const char *path) {
    char err[1024];
    if (!path) { fprintf(stderr, "engine/hub: --tokenizer FILE is required\n"); exit(2); }
    tok_tokenizer *t = tok_load(path, err, sizeof err);
    if (!t) { fprintf(stderr, "engine/hub: %s\n", err); exit(FRONT_USAGE); }
    return t;
}

/* "engine/hub CMD: err" on stderr; returns 2, the status of a bad command line. */
static int bad_usage(const char *cmd, const char *err) {
    fprintf(stderr, "engine/hub %s: %s (see --help)\n", cmd, err);
    return 2;
}

enum { O_HELP = 'h', O_REVISION = 256, O_INCLUDE, O_CACHE_DIR, O_QUIET, O_TOKENIZER, O_ADD_SPECIAL,
       O_SKIP_SPECIAL, O_CONFIG, O_CHAT_TEMPLATE, O_SYSTEM, O_USER, O_NO_THINKING };

static int cmd_download(int argc, char **argv) {
    static const opt_spec specs[] = {
        { "help", O_HELP, OPT_FLAG },          { "revision", O_REVISION, OPT_VALUE },
        { "include", O_INCLUDE, OPT_VALUE },   { "cache-dir", O_CACHE_DIR, OPT_VALUE },
        { "quiet", O_QUIET, OPT_FLAG },        FRONT_SPECS, { NULL, 0, 0 },
    };
    char cache[1024], snap[4096], err[2048];
    hub_opts o;
    hub_opts_from_env(&o, cache, sizeof cache);
    const char *repo = NULL, *inc[64], *v; int ninc = 0, quiet = 0, k;
    opt_parser p;
    if (opt_begin(&p, argc, argv, specs, err, sizeof err)) return bad_usage("download", err);
    while ((k = opt_next(&p, &v, err, sizeof err)) != OPT_END) {
        if (k == O_HELP) { opt_end(&p); usage(stdout); return 0; }
        else if (front_option("engine/hub", k, v)) continue;
        else if (k == O_REVISION) o.revision = v;
        else if (k == O_INCLUDE && ninc < 64) inc[ninc++] = v;
        else if (k == O_CACHE_DIR) o.cache_dir = v;
        else if (k == O_QUIET) quiet = 1;
        else if (k == OPT_ARG && !repo) repo = v;
        else {
            if (k != OPT_ERROR) snprintf(err, sizeof err, "unexpected argument '%s'", v ? v : opt_name(&p));
            opt_end(&p);
            return bad_usage("download", err);
        }
    }
    opt_end(&p);
    if (!repo) { usage(stderr); return 2; }
    o.include = inc; o.n_include = ninc;
    o.progress = !quiet && isatty(2);
    if (hub_download(&o, repo, snap, sizeof snap, err, sizeof err) < 0) {
        fprintf(stderr, "engine/hub: %s\n", err);
        return 1;
    }
    printf("%s\n", snap);
    return 0;
}

static int cmd_encode(int argc, char **argv, int count_only) {
    static const opt_spec specs[] = {
        { "help", O_HELP, OPT_FLAG },          { "tokenizer", O_TOKENIZER, OPT_VALUE },
        { "add-special", O_ADD_SPECIAL, OPT_FLAG }, FRONT_SPECS, { NULL, 0, 0 },
    };
    const char *cmd = count_only ? "count" : "encode";
    const char *tp = NULL, *text = NULL, *v; int flags = 0, k;
    char err[512];
    opt_parser p;
    if (opt_begin(&p, argc, argv, specs, err, sizeof err)) return bad_usage(cmd, err);
    while ((k = opt_next(&p, &v, err, sizeof err)) != OPT_END) {
        if (k == O_HELP) { opt_end(&p); usage(stdout); return 0; }
        else if (front_option("engine/hub", k, v)) continue;
        else if (k == O_TOKENIZER) tp = v;
        else if (k == O_ADD_SPECIAL) flags |= TOK_ADD_SPECIAL;
        else if (k == OPT_ARG && !text) text = v;
        else {
            if (k != OPT_ERROR) snprintf(err, sizeof err, "unexpected argument '%s'", v ? v : opt_name(&p));
            opt_end(&p);
            return bad_usage(cmd, err);
        }
    }
    opt_end(&p);
    if (!text) { usage(stderr); return 2; }
    tok_tokenizer *t = load_tok(tp);
    size_t len; char *buf = NULL;
    if (!strcmp(text, "-")) { buf = file_read_stream(stdin, "stdin", 0, &len, err, sizeof err); text = buf; }
    else len = strlen(text);
    if (!text) { fprintf(stderr, "engine/hub: %s\n", err); tok_free(t); return 1; }
    tok_ids ids = {0};
    if (tok_encode(t, text, len, flags, &ids) < 0) { fprintf(stderr, "engine/hub: out of memory\n"); return 1; }
    if (count_only) printf("%zu\n", ids.n);
    else {
        for (size_t i = 0; i < ids.n; i++) printf("%s%d", i ? " " : "", ids.ids[i]);
        printf("\n");
    }
    tok_ids_free(&ids); free(buf); tok_free(t);
    return 0;
}

static int cmd_decode(int argc, char **argv) {
    static const opt_spec specs[] = {
        { "help", O_HELP, OPT_FLAG },          { "tokenizer", O_TOKENIZER, OPT_VALUE },
        { "skip-special", O_SKIP_SPECIAL, OPT_FLAG }, FRONT_SPECS, { NULL, 0, 0 },
    };
    const char *tp = NULL, *v; int flags = 0, k, id;
    char err[512];
    int32_t *ids = calloc((size_t)argc + 1, sizeof *ids); size_t n = 0;   /* (argc + 1) */
    if (!ids) return bad_usage("decode", "out of memory");
    opt_parser p;
    if (opt_begin(&p, argc, argv, specs, err, sizeof err)) { free(ids); return bad_usage("decode", err); }
    while ((k = opt_next(&p, &v, err, sizeof err)) != OPT_END) {
        if (k == O_HELP) { opt_end(&p); usage(stdout); free(ids); return 0; }
        else if (front_option("engine/hub", k, v)) continue;
        else if (k == O_TOKENIZER) tp = v;
        else if (k == O_SKIP_SPECIAL) flags |= TOK_SKIP_SPECIAL;
        else if (k == OPT_ARG && opt_int("a token id", v, 0, 0x7fffffff, &id, err, sizeof err) == 0) ids[n++] = id;
        else {
            if (k == OPT_ARG) snprintf(err, sizeof err, "'%s' is not a token id", v);
            opt_end(&p);
            free(ids);
            return bad_usage("decode", err);
        }
    }
    opt_end(&p);
    tok_tokenizer *t = load_tok(tp);
    size_t need = tok_decode(t, ids, n, flags, NULL, 0);
    char *out = malloc(need + 1);
    tok_decode(t, ids, n, flags, out, need + 1);
    fwrite(out, 1, need, stdout); putchar('\n');
    free(out); free(ids); tok_free(t);
    return 0;
}

static int cmd_chat(int argc, char **argv) {
    static const opt_spec specs[] = {
        { "help", O_HELP, OPT_FLAG },                  { "config", O_CONFIG, OPT_VALUE },
        { "chat-template", O_CHAT_TEMPLATE, OPT_VALUE }, { "system", O_SYSTEM, OPT_VALUE },
        { "user", O_USER, OPT_VALUE },                 { "tokenizer", O_TOKENIZER, OPT_VALUE },
        { "no-thinking", O_NO_THINKING, OPT_FLAG },    FRONT_SPECS, { NULL, 0, 0 },
    };
    const char *cfg = NULL, *name = NULL, *sys = NULL, *user = NULL, *tp = NULL, *v; int think = -1, k;
    char err[1024];
    opt_parser p;
    if (opt_begin(&p, argc, argv, specs, err, sizeof err)) return bad_usage("chat", err);
    while ((k = opt_next(&p, &v, err, sizeof err)) != OPT_END) {
        if (k == O_HELP) { opt_end(&p); usage(stdout); return 0; }
        else if (front_option("engine/hub", k, v)) continue;
        else if (k == O_CONFIG) cfg = v;
        else if (k == O_CHAT_TEMPLATE) name = v;
        else if (k == O_SYSTEM) sys = v;
        else if (k == O_USER) user = v;
        else if (k == O_TOKENIZER) tp = v;
        else if (k == O_NO_THINKING) think = 0;
        else {
            if (k == OPT_ARG) snprintf(err, sizeof err, "unexpected argument '%s'", v);
            opt_end(&p);
            return bad_usage("chat", err);
        }
    }
    opt_end(&p);
    if (!user || (!cfg && !name)) { usage(stderr); return 2; }
    chat_tpl *ct = chat_tpl_open(name, cfg, err, sizeof err);
    if (!ct) { fprintf(stderr, "engine/hub: %s\n", err); return FRONT_USAGE; }
    chat_msg m[2]; int n = 0;
    if (sys) m[n++] = (chat_msg){"system", sys};
    m[n++] = (chat_msg){"user", user};
    size_t need;
    char *out = chat_tpl_apply(ct, m, n, 1, think, &need, err, sizeof err);
    if (!out) { fprintf(stderr, "engine/hub: chat template: %s\n", err); chat_tpl_free(ct); return 1; }
    printf("# template: %s\n%s\n", chat_tpl_name(ct), out);
    if (tp) {
        tok_tokenizer *t = load_tok(tp);
        tok_ids ids = {0};
        if (tok_encode(t, out, need, 0, &ids) == 0) {
            printf("# %zu tokens:", ids.n);
            for (size_t i = 0; i < ids.n; i++) printf(" %d", ids.ids[i]);
            printf("\n");
        }
        tok_ids_free(&ids); tok_free(t);
    }
    free(out);
    chat_tpl_free(ct);
    return 0;
}

int main(int argc, char **argv) {
    front_init("engine/hub");
    if (argc >= 2 && !strcmp(argv[1], "--version")) { front_version(stdout, "engine/hub"); return 0; }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(argc < 2 ? stderr : stdout); return argc < 2 ? 2 : 0; }
    const char *c = argv[1];
    if (!strcmp(c, "download")) return cmd_download(argc - 1, argv + 1);
    if (!strcmp(c, "encode")) return cmd_encode(argc - 1, argv + 1, 0);
    if (!strcmp(c, "count")) return cmd_encode(argc - 1, argv + 1, 1);
    if (!strcmp(c, "decode")) return cmd_decode(argc - 1, argv + 1);
    if (!strcmp(c, "chat")) return cmd_chat(argc - 1, argv + 1);
    fprintf(stderr, "engine/hub: unknown command '%s'\n", c);
    usage(stderr);
    return 2;
}
