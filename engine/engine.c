/* engine/engine.c: the engine object and what every operation shares - the limits, the
 * batch and response-size checks, the one rule for messages, and releasing results.
 *
 * The engine is a store pointer and a copy of the limits; it holds nothing that changes,
 * so any number of threads may use it at once and nothing here locks. Limits are checked
 * here, not in the codec: the embedded module reaches the engine without proto/, and the
 * server's limits are the engine's limits (the Hello reply announces the same numbers).
 *
 * Messages: every error of a request names its operation first. Rather than each call site
 * remembering the prefix, every operation ends through vd_engine__fail, which adds
 * "<op>: " unless the message already begins with the op's name (storage says "upsert into
 * docs: ...", which reads better than a second prefix). */
#include "engine/engine_int.h"

#include <stdio.h>

vd_status vd_engine_new(vd_store *st, const vd_engine_limits *limits, vd_engine **out, vd_err *err)
{
    *out = NULL;
    if (!st) return vd_err_set(err, VD_INVALID, "engine: no store");
    vd_engine *e = vd_calloc(1, sizeof *e);
    if (!e) return vd_err_set(err, VD_NOMEM, "engine: out of memory");
    e->store = st;
    if (limits) e->limits = *limits;
    if (e->limits.max_k == 0 || e->limits.max_k > VD_K_MAX) e->limits.max_k = VD_K_MAX;
    if (e->limits.max_dim == 0 || e->limits.max_dim > VD_DIM_MAX) e->limits.max_dim = VD_DIM_MAX;
    *out = e;
    return VD_OK;
}

void vd_engine_free(vd_engine *e)
{
    vd_free(e);
}

void vd_engine_set_parallel(vd_engine *e, vd_parallel_fn fn, void *host, size_t width)
{
    e->par.fn = fn;
    e->par.host = host;
    e->par.width = fn ? width : 0;
}

const vd_engine_limits *vd_engine_limits_of(const vd_engine *e)
{
    return &e->limits;
}

vd_status vd_engine__fail(vd_status s, vd_err *err, vd_request_kind k)
{
    if (!err) return s;
    const char *name = vd_request_name(k);
    if (strncmp(err->msg, name, strlen(name)) != 0) vd_err_prefix(err, "%s", name);
    return s;
}

vd_status vd_engine__check_batch(const vd_engine *e, vd_request_kind k, size_t n, vd_err *err)
{
    if (n == 0) return vd_err_set(err, VD_INVALID, "%s: empty batch (no ids)", vd_request_name(k));
    if (e->limits.max_batch && n > e->limits.max_batch)
        return vd_err_set(err, VD_INVALID, "%s: %zu ids exceed max_batch %" PRIu32,
                          vd_request_name(k), n, e->limits.max_batch);
    return VD_OK;
}

vd_status vd_engine__check_response(const vd_engine *e, vd_request_kind k, uint64_t bytes,
                                    vd_err *err)
{
    uint64_t max = e->limits.max_response_bytes;
    if (max == 0 || bytes + VD_ENGINE__RESPONSE_SLACK <= max) return VD_OK;
    return vd_engine_err_too_big(err, k, bytes, max);
}

void vd_result_free(vd_result *r)
{
    switch (r->kind) {
    case VD_REQ_SEARCH:
        vd_free(r->search.ids);
        vd_free(r->search.distances);
        vd_free(r->search.payloads);
        vd_free(r->search.str_ids);
        vd_free(r->search.str_id_ends);
        vd_free(r->search.explain);
        break;
    case VD_REQ_SCROLL:
        vd_free(r->scroll.ids);
        vd_free(r->scroll.str_ids);
        vd_free(r->scroll.str_id_ends);
        vd_free(r->scroll.vectors);
        vd_free(r->scroll.payloads);
        vd_free(r->scroll.next_cursor);
        break;
    case VD_REQ_GET:
        vd_free(r->get.found);
        vd_free(r->get.vectors);
        vd_free(r->get.payloads);
        break;
    case VD_REQ_LIST:
        vd_free(r->list.items);
        break;
    default:
        break;
    }
    vd_snapshot_end(r->snapshot);
    memset(r, 0, sizeof *r);
}
