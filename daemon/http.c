/* daemon/http.c: the monitoring endpoint (--metrics-listen) over GNU libmicrohttpd.
 *
 *   GET /metrics   the Prometheus text format (metrics.c)
 *   GET /healthz   200 "ok" while the process runs (also /livez, Kubernetes' name)
 *   GET /readyz    200 "ready" once the data directory is loaded and the data port listens;
 *                  503 "loading" / "starting" / "stopping" otherwise
 *
 * The endpoint starts before the data directory is opened, so a load of millions of points
 * is observable (its progress in /metrics, 503 on /readyz) and an orchestrator can tell "up
 * but not ready" from "down". It is a separate port from the data port on purpose: the data
 * port speaks only the framed protocol (and TLS with --tls-cert), and scrapers need no token.
 * Anything else is 404, methods other than GET/HEAD 405.
 *
 * Threads: libmicrohttpd's internal polling thread calls the handler; it reads atomics and
 * the store's any-thread calls only (metrics_int.h). A connection limit and a timeout keep a
 * misbehaving scraper from holding threads or sockets.
 * Rejected: serving HTTP on the libuv loop (a second protocol parser of our own on the data
 * path); a thread per connection (MHD_USE_THREAD_PER_CONNECTION: scrapes are tiny). */
#include "daemon/server_int.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>

#define HTTP_CONNECTIONS 32
#define HTTP_TIMEOUT_S 10

struct vd_http {
    struct MHD_Daemon *mhd;
};

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                  const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static void free_text(void *p)
{
    vd_free(p);
}

static enum MHD_Result reply_metrics(vd_server *srv, struct MHD_Connection *conn)
{
    vd_text t;
    if (vd_metrics_render(srv, &t) != VD_OK)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", "text/plain");
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback(t.len, t.p, free_text);
    if (!r) {
        vd_free(t.p);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    vd_server *srv = cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    if (*upload_size) { /* a body nobody asked for: drop it */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n", "text/plain");
    if (!strcmp(url, "/metrics")) return reply_metrics(srv, conn);
    if (!strcmp(url, "/healthz") || !strcmp(url, "/livez"))
        return reply_text(conn, MHD_HTTP_OK, "ok\n", "text/plain");
    if (!strcmp(url, "/readyz")) {
        static const char *const why[] = {"starting\n", "loading\n", "ready\n", "stopping\n"};
        vd_server_state st = vd_metrics_state(&srv->metrics);
        return reply_text(conn, st == VD_STATE_READY ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                          why[st & 3], "text/plain");
    }
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n",
                      "text/plain");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    vd_log(VD_LOG_WARN, "metrics endpoint: %s", msg);
}

vd_status vd_http_start(vd_server *srv, const char *host, int port, vd_http **out, vd_err *err)
{
    *out = NULL;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int v6 = strchr(host, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) goto bad_host;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) goto bad_host;
    }
    vd_http *h = vd_calloc(1, sizeof *h);
    if (!h) return vd_err_set(err, VD_NOMEM, "out of memory starting the metrics endpoint");
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    h->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, srv,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first: all of it */
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
                              MHD_OPTION_END);
    if (!h->mhd) {
        vd_free(h);
        return vd_err_set(err, VD_UNAVAILABLE, "--metrics-listen: cannot listen on %s%s%s:%d",
                          v6 ? "[" : "", host, v6 ? "]" : "", port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    vd_log(VD_LOG_INFO, "metrics on http://%s%s%s:%u/metrics (also /healthz, /readyz)",
           v6 ? "[" : "", host, v6 ? "]" : "", info ? info->port : (unsigned)port);
    *out = h;
    return VD_OK;
bad_host:
    return vd_err_set(err, VD_INVALID, "--metrics-listen: '%s' is not an IP address", host);
}

void vd_http_stop(vd_http *h)
{
    if (!h) return;
    MHD_stop_daemon(h->mhd);
    vd_free(h);
}
