/* bench_sim: see bench_sim.h.  The pool and the scheduler are configured
 * exactly as eng_create configures the engine's (eng_kv_config, the same
 * limits), so that a difference between the two runs is one of time, not of
 * schedule.  Touches only the profile file it loads. */
#include "engine/bench_sim.h"
#include "sim/simulate.h"
#include "sim/op_profile.h"
#include "base/errbuf.h"
#include <string.h>

void bsim_add(bsim_figures *f, double e2e, int num_preemptions) {
    f->requests++;
    f->mean_latency += e2e;                 /* sums until bsim_finish */
    if (num_preemptions > 0) { f->preempted++; f->preempted_latency += e2e; }
}

void bsim_finish(bsim_figures *f) {
    if (f->requests) f->mean_latency /= f->requests;
    if (f->preempted) f->preempted_latency /= f->preempted;
}

int bsim_predict(const mc_config *c, const eng_config *cfg, const model_opts *mo, const model_mem *mem,
                 const int *prompt_len, const int *output_len, const double *arrival, int n,
                 const char *op_profile, const cm_gpu *gpu, bsim_figures *out, char *err, size_t errlen) {
    cm_model cm;
    static opp_profile prof;                /* large; one prediction at a time */
    memset(out, 0, sizeof *out);
    if (cm_model_init(&cm, c, gpu, 1, MC_DTYPE_BF16, err, errlen)) return -1;
    cm.swap_copies = CM_SWAP_RUNS;          /* this engine's swaps: one copy per run (engine/swap.c) */
    if (op_profile) {
        if (opp_load(&prof, op_profile, err, errlen)) return -1;
        if (!opp_matches(&prof, c, 1))
            return errbuf_fail(err, errlen, "%s: measured for %s, not %s", op_profile, prof.model, c->name);
        cm.prof = &prof;
    }
    sim_config sc = sim_config_default();
    sc.kv = eng_kv_config(mo, mem->num_blocks, cfg->kv_policy, cfg->prefix_caching);
    sc.kv.num_cpu_blocks = cfg->preempt == SCHED_PREEMPT_SWAP ? mem->num_cpu_blocks : 0;
    sc.sched = eng_sched_config(mo, cfg->static_batching, cfg->preempt);
    sc.model = &cm;
    sim_result r;
    if (sim_run_lengths(&sc, prompt_len, output_len, arrival, n, &r, err, errlen)) return -1;
    for (int i = 0; i < r.num_requests; i++) bsim_add(out, r.requests[i].e2e, r.requests[i].num_preemptions);
    bsim_finish(out);
    out->seconds = r.summary.sim_time;
    out->output_tok_s = r.summary.out_tok_per_s;
    out->preemptions = r.summary.preemptions;
    out->swap_outs = r.summary.swap_outs;
    out->swap_ins = r.summary.swap_ins;
    sim_result_free(&r);
    return 0;
}

void bsim_report(FILE *f, const char *what, const bsim_figures *m, const bsim_figures *p) {
    const bsim_figures *v[2] = {m, p};
    static const char *const name[2] = {"measured", "simulated"};
    for (int k = 0; k < 2; k++)
        fprintf(f, "  %s %-9s %8.2f s, %8.0f output tok/s, %6ld preemptions (%ld swap-outs, %ld swap-ins), "
                "%d of %d requests preempted: mean latency %.2f s, of the preempted %.2f s\n", what, name[k],
                v[k]->seconds, v[k]->output_tok_s, v[k]->preemptions, v[k]->swap_outs, v[k]->swap_ins,
                v[k]->preempted, v[k]->requests, v[k]->mean_latency, v[k]->preempted_latency);
    if (m->seconds > 0)
        fprintf(f, "  %s simulated / measured time: %.3f\n", what, p->seconds / m->seconds);
}
