/* daemon/tls.c: TLS sessions of the data port - OpenSSL over a pair of memory BIOs.
 *
 * Each session is an SSL object whose read BIO receives the ciphertext the loop thread read
 * (vd_tls_feed) and whose write BIO collects the ciphertext OpenSSL produced (handshake
 * messages, application records, alerts), taken by vd_tls_output and written with uv_write.
 * OpenSSL never touches the socket, so the libuv loop stays the only thing doing I/O and the
 * backpressure and close logic of plain connections applies unchanged. The memory BIOs grow
 * as needed: SSL_write always consumes the whole frame, and the bytes waiting to be sent are
 * accounted like plain response bytes by the server.
 *
 * Policy: TLS 1.2 and newer (SSL_CTX_set_min_proto_version); no renegotiation, no
 * compression; no session tickets (a client reconnects rarely, and an idle connection with
 * a ticket record pending would look readable to clients probing for a server's close).
 * With a client CA, a client certificate signed by it is required (mTLS).
 *
 * A plain-text client: the first byte of a TLS connection is a handshake record (0x16). Our
 * frames start with a big-endian length whose first byte is 0 for any frame under 16 MiB, so
 * a vectord client speaking plain TCP to a TLS port is recognised by its first byte and told
 * so (VD_TLS_NOT_TLS: the server answers in plain text and closes) instead of getting an
 * OpenSSL "wrong version number" or a hang.
 * Rejected: SSL_set_fd on the socket (OpenSSL would read and write behind libuv's back);
 * BIO pairs (a fixed-size buffer between the two ends, so a large response would need a
 * write-retry loop the memory BIO makes unnecessary). */
#include "daemon/tls_int.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>

#define TLS_HANDSHAKE_RECORD 0x16

struct vd_tls {
    SSL_CTX *ctx;
    int client_cert;
};

struct vd_tls_session {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    int seen_input;
    int not_tls;
    int failed;
};

/* OpenSSL's reason for the last failure, or `fallback`. Clears the error queue. */
static const char *ssl_reason(char *buf, size_t cap, const char *fallback)
{
    unsigned long e = ERR_get_error(), last = e;
    while (e) { /* the first error is the root cause; keep it, drain the rest */
        e = ERR_get_error();
    }
    if (!last) {
        snprintf(buf, cap, "%s", fallback);
        return buf;
    }
    const char *r = ERR_reason_error_string(last);
    snprintf(buf, cap, "%s", r ? r : fallback);
    return buf;
}

vd_status vd_tls_new(const char *cert_file, const char *key_file, const char *client_ca_file,
                     vd_tls **out, vd_err *err)
{
    char why[256];
    const char *what = "";
    *out = NULL;
    vd_tls *t = vd_calloc(1, sizeof *t);
    if (!t) return vd_err_set(err, VD_NOMEM, "out of memory setting up TLS");
    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (!t->ctx) {
        what = "creating a TLS context";
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(t->ctx, 0);
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
        snprintf(why, sizeof why, "--tls-cert %s", cert_file);
        what = why;
        goto fail_file;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        snprintf(why, sizeof why, "--tls-key %s", key_file);
        what = why;
        goto fail_file;
    }
    if (SSL_CTX_check_private_key(t->ctx) != 1) { /* also after a mismatch above */
        ERR_clear_error();
        snprintf(why, sizeof why, "--tls-key %s does not match --tls-cert %s", key_file,
                 cert_file);
        what = why;
        goto fail_file;
    }
    if (client_ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_file);
        if (!names || SSL_CTX_load_verify_locations(t->ctx, client_ca_file, NULL) != 1) {
            if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(why, sizeof why, "--tls-client-ca %s", client_ca_file);
            what = why;
            goto fail_file;
        }
        SSL_CTX_set_client_CA_list(t->ctx, names);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        t->client_cert = 1;
    }
    *out = t;
    return VD_OK;
fail_file: {
    char r[160];
    vd_err_set(err, VD_INVALID, "%s: %s", what, ssl_reason(r, sizeof r, "cannot be used"));
    vd_tls_free(t);
    return VD_INVALID;
}
fail:
    vd_err_set(err, VD_INTERNAL, "%s: %s", what, ssl_reason(why, sizeof why, "failed"));
    vd_tls_free(t);
    return VD_INTERNAL;
}

void vd_tls_free(vd_tls *t)
{
    if (!t) return;
    SSL_CTX_free(t->ctx);
    vd_free(t);
}

int vd_tls_requires_client_cert(const vd_tls *t)
{
    return t->client_cert;
}

vd_status vd_tls_session_new(vd_tls *t, vd_tls_session **out, vd_err *err)
{
    *out = NULL;
    vd_tls_session *s = vd_calloc(1, sizeof *s);
    if (!s) return vd_err_set(err, VD_NOMEM, "out of memory for a TLS session");
    s->ssl = SSL_new(t->ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->rbio || !s->wbio) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        SSL_free(s->ssl);
        vd_free(s);
        ERR_clear_error();
        return vd_err_set(err, VD_NOMEM, "out of memory for a TLS session");
    }
    /* An empty read BIO means "no input yet", never EOF. */
    BIO_set_mem_eof_return(s->rbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
    *out = s;
    return VD_OK;
}

void vd_tls_session_free(vd_tls_session *s)
{
    if (!s) return;
    SSL_free(s->ssl); /* frees both BIOs */
    vd_free(s);
}

vd_status vd_tls_feed(vd_tls_session *s, const uint8_t *in, size_t n, vd_err *err)
{
    if (n == 0) return VD_OK;
    if (!s->seen_input) {
        s->seen_input = 1;
        if (in[0] != TLS_HANDSHAKE_RECORD) s->not_tls = 1;
    }
    if (s->not_tls || s->failed) return VD_OK; /* nothing more will be read */
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        int w = BIO_write(s->rbio, in, chunk);
        if (w <= 0) return vd_err_set(err, VD_NOMEM, "out of memory buffering TLS input");
        in += w;
        n -= (size_t)w;
    }
    return VD_OK;
}

vd_tls_rc vd_tls_read(vd_tls_session *s, uint8_t *out, size_t cap, size_t *n_out, vd_err *err)
{
    *n_out = 0;
    if (s->not_tls) {
        vd_err_set(err, VD_UNAVAILABLE, "not a TLS handshake");
        return VD_TLS_NOT_TLS;
    }
    if (s->failed) {
        vd_err_set(err, VD_UNAVAILABLE, "TLS session failed earlier");
        return VD_TLS_FAILED;
    }
    ERR_clear_error();
    int r = SSL_read(s->ssl, out, cap > INT_MAX ? INT_MAX : (int)cap);
    if (r > 0) {
        *n_out = (size_t)r;
        return VD_TLS_DATA;
    }
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* the write BIO never blocks; only more input helps */
        return VD_TLS_WANT;
    case SSL_ERROR_ZERO_RETURN:
        return VD_TLS_CLOSED;
    default:
        break;
    }
    s->failed = 1;
    char why[160];
    ssl_reason(why, sizeof why, "protocol error");
    long v = SSL_get_verify_result(s->ssl);
    if (v != X509_V_OK)
        vd_err_set(err, VD_UNAUTHENTICATED, "%s (client certificate: %s)", why,
                   X509_verify_cert_error_string(v));
    else
        vd_err_set(err, VD_UNAVAILABLE, "%s", why);
    return VD_TLS_FAILED;
}

int vd_tls_established(const vd_tls_session *s)
{
    return !s->failed && !s->not_tls && SSL_is_init_finished(s->ssl);
}

const char *vd_tls_describe(const vd_tls_session *s, char *buf, size_t cap)
{
    if (!vd_tls_established(s))
        snprintf(buf, cap, "%s", "");
    else
        snprintf(buf, cap, "%s %s", SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl));
    return buf;
}

vd_status vd_tls_write(vd_tls_session *s, const uint8_t *p, size_t n, vd_err *err)
{
    if (!vd_tls_established(s))
        return vd_err_set(err, VD_UNAVAILABLE, "TLS session not established");
    while (n > 0) {
        ERR_clear_error();
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        int w = SSL_write(s->ssl, p, chunk);
        if (w <= 0) {
            char why[160];
            s->failed = 1;
            return vd_err_set(err, VD_NOMEM, "TLS write: %s",
                              ssl_reason(why, sizeof why, "out of memory"));
        }
        p += w;
        n -= (size_t)w;
    }
    return VD_OK;
}

void vd_tls_close_notify(vd_tls_session *s)
{
    if (!vd_tls_established(s)) return;
    ERR_clear_error();
    SSL_shutdown(s->ssl); /* queues close_notify; we do not wait for the peer's */
    ERR_clear_error();
}

vd_status vd_tls_output(vd_tls_session *s, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t pending = BIO_ctrl_pending(s->wbio);
    if (pending == 0) return VD_OK;
    uint8_t *buf = vd_malloc(pending);
    if (!buf) return VD_NOMEM;
    size_t got = 0;
    while (got < pending) {
        size_t left = pending - got;
        int r = BIO_read(s->wbio, buf + got, left > INT_MAX ? INT_MAX : (int)left);
        if (r <= 0) break;
        got += (size_t)r;
    }
    *out = buf;
    *n = got;
    return VD_OK;
}
