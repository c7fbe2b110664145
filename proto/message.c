/* proto/message.c: protobuf messages <-> checked views, and the status code table.
 *
 * Decoding turns untrusted bytes into a protobuf-c Request (allocated through vd_malloc so
 * failure injection reaches it), then the helpers here check every size relation the schema
 * cannot express - ids are whole uint64s, vectors are exactly n x dim floats, queries are
 * whole rows, counts within max_batch, k within max_k - and say precisely what was wrong,
 * with the numbers. What needs the store (names, dims of an existing collection, JSON,
 * NaN/Inf, duplicate ids) is checked by the caller or the store, not here.
 *
 * Views borrow the request's bytes: protobuf-c allocates each bytes field with malloc, so
 * float and uint64 data are aligned and used in place on little-endian hosts; ids are still
 * decoded into their own array (cheap, 8 bytes per id, and correct on any host).
 *
 * Responses are packed into one allocation: 4-byte big-endian length, then the body, so the
 * loop thread writes a frame with one uv_write. */
#include "proto/vd_proto.h"
#include "index/vd_index.h"

#include <inttypes.h>
#include <stdio.h>

_Static_assert(sizeof(float) == 4, "float32 wire format");

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* ---- Status codes ----------------------------------------------------------------------- */

/* The reverse lookup takes the first row with a code: FULL before NOMEM, INTERNAL before IO. */
static const struct {
    vd_status status;
    vd_pb_code code;
} code_table[] = {
    {VD_OK, VECTORD__V1__CODE__OK},
    {VD_INVALID, VECTORD__V1__CODE__INVALID_ARGUMENT},
    {VD_NOTFOUND, VECTORD__V1__CODE__NOT_FOUND},
    {VD_EXISTS, VECTORD__V1__CODE__ALREADY_EXISTS},
    {VD_FULL, VECTORD__V1__CODE__RESOURCE_EXHAUSTED},
    {VD_NOMEM, VECTORD__V1__CODE__RESOURCE_EXHAUSTED},
    {VD_UNAUTHENTICATED, VECTORD__V1__CODE__UNAUTHENTICATED},
    {VD_UNAVAILABLE, VECTORD__V1__CODE__UNAVAILABLE},
    {VD_VERSION, VECTORD__V1__CODE__FAILED_PRECONDITION},
    {VD_CORRUPT, VECTORD__V1__CODE__DATA_LOSS},
    {VD_INTERNAL, VECTORD__V1__CODE__INTERNAL},
    {VD_IO, VECTORD__V1__CODE__INTERNAL},
};

vd_pb_code vd_proto_code_of(vd_status s)
{
    for (size_t i = 0; i < VD_ARRAY_LEN(code_table); i++)
        if (code_table[i].status == s) return code_table[i].code;
    return VECTORD__V1__CODE__INTERNAL;
}

vd_status vd_proto_status_of(vd_pb_code code)
{
    for (size_t i = 0; i < VD_ARRAY_LEN(code_table); i++)
        if (code_table[i].code == code) return code_table[i].status;
    return VD_INTERNAL;
}

const char *vd_proto_code_name(vd_pb_code code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&vectord__v1__code__descriptor, (int)code);
    return v ? v->name : "UNKNOWN_CODE";
}

/* ---- Allocation --------------------------------------------------------------------------- */

static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    return vd_malloc(size);
}
static void pb_free(void *data, void *p)
{
    (void)data;
    vd_free(p);
}
ProtobufCAllocator vd_proto_allocator = {pb_alloc, pb_free, NULL};

/* ---- Requests ----------------------------------------------------------------------------- */

vd_status vd_proto_request_decode(const uint8_t *body, size_t len, vd_pb_request **out, vd_err *err)
{
    *out = vectord__v1__request__unpack(&vd_proto_allocator, len, body);
    if (!*out)
        return vd_err_set(err, VD_INVALID, "frame of %zu bytes is not a valid vectord.v1.Request",
                          len);
    return VD_OK;
}

void vd_proto_request_free(vd_pb_request *r)
{
    if (r) vectord__v1__request__free_unpacked(r, &vd_proto_allocator);
}

const char *vd_proto_op_name(int op_case)
{
    switch (op_case) {
    case VECTORD__V1__REQUEST__OP_HELLO:
        return "hello";
    case VECTORD__V1__REQUEST__OP_CREATE_COLLECTION:
        return "create_collection";
    case VECTORD__V1__REQUEST__OP_DROP_COLLECTION:
        return "drop_collection";
    case VECTORD__V1__REQUEST__OP_LIST_COLLECTIONS:
        return "list_collections";
    case VECTORD__V1__REQUEST__OP_COLLECTION_INFO:
        return "collection_info";
    case VECTORD__V1__REQUEST__OP_UPSERT:
        return "upsert";
    case VECTORD__V1__REQUEST__OP_DELETE:
        return "delete";
    case VECTORD__V1__REQUEST__OP_GET:
        return "get";
    case VECTORD__V1__REQUEST__OP_SEARCH:
        return "search";
    case VECTORD__V1__REQUEST__OP_COUNT:
        return "count";
    case VECTORD__V1__REQUEST__OP_STATS:
        return "stats";
    default:
        return "none";
    }
}

vd_status vd_proto_ids(const ProtobufCBinaryData *b, const char *what, uint32_t max_batch,
                       uint64_t **ids_out, size_t *n_out, vd_err *err)
{
    *ids_out = NULL;
    *n_out = 0;
    if (b->len % 8 != 0)
        return vd_err_set(err, VD_INVALID,
                          "%s: ids hold %zu bytes, not a multiple of 8 (little-endian uint64)",
                          what, b->len);
    size_t n = b->len / 8;
    if (n == 0) return vd_err_set(err, VD_INVALID, "%s: empty batch (no ids)", what);
    if (n > max_batch)
        return vd_err_set(err, VD_INVALID, "%s: %zu ids exceed max_batch %" PRIu32, what, n,
                          max_batch);
    uint64_t *ids = vd_malloc(n * sizeof *ids);
    if (!ids) return vd_err_set(err, VD_NOMEM, "%s: out of memory for %zu ids", what, n);
    for (size_t i = 0; i < n; i++)
        ids[i] = vd_get_u64le(b->data + 8 * i);
    *ids_out = ids;
    *n_out = n;
    return VD_OK;
}

void vd_floats_free(vd_floats *f)
{
    vd_free(f->owned);
    memset(f, 0, sizeof *f);
}

/* Borrows aligned little-endian bytes; copies (and byte-swaps if needed) otherwise. */
static vd_status floats_view(const ProtobufCBinaryData *b, size_t n_rows, vd_floats *out,
                             vd_err *err)
{
    size_t n = b->len / 4;
    out->n_rows = n_rows;
    out->owned = NULL;
    if (host_is_little_endian() && ((uintptr_t)b->data % _Alignof(float)) == 0) {
        out->v = (const float *)(const void *)b->data;
        return VD_OK;
    }
    float *f = vd_malloc(n * sizeof *f + 1);
    if (!f) return vd_err_set(err, VD_NOMEM, "out of memory for %zu floats", n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = vd_get_u32le(b->data + 4 * i);
        memcpy(&f[i], &u, 4);
    }
    out->owned = f;
    out->v = f;
    return VD_OK;
}

vd_status vd_proto_vectors(const ProtobufCBinaryData *b, size_t n_ids, uint32_t dim,
                           const char *collection, vd_floats *out, vd_err *err)
{
    memset(out, 0, sizeof *out);
    uint64_t expect = (uint64_t)n_ids * dim * 4;
    if (b->len != expect)
        return vd_err_set(err, VD_INVALID,
                          "vectors hold %zu bytes, %zu ids x %" PRIu32 " dims x 4 bytes = %" PRIu64
                          " expected (collection %s)",
                          b->len, n_ids, dim, expect, collection);
    return floats_view(b, n_ids, out, err);
}

vd_status vd_proto_queries(const ProtobufCBinaryData *b, uint32_t dim, const char *collection,
                           uint32_t max_batch, vd_floats *out, vd_err *err)
{
    memset(out, 0, sizeof *out);
    size_t row = (size_t)dim * 4;
    if (b->len == 0) return vd_err_set(err, VD_INVALID, "search: no queries (empty queries bytes)");
    if (row == 0 || b->len % row != 0)
        return vd_err_set(err, VD_INVALID,
                          "search: queries hold %zu bytes, not a multiple of %zu (%" PRIu32
                          " dims x 4 bytes, collection %s)",
                          b->len, row, dim, collection);
    size_t nq = b->len / row;
    if (nq > max_batch)
        return vd_err_set(err, VD_INVALID, "search: %zu queries exceed max_batch %" PRIu32, nq,
                          max_batch);
    return floats_view(b, nq, out, err);
}

vd_status vd_proto_check_k(uint32_t k, uint32_t max_k, vd_err *err)
{
    if (k == 0) return vd_err_set(err, VD_INVALID, "search: k is 0; k must be 1..%" PRIu32, max_k);
    if (k > max_k)
        return vd_err_set(err, VD_INVALID, "search: k %" PRIu32 " exceeds max_k %" PRIu32, k,
                          max_k);
    return VD_OK;
}

vd_status vd_proto_payloads(const Vectord__V1__UpsertRequest *u, size_t n_ids,
                            const uint8_t ***ptrs, uint32_t **lens, vd_err *err)
{
    *ptrs = NULL;
    *lens = NULL;
    if (u->n_payloads == 0) return VD_OK;
    if (u->n_payloads != n_ids)
        return vd_err_set(err, VD_INVALID,
                          "upsert: %zu payloads for %zu ids (send none, or one per id; "
                          "an empty payload means none)",
                          u->n_payloads, n_ids);
    const uint8_t **p = vd_malloc(n_ids * sizeof *p);
    uint32_t *l = vd_malloc(n_ids * sizeof *l);
    if (!p || !l) {
        vd_free(p);
        vd_free(l);
        return vd_err_set(err, VD_NOMEM, "upsert: out of memory for %zu payloads", n_ids);
    }
    for (size_t i = 0; i < n_ids; i++) {
        const ProtobufCBinaryData *b = &u->payloads[i];
        /* A frame is at most 4 GiB - 1, so every payload length fits in uint32. */
        p[i] = b->len ? b->data : NULL;
        l[i] = (uint32_t)b->len;
    }
    *ptrs = p;
    *lens = l;
    return VD_OK;
}

vd_status vd_proto_check_create(const Vectord__V1__CreateCollectionRequest *c, uint32_t max_dim,
                                vd_err *err)
{
    /* The ranges are the index's table; the server may announce a smaller max_dim. */
    const struct { vd_param p; uint32_t v; } checks[] = {
        {VD_PARAM_DIM, c->dim}, {VD_PARAM_M, c->m},
        {VD_PARAM_EF_CONSTRUCTION, c->ef_construction}, {VD_PARAM_EF_SEARCH, c->ef_search}};
    for (size_t i = 0; i < VD_ARRAY_LEN(checks); i++)
        if (vd_param_resolve(checks[i].p, checks[i].v, NULL, err) != VD_OK)
            return vd_err_prefix(err, "create_collection %s", c->name);
    if (c->dim > max_dim)
        return vd_err_set(err, VD_INVALID,
                          "create_collection %s: dim %" PRIu32 " is outside 1..%" PRIu32,
                          c->name, c->dim, max_dim);
    switch (c->metric) {
    case VECTORD__V1__METRIC__L2:
    case VECTORD__V1__METRIC__COSINE:
    case VECTORD__V1__METRIC__IP:
        return VD_OK;
    default:
        return vd_err_set(err, VD_INVALID,
                          "create_collection %s: metric %d is not one of L2 (1), COSINE (2), "
                          "IP (3)",
                          c->name, (int)c->metric);
    }
}

/* ---- Responses ---------------------------------------------------------------------------- */

size_t vd_proto_response_frame_size(const vd_pb_response *r)
{
    return VD_FRAME_HEADER_BYTES + vectord__v1__response__get_packed_size(r);
}

size_t vd_proto_response_pack(const vd_pb_response *r, uint8_t *dst)
{
    size_t body = vectord__v1__response__pack(r, dst + VD_FRAME_HEADER_BYTES);
    vd_frame_header_put(dst, (uint32_t)body);
    return VD_FRAME_HEADER_BYTES + body;
}

vd_status vd_proto_response_frame(const vd_pb_response *r, uint32_t max_frame, uint8_t **out,
                                  size_t *len_out, vd_err *err)
{
    *out = NULL;
    *len_out = 0;
    size_t body = vectord__v1__response__get_packed_size(r);
    if (body > max_frame)
        return vd_err_set(err, VD_FULL,
                          "response of %zu bytes exceeds max_frame_bytes %" PRIu32
                          "; ask for fewer ids, queries or a smaller k",
                          body, max_frame);
    uint8_t *buf = vd_malloc(VD_FRAME_HEADER_BYTES + body);
    if (!buf) return vd_err_set(err, VD_NOMEM, "response of %zu bytes: out of memory", body);
    *len_out = vd_proto_response_pack(r, buf);
    *out = buf;
    return VD_OK;
}

uint8_t *vd_proto_error_frame(uint64_t request_id, vd_pb_code code, const char *msg,
                              size_t *len_out)
{
    Vectord__V1__Status st = VECTORD__V1__STATUS__INIT;
    Vectord__V1__Response r = VECTORD__V1__RESPONSE__INIT;
    st.code = code;
    st.message = (char *)(msg ? msg : "");
    r.request_id = request_id;
    r.status = &st;
    size_t n = vd_proto_response_frame_size(&r);
    uint8_t *buf = vd_malloc(n);
    if (!buf) return NULL;
    *len_out = vd_proto_response_pack(&r, buf);
    return buf;
}

vd_status vd_proto_response_decode(const uint8_t *body, size_t len, vd_pb_response **out,
                                   vd_err *err)
{
    *out = vectord__v1__response__unpack(&vd_proto_allocator, len, body);
    if (!*out)
        return vd_err_set(err, VD_INVALID, "frame of %zu bytes is not a valid vectord.v1.Response",
                          len);
    return VD_OK;
}

void vd_proto_response_free(vd_pb_response *r)
{
    if (r) vectord__v1__response__free_unpacked(r, &vd_proto_allocator);
}
