/* merge: a LoRA adapter folded into its base model, written as a standard
 * Hugging Face checkpoint (engine/merge --model BASE --lora PATH --out DIR).
 * Each adapted linear becomes W' = W + scale B A, computed in fp32 and
 * stored in the base tensor's dtype; every other tensor is copied byte for
 * byte, into shards of the base's names and order (the index, when there is
 * one, is copied as it is), and the base's other files (config.json,
 * generation_config.json, the tokenizer's files) are copied, so that
 * transformers and the engine load DIR as they load BASE.  Reads the two
 * directories, writes only DIR; no GPU; never prints (progress through a
 * callback). */
#ifndef ENGINE_MERGE_H
#define ENGINE_MERGE_H
#include <stddef.h>
#include <stdint.h>

typedef struct merge_stats {
    int    shards, tensors;      /* safetensors files and tensors written */
    int    merged;               /* of those, linears with the adapter folded in */
    int    files_copied;         /* config, tokenizer and other files */
    double max_delta;            /* largest |scale B A| element added */
} merge_stats;

/* Called after each tensor written (done of total in the checkpoint). */
typedef void (*merge_progress_fn)(void *ctx, const char *tensor, int done, int total);

/* w (out, in) += scale * B (out, r) @ A (r, in), each row's delta summed in
 * fp32 over the ranks in order before it is added. */
void merge_delta(float *w, const float *A, const float *B, int64_t out, int64_t in, int r, float scale);
/* Merges the adapter in lora_dir into the checkpoint in base_dir, writing
 * out_dir (created; it must not be base_dir).  0, or -1 and a message (a
 * base tensor an adapter module needs that is missing, dtypes other than
 * bf16/fp16/fp32 in an adapted linear, write errors: then out_dir may hold
 * part of the result). */
int  merge_lora(const char *base_dir, const char *lora_dir, const char *out_dir, merge_progress_fn progress,
                void *ctx, merge_stats *st, char *err, size_t errlen);
#endif
