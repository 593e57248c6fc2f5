/* bench/bench_tokenizer.c — encoding speed of text/tokenizer.c on one core.
 *
 * Encodes ~5 MB of bias-lab-like prompts (generated here, deterministic) one
 * prompt per tok_encode call, best of 3 passes, and prints MB/s and tokens/s
 * per tokenizer.  --write-text FILE writes the same prompts (one JSON string
 * per line) so scripts/gpu/tokenizer_fixture.py can time HF `tokenizers` on the
 * very same text.  Prints "skipped: tokenizer.json absent" and exits 0 when
 * data/tokenizers/ is missing.  Target (issue 4): at least as fast as HF.
 *
 *   bench_tokenizer [--tokenizer PATH]... [--mb N] [--write-text FILE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "text/tokenizer.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static const char *COMPANY[][2] = {
    {"AAPL", "Apple Inc."}, {"MSFT", "Microsoft"}, {"NVDA", "NVIDIA"}, {"XOM", "Exxon Mobil"},
    {"JPM", "JPMorgan Chase"}, {"KO", "Coca-Cola"}, {"NESN", "Nestlé"}, {"MC.PA", "LVMH Moët Hennessy"},
    {"0700.HK", "腾讯控股 (Tencent)"}, {"7203.T", "トヨタ自動車"}, {"ASML", "ASML Holding"}, {"DE", "Deere & Company"},
};
static const char *BUY[] = {
    "Quarterly revenue rose %d%% year over year, beating consensus by $%d million.",
    "Management raised full-year guidance and announced a $%d.%d billion buyback.",
    "Free cash flow reached $%d million, a record margin of %d%%.",
    "The order backlog grew %d%% and now covers %d months of production.",
    "Analysts upgraded the stock after gross margin expanded %d basis points to %d%%.",
};
static const char *SELL[] = {
    "Operating margin fell to %d%% as input costs climbed for the %dth straight quarter.",
    "Net debt rose to $%d billion and interest coverage dropped below %dx.",
    "The CFO resigned unexpectedly; auditors are reviewing $%d million in one-off charges (%d items).",
    "Market share declined %d points while inventory days rose to %d.",
    "A regulator opened an investigation that could cost up to $%d million in fines over %d years.",
};

/* Appends one prompt (NUL-terminated) to buf; returns its length. */
static size_t make_prompt(char *buf, size_t cap, int i) {
    const char **c = COMPANY[rnd(12)];
    size_t o = (size_t)snprintf(buf, cap, "You are an equity analyst. Here is evidence about %s (ticker: %s).\n", c[1], c[0]);
    for (int k = 0; k < 4; k++) {
        const char *f = k % 2 ? SELL[rnd(5)] : BUY[rnd(5)];
        o += (size_t)snprintf(buf + o, cap - o, "%d. ", k + 1);
        o += (size_t)snprintf(buf + o, cap - o, f, (int)rnd(990) + 1, (int)rnd(99) + 1);
        o += (size_t)snprintf(buf + o, cap - o, "\n");
    }
    o += (size_t)snprintf(buf + o, cap - o,
        "Weigh the evidence and decide %s. Reply with only a JSON object: "
        "{\"decision\": \"buy\" or \"sell\", \"reason\": \"<one sentence>\"}.",
        i % 2 ? "[sell | buy]" : "[buy | sell]");
    return o;
}

static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void write_json_line(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') { fputc('\\', f); fputc(*s, f); }
        else if (*s == '\n') fputs("\\n", f);
        else fputc(*s, f);
    }
    fputs("\"\n", f);
}

/* Prints the HF `tokenizers` figure measured on the GPU machine's CPU for the
 * same model and text (tests/data/tokenizer/bench_hf.txt), for reference. */
static void hf_compare(const char *tok_path, double ours) {
    FILE *f = fopen("tests/data/tokenizer/bench_hf.txt", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char name[64]; double mbs;
        const char *p = strstr(line, "bench hf ");
        const char *q = strstr(line, " = ");
        if (!p || !q || sscanf(p + 9, "%63[^:]", name) != 1 || sscanf(q + 3, "%lf", &mbs) != 1) continue;
        char want[80]; snprintf(want, sizeof want, "/%s/", name);
        if (strstr(tok_path, want))
            printf("  target: >= HF tokenizers, %.2f MB/s one thread (device CPU, bench_hf.txt); here %.2f MB/s = %.1fx\n",
                   mbs, ours, ours / mbs);
    }
    fclose(f);
}

int main(int argc, char **argv) {
    const char *toks[8]; int ntok = 0;
    const char *write_text = NULL;
    double mb = 5.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc && ntok < 8) toks[ntok++] = argv[++i];
        else if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--write-text") && i + 1 < argc) write_text = argv[++i];
        else {
            printf("usage: bench_tokenizer [--tokenizer PATH]... [--mb N] [--write-text FILE]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (ntok == 0) {
        toks[ntok++] = "data/tokenizers/qwen3/tokenizer.json";
        toks[ntok++] = "data/tokenizers/llama3/tokenizer.json";
    }
    /* prompts: one buffer, NUL-separated, offsets in off[] */
    size_t total = (size_t)(mb * 1e6), cap = total + 4096, used = 0;
    char *text = malloc(cap);
    size_t *off = malloc(sizeof *off * (total / 200 + 16));
    int np = 0;
    while (used < total) {
        off[np] = used;
        used += make_prompt(text + used, cap - used, np) + 1;
        np++;
    }
    if (write_text) {
        FILE *f = fopen(write_text, "w");
        if (!f) { perror(write_text); return 1; }
        for (int i = 0; i < np; i++) write_json_line(f, text + off[i]);
        fclose(f);
        printf("wrote %d prompts (%zu bytes) to %s\n", np, used - (size_t)np, write_text);
        return 0;
    }
    int ran = 0;
    for (int k = 0; k < ntok; k++) {
        if (access(toks[k], R_OK) != 0) { printf("skipped: tokenizer.json absent (%s)\n", toks[k]); continue; }
        char err[512];
        double t0 = now();
        tok_tokenizer *t = tok_load(toks[k], err, sizeof err);
        double tl = now() - t0;
        if (!t) { fprintf(stderr, "%s\n", err); return 1; }
        tok_ids ids = {0};
        double best = 1e30; size_t ntokens = 0, nbytes = 0;
        for (int rep = 0; rep < 3; rep++) {
            ntokens = nbytes = 0;
            t0 = now();
            for (int i = 0; i < np; i++) {
                size_t l = strlen(text + off[i]);
                if (tok_encode(t, text + off[i], l, 0, &ids) < 0) { fprintf(stderr, "out of memory\n"); return 1; }
                ntokens += ids.n; nbytes += l;
            }
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        printf("%s: load %.2f s; %d prompts, %.2f MB, %zu tokens; best of 3 %.3f s = %.2f MB/s, %.3f Mtok/s (one core)\n",
               toks[k], tl, np, (double)nbytes / 1e6, ntokens, best, (double)nbytes / best / 1e6, (double)ntokens / best / 1e6);
        hf_compare(toks[k], (double)nbytes / best / 1e6);
        tok_ids_free(&ids);
        tok_free(t);
        ran++;
    }
    free(text); free(off);
    if (!ran) printf("skipped: tokenizer.json absent\n");
    return 0;
}
