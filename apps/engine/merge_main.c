/* engine/merge: folds a LoRA adapter (PEFT's adapter_config.json and
 * adapter_model.safetensors) into its base model and writes a standard
 * checkpoint that transformers and the engine load like the base:
 *   engine/merge --model BASE --lora PATH --out DIR
 * W' = W + scale B A per adapted linear, in fp32, stored in the base's dtype
 * (engine/merge.h).  Progress and a summary on stderr. */
#include "apps/common/front.h"
#include "base/opt.h"
#include "engine/merge.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PROG "engine/merge"

static void usage(FILE *f) {
    fputs("usage: engine/merge --model BASE --lora PATH --out DIR\n"
          "  --model BASE   the base model's directory (config.json, *.safetensors, tokenizer files)\n"
          "  --lora PATH    a PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors)\n"
          "  --out DIR      where to write the merged checkpoint (created; not BASE)\n"
          "  --quiet        no progress lines\n"
          "  --version, --help\n"
          "Each adapted linear becomes W + scale B A (scale = lora_alpha / r, or / sqrt(r) with\n"
          "use_rslora), computed in fp32 and saved in the base tensor's dtype; the other tensors\n"
          "and files are copied as they are.  Serve DIR like any model: engine/serve --model DIR.\n"
          "Exit status: 0 done, 1 the merge failed (a write error), 2 bad usage or input.\n", f);
}

typedef struct prog { int quiet, last; time_t t0; } prog;

static void progress(void *ctx, const char *tensor, int done, int total) {
    prog *p = ctx;
    int pct = total ? 100 * done / total : 100;
    if (p->quiet || (pct / 10 == p->last / 10 && done != total)) return;
    p->last = pct;
    fprintf(stderr, "%s: %3d%% (%d of %d tensors, %s), %lds\n", PROG, pct, done, total, tensor,
            (long)(time(NULL) - p->t0));
}

enum { O_HELP = 'h', O_MODEL = 256, O_LORA, O_OUT, O_QUIET };
static const opt_spec k_opts[] = {
    { "help", O_HELP, OPT_FLAG },   { "model", O_MODEL, OPT_VALUE },  { "lora", O_LORA, OPT_VALUE },
    { "out", O_OUT, OPT_VALUE },    { "quiet", O_QUIET, OPT_FLAG },   FRONT_SPECS,
    { NULL, 0, 0 },
};

int main(int argc, char **argv) {
    const char *base = NULL, *lora = NULL, *out = NULL, *v;
    prog p = {0, -100, time(NULL)};
    char err[1024];
    opt_parser op;
    int k;
    front_init(PROG);
    if (opt_begin(&op, argc, argv, k_opts, err, sizeof err)) { fprintf(stderr, "%s: %s\n", PROG, err); return 2; }
    while ((k = opt_next(&op, &v, err, sizeof err)) != OPT_END) {
        switch (k) {
        case O_HELP: usage(stdout); opt_end(&op); return 0;
        case O_MODEL: base = v; break;
        case O_LORA: lora = v; break;
        case O_OUT: out = v; break;
        case O_QUIET: p.quiet = 1; break;
        case OPT_ARG: fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", PROG, v); opt_end(&op); return 2;
        default:
            if (front_option(PROG, k, v)) break;
            fprintf(stderr, "%s: %s (see --help)\n", PROG, err); opt_end(&op); return 2;
        }
    }
    opt_end(&op);
    if (!base || !lora || !out) { fprintf(stderr, "%s: give --model, --lora and --out (see --help)\n", PROG); return 2; }
    merge_stats st;
    if (merge_lora(base, lora, out, progress, &p, &st, err, sizeof err)) { fprintf(stderr, "%s: %s\n", PROG, err); return 1; }
    fprintf(stderr, "%s: wrote %s: %d tensors in %d shard%s, %d linears merged (largest change %.3g), %d other "
            "files copied, %lds\n", PROG, out, st.tensors, st.shards, st.shards == 1 ? "" : "s", st.merged, st.max_delta,
            st.files_copied, (long)(time(NULL) - p.t0));
    return 0;
}
