/* hub_fetch: one file's download into a partial file (see
 * hub/hub_internal.h): resumed with an HTTP Range request after a dropped
 * connection, started over when the server ignores the Range, retried with a
 * short back-off, with a progress bar when asked.  Touches the network and the
 * one file it is given. */
#include "hub/hub_internal.h"
#include "base/errbuf.h"
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void trunc0(const char *p) { if (truncate(p, 0) != 0) unlink(p); }

typedef struct {
    FILE *f; long long off; int checked; CURL *c; int restarted;
    hub_progress bar; int progress;
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

static int xfer_cb(void *u, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ult, curl_off_t uln) {
    (void)dltotal; (void)ult; (void)uln;
    dl_state *s = u;
    if (s->progress) hub_progress_draw(&s->bar, s->off + (long long)dlnow, 0);
    return 0;
}

int hub_fetch_resume(const hub_opts *o, const char *url, const char *path, const char *name,
                        long long expect, char *err, size_t ecap) {
    int retries = o->retries > 0 ? o->retries : 0;
    dl_state s = {0};
    hub_progress_start(&s.bar, name, expect);
    s.progress = o->progress;
    for (int attempt = 0; attempt <= retries; attempt++) {
        long long have = hub_file_size(path);
        if (have < 0) have = 0;
        if (expect >= 0 && have > expect) { trunc0(path); have = 0; }
        if (expect >= 0 && have == expect && have > 0) return 0;   /* already complete */
        s.f = fopen(path, have > 0 ? "ab" : "wb");
        if (!s.f) { errbuf_fail(err, ecap, "%s: %s", path, strerror(errno)); return -1; }
        s.off = have; s.checked = 0;
        s.c = curl_easy_init();
        if (!s.c) { fclose(s.f); errbuf_fail(err, ecap, "cannot start libcurl"); return -1; }
        hub_http_setup(s.c, o, url);
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
            if (s.progress) hub_progress_draw(&s.bar, hub_file_size(path), 1);
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

