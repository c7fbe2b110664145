/* tests/unit/test_proto_message.c: the codec both ways - Request frames decoded into domain
 * requests (what the wire format refuses, with its exact message; arrays read in place),
 * domain results encoded into Response frames (round trips through the generated decoder,
 * the max_frame refusal), the status code table, and allocation failure on every path. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/vd_proto_pb.h"

static ProtobufCBinaryData bin(const void *p, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)p};
    return b;
}

/* Packs r with request_id 42 and decodes it; returns the status, *out as the decoder left
 * it. */
static vd_status decode(Vectord__V1__Request *r, vd_proto_request **out, vd_err *e)
{
    static uint8_t buf[1 << 16];
    r->request_id = 42;
    size_t n = vectord__v1__request__pack(r, buf);
    return vd_proto_request_decode(buf, n, out, e);
}

/* Decodes a whole response frame (checking its header) into the generated struct. */
static vd_pb_response *unframe(const uint8_t *f, size_t n)
{
    ck_assert_uint_eq(vd_get_u32be(f) + 4, n);
    vd_pb_response *r = NULL;
    ck_assert_int_eq(vd_proto_response_decode(f + 4, n - 4, &r, NULL), VD_OK);
    return r;
}

START_TEST(status_table_maps_both_ways)
{
    ck_assert_int_eq(vd_proto_code_of(VD_NOTFOUND), VD_CODE_NOT_FOUND);
    ck_assert_int_eq(vd_proto_code_of(VD_INVALID), VD_CODE_INVALID_ARGUMENT);
    ck_assert_int_eq(vd_proto_code_of(VD_EXISTS), VD_CODE_ALREADY_EXISTS);
    ck_assert_int_eq(vd_proto_code_of(VD_FULL), VD_CODE_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(vd_proto_code_of(VD_NOMEM), VD_CODE_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(vd_proto_code_of(VD_CORRUPT), VD_CODE_DATA_LOSS);
    ck_assert_int_eq(vd_proto_code_of(VD_IO), VD_CODE_INTERNAL);
    ck_assert_int_eq(vd_proto_code_of(VD_VERSION), VD_CODE_FAILED_PRECONDITION);
    ck_assert_int_eq(vd_proto_code_of(VD_PRECONDITION), VD_CODE_FAILED_PRECONDITION);
    ck_assert_int_eq(vd_proto_code_of(VD_UNAUTHENTICATED), VD_CODE_UNAUTHENTICATED);
    ck_assert_int_eq(vd_proto_code_of(VD_UNAVAILABLE), VD_CODE_UNAVAILABLE);
    ck_assert_int_eq(vd_proto_code_of((vd_status)-999), VD_CODE_INTERNAL);
    ck_assert_int_eq(vd_proto_status_of(VD_CODE_RESOURCE_EXHAUSTED), VD_FULL);
    ck_assert_int_eq(vd_proto_status_of(VD_CODE_INTERNAL), VD_INTERNAL);
    ck_assert_int_eq(vd_proto_status_of(VD_CODE_ABORTED), VD_INTERNAL);
    ck_assert_str_eq(vd_proto_code_name(VD_CODE_INVALID_ARGUMENT), "INVALID_ARGUMENT");
    ck_assert_str_eq(vd_proto_code_name(VD_CODE_UNAUTHENTICATED), "UNAUTHENTICATED");
    ck_assert_str_eq(vd_proto_code_name((vd_code)77), "UNKNOWN_CODE");
    /* our enum is the wire's */
    ck_assert_int_eq(VD_CODE_DATA_LOSS, VECTORD__V1__CODE__DATA_LOSS);
}
END_TEST

START_TEST(search_decodes_in_place_with_its_dim)
{
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    Vectord__V1__SearchRequest s = VECTORD__V1__SEARCH_REQUEST__INIT;
    float q[6] = {1, 2, 3, 4, 5, 6};
    s.collection = "docs";
    s.queries = bin(q, sizeof q);
    s.k = 5;
    s.ef = 77;
    s.dim = 3;
    s.with_payloads = 1;
    r.op_case = VECTORD__V1__REQUEST__OP_SEARCH;
    r.search = &s;
    vd_proto_request *out = NULL;
    ck_assert_int_eq(decode(&r, &out, NULL), VD_OK);
    ck_assert_uint_eq(out->request_id, 42);
    ck_assert(!out->is_hello);
    ck_assert_int_eq(out->op.kind, VD_REQ_SEARCH);
    const vd_search_req *sr = &out->op.search;
    ck_assert_str_eq(sr->collection, "docs");
    ck_assert_uint_eq(sr->n_floats, 6);
    ck_assert(sr->queries[5] == 6);
    ck_assert_uint_eq(sr->dim, 3);
    ck_assert_uint_eq(sr->k, 5);
    ck_assert_uint_eq(sr->ef, 77);
    ck_assert(sr->with_payloads);
    vd_proto_request_free(out);
    /* an old client's request: no dim */
    s.dim = 0;
    ck_assert_int_eq(decode(&r, &out, NULL), VD_OK);
    ck_assert_uint_eq(out->op.search.dim, 0);
    vd_proto_request_free(out);
}
END_TEST

START_TEST(every_operation_decodes_into_its_kind)
{
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    Vectord__V1__UpsertRequest u = VECTORD__V1__UPSERT_REQUEST__INIT;
    uint8_t ids[16];
    vd_put_u64le(ids, 7);
    vd_put_u64le(ids + 8, UINT64_MAX - 1);
    float v[4] = {1, 2, 3, 4};
    ProtobufCBinaryData p[2] = {bin("{\"a\":1}", 7), bin("", 0)};
    u.collection = "docs";
    u.ids = bin(ids, 16);
    u.vectors = bin(v, sizeof v);
    u.n_payloads = 2;
    u.payloads = p;
    r.op_case = VECTORD__V1__REQUEST__OP_UPSERT;
    r.upsert = &u;
    vd_proto_request *out = NULL;
    ck_assert_int_eq(decode(&r, &out, NULL), VD_OK);
    const vd_upsert_req *up = &out->op.upsert;
    ck_assert_int_eq(out->op.kind, VD_REQ_UPSERT);
    ck_assert_uint_eq(up->n_ids, 2);
    ck_assert(up->ids[0] == 7 && up->ids[1] == UINT64_MAX - 1);
    ck_assert_uint_eq(up->n_floats, 4);
    ck_assert_uint_eq(up->dim, 0);
    ck_assert_uint_eq(up->n_payloads, 2);
    ck_assert_uint_eq(up->payloads[0].len, 7);
    ck_assert(memcmp(up->payloads[0].data, "{\"a\":1}", 7) == 0);
    ck_assert_uint_eq(up->payloads[1].len, 0);
    vd_proto_request_free(out);

    Vectord__V1__GetRequest g = VECTORD__V1__GET_REQUEST__INIT;
    g.collection = "docs";
    g.ids = bin(ids, 8);
    g.with_vectors = 1;
    r.op_case = VECTORD__V1__REQUEST__OP_GET;
    r.get = &g;
    ck_assert_int_eq(decode(&r, &out, NULL), VD_OK);
    ck_assert_int_eq(out->op.kind, VD_REQ_GET);
    ck_assert(out->op.get.n_ids == 1 && out->op.get.ids[0] == 7);
    ck_assert(out->op.get.with_vectors && !out->op.get.with_payloads);
    vd_proto_request_free(out);

    Vectord__V1__CreateCollectionRequest c = VECTORD__V1__CREATE_COLLECTION_REQUEST__INIT;
    c.name = "docs";
    c.dim = 384;
    c.metric = VECTORD__V1__METRIC__COSINE;
    c.m = 12;
    r.op_case = VECTORD__V1__REQUEST__OP_CREATE_COLLECTION;
    r.create_collection = &c;
    ck_assert_int_eq(decode(&r, &out, NULL), VD_OK);
    ck_assert_int_eq(out->op.kind, VD_REQ_CREATE);
    ck_assert_str_eq(out->op.create.name, "docs");
    ck_assert(out->op.create.dim == 384 && out->op.create.m == 12);
    ck_assert_int_eq(out->op.create.metric, VD_METRIC_COSINE);
    vd_proto_request_free(out);

    Vectord__V1__CountRequest n = VECTORD__V1__COUNT_REQUEST__INIT;
    n.collection = "docs";
    r.op_case = VECTORD__V1__REQUEST__OP_COUNT;
    r.count = &n;
    ck_assert_int_eq(decode(&r, &out, NULL), VD_OK);
    ck_assert_int_eq(out->op.kind, VD_REQ_COUNT);
    ck_assert_str_eq(out->op.count.collection, "docs");
    ck_assert_ptr_null(out->op.count.filter);
    vd_proto_request_free(out);

    Vectord__V1__HelloRequest h = VECTORD__V1__HELLO_REQUEST__INIT;
    h.protocol_version = 1;
    h.token = "t";
    r.op_case = VECTORD__V1__REQUEST__OP_HELLO;
    r.hello = &h;
    ck_assert_int_eq(decode(&r, &out, NULL), VD_OK);
    ck_assert(out->is_hello);
    ck_assert_int_eq(out->op.kind, VD_REQ_NONE);
    ck_assert_uint_eq(out->hello.protocol_version, 1);
    ck_assert_str_eq(out->hello.token, "t");
    ck_assert_str_eq(out->hello.client_name, "");
    vd_proto_request_free(out);

    r.op_case = VECTORD__V1__REQUEST__OP__NOT_SET; /* an operation from a newer protocol */
    ck_assert_int_eq(decode(&r, &out, NULL), VD_OK);
    ck_assert(!out->is_hello);
    ck_assert_int_eq(out->op.kind, VD_REQ_NONE);
    ck_assert_str_eq(vd_request_name(out->op.kind), "none");
    vd_proto_request_free(out);
}
END_TEST

START_TEST(wire_format_errors_keep_the_request_id)
{
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    Vectord__V1__DeleteRequest d = VECTORD__V1__DELETE_REQUEST__INIT;
    uint8_t raw[20] = {1};
    d.collection = "docs";
    d.ids = bin(raw, 20);
    r.op_case = VECTORD__V1__REQUEST__OP_DELETE;
    r.delete_ = &d;
    vd_proto_request *out = NULL;
    vd_err e;
    ck_assert_int_eq(decode(&r, &out, &e), VD_INVALID);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(out->request_id, 42);
    ck_assert_int_eq(out->op.kind, VD_REQ_DELETE);
    ck_assert_str_eq(e.msg,
                     "delete: ids hold 20 bytes, not a multiple of 8 (little-endian uint64)");
    vd_proto_request_free(out);

    Vectord__V1__SearchRequest s = VECTORD__V1__SEARCH_REQUEST__INIT;
    s.queries = bin(raw, 18);
    r.op_case = VECTORD__V1__REQUEST__OP_SEARCH;
    r.search = &s;
    ck_assert_int_eq(decode(&r, &out, &e), VD_INVALID);
    ck_assert_str_eq(e.msg,
                     "search: queries hold 18 bytes, not a multiple of 4 (little-endian float32)");
    vd_proto_request_free(out);

    Vectord__V1__CreateCollectionRequest c = VECTORD__V1__CREATE_COLLECTION_REQUEST__INIT;
    c.name = "docs";
    c.dim = 8;
    r.op_case = VECTORD__V1__REQUEST__OP_CREATE_COLLECTION;
    r.create_collection = &c;
    ck_assert_int_eq(decode(&r, &out, &e), VD_INVALID);
    ck_assert_str_eq(e.msg,
                     "create_collection docs: metric 0 is not one of L2 (1), COSINE (2), IP (3)");
    vd_proto_request_free(out);

    /* bytes that are not a Request at all: nothing to answer but the connection */
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99};
    ck_assert_int_eq(vd_proto_request_decode(junk, sizeof junk, &out, &e), VD_INVALID);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(e.msg, "frame of 7 bytes is not a valid vectord.v1.Request");
    vd_proto_request_free(NULL);
}
END_TEST

START_TEST(search_results_encode_little_endian_with_payloads)
{
    vd_result res = {.kind = VD_REQ_SEARCH};
    vd_search_result *s = &res.search;
    s->nq = 2;
    s->k = 2;
    s->ids = vd_malloc(4 * sizeof *s->ids);
    s->distances = vd_malloc(4 * sizeof *s->distances);
    s->payloads = vd_calloc(4, sizeof *s->payloads);
    uint64_t ids[4] = {5, 1ull << 40, 9, VD_ID_NONE};
    float d[4] = {0.5f, 1.5f, 2, INFINITY};
    memcpy(s->ids, ids, sizeof ids);
    memcpy(s->distances, d, sizeof d);
    s->payloads[1] = (vd_bytes){7, (const uint8_t *)"{\"x\":2}"};
    uint8_t *f = NULL;
    size_t n = 0;
    ck_assert_int_eq(vd_proto_encode_result(9, &res, NULL, 1 << 20, &f, &n, NULL), VD_OK);
    vd_result_free(&res);
    vd_pb_response *r = unframe(f, n);
    ck_assert_uint_eq(r->request_id, 9);
    ck_assert_int_eq(r->status->code, 0);
    ck_assert_int_eq(r->result_case, VECTORD__V1__RESPONSE__RESULT_SEARCH);
    ck_assert(r->search->nq == 2 && r->search->k == 2);
    ck_assert_uint_eq(r->search->ids.len, 32);
    ck_assert(vd_get_u64le(r->search->ids.data + 8) == 1ull << 40);
    ck_assert(vd_get_u64le(r->search->ids.data + 24) == VD_ID_NONE);
    uint32_t u = vd_get_u32le(r->search->distances.data + 4);
    float x;
    memcpy(&x, &u, 4);
    ck_assert(x == 1.5f);
    ck_assert_uint_eq(r->search->n_payloads, 4);
    ck_assert_uint_eq(r->search->payloads[0].len, 0);
    ck_assert(r->search->payloads[1].len == 7 && !memcmp(r->search->payloads[1].data, "{\"x", 3));
    vd_proto_response_free(r);
    vd_free(f);
}
END_TEST

START_TEST(get_list_info_and_stats_results_round_trip)
{
    vd_result res = {.kind = VD_REQ_GET};
    res.get.n = 2;
    res.get.dim = 2;
    res.get.found = vd_calloc(2, 1);
    res.get.vectors = vd_calloc(4, sizeof(float));
    res.get.found[1] = 1;
    res.get.vectors[2] = 3.25f;
    uint8_t *f = NULL;
    size_t n = 0;
    ck_assert_int_eq(vd_proto_encode_result(3, &res, NULL, 1 << 20, &f, &n, NULL), VD_OK);
    vd_result_free(&res);
    vd_pb_response *r = unframe(f, n);
    ck_assert(r->get->n_found == 2 && !r->get->found[0] && r->get->found[1]);
    ck_assert_uint_eq(r->get->vectors.len, 16);
    ck_assert_uint_eq(r->get->n_payloads, 0);
    vd_proto_response_free(r);
    vd_free(f);

    vd_collection_info items[2] = {{.count = 3}, {.count = 4}};
    snprintf(items[0].params.name, sizeof items[0].params.name, "a");
    snprintf(items[1].params.name, sizeof items[1].params.name, "b");
    items[1].params.metric = VD_METRIC_IP;
    res = (vd_result){.kind = VD_REQ_LIST};
    res.list.items = vd_malloc(sizeof items);
    memcpy(res.list.items, items, sizeof items);
    res.list.n = 2;
    ck_assert_int_eq(vd_proto_encode_result(4, &res, NULL, 1 << 20, &f, &n, NULL), VD_OK);
    vd_result_free(&res);
    r = unframe(f, n);
    ck_assert_uint_eq(r->list_collections->n_collections, 2);
    ck_assert_str_eq(r->list_collections->collections[1]->name, "b");
    ck_assert_int_eq(r->list_collections->collections[1]->metric, VECTORD__V1__METRIC__IP);
    ck_assert_uint_eq(r->list_collections->collections[1]->count, 4);
    vd_proto_response_free(r);
    vd_free(f);

    res = (vd_result){.kind = VD_REQ_STATS, .stats = {.collections = 2, .points = 7}};
    vd_server_stats st = {.server_version = "9.9", .connections = 5, .reader_threads = 3};
    ck_assert_int_eq(vd_proto_encode_result(5, &res, &st, 1 << 20, &f, &n, NULL), VD_OK);
    r = unframe(f, n);
    ck_assert_str_eq(r->stats->server_version, "9.9");
    ck_assert(r->stats->connections == 5 && r->stats->reader_threads == 3);
    ck_assert(r->stats->collections == 2 && r->stats->points == 7);
    vd_proto_response_free(r);
    vd_free(f);

    res = (vd_result){.kind = VD_REQ_UPSERT, .n = 11};
    ck_assert_int_eq(vd_proto_encode_result(6, &res, NULL, 1 << 20, &f, &n, NULL), VD_OK);
    r = unframe(f, n);
    ck_assert_uint_eq(r->upsert->written, 11);
    vd_proto_response_free(r);
    vd_free(f);
}
END_TEST

START_TEST(hello_and_error_frames)
{
    vd_limits l = {.max_frame_bytes = 1000,
                   .max_batch = 2,
                   .max_k = 3,
                   .max_dim = 4,
                   .max_connections = 5,
                   .idle_timeout_ms = 6};
    uint8_t *f = NULL;
    size_t n = 0;
    ck_assert_int_eq(vd_proto_encode_hello(1, &l, "0.1.0", &f, &n, NULL), VD_OK);
    vd_pb_response *r = unframe(f, n);
    ck_assert_uint_eq(r->hello->protocol_version, VD_PROTOCOL_VERSION);
    ck_assert_str_eq(r->hello->server_version, "0.1.0");
    ck_assert(r->hello->limits->max_frame_bytes == 1000 && r->hello->limits->max_batch == 2 &&
              r->hello->limits->max_k == 3 && r->hello->limits->max_dim == 4 &&
              r->hello->limits->max_connections == 5 && r->hello->limits->idle_timeout_ms == 6);
    vd_proto_response_free(r);
    vd_free(f);

    f = vd_proto_error_frame(9, VD_CODE_NOT_FOUND, "search: collection x does not exist", &n);
    ck_assert_ptr_nonnull(f);
    r = unframe(f, n);
    ck_assert_uint_eq(r->request_id, 9);
    ck_assert_int_eq(r->status->code, VD_CODE_NOT_FOUND);
    ck_assert_str_eq(r->status->message, "search: collection x does not exist");
    ck_assert_int_eq(r->result_case, VECTORD__V1__RESPONSE__RESULT__NOT_SET);
    vd_proto_response_free(r);
    vd_free(f);
}
END_TEST

START_TEST(a_response_over_max_frame_gets_the_one_message)
{
    vd_result res = {.kind = VD_REQ_GET};
    res.get.n = 1;
    res.get.found = vd_calloc(1, 1);
    res.get.payloads = vd_calloc(1, sizeof *res.get.payloads);
    static uint8_t blob[5000];
    res.get.payloads[0] = (vd_bytes){sizeof blob, blob};
    vd_err e;
    uint8_t *f = (uint8_t *)&e;
    size_t n = 1;
    ck_assert_int_eq(vd_proto_encode_result(1, &res, NULL, 4096, &f, &n, &e), VD_FULL);
    ck_assert_ptr_null(f);
    ck_assert_str_eq(e.msg, "get: the response would hold 5014 bytes, over max_frame_bytes 4096; "
                            "ask for less per request");
    ck_assert_int_eq(vd_proto_encode_result(1, &res, NULL, 1 << 20, &f, &n, NULL), VD_OK);
    ck_assert_uint_eq(vd_get_u32be(f) + 4, n);
    vd_free(f);
    vd_result_free(&res);
}
END_TEST

START_TEST(every_allocation_failure_is_reported_not_crashed)
{
    /* Fails the 1st, 2nd, ... allocation of decode + encode until it all succeeds. */
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    Vectord__V1__UpsertRequest u = VECTORD__V1__UPSERT_REQUEST__INIT;
    uint8_t ids[16] = {1, 0, 0, 0, 0, 0, 0, 0, 2};
    float v[2] = {1, 2};
    ProtobufCBinaryData p[2] = {bin("{}", 2), bin("", 0)};
    u.collection = "docs";
    u.ids = bin(ids, sizeof ids);
    u.vectors = bin(v, sizeof v);
    u.n_payloads = 2;
    u.payloads = p;
    r.op_case = VECTORD__V1__REQUEST__OP_UPSERT;
    r.upsert = &u;
    uint8_t buf[256];
    size_t n = vectord__v1__request__pack(&r, buf);
    int succeeded = 0;
    for (long fail = 0; fail < 64 && !succeeded; fail++) {
        vd_proto_request *q = NULL;
        vd_err e;
        uint8_t *f = NULL, *ef = NULL;
        size_t flen = 0, eflen = 0;
        vd_result res = {.kind = VD_REQ_GET};
        vd_alloc_fail_after(fail);
        vd_status s = vd_proto_request_decode(buf, n, &q, &e);
        if (s == VD_OK) {
            res.get.n = 2;
            res.get.found = vd_calloc(2, 1);
            s = res.get.found ? vd_proto_encode_result(1, &res, NULL, 1 << 20, &f, &flen, &e)
                              : VD_NOMEM;
        }
        if (s == VD_OK) ef = vd_proto_error_frame(1, VD_CODE_OK, "ok", &eflen);
        vd_alloc_fail_after(-1);
        if (s == VD_OK && ef)
            succeeded = 1;
        else if (s != VD_OK)
            ck_assert_msg(s == VD_NOMEM || s == VD_INVALID, "status %d", s);
        vd_free(f);
        vd_free(ef);
        vd_result_free(&res);
        vd_proto_request_free(q);
    }
    ck_assert(succeeded);
}
END_TEST

/* vd_proto_filter_decode of `len` bytes fails with VD_INVALID and exactly `msg`. */
static void s_expect_invalid(const uint8_t *b, size_t len, const char *msg)
{
    const vd_filter *t = (const vd_filter *)1;
    void *mem = (void *)1;
    vd_err e;
    ck_assert_int_eq(vd_proto_filter_decode(b, len, VD_REQ_COUNT, &t, &mem, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, msg);
    ck_assert_ptr_null(t);
    ck_assert_ptr_null(mem);
}

START_TEST(a_bare_filter_decodes_through_the_same_guard)
{
    /* {"$not": {"a": 1}} as the Python client serializes it */
    Vectord__V1__Filter f, inner; /* the _INIT macros of oneof messages warn: init calls */
    Vectord__V1__Condition c = VECTORD__V1__CONDITION__INIT;
    Vectord__V1__FilterValue v, *vs[1] = {&v};
    vectord__v1__filter__init(&f);
    vectord__v1__filter__init(&inner);
    vectord__v1__filter_value__init(&v);
    v.value_case = VECTORD__V1__FILTER_VALUE__VALUE_I;
    v.i = 1;
    c.field = "a";
    c.op = VECTORD__V1__FILTER_OP__FILTER_EQ;
    c.n_values = 1;
    c.values = vs;
    inner.node_case = VECTORD__V1__FILTER__NODE_CONDITION;
    inner.condition = &c;
    f.node_case = VECTORD__V1__FILTER__NODE_NEGATE;
    f.negate = &inner;
    uint8_t buf[64];
    size_t n = vectord__v1__filter__pack(&f, buf);
    const vd_filter *t = NULL;
    void *mem = NULL;
    vd_err e;
    ck_assert_int_eq(vd_proto_filter_decode(buf, n, VD_REQ_COUNT, &t, &mem, &e), VD_OK);
    ck_assert_int_eq(t->op, VD_FOP_NOT);
    ck_assert_int_eq(t->children[0].op, VD_FOP_EQ);
    ck_assert_str_eq(t->children[0].field, "a");
    ck_assert_int_eq(t->children[0].values[0].i, 1);
    ck_assert_int_eq(vd_filter_check(t, &e), VD_OK);
    vd_proto_filter_free(mem);
    vd_proto_filter_free(NULL);

    /* 100,000 levels of negate: refused before protobuf-c recurses */
    size_t levels = 100000, len = 0;
    uint8_t *deep = malloc(levels * 4);
    for (size_t i = 0, inner_len = 0; i < levels; i++) { /* outside in: each head, back first */
        uint8_t head[6];
        size_t h = 0, x = inner_len;
        head[h++] = 0x22;
        do {
            head[h++] = (uint8_t)((x & 0x7F) | (x > 0x7F ? 0x80 : 0));
            x >>= 7;
        } while (x);
        memcpy(deep + levels * 4 - len - h, head, h);
        len += h;
        inner_len = len;
    }
    s_expect_invalid(deep + levels * 4 - len, len, "count: filter: nesting deeper than 16 levels");
    free(deep);
    s_expect_invalid((const uint8_t *)"\x22\x05" "a", 3,
                     "count: filter of 3 bytes is not a valid vectord.v1.Filter");
    /* 0 bytes: an empty Filter, which the grammar check refuses (as the daemon does) */
    ck_assert_int_eq(vd_proto_filter_decode(buf, 0, VD_REQ_COUNT, &t, &mem, &e), VD_OK);
    ck_assert_int_eq(vd_filter_check(t, &e), VD_INVALID);
    vd_proto_filter_free(mem);

    /* every allocation failure is a status, never a crash or a leak (ASan) */
    int succeeded = 0;
    for (long fail = 0; fail < 16 && !succeeded; fail++) {
        vd_alloc_fail_after(fail);
        vd_status st = vd_proto_filter_decode(buf, n, VD_REQ_SEARCH, &t, &mem, &e);
        vd_alloc_fail_after(-1);
        if (st == VD_OK) succeeded = 1;
        else ck_assert_int_eq(st, VD_NOMEM);
        vd_proto_filter_free(st == VD_OK ? mem : NULL);
    }
    ck_assert(succeeded);
}
END_TEST

Suite *proto_message_suite(void)
{
    Suite *s = suite_create("proto_message");
    TCase *tc = tcase_create("message");
    tcase_add_test(tc, status_table_maps_both_ways);
    tcase_add_test(tc, search_decodes_in_place_with_its_dim);
    tcase_add_test(tc, every_operation_decodes_into_its_kind);
    tcase_add_test(tc, wire_format_errors_keep_the_request_id);
    tcase_add_test(tc, search_results_encode_little_endian_with_payloads);
    tcase_add_test(tc, get_list_info_and_stats_results_round_trip);
    tcase_add_test(tc, hello_and_error_frames);
    tcase_add_test(tc, a_response_over_max_frame_gets_the_one_message);
    tcase_add_test(tc, every_allocation_failure_is_reported_not_crashed);
    tcase_add_test(tc, a_bare_filter_decodes_through_the_same_guard);
    suite_add_tcase(s, tc);
    return s;
}
