/* tests/test_hub.c — hub/hub.c against a real HTTP server (libmicrohttpd)
 * started here on 127.0.0.1 that serves a fake hub: the model-info API, resolve
 * with ETag/X-Linked-Etag/X-Repo-Commit headers, Range requests, a 404, a
 * connection dropped mid-file, a wrong checksum and a private repository.
 * Loopback only; caches under build/tmp/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "tests/test_util.h"

#include <cJSON.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "hub/hub.h"

#define COMMIT "0123456789abcdef0123456789abcdef01234567"
#define TOKEN "hf_secret_token_xyz"

typedef struct {
    const char *name;
    unsigned char *data; size_t size;
    int lfs;
    char sha256[65], oid[41];
} fake_file;

enum { F_CONFIG, F_TOK, F_SHARD1, F_SHARD2, F_NESTED, F_MISSING, NFILES };
static fake_file FILES[NFILES] = {
    {"config.json", 0, 0, 0, "", ""}, {"tokenizer.json", 0, 0, 0, "", ""},
    {"model-00001-of-00002.safetensors", 0, 0, 1, "", ""}, {"model-00002-of-00002.safetensors", 0, 0, 1, "", ""},
    {"sub/dir/notes.txt", 0, 0, 0, "", ""}, {"missing.bin", 0, 0, 0, "", ""},
};

static struct {
    pthread_mutex_t mu;
    int n_api, n_get, n_head, n_range;
    long long last_range_start;
    int saw_bearer;
    int drop_file;          /* index of a file whose next GET is cut short, -1 none */
    size_t drop_at;
} S = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, -1, 0, -1, 0};

static struct MHD_Daemon *DAEMON;
static char ENDPOINT[64];

typedef struct { const fake_file *f; size_t start, stop; } dropper;
static ssize_t drop_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    dropper *d = cls;
    size_t at = d->start + (size_t)pos;
    if (at >= d->stop) return MHD_CONTENT_READER_END_WITH_ERROR;   /* close mid-file */
    size_t k = d->stop - at < max ? d->stop - at : max;
    memcpy(buf, d->f->data + at, k);
    return (ssize_t)k;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static char *listing(const char *repo) {
    cJSON *o = cJSON_CreateObject(), *sib = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "id", repo);
    cJSON_AddStringToObject(o, "sha", COMMIT);
    for (int i = 0; i < NFILES; i++) {
        if (i == F_MISSING && strcmp(repo, "org/broken")) continue;
        if (i != F_MISSING && !strcmp(repo, "org/broken") && i != F_CONFIG) continue;
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "rfilename", FILES[i].name);
        if (strcmp(repo, "org/nohash")) {   /* org/nohash: no sizes or hashes, the client asks with HEAD */
            cJSON_AddNumberToObject(s, "size", (double)FILES[i].size);
            cJSON_AddStringToObject(s, "blobId", FILES[i].oid);
            if (FILES[i].lfs) {
                cJSON *l = cJSON_CreateObject();
                const char *sha = FILES[i].sha256;
                if (!strcmp(repo, "org/corrupt") && i == F_SHARD1)
                    sha = "badbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadb";
                cJSON_AddStringToObject(l, "sha256", sha);
                cJSON_AddNumberToObject(l, "size", (double)FILES[i].size);
                cJSON_AddItemToObject(s, "lfs", l);
            }
        }
        cJSON_AddItemToArray(sib, s);
    }
    cJSON_AddItemToObject(o, "siblings", sib);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *up, size_t *up_size, void **con_cls) {
    (void)cls; (void)version; (void)up; (void)up_size; (void)con_cls;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    int bearer = auth && !strcmp(auth, "Bearer " TOKEN);
    pthread_mutex_lock(&S.mu);
    S.saw_bearer |= bearer;
    pthread_mutex_unlock(&S.mu);
    char repo[128];
    if (sscanf(url, "/api/models/%127[^/]/", repo) == 1) {
        const char *p = url + strlen("/api/models/");
        const char *rv = strstr(p, "/revision/");
        if (!rv) return reply(c, 404, "{\"error\":\"not found\"}");
        snprintf(repo, sizeof repo, "%.*s", (int)(rv - p), p);
        pthread_mutex_lock(&S.mu); S.n_api++; pthread_mutex_unlock(&S.mu);
        if (!strcmp(repo, "org/missing")) return reply(c, 404, "{\"error\":\"Repository not found\"}");
        if (!strcmp(repo, "org/private") && !bearer) return reply(c, 401, "{\"error\":\"Invalid credentials\"}");
        char *l = listing(repo);
        enum MHD_Result r = reply(c, 200, l);
        free(l);
        return r;
    }
    /* /ORG/NAME/resolve/COMMIT/FILE */
    const char *rs = strstr(url, "/resolve/" COMMIT "/");
    if (!rs) return reply(c, 404, "not found");
    const char *name = rs + strlen("/resolve/" COMMIT "/");
    int fi = -1;
    for (int i = 0; i < NFILES; i++) if (!strcmp(FILES[i].name, name) && i != F_MISSING) fi = i;
    if (fi < 0) return reply(c, 404, "Entry not found");
    const fake_file *f = &FILES[fi];
    size_t start = 0;
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    int is_head = !strcmp(method, "HEAD");
    pthread_mutex_lock(&S.mu);
    if (is_head) S.n_head++; else S.n_get++;
    if (range) { S.n_range++; S.last_range_start = atoll(range + 6); start = (size_t)S.last_range_start; }
    int drop = !is_head && S.drop_file == fi;
    if (drop) S.drop_file = -1;
    size_t drop_at = S.drop_at;
    pthread_mutex_unlock(&S.mu);
    if (start > f->size) return reply(c, 416, "range not satisfiable");
    struct MHD_Response *r;
    if (drop) {
        dropper *d = malloc(sizeof *d);
        *d = (dropper){f, start, drop_at > start ? drop_at : start};
        r = MHD_create_response_from_callback(f->size - start, 4096, drop_reader, d, free);
    } else {
        r = MHD_create_response_from_buffer(f->size - start, f->data + start, MHD_RESPMEM_PERSISTENT);
    }
    char etag[80];
    snprintf(etag, sizeof etag, "\"%s\"", f->oid);
    MHD_add_response_header(r, "ETag", etag);
    if (f->lfs) {
        snprintf(etag, sizeof etag, "\"%s\"", f->sha256);
        MHD_add_response_header(r, "X-Linked-Etag", etag);
    }
    MHD_add_response_header(r, "X-Repo-Commit", COMMIT);
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    if (range) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", start, f->size ? f->size - 1 : 0, f->size);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    enum MHD_Result ret = MHD_queue_response(c, range ? 206 : 200, r);
    MHD_destroy_response(r);
    return ret;
}

static int setup(void **st) {
    (void)st;
    uint32_t x = 12345;
    for (int i = 0; i < NFILES; i++) {
        fake_file *f = &FILES[i];
        f->size = f->lfs ? (i == F_SHARD1 ? 300000 : 120000) : (size_t)(100 + 37 * i);
        f->data = malloc(f->size);
        for (size_t k = 0; k < f->size; k++) {
            x = x * 1664525u + 1013904223u;
            f->data[k] = f->lfs ? (unsigned char)(x >> 24) : (unsigned char)("{\"a\": 1}\n"[k % 9]);
        }
        uint8_t d[32];
        hub_sha256(f->data, f->size, d);
        for (int k = 0; k < 32; k++) snprintf(f->sha256 + 2 * k, 3, "%02x", d[k]);
        char p[128];
        mkdir("build", 0755); mkdir("build/tmp", 0755);
        snprintf(p, sizeof p, "build/tmp/hubfile%d", i);
        FILE *fp = fopen(p, "wb"); fwrite(f->data, 1, f->size, fp); fclose(fp);
        if (hub_git_oid_file(p, f->oid) < 0) return -1;
        unlink(p);
    }
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = 0; a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    DAEMON = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, NULL,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a, MHD_OPTION_END);
    if (!DAEMON) return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(DAEMON, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(ENDPOINT, sizeof ENDPOINT, "http://127.0.0.1:%u", info->port);
    return 0;
}
static int teardown(void **st) {
    (void)st;
    if (DAEMON) MHD_stop_daemon(DAEMON);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf build/tmp/hubcache-*-%d", (int)getpid());
    if (system(cmd) != 0) fprintf(stderr, "could not remove the test caches\n");
    for (int i = 0; i < NFILES; i++) free(FILES[i].data);
    return 0;
}

/* A fresh cache directory and options pointing at the fake hub. */
static void fresh(hub_opts *o, char *cache, size_t cap, const char *tag) {
    char buf[512];
    hub_opts_from_env(o, buf, sizeof buf);
    snprintf(cache, cap, "build/tmp/hubcache-%s-%d", tag, (int)getpid());
    char cmd[600]; snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    assert_int_equal(system(cmd), 0);
    o->cache_dir = cache; o->endpoint = ENDPOINT; o->token = NULL; o->offline = 0;
    o->revision = "main"; o->retries = 3; o->timeout_s = 10; o->progress = 0;
}

static void assert_file_is(const char *path, const fake_file *f) {
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("%s missing", path);
    unsigned char *b = malloc(f->size + 1);
    size_t n = fread(b, 1, f->size + 1, fp);
    fclose(fp);
    assert_int_equal(n, f->size);
    assert_memory_equal(b, f->data, f->size);
    free(b);
}

static int count_incomplete(const char *cache, const char *folder) {
    char p[512]; snprintf(p, sizeof p, "%s/%s/blobs", cache, folder);
    DIR *d = opendir(p);
    if (!d) return 0;
    int n = 0; struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".incomplete") != NULL;
    closedir(d);
    return n;
}

static void counters(int *api, int *get, int *range, long long *rstart) {
    pthread_mutex_lock(&S.mu);
    if (api) *api = S.n_api;
    if (get) *get = S.n_get;
    if (range) *range = S.n_range;
    if (rstart) *rstart = S.last_range_start;
    pthread_mutex_unlock(&S.mu);
}

static void test_sha(void **st) {
    (void)st;
    uint8_t d[32]; char hex[65];
    hub_sha256("abc", 3, d);
    for (int k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", d[k]);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hub_sha256("", 0, d);
    for (int k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", d[k]);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";   /* 56 bytes: padding edge */
    hub_sha256(m, strlen(m), d);
    for (int k = 0; k < 32; k++) snprintf(hex + 2 * k, 3, "%02x", d[k]);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    mkdir("build", 0755); mkdir("build/tmp", 0755);
    FILE *f = fopen("build/tmp/hello.txt", "w"); fputs("hello\n", f); fclose(f);
    char oid[41];
    assert_int_equal(hub_git_oid_file("build/tmp/hello.txt", oid), 0);
    assert_string_equal(oid, "ce013625030ba8dba906f756967f9e9ca394464a");   /* git hash-object */
    assert_int_equal(hub_sha256_file("build/tmp/hello.txt", hex), 0);
    assert_string_equal(hex, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    char folder[128];
    assert_int_equal(hub_repo_folder("Qwen/Qwen3-8B", folder, sizeof folder), 0);
    assert_string_equal(folder, "models--Qwen--Qwen3-8B");
    assert_int_equal(hub_repo_folder("noslash", folder, sizeof folder), -1);
    assert_int_equal(hub_repo_folder("a/b/c", folder, sizeof folder), -1);
}

/* Full download with a connection dropped mid-shard: resumed with Range. */
static void test_download_resume_reuse(void **st) {
    (void)st;
    hub_opts o; char cache[256], snap[1024], err[1024] = "";
    fresh(&o, cache, sizeof cache, "full");
    o.token = TOKEN;
    pthread_mutex_lock(&S.mu); S.drop_file = F_SHARD1; S.drop_at = 123457; S.saw_bearer = 0; pthread_mutex_unlock(&S.mu);
    int r0; counters(NULL, NULL, &r0, NULL);
    if (hub_download(&o, "org/tiny", snap, sizeof snap, err, sizeof err) != 0) fail_msg("%s", err);
    int r1; long long rs; counters(NULL, NULL, &r1, &rs);
    assert_true(r1 > r0);                     /* resumed with a Range request ... */
    assert_int_equal(rs, 123457);             /* ... from where the connection dropped */
    assert_true(S.saw_bearer);
    char want[512]; snprintf(want, sizeof want, "%s/models--org--tiny/snapshots/" COMMIT, cache);
    assert_string_equal(snap, want);
    for (int i = 0; i < NFILES; i++) {
        if (i == F_MISSING) continue;
        char p[2100]; snprintf(p, sizeof p, "%s/%s", snap, FILES[i].name);
        assert_file_is(p, &FILES[i]);
        char target[512]; ssize_t n = readlink(p, target, sizeof target - 1);
        assert_true(n > 0); target[n] = 0;
        char wt[512];
        snprintf(wt, sizeof wt, "%sblobs/%s", i == F_NESTED ? "../../../../" : "../../",
                 FILES[i].lfs ? FILES[i].sha256 : FILES[i].oid);
        assert_string_equal(target, wt);
    }
    char refp[512], ref[64] = "";
    snprintf(refp, sizeof refp, "%s/models--org--tiny/refs/main", cache);
    FILE *f = fopen(refp, "r"); assert_non_null(f);
    assert_non_null(fgets(ref, sizeof ref, f)); fclose(f);
    assert_string_equal(ref, COMMIT);
    assert_int_equal(count_incomplete(cache, "models--org--tiny"), 0);
    /* second run: the listing is fetched, no file is */
    int a0, g0, a1, g1;
    counters(&a0, &g0, NULL, NULL);
    if (hub_download(&o, "org/tiny", snap, sizeof snap, err, sizeof err) != 0) fail_msg("%s", err);
    counters(&a1, &g1, NULL, NULL);
    assert_int_equal(a1, a0 + 1);
    assert_int_equal(g1, g0);
    /* offline: no request at all, same snapshot */
    o.offline = 1;
    char snap2[1024];
    if (hub_download(&o, "org/tiny", snap2, sizeof snap2, err, sizeof err) != 0) fail_msg("%s", err);
    int a2, g2; counters(&a2, &g2, NULL, NULL);
    assert_int_equal(a2, a1); assert_int_equal(g2, g1);
    assert_string_equal(snap2, snap);
    assert_int_equal(hub_download(&o, "org/other", snap2, sizeof snap2, err, sizeof err), -1);
    assert_non_null(strstr(err, "HF_HUB_OFFLINE"));
}

/* A partial blob left by an earlier run is resumed, not restarted. */
static void test_resume_across_runs(void **st) {
    (void)st;
    hub_opts o; char cache[256], snap[1024], err[1024] = "";
    fresh(&o, cache, sizeof cache, "partial");
    o.retries = 0;
    pthread_mutex_lock(&S.mu); S.drop_file = F_SHARD2; S.drop_at = 50000; pthread_mutex_unlock(&S.mu);
    const char *inc[] = {"model-00002-*"};
    o.include = inc; o.n_include = 1;
    assert_int_equal(hub_download(&o, "org/tiny", snap, sizeof snap, err, sizeof err), -1);
    assert_non_null(strstr(err, "partial data kept"));
    char p[1024];
    snprintf(p, sizeof p, "%s/models--org--tiny/blobs/%s.incomplete", cache, FILES[F_SHARD2].sha256);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, 50000);
    snprintf(p, sizeof p, "%s/models--org--tiny/snapshots/" COMMIT "/%s", cache, FILES[F_SHARD2].name);
    assert_int_equal(lstat(p, &sb), -1);     /* nothing in the snapshot yet */
    if (hub_download(&o, "org/tiny", snap, sizeof snap, err, sizeof err) != 0) fail_msg("%s", err);
    long long rs; counters(NULL, NULL, NULL, &rs);
    assert_int_equal(rs, 50000);
    assert_file_is(p, &FILES[F_SHARD2]);
    snprintf(p, sizeof p, "%s/models--org--tiny/snapshots/" COMMIT "/config.json", cache);
    assert_int_equal(lstat(p, &sb), -1);     /* --include kept the others out */
    assert_int_equal(count_incomplete(cache, "models--org--tiny"), 0);
    const char *none[] = {"*.gguf"};
    o.include = none;
    assert_int_equal(hub_download(&o, "org/tiny", snap, sizeof snap, err, sizeof err), -1);
    assert_non_null(strstr(err, "no file matches"));
}

static void test_errors(void **st) {
    (void)st;
    hub_opts o; char cache[256], snap[1024], err[1024] = "";
    fresh(&o, cache, sizeof cache, "err");
    assert_int_equal(hub_download(&o, "org/missing", snap, sizeof snap, err, sizeof err), -1);
    assert_non_null(strstr(err, "404")); assert_non_null(strstr(err, "org/missing"));
    /* listed file the server does not have */
    assert_int_equal(hub_download(&o, "org/broken", snap, sizeof snap, err, sizeof err), -1);
    assert_non_null(strstr(err, "404")); assert_non_null(strstr(err, "missing.bin"));
    /* wrong checksum: a clear error, nothing in the snapshot, no blob left */
    const char *inc[] = {"*.safetensors"};
    o.include = inc; o.n_include = 1;
    assert_int_equal(hub_download(&o, "org/corrupt", snap, sizeof snap, err, sizeof err), -1);
    assert_non_null(strstr(err, "sha256 mismatch"));
    assert_non_null(strstr(err, FILES[F_SHARD1].name));
    char p[1024]; struct stat sb;
    snprintf(p, sizeof p, "%s/models--org--corrupt/snapshots/" COMMIT "/%s", cache, FILES[F_SHARD1].name);
    assert_int_equal(lstat(p, &sb), -1);
    assert_int_equal(count_incomplete(cache, "models--org--corrupt"), 0);
    snprintf(p, sizeof p, "%s/models--org--corrupt/blobs/badbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadbadb", cache);
    assert_int_equal(stat(p, &sb), -1);
    /* private repository: 401 without the token; the token never shows in errors */
    o.include = NULL; o.n_include = 0;
    o.token = "wrong_" TOKEN;
    assert_int_equal(hub_download(&o, "org/private", snap, sizeof snap, err, sizeof err), -1);
    assert_non_null(strstr(err, "401"));
    assert_null(strstr(err, TOKEN));
    o.token = TOKEN;
    if (hub_download(&o, "org/private", snap, sizeof snap, err, sizeof err) != 0) fail_msg("%s", err);
    /* bad names */
    assert_int_equal(hub_download(&o, "../etc", snap, sizeof snap, err, sizeof err), -1);
    /* unreachable endpoint: an error, not a hang */
    o.endpoint = "http://127.0.0.1:1";
    assert_int_equal(hub_download(&o, "org/tiny", snap, sizeof snap, err, sizeof err), -1);
    assert_non_null(strstr(err, "127.0.0.1:1"));
}

/* No sizes/hashes in the listing: blob names come from HEAD's ETag headers. */
static void test_head_etag(void **st) {
    (void)st;
    hub_opts o; char cache[256], snap[1024], err[1024] = "";
    fresh(&o, cache, sizeof cache, "head");
    o.progress = 1;   /* exercise the progress bar (drawn on stderr) */
    const char *inc[] = {"config.json", "model-00002-*"};
    o.include = inc; o.n_include = 2;
    if (hub_download(&o, "org/nohash", snap, sizeof snap, err, sizeof err) != 0) fail_msg("%s", err);
    char p[1024];
    snprintf(p, sizeof p, "%s/models--org--nohash/blobs/%s", cache, FILES[F_SHARD2].sha256);   /* X-Linked-Etag */
    assert_file_is(p, &FILES[F_SHARD2]);
    snprintf(p, sizeof p, "%s/models--org--nohash/blobs/%s", cache, FILES[F_CONFIG].oid);      /* ETag */
    assert_file_is(p, &FILES[F_CONFIG]);
}

/* Two processes downloading into one cache at once both succeed. */
static void test_concurrent(void **st) {
    (void)st;
    hub_opts o; char cache[256], snap[1024], err[1024] = "";
    fresh(&o, cache, sizeof cache, "conc");
    pid_t kids[3];
    for (int k = 0; k < 3; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            if (hub_download(&o, "org/tiny", snap, sizeof snap, err, sizeof err) == 0) _exit(0);
            fprintf(stderr, "child %d: %s\n", k, err);
            _exit(1);
        }
    }
    for (int k = 0; k < 3; k++) {
        int status;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    if (hub_download(&o, "org/tiny", snap, sizeof snap, err, sizeof err) != 0) fail_msg("%s", err);
    for (int i = 0; i < NFILES; i++) {
        if (i == F_MISSING) continue;
        char p[2100]; snprintf(p, sizeof p, "%s/%s", snap, FILES[i].name);
        assert_file_is(p, &FILES[i]);
    }
    assert_int_equal(count_incomplete(cache, "models--org--tiny"), 0);
}

/* The command: engine/hub download with HF_ENDPOINT / HF_HUB_OFFLINE. */
static void test_cli(void **st) {
    (void)st;
    char bin[512]; snprintf(bin, sizeof bin, "%s/engine/hub", tu_bindir());
    TU_REQUIRE_FILE(bin);
    char cache[256]; snprintf(cache, sizeof cache, "build/tmp/hubcache-cli-%d", (int)getpid());
    char cmd[2048], out[1024] = "";
    snprintf(cmd, sizeof cmd, "rm -rf %s && HF_ENDPOINT=%s HF_TOKEN=%s %s download org/tiny --include '*.json' --cache-dir %s 2>&1",
             cache, ENDPOINT, TOKEN, bin, cache);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p); out[n] = 0;
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(out, "snapshots/" COMMIT));
    assert_null(strstr(out, TOKEN));
    snprintf(cmd, sizeof cmd, "HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 %s download org/tiny --cache-dir %s >/dev/null 2>&1", bin, cache);
    assert_int_equal(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof cmd, "HF_ENDPOINT=%s %s download org/missing --cache-dir %s >/dev/null 2>&1", ENDPOINT, bin, cache);
    assert_int_equal(WEXITSTATUS(system(cmd)), 1);
    snprintf(cmd, sizeof cmd, "%s --help >/dev/null", bin);
    assert_int_equal(WEXITSTATUS(system(cmd)), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha),
        cmocka_unit_test(test_download_resume_reuse),
        cmocka_unit_test(test_resume_across_runs),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_head_etag),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
