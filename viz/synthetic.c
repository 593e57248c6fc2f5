/* synthetic: a plausible pool state built without the simulator, seeded, for
 * the renderer's benchmark and for looking at layouts at any size (16, 64,
 * 1024 blocks).  Touches only the scene it fills. */
#include <stdio.h>
#include <stdlib.h>
#include "viz/scene.h"

static unsigned next(unsigned *s) { *s = *s * 1103515245u + 12345u; return (*s >> 8) & 0xffffff; }

int viz_scene_synthetic(viz_scene *s, int num_blocks, int block_size, unsigned seed) {
    if (viz_scene_init(s, num_blocks, block_size)) return -1;
    viz_pool *p = &s->pool;
    int *table = malloc((size_t)num_blocks * sizeof *table);   /* (num_blocks,) */
    int *perm = malloc((size_t)num_blocks * sizeof *perm);     /* (num_blocks,) free order */
    if (!table || !perm) { free(table); free(perm); viz_scene_free(s); return -1; }
    for (int b = 0; b < num_blocks; b++) perm[b] = b;
    for (int b = num_blocks - 1; b > 0; b--) {   /* scattered physical blocks */
        int j = (int)(next(&seed) % (unsigned)(b + 1));
        int t = perm[b]; perm[b] = perm[j]; perm[j] = t;
    }
    int used = 0, id = 0, target = num_blocks * 3 / 4;
    while (used < target) {
        int want = 1 + (int)(next(&seed) % (unsigned)(num_blocks / 8 + 3));
        if (used + want > target) want = target - used;
        int tokens = (want - 1) * block_size + 1 + (int)(next(&seed) % (unsigned)block_size);
        for (int j = 0; j < want; j++) {
            int b = perm[used + j];
            table[j] = b;
            p->blocks[b].owner = id;
            p->blocks[b].ref = 1;
            p->blocks[b].tokens = j < want - 1 ? block_size : tokens - (want - 1) * block_size;
        }
        viz_queue q = id % 9 == 8 ? VIZ_Q_SWAPPED : VIZ_Q_RUNNING;
        if (viz_pool_add_seq(p, id, id, q, tokens / 2, tokens, table, want) < 0 ||
            viz_pool_enqueue(p, q, id)) { free(table); free(perm); viz_scene_free(s); return -1; }
        /* every third sequence forks: its child shares the first block */
        if (id % 3 == 1 && want > 1) {
            int child = id + 1;
            p->blocks[table[0]].ref++;
            int ctab[2] = { table[0], -1 };
            int nb = 1;
            if (used + want < target) { ctab[1] = perm[used + want]; nb = 2;
                p->blocks[ctab[1]].owner = child; p->blocks[ctab[1]].ref = 1;
                p->blocks[ctab[1]].tokens = 1 + (int)(next(&seed) % (unsigned)block_size); used++; }
            viz_pool_add_seq(p, child, id, VIZ_Q_RUNNING, block_size, block_size + 1, ctab, nb);
            viz_pool_enqueue(p, VIZ_Q_RUNNING, child);
            id++;
        }
        used += want;
        id++;
    }
    for (int j = used; j < num_blocks; j += 3) p->blocks[perm[j]].cached = true;
    for (int k = 0; k < 3 + num_blocks / 64; k++) viz_pool_enqueue(p, VIZ_Q_WAITING, id + k);
    viz_pool_count(p);
    snprintf(s->title, sizeof s->title, "pagesim   %d blocks x %d slots   synthetic", num_blocks, block_size);
    snprintf(s->event, sizeof s->event, "a synthetic state: scattered blocks, forks sharing their first block, cached prefixes");
    s->step = 42;
    free(table);
    free(perm);
    return 0;
}
