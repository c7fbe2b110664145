/* daemon/reply.c: a job's response frame, built on whichever thread answered the request.
 *
 * Encoding happens on the worker, not the loop thread, so the loop only copies ready frames
 * to sockets. The codec (proto/) refuses a response over max_frame_bytes - a client was told
 * that limit and may rely on it - and that refusal is sent instead, as the request's
 * RESOURCE_EXHAUSTED error. Stats results get the server's own counters here, the only
 * place that knows both the engine's numbers and the server's.
 *
 * Every worker-answered request passes set_frame exactly once, with its request still
 * attached, so that is where it is measured: its operation, code and latency (decode to
 * response ready) go to the metrics, and with --slow-query-ms a slow one is logged with what
 * it asked for (collection, k, ef, batch size). Requests the loop thread answers itself
 * (Hello, refusals) are counted in server.c. */
#include "daemon/server_int.h"

#include <inttypes.h>
#include <stdio.h>

#include "daemon/daemon_int.h"

/* What a request asked for, for the slow-request log: "search docs: 64 queries, k 10, ef 100".
 * Kinds without a case here are named by their operation alone. */
static void describe(const vd_request *r, char *buf, size_t cap)
{
    const char *op = vd_request_name(r->kind);
    switch (r->kind) {
    case VD_REQ_SEARCH: {
        const vd_search_req *q = &r->search;
        if (q->dim) /* clients older than SearchRequest.dim send floats only */
            snprintf(buf, cap, "%s %s: %zu queries, k %" PRIu32 ", ef %" PRIu32, op,
                     q->collection, q->n_floats / q->dim, q->k, q->ef);
        else
            snprintf(buf, cap, "%s %s: %zu query floats, k %" PRIu32 ", ef %" PRIu32, op,
                     q->collection, q->n_floats, q->k, q->ef);
        return;
    }
    case VD_REQ_UPSERT:
        snprintf(buf, cap, "%s %s: %zu points", op, r->upsert.collection, r->upsert.n_ids);
        return;
    case VD_REQ_DELETE:
        snprintf(buf, cap, "%s %s: %zu ids", op, r->del.collection, r->del.n_ids);
        return;
    case VD_REQ_GET:
        snprintf(buf, cap, "%s %s: %zu ids", op, r->get.collection, r->get.n_ids);
        return;
    case VD_REQ_CREATE:
        snprintf(buf, cap, "%s %s", op, r->create.name ? r->create.name : "");
        return;
    case VD_REQ_DROP:
    case VD_REQ_INFO:
    case VD_REQ_COUNT:
        snprintf(buf, cap, "%s %s", op, r->name ? r->name : "");
        return;
    default:
        snprintf(buf, cap, "%s", op);
    }
}

static void set_frame(vd_server *srv, vd_job *j, uint8_t *frame, size_t len, vd_code code)
{
    vd_free(j->frame);
    j->frame = frame;
    j->frame_len = frame ? len : 0;
    if (code != VD_CODE_OK) atomic_fetch_add(&srv->errors_total, 1);
    uint64_t ns = vd_now_ns() - j->start_ns;
    vd_metrics_request(&srv->metrics, j->kind, code, ns);
    uint64_t slow_ns = (uint64_t)srv->cfg.slow_query_ms * 1000000u;
    if (slow_ns && ns >= slow_ns && j->req) {
        char what[256];
        describe(&j->req->op, what, sizeof what);
        atomic_fetch_add(&srv->metrics.slow_requests, 1);
        vd_log(VD_LOG_WARN, "slow request %" PRIu64 ": %s: %s in %.1f ms", j->request_id, what,
               vd_proto_code_name(code), (double)ns / 1e6);
    }
}

void vd_reply_status(vd_server *srv, vd_job *j, vd_status s, const vd_err *err)
{
    vd_code code = vd_proto_code_of(s);
    size_t len = 0;
    uint8_t *f = vd_proto_error_frame(j->request_id, code, err->msg, &len);
    set_frame(srv, j, f, len, code);
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
    if (s != VD_OK && vd_request_is_write(j->kind)) {
        /* The write is committed; an error now would tell the client it failed. With no
         * frame the connection closes: "outcome unknown", the truth, as after a crash. */
        vd_log(VD_LOG_ERROR, "request %" PRIu64 " (%s) is committed but its response could not "
               "be built: %s; closing its connection", j->request_id, vd_request_name(j->kind),
               err.msg);
        set_frame(srv, j, NULL, 0, vd_proto_code_of(s));
        return;
    }
    if (s != VD_OK) {
        vd_reply_status(srv, j, s, &err);
        return;
    }
    set_frame(srv, j, f, len, VD_CODE_OK);
}
