/* kv_runs: a step's block copies grouped into runs (see kv_runs.h). */
#include "sim/kv_runs.h"

int kvr_next(const kv_copy *c, int n, int i, kv_run *r) {
    *r = (kv_run){c[i].kind, c[i].src, c[i].dst, 1};
    int j = i + 1;
    if (c[i].kind != KV_COPY_GPU)
        while (j < n && c[j].kind == c[i].kind && c[j].src == r->src + r->n && c[j].dst == r->dst + r->n) {
            r->n++;
            j++;
        }
    return j;
}

long kvr_swap_runs(const kv_copy *c, int n) {
    long runs = 0;
    for (int i = 0; i < n;) {
        kv_run r;
        i = kvr_next(c, n, i, &r);
        if (r.kind != KV_COPY_GPU) runs++;
    }
    return runs;
}
