/* lab_real: a lab's requests on the CUDA engine and on the simulator, counted
 * alike (see lab_real.h).  The engine path adds every request and calls
 * eng_run: the engine's scheduler, KV cache and driver (sim/) decide
 * everything.  Reads the model config, data/gpus.json and data/profiles;
 * uses the GPU through engine/ (lab_real_engine only); prints nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/errbuf.h"
#include "engine/engine.h"
#include "engine/lora_set.h"
#include "engine/weights.h"
#include "labs/lab_impl.h"
#include "labs/lab_real.h"
#include "sim/cost_model.h"
#include "sim/model_config.h"
#include "sim/op_profile.h"
#include "sim/planner.h"
#include "sim/simulate.h"
#ifdef PAGESIM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif


/* ---- the numbers, from one collector's records ------------------------------ */

void lab_real_from_metrics(const met_summary *s, const met_step *st, int nst, const met_request *rq, int nrq,
                           lab_real_meas *out) {
    char where[sizeof out->where], gpu[sizeof out->gpu];
    memcpy(where, out->where, sizeof where);
    memcpy(gpu, out->gpu, sizeof gpu);
    int nb = out->num_blocks, bs = out->block_size;
    memset(out, 0, sizeof *out);
    memcpy(out->where, where, sizeof where);
    memcpy(out->gpu, gpu, sizeof gpu);
    out->num_blocks = nb;
    out->block_size = bs;
    out->requests = s->num_requests;
    out->finished = s->num_finished;
    out->prompt_tokens = s->prompt_tokens;
    out->output_tokens = s->output_tokens;
    out->steps = s->steps;
    out->seconds = s->sim_time;
    out->out_tok_s = s->out_tok_per_s;
    out->total_tok_s = s->total_tok_per_s;
    out->mean_running = s->mean_running;
    out->max_running = s->max_running;
    out->mean_blocks = s->mean_blocks_used;
    out->max_blocks = s->max_blocks_used;
    double ext = s->share_external + s->share_free_waiting;
    double used = s->share_token + s->share_reserved + s->share_internal + ext;
    out->token = used > 0 ? s->share_token / used : 0;
    out->reserved = used > 0 ? s->share_reserved / used : 0;
    out->internal = used > 0 ? s->share_internal / used : 0;
    out->external = used > 0 ? ext / used : 0;
    out->preemptions = s->preemptions;
    out->norm_latency = s->norm_latency.mean;
    out->ttft_mean = s->ttft.mean;
    out->tpot_mean = s->tpot.mean;
    out->prefix_hit_tokens = s->prefix_hit_tokens;
    out->hit_pct = s->prompt_tokens > 0 ? 100.0 * (double)s->prefix_hit_tokens / (double)s->prompt_tokens : 0;
    out->cow_copies = s->cow_copies;
    out->forks = s->forks;
    double w = 0, run = 0;
    for (int k = 0; k < nst; k++)
        if (st[k].waiting > 0) { w += st[k].dt; run += st[k].dt * st[k].running; }
    out->at_once = w > 0 ? run / w : NAN;
    double sp = 0, so = 0;
    int np = 0, no = 0;
    for (int i = 0; i < nrq; i++) {
        if (rq[i].aborted) continue;
        if (rq[i].num_preemptions > 0) { sp += rq[i].norm_latency; np++; }
        else { so += rq[i].norm_latency; no++; }
    }
    out->preempted_requests = np;
    out->norm_latency_preempted = np ? sp / np : NAN;
    out->norm_latency_others = no ? so / no : NAN;
}

/* ---- the settings both paths share ----------------------------------------- */

static const char *model_path(const lab_real_setup *s) { return s->model_config ? s->model_config : LAB_REAL_MODEL; }

int lab_real_blocks(const lab_real_setup *s, const mc_config *c) {
    if (s->num_blocks > 0) return s->num_blocks;
    if (s->kv_gib <= 0) return 0;
    int bs = s->block_size > 0 ? s->block_size : 16;
    double per_block = (double)mc_kv_bytes_per_token(c, c->dtype) * bs;
    return (int)floor(s->kv_gib * 1073741824.0 / per_block);
}

static bool from_memory(const lab_real_setup *s) {
    return s->num_blocks <= 0 && s->kv_gib <= 0 && s->gpu_memory_utilization > 0;
}

static int lora_rank(const lab_real_setup *s) { return s->max_lora_rank > 0 ? s->max_lora_rank : 16; }

/* The engine's options for s (resolved as model_create resolves them), and
 * the pool in blocks (0 when the memory plan sizes it). */
static int options(const lab_real_setup *s, const mc_config *c, model_opts *mo, int *nb, char *err, size_t errlen) {
    memset(mo, 0, sizeof *mo);
    mo->block_size = s->block_size > 0 ? s->block_size : 16;
    mo->max_num_seqs = s->max_num_seqs > 0 ? s->max_num_seqs : 256;
    mo->max_num_batched_tokens = s->max_num_batched_tokens > 0 ? s->max_num_batched_tokens : 2048;
    mo->max_model_len = s->max_model_len > 0 ? s->max_model_len : 2048;
    mo->gpu_memory_utilization = s->gpu_memory_utilization;
    *nb = lab_real_blocks(s, c);
    mo->num_gpu_blocks = *nb;
    model_resolve_opts(c, mo);
    if (s->policy != KV_PAGED && s->policy != KV_CONTIGUOUS)
        return errbuf_fail(err, errlen, "KV policy %s: the engine has paged and contiguous", kv_policy_name(s->policy));
    if (s->max_loras < 0 || s->lora_adapters < 0 || (s->lora_adapters > 0 && s->max_loras == 0))
        return errbuf_fail(err, errlen, "LoRA: %d adapters in %d GPU slots: give max_loras > 0 with adapters",
                           s->lora_adapters, s->max_loras);
    if (from_memory(s)) return 0;
    if (*nb <= 0) return errbuf_fail(err, errlen, "no KV pool: give num_blocks, kv_gib or gpu_memory_utilization");
    if ((long)*nb * mo->block_size < mo->max_model_len)
        return errbuf_fail(err, errlen, "a pool of %d blocks of %d tokens holds less than one sequence of "
                           "max_model_len %d", *nb, mo->block_size, mo->max_model_len);
    return 0;
}

int lab_real_lora_set(const lab_real_setup *s, const mc_config *c, bool adapters, lora_set *set, char *err,
                      size_t errlen) {
    memset(set, 0, sizeof *set);
    if (s->max_loras <= 0) return 0;
    if (lora_set_init(set, s->max_loras, lora_rank(s), err, errlen) < 0) return -1;
    for (int i = 0; adapters && i < s->lora_adapters; i++) {
        char name[32];
        snprintf(name, sizeof name, "adapter%d", i + 1);
        if (lora_set_add_dummy(set, name, c, s->seed * 0x9E3779B97F4A7C15ull + 1000 + (uint64_t)i, err, errlen) < 0) {
            lora_set_free(set);
            return -1;
        }
    }
    return 1;
}

/* The twin's pool when the memory plan sizes it: the planner on GPU g with
 * the engine's options, LoRA slots included. */
static int plan_blocks(const lab_real_setup *s, const mc_config *c, const cm_gpu *g, const model_opts *mo, int *nb,
                       char *err, size_t errlen) {
    plan_opts po;
    plan_opts_default(&po);
    po.util = s->gpu_memory_utilization;
    po.max_model_len = mo->max_model_len;
    po.block_size = mo->block_size;
    po.max_num_seqs = mo->max_num_seqs;
    po.max_num_batched_tokens = mo->max_num_batched_tokens;
    po.max_loras = s->max_loras > 0 ? s->max_loras : 0;
    po.max_lora_rank = lora_rank(s);
    plan_result pr;
    if (plan_compute(c, g, &po, &pr, err, errlen) < 0) return -1;
    if (!pr.fits) return errbuf_fail(err, errlen, "%s on %s at gpu_memory_utilization %.2f: no room for one sequence "
                                     "of %d tokens", pr.model, pr.gpu, po.util, po.max_model_len);
    *nb = pr.num_blocks > 0x7fffffff / mo->block_size ? 0x7fffffff / mo->block_size : (int)pr.num_blocks;
    return 0;
}

/* Requests must fit max_model_len whole (the engine refuses them otherwise). */
static int check_requests(const lab_real_setup *s, const wl_request *r, int n, int max_model_len, char *err,
                          size_t errlen) {
    if (n <= 0 || !r) return errbuf_fail(err, errlen, "no requests");
    for (int i = 0; i < n; i++)
        if (r[i].lora < 0 || r[i].lora > s->lora_adapters)
            return errbuf_fail(err, errlen, "request %d: LoRA adapter %d, but %d are loaded", i, r[i].lora,
                               s->lora_adapters);
    for (int i = 0; i < n; i++)
        if (r[i].prompt_len <= 0 || r[i].output_len <= 0 || r[i].prompt_len + r[i].output_len > max_model_len ||
            r[i].arrival < 0 || r[i].beam > 1)
            return errbuf_fail(err, errlen, "request %d: prompt %d + output %d tokens (max_model_len %d), arrival "
                               "%g, beam %d: the engine runs whole requests without beam search", i, r[i].prompt_len,
                               r[i].output_len, max_model_len, r[i].arrival, r[i].beam);
    return 0;
}

/* ---- the simulator ----------------------------------------------------------- */

/* The twin's cost model and scheduler: c on g with the GPU's operator profile
 * when data/profiles has one (*prof, 1; 0: the roofline), LoRA's cost term
 * and the scheduler's max_loras as the engine's set gives them. */
static int twin_config(const lab_real_setup *s, const mc_config *c, const cm_gpu *g, model_opts *mo, int nb,
                       cm_model *m, opp_profile *prof, sim_config *sc, char *err, size_t errlen) {
    char path[512] = "";
    lora_set set;
    if (cm_model_init(m, c, g, 1, c->dtype, err, errlen) < 0) return -1;
    int found = opp_find(prof, "data/profiles", g->name, c, 1, path, sizeof path, err, errlen);
    if (found < 0 || lab_real_lora_set(s, c, false, &set, err, errlen) < 0) return -1;
    m->prof = found ? prof : NULL;
    if (s->max_loras > 0) m->lora = cm_lora_default(lora_rank(s));
    mo->lora = s->max_loras > 0 ? &set : NULL;
    *sc = sim_config_default();
    sc->kv = eng_kv_config(mo, nb, s->policy, s->prefix_caching);
    sc->sched = eng_sched_config(mo, s->static_batching, SCHED_PREEMPT_RECOMPUTE);
    mo->lora = NULL;
    lora_set_free(&set);
    sc->model = m;
    sc->seed = s->seed;
    sc->keep_steps = true;
    sc->usage_every = 1;                  /* as the engine samples the pool */
    return found;
}

int lab_real_simulate(const lab_real_setup *s, const char *gpu, const wl_request *r, int n,
                      lab_real_meas *out, char *err, size_t errlen) {
    mc_config c;
    cm_gpu g;
    cm_model m;
    model_opts mo;
    int nb;
    memset(out, 0, sizeof *out);
    if (mc_load(&c, model_path(s), err, errlen) < 0 || options(s, &c, &mo, &nb, err, errlen) < 0 ||
        check_requests(s, r, n, mo.max_model_len, err, errlen) < 0 ||
        cm_gpu_find(&g, gpu ? gpu : LAB_REAL_GPU, err, errlen) < 0 ||
        (from_memory(s) && plan_blocks(s, &c, &g, &mo, &nb, err, errlen) < 0))
        return -1;
    opp_profile *prof = malloc(sizeof *prof);
    if (!prof) return errbuf_fail(err, errlen, "out of memory");
    sim_config sc;
    int found = twin_config(s, &c, &g, &mo, nb, &m, prof, &sc, err, errlen);
    if (found < 0) { free(prof); return -1; }
    sim_result res;
    int rc = sim_run(&sc, r, n, &res, err, errlen);
    if (rc == 0) {
        snprintf(out->where, sizeof out->where, "%s, simulated (%s)", g.name, found ? "operator profile" : "roofline");
        snprintf(out->gpu, sizeof out->gpu, "%s", g.name);
        out->num_blocks = nb;
        out->block_size = mo.block_size;
        lab_real_from_metrics(&res.summary, res.steps, res.num_steps, res.requests, res.num_requests, out);
        sim_result_free(&res);
    }
    free(prof);
    return rc;
}

/* ---- the engine ----------------------------------------------------------------- */

/* The device's name, and the GPU table's name for it ("" when unknown). */
static void device_names(char *where, size_t wn, char *gpu, size_t gn) {
    snprintf(where, wn, "a CUDA GPU, CUDA engine");
    gpu[0] = 0;
#ifdef PAGESIM_HAVE_CUDA
    struct cudaDeviceProp p;
    cm_gpu g;
    char e[256];
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return;
    snprintf(where, wn, "%.60s, CUDA engine", p.name);
    if (cm_gpu_for_device(&g, p.name, (double)p.totalGlobalMem, e, sizeof e) == 0) snprintf(gpu, gn, "%s", g.name);
#endif
}

/* Adds every request in order of arrival (the engine's clock starts now),
 * each with its prompt ids as the simulator makes them. */
static int add_all(eng *e, const lab_real_setup *s, const wl_request *r, int n, char *err, size_t errlen) {
    int maxp = 1, rc = 0;
    for (int i = 0; i < n; i++) if (r[i].prompt_len > maxp) maxp = r[i].prompt_len;
    int *ids = malloc(sizeof *ids * (size_t)maxp), *order = malloc(sizeof *order * (size_t)n);
    if (!ids || !order) { free(ids); free(order); return errbuf_fail(err, errlen, "out of memory"); }
    for (int i = 0; i < n; i++) {           /* insertion by arrival: stable, as sim_run orders them */
        int k = i;
        while (k > 0 && r[order[k - 1]].arrival > r[i].arrival) { order[k] = order[k - 1]; k--; }
        order[k] = i;
    }
    double t0 = eng_now(e);
    for (int k = 0; k < n && rc == 0; k++) {
        int i = order[k];
        wl_prompt_tokens(&r[i], i, s->seed, ids);
        eng_params p = { .max_tokens = r[i].output_len, .temperature = 1.0f, .top_p = 1.0f,
                         .seed = s->seed * 0x9E3779B97F4A7C15ull + (uint64_t)i, .arrival = t0 + r[i].arrival,
                         .lora = r[i].lora };
        eng_output_opts o = { .n = r[i].n > 1 ? r[i].n : 1 };
        rc = eng_add_request_out(e, i, ids, r[i].prompt_len, &p, &o, err, errlen);
    }
    free(ids);
    free(order);
    return rc;
}

int lab_real_engine(const lab_real_setup *s, const wl_request *r, int n, lab_real_meas *out, char *err,
                    size_t errlen) {
    char why[256];
    mc_config c;
    model_opts mo;
    int nb;
    memset(out, 0, sizeof *out);
    if (!eng_gpu_available(why, sizeof why)) return errbuf_fail(err, errlen, "the CUDA engine cannot run: %s", why);
    if (mc_load(&c, model_path(s), err, errlen) < 0 || w_check_config(&c, err, errlen) < 0 ||
        options(s, &c, &mo, &nb, err, errlen) < 0 || check_requests(s, r, n, mo.max_model_len, err, errlen) < 0)
        return -1;
    lora_set set;
    if (lab_real_lora_set(s, &c, true, &set, err, errlen) < 0) return -1;
    mo.lora = s->max_loras > 0 ? &set : NULL;
    w_weights w;
    if (w_dummy(&w, &c, s->seed, err, errlen) < 0) { lora_set_free(&set); return -1; }
    eng_config ec = { .model = mo, .kv_policy = s->policy, .prefix_caching = s->prefix_caching, .eos_id = -1,
                      .keep_request_metrics = true, .keep_steps = true, .static_batching = s->static_batching };
    model_mem mem;
    eng *e = eng_create(&c, &w, &ec, &mem, err, errlen);      /* owns w from here */
    if (!e) { lora_set_free(&set); return -1; }
    int rc = add_all(e, s, r, n, err, errlen);
    if (rc == 0) rc = eng_run(e, NULL, err, errlen);
    met_summary sum;
    if (rc == 0 && eng_summary(e, &sum) < 0) rc = errbuf_fail(err, errlen, "out of memory");
    if (rc == 0) {
        int nst, nrq;
        const met_step *st = met_steps(eng_metrics(e), &nst);
        const met_request *rq = met_requests(eng_metrics(e), &nrq);
        device_names(out->where, sizeof out->where, out->gpu, sizeof out->gpu);
        out->num_blocks = mem.num_blocks;
        out->block_size = mem.block_size;
        lab_real_from_metrics(&sum, st, nst, rq, nrq, out);
    }
    eng_free(e);
    lora_set_free(&set);
    return rc;
}

/* ---- a lab's runs -------------------------------------------------------------- */

void lab_real_use(lab *L, const lab_real_measurer *m) { L->real = m; }

int lab_real_measure(lab *L, const lab_real_setup *s, const wl_request *r, int n, lab_real_meas *gpu,
                     lab_real_meas *sim, char *err, size_t errlen) {
    const lab_real_measurer *m = L->real;
    int rc = m ? m->fn(m->ctx, s, r, n, gpu, err, errlen) : lab_real_engine(s, r, n, gpu, err, errlen);
    if (rc < 0) return -1;
    return lab_real_simulate(s, gpu->gpu[0] ? gpu->gpu : NULL, r, n, sim, err, errlen);
}
