/* proto/request.c: Request frames -> the engine's domain requests.
 *
 * Decoding unpacks the untrusted bytes with protobuf-c (allocating through vd_malloc, so
 * failure injection reaches it), then turns the operation into a vd_request whose pointers
 * borrow the unpacked message: names are its strings, payload entries its byte strings (the
 * same layout, see wire.c), and ids and vectors its bytes fields read in place. protobuf-c
 * allocates every bytes field on its own, so they are aligned, and on a little-endian host
 * the wire's little-endian arrays are host arrays already: a 64 MiB upsert costs no copy
 * beyond protobuf-c's own. Other hosts get converted copies, owned by the decoded request.
 *
 * Checked here: only what the wire format itself implies - ids are whole uint64s, vectors
 * and queries whole float32s, string id ends whole uint32s, the metric and the id type are
 * ones the enums name. String ids are handed on packed as they came (data + ends, read in
 * place): their packing and rules are storage's vd_str_ids_check, which the embedded module
 * needs as well. Batch sizes, k, dims,
 * parameter ranges and everything about the collection are the engine's, for the embedded
 * module reaches the engine without this codec.
 * Rejected: decoding straight from the frame without protobuf-c (a second parser of the
 * schema to keep in step; the later issue that cuts the wire path's overhead measures it). */
#include "proto/proto_int.h"

#include <inttypes.h>

/* The public request first, so the caller's pointer is the allocation's. */
typedef struct decoded {
    vd_proto_request pub;
    Vectord__V1__Request *pb;
    void *copies[3]; /* arrays converted because the host is not little-endian (or the bytes
                      * are unaligned): at most ids, vectors and string id ends */
    int n_copies;
    void *filter_mem; /* the filter tree's nodes (filter.c) */
} decoded;

/* Little-endian uint64 (width 8), float32 or uint32 (width 4, named by `type`) values from a
 * bytes field: the bytes themselves when they can be, else a converted copy the request
 * owns. */
static vd_status array_of(decoded *d, const ProtobufCBinaryData *b, vd_request_kind k,
                          const char *field, size_t width, const char *type, const void **out,
                          size_t *n, vd_err *err)
{
    *out = NULL;
    *n = 0;
    if (b->len % width != 0)
        return vd_err_set(
            err, VD_INVALID, "%s: %s hold %zu bytes, not a multiple of %zu (little-endian %s)",
            vd_request_name(k), field, b->len, width, type);
    *n = b->len / width;
    if (*n == 0) return VD_OK; /* the engine names an empty batch */
    if (vd_proto__host_is_le() && (uintptr_t)b->data % width == 0) {
        *out = b->data;
        return VD_OK;
    }
    uint8_t *c = vd_malloc(b->len);
    if (!c) return vd_err_set(err, VD_NOMEM, "%s: out of memory for %s", vd_request_name(k), field);
    for (size_t i = 0; i < *n; i++) {
        if (width == 8) {
            uint64_t v = vd_get_u64le(b->data + 8 * i);
            memcpy(c + 8 * i, &v, 8);
        } else {
            uint32_t v = vd_get_u32le(b->data + 4 * i);
            memcpy(c + 4 * i, &v, 4);
        }
    }
    d->copies[d->n_copies++] = c;
    *out = c;
    return VD_OK;
}

static vd_status ids_of(decoded *d, const ProtobufCBinaryData *b, vd_request_kind k,
                        const uint64_t **ids, size_t *n, vd_err *err)
{
    const void *p = NULL;
    vd_status s = array_of(d, b, k, "ids", 8, "uint64", &p, n, err);
    *ids = p;
    return s;
}

/* A StrIds message (NULL: none given) as packed string ids. Only the ends' width is the
 * wire's to check; the packing and the ids are vd_str_ids_check's (storage). */
static vd_status str_ids_of(decoded *d, const Vectord__V1__StrIds *m, vd_request_kind k,
                            vd_str_ids *out, vd_err *err)
{
    const void *p = NULL;
    memset(out, 0, sizeof *out);
    if (!m) return VD_OK;
    vd_status s = array_of(d, &m->ends, k, "str_ids.ends", 4, "uint32", &p, &out->n, err);
    if (s != VD_OK || out->n == 0) return s; /* an empty batch is the engine's to name */
    out->ends = p;
    out->bytes = m->data.data;
    out->n_bytes = m->data.len;
    return VD_OK;
}

static vd_status floats_of(decoded *d, const ProtobufCBinaryData *b, vd_request_kind k,
                           const char *field, const float **v, size_t *n, vd_err *err)
{
    const void *p = NULL;
    vd_status s = array_of(d, b, k, field, 4, "float32", &p, n, err);
    *v = p;
    return s;
}

static vd_status create_of(const Vectord__V1__CreateCollectionRequest *c, vd_create_req *r,
                           vd_err *err)
{
    r->name = c->name;
    r->dim = c->dim;
    r->m = c->m;
    r->ef_construction = c->ef_construction;
    r->ef_search = c->ef_search;
    if (!vd_proto__metric_from_wire(c->metric, &r->metric))
        return vd_err_set(err, VD_INVALID,
                          "create_collection %s: metric %d is not one of L2 (1), COSINE (2), IP "
                          "(3)", c->name, (int)c->metric);
    if (!vd_proto__id_type_from_wire(c->id_type, &r->id_type))
        return vd_err_set(err, VD_INVALID,
                          "create_collection %s: id_type %d is not one of INT (0), STR (1)",
                          c->name, (int)c->id_type);
    if (!vd_proto__quant_from_wire(c->quantization, &r->quantization))
        return vd_err_set(err, VD_INVALID, "create_collection %s: quantization %d is not one of "
                          "NONE (0), INT8 (1)", c->name, (int)c->quantization);
    return VD_OK;
}

static vd_status upsert_of(decoded *d, const Vectord__V1__UpsertRequest *u, vd_upsert_req *r,
                           vd_err *err)
{
    r->collection = u->collection;
    r->payloads = (const vd_bytes *)u->payloads;
    r->n_payloads = u->n_payloads;
    vd_status s = ids_of(d, &u->ids, VD_REQ_UPSERT, &r->ids, &r->n_ids, err);
    if (s == VD_OK) s = str_ids_of(d, u->str_ids, VD_REQ_UPSERT, &r->str_ids, err);
    if (s != VD_OK) return s;
    return floats_of(d, &u->vectors, VD_REQ_UPSERT, "vectors", &r->vectors, &r->n_floats, err);
}

static vd_status scroll_of(decoded *d, const Vectord__V1__ScrollRequest *q, vd_scroll_req *r,
                           vd_err *err)
{
    r->collection = q->collection;
    r->limit = q->limit;
    r->cursor = (vd_bytes){q->cursor.len, q->cursor.data};
    r->with_vectors = q->with_vectors;
    r->with_payloads = q->with_payloads;
    return vd_proto__filter_of(q->filter, VD_REQ_SCROLL, &r->filter, &d->filter_mem, err);
}

static vd_status set_payload_of(decoded *d, const Vectord__V1__SetPayloadRequest *q,
                                vd_set_payload_req *r, vd_err *err)
{
    r->collection = q->collection;
    r->payloads = (const vd_bytes *)q->payloads;
    r->n_payloads = q->n_payloads;
    r->merge = q->merge;
    vd_status s = ids_of(d, &q->ids, VD_REQ_SET_PAYLOAD, &r->ids, &r->n_ids, err);
    return s == VD_OK ? str_ids_of(d, q->str_ids, VD_REQ_SET_PAYLOAD, &r->str_ids, err) : s;
}

static vd_status search_of(decoded *d, const Vectord__V1__SearchRequest *q, vd_search_req *r,
                           vd_err *err)
{
    r->collection = q->collection;
    r->dim = q->dim;
    r->k = q->k;
    r->ef = q->ef;
    r->rerank = q->rerank;
    r->with_payloads = q->with_payloads;
    r->explain = q->explain;
    vd_status s = vd_proto__filter_of(q->filter, VD_REQ_SEARCH, &r->filter, &d->filter_mem, err);
    if (s != VD_OK) return s;
    return floats_of(d, &q->queries, VD_REQ_SEARCH, "queries", &r->queries, &r->n_floats, err);
}

static vd_status pindex_of(const char *collection, const char *field,
                           Vectord__V1__PayloadIndexKind kind, vd_request_kind k,
                           vd_pindex_req *r, vd_err *err)
{
    r->collection = collection;
    r->field = field;
    r->kind = (vd_pindex_kind)kind; /* the numbers agree (filter.c asserts it) */
    if (k == VD_REQ_DROP_PINDEX || vd_pindex_kind_name(r->kind)[0]) return VD_OK;
    return vd_err_set(err, VD_INVALID, "create_payload_index %s: kind %d is not one of KEYWORD "
                      "(1), INTEGER (2), FLOAT (3), BOOL (4)", collection, (int)kind);
}

/* The operation of d->pb into d->pub.op. */
static vd_status op_of(decoded *d, vd_err *err)
{
    const Vectord__V1__Request *q = d->pb;
    vd_request *r = &d->pub.op;
    vd_status s;
    switch (q->op_case) {
    case VECTORD__V1__REQUEST__OP_HELLO:
        d->pub.is_hello = 1;
        d->pub.hello.protocol_version = q->hello->protocol_version;
        d->pub.hello.token = q->hello->token ? q->hello->token : "";
        d->pub.hello.client_name = q->hello->client_name ? q->hello->client_name : "";
        return VD_OK;
    case VECTORD__V1__REQUEST__OP_CREATE_COLLECTION:
        r->kind = VD_REQ_CREATE;
        return create_of(q->create_collection, &r->create, err);
    case VECTORD__V1__REQUEST__OP_DROP_COLLECTION:
        r->kind = VD_REQ_DROP;
        r->name = q->drop_collection->name;
        return VD_OK;
    case VECTORD__V1__REQUEST__OP_LIST_COLLECTIONS:
        r->kind = VD_REQ_LIST;
        return VD_OK;
    case VECTORD__V1__REQUEST__OP_COLLECTION_INFO:
        r->kind = VD_REQ_INFO;
        r->name = q->collection_info->name;
        return VD_OK;
    case VECTORD__V1__REQUEST__OP_UPSERT:
        r->kind = VD_REQ_UPSERT;
        return upsert_of(d, q->upsert, &r->upsert, err);
    case VECTORD__V1__REQUEST__OP_DELETE:
        r->kind = VD_REQ_DELETE;
        r->del.collection = q->delete_->collection;
        if ((s = vd_proto__filter_of(q->delete_->filter, VD_REQ_DELETE, &r->del.filter,
                                     &d->filter_mem, err)) != VD_OK)
            return s;
        s = ids_of(d, &q->delete_->ids, VD_REQ_DELETE, &r->del.ids, &r->del.n_ids, err);
        return s ? s : str_ids_of(d, q->delete_->str_ids, VD_REQ_DELETE, &r->del.str_ids, err);
    case VECTORD__V1__REQUEST__OP_GET:
        r->kind = VD_REQ_GET;
        r->get.collection = q->get->collection;
        r->get.with_vectors = q->get->with_vectors;
        r->get.with_payloads = q->get->with_payloads;
        s = ids_of(d, &q->get->ids, VD_REQ_GET, &r->get.ids, &r->get.n_ids, err);
        return s ? s : str_ids_of(d, q->get->str_ids, VD_REQ_GET, &r->get.str_ids, err);
    case VECTORD__V1__REQUEST__OP_SCROLL:
        r->kind = VD_REQ_SCROLL;
        return scroll_of(d, q->scroll, &r->scroll, err);
    case VECTORD__V1__REQUEST__OP_SET_PAYLOAD:
        r->kind = VD_REQ_SET_PAYLOAD;
        return set_payload_of(d, q->set_payload, &r->set_payload, err);
    case VECTORD__V1__REQUEST__OP_SEARCH:
        r->kind = VD_REQ_SEARCH;
        return search_of(d, q->search, &r->search, err);
    case VECTORD__V1__REQUEST__OP_COUNT:
        r->kind = VD_REQ_COUNT;
        r->count.collection = q->count->collection;
        return vd_proto__filter_of(q->count->filter, VD_REQ_COUNT, &r->count.filter,
                                   &d->filter_mem, err);
    case VECTORD__V1__REQUEST__OP_CREATE_PAYLOAD_INDEX:
        r->kind = VD_REQ_CREATE_PINDEX;
        return pindex_of(q->create_payload_index->collection, q->create_payload_index->field,
                         q->create_payload_index->kind, r->kind, &r->pindex, err);
    case VECTORD__V1__REQUEST__OP_DROP_PAYLOAD_INDEX:
        r->kind = VD_REQ_DROP_PINDEX;
        return pindex_of(q->drop_payload_index->collection, q->drop_payload_index->field, 0,
                         r->kind, &r->pindex, err);
    case VECTORD__V1__REQUEST__OP_STATS:
        r->kind = VD_REQ_STATS;
        return VD_OK;
    default:
        return VD_OK; /* VD_REQ_NONE: the caller answers it */
    }
}

vd_status vd_proto_request_decode(const uint8_t *body, size_t len, vd_proto_request **out,
                                  vd_err *err)
{
    *out = NULL;
    vd_proto__alloc_failed = 0;
    uint64_t request_id;
    vd_request_kind kind;
    if (vd_proto__filter_prescan(body, len, &request_id, &kind, err) != VD_OK) {
        /* Not unpacked, but answerable: its id and operation are known. */
        decoded *d = vd_calloc(1, sizeof *d);
        if (!d) return vd_err_set(err, VD_NOMEM, "out of memory decoding a request");
        d->pub.request_id = request_id;
        d->pub.op.kind = kind;
        *out = &d->pub;
        return VD_INVALID;
    }
    Vectord__V1__Request *pb = vectord__v1__request__unpack(&vd_proto_allocator, len, body);
    if (!pb && vd_proto__alloc_failed)
        return vd_err_set(err, VD_NOMEM, "out of memory decoding a request of %zu bytes", len);
    if (!pb)
        return vd_err_set(err, VD_INVALID, "frame of %zu bytes is not a valid vectord.v1.Request",
                          len);
    decoded *d = vd_calloc(1, sizeof *d);
    if (!d) {
        vectord__v1__request__free_unpacked(pb, &vd_proto_allocator);
        return vd_err_set(err, VD_NOMEM, "out of memory decoding a request of %zu bytes", len);
    }
    d->pb = pb;
    d->pub.request_id = pb->request_id;
    *out = &d->pub;
    return op_of(d, err);
}

void vd_proto_request_free(vd_proto_request *r)
{
    if (!r) return;
    decoded *d = (decoded *)r;
    if (d->pb) vectord__v1__request__free_unpacked(d->pb, &vd_proto_allocator);
    for (int i = 0; i < d->n_copies; i++)
        vd_free(d->copies[i]);
    vd_free(d->filter_mem);
    vd_free(d);
}
