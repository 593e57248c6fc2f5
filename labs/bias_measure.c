/* bias_measure: the measured side of a comparison (see labs/bias_compare.h):
 * wall time and throughput over the sets, TTFT and TPOT percentiles, batch
 * sizes, and from the KV samples the time-weighted utilization, token share
 * and internal fragmentation, and set 1's blocks in use over time.  Reads the
 * trace only. */
#include "labs/bias_compare_impl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bias_cmp_trace_sets(const bias_trace *t, int *sets) {
    int n = 0;
    for (size_t i = 0; i < t->nreq; i++) {
        int s = t->req[i].set, k;
        for (k = 0; k < n && sets[k] != s; k++) {}
        if (k == n) sets[n++] = s;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && sets[j - 1] > sets[j]; j--) { int x = sets[j]; sets[j] = sets[j - 1]; sets[j - 1] = x; }
    return n;
}


int bias_cmp_measure(const bias_trace *t, side *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    double *tt = malloc((t->nreq + 1) * sizeof *tt), *tp = malloc((t->nreq + 1) * sizeof *tp);   /* (nreq) */
    if (!tt || !tp) { free(tt); free(tp); snprintf(err, errlen, "out of memory"); return -1; }
    int ntt = 0, ntp = 0;
    long tok = 0, out = 0;
    for (size_t i = 0; i < t->nreq; i++) {
        const bias_trace_req *r = &t->req[i];
        tok += r->prompt_tokens + r->output_tokens; out += r->output_tokens;
        tt[ntt++] = r->first_token_s - r->submit_s;
        if (r->output_tokens > 1) tp[ntp++] = (r->finish_s - r->first_token_s) / (r->output_tokens - 1);
    }
    for (int s = 0; s < t->nsets; s++) m->wall_s += t->set_wall_s[s];
    m->tok_per_s = m->wall_s > 0 ? (double)tok / m->wall_s : 0;
    m->out_tok_per_s = m->wall_s > 0 ? (double)out / m->wall_s : 0;
    met_percentiles(tt, ntt, &m->ttft);
    met_percentiles(tp, ntp, &m->tpot);
    free(tt); free(tp);
    double nsum = 0, nw = 0;
    for (size_t i = 0; i < t->nstep; i++) {
        const bias_trace_step *s = &t->step[i];
        if (s->num_seqs > m->max_seqs) m->max_seqs = s->num_seqs;
        nsum += s->seconds * s->num_seqs; nw += s->seconds;
    }
    m->mean_seqs = nw > 0 ? nsum / nw : 0;
    if (t->nkv) {
        m->has_kv = 1;
        double held = 0, tokw = 0, intw = 0, pool = 0;
        int first_set = t->kv[0].set, n1 = 0;
        for (size_t i = 0; i < t->nkv; i++) {
            const bias_trace_kv *k = &t->kv[i];
            /* weight: time to the next sample of the same set */
            double dt = (i + 1 < t->nkv && t->kv[i + 1].set == k->set) ? t->kv[i + 1].t_s - k->t_s : 0;
            if (dt < 0) dt = 0;
            double h = (double)(k->token_slots + k->reserved_slots + k->internal_frag);
            held += dt * h; tokw += dt * (double)k->token_slots; intw += dt * (double)k->internal_frag;
            pool += dt * (double)k->slots_total;
            if (k->blocks_used > m->peak_blocks) m->peak_blocks = k->blocks_used;
            if (k->set == first_set) n1++;
        }
        m->kv_util = pool > 0 ? held / pool : 0;
        m->token_share_of_held = held > 0 ? tokw / held : 0;
        m->internal_of_held = held > 0 ? intw / held : 0;
        int stride = (n1 + MAX_PTS - 1) / MAX_PTS;
        if (stride < 1) stride = 1;
        for (int i = 0; i < n1 && m->npts < MAX_PTS; i += stride) {
            m->t[m->npts] = t->kv[i].t_s; m->blocks[m->npts++] = t->kv[i].blocks_used;
        }
    }
    return 0;
}

