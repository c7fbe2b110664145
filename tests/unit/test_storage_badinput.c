/* tests/unit/test_storage_badinput.c: every bad input of DESIGN.md that reaches storage gets
 * its specific status and message, and changes nothing: data.mdb stays byte for byte the same
 * and the collection answers as before. */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage/vd_storage.h"
#include "tests/unit/storage_testlib.h"

#define DIM 4

static char dir[64];
static vd_store *st;

static void setup(void)
{
    st_tmpdir(dir);
    st = st_open(dir);
    ck_assert_int_eq(st_create(st, "docs", DIM, VD_METRIC_L2), VD_OK);
    ck_assert_int_eq(st_create(st, "cos", DIM, VD_METRIC_COSINE), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "docs", 0, 20, DIM, 1), VD_OK);
    ck_assert_int_eq(st_upsert_range(st, "cos", 0, 20, DIM, 1), VD_OK);
}

static void teardown(void)
{
    vd_store_close(st);
    st_rmtree(dir);
}

/* Runs one op as its own group; asserts its status, a substring of its message, and that
 * nothing changed on disk or in memory. */
static void expect_refused(vd_op *op, vd_status want, const char *msg_part)
{
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    size_t len;
    uint8_t *before = st_read_file(path, &len);
    ck_assert_ptr_nonnull(before);
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "docs", &c, NULL), VD_OK);
    size_t count = vd_index_count(vd_collection_index(c));
    vd_collection_release(c);

    vd_err e = {0};
    ck_assert_msg(vd_store_write(st, op, 1, &e) == VD_OK, "group failed: %s", e.msg);
    ck_assert_msg(op->status == want, "status %s, want %s (%s)", vd_status_name(op->status),
                  vd_status_name(want), op->err.msg);
    ck_assert_int_eq(op->err.code, want);
    ck_assert_msg(strstr(op->err.msg, msg_part) != NULL, "message '%s' lacks '%s'",
                  op->err.msg, msg_part);
    ck_assert_uint_eq(op->n_done, 0);
    ck_assert_msg(st_file_equals(path, before, len), "data.mdb changed after a refused op");
    vd_free(before);
    ck_assert_int_eq(vd_store_acquire(st, "docs", &c, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(vd_collection_index(c)), count);
    vd_collection_release(c);
    st_report r = {0};
    ck_assert_int_eq(vd_store_check(st, st_report_line, &r, NULL), VD_OK);
}

static vd_op create_op(const char *name, uint32_t dim)
{
    vd_op op = {.kind = VD_OP_CREATE};
    snprintf(op.params.name, sizeof op.params.name, "%s", name);
    op.params.dim = dim;
    return op;
}

START_TEST(bad_collection_names)
{
    vd_op op = create_op("bad name", DIM);
    expect_refused(&op, VD_INVALID, "collection name has character 0x20 at position 3");
    op = create_op("", DIM);
    expect_refused(&op, VD_INVALID, "collection name is empty");
    op = create_op("caf\xc3\xa9", DIM);
    expect_refused(&op, VD_INVALID, "character 0xc3");
    float v[DIM] = {1, 2, 3, 4};
    uint64_t id = 1;
    vd_op up = {.kind = VD_OP_UPSERT, .collection = "../etc", .ids = &id, .n = 1, .vectors = v};
    expect_refused(&up, VD_INVALID, "collection name has character 0x2e");
    vd_op dr = {.kind = VD_OP_DROP, .collection = "x/y"};
    expect_refused(&dr, VD_INVALID, "collection name has character 0x2f");
}
END_TEST

START_TEST(bad_collection_parameters)
{
    vd_op op = create_op("new", 0);
    expect_refused(&op, VD_INVALID, "collection new: dim 0 is outside 1..4096");
    op = create_op("new", 4097);
    expect_refused(&op, VD_INVALID, "dim 4097 is outside 1..4096");
    op = create_op("new", 8);
    op.params.metric = (vd_metric)7;
    expect_refused(&op, VD_INVALID, "unknown metric 7");
    op = create_op("new", 8);
    op.params.m = 1;
    expect_refused(&op, VD_INVALID, "m 1 is outside 2..128");
    op = create_op("new", 8);
    op.params.m = 500;
    expect_refused(&op, VD_INVALID, "m 500 is outside");
    op = create_op("new", 8);
    op.params.ef_search = 20000;
    expect_refused(&op, VD_INVALID, "ef_search 20000 is outside 1..10000");
    op = create_op("new", 8);
    op.params.ef_construction = 20000;
    expect_refused(&op, VD_INVALID, "ef_construction 20000 is outside 1..10000");
    op = create_op("docs", 8);
    expect_refused(&op, VD_EXISTS, "collection docs already exists");
}
END_TEST

START_TEST(unknown_collections)
{
    float v[DIM] = {1, 2, 3, 4};
    uint64_t id = 1;
    vd_op up = {.kind = VD_OP_UPSERT, .collection = "nope", .ids = &id, .n = 1, .vectors = v};
    expect_refused(&up, VD_NOTFOUND, "collection nope does not exist");
    vd_op del = {.kind = VD_OP_DELETE, .collection = "nope", .ids = &id, .n = 1};
    expect_refused(&del, VD_NOTFOUND, "collection nope does not exist");
    vd_op dr = {.kind = VD_OP_DROP, .collection = "nope"};
    expect_refused(&dr, VD_NOTFOUND, "collection nope does not exist");
    vd_op bad = {.kind = (vd_op_kind)99};
    expect_refused(&bad, VD_INVALID, "unknown operation kind 99");
}
END_TEST

START_TEST(bad_vectors)
{
    float v[3 * DIM] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint64_t ids[3] = {100, 101, 102};
    v[6] = NAN;
    vd_op up = {.kind = VD_OP_UPSERT, .collection = "docs", .ids = ids, .n = 3, .vectors = v};
    expect_refused(&up, VD_INVALID, "upsert into docs");
    ck_assert_msg(strstr(up.err.msg, "component") || strstr(up.err.msg, "finite") ||
                  strstr(up.err.msg, "NaN"), "%s", up.err.msg);
    v[6] = INFINITY;
    expect_refused(&up, VD_INVALID, "upsert into docs");
    v[6] = -INFINITY;
    expect_refused(&up, VD_INVALID, "upsert into docs");
    /* The padding id 2^64-1 is reserved. */
    uint64_t none[1] = {VD_ID_NONE};
    vd_op upn = {.kind = VD_OP_UPSERT, .collection = "docs", .ids = none, .n = 1, .vectors = v};
    v[6] = 1;
    expect_refused(&upn, VD_INVALID, "18446744073709551615 is reserved");
    /* A zero vector under cosine. */
    float z[2 * DIM] = {1, 1, 1, 1, 0, 0, 0, 0};
    vd_op upc = {.kind = VD_OP_UPSERT, .collection = "cos", .ids = ids, .n = 2, .vectors = z};
    expect_refused(&upc, VD_INVALID, "upsert into cos");
    ck_assert_msg(strstr(upc.err.msg, "zero"), "%s", upc.err.msg);
}
END_TEST

START_TEST(empty_batches_missing_arrays_and_duplicate_ids)
{
    float v[3 * DIM] = {0};
    st_fill(v, 3 * DIM, 9);
    uint64_t ids[3] = {5, 6, 5};
    vd_op up = {.kind = VD_OP_UPSERT, .collection = "docs", .ids = ids, .n = 0, .vectors = v};
    expect_refused(&up, VD_INVALID, "upsert into docs: empty batch");
    vd_op del = {.kind = VD_OP_DELETE, .collection = "docs", .ids = ids, .n = 0};
    expect_refused(&del, VD_INVALID, "delete from docs: empty batch");
    up.n = 3;
    expect_refused(&up, VD_INVALID, "upsert into docs: id 5 appears more than once (rows 0 and 2)");
    del.n = 3;
    expect_refused(&del, VD_INVALID, "delete from docs: id 5 appears more than once (rows 0 and 2)");
    up.vectors = NULL;
    ids[2] = 7;
    expect_refused(&up, VD_INVALID, "ids, vectors or payload lengths missing");
    const uint8_t *pl[3] = {(const uint8_t *)"{}", NULL, NULL};
    vd_op up2 = {.kind = VD_OP_UPSERT, .collection = "docs", .ids = ids, .n = 3, .vectors = v,
                 .payloads = pl};
    expect_refused(&up2, VD_INVALID, "payload lengths missing");
}
END_TEST

START_TEST(bad_json_payloads)
{
    float v[2 * DIM];
    st_fill(v, 2 * DIM, 3);
    uint64_t ids[2] = {3, 300}; /* 3 exists: its old payload must survive */
    static const struct { const char *pl; const char *msg; } cases[] = {
        {"not json", "payload is not valid JSON: invalid token near 'not' at byte 3"},
        {"[1,2]", "payload is a JSON array; a payload must be an object"},
        {"{\"a\":1", "'}' expected near end of file"},
        {"{\"a\":1}x", "end of file expected near 'x' at byte 8"},
        {"{\"a\":\"\xff\"}", "unable to decode byte 0xff near '\"' at byte 6"},
        {"", "payload is empty"},
    };
    for (size_t i = 0; i < VD_ARRAY_LEN(cases); i++) {
        const uint8_t *pl[2] = {(const uint8_t *)"{\"ok\":true}", (const uint8_t *)cases[i].pl};
        uint32_t lens[2] = {11, (uint32_t)strlen(cases[i].pl)};
        vd_op up = {.kind = VD_OP_UPSERT, .collection = "docs", .ids = ids, .n = 2,
                    .vectors = v, .payloads = pl, .payload_lens = lens};
        expect_refused(&up, VD_INVALID, cases[i].msg);
        ck_assert_ptr_nonnull(strstr(up.err.msg, "upsert into docs: point 1 (id 300)"));
    }
    /* The old payload of id 3 is intact. */
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "docs", &c, NULL), VD_OK);
    vd_snapshot *s = NULL;
    ck_assert_int_eq(vd_snapshot_begin(st, &s, NULL), VD_OK);
    int found;
    const uint8_t *p;
    size_t plen;
    ck_assert_int_eq(vd_snapshot_get(s, c, 3, &found, NULL, &p, &plen, NULL), VD_OK);
    ck_assert_int_eq(found, 1);
    ck_assert_uint_eq(plen, 8);
    ck_assert(memcmp(p, "{\"id\":3}", 8) == 0);
    vd_snapshot_end(s);
    vd_collection_release(c);
}
END_TEST

START_TEST(writes_to_a_read_only_store_are_refused)
{
    vd_store_close(st);
    vd_store_options opt = {.read_only = 1};
    st = NULL;
    ck_assert_int_eq(vd_store_open(dir, &opt, &st, NULL), VD_OK);
    uint64_t id = 1;
    vd_op del = {.kind = VD_OP_DELETE, .collection = "docs", .ids = &id, .n = 1};
    vd_err e;
    ck_assert_int_eq(vd_store_write(st, &del, 1, &e), VD_INVALID);
    ck_assert_ptr_nonnull(strstr(e.msg, "is open read-only"));
    ck_assert_int_eq(vd_store_import(st, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL, NULL, &e),
                     VD_INVALID);
    vd_collection *c = NULL;
    ck_assert_int_eq(vd_store_acquire(st, "docs", &c, NULL), VD_OK);
    ck_assert_uint_eq(vd_index_count(vd_collection_index(c)), 20);
    vd_collection_release(c);
}
END_TEST

START_TEST(bad_open_arguments)
{
    vd_store *s2 = NULL;
    vd_err e;
    ck_assert_int_eq(vd_store_open("", NULL, &s2, &e), VD_INVALID);
    ck_assert_ptr_null(s2);
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    ck_assert_int_eq(vd_store_open(path, NULL, &s2, &e), VD_INVALID); /* a file, not a dir */
    ck_assert_ptr_nonnull(strstr(e.msg, "is not a directory"));
    snprintf(path, sizeof path, "%s/absent", dir);
    ck_assert_int_eq(vd_store_open(path, NULL, &s2, &e), VD_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(e.msg, path));
}
END_TEST

Suite *storage_badinput_suite(void)
{
    Suite *s = suite_create("storage_badinput");
    TCase *tc = tcase_create("badinput");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, bad_collection_names);
    tcase_add_test(tc, bad_collection_parameters);
    tcase_add_test(tc, unknown_collections);
    tcase_add_test(tc, bad_vectors);
    tcase_add_test(tc, empty_batches_missing_arrays_and_duplicate_ids);
    tcase_add_test(tc, bad_json_payloads);
    tcase_add_test(tc, writes_to_a_read_only_store_are_refused);
    tcase_add_test(tc, bad_open_arguments);
    suite_add_tcase(s, tc);
    return s;
}
