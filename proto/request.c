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
 * and queries whole float32s, the metric is one the enum names. Batch sizes, k, dims,
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
    void *copies[2]; /* arrays converted because the host is not little-endian (or the bytes
                      * are unaligned): at most ids and vectors */
    int n_copies;
} decoded;

/* Little-endian uint64 (width 8) or float32 (width 4) values from a bytes field: the bytes
 * themselves when they can be, else a converted copy the request owns. */
static vd_status array_of(decoded *d, const ProtobufCBinaryData *b, vd_request_kind k,
                          const char *field, size_t width, const void **out, size_t *n, vd_err *err)
{
    *out = NULL;
    *n = 0;
    if (b->len % width != 0)
        return vd_err_set(
            err, VD_INVALID, "%s: %s hold %zu bytes, not a multiple of %zu (little-endian %s)",
            vd_request_name(k), field, b->len, width, width == 8 ? "uint64" : "float32");
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
    vd_status s = array_of(d, b, k, "ids", 8, &p, n, err);
    *ids = p;
    return s;
}

static vd_status floats_of(decoded *d, const ProtobufCBinaryData *b, vd_request_kind k,
                           const char *field, const float **v, size_t *n, vd_err *err)
{
    const void *p = NULL;
    vd_status s = array_of(d, b, k, field, 4, &p, n, err);
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
        return vd_err_set(err, VD_INVALID, "create_collection %s: metric %d is not one of L2 "
                          "(1), COSINE (2), IP (3)", c->name, (int)c->metric);
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
    if (s != VD_OK) return s;
    return floats_of(d, &u->vectors, VD_REQ_UPSERT, "vectors", &r->vectors, &r->n_floats, err);
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
    return floats_of(d, &q->queries, VD_REQ_SEARCH, "queries", &r->queries, &r->n_floats, err);
}

/* The operation of d->pb into d->pub.op. */
static vd_status op_of(decoded *d, vd_err *err)
{
    const Vectord__V1__Request *q = d->pb;
    vd_request *r = &d->pub.op;
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
        return ids_of(d, &q->delete_->ids, VD_REQ_DELETE, &r->del.ids, &r->del.n_ids, err);
    case VECTORD__V1__REQUEST__OP_GET:
        r->kind = VD_REQ_GET;
        r->get.collection = q->get->collection;
        r->get.with_vectors = q->get->with_vectors;
        r->get.with_payloads = q->get->with_payloads;
        return ids_of(d, &q->get->ids, VD_REQ_GET, &r->get.ids, &r->get.n_ids, err);
    case VECTORD__V1__REQUEST__OP_SEARCH:
        r->kind = VD_REQ_SEARCH;
        return search_of(d, q->search, &r->search, err);
    case VECTORD__V1__REQUEST__OP_COUNT:
        r->kind = VD_REQ_COUNT;
        r->name = q->count->collection;
        return VD_OK;
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
    Vectord__V1__Request *pb = vectord__v1__request__unpack(&vd_proto_allocator, len, body);
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
    vectord__v1__request__free_unpacked(d->pb, &vd_proto_allocator);
    for (int i = 0; i < d->n_copies; i++)
        vd_free(d->copies[i]);
    vd_free(d);
}
