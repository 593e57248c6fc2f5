/* serve/serve_request.c — OpenAI request bodies into srv_req (see
 * serve_request.h).  Touches only the request it fills. */
#include "serve/serve_request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_json.h"
#include "base/strbuf.h"

void srv_req_free(srv_req *r) {
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->stop_ids);
    free(r->prompt);
    free(r->ids);
    memset(r, 0, sizeof *r);
}

/* Fills msg; returns -1 (the caller answers 400). */
__attribute__((format(printf, 3, 4)))
static int bad(char *msg, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads an optional number field into *out; 0 ok/absent, -1 wrong type. */
static int opt_number(const cJSON *root, const char *key, double *out, int *present) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (present) *present = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return -1;
    *out = v->valuedouble;
    if (present) *present = 1;
    return 0;
}

static int is_integer(double v) { return v == floor(v) && fabs(v) < 9.007199254740992e15; }

/* ---- the chat template ----------------------------------------------------------------
 * The single place where chat messages become a prompt: text/chat_template.h
 * renders them with the server's template (the model's own, or a family's).
 * A content given as text parts is joined; "developer" is taken as "system".
 * NULL with msg: the template refused them, or out of memory. */
static char *render_chat(const chat_tpl *tpl, const cJSON *messages, int enable_thinking, char *msg, size_t cap) {
    int n = cJSON_GetArraySize(messages), i = 0;
    chat_msg *msgs = calloc((size_t)n, sizeof *msgs);
    char **owned = calloc((size_t)n, sizeof *owned);   /* (n,) joined text parts */
    char *p = NULL;
    msg[0] = 0;
    if (!msgs || !owned) goto out;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        msgs[i].role = !strcmp(role, "developer") ? "system" : role;
        if (cJSON_IsString(content)) msgs[i].content = content->valuestring;
        else if (cJSON_IsArray(content)) {
            size_t len = 0, cap2 = 0;
            const cJSON *part;
            if (strbuf_add(&owned[i], &len, &cap2, "", 0)) goto out;
            cJSON_ArrayForEach(part, content) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (strbuf_add(&owned[i], &len, &cap2, t->valuestring, strlen(t->valuestring))) goto out;
            }
            msgs[i].content = owned[i];
        } else msgs[i].content = "";                  /* an assistant turn with null content */
        i++;
    }
    char e[400];
    if (!(p = chat_tpl_apply(tpl, msgs, n, 1, enable_thinking, NULL, e, sizeof e)))
        snprintf(msg, cap, "chat template: %s", e);
out:
    if (!p && !msg[0]) snprintf(msg, cap, "out of memory");
    for (int k = 0; owned && k < n; k++) free(owned[k]);
    free(owned);
    free(msgs);
    return p;
}

/* ---- fields ------------------------------------------------------------------------------ */

/* stop: a string or an array of strings; stop_token_ids: an array of ids. */
static int parse_stop(const cJSON *root, srv_req *r, char *msg, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (v && !cJSON_IsNull(v)) {
        int n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
        if (n < 0 || n > 16) return bad(msg, cap, "'stop' must be a string or an array of at most 16 strings");
        r->stop = calloc((size_t)n + 1, sizeof *r->stop);
        if (!r->stop) return bad(msg, cap, "out of memory");
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_IsString(v) ? v : cJSON_GetArrayItem(v, i);
            if (!cJSON_IsString(e))
                return bad(msg, cap, "'stop'[%d] is not a string: 'stop' takes strings (token ids go in 'stop_token_ids')", i);
            if (!e->valuestring[0]) return bad(msg, cap, "'stop'[%d] is empty", i);
            if (!(r->stop[r->n_stop++] = strdup(e->valuestring))) return bad(msg, cap, "out of memory");
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "stop_token_ids");
    if (!v || cJSON_IsNull(v)) return 0;
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 0 || n > 64) return bad(msg, cap, "'stop_token_ids' must be an array of at most 64 token ids");
    r->stop_ids = malloc(sizeof *r->stop_ids * (size_t)(n ? n : 1));
    if (!r->stop_ids) return bad(msg, cap, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e) || !is_integer(e->valuedouble) || e->valuedouble < 0 || e->valuedouble > INT32_MAX)
            return bad(msg, cap, "'stop_token_ids'[%d] is not a token id", r->n_stop_ids);
        r->stop_ids[r->n_stop_ids++] = (int32_t)e->valuedouble;
    }
    return 0;
}

/* n; logprobs and top_logprobs: chat takes "logprobs": true and
 * "top_logprobs": k, completions "logprobs": k (k alternatives, 0 = only
 * the sampled token's). */
static int parse_choices(const cJSON *root, srv_req *r, char *msg, size_t cap) {
    double d;
    int present;
    r->gp.n = 1;
    if (opt_number(root, "n", &d, &present) || (present && !is_integer(d))) return bad(msg, cap, "'n' must be an integer");
    if (present && (d < 1 || d > SRV_MAX_N)) return bad(msg, cap, "'n' must be in 1..%d, got %.0f", SRV_MAX_N, d);
    if (present) r->gp.n = (int)d;
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    const char *topname = r->kind == SRV_CHAT ? "top_logprobs" : "logprobs";
    if (r->kind == SRV_CHAT) {
        if (lp && !cJSON_IsNull(lp) && !cJSON_IsBool(lp)) return bad(msg, cap, "'logprobs' must be a boolean");
        r->gp.logprobs = cJSON_IsTrue(lp);
    } else if (lp && !cJSON_IsNull(lp) && !cJSON_IsNumber(lp)) {
        return bad(msg, cap, "'logprobs' must be an integer (the number of most likely tokens to list)");
    }
    if (opt_number(root, topname, &d, &present) || (present && !is_integer(d)))
        return bad(msg, cap, "'%s' must be an integer", topname);
    if (!present) return 0;
    if (d < 0) return bad(msg, cap, "'%s' must be a positive value, got %.0f", topname, d);
    if (d > SRV_MAX_LOGPROBS)
        return bad(msg, cap, "Requested sample logprobs of %.0f, which is greater than max allowed: %d", d, SRV_MAX_LOGPROBS);
    if (r->kind == SRV_CHAT && !r->gp.logprobs) {
        if (d > 0) return bad(msg, cap, "when using `top_logprobs`, `logprobs` must be set to true.");
        return 0;
    }
    r->gp.logprobs = 1;
    r->gp.top_logprobs = (int)d;
    return 0;
}

/* max_tokens (chat: or max_completion_tokens), default and ceiling the limit. */
static int parse_max_tokens(const cJSON *root, srv_req *r, const srv_req_limits *lim, char *msg, size_t cap) {
    double d;
    int present;
    const char *mt = "max_tokens";
    r->gp.max_tokens = lim->max_tokens_limit;
    if (opt_number(root, mt, &d, &present)) return bad(msg, cap, "'max_tokens' must be an integer");
    if (!present && r->kind == SRV_CHAT) {
        mt = "max_completion_tokens";
        if (opt_number(root, mt, &d, &present)) return bad(msg, cap, "'%s' must be an integer", mt);
    }
    if (!present) return 0;
    if (!is_integer(d) || d < 1) return bad(msg, cap, "'%s' must be an integer >= 1, got %g", mt, d);
    if (d > lim->max_tokens_limit)
        return bad(msg, cap, "'%s' is %.0f, above this server's limit of %d", mt, d, lim->max_tokens_limit);
    r->gp.max_tokens = (int)d;
    return 0;
}

/* The fields both endpoints share. */
static int parse_common(const cJSON *root, srv_req *r, const srv_req_limits *lim, char *msg, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (v && !cJSON_IsNull(v) && !cJSON_IsString(v)) return bad(msg, cap, "'model' must be a string");
    double d;
    int present;
    r->gp.temperature = 1.0;
    if (opt_number(root, "temperature", &r->gp.temperature, NULL) || r->gp.temperature < 0)
        return bad(msg, cap, "'temperature' must be a number >= 0");
    r->gp.top_p = 1.0;
    if (opt_number(root, "top_p", &r->gp.top_p, NULL) || !(r->gp.top_p > 0 && r->gp.top_p <= 1))
        return bad(msg, cap, "'top_p' must be a number in (0, 1]");
    if (parse_max_tokens(root, r, lim, msg, cap)) return -1;
    if (opt_number(root, "seed", &d, &present) || (present && !is_integer(d)))
        return bad(msg, cap, "'seed' must be an integer");
    if (present) { r->gp.seed = (uint64_t)(int64_t)d; r->gp.has_seed = 1; }
    if (parse_choices(root, r, msg, cap)) return -1;
    v = cJSON_GetObjectItemCaseSensitive(root, "stream");
    if (v && !cJSON_IsNull(v) && !cJSON_IsBool(v)) return bad(msg, cap, "'stream' must be a boolean");
    r->stream = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) return bad(msg, cap, "'stream_options' must be an object");
        r->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "include_usage"));
    }
    if (parse_stop(root, r, msg, cap)) return -1;
    r->enable_thinking = -1;                 /* not given: the template's own default */
    v = cJSON_GetObjectItemCaseSensitive(root, "chat_template_kwargs");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v)) return bad(msg, cap, "'chat_template_kwargs' must be an object");
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(v, "enable_thinking");
        if (et && !cJSON_IsBool(et)) return bad(msg, cap, "'enable_thinking' must be a boolean");
        if (et) r->enable_thinking = cJSON_IsTrue(et);
    }
    return 0;
}

/* One message's content: a string, or an array of {"type": "text", "text"} parts. */
static int check_content(const cJSON *content, const char *role, int i, char *msg, size_t cap) {
    if (cJSON_IsArray(content)) {
        const cJSON *part;
        int k = 0;
        cJSON_ArrayForEach(part, content) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx))
                return bad(msg, cap, "messages[%d].content[%d]: only {\"type\": \"text\", \"text\": ...} parts are supported", i, k);
            k++;
        }
        return 0;
    }
    if (!cJSON_IsString(content) && !(cJSON_IsNull(content) && !strcmp(role, "assistant")))
        return bad(msg, cap, "messages[%d].content must be a string or an array of text parts", i);
    return 0;
}

static int parse_messages(const cJSON *root, srv_req *r, const srv_req_limits *lim, char *msg, size_t cap) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) == 0) return bad(msg, cap, "'messages' must be a non-empty array");
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role))
            return bad(msg, cap, "messages[%d] must be an object with a string 'role'", i);
        const char *ro = role->valuestring;
        if (strcmp(ro, "system") && strcmp(ro, "user") && strcmp(ro, "assistant") && strcmp(ro, "developer"))
            return bad(msg, cap, "messages[%d].role '%.40s' is not system, developer, user or assistant", i, ro);
        if (check_content(cJSON_GetObjectItemCaseSensitive(m, "content"), ro, i, msg, cap)) return -1;
        i++;
    }
    if (!(r->prompt = render_chat(lim->chat_template, ms, r->enable_thinking, msg, cap))) return -1;
    r->gp.prompt = r->prompt;
    return 0;
}

/* prompt: a string, [string], [int...] or [[int...]]; one prompt only. */
static int parse_prompt(const cJSON *root, srv_req *r, char *msg, size_t cap) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 &&
        (cJSON_IsString(p->child) || cJSON_IsArray(p->child))) p = p->child;
    if (cJSON_IsString(p)) {
        if (!(r->prompt = strdup(p->valuestring))) return bad(msg, cap, "out of memory");
        r->gp.prompt = r->prompt;
        return 0;
    }
    int n = cJSON_IsArray(p) ? cJSON_GetArraySize(p) : 0;
    if (n == 0)
        return bad(msg, cap, "'prompt' must be a string or a non-empty array of token ids (one prompt per request)");
    r->ids = malloc((size_t)n * sizeof *r->ids);
    if (!r->ids) return bad(msg, cap, "out of memory");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, p) {
        if (!cJSON_IsNumber(e) || !is_integer(e->valuedouble) || e->valuedouble < 0 || e->valuedouble > INT32_MAX)
            return bad(msg, cap, "'prompt'[%d] is not a token id (one prompt per request)", i);
        r->ids[i++] = (int32_t)e->valuedouble;
    }
    r->gp.prompt_ids = r->ids;
    r->gp.n_prompt_ids = (size_t)n;
    return 0;
}

int srv_req_parse(srv_req *r, srv_kind kind, const char *body, size_t len,
                  const srv_req_limits *lim, char *msg, size_t cap, const char **code) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    *code = NULL;
    long badbyte = srv_utf8_check(body ? body : "", body ? len : 0);
    if (badbyte >= 0) {
        bad(msg, cap, "the request body is not valid UTF-8 (byte %ld)", badbyte);
        return 400;
    }
    cJSON *root = cJSON_ParseWithLength(body ? body : "", len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && body && at >= body && at <= body + len ? at - body : (long)len;
        bad(msg, cap, "malformed JSON in the request body near byte %ld", off);
        return 400;
    }
    int status = 400;
    if (!cJSON_IsObject(root)) { bad(msg, cap, "the request body must be a JSON object"); goto out; }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    int lora = 0;                            /* the base model, or the LoRA adapter "model" names */
    for (int i = 0; cJSON_IsString(model) && i < lim->n_adapters && !lora; i++)
        if (!strcmp(model->valuestring, lim->adapters[i])) lora = i + 1;
    if (cJSON_IsString(model) && !lora && strcmp(model->valuestring, lim->model) != 0) {
        bad(msg, cap, "The model `%.100s` does not exist; this server serves `%.100s`%s.", model->valuestring, lim->model,
            lim->n_adapters ? " and its LoRA adapters (GET /v1/models lists them)" : "");
        *code = "model_not_found";
        status = 404;
        goto out;
    }
    if (parse_common(root, r, lim, msg, cap)) goto out;
    r->gp.lora = lora;
    if (kind == SRV_CHAT ? parse_messages(root, r, lim, msg, cap) : parse_prompt(root, r, msg, cap)) goto out;
    r->gp.stop = (const char *const *)r->stop;
    r->gp.n_stop = r->n_stop;
    status = 0;
out:
    cJSON_Delete(root);
    return status;
}
