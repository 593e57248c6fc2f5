/* serve/serve_json.c — error objects, replies, stream chunks and SSE
 * events (see serve_json.h).  Touches only the buffers it is given. */
#include "serve/serve_json.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/strbuf.h"

/* Length of the valid UTF-8 character at s (n > 0 bytes left), 0 if the
 * bytes there are not one (invalid, cut, or a NUL). */
static size_t utf8_char(const char *s, size_t n) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
    return k > 0 && c != 0 ? (size_t)k : 0;
}

char *srv_utf8_clean(const char *p, size_t n) {
    char *o = malloc(3 * n + 1);
    if (!o) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char(p + i, n - i);
        if (k) { memcpy(o + j, p + i, k); j += k; i += k; }
        else { memcpy(o + j, "\xEF\xBF\xBD", 3); j += 3; i++; }
    }
    o[j] = 0;
    return o;
}

long srv_utf8_check(const char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = utf8_char(p + i, n - i);
        if (!k) return (long)i;
        i += k;
    }
    return -1;
}

char *srv_json_error(const char *type, const char *msg, const char *code) {
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    char *m = srv_utf8_clean(msg, strlen(msg));
    cJSON_AddStringToObject(e, "message", m ? m : "");
    free(m);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code); else cJSON_AddNullToObject(e, "code");
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return txt;
}

static cJSON *usage(int prompt, int completion) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", completion);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + completion);
    return u;
}

static cJSON *head(const srv_head *h, const char *object) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", h->id);
    cJSON_AddStringToObject(root, "object", object);
    cJSON_AddNumberToObject(root, "created", (double)h->created);
    cJSON_AddStringToObject(root, "model", h->model);
    return root;
}

/* One element of "choices": a message (chat reply), a delta (chat chunk) or
 * a text (completions). */
static cJSON *choice(const srv_head *h, const srv_choice_out *c, int chunk) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", c->index);
    char *text = c->text ? srv_utf8_clean(c->text, c->len) : NULL;
    if (h->chat) {
        cJSON *m = cJSON_AddObjectToObject(o, chunk ? "delta" : "message");
        if (c->role || !chunk) cJSON_AddStringToObject(m, "role", "assistant");
        if (text || !chunk || c->role) cJSON_AddStringToObject(m, "content", text ? text : "");
    } else {
        cJSON_AddStringToObject(o, "text", text ? text : "");
    }
    free(text);
    if (c->logprobs) cJSON_AddItemToObject(o, "logprobs", c->logprobs);
    else cJSON_AddNullToObject(o, "logprobs");
    if (c->finish) cJSON_AddStringToObject(o, "finish_reason", c->finish);
    else cJSON_AddNullToObject(o, "finish_reason");
    if (!c->finish) return o;
    if (c->stop_str) {
        char *t = srv_utf8_clean(c->stop_str, strlen(c->stop_str));
        cJSON_AddStringToObject(o, "stop_reason", t ? t : "");
        free(t);
    } else if (c->stop_id >= 0) cJSON_AddNumberToObject(o, "stop_reason", (double)c->stop_id);
    else cJSON_AddNullToObject(o, "stop_reason");
    return o;
}

char *srv_json_reply(const srv_head *h, const srv_choice_out *c, int n, int prompt_tokens,
                     int completion_tokens) {
    cJSON *root = head(h, h->chat ? "chat.completion" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(choices, choice(h, &c[i], 0));
    cJSON_AddItemToObject(root, "usage", usage(prompt_tokens, completion_tokens));
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return txt;
}

cJSON *srv_json_chunk(const srv_head *h, const srv_choice_out *c, int prompt_tokens,
                      int completion_tokens) {
    cJSON *root = head(h, h->chat ? "chat.completion.chunk" : "text_completion");
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    if (c) cJSON_AddItemToArray(choices, choice(h, c, 1));
    else cJSON_AddItemToObject(root, "usage", usage(prompt_tokens, completion_tokens));
    return root;
}

/* {"token", "logprob", "bytes"}: the token's text (cleaned) and its raw bytes. */
static cJSON *chat_lp(const srv_logprob *l) {
    cJSON *o = cJSON_CreateObject();
    char *t = srv_utf8_clean(l->text ? l->text : "", l->len);
    cJSON_AddStringToObject(o, "token", t ? t : "");
    free(t);
    cJSON_AddNumberToObject(o, "logprob", l->logprob);
    cJSON *b = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < l->len; i++) cJSON_AddItemToArray(b, cJSON_CreateNumber((unsigned char)l->text[i]));
    return o;
}

int srv_json_logprob_add(cJSON **acc, int chat, const srv_token_lp *lp, size_t *text_off) {
    static const char *const keys[] = {"content", "text_offset", "token_logprobs", "tokens", "top_logprobs"};
    if (!*acc) {
        *acc = cJSON_CreateObject();
        for (int i = chat ? 0 : 1; i < (chat ? 1 : 5); i++) cJSON_AddArrayToObject(*acc, keys[i]);
    }
    if (chat) {
        cJSON *e = chat_lp(&lp->tok), *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int k = 0; k < lp->n_top; k++) cJSON_AddItemToArray(top, chat_lp(&lp->top[k]));
        cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(*acc, "content"), e);
        return cJSON_IsObject(e) ? 0 : -1;
    }
    char *t = srv_utf8_clean(lp->tok.text ? lp->tok.text : "", lp->tok.len);
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(*acc, "text_offset"), cJSON_CreateNumber((double)*text_off));
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(*acc, "token_logprobs"), cJSON_CreateNumber(lp->tok.logprob));
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(*acc, "tokens"), cJSON_CreateString(t ? t : ""));
    cJSON *top = cJSON_CreateObject();           /* the sampled token and the k most likely */
    cJSON_AddNumberToObject(top, t ? t : "", lp->tok.logprob);
    free(t);
    for (int k = 0; k < lp->n_top; k++) {
        char *tk = srv_utf8_clean(lp->top[k].text ? lp->top[k].text : "", lp->top[k].len);
        if (tk && !cJSON_GetObjectItemCaseSensitive(top, tk)) cJSON_AddNumberToObject(top, tk, lp->top[k].logprob);
        free(tk);
    }
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(*acc, "top_logprobs"), top);
    *text_off += lp->tok.len;
    return 0;
}

int srv_sse_event(char **buf, size_t *len, size_t *cap, cJSON *root) {
    if (!root) return 0;
    char *j = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!j) return -1;
    size_t n = strlen(j);
    int rc = strbuf_add(buf, len, cap, "data: ", 6) || strbuf_add(buf, len, cap, j, n) ||
             strbuf_add(buf, len, cap, "\n\n", 2) ? -1 : 0;
    free(j);
    return rc;
}
