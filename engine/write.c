/* engine/write.c: the writes - create, drop, upsert, delete, set_payload - from one thread at
 * a time.
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
                             .id_type = c->id_type,
                             .quantization = c->quantization}};
    snprintf(op->params.name, sizeof op->params.name, "%s", c->name);
    return VD_OK;
}

/* The size of a batch: its integer ids, or its string ids. */
static size_t batch_size(size_t n_ids, const uint64_t *ids, const vd_str_ids *str)
{
    return ids || !str->ends ? n_ids : str->n;
}

/* Payload entries as the store takes them: a pointer and a length per id, NULL = none.
 * Upserts may send none (n_payloads 0), set_payload must send one per id. */
static vd_status payload_arrays(vd_request_kind k, const vd_bytes *payloads, size_t n_payloads,
                                size_t n, vd_write *w, vd_err *err)
{
    const char *op = vd_request_name(k);
    if (n_payloads == 0 && k == VD_REQ_UPSERT) return VD_OK;
    if (n_payloads != n)
        return vd_err_set(err, VD_INVALID,
                          k == VD_REQ_UPSERT ? "%s: %zu payloads for %zu ids (send none, or one "
                                               "per id; an empty payload means none)"
                                             : "%s: %zu payloads for %zu ids (send one per id)",
                          op, n_payloads, n);
    w->payload_ptrs = vd_malloc((n ? n : 1) * sizeof *w->payload_ptrs);
    w->payload_lens = vd_malloc((n ? n : 1) * sizeof *w->payload_lens);
    if (!w->payload_ptrs || !w->payload_lens)
        return vd_err_set(err, VD_NOMEM, "%s: out of memory for %zu payloads", op, n);
    for (size_t i = 0; i < n; i++) {
        if (payloads[i].len > UINT32_MAX)
            return vd_err_set(err, VD_INVALID, "%s: payload %zu holds %zu bytes, over 4 GiB", op,
                              i, payloads[i].len);
        w->payload_ptrs[i] = payloads[i].len ? payloads[i].data : NULL;
        w->payload_lens[i] = (uint32_t)payloads[i].len;
    }
    return VD_OK;
}

static vd_status prepare_upsert(const vd_engine *e, const vd_upsert_req *u, vd_write *w,
                                vd_err *err)
{
    vd_collection *c = NULL;
    size_t n = batch_size(u->n_ids, u->ids, &u->str_ids);
    vd_status s = vd_engine__check_batch(e, VD_REQ_UPSERT, n, err);
    if (s == VD_OK) s = vd_store_acquire(e->store, u->collection, &c, err);
    if (s != VD_OK) return s;
    uint32_t dim = vd_collection_params_of(c)->dim;
    vd_collection_release(c);
    uint64_t expect = (uint64_t)n * dim;
    if (u->dim && u->dim != dim)
        return vd_err_set(err, VD_INVALID,
                          "upsert: vectors have %" PRIu32 " dims, collection %s expects %" PRIu32,
                          u->dim, u->collection, dim);
    if (u->n_floats != expect)
        return vd_err_set(err, VD_INVALID,
                          "upsert: vectors hold %zu bytes, %zu ids x %" PRIu32
                          " dims x 4 bytes = %" PRIu64 " expected (collection %s)",
                          u->n_floats * 4, n, dim, expect * 4, u->collection);
    if ((s = payload_arrays(VD_REQ_UPSERT, u->payloads, u->n_payloads, n, w, err)) != VD_OK)
        return s;
    w->op = (vd_op){.kind = VD_OP_UPSERT,
                    .collection = u->collection,
                    .ids = u->ids,
                    .n = n,
                    .vectors = u->vectors,
                    .payloads = w->payload_ptrs,
                    .payload_lens = w->payload_lens,
                    .str_ids = u->str_ids};
    return VD_OK;
}

static vd_status prepare_set_payload(const vd_engine *e, const vd_set_payload_req *q, vd_write *w,
                                     vd_err *err)
{
    size_t n = batch_size(q->n_ids, q->ids, &q->str_ids);
    vd_status s = vd_engine__check_batch(e, VD_REQ_SET_PAYLOAD, n, err);
    if (s == VD_OK) s = payload_arrays(VD_REQ_SET_PAYLOAD, q->payloads, q->n_payloads, n, w, err);
    if (s != VD_OK) return s;
    w->op = (vd_op){.kind = VD_OP_SET_PAYLOAD,
                    .collection = q->collection,
                    .ids = q->ids,
                    .n = n,
                    .payloads = w->payload_ptrs,
                    .payload_lens = w->payload_lens,
                    .str_ids = q->str_ids,
                    .merge = q->merge};
    return VD_OK;
}

/* By ids (1..max_batch of them) or by filter (checked here, so it is refused before the
 * write queues behind others), never both. */
static vd_status prepare_delete(const vd_engine *e, const vd_delete_req *d, vd_op *op,
                                vd_err *err)
{
    vd_status s;
    size_t n = batch_size(d->n_ids, d->ids, &d->str_ids);
    if (d->filter && n)
        return vd_err_set(err, VD_INVALID, "delete: give ids or a filter, not both");
    if (d->filter) s = vd_filter_check(d->filter, err);
    else s = vd_engine__check_batch(e, VD_REQ_DELETE, n, err);
    *op = (vd_op){.kind = VD_OP_DELETE,
                  .collection = d->collection,
                  .ids = d->filter ? NULL : d->ids,
                  .n = d->filter ? 0 : n,
                  .str_ids = d->str_ids,
                  .filter = d->filter};
    return s;
}

/* The field and kind are storage's to check (one rule: vd_storage__path_check). */
static vd_status prepare_pindex(vd_request_kind k, const vd_pindex_req *p, vd_op *op,
                                vd_err *err)
{
    if (!p->field)
        return vd_err_set(err, VD_INVALID, "%s: no field named", vd_request_name(k));
    *op = (vd_op){.kind = k == VD_REQ_CREATE_PINDEX ? VD_OP_PINDEX_CREATE : VD_OP_PINDEX_DROP,
                  .collection = p->collection,
                  .field = p->field,
                  .pindex_kind = p->kind};
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
        s = prepare_delete(e, &req->del, &w->op, err);
        break;
    case VD_REQ_SET_PAYLOAD:
        s = prepare_set_payload(e, &req->set_payload, w, err);
        break;
    case VD_REQ_CREATE_PINDEX:
    case VD_REQ_DROP_PINDEX:
        s = prepare_pindex(req->kind, &req->pindex, &w->op, err);
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

/* The info of the index a committed CREATE_PINDEX made; VD_NOTFOUND if a drop came first. */
static vd_status pindex_result(vd_engine *e, const vd_op *op, vd_pindex_info *out, vd_err *err)
{
    vd_collection *c = NULL;
    vd_collection_info info;
    if (vd_store_acquire(e->store, op->collection, &c, NULL) == VD_OK) {
        vd_collection_info_get(c, &info);
        vd_collection_release(c);
        for (uint32_t i = 0; c && i < info.n_pindexes; i++)
            if (!strcmp(info.pindexes[i].field, op->field)) {
                *out = info.pindexes[i];
                return VD_OK;
            }
    }
    return vd_err_set(err, VD_NOTFOUND, "create_payload_index %s.%s: the index was dropped "
                      "(or its collection) before its build finished", op->collection,
                      op->field);
}

int vd_engine_write_pending(vd_engine *e, const vd_write *w)
{
    int building = 0;
    if (w->kind != VD_REQ_CREATE_PINDEX || w->op.status != VD_OK) return 0;
    return vd_store_pindex_state(e->store, w->op.collection, w->op.field, &building, NULL) ==
               VD_OK && building;
}

vd_status vd_engine_background(vd_engine *e, int *more, vd_err *err)
{
    return vd_store_pindex_step(e->store, VD_ENGINE_BUILD_STEP, more, err);
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
    case VD_REQ_SET_PAYLOAD:
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
    case VD_REQ_CREATE_PINDEX:
        if ((s = pindex_result(e, &w->op, &out->pindex, err)) != VD_OK) {
            vd_write_release(w);
            return vd_engine__fail(s, err, w->kind);
        }
        break;
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
    int more = 1;
    while (more && vd_engine_write_pending(e, &w)) {
        vd_err e2;
        if ((s = vd_engine_background(e, &more, &e2)) != VD_OK) {
            vd_write_release(&w);
            if (err) *err = e2;
            return vd_engine__fail(s, err, req->kind);
        }
    }
    return vd_engine_write_result(e, &w, out, err);
}
