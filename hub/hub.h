/* hub/hub.h — download a model repository from a Hugging Face-compatible
 * hub (libcurl) into the standard cache layout, so files fetched by other
 * tools are reused and ours are reused by them:
 *
 *   <cache>/models--ORG--NAME/blobs/<etag>            file contents
 *   <cache>/models--ORG--NAME/snapshots/<commit>/<f>  symlinks ../../blobs/<etag>
 *   <cache>/models--ORG--NAME/refs/<revision>         the commit hash
 *
 * <etag> is the sha256 for LFS files and the git blob id otherwise.  Files are
 * written to blobs/<etag>.incomplete, resumed with HTTP Range after a dropped
 * connection, checked (size; sha256 for LFS, git blob sha1 otherwise) and only
 * then renamed: a corrupt file never enters the cache.
 */
#ifndef HUB_HUB_H
#define HUB_HUB_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *endpoint;    /* "https://huggingface.co" or $HF_ENDPOINT */
    const char *token;       /* $HF_TOKEN, sent as a bearer token; never printed */
    const char *cache_dir;   /* the hub cache: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub */
    const char *revision;    /* branch, tag or commit; "main" by default */
    const char *const *include; int n_include;   /* fnmatch globs; none = every file */
    int offline;             /* $HF_HUB_OFFLINE=1: the cache only, no network */
    int progress;            /* draw a progress bar on stderr */
    int retries;             /* resumes after a dropped connection (default 5) */
    long timeout_s;          /* per-transfer stall timeout (default 60) */
} hub_opts;

/* Fills opts from the environment (HF_ENDPOINT, HF_TOKEN, HF_HOME,
 * HF_HUB_CACHE, HF_HUB_OFFLINE) and defaults; path_buf (>= 512 bytes) holds
 * the cache path.  Cannot fail. */
void hub_opts_from_env(hub_opts *o, char *path_buf, size_t cap);

/* Downloads the files of repo ("ORG/NAME") at o->revision that match the
 * include globs.  On success returns 0 and writes the snapshot directory into
 * snapshot (cap bytes).  On error returns -1 with a message in err; the
 * message never contains the token. */
int hub_download(const hub_opts *o, const char *repo, char *snapshot, size_t cap,
                 char *err, size_t errcap);

/* "ORG/NAME" -> "models--ORG--NAME"; -1 if repo is not of that form. */
int hub_repo_folder(const char *repo, char *out, size_t cap);

/* SHA-256 of a file as 64 lowercase hex digits; -1 if it cannot be read. */
int hub_sha256_file(const char *path, char hex[65]);
/* SHA-256 of a buffer. */
void hub_sha256(const void *data, size_t len, uint8_t out[32]);
/* Git blob id (sha1 of "blob <size>\0" + content) of a file; -1 on error. */
int hub_git_oid_file(const char *path, char hex[41]);

#endif
