/* hub/hub.c — Hugging Face hub download into the standard cache layout (see
 * hub.h): the options, the repository listing, and per file the blob (checked
 * before it enters the cache), the snapshot link and the ref.  The HTTP calls
 * are hub/hub_http.c, one file's resumable download hub/hub_fetch.c, its
 * progress bar hub/hub_progress.c, the checksums hub/hub_digest.c (OpenSSL's
 * libcrypto).  Touches the network (libcurl, only the endpoint and its
 * redirects) and the cache directory it is given; nothing else.
 */
#include "hub/hub_internal.h"
#include "base/errbuf.h"
#include "base/file.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

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

int hub_pathf(char *out, size_t cap, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

long long hub_file_size(const char *path) {
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
    hub_pathf(p, sizeof p, "%s/refs/%s", repodir, rev);
    if (file_mkparent(p) < 0) return -1;
    char tmp[4200];
    if (hub_pathf(tmp, sizeof tmp, "%s.tmp%ld", p, (long)getpid()) < 0) return -1;
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fputs(commit, f);
    if (fclose(f) != 0 || rename(tmp, p) < 0) { unlink(tmp); return -1; }
    return 0;
}

/* Points snapshots/<commit>/<name> at ../../blobs/<etag>. */
static int link_snapshot(const char *snapdir, const char *name, const char *etag) {
    char lp[4096], target[4096] = "";
    hub_pathf(lp, sizeof lp, "%s/%s", snapdir, name);
    if (file_mkparent(lp) < 0) return -1;
    int up = 2;
    for (const char *p = name; *p; p++) up += *p == '/';
    for (int i = 0; i < up; i++) strcat(target, "../");
    strncat(target, "blobs/", sizeof target - strlen(target) - 1);
    strncat(target, etag, sizeof target - strlen(target) - 1);
    /* atomically: another process may be linking the same file */
    char tmp[4200];
    if (hub_pathf(tmp, sizeof tmp, "%s.tmp%ld", lp, (long)getpid()) < 0) return -1;
    unlink(tmp);
    if (symlink(target, tmp) < 0) return -1;
    if (rename(tmp, lp) < 0) { unlink(tmp); return -1; }
    return 0;
}

/* Checks size and checksum of a finished download. */
static int verify(const char *path, const repo_file *f, char *err, size_t ecap) {
    long long sz = hub_file_size(path);
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
    if (hub_pathf(lp, sizeof lp, "%s/%s", snapdir, f->name) < 0) { errbuf_fail(err, ecap, "%s: path too long", f->name); return -1; }
    long long have = hub_file_size(lp);   /* follows the link */
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
        hub_head h;
        long code = hub_http_head(o, url, &h, err, ecap);
        if (code < 0) return -1;
        if (code >= 400) { errbuf_fail(err, ecap, "%s: HTTP %ld%s", url, code, code == 404 ? " (not found)" : ""); return -1; }
        if (!*h.etag) { errbuf_fail(err, ecap, "%s: no ETag from the server", url); return -1; }
        snprintf(etag, sizeof etag, "%s", h.etag);
        if (rf.size < 0) rf.size = h.size;
    }
    if (strchr(etag, '/') || !strcmp(etag, "..") || !strcmp(etag, ".")) { errbuf_fail(err, ecap, "%s: bad ETag", f->name); return -1; }
    if (hub_pathf(blob, sizeof blob, "%s/blobs/%s", repodir, etag) < 0 || hub_pathf(inc, sizeof inc, "%s.incomplete", blob) < 0) {
        errbuf_fail(err, ecap, "%s: path too long", f->name); return -1;
    }
    if (file_mkparent(blob) < 0) { errbuf_fail(err, ecap, "%s: cannot create: %s", blob, strerror(errno)); return -1; }
    /* one writer per blob across processes: <cache>/.locks/<folder>/<etag>.lock, as huggingface_hub does */
    char lockp[4400];
    const char *folder = strrchr(repodir, '/');
    int lfd = -1;
    if (hub_pathf(lockp, sizeof lockp, "%.*s/.locks%s/%s.lock", (int)(folder - repodir), repodir, folder, etag) == 0 &&
        file_mkparent(lockp) == 0 && (lfd = open(lockp, O_CREAT | O_RDWR, 0644)) >= 0)
        flock(lfd, LOCK_EX);
    int rc = 0;
    long long bs = hub_file_size(blob);
    if (bs < 0 || (rf.size >= 0 && bs != rf.size)) {
        if (bs >= 0) unlink(blob);
        if (hub_fetch_resume(o, url, inc, f->name, rf.size, err, ecap) < 0) rc = -1;
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
    if (hub_pathf(repodir, sizeof repodir, "%s/%s", o->cache_dir, folder) < 0) { errbuf_fail(err, ecap, "cache path too long"); return -1; }

    if (o->offline) {
        char commit[128] = "";
        if (is_commit(rev)) snprintf(commit, sizeof commit, "%s", rev);
        else {
            char rp[4200]; hub_pathf(rp, sizeof rp, "%s/refs/%s", repodir, rev);
            FILE *f = fopen(rp, "r");
            if (f) { if (!fgets(commit, sizeof commit, f)) commit[0] = 0; fclose(f); }
            commit[strcspn(commit, "\r\n")] = 0;
        }
        hub_pathf(snapdir, sizeof snapdir, "%s/snapshots/%s", repodir, commit);
        struct stat st;
        if (!*commit || stat(snapdir, &st) < 0) {
            errbuf_fail(err, ecap, "HF_HUB_OFFLINE=1 and %s@%s is not in the cache %s", repo, rev, o->cache_dir);
            return -1;
        }
        snprintf(snapshot, cap, "%s", snapdir);
        return 0;
    }

    int rc = -1;
    hub_membuf m = {0};
    cJSON *root = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *erev = curl_easy_escape(NULL, rev, 0);
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s?blobs=true", o->endpoint, repo, erev ? erev : rev);
    curl_free(erev);
    long code = hub_http_get(o, url, &m, err, ecap);
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
    hub_pathf(snapdir, sizeof snapdir, "%s/snapshots/%s", repodir, commit);
    if (file_mkdirs(snapdir) < 0) { errbuf_fail(err, ecap, "%s: cannot create: %s", snapdir, strerror(errno)); goto done; }
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
