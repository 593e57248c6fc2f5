/* tests/serve_client.h — a small blocking HTTP client (libcurl) for the
 * server tests.  Include after <cmocka.h> and <curl/curl.h>. */
#ifndef TESTS_SERVE_CLIENT_H
#define TESTS_SERVE_CLIENT_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long status;
    char *body;              /* (len + 1,) NUL-terminated */
    size_t len;
    CURLcode rc;
} resp;

static inline size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    resp *r = ud;
    char *nb = realloc(r->body, r->len + sz * n + 1);
    if (!nb) return 0;
    memcpy(nb + r->len, p, sz * n);
    r->body = nb;
    r->len += sz * n;
    r->body[r->len] = 0;
    return sz * n;
}

/* body == NULL: GET (unless method says otherwise: "HEAD", "DELETE"...). */
static inline resp http(int port, const char *method, const char *path, const char *body,
                 const char *auth, long timeout_ms) {
    resp r = {0};
    r.body = calloc(1, 1);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char ah[256];
    if (auth) { snprintf(ah, sizeof ah, "Authorization: Bearer %s", auth); h = curl_slist_append(h, ah); }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
    if (body) { curl_easy_setopt(e, CURLOPT_POSTFIELDS, body); }
    if (method && !strcmp(method, "HEAD")) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (method) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    r.rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return r;
}

#endif
