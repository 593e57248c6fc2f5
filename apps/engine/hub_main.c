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
        "  --help\n");
}

static char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) { char *q = realloc(b, cap *= 2); if (!q) { free(b); return NULL; } b = q; }
    }
    if (b) *len = n;
    return b;
}

static tok_tokenizer *load_tok(const char *path) {
    char err[1024];
    if (!path) { fprintf(stderr, "engine/hub: --tokenizer FILE is required\n"); exit(2); }
    tok_tokenizer *t = tok_load(path, err, sizeof err);
    if (!t) { fprintf(stderr, "engine/hub: %s\n", err); exit(1); }
    return t;
}

static int cmd_download(int argc, char **argv) {
    char cache[1024], snap[4096], err[2048];
    hub_opts o;
    hub_opts_from_env(&o, cache, sizeof cache);
    const char *repo = NULL, *inc[64]; int ninc = 0, quiet = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--revision") && i + 1 < argc) o.revision = argv[++i];
        else if (!strcmp(argv[i], "--include") && i + 1 < argc && ninc < 64) inc[ninc++] = argv[++i];
        else if (!strcmp(argv[i], "--cache-dir") && i + 1 < argc) o.cache_dir = argv[++i];
        else if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if (argv[i][0] != '-' && !repo) repo = argv[i];
        else { fprintf(stderr, "engine/hub download: unexpected argument '%s'\n", argv[i]); usage(stderr); return 2; }
    }
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
    const char *tp = NULL, *text = NULL; int flags = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tp = argv[++i];
        else if (!strcmp(argv[i], "--add-special")) flags |= TOK_ADD_SPECIAL;
        else if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if (!text) text = argv[i];
        else { fprintf(stderr, "engine/hub: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!text) { usage(stderr); return 2; }
    tok_tokenizer *t = load_tok(tp);
    size_t len; char *buf = NULL;
    if (!strcmp(text, "-")) { buf = read_all(stdin, &len); text = buf; }
    else len = strlen(text);
    if (!text) { fprintf(stderr, "engine/hub: cannot read stdin\n"); return 1; }
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
    const char *tp = NULL; int flags = 0;
    int32_t *ids = calloc((size_t)argc + 1, sizeof *ids); size_t n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tp = argv[++i];
        else if (!strcmp(argv[i], "--skip-special")) flags |= TOK_SKIP_SPECIAL;
        else if (!strcmp(argv[i], "--help")) { usage(stdout); free(ids); return 0; }
        else {
            char *e; long v = strtol(argv[i], &e, 10);
            if (*e || v < 0) { fprintf(stderr, "engine/hub decode: '%s' is not a token id\n", argv[i]); free(ids); return 2; }
            ids[n++] = (int32_t)v;
        }
    }
    tok_tokenizer *t = load_tok(tp);
    size_t need = tok_decode(t, ids, n, flags, NULL, 0);
    char *out = malloc(need + 1);
    tok_decode(t, ids, n, flags, out, need + 1);
    fwrite(out, 1, need, stdout); putchar('\n');
    free(out); free(ids); tok_free(t);
    return 0;
}

static int cmd_chat(int argc, char **argv) {
    const char *cfg = NULL, *name = NULL, *sys = NULL, *user = NULL, *tp = NULL; int think = -1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) cfg = argv[++i];
        else if (!strcmp(argv[i], "--chat-template") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--system") && i + 1 < argc) sys = argv[++i];
        else if (!strcmp(argv[i], "--user") && i + 1 < argc) user = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tp = argv[++i];
        else if (!strcmp(argv[i], "--no-thinking")) think = 0;
        else if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else { fprintf(stderr, "engine/hub chat: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!user || (!cfg && !name)) { usage(stderr); return 2; }
    char err[1024];
    chat_tpl *ct = chat_tpl_open(name, cfg, err, sizeof err);
    if (!ct) { fprintf(stderr, "engine/hub: %s\n", err); return 1; }
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
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(argc < 2 ? stderr : stdout); return argc < 2 ? 2 : 0; }
    const char *c = argv[1];
    if (!strcmp(c, "download")) return cmd_download(argc - 2, argv + 2);
    if (!strcmp(c, "encode")) return cmd_encode(argc - 2, argv + 2, 0);
    if (!strcmp(c, "count")) return cmd_encode(argc - 2, argv + 2, 1);
    if (!strcmp(c, "decode")) return cmd_decode(argc - 2, argv + 2);
    if (!strcmp(c, "chat")) return cmd_chat(argc - 2, argv + 2);
    fprintf(stderr, "engine/hub: unknown command '%s'\n", c);
    usage(stderr);
    return 2;
}
