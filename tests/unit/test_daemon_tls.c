/* tests/unit/test_daemon_tls.c: daemon/tls.c on its own - a server session driven through
 * its memory BIOs against an OpenSSL client in the same process, no socket: the handshake,
 * frames larger than a TLS record both ways, a plain-text client recognised by its first
 * byte, mTLS refusing a client without a certificate, and certificate files refused at
 * load with the file named. Certificates come from the openssl command line (a test CA). */
#include <check.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon/tls_int.h"
#include "tests/unit/storage_testlib.h"

static char dir[64], ca_pem[128], srv_pem[128], srv_key[128], cli_pem[128], cli_key[128];

static void make_certs(void)
{
    st_tmpdir(dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && E='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "openssl req -x509 $E -keyout ca.key -out ca.pem -days 2 -subj /CN=ca "
             ">/dev/null 2>&1 && "
             "printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
             "for w in server client; do openssl req $E -keyout $w.key -out $w.csr "
             "-subj /CN=$w && openssl x509 -req -in $w.csr -CA ca.pem -CAkey ca.key "
             "-CAcreateserial -out $w.pem -days 2 -extfile ext.cnf; done >/dev/null 2>&1",
             dir);
    ck_assert_msg(system(cmd) == 0, "openssl could not make the test certificates");
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", dir);
    snprintf(srv_pem, sizeof srv_pem, "%s/server.pem", dir);
    snprintf(srv_key, sizeof srv_key, "%s/server.key", dir);
    snprintf(cli_pem, sizeof cli_pem, "%s/client.pem", dir);
    snprintf(cli_key, sizeof cli_key, "%s/client.key", dir);
}

typedef struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out; /* in: what the server sent; out: what the client sends */
} client;

static void client_new(client *c, int with_cert)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_int_eq(SSL_CTX_load_verify_locations(c->ctx, ca_pem, NULL), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (with_cert) {
        ck_assert_int_eq(SSL_CTX_use_certificate_file(c->ctx, cli_pem, SSL_FILETYPE_PEM), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(c->ctx, cli_key, SSL_FILETYPE_PEM), 1);
    }
    c->ssl = SSL_new(c->ctx);
    c->in = BIO_new(BIO_s_mem());
    c->out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(c->in, -1);
    SSL_set_bio(c->ssl, c->in, c->out);
    SSL_set_connect_state(c->ssl);
}

static void client_free(client *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
}

/* Moves bytes both ways once; the server's plaintext is appended to got[*n_got..cap).
 * Returns the server's last read status. */
static vd_tls_rc pump(client *c, vd_tls_session *s, uint8_t *got, size_t *n_got, size_t cap,
                      vd_err *err)
{
    SSL_do_handshake(c->ssl);
    uint8_t buf[65536];
    int n;
    while ((n = BIO_read(c->out, buf, sizeof buf)) > 0)
        ck_assert_int_eq(vd_tls_feed(s, buf, (size_t)n, err), VD_OK);
    vd_tls_rc rc;
    size_t k = 0;
    uint8_t sink[16384];
    do {
        uint8_t *dst = got ? got + *n_got : sink;
        size_t room = got ? cap - *n_got : sizeof sink;
        rc = vd_tls_read(s, dst, room, &k, err);
        if (rc == VD_TLS_DATA && got) *n_got += k;
    } while (rc == VD_TLS_DATA);
    uint8_t *out = NULL;
    size_t n_out = 0;
    ck_assert_int_eq(vd_tls_output(s, &out, &n_out), VD_OK);
    if (n_out) BIO_write(c->in, out, (int)n_out);
    vd_free(out);
    return rc;
}

static void handshake(client *c, vd_tls_session *s)
{
    vd_err err;
    for (int i = 0; i < 10 && !(vd_tls_established(s) && SSL_is_init_finished(c->ssl)); i++)
        ck_assert_int_eq(pump(c, s, NULL, NULL, 0, &err), VD_TLS_WANT);
    ck_assert(vd_tls_established(s));
    ck_assert(SSL_is_init_finished(c->ssl));
}

START_TEST(frames_cross_a_session_both_ways)
{
    make_certs();
    vd_tls *t = NULL;
    vd_err err;
    ck_assert_int_eq(vd_tls_new(srv_pem, srv_key, NULL, &t, &err), VD_OK);
    vd_tls_session *s = NULL;
    ck_assert_int_eq(vd_tls_session_new(t, &s, &err), VD_OK);
    client c;
    client_new(&c, 0);
    handshake(&c, s);
    char desc[96];
    ck_assert_ptr_nonnull(strstr(vd_tls_describe(s, desc, sizeof desc), "TLSv1."));
    /* a 1 MiB frame, many records, to the server */
    size_t n = 1u << 20, got_n = 0;
    uint8_t *msg = malloc(n), *got = malloc(n);
    for (size_t i = 0; i < n; i++) msg[i] = (uint8_t)(i * 131 + 7);
    ck_assert_int_eq(SSL_write(c.ssl, msg, (int)n), (int)n);
    ck_assert_int_eq(pump(&c, s, got, &got_n, n, &err), VD_TLS_WANT);
    ck_assert_uint_eq(got_n, n);
    ck_assert_mem_eq(got, msg, n);
    /* and back, in one vd_tls_write */
    ck_assert_int_eq(vd_tls_write(s, msg, n, &err), VD_OK);
    pump(&c, s, NULL, NULL, 0, &err);
    size_t back = 0;
    int r;
    while (back < n && (r = SSL_read(c.ssl, got + back, (int)(n - back))) > 0)
        back += (size_t)r;
    ck_assert_uint_eq(back, n);
    ck_assert_mem_eq(got, msg, n);
    /* close_notify from the client ends the session cleanly */
    SSL_shutdown(c.ssl);
    ck_assert_int_eq(pump(&c, s, NULL, NULL, 0, &err), VD_TLS_CLOSED);
    free(msg);
    free(got);
    client_free(&c);
    vd_tls_session_free(s);
    vd_tls_free(t);
    st_rmtree(dir);
}
END_TEST

START_TEST(plain_text_and_missing_client_certificates_are_refused)
{
    make_certs();
    vd_tls *t = NULL;
    vd_err err;
    ck_assert_int_eq(vd_tls_new(srv_pem, srv_key, ca_pem, &t, &err), VD_OK);
    ck_assert(vd_tls_requires_client_cert(t));
    /* a vectord frame in plain text: its first byte is no TLS record */
    vd_tls_session *s = NULL;
    ck_assert_int_eq(vd_tls_session_new(t, &s, &err), VD_OK);
    const uint8_t frame[] = {0, 0, 0, 2, 0x52, 0x00};
    ck_assert_int_eq(vd_tls_feed(s, frame, sizeof frame, &err), VD_OK);
    size_t k;
    uint8_t buf[64];
    ck_assert_int_eq(vd_tls_read(s, buf, sizeof buf, &k, &err), VD_TLS_NOT_TLS);
    ck_assert(!vd_tls_established(s));
    vd_tls_session_free(s);
    /* mTLS: no client certificate, no session; with one, a session */
    for (int with_cert = 0; with_cert < 2; with_cert++) {
        ck_assert_int_eq(vd_tls_session_new(t, &s, &err), VD_OK);
        client c;
        client_new(&c, with_cert);
        vd_tls_rc rc = VD_TLS_WANT;
        for (int i = 0; i < 10 && rc == VD_TLS_WANT && !vd_tls_established(s); i++)
            rc = pump(&c, s, NULL, NULL, 0, &err);
        if (with_cert) {
            ck_assert_msg(vd_tls_established(s), "mTLS with a certificate: %s", err.msg);
        } else {
            ck_assert_int_eq(rc, VD_TLS_FAILED);
            ck_assert_msg(strstr(err.msg, "certificate"), "why: %s", err.msg);
            uint8_t *alert = NULL;
            size_t n_alert = 0;
            ck_assert_int_eq(vd_tls_output(s, &alert, &n_alert), VD_OK);
            vd_free(alert); /* the alert telling the client, when OpenSSL queued one */
            ck_assert_int_eq(vd_tls_write(s, buf, 1, &err), VD_UNAVAILABLE);
        }
        client_free(&c);
        vd_tls_session_free(s);
    }
    vd_tls_free(t);
    st_rmtree(dir);
}
END_TEST

START_TEST(unusable_files_are_named)
{
    make_certs();
    vd_tls *t = NULL;
    vd_err err;
    ck_assert_int_eq(vd_tls_new("/nonexistent.pem", srv_key, NULL, &t, &err), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(err.msg, "--tls-cert /nonexistent.pem: "));
    ck_assert_int_eq(vd_tls_new(srv_pem, cli_key, NULL, &t, &err), VD_INVALID);
    ck_assert_msg(strstr(err.msg, "does not match --tls-cert"), "%s", err.msg);
    ck_assert_int_eq(vd_tls_new(srv_pem, srv_key, srv_key, &t, &err), VD_INVALID);
    ck_assert_msg(strstr(err.msg, "--tls-client-ca"), "%s", err.msg);
    ck_assert_ptr_null(t);
    st_rmtree(dir);
}
END_TEST

Suite *daemon_tls_suite(void)
{
    Suite *s = suite_create("daemon_tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, frames_cross_a_session_both_ways);
    tcase_add_test(tc, plain_text_and_missing_client_certificates_are_refused);
    tcase_add_test(tc, unusable_files_are_named);
    suite_add_tcase(s, tc);
    return s;
}
