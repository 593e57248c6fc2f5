/* hub/hub.c — Hugging Face hub download into the standard cache layout
 * (see hub.h), with our own small SHA-256 and SHA-1 for verification.
 * Touches the network (libcurl, only the endpoint and its redirects) and the
 * cache directory it is given; nothing else.
 */
#include "hub/hub.h"
#include "base/errbuf.h"
#include "base/clock.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- SHA-256 (FIPS 180-4) and SHA-1 ------------------------------------------------ */

/* One Merkle–Damgård context for both hashes (SHA-1 uses h[0..4]). */
typedef struct md_ctx {
    uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t n;
    void (*block)(struct md_ctx *, const uint8_t *);
} md_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
static inline uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }
static inline uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static void sha256_block(md_ctx *c, const uint8_t *p) {
    uint32_t w[64], a, b, d, e, f, g, h, cc, t1, t2;
    for (int i = 0; i < 16; i++) w[i] = be32(p + 4 * i);
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3]; e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
    for (int i = 0; i < 64; i++) {
        t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}
static void sha1_block(md_ctx *c, const uint8_t *p) {
    uint32_t w[80], a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4];
    for (int i = 0; i < 16; i++) w[i] = be32(p + 4 * i);
    for (int i = 16; i < 80; i++) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (b & cc) | (~b & d); k = 0x5A827999; }
        else if (i < 40) { f = b ^ cc ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & cc) | (b & d) | (cc & d); k = 0x8F1BBCDC; }
        else { f = b ^ cc ^ d; k = 0xCA62C1D6; }
        uint32_t t = rotl(a, 5) + f + e + k + w[i];
        e = d; d = cc; cc = rotl(b, 30); b = a; a = t;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e;
}

static void md_update(md_ctx *c, const void *data, size_t len) {
    const uint8_t *p = data;
    c->len += len;
    while (len) {
        size_t k = 64 - c->n;
        if (k > len) k = len;
        memcpy(c->buf + c->n, p, k); c->n += k; p += k; len -= k;
        if (c->n == 64) { c->block(c, c->buf); c->n = 0; }
    }
}
/* Pads and writes the big-endian digest of nw words. */
static void md_final(md_ctx *c, uint8_t *out, int nw) {
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, z = 0, lb[8];
    md_update(c, &pad, 1);
    while (c->n != 56) md_update(c, &z, 1);
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(bits >> (56 - 8 * i));
    md_update(c, lb, 8);
    for (int i = 0; i < nw; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24); out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8); out[4 * i + 3] = (uint8_t)c->h[i];
    }
}
static void sha256_init(md_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv); c->len = 0; c->n = 0; c->block = sha256_block;
}
static void sha1_init(md_ctx *c) {
    static const uint32_t iv[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    memset(c->h, 0, sizeof c->h); memcpy(c->h, iv, sizeof iv); c->len = 0; c->n = 0; c->block = sha1_block;
}

static void to_hex(const uint8_t *d, int n, char *out) {
    for (int i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void hub_sha256(const void *data, size_t len, uint8_t out[32]) {
    md_ctx c; sha256_init(&c); md_update(&c, data, len); md_final(&c, out, 8);
}

int hub_sha256_file(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    md_ctx c; sha256_init(&c);
    uint8_t buf[1 << 16], d[32]; size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) md_update(&c, buf, k);
    int bad = ferror(f); fclose(f);
    if (bad) return -1;
    md_final(&c, d, 8);
    to_hex(d, 32, hex);
    return 0;
}

int hub_git_oid_file(const char *path, char hex[41]) {
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) < 0) { if (f) fclose(f); return -1; }
    md_ctx c; sha1_init(&c);
    char hdr[64]; int hl = snprintf(hdr, sizeof hdr, "blob %lld", (long long)st.st_size);
    md_update(&c, hdr, (size_t)hl + 1);   /* includes the NUL */
    uint8_t buf[1 << 16], d[20]; size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) md_update(&c, buf, k);
    int bad = ferror(f); fclose(f);
    if (bad) return -1;
    md_final(&c, d, 5);
    to_hex(d, 20, hex);
    return 0;
}

/* ---- options and paths ---------------------------------------------------------------- */

void hub_opts_from_env(hub_opts *o, char *path_buf, size_t cap) {
    memset(o, 0, sizeof *o);
    const char *e = getenv("HF_ENDPOINT");
    o->endpoint = (e && *e) ? e : "https://huggingface.co";
    e = getenv("HF_TOKEN");
    o->token = (e && *e) ? e : NULL;
    o->revision = "main";
    e = getenv("HF_HUB_OFFLINE");
    o->offline = e && (!strcmp(e, "1") || !strcasecmp(e, "true") || !strcasecmp(e, "yes"));
    o->retries = 5;
    o->timeout_s = 60;
    const char *hc = getenv("HF_HUB_CACHE"), *hh = getenv("HF_HOME"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (hc && *hc) snprintf(path_buf, cap, "%s", hc);
    else if (hh && *hh) snprintf(path_buf, cap, "%s/hub", hh);
    else if (xdg && *xdg) snprintf(path_buf, cap, "%s/huggingface/hub", xdg);
    else snprintf(path_buf, cap, "%s/.cache/huggingface/hub", home ? home : ".");
    o->cache_dir = path_buf;
}

int hub_repo_folder(const char *repo, char *out, size_t cap) {
    const char *sl = strchr(repo, '/');
    if (!sl || sl == repo || !sl[1] || strchr(sl + 1, '/') || strstr(repo, "..")) return -1;
    int n = snprintf(out, cap, "models--%.*s--%s", (int)(sl - repo), repo, sl + 1);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* snprintf for paths: -1 when the result does not fit. */
static int pathf(char *out, size_t cap, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static int mkdirs(const char *path) {   /* mkdir -p */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return (mkdir(tmp, 0755) < 0 && errno != EEXIST) ? -1 : 0;
}
static int mkparent(const char *path) {
    char tmp[4096];
    if (pathf(tmp, sizeof tmp, "%s", path) < 0) return -1;
    char *s = strrchr(tmp, '/');
    if (!s) return 0;
    *s = 0;
    return mkdirs(tmp);
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* A repository file name must stay inside the snapshot. */
static int safe_name(const char *n) {
    if (!*n || *n == '/' || strlen(n) > 1024) return 0;
    for (const char *p = n; *p; ) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += l + (e ? 1 : 0);
    }
    return 1;
}

static int is_commit(const char *s) {
    if (strlen(s) != 40) return 0;
    for (; *s; s++) if (!strchr("0123456789abcdef", *s)) return 0;
    return 1;
}

/* ---- HTTP --------------------------------------------------------------------------------- */

typedef struct { char *p; size_t n, cap; } membuf;

static size_t mem_write(char *d, size_t sz, size_t nm, void *u) {
    membuf *m = u; size_t k = sz * nm;
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

static void setup(CURL *c, const hub_opts *o, const char *url) {
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

/* GETs url into m; returns the HTTP status, or -1 with err on transport error. */
static long http_get(const hub_opts *o, const char *url, membuf *m, char *err, size_t ecap) {
    CURL *c = curl_easy_init();
    if (!c) { errbuf_fail(err, ecap, "cannot start libcurl"); return -1; }
    setup(c, o, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
    CURLcode rc = curl_easy_perform(c);
    long code = -1;
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    else errbuf_fail(err, ecap, "%s: %s", url, curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    return code;
}

typedef struct { char etag[128]; long long size; char commit[64]; } head_info;

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
    head_info *h = u; size_t n = sz * nm;
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

/* HEAD without following redirects: the hub's own headers name the blob. */
static long http_head(const hub_opts *o, const char *url, head_info *h, char *err, size_t ecap) {
    CURL *c = curl_easy_init();
    if (!c) { errbuf_fail(err, ecap, "cannot start libcurl"); return -1; }
    memset(h, 0, sizeof *h); h->size = -1;
    setup(c, o, url);
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

static void trunc0(const char *p) { if (truncate(p, 0) != 0) unlink(p); }

typedef struct {
    FILE *f; long long off; int checked; CURL *c; int restarted;
    const char *name; long long total; double t0, last; int progress;
} dl_state;


static size_t file_write(char *d, size_t sz, size_t nm, void *u) {
    dl_state *s = u;
    if (!s->checked) {   /* the server ignored our Range: start the file over */
        long code = 0;
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &code);
        if (code == 200 && s->off > 0) {
            if (fflush(s->f) || ftruncate(fileno(s->f), 0) || fseek(s->f, 0, SEEK_SET)) return 0;
            s->off = 0; s->restarted = 1;
        }
        s->checked = 1;
    }
    return fwrite(d, sz, nm, s->f) * sz;
}

static void draw_bar(dl_state *s, long long have, int done) {
    double t = clock_now_s();
    if (!done && t - s->last < 0.1) return;
    s->last = t;
    double mb = (double)have / 1e6, tot = (double)s->total / 1e6, rate = mb / (t - s->t0 > 1e-3 ? t - s->t0 : 1e-3);
    int pct = s->total > 0 ? (int)(100.0 * (double)have / (double)s->total) : 0;
    char bar[21]; int fill = pct / 5;
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    fprintf(stderr, "\r%-32.32s [%s] %3d%% %8.1f/%.1f MB %7.1f MB/s", s->name, bar, pct, mb, tot, rate);
    if (done) fputc('\n', stderr);
}

static int xfer_cb(void *u, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ult, curl_off_t uln) {
    (void)dltotal; (void)ult; (void)uln;
    dl_state *s = u;
    if (s->progress) draw_bar(s, s->off + (long long)dlnow, 0);
    return 0;
}

/* Downloads url into path (appending to what is there with a Range request),
 * retrying after dropped connections.  0, or -1 with err. */
static int fetch_resume(const hub_opts *o, const char *url, const char *path, const char *name,
                        long long expect, char *err, size_t ecap) {
    int retries = o->retries > 0 ? o->retries : 0;
    dl_state s = {0};
    s.name = name; s.total = expect; s.t0 = clock_now_s(); s.progress = o->progress;
    for (int attempt = 0; attempt <= retries; attempt++) {
        long long have = file_size(path);
        if (have < 0) have = 0;
        if (expect >= 0 && have > expect) { trunc0(path); have = 0; }
        if (expect >= 0 && have == expect && have > 0) return 0;   /* already complete */
        s.f = fopen(path, have > 0 ? "ab" : "wb");
        if (!s.f) { errbuf_fail(err, ecap, "%s: %s", path, strerror(errno)); return -1; }
        s.off = have; s.checked = 0;
        s.c = curl_easy_init();
        if (!s.c) { fclose(s.f); errbuf_fail(err, ecap, "cannot start libcurl"); return -1; }
        setup(s.c, o, url);
        char range[48];
        if (have > 0) { snprintf(range, sizeof range, "%lld-", have); curl_easy_setopt(s.c, CURLOPT_RANGE, range); }
        curl_easy_setopt(s.c, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(s.c, CURLOPT_WRITEFUNCTION, file_write);
        curl_easy_setopt(s.c, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(s.c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(s.c, CURLOPT_XFERINFOFUNCTION, xfer_cb);
        curl_easy_setopt(s.c, CURLOPT_XFERINFODATA, &s);
        CURLcode rc = curl_easy_perform(s.c);
        long code = 0;
        curl_easy_getinfo(s.c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(s.c);
        int werr = fclose(s.f) != 0;
        if (werr) { errbuf_fail(err, ecap, "%s: write failed", path); return -1; }
        if (rc == CURLE_OK) {
            if (s.progress) draw_bar(&s, file_size(path), 1);
            return 0;
        }
        if (rc == CURLE_HTTP_RETURNED_ERROR) {
            if (code == 416) { trunc0(path); continue; }   /* stale partial file */
            if (code >= 400 && code < 500 && code != 408 && code != 429) {
                errbuf_fail(err, ecap, "%s: HTTP %ld%s", url, code,
                       code == 401 || code == 403 ? " (access denied: gated or private repository? set HF_TOKEN)" :
                       code == 404 ? " (not found)" : "");
                return -1;
            }
        }
        if (attempt == retries) {
            errbuf_fail(err, ecap, "%s: %s after %d attempts (partial data kept in %s for the next run)",
                   url, code >= 400 ? "HTTP error" : curl_easy_strerror(rc), attempt + 1, path);
            return -1;
        }
        struct timespec ts = {0, 100000000L * (attempt + 1)};
        nanosleep(&ts, NULL);
    }
    errbuf_fail(err, ecap, "%s: download failed", url);
    return -1;
}

/* ---- the download --------------------------------------------------------------------- */

typedef struct { const char *name; long long size; const char *oid, *sha256; } repo_file;

static int matches(const hub_opts *o, const char *name) {
    if (o->n_include == 0) return 1;
    for (int i = 0; i < o->n_include; i++)
        if (fnmatch(o->include[i], name, 0) == 0) return 1;
    return 0;
}

static int write_ref(const char *repodir, const char *rev, const char *commit) {
    char p[4096];
    pathf(p, sizeof p, "%s/refs/%s", repodir, rev);
    if (mkparent(p) < 0) return -1;
    char tmp[4200];
    if (pathf(tmp, sizeof tmp, "%s.tmp%ld", p, (long)getpid()) < 0) return -1;
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fputs(commit, f);
    if (fclose(f) != 0 || rename(tmp, p) < 0) { unlink(tmp); return -1; }
    return 0;
}

/* Points snapshots/<commit>/<name> at ../../blobs/<etag>. */
static int link_snapshot(const char *snapdir, const char *name, const char *etag) {
    char lp[4096], target[4096] = "";
    pathf(lp, sizeof lp, "%s/%s", snapdir, name);
    if (mkparent(lp) < 0) return -1;
    int up = 2;
    for (const char *p = name; *p; p++) up += *p == '/';
    for (int i = 0; i < up; i++) strcat(target, "../");
    strncat(target, "blobs/", sizeof target - strlen(target) - 1);
    strncat(target, etag, sizeof target - strlen(target) - 1);
    /* atomically: another process may be linking the same file */
    char tmp[4200];
    if (pathf(tmp, sizeof tmp, "%s.tmp%ld", lp, (long)getpid()) < 0) return -1;
    unlink(tmp);
    if (symlink(target, tmp) < 0) return -1;
    if (rename(tmp, lp) < 0) { unlink(tmp); return -1; }
    return 0;
}

/* Checks size and checksum of a finished download. */
static int verify(const char *path, const repo_file *f, char *err, size_t ecap) {
    long long sz = file_size(path);
    if (f->size >= 0 && sz != f->size) {
        errbuf_fail(err, ecap, "%s: size mismatch: expected %lld bytes, got %lld", f->name, f->size, sz);
        return -1;
    }
    if (f->sha256) {
        char hex[65];
        if (hub_sha256_file(path, hex) < 0) { errbuf_fail(err, ecap, "%s: cannot read %s", f->name, path); return -1; }
        if (strcasecmp(hex, f->sha256)) {
            errbuf_fail(err, ecap, "%s: sha256 mismatch: expected %s, got %s", f->name, f->sha256, hex);
            return -1;
        }
    } else if (f->oid && strlen(f->oid) == 40) {
        char hex[41];
        if (hub_git_oid_file(path, hex) < 0) { errbuf_fail(err, ecap, "%s: cannot read %s", f->name, path); return -1; }
        if (strcasecmp(hex, f->oid)) {
            errbuf_fail(err, ecap, "%s: git blob id mismatch: expected %s, got %s", f->name, f->oid, hex);
            return -1;
        }
    }
    return 0;
}

static int fetch_one(const hub_opts *o, const char *repo, const char *repodir, const char *commit,
                     const char *snapdir, const repo_file *f, char *err, size_t ecap) {
    char lp[4096], blob[4096], inc[4200], url[4096], etag[160];
    if (pathf(lp, sizeof lp, "%s/%s", snapdir, f->name) < 0) { errbuf_fail(err, ecap, "%s: path too long", f->name); return -1; }
    long long have = file_size(lp);   /* follows the link */
    if (have >= 0 && (f->size < 0 || have == f->size)) return 0;   /* reused */
    char *ename = curl_easy_escape(NULL, f->name, 0);
    if (!ename) { errbuf_fail(err, ecap, "out of memory"); return -1; }
    for (char *p = ename; (p = strstr(p, "%2F")); ) { *p = '/'; memmove(p + 1, p + 3, strlen(p + 3) + 1); }
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", o->endpoint, repo, commit, ename);
    curl_free(ename);
    repo_file rf = *f;
    if (f->sha256) snprintf(etag, sizeof etag, "%s", f->sha256);
    else if (f->oid) snprintf(etag, sizeof etag, "%s", f->oid);
    else {   /* the listing did not name the blob: ask the hub */
        head_info h;
        long code = http_head(o, url, &h, err, ecap);
        if (code < 0) return -1;
        if (code >= 400) { errbuf_fail(err, ecap, "%s: HTTP %ld%s", url, code, code == 404 ? " (not found)" : ""); return -1; }
        if (!*h.etag) { errbuf_fail(err, ecap, "%s: no ETag from the server", url); return -1; }
        snprintf(etag, sizeof etag, "%s", h.etag);
        if (rf.size < 0) rf.size = h.size;
    }
    if (strchr(etag, '/') || !strcmp(etag, "..") || !strcmp(etag, ".")) { errbuf_fail(err, ecap, "%s: bad ETag", f->name); return -1; }
    if (pathf(blob, sizeof blob, "%s/blobs/%s", repodir, etag) < 0 || pathf(inc, sizeof inc, "%s.incomplete", blob) < 0) {
        errbuf_fail(err, ecap, "%s: path too long", f->name); return -1;
    }
    if (mkparent(blob) < 0) { errbuf_fail(err, ecap, "%s: cannot create: %s", blob, strerror(errno)); return -1; }
    /* one writer per blob across processes: <cache>/.locks/<folder>/<etag>.lock, as huggingface_hub does */
    char lockp[4400];
    const char *folder = strrchr(repodir, '/');
    int lfd = -1;
    if (pathf(lockp, sizeof lockp, "%.*s/.locks%s/%s.lock", (int)(folder - repodir), repodir, folder, etag) == 0 &&
        mkparent(lockp) == 0 && (lfd = open(lockp, O_CREAT | O_RDWR, 0644)) >= 0)
        flock(lfd, LOCK_EX);
    int rc = 0;
    long long bs = file_size(blob);
    if (bs < 0 || (rf.size >= 0 && bs != rf.size)) {
        if (bs >= 0) unlink(blob);
        if (fetch_resume(o, url, inc, f->name, rf.size, err, ecap) < 0) rc = -1;
        else if (verify(inc, &rf, err, ecap) < 0) { unlink(inc); rc = -1; }
        else if (rename(inc, blob) < 0) { errbuf_fail(err, ecap, "%s: rename failed: %s", blob, strerror(errno)); rc = -1; }
    }
    if (lfd >= 0) { flock(lfd, LOCK_UN); close(lfd); }
    if (rc < 0) return -1;
    if (link_snapshot(snapdir, f->name, etag) < 0) { errbuf_fail(err, ecap, "%s: cannot link: %s", lp, strerror(errno)); return -1; }
    return 0;
}

int hub_download(const hub_opts *o, const char *repo, char *snapshot, size_t cap, char *err, size_t ecap) {
    char folder[512], repodir[4096], snapdir[4200], url[4096];
    const char *rev = o->revision && *o->revision ? o->revision : "main";
    if (hub_repo_folder(repo, folder, sizeof folder) < 0) { errbuf_fail(err, ecap, "'%s' is not ORG/NAME", repo); return -1; }
    if (strstr(rev, "..") || rev[0] == '/') { errbuf_fail(err, ecap, "bad revision '%s'", rev); return -1; }
    if (pathf(repodir, sizeof repodir, "%s/%s", o->cache_dir, folder) < 0) { errbuf_fail(err, ecap, "cache path too long"); return -1; }

    if (o->offline) {
        char commit[128] = "";
        if (is_commit(rev)) snprintf(commit, sizeof commit, "%s", rev);
        else {
            char rp[4200]; pathf(rp, sizeof rp, "%s/refs/%s", repodir, rev);
            FILE *f = fopen(rp, "r");
            if (f) { if (!fgets(commit, sizeof commit, f)) commit[0] = 0; fclose(f); }
            commit[strcspn(commit, "\r\n")] = 0;
        }
        pathf(snapdir, sizeof snapdir, "%s/snapshots/%s", repodir, commit);
        struct stat st;
        if (!*commit || stat(snapdir, &st) < 0) {
            errbuf_fail(err, ecap, "HF_HUB_OFFLINE=1 and %s@%s is not in the cache %s", repo, rev, o->cache_dir);
            return -1;
        }
        snprintf(snapshot, cap, "%s", snapdir);
        return 0;
    }

    int rc = -1;
    membuf m = {0};
    cJSON *root = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *erev = curl_easy_escape(NULL, rev, 0);
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s?blobs=true", o->endpoint, repo, erev ? erev : rev);
    curl_free(erev);
    long code = http_get(o, url, &m, err, ecap);
    if (code < 0) goto done;
    if (code != 200) {
        errbuf_fail(err, ecap, "%s@%s: HTTP %ld from %s%s", repo, rev, code, o->endpoint,
               code == 401 || code == 403 ? " (access denied: gated or private repository? set HF_TOKEN)" :
               code == 404 ? " (repository or revision not found)" : "");
        goto done;
    }
    root = cJSON_Parse(m.p ? m.p : "");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(root, "sha");
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(root, "siblings");
    if (!cJSON_IsString(sha) || !is_commit(sha->valuestring) || !cJSON_IsArray(sib)) {
        errbuf_fail(err, ecap, "%s@%s: unexpected answer from %s (no sha/siblings)", repo, rev, o->endpoint);
        goto done;
    }
    const char *commit = sha->valuestring;
    pathf(snapdir, sizeof snapdir, "%s/snapshots/%s", repodir, commit);
    if (mkdirs(snapdir) < 0) { errbuf_fail(err, ecap, "%s: cannot create: %s", snapdir, strerror(errno)); goto done; }
    if (strcmp(rev, commit) && write_ref(repodir, rev, commit) < 0) {
        errbuf_fail(err, ecap, "%s/refs/%s: cannot write", repodir, rev); goto done;
    }
    const cJSON *it;
    int nsel = 0;
    cJSON_ArrayForEach(it, sib) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "rfilename");
        if (!cJSON_IsString(nm)) continue;
        if (!safe_name(nm->valuestring)) { errbuf_fail(err, ecap, "%s: unsafe file name '%s' in listing", repo, nm->valuestring); goto done; }
        if (!matches(o, nm->valuestring)) continue;
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(it, "size");
        const cJSON *oid = cJSON_GetObjectItemCaseSensitive(it, "blobId");
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(it, "lfs");
        const cJSON *l256 = cJSON_GetObjectItemCaseSensitive(lfs, "sha256");
        const cJSON *lsz = cJSON_GetObjectItemCaseSensitive(lfs, "size");
        repo_file f = {nm->valuestring, -1, NULL, NULL};
        if (cJSON_IsNumber(lsz)) f.size = (long long)lsz->valuedouble;
        else if (cJSON_IsNumber(sz)) f.size = (long long)sz->valuedouble;
        if (cJSON_IsString(l256) && strlen(l256->valuestring) == 64) f.sha256 = l256->valuestring;
        if (cJSON_IsString(oid) && strlen(oid->valuestring) == 40) f.oid = oid->valuestring;
        if (fetch_one(o, repo, repodir, commit, snapdir, &f, err, ecap) < 0) goto done;
        nsel++;
    }
    if (nsel == 0 && o->n_include > 0) { errbuf_fail(err, ecap, "%s@%s: no file matches the --include patterns", repo, rev); goto done; }
    snprintf(snapshot, cap, "%s", snapdir);
    rc = 0;
done:
    cJSON_Delete(root);
    free(m.p);
    curl_global_cleanup();
    return rc;
}
