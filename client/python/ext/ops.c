/* client/python/ext/ops.c: the operations of vectord._engine.Engine, one table row each.
 *
 * A row names the Python method, whether it writes (the runner then holds the writer lock),
 * and an executor when vd_engine_execute on one request is not the whole story (upsert: a
 * call's batches prepared one by one and committed as one group; build: vd_engine_build).
 * Each operation has a parse function (positional arguments, already checked and converted
 * by vectord/embedded.py with the Client's _codec, into a vd_request borrowing their
 * buffers) and a result function (the vd_result into the Python values embedded.py turns
 * into the Client's types). A new operation (scroll, set_payload, the payload indexes) is
 * one row in VD_EXT_OP_MAP, its two functions, and its method in embedded.py.
 *
 * Filters come in as the bytes of a serialized vectord.v1.Filter - the Client's own encoding
 * (vectord/_filter.py), so there is one grammar - and are decoded by the daemon's decoder
 * (vd_proto_filter_decode: the same depth guard before protobuf-c, the same tree); the
 * grammar is checked by the engine for every request, as for the daemon's. None: no filter.
 *
 * Point ids come in either kind (parse_ids): a uint64 buffer, or for a collection of string
 * ids a tuple (bytes, uint32 end offsets) - the packing the wire's StrIds carries, made by
 * the Client's own StrIds in vectord/_codec.py - and they go back out the same two ways
 * (ids_out). Which kind a collection takes and the string id rules are the engine's
 * (vd_point_ids_check), as for the daemon.
 *
 * Result arrays are handed over, not copied: the engine's ids, distances, vectors and found
 * flags become Array objects (module.c) that numpy wraps; payload bytes are copied once into
 * Python bytes, since they borrow from an LMDB snapshot that ends with the result. */
#include "client/python/ext/ext_int.h"

#include "proto/vd_proto.h"

#define OK_OR_FAIL(x)                                                                              \
    if (!(x)) return 0

/* ---- results shared by several operations ---------------------------------------------- */

static PyObject *pindex_dict(const vd_pindex_info *pi)
{
    return Py_BuildValue("{s:s,s:s,s:K,s:K,s:O}", "field", pi->field, "kind",
                         vd_pindex_kind_name(pi->kind), "points", (unsigned long long)pi->points,
                         "bytes_memory", (unsigned long long)pi->bytes_memory, "building",
                         pi->building ? Py_True : Py_False);
}

static PyObject *info_dict(const vd_collection_info *ci)
{
    const vd_collection_params *p = &ci->params;
    PyObject *pis = PyList_New(ci->n_pindexes);
    for (uint32_t i = 0; pis && i < ci->n_pindexes; i++) {
        PyObject *d = pindex_dict(&ci->pindexes[i]);
        if (!d) {
            Py_CLEAR(pis);
            break;
        }
        PyList_SET_ITEM(pis, i, d);
    }
    if (!pis) return NULL;
    return Py_BuildValue( /* N: the dict takes pis over */
        "{s:s,s:I,s:s,s:I,s:I,s:I,s:K,s:K,s:K,s:K,s:s,s:N,s:s}", "name", p->name, "dim", p->dim,
        "metric", vd_metric_name(p->metric), "m", p->m, "ef_construction", p->ef_construction,
        "ef_search", p->ef_search, "count", (unsigned long long)ci->count, "created_unix_s",
        (unsigned long long)ci->created_unix_s, "bytes_disk", (unsigned long long)ci->bytes_disk,
        "bytes_memory", (unsigned long long)ci->bytes_memory, "id_type",
        vd_id_type_name(p->id_type), "payload_indexes", pis, "quantization",
        vd_quantization_name(p->quantization));
}

/* n_floats result vectors taken from the result as an Array, or None without vectors. */
static PyObject *vectors_out(float **v, size_t n_floats)
{
    if (!*v) Py_RETURN_NONE;
    PyObject *arr = vd_ext_array(*v, n_floats * sizeof **v);
    *v = NULL;
    return arr;
}

/* n result ids, taken from the result: an Array of uint64 (`*ids`), or for string ids the
 * tuple (bytes, Array of uint32 ends) - the bytes copied once, since Python decodes them
 * into str objects anyway. */
static PyObject *ids_out(uint64_t **ids, const uint8_t *str, uint32_t **ends, size_t n)
{
    if (!*ends) {
        PyObject *arr = vd_ext_array(*ids, n * sizeof **ids);
        *ids = NULL;
        return arr;
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)str, n ? (*ends)[n - 1] : 0);
    PyObject *e = vd_ext_array(*ends, n * sizeof **ends), *out = NULL;
    *ends = NULL;
    if (data && e) out = PyTuple_Pack(2, data, e);
    Py_XDECREF(data);
    Py_XDECREF(e);
    return out;
}

/* n payload entries as a list of bytes (b"" for none), or None without payloads. */
static PyObject *payload_list(const vd_bytes *pl, size_t n)
{
    if (!pl) Py_RETURN_NONE;
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)pl[i].data, (Py_ssize_t)pl[i].len);
        if (!b) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, b);
    }
    return list;
}

static PyObject *result_none(vd_py_engine *self, vd_ext_args *a, vd_result *r)
{
    Py_RETURN_NONE;
}

static PyObject *result_n(vd_py_engine *self, vd_ext_args *a, vd_result *r)
{
    return PyLong_FromUnsignedLongLong(r->n);
}

static PyObject *result_info(vd_py_engine *self, vd_ext_args *a, vd_result *r)
{
    return info_dict(&r->info);
}

/* One name argument (drop, info). */
static int parse_name(PyObject *args, vd_ext_args *a)
{
    PyObject *name;
    OK_OR_FAIL(PyArg_ParseTuple(args, "O", &name));
    return (a->req.name = vd_ext_name(name, "collection name")) != NULL;
}

/* Point ids of either kind (see the top): a buffer of uint64 into *ids and *n_ids, or a
 * tuple (bytes, uint32 ends) into *str; borrowed until the call ends. */
static int parse_ids(vd_ext_args *a, PyObject *obj, const uint64_t **ids, size_t *n_ids,
                     vd_str_ids *str)
{
    Py_buffer *b, *e;
    if (!PyTuple_Check(obj)) {
        OK_OR_FAIL(b = vd_ext_buffer(a, obj, 8, "ids"));
        *ids = b->buf ? b->buf : (const void *)"";
        *n_ids = (size_t)b->len / 8;
        return 1;
    }
    if (PyTuple_GET_SIZE(obj) != 2) {
        vd_ext_raise(VD_INVALID, "string ids: expected a tuple (bytes, uint32 ends)", NULL);
        return 0;
    }
    OK_OR_FAIL(b = vd_ext_buffer(a, PyTuple_GET_ITEM(obj, 0), 1, "string ids"));
    OK_OR_FAIL(e = vd_ext_buffer(a, PyTuple_GET_ITEM(obj, 1), 4, "string id ends"));
    *str = (vd_str_ids){.bytes = b->buf ? b->buf : (const void *)"",
                        .ends = e->buf ? e->buf : (const void *)"",
                        .n = (size_t)e->len / 4,
                        .n_bytes = (size_t)b->len};
    return 1;
}

/* How many ids parse_ids found, of either kind. */
static size_t ids_n(const uint64_t *ids, size_t n_ids, const vd_str_ids *str)
{
    return ids ? n_ids : str->n;
}

/* The collection `name` and its array `arr` of `item`-byte values: returns the values
 * (*n_out of them), borrowed until the call ends, or NULL with an error set. */
static const void *name_and_array(vd_ext_args *a, PyObject *name, const char **name_out,
                                  PyObject *arr, size_t item, const char *what, size_t *n_out)
{
    Py_buffer *b;
    if (!(*name_out = vd_ext_name(name, "collection name"))) return NULL;
    if (!(b = vd_ext_buffer(a, arr, item, what))) return NULL;
    *n_out = (size_t)b->len / item;
    return b->buf ? b->buf : (const void *)"";
}

/* A filter argument (see the top): None, or a serialized vectord.v1.Filter, decoded into a
 * tree in a->filter_mem (alive with the args; it copies what it keeps of the bytes). */
static int parse_filter(vd_ext_args *a, PyObject *obj, const vd_filter **out)
{
    Py_buffer *b;
    vd_err e;
    *out = NULL;
    if (obj == Py_None) return 1;
    OK_OR_FAIL(b = vd_ext_buffer(a, obj, 1, "filter"));
    if (vd_proto_filter_decode(b->buf ? b->buf : (const void *)"", (size_t)b->len, a->req.kind,
                               out, &a->filter_mem, &e) != VD_OK) {
        vd_ext_raise(e.code, e.msg, NULL);
        return 0;
    }
    return 1;
}

static int parse_nothing(PyObject *args, vd_ext_args *a)
{
    return PyArg_ParseTuple(args, "");
}

/* ---- collections --------------------------------------------------------------------------- */

static int parse_create(PyObject *args, vd_ext_args *a)
{
    PyObject *name;
    const char *metric, *id_type = "int", *quant = "none";
    vd_create_req *c = &a->req.create;
    OK_OR_FAIL(PyArg_ParseTuple(args, "OIsIII|ss", &name, &c->dim, &metric, &c->m,
                                &c->ef_construction, &c->ef_search, &id_type, &quant));
    OK_OR_FAIL(c->name = vd_ext_name(name, "collection name"));
    if (vd_metric_parse(metric, &c->metric) != VD_OK) {
        vd_ext_raise(VD_INVALID, "metric must be one of 'l2', 'cosine', 'ip'", NULL);
        return 0;
    }
    if (vd_id_type_parse(id_type, &c->id_type) != VD_OK) {
        vd_ext_raise(VD_INVALID, "id_type must be 'int' or 'str'", NULL);
        return 0;
    }
    if (vd_quantization_parse(quant, &c->quantization) != VD_OK) {
        vd_ext_raise(VD_INVALID, "quantization must be 'none' or 'int8'", NULL);
        return 0;
    }
    return 1;
}

/* count(collection[, filter | None]) */
static int parse_count(PyObject *args, vd_ext_args *a)
{
    PyObject *name, *flt = Py_None;
    OK_OR_FAIL(PyArg_ParseTuple(args, "O|O", &name, &flt));
    OK_OR_FAIL(a->req.count.collection = vd_ext_name(name, "collection name"));
    return parse_filter(a, flt, &a->req.count.filter);
}

/* create_payload_index(collection, field, kind name); drop_payload_index(collection, field) */
static int parse_pindex(PyObject *args, vd_ext_args *a)
{
    PyObject *name, *field;
    const char *kind = NULL;
    vd_pindex_req *q = &a->req.pindex;
    OK_OR_FAIL(PyArg_ParseTuple(args, a->req.kind == VD_REQ_CREATE_PINDEX ? "OOs" : "OO", &name,
                                &field, &kind));
    OK_OR_FAIL(q->collection = vd_ext_name(name, "collection name"));
    OK_OR_FAIL(q->field = vd_ext_name(field, "field"));
    if (kind && vd_pindex_kind_parse(kind, &q->kind) != VD_OK) {
        vd_ext_raise(VD_INVALID, "kind must be one of keyword, integer, float, bool", NULL);
        return 0;
    }
    return 1;
}

/* The index once built: the write runs the build's steps to its end within the call (under
 * the writer lock, as the daemon's writer runs them between groups; reads go on). */
static PyObject *result_pindex(vd_py_engine *self, vd_ext_args *a, vd_result *r)
{
    return pindex_dict(&r->pindex);
}

static PyObject *result_list(vd_py_engine *self, vd_ext_args *a, vd_result *r)
{
    PyObject *list = PyList_New((Py_ssize_t)r->list.n);
    for (size_t i = 0; list && i < r->list.n; i++) {
        PyObject *d = info_dict(&r->list.items[i]);
        if (!d) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    return list;
}

static PyObject *result_stats(vd_py_engine *self, vd_ext_args *a, vd_result *r)
{
    const vd_engine_stats *st = &r->stats;
    return Py_BuildValue("{s:I,s:K,s:K,s:K}", "collections", st->collections, "points",
                         (unsigned long long)st->points, "map_bytes",
                         (unsigned long long)st->map_bytes, "file_bytes",
                         (unsigned long long)st->file_bytes);
}

/* ---- points -------------------------------------------------------------------------------- */

/* upsert(collection, ids, vectors <f4, dim, payloads list | None, batch) */
static int parse_upsert(PyObject *args, vd_ext_args *a)
{
    PyObject *name, *ids, *vecs, *pls;
    vd_upsert_req *u = &a->req.upsert;
    Py_buffer *bv;
    OK_OR_FAIL(PyArg_ParseTuple(args, "OOOIOI", &name, &ids, &vecs, &u->dim, &pls, &a->batch));
    OK_OR_FAIL(u->collection = vd_ext_name(name, "collection name"));
    OK_OR_FAIL(parse_ids(a, ids, &u->ids, &u->n_ids, &u->str_ids));
    size_t n = ids_n(u->ids, u->n_ids, &u->str_ids);
    OK_OR_FAIL(bv = vd_ext_buffer(a, vecs, 4, "vectors"));
    u->vectors = bv->buf;
    u->n_floats = (size_t)bv->len / 4;
    OK_OR_FAIL(vd_ext_payloads(a, pls, n));
    u->payloads = a->payloads;
    u->n_payloads = a->payloads ? n : 0;
    if (n == 0 || u->dim == 0 || u->n_floats != n * u->dim) {
        /* embedded.py sends n ids and an (n, dim) array; anything else would be read past */
        vd_ext_raise(VD_INVALID, "upsert: ids and vectors disagree on the number of rows", NULL);
        return 0;
    }
    if (a->batch == 0) a->batch = 1;
    return 1;
}

/* String ids [lo, lo + rows) of s as a batch of their own: their bytes, and their ends
 * rebased to them, written into `rebased` (room for s->n; the batches share it). */
static vd_str_ids str_ids_slice(const vd_str_ids *s, size_t lo, size_t rows, uint32_t *rebased)
{
    uint32_t base = (uint32_t)vd_str_ids_start(s, lo);
    for (size_t i = lo; i < lo + rows; i++)
        rebased[i] = s->ends[i] - base;
    return (vd_str_ids){.bytes = s->bytes + base,
                        .ends = rebased + lo,
                        .n = rows,
                        .n_bytes = s->ends[lo + rows - 1] - base};
}

/* The call's batches of a->batch points, each prepared as a write of its own (so each is
 * atomic and checked alone, like the frames of Client.upsert), committed as ONE group: one
 * transaction and one sync for the whole call. The first failing batch names its rows.
 * String ids are checked whole first (storage's rule), so the batches cut from them are
 * sound; each batch is then checked again by the engine, as a frame of the Client's is. */
static vd_status exec_upsert(vd_py_engine *self, vd_ext_args *a, vd_result *res, vd_err *err)
{
    const vd_upsert_req *u = &a->req.upsert;
    size_t n = ids_n(u->ids, u->n_ids, &u->str_ids), per = a->batch, nb = (n + per - 1) / per;
    size_t written = 0;
    vd_write *ws = vd_calloc(nb, sizeof *ws);
    vd_write **group = vd_malloc(nb * sizeof *group);
    uint32_t *ends = u->ids ? NULL : vd_malloc(n * sizeof *ends);
    vd_status s = ws && group && (u->ids || ends)
                      ? VD_OK
                      : vd_err_set(err, VD_NOMEM, "upsert: out of memory");
    if (s == VD_OK && !u->ids && (s = vd_str_ids_check(&u->str_ids, 0, err)) != VD_OK)
        vd_err_prefix(err, "upsert into %s", u->collection);
    for (size_t b = 0; b < nb && s == VD_OK; b++) {
        size_t lo = b * per, rows = n - lo < per ? n - lo : per;
        vd_request q = {.kind = VD_REQ_UPSERT};
        q.upsert = (vd_upsert_req){.collection = u->collection,
                                   .vectors = u->vectors + lo * u->dim,
                                   .n_floats = rows * u->dim,
                                   .dim = u->dim,
                                   .payloads = u->payloads ? u->payloads + lo : NULL,
                                   .n_payloads = u->payloads ? rows : 0};
        if (u->ids) {
            q.upsert.ids = u->ids + lo;
            q.upsert.n_ids = rows;
        } else {
            q.upsert.str_ids = str_ids_slice(&u->str_ids, lo, rows, ends);
        }
        group[b] = &ws[b];
        if ((s = vd_engine_write_prepare(self->engine, &q, &ws[b], err)) != VD_OK)
            snprintf(a->context_buf, sizeof a->context_buf, "upsert rows %zu..%zu", lo,
                     lo + rows - 1);
    }
    if (s == VD_OK) {
        vd_engine_write_commit(self->engine, group, nb, NULL);
        for (size_t b = 0; b < nb; b++) {
            vd_result r;
            vd_err e2;
            vd_status sb = vd_engine_write_result(self->engine, &ws[b], &r, &e2); /* releases */
            written += sb == VD_OK ? r.n : 0;
            vd_result_free(&r);
            if (sb != VD_OK && s == VD_OK) {
                s = sb;
                if (err) *err = e2;
                size_t lo = b * per, rows = n - lo < per ? n - lo : per;
                snprintf(a->context_buf, sizeof a->context_buf, "upsert rows %zu..%zu", lo,
                         lo + rows - 1);
            }
        }
    }
    for (size_t b = 0; ws && b < nb; b++)
        vd_write_release(&ws[b]); /* idempotent */
    vd_free(ws);
    vd_free(group);
    vd_free(ends);
    if (a->context_buf[0]) a->context = a->context_buf;
    res->kind = VD_REQ_UPSERT;
    res->n = written;
    return s;
}

/* delete(collection, ids (parse_ids) | None[, filter | None]): both given is the engine's
 * error, as for the daemon. */
static int parse_delete(PyObject *args, vd_ext_args *a)
{
    PyObject *name, *ids, *flt = Py_None;
    vd_delete_req *d = &a->req.del;
    OK_OR_FAIL(PyArg_ParseTuple(args, "OO|O", &name, &ids, &flt));
    OK_OR_FAIL(d->collection = vd_ext_name(name, "collection name"));
    OK_OR_FAIL(parse_filter(a, flt, &d->filter));
    return ids == Py_None || parse_ids(a, ids, &d->ids, &d->n_ids, &d->str_ids);
}

/* set_payload(collection, ids, payloads: list of n encoded payloads, merge) */
static int parse_set_payload(PyObject *args, vd_ext_args *a)
{
    PyObject *name, *ids, *pls;
    vd_set_payload_req *q = &a->req.set_payload;
    OK_OR_FAIL(PyArg_ParseTuple(args, "OOOp", &name, &ids, &pls, &q->merge));
    OK_OR_FAIL(q->collection = vd_ext_name(name, "collection name"));
    OK_OR_FAIL(parse_ids(a, ids, &q->ids, &q->n_ids, &q->str_ids));
    size_t n = ids_n(q->ids, q->n_ids, &q->str_ids);
    if (pls == Py_None) { /* the engine takes one entry per id: None would read none */
        vd_ext_raise(VD_INVALID, "set_payload: payloads must be a list of one entry per id",
                     NULL);
        return 0;
    }
    OK_OR_FAIL(vd_ext_payloads(a, pls, n));
    q->payloads = a->payloads;
    q->n_payloads = n;
    return 1;
}

/* get(collection, ids, with_vectors, with_payloads) */
static int parse_get(PyObject *args, vd_ext_args *a)
{
    PyObject *name, *ids;
    vd_get_req *g = &a->req.get;
    OK_OR_FAIL(PyArg_ParseTuple(args, "OOpp", &name, &ids, &g->with_vectors, &g->with_payloads));
    OK_OR_FAIL(g->collection = vd_ext_name(name, "collection name"));
    return parse_ids(a, ids, &g->ids, &g->n_ids, &g->str_ids);
}

/* -> (found: Array of n bytes, vectors: Array of n x dim floats | None, payloads | None, dim) */
static PyObject *result_get(vd_py_engine *self, vd_ext_args *a, vd_result *res)
{
    vd_get_result *r = &res->get;
    PyObject *found = vd_ext_array(r->found, r->n), *vecs = NULL, *pls = NULL, *out = NULL;
    r->found = NULL;
    vecs = vectors_out(&r->vectors, r->n * r->dim);
    pls = payload_list(r->payloads, r->n);
    if (found && vecs && pls) out = Py_BuildValue("(OOOI)", found, vecs, pls, r->dim);
    Py_XDECREF(found);
    Py_XDECREF(vecs);
    Py_XDECREF(pls);
    return out;
}

/* search(collection, queries <f4, dim, k, ef, with_payloads[, filter | None, rerank (0: the
 * default)]); explain takes
 * the same arguments (without payloads, whatever with_payloads says) */
static int parse_search(PyObject *args, vd_ext_args *a)
{
    PyObject *name, *queries, *flt = Py_None;
    vd_search_req *q = &a->req.search;
    OK_OR_FAIL(PyArg_ParseTuple(args, "OOIIIp|OI", &name, &queries, &q->dim, &q->k, &q->ef,
                                &q->with_payloads, &flt, &q->rerank));
    q->queries = name_and_array(a, name, &q->collection, queries, 4, "queries", &q->n_floats);
    return q->queries != NULL && parse_filter(a, flt, &q->filter);
}

static int parse_explain(PyObject *args, vd_ext_args *a)
{
    OK_OR_FAIL(parse_search(args, a));
    a->req.search.explain = 1;
    a->req.search.with_payloads = 0;
    return 1;
}

/* -> (ids: nq x k (ids_out), distances: Array nq x k float32, payloads | None, nq, k) */
static PyObject *result_search(vd_py_engine *self, vd_ext_args *a, vd_result *res)
{
    vd_search_result *r = &res->search;
    size_t n = (size_t)r->nq * r->k;
    PyObject *ids = ids_out(&r->ids, r->str_ids, &r->str_id_ends, n);
    PyObject *dists = vd_ext_array(r->distances, n * sizeof *r->distances);
    r->distances = NULL;
    PyObject *pls = payload_list(r->payloads, n), *out = NULL;
    if (ids && dists && pls) out = Py_BuildValue("(OOOII)", ids, dists, pls, r->nq, r->k);
    Py_XDECREF(ids);
    Py_XDECREF(dists);
    Py_XDECREF(pls);
    return out;
}

static const char *fallback_name(vd_search_fallback f)
{
    switch (f) {
    case VD_FALLBACK_EFFORT: return "effort";
    case VD_FALLBACK_SHORT: return "short";
    case VD_FALLBACK_LOCAL: return "local";
    default: return "";
    }
}

/* -> the dict Client.explain returns: the filter's figures, and per query its QueryPlan's
 * fields (the wire's names, "fallback" "" for none). */
static PyObject *result_explain(vd_py_engine *self, vd_ext_args *a, vd_result *res)
{
    const vd_search_result *r = &res->search;
    PyObject *plans = PyList_New(r->explain ? r->nq : 0), *out = NULL;
    for (uint32_t i = 0; plans && r->explain && i < r->nq; i++) {
        const vd_search_explain *e = &r->explain[i];
        PyObject *d = Py_BuildValue(
            "{s:s,s:s,s:I,s:K,s:K,s:K,s:d,s:d,s:d}", "plan", vd_search_plan_name(e->plan),
            "fallback", fallback_name(e->fallback), "ef", e->ef, "nodes_visited",
            (unsigned long long)e->nodes_visited, "distances", (unsigned long long)e->distances,
            "filter_calls", (unsigned long long)e->filter_calls, "selectivity", e->selectivity,
            "cost_graph", e->cost_graph, "cost_exact", e->cost_exact);
        if (!d) {
            Py_CLEAR(plans);
            break;
        }
        PyList_SET_ITEM(plans, i, d);
    }
    if (plans)
        out = Py_BuildValue("{s:N,s:O,s:K,s:I,s:I,s:K,s:K}", "queries", plans, "filtered",
                            r->filtered ? Py_True : Py_False, "matching",
                            (unsigned long long)r->filter.matching, "conditions_indexed",
                            r->filter.conditions_indexed, "conditions_scanned",
                            r->filter.conditions_scanned, "payloads_read",
                            (unsigned long long)r->filter.payloads_read, "filter_us",
                            (unsigned long long)(r->filter.compile_ns / 1000));
    return out;
}

/* scroll(collection, limit, cursor bytes (b"": the first page), with_vectors, with_payloads[,
 *        filter | None]) */
static int parse_scroll(PyObject *args, vd_ext_args *a)
{
    PyObject *name, *cursor, *flt = Py_None;
    vd_scroll_req *q = &a->req.scroll;
    Py_buffer *bc;
    OK_OR_FAIL(PyArg_ParseTuple(args, "OIOpp|O", &name, &q->limit, &cursor, &q->with_vectors,
                                &q->with_payloads, &flt));
    OK_OR_FAIL(q->collection = vd_ext_name(name, "collection name"));
    OK_OR_FAIL(bc = vd_ext_buffer(a, cursor, 1, "cursor"));
    q->cursor = (vd_bytes){(size_t)bc->len, bc->buf};
    return parse_filter(a, flt, &q->filter);
}

/* -> (ids (ids_out), vectors: Array n x dim float32 | None, payloads | None, dim,
 *     next_cursor bytes | None) */
static PyObject *result_scroll(vd_py_engine *self, vd_ext_args *a, vd_result *res)
{
    vd_scroll_result *r = &res->scroll;
    PyObject *ids = ids_out(&r->ids, r->str_ids, &r->str_id_ends, r->n), *out = NULL;
    PyObject *vecs = vectors_out(&r->vectors, r->n * r->dim);
    PyObject *pls = payload_list(r->payloads, r->n);
    if (ids && vecs && pls) /* y# of NULL: None */
        out = Py_BuildValue("(OOOIy#)", ids, vecs, pls, r->dim, (const char *)r->next_cursor,
                            (Py_ssize_t)r->next_cursor_len);
    Py_XDECREF(ids);
    Py_XDECREF(vecs);
    Py_XDECREF(pls);
    return out;
}

/* build(name, vectors <f4, dim, ids (parse_ids; string ids make a str collection), payloads
 *       | None, metric, m, ef_construction, ef_search, replace) */
static int parse_build(PyObject *args, vd_ext_args *a)
{
    PyObject *name, *vecs, *ids, *pls;
    const char *metric, *nm;
    Py_buffer *bv;
    vd_build_req *b = &a->build;
    vd_collection_params *p = &b->params;
    OK_OR_FAIL(PyArg_ParseTuple(args, "OOIOOsIIIp", &name, &vecs, &p->dim, &ids, &pls, &metric,
                                &p->m, &p->ef_construction, &p->ef_search, &b->replace));
    OK_OR_FAIL(nm = vd_ext_name(name, "collection name"));
    if (strlen(nm) > VD_NAME_MAX) { /* the params hold at most that: let the rule refuse it */
        vd_err e;
        vd_name_check(nm, &e);
        vd_err_prefix(&e, "build"); /* as the engine's own build messages begin */
        vd_ext_raise(VD_INVALID, e.msg, NULL);
        return 0;
    }
    snprintf(p->name, sizeof p->name, "%s", nm);
    if (vd_metric_parse(metric, &p->metric) != VD_OK) {
        vd_ext_raise(VD_INVALID, "metric must be one of 'l2', 'cosine', 'ip'", NULL);
        return 0;
    }
    OK_OR_FAIL(bv = vd_ext_buffer(a, vecs, 4, "vectors"));
    size_t n_ids = 0;
    OK_OR_FAIL(parse_ids(a, ids, &b->ids, &n_ids, &a->str_ids));
    b->n = ids_n(b->ids, n_ids, &a->str_ids);
    if (!b->ids) {
        b->str_ids = &a->str_ids;
        p->id_type = VD_ID_STR;
    }
    if ((size_t)bv->len != b->n * p->dim * sizeof(float)) { /* the engine trusts n x dim */
        vd_ext_raise(VD_INVALID, "build: vectors and ids disagree on the number of rows", NULL);
        return 0;
    }
    b->vectors = bv->buf;
    OK_OR_FAIL(vd_ext_payloads(a, pls, b->n));
    if (a->payloads) {
        a->pl_ptrs = vd_malloc((b->n ? b->n : 1) * sizeof *a->pl_ptrs);
        a->pl_lens = vd_malloc((b->n ? b->n : 1) * sizeof *a->pl_lens);
        if (!a->pl_ptrs || !a->pl_lens) {
            PyErr_NoMemory();
            return 0;
        }
        for (size_t i = 0; i < b->n; i++) {
            if (a->payloads[i].len > UINT32_MAX) {
                vd_ext_raise(VD_INVALID, "build: a payload over 4 GiB", NULL);
                return 0;
            }
            a->pl_ptrs[i] = a->payloads[i].len ? a->payloads[i].data : NULL;
            a->pl_lens[i] = (uint32_t)a->payloads[i].len;
        }
        b->payloads = a->pl_ptrs;
        b->payload_lens = a->pl_lens;
    }
    return 1;
}

static vd_status exec_build(vd_py_engine *self, vd_ext_args *a, vd_result *res, vd_err *err)
{
    a->build.threads = vd_pool_width(self->pool); /* the handle's threads link the graph */
    return vd_engine_build(self->engine, &a->build, &a->built, err);
}

static PyObject *result_build(vd_py_engine *self, vd_ext_args *a, vd_result *res)
{
    return info_dict(&a->built.info);
}

/* ---- the table ------------------------------------------------------------------------------
 * method name, the request kind parse fills in (NONE: the executor's own), writes, parse,
 * executor (NULL: vd_engine_execute of the parsed request), result. */
/* clang-format off */
#define VD_EXT_OP_MAP(X)                                                                       \
    X(create_collection, VD_REQ_CREATE,      1, parse_create,      NULL,        result_info)   \
    X(drop_collection,   VD_REQ_DROP,        1, parse_name,        NULL,        result_none)   \
    X(list_collections,  VD_REQ_LIST,        0, parse_nothing,     NULL,        result_list)   \
    X(collection_info,   VD_REQ_INFO,        0, parse_name,        NULL,        result_info)   \
    X(count,             VD_REQ_COUNT,       0, parse_count,       NULL,        result_n)      \
    X(stats,             VD_REQ_STATS,       0, parse_nothing,     NULL,        result_stats)  \
    X(upsert,            VD_REQ_UPSERT,      1, parse_upsert,      exec_upsert, result_n)      \
    X(delete,            VD_REQ_DELETE,      1, parse_delete,      NULL,        result_n)      \
    X(set_payload,       VD_REQ_SET_PAYLOAD, 1, parse_set_payload, NULL,        result_n)      \
    X(get,               VD_REQ_GET,         0, parse_get,         NULL,        result_get)    \
    X(search,            VD_REQ_SEARCH,      0, parse_search,      NULL,        result_search) \
    X(explain,           VD_REQ_SEARCH,      0, parse_explain,     NULL,        result_explain)\
    X(scroll,            VD_REQ_SCROLL,      0, parse_scroll,      NULL,        result_scroll) \
    X(create_payload_index, VD_REQ_CREATE_PINDEX, 1, parse_pindex, NULL,        result_pindex) \
    X(drop_payload_index, VD_REQ_DROP_PINDEX, 1, parse_pindex,      NULL,        result_none)   \
    X(build,             VD_REQ_NONE,        1, parse_build,       exec_build,  result_build)
/* clang-format on */

enum {
#define X(name, kind, write, parse, exec, result) OP_##name,
    VD_EXT_OP_MAP(X)
#undef X
};

const vd_ext_op vd_ext_ops[] = {
#define X(name, kind, write, parse, exec, result) {#name, kind, write, parse, exec, result},
    VD_EXT_OP_MAP(X)
#undef X
};

#define X(name, kind, write, parse, exec, result)                                                  \
    static PyObject *method_##name(PyObject *self, PyObject *args)                                 \
    {                                                                                              \
        return vd_ext_run((vd_py_engine *)self, &vd_ext_ops[OP_##name], args);                     \
    }
VD_EXT_OP_MAP(X)
#undef X

PyMethodDef vd_ext_op_methods[] = {
#define X(name, kind, write, parse, exec, result)                                                  \
    {#name, method_##name, METH_VARARGS, "see vectord.open: " #name},
    VD_EXT_OP_MAP(X)
#undef X
        {NULL, NULL, 0, NULL},
};
