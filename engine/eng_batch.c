/* eng_batch: the engine's flattened batch from a scheduled batch (see
 * engine.h, eng_build_batch): token ids, positions and KV slots of the new
 * tokens, query starts, context lengths and each sequence's block table as
 * the KV cache gives it (kv_slot, kv_block_table: any policy).  Host arrays
 * only, kept in an eng_batch_buf between steps; no GPU. */
#include "engine/engine.h"
#include "base/errbuf.h"
#include <stdlib.h>
#include <string.h>

void eng_batch_buf_free(eng_batch_buf *buf) {
    free(buf->ids); free(buf->qs); free(buf->tables); free(buf->lora);
    memset(buf, 0, sizeof *buf);
}

int eng_build_batch(const sched_batch *b, const kv_cache *kv, eng_batch_buf *buf, int max_blocks,
                    model_batch *out, char *err, size_t errlen) {
    int B = b->num_items, T = 0, bs = kv_get_config(kv)->block_size;
    for (int i = 0; i < B; i++) T += b->items[i].num_new;
    if (T > buf->cap_t) {
        free(buf->ids);
        buf->ids = malloc(sizeof(int32_t) * 3 * (size_t)T);
        if (!buf->ids) { buf->cap_t = 0; return errbuf_fail(err, errlen, "out of memory"); }
        buf->pos = buf->ids + T; buf->slots = buf->pos + T; buf->cap_t = T;
    }
    if (B > buf->cap_b || max_blocks != buf->max_blocks) {
        free(buf->qs); free(buf->tables); free(buf->lora);
        buf->qs = malloc(sizeof(int32_t) * (2 * (size_t)B + 1));
        buf->tables = malloc(sizeof(int32_t) * (size_t)B * max_blocks);
        buf->lora = malloc(sizeof(int32_t) * (size_t)B);
        if (!buf->qs || !buf->tables || !buf->lora) { buf->cap_b = 0; return errbuf_fail(err, errlen, "out of memory"); }
        buf->ctx = buf->qs + B + 1; buf->cap_b = B; buf->max_blocks = max_blocks;
    }
    int t = 0;
    buf->qs[0] = 0;
    for (int i = 0; i < B; i++) {
        const sched_item *it = &b->items[i];
        const seq *s = it->s;
        int ctx = it->start + it->num_new, nb = (ctx + bs - 1) / bs;
        if (nb > max_blocks || it->start + it->num_new > s->num_tokens)
            return errbuf_fail(err, errlen, "sequence %d: %d tokens in cache need %d blocks (at most %d)", s->id,
                        ctx, nb, max_blocks);
        for (int j = 0; j < it->num_new; j++, t++) {
            int p = it->start + j;
            buf->ids[t] = s->tokens[p];
            buf->pos[t] = p;
            buf->slots[t] = (int32_t)kv_slot(kv, s, p);
        }
        buf->qs[i + 1] = t;
        buf->ctx[i] = ctx;
        buf->lora[i] = s->lora;
        /* the block table of any policy (kv_block_table), past ctx padded with 0 */
        int32_t *row = buf->tables + (size_t)i * max_blocks;
        _Static_assert(sizeof(int) == sizeof(int32_t), "int is 32 bits");
        int have = kv_block_table(kv, s, (int *)row, max_blocks);
        if (have < nb)
            return errbuf_fail(err, errlen, "sequence %d: no block table for %d tokens (%s)", s->id, ctx,
                               have < 0 ? "swapped out, or a reservation off a block boundary" : "too few blocks");
        for (int k = nb; k < max_blocks; k++) row[k] = 0;
    }
    *out = (model_batch){T, B, buf->ids, buf->pos, buf->slots, buf->qs, buf->ctx, buf->tables, max_blocks, 0, buf->lora};
    return 0;
}
