/* engine/write.c: the writes - create, drop, upsert, delete - from one thread at a time.
 *
 * A write goes through three steps so that its caller can group many of them into one LMDB
 * transaction and one sync (group commit; the daemon's writer thread does): prepare checks
 * the request and turns it into a storage vd_op, commit hands a group of ops to
 * vd_store_write, result turns each op's outcome into a result or its own error. Only the
 * writing thread creates or drops collections, so the dim a prepared upsert was checked
 * against cannot change before it commits - provided a create or drop ends its group
 * (vd_write_ends_group), since a collection only shows in vd_store_acquire once committed.
 *
 * What is checked here: the limits (batch size, dims of a new collection), the parameter
 * table (vd_param_resolve), the sizes relating ids, vectors and payloads, and the
 * collection's dim. What the store checks in the transaction (names of existing
 * collections, NaN/Inf, zero vectors under cosine, duplicate ids, JSON, existence) is not
 * repeated; an op it refuses is skipped and reported alone, and a failed commit fails the
 * whole group with nothing changed.
 * Rejected: a write call that commits by itself (an fsync per write: hundreds per second);
 * grouping inside the engine (the caller decides how long to wait and what to batch). */
#include "engine/engine_int.h"

#include <stdio.h>

/* The op's params hold the name in a fixed array, so a name too long to fit must be refused
 * before it is copied, not truncated into some other valid name: check it here. */
static vd_status prepare_create(const vd_engine *e, const vd_create_req *c, vd_op *op, vd_err *err)
{
    vd_status s = vd_name_check(c->name, err);
    if (s != VD_OK) return s;
    const struct {
        vd_param p;
        uint32_t v;
    } checks[] = {{VD_PARAM_DIM, c->dim},
                  {VD_PARAM_M, c->m},
                  {VD_PARAM_EF_CONSTRUCTION, c->ef_construction},
                  {VD_PARAM_EF_SEARCH, c->ef_search}};
    for (size_t i = 0; i < VD_ARRAY_LEN(checks); i++)
        if ((s = vd_param_resolve(checks[i].p, checks[i].v, NULL, err)) != VD_OK) {
            vd_err_prefix(err, "create_collection %s", c->name);
            return s;
        }
    if (c->dim > e->limits.max_dim)
        return vd_err_set(err, VD_INVALID,
                          "create_collection %s: dim %" PRIu32 " is outside 1..%" PRIu32, c->name,
                          c->dim, e->limits.max_dim);
    *op = (vd_op){.kind = VD_OP_CREATE,
                  .params = {.dim = c->dim,
                             .metric = c->metric,
                             .m = c->m,
                             .ef_construction = c->ef_construction,
                             .ef_search = c->ef_search,
                             .quantization = c->quantization}};
    snprintf(op->params.name, sizeof op->params.name, "%s", c->name);
    return VD_OK;
}

/* Payload entries as the store takes them: a pointer and a length per id, NULL = none. */
static vd_status payload_arrays(const vd_upsert_req *u, vd_write *w, vd_err *err)
{
    size_t n = u->n_ids;
    if (u->n_payloads == 0) return VD_OK;
    if (u->n_payloads != n)
        return vd_err_set(err, VD_INVALID,
                          "upsert: %zu payloads for %zu ids (send none, or one per id; "
                          "an empty payload means none)",
                          u->n_payloads, n);
    w->payload_ptrs = vd_malloc(n * sizeof *w->payload_ptrs);
    w->payload_lens = vd_malloc(n * sizeof *w->payload_lens);
    if (!w->payload_ptrs || !w->payload_lens)
        return vd_err_set(err, VD_NOMEM, "upsert: out of memory for %zu payloads", n);
    for (size_t i = 0; i < n; i++) {
        if (u->payloads[i].len > UINT32_MAX)
            return vd_err_set(err, VD_INVALID, "upsert: payload %zu holds %zu bytes, over 4 GiB", i,
                              u->payloads[i].len);
        w->payload_ptrs[i] = u->payloads[i].len ? u->payloads[i].data : NULL;
        w->payload_lens[i] = (uint32_t)u->payloads[i].len;
    }
    return VD_OK;
}

static vd_status prepare_upsert(const vd_engine *e, const vd_upsert_req *u, vd_write *w,
                                vd_err *err)
{
    vd_collection *c = NULL;
    vd_status s = vd_engine__check_batch(e, VD_REQ_UPSERT, u->n_ids, err);
    if (s == VD_OK) s = vd_store_acquire(e->store, u->collection, &c, err);
    if (s != VD_OK) return s;
    uint32_t dim = vd_collection_params_of(c)->dim;
    vd_collection_release(c);
    uint64_t expect = (uint64_t)u->n_ids * dim;
    if (u->dim && u->dim != dim)
        return vd_err_set(err, VD_INVALID,
                          "upsert: vectors have %" PRIu32 " dims, collection %s expects %" PRIu32,
                          u->dim, u->collection, dim);
    if (u->n_floats != expect)
        return vd_err_set(err, VD_INVALID,
                          "upsert: vectors hold %zu bytes, %zu ids x %" PRIu32
                          " dims x 4 bytes = %" PRIu64 " expected (collection %s)",
                          u->n_floats * 4, u->n_ids, dim, expect * 4, u->collection);
    if ((s = payload_arrays(u, w, err)) != VD_OK) return s;
    w->op = (vd_op){.kind = VD_OP_UPSERT,
                    .collection = u->collection,
                    .ids = u->ids,
                    .n = u->n_ids,
                    .vectors = u->vectors,
                    .payloads = w->payload_ptrs,
                    .payload_lens = w->payload_lens};
    return VD_OK;
}

vd_status vd_engine_write_prepare(vd_engine *e, const vd_request *req, vd_write *w, vd_err *err)
{
    vd_status s = VD_OK;
    memset(w, 0, sizeof *w);
    w->kind = req->kind;
    switch (req->kind) {
    case VD_REQ_CREATE:
        s = prepare_create(e, &req->create, &w->op, err);
        break;
    case VD_REQ_DROP:
        w->op = (vd_op){.kind = VD_OP_DROP, .collection = req->name};
        break;
    case VD_REQ_UPSERT:
        s = prepare_upsert(e, &req->upsert, w, err);
        break;
    case VD_REQ_DELETE:
        s = vd_engine__check_batch(e, VD_REQ_DELETE, req->del.n_ids, err);
        w->op = (vd_op){.kind = VD_OP_DELETE,
                        .collection = req->del.collection,
                        .ids = req->del.ids,
                        .n = req->del.n_ids};
        break;
    default:
        s = vd_err_set(err, VD_INTERNAL, "%s is not a write operation", vd_request_name(req->kind));
        break;
    }
    if (s == VD_OK) return VD_OK;
    vd_write_release(w);
    return vd_engine__fail(s, err, req->kind);
}

vd_status vd_engine_write_commit(vd_engine *e, vd_write *const *ws, size_t n, vd_err *err)
{
    if (n == 0) return VD_OK;
    vd_err e2;
    vd_status s;
    /* vd_store_write takes the ops as one array; the writes live wherever their caller
     * keeps them, so they are gathered and scattered back (a few hundred bytes each). */
    vd_op *ops = vd_malloc(n * sizeof *ops);
    if (!ops) {
        s = vd_err_set(&e2, VD_NOMEM, "out of memory for a group of %zu writes", n);
    } else {
        for (size_t i = 0; i < n; i++)
            ops[i] = ws[i]->op;
        s = vd_store_write(e->store, ops, n, &e2);
        for (size_t i = 0; i < n; i++)
            ws[i]->op = ops[i];
        vd_free(ops);
    }
    if (s == VD_OK) return VD_OK;
    for (size_t i = 0; i < n; i++)
        ws[i]->op.status =
            vd_err_set(&ws[i]->op.err, s, "commit failed, nothing written: %s", e2.msg);
    if (err) *err = e2;
    return s;
}

vd_status vd_engine_write_result(vd_engine *e, vd_write *w, vd_result *out, vd_err *err)
{
    vd_status s = w->op.status;
    memset(out, 0, sizeof *out);
    out->kind = w->kind;
    if (s != VD_OK) {
        if (err) *err = w->op.err;
        memset(out, 0, sizeof *out);
        vd_write_release(w);
        return vd_engine__fail(s, err, w->kind);
    }
    switch (w->kind) {
    case VD_REQ_UPSERT:
    case VD_REQ_DELETE:
        out->n = w->op.n_done;
        break;
    case VD_REQ_CREATE: {
        /* Only the writing thread creates or drops, so the collection is still there. */
        vd_collection *c = NULL;
        out->info.params = w->op.params;
        if (vd_store_acquire(e->store, w->op.params.name, &c, NULL) == VD_OK) {
            vd_collection_info_get(c, &out->info);
            vd_collection_release(c);
        }
        break;
    }
    default:
        break;
    }
    vd_write_release(w);
    return VD_OK;
}

void vd_write_release(vd_write *w)
{
    vd_free(w->payload_ptrs);
    vd_free(w->payload_lens);
    w->payload_ptrs = NULL;
    w->payload_lens = NULL;
    w->op.payloads = NULL;
    w->op.payload_lens = NULL;
}

vd_status vd_engine_write(vd_engine *e, const vd_request *req, vd_result *out, vd_err *err)
{
    vd_write w;
    memset(out, 0, sizeof *out);
    vd_status s = vd_engine_write_prepare(e, req, &w, err);
    if (s != VD_OK) return s;
    vd_write *one = &w;
    vd_engine_write_commit(e, &one, 1, NULL);
    return vd_engine_write_result(e, &w, out, err);
}
