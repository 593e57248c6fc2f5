/* hub_digest: the checksums the hub names its files by (see hub/hub.h):
 * SHA-256 (LFS files) and the git blob id, SHA-1 of "blob <size>\0" and the
 * contents (other files), through OpenSSL's EVP digests (libcrypto).  Reads
 * only the file it is given. */
#include "hub/hub.h"
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void to_hex(const uint8_t *d, int n, char *out) {
    for (int i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void hub_sha256(const void *data, size_t len, uint8_t out[32]) {
    unsigned int n = 32;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL)) memset(out, 0, 32);
}

/* Hashes prefix (plen bytes, may be 0) and then the stream f with md into
 * out (n bytes).  0, or -1 on a read or digest error. */
static int digest_stream(const EVP_MD *md, const void *prefix, size_t plen, FILE *f, uint8_t *out) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int rc = -1;
    if (!c || !EVP_DigestInit_ex(c, md, NULL) || (plen && !EVP_DigestUpdate(c, prefix, plen))) goto out;
    uint8_t buf[1 << 16];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
        if (!EVP_DigestUpdate(c, buf, k)) goto out;
    if (ferror(f) || !EVP_DigestFinal_ex(c, out, NULL)) goto out;
    rc = 0;
out:
    EVP_MD_CTX_free(c);
    return rc;
}

int hub_sha256_file(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    uint8_t d[32];
    int rc = digest_stream(EVP_sha256(), NULL, 0, f, d);
    fclose(f);
    if (rc) return -1;
    to_hex(d, 32, hex);
    return 0;
}

int hub_git_oid_file(const char *path, char hex[41]) {
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) < 0) { if (f) fclose(f); return -1; }
    char hdr[64];
    int hl = snprintf(hdr, sizeof hdr, "blob %lld", (long long)st.st_size);
    uint8_t d[20];
    int rc = digest_stream(EVP_sha1(), hdr, (size_t)hl + 1, f, d);   /* the header with its NUL */
    fclose(f);
    if (rc) return -1;
    to_hex(d, 20, hex);
    return 0;
}
