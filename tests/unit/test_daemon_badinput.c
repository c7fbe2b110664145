/* tests/unit/test_daemon_badinput.c: DESIGN.md "Bad input gets a clear error, and nothing is
 * lost" against the real daemon. Each test sends one kind of bad input and checks
 *   1. the specific code and message (or the closed connection, for broken framing),
 *   2. that the daemon still serves a fresh client, and
 *   3. that the stored data is unchanged (count, a vector, a search result).
 * The daemon runs with small limits so the limit paths are cheap to reach. */
#include <check.h>
#include <sys/stat.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/vd_test_client.h"

#define N_POINTS 10
#define CODE(name) VECTORD__V1__CODE__##name

static vdt_daemon D;
static vdt_client C;
static char token_path[400];

/* The collection every test starts with: ids 1..10 at (i, 0, 0, 0), l2, with payloads. */
static void seed(vdt_client *c)
{
    vd_pb_response *r = vdt_create(c, "docs", 4, VECTORD__V1__METRIC__L2);
    ck_assert_int_eq(vdt_code(r), 0);
    vd_proto_response_free(r);
    uint64_t ids[N_POINTS];
    float v[N_POINTS * 4] = {0};
    const char *pl[N_POINTS];
    for (int i = 0; i < N_POINTS; i++) {
        ids[i] = (uint64_t)i + 1;
        v[i * 4] = (float)(i + 1);
        pl[i] = "{\"ok\":1}";
    }
    r = vdt_upsert(c, "docs", ids, N_POINTS, v, sizeof v, pl);
    ck_assert_int_eq(vdt_code(r), 0);
    vd_proto_response_free(r);
}

static void start(const char *const *extra)
{
    memset(&D, 0, sizeof D);
    const char *base[24] = {"--idle-timeout-s",
                            "1.5",
                            "--max-connections",
                            "6",
                            "--max-frame-bytes",
                            "1MiB",
                            "--max-batch",
                            "1000",
                            NULL};
    int n = 0;
    while (base[n])
        n++;
    for (int i = 0; extra && extra[i]; i++)
        base[n++] = extra[i];
    base[n] = NULL;
    ck_assert_msg(vdt_daemon_start(&D, base) == 0, "daemon did not start (log %s)", D.log);
}

static void setup(void)
{
    start(NULL);
    ck_assert_int_eq(vdt_open(&C, &D, NULL), 0);
    seed(&C);
}

static void setup_token(void)
{
    memset(&D, 0, sizeof D);
    snprintf(token_path, sizeof token_path, "/tmp/vd-token-%d", (int)getpid());
    FILE *f = fopen(token_path, "w");
    fputs("s3cret-token\n", f);
    fclose(f);
    chmod(token_path, 0600); /* the daemon refuses token files others may read */
    const char *extra[] = {"--token-file", token_path, NULL};
    start(extra);
    ck_assert_int_eq(vdt_open(&C, &D, "s3cret-token"), 0);
    seed(&C);
}

static void teardown(void)
{
    vdt_close(&C);
    vdt_daemon_cleanup(&D);
    if (token_path[0]) unlink(token_path);
}

/* A fresh client is served and the data is exactly what seed() wrote. */
static void assert_healthy_and_unchanged(const char *token)
{
    ck_assert_msg(vdt_daemon_alive(&D), "daemon died (log %s)", D.log);
    vdt_client c;
    ck_assert_int_eq(vdt_open(&c, &D, token), 0);
    vd_pb_response *r = vdt_count(&c, "docs");
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(r->count->count, N_POINTS);
    vd_proto_response_free(r);
    uint64_t id = 3;
    r = vdt_get(&c, "docs", &id, 1, 1, 1);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert(r->get->found[0]);
    float v[4];
    memcpy(v, r->get->vectors.data, 16);
    ck_assert(v[0] == 3 && v[1] == 0 && v[2] == 0 && v[3] == 0);
    ck_assert_uint_eq(r->get->payloads[0].len, 8);
    vd_proto_response_free(r);
    float q[4] = {6.9f, 0, 0, 0};
    r = vdt_search(&c, "docs", q, sizeof q, 2, 0, 0);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(vdt_hit_id(r, 0), 7);
    ck_assert_uint_eq(vdt_hit_id(r, 1), 6);
    vd_proto_response_free(r);
    r = vdt_list(&c);
    ck_assert_uint_eq(r->list_collections->n_collections, 1);
    vd_proto_response_free(r);
    vdt_close(&c);
}

/* Response r has `code` and a message containing every needle. Frees r. With
 * VD_BADINPUT_LOG=FILE each checked answer is also appended to FILE as "test: CODE: message"
 * (the bad-input matrix of docs and notes comes from there). */
#define expect(r, code, n1, n2) expect_in(__func__, r, code, n1, n2)
static void expect_in(const char *test, vd_pb_response *r, int code, const char *n1,
                      const char *n2)
{
    ck_assert_msg(r != NULL, "no response");
    const char *log = getenv("VD_BADINPUT_LOG");
    FILE *f = log ? fopen(log, "a") : NULL;
    if (f) {
        fprintf(f, "%s: %s: %s\n", test, vd_proto_code_name((vd_code)vdt_code(r)),
                vdt_msg(r));
        fclose(f);
    }
    ck_assert_msg(vdt_code(r) == code, "code %d (%s), expected %d", vdt_code(r), vdt_msg(r), code);
    if (n1) ck_assert_msg(strstr(vdt_msg(r), n1), "message '%s' lacks '%s'", vdt_msg(r), n1);
    if (n2) ck_assert_msg(strstr(vdt_msg(r), n2), "message '%s' lacks '%s'", vdt_msg(r), n2);
    vd_proto_response_free(r);
}

static int lower_contains(const char *hay, const char *needle)
{
    char h[512];
    size_t i = 0;
    for (; hay[i] && i < sizeof h - 1; i++)
        h[i] = (char)(hay[i] | 0x20);
    h[i] = 0;
    return strstr(h, needle) != NULL;
}

/* ---- request-level errors: the connection stays usable ----------------------------------- */

START_TEST(wrong_dimension_upsert)
{
    uint64_t ids[2] = {100, 101};
    float v[8] = {0};
    expect(vdt_upsert(&C, "docs", ids, 2, v, 7 * 4, NULL), CODE(INVALID_ARGUMENT),
           "vectors hold 28 bytes, 2 ids x 4 dims x 4 bytes = 32 expected", "collection docs");
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(wrong_dimension_search)
{
    float q[8] = {6.9f, 0, 0, 0, 2.1f, 0, 0, 0};
    /* A request that says its dim (SearchRequest.dim): twice the row, half of it, and a
     * length that is no multiple are all the same error, naming both dims. */
    expect(vdt_search_dim(&C, "docs", q, 8 * 4, 8, 3, 0, 0), CODE(INVALID_ARGUMENT),
           "search: query has 8 dims, collection docs expects 4", NULL);
    expect(vdt_search_dim(&C, "docs", q, 2 * 4, 2, 3, 0, 0), CODE(INVALID_ARGUMENT),
           "search: query has 2 dims, collection docs expects 4", NULL);
    expect(vdt_search_dim(&C, "docs", q, 5 * 4, 5, 3, 0, 0), CODE(INVALID_ARGUMENT),
           "search: query has 5 dims, collection docs expects 4", NULL);
    /* the right dim, but not whole rows of it */
    expect(vdt_search_dim(&C, "docs", q, 6 * 4, 4, 3, 0, 0), CODE(INVALID_ARGUMENT),
           "search: queries hold 24 bytes, not a multiple of 16", "collection docs");
    /* An old client (no dim): a fraction or a non-multiple of the row is refused; a multiple
     * is read as that many queries, as before the field existed. */
    expect(vdt_search(&C, "docs", q, 5 * 4, 3, 0, 0), CODE(INVALID_ARGUMENT),
           "queries hold 20 bytes, not a multiple of 16", "collection docs");
    expect(vdt_search(&C, "docs", q, 2 * 4, 3, 0, 0), CODE(INVALID_ARGUMENT),
           "queries hold 8 bytes, not a multiple of 16", "collection docs");
    vd_pb_response *r = vdt_search(&C, "docs", q, 8 * 4, 1, 0, 0);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(r->search->nq, 2);
    ck_assert_uint_eq(vdt_hit_id(r, 0), 7);
    ck_assert_uint_eq(vdt_hit_id(r, 1), 2);
    vd_proto_response_free(r);
    /* and with the dim said, the same two queries */
    r = vdt_search_dim(&C, "docs", q, 8 * 4, 4, 1, 0, 0);
    ck_assert_int_eq(vdt_code(r), 0);
    ck_assert_uint_eq(r->search->nq, 2);
    vd_proto_response_free(r);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(nan_and_inf_components)
{
    uint64_t ids[2] = {100, 101};
    float v[8] = {0};
    v[5] = NAN;
    vd_pb_response *r = vdt_upsert(&C, "docs", ids, 2, v, sizeof v, NULL);
    ck_assert_msg(lower_contains(vdt_msg(r), "nan"), "%s", vdt_msg(r));
    expect(r, CODE(INVALID_ARGUMENT), NULL, NULL);
    v[5] = 0;
    v[2] = INFINITY;
    r = vdt_upsert(&C, "docs", ids, 2, v, sizeof v, NULL);
    ck_assert_msg(lower_contains(vdt_msg(r), "inf"), "%s", vdt_msg(r));
    expect(r, CODE(INVALID_ARGUMENT), NULL, NULL);
    float q[4] = {1, NAN, 0, 0};
    r = vdt_search(&C, "docs", q, sizeof q, 3, 0, 0);
    ck_assert_msg(lower_contains(vdt_msg(r), "nan"), "%s", vdt_msg(r));
    expect(r, CODE(INVALID_ARGUMENT), NULL, NULL);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(empty_batches)
{
    expect(vdt_upsert(&C, "docs", NULL, 0, NULL, 0, NULL), CODE(INVALID_ARGUMENT),
           "upsert: empty batch", NULL);
    expect(vdt_delete(&C, "docs", NULL, 0), CODE(INVALID_ARGUMENT), "delete: empty batch", NULL);
    expect(vdt_get(&C, "docs", NULL, 0, 1, 0), CODE(INVALID_ARGUMENT), "get: empty batch", NULL);
    expect(vdt_search(&C, "docs", NULL, 0, 3, 0, 0), CODE(INVALID_ARGUMENT), "no queries", NULL);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(duplicate_ids_in_one_batch)
{
    uint64_t ids[3] = {500, 77777, 77777};
    float v[12] = {0};
    vd_pb_response *r = vdt_upsert(&C, "docs", ids, 3, v, sizeof v, NULL);
    ck_assert_int_eq(vdt_code(r), CODE(INVALID_ARGUMENT));
    ck_assert_msg(strstr(vdt_msg(r), "77777"), "%s", vdt_msg(r));
    vd_proto_response_free(r);
    /* even an existing id twice changes nothing */
    uint64_t again[2] = {3, 3};
    float w[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    expect(vdt_upsert(&C, "docs", again, 2, w, sizeof w, NULL), CODE(INVALID_ARGUMENT), "3", NULL);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(k_zero_and_huge)
{
    float q[4] = {1, 0, 0, 0};
    expect(vdt_search(&C, "docs", q, sizeof q, 0, 0, 0), CODE(INVALID_ARGUMENT),
           "search: k is 0; k must be 1..10000", NULL);
    expect(vdt_search(&C, "docs", q, sizeof q, 10001, 0, 0), CODE(INVALID_ARGUMENT),
           "search: k 10001 exceeds max_k 10000", NULL);
    expect(vdt_search(&C, "docs", q, sizeof q, 4000000000u, 0, 0), CODE(INVALID_ARGUMENT),
           "exceeds max_k", NULL);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(unknown_collection)
{
    uint64_t id = 1;
    float v[4] = {0};
    expect(vdt_upsert(&C, "nope", &id, 1, v, sizeof v, NULL), CODE(NOT_FOUND), "nope", NULL);
    expect(vdt_search(&C, "nope", v, sizeof v, 1, 0, 0), CODE(NOT_FOUND), "nope", NULL);
    expect(vdt_get(&C, "nope", &id, 1, 0, 0), CODE(NOT_FOUND), "nope", NULL);
    expect(vdt_delete(&C, "nope", &id, 1), CODE(NOT_FOUND), "nope", NULL);
    expect(vdt_count(&C, "nope"), CODE(NOT_FOUND), "nope", NULL);
    expect(vdt_info(&C, "nope"), CODE(NOT_FOUND), "nope", NULL);
    expect(vdt_drop(&C, "nope"), CODE(NOT_FOUND), "nope", NULL);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(bad_names_and_create_parameters)
{
    expect(vdt_create(&C, "bad name!", 4, VECTORD__V1__METRIC__L2), CODE(INVALID_ARGUMENT),
           "create_collection: ", "position 3");
    expect(vdt_create(&C, "", 4, VECTORD__V1__METRIC__L2), CODE(INVALID_ARGUMENT), NULL, NULL);
    char longname[80];
    memset(longname, 'a', 65);
    longname[65] = 0;
    expect(vdt_create(&C, longname, 4, VECTORD__V1__METRIC__L2), CODE(INVALID_ARGUMENT), NULL,
           NULL);
    expect(vdt_create(&C, "ok", 0, VECTORD__V1__METRIC__L2), CODE(INVALID_ARGUMENT),
           "dim 0 is outside 1..4096", NULL);
    expect(vdt_create(&C, "ok", 5000, VECTORD__V1__METRIC__L2), CODE(INVALID_ARGUMENT),
           "dim 5000 is outside 1..4096", NULL);
    expect(vdt_create(&C, "ok", 4, 0), CODE(INVALID_ARGUMENT), "metric 0 is not one of", NULL);
    expect(vdt_create(&C, "ok", 4, 9), CODE(INVALID_ARGUMENT), "metric 9", NULL);
    expect(vdt_create(&C, "docs", 4, VECTORD__V1__METRIC__L2), CODE(ALREADY_EXISTS), "docs", NULL);
    expect(vdt_count(&C, "../etc"), CODE(NOT_FOUND), NULL, NULL);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(bad_json_payloads)
{
    uint64_t ids[3] = {200, 201, 202};
    float v[12] = {0};
    const char *bad1[3] = {"{\"a\":1}", "{\"a\":", ""};
    const char *bad2[3] = {"[1,2]", "", ""};
    const char *bad3[3] = {"", "", "{\"a\":1} trailing"};
    expect(vdt_upsert(&C, "docs", ids, 3, v, sizeof v, bad1), CODE(INVALID_ARGUMENT), NULL, NULL);
    expect(vdt_upsert(&C, "docs", ids, 3, v, sizeof v, bad2), CODE(INVALID_ARGUMENT), NULL, NULL);
    expect(vdt_upsert(&C, "docs", ids, 3, v, sizeof v, bad3), CODE(INVALID_ARGUMENT), NULL, NULL);
    Vectord__V1__Request rq;
    Vectord__V1__UpsertRequest u;
    ProtobufCBinaryData two[2] = {{2, (uint8_t *)"{}"}, {2, (uint8_t *)"{}"}};
    vdt_upsert_request(&rq, &u, "docs", ids, 3, v, sizeof v);
    u.n_payloads = 2;
    u.payloads = two;
    expect(vdt_call(&C, &rq), CODE(INVALID_ARGUMENT), "upsert: 2 payloads for 3 ids", NULL);
    free(u.ids.data);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(malformed_id_bytes_and_batch_limit)
{
    Vectord__V1__DeleteRequest m = VECTORD__V1__DELETE_REQUEST__INIT;
    uint8_t raw[12] = {1};
    m.collection = "docs";
    m.ids.data = raw;
    m.ids.len = 12;
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    r.op_case = VECTORD__V1__REQUEST__OP_DELETE;
    r.delete_ = &m;
    expect(vdt_call(&C, &r), CODE(INVALID_ARGUMENT),
           "delete: ids hold 12 bytes, not a multiple of 8", NULL);
    uint64_t *ids = calloc(1001, sizeof *ids);
    for (int i = 0; i < 1001; i++)
        ids[i] = (uint64_t)i + 1000;
    expect(vdt_get(&C, "docs", ids, 1001, 0, 0), CODE(INVALID_ARGUMENT),
           "get: 1001 ids exceed max_batch 1000", NULL);
    free(ids);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(response_over_max_frame_is_refused)
{
    /* 1000 queries x k 100 = 1.2 MB of ids + distances > max_frame 1 MiB */
    float *q = calloc(1000 * 4, sizeof *q);
    expect(vdt_search(&C, "docs", q, 1000 * 16, 100, 0, 0), CODE(RESOURCE_EXHAUSTED),
           "over max_frame_bytes 1048576", NULL);
    free(q);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(request_without_operation)
{
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    r.request_id = 77;
    expect(vdt_call(&C, &r), CODE(UNIMPLEMENTED), "request 77 names no operation", NULL);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

/* ---- connection-level errors: error frame (request_id 0), then closed ------------------------ */

#define expect_closing_error(c, rid, code, needle) \
    expect_closing_error_in(__func__, c, rid, code, needle)
static void expect_closing_error_in(const char *test, vdt_client *c, uint64_t rid, int code,
                                    const char *needle)
{
    vd_pb_response *r = vdt_recv(c);
    ck_assert_msg(r != NULL, "no error response before close");
    ck_assert_uint_eq(r->request_id, rid);
    expect_in(test, r, code, needle, NULL);
    ck_assert_msg(vdt_wait_closed(c, 5000), "connection not closed");
}

START_TEST(oversized_frame)
{
    vdt_client c;
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    uint8_t hdr[8];
    vd_put_u32be(hdr, (1u << 20) + 1);
    memcpy(hdr + 4, "abcd", 4);
    ck_assert_int_eq(vdt_send_raw(&c, hdr, 8), 0);
    expect_closing_error(&c, 0, CODE(RESOURCE_EXHAUSTED),
                         "frame of 1048577 bytes exceeds max_frame_bytes 1048576");
    vdt_close(&c);
    /* a huge upsert as one frame: same */
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    size_t n = 70000;
    uint64_t *ids = calloc(n, 8);
    float *v = calloc(n * 4, 4);
    for (size_t i = 0; i < n; i++)
        ids[i] = i + 1000;
    Vectord__V1__Request rq;
    Vectord__V1__UpsertRequest u;
    vdt_upsert_request(&rq, &u, "docs", ids, n, v, n * 16);
    vdt_send(&c, &rq); /* may fail part way once the server closes */
    expect_closing_error(&c, 0, CODE(RESOURCE_EXHAUSTED), "exceeds max_frame_bytes 1048576");
    free(u.ids.data);
    free(ids);
    free(v);
    vdt_close(&c);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(zero_length_frame)
{
    vdt_client c;
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    uint8_t z[4] = {0, 0, 0, 0};
    ck_assert_int_eq(vdt_send_raw(&c, z, 4), 0);
    expect_closing_error(&c, 0, CODE(INVALID_ARGUMENT), "zero-length frame");
    vdt_close(&c);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(truncated_frame)
{
    /* a frame cut short by the client closing */
    vdt_client c;
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    uint8_t part[14];
    vd_put_u32be(part, 100);
    memset(part + 4, 0x0a, 10);
    ck_assert_int_eq(vdt_send_raw(&c, part, sizeof part), 0);
    vdt_close(&c);
    /* a frame cut short by the client going silent: the idle timeout ends it */
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    ck_assert_int_eq(vdt_send_raw(&c, part, sizeof part), 0);
    expect_closing_error(&c, 0, CODE(UNAVAILABLE), "connection idle for more than 1500 ms");
    vdt_close(&c);
    ck_assert(vdt_log_contains(&D, "closed mid-frame (14 bytes of a truncated frame discarded)"));
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(garbage_bytes)
{
    /* HTTP: its first four bytes read as a 1.2 GB length */
    vdt_client c;
    ck_assert_int_eq(vdt_connect(&c, D.port), 0);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(vdt_send_raw(&c, http, strlen(http)), 0);
    expect_closing_error(&c, 0, CODE(RESOURCE_EXHAUSTED), "exceeds max_frame_bytes");
    vdt_close(&c);
    /* a plausible length, then bytes that are not a Request */
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    uint8_t junk[4 + 16];
    vd_put_u32be(junk, 16);
    for (int i = 0; i < 16; i++)
        junk[4 + i] = (uint8_t)(0xff - i);
    ck_assert_int_eq(vdt_send_raw(&c, junk, sizeof junk), 0);
    expect_closing_error(&c, 0, CODE(INVALID_ARGUMENT),
                         "frame of 16 bytes is not a valid vectord.v1.Request");
    vdt_close(&c);
    /* random bytes in many frames, from several clients in a row */
    srand(7);
    for (int round = 0; round < 20; round++) {
        ck_assert_int_eq(vdt_connect(&c, D.port), 0);
        uint8_t b[512];
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (uint8_t)rand();
        vd_put_u32be(b, (uint32_t)(rand() % 300) + 1);
        vdt_send_raw(&c, b, sizeof b);
        vdt_wait_closed(&c, 3000);
        vdt_close(&c);
    }
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(silent_client_is_closed_after_idle_timeout)
{
    vdt_client c;
    ck_assert_int_eq(vdt_connect(&c, D.port), 0);
    uint64_t t0 = vd_now_ns();
    expect_closing_error(&c, 0, CODE(UNAVAILABLE), "connection idle for more than 1500 ms");
    double s = (double)(vd_now_ns() - t0) / 1e9;
    ck_assert_msg(s >= 1.4 && s < 4.0, "closed after %.2f s", s);
    vdt_close(&c);
    /* a client that keeps talking is not idle */
    ck_assert_int_eq(vdt_open(&c, &D, NULL), 0);
    for (int i = 0; i < 4; i++) {
        usleep(500000);
        vd_pb_response *r = vdt_count(&c, "docs");
        ck_assert_int_eq(vdt_code(r), 0);
        vd_proto_response_free(r);
    }
    vdt_close(&c);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(request_before_hello)
{
    vdt_client c;
    ck_assert_int_eq(vdt_connect(&c, D.port), 0);
    vd_pb_response *r = vdt_count(&c, "docs");
    ck_assert_uint_eq(r->request_id, 1);
    expect(r, CODE(FAILED_PRECONDITION),
           "the first request on a connection must be hello, got count", NULL);
    ck_assert(vdt_wait_closed(&c, 5000));
    vdt_close(&c);
    /* a write before hello changes nothing */
    ck_assert_int_eq(vdt_connect(&c, D.port), 0);
    expect(vdt_drop(&c, "docs"), CODE(FAILED_PRECONDITION), "got drop_collection", NULL);
    vdt_close(&c);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(wrong_protocol_version)
{
    vdt_client c;
    ck_assert_int_eq(vdt_connect(&c, D.port), 0);
    Vectord__V1__HelloRequest h = VECTORD__V1__HELLO_REQUEST__INIT;
    h.protocol_version = 2;
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    r.op_case = VECTORD__V1__REQUEST__OP_HELLO;
    r.hello = &h;
    expect(vdt_call(&c, &r), CODE(FAILED_PRECONDITION),
           "protocol_version 2 is not supported; this server speaks 1", NULL);
    ck_assert(vdt_wait_closed(&c, 5000));
    vdt_close(&c);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(too_many_connections)
{
    vdt_client cs[5];
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(vdt_open(&cs[i], &D, NULL), 0); /* 6 with C */
    vdt_client extra;
    ck_assert_int_eq(vdt_connect(&extra, D.port), 0);
    expect_closing_error(&extra, 0, CODE(RESOURCE_EXHAUSTED),
                         "too many connections (max_connections 6)");
    vdt_close(&extra);
    vdt_close(&cs[0]);
    usleep(100000); /* let the server see the close */
    assert_healthy_and_unchanged(NULL);
    for (int i = 1; i < 5; i++)
        vdt_close(&cs[i]);
}
END_TEST

START_TEST(slow_consumer_only_stalls_itself)
{
    /* One client pipelines thousands of searches (about 12 KB of answer each) and reads none:
     * the server must stop reading from it instead of buffering without end, and keep
     * serving the others. */
    vdt_client slow;
    ck_assert_int_eq(vdt_open(&slow, &D, NULL), 0);
    enum { N = 3000 };
    float q[4] = {5, 0, 0, 0};
    Vectord__V1__SearchRequest s = VECTORD__V1__SEARCH_REQUEST__INIT;
    s.collection = "docs";
    s.queries.data = (uint8_t *)q;
    s.queries.len = sizeof q;
    s.k = 1000;
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    r.op_case = VECTORD__V1__REQUEST__OP_SEARCH;
    r.search = &s;
    /* Sending may block once the server stops reading: do it from a child process. */
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < N; i++) {
            r.request_id = (uint64_t)i + 1;
            if (vdt_send(&slow, &r) != 0) _exit(1);
        }
        _exit(0);
    }
    usleep(500000);
    for (int i = 0; i < 5; i++)
        assert_healthy_and_unchanged(NULL);
    /* now drain: every request gets its answer */
    slow.timeout_ms = 30000;
    int got = 0;
    for (int i = 0; i < N; i++) {
        vd_pb_response *resp = vdt_recv(&slow);
        if (!resp) break;
        ck_assert_int_eq(vdt_code(resp), 0);
        ck_assert_uint_eq(vdt_hit_id(resp, 0), 5);
        vd_proto_response_free(resp);
        got++;
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ck_assert_int_eq(got, N);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    vdt_close(&slow);
    assert_healthy_and_unchanged(NULL);
}
END_TEST

START_TEST(client_that_never_reads_is_cut)
{
    /* Pipelines searches with big answers and never reads: once its unread answers stop
     * draining for the idle timeout, the server closes it (its buffers are freed). */
    vdt_client stuck;
    ck_assert_int_eq(vdt_open(&stuck, &D, NULL), 0);
    float q[4] = {5, 0, 0, 0};
    Vectord__V1__SearchRequest s = VECTORD__V1__SEARCH_REQUEST__INIT;
    s.collection = "docs";
    s.queries.data = (uint8_t *)q;
    s.queries.len = sizeof q;
    s.k = 1000;
    Vectord__V1__Request r = VECTORD__V1__REQUEST__INIT;
    r.op_case = VECTORD__V1__REQUEST__OP_SEARCH;
    r.search = &s;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 5000; i++) {
            r.request_id = (uint64_t)i + 1;
            if (vdt_send(&stuck, &r) != 0) _exit(0); /* the server cut us */
        }
        _exit(0);
    }
    int cut = 0;
    for (int i = 0; i < 100 && !cut; i++) {
        usleep(100000);
        cut = vdt_log_contains(&D, "has not read its responses");
    }
    ck_assert_msg(cut, "the stuck client was not cut");
    int st;
    waitpid(pid, &st, 0);
    vdt_close(&stuck);
    vdt_close(&C); /* idle by now */
    assert_healthy_and_unchanged(NULL);
}
END_TEST

/* ---- authentication ---------------------------------------------------------------------------
 */

START_TEST(bad_token)
{
    vdt_client c;
    ck_assert_int_eq(vdt_connect(&c, D.port), 0);
    expect(vdt_hello(&c, "s3cret-tokeN"), CODE(UNAUTHENTICATED), "invalid token", NULL);
    ck_assert(vdt_wait_closed(&c, 5000));
    vdt_close(&c);
    ck_assert_int_eq(vdt_connect(&c, D.port), 0);
    expect(vdt_hello(&c, "s3cret-token-and-more"), CODE(UNAUTHENTICATED), "invalid token", NULL);
    vdt_close(&c);
    ck_assert_int_eq(vdt_connect(&c, D.port), 0);
    expect(vdt_hello(&c, NULL), CODE(UNAUTHENTICATED), "requires a token", NULL);
    vdt_close(&c);
    /* with a token server, skipping hello is UNAUTHENTICATED too */
    ck_assert_int_eq(vdt_connect(&c, D.port), 0);
    expect(vdt_drop(&c, "docs"), CODE(UNAUTHENTICATED), "must be hello", NULL);
    vdt_close(&c);
    assert_healthy_and_unchanged("s3cret-token");
}
END_TEST

Suite *daemon_badinput_suite(void)
{
    Suite *s = suite_create("daemon_badinput");
    TCase *tc = tcase_create("badinput");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, wrong_dimension_upsert);
    tcase_add_test(tc, wrong_dimension_search);
    tcase_add_test(tc, nan_and_inf_components);
    tcase_add_test(tc, empty_batches);
    tcase_add_test(tc, duplicate_ids_in_one_batch);
    tcase_add_test(tc, k_zero_and_huge);
    tcase_add_test(tc, unknown_collection);
    tcase_add_test(tc, bad_names_and_create_parameters);
    tcase_add_test(tc, bad_json_payloads);
    tcase_add_test(tc, malformed_id_bytes_and_batch_limit);
    tcase_add_test(tc, response_over_max_frame_is_refused);
    tcase_add_test(tc, request_without_operation);
    tcase_add_test(tc, oversized_frame);
    tcase_add_test(tc, zero_length_frame);
    tcase_add_test(tc, truncated_frame);
    tcase_add_test(tc, garbage_bytes);
    tcase_add_test(tc, silent_client_is_closed_after_idle_timeout);
    tcase_add_test(tc, request_before_hello);
    tcase_add_test(tc, wrong_protocol_version);
    tcase_add_test(tc, too_many_connections);
    tcase_add_test(tc, slow_consumer_only_stalls_itself);
    tcase_add_test(tc, client_that_never_reads_is_cut);
    suite_add_tcase(s, tc);
    TCase *auth = tcase_create("auth");
    tcase_set_timeout(auth, 60);
    tcase_add_checked_fixture(auth, setup_token, teardown);
    tcase_add_test(auth, bad_token);
    suite_add_tcase(s, auth);
    return s;
}
