/* text/chat_template.c — chat_tpl: a model's own chat_template rendered by
 * text/jinja.h, else the chat templates of ChatML/Qwen, Llama-3 and Gemma
 * written out in C (see chat_template.h).  Each render function follows its
 * family's Jinja template line for line for plain text messages (no tools,
 * no images).  Reads tokenizer_config.json and template files; nothing else.
 */
#include "text/chat_template.h"
#include "base/file.h"
#include "text/jinja.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct { char *out; size_t cap, n; } sbuf;   /* out: (cap,) */

static void put(sbuf *b, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++, b->n++)
        if (b->n + 1 < b->cap) b->out[b->n] = s[i];
}
static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
/* Jinja's trim: Python str.strip() of ASCII whitespace */
static void put_trim(sbuf *b, const char *s) {
    size_t a = 0, e = strlen(s);
    while (a < e && is_ws(s[a])) a++;
    while (e > a && is_ws(s[e - 1])) e--;
    put(b, s + a, e - a);
}

static const char *QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

chat_kind chat_detect_text(const char *t) {
    if (!t) return CHAT_UNKNOWN;
    if (strstr(t, "<|im_start|>")) {
        if (strstr(t, "enable_thinking")) return CHAT_QWEN3;
        if (strstr(t, QWEN25_SYSTEM)) return CHAT_QWEN25;
        return CHAT_CHATML;
    }
    if (strstr(t, "<|start_header_id|>"))
        return strstr(t, "Cutting Knowledge Date") ? CHAT_LLAMA31 : CHAT_LLAMA3;
    if (strstr(t, "<start_of_turn>")) return CHAT_GEMMA;
    return CHAT_UNKNOWN;
}

static const char *NAMES[] = {"unknown", "chatml", "qwen2.5", "qwen3", "llama3", "llama3.1", "gemma"};

chat_kind chat_kind_parse(const char *name) {
    for (int k = 1; k < (int)(sizeof NAMES / sizeof NAMES[0]); k++)
        if (name && !strcmp(name, NAMES[k])) return (chat_kind)k;
    return CHAT_UNKNOWN;
}
const char *chat_kind_name(chat_kind k) {
    return (k >= 0 && k < (int)(sizeof NAMES / sizeof NAMES[0])) ? NAMES[k] : "unknown";
}

static cJSON *read_config(const char *path, char *err, size_t cap) {
    char *buf = file_read_all(path, 64u << 20, NULL, err, cap);
    if (!buf) return NULL;
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    if (!root) snprintf(err, cap, "%s: malformed JSON", path);
    return root;
}

/* chat_template as a string, or the "default" entry of a list of named ones. */
static const char *config_template(const cJSON *root) {
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    const char *text = cJSON_IsString(ct) ? ct->valuestring : NULL;
    if (cJSON_IsArray(ct)) {   /* [{"name": "default", "template": "..."}, ...] */
        const cJSON *it;
        cJSON_ArrayForEach(it, ct) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *tp = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default") && cJSON_IsString(tp)) text = tp->valuestring;
        }
    }
    return text;
}

int chat_detect(const char *path, chat_kind *kind, char *err, size_t cap) {
    *kind = CHAT_UNKNOWN;
    cJSON *root = read_config(path, err, cap);
    if (!root) return -1;
    const char *text = config_template(root);
    int rc = 0;
    if (!text) {
        snprintf(err, cap, "%s: no chat_template; pass --chat-template chatml|qwen2.5|qwen3|llama3|llama3.1|gemma", path);
        rc = -1;
    } else if ((*kind = chat_detect_text(text)) == CHAT_UNKNOWN) {
        snprintf(err, cap, "%s: chat_template not recognised (no <|im_start|>, <|start_header_id|> or <start_of_turn>); "
                 "pass --chat-template chatml|qwen2.5|qwen3|llama3|llama3.1|gemma", path);
        rc = -1;
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- ChatML family ------------------------------------------------------------ */

static void put_strip_nl(sbuf *b, const char *s, size_t len, int left, int right) {
    size_t a = 0, e = len;
    if (left) while (a < e && s[a] == '\n') a++;
    if (right) while (e > a && s[e - 1] == '\n') e--;
    put(b, s + a, e - a);
}

/* Qwen3's assistant message: reasoning inside <think>...</think> is split off
 * from the content; it is shown only for turns after the last user query. */
static void qwen3_assistant(sbuf *b, const char *content, int after_last_query, int last) {
    const char *c = content, *r = NULL;
    size_t cl = strlen(content), rl = 0;
    const char *end = NULL;
    for (const char *p = strstr(content, "</think>"); p; p = strstr(p + 1, "</think>")) end = p;
    if (end) {
        c = end + 8;                       /* content.split('</think>')[-1].lstrip('\n') */
        while (*c == '\n') c++;
        cl = strlen(c);
        const char *first = strstr(content, "</think>");   /* split('</think>')[0] */
        const char *s = content, *q;
        for (q = content; (q = strstr(q, "<think>")) && q < first; q++) s = q + 7;   /* .split('<think>')[-1] */
        r = s; rl = (size_t)(first - s);
        while (rl && r[rl - 1] == '\n') rl--;   /* rstrip('\n') applies before split; same for us */
        while (rl && *r == '\n') { r++; rl--; }
    }
    puts_(b, "<|im_start|>assistant\n");
    if (after_last_query && (last || rl)) {
        puts_(b, "<think>\n");
        put_strip_nl(b, r ? r : "", rl, 1, 1);
        puts_(b, "\n</think>\n\n");
        put_strip_nl(b, c, cl, 1, 0);
    } else {
        put(b, c, cl);
    }
    puts_(b, "<|im_end|>\n");
}

static void render_chatml(sbuf *b, chat_kind k, const chat_msg *m, int n, int gen, int think) {
    int last_query = n - 1;
    if (k == CHAT_QWEN3)   /* index of the last user message */
        for (int i = n - 1; i >= 0; i--) if (!strcmp(m[i].role, "user")) { last_query = i; break; }
    if (k == CHAT_QWEN25 && (n == 0 || strcmp(m[0].role, "system"))) {
        puts_(b, "<|im_start|>system\n"); puts_(b, QWEN25_SYSTEM); puts_(b, "<|im_end|>\n");
    }
    for (int i = 0; i < n; i++) {
        if (k == CHAT_QWEN3 && !strcmp(m[i].role, "assistant")) {
            qwen3_assistant(b, m[i].content, i > last_query, i == n - 1);
            continue;
        }
        puts_(b, "<|im_start|>"); puts_(b, m[i].role); puts_(b, "\n");
        puts_(b, m[i].content); puts_(b, "<|im_end|>\n");
    }
    if (gen) {
        puts_(b, "<|im_start|>assistant\n");
        if (k == CHAT_QWEN3 && !think) puts_(b, "<think>\n\n</think>\n\n");
    }
}

/* ---- Llama-3 ------------------------------------------------------------------- */

static void llama_header(sbuf *b, const char *role) {
    puts_(b, "<|start_header_id|>"); puts_(b, role); puts_(b, "<|end_header_id|>\n\n");
}

static void render_llama3(sbuf *b, chat_kind k, const chat_msg *m, int n, int gen) {
    puts_(b, "<|begin_of_text|>");
    int i = 0;
    if (k == CHAT_LLAMA31) {   /* the system turn is always there, with its date header */
        llama_header(b, "system");
        puts_(b, "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
        if (n > 0 && !strcmp(m[0].role, "system")) { put_trim(b, m[0].content); i = 1; }
        puts_(b, "<|eot_id|>");
    }
    for (; i < n; i++) {
        llama_header(b, m[i].role);
        put_trim(b, m[i].content);
        puts_(b, "<|eot_id|>");
    }
    if (gen) llama_header(b, "assistant");
}

/* ---- Gemma ------------------------------------------------------------------------ */

static void render_gemma(sbuf *b, const chat_msg *m, int n, int gen) {
    puts_(b, "<bos>");
    const char *prefix = NULL;
    int i = 0;
    if (n > 0 && !strcmp(m[0].role, "system")) { prefix = m[0].content; i = 1; }
    for (int first = 1; i < n; i++, first = 0) {
        puts_(b, "<start_of_turn>");
        puts_(b, strcmp(m[i].role, "assistant") ? m[i].role : "model");
        puts_(b, "\n");
        if (first && prefix) { puts_(b, prefix); puts_(b, "\n\n"); }
        put_trim(b, m[i].content);
        puts_(b, "<end_of_turn>\n");
    }
    if (gen) puts_(b, "<start_of_turn>model\n");
}

size_t chat_render(chat_kind kind, const chat_msg *msgs, int n, int gen, int think, char *out, size_t cap) {
    sbuf b = {out, cap, 0};
    for (int i = 0; i < n; i++) if (!msgs[i].role || !msgs[i].content) return (size_t)-1;
    switch (kind) {
    case CHAT_CHATML: case CHAT_QWEN25: case CHAT_QWEN3: render_chatml(&b, kind, msgs, n, gen, think); break;
    case CHAT_LLAMA3: case CHAT_LLAMA31: render_llama3(&b, kind, msgs, n, gen); break;
    case CHAT_GEMMA: render_gemma(&b, msgs, n, gen); break;
    default: return (size_t)-1;
    }
    if (cap) out[b.n < cap ? b.n : cap - 1] = 0;
    return b.n;
}

/* ---- chat_tpl: the model's own template, or a named family ------------------------- */

struct chat_tpl {
    chat_kind kind;          /* the named family, or the one the model's template resembles */
    jinja_template *jinja;   /* the model's own template; NULL renders kind by hand */
    cJSON *tokens;           /* special tokens the template sees: {"bos_token": "<s>", ...} */
    char *eos;               /* the config's eos_token, or NULL */
    char name[320];
};

chat_tpl *chat_tpl_named(chat_kind kind) {
    chat_tpl *t = calloc(1, sizeof *t);
    if (t) { t->kind = kind; snprintf(t->name, sizeof t->name, "%s", chat_kind_name(kind)); }
    return t;
}

/* A special token's text: a string, or an AddedToken object's "content". */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Compiles text; special tokens from root (may be NULL), as transformers'
 * special_tokens_map passes them to the template. */
static chat_tpl *make(const char *label, const char *text, const cJSON *root, char *err, size_t cap) {
    static const char *keys[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
    char jerr[400];
    chat_tpl *t = calloc(1, sizeof *t);
    if (!t || !(t->tokens = cJSON_CreateObject())) { free(t); snprintf(err, cap, "out of memory"); return NULL; }
    if (!(t->jinja = jinja_compile(text, strlen(text), jerr, sizeof jerr))) {
        snprintf(err, cap, "%s: chat_template %s", label, jerr);
        chat_tpl_free(t);
        return NULL;
    }
    for (size_t i = 0; root && i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = token_text(cJSON_GetObjectItemCaseSensitive(root, keys[i]));
        if (v) cJSON_AddStringToObject(t->tokens, keys[i], v);
    }
    const cJSON *extra = root ? cJSON_GetObjectItemCaseSensitive(root, "additional_special_tokens") : NULL, *it;
    if (cJSON_IsArray(extra)) {
        cJSON *list = cJSON_AddArrayToObject(t->tokens, "additional_special_tokens");
        cJSON_ArrayForEach(it, extra) if (token_text(it)) cJSON_AddItemToArray(list, cJSON_CreateString(token_text(it)));
    }
    const char *eos = root ? token_text(cJSON_GetObjectItemCaseSensitive(root, "eos_token")) : NULL;
    t->eos = eos ? strdup(eos) : NULL;
    t->kind = chat_detect_text(text);
    snprintf(t->name, sizeof t->name, "%s (chat_template)", label);
    return t;
}

static chat_tpl *from_config(const char *path, char *err, size_t cap) {
    if (!path) { snprintf(err, cap, "no tokenizer_config.json given"); return NULL; }
    cJSON *root = read_config(path, err, cap);
    if (!root) return NULL;
    const char *text = config_template(root);
    chat_tpl *t = text ? make(path, text, root, err, cap) : NULL;
    if (!text) snprintf(err, cap, "%s: no chat_template", path);
    cJSON_Delete(root);
    return t;
}

chat_tpl *chat_tpl_open(const char *spec, const char *config_path, char *err, size_t cap) {
    if (!spec) return from_config(config_path, err, cap);
    chat_kind k = chat_kind_parse(spec);
    if (k != CHAT_UNKNOWN) {
        chat_tpl *t = chat_tpl_named(k);
        if (!t) snprintf(err, cap, "out of memory");
        return t;
    }
    size_t n = strlen(spec);
    if (n > 5 && !strcmp(spec + n - 5, ".json")) return from_config(spec, err, cap);
    char e1[8], e2[8], *text = file_read_all(spec, 64u << 20, NULL, e1, sizeof e1);
    if (!text) {
        snprintf(err, cap, "%s: not a template name (chatml, qwen2.5, qwen3, llama3, llama3.1, gemma) "
                 "nor a readable tokenizer_config.json or Jinja file", spec);
        return NULL;
    }
    cJSON *root = config_path ? read_config(config_path, e2, sizeof e2) : NULL;
    chat_tpl *t = make(spec, text, root, err, cap);
    if (t) snprintf(t->name, sizeof t->name, "%s", spec);
    cJSON_Delete(root);
    free(text);
    return t;
}

chat_tpl *chat_tpl_for(const char *spec, const char *tokenizer_path, chat_kind fallback, char *err, size_t cap) {
    char cfg[4200];
    struct stat sb;
    const char *tp = tokenizer_path ? tokenizer_path : ".";
    if (stat(tp, &sb) == 0 && S_ISDIR(sb.st_mode)) snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", tp);
    else {
        const char *sl = strrchr(tp, '/');
        snprintf(cfg, sizeof cfg, "%.*stokenizer_config.json", sl ? (int)(sl + 1 - tp) : 0, tp);
    }
    if (spec) return chat_tpl_open(spec, cfg, err, cap);
    char e2[8];
    cJSON *root = read_config(cfg, e2, sizeof e2);
    const char *text = root ? config_template(root) : NULL;
    chat_tpl *t = text ? make(cfg, text, root, err, cap) : NULL;
    cJSON_Delete(root);
    if (text) return t;
    if (fallback == CHAT_UNKNOWN) {
        snprintf(err, cap, "%s: no chat_template; pass --chat-template NAME or a template file", cfg);
        return NULL;
    }
    if (!(t = chat_tpl_named(fallback))) snprintf(err, cap, "out of memory");
    return t;
}

char *chat_tpl_apply(const chat_tpl *t, const chat_msg *msgs, int n, int gen, int think, size_t *len,
                     char *err, size_t cap) {
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content) { snprintf(err, cap, "message %d has no role or content", i); return NULL; }
    if (!t->jinja) {
        size_t need = chat_render(t->kind, msgs, n, gen, think != 0, NULL, 0);
        char *out = need != (size_t)-1 ? malloc(need + 1) : NULL;
        if (!out) { snprintf(err, cap, need == (size_t)-1 ? "no chat template chosen" : "out of memory"); return NULL; }
        chat_render(t->kind, msgs, n, gen, think != 0, out, need + 1);
        if (len) *len = need;
        return out;
    }
    cJSON *vars = cJSON_Duplicate(t->tokens, 1), *list = vars ? cJSON_AddArrayToObject(vars, "messages") : NULL;
    char *out = NULL;
    for (int i = 0; list && i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddItemToArray(list, m);
        if (!cJSON_AddStringToObject(m, "role", msgs[i].role) || !cJSON_AddStringToObject(m, "content", msgs[i].content))
            list = NULL;
    }
    if (list && cJSON_AddNullToObject(vars, "tools") && cJSON_AddNullToObject(vars, "documents") &&
        cJSON_AddBoolToObject(vars, "add_generation_prompt", gen) &&
        (think < 0 || cJSON_AddBoolToObject(vars, "enable_thinking", think)))
        out = jinja_render(t->jinja, vars, 0, len, err, cap);
    else snprintf(err, cap, "out of memory");
    cJSON_Delete(vars);
    return out;
}

chat_kind chat_tpl_kind(const chat_tpl *t) { return t->kind; }

const char *chat_tpl_stop(const chat_tpl *t) {
    switch (t->kind) {
    case CHAT_LLAMA3: case CHAT_LLAMA31: return "<|eot_id|>";
    case CHAT_GEMMA: return "<end_of_turn>";
    case CHAT_UNKNOWN: return t->eos;
    default: return "<|im_end|>";
    }
}

const char *chat_tpl_name(const chat_tpl *t) { return t->name; }

void chat_tpl_free(chat_tpl *t) {
    if (!t) return;
    jinja_free(t->jinja);
    cJSON_Delete(t->tokens);
    free(t->eos);
    free(t);
}
