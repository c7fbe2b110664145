/* daemon/reply.c: response frames, built on whichever thread answered the request.
 *
 * Packing happens on the worker, not the loop thread, so the loop only copies ready frames
 * to sockets. Every response passes the max_frame check: a client announced that limit and
 * may rely on it, so a result too large becomes a RESOURCE_EXHAUSTED error naming the size
 * rather than a frame the client would refuse. */
#include "daemon/server_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

static void set_frame(vd_server *srv, vd_job *j, uint8_t *frame, size_t len, int failed)
{
    vd_free(j->frame);
    j->frame = frame;
    j->frame_len = frame ? len : 0;
    j->failed = failed;
    if (failed) atomic_fetch_add(&srv->errors_total, 1);
}

void vd_reply_error(vd_server *srv, vd_job *j, vd_pb_code code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = 0;
    uint8_t *f = vd_proto_error_frame(j->request_id, code, msg, &len);
    set_frame(srv, j, f, len, code != VECTORD__V1__CODE__OK);
    vd_log(VD_LOG_DEBUG, "request %" PRIu64 " (%s): %s: %s", j->request_id,
           j->req ? vd_proto_op_name(j->req->op_case) : "?", vd_proto_code_name(code), msg);
}

void vd_reply_status(vd_server *srv, vd_job *j, const vd_err *err)
{
    vd_reply_error(srv, j, vd_proto_code_of(err->code), "%s", err->msg);
}

void vd_reply(vd_server *srv, vd_job *j, Vectord__V1__Response *r)
{
    Vectord__V1__Status ok = VECTORD__V1__STATUS__INIT;
    if (!r->status) r->status = &ok;
    r->request_id = j->request_id;
    uint8_t *f = NULL;
    size_t len = 0;
    vd_err err;
    if (vd_proto_response_frame(r, srv->cfg.limits.max_frame_bytes, &f, &len, &err) != VD_OK) {
        vd_reply_status(srv, j, &err);
        return;
    }
    set_frame(srv, j, f, len, r->status->code != VECTORD__V1__CODE__OK);
}

Vectord__V1__Metric vd_metric_to_wire(vd_metric m)
{
    switch (m) {
    case VD_METRIC_L2:
        return VECTORD__V1__METRIC__L2;
    case VD_METRIC_COSINE:
        return VECTORD__V1__METRIC__COSINE;
    case VD_METRIC_IP:
        return VECTORD__V1__METRIC__IP;
    }
    return VECTORD__V1__METRIC__METRIC_UNSPECIFIED;
}

int vd_metric_from_wire(Vectord__V1__Metric w, vd_metric *out)
{
    switch (w) {
    case VECTORD__V1__METRIC__L2:
        *out = VD_METRIC_L2;
        return 1;
    case VECTORD__V1__METRIC__COSINE:
        *out = VD_METRIC_COSINE;
        return 1;
    case VECTORD__V1__METRIC__IP:
        *out = VD_METRIC_IP;
        return 1;
    default:
        return 0;
    }
}

/* `out` borrows the name from `in`. */
void vd_info_to_wire(const vd_collection_info *in, Vectord__V1__CollectionInfo *out)
{
    vectord__v1__collection_info__init(out);
    out->name = (char *)in->params.name;
    out->dim = in->params.dim;
    out->metric = vd_metric_to_wire(in->params.metric);
    out->m = in->params.m;
    out->ef_construction = in->params.ef_construction;
    out->ef_search = in->params.ef_search;
    out->count = in->count;
    out->created_unix_s = in->created_unix_s;
    out->bytes_disk = in->bytes_disk;
    out->bytes_memory = in->bytes_memory;
}
