/* hub_http: the hub's HTTP calls through libcurl (see hub/hub_internal.h):
 * the common settings (timeouts, the bearer token, redirects), a GET into
 * memory for the API, and a HEAD that reads the hub's headers naming a blob.
 * Touches the network: the endpoint and its redirects only. */
#include "hub/hub_internal.h"
#include "base/errbuf.h"
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static size_t mem_write(char *d, size_t sz, size_t nm, void *u) {
    hub_membuf *m = u; size_t k = sz * nm;
    if (m->n + k + 1 > m->cap) {
        size_t c = m->cap ? m->cap * 2 : 8192;
        while (c < m->n + k + 1) c *= 2;
        if (c > (64u << 20)) return 0;   /* an API answer larger than 64 MB is not one */
        char *q = realloc(m->p, c);
        if (!q) return 0;
        m->p = q; m->cap = c;
    }
    memcpy(m->p + m->n, d, k); m->n += k; m->p[m->n] = 0;
    return k;
}

void hub_http_setup(void *curl, const hub_opts *o, const char *url) {
    CURL *c = curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "pagesim-hub/1");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o->timeout_s > 0 ? o->timeout_s : 60L);
    if (o->token) {   /* libcurl does not forward it to another host on redirect */
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, o->token);
    }
}

long hub_http_get(const hub_opts *o, const char *url, hub_membuf *m, char *err, size_t ecap) {
    CURL *c = curl_easy_init();
    if (!c) { errbuf_fail(err, ecap, "cannot start libcurl"); return -1; }
    hub_http_setup(c, o, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
    CURLcode rc = curl_easy_perform(c);
    long code = -1;
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    else errbuf_fail(err, ecap, "%s: %s", url, curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    return code;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) || line[nl] != ':') return;
    const char *v = line + nl + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) e--;
    if (e - v >= 2 && v[0] == 'W' && v[1] == '/') v += 2;
    if (e > v && *v == '"') v++;
    if (e > v && e[-1] == '"') e--;
    snprintf(out, cap, "%.*s", (int)(e - v), v);
}

static size_t head_cb(char *d, size_t sz, size_t nm, void *u) {
    hub_head *h = u; size_t n = sz * nm;
    char tmp[128] = "";
    header_value(d, n, "X-Linked-Etag", tmp, sizeof tmp);
    if (*tmp) snprintf(h->etag, sizeof h->etag, "%s", tmp);
    else if (!*h->etag) header_value(d, n, "ETag", h->etag, sizeof h->etag);
    tmp[0] = 0; header_value(d, n, "X-Linked-Size", tmp, sizeof tmp);
    if (*tmp) h->size = atoll(tmp);
    tmp[0] = 0; header_value(d, n, "Content-Length", tmp, sizeof tmp);
    if (*tmp && h->size < 0) h->size = atoll(tmp);
    header_value(d, n, "X-Repo-Commit", h->commit, sizeof h->commit);
    return n;
}

long hub_http_head(const hub_opts *o, const char *url, hub_head *h, char *err, size_t ecap) {
    CURL *c = curl_easy_init();
    if (!c) { errbuf_fail(err, ecap, "cannot start libcurl"); return -1; }
    memset(h, 0, sizeof *h); h->size = -1;
    hub_http_setup(c, o, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, head_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    CURLcode rc = curl_easy_perform(c);
    long code = -1;
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    else errbuf_fail(err, ecap, "%s: %s", url, curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    return code;
}

