/* tests/unit/test_proto_message.c: request decoding and checked views (every size relation
 * with its exact message), response framing, the status code table. */
#include <check.h>
#include <stdlib.h>

#include "proto/vd_proto.h"

static ProtobufCBinaryData bin(const void *p, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)p};
    return b;
}

START_TEST(status_table_maps_both_ways)
{
    ck_assert_int_eq(vd_proto_code_of(VD_NOTFOUND), VECTORD__V1__CODE__NOT_FOUND);
    ck_assert_int_eq(vd_proto_code_of(VD_INVALID), VECTORD__V1__CODE__INVALID_ARGUMENT);
    ck_assert_int_eq(vd_proto_code_of(VD_EXISTS), VECTORD__V1__CODE__ALREADY_EXISTS);
    ck_assert_int_eq(vd_proto_code_of(VD_FULL), VECTORD__V1__CODE__RESOURCE_EXHAUSTED);
    ck_assert_int_eq(vd_proto_code_of(VD_NOMEM), VECTORD__V1__CODE__RESOURCE_EXHAUSTED);
    ck_assert_int_eq(vd_proto_code_of(VD_CORRUPT), VECTORD__V1__CODE__DATA_LOSS);
    ck_assert_int_eq(vd_proto_code_of(VD_IO), VECTORD__V1__CODE__INTERNAL);
    ck_assert_int_eq(vd_proto_code_of(VD_VERSION), VECTORD__V1__CODE__FAILED_PRECONDITION);
    ck_assert_int_eq(vd_proto_code_of(VD_UNAUTHENTICATED), VECTORD__V1__CODE__UNAUTHENTICATED);
    ck_assert_int_eq(vd_proto_code_of(VD_UNAVAILABLE), VECTORD__V1__CODE__UNAVAILABLE);
    ck_assert_int_eq(vd_proto_code_of((vd_status)-999), VECTORD__V1__CODE__INTERNAL);
    ck_assert_int_eq(vd_proto_status_of(VECTORD__V1__CODE__RESOURCE_EXHAUSTED), VD_FULL);
    ck_assert_int_eq(vd_proto_status_of(VECTORD__V1__CODE__INTERNAL), VD_INTERNAL);
    ck_assert_int_eq(vd_proto_status_of(VECTORD__V1__CODE__ABORTED), VD_INTERNAL);
    ck_assert_str_eq(vd_proto_code_name(VECTORD__V1__CODE__INVALID_ARGUMENT), "INVALID_ARGUMENT");
    ck_assert_str_eq(vd_proto_code_name((vd_pb_code)77), "UNKNOWN_CODE");
}
END_TEST

START_TEST(request_round_trips_and_garbage_is_refused)
{
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    Vectord__V1__SearchRequest s = VECTORD__V1__SEARCH_REQUEST__INIT;
    float q[3] = {1, 2, 3};
    s.collection = "docs";
    s.queries = bin(q, sizeof q);
    s.k = 5;
    r.request_id = 42;
    r.op_case = VECTORD__V1__REQUEST__OP_SEARCH;
    r.search = &s;
    uint8_t buf[256];
    size_t n = vectord__v1__request__pack(&r, buf);
    vd_pb_request *out = NULL;
    ck_assert_int_eq(vd_proto_request_decode(buf, n, &out, NULL), VD_OK);
    ck_assert_uint_eq(out->request_id, 42);
    ck_assert_int_eq(out->op_case, VECTORD__V1__REQUEST__OP_SEARCH);
    ck_assert_str_eq(vd_proto_op_name(out->op_case), "search");
    ck_assert_str_eq(out->search->collection, "docs");
    vd_proto_request_free(out);

    vd_err e;
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99};
    ck_assert_int_eq(vd_proto_request_decode(junk, sizeof junk, &out, &e), VD_INVALID);
    ck_assert_ptr_null(out);
    ck_assert_str_eq(e.msg, "frame of 7 bytes is not a valid vectord.v1.Request");
    /* truncated: the length-delimited search field claims more than is there */
    ck_assert_int_eq(vd_proto_request_decode(buf, n - 3, &out, &e), VD_INVALID);
    vd_proto_request_free(NULL);
}
END_TEST

START_TEST(ids_are_whole_uint64_within_the_batch_limit)
{
    uint8_t raw[24];
    vd_put_u64le(raw, 1);
    vd_put_u64le(raw + 8, UINT64_MAX - 1);
    vd_put_u64le(raw + 16, 7);
    ProtobufCBinaryData b = bin(raw, 24);
    uint64_t *ids = NULL;
    size_t n = 0;
    vd_err e;
    ck_assert_int_eq(vd_proto_ids(&b, "upsert", 10, &ids, &n, NULL), VD_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert(ids[1] == UINT64_MAX - 1);
    vd_free(ids);

    b = bin(raw, 20);
    ck_assert_int_eq(vd_proto_ids(&b, "delete", 10, &ids, &n, &e), VD_INVALID);
    ck_assert_str_eq(e.msg,
                     "delete: ids hold 20 bytes, not a multiple of 8 (little-endian uint64)");
    b = bin(raw, 0);
    ck_assert_int_eq(vd_proto_ids(&b, "upsert", 10, &ids, &n, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "upsert: empty batch (no ids)");
    b = bin(raw, 24);
    ck_assert_int_eq(vd_proto_ids(&b, "get", 2, &ids, &n, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "get: 3 ids exceed max_batch 2");
    ck_assert_ptr_null(ids);
}
END_TEST

START_TEST(vectors_must_be_exactly_n_by_dim)
{
    float *v = calloc(4 * 96, sizeof *v);
    v[5] = 2.5f;
    ProtobufCBinaryData b = bin(v, 4 * 96 * 4);
    vd_floats f;
    vd_err e;
    ck_assert_int_eq(vd_proto_vectors(&b, 4, 96, "docs", &f, NULL), VD_OK);
    ck_assert_uint_eq(f.n_rows, 4);
    ck_assert(f.v[5] == 2.5f);
    vd_floats_free(&f);

    b.len = 1532;
    ck_assert_int_eq(vd_proto_vectors(&b, 4, 96, "docs", &f, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "vectors hold 1532 bytes, 4 ids x 96 dims x 4 bytes = 1536 expected "
                            "(collection docs)");
    /* misaligned bytes are copied, not read in place */
    uint8_t *raw = malloc(4 * 3 + 1);
    float three[3] = {1.5f, -2, 3};
    memcpy(raw + 1, three, sizeof three);
    b = bin(raw + 1, 12);
    ck_assert_int_eq(vd_proto_vectors(&b, 1, 3, "docs", &f, NULL), VD_OK);
    ck_assert_ptr_nonnull(f.owned);
    ck_assert(f.v[0] == 1.5f && f.v[1] == -2 && f.v[2] == 3);
    vd_floats_free(&f);
    free(raw);
    free(v);
}
END_TEST

START_TEST(queries_are_whole_rows)
{
    float q[8] = {0};
    ProtobufCBinaryData b = bin(q, sizeof q);
    vd_floats f;
    vd_err e;
    ck_assert_int_eq(vd_proto_queries(&b, 4, "docs", 10, &f, NULL), VD_OK);
    ck_assert_uint_eq(f.n_rows, 2);
    vd_floats_free(&f);
    ck_assert_int_eq(vd_proto_queries(&b, 3, "docs", 10, &f, &e), VD_INVALID);
    ck_assert_str_eq(e.msg,
                     "search: queries hold 32 bytes, not a multiple of 12 (3 dims x 4 bytes, "
                     "collection docs)");
    ck_assert_int_eq(vd_proto_queries(&b, 4, "docs", 1, &f, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "search: 2 queries exceed max_batch 1");
    b.len = 0;
    ck_assert_int_eq(vd_proto_queries(&b, 4, "docs", 10, &f, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "search: no queries (empty queries bytes)");
}
END_TEST

START_TEST(k_must_be_in_range)
{
    vd_err e;
    ck_assert_int_eq(vd_proto_check_k(1, 10000, NULL), VD_OK);
    ck_assert_int_eq(vd_proto_check_k(10000, 10000, NULL), VD_OK);
    ck_assert_int_eq(vd_proto_check_k(0, 10000, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "search: k is 0; k must be 1..10000");
    ck_assert_int_eq(vd_proto_check_k(10001, 10000, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "search: k 10001 exceeds max_k 10000");
}
END_TEST

START_TEST(payloads_are_none_or_one_per_id)
{
    Vectord__V1__UpsertRequest u = VECTORD__V1__UPSERT_REQUEST__INIT;
    ProtobufCBinaryData p[2] = {bin("{\"a\":1}", 7), bin("", 0)};
    const uint8_t **ptrs;
    uint32_t *lens;
    vd_err e;
    ck_assert_int_eq(vd_proto_payloads(&u, 2, &ptrs, &lens, NULL), VD_OK);
    ck_assert_ptr_null(ptrs);
    u.n_payloads = 2;
    u.payloads = p;
    ck_assert_int_eq(vd_proto_payloads(&u, 2, &ptrs, &lens, NULL), VD_OK);
    ck_assert_uint_eq(lens[0], 7);
    ck_assert_ptr_null(ptrs[1]);
    vd_free(ptrs);
    vd_free(lens);
    ck_assert_int_eq(vd_proto_payloads(&u, 3, &ptrs, &lens, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "upsert: 2 payloads for 3 ids (send none, or one per id; an empty "
                            "payload means none)");
}
END_TEST

START_TEST(create_checks_dim_and_metric)
{
    Vectord__V1__CreateCollectionRequest c = VECTORD__V1__CREATE_COLLECTION_REQUEST__INIT;
    vd_err e;
    c.name = "docs";
    c.dim = 384;
    c.metric = VECTORD__V1__METRIC__COSINE;
    ck_assert_int_eq(vd_proto_check_create(&c, 4096, NULL), VD_OK);
    c.dim = 0;
    ck_assert_int_eq(vd_proto_check_create(&c, 4096, &e), VD_INVALID);
    ck_assert_str_eq(e.msg, "create_collection docs: dim 0 is outside 1..4096");
    c.dim = 4097;
    ck_assert_int_eq(vd_proto_check_create(&c, 4096, &e), VD_INVALID);
    c.dim = 8;
    c.metric = VECTORD__V1__METRIC__METRIC_UNSPECIFIED;
    ck_assert_int_eq(vd_proto_check_create(&c, 4096, &e), VD_INVALID);
    ck_assert_str_eq(e.msg,
                     "create_collection docs: metric 0 is not one of L2 (1), COSINE (2), IP (3)");
}
END_TEST

START_TEST(response_frames_carry_their_length_and_respect_the_limit)
{
    size_t n = 0;
    uint8_t *f =
        vd_proto_error_frame(9, VECTORD__V1__CODE__NOT_FOUND, "collection x not found", &n);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(vd_get_u32be(f), n - 4);
    vd_pb_response *r = NULL;
    ck_assert_int_eq(vd_proto_response_decode(f + 4, n - 4, &r, NULL), VD_OK);
    ck_assert_uint_eq(r->request_id, 9);
    ck_assert_int_eq(r->status->code, VECTORD__V1__CODE__NOT_FOUND);
    ck_assert_str_eq(r->status->message, "collection x not found");
    vd_proto_response_free(r);
    vd_free(f);

    Vectord__V1__Response big = VECTORD__V1__RESPONSE__INIT;
    Vectord__V1__Status st = VECTORD__V1__STATUS__INIT;
    Vectord__V1__SearchResponse sr = VECTORD__V1__SEARCH_RESPONSE__INIT;
    static uint8_t blob[5000];
    sr.ids = bin(blob, sizeof blob);
    big.status = &st;
    big.result_case = VECTORD__V1__RESPONSE__RESULT_SEARCH;
    big.search = &sr;
    vd_err e;
    uint8_t *out = NULL;
    ck_assert_int_eq(vd_proto_response_frame(&big, 4096, &out, &n, &e), VD_FULL);
    ck_assert_ptr_null(out);
    ck_assert_ptr_nonnull(strstr(e.msg, "exceeds max_frame_bytes 4096"));
    ck_assert_int_eq(vd_proto_response_frame(&big, 1 << 20, &out, &n, NULL), VD_OK);
    ck_assert_uint_eq(vd_get_u32be(out) + 4, n);
    vd_free(out);
}
END_TEST

START_TEST(every_allocation_failure_is_reported_not_crashed)
{
    /* Fails the 1st, 2nd, ... allocation of each path until it succeeds. */
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    Vectord__V1__UpsertRequest u = VECTORD__V1__UPSERT_REQUEST__INIT;
    uint8_t ids[16] = {1, 0, 0, 0, 0, 0, 0, 0, 2};
    ProtobufCBinaryData p[2] = {bin("{}", 2), bin("", 0)};
    u.collection = "docs";
    u.ids = bin(ids, sizeof ids);
    u.n_payloads = 2;
    u.payloads = p;
    r.op_case = VECTORD__V1__REQUEST__OP_UPSERT;
    r.upsert = &u;
    uint8_t buf[256];
    size_t n = vectord__v1__request__pack(&r, buf);
    int succeeded = 0;
    for (long fail = 0; fail < 64 && !succeeded; fail++) {
        vd_pb_request *q = NULL;
        uint64_t *got = NULL;
        size_t n_ids = 0;
        const uint8_t **ptrs = NULL;
        uint32_t *lens = NULL;
        vd_err e;
        vd_alloc_fail_after(fail);
        vd_status s = vd_proto_request_decode(buf, n, &q, &e);
        if (s == VD_OK) s = vd_proto_ids(&q->upsert->ids, "upsert", 10, &got, &n_ids, &e);
        if (s == VD_OK) s = vd_proto_payloads(q->upsert, n_ids, &ptrs, &lens, &e);
        size_t flen = 0;
        uint8_t *f =
            s == VD_OK ? vd_proto_error_frame(1, VECTORD__V1__CODE__OK, "ok", &flen) : NULL;
        vd_alloc_fail_after(-1);
        if (s == VD_OK && f)
            succeeded = 1;
        else if (s != VD_OK)
            ck_assert_msg(s == VD_NOMEM || s == VD_INVALID, "status %d", s);
        vd_free(f);
        vd_free(ptrs);
        vd_free(lens);
        vd_free(got);
        vd_proto_request_free(q);
    }
    ck_assert(succeeded);
}
END_TEST

Suite *proto_message_suite(void)
{
    Suite *s = suite_create("proto_message");
    TCase *tc = tcase_create("message");
    tcase_add_test(tc, status_table_maps_both_ways);
    tcase_add_test(tc, request_round_trips_and_garbage_is_refused);
    tcase_add_test(tc, ids_are_whole_uint64_within_the_batch_limit);
    tcase_add_test(tc, vectors_must_be_exactly_n_by_dim);
    tcase_add_test(tc, queries_are_whole_rows);
    tcase_add_test(tc, k_must_be_in_range);
    tcase_add_test(tc, payloads_are_none_or_one_per_id);
    tcase_add_test(tc, create_checks_dim_and_metric);
    tcase_add_test(tc, response_frames_carry_their_length_and_respect_the_limit);
    tcase_add_test(tc, every_allocation_failure_is_reported_not_crashed);
    suite_add_tcase(s, tc);
    return s;
}
