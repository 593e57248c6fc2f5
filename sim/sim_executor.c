/* sim_executor: cost-model step times and synthetic tokens (see the header). */
#include "sim/sim_executor.h"
#include "sim/op_profile.h"
#include <string.h>

void simx_init(simx *x, const cm_model *model, uint64_t seed) {
    memset(x, 0, sizeof *x);
    x->model = model;
    x->rng = seed ^ 0xC0FFEEull;
    x->vocab = model && model->cfg.vocab_size > 0 ? model->cfg.vocab_size : 32000;
}

double simx_step_time(const simx *x, const sched_batch *b) {
    if (x->model) {                  /* a profile also measured the host's time between steps */
        double t = cm_step_time(x->model, &b->counts);
        return x->model->prof ? t + opp_post_time(x->model->prof, b->counts.num_seqs) : t;
    }
    return 5e-3 + 20e-6 * b->counts.num_seqs + 50e-6 * (double)b->counts.prefill_tokens;
}

static int simx_execute(void *ctx, const sched_batch *b, int *tokens, double *seconds,
                        char *err, size_t errlen) {
    (void)err; (void)errlen;
    simx *x = ctx;
    for (int i = 0; i < b->num_items; i++) {
        x->rng = x->rng * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int)((x->rng >> 33) % (uint64_t)x->vocab);
    }
    *seconds = simx_step_time(x, b);
    x->busy_s += *seconds;
    return 0;
}

loop_executor simx_executor(simx *x) {
    loop_executor e = { x, simx_execute };
    return e;
}
