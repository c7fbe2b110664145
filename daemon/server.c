/* daemon/server.c: the libuv loop thread - listener, connections, framing, Hello, dispatch,
 * response writes, backpressure, idle timeout, signals and an orderly shutdown.
 *
 * Every libuv handle lives and dies on this thread. A request's life: bytes land directly in
 * the connection's frame decoder (alloc_cb hands out the decoder's tail), complete frames are
 * decoded (proto/) into a domain request, Hello is answered here, reads go to srv->readq
 * (reader pool) and writes to srv->writeq (the writer), both of which execute them through
 * the engine. Workers encode the response and hand the job back through srv->doneq +
 * uv_async_send; on_done writes the frame with one uv_write.
 *
 * Transport: a connection is plain TCP or, with --tls-cert, TLS (tls.c: OpenSSL over memory
 * BIOs). Both share one read path and one write path: plain input lands in the frame
 * decoder directly; TLS input lands in srv->tls_in and is decrypted into the decoder
 * (conn_tls_input); every outgoing frame goes through conn_send, which writes it as is or
 * encrypts it first, and every byte on the socket through conn_write. A TLS connection is
 * served once its handshake completes; one refused at accept (too many connections,
 * shutting down) gets its refusal after the handshake, inside TLS; one whose handshake has
 * not completed after TLS_HANDSHAKE_MS is cut; a plain-text client on a TLS port (its first
 * byte is not a TLS record) gets one plain-text error frame and is closed at once.
 *
 * Connection lifetime: a vd_conn is freed only when its handle is closed AND no job of it is
 * still with a worker (conn->inflight == 0), so a worker finishing late finds a live struct
 * marked `closing` and its response is dropped. Only this thread touches inflight counters.
 *
 * Backpressure (bounded memory per connection): reading pauses (uv_read_stop) while a
 * connection has max_inflight requests or max_frame bytes of requests with the workers, or
 * max_output_bytes of responses the client has not taken yet, or while all connections
 * together have 8 x max_frame bytes of requests with the workers; frames already buffered
 * wait in the decoder, and reading resumes once responses drain. A client that pipelines
 * without reading thus stalls only itself, and one whose answers stop draining for the idle
 * timeout is cut.
 *
 * Errors and request ids: an error that answers a decoded request carries its request_id;
 * request_id 0 is for what answers no request (broken framing - length 0 or > max_frame -,
 * an undecodable frame, idle timeout, too many connections, shutting down), and those are
 * always followed by a close: the connection is shut down (pending writes flushed) and
 * closed. The protocol state before Hello is strict: anything else first is
 * FAILED_PRECONDITION (UNAUTHENTICATED on a server with a token), an unsupported version
 * FAILED_PRECONDITION, a bad token UNAUTHENTICATED, each followed by a close. A request the
 * codec refuses (ids not whole uint64s...) gets its error here and the connection goes on.
 *
 * Shutdown on SIGINT/SIGTERM: stop accepting and reading, let every job with the workers
 * finish (the writer commits what it was given and acknowledges it), flush responses with
 * uv_shutdown, close connections (forced after a grace period), then close the remaining
 * handles so uv_run returns; the caller then joins the threads and closes the store.
 * Rejected: a thread per connection (hundreds of idle clients would cost hundreds of
 * stacks); decoding protobuf on the workers (Hello ordering and dispatch need the op on the
 * loop thread anyway, and decoding is one memcpy-speed unpack: the arrays are then read in
 * place). */
#include "daemon/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon_int.h"

#define READ_CHUNK (64u * 1024u)
#define CLOSE_GRACE_MS 3000u      /* a closing connection gets this long to flush */
#define STOP_GRACE_MS 5000u       /* shutdown: then remaining connections are cut */
#define LOG_PER_SECOND 20u        /* client error lines per second before suppression */
#define GLOBAL_INFLIGHT_FRAMES 8u /* request bytes with the workers, in max_frame units */
#define TLS_HANDSHAKE_MS 10000u   /* a TLS client must finish its handshake this fast */
#define ACCEPT_RETRY_MS 10u       /* an accept that found no memory is retried after this */

struct vd_conn {
    uv_tcp_t tcp;
    vd_server *srv;
    vd_conn *prev, *next;
    vd_frame_decoder *dec;
    uint64_t id;
    char peer[64];
    int counted; /* counts against max_connections */
    int hello_ok;
    int paused;  /* uv_read_stop'ed for backpressure */
    int closing; /* no more reads or dispatch; responses dropped */
    int eof;     /* the peer half-closed: answer what it sent, then close */
    int handle_closed;
    int read_only; /* authenticated with the read-only token: writes are PERMISSION_DENIED */
    vd_tls_session *tls; /* NULL: plain TCP */
    int tls_up;          /* handshake done */
    vd_code refuse_code; /* TLS: refused at accept, told after the handshake (OK: not refused) */
    char refuse_msg[96];
    uint64_t accepted_ns;
    uv_shutdown_t shutdown_req;
    uint32_t inflight;
    size_t inflight_bytes;
    size_t out_bytes;
    uint64_t last_active_ns;
    uint64_t closing_since_ns;
};

typedef struct out_frame {
    uv_write_t req;
    vd_conn *conn;
    size_t len;
    uint8_t *data;
} out_frame;

static void conn_process(vd_conn *c);
static void conn_maybe_resume(vd_conn *c);
static void stop_check(vd_server *srv);

/* ---- logging of client misbehaviour, rate limited ---------------------------------------- */

static void client_log(vd_server *srv, vd_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void client_log(vd_server *srv, vd_log_level lvl, const char *fmt, ...)
{
    uint64_t now = vd_now_ns();
    if (now - srv->log_window_ns >= 1000000000u) {
        if (srv->log_suppressed)
            vd_log(VD_LOG_WARN, "%" PRIu64 " client error lines suppressed in the last second",
                   srv->log_suppressed);
        srv->log_window_ns = now;
        srv->log_in_window = 0;
        srv->log_suppressed = 0;
    }
    if (lvl >= VD_LOG_WARN && ++srv->log_in_window > LOG_PER_SECOND) {
        srv->log_suppressed++;
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    vd_log(lvl, "%s", msg);
}

/* ---- connection teardown ----------------------------------------------------------------- */

static void conn_free_if_done(vd_conn *c)
{
    if (!c->handle_closed || c->inflight > 0) return;
    vd_frame_decoder_free(c->dec);
    vd_tls_session_free(c->tls);
    vd_free(c);
}

static void on_close(uv_handle_t *h)
{
    vd_conn *c = h->data;
    vd_server *srv = c->srv;
    c->handle_closed = 1;
    if (c->prev)
        c->prev->next = c->next;
    else if (srv->conns == c)
        srv->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->counted) {
        srv->n_conns--;
        atomic_fetch_sub(&srv->connections, 1);
    }
    vd_log(VD_LOG_DEBUG, "connection %" PRIu64 " from %s closed", c->id, c->peer);
    conn_free_if_done(c);
    stop_check(srv);
}

static void conn_close_now(vd_conn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    if (!c->closing) {
        c->closing = 1;
        c->closing_since_ns = vd_now_ns();
    }
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void conn_tls_flush(vd_conn *c);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    vd_conn *c = req->data;
    /* Flushed and FIN sent. Normally the peer now closes its end (EOF in on_read closes
     * ours); when stopping the server we do not wait for that. */
    if (status < 0 || c->srv->stopping || c->eof) conn_close_now(c);
}

/* Lingering close: flush queued responses, send FIN, then discard whatever the peer still
 * sends until it closes (or CLOSE_GRACE_MS pass). Closing at once with unread input would
 * make the kernel send RST, and the peer could lose the error response explaining why. */
static void conn_close_graceful(vd_conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    c->closing_since_ns = vd_now_ns();
    if (c->srv->stopping || c->eof)
        uv_read_stop((uv_stream_t *)&c->tcp);
    else
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read); /* EALREADY is fine */
    if (c->tls && c->tls_up) { /* close_notify, then FIN */
        vd_tls_close_notify(c->tls);
        conn_tls_flush(c);
        if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    }
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close_now(c);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status)
{
    out_frame *o = (out_frame *)req;
    vd_conn *c = o->conn;
    c->out_bytes -= o->len;
    vd_free(o->data);
    vd_free(o);
    if (status < 0) {
        if (status != UV_ECANCELED)
            vd_log(VD_LOG_DEBUG, "connection %" PRIu64 ": write failed: %s", c->id,
                   uv_strerror(status));
        if (!c->closing) conn_close_now(c);
        return;
    }
    c->last_active_ns = vd_now_ns();
    conn_maybe_resume(c);
}

/* Bytes onto the socket as they are (a plain frame, or TLS ciphertext). Takes ownership of
 * `data`. */
static void conn_write(vd_conn *c, uint8_t *data, size_t len)
{
    out_frame *o = vd_calloc(1, sizeof *o);
    if (!o) {
        vd_free(data);
        conn_close_now(c);
        return;
    }
    o->conn = c;
    o->len = len;
    o->data = data;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    c->out_bytes += len;
    int rc = uv_write(&o->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0) {
        c->out_bytes -= len;
        vd_free(data);
        vd_free(o);
        conn_close_now(c);
    }
}

/* Writes the ciphertext the TLS session produced (handshake, records, alerts). */
static void conn_tls_flush(vd_conn *c)
{
    uint8_t *out = NULL;
    size_t n = 0;
    if (vd_tls_output(c->tls, &out, &n) != VD_OK) {
        conn_close_now(c);
        return;
    }
    if (n) conn_write(c, out, n);
}

/* A complete frame to the peer, encrypted on a TLS connection. Takes ownership of `data`. */
static void conn_send(vd_conn *c, uint8_t *data, size_t len)
{
    if (!data) { /* out of memory building it: the client must not wait forever */
        conn_close_now(c);
        return;
    }
    if (uv_is_closing((uv_handle_t *)&c->tcp)) {
        vd_free(data);
        return;
    }
    if (!c->tls) {
        conn_write(c, data, len);
        return;
    }
    /* Before the handshake there is no session to carry it (idle or shutdown closing a
     * connection mid-handshake): the close says it all. */
    vd_status s = c->tls_up ? vd_tls_write(c->tls, data, len, NULL) : VD_UNAVAILABLE;
    vd_free(data);
    if (s != VD_OK) {
        conn_close_now(c);
        return;
    }
    conn_tls_flush(c);
}

static void conn_send_error(vd_conn *c, uint64_t rid, vd_code code, const char *msg)
{
    size_t len = 0;
    uint8_t *f = vd_proto_error_frame(rid, code, msg, &len);
    atomic_fetch_add(&c->srv->errors_total, 1);
    conn_send(c, f, len);
}

/* Connection-level failure: error response (the request's id, or 0 when it answers none),
 * then close. */
static void conn_fail(vd_conn *c, uint64_t rid, vd_code code, const char *msg)
{
    client_log(c->srv, VD_LOG_WARN, "connection %" PRIu64 " from %s: %s: %s; closing", c->id,
               c->peer, vd_proto_code_name(code), msg);
    conn_send_error(c, rid, code, msg);
    conn_close_graceful(c);
}

/* ---- backpressure --------------------------------------------------------------------------- */

static int conn_over_limits(const vd_conn *c)
{
    const vd_server *srv = c->srv;
    const vd_server_config *cfg = &srv->cfg;
    /* The server-wide budget only pauses connections that already have work in progress:
     * each of them resumes when that work comes back, so nobody waits forever. */
    return c->inflight >= cfg->max_inflight || c->inflight_bytes >= cfg->limits.max_frame_bytes ||
           c->out_bytes >= cfg->max_output_bytes ||
           (c->inflight > 0 && srv->inflight_bytes_total >=
                                   GLOBAL_INFLIGHT_FRAMES * (uint64_t)cfg->limits.max_frame_bytes);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    vd_conn *c = h->data;
    uint8_t *p = NULL;
    size_t cap = 0;
    (void)suggested;
    if (c->closing) { /* lingering close: input is read and dropped */
        *buf = uv_buf_init((char *)c->srv->discard, sizeof c->srv->discard);
        return;
    }
    if (c->tls) { /* ciphertext: decrypted into the decoder by on_read before the next read */
        *buf = uv_buf_init((char *)c->srv->tls_in, sizeof c->srv->tls_in);
        return;
    }
    if (vd_frame_reserve(c->dec, READ_CHUNK, &p, &cap, NULL) != VD_OK) {
        *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
        return;
    }
    if (cap > UINT32_MAX) cap = UINT32_MAX;
    *buf = uv_buf_init((char *)p, (unsigned)cap);
}

static void conn_pause(vd_conn *c)
{
    if (c->paused) return;
    c->paused = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
}

static void conn_maybe_resume(vd_conn *c)
{
    if (c->closing || !c->paused || c->srv->stopping || conn_over_limits(c)) return;
    c->paused = 0;
    conn_process(c); /* frames that arrived before the pause */
    if (!c->paused && !c->closing && !c->eof)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* A half-closed connection is closed once everything it sent has been answered. */
static void conn_finish_if_eof(vd_conn *c)
{
    if (c->eof && !c->closing && c->inflight == 0) conn_close_graceful(c);
}

/* ---- requests ------------------------------------------------------------------------------- */

/* An error answering request q, on the loop thread: counted for its operation. */
static void answer_error(vd_conn *c, const vd_proto_request *q, vd_code code, const char *msg,
                         uint64_t t0)
{
    unsigned op = q->is_hello ? VD_METRICS_OP_HELLO : (unsigned)q->op.kind;
    vd_metrics_request(&c->srv->metrics, op, code, vd_now_ns() - t0);
    conn_send_error(c, q->request_id, code, msg);
}

static void answer_hello(vd_conn *c, const vd_proto_request *q, uint64_t t0)
{
    vd_server *srv = c->srv;
    const vd_hello *h = &q->hello;
    char msg[256];
    vd_code code = VD_CODE_OK;
    vd_auth_role role = VD_AUTH_WRITE;
    if (h->protocol_version != VD_PROTOCOL_VERSION) {
        snprintf(msg, sizeof msg,
                 "protocol_version %" PRIu32 " is not supported; this server speaks %u",
                 h->protocol_version, VD_PROTOCOL_VERSION);
        code = VD_CODE_FAILED_PRECONDITION;
    } else if ((role = vd_auth_check(srv->auth, h->token)) == VD_AUTH_DENIED) {
        snprintf(msg, sizeof msg, "%s",
                 h->token[0] ? "invalid token" : "this server requires a token in hello");
        code = VD_CODE_UNAUTHENTICATED;
    }
    vd_metrics_request(&srv->metrics, VD_METRICS_OP_HELLO, code, vd_now_ns() - t0);
    if (code != VD_CODE_OK) {
        conn_fail(c, q->request_id, code, msg);
        return;
    }
    c->read_only = role == VD_AUTH_READ;
    if (!c->hello_ok)
        vd_log(VD_LOG_DEBUG, "connection %" PRIu64 " from %s: hello from %s", c->id, c->peer,
               h->client_name[0] ? h->client_name : "unnamed client");
    c->hello_ok = 1;
    uint8_t *f = NULL;
    size_t len = 0;
    vd_proto_encode_hello(q->request_id, &srv->cfg.limits, VD_VERSION_STRING, &f, &len, NULL);
    conn_send(c, f, len);
}

/* Anything but Hello first. On a server with a token the code says what is missing. */
static void refuse_before_hello(vd_conn *c, const vd_proto_request *q)
{
    char msg[256];
    int token = vd_auth_required(c->srv->auth);
    snprintf(msg, sizeof msg, "%sthe first request on a connection must be hello, got %s",
             token ? "this server requires a token in hello; " : "", vd_request_name(q->op.kind));
    vd_code code = token ? VD_CODE_UNAUTHENTICATED : VD_CODE_FAILED_PRECONDITION;
    vd_metrics_request(&c->srv->metrics, q->op.kind, code, 0);
    conn_fail(c, q->request_id, code, msg);
}

/* Hands a decoded operation (taking ownership of q) to the reader pool or the writer. A
 * read-only connection's writes - whatever VD_REQUEST_MAP marks a write - stop here. */
static void dispatch(vd_conn *c, vd_proto_request *q, size_t bytes, uint64_t t0)
{
    vd_server *srv = c->srv;
    int write = vd_request_is_write(q->op.kind);
    if (write && c->read_only) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: permission denied: this connection's token is read-only",
                 vd_request_name(q->op.kind));
        answer_error(c, q, vd_proto_code_of(VD_DENIED), msg, t0);
        vd_proto_request_free(q);
        return;
    }
    vd_job *j = vd_calloc(1, sizeof *j);
    if (!j) {
        answer_error(c, q, VD_CODE_RESOURCE_EXHAUSTED, "server out of memory", t0);
        vd_proto_request_free(q);
        return;
    }
    j->start_ns = t0;
    j->conn = c;
    j->req = q;
    j->request_id = q->request_id;
    j->kind = q->op.kind;
    j->req_bytes = bytes;
    c->inflight++;
    c->inflight_bytes += bytes;
    srv->inflight_total++;
    srv->inflight_bytes_total += bytes;
    vd_jobq_push(write ? &srv->writeq : &srv->readq, j);
}

static void conn_frame(vd_conn *c, const uint8_t *body, uint32_t len)
{
    vd_server *srv = c->srv;
    vd_proto_request *q = NULL;
    vd_err err;
    char msg[256];
    uint64_t t0 = vd_now_ns();
    atomic_fetch_add(&srv->requests_total, 1);
    vd_status s = vd_proto_request_decode(body, len, &q, &err);
    if (!q) {
        conn_fail(c, 0, vd_proto_code_of(s), err.msg);
        return;
    }
    if (q->is_hello) {
        answer_hello(c, q, t0);
    } else if (!c->hello_ok) {
        refuse_before_hello(c, q);
    } else if (s != VD_OK) {
        answer_error(c, q, vd_proto_code_of(s), err.msg, t0);
    } else if (q->op.kind == VD_REQ_NONE) {
        snprintf(msg, sizeof msg,
                 "request %" PRIu64 " names no operation (unknown to protocol version %u)",
                 q->request_id, VD_PROTOCOL_VERSION);
        answer_error(c, q, VD_CODE_UNIMPLEMENTED, msg, t0);
    } else {
        dispatch(c, q, len, t0);
        return;
    }
    vd_proto_request_free(q);
}

/* Dispatches buffered frames until none is complete, the connection closes, or a limit
 * pauses it. */
static void conn_process(vd_conn *c)
{
    while (!c->closing && !c->paused) {
        if (conn_over_limits(c)) {
            conn_pause(c);
            return;
        }
        const uint8_t *f = NULL;
        uint32_t len = 0;
        vd_err err;
        vd_status s = vd_frame_next(c->dec, &f, &len, &err);
        if (s != VD_OK) {
            conn_fail(c, 0, vd_proto_code_of(s), err.msg);
            return;
        }
        if (!f) return;
        conn_frame(c, f, len);
    }
}

/* ---- TLS ------------------------------------------------------------------------------------ */

static void conn_tls_up(vd_conn *c)
{
    char desc[96];
    c->tls_up = 1;
    atomic_fetch_add(&c->srv->metrics.tls_handshakes, 1);
    vd_log(VD_LOG_DEBUG, "connection %" PRIu64 " from %s: %s", c->id, c->peer,
           vd_tls_describe(c->tls, desc, sizeof desc));
    if (c->refuse_code != VD_CODE_OK) conn_fail(c, 0, c->refuse_code, c->refuse_msg);
}

/* The session ended on its side: the peer's close_notify, a failure, or no TLS at all. */
static void conn_tls_end(vd_conn *c, vd_tls_rc rc, const vd_err *err)
{
    vd_server *srv = c->srv;
    if (rc == VD_TLS_CLOSED) { /* like EOF: answer what was sent, then close */
        c->eof = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
        conn_process(c);
        conn_finish_if_eof(c);
        return;
    }
    atomic_fetch_add(&srv->metrics.tls_failures, 1);
    if (rc == VD_TLS_NOT_TLS) {
        /* A vectord client speaking plain TCP: tell it in its own terms, then close. */
        client_log(srv, VD_LOG_WARN,
                   "connection %" PRIu64 " from %s: not a TLS handshake (a plain-text "
                   "client on a TLS port?); closing",
                   c->id, c->peer);
        size_t len = 0;
        uint8_t *f = vd_proto_error_frame(0, VD_CODE_FAILED_PRECONDITION,
                                          "this port requires TLS; reconnect with TLS", &len);
        atomic_fetch_add(&srv->errors_total, 1);
        if (f) conn_write(c, f, len);
        conn_close_graceful(c);
        return;
    }
    client_log(srv, VD_LOG_WARN, "connection %" PRIu64 " from %s: TLS %s: %s; closing", c->id,
               c->peer, c->tls_up ? "failed" : "handshake failed", err->msg);
    conn_tls_flush(c); /* the alert telling the peer why */
    conn_close_graceful(c);
}

/* Decrypts the n bytes of ciphertext in srv->tls_in into the frame decoder, advancing the
 * handshake. Returns -1 when the connection is closing (or closed) because of it. */
static int conn_tls_input(vd_conn *c, size_t n)
{
    vd_err err;
    if (vd_tls_feed(c->tls, c->srv->tls_in, n, &err) != VD_OK) {
        conn_close_now(c);
        return -1;
    }
    for (;;) {
        uint8_t *p = NULL;
        size_t cap = 0, got = 0;
        if (vd_frame_reserve(c->dec, READ_CHUNK, &p, &cap, NULL) != VD_OK) {
            conn_close_now(c);
            return -1;
        }
        vd_tls_rc rc = vd_tls_read(c->tls, p, cap, &got, &err);
        if (rc == VD_TLS_DATA) {
            vd_frame_commit(c->dec, got);
            continue;
        }
        if (rc == VD_TLS_WANT) break;
        conn_tls_end(c, rc, &err);
        return -1;
    }
    conn_tls_flush(c); /* handshake messages */
    if (!c->tls_up && vd_tls_established(c->tls)) conn_tls_up(c);
    return c->closing ? -1 : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    vd_conn *c = s->data;
    (void)buf;
    if (c->closing) {
        if (nread < 0) conn_close_now(c);
        return;
    }
    if (nread > 0) {
        c->last_active_ns = vd_now_ns();
        if (!c->tls)
            vd_frame_commit(c->dec, (size_t)nread);
        else if (conn_tls_input(c, (size_t)nread) != 0)
            return;
        conn_process(c);
        return;
    }
    if (nread == 0) return; /* EAGAIN */
    if (nread == UV_EOF && vd_frame_pending(c->dec) == 0) {
        /* Half-close (shutdown(SHUT_WR) after the last request, or plain close): answers to
         * what was sent still go out, then the connection closes. */
        c->eof = 1;
        uv_read_stop(s);
        conn_finish_if_eof(c);
        return;
    }
    if (nread == UV_ENOBUFS) {
        conn_fail(c, 0, VD_CODE_RESOURCE_EXHAUSTED,
                  "server out of memory for this connection's frame");
        return;
    }
    size_t pending = vd_frame_pending(c->dec);
    if (pending)
        client_log(c->srv, VD_LOG_WARN,
                   "connection %" PRIu64 " from %s closed mid-frame (%zu bytes of a truncated "
                   "frame discarded)",
                   c->id, c->peer, pending);
    else if (nread != UV_EOF)
        vd_log(VD_LOG_DEBUG, "connection %" PRIu64 ": read failed: %s", c->id,
               uv_strerror((int)nread));
    /* Reset, or closed mid-frame: answers still being computed are dropped. */
    conn_close_now(c);
}

/* ---- accepting ------------------------------------------------------------------------------- */

static void peer_name(vd_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return;
    char host[48] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(c->peer, sizeof c->peer, "[%s]:%d", host, port);
    }
}

/* A connection refused at accept gets one error (request_id 0), then a close; on a TLS port
 * only after its handshake, since a refusal can only travel inside the session. */
static void conn_refuse(vd_conn *c, vd_refusal why, vd_code code, const char *msg)
{
    atomic_fetch_add(&c->srv->metrics.refused[why], 1);
    if (!c->tls) {
        conn_fail(c, 0, code, msg);
        return;
    }
    c->refuse_code = code;
    snprintf(c->refuse_msg, sizeof c->refuse_msg, "%s", msg);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close_now(c);
}

static void on_connection(uv_stream_t *listener, int status);

static void on_accept_retry(uv_timer_t *t)
{
    vd_server *srv = t->data;
    if (!srv->stopping) on_connection((uv_stream_t *)&srv->listener, 0);
}

static void on_connection(uv_stream_t *listener, int status)
{
    vd_server *srv = listener->data;
    if (status < 0) {
        client_log(srv, VD_LOG_WARN, "accept failed: %s", uv_strerror(status));
        return;
    }
    vd_conn *c = vd_calloc(1, sizeof *c);
    if (!c) {
        /* libuv holds the connection until we accept it and watches the listener no more
         * meanwhile: returning would wedge every future accept. Try again shortly. */
        vd_log(VD_LOG_ERROR, "out of memory accepting a connection; retrying in %u ms",
               ACCEPT_RETRY_MS);
        uv_timer_start(&srv->accept_timer, on_accept_retry, ACCEPT_RETRY_MS, 0);
        return;
    }
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    c->last_active_ns = vd_now_ns();
    uv_tcp_init(&srv->loop, &c->tcp);
    c->tcp.data = c;
    c->next = srv->conns;
    if (srv->conns) srv->conns->prev = c;
    srv->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close_now(c);
        return;
    }
    peer_name(c);
    uv_tcp_nodelay(&c->tcp, 1);
    c->accepted_ns = vd_now_ns();
    if (vd_frame_decoder_new(srv->cfg.limits.max_frame_bytes, &c->dec, NULL) != VD_OK ||
        (srv->tls && vd_tls_session_new(srv->tls, &c->tls, NULL) != VD_OK)) {
        conn_close_now(c);
        return;
    }
    if (srv->stopping) {
        conn_refuse(c, VD_REFUSED_SHUTTING_DOWN, VD_CODE_UNAVAILABLE, "server is shutting down");
        return;
    }
    if (srv->n_conns >= srv->cfg.limits.max_connections) {
        char msg[96];
        snprintf(msg, sizeof msg, "too many connections (max_connections %" PRIu32 ")",
                 srv->cfg.limits.max_connections);
        conn_refuse(c, VD_REFUSED_MAX_CONNECTIONS, VD_CODE_RESOURCE_EXHAUSTED, msg);
        return;
    }
    c->counted = 1;
    srv->n_conns++;
    atomic_fetch_add(&srv->connections, 1);
    atomic_fetch_add(&srv->metrics.connections_accepted, 1);
    vd_log(VD_LOG_DEBUG, "connection %" PRIu64 " from %s", c->id, c->peer);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close_now(c);
}

/* ---- completions from workers ------------------------------------------------------------- */

static void on_done(uv_async_t *a)
{
    vd_server *srv = a->data;
    vd_job *list = vd_jobq_take_all(&srv->doneq);
    while (list) {
        vd_job *j = list;
        list = j->next;
        vd_conn *c = j->conn;
        c->inflight--;
        c->inflight_bytes -= j->req_bytes;
        srv->inflight_total--;
        srv->inflight_bytes_total -= j->req_bytes;
        if (!c->closing) {
            conn_send(c, j->frame, j->frame_len);
            j->frame = NULL;
            conn_maybe_resume(c);
            conn_finish_if_eof(c);
        } else {
            conn_free_if_done(c);
        }
        vd_free(j->frame);
        vd_free(j);
    }
    stop_check(srv);
}

/* ---- idle sweep ------------------------------------------------------------------------------ */

static void on_sweep(uv_timer_t *t)
{
    vd_server *srv = t->data;
    uint64_t now = vd_now_ns();
    uint64_t idle_ns = (uint64_t)srv->cfg.limits.idle_timeout_ms * 1000000u;
    for (vd_conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (c->closing) {
            if (now - c->closing_since_ns > (uint64_t)CLOSE_GRACE_MS * 1000000u)
                conn_close_now(c); /* did not take its last responses in time */
            continue;
        }
        if (c->tls && !c->tls_up && now - c->accepted_ns > (uint64_t)TLS_HANDSHAKE_MS * 1000000u) {
            client_log(srv, VD_LOG_WARN,
                       "connection %" PRIu64 " from %s: no TLS handshake within %u ms; closing",
                       c->id, c->peer, TLS_HANDSHAKE_MS);
            atomic_fetch_add(&srv->metrics.tls_failures, 1);
            conn_close_now(c);
            continue;
        }
        /* A connection waiting for an answer is not idle. One whose client has not taken a
         * single byte of its answers for the idle timeout is stuck: it cannot be told why,
         * so it is cut. */
        if (idle_ns && c->inflight == 0 && c->out_bytes > 0 && now - c->last_active_ns > idle_ns) {
            client_log(srv, VD_LOG_WARN,
                       "connection %" PRIu64 " from %s has not read its "
                       "responses (%zu bytes) for %" PRIu32 " ms; closing",
                       c->id, c->peer, c->out_bytes, srv->cfg.limits.idle_timeout_ms);
            conn_close_now(c);
            continue;
        }
        if (idle_ns && c->inflight == 0 && c->out_bytes == 0 && now - c->last_active_ns > idle_ns) {
            char msg[128];
            snprintf(msg, sizeof msg, "connection idle for more than %" PRIu32 " ms; closing",
                     srv->cfg.limits.idle_timeout_ms);
            client_log(srv, VD_LOG_INFO,
                       "connection %" PRIu64 " from %s idle for %" PRIu32 " ms; closing", c->id,
                       c->peer, srv->cfg.limits.idle_timeout_ms);
            conn_send_error(c, 0, VD_CODE_UNAVAILABLE, msg);
            conn_close_graceful(c);
        }
    }
}

/* ---- shutdown -------------------------------------------------------------------------------- */

static void close_cb_nop(uv_handle_t *h)
{
    (void)h;
}

static void close_loop_handles(vd_server *srv)
{
    if (srv->closing_handles) return;
    srv->closing_handles = 1;
    uv_close((uv_handle_t *)&srv->done_async, close_cb_nop);
    uv_close((uv_handle_t *)&srv->sweep_timer, close_cb_nop);
    uv_close((uv_handle_t *)&srv->stop_timer, close_cb_nop);
    uv_close((uv_handle_t *)&srv->accept_timer, close_cb_nop);
    uv_close((uv_handle_t *)&srv->sig_int, close_cb_nop);
    uv_close((uv_handle_t *)&srv->sig_term, close_cb_nop);
}

/* Once every job has come back, flush and close every connection; once they are all closed,
 * close the loop's own handles so uv_run returns. */
static void stop_check(vd_server *srv)
{
    if (!srv->stopping || srv->inflight_total > 0) return;
    for (vd_conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        conn_close_graceful(c);
    }
    if (!srv->conns) close_loop_handles(srv);
}

static void on_stop_timer(uv_timer_t *t)
{
    vd_server *srv = t->data;
    if (srv->inflight_total > 0) {
        vd_log(VD_LOG_INFO, "shutdown: still waiting for %" PRIu64 " request(s) in progress",
               srv->inflight_total);
        uv_timer_start(&srv->stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
        return;
    }
    for (vd_conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        conn_close_now(c);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    vd_server *srv = s->data;
    if (srv->stopping) {
        vd_log(VD_LOG_WARN, "second signal %d: exiting without waiting", signum);
        _exit(1);
    }
    srv->stopping = 1;
    srv->stop_signal = signum;
    vd_metrics_set_state(&srv->metrics, VD_STATE_STOPPING);
    vd_log(VD_LOG_INFO,
           "%s: shutting down (no new connections; finishing %" PRIu64 " request(s) in progress)",
           signum == SIGINT ? "SIGINT" : "SIGTERM", srv->inflight_total);
    uv_close((uv_handle_t *)&srv->listener, NULL);
    for (vd_conn *c = srv->conns; c; c = c->next)
        if (!c->closing) uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_start(&srv->stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
    stop_check(srv);
}

/* ---- setup ----------------------------------------------------------------------------------- */

static int start_listening(vd_server *srv)
{
    const vd_server_config *cfg = &srv->cfg;
    struct sockaddr_storage ss;
    int rc;
    if (strchr(cfg->host, ':'))
        rc = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&ss);
    if (rc != 0) {
        vd_log(VD_LOG_ERROR, "--listen: '%s' is not an IP address", cfg->host);
        return -1;
    }
    uv_tcp_init(&srv->loop, &srv->listener);
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (rc != 0) {
        vd_log(VD_LOG_ERROR, "cannot listen on %s:%d: %s", cfg->host, cfg->port, uv_strerror(rc));
        return -1;
    }
    int len = sizeof ss;
    int port = cfg->port;
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) == 0)
        port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                             : ((struct sockaddr_in6 *)&ss)->sin6_port);
    vd_log(VD_LOG_INFO, "listening on %s%s%s:%d (max %" PRIu32 " connections, %s%s, %s)",
           strchr(cfg->host, ':') ? "[" : "", cfg->host, strchr(cfg->host, ':') ? "]" : "", port,
           cfg->limits.max_connections,
           vd_auth_required(srv->auth) ? "token required" : "no token",
           cfg->read_token_file ? " or the read-only token" : "",
           !srv->tls                               ? "plain TCP"
           : vd_tls_requires_client_cert(srv->tls) ? "TLS with client certificates"
                                                   : "TLS");
    return 0;
}

static void log_collections(vd_server *srv)
{
    vd_collection_info *list = NULL;
    size_t n = 0;
    if (vd_store_list(srv->store, &list, &n, NULL) != VD_OK) return;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += list[i].count;
        vd_log(VD_LOG_INFO,
               "collection %s: %" PRIu64 " points, dim %" PRIu32 ", %s, m %" PRIu32
               ", ef_construction %" PRIu32 ", ef_search %" PRIu32,
               list[i].params.name, list[i].count, list[i].params.dim,
               vd_metric_name(list[i].params.metric), list[i].params.m,
               list[i].params.ef_construction, list[i].params.ef_search);
    }
    vd_log(VD_LOG_INFO, "%zu collection(s), %" PRIu64 " points loaded", n, total);
    vd_free(list);
}

typedef struct load_watch {
    vd_server *srv;
    uint64_t last_ns;
} load_watch;

/* The load's progress for /metrics at every step; a log line at most every 2 s (a million
 * points load in about one), and the last. */
static void on_load_progress(void *ctx, size_t done, size_t total)
{
    load_watch *w = ctx;
    uint64_t now = vd_now_ns();
    atomic_store(&w->srv->metrics.load_total, total);
    atomic_store(&w->srv->metrics.load_done, done);
    if (w->srv->cfg.test_load_pause_ms && done < total) /* tests: a slow disk */
        usleep(w->srv->cfg.test_load_pause_ms * 1000u);
    if (total == 0 || (done < total && now - w->last_ns < 2000000000ull)) return;
    w->last_ns = now;
    vd_log(VD_LOG_INFO, "loading: %zu / %zu points", done, total);
}

/* Opens the data directory (logging the load) and the engine over it. */
static int open_data(vd_server *srv)
{
    const vd_server_config *cfg = &srv->cfg;
    vd_store_options opt = {0};
    opt.create = 1;
    opt.n_threads = cfg->threads;
    vd_err err;
    uint64_t t0 = vd_now_ns();
    load_watch watch = {.srv = srv, .last_ns = t0};
    opt.load_progress = on_load_progress;
    opt.load_progress_ctx = &watch;
    if (vd_store_open(cfg->data_dir, &opt, &srv->store, &err) != VD_OK) {
        vd_log(VD_LOG_ERROR, "cannot open data directory %s: %s", cfg->data_dir, err.msg);
        return -1;
    }
    vd_log(VD_LOG_INFO, "opened %s in %.2f s", cfg->data_dir, (double)(vd_now_ns() - t0) / 1e9);
    log_collections(srv);
    /* The engine enforces the limits the Hello reply announces. */
    vd_engine_limits lim = {.max_batch = cfg->limits.max_batch,
                            .max_k = cfg->limits.max_k,
                            .max_dim = cfg->limits.max_dim,
                            .max_response_bytes = cfg->limits.max_frame_bytes};
    if (vd_engine_new(srv->store, &lim, &srv->engine, &err) != VD_OK) {
        vd_log(VD_LOG_ERROR, "%s", err.msg);
        return -1;
    }
    atomic_store_explicit(&srv->published_store, srv->store, memory_order_release);
    return 0;
}

/* The loop's own handles: the done wake-up, the idle sweep, the shutdown timer, signals. */
static void init_loop_handles(vd_server *srv)
{
    uint32_t idle_ms = srv->cfg.limits.idle_timeout_ms;
    uv_async_init(&srv->loop, &srv->done_async, on_done);
    srv->done_async.data = srv;
    uv_timer_init(&srv->loop, &srv->sweep_timer);
    srv->sweep_timer.data = srv;
    uv_timer_init(&srv->loop, &srv->stop_timer);
    srv->stop_timer.data = srv;
    uv_timer_init(&srv->loop, &srv->accept_timer);
    srv->accept_timer.data = srv;
    uv_signal_init(&srv->loop, &srv->sig_int);
    uv_signal_init(&srv->loop, &srv->sig_term);
    srv->sig_int.data = srv->sig_term.data = srv;
    uv_signal_start(&srv->sig_int, on_signal, SIGINT);
    uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
    uint64_t sweep_ms = 1000;
    if (idle_ms && idle_ms / 4 < sweep_ms) sweep_ms = idle_ms / 4 ? idle_ms / 4 : 1;
    uv_timer_start(&srv->sweep_timer, on_sweep, sweep_ms, sweep_ms);
}

/* The tokens and the TLS context, each file refused with a line naming it. */
static int start_security(vd_server *srv)
{
    const vd_server_config *cfg = &srv->cfg;
    vd_err err;
    if (vd_auth_load(cfg->token_file, cfg->read_token_file, &srv->auth, &err) != VD_OK ||
        (cfg->tls_cert &&
         vd_tls_new(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca, &srv->tls, &err) != VD_OK)) {
        vd_log(VD_LOG_ERROR, "%s", err.msg);
        return -1;
    }
    return 0;
}

static int start_http(vd_server *srv)
{
    vd_err err;
    if (srv->cfg.metrics_port < 0) return 0;
    if (vd_http_start(srv, srv->cfg.metrics_host, srv->cfg.metrics_port, &srv->http, &err) !=
        VD_OK) {
        vd_log(VD_LOG_ERROR, "%s", err.msg);
        return -1;
    }
    return 0;
}

/* cfg.threads readers (at least one must start) and the writer. */
static int start_workers(vd_server *srv)
{
    srv->readers = vd_calloc(srv->cfg.threads, sizeof *srv->readers);
    if (!srv->readers) return -1;
    for (uint32_t i = 0; i < srv->cfg.threads; i++) {
        if (pthread_create(&srv->readers[i], NULL, vd_reader__main, srv) != 0) break;
        srv->n_readers++;
    }
    if (srv->n_readers == 0 || pthread_create(&srv->writer, NULL, vd_writer__main, srv) != 0) {
        vd_log(VD_LOG_ERROR, "cannot start worker threads");
        return -1;
    }
    srv->writer_started = 1;
    return 0;
}

static void stop_workers(vd_server *srv)
{
    vd_jobq_close(&srv->readq);
    vd_jobq_close(&srv->writeq);
    for (uint32_t i = 0; i < srv->n_readers; i++)
        pthread_join(srv->readers[i], NULL);
    if (srv->writer_started) pthread_join(srv->writer, NULL);
}

int vd_server_run(const vd_server_config *cfg)
{
    vd_server *srv = vd_calloc(1, sizeof *srv);
    int status = 1, loop_ok = 0, n_queues = 0;
    if (!srv) {
        vd_log(VD_LOG_ERROR, "out of memory");
        return 1;
    }
    vd_jobq *queues[] = {&srv->readq, &srv->writeq, &srv->doneq};
    srv->cfg = *cfg;
    srv->start_ns = vd_now_ns();
    vd_metrics_init(&srv->metrics);
    vd_log_set_level(cfg->log_level);
    vd_log_set_format(cfg->log_format);
    signal(SIGPIPE, SIG_IGN);
    vd_log(VD_LOG_INFO, "vectord %s starting: data %s, %" PRIu32 " reader threads",
           VD_VERSION_STRING, cfg->data_dir, cfg->threads);

    /* Tokens and certificates first: a bad file fails in milliseconds, before a long load.
     * The queues exist before the HTTP endpoint, which reads their lengths. */
    if (start_security(srv) != 0) goto fail;
    for (; n_queues < (int)VD_ARRAY_LEN(queues); n_queues++)
        if (vd_jobq_init(queues[n_queues]) != 0) goto fail;
    if (start_http(srv) != 0) goto fail;
    vd_metrics_set_state(&srv->metrics, VD_STATE_LOADING);
    if (open_data(srv) != 0) goto fail;
    if (uv_loop_init(&srv->loop) != 0) goto fail;
    loop_ok = 1;
    init_loop_handles(srv);
    if (start_workers(srv) == 0 && start_listening(srv) == 0) {
        vd_metrics_set_state(&srv->metrics, VD_STATE_READY);
        uv_run(&srv->loop, UV_RUN_DEFAULT);
        status = 0;
    } else {
        /* Nothing was accepted: close what was opened and let the loop finish closing it. */
        if (srv->listener.loop && !uv_is_closing((uv_handle_t *)&srv->listener))
            uv_close((uv_handle_t *)&srv->listener, NULL);
        close_loop_handles(srv);
        uv_run(&srv->loop, UV_RUN_DEFAULT);
    }
    stop_workers(srv);
    if (status == 0)
        vd_log(VD_LOG_INFO,
               "stopped: %" PRIu64 " requests served, %" PRIu64 " writes committed in %" PRIu64
               " transactions",
               (uint64_t)atomic_load(&srv->requests_total),
               (uint64_t)atomic_load(&srv->ops_committed),
               (uint64_t)atomic_load(&srv->writes_committed));
fail:
    vd_http_stop(srv->http); /* before the store closes: a scrape reads it */
    vd_engine_free(srv->engine);
    if (srv->store) vd_store_close(srv->store);
    if (loop_ok && uv_loop_close(&srv->loop) != 0)
        vd_log(VD_LOG_WARN, "event loop closed with handles still open");
    while (n_queues > 0)
        vd_jobq_destroy(queues[--n_queues]);
    vd_free(srv->readers);
    vd_auth_free(srv->auth);
    vd_tls_free(srv->tls);
    vd_free(srv);
    return status;
}
