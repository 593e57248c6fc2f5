/* cli_lora: the engine front ends' LoRA options (see apps/engine/cli_lora.h). */
#include "apps/engine/cli_lora.h"
#include "apps/engine/cli.h"
#include "apps/common/front.h"
#include "sim/planner.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

void cli_lora_init(cli_lora *l) {
    memset(l, 0, sizeof *l);
    l->max_loras = 1;
    l->max_rank = 16;
}

/* NAME=PATH or {"name": ..., "path": ...} into the next module; -1 when v is neither */
static int add_module(cli_lora *l, const char *v) {
    char name[128], path[1024];
    const char *eq = strchr(v, '=');
    if (v[0] == '{') {
        cJSON *j = cJSON_Parse(v);
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "name"), *p = cJSON_GetObjectItemCaseSensitive(j, "path");
        int ok = cJSON_IsString(n) && cJSON_IsString(p) && *n->valuestring && *p->valuestring;
        if (ok) {
            snprintf(name, sizeof name, "%s", n->valuestring);
            snprintf(path, sizeof path, "%s", p->valuestring);
        }
        cJSON_Delete(j);
        if (!ok) return -1;
    } else {
        if (!eq || eq == v || !eq[1] || (size_t)(eq - v) >= sizeof name) return -1;
        snprintf(name, sizeof name, "%.*s", (int)(eq - v), v);
        snprintf(path, sizeof path, "%s", eq + 1);
    }
    if (l->n == CLI_MAX_LORA_MODULES) return -2;
    snprintf(l->name[l->n], sizeof l->name[l->n], "%s", name);
    snprintf(l->path[l->n], sizeof l->path[l->n], "%s", path);
    l->n++;
    return 0;
}

static void module_error(const char *prog, const char *v, int rc) {
    char err[1300];
    if (rc == -2) snprintf(err, sizeof err, "at most %d --lora-modules", CLI_MAX_LORA_MODULES);
    else snprintf(err, sizeof err, "--lora-modules wants NAME=PATH or {\"name\": ..., \"path\": ...}, got '%.1000s'", v);
    cli_usage_error(prog, err);
}

int cli_lora_option(const char *prog, int key, const char *name, const char *v, cli_lora *l) {
    int rc;
    switch (key) {
    case CLI_ENABLE_LORA: l->enabled = 1; return 1;
    case CLI_LORA_MODULES:
        if ((rc = add_module(l, v))) module_error(prog, v, rc);
        l->modules_seen = 1;
        return 1;
    case CLI_MAX_LORAS: l->max_loras = cli_int(prog, name, v, 1, 1024); return 1;
    case CLI_MAX_LORA_RANK: l->max_rank = cli_int(prog, name, v, 1, LORA_MAX_RANK); return 1;
    default: return 0;
    }
}

int cli_lora_positional(const char *prog, const char *v, cli_lora *l) {
    if (!l->modules_seen || (!strchr(v, '=') && v[0] != '{')) return 0;
    int rc = add_module(l, v);
    if (rc) module_error(prog, v, rc);
    return 1;
}

static void summary(FILE *log, const cli_lora *l) {
    if (log && l->set.n)
        fprintf(log, "LoRA: %d adapter%s, %d GPU slot%s of rank %d\n", l->set.n, l->set.n == 1 ? "" : "s",
                l->set.max_loras, l->set.max_loras == 1 ? "" : "s", l->set.max_rank);
}

static void describe(FILE *log, const lora_adapter *a, int id) {
    if (!log) return;
    fprintf(log, "LoRA adapter %d '%s': rank %d, alpha %g, scale %g%s, from %s; modules:", id, a->name, a->cfg.r,
            a->cfg.alpha, a->cfg.scale, a->cfg.use_rslora ? " (rsLoRA)" : "", a->dir);
    for (int m = 0; m < LORA_NMOD; m++) {
        int any = a->dummy_seed != 0;
        for (int l = 0; l < a->L && !any && a->A; l++) any = a->A[(size_t)l * LORA_NMOD + m] != NULL;
        if (any) fprintf(log, " %s", lora_module_name(m));
    }
    fprintf(log, "\n");
}

const lora_set *cli_lora_load(const char *prog, cli_lora *l, const mc_config *c, FILE *log) {
    char err[1400];
    if (!l->enabled) {
        if (l->n) cli_usage_error(prog, "--lora-modules needs --enable-lora");
        return NULL;
    }
    if (lora_set_init(&l->set, l->max_loras, l->max_rank, err, sizeof err)) cli_usage_error(prog, err);
    for (int i = 0; i < l->n; i++) {
        int id = lora_set_add(&l->set, l->name[i], l->path[i], c, err, sizeof err);
        if (id < 0) {
            fprintf(stderr, "%s: LoRA adapter '%s': %s\n", prog, l->name[i], err);
            exit(1);
        }
        describe(log, &l->set.a[id - 1], id);
    }
    summary(log, l);
    return &l->set;
}

void cli_lora_dummy(const char *prog, cli_lora *l, const mc_config *c, int n, FILE *log) {
    char err[512], name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "dummy%d", i + 1);
        int id = lora_set_add_dummy(&l->set, name, c, 1000 + (uint64_t)i, err, sizeof err);
        if (id < 0) { fprintf(stderr, "%s: %s\n", prog, err); exit(1); }
        describe(log, &l->set.a[id - 1], id);
    }
    summary(log, l);
}

void cli_lora_report(FILE *f, const cli_lora *l, const mc_config *c, size_t lora_bytes) {
    if (!l->enabled) return;
    double plan = (double)plan_lora_bytes(c, MC_DTYPE_BF16, 1, l->set.max_loras, l->set.max_rank);
    fprintf(f, "LoRA: %d slots of rank %d take %.3f GiB with their work buffers (pagesim plan --enable-lora: slots "
            "%.3f GiB)\n", l->set.max_loras, l->set.max_rank, lora_bytes / 1073741824.0, plan / 1073741824.0);
}

void cli_lora_free(cli_lora *l) { lora_set_free(&l->set); }

int cli_shared_option(const char *prog, int key, const char *name, const char *v, eng_config *cfg, cli_lora *l) {
    return front_option(prog, key, v) || cli_engine_option(prog, key, name, v, cfg) ||
           cli_lora_option(prog, key, name, v, l) || cli_model_option(prog, key, name, v, &cfg->model, &cfg->kv_policy);
}
