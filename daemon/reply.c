/* daemon/reply.c: a job's response frame, built on whichever thread answered the request.
 *
 * Encoding happens on the worker, not the loop thread, so the loop only copies ready frames
 * to sockets. The codec (proto/) refuses a response over max_frame_bytes - a client was told
 * that limit and may rely on it - and that refusal is sent instead, as the request's
 * RESOURCE_EXHAUSTED error. Stats results get the server's own counters here, the only
 * place that knows both the engine's numbers and the server's. */
#include "daemon/server_int.h"

#include <inttypes.h>

#include "daemon/daemon_int.h"

static void set_frame(vd_server *srv, vd_job *j, uint8_t *frame, size_t len, int failed)
{
    vd_free(j->frame);
    j->frame = frame;
    j->frame_len = frame ? len : 0;
    if (failed) atomic_fetch_add(&srv->errors_total, 1);
}

void vd_reply_status(vd_server *srv, vd_job *j, vd_status s, const vd_err *err)
{
    vd_code code = vd_proto_code_of(s);
    size_t len = 0;
    uint8_t *f = vd_proto_error_frame(j->request_id, code, err->msg, &len);
    set_frame(srv, j, f, len, 1);
    vd_log(VD_LOG_DEBUG, "request %" PRIu64 " (%s): %s: %s", j->request_id,
           vd_request_name(j->kind), vd_proto_code_name(code), err->msg);
}

static void server_stats(vd_server *srv, vd_server_stats *st)
{
    st->server_version = VD_VERSION_STRING;
    st->uptime_s = (vd_now_ns() - srv->start_ns) / 1000000000u;
    st->connections = (uint32_t)atomic_load(&srv->connections);
    st->requests_total = atomic_load(&srv->requests_total);
    st->errors_total = atomic_load(&srv->errors_total);
    st->writes_committed = atomic_load(&srv->writes_committed);
    st->ops_committed = atomic_load(&srv->ops_committed);
    st->reader_threads = srv->n_readers;
}

void vd_reply_result(vd_server *srv, vd_job *j, vd_result *res)
{
    vd_server_stats st = {0};
    if (res->kind == VD_REQ_STATS) server_stats(srv, &st);
    uint8_t *f = NULL;
    size_t len = 0;
    vd_err err;
    vd_status s = vd_proto_encode_result(j->request_id, res, &st, srv->cfg.limits.max_frame_bytes,
                                         &f, &len, &err);
    vd_result_free(res);
    if (s != VD_OK) {
        vd_reply_status(srv, j, s, &err);
        return;
    }
    set_frame(srv, j, f, len, 0);
}
