/* daemon/auth.c: the tokens a Hello may carry - the token that may do everything
 * (--token-file) and the read-only one (--read-token-file).
 *
 * A token file holds the token on its first line (trailing whitespace and newlines are
 * stripped; at most 4095 bytes, no NUL). Like ssh with a private key, a token file that
 * group or others may read or write is refused at start: the token is a password.
 *
 * Comparison: the given token and each configured one are hashed with SHA-256 and the
 * digests compared with CRYPTO_memcmp, and BOTH configured tokens are always compared, so the
 * time taken depends neither on how much of a guess matches nor on its length, nor on which
 * token it resembles. Rejected: comparing the strings byte by byte up to the longer length
 * (the length of the guess still shows); several read tokens (one file, one token: rotate by
 * restarting with a new file).
 *
 * Threads: loaded before the loop runs, then read-only; vd_auth_check from any thread. */
#include "daemon/tls_int.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <sys/stat.h>

#define TOKEN_MAX 4095

struct vd_auth {
    int required, has_read;
    uint8_t write_digest[SHA256_DIGEST_LENGTH];
    uint8_t read_digest[SHA256_DIGEST_LENGTH];
};

/* The token of `path` (flag names it in messages) into buf, its length into *n. */
static vd_status read_token(const char *flag, const char *path, char *buf, size_t *n,
                            vd_err *err)
{
    struct stat sb;
    FILE *f = fopen(path, "rb");
    if (!f) return vd_err_set(err, VD_INVALID, "%s %s: %s", flag, path, strerror(errno));
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return vd_err_set(err, VD_INVALID, "%s %s: %s", flag, path, strerror(errno));
    }
    if (sb.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
        fclose(f);
        return vd_err_set(err, VD_INVALID,
                          "%s %s: permissions %04o are too open: group or others may read or "
                          "write it (chmod 600 the file)",
                          flag, path, (unsigned)(sb.st_mode & 07777));
    }
    size_t len = fread(buf, 1, TOKEN_MAX + 1, f);
    fclose(f);
    char *nl = memchr(buf, '\n', len);
    if (nl) len = (size_t)(nl - buf); /* the first line */
    while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    if (len > TOKEN_MAX)
        return vd_err_set(err, VD_INVALID, "%s %s: the token is longer than %d bytes", flag,
                          path, TOKEN_MAX);
    if (len == 0)
        return vd_err_set(err, VD_INVALID, "%s %s: the first line holds no token", flag, path);
    if (memchr(buf, 0, len))
        return vd_err_set(err, VD_INVALID, "%s %s: the token contains a NUL byte", flag, path);
    *n = len;
    return VD_OK;
}

static void digest(const void *p, size_t n, uint8_t out[SHA256_DIGEST_LENGTH])
{
    SHA256(p, n, out);
}

vd_status vd_auth_load(const char *write_file, const char *read_file, vd_auth **out,
                       vd_err *err)
{
    char buf[TOKEN_MAX + 2];
    size_t n = 0;
    vd_status s = VD_OK;
    *out = NULL;
    if (read_file && !write_file)
        return vd_err_set(err, VD_INVALID, "--read-token-file needs --token-file (the token "
                                           "that may write)");
    vd_auth *a = vd_calloc(1, sizeof *a);
    if (!a) return vd_err_set(err, VD_NOMEM, "out of memory");
    if (write_file) {
        if ((s = read_token("--token-file", write_file, buf, &n, err)) != VD_OK) goto fail;
        digest(buf, n, a->write_digest);
        a->required = 1;
    }
    if (read_file) {
        if ((s = read_token("--read-token-file", read_file, buf, &n, err)) != VD_OK) goto fail;
        digest(buf, n, a->read_digest);
        a->has_read = 1;
        if (CRYPTO_memcmp(a->read_digest, a->write_digest, sizeof a->read_digest) == 0) {
            s = vd_err_set(err, VD_INVALID, "--read-token-file %s holds the same token as "
                                            "--token-file %s", read_file, write_file);
            goto fail;
        }
    }
    OPENSSL_cleanse(buf, sizeof buf);
    *out = a;
    return VD_OK;
fail:
    OPENSSL_cleanse(buf, sizeof buf);
    vd_auth_free(a);
    return s;
}

void vd_auth_free(vd_auth *a)
{
    if (!a) return;
    OPENSSL_cleanse(a, sizeof *a);
    vd_free(a);
}

int vd_auth_required(const vd_auth *a)
{
    return a && a->required;
}

vd_auth_role vd_auth_check(const vd_auth *a, const char *token)
{
    if (!vd_auth_required(a)) return VD_AUTH_WRITE;
    uint8_t d[SHA256_DIGEST_LENGTH];
    digest(token, strlen(token), d);
    /* Both comparisons always run; the results combine without a branch on either. */
    int w = CRYPTO_memcmp(d, a->write_digest, sizeof d) == 0;
    int r = CRYPTO_memcmp(d, a->read_digest, sizeof d) == 0;
    r &= a->has_read;
    OPENSSL_cleanse(d, sizeof d);
    return w ? VD_AUTH_WRITE : r ? VD_AUTH_READ : VD_AUTH_DENIED;
}
