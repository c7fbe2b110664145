/* daemon/tls_int.h: TLS for the data port (tls.c) and the tokens of Hello (auth.c).
 *
 * tls.c is OpenSSL over memory BIOs and nothing else: it knows neither libuv nor a
 * connection. The server feeds it the ciphertext each read brings, takes plaintext out into
 * the frame decoder, hands it plaintext frames to encrypt, and writes whatever ciphertext it
 * produced (handshake messages, records, alerts) with uv_write. So the loop thread keeps its
 * one read path and one write path, and TLS is one more step on each.
 *
 * Threads: a vd_tls is created before the loop runs and read-only afterwards (OpenSSL's
 * SSL_CTX is safe to share); a vd_tls_session belongs to the loop thread. */
#ifndef VD_TLS_INT_H
#define VD_TLS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/vd_common.h"

typedef struct vd_tls vd_tls;                 /* opaque: certificate, key, client CA */
typedef struct vd_tls_session vd_tls_session; /* opaque: one connection */

/* Loads the certificate chain and its key (PEM), and with client_ca_file (may be NULL) the
 * CAs whose client certificates are required (mTLS). TLS 1.2 and newer only. Every failure
 * names the file and OpenSSL's reason. On VD_OK *out owns the context. */
vd_status vd_tls_new(const char *cert_file, const char *key_file, const char *client_ca_file,
                     vd_tls **out, vd_err *err);
void vd_tls_free(vd_tls *t); /* NULL is a no-op */
int vd_tls_requires_client_cert(const vd_tls *t);

/* A server-side session in its handshake. VD_NOMEM on failure. */
vd_status vd_tls_session_new(vd_tls *t, vd_tls_session **out, vd_err *err);
void vd_tls_session_free(vd_tls_session *s); /* NULL is a no-op */

/* Ciphertext received from the peer (copied in). */
vd_status vd_tls_feed(vd_tls_session *s, const uint8_t *in, size_t n, vd_err *err);

typedef enum vd_tls_rc {
    VD_TLS_DATA,     /* *n_out > 0 plaintext bytes; call again */
    VD_TLS_WANT,     /* nothing more until more ciphertext is fed */
    VD_TLS_CLOSED,   /* the peer sent close_notify */
    VD_TLS_NOT_TLS,  /* the first bytes are not a TLS handshake: a plain-text client */
    VD_TLS_FAILED,   /* handshake or record failure; err says why (an alert may be queued) */
} vd_tls_rc;
/* Runs the handshake as far as the input allows, then decrypts up to cap bytes into out. */
vd_tls_rc vd_tls_read(vd_tls_session *s, uint8_t *out, size_t cap, size_t *n_out, vd_err *err);
int vd_tls_established(const vd_tls_session *s);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" into buf; "" before the handshake. */
const char *vd_tls_describe(const vd_tls_session *s, char *buf, size_t cap);

/* Encrypts n plaintext bytes (only once established). */
vd_status vd_tls_write(vd_tls_session *s, const uint8_t *p, size_t n, vd_err *err);
/* Queues close_notify (once established). */
void vd_tls_close_notify(vd_tls_session *s);
/* Takes the ciphertext waiting to be sent: *out gets a new buffer (vd_free) of *n bytes, or
 * NULL/0 when there is none. VD_NOMEM on allocation failure. */
vd_status vd_tls_output(vd_tls_session *s, uint8_t **out, size_t *n);

/* ---- tokens (auth.c) -------------------------------------------------------------------- */
typedef struct vd_auth vd_auth; /* opaque: the write token and the read-only token */

typedef enum vd_auth_role {
    VD_AUTH_DENIED = 0, /* no valid token on a server that requires one */
    VD_AUTH_READ = 1,   /* the read-only token: reads only */
    VD_AUTH_WRITE = 2,  /* the token, or no token required: everything */
} vd_auth_role;

/* Reads the tokens (first line, trailing whitespace stripped) of write_file and read_file
 * (either may be NULL; read_file needs write_file). A file readable or writable by group or
 * others is refused, as ssh refuses such keys, and so is a read token equal to the write
 * token. On VD_OK *out owns the tokens (also when both files are NULL: anyone may write). */
vd_status vd_auth_load(const char *write_file, const char *read_file, vd_auth **out,
                       vd_err *err);
void vd_auth_free(vd_auth *a); /* NULL is a no-op; wipes the tokens */
int vd_auth_required(const vd_auth *a);
/* The role a Hello's token gives. Constant time in the tokens' contents and lengths (both
 * are compared, through SHA-256 digests and CRYPTO_memcmp). Any thread. */
vd_auth_role vd_auth_check(const vd_auth *a, const char *token);

#endif
