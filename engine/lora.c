/* lora: see lora.h.  PEFT's adapter_config.json and adapter_model.safetensors
 * read and checked against the base model's shapes.  Reads the adapter's
 * two files (the tensors stay mapped); no GPU. */
#include "engine/lora.h"
#include "engine/st_write.h"
#include "engine/kernels_ref.h"
#include "base/errbuf.h"
#include "base/file.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_mod[LORA_NMOD] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                             "down_proj"};

const char *lora_module_name(int m) { return m >= 0 && m < LORA_NMOD ? k_mod[m] : "?"; }
static int is_mlp(int m) { return m >= LORA_GATE; }

void lora_module_shape(const mc_config *c, int m, int64_t *out, int64_t *in) {
    int64_t D = c->hidden_size, q = (int64_t)c->num_heads * c->head_dim, kv = (int64_t)c->num_kv_heads * c->head_dim;
    int64_t I = c->intermediate_size;
    switch (m) {
    case LORA_Q: *out = q; *in = D; break;
    case LORA_K: case LORA_V: *out = kv; *in = D; break;
    case LORA_O: *out = D; *in = q; break;
    case LORA_GATE: case LORA_UP: *out = I; *in = D; break;
    default: *out = D; *in = I; break;
    }
}

double lora_scaling(int r, double alpha, int use_rslora) {
    if (r <= 0) return 0;
    return use_rslora ? alpha / sqrt((double)r) : alpha / r;
}

/* ---- adapter_config.json --------------------------------------------------- */
static int module_index(const char *name) {
    const char *dot = strrchr(name, '.');       /* "self_attn.q_proj" names q_proj as PEFT's suffix match does */
    if (dot) name = dot + 1;
    for (int m = 0; m < LORA_NMOD; m++) if (!strcmp(name, k_mod[m])) return m;
    return -1;
}

/* a field that must be absent, null, false, empty or "none" for the engine */
static int unsupported(const cJSON *root, const char *key, const char *ok_string) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 0;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return cJSON_GetArraySize(v) > 0;
    if (cJSON_IsString(v) && ok_string) return strcmp(v->valuestring, ok_string) != 0;
    return 1;
}

static int parse_targets(const cJSON *t, const char *origin, lora_peft_config *o, char *err, size_t errlen) {
    if (cJSON_IsString(t)) {
        if (!strcmp(t->valuestring, "all-linear")) { o->targets = (1u << LORA_NMOD) - 1; return 0; }
        if (strlen(t->valuestring) >= sizeof o->regex - 8)
            return errbuf_fail(err, errlen, "%s: target_modules pattern longer than %zu characters", origin,
                               sizeof o->regex - 8);
        regex_t re;
        char full[sizeof o->regex + 8];
        snprintf(full, sizeof full, "^(%s)$", t->valuestring);
        if (regcomp(&re, full, REG_EXTENDED | REG_NOSUB))
            return errbuf_fail(err, errlen, "%s: target_modules '%.100s' is not a regular expression the engine "
                               "reads (POSIX extended)", origin, t->valuestring);
        regfree(&re);
        snprintf(o->regex, sizeof o->regex, "%s", t->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(t) || cJSON_GetArraySize(t) == 0)
        return errbuf_fail(err, errlen, "%s: target_modules must be a list of module names, \"all-linear\" or "
                           "a pattern", origin);
    const cJSON *e;
    cJSON_ArrayForEach(e, t) {
        int m = cJSON_IsString(e) ? module_index(e->valuestring) : -1;
        if (m < 0)
            return errbuf_fail(err, errlen, "%s: target module '%.60s' is not a linear layer this model has (the "
                               "engine applies adapters to q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                               "down_proj)", origin, cJSON_IsString(e) ? e->valuestring : "?");
        o->targets |= 1u << m;
    }
    return 0;
}

int lora_config_parse(const char *json, size_t len, const char *origin, lora_peft_config *o, char *err,
                      size_t errlen) {
    memset(o, 0, sizeof *o);
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc = -1;
    if (!cJSON_IsObject(root)) { errbuf_fail(err, errlen, "%s: not a JSON object", origin); goto out; }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "peft_type");
    if (cJSON_IsString(pt) && strcmp(pt->valuestring, "LORA")) {
        errbuf_fail(err, errlen, "%s: peft_type %.40s (the engine applies LORA adapters)", origin, pt->valuestring);
        goto out;
    }
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "r");
    if (!cJSON_IsNumber(r) || r->valuedouble != floor(r->valuedouble) || r->valuedouble < 1 ||
        r->valuedouble > 65536) {
        errbuf_fail(err, errlen, "%s: 'r' must be a positive integer", origin);
        goto out;
    }
    o->r = (int)r->valuedouble;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
    if (a && !cJSON_IsNull(a) && !cJSON_IsNumber(a)) { errbuf_fail(err, errlen, "%s: 'lora_alpha' must be a number", origin); goto out; }
    o->alpha = cJSON_IsNumber(a) ? a->valuedouble : 8;              /* PEFT's default */
    o->use_rslora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_rslora"));
    o->scale = lora_scaling(o->r, o->alpha, o->use_rslora);
    static const struct { const char *key, *ok, *why; } no[] = {
        {"modules_to_save", NULL, "modules_to_save (fully trained layers beside the adapter)"},
        {"use_dora", NULL, "DoRA (use_dora)"},
        {"bias", "none", "LoRA biases (bias other than \"none\")"},
        {"rank_pattern", NULL, "per-module ranks (rank_pattern)"},
        {"alpha_pattern", NULL, "per-module alphas (alpha_pattern)"},
        {"fan_in_fan_out", NULL, "fan_in_fan_out (Conv1D layers)"},
        {"layers_pattern", NULL, "layers_pattern"},
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (unsupported(root, no[i].key, no[i].ok)) {
            errbuf_fail(err, errlen, "%s: %s is not supported by the engine", origin, no[i].why);
            goto out;
        }
    if (parse_targets(cJSON_GetObjectItemCaseSensitive(root, "target_modules"), origin, o, err, errlen)) goto out;
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layers_to_transform");
    if (cJSON_IsNumber(lt)) o->layers[o->nlayers++] = lt->valueint;
    else if (cJSON_IsArray(lt)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) {
            if (!cJSON_IsNumber(e) || e->valueint < 0 || o->nlayers == (int)(sizeof o->layers / sizeof o->layers[0])) {
                errbuf_fail(err, errlen, "%s: layers_to_transform must list layer numbers", origin);
                goto out;
            }
            o->layers[o->nlayers++] = e->valueint;
        }
    } else if (lt && !cJSON_IsNull(lt)) { errbuf_fail(err, errlen, "%s: layers_to_transform must list layer numbers", origin); goto out; }
    const cJSON *bm = cJSON_GetObjectItemCaseSensitive(root, "base_model_name_or_path");
    if (cJSON_IsString(bm)) snprintf(o->base_model, sizeof o->base_model, "%s", bm->valuestring);
    rc = 0;
out:
    if (!root) errbuf_fail(err, errlen, "%s: malformed JSON", origin);
    cJSON_Delete(root);
    return rc;
}

/* ---- adapter_model.safetensors --------------------------------------------- */
/* Whether the config covers module m of layer l (its targets, or its pattern on the full name). */
static int covers(const lora_peft_config *cfg, const regex_t *re, int l, int m) {
    if (cfg->nlayers > 0) {
        int in = 0;
        for (int i = 0; i < cfg->nlayers; i++) in |= cfg->layers[i] == l;
        if (!in) return 0;
    }
    if (!cfg->regex[0]) return (cfg->targets >> m) & 1u;
    char full[96];
    snprintf(full, sizeof full, "model.layers.%d.%s.%s", l, is_mlp(m) ? "mlp" : "self_attn", k_mod[m]);
    return regexec(re, full, 0, NULL, 0) == 0;
}

/* Splits a tensor name into layer, module and A/B ('A' or 'B'); -1 when it is not
 * base_model.model.model.layers.N.{self_attn,mlp}.MODULE.lora_{A,B}[.default].weight */
static int parse_name(const char *name, int *layer, int *mod, char *ab) {
    static const char pre[] = "base_model.model.model.layers.";
    if (strncmp(name, pre, sizeof pre - 1)) return -1;
    const char *p = name + sizeof pre - 1;
    char *end;
    long l = strtol(p, &end, 10);
    if (end == p || *end != '.' || l < 0 || l > 1 << 20) return -1;
    p = end + 1;
    int attn = !strncmp(p, "self_attn.", 10), mlp = !strncmp(p, "mlp.", 4);
    if (!attn && !mlp) return -1;
    p += attn ? 10 : 4;
    for (int m = 0; m < LORA_NMOD; m++) {
        size_t n = strlen(k_mod[m]);
        if (strncmp(p, k_mod[m], n) || p[n] != '.' || is_mlp(m) != mlp) continue;
        const char *q = p + n + 1;
        if (strncmp(q, "lora_", 5) || (q[5] != 'A' && q[5] != 'B')) return -1;
        if (strcmp(q + 6, ".weight") && strcmp(q + 6, ".default.weight")) return -1;
        *layer = (int)l; *mod = m; *ab = q[5];
        return 0;
    }
    return -1;
}

/* Checks tensor t of module m at layer l (ab: 'A' or 'B') against c and the rank; records it. */
static int take_tensor(lora_adapter *a, const mc_config *c, const st_tensor *t, int l, int m, char ab,
                       int max_rank, char *err, size_t errlen) {
    if (l >= c->num_layers)
        return errbuf_fail(err, errlen, "%s: tensor '%s': layer %d, but %s has %d layers", a->dir, t->name, l,
                           c->name, c->num_layers);
    if (is_mlp(m) && mc_layer_is_moe(c, l))
        return errbuf_fail(err, errlen, "%s: tensor '%s': layer %d of %s is a mixture of experts; the engine "
                           "applies adapters to its attention only", a->dir, t->name, l, c->name);
    if (t->dtype != ST_BF16 && t->dtype != ST_F16 && t->dtype != ST_F32)
        return errbuf_fail(err, errlen, "%s: tensor '%s' is %s (bf16, fp16 or fp32 expected)", a->dir, t->name,
                           st_dtype_name(t->dtype));
    int64_t out, in, r = t->ndim == 2 ? (ab == 'A' ? t->shape[0] : t->shape[1]) : -1;
    lora_module_shape(c, m, &out, &in);
    int64_t want0 = ab == 'A' ? r : out, want1 = ab == 'A' ? in : r;
    if (t->ndim != 2 || t->shape[0] != want0 || t->shape[1] != want1 || r != a->cfg.r) {
        char got[64] = "?";
        if (t->ndim == 2) snprintf(got, sizeof got, "[%lld, %lld]", (long long)t->shape[0], (long long)t->shape[1]);
        return errbuf_fail(err, errlen, "%s: tensor '%s' has shape %s; %s's %s (out %lld, in %lld) at rank %d needs "
                           "[%lld, %lld] (is the adapter for another base model?)", a->dir, t->name, got, c->name,
                           k_mod[m], (long long)out, (long long)in, a->cfg.r,
                           (long long)(ab == 'A' ? a->cfg.r : out), (long long)(ab == 'A' ? in : a->cfg.r));
    }
    if (max_rank > 0 && r > max_rank)
        return errbuf_fail(err, errlen, "%s: rank %lld is above --max-lora-rank %d", a->dir, (long long)r, max_rank);
    const st_tensor **slot = ab == 'A' ? &a->A[(size_t)l * LORA_NMOD + m] : &a->B[(size_t)l * LORA_NMOD + m];
    if (*slot) return errbuf_fail(err, errlen, "%s: tensor '%s' is given twice", a->dir, t->name);
    *slot = t;
    return 0;
}

/* Every tensor is a module the config covers, and every covered module has both tensors. */
static int check_coverage(lora_adapter *a, const mc_config *c, char *err, size_t errlen) {
    regex_t re;
    memset(&re, 0, sizeof re);
    char full[sizeof a->cfg.regex + 8];
    snprintf(full, sizeof full, "^(%s)$", a->cfg.regex);
    if (a->cfg.regex[0] && regcomp(&re, full, REG_EXTENDED | REG_NOSUB))
        return errbuf_fail(err, errlen, "%s: bad target_modules pattern", a->dir);
    int rc = 0, any = 0;
    for (int l = 0; l < c->num_layers && !rc; l++)
        for (int m = 0; m < LORA_NMOD && !rc; m++) {
            const st_tensor *A = a->A[(size_t)l * LORA_NMOD + m], *B = a->B[(size_t)l * LORA_NMOD + m];
            int want = covers(&a->cfg, &re, l, m) && !(is_mlp(m) && mc_layer_is_moe(c, l));
            any |= A || B;
            if (!A != !B)
                rc = errbuf_fail(err, errlen, "%s: layer %d's %s has lora_%s but no lora_%s", a->dir, l, k_mod[m],
                                 A ? "A" : "B", A ? "B" : "A");
            else if (A && !covers(&a->cfg, &re, l, m))
                rc = errbuf_fail(err, errlen, "%s: layer %d's %s has tensors, but adapter_config.json does not target "
                                 "it", a->dir, l, k_mod[m]);
            else if (want && !A)
                rc = errbuf_fail(err, errlen, "%s: adapter_config.json targets %s, but layer %d has no lora_A/lora_B "
                                 "for it", a->dir, k_mod[m], l);
        }
    if (a->cfg.regex[0]) regfree(&re);
    if (!rc && !any) rc = errbuf_fail(err, errlen, "%s: no lora_A / lora_B tensors", a->dir);
    return rc;
}

int lora_adapter_open(lora_adapter *a, const char *name, const char *dir, const mc_config *c, int max_rank,
                      char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->dir, sizeof a->dir, "%s", dir);
    char path[1100];
    size_t len;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    char *txt = file_read_all(path, 1u << 20, &len, err, errlen);
    if (!txt) return -1;
    int rc = lora_config_parse(txt, len, path, &a->cfg, err, errlen);
    free(txt);
    if (rc) return -1;
    if (max_rank > 0 && a->cfg.r > max_rank)
        return errbuf_fail(err, errlen, "%s: rank %d is above --max-lora-rank %d", dir, a->cfg.r, max_rank);
    a->L = c->num_layers;
    a->A = calloc((size_t)a->L * LORA_NMOD, sizeof *a->A);
    a->B = calloc((size_t)a->L * LORA_NMOD, sizeof *a->B);
    if (!a->A || !a->B) { lora_adapter_close(a); return errbuf_fail(err, errlen, "out of memory"); }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (st_open(&a->f, path, err, errlen)) { lora_adapter_close(a); return -1; }
    for (int i = 0; i < a->f.n; i++) {
        const st_tensor *t = &a->f.t[i];
        int l, m;
        char ab;
        if (parse_name(t->name, &l, &m, &ab)) {
            errbuf_fail(err, errlen, "%s: tensor '%s' is not a LoRA weight of a linear layer this model has "
                        "(base_model.model.model.layers.N.{self_attn,mlp}.{q,k,v,o,gate,up,down}_proj"
                        ".lora_{A,B}.weight)", path, t->name);
            lora_adapter_close(a);                   /* (after the message: it names the mapped tensor) */
            return -1;
        }
        if (take_tensor(a, c, t, l, m, ab, max_rank, err, errlen)) { lora_adapter_close(a); return -1; }
    }
    if (check_coverage(a, c, err, errlen)) { lora_adapter_close(a); return -1; }
    return 0;
}

int lora_adapter_dummy(lora_adapter *a, const char *name, const mc_config *c, int r, uint64_t seed, char *err,
                       size_t errlen) {
    memset(a, 0, sizeof *a);
    if (r < 1 || r > LORA_MAX_RANK) return errbuf_fail(err, errlen, "dummy adapter rank %d (1..%d)", r, LORA_MAX_RANK);
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->dir, sizeof a->dir, "(random, seed %llu)", (unsigned long long)seed);
    a->cfg.r = r;
    a->cfg.alpha = 2.0 * r;
    a->cfg.scale = 2.0;
    a->cfg.targets = (1u << LORA_NMOD) - 1;
    a->L = c->num_layers;
    a->dummy_seed = seed ? seed : 1;
    return 0;
}

void lora_adapter_close(lora_adapter *a) {
    st_close(&a->f);
    free(a->A);
    free(a->B);
    a->A = a->B = NULL;
}

int lora_adapter_module(const lora_adapter *a, const mc_config *c, int l, int m, float *A, float *B, char *err,
                        size_t errlen) {
    int64_t out, in, r = a->cfg.r;
    lora_module_shape(c, m, &out, &in);
    if (a->dummy_seed) {
        if (is_mlp(m) && mc_layer_is_moe(c, l)) return 1;
        uint64_t s = a->dummy_seed * 0x9e3779b97f4a7c15ull + (uint64_t)(l * LORA_NMOD + m);
        float sa = sqrtf(3.0f / (float)in), sb = 0.02f * sqrtf(3.0f);
        for (int64_t i = 0; i < r * in; i++) A[i] = sa * (2 * kref_uniform(s, 0, (uint64_t)i) - 1);
        for (int64_t i = 0; i < out * r; i++) B[i] = sb * (2 * kref_uniform(s, 1, (uint64_t)i) - 1);
        return 0;
    }
    const st_tensor *tA = a->A[(size_t)l * LORA_NMOD + m], *tB = a->B[(size_t)l * LORA_NMOD + m];
    if (!tA) return 1;
    return st_to_f32(tA, A, err, errlen) || st_to_f32(tB, B, err, errlen) ? -1 : 0;
}
