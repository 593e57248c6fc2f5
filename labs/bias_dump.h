/* bias_dump: the run's prompts written out, without running anything: one
 * JSON line per trial, in the run's order (set, ticker, trial), with the
 * study's prompt text, the same text inside the model's chat template (no
 * thinking) and its token ids, exactly as the real source (--real) encodes
 * it and as engine/serve renders a --server request.  What a model is
 * trained on (tests/gpu/train_tiny.py) or checked against.
 * Reads the tokenizer files; writes only the file it is given. */
#ifndef BIAS_DUMP_H
#define BIAS_DUMP_H
#include <stddef.h>
#include <stdint.h>
#include "labs/bias_data.h"
#include "labs/bias_source.h"

typedef struct bias_dump_opts {
    int         num_sets, num_trials;
    uint64_t    seed;             /* the run's --seed: evidence sampling and order */
    const char *tokenizer;        /* tokenizer.json; NULL: data/tokenizers/qwen3/tokenizer.json */
    const char *chat_template;    /* a family (chatml, qwen3, ...) or a template file; NULL: the model's chat_template
                                     beside the tokenizer (qwen3's when it has none) */
    bias_source *lengths;         /* when set: each line's "reply_tokens", the reply length this source gives the
                                     trial, within [1, max_tokens]: what --reply-lengths profile asks the engine for */
    int          max_tokens;
} bias_dump_opts;

/* Writes path (through a temporary file and rename): per line
 *   {"set", "stock_index", "ticker", "trial", "buy_first", "evidence": ["buy"|"sell", ...],
 *    "prompt", "text", "ids": [...]} (+ "reply_tokens" with o->lengths)
 * "evidence" names the side of each numbered evidence item, in prompt order.
 * Returns the number of lines, or -1 with err (no tokenizer, I/O). */
long bias_dump_prompts(const bias_universe *u, const bias_dump_opts *o, const char *path,
                       char *err, size_t errlen);
#endif
